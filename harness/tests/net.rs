//! The harness network on a real kernel: namespaces, TUN devices, the hub and its
//! faults. Needs root and /dev/net/tun; every test prints why and passes without
//! checking anything when they are missing.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fjell_harness::net::{
    cleanup_stale, list_namespaces, netem_available, LinkRule, NetSpec, Network, PREFIX_ROOT,
};

/// Each socket gets a port of its own: a socket just closed can still be open in a
/// child that another test forked and has not yet exec'd, so rebinding the same
/// port right away fails now and then with "address in use".
static NEXT_PORT: AtomicU16 = AtomicU16::new(7000);

fn network(nodes: usize, ipv6: bool, seed: u64) -> Network {
    let mut spec = NetSpec::new(nodes);
    spec.ipv6 = ipv6;
    spec.seed = seed;
    Network::create(spec).expect("create network")
}

/// A UDP socket bound to node `i`'s address, created inside its namespace.
fn bind(net: &Network, i: usize) -> UdpSocket {
    let addr = SocketAddr::new(net.addr(i), NEXT_PORT.fetch_add(1, Ordering::Relaxed));
    let sock = net
        .run_in(i, move || UdpSocket::bind(addr))
        .expect("enter namespace")
        .expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    // Bursts of small datagrams (a delayed batch released at once, or a receiver that
    // is not scheduled for a while on a loaded machine) overflow the default receive
    // buffer; the tests count datagrams, so the socket must not drop any.
    let size: libc::c_int = 8 << 20;
    // SAFETY: passes a live c_int of the stated size to setsockopt.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    sock
}

fn addr_of(sock: &UdpSocket) -> SocketAddr {
    sock.local_addr().expect("local address")
}

