//! Memory per node by cluster size: a fjell node with the server preset's capacities
//! (`ServerNode`: 4,096 members, 2,048 reachability records, 1,000 heartbeat intervals) and
//! fjell-core's `alloc` feature, as fjell-runtime builds it, beside foca 1.0 in the same
//! network model. Per node, as in the `peers` bench: the simulator's slot (`size_of` the
//! adapter) plus the live heap the node holds after formation and warm-up, counted by
//! `fjell_compare::heap::CountingAlloc`: the boxed node value, its per-member state and its
//! message buffer (one per node, grown to the largest message it sent, as fjell-runtime's
//! driver keeps it).
//!
//! ```text
//! cargo bench -p fjell-compare --bench memory            # 10, 100 and 1,000 nodes
//! cargo bench -p fjell-compare --bench memory -- 4096    # any list of sizes
//! ```
//!
//! Exits with 1 if a fjell node of a 4,096-member cluster needs more than 2 MB, or if a fjell
//! node of a smaller cluster needs more than the inline `ServerNode` (`size_of` without
//! `alloc`, 1,917,024 bytes: `cargo run --release -p fjell-core --example sizes`).

mod common;

use fjell_compare::heap::{self, CountingAlloc};
use fjell_compare::measure::{self, bytes, Plan};
use fjell_compare::net::Protocol;

use common::fjell::Fjell;
use common::foca::FocaNode;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// `size_of::<ServerNode>()` without `alloc` (the sizes example), the memory every server
/// node took whatever the cluster size before nodes kept their state on the heap.
const INLINE_SERVER_NODE: f64 = 1_917_024.0;

/// foca runs up to this many nodes.
const FOCA_AT_MOST: usize = 1_000;

/// The issue's goal for a node of a 4,096-member cluster.
const TARGET_AT_4096: f64 = 2_000_000.0;

/// Of a formed cluster of `plan.n` nodes: (the node value, bytes per node, all Up in seconds).
fn per_node<P: Protocol>(plan: &Plan) -> (usize, f64, Option<f64>) {
    let (sim, up, before) = measure::form::<P>(plan);
    let heap = (heap::live() - before) as f64 / plan.n as f64;
    let value = sim.node(0).value_bytes();
    drop(sim);
    let total = std::mem::size_of::<P>() as f64 + heap;
    (value, total, up.map(|d| d.as_secs_f64()))
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.replace([',', '_'], "").parse().expect("a cluster size"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1_000]
    } else {
        sizes
    };
    println!(
        "| members | fjell node value | fjell per node | per member | foca per node | \
         all Up (fjell / foca) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut missed = Vec::new();
    for n in sizes {
        assert!(n <= 4096, "a ServerNode holds at most 4,096 members");
        let plan = Plan::new(n, 1);
        let (value, total, up) = per_node::<Fjell<4096, 2048>>(&plan);
        // foca's formation takes hundreds of simulated seconds at 1,000 nodes (its
        // announcements spread slowly) and does not finish here at 4,096.
        let (foca, fup) = if n <= FOCA_AT_MOST {
            let (_, foca, fup) = per_node::<FocaNode>(&plan);
            (bytes(foca), fup)
        } else {
            ("not run".to_string(), None)
        };
        let secs = |t: Option<f64>| t.map_or("—".into(), |t| format!("{t:.2} s"));
        println!(
            "| {n} | {} | **{}** | {} | {} | {} / {} |",
            bytes(value as f64),
            bytes(total),
            bytes(total / n as f64),
            foca,
            secs(up),
            secs(fup),
        );
        if up.is_none() {
            missed.push(format!("fjell did not form at {n}"));
        }
        if n == 4096 && total > TARGET_AT_4096 {
            missed.push(format!("{} per node at 4,096 > 2 MB", bytes(total)));
        }
        if total > INLINE_SERVER_NODE {
            missed.push(format!(
                "{} per node at {n} > the inline node",
                bytes(total)
            ));
        }
    }
    if !missed.is_empty() {
        eprintln!("missed: {}", missed.join("; "));
        std::process::exit(1);
    }
}
