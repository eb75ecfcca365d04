//! A small DNS stub resolver for discovery: A/AAAA and SRV queries over UDP to one server
//! (hickory-proto writes and reads the messages). It asks for recursion and trusts the
//! server's answer; it does not cache (discovery asks once per interval) and applies no
//! search domains, so names are taken as fully qualified (`fjell.default.svc.cluster.local`).
//!
//! Answers are bounded by the 4,096-byte UDP payload asked for; a truncated answer is an
//! error ([`DnsError::Truncated`]) rather than a partial list, since a partial list of
//! contact points could let a node form a cluster of its own.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use async_io::Async;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// The UDP payload size asked for (EDNS), and the receive buffer.
const PAYLOAD: u16 = 4096;

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The name is not a valid DNS name.
    #[error("not a DNS name: {0:?}")]
    BadName(String),
    /// No server configured and none in `/etc/resolv.conf`.
    #[error("no DNS server: none given and none in /etc/resolv.conf")]
    NoServer,
    /// The socket failed.
    #[error("DNS query to {server} failed: {source}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// No answer within the timeout, after every attempt.
    #[error("no answer from the DNS server {0}")]
    Timeout(SocketAddr),
    /// The answer did not decode or did not answer the question.
    #[error("unusable DNS answer from {server}: {reason}")]
    Malformed {
        /// The server.
        server: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The answer did not fit in one UDP message.
    #[error("the DNS answer for {0} was truncated (more records than one UDP message holds)")]
    Truncated(String),
    /// The server answered with an error code other than NXDOMAIN.
    #[error("the DNS server answered {code} for {name}")]
    Failed {
        /// The name asked for.
        name: String,
        /// The response code.
        code: ResponseCode,
    },
}

/// One SRV target: its name, its port, and its addresses (from the answer's additional
/// records, else looked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// The target's name.
    pub target: String,
    /// The port the record gives.
    pub port: u16,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

/// A DNS stub resolver (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Resolver {
    server: SocketAddr,
    timeout: Duration,
    attempts: u32,
}

impl Resolver {
    /// Queries go to `server`, each attempt waiting `timeout`, three attempts.
    pub fn new(server: SocketAddr, timeout: Duration) -> Resolver {
        Resolver {
            server,
            timeout,
            attempts: 3,
        }
    }

    /// Queries go to the first `nameserver` of `/etc/resolv.conf`, port 53.
    pub fn from_system(timeout: Duration) -> Result<Resolver, DnsError> {
        let conf = std::fs::read_to_string("/etc/resolv.conf").map_err(|_| DnsError::NoServer)?;
        let server = nameserver(&conf).ok_or(DnsError::NoServer)?;
        Ok(Resolver::new(SocketAddr::new(server, 53), timeout))
    }

