//! Leases for the lease-majority strategy: a lock held outside the cluster (a database row, a
//! Kubernetes lease, a consensus store) that at most one side of a partition can hold.
//!
//! The node never talks to the lease itself. It asks through [`crate::Node::poll_lease`]; the
//! driver performs the request with whatever lease the user provides and reports the answer
//! with [`crate::Node::handle_lease`]. [`Lease`] is the shape of a lease a driver can call
//! synchronously; [`MemoryLease`] is one held in memory, for tests and simulations.

use core::time::Duration;

use crate::address::UniqueAddress;
use crate::time::Instant;

/// What the node asks of the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRequest {
    /// Acquire it for this node; answer with [`crate::Node::handle_lease`].
    Acquire,
    /// Release it; no answer is expected.
    Release,
}

/// A lease that at most one owner holds at a time.
pub trait Lease {
    /// Tries to take the lease for `owner` (succeeds if `owner` already holds it).
    fn try_acquire(&mut self, owner: &UniqueAddress, now: Instant) -> bool;
    /// Gives the lease up if `owner` holds it.
    fn release(&mut self, owner: &UniqueAddress);

    /// Carries out the node's request for `owner` at once, answering as
    /// [`Sink::lease`](crate::Sink::lease) does: `Some(held)` for an acquire, `None` for a
    /// release.
    fn answer(&mut self, req: LeaseRequest, owner: &UniqueAddress, now: Instant) -> Option<bool> {
        match req {
            LeaseRequest::Acquire => Some(self.try_acquire(owner, now)),
            LeaseRequest::Release => {
                self.release(owner);
                None
            }
        }
    }
}

/// A lease in memory, shared by the nodes of a test or simulation. A holder that never
/// releases it (because it crashed) loses it `ttl` after acquiring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLease {
    holder: Option<(UniqueAddress, Instant)>,
    ttl: Duration,
}

impl MemoryLease {
    /// A free lease that expires `ttl` after it is taken.
    pub const fn new(ttl: Duration) -> Self {
        MemoryLease { holder: None, ttl }
    }

    /// The current holder, if the lease has not expired at `now`.
    pub fn holder(&self, now: Instant) -> Option<UniqueAddress> {
        self.holder
            .filter(|(_, at)| now < *at + self.ttl)
            .map(|(a, _)| a)
    }
}

impl Lease for MemoryLease {
    fn try_acquire(&mut self, owner: &UniqueAddress, now: Instant) -> bool {
        match self.holder(now) {
            Some(h) if h != *owner => false,
            _ => {
                self.holder = Some((*owner, now));
                true
            }
        }
    }

    fn release(&mut self, owner: &UniqueAddress) {
        if self.holder.is_some_and(|(h, _)| h == *owner) {
            self.holder = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_until_release_or_expiry() {
        let a = UniqueAddress::new(([10, 0, 0, 1], 1).into(), 1);
        let b = UniqueAddress::new(([10, 0, 0, 2], 1).into(), 1);
        let t0 = Instant::from_micros(0);
        let mut l = MemoryLease::new(Duration::from_secs(60));
        assert!(l.try_acquire(&a, t0));
        assert!(!l.try_acquire(&b, t0 + Duration::from_secs(1)));
        assert!(l.try_acquire(&a, t0 + Duration::from_secs(1)), "re-entrant");
        l.release(&b);
        assert_eq!(l.holder(t0), Some(a), "only the holder releases");
        l.release(&a);
        assert!(l.try_acquire(&b, t0 + Duration::from_secs(2)));
        assert!(
            l.try_acquire(&a, t0 + Duration::from_secs(63)),
            "expired holder"
        );
    }
}
