//! The transport: one QUIC endpoint per node that both listens and dials.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use fjell_core::{DeliveryClass, Transmit};
use quinn::{Connection, RecvStream, VarInt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::admission::{Gate, Refusal};
use crate::close_code;
use crate::config::{TransportConfig, TransportConfigError};
use crate::counters::{bump, AtomicCounters, BadInput, Counters};
use crate::error::{RequestError, SendError, TransportError};
use crate::frame::{encode_app_framed, AppKind, Frame, FrameDecoder, FrameError, Lane, LEN_PREFIX};
use crate::inbox::Inbox;
use crate::peer::{open, send_datagram, LaneStream, Peer, BATCH};
use crate::refusals::{printable, Refusals};
use crate::rt::{Rt, Runtime};
use crate::tls::{self, Credentials, Fingerprint, PeerIdentity, TlsError};

/// A fjell-core message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMessage {
    /// The sender's certified address: pass it to `Node::handle_message` as `from`.
    pub from: SocketAddr,
    /// The lane it came on.
    pub class: DeliveryClass,
    /// The core's bytes.
    pub bytes: Bytes,
}

/// An application message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMessage {
    /// The sender's certified address.
    pub from: SocketAddr,
    /// The serialized message (postcard).
    pub payload: Bytes,
    request: Option<u64>,
}

impl AppMessage {
    /// Deserializes the message.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, postcard::Error> {
        postcard::from_bytes(&self.payload)
    }

    /// True for a request: answer it with [`Transport::respond`].
    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }
}

/// How the last attempt to connect to a peer ended (see [`Transport::dial_outcome`]): what a
/// node that cannot get into a cluster reports about each contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialOutcome {
    /// A dial is under way and nothing has answered yet.
    Dialing,
    /// Connected, and the peer's certificate is the node dialed.
    Connected,
    /// No answer: nothing listens there, a firewall, a wrong address or port.
    NoAnswer(String),
    /// The TLS handshake failed: the peer refused this node's certificate or presented one
    /// this node refuses (another CA, an expired certificate, no certificate).
    HandshakeRefused(String),
    /// The handshake succeeded but the peer is not admitted (see [`crate::admission`]).
    Refused(String),
}

impl std::fmt::Display for DialOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialOutcome::Dialing => f.write_str("no answer yet"),
            DialOutcome::Connected => f.write_str("connected"),
            DialOutcome::NoAnswer(e) => write!(f, "no answer ({e})"),
            DialOutcome::HandshakeRefused(e) => write!(f, "TLS handshake refused: {e}"),
            DialOutcome::Refused(e) => write!(f, "refused: {e}"),
        }
    }
}

/// A node's QUIC transport. Cheap to clone (shared); call [`Transport::close`] to stop it.
///
/// Sending never blocks on the network for membership traffic: heartbeats go out as QUIC
/// datagrams at once (or are dropped), gossip and control messages are queued per peer and
/// refused when the queue is full. Application sends wait for room in the peer's queue.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("address", &self.inner.me)
            .finish_non_exhaustive()
    }
}

type Pending = Mutex<HashMap<(SocketAddr, u64), Sender<Bytes>>>;

pub(crate) struct Inner {
    pub(crate) cfg: TransportConfig,
    pub(crate) me: SocketAddr,
    instance: u64,
    endpoint: quinn::Endpoint,
    /// Replaced by [`Transport::reload`]; each dial takes the current one.
    client: RwLock<quinn::ClientConfig>,
    quic: Arc<quinn::TransportConfig>,
    gate: Gate,
    /// Every admitted connection (node or administrator, with or without a hello yet) and
    /// its peer's certificate, so that a reload closes each one the deny list now names.
    admitted: Mutex<HashMap<usize, (Connection, Fingerprint)>>,
    refusals: Refusals,
    dials: Mutex<HashMap<SocketAddr, DialOutcome>>,
    peers: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
    members: RwLock<HashSet<SocketAddr>>,
    core: (Sender<CoreMessage>, Receiver<CoreMessage>),
    app: Inbox<AppMessage>,
    admin: crate::admin::AdminQueue,
    pending: Pending,
    next_request: AtomicU64,
    pub(crate) counters: AtomicCounters,
    closing: AtomicBool,
    /// Notified once when the transport closes (cuts reconnect backoffs short).
    pub(crate) shutdown: event_listener::Event,
    /// Where the transport's tasks and timers run.
    pub(crate) rt: Rt,
    /// Set when [`Transport::close`] starts (before `closing`: the flush runs in between).
    flushing: AtomicBool,
    /// Set and notified when [`Transport::close`] has finished (for concurrent callers).
    closed_done: AtomicBool,
    closed: event_listener::Event,
}

/// Why a stream with a second stream number is refused.
const NUMBER_FIRST: &str = "a stream number only opens an application stream";

/// How long [`Transport::close`] waits for the membership lanes to deliver what is queued.
const CLOSE_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);
/// How long [`Transport::close`] waits for closed connections to drain.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

fn config_err(key: &'static str, reason: &'static str) -> TransportError {
    TransportError::Config(TransportConfigError { key, reason })
}

