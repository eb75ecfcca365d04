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
        .with_max_level(tracing::Level::DEBUG)
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
    log();
    let (socket, addr) = free_socket();
    transport_on(ca.node(addr).unwrap(), socket)
}

/// Two transports that list each other as members.
pub fn pair(ca: &DevCa) -> (Transport, Transport) {
    let (a, b) = (node_transport(ca), node_transport(ca));
    a.set_members([b.address()]);
    b.set_members([a.address()]);
    (a, b)
}

/// A raw QUIC connection to `to` with client configuration `cfg` (for peers that misbehave).
pub async fn raw_connect(
    cfg: quinn::ClientConfig,
    to: SocketAddr,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.connect_with(cfg, to, "127.0.0.1").unwrap().await
}

pub fn transport_on(creds: Credentials, socket: UdpSocket) -> Transport {
    Transport::with_socket(TransportConfig::new(creds), socket).unwrap()
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

/// Starts a core node on `transport` joining through `seeds`.
pub fn drive(transport: Transport, uid: u64, seeds: &[SocketAddr]) -> Driven {
    let origin = std::time::Instant::now();
    let mut node =
        DeviceNode::new(Config::default(), transport.address(), uid, uid * 7 + 1).unwrap();
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
                while let Some(tx) = node.poll_transmit(at, &mut buf) {
                    let _ = t.send_transmit(&tx, &buf[..tx.len]);
                }
                while node.poll_event().is_some() {}
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
