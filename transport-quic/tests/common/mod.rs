//! Test scaffolding: nodes on loopback, a minimal core driver, waiting with deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjell_core::{Config, DeviceNode, Instant};
use fjell_quic::{Credentials, DevCa, Transport, TransportConfig};

/// Shows the transport's log lines in failing tests.
pub fn log() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

/// A UDP socket on a free loopback port, and its address (for the node's certificate).
pub fn free_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// A transport on a fresh loopback port with a certificate from `ca`.
pub fn node_transport(ca: &DevCa) -> Transport {
    node_transport_with(ca, |_| {})
}

/// Like [`node_transport`], with settings changed by `tweak`.
pub fn node_transport_with(ca: &DevCa, tweak: impl FnOnce(&mut TransportConfig)) -> Transport {
    log();
    let (socket, addr) = free_socket();
    let mut cfg = TransportConfig::new(ca.node(addr).unwrap());
    tweak(&mut cfg);
    Transport::with_socket(cfg, socket, Arc::new(quinn::SmolRuntime)).unwrap()
}

/// Two transports that list each other as members, and the second one's credentials.
pub fn pair_with_credentials(ca: &DevCa) -> (Transport, Transport, Credentials) {
    let a = node_transport(ca);
    let (socket, b_addr) = free_socket();
    let b_creds = ca.node(b_addr).unwrap();
    let b = transport_on(b_creds.clone(), socket);
    a.set_members([b.address()]);
    b.set_members([a.address()]);
    (a, b, b_creds)
}

/// Two transports that list each other as members.
pub fn pair(ca: &DevCa) -> (Transport, Transport) {
    let (a, b) = (node_transport(ca), node_transport(ca));
    a.set_members([b.address()]);
    b.set_members([a.address()]);
    (a, b)
}

/// A raw QUIC connection to `to` with client configuration `cfg` from a fresh port (for
/// peers that misbehave).
pub async fn raw_connect(
    cfg: quinn::ClientConfig,
    to: SocketAddr,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    raw_connect_from(UdpSocket::bind("127.0.0.1:0").unwrap(), cfg, to).await
}

/// A raw QUIC connection to `to` from `socket`: the path a node certified for the socket's
/// address would use.
pub async fn raw_connect_from(
    socket: UdpSocket,
    cfg: quinn::ClientConfig,
    to: SocketAddr,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::SmolRuntime),
    )
    .unwrap();
    endpoint.connect_with(cfg, to, "127.0.0.1").unwrap().await
}

pub fn transport_on(creds: Credentials, socket: UdpSocket) -> Transport {
    Transport::with_socket(
        TransportConfig::new(creds),
        socket,
        Arc::new(quinn::SmolRuntime),
    )
    .unwrap()
}

/// `f`, or a panic naming `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    let deadline = async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("timed out after {secs} s waiting for {what}");
    };
    futures_lite::future::or(f, deadline).await
}

/// Waits until `cond` holds, re-checking every 10 ms (for state with no event to wait on,
/// such as counters), at most `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    within(secs, what, async {
        while !cond() {
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A core node driven over a transport by a background task (the real driver lives in the
/// runtime adapters; this is the smallest loop that follows the core's call order).
pub struct Driven {
    pub node: Arc<Mutex<DeviceNode>>,
    pub transport: Transport,
    /// Receives a unit after every input the node handled.
    pub ticks: async_channel::Receiver<()>,
    origin: std::time::Instant,
}

impl Driven {
    pub fn now(&self) -> Instant {
        now(self.origin)
    }

    /// Waits until `cond(node)` holds, checking after every input the node handles.
    pub async fn until(&self, secs: u64, what: &str, cond: impl Fn(&DeviceNode) -> bool) {
        within(secs, what, async {
            loop {
                if cond(&self.node.lock().unwrap()) {
                    return;
                }
                let _ = self.ticks.recv().await;
            }
        })
        .await
    }
}

fn now(origin: std::time::Instant) -> Instant {
    Instant::from_micros(origin.elapsed().as_micros() as u64)
}

/// A core node's outputs: messages to the transport; events and lease requests ignored.
struct ToTransport<'a>(&'a Transport);

impl fjell_core::Sink for ToTransport<'_> {
    fn transmit(&mut self, t: &fjell_core::Transmit, bytes: &[u8]) {
        let _ = self.0.send_transmit(t, bytes);
    }
    fn lease(&mut self, _: fjell_core::LeaseRequest, _: Instant) -> Option<bool> {
        None
    }
    fn event(&mut self, _: fjell_core::Event) {}
}

