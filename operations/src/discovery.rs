//! Contact points from DNS, a file or a command ([`DiscoveryMethod`]): the management HTTP
//! addresses of the nodes that may form or already form the cluster.
//!
//! Every source is bounded: at most [`MAX_CONTACT_POINTS`] contact points, a file of at most
//! 1 MiB (read off the executor, so a file that blocks — a FIFO, a hung network mount —
//! only fails the lookup at its timeout), a command's output of at most 64 KiB within the
//! resolve timeout (the command runs in a process group of its own, killed whole when the
//! lookup ends, pipelines included). A source that fails is an error, never an empty list, so that a broken
//! source restarts the bootstrap's stable-margin clock instead of looking like a fleet of
//! one.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use fjell_runtime::settings::DiscoveryMethod;
use futures_lite::AsyncReadExt;

use crate::dns::{DnsError, Resolver};

/// The most contact points one lookup returns.
pub const MAX_CONTACT_POINTS: usize = 1024;
const MAX_FILE: u64 = 1 << 20;
const MAX_OUTPUT: u64 = 64 << 10;

/// Why a lookup found no contact points.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A DNS lookup failed.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The command could not run, failed or took too long.
    #[error("discovery command {command:?}: {reason}")]
    Command {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// A line is not `HOST:PORT`, or its host does not resolve.
    #[error("not a contact point: {0}")]
    BadLine(String),
    /// More than [`MAX_CONTACT_POINTS`].
    #[error("more than {MAX_CONTACT_POINTS} contact points")]
    TooMany,
    /// The lookup took longer than the resolve timeout (a command is killed).
    #[error("the lookup took longer than {0:?}")]
    Timeout(Duration),
    /// A `dns` lookup with no port and no default port.
    #[error("no port for the contact points of {0}: set discovery.port")]
    NoPort(String),
}

/// Looks contact points up from one source.
#[derive(Debug, Clone)]
pub struct Discovery {
    method: DiscoveryMethod,
    resolver: Option<Resolver>,
    default_port: u16,
    timeout: Duration,
}

impl Discovery {
    /// Contact points from `method`; DNS queries (also for host names in a file or a
    /// command's output) go to `dns_server`, else to the system's first name server.
    /// `default_port` is the port of `dns` contact points without `discovery.port` (this
    /// node's own management port); `timeout` bounds one lookup.
    pub fn new(
        method: DiscoveryMethod,
        dns_server: Option<SocketAddr>,
        default_port: u16,
        timeout: Duration,
    ) -> Discovery {
        let per_query = timeout / 3;
        let resolver = match dns_server {
            Some(s) => Some(Resolver::new(s, per_query)),
            None => Resolver::from_system(per_query).ok(),
        };
        Discovery {
            method,
            resolver,
            default_port,
            timeout,
        }
    }

    fn resolver(&self) -> Result<&Resolver, DiscoveryError> {
        self.resolver
            .as_ref()
            .ok_or(DiscoveryError::Dns(DnsError::NoServer))
    }

    /// The contact points now, within the timeout.
    pub async fn lookup(&self) -> Result<BTreeSet<SocketAddr>, DiscoveryError> {
        let timeout = self.timeout;
        futures_lite::future::or(self.lookup_unbounded(), async move {
            async_io::Timer::after(timeout).await;
            Err(DiscoveryError::Timeout(timeout))
        })
        .await
    }

    async fn lookup_unbounded(&self) -> Result<BTreeSet<SocketAddr>, DiscoveryError> {
        let mut out = BTreeSet::new();
        match &self.method {
            DiscoveryMethod::Dns { name, port } => {
                let port = port.unwrap_or(self.default_port);
                if port == 0 {
                    return Err(DiscoveryError::NoPort(name.clone()));
                }
                for ip in self.resolver()?.lookup_ip(name).await? {
                    out.insert(SocketAddr::new(ip, port));
                }
            }
            DiscoveryMethod::DnsSrv { name } => {
                for t in self.resolver()?.lookup_srv(name).await? {
                    out.extend(t.addresses.iter().map(|ip| SocketAddr::new(*ip, t.port)));
                }
            }
            DiscoveryMethod::File(path) => {
                let p = path.clone();
                let text = blocking::unblock(move || read_file(&p))
                    .await
                    .map_err(|reason| DiscoveryError::File {
                        path: path.display().to_string(),
                        reason,
                    })?;
                out = self.parse_lines(&text).await?;
            }
            DiscoveryMethod::Command(command) => {
                let text = run(command)
                    .await
                    .map_err(|reason| DiscoveryError::Command {
                        command: command.clone(),
                        reason,
                    })?;
                out = self.parse_lines(&text).await?;
            }
        }
        if out.len() > MAX_CONTACT_POINTS {
            return Err(DiscoveryError::TooMany);
        }
        Ok(out)
    }

    /// One `HOST:PORT` per line; blank lines and `#` comments skipped; host names resolved.
    async fn parse_lines(&self, text: &str) -> Result<BTreeSet<SocketAddr>, DiscoveryError> {
        let mut out = BTreeSet::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if out.len() >= MAX_CONTACT_POINTS {
                return Err(DiscoveryError::TooMany);
            }
            if let Ok(a) = line.parse::<SocketAddr>() {
                out.insert(a);
                continue;
            }
            let bad = || DiscoveryError::BadLine(format!("{line:?}: write IP:PORT or HOST:PORT"));
            let (host, port) = line.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let ips = self.resolver()?.lookup_ip(host).await?;
            if ips.is_empty() {
                return Err(DiscoveryError::BadLine(format!(
                    "{line:?}: {host} has no addresses"
                )));
            }
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
        }
        Ok(out)
    }
}

/// Kills a command's process group when dropped: what `sh` started (a pipeline, a hung
/// client) goes with it.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn read_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    f.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE {
        return Err("larger than 1 MiB".into());
    }
    Ok(text)
}

/// `sh -c command`'s standard output; the command's whole process group is killed when this
/// ends, by completion or because the lookup was dropped (its timeout).
async fn run(command: &str) -> Result<String, String> {
    use async_process::Stdio;
    let mut std_command = std::process::Command::new("sh");
    std_command.arg("-c").arg(command);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut std_command, 0);
    let mut child = async_process::Command::from(std_command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let _group = Group(child.id());
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(MAX_OUTPUT + 1)
            .read_to_end(&mut out)
            .await
            .map_err(|e| e.to_string())?;
    }
    if out.len() as u64 > MAX_OUTPUT {
        return Err("printed more than 64 KiB".into());
    }
    let status = child.status().await.map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    String::from_utf8(out).map_err(|_| "printed something that is not UTF-8".into())
}
