//! Large application messages never hold up heartbeats: 4 MiB messages back to back
//! between two nodes for 30 s keep phi of the peer at most 1 with default settings.
//!
//! 30 s of wall-clock load, so not in the default suite:
//! `cargo test -p fjell-quic --test phi_under_load -- --ignored`.

mod common;

use std::time::Duration;

use common::*;
use fjell_quic::DevCa;

#[test]
#[ignore = "30 s of wall-clock load: run with --ignored"]
fn four_mib_messages_back_to_back_for_30_s_keep_phi_at_most_1() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (a, b) = two_nodes_up(&ca).await;
        let r = phi_under_load(&a, &b, Duration::from_secs(30), 4 * 1024 * 1024, 1).await;
        eprintln!(
            "4 MiB messages for {:?}: {} delivered ({:.0} MiB/s), max phi {:.3}",
            r.elapsed,
            r.delivered,
            r.bytes as f64 / r.elapsed.as_secs_f64() / 1048576.0,
            r.max_phi
        );
        // The link really was loaded: dozens of 4 MiB messages at the very least.
        assert!(r.delivered >= 20, "only {} messages delivered", r.delivered);
        assert!(r.max_phi <= 1.0, "phi reached {}", r.max_phi);
        let (ca_, cb) = (a.transport.counters(), b.transport.counters());
        assert_eq!(ca_.heartbeats_dropped + cb.heartbeats_dropped, 0);
        a.transport.close().await;
        b.transport.close().await;
    })
}
