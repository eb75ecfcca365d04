//! Cluster singleton: exactly one instance of a task in the cluster (or among the members
//! with a role), on the oldest member, as Pekko's `ClusterSingletonManager` and
//! `ClusterSingletonProxy`.
//!
//! - Start it on every node that may host it: [`ClusterSingleton::start`] with the same
//!   name everywhere, a [`SingletonSettings`] and an async function given a
//!   [`SingletonContext`]. The instance runs on the oldest Up member ([`decide`] has the rules).
//! - **Hand-over** when the host leaves: the would-be host asks it to hand over, the old
//!   instance is told to stop ([`SingletonContext::stopping`]) and ends (or is dropped after
//!   [`SingletonSettings::stop_timeout`]), and only then does the new one start.
//! - **Fail-over** after a crash: the new instance starts once the crashed host has been
//!   downed (by the split brain resolver, or by hand) and removed, and then
//!   [`SingletonSettings::stop_timeout`] more (the longest its instance, should its node
//!   still run on the other side of a partition, may take to stop). fjell's leader waits the
//!   down-removal margin before removing a downed member, time for the other side to have
//!   downed itself. Without downing a crashed host is never removed, and the singleton does
//!   not move. A host whose whole process is paused (stopped, swapped out) for longer than
//!   the fail-over takes resumes with its instance still running until it learns it was
//!   downed; nothing here fences it (Pekko's answer is a lease, not built yet).
//! - Talk to the instance from anywhere with a [`SingletonProxy`]: typed messages and
//!   requests go to the current host; while there is none (hand-over, fail-over) they wait,
//!   at most [`SingletonSettings::buffer_size`] at once per proxy ([`ProxyError::BufferFull`]
//!   beyond) and at most [`SingletonSettings::deliver_timeout`] each.
//!
//! Every node that runs the manager also needs the node's [`Hub`](crate::hub::Hub), which
//! carries the managers' messages and the proxies'.

pub mod decide;
mod run;

pub use run::{
    ClusterSingleton, ProxyError, SingletonContext, SingletonMessage, SingletonProxy,
    SingletonSettings, StartError,
};
