//! A shopping cart shared by three nodes (after Pekko's distributed-data shopping cart):
//! three nodes on loopback, one shopper on each. Each puts an item in the cart, an
//! [`LWWMap`] of item → quantity, and counts their page views in a cluster-wide
//! [`GCounter`]; then one shopper takes an item out again. Every node prints the cart and
//! the page views once it has the others' changes. The cart is a durable key: each node
//! also keeps it in a file, from which it would come back after a restart of every node.
//!
//! ```text
//! cargo run -p fjell-ddata --example shared_cart
//! ```

// The loopback cluster the fjell-tools examples start.
#[path = "../../cluster-tools/examples/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjell_ddata::crdt::{Element, GCounter, LWWMap, LWWRegister, ReplicatedData};
use fjell_ddata::replicator::WriteConsistency;
use fjell_ddata::{DistributedData, Key, ReplicatorSettings};
use fjell_runtime::Smol;
use fjell_tools::hub::Hub;

/// Writes wait for a majority of the replicas (2 of 3) for up to this long.
const MAJORITY: WriteConsistency = WriteConsistency::Majority {
    timeout: Duration::from_secs(5),
    min_cap: 0,
};

fn main() -> Result<(), Box<dyn Error>> {
    smol::block_on(deadline(Duration::from_secs(60), run()))
}

/// `run`, or an error once `limit` has passed.
async fn deadline<T>(
    limit: Duration,
    run: impl std::future::Future<Output = Result<T, Box<dyn Error>>>,
) -> Result<T, Box<dyn Error>> {
    futures_lite::future::or(run, async {
        smol::Timer::after(limit).await;
        Err(format!("gave up after {limit:?}").into())
    })
    .await
}

async fn run() -> Result<(), Box<dyn Error>> {
    let nodes = common::loopback_cluster(3).await?;
    let store = std::env::temp_dir().join(format!("fjell-shared-cart-{}", std::process::id()));
    let mut replicas = Vec::new();
    for (i, cluster) in nodes.iter().enumerate() {
        let settings = ReplicatorSettings {
            durable_keys: vec!["cart".into()],
            durable_path: Some(store.join(format!("node-{i}.redb"))),
            ..ReplicatorSettings::default()
        };
        replicas.push(DistributedData::start(
            &Hub::start(cluster, Smol),
            settings,
        )?);
    }
    let cart: Key<LWWMap> = Key::new("cart");
    let views: Key<GCounter> = Key::new("page-views");
    let shoppers = ["ann", "bo", "cy"];

    // Each shopper looks at a few pages and puts an item in the cart.
    let picks: [(&str, u32); 3] = [("apples", 3), ("bread", 1), ("coffee", 2)];
    for ((dd, cluster), (item, quantity)) in replicas.iter().zip(&nodes).zip(picks) {
        let me = cluster.self_address();
        dd.update(&views, WriteConsistency::Local, |v| v.increment(me, 5))
            .await?;
        dd.update(&cart, MAJORITY, |c| {
            c.put(me, item, quantity, next_timestamp(c, item))
        })
        .await?;
    }

    // Once bo sees all three items, bo takes the apples out.
    wait_until(&replicas[1], &cart, |c| c.len() == 3).await?;
    replicas[1]
        .update(&cart, MAJORITY, |c| c.remove("apples"))
        .await?;

    // Every node ends up with the same cart and all page views.
    let expected = BTreeMap::from([("bread".to_string(), 1), ("coffee".to_string(), 2)]);
    for (dd, who) in replicas.iter().zip(shoppers) {
        let cart = wait_until(dd, &cart, |c| contents(c).is_ok_and(|c| c == expected)).await?;
        let views = wait_until(dd, &views, |v| v.value() == 15).await?;
        println!(
            "{who} sees the cart {:?} and {} page views",
            contents(&cart)?,
            views.value()
        );
    }

    for cluster in &nodes {
        cluster.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}

/// A timestamp that wins over the item's current write: the wall clock, or one past the
/// current timestamp if that is later (Pekko's default clock for LWW values).
fn next_timestamp(cart: &LWWMap, item: &str) -> i64 {
    let current = cart
        .register(&Element::from(item))
        .map_or(i64::MIN, LWWRegister::timestamp);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    LWWRegister::clock(current, now)
}

/// The cart's items and quantities.
fn contents(cart: &LWWMap) -> Result<BTreeMap<String, u32>, Box<dyn Error>> {
    cart.entries()
        .map(|(item, quantity)| Ok((item.decode()?, quantity.decode()?)))
        .collect()
}

/// Waits until this node's replica of `key` satisfies `done`, and returns it.
async fn wait_until<D: ReplicatedData>(
    dd: &DistributedData,
    key: &Key<D>,
    done: impl Fn(&D) -> bool,
) -> Result<D, Box<dyn Error>> {
    // A subscription starts with the current value, then has every change.
    let changes = dd.subscribe(key);
    loop {
        let change = changes.next().await.ok_or("the replicator stopped")??;
        if let Some(value) = change.value.filter(|v| done(v)) {
            return Ok(value);
        }
    }
}