impl Transport {
    /// Binds the node's endpoint on [`TransportConfig::bind`] (default: the certified
    /// address) and starts accepting connections. Its socket, timers and background tasks
    /// live on `runtime` ([`Runtime`](crate::Runtime)).
    pub fn bind(
        config: TransportConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Self, TransportError> {
        let me = node_address(&config)?;
        let socket = std::net::UdpSocket::bind(config.bind.unwrap_or(me))?;
        Self::with_socket(config, socket, runtime)
    }

    /// Like [`Transport::bind`], on a socket the caller bound (for instance to learn a free
    /// port before issuing the node's certificate).
    pub fn with_socket(
        config: TransportConfig,
        socket: std::net::UdpSocket,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Self, TransportError> {
        config.validate()?;
        let me = node_address(&config)?;
        let mut tc = quinn::TransportConfig::default();
        tc.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(config.idle_timeout)
                .map_err(|_| config_err("idle_timeout", "too long for QUIC"))?,
        ));
        tc.keep_alive_interval(Some(config.keep_alive));
        tc.stream_receive_window(VarInt::from_u32(config.stream_receive_window));
        tc.send_window(u64::from(config.stream_receive_window) * 4);
        tc.receive_window(VarInt::from_u32(config.receive_window));
        tc.max_concurrent_bidi_streams(VarInt::from_u32(0));
        tc.max_concurrent_uni_streams(VarInt::from_u32(256));
        tc.datagram_receive_buffer_size(config.datagrams.then_some(1 << 20));
        let tc = Arc::new(tc);

        let creds = &config.credentials;
        let server = server_config(creds, &tc)?;
        let client = client_config(creds, &tc)?;
        let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(creds.reset_key()));
        let cid_key = creds.connection_id_key();
        endpoint_cfg.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = quinn::Endpoint::new(endpoint_cfg, Some(server), socket, runtime.clone())?;

