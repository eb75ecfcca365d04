//! News that a member is unreachable is passed on at once, not at the next gossip round.
//!
//! Failure detection is local: a member's few monitors flag it, and gossip spreads the flag.
//! At three rounds a second (with the speed-up) the last survivor of 1,000 learned it 2.9 s
//! after the first monitor (BENCHMARKS.md, issue 20). So a node that learns that a member is
//! newly unreachable, from its own failure detector or from gossip, pushes its state at once
//! to [`FANOUT`] members that have not seen it: the news spreads as a tree, a network hop per
//! level, while the regular rounds reach whom the tree missed. Each node passes it on once
//! (a flag it already holds is no news), so it costs at most [`FANOUT`] deltas per node per
//! member found unreachable, and a change of membership (a join, a leave) nothing: pushing
//! every new version from every node that learned it multiplied the bytes of a leave by
//! twenty.

use crate::gossip::Gossip;

/// Members a node pushes news to.
pub(crate) const FANOUT: usize = 3;

/// Whether `new` flags a member that no observer flags in `old`: news to a node that held
/// `old` and now holds `new`.
pub(crate) fn newly_flagged<const M: usize, const R: usize>(
    old: &Gossip<M, R>,
    new: &Gossip<M, R>,
) -> bool {
    let (old, new) = (old.reachability(), new.reachability());
    // Most states carry no flags, and most merges leave the table as it was.
    if new.is_empty() || old == new {
        return false;
    }
    new.flagged_subjects(|_| true).any(|s| old.is_reachable(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::UniqueAddress;
    use crate::member::{AppVersion, Member, MemberStatus, RoleSet};
    use crate::reachability::ReachabilityStatus;

    type G = Gossip<8, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    fn up(k: u8) -> G {
        let mut g = G::new();
        for i in 1..=k {
            let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
            m.status = MemberStatus::Up;
            g.add_member(m).unwrap();
        }
        g
    }

    #[test]
    fn a_flag_is_news_once() {
        let before = up(3);
        let mut after = before.clone();
        after
            .change_reachability_for_tests(n(1), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        assert!(newly_flagged(&before, &after));
        assert!(!newly_flagged(&after, &after), "the same flag again");
        // A second observer of the same member is no news either.
        let mut more = after.clone();
        more.change_reachability_for_tests(n(2), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        assert!(!newly_flagged(&after, &more));
        // A member back to reachable is not this kind of news.
        assert!(!newly_flagged(&after, &before));
    }
}
