//! fjell-ddata's numbers (issue: distributed data), each section selectable:
//!
//! ```text
//! cargo bench -p fjell-ddata --bench ddata                  # every section
//! cargo bench -p fjell-ddata --bench ddata -- local bytes   # some of them
//! ```
//!
//! - `local`: local updates per second on one node — the sans-IO replicator alone, and
//!   through the async API on a one-node cluster (a GCounter increment, and an ORSet add of
//!   a new element).
//! - `visible`: one update (a local write on one node) until every node of 5 and of 25 has
//!   it, over QUIC on loopback, every node in this process, default settings.
//! - `bytes`: bytes on the wire for one add to an ORSet of 10,000 elements, as a delta and
//!   as the whole value. Fails if the delta is not under 1% of the whole.
//! - `pruning`: an ORSet's size after 1,000 members joined, each added an element and
//!   removed its predecessor's, and left — with pruning and without. Fails if pruning does
//!   not leave the removed members out.
//! - `durable`: durable updates per second through the async API, write-through and
//!   write-behind, and the store's own commits per second for comparison.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use fjell_ddata::crdt::{modified_by, Data, GCounter, ORSet};
use fjell_ddata::durable::{DurableStore, DurableWriter, WriteMode};
use fjell_ddata::replicator::{MemberView, Message, Output, Replicator, WriteConsistency};
use fjell_ddata::{DistributedData, Key, ReplicatorSettings};
use fjell_quic::DevCa;
use fjell_runtime::core::{MemberStatus, UniqueAddress};
use fjell_runtime::{Cluster, ClusterBuilder, Smol};
use fjell_tools::hub::Hub;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    let mut failed = false;
    println!("fjell-ddata bench, {}", now_utc());
    if wanted("local") {
        local();
    }
    if wanted("visible") {
        smol::block_on(visible(&[5, 25]));
    }
    if wanted("bytes") {
        failed |= !bytes();
    }
    if wanted("pruning") {
        failed |= !pruning();
    }
    if wanted("durable") {
        smol::block_on(durable());
    }
    if failed {
        eprintln!("a stated target was missed");
        std::process::exit(1);
    }
}

fn now_utc() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("unix time {s}")
}

fn id(i: u32) -> UniqueAddress {
    let [a, b, c, d] = (0x0a00_0000 + i).to_be_bytes();
    UniqueAddress::new(SocketAddr::from(([a, b, c, d], 7000)), 1)
}

fn up(ids: &[UniqueAddress]) -> Vec<MemberView> {
    ids.iter()
        .map(|id| MemberView {
            id: *id,
            status: MemberStatus::Up,
            reachable: true,
        })
        .collect()
}

fn rate(n: usize, took: Duration) -> String {
    let per_s = n as f64 / took.as_secs_f64();
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else {
        format!("{:.0} k/s", per_s / 1e3)
    }
}

