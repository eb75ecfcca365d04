//! The node's two gossip states: the current one, and the one an incoming message is decoded
//! (and merged) into. Adopting the incoming state flips which is which instead of copying
//! kilobytes.
//!
//! Which buffer is current is one `bool`, so the two are always distinct and every access is
//! in range by construction. The accessors are not inlined: the node reaches its states from
//! some seventy places, and a copy of the address arithmetic at each was 1.7 kB of a device's
//! flash.

/// One of the two states, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The state this node holds.
    Current,
    /// The state the last message was decoded into.
    Incoming,
}

/// Two states, one current and one incoming.
pub(crate) struct States<T> {
    bufs: [T; 2],
    /// Whether `bufs[1]` is current.
    flipped: bool,
}

impl<T> States<T> {
    /// `current` and `incoming`, in those roles.
    pub(crate) fn new(current: T, incoming: T) -> Self {
        States {
            bufs: [current, incoming],
            flipped: false,
        }
    }

    fn index(&self, slot: Slot) -> usize {
        usize::from(self.flipped != (slot == Slot::Incoming))
    }

    /// The state in `slot`.
    pub(crate) fn get(&self, slot: Slot) -> &T {
        &self.bufs[self.index(slot)]
    }

    /// The current state.
    #[inline(never)]
    pub(crate) fn cur(&self) -> &T {
        self.get(Slot::Current)
    }

    /// The current state, to change it.
    #[inline(never)]
    pub(crate) fn cur_mut(&mut self) -> &mut T {
        let i = self.index(Slot::Current);
        &mut self.bufs[i]
    }

    /// The incoming state.
    #[inline(never)]
    pub(crate) fn incoming(&self) -> &T {
        self.get(Slot::Incoming)
    }

    /// Both, to change them: `(current, incoming)`.
    pub(crate) fn both_mut(&mut self) -> (&mut T, &mut T) {
        let [a, b] = &mut self.bufs;
        if self.flipped {
            (b, a)
        } else {
            (a, b)
        }
    }

    /// The incoming state becomes the current one (and the old current one the buffer the
    /// next message is decoded into).
    pub(crate) fn adopt_incoming(&mut self) {
        self.flipped = !self.flipped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopting_swaps_the_roles_and_keeps_both() {
        let mut s = States::new('a', 'b');
        assert_eq!((*s.cur(), *s.incoming()), ('a', 'b'));
        *s.both_mut().1 = 'c';
        s.adopt_incoming();
        assert_eq!((*s.cur(), *s.incoming()), ('c', 'a'));
        assert_eq!(*s.get(Slot::Incoming), 'a');
        *s.cur_mut() = 'd';
        let (cur, inc) = s.both_mut();
        assert_eq!((*cur, *inc), ('d', 'a'));
        s.adopt_incoming();
        assert_eq!((*s.cur(), *s.incoming()), ('a', 'd'));
    }
}
