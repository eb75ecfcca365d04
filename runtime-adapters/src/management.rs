//! Management over QUIC, like Akka's cluster HTTP management and `cluster` script: an
//! operator tool with an administrator certificate from the cluster CA
//! ([`fjell_quic::DevCa::admin`], `fjell certs admin`) connects to any node and asks for its
//! view of the cluster or has it join, leave or down a member.
//!
//! Every node answers: its driver reads requests from the transport's administrator
//! connections ([`fjell_quic::admin`]) between its other inputs and answers from the core's
//! state, so an answer is exactly the node's view at that moment. [`Client`] is the tool's
//! side. Requests and responses are postcard-encoded [`Request`] and [`Response`].

use std::net::SocketAddr;
use std::time::Duration;

use fjell_core::{Instant, Member, Node, NodeStatus};
use fjell_quic::{AdminClient, AdminError, Credentials};
use serde::{Deserialize, Serialize};

/// What an administrator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Every member, as this node sees it.
    Members,
    /// This node: its own status, the leader, convergence, and what its failure detector
    /// says of each member it monitors.
    Status,
    /// The leader, as this node sees it.
    Leader,
    /// Members some observer flags unreachable.
    Unreachable,
    /// Join the cluster through the member at this address (a node that is not a member
    /// yet).
    Join(SocketAddr),
    /// Ask the member at this address to leave gracefully.
    Leave(SocketAddr),
    /// Mark the member at this address Down.
    Down(SocketAddr),
    /// Whether this node is Up (or WeaklyUp): Akka's `is-available`.
    IsAvailable,
}

/// A member, as management reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its address.
    pub address: SocketAddr,
    /// Its incarnation.
    pub uid: u64,
    /// Its status (`Up`, `Leaving`, ...).
    pub status: String,
    /// Its up-number (age: lower is older); `None` until it is Up.
    pub up_number: Option<u32>,
    /// Its roles.
    pub roles: Vec<String>,
    /// Its application version.
    pub app_version: String,
    /// Whether some observer flags it unreachable.
    pub unreachable: bool,
}

/// One member this node's failure detector monitors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitored {
    /// The member.
    pub address: SocketAddr,
    /// Its suspicion level (phi).
    pub phi: f64,
    /// Milliseconds since its last heartbeat arrived, if one did.
    pub last_heartbeat_ms: Option<u64>,
    /// The latest round-trip time in microseconds, if known.
    pub rtt_us: Option<u64>,
    /// False once the detector suspects it.
    pub available: bool,
    /// The mean of the heartbeat inter-arrival times the phi detector has seen, in
    /// milliseconds (`None` with the deadline detector).
    pub mean_interval_ms: Option<f64>,
    /// Their standard deviation, in milliseconds.
    pub std_interval_ms: Option<f64>,
}

/// The failure detector's settings, as a node runs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorInfo {
    /// `phi` or `deadline`.
    pub kind: String,
    /// `threshold`.
    pub threshold: f64,
    /// `heartbeat-interval`, milliseconds.
    pub heartbeat_interval_ms: u64,
    /// `acceptable-heartbeat-pause`, milliseconds.
    pub acceptable_heartbeat_pause_ms: u64,
    /// `min-std-deviation`, milliseconds.
    pub min_std_deviation_ms: u64,
}

/// The answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node's address.
    pub node: SocketAddr,
    /// Where the node is in its own life (`Member`, `Joining`, `Exiting`, ...).
    pub node_status: String,
    /// Its own member record, once it is a member.
    pub self_member: Option<MemberInfo>,
    /// The leader as it sees it.
    pub leader: Option<SocketAddr>,
    /// Whether it sees convergence.
    pub converged: bool,
    /// How many members it knows.
    pub members: usize,
    /// How many of them some observer flags unreachable.
    pub unreachable: usize,
    /// What its failure detector says of each member it monitors.
    pub monitored: Vec<Monitored>,
    /// Its failure detector's settings.
    pub detector: DetectorInfo,
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// For [`Request::Members`] and [`Request::Unreachable`].
    Members(Vec<MemberInfo>),
    /// For [`Request::Status`].
    Status(Box<Status>),
    /// For [`Request::Leader`].
    Leader(Option<SocketAddr>),
    /// For [`Request::IsAvailable`].
    Available(bool),
    /// A command was accepted.
    Done,
    /// A command was refused, with the reason.
    Refused(String),
    /// The request could not be read.
    BadRequest(String),
}

fn member_info<const M: usize, const R: usize, const H: usize>(
    node: &Node<M, R, H>,
    m: &Member,
) -> MemberInfo {
    MemberInfo {
        address: m.address.socket_addr(),
        uid: m.address.uid(),
        status: format!("{:?}", m.status),
        up_number: m.up_number.map(|n| n.get()),
        roles: m.roles.iter().map(|r| r.as_str().to_string()).collect(),
        app_version: m.app_version.to_string(),
        unreachable: node.reachability(&m.address)
            != Some(fjell_core::ReachabilityStatus::Reachable),
    }
}