/// Receives on `sock`, retrying when a signal interrupts the wait (the socket's
/// timeout still bounds each attempt).
fn recv(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match sock.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Sends `msg` from `a` to `b`; true if `b` receives exactly it within `wait`.
fn arrives(a: &UdpSocket, b: &UdpSocket, msg: &[u8], wait: Duration) -> bool {
    b.set_read_timeout(Some(wait)).expect("timeout");
    a.send_to(msg, addr_of(b)).expect("send");
    let mut buf = [0u8; 1500];
    loop {
        match recv(b, &mut buf) {
            // Skip stragglers of earlier checks.
            Ok((len, _)) if &buf[..len] != msg => continue,
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
}

/// `msg` gets from `a` to `b` (generous wait: the machine may be busy).
fn delivered(a: &UdpSocket, b: &UdpSocket, msg: &[u8]) -> bool {
    arrives(a, b, msg, Duration::from_secs(3))
}

/// `msg` does not get from `a` to `b` within 300 ms. A dropped packet is also
/// counted by the hub, which the tests check too, so the short wait cannot hide a
/// packet that merely came late.
fn dropped(a: &UdpSocket, b: &UdpSocket, msg: &[u8]) -> bool {
    !arrives(a, b, msg, Duration::from_millis(300))
}

fn exchange_both_ways(ipv6: bool) {
    let net = network(2, ipv6, 1);
    let (a, b) = (bind(&net, 0), bind(&net, 1));
    for k in 0..10u8 {
        assert!(
            delivered(&a, &b, &[b'a', k]),
            "0 -> 1 #{k}: {:?}",
            net.stats()
        );
        assert!(
            delivered(&b, &a, &[b'b', k]),
            "1 -> 0 #{k}: {:?}",
            net.stats()
        );
    }
    let s = net.stats();
    assert!(s.link(0, 1).forwarded >= 10, "{:?}", s.link(0, 1));
    assert!(s.link(1, 0).forwarded >= 10, "{:?}", s.link(1, 0));
    assert_eq!(s.total().dropped(), 0);
    assert_eq!(s.malformed, 0);
    eprintln!(
        "ipv6={ipv6}: {:?}, unknown_dest {}",
        s.total(),
        s.unknown_dest
    );
}

#[test]
fn two_nodes_exchange_ipv4() {
    if common::can_run() {
        exchange_both_ways(false);
    }
}

#[test]
fn two_nodes_exchange_ipv6() {
    if common::can_run() {
        exchange_both_ways(true);
    }
}

#[test]
fn partition_and_one_way_block_then_heal() {
    if !common::can_run() {
        return;
    }
    let net = network(3, false, 2);
    let s: Vec<UdpSocket> = (0..3).map(|i| bind(&net, i)).collect();

    net.partition(&[vec![0], vec![1]]);
    assert!(dropped(&s[0], &s[1], b"p01"));
    assert!(dropped(&s[1], &s[0], b"p10"));
    // Node 2 is on no side: its links are untouched.
    assert!(delivered(&s[0], &s[2], b"p02"));
    assert!(delivered(&s[2], &s[1], b"p21"));
    let st = net.stats();
    assert_eq!(st.link(0, 1).dropped_blocked, 1);
    assert_eq!(st.link(1, 0).dropped_blocked, 1);

    net.heal();
    assert!(delivered(&s[0], &s[1], b"h01"));
    assert!(delivered(&s[1], &s[0], b"h10"));

    net.block_one_way(0, 1);
    assert!(dropped(&s[0], &s[1], b"o01"));
    assert!(delivered(&s[1], &s[0], b"o10"));
    let st = net.stats();
    assert_eq!(st.link(0, 1).dropped_blocked, 2);
    assert_eq!(st.link(1, 0).dropped_blocked, 1);

    net.heal();
    assert!(delivered(&s[0], &s[1], b"e01"));
    assert_eq!(net.link(0, 1), LinkRule::default());
}

/// Sends `count` numbered datagrams from node 0 to node 1, paced so neither the
/// device queue nor the receive buffer overflows; returns the numbers in arrival order.
fn stream(net: &Network, count: u32, gap_every: u32) -> Vec<u32> {
    let (a, b) = (bind(net, 0), bind(net, 1));
    let dst = addr_of(&b);
    let receiver = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        // The sender finishes well within this; stop after a second of silence.
        b.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        while let Ok((len, _)) = recv(&b, &mut buf) {
            if len == 4 {
                got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        }
        got
    });
    for k in 0..count {
        a.send_to(&k.to_be_bytes(), dst).expect("send");
        if gap_every > 0 && k % gap_every == gap_every - 1 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    receiver.join().expect("receiver")
}

fn inversions(seq: &[u32]) -> usize {
    seq.windows(2).filter(|w| w[1] < w[0]).count()
}

#[test]
fn loss_half_drops_about_half() {
    if !common::can_run() {
        return;
    }
    let net = network(2, false, 42);
    net.set_link(0, 1, LinkRule::lossy(0.5));
    let got = stream(&net, 2_000, 20);
    let st = net.stats().link(0, 1);
    let lost = 2_000 - got.len();
    eprintln!("loss 0.5: {lost} of 2000 lost; {st:?}");
    assert!((800..=1_200).contains(&lost), "lost {lost}");
    // Every datagram met the rule, and every forwarded one arrived.
    assert_eq!(st.dropped_loss + st.forwarded, 2_000);
    assert_eq!(st.forwarded as usize, got.len());
    // Nothing was lost outside the rule: not in the sender's device queue, not on
    // receipt.
    let (tx, rx) = (
        net.device_counters(0).expect("counters"),
        net.device_counters(1).expect("counters"),
    );
    assert_eq!(tx.tx_dropped, 0, "{tx:?}");
    assert!(tx.tx_packets >= 2_000, "{tx:?}");
    assert_eq!(rx.rx_packets, st.forwarded, "{rx:?}");
    assert_eq!(rx.rx_dropped, 0, "{rx:?}");
}

#[test]
fn delay_jitter_and_reorder() {
    if !common::can_run() {
        return;
    }
    let net = network(2, false, 3);
    // Round trip over two 50 ms links.
    net.set_all(LinkRule::delayed(Duration::from_millis(50)));
    let (a, b) = (bind(&net, 0), bind(&net, 1));
    for sock in [&a, &b] {
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
    }
    let b_addr = addr_of(&b);
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((len, from)) = recv(&b, &mut buf) {
            b.send_to(&buf[..len], from).expect("echo");
        }
    });
    let start = Instant::now();
    a.send_to(b"rtt", b_addr).expect("send");
    let mut buf = [0u8; 64];
    let (len, _) = recv(&a, &mut buf).expect("echo reply");
    let rtt = start.elapsed();
    echo.join().expect("echo thread");
    assert_eq!(&buf[..len], b"rtt");
    eprintln!("rtt with 2 x 50 ms: {rtt:?}");
    assert!(rtt >= Duration::from_millis(100), "rtt {rtt:?}");
    assert!(rtt < Duration::from_millis(300), "rtt {rtt:?}");

    // Delay alone keeps order (and loses nothing).
    net.set_link(0, 1, LinkRule::delayed(Duration::from_millis(20)));
    let before = net.stats().link(0, 1).forwarded;
    let got = stream(&net, 300, 5);
    assert_eq!(net.stats().link(0, 1).forwarded - before, 300);
    assert_eq!(got.len(), 300);
    assert_eq!(inversions(&got), 0);

    // Jitter wider than the gap between datagrams, plus reorder, mixes them up.
    let before = net.stats().link(0, 1);
    net.set_link(
        0,
        1,
        LinkRule {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
            reorder: 0.2,
            ..LinkRule::default()
        },
    );
    let got = stream(&net, 300, 5);
    let after = net.stats().link(0, 1);
    eprintln!(
        "jitter+reorder: {} inversions in {} datagrams; reordered {}, delayed {}",
        inversions(&got),
        got.len(),
        after.reordered - before.reordered,
        after.delayed - before.delayed
    );
    assert_eq!(got.len(), 300);
    assert!(inversions(&got) > 0);
    assert!(after.reordered > before.reordered);
    assert!(after.delayed > before.delayed);
}

fn with_prefix(prefix: &str) -> Vec<String> {
    list_namespaces()
        .expect("list namespaces")
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn drop_removes_namespaces_even_on_panic() {
    if !common::can_run() {
        return;
    }
    let spec = NetSpec::new(3);
    let prefix = spec.name_prefix.clone();
    {
        let net = Network::create(spec).expect("create");
        assert_eq!(with_prefix(&prefix).len(), 3);
        assert_eq!(net.namespace(2), format!("{prefix}2"));
    }
    assert!(
        with_prefix(&prefix).is_empty(),
        "{:?}",
        with_prefix(&prefix)
    );

    let spec = NetSpec::new(2);
    let prefix = spec.name_prefix.clone();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _net = Network::create(spec).expect("create");
        assert_eq!(with_prefix(&prefix).len(), 2);
        // Unwinds exactly like a failed assertion, without printing a panic message.
        std::panic::resume_unwind(Box::new("test body fails with the network alive"));
    }));
    assert!(result.is_err());
    assert!(
        with_prefix(&prefix).is_empty(),
        "{:?}",
        with_prefix(&prefix)
    );
}

