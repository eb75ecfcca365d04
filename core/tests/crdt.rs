//! Property tests: gossip merge is a state CRDT (commutative, associative, idempotent), and
//! encoding round-trips, on generated states that satisfy the gossip invariants.

use fjell_core::gossip::Gossip;
use fjell_core::wire::{self, Message, Outgoing};
use fjell_core::Instant;
use fjell_sim::gen::{self, node, SPEC_LEN};
use proptest::prelude::*;

type G = Gossip<8, 32>;

fn state() -> impl Strategy<Value = G> {
    any::<[u8; SPEC_LEN]>().prop_map(|b| gen::gossip::<8, 32>(&b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn merge_is_a_crdt(a in state(), b in state(), c in state()) {
        gen::check_laws(&a, &b, &c);
    }

    #[test]
    fn merged_state_dominates_both_sides(a in state(), b in state()) {
        use fjell_core::vclock::Causality::*;
        let m = gen::merged(&a, &b);
        for side in [&a, &b] {
            // Entries dropped by tombstones aside, the merge is never older than either side.
            if side.tombstones().iter().all(|t| m.is_tombstoned(&t.address))
                && side.members().iter().all(|x| m.is_member(&x.address)) {
                prop_assert!(matches!(m.compare(side), Same | After));
            }
        }
    }

    #[test]
    fn equal_versions_union_their_seen_sets(a in state(), seen in any::<u8>()) {
        let mut b = a.clone();
        for i in 0..6 {
            if seen & (1 << i) != 0 {
                b.add_seen(node(i));
            }
        }
        let m = gen::merged(&a, &b);
        for x in a.seen().iter().chain(b.seen()) {
            prop_assert!(m.seen_by(x));
        }
    }

    #[test]
    fn gossip_round_trips_through_the_wire(g in state()) {
        let mut buf = vec![0u8; 4096];
        let now = Instant::from_millis(60_000);
        let len = wire::encode(&Outgoing::Gossip { from: node(0), to: node(1) }, &g, now, &mut buf).unwrap();
        let mut back = G::new();
        let msg = wire::decode(&buf[..len], &mut back, now).unwrap();
        prop_assert_eq!(msg, Message::Gossip { from: node(0), to: node(1) });
        // Tombstone times survive at millisecond resolution (ages, not instants, travel).
        prop_assert_eq!(back, g);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut scratch = G::new();
        let _ = wire::decode(&bytes, &mut scratch, Instant::ZERO);
        let mut framed = vec![wire::MAGIC, wire::PROTOCOL_VERSION];
        framed.extend_from_slice(&bytes);
        if let Ok(Message::Gossip { .. } | Message::Welcome { .. }) = wire::decode(&framed, &mut scratch, Instant::ZERO) {
            prop_assert!(scratch.check_invariants().is_ok());
        }
    }
}
