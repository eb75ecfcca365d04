//! Akka's simple cluster listener, on three local nodes over QUIC: every node logs members
//! coming Up, found unreachable and removed. The third node then leaves.
//!
//! `cargo run -p fjell-examples --example cluster_listener`

use std::time::Duration;

use fjell_core::MemberStatus;
use fjell_examples::{listener, local::Loopback, Error};

fn main() -> Result<(), Error> {
    smol::block_on(async {
        let mut lo = Loopback::new(3)?;
        let mut nodes = Vec::new();
        for i in 0..3 {
            let c = lo.start(i)?;
            let (l, name) = (c.clone(), format!("node-{}", i + 1));
            smol::spawn(async move {
                listener::listen(&l, |line| println!("{name}: {line}")).await;
            })
            .detach();
            nodes.push(c);
        }
        for c in &nodes {
            c.within(
                Duration::from_secs(30),
                c.wait_for(|s| {
                    s.members.len() == 3 && s.members.iter().all(|m| m.status == MemberStatus::Up)
                }),
            )
            .await
            .flatten()
            .ok_or("the cluster did not form")?;
        }
        println!("node-3 leaves");
        nodes[2].shutdown().await;
        for c in &nodes[..2] {
            c.within(
                Duration::from_secs(30),
                c.wait_for(|s| s.members.len() == 2),
            )
            .await
            .flatten()
            .ok_or("node-3 was not removed")?;
        }
        for c in &nodes[..2] {
            c.shutdown().await;
        }
        Ok(())
    })
}
