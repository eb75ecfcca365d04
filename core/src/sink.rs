//! Where a node's outputs go: the embedder's side of [`Node::drain`].
//!
//! After every input a node may have messages to send, a lease request and events. Polling
//! each by hand ([`Node::poll_transmit`], [`Node::poll_lease`], [`Node::poll_event`]) is easy to
//! get incomplete — a loop that forgets `poll_lease` never answers the lease-majority strategy,
//! and that side of a partition never decides. [`Node::drain`] empties all of them, in the
//! order the node needs, into one [`Sink`] (as smoltcp's `Interface::poll` takes a device and
//! foca takes a `Runtime`).

use crate::event::Event;
use crate::lease::LeaseRequest;
use crate::node::{Node, Transmit};
use crate::room::Room;
use crate::time::Instant;

/// Receives a node's outputs from [`Node::drain`].
pub trait Sink {
    /// A message to send to `t.destination` on lane `t.class`: `bytes` are its `t.len` bytes.
    /// Best effort, like the network: the node resends what matters.
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]);

    /// A request for the lease of the lease-majority strategy, at `now`.
    ///
    /// For [`LeaseRequest::Acquire`], return `Some(granted)` to answer at once (a lease that
    /// answers synchronously, such as a [`crate::MemoryLease`]): `drain` feeds the answer back
    /// with [`Node::handle_lease`] and drains its outputs too. Return `None` to answer later
    /// with [`Node::handle_lease`] (and `drain` again after it). For
    /// [`LeaseRequest::Release`] no answer is expected and the return value is ignored.
    fn lease(&mut self, req: LeaseRequest, now: Instant) -> Option<bool>;

    /// An event, in the order the node produced it.
    fn event(&mut self, e: Event);
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        (**self).transmit(t, bytes)
    }

    fn lease(&mut self, req: LeaseRequest, now: Instant) -> Option<bool> {
        (**self).lease(req, now)
    }

    fn event(&mut self, e: Event) {
        (**self).event(e)
    }
}

impl<const M: usize, const R: usize, const H: usize> Node<M, R, H> {
    /// Empties every output of the inputs so far into `sink`: call it after every input
    /// ([`Node::handle_message`], [`Node::handle_timeout`], [`Node::handle_lease`] or a
    /// command), then wait until [`Node::poll_timeout`] or the next message.
    ///
    /// The order, in passes until no lease answer comes back at once:
    /// 1. messages ([`Node::poll_transmit`] into `buf`, which should hold
    ///    [`Node::MAX_MESSAGE_LEN`] bytes; a message that does not fit is dropped and counted
    ///    in [`crate::Stats::buffer_too_small`]). They go first so that an embedder reacting
    ///    to an event (closing its socket on [`Event::Stopped`]) has already sent the node's
    ///    last words: its gossip and departure confirmations;
    /// 2. events ([`Node::poll_event`]), before any lease answer is fed back: the node holds
    ///    only a few notices, and an answer is a new input that may add more;
    /// 3. lease requests ([`Node::poll_lease`]); an `Acquire` the sink answers at once goes to
    ///    [`Node::handle_lease`], and its outputs are the next pass.
    pub fn drain(&mut self, now: Instant, buf: &mut [u8], sink: &mut impl Sink) {
        self.drain_into(now, buf, sink)
    }

    /// [`Node::drain`] with messages written into a vector that grows to the largest message
    /// sent (with the `alloc` feature; see [`Node::poll_transmit_vec`]). Start it empty.
    #[cfg(feature = "alloc")]
    pub fn drain_vec(&mut self, now: Instant, buf: &mut alloc::vec::Vec<u8>, sink: &mut impl Sink) {
        self.drain_into(now, buf, sink)
    }

    fn drain_into<B: Room + ?Sized>(&mut self, now: Instant, buf: &mut B, sink: &mut impl Sink) {
        loop {
            while let Some(t) = self.transmit_into(now, buf) {
                sink.transmit(&t, &buf.bytes()[..t.len]);
            }
            while let Some(e) = self.poll_event() {
                sink.event(e);
            }
            let mut answered = false;
            while let Some(req) = self.poll_lease() {
                let answer = sink.lease(req, now);
                if let (LeaseRequest::Acquire, Some(granted)) = (req, answer) {
                    self.handle_lease(now, granted);
                    answered = true;
                }
            }
            if !answered {
                return;
            }
        }
    }
}