#[test]
fn command_runs_inside_the_namespace() {
    if !common::can_run() {
        return;
    }
    let net = network(2, false, 0);
    let out = net.command(1, "ip").arg("addr").output().expect("run ip");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("inet {}/24", net.addr(1))), "{text}");
    assert!(!text.contains(&net.addr(0).to_string()), "{text}");

    let out = net.output(0, "ip", ["-o", "addr"]).expect("run ip");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&net.addr(0).to_string()), "{text}");
}

#[test]
fn invalid_sizes_are_refused_and_leave_nothing() {
    if !common::can_run() {
        return;
    }
    for nodes in [0, 201] {
        let spec = NetSpec::new(nodes);
        let prefix = spec.name_prefix.clone();
        let err = Network::create(spec).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(with_prefix(&prefix).is_empty());
    }
}

#[test]
fn stale_namespaces_of_dead_processes_are_removed() {
    if !common::can_run() {
        return;
    }
    // No process has the embedded pid (above any pid_max); our own pid after it
    // keeps concurrent test processes from making the same name.
    let stale = format!("{PREFIX_ROOT}99999999x{}stale", std::process::id());
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("ip");
    assert!(status.success());
    let live = network(1, false, 0);
    cleanup_stale(PREFIX_ROOT).expect("cleanup");
    assert!(!list_namespaces().expect("list").contains(&stale));
    // Our own, live, network is untouched.
    assert_eq!(with_prefix(live.namespace(0)).len(), 1);
}

#[test]
fn largest_network_connects_first_and_last() {
    if !common::can_run() {
        return;
    }
    let start = Instant::now();
    let net = network(fjell_harness::net::MAX_NODES, false, 0);
    let built = start.elapsed();
    let last = net.len() - 1;
    let (a, z) = (bind(&net, 0), bind(&net, last));
    assert!(delivered(&a, &z, b"first to last"));
    assert!(delivered(&z, &a, b"last to first"));
    let start = Instant::now();
    drop(net);
    eprintln!(
        "{} nodes: built in {built:?}, removed in {:?}",
        fjell_harness::net::MAX_NODES,
        start.elapsed()
    );
}

#[test]
fn impairment_backend_is_reported() {
    if !common::can_run() {
        return;
    }
    let net = network(1, false, 0);
    let line = net.impairment().description();
    eprintln!("impairment: {line}");
    assert!(line.starts_with("userspace (TUN hub); tc netem: "));
    // The probe cleans up its scratch namespace.
    let _ = netem_available();
    assert!(
        with_prefix(&format!("{PREFIX_ROOT}{}x", std::process::id()))
            .iter()
            .all(|n| !n.ends_with("netem"))
    );
}