fn local() {
    println!("\n## Local updates per second, one node\n");
    println!("| path | update | updates | time | rate |");
    println!("|---|---|---|---|---|");
    let me = id(1);
    let peers = [me, id(2), id(3)];
    let n = 200_000;
    for what in ["GCounter increment", "ORSet add (new element)"] {
        let mut r = Replicator::new(me, ReplicatorSettings::default(), 1, 0);
        r.handle_members(0, &up(&peers));
        let counter: Key<GCounter> = Key::new("c");
        let set: Key<ORSet> = Key::new("s");
        let start = Instant::now();
        for i in 0..n as u64 {
            let now = i / 1000;
            if what.starts_with("GCounter") {
                r.update(now, &counter, WriteConsistency::Local, |c| {
                    c.increment(me, 1)
                })
                .unwrap();
            } else {
                r.update(now, &set, WriteConsistency::Local, |s| s.add(me, i))
                    .unwrap();
            }
            // What a driver does: take the outputs, run the due timers.
            while r.poll_output().is_some() {}
            if r.poll_timeout() <= now {
                r.handle_timeout(now);
                while r.poll_output().is_some() {}
            }
        }
        let took = start.elapsed();
        println!(
            "| sans-IO replicator (2 peers) | {what} | {n} | {:.2} s | {} |",
            took.as_secs_f64(),
            rate(n, took)
        );
    }
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (nodes, dds) = cluster(&ca, 1, ReplicatorSettings::default()).await;
        let me = nodes[0].self_address();
        let counter: Key<GCounter> = Key::new("c");
        let set: Key<ORSet> = Key::new("s");
        let n = 100_000;
        for what in ["GCounter increment", "ORSet add (new element)"] {
            let start = Instant::now();
            for i in 0..n as u64 {
                if what.starts_with("GCounter") {
                    dds[0]
                        .update(&counter, WriteConsistency::Local, |c| c.increment(me, 1))
                        .await
                        .unwrap();
                } else {
                    dds[0]
                        .update(&set, WriteConsistency::Local, |s| s.add(me, i))
                        .await
                        .unwrap();
                }
            }
            let took = start.elapsed();
            println!(
                "| async API, one-node cluster | {what} | {n} | {:.2} s | {} |",
                took.as_secs_f64(),
                rate(n, took)
            );
        }
        for n in &nodes {
            n.shutdown().await;
        }
    });
}

/// `n` nodes on loopback, all Up, each with a hub and a replicator.
async fn cluster(
    ca: &DevCa,
    n: usize,
    settings: ReplicatorSettings,
) -> (Vec<Cluster>, Vec<DistributedData>) {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    let mut dds = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let c = ClusterBuilder::new()
            .socket(s)
            .credentials(ca.node(addrs[i]).unwrap())
            .seed_nodes([addrs[0]])
            .start()
            .unwrap();
        let hub = Hub::start(&c, Smol);
        dds.push(DistributedData::start(&hub, settings.clone()).unwrap());
        nodes.push(c);
    }
    for c in &nodes {
        c.wait_for(|s| {
            s.members.len() == n && s.members.iter().all(|m| m.status == MemberStatus::Up)
        })
        .await;
    }
    // The replicators see the members Up once their tasks have read the state.
    for d in &dds {
        d.wait_for_replicas(n).await;
    }
    (nodes, dds)
}

async fn visible(sizes: &[usize]) {
    println!("\n## One update visible on every node (QUIC on loopback, default settings)\n");
    println!("| nodes | round | visible on all | delta interval |");
    println!("|---|---|---|---|");
    let ca = DevCa::new().unwrap();
    let settings = ReplicatorSettings::default();
    for &n in sizes {
        let (nodes, dds) = cluster(&ca, n, settings.clone()).await;
        let me = nodes[0].self_address();
        let mut times = Vec::new();
        for round in 0..5u64 {
            let key: Key<GCounter> = Key::new(format!("visible-{round}"));
            let subs: Vec<_> = dds.iter().map(|d| d.subscribe(&key)).collect();
            // Let the previous round's traffic settle at a random phase of the ticks.
            smol::Timer::after(Duration::from_millis(100 + 137 * round)).await;
            let start = Instant::now();
            dds[0]
                .update(&key, WriteConsistency::Local, |c| c.increment(me, 1))
                .await
                .unwrap();
            for s in &subs {
                loop {
                    let change = s.next().await.unwrap().unwrap();
                    if change.value.is_some_and(|c| c.value() == 1) {
                        break;
                    }
                }
            }
            let took = start.elapsed();
            times.push(took);
            println!(
                "| {n} | {} | {:.0} ms | {} ms |",
                round + 1,
                took.as_secs_f64() * 1e3,
                settings.delta_interval.as_millis()
            );
        }
        times.sort();
        println!(
            "| {n} | median | {:.0} ms | |",
            times[times.len() / 2].as_secs_f64() * 1e3
        );
        for c in &nodes {
            c.shutdown().await;
        }
    }
}

