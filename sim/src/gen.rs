//! Valid gossip states from a handful of bytes, for property tests and fuzz targets.
//!
//! Nodes 0..3 are members of every generated state and the only reachability observers and
//! subjects; nodes 3..6 may be members, absent or tombstoned. Each observer's rows follow one
//! fixed history, so two states holding the same observer version hold the same rows — as in
//! the protocol, where only the observer writes its rows.

use fjell_core::member::{AppVersion, Member, MemberStatus, RoleSet};
use fjell_core::testing::gossip::Gossip;
use fjell_core::ReachabilityStatus;
use fjell_core::{Instant, UniqueAddress};

/// Bytes [`gossip`] reads.
pub const SPEC_LEN: usize = 26;

/// The identity of generated node `i` (0..6).
pub fn node(i: usize) -> UniqueAddress {
    UniqueAddress::new(([10, 0, 0, i as u8 + 1], 7355).into(), 100 + i as u64)
}

/// Observer `o`'s k-th reachability change.
fn history(o: usize, k: usize) -> (usize, ReachabilityStatus) {
    let subject = (o + 1 + k) % 3;
    let status = [
        ReachabilityStatus::Unreachable,
        ReachabilityStatus::Reachable,
        ReachabilityStatus::Unreachable,
        ReachabilityStatus::Terminated,
        ReachabilityStatus::Reachable,
    ][k % 5];
    (subject, status)
}

/// A gossip state satisfying every invariant, described by `b`.
pub fn gossip<const M: usize, const R: usize>(b: &[u8; SPEC_LEN]) -> Gossip<M, R> {
    let mut g = Gossip::<M, R>::new();
    let member = |i: usize, spec: &[u8]| {
        let mut m = Member::joining(
            node(i),
            RoleSet::new(),
            AppVersion::new(u16::from(spec[2] % 3), 0, 0),
        );
        // Removed never appears in a member set: it stands in for a second chance at Up.
        m.status = match MemberStatus::ALL[spec[0] as usize % MemberStatus::ALL.len()] {
            MemberStatus::Removed => MemberStatus::Up,
            s => s,
        };
        // Joining and WeaklyUp members have no up-number yet; Up ones always have one.
        let numbered = match m.status {
            MemberStatus::Joining | MemberStatus::WeaklyUp => false,
            MemberStatus::Up
            | MemberStatus::PreparingForShutdown
            | MemberStatus::ReadyForShutdown => true,
            _ => spec[1] & 0x80 == 0,
        };
        if numbered {
            m.up_number = core::num::NonZeroU32::new(1 + u32::from(spec[1] % 5));
        }
        m
    };
    // bytes 0..9: the three core members; 9..12: extra kind; 12..21: extra members.
    for i in 0..3 {
        g.add_member(member(i, &b[i * 3..i * 3 + 3]))
            .expect("capacity");
    }
    for k in 0..3 {
        if b[9 + k] % 3 == 1 {
            g.add_member(member(3 + k, &b[12 + k * 3..15 + k * 3]))
                .expect("capacity");
        }
    }
    // bytes 21..24: how far each observer's history has gone.
    for o in 0..3 {
        for k in 0..(b[21 + o] % 5) as usize {
            let (subject, status) = history(o, k);
            g.change_reachability_for_tests(node(o), node(subject), status)
                .expect("capacity");
        }
    }
    // byte 24: clock counters (2 bits per node 0..3, plus extras via byte 12..).
    for i in 0..6 {
        if g.is_member(&node(i)) {
            let bumps = if i < 3 {
                (b[24] >> (2 * i)) & 3
            } else {
                b[12 + (i - 3) * 3] >> 6
            };
            for _ in 0..bumps {
                g.bump(node(i), false).expect("capacity");
            }
        }
    }
    // byte 25: seen set.
    for i in 0..6 {
        if b[25] & (1 << i) != 0 {
            g.add_seen(node(i));
        }
    }
    for k in 0..3 {
        if b[9 + k] % 3 == 2 {
            let age = u64::from(b[9 + k] / 3);
            g.remove_member(&node(3 + k), Instant::from_millis(1_000 + age));
        }
    }
    g.check_invariants().expect("generated gossip is valid");
    g
}

/// `a` merged with `b` (in place into a copy of `a`).
pub fn merged<const M: usize, const R: usize>(a: &Gossip<M, R>, b: &Gossip<M, R>) -> Gossip<M, R> {
    let mut out = a.clone();
    out.merge_in(b).expect("capacity");
    out.check_invariants().expect("merge keeps invariants");
    out
}

/// The replicated state without the seen set, which annotates one version and is not part of
/// the lattice.
pub fn lattice<const M: usize, const R: usize>(g: &Gossip<M, R>) -> Gossip<M, R> {
    let mut g = g.clone();
    g.clear_seen_for_tests();
    g
}

/// Checks the CRDT laws on `a`, `b`, `c`; panics with a description on a violation.
pub fn check_laws<const M: usize, const R: usize>(
    a: &Gossip<M, R>,
    b: &Gossip<M, R>,
    c: &Gossip<M, R>,
) {
    assert_eq!(merged(a, b), merged(b, a), "merge is not commutative");
    assert_eq!(
        lattice(&merged(&merged(a, b), c)),
        lattice(&merged(a, &merged(b, c))),
        "merge is not associative"
    );
    assert_eq!(&merged(a, a), a, "merge is not idempotent");
    let ab = merged(a, b);
    assert_eq!(
        lattice(&merged(&ab, b)),
        lattice(&ab),
        "merge does not absorb"
    );
}
