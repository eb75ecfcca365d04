//! Administrator connections: operator tools reach a node over the same QUIC endpoint, with
//! a certificate from the cluster CA that certifies an administrator
//! (`fjell-admin://NAME`, see [`DevCa::admin`](crate::DevCa::admin)) instead of a node.
//!
//! An administrator connection carries requests only: each on a bidirectional stream of its
//! own, the request's bytes and then the answer's, at most [`MAX_ADMIN_MESSAGE`] each. The
//! transport does not interpret them; the node's driver reads them with
//! [`Transport::recv_admin`](crate::Transport::recv_admin) and answers through
//! [`AdminRequest::respond`]. A certificate from another CA, or none, is refused during the
//! handshake like any other; a node certificate gets a node connection, which takes no
//! requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, SendStream, VarInt};

use crate::rt::{Rt, Runtime};
use crate::tls::{Credentials, PeerIdentity};

/// Largest administrator request or answer, in bytes.
pub const MAX_ADMIN_MESSAGE: usize = 1 << 20;
/// How long a request may take to arrive.
const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests an administrator connection may have open at once.
const ADMIN_STREAMS: u32 = 4;

/// A request from an administrator, to be answered once.
#[derive(Debug)]
pub struct AdminRequest {
    /// The administrator's name, as its certificate states it.
    pub from: String,
    /// The request's bytes.
    pub payload: Bytes,
    answer: SendStream,
    rt: Rt,
}

impl AdminRequest {
    /// Sends the answer and ends the request's stream.
    pub async fn respond(mut self, answer: &[u8]) -> Result<(), AdminError> {
        if answer.len() > MAX_ADMIN_MESSAGE {
            return Err(AdminError::TooLarge(answer.len()));
        }
        self.answer
            .write_all(answer)
            .await
            .map_err(|e| AdminError::Connection(e.to_string()))?;
        let _ = self.answer.finish();
        // Give the peer the chance to read it before the stream is dropped.
        let _ = self.answer.stopped().await;
        Ok(())
    }
}

impl AdminRequest {
    /// Sends the answer in the background (for callers that must not wait, such as a node's
    /// driver); failures are logged at debug level.
    pub fn answer(self, answer: Vec<u8>) {
        let rt = self.rt.clone();
        rt.spawn(async move {
            if let Err(e) = self.respond(&answer).await {
                tracing::debug!("fjell-quic: administrator answer not delivered: {e}");
            }
        });
    }
}