/// Drives replicas by hand: `from`'s outputs to `to` only.
fn deliver(from: &mut Replicator, to: &mut Replicator, now: u64) -> usize {
    let mut bytes = 0;
    while let Some(o) = from.poll_output() {
        if let Output::Send { to: dest, message } = o {
            if dest == to.id() {
                let encoded = message.encode();
                bytes += encoded.len();
                to.handle_message(now, from.id().socket_addr(), message);
            }
        }
    }
    bytes
}

fn bytes() -> bool {
    println!("\n## Bytes per update: delta against whole value (ORSet of 10,000 elements)\n");
    let (a, b) = (id(1), id(2));
    let members = up(&[a, b]);
    let settings = ReplicatorSettings::default();
    let mut ra = Replicator::new(a, settings.clone(), 1, 0);
    let mut rb = Replicator::new(b, settings, 2, 0);
    ra.handle_members(0, &members);
    rb.handle_members(0, &members);
    let key: Key<ORSet> = Key::new("big");
    ra.update(0, &key, WriteConsistency::Local, |s| {
        for i in 0..10_000u64 {
            s.add(a, format!("element-{i:05}"));
        }
    })
    .unwrap();
    // Let the first (large) delta go, then measure one add.
    let mut now = ra.poll_timeout();
    ra.handle_timeout(now);
    deliver(&mut ra, &mut rb, now);
    ra.update(now, &key, WriteConsistency::Local, |s| s.add(a, "one more"))
        .unwrap();
    now = ra.poll_timeout().max(now + 1);
    ra.handle_timeout(now);
    let mut delta_bytes = 0;
    while let Some(o) = ra.poll_output() {
        if let Output::Send {
            message: m @ Message::Deltas { .. },
            ..
        } = o
        {
            delta_bytes += m.encode().len();
        }
    }
    let whole = Message::Gossip {
        entries: vec![("big".into(), ra.entry("big").unwrap().clone())],
        send_back: false,
        to_uid: b.uid(),
    };
    let whole_bytes = whole.encode().len();
    let ratio = delta_bytes as f64 / whole_bytes as f64;
    println!("| sent as | bytes |");
    println!("|---|---|");
    println!("| delta (one add) | {delta_bytes} |");
    println!("| whole value | {whole_bytes} |");
    println!("| ratio | {:.5} ({:.0}× smaller) |", ratio, 1.0 / ratio);
    let ok = delta_bytes > 0 && ratio < 0.01;
    if !ok {
        println!("MISSED: a delta should be under 1% of the whole value");
    }
    ok
}

/// An ORSet's entry on the leader after `members` joined, wrote and left.
fn churn(members: u32, prune: bool) -> (usize, usize, usize) {
    let settings = ReplicatorSettings {
        gossip_interval: Duration::from_millis(100),
        pruning_interval: if prune {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1_000_000)
        },
        max_pruning_dissemination: Duration::from_millis(300),
        pruning_marker_time_to_live: Duration::from_millis(300),
        durable_pruning_marker_time_to_live: Duration::from_millis(300),
        ..ReplicatorSettings::default()
    };
    let leader_id = id(1);
    let mut leader = Replicator::new(leader_id, settings.clone(), 1, 0);
    leader.handle_members(0, &up(&[leader_id]));
    let key: Key<ORSet> = Key::new("churn");
    let mut now = 0;
    for i in 0..members {
        let m = id(100 + i);
        let mut r = Replicator::new(m, settings.clone(), u64::from(i), now);
        let both = up(&[leader_id, m]);
        r.handle_members(now, &both);
        leader.handle_members(now, &both);
        // The newcomer gets the current entry, writes, and its delta reaches the leader.
        if let Some(e) = leader.entry("churn") {
            r.load("churn", e.clone()).unwrap();
        }
        r.update(now, &key, WriteConsistency::Local, |s| {
            s.add(m, format!("item-{i}"));
            s.remove(format!("item-{}", i.wrapping_sub(1)));
        })
        .unwrap();
        // Past its first delta tick: the delta goes out.
        now += settings.delta_interval.as_millis() as u64;
        r.handle_timeout(now);
        deliver(&mut r, &mut leader, now);
        // It leaves: the leader's members no longer include it.
        leader.handle_members(now, &up(&[leader_id]));
        now = now.max(leader.poll_timeout());
        leader.handle_timeout(now);
        while leader.poll_output().is_some() {}
    }
    for _ in 0..50 {
        now = leader.poll_timeout().max(now + 1);
        leader.handle_timeout(now);
        while leader.poll_output().is_some() {}
    }
    let entry = leader.entry("churn").unwrap();
    let bytes = postcard::to_allocvec(entry).unwrap().len();
    let Some(Data::ORSet(set)) = entry.data() else {
        unreachable!()
    };
    (bytes, modified_by(set).len(), set.len())
}

