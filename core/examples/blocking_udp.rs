//! fjell-core without an executor: one node over a std `UdpSocket` in a blocking loop.
//!
//! The template for a device with threads but no async runtime (or, with a different socket
//! and clock, no OS at all). The loop follows fjell-core's call order: after every input —
//! a datagram, a timer expiry or a lease answer — `Node::drain` hands the outputs to a `Sink`
//! (messages to the socket, lease requests to a `Lease`, events to a callback), then the loop
//! blocks on the socket no longer than `poll_timeout` says.
//!
//! Plain UDP is neither encrypted nor authenticated: the source address of a datagram is
//! taken as the sender, so use it only on a network you trust (the QUIC transport is the
//! authenticated one). Messages of a `DeviceNode` fit in one datagram.
//!
//! Run three in three terminals (the same seed list, in the same order, everywhere):
//!
//! ```sh
//! cargo run -p fjell-core --example blocking_udp -- 127.0.0.1:7001 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! cargo run -p fjell-core --example blocking_udp -- 127.0.0.1:7002 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! cargo run -p fjell-core --example blocking_udp -- 127.0.0.1:7003 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! ```

// Also compiled into this crate's tests (`tests/blocking_udp.rs`), which use `run_node` only.
#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fjell_core::{
    Config, DeviceNode, Event, Instant, Lease, LeaseRequest, MemoryLease, Sink, Transmit,
    UniqueAddress,
};

/// Longest a blocking read waits before `stop` is checked again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Where the node's outputs go after each input.
struct Outputs<'a, L> {
    socket: &'a UdpSocket,
    me: UniqueAddress,
    lease: &'a mut L,
    /// Events wait here until `drain` returns, so the callback can look at the node.
    events: Vec<Event>,
}

impl<L: Lease> Sink for Outputs<'_, L> {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        // Best effort, like the network: the core resends what matters.
        let _ = self.socket.send_to(bytes, t.destination);
    }

    fn lease(&mut self, req: LeaseRequest, now: Instant) -> Option<bool> {
        // Only the lease-majority strategy asks. This lease answers at once; one that answers
        // later (over the network) would return `None` here and call `Node::handle_lease`
        // when the answer comes, followed by `drain`.
        self.lease.answer(req, &self.me, now)
    }

    fn event(&mut self, e: Event) {
        self.events.push(e);
    }
}

/// Runs a node on `socket` that joins `seeds`, until `stop` is set; `on_event` sees every
/// event with the node's state after it. With lease-majority downing in `config`, `lease`
/// answers the node's lease requests.
pub fn run_node(
    socket: UdpSocket,
    config: Config,
    seeds: &[SocketAddr],
    uid: u64,
    lease: &mut impl Lease,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&DeviceNode, &Event),
) -> io::Result<()> {
    let origin = std::time::Instant::now();
    // The core's clock: microseconds since this loop started (any monotonic origin works).
    let now = || Instant::from_micros(origin.elapsed().as_micros() as u64);
    let addr = socket.local_addr()?;
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    // A DeviceNode is under 16 KiB: fine on a thread's stack.
    let mut node = DeviceNode::new(
        config,
        UniqueAddress::new(addr, uid),
        uid.rotate_left(17) ^ 0x5eed,
    )
    .map_err(|e| invalid(&e))?;
    node.join_seed_nodes(now(), seeds)
        .map_err(|e| invalid(&e))?;
    let mut out = vec![0u8; DeviceNode::MAX_MESSAGE_LEN];
    let mut input = vec![0u8; DeviceNode::MAX_MESSAGE_LEN];
    let mut sink = Outputs {
        socket: &socket,
        me: node.address(),
        lease,
        events: Vec::new(),
    };
    loop {
        // Outputs of the previous input.
        node.drain(now(), &mut out, &mut sink);
        for e in sink.events.drain(..) {
            on_event(&node, &e);
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // The next input: a due timer, else a datagram or the time the core asked for.
        let at = now();
        if node.poll_timeout().is_some_and(|t| t <= at) {
            node.handle_timeout(at);
            continue;
        }
        let wait = node
            .poll_timeout()
            .map_or(STOP_CHECK, |t| t - at)
            .clamp(Duration::from_millis(1), STOP_CHECK);
        socket.set_read_timeout(Some(wait))?;
        match socket.recv_from(&mut input) {
            Ok((len, from)) => {
                // A refused message (garbage, a spoofed sender) changes nothing.
                let _ = node.handle_message(now(), from, &input[..len]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // ICMP port unreachable from a peer that is not up yet, on some platforms.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
}

fn main() -> io::Result<()> {
    let args: Vec<SocketAddr> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are IP:port addresses"))
        .collect();
    let Some((me, seeds)) = args.split_first() else {
        eprintln!("usage: blocking_udp <bind address> <seed address>...");
        std::process::exit(2);
    };
    let socket = UdpSocket::bind(me)?;
    let uid = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let stop = AtomicBool::new(false);
    // The default downing (keep-majority) never asks for a lease. With lease-majority, every
    // node must ask one shared lease (a database row, a Kubernetes lease) behind the `Lease`
    // trait: a `MemoryLease` lives in this process only and would grant every node.
    let mut lease = MemoryLease::new(Duration::from_secs(60));
    run_node(
        socket,
        Config::default(),
        seeds,
        uid,
        &mut lease,
        &stop,
        |node, event| {
            println!("{event:?} ({} members)", node.members().len());
        },
    )
}
