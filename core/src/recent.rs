//! Which members this node heard from lately.
//!
//! During a partition every member of the other side looks like any other gossip target until
//! some monitor flags it, and a side's own news (its flags, its confirmation) then spreads by
//! lucky draws. A node that flags members itself prefers, among the targets that have not seen
//! its state, the ones it heard from within the last few gossip rounds: those are on its side
//! (campaign seed 6466: a pair of 12 took 4 s to share its flags, and down-all-when-unstable
//! overtook the decision).
//!
//! The other side of the same coin is a straggler: a member that this node keeps sending its
//! state to because it has not seen it, and that never answers. A member cut off with all its
//! ring neighbours is flagged by nobody on this side and stays reachable here; every node of
//! this side preferred it as the one member that had not seen the state, so most rounds went
//! where nothing arrives, and a member of this side that heard no gossip for 30 rounds stopped
//! itself as removed (`members_behind_a_partition_stay_unreachable_until_it_heals` with 4
//! monitors, seed 0). After [`STRAGGLER_PUSHES`] such sends without a word back a member is
//! no longer preferred; uniform draws still reach it, and hearing from it resets the count.
//!
//! Three bytes per member (the device preset lives within 16 KiB): the gossip round in which
//! the member at that index was last heard from (a wrapping stamp, so a round costs no pass
//! over the members), and the unanswered sends since then, saturating. Indices follow the
//! gossip's member list; when its length changes both are forgotten rather than
//! misattributed.

use crate::buf::Buf;

/// Sends of this node's state to a member that had not seen it, with nothing heard from the
/// member since, after which it is not preferred as a gossip target any more. A member that
/// receives the state has seen it and is not sent it again until the next change, so a
/// healthy member reaches this only across several changes in which this node picked it
/// before hearing from it by chance; it then loses this node's preference, not its gossip.
pub const STRAGGLER_PUSHES: u8 = 3;

/// The age a stamp is held at once it is this old: long past any `rounds` asked about, and far
/// enough from wrapping that one sweep of every stamp per [`FAR`] rounds keeps it from ever
/// wrapping back to "recent" (see [`Recent::tick`]).
const FAR: u16 = 0x4000;

/// When each member (by index) was heard from, and sends it did not answer. Per-member state
/// lives in [`Buf`]s like the rest of a node's (on the heap with `alloc`).
#[derive(Debug, Clone)]
pub struct Recent<const M: usize> {
    /// The round each member was last heard in; one entry per member of the list.
    heard: Buf<u16, M>,
    /// Unanswered sends per member, saturating; one entry per member of the list.
    pushed: Buf<u8, M>,
    round: u16,
    /// The next stamp [`Recent::tick`] ages out.
    sweep: u16,
    /// The member list's length the entries are for (`u16::MAX` before the first).
    len: u16,
}

impl<const M: usize> Default for Recent<M> {
    fn default() -> Self {
        Recent {
            heard: Buf::new(),
            pushed: Buf::new(),
            round: 0,
            sweep: 0,
            len: u16::MAX,
        }
    }
}

impl<const M: usize> Recent<M> {
    /// The member at `index` of a member list of length `len` was heard from.
    pub fn heard(&mut self, index: usize, len: usize) {
        self.align(len);
        if let Some(a) = self.heard.get_mut(index) {
            *a = self.round;
        }
        if let Some(p) = self.pushed.get_mut(index) {
            *p = 0;
        }
    }

    /// This node sent its state to the member at `index`, which had not seen it.
    pub fn pushed(&mut self, index: usize, len: usize) {
        self.align(len);
        if let Some(p) = self.pushed.get_mut(index) {
            *p = p.saturating_add(1);
        }
    }

    /// Whether the member at `index` was sent the state [`STRAGGLER_PUSHES`] times without
    /// answering.
    pub fn is_straggler(&self, index: usize, len: usize) -> bool {
        self.aligned(len)
            && self
                .pushed
                .get(index)
                .is_some_and(|p| *p >= STRAGGLER_PUSHES)
    }