        let mut instance = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut instance)
            .map_err(|_| std::io::Error::other("no system randomness"))?;
        let inner = Arc::new(Inner {
            core: async_channel::bounded(config.inbound_queue),
            app: Inbox::new(config.inbound_queue),
            admin: crate::admin::queue(16),
            gate: Gate::new(me, config.address_map.clone(), config.deny.iter().copied()),
            admitted: Mutex::new(HashMap::new()),
            refusals: Refusals::new("connection", std::time::Instant::now()),
            dials: Mutex::new(HashMap::new()),
            cfg: config,
            me,
            instance: u64::from_le_bytes(instance),
            endpoint,
            client: RwLock::new(client),
            quic: tc,
            peers: Mutex::new(HashMap::new()),
            members: RwLock::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            counters: AtomicCounters::default(),
            closing: AtomicBool::new(false),
            shutdown: event_listener::Event::new(),
            rt: Rt(runtime),
            flushing: AtomicBool::new(false),
            closed_done: AtomicBool::new(false),
            closed: event_listener::Event::new(),
        });
        inner.rt.spawn(inner.clone().accept_loop());
        inner.rt.spawn(inner.clone().summarise_refusals());
        Ok(Transport { inner })
    }

    /// Replaces this node's certificate and key (and CA) and the deny list while running:
    /// new connections use the new credentials, connections in use stay (membership does not
    /// change), and connections of peers whose certificate is now denied are closed at once.
    /// The new certificate must certify the same address.
    pub fn reload(
        &self,
        credentials: &Credentials,
        deny: impl IntoIterator<Item = Fingerprint>,
    ) -> Result<(), TransportError> {
        let inner = &self.inner;
        if node_address_of(credentials)? != inner.me {
            return Err(TransportError::Config(TransportConfigError {
                key: "credentials",
                reason: "a reloaded certificate must certify the same node address",
            }));
        }
        let server = server_config(credentials, &inner.quic)?;
        let client = client_config(credentials, &inner.quic)?;
        inner.endpoint.set_server_config(Some(server));
        *inner.client.write().unwrap() = client;
        inner.gate.set_deny(deny);
        let mut admitted = inner.admitted.lock().unwrap();
        admitted.retain(|_, (conn, _)| conn.close_reason().is_none());
        for (conn, fp) in admitted.values() {
            if inner.gate.is_denied(fp) {
                let remote = conn.remote_address();
                tracing::warn!(%remote, "fjell-quic: closing the connection from {remote}: certificate {fp} is now denied");
                conn.close(VarInt::from_u32(close_code::DENIED), b"certificate denied");
            }
        }
        Ok(())
    }

    /// How the last attempt to connect to `peer` ended, if this node dialed it.
    pub fn dial_outcome(&self, peer: SocketAddr) -> Option<DialOutcome> {
        self.inner.dials.lock().unwrap().get(&peer).cloned()
    }

    /// This node's certified (advertised) address.
    pub fn address(&self) -> SocketAddr {
        self.inner.me
    }

    /// The local address of the UDP socket.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// Sends a message the core produced: `bytes` are the `t.len` bytes `poll_transmit`
    /// wrote. Never waits. Heartbeats go out as datagrams (dropped, and counted, when they
    /// cannot); gossip and control are queued on the peer's membership stream, or refused
    /// with [`SendError::QueueFull`] (the core resends gossip, so dropping is safe). A peer
    /// without a connection is dialed.
    pub fn send_transmit(&self, t: &Transmit, bytes: &[u8]) -> Result<(), SendError> {
        let to = t.destination;
        if to == self.inner.me {
            return Err(SendError::ToSelf(to));
        }
        let peer = self.inner.peer(to);
        let bytes = Bytes::copy_from_slice(&bytes[..t.len.min(bytes.len())]);
        match t.class {
            DeliveryClass::Heartbeat => {
                // Straight onto the connection: heartbeats never wait in a queue behind
                // other traffic.
                if let Some(link) = peer.link() {
                    let frame = Frame::Core {
                        class: DeliveryClass::Heartbeat,
                        bytes: bytes.clone(),
                    };
                    if send_datagram(&link.conn, &frame) {
                        return Ok(());
                    }
                }
                if peer.heartbeat.tx.try_send(bytes).is_err() {
                    bump(&self.inner.counters.heartbeats_dropped);
                }
                peer.want();
                Ok(())
            }
            class => {
                let frame = Frame::Core { class, bytes };
                let mut framed = Vec::with_capacity(frame.body_len() + LEN_PREFIX);
                frame.encode_framed(&mut framed);
                peer.want();
                peer.membership.tx.try_send(framed.into()).map_err(|e| {
                    if e.is_closed() {
                        SendError::Closed
                    } else {
                        bump(&self.inner.counters.membership_queue_full);
                        SendError::QueueFull(to)
                    }
                })
            }
        }
    }

    /// The next core message from any peer; `None` once the transport is closed.
    pub async fn recv_core(&self) -> Option<CoreMessage> {
        self.inner.core.1.recv().await.ok()
    }

    /// Sets the members application messages may be sent to (the core's member list, as
    /// it changes). Sending to any other address fails at once with
    /// [`SendError::UnknownMember`]. Membership traffic is not restricted: joining nodes are
    /// not members yet.
    pub fn set_members(&self, members: impl IntoIterator<Item = SocketAddr>) {
        let mut m = self.inner.members.write().unwrap();
        m.clear();
        m.extend(members);
    }

    /// Sends an application message to a member. Messages to one member on this lane
    /// arrive in the order sent, at most once: when a connection breaks or is replaced,
    /// those still on it may be lost, never delivered after later ones; a message larger than
    /// [`TransportConfig::large_message_threshold`] travels on a stream of its own and is not
    /// ordered with the others. Waits while the member's queue is full.
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        message: &T,
    ) -> Result<(), SendError> {
        self.inner.check_member(to)?;
        self.inner
            .enqueue_app(to, encode(AppKind::App, message)?)
            .await
    }

    /// Sends several application messages to a member as one batch: one queue entry and
    /// one stream write, for throughput. The receiver sees them one by one, in order. Batches
    /// whose total size exceeds the large-message threshold are sent as one large message.
    pub async fn send_batch<'a, T: Serialize + 'a>(
        &self,
        to: SocketAddr,
        messages: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), SendError> {
        self.inner.check_member(to)?;
        let mut out = Vec::new();
        for m in messages {
            encode_app_framed(&mut out, AppKind::App, m).map_err(serialize_error)?;
        }
        if out.is_empty() {
            return Ok(());
        }
        self.inner.enqueue_app(to, out).await
    }

    /// The next application message (one-way or request) from any peer; `None` once the
    /// transport is closed.
    pub async fn recv(&self) -> Option<AppMessage> {
        self.inner.app.pop().await
    }

    /// Waits for application messages and appends up to `max` (at least one) of them to
    /// `into`, in the order [`Transport::recv`] would return them; the number appended, 0
    /// once the transport is closed. For receivers that take many messages at a time (the
    /// counterpart of [`Transport::send_batch`]): one hand-over for all of them instead of
    /// one per message.
    pub async fn recv_many(&self, into: &mut Vec<AppMessage>, max: usize) -> usize {
        self.inner.app.pop_many(into, max).await
    }

    /// The next application message if one is waiting.
    pub fn try_recv(&self) -> Option<AppMessage> {
        self.inner.app.try_pop()
    }

    /// Sends a request to a member and waits for its response, at most `timeout`.
    pub async fn request<Q: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        to: SocketAddr,
        request: &Q,
        timeout: Duration,
    ) -> Result<R, RequestError> {
        self.inner.check_member(to)?;
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let framed = encode(AppKind::Request(id), request)?;
        let (tx, rx) = async_channel::bounded(1);
        self.inner.pending.lock().unwrap().insert((to, id), tx);
        // Removes the entry however this ends (response, timeout, error, cancellation).
        let _pending = PendingGuard {
            pending: &self.inner.pending,
            key: (to, id),
        };
        self.inner.enqueue_app(to, framed).await?;
        match self.inner.rt.timeout(timeout, rx.recv()).await {
            Some(Ok(bytes)) => {
                postcard::from_bytes(&bytes).map_err(|e| RequestError::Deserialize(e.to_string()))
            }
            _ => Err(RequestError::Timeout(to)),
        }
    }

    /// Answers a request received with [`Transport::recv`]. Responses are not restricted to
    /// members: the requester was one when it asked.
    pub async fn respond<T: Serialize + ?Sized>(
        &self,
        request: &AppMessage,
        response: &T,
    ) -> Result<(), SendError> {
        let Some(id) = request.request else {
            return Err(SendError::NotARequest);
        };
        let framed = encode(AppKind::Response(id), response)?;
        self.inner.enqueue_app(request.from, framed).await
    }

    /// Closes the connection to `peer`, if any (for a member the core has removed). A later
    /// send dials again.
    pub fn disconnect(&self, peer: SocketAddr) {
        let known = self.inner.peers.lock().unwrap().get(&peer).cloned();
        if let Some(link) = known.and_then(|p| p.link()) {
            link.conn.close(
                VarInt::from_u32(close_code::DISCONNECTED),
                b"no longer a member",
            );
        }
    }

    /// The next request from an administrator connection (see [`crate::admin`]); `None`
    /// once the transport is closed.
    pub async fn recv_admin(&self) -> Option<crate::admin::AdminRequest> {
        if self.inner.closing.load(Ordering::Relaxed) {
            return None;
        }
        futures_lite::future::or(async { self.inner.admin.1.recv().await.ok() }, async {
            self.inner.shutdown.listen().await;
            None
        })
        .await
    }

    /// True while a connection to `peer` is established and in use.
    pub fn is_connected(&self, peer: SocketAddr) -> bool {
        let peer = self.inner.peers.lock().unwrap().get(&peer).cloned();
        peer.and_then(|p| p.link())
            .is_some_and(|l| l.conn.close_reason().is_none())
    }

    /// Connections the endpoint holds, including ones still closing (for metrics and tests).
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// Counters of refused input and dropped traffic.
    pub fn counters(&self) -> Counters {
        self.inner.counters.snapshot()
    }

    /// QUIC's measurements of each open connection in use, one per connected peer, in no
    /// particular order.
    pub fn connection_stats(&self) -> Vec<crate::ConnectionStats> {
        let peers: Vec<Arc<Peer>> = self.inner.peers.lock().unwrap().values().cloned().collect();
        peers
            .iter()
            .filter_map(|p| {
                p.open_link()
                    .map(|l| crate::ConnectionStats::of(p.addr, &l.conn))
            })
            .collect()
    }

    /// Closes every connection and the endpoint, and stops the background tasks. The core's
    /// messages already queued (membership lanes) are delivered first, for at most a second;
    /// application messages are refused from the start and those still queued are dropped.
    /// Concurrent calls complete together. Completes when peers have been told
    /// (connections drained, or at most another second; the endpoint then releases its
    /// socket in the background).
    pub async fn close(&self) {
        let inner = &self.inner;
        if inner.flushing.swap(true, Ordering::AcqRel) {
            // Another caller is closing: complete when it does.
            loop {
                let listener = inner.closed.listen();
                if inner.closed_done.load(Ordering::Acquire) {
                    return;
                }
                listener.await;
            }
        }
        // The core's last messages (a leaving node's final gossip) are usually queued just
        // before: deliver the membership lanes first, for at most CLOSE_FLUSH, so peers learn
        // that this node is gone instead of finding it unreachable.
        let peers: Vec<Arc<Peer>> = inner.peers.lock().unwrap().values().cloned().collect();
        for p in &peers {
            p.membership.tx.close();
        }
        // Only peers connected now are waited for: no new dial starts while stopping, and
        // one would outlast the flush anyway.
        let connected: Vec<&Arc<Peer>> = peers.iter().filter(|p| p.link().is_some()).collect();
        let flushed = async {
            for p in connected {
                p.membership_flushed().await;
            }
        };
        if inner.rt.timeout(CLOSE_FLUSH, flushed).await.is_none() {
            tracing::info!(node = %inner.me, "fjell-quic: closing: the last membership messages were not all delivered within {CLOSE_FLUSH:?}");
        }
        inner.closing.store(true, Ordering::Release);
        inner.shutdown.notify(usize::MAX);
        inner
            .endpoint
            .close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        for (_, p) in inner.peers.lock().unwrap().drain() {
            p.shutdown();
        }
        inner.core.0.close();
        inner.app.close();
        inner.pending.lock().unwrap().clear();
        // Every connection has sent its close; draining lasts three probe timeouts, which
        // for a handshake still in progress (a peer that is gone) is seconds of QUIC's
        // initial RTT estimate. The endpoint finishes that in the background.
        if inner
            .rt
            .timeout(CLOSE_DRAIN, inner.endpoint.wait_idle())
            .await
            .is_none()
        {
            tracing::debug!(node = %inner.me, "fjell-quic: closing: connections still draining after {CLOSE_DRAIN:?}; the endpoint finishes in the background");
        }
        inner.closed_done.store(true, Ordering::Release);
        inner.closed.notify(usize::MAX);
    }
}

