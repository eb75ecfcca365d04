//! Cluster internals isolated from application load (Pekko's cluster dispatcher): three
//! nodes on loopback while the application saturates every core for 30 s (by default).
//!
//! - **Own thread** ([`ClusterBuilder::start`]): every node on a thread of its own. Target:
//!   phi for every monitored peer stays below 1 throughout, and nobody is flagged
//!   unreachable. The bench exits 1 on a miss.
//! - **Shared** (baseline, [`ClusterBuilder::start_on`] the application's tokio runtime):
//!   the same nodes on the saturated executor; reported, not judged.
//!
//! `cargo bench -p fjell-runtime --bench isolation [-- SECONDS]`

use std::time::{Duration, Instant};

use async_io::block_on;
use fjell_quic::DevCa;
use fjell_runtime::{Cluster, ClusterBuilder, Event, MemberStatus, Subscription, Tokio};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    OwnThread,
    Shared,
}

struct Outcome {
    max_phi: f64,
    /// The slowest answer to a state query (the driver's responsiveness).
    slowest: Duration,
    samples: usize,
    unanswered: usize,
    unreachable: usize,
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("isolation: 3 nodes, the application spins {cores} worker threads for {secs} s");
    let own = run(Mode::OwnThread, cores, secs);
    let shared = run(Mode::Shared, cores, secs);
    println!(
        "{:<24} {:>8} {:>8} {:>13} {:>16} {:>12}",
        "mode", "max phi", "samples", "slowest answer", "unanswered (0.5s)", "unreachable"
    );
    for (name, o) in [("own thread (start)", &own), ("shared (start_on)", &shared)] {
        println!(
            "{name:<24} {:>8.3} {:>8} {:>11.1}ms {:>16} {:>12}",
            o.max_phi,
            o.samples,
            o.slowest.as_secs_f64() * 1e3,
            o.unanswered,
            o.unreachable
        );
    }
    let ok = own.max_phi < 1.0 && own.unreachable == 0 && own.unanswered == 0 && own.samples > 0;
    println!(
        "target: own thread keeps phi < 1 for every peer, no unreachable: {}",
        if ok { "met" } else { "MISSED" }
    );
    if !ok {
        std::process::exit(1);
    }
}

fn run(mode: Mode, cores: usize, secs: u64) -> Outcome {
    // The application: a multi-threaded tokio runtime with a worker per core.
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let ca = DevCa::new().unwrap();
    let sockets: Vec<_> = (0..3)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let seeds: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let nodes: Vec<Cluster> = sockets
        .into_iter()
        .map(|s| {
            let addr = s.local_addr().unwrap();
            let b = ClusterBuilder::new()
                .socket(s)
                .credentials(ca.node(addr).unwrap())
                .seed_nodes(seeds.iter().copied())
                .log_info(false);
            match mode {
                Mode::OwnThread => b.start(),
                Mode::Shared => b.start_on(Tokio(app.handle().clone())),
            }
            .unwrap()
        })
        .collect();
    for n in &nodes {
        let up = block_on(n.within(
            Duration::from_secs(60),
            n.wait_for(|s| {
                s.members.len() == 3
                    && s.converged
                    && s.members.iter().all(|m| m.status == MemberStatus::Up)
            }),
        ));
        assert!(up.flatten().is_some(), "the cluster did not form");
    }
    // Let every monitor collect some heartbeat history before the load.
    std::thread::sleep(Duration::from_secs(5));
    let subs: Vec<Subscription> = nodes.iter().map(|n| block_on(n.subscribe())).collect();

    // The load: a task per worker that never yields.
    let end = Instant::now() + Duration::from_secs(secs);
    for _ in 0..cores {
        app.spawn(async move {
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        });
    }
    let mut out = Outcome {
        max_phi: 0.0,
        slowest: Duration::ZERO,
        samples: 0,
        unanswered: 0,
        unreachable: 0,
    };
    while Instant::now() < end {
        for n in &nodes {
            // The sampler's own timer: a runtime starved by the load would never fire one.
            let asked = futures_lite::future::or(async { Some(n.monitored().await) }, async {
                async_io::Timer::after(Duration::from_millis(500)).await;
                None
            });
            let asked_at = Instant::now();
            match block_on(asked) {
                Some(stats) => {
                    out.slowest = out.slowest.max(asked_at.elapsed());
                    for s in stats {
                        out.max_phi = out.max_phi.max(s.phi);
                        out.samples += 1;
                    }
                }
                None => out.unanswered += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // What the load did shows once the nodes run again.
    std::thread::sleep(Duration::from_secs(3));
    for s in &subs {
        while let Some(e) = s.try_next() {
            if matches!(e, Event::UnreachableMember(_)) {
                out.unreachable += 1;
            }
        }
    }
    for n in &nodes {
        let _ = block_on(n.abort());
    }
    app.shutdown_timeout(Duration::from_secs(1));
    out
}