/// Starts a core node on `transport` joining through `seeds`.
pub fn drive(transport: Transport, uid: u64, seeds: &[SocketAddr]) -> Driven {
    let origin = std::time::Instant::now();
    let mut node = DeviceNode::new(
        Config::default(),
        fjell_core::UniqueAddress::new(transport.address(), uid),
        uid * 7 + 1,
    )
    .unwrap();
    node.join_seed_nodes(now(origin), seeds).unwrap();
    let node = Arc::new(Mutex::new(node));
    let (tick_tx, ticks) = async_channel::bounded(1);
    let (n, t) = (node.clone(), transport.clone());
    smol::spawn(async move {
        let mut buf = vec![0u8; DeviceNode::MAX_MESSAGE_LEN];
        loop {
            let deadline = {
                let mut node = n.lock().unwrap();
                let at = now(origin);
                if node.poll_timeout().is_some_and(|d| d <= at) {
                    node.handle_timeout(at);
                }
                node.drain(at, &mut buf, &mut ToTransport(&t));
                t.set_members(node.members().iter().map(|m| m.address.socket_addr()));
                node.poll_timeout()
            };
            let _ = tick_tx.try_send(());
            let wait = deadline.map_or(Duration::from_secs(1), |d| d - now(origin));
            let timer = async {
                smol::Timer::after(wait).await;
                None
            };
            match futures_lite::future::or(async { Some(t.recv_core().await) }, timer).await {
                Some(Some(m)) => {
                    let _ = n
                        .lock()
                        .unwrap()
                        .handle_message(now(origin), m.from, &m.bytes);
                }
                Some(None) => return,
                _ => {}
            }
        }
    })
    .detach();
    Driven {
        node,
        transport,
        ticks,
        origin,
    }
}

/// Two core nodes over QUIC on loopback, both seeing both Up, their heartbeats answered.
pub async fn two_nodes_up(ca: &DevCa) -> (Driven, Driven) {
    two_nodes_up_on(node_transport(ca), node_transport(ca)).await
}

/// Like [`two_nodes_up`], on the given transports.
pub async fn two_nodes_up_on(ta: Transport, tb: Transport) -> (Driven, Driven) {
    let seeds = [ta.address(), tb.address()];
    let (a, b) = (drive(ta, 1, &seeds), drive(tb, 2, &seeds));
    for n in [&a, &b] {
        n.until(20, "two members Up, heartbeats answered", |node| {
            node.members().len() == 2
                && node
                    .members()
                    .iter()
                    .all(|m| m.status == fjell_core::MemberStatus::Up)
                && node.monitored(n.now()).any(|s| s.rtt.is_some())
        })
        .await;
    }
    (a, b)
}

/// The phi `n` has of the member at `peer` (0 when it does not monitor it).
pub fn phi_of(n: &Driven, peer: SocketAddr) -> f64 {
    let now = n.now();
    let node = n.node.lock().unwrap();
    let phi = node
        .monitored(now)
        .filter(|s| s.subject.socket_addr() == peer)
        .map(|s| s.phi)
        .fold(0.0, f64::max);
    phi
}

/// What [`phi_under_load`] saw.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    /// Application messages the receiver got.
    pub delivered: u64,
    /// Payload bytes the receiver got.
    pub bytes: u64,
    /// Highest phi either node had of the other, sampled every 100 ms.
    pub max_phi: f64,
    /// How long the load ran.
    pub elapsed: Duration,
}

/// Sends `size`-byte application messages from `a` to `b` back to back for `dur` (in
/// batches of `batch` when `batch > 1`), sampling the phi each node has of the other.
pub async fn phi_under_load(
    a: &Driven,
    b: &Driven,
    dur: Duration,
    size: usize,
    batch: usize,
) -> LoadReport {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let (ta, tb) = (a.transport.clone(), b.transport.clone());
    // Start from an empty inbox (earlier traffic is not this load's).
    while tb.try_recv().is_some() {}
    let delivered = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = delivered.clone();
    let receiver = smol::spawn(async move {
        while let Some(m) = tb.recv().await {
            // Smaller messages still in flight from earlier traffic are not this load's.
            if m.payload.len() >= size {
                counter.0.fetch_add(1, Relaxed);
                counter.1.fetch_add(m.payload.len() as u64, Relaxed);
            }
        }
    });
    let to = b.transport.address();
    let halt = stop.clone();
    let sender = smol::spawn(async move {
        let payload = serde_bytes_vec(size);
        let many = vec![payload.clone(); batch.max(1)];
        while !halt.load(Relaxed) {
            let r = if batch > 1 {
                ta.send_batch(to, &many).await
            } else {
                ta.send(to, &payload).await
            };
            r.unwrap();
            // Let the nodes' drivers run between sends, as any fair task would.
            futures_lite::future::yield_now().await;
        }
    });
    let start = std::time::Instant::now();
    let mut max_phi: f64 = 0.0;
    while start.elapsed() < dur {
        smol::Timer::after(Duration::from_millis(100)).await;
        max_phi = max_phi
            .max(phi_of(a, b.transport.address()))
            .max(phi_of(b, a.transport.address()));
    }
    stop.store(true, Relaxed);
    sender.await;
    let elapsed = start.elapsed();
    drop(receiver);
    LoadReport {
        delivered: delivered.0.load(Relaxed),
        bytes: delivered.1.load(Relaxed),
        max_phi,
        elapsed,
    }
}

/// An application payload of `size` bytes.
pub fn serde_bytes_vec(size: usize) -> Blob {
    Blob((0..size).map(|i| i as u8).collect())
}

/// Bytes serialized as one byte string (serde's `Vec<u8>` goes element by element, which
/// in a debug build costs more than the transport itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Blob(pub Vec<u8>);

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}
