//! A cache spread over the cluster by consistent hashing (the Akka documentation's example):
//! three nodes on loopback each hold the entries whose keys hash to them; any node puts and
//! gets through a consistent-hashing router, so every key lives on one node and every node
//! finds it there. When a node leaves, only its keys move.
//!
//! ```text
//! cargo run -p fjell-tools --example hashing_cache
//! ```

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjell_runtime::Cluster;
use fjell_tools::routing::{Router, RouterSettings, RoutingLogic};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    Put(String, String),
    Get(String),
}

/// This node's part of the cache: answers the requests routed to it.
fn serve(cluster: Cluster, shard: Arc<Mutex<HashMap<String, String>>>) {
    smol::spawn(async move {
        while let Some(m) = cluster.recv().await {
            let Ok(op) = m.decode::<Op>() else { continue };
            let answer = match op {
                Op::Put(k, v) => shard.lock().unwrap().insert(k, v),
                Op::Get(k) => shard.lock().unwrap().get(&k).cloned(),
            };
            let _ = cluster.respond(&m, &answer).await;
        }
    })
    .detach();
}

/// Puts or gets through the router: here if the key is this node's, else on its node.
async fn call(
    router: &Router,
    local: &Arc<Mutex<HashMap<String, String>>>,
    op: Op,
) -> Result<(Option<String>, SocketAddr), Box<dyn std::error::Error>> {
    let key = match &op {
        Op::Put(k, _) | Op::Get(k) => k.clone(),
    };
    let to = router.route(key.as_bytes()).ok_or("no members")?;
    if router.cluster().self_address().same_address(to) {
        let answer = match op {
            Op::Put(k, v) => local.lock().unwrap().insert(k, v),
            Op::Get(k) => local.lock().unwrap().get(&k).cloned(),
        };
        return Ok((answer, to));
    }
    let answer = router
        .cluster()
        .request(to, &op, Duration::from_secs(5))
        .await?;
    Ok((answer, to))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let nodes = common::loopback_cluster(3).await?;
        let addrs: Vec<_> = nodes
            .iter()
            .map(|n| n.self_address().socket_addr())
            .collect();
        let mut shards = Vec::new();
        for cluster in &nodes {
            let shard = Arc::new(Mutex::new(HashMap::new()));
            serve(cluster.clone(), shard.clone());
            shards.push(shard);
        }
        let settings = RouterSettings::new(RoutingLogic::consistent_hashing());
        let routers: Vec<Router> = nodes
            .iter()
            .map(|n| Router::new(n.clone(), settings.clone()))
            .collect::<Result<_, _>>()?;
        // Node 0 puts ten entries; node 2 reads them back from wherever they live.
        for i in 0..10 {
            let (_, at) = call(
                &routers[0],
                &shards[0],
                Op::Put(format!("user-{i}"), format!("profile {i}")),
            )
            .await?;
            println!("put user-{i} on {at}");
        }
        for i in 0..10 {
            let (v, at) = call(&routers[2], &shards[2], Op::Get(format!("user-{i}"))).await?;
            println!(
                "get user-{i} from {at}: {}",
                v.as_deref().unwrap_or("(missing)")
            );
        }
        for (i, s) in shards.iter().enumerate() {
            println!(
                "node {i} ({}) holds {} entries",
                addrs[i],
                s.lock().unwrap().len()
            );
        }
        for n in &nodes {
            n.shutdown().await;
        }
        Ok(())
    })
}
