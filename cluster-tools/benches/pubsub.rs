//! Distributed publish-subscribe over QUIC on loopback, five nodes (each on a thread of its
//! own), `Config::default()` and `PubSubSettings::default()` (gossip every second):
//!
//! ```text
//! cargo bench -p fjell-tools --bench pubsub            # 3 rounds of visibility, 5,000 messages
//! cargo bench -p fjell-tools --bench pubsub -- 5 20000
//! ```
//!
//! - **Visibility**: a subscription made on one node, until every other node's registry
//!   lists it. Exits with 1 above two gossip intervals (the issue's target).
//! - **Throughput**: 1,000 subscribers of one topic, 200 on each node; one node publishes N
//!   messages one after another; measured until every subscriber has received every message
//!   (messages per second, and deliveries to subscribers per second).

use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use fjell_quic::DevCa;
use fjell_runtime::core::MemberStatus;
use fjell_runtime::{Cluster, ClusterBuilder, Smol};
use fjell_tools::hub::Hub;
use fjell_tools::pubsub::{DistributedPubSub, PubSubSettings, Subscription};

const NODES: usize = 5;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(3);
    let messages = args.get(1).copied().unwrap_or(5_000);
    smol::block_on(run(rounds, messages));
}

async fn run(rounds: usize, messages: usize) {
    let ca = DevCa::new().unwrap();
    let sockets: Vec<UdpSocket> = (0..NODES)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut nodes: Vec<Cluster> = Vec::new();
    let mut ps: Vec<DistributedPubSub> = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let c = ClusterBuilder::new()
            .socket(s)
            .credentials(ca.node(addrs[i]).unwrap())
            .seed_nodes([addrs[0]])
            .start()
            .unwrap();
        let hub = Hub::start(&c, Smol);
        ps.push(DistributedPubSub::start(&hub, PubSubSettings::default()).unwrap());
        nodes.push(c);
    }
    for n in &nodes {
        n.wait_for(|s| {
            s.members.len() == NODES && s.members.iter().all(|m| m.status == MemberStatus::Up)
        })
        .await;
    }
    let interval = PubSubSettings::default().gossip_interval;
    println!("| round | subscription visible on all {NODES} nodes | gossip intervals |");
    println!("|---|---|---|");
    let mut missed = false;
    for r in 0..rounds {
        let topic = format!("visible-{r}");
        let subscriber = r % NODES;
        let start = Instant::now();
        let _s = ps[subscriber].subscribe(&topic).unwrap();
        for p in &ps {
            p.wait_for_subscribers(&topic, |n| n == [addrs[subscriber]])
                .await;
        }
        let took = start.elapsed();
        missed |= took > 2 * interval;
        println!(
            "| {} | {:.1} ms | {:.3} |",
            r + 1,
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() / interval.as_secs_f64()
        );
    }

    // 1,000 subscribers, 200 per node.
    let subs: Vec<Subscription> = (0..1000)
        .map(|i| ps[i % NODES].subscribe("load").unwrap())
        .collect();
    for p in &ps {
        p.wait_for_subscribers("load", |n| n.len() == NODES).await;
    }
    // Batches of 500 (the subscribers' queues hold 1,000): every reader reports each batch.
    const BATCH: usize = 500;
    let (done_tx, done_rx) = async_channel::unbounded::<()>();
    let start = Instant::now();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|s| {
            let done = done_tx.clone();
            smol::spawn(async move {
                for i in 1..=messages {
                    s.next().await.unwrap();
                    if i % BATCH == 0 || i == messages {
                        let _ = done.send(()).await;
                    }
                }
            })
        })
        .collect();
    let mut sent = 0;
    while sent < messages {
        let batch = BATCH.min(messages - sent);
        for i in 0..batch {
            ps[0].publish("load", &((sent + i) as u64)).await.unwrap();
        }
        sent += batch;
        for _ in 0..1000 {
            done_rx.recv().await.unwrap();
        }
    }
    for r in readers {
        r.await;
    }
    let took = start.elapsed();
    println!(
        "\n{messages} messages to 1,000 subscribers on {NODES} nodes: {:.2} s, {:.0} messages/s, {:.0} deliveries/s; dead letters {}",
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64(),
        (messages * 1000) as f64 / took.as_secs_f64(),
        ps.iter().map(|p| p.dead_letters()).sum::<u64>()
    );
    for n in &nodes {
        n.shutdown().await;
    }
    if missed {
        eprintln!("missed: a subscription took more than two gossip intervals to be visible");
        std::process::exit(1);
    }
}
