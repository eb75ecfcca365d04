//! A cluster-wide job scheduler as a singleton (the Akka documentation's example): three
//! nodes on loopback each run the singleton's manager; the scheduler runs on the oldest and
//! hands out numbered jobs on request; the host leaves and the scheduler moves, continuing
//! from where its predecessor handed over.
//!
//! ```text
//! cargo run -p fjell-tools --example singleton_scheduler
//! ```

mod common;

use std::time::Duration;

use fjell_runtime::Smol;
use fjell_tools::hub::Hub;
use fjell_tools::singleton::{ClusterSingleton, SingletonContext, SingletonSettings};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// A worker asks for its next job.
    NextJob,
}

/// The scheduler: numbers jobs, starting after `first`.
async fn scheduler(ctx: SingletonContext, first: u64) {
    let me = ctx.cluster().self_address().socket_addr();
    println!("scheduler started on {me}");
    let mut next = first;
    while let Some(m) = ctx.recv().await {
        match m.decode::<Request>() {
            Ok(Request::NextJob) => {
                next += 1;
                let _ = m.respond(&(next, me.to_string()));
            }
            Err(e) => eprintln!("scheduler: not a request it knows: {e}"),
        }
    }
    println!("scheduler on {me} stopping after job {next}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let nodes = common::loopback_cluster(3).await?;
        let mut singletons = Vec::new();
        for (i, cluster) in nodes.iter().enumerate() {
            let hub = Hub::start(cluster, Smol);
            // Every node runs the manager; only the oldest runs the scheduler. A real
            // scheduler would recover its counter from storage; this one starts at 100 × node.
            let singleton =
                ClusterSingleton::start(&hub, SingletonSettings::new("scheduler"), move |ctx| {
                    scheduler(ctx, 100 * i as u64)
                })?;
            singletons.push(singleton);
        }
        let worker = singletons[2].proxy();
        for _ in 0..3 {
            let (job, from): (u64, String) = worker.request(&Request::NextJob).await?;
            println!("worker got job {job} from {from}");
        }
        println!("the scheduler's node leaves");
        nodes[0].shutdown().await;
        for _ in 0..3 {
            let (job, from): (u64, String) = worker.request(&Request::NextJob).await?;
            println!("worker got job {job} from {from}");
            fjell_quic::sleep(&Smol, Duration::from_millis(200)).await;
        }
        for n in &nodes[1..] {
            n.shutdown().await;
        }
        Ok(())
    })
}