struct PendingGuard<'a> {
    pending: &'a Pending,
    key: (SocketAddr, u64),
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.lock().unwrap().remove(&self.key);
    }
}

fn node_address(config: &TransportConfig) -> Result<SocketAddr, TransportError> {
    node_address_of(&config.credentials)
}

fn node_address_of(credentials: &Credentials) -> Result<SocketAddr, TransportError> {
    match credentials.identity() {
        PeerIdentity::Node(a) => Ok(*a),
        other => Err(TransportError::NotANode(other.to_string())),
    }
}

fn server_config(
    creds: &Credentials,
    tc: &Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TransportError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(creds.rustls_server_config()?)
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(tc.clone());
    // A connection stays on the path it was admitted on (see `admission`).
    server.migration(false);
    Ok(server)
}

fn client_config(
    creds: &Credentials,
    tc: &Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TransportError> {
    let mut client = creds.quinn_client_config()?;
    client.transport_config(tc.clone());
    Ok(client)
}

/// True when a handshake failed in TLS (QUIC crypto error codes 0x100-0x1ff): no
/// certificate, one from another CA, a wrong ALPN. Timeouts and refusals by a closing
/// endpoint are ordinary dial failures.
fn is_tls_refusal(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => u64::from(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        _ => return false,
    };
    (0x100..0x200).contains(&code)
}

/// Why the peer closed `conn`, if it closed it as a refusal of this node (see
/// [`crate::admission`]).
fn refused_by_peer(conn: &Connection) -> Option<String> {
    let quinn::ConnectionError::ApplicationClosed(c) = conn.close_reason()? else {
        return None;
    };
    let why = match u32::try_from(c.error_code.into_inner()).ok()? {
        close_code::DENIED => "the peer has this node's certificate on its deny list",
        close_code::WRONG_PATH => {
            "the peer saw this node connect from another address than its certificate certifies"
        }
        close_code::IDENTITY_MISMATCH => "the peer refused this node's identity",
        close_code::NOT_A_NODE => "the peer does not take this node's certificate for a node",
        _ => return None,
    };
    Some(why.to_owned())
}

/// `message` as an application frame of `kind`, with its length prefix.
fn encode<T: Serialize + ?Sized>(kind: AppKind, message: &T) -> Result<Vec<u8>, SendError> {
    let mut framed = Vec::new();
    encode_app_framed(&mut framed, kind, message).map_err(serialize_error)?;
    Ok(framed)
}

fn serialize_error(e: postcard::Error) -> SendError {
    SendError::Serialize(e.to_string())
}

impl Inner {
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// [`Transport::close`] has begun: no new application messages, peers or dials; the
    /// membership lanes may still be delivering.
    pub(crate) fn is_stopping(&self) -> bool {
        self.flushing.load(Ordering::Acquire) || self.is_closing()
    }

    /// The peer at `addr`, started on first use.
    pub(crate) fn peer(self: &Arc<Self>, addr: SocketAddr) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap();
        let mut created = false;
        let peer = peers
            .entry(addr)
            .or_insert_with(|| {
                created = true;
                start_peer(self, addr)
            })
            .clone();
        if created && self.is_stopping() {
            // Created while closing: stop its tasks at once so they release the endpoint.
            peer.shutdown();
        }
        peer
    }

    fn check_member(&self, to: SocketAddr) -> Result<(), SendError> {
        if self.is_stopping() {
            Err(SendError::Closed)
        } else if to == self.me {
            Err(SendError::ToSelf(to))
        } else if !self.members.read().unwrap().contains(&to) {
            Err(SendError::UnknownMember(to))
        } else {
            Ok(())
        }
    }

    /// Queues encoded application frames: on the application stream, or on a stream of
    /// their own above the large-message threshold.
    async fn enqueue_app(
        self: &Arc<Self>,
        to: SocketAddr,
        framed: Vec<u8>,
    ) -> Result<(), SendError> {
        let body = framed.len().saturating_sub(LEN_PREFIX);
        if body > self.cfg.max_frame {
            return Err(SendError::TooLarge {
                len: body,
                max: self.cfg.max_frame,
            });
        }
        let peer = self.peer(to);
        peer.want();
        let mut frame = Bytes::from(framed);
        if body > self.cfg.large_message_threshold {
            return peer
                .large
                .tx
                .send(frame)
                .await
                .map_err(|_| SendError::Closed);
        }
        if let Some(link) = peer.open_link() {
            match peer.app_lane.try_write(&peer.app, &link.conn, frame) {
                Ok(()) => return Ok(()),
                Err(f) => frame = f,
            }
        }
        peer.app
            .tx
            .send(frame)
            .await
            .map_err(|_| SendError::Closed)?;
        peer.app_lane.work.notify(1);
        Ok(())
    }

    /// Dials `addr` and checks that the certificate is the node at that address.
    pub(crate) async fn dial(&self, addr: SocketAddr) -> Option<Connection> {
        let (conn, outcome) = self.try_dial(addr).await;
        match &outcome {
            DialOutcome::HandshakeRefused(why) | DialOutcome::Refused(why) => {
                bump(&self.counters.refused_handshakes);
                let why = format!("dialed {addr}: {why}");
                self.refusals.log(self.refusals.refused(
                    std::time::Instant::now(),
                    addr.ip(),
                    &why,
                ));
            }
            DialOutcome::NoAnswer(e) => {
                tracing::debug!(peer = %addr, "fjell-quic: dial failed: {e}");
            }
            // Recorded when the peer's hello arrives: a peer that refuses this node closes the
            // connection first, and its refusal must not be overwritten by each redial.
            DialOutcome::Connected | DialOutcome::Dialing => return conn,
        }
        self.dials.lock().unwrap().insert(addr, outcome);
        conn
    }

    async fn try_dial(&self, addr: SocketAddr) -> (Option<Connection>, DialOutcome) {
        // A handshake with nothing at the other end takes the whole idle timeout to fail.
        self.dials
            .lock()
            .unwrap()
            .entry(addr)
            .or_insert(DialOutcome::Dialing);
        let client = self.client.read().unwrap().clone();
        let connecting = match self
            .endpoint
            .connect_with(client, addr, &addr.ip().to_string())
        {
            Ok(c) => c,
            Err(e) => return (None, DialOutcome::NoAnswer(e.to_string())),
        };
        let conn = match connecting.await {
            Ok(c) => c,
            Err(e) if is_tls_refusal(&e) => {
                return (
                    None,
                    DialOutcome::HandshakeRefused(printable(&e.to_string())),
                )
            }
            Err(e) => return (None, DialOutcome::NoAnswer(printable(&e.to_string()))),
        };
        let admitted = tls::peer_identity(&conn)
            .map_err(|e| Refusal::NoIdentity(e.to_string()))
            .and_then(|(id, fp)| self.gate.dialed(addr, &id, &fp).map(|()| fp));
        match admitted {
            Ok(fp) if self.register(&conn, fp) => (Some(conn), DialOutcome::Connected),
            Ok(fp) => (None, DialOutcome::Refused(Refusal::Denied(fp).to_string())),
            Err(r) => {
                conn.close(VarInt::from_u32(r.close_code()), b"refused");
                (None, DialOutcome::Refused(r.to_string()))
            }
        }
    }

    /// Records an admitted connection for [`Transport::reload`]. A deny list replaced while
    /// the connection was being admitted is checked once more here, so no admitted
    /// connection escapes a reload. False if the connection was closed instead.
    fn register(&self, conn: &Connection, fp: Fingerprint) -> bool {
        let mut admitted = self.admitted.lock().unwrap();
        if self.gate.is_denied(&fp) {
            drop(admitted);
            bump(&self.counters.refused_handshakes);
            let why = Refusal::Denied(fp).to_string();
            let peer = conn.remote_address().ip();
            self.refusals
                .log(self.refusals.refused(std::time::Instant::now(), peer, &why));
            conn.close(VarInt::from_u32(close_code::DENIED), b"certificate denied");
            return false;
        }
        admitted.retain(|_, (c, _)| c.close_reason().is_none());
        admitted.insert(conn.stable_id(), (conn.clone(), fp));
        true
    }

    /// Logs the summaries of refusals once each interval ends.
    async fn summarise_refusals(self: Arc<Self>) {
        while !self.is_closing() {
            let shutdown = self.shutdown.listen();
            if self.is_closing() {
                break;
            }
            futures_lite::future::or(self.rt.sleep(crate::refusals::INTERVAL / 4), shutdown).await;
            self.refusals
                .log(self.refusals.tick(std::time::Instant::now()));
        }
    }

    async fn accept_loop(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let inner = self.clone();
            let source = incoming.remote_address();
            self.rt.spawn(async move {
                let refused = |why: &dyn std::fmt::Display| {
                    bump(&inner.counters.refused_handshakes);
                    let why = why.to_string();
                    inner.refusals.log(inner.refusals.refused(
                        std::time::Instant::now(),
                        source.ip(),
                        &why,
                    ));
                };
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) if is_tls_refusal(&e) => return refused(&e),
                    Err(e) => {
                        tracing::debug!("fjell-quic: incoming connection failed: {e}");
                        return;
                    }
                };
                let admitted = tls::peer_identity(&conn)
                    .map_err(|e| Refusal::NoIdentity(e.to_string()))
                    .and_then(|(id, fp)| inner.gate.inbound(&id, &fp, source).map(|()| (id, fp)));
                match admitted {
                    Ok((_, fp)) if !inner.register(&conn, fp) => {}
                    Ok((PeerIdentity::Node(addr), _)) => {
                        inner.run_connection(addr, conn, addr).await
                    }
                    Ok((PeerIdentity::Admin(name), _)) => {
                        crate::admin::serve(name, conn, inner.admin.0.clone(), inner.rt.clone())
                            .await
                    }
                    Err(r) => {
                        refused(&r);
                        conn.close(VarInt::from_u32(r.close_code()), b"refused");
                    }
                }
            });
        }
    }

    /// Serves one established connection to the node at `peer` (dialed by `dialer`): sends
    /// the hello, reads datagrams and streams until the connection closes.
    pub(crate) async fn run_connection(
        self: Arc<Self>,
        peer: SocketAddr,
        conn: Connection,
        dialer: SocketAddr,
    ) {
        bump(&self.counters.connections);
        let hello = Frame::Hello {
            instance: self.instance,
        };
        let c = conn.clone();
        self.rt.spawn(async move {
            if let Ok(mut s) = c.open_uni().await {
                let mut bytes = crate::frame::stream_header(Lane::Membership).to_vec();
                hello.encode_framed(&mut bytes);
                if s.write_all(&bytes).await.is_ok() {
                    let _ = s.finish();
                }
            }
        });
        self.rt
            .spawn(self.clone().read_datagrams(peer, conn.clone()));
        while let Ok(s) = conn.accept_uni().await {
            self.rt
                .spawn(self.clone().read_stream(peer, conn.clone(), dialer, s));
        }
        if let Some(why) = refused_by_peer(&conn) {
            self.dials
                .lock()
                .unwrap()
                .insert(peer, DialOutcome::Refused(why));
        }
        let known = self.peers.lock().unwrap().get(&peer).cloned();
        if let Some(p) = known {
            p.lost(&conn);
        }
    }

    async fn read_datagrams(self: Arc<Self>, from: SocketAddr, conn: Connection) {
        while let Ok(d) = conn.read_datagram().await {
            match Frame::decode_datagram(d) {
                Ok(Frame::Core {
                    class: DeliveryClass::Heartbeat,
                    bytes,
                }) => self.deliver_heartbeat(from, bytes),
                Ok(_) => {
                    return self.refuse(
                        &conn,
                        from,
                        FrameError::Malformed("only heartbeats travel as datagrams"),
                    )
                }
                Err(e) => return self.refuse(&conn, from, e),
            }
        }
    }

    async fn read_stream(
        self: Arc<Self>,
        from: SocketAddr,
        conn: Connection,
        dialer: SocketAddr,
        mut s: RecvStream,
    ) {
        let mut dec = FrameDecoder::new(self.cfg.max_frame);
        // An application stream's instance and number, from its first frame, and its peer.
        let mut app_stream: Option<(u64, u64, Arc<Peer>)> = None;
        // The application messages of one read, handed over together.
        let mut batch = Vec::new();
        loop {
            let chunk = match s.read_chunk(256 * 1024, true).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    if let Err(e) = dec.finish() {
                        self.refuse(&conn, from, e);
                    }
                    return;
                }
                // Reset by the peer or the connection closed: nothing to report.
                Err(_) => return,
            };
            dec.feed_bytes(chunk.bytes);
            // Held while the read's messages are handed over: a newer stream of this peer
            // cannot deliver in between. Taken once per read, not per frame.
            let mut order = None;
            loop {
                // Application messages, the many, in a tight loop of their own once the
                // stream's header and number have been read.
                let app = match (dec.lane(), &app_stream) {
                    (Some(Lane::App), Some((instance, number, peer))) => {
                        if order.is_none() {
                            let mut o = peer.app_order.lock_arc().await;
                            if !o.admit(*instance, *number) {
                                // A later connection's stream has delivered: what is left
                                // here is dropped, never delivered late.
                                bump(&self.counters.stale_app_streams);
                                return;
                            }
                            order = Some(o);
                        }
                        true
                    }
                    (lane, _) => lane == Some(Lane::LargeApp),
                };
                if app {
                    if let Err(e) = self.collect_all(from, &mut dec, &mut batch) {
                        return self.refuse(&conn, from, e);
                    }
                    break;
                }
                let f = match dec.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return self.refuse(&conn, from, e),
                };
                let lane = dec.lane().unwrap_or(Lane::Membership);
                let delivered = match (lane, &app_stream, f) {
                    (Lane::App, None, Frame::AppStream { instance, number }) => {
                        app_stream = Some((instance, number, self.peer(from)));
                        Ok(true)
                    }
                    (Lane::App, None, _) => Err(FrameError::Malformed(
                        "an application stream opens with its number",
                    )),
                    (_, _, Frame::AppStream { .. }) => Err(FrameError::Malformed(NUMBER_FIRST)),
                    // The first frame of a large message's stream, read with its header.
                    (Lane::LargeApp, _, f) => self.collect(from, f, &mut batch).map(|()| true),
                    (_, _, f) => self.deliver(from, &conn, dialer, lane, f).await,
                };
                match delivered {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => return self.refuse(&conn, from, e),
                }
            }
            if !batch.is_empty() && !self.app.push_all(&mut batch).await {
                return; // closing
            }
        }
    }

    /// Takes every whole frame `dec` holds, all application frames (see
    /// [`Inner::collect`]).
    fn collect_all(
        &self,
        from: SocketAddr,
        dec: &mut FrameDecoder,
        batch: &mut Vec<AppMessage>,
    ) -> Result<(), FrameError> {
        while let Some(frame) = dec.next_frame()? {
            self.collect(from, frame, batch)?;
        }
        Ok(())
    }

    /// Takes an application frame: a message or request into `batch` (for the inbox), a
    /// response straight to the request waiting for it.
    #[inline]
    fn collect(
        &self,
        from: SocketAddr,
        frame: Frame,
        batch: &mut Vec<AppMessage>,
    ) -> Result<(), FrameError> {
        let (payload, request) = match frame {
            Frame::App { payload } => (payload, None),
            Frame::Request { id, payload } => (payload, Some(id)),
            Frame::Response { id, payload } => {
                let waiter = self.pending.lock().unwrap().remove(&(from, id));
                // No waiter: the request timed out; the late response is dropped.
                if let Some(w) = waiter {
                    let _ = w.try_send(payload);
                }
                return Ok(());
            }
            Frame::AppStream { .. } => return Err(FrameError::Malformed(NUMBER_FIRST)),
            _ => {
                return Err(FrameError::Malformed(
                    "frame kind does not belong on this lane",
                ))
            }
        };
        batch.push(AppMessage {
            from,
            payload,
            request,
        });
        Ok(())
    }

    /// Hands a frame to its consumer; `Ok(false)` once the transport is closing.
    async fn deliver(
        self: &Arc<Self>,
        from: SocketAddr,
        conn: &Connection,
        dialer: SocketAddr,
        lane: Lane,
        frame: Frame,
    ) -> Result<bool, FrameError> {
        let sent = match (lane, frame) {
            (Lane::Membership, Frame::Hello { instance }) => {
                self.dials
                    .lock()
                    .unwrap()
                    .insert(from, DialOutcome::Connected);
                let link = crate::peer::Link {
                    conn: conn.clone(),
                    dialer,
                    instance,
                };
                let retired =
                    self.peer(from)
                        .adopt(self.me, &self.counters.duplicates_closed, link);
                match retired {
                    Some(r) if r.graceful => {
                        let rt = self.rt.clone();
                        self.rt.spawn(async move {
                            rt.sleep(crate::peer::DUPLICATE_GRACE).await;
                            r.close();
                        });
                    }
                    Some(r) => r.close(),
                    None => {}
                }
                true
            }
            (Lane::Membership, Frame::Core { class, bytes })
                if class != DeliveryClass::Heartbeat =>
            {
                self.core
                    .0
                    .send(CoreMessage { from, class, bytes })
                    .await
                    .is_ok()
            }
            (
                Lane::Heartbeat,
                Frame::Core {
                    class: DeliveryClass::Heartbeat,
                    bytes,
                },
            ) => {
                self.deliver_heartbeat(from, bytes);
                true
            }
            _ => {
                return Err(FrameError::Malformed(
                    "frame kind does not belong on this lane",
                ))
            }
        };
        Ok(sent)
    }

    fn deliver_heartbeat(&self, from: SocketAddr, bytes: Bytes) {
        let m = CoreMessage {
            from,
            class: DeliveryClass::Heartbeat,
            bytes,
        };
        // Never wait for the caller here: a stale heartbeat is worse than none.
        if self.core.0.try_send(m).is_err() {
            bump(&self.counters.heartbeats_dropped);
        }
    }

    /// Closes a connection that sent bad input, with a counter and a log line (aggregated
    /// per peer: see [`crate::refusals`]).
    fn refuse(&self, conn: &Connection, from: SocketAddr, e: FrameError) {
        let why = BadInput::of(&e);
        self.counters.bad_input(why);
        let text = format!("bad input from {from} ({why:?}): {e}");
        self.refusals.log(self.refusals.refused(
            std::time::Instant::now(),
            conn.remote_address().ip(),
            &text,
        ));
        conn.close(VarInt::from_u32(why.close_code()), e.to_string().as_bytes());
    }
}

