//! The memory of each capacity preset, per member of capacity, against its target:
//! `cargo run --release -p fjell-core --example sizes`. Exits with 1 if a target is missed.
//!
//! Without the `alloc` feature (as here) a node's value is its whole state. With
//! `--features alloc` it prints the value alone, whose per-member state is on the heap and
//! grows with the cluster: `cargo bench -p fjell-compare --bench memory` measures that.

use core::mem::size_of;

use fjell_core::{DeviceNode, Node, ServerNode};

fn main() {
    // (name, bytes, member capacity, target in bytes)
    let rows: [(&str, usize, usize, Option<usize>); 4] = [
        (
            "DeviceNode = Node<16, 12, 8>",
            size_of::<DeviceNode>(),
            16,
            Some(16 * 1024),
        ),
        (
            "Node<256, 128, 1000>",
            size_of::<Node<256, 128, 1000>>(),
            256,
            None,
        ),
        (
            "Node<1024, 512, 1000>",
            size_of::<Node<1024, 512, 1000>>(),
            1024,
            None,
        ),
        (
            "ServerNode = Node<4096, 2048, 1000>",
            size_of::<ServerNode>(),
            4096,
            Some(2_000_000),
        ),
    ];
    let mut missed = false;
    if cfg!(feature = "alloc") {
        println!("With `alloc`: the node value alone; the per-member state is on the heap.\n");
    }
    println!("| preset | bytes | bytes per member of capacity | target |");
    println!("|---|---|---|---|");
    for (name, bytes, members, target) in rows {
        let verdict = match target {
            Some(t) if bytes <= t => format!("≤ {t}: met"),
            Some(t) => {
                missed = true;
                format!("≤ {t}: **missed**")
            }
            None => "—".into(),
        };
        println!(
            "| `{name}` | {bytes} | {:.0} | {verdict} |",
            bytes as f64 / members as f64
        );
    }
    if missed {
        std::process::exit(1);
    }
}
