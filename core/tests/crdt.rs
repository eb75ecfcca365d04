//! Property tests: gossip merge is a state CRDT (commutative, associative, idempotent), and
//! encoding round-trips, on generated states that satisfy the gossip invariants.

use fjell_core::testing::gossip::Gossip;
use fjell_core::testing::wire::{InScratch, Message};
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
        let len = Message::Gossip { from: node(0), to: node(1), gossip: &g }.emit(now, &mut buf).unwrap();
        let mut back = G::new();
        let msg = Message::parse(&buf[..len], &mut back, now).unwrap();
        prop_assert_eq!(msg, Message::Gossip { from: node(0), to: node(1), gossip: InScratch });
        // Tombstone times survive at millisecond resolution (ages, not instants, travel).
        prop_assert_eq!(back, g);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut scratch = G::new();
        let _ = Message::parse(&bytes, &mut scratch, Instant::ZERO);
    }
}

/// Runs `cases` cases of `strategy` through `check`, which says whether the case reached the
/// property's assertion; fails unless at least `min_reached` did (a property whose check is
/// rarely reached proves little).
fn reaching<S: Strategy>(
    cases: u32,
    min_reached: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) {
    use std::cell::Cell;
    let reached = Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    runner
        .run(&strategy, |v| {
            if check(v)? {
                reached.set(reached.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "the check was reached in {} of {cases} cases",
        reached.get()
    );
    assert!(
        reached.get() >= min_reached,
        "the check was reached in {} of {cases} cases",
        reached.get()
    );
}

/// Apart from members and entries that tombstones drop, a merge is never older than either
/// side. Counted: the condition holds for most generated pairs.
#[test]
fn merged_state_dominates_both_sides() {
    use fjell_core::testing::vclock::Causality::*;
    reaching(3000, 1500, (state(), state()), |(a, b)| {
        let m = gen::merged(&a, &b);
        let mut reached = false;
        for side in [&a, &b] {
            if side
                .tombstones()
                .iter()
                .all(|t| m.is_tombstoned(&t.address))
                && side.members().iter().all(|x| m.is_member(&x.address))
            {
                prop_assert!(matches!(m.compare(side), Same | After));
                reached = true;
            }
        }
        Ok(reached)
    });
}

/// A valid message with a few bytes changed either fails to decode or decodes into a state
/// that keeps every invariant. Random bytes almost never decode, so this starts from valid
/// encodings; counted: a good share of the mutants must decode for the check to mean
/// anything.
#[test]
fn mutated_messages_decode_into_valid_states_or_not_at_all() {
    let mutants = (
        state(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    );
    reaching(3000, 300, mutants, |(g, edits)| {
        let mut buf = vec![0u8; 4096];
        let now = Instant::from_millis(60_000);
        let out = Message::Gossip {
            from: node(0),
            to: node(1),
            gossip: &g,
        };
        let len = out.emit(now, &mut buf).unwrap();
        let bytes = &mut buf[..len];
        for (at, value) in edits {
            // Past the envelope (magic and version), which only ever refuses.
            let i = 2 + at.index(len - 2);
            bytes[i] = value;
        }
        let mut back = G::new();
        match Message::parse(bytes, &mut back, now) {
            Ok(Message::Gossip { .. } | Message::Welcome { .. }) => {
                prop_assert!(
                    back.check_invariants().is_ok(),
                    "{:?}",
                    back.check_invariants()
                );
                Ok(true)
            }
            _ => Ok(false),
        }
    });
}