// The tasks of one peer (crate::peer): a writer per lane, a heartbeat writer, a dialer.

/// Creates the peer at `addr` and starts its writer and dialer tasks.
fn start_peer(inner: &Arc<Inner>, addr: SocketAddr) -> Arc<Peer> {
    let peer = Arc::new(Peer::new(addr, &inner.cfg, inner.instance));
    for lane in [Lane::Membership, Lane::LargeApp] {
        inner
            .rt
            .spawn(write_lane(inner.clone(), peer.clone(), lane));
    }
    inner.rt.spawn(write_app_lane(inner.clone(), peer.clone()));
    inner
        .rt
        .spawn(write_heartbeats(inner.clone(), peer.clone()));
    inner.rt.spawn(dial_loop(inner.clone(), peer.clone()));
    peer
}

/// Adds what is already queued on `rx` to `batch`, up to [`BATCH`]: one stream write takes
/// whatever accumulated while the last one was in flight.
fn take_queued<T>(rx: &Receiver<T>, batch: &mut Vec<T>) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(b) => batch.push(b),
            Err(_) => break,
        }
    }
}

async fn write_lane(inner: Arc<Inner>, peer: Arc<Peer>, lane: Lane) {
    /// Tells [`Transport::close`] the membership writer has ended, however it ends.
    struct Ended<'a>(&'a Peer, Lane);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            if self.1 == Lane::Membership {
                self.0.membership_ended();
            }
        }
    }
    let _ended = Ended(&peer, lane);
    let rx = match lane {
        Lane::Membership => peer.membership.rx.clone(),
        _ => peer.large.rx.clone(),
    };
    let mut stream = LaneStream::new(lane, inner.instance);
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv().await {
        batch.push(first);
        let Some(link) = peer.wait_link(&inner.closing).await else {
            return;
        };
        if lane == Lane::LargeApp {
            // A stream of its own, finished after the message.
            if let Some(mut s) = open(&link.conn, lane).await {
                if s.write_all_chunks(&mut batch).await.is_ok() {
                    let _ = s.finish();
                }
            }
        } else {
            take_queued(&rx, &mut batch);
            stream.write(&link, &mut batch).await;
        }
        batch.clear();
    }
    // The queue was closed (the transport is closing) and is empty: deliver the last words.
    stream.finish().await;
}