fn pruning() -> bool {
    println!("\n## ORSet size after 1,000 members joined, wrote and left\n");
    println!("| pruning | entry bytes | writers in the value | elements |");
    println!("|---|---|---|---|");
    let (with_bytes, with_writers, with_elems) = churn(1000, true);
    let (without_bytes, without_writers, without_elems) = churn(1000, false);
    println!("| on | {with_bytes} | {with_writers} | {with_elems} |");
    println!("| off | {without_bytes} | {without_writers} | {without_elems} |");
    let ok = with_writers <= 1 && with_elems == without_elems;
    if !ok {
        println!("MISSED: with pruning only the leader should remain in the value");
    }
    ok
}

async fn durable() {
    println!("\n## Durable writes per second\n");
    println!("| path | mode | writes | time | rate |");
    println!("|---|---|---|---|---|");
    let dir = std::env::temp_dir().join(format!("fjell-ddata-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, mode) in [
        ("write-through", WriteMode::Through),
        (
            "write-behind (100 ms)",
            WriteMode::Behind(Duration::from_millis(100)),
        ),
    ] {
        let path = dir.join(format!("raw-{}.redb", name.len()));
        let writer = DurableWriter::spawn(DurableStore::open(&path).unwrap(), mode);
        let n = if matches!(mode, WriteMode::Through) {
            2_000
        } else {
            100_000
        };
        let start = Instant::now();
        for i in 0..n {
            writer
                .write(format!("k{}", i % 100), vec![0u8; 64])
                .await
                .unwrap();
        }
        writer.close().await.unwrap();
        let took = start.elapsed();
        println!(
            "| store alone (64-byte values, 100 keys) | {name} | {n} | {:.2} s | {} |",
            took.as_secs_f64(),
            rate(n, took)
        );
    }
    let ca = DevCa::new().unwrap();
    for (name, mode) in [
        ("write-through", WriteMode::Through),
        (
            "write-behind (100 ms)",
            WriteMode::Behind(Duration::from_millis(100)),
        ),
    ] {
        let settings = ReplicatorSettings {
            durable_keys: vec!["*".into()],
            durable_path: Some(dir.join(format!("dd-{}.redb", name.len()))),
            durable_write_mode: mode,
            ..ReplicatorSettings::default()
        };
        let (nodes, dds) = cluster(&ca, 1, settings).await;
        let me = nodes[0].self_address();
        let key: Key<GCounter> = Key::new("durable-counter");
        let n = if matches!(mode, WriteMode::Through) {
            2_000
        } else {
            50_000
        };
        let start = Instant::now();
        for _ in 0..n {
            dds[0]
                .update(&key, WriteConsistency::Local, |c| c.increment(me, 1))
                .await
                .unwrap();
        }
        let took = start.elapsed();
        println!(
            "| async API, GCounter increment | {name} | {n} | {:.2} s | {} |",
            took.as_secs_f64(),
            rate(n, took)
        );
        for c in &nodes {
            c.shutdown().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