    /// The server queries go to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The IPv4 and IPv6 addresses of `name` (none if it does not exist).
    pub async fn lookup_ip(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let n = fqdn(name)?;
        let mut ips = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            let m = self.query(&n, rtype).await?;
            ips.extend(m.answers.iter().filter_map(|r| ip_of(&r.data)));
        }
        ips.sort();
        ips.dedup();
        Ok(ips)
    }

    /// The SRV records of `name` (for example `_fjell._tcp.fjell.default.svc.cluster.local`)
    /// with their targets' addresses; none if the name does not exist, or for a target of
    /// `.` (RFC 2782: the service is not available there). A target without addresses is an
    /// error, not a shorter list.
    pub async fn lookup_srv(&self, name: &str) -> Result<Vec<SrvTarget>, DnsError> {
        let m = self.query(&fqdn(name)?, RecordType::SRV).await?;
        let mut out = Vec::new();
        for r in &m.answers {
            let RData::SRV(srv) = &r.data else { continue };
            if srv.target.is_root() {
                continue;
            }
            let mut addresses: Vec<IpAddr> = m
                .additionals
                .iter()
                .filter(|a| a.name == srv.target)
                .filter_map(|a| ip_of(&a.data))
                .collect();
            if addresses.is_empty() {
                addresses = self.lookup_ip(&srv.target.to_ascii()).await?;
            }
            if addresses.is_empty() {
                return Err(DnsError::Malformed {
                    server: self.server,
                    reason: format!("SRV target {} has no addresses", srv.target),
                });
            }
            out.push(SrvTarget {
                target: srv.target.to_ascii(),
                port: srv.port,
                addresses,
            });
        }
        Ok(out)
    }

    /// One question, with retries; NXDOMAIN is an empty answer.
    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Message, DnsError> {
        let server = self.server;
        let io = |source| DnsError::Io { server, source };
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let socket = Async::<UdpSocket>::bind(local).map_err(io)?;
        // Connected: the kernel drops datagrams from anyone but the server.
        socket.get_ref().connect(server).map_err(io)?;
        // A random id (hickory's), and a socket of its own on a random port.
        let mut request = Message::query();
        request.metadata.recursion_desired = true;
        request.add_query(Query::query(name.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(PAYLOAD);
        request.set_edns(edns);
        let bytes = request.to_vec().map_err(|e| DnsError::Malformed {
            server,
            reason: e.to_string(),
        })?;
        let mut buf = vec![0u8; usize::from(PAYLOAD)];
        for _ in 0..self.attempts {
            socket.send(&bytes).await.map_err(io)?;
            let answer = futures_lite::future::or(
                async {
                    // Datagrams that are not the answer (a late answer to an earlier attempt
                    // has the same id and is as good) are skipped.
                    loop {
                        let n = match socket.recv(&mut buf).await {
                            Ok(n) => n,
                            Err(e) => return Some(Err(io(e))),
                        };
                        match Message::from_vec(&buf[..n]) {
                            Ok(m) if m.metadata.id == request.metadata.id => return Some(Ok(m)),
                            _ => continue,
                        }
                    }
                },
                async {
                    async_io::Timer::after(self.timeout).await;
                    None
                },
            )
            .await;
            let Some(answer) = answer else { continue };
            return check(answer?, server, name, rtype);
        }
        Err(DnsError::Timeout(server))
    }
}

/// The answer is a response to the question, complete, and not an error.
fn check(
    m: Message,
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, DnsError> {
    let bad = |reason: &str| DnsError::Malformed {
        server,
        reason: reason.into(),
    };
    if m.metadata.message_type != MessageType::Response {
        return Err(bad("not a response"));
    }
    let asked = m
        .queries
        .first()
        .is_some_and(|q| q.name() == name && q.query_type() == rtype);
    if !asked {
        return Err(bad("it answers another question"));
    }
    if m.metadata.truncation {
        return Err(DnsError::Truncated(name.to_ascii()));
    }
    match m.metadata.response_code {
        ResponseCode::NoError => Ok(m),
        ResponseCode::NXDomain => Ok(Message::new(
            m.metadata.id,
            MessageType::Response,
            OpCode::Query,
        )),
        code => Err(DnsError::Failed {
            name: name.to_ascii(),
            code,
        }),
    }
}

fn ip_of(d: &RData) -> Option<IpAddr> {
    match d {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// `name` as a fully qualified name.
fn fqdn(name: &str) -> Result<Name, DnsError> {
    let mut n = Name::from_ascii(name).map_err(|_| DnsError::BadName(name.into()))?;
    if n.num_labels() == 0 {
        return Err(DnsError::BadName(name.into()));
    }
    n.set_fqdn(true);
    Ok(n)
}

/// The first `nameserver` line of a resolv.conf.
fn nameserver(conf: &str) -> Option<IpAddr> {
    conf.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nameserver_of_resolv_conf() {
        let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(nameserver(conf), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(
            nameserver("nameserver\nnameserver ::1\n"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(nameserver("search x\n"), None);
    }

    #[test]
    fn names_are_fully_qualified() {
        assert!(fqdn("fjell.default.svc.cluster.local").unwrap().is_fqdn());
        assert!(fqdn("").is_err());
        assert!(fqdn("a..b").is_err());
    }
}
