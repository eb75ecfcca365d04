//! Which members this node heard from lately.
//!
//! During a partition every member of the other side looks like any other gossip target until
//! some monitor flags it, and a side's own news (its flags, its confirmation) then spreads by
//! lucky draws. A node that flags members itself prefers, among the targets that have not seen
//! its state, the ones it heard from within the last few gossip rounds: those are on its side
//! (campaign seed 6466: a pair of 12 took 4 s to share its flags, and down-all-when-unstable
//! overtook the decision).
//!
//! One byte per member (the device preset lives within 16 KiB): the gossip rounds since the
//! member at that index was last heard from, saturating. Indices follow the gossip's member
//! list; when its length changes the ages are forgotten rather than misattributed.

/// Gossip rounds since each member (by index) was heard from.
#[derive(Debug, Clone)]
pub struct Recent<const M: usize> {
    age: [u8; M],
    len: u16,
}

impl<const M: usize> Default for Recent<M> {
    fn default() -> Self {
        Recent {
            age: [u8::MAX; M],
            len: 0,
        }
    }
}

impl<const M: usize> Recent<M> {
    /// The member at `index` of a member list of length `len` was heard from.
    pub fn heard(&mut self, index: usize, len: usize) {
        self.align(len);
        if let Some(a) = self.age.get_mut(index) {
            *a = 0;
        }
    }

    /// One gossip round passed, with `len` members.
    pub fn tick(&mut self, len: usize) {
        self.align(len);
        for a in &mut self.age {
            *a = a.saturating_add(1);
        }
    }

    /// Whether the member at `index` was heard from within `rounds` gossip rounds.
    pub fn is_recent(&self, index: usize, len: usize, rounds: u8) -> bool {
        usize::from(self.len) == len && self.age.get(index).is_some_and(|a| *a <= rounds)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    fn align(&mut self, len: usize) {
        if usize::from(self.len) != len {
            self.age = [u8::MAX; M];
            self.len = len as u16;
        }
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
}
