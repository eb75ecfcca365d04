//! Where [`Node::poll_transmit`](crate::Node::poll_transmit) writes a message: a caller's byte
//! slice of fixed length, or with the `alloc` feature a `Vec<u8>` that grows to the message
//! ([`Node::poll_transmit_vec`](crate::Node::poll_transmit_vec)).
//!
//! A slice must hold [`Node::MAX_MESSAGE_LEN`](crate::Node::MAX_MESSAGE_LEN) bytes, the
//! largest message the node's capacities allow (842 kB for a `ServerNode`); a vector holds
//! the largest message the node has sent so far, which is what a server running a small
//! cluster wants.

/// Room for one outgoing message.
pub(crate) trait Room {
    /// Whether [`Room::grow`] can ever succeed (no counting pass, and no code for it, where
    /// it cannot).
    const GROWS: bool;
    /// The bytes a message may be written into now.
    fn bytes(&mut self) -> &mut [u8];
    /// Makes `bytes` at least `len` long; false if it cannot.
    fn grow(&mut self, len: usize) -> bool;
}

impl Room for [u8] {
    const GROWS: bool = false;

    fn bytes(&mut self) -> &mut [u8] {
        self
    }

    fn grow(&mut self, _: usize) -> bool {
        false
    }
}

#[cfg(feature = "alloc")]
impl Room for alloc::vec::Vec<u8> {
    const GROWS: bool = true;

    fn bytes(&mut self) -> &mut [u8] {
        self
    }

    fn grow(&mut self, len: usize) -> bool {
        if len > self.len() {
            if self.try_reserve_exact(len - self.len()).is_err() {
                return false;
            }
            self.resize(len, 0);
        }
        true
    }
}
