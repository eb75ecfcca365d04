//! The blocking-loop example forms a cluster: three nodes on three threads, plain UDP on
//! loopback, no executor.

#[path = "../examples/blocking_udp.rs"]
mod blocking_udp;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use fjell_core::{Config, MemberStatus, MemoryLease};

#[test]
fn three_blocking_nodes_form_a_cluster_over_udp() {
    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let seeds: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Each node reports, after every event, how many members it sees Up.
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    let threads: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let (seeds, stop, tx) = (seeds.clone(), stop.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut lease = MemoryLease::new(Duration::from_secs(60));
                let config = Config::default();
                let uid = i as u64 + 1;
                blocking_udp::run_node(socket, config, &seeds, uid, &mut lease, &stop, |node, _| {
                    let up = node
                        .members()
                        .iter()
                        .filter(|m| m.status == MemberStatus::Up)
                        .count();
                    let _ = tx.send((i, up));
                })
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut up = [0; 3];
    while up.iter().any(|&n| n < 3) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, n)) => up[i] = n,
            Err(_) => panic!("no 3-member cluster within 30 s: members Up per node {up:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap().unwrap();
    }
}