/// Writes what senders queued on the application lane, and the tail of a frame a sender
/// could only partly write (see [`crate::peer::AppLane`]).
async fn write_app_lane(inner: Arc<Inner>, peer: Arc<Peer>) {
    let lane = &peer.app_lane;
    let rx = peer.app.rx.clone();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        loop {
            let listener = lane.work.listen();
            if lane.has_tail() || !rx.is_empty() {
                break;
            }
            if rx.is_closed() {
                let (mut stream, _) = lane.take();
                return stream.finish().await;
            }
            listener.await;
        }
        let Some(link) = peer.wait_link(&inner.closing).await else {
            return;
        };
        // Taken before the queue is read: from now until it is put back, senders queue
        // behind what this batch takes.
        let (mut stream, tail) = lane.take();
        if let Some((on, rest)) = tail {
            // Only on the stream its frame began on; with another connection that frame is
            // lost, as any on a broken connection.
            if stream.open_on() == Some(on) && link.conn.stable_id() == on {
                batch.push(rest);
            }
        }
        take_queued(&rx, &mut batch);
        stream.write(&link, &mut batch).await;
        batch.clear();
        lane.put_back(stream);
    }
}

/// Sends queued heartbeats once a connection exists: as datagrams, or on the heartbeat
/// stream when the peer cannot take datagrams.
async fn write_heartbeats(inner: Arc<Inner>, peer: Arc<Peer>) {
    let rx = peer.heartbeat.rx.clone();
    let mut stream = LaneStream::new(Lane::Heartbeat, inner.instance);
    while let Ok(bytes) = rx.recv().await {
        let Some(link) = peer.wait_link(&inner.closing).await else {
            return;
        };
        let frame = Frame::Core {
            class: fjell_core::DeliveryClass::Heartbeat,
            bytes,
        };
        if !send_datagram(&link.conn, &frame) {
            let mut framed = Vec::with_capacity(frame.body_len() + 4);
            frame.encode_framed(&mut framed);
            stream.write(&link, &mut [Bytes::from(framed)]).await;
        }
    }
}