    /// One gossip round passed, with `len` members. Constant work: one stamp per [`FAR`]
    /// members is aged out per round, so every stamp is visited at least once per `FAR`
    /// rounds and none grows old enough to wrap back to "recent".
    pub fn tick(&mut self, len: usize) {
        self.align(len);
        self.round = self.round.wrapping_add(1);
        let n = self.heard.len();
        for _ in 0..n.div_ceil(usize::from(FAR)) {
            let j = usize::from(self.sweep) % n;
            let round = self.round;
            if let Some(h) = self.heard.get_mut(j) {
                if round.wrapping_sub(*h) > FAR {
                    *h = round.wrapping_sub(FAR);
                }
            }
            self.sweep = ((j + 1) % n) as u16;
        }
    }

    /// Whether the member at `index` was heard from within `rounds` gossip rounds.
    pub fn is_recent(&self, index: usize, len: usize, rounds: u8) -> bool {
        self.aligned(len)
            && self
                .heard
                .get(index)
                .is_some_and(|h| self.round.wrapping_sub(*h) <= u16::from(rounds))
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.heard.clear();
        self.pushed.clear();
        self.len = u16::MAX;
    }

    fn aligned(&self, len: usize) -> bool {
        usize::from(self.len) == len
    }

    /// Entries for a list of `len` members, all never heard from, if the length changed.
    /// Entries that do not fit (beyond `M`, or an allocation refused) are simply missing:
    /// such a member counts as never heard and never a straggler.
    fn align(&mut self, len: usize) {
        if self.aligned(len) {
            return;
        }
        self.heard.clear();
        self.pushed.clear();
        let never = self.round.wrapping_sub(FAR);
        for _ in 0..len.min(M) {
            if self.heard.push(never).is_err() || self.pushed.push(0).is_err() {
                break;
            }
        }
        self.sweep = 0;
        self.len = u16::try_from(len).unwrap_or(u16::MAX - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_by_round_and_forgets_when_the_list_changes() {
        let mut r: Recent<4> = Recent::default();
        r.heard(1, 3);
        r.tick(3);
        r.tick(3);
        assert!(r.is_recent(1, 3, 2) && !r.is_recent(1, 3, 1));
        assert!(!r.is_recent(0, 3, 200), "never heard");
        r.tick(4);
        assert!(!r.is_recent(1, 4, 200), "the list changed");
        r.heard(9, 4);
        assert!(!r.is_recent(9, 4, 200), "out of range is ignored");
    }

    #[test]
    fn a_member_never_heard_again_never_looks_recent() {
        let mut r: Recent<4> = Recent::default();
        r.heard(2, 3);
        for t in 0..200_000u32 {
            r.tick(3);
            assert!(!r.is_recent(2, 3, u8::MAX) || t < 255, "round {t}");
            assert!(!r.is_recent(0, 3, u8::MAX), "never heard, round {t}");
        }
        r.heard(2, 3);
        assert!(r.is_recent(2, 3, 0));
    }

    #[test]
    fn unanswered_sends_make_a_straggler_until_it_is_heard() {
        let mut r: Recent<4> = Recent::default();
        for _ in 0..STRAGGLER_PUSHES - 1 {
            r.pushed(2, 3);
        }
        assert!(!r.is_straggler(2, 3));
        r.pushed(2, 3);
        assert!(r.is_straggler(2, 3) && !r.is_straggler(1, 3));
        r.heard(2, 3);
        assert!(!r.is_straggler(2, 3), "an answer resets the count");
        for _ in 0..STRAGGLER_PUSHES {
            r.pushed(2, 3);
        }
        assert!(!r.is_straggler(2, 4), "the list changed");
        r.pushed(2, 4);
        assert!(!r.is_straggler(2, 4), "forgotten, not misattributed");
    }
}
