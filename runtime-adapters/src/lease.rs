//! Leases for the lease-majority downing strategy.
//!
//! The core never talks to a lease; it asks the driver
//! ([`Node::poll_lease`](fjell_core::Node::poll_lease)), and the driver performs the request
//! with the [`ClusterLease`] given to
//! [`ClusterBuilder::lease`](crate::ClusterBuilder::lease) and reports the answer. While an
//! acquisition is in flight the driver keeps serving messages and timers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjell_core::{Instant, Lease, MemoryLease, UniqueAddress};

use crate::runtime::BoxFuture;

/// A lock held outside the cluster (a database row, a Kubernetes lease, a consensus store)
/// that at most one side of a partition can hold. Implement it over your store.
///
/// The futures run on the node's driver: with [`ClusterBuilder::start`] that is the node's
/// own thread, outside any tokio runtime. A lease built on tokio (its client needs tokio's
/// reactor) should spawn its work on its runtime and await the result, or the node should be
/// started with [`ClusterBuilder::start_on`] and `Tokio`.
///
/// [`ClusterBuilder::start`]: crate::ClusterBuilder::start
/// [`ClusterBuilder::start_on`]: crate::ClusterBuilder::start_on
pub trait ClusterLease: Send + Sync + 'static {
    /// Tries to take the lease for `owner`; `true` if `owner` holds it afterwards (also when
    /// it already held it). A lease that cannot be reached should answer `false`: the side
    /// that cannot prove it holds the lease downs itself.
    fn acquire(&self, owner: UniqueAddress) -> BoxFuture<bool>;

    /// Gives the lease up if `owner` holds it. Nobody waits for the answer.
    fn release(&self, owner: UniqueAddress) -> BoxFuture<()>;
}

/// [`fjell_core::MemoryLease`] shared by the nodes of one process, for tests and demos.
/// Clones share the lease.
#[derive(Debug, Clone)]
pub struct SharedMemoryLease {
    lease: Arc<Mutex<MemoryLease>>,
    origin: std::time::Instant,
}

impl SharedMemoryLease {
    /// A free lease that a holder that never releases it loses `ttl` after taking it.
    pub fn new(ttl: Duration) -> Self {
        SharedMemoryLease {
            lease: Arc::new(Mutex::new(MemoryLease::new(ttl))),
            origin: std::time::Instant::now(),
        }
    }

    /// The current holder, if any.
    pub fn holder(&self) -> Option<UniqueAddress> {
        let now = self.now();
        self.lease.lock().unwrap().holder(now)
    }

    fn now(&self) -> Instant {
        crate::runtime::instant_since(self.origin, std::time::Instant::now())
    }
}

impl ClusterLease for SharedMemoryLease {
    fn acquire(&self, owner: UniqueAddress) -> BoxFuture<bool> {
        let now = self.now();
        let got = self.lease.lock().unwrap().try_acquire(&owner, now);
        Box::pin(async move { got })
    }

    fn release(&self, owner: UniqueAddress) -> BoxFuture<()> {
        self.lease.lock().unwrap().release(&owner);
        Box::pin(async {})
    }
}