/// Dials the peer whenever there is no connection and something waits to be sent, with
/// exponential backoff between failed attempts.
async fn dial_loop(inner: Arc<Inner>, peer: Arc<Peer>) {
    let mut backoff = inner.cfg.reconnect_min;
    loop {
        loop {
            // No new connection once closing has begun.
            if inner.is_stopping() {
                return;
            }
            let listener = peer.dial_event.listen();
            if peer.link().is_none() && peer.wanted.swap(false, Ordering::AcqRel) {
                break;
            }
            listener.await;
        }
        match inner.dial(peer.addr).await {
            Some(conn) => {
                backoff = inner.cfg.reconnect_min;
                let closed = conn.clone();
                inner
                    .rt
                    .spawn(inner.clone().run_connection(peer.addr, conn, inner.me));
                closed.closed().await;
            }
            None => {
                // Sleep out the backoff, unless the transport closes meanwhile (a task
                // asleep here would keep the endpoint, and its port, for seconds).
                let shutdown = inner.shutdown.listen();
                if inner.is_closing() {
                    return;
                }
                futures_lite::future::or(inner.rt.sleep(backoff), shutdown).await;
                backoff = (backoff * 2).min(inner.cfg.reconnect_max);
                if !peer.idle() {
                    peer.wanted.store(true, Ordering::Release);
                }
            }
        }
    }
}