/// Why an administrator request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The node could not be reached or refused the connection (wrong CA, no certificate,
    /// not an administrator certificate).
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, String),
    /// The connection failed during the request.
    #[error("connection lost: {0}")]
    Connection(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A request or answer above [`MAX_ADMIN_MESSAGE`].
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
    /// The credentials are not an administrator's.
    #[error("the credentials certify {0}, not an administrator")]
    NotAnAdmin(String),
    /// The credentials or the local socket could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// Serves one administrator connection: every bidirectional stream it opens is a request,
/// queued for the node's driver. Full queue: the request is refused (its stream reset).
pub(crate) async fn serve(
    name: String,
    conn: Connection,
    queue: async_channel::Sender<AdminRequest>,
    rt: Rt,
) {
    conn.set_max_concurrent_bi_streams(VarInt::from_u32(ADMIN_STREAMS));
    tracing::info!(admin = %name, remote = %conn.remote_address(), "fjell-quic: administrator connected");
    while let Ok((answer, mut recv)) = conn.accept_bi().await {
        let (name, queue, task_rt) = (name.clone(), queue.clone(), rt.clone());
        rt.spawn(async move {
            // A request arrives in one piece; one that dawdles or is too large is dropped
            // (the client sees its stream reset).
            let read = task_rt.timeout(ADMIN_READ_TIMEOUT, recv.read_to_end(MAX_ADMIN_MESSAGE));
            let Some(Ok(payload)) = read.await else {
                return;
            };
            let req = AdminRequest {
                from: name,
                payload: Bytes::from(payload),
                answer,
                rt: task_rt,
            };
            if let Err(e) = queue.try_send(req) {
                let mut answer = e.into_inner().answer;
                let _ = answer.reset(VarInt::from_u32(1));
            }
        });
    }
}

/// An operator tool's connection to one node.
pub struct AdminClient {
    endpoint: quinn::Endpoint,
    conn: Connection,
    rt: Rt,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("node", &self.conn.remote_address())
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// Connects to the node at `node` with administrator `credentials`, waiting at most
    /// `timeout`, with the connection's socket, timers and tasks on `runtime`. `node` must be
    /// the address the node advertises (the one its certificate certifies): the node's
    /// certificate is checked against it, so a tool cannot be pointed at an impostor.
    pub async fn connect(
        credentials: &Credentials,
        node: SocketAddr,
        timeout: Duration,
        runtime: Arc<dyn Runtime>,
    ) -> Result<AdminClient, AdminError> {
        let rt = Rt(runtime);
        if let PeerIdentity::Node(a) = credentials.identity() {
            return Err(AdminError::NotAnAdmin(a.to_string()));
        }
        let setup = |e: &dyn std::fmt::Display| AdminError::Setup(e.to_string());
        let local: SocketAddr = if node.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(local).map_err(|e| setup(&e))?;
        let mut endpoint =
            quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, rt.0.clone())
                .map_err(|e| setup(&e))?;
        endpoint
            .set_default_client_config(credentials.quinn_client_config().map_err(|e| setup(&e))?);
        let connecting = endpoint
            .connect(node, &node.ip().to_string())
            .map_err(|e| AdminError::Connect(node, e.to_string()))?;
        let conn = match rt.timeout(timeout, connecting).await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(AdminError::Connect(node, e.to_string())),
            None => {
                return Err(AdminError::Connect(
                    node,
                    format!("no answer within {timeout:?}"),
                ))
            }
        };
        match crate::tls::peer_identity(&conn).map(|(id, _)| id) {
            Ok(PeerIdentity::Node(a)) if a == node => Ok(AdminClient { endpoint, conn, rt }),
            other => {
                conn.close(
                    VarInt::from_u32(crate::close_code::IDENTITY_MISMATCH),
                    b"identity",
                );
                let who = other
                    .map(|i| i.to_string())
                    .unwrap_or_else(|e| e.to_string());
                Err(AdminError::Connect(
                    node,
                    format!("the peer's certificate is {who}, not that node's"),
                ))
            }
        }
    }

    /// Completes when the connection closes, with why (for instance the node closing it
    /// because this certificate is now on its deny list).
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }

    /// Sends `request` and waits at most `timeout` for the answer.
    pub async fn request(&self, request: &[u8], timeout: Duration) -> Result<Vec<u8>, AdminError> {
        if request.len() > MAX_ADMIN_MESSAGE {
            return Err(AdminError::TooLarge(request.len()));
        }
        let conn = self.conn.clone();
        let request = request.to_vec();
        let exchange = async move {
            let lost = |e: &dyn std::fmt::Display| AdminError::Connection(e.to_string());
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
            send.write_all(&request).await.map_err(|e| lost(&e))?;
            let _ = send.finish();
            recv.read_to_end(MAX_ADMIN_MESSAGE)
                .await
                .map_err(|e| lost(&e))
        };
        self.rt
            .timeout(timeout, exchange)
            .await
            .unwrap_or(Err(AdminError::Timeout(timeout)))
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.conn
            .close(VarInt::from_u32(crate::close_code::SHUTDOWN), b"bye");
        self.endpoint.wait_idle().await;
    }
}

/// The administrator request queue a transport holds.
pub(crate) type AdminQueue = (
    async_channel::Sender<AdminRequest>,
    async_channel::Receiver<AdminRequest>,
);

/// A new queue of `n` requests.
pub(crate) fn queue(n: usize) -> AdminQueue {
    async_channel::bounded(n)
}
