//! With the `alloc` feature a node keeps its per-member state on the heap: the largest preset
//! is built like any small value, on a small stack, and grows with its cluster.
#![cfg(feature = "alloc")]

use std::net::SocketAddr;

use fjell_core::{Config, Instant, ServerNode, Sink, Transmit, UniqueAddress};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7355))
}

#[test]
fn the_server_preset_is_a_small_value() {
    // Without `alloc` it is 1.9 MB (the `sizes` example).
    assert!(
        std::mem::size_of::<ServerNode>() <= 16 * 1024,
        "{}",
        std::mem::size_of::<ServerNode>()
    );
}

/// Counts what a node sends.
struct Count(usize);

impl Sink for Count {
    fn transmit(&mut self, _: &Transmit, _: &[u8]) {
        self.0 += 1;
    }
    fn lease(&mut self, _: fjell_core::LeaseRequest, _: Instant) -> Option<bool> {
        None
    }
    fn event(&mut self, _: fjell_core::Event) {}
}

#[test]
fn a_server_node_is_built_and_founds_a_cluster_on_a_small_stack() {
    // 256 KiB of stack in a debug build: before `alloc`, building a ServerNode needed a 16 MB
    // stack (the value passes through the stack) and its message buffer was 842 kB.
    let run = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut node = Box::new(
                ServerNode::new(Config::default(), UniqueAddress::new(addr(1), 1), 7).unwrap(),
            );
            node.join_seed_nodes(Instant::ZERO, &[addr(1)]).unwrap();
            let mut buf = Vec::new();
            let mut sent = Count(0);
            while node.members().is_empty() {
                let now = node.poll_timeout().unwrap();
                node.handle_timeout(now);
                node.drain_vec(now, &mut buf, &mut sent);
            }
            (node.members().len(), buf.len())
        })
        .unwrap();
    let (members, buf) = run.join().unwrap();
    assert_eq!(members, 1);
    assert!(buf < 4096, "the buffer grew to {buf} bytes");
}