/// The answer of `node` to the request in `bytes`, carrying out commands on it. The caller
/// flushes the node's outputs afterwards, as after any input.
pub(crate) fn answer<const M: usize, const R: usize, const H: usize>(
    node: &mut Node<M, R, H>,
    now: Instant,
    bytes: &[u8],
) -> Response {
    match postcard::from_bytes(bytes) {
        Ok(r) => answer_request(node, now, r),
        Err(e) => Response::BadRequest(e.to_string()),
    }
}

/// The answer of `node` to `request`, carrying out commands on it.
pub(crate) fn answer_request<const M: usize, const R: usize, const H: usize>(
    node: &mut Node<M, R, H>,
    now: Instant,
    request: Request,
) -> Response {
    let done = |r: Result<(), fjell_core::CommandError>| match r {
        Ok(()) => Response::Done,
        Err(e) => Response::Refused(e.to_string()),
    };
    match request {
        Request::Members => Response::Members(
            node.members()
                .iter()
                .map(|m| member_info(node, m))
                .collect(),
        ),
        Request::Unreachable => {
            Response::Members(node.unreachable().map(|m| member_info(node, m)).collect())
        }
        Request::Leader => Response::Leader(node.leader().map(|l| l.socket_addr())),
        Request::IsAvailable => Response::Available(
            node.status() == NodeStatus::Member
                && node.self_member().is_some_and(|m| {
                    matches!(
                        m.status,
                        fjell_core::MemberStatus::Up | fjell_core::MemberStatus::WeaklyUp
                    )
                }),
        ),
        Request::Status => {
            let intervals: Vec<_> = node.monitored_intervals().collect();
            let fd = node.config().failure_detector;
            let ms = |d: std::time::Duration| d.as_millis() as u64;
            Response::Status(Box::new(Status {
                node: node.address().socket_addr(),
                node_status: format!("{:?}", node.status()),
                self_member: node.self_member().map(|m| member_info(node, m)),
                leader: node.leader().map(|l| l.socket_addr()),
                converged: node.is_converged(),
                members: node.members().len(),
                unreachable: node.unreachable().count(),
                monitored: node
                    .monitored(now)
                    .map(|s| {
                        let stats = intervals
                            .iter()
                            .find(|(a, _)| *a == s.subject)
                            .and_then(|(_, i)| *i);
                        Monitored {
                            address: s.subject.socket_addr(),
                            phi: s.phi,
                            last_heartbeat_ms: s.last_heartbeat_age.map(|d| d.as_millis() as u64),
                            rtt_us: s.rtt.map(|d| d.as_micros() as u64),
                            available: s.available,
                            mean_interval_ms: stats.map(|(m, _)| m / 1000.0),
                            std_interval_ms: stats.map(|(_, d)| d / 1000.0),
                        }
                    })
                    .collect(),
                detector: DetectorInfo {
                    kind: format!("{:?}", fd.kind).to_lowercase(),
                    threshold: fd.threshold,
                    heartbeat_interval_ms: ms(fd.heartbeat_interval),
                    acceptable_heartbeat_pause_ms: ms(fd.acceptable_heartbeat_pause),
                    min_std_deviation_ms: ms(fd.min_std_deviation),
                },
            }))
        }
        Request::Join(a) => done(node.join(now, a)),
        Request::Leave(a) => done(node.leave(now, a)),
        Request::Down(a) => done(node.down(now, a)),
    }
}

/// The answer's bytes (postcard never fails on these types).
pub(crate) fn encode(r: &Response) -> Vec<u8> {
    postcard::to_allocvec(r).unwrap_or_default()
}

/// Why a management call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The connection or the exchange failed (refused handshake, timeout, ...).
    #[error(transparent)]
    Transport(#[from] AdminError),
    /// The node's answer could not be read (a different fjell version?).
    #[error("unreadable answer: {0}")]
    Decode(String),
}

/// An operator tool's connection to one node.
#[derive(Debug)]
pub struct Client {
    admin: AdminClient,
    timeout: Duration,
}

impl Client {
    /// Connects to the node at `node` with administrator `credentials`, the connection's
    /// socket, timers and tasks on `runtime`; `timeout` bounds the connection and every call.
    pub async fn connect(
        credentials: &Credentials,
        node: SocketAddr,
        timeout: Duration,
        runtime: impl crate::Runtime,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            admin: AdminClient::connect(credentials, node, timeout, std::sync::Arc::new(runtime))
                .await?,
            timeout,
        })
    }

    /// Sends `request` and returns the node's answer.
    pub async fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let bytes =
            postcard::to_allocvec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let answer = self.admin.request(&bytes, self.timeout).await?;
        postcard::from_bytes(&answer).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.admin.close().await;
    }
}
