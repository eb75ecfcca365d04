//! Cluster metrics and adaptive load balancing (Pekko's Cluster Metrics extension): every
//! node reads its own CPU, load and memory, the nodes gossip what they know, and adaptive
//! routers ([`RoutingLogic::AdaptiveLoadBalancing`](crate::routing::RoutingLogic)) send more
//! to the members with more room.
//!
//! Two layers, as for the other tools:
//!
//! - **Sans-IO** — [`MetricsGossip`] (the table of every eligible member's latest
//!   [`NodeMetrics`], with [`Ewma`] moving averages; merging keeps the newest by the origin's
//!   timestamp), [`MetricsSelector`] (how free a node is, 0 to 1), [`weights`] and
//!   [`WeightedRoutees`] (a weighted random pick). No clock, no sockets: time and membership
//!   are data.
//! - **Runtime** — [`ClusterMetrics`]: a task on the node's [`Hub`](crate::hub::Hub) that
//!   samples with a [`Collector`] ([`SystemCollector`] by default: `/proc` on Linux, no
//!   native library), gossips, follows membership and publishes the table.
//!
//! **Which nodes count**: members Up or WeaklyUp and not flagged unreachable; a member that
//! leaves, is removed or becomes unreachable is purged from the table at once, and is taken
//! back from gossip once it is reachable again.
//!
//! **Differences from Pekko**: a node adopts a peer's newest sample as that peer smoothed it
//! (Pekko smooths what it hears again, so duplicate and stale copies distort the average);
//! there is no JVM heap, so the memory selector rates system memory; if every node is nearly
//! full the routees all weigh 1 instead of an empty table that drops messages; the table is
//! published on every change, not only after each sample; a metric the collector stops
//! reporting disappears from the node's entry instead of repeating its last value.
//!
//! ## Example
//!
//! Two nodes' metrics, a merge and the weights an adaptive router derives, without a network:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! use fjell_runtime::core::{AppVersion, Member, MemberStatus, RoleSet, UniqueAddress};
//! use fjell_tools::metrics::{
//!     names, weights, Ewma, MetricsGossip, MetricsSelector, Reading, WeightedRoutees,
//! };
//!
//! let up = |i: u8| {
//!     let addr = SocketAddr::from(([10, 0, 0, i], 7355));
//!     let mut m = Member::joining(UniqueAddress::new(addr, 1), RoleSet::new(), AppVersion::default());
//!     m.status = MemberStatus::Up;
//!     m
//! };
//! let (a, b) = (up(1), up(2));
//! let members = [a.clone(), b.clone()];
//! // Pekko's defaults: a sample every 3 s, averages halving every 12 s.
//! let alpha = Ewma::alpha(Duration::from_secs(3), Duration::from_secs(12));
//! assert!((alpha - 0.159).abs() < 0.001);
//!
//! // Each node records its own sample: `a` is busy, `b` nearly idle.
//! let mut on_a = MetricsGossip::new(a.address, alpha);
//! let mut on_b = MetricsGossip::new(b.address, alpha);
//! on_a.update_members(&members, &[]);
//! on_b.update_members(&members, &[]);
//! on_a.record(1_000, &[Reading::smoothed(names::CPU_COMBINED, 0.75)]);
//! on_b.record(1_000, &[Reading::smoothed(names::CPU_COMBINED, 0.25)]);
//!
//! // Gossip from `b` reaches `a`; `a` now knows both.
//! assert_eq!(on_a.merge(on_b.nodes()), 1);
//! assert_eq!(on_a.len(), 2);
//!
//! // CPU capacities 0.25 and 0.75: weights 1 and 3; `b` gets three picks in four.
//! let table = on_a.nodes();
//! let w = weights(&MetricsSelector::Cpu.capacities(&table));
//! assert_eq!((w[&a.address], w[&b.address]), (1, 3));
//! let routees = WeightedRoutees::new(&[a.address, b.address], &w);
//! assert_eq!(routees.total(), 4);
//! assert_eq!(routees.pick(0), Some(a.address));
//! assert_eq!(routees.pick(u64::MAX), Some(b.address));
//!
//! // `b` becomes unreachable: purged.
//! assert!(on_a.update_members(&members, &[b.clone()]));
//! assert!(on_a.get(b.address).is_none());
//! ```

mod model;
mod run;
mod select;
mod system;

pub use model::{
    names, valid_value, Ewma, Metric, MetricsGossip, NodeMetrics, Reading, MAX_METRICS_PER_NODE,
    MAX_METRIC_NAME_LEN,
};
pub(crate) use model::{scale, splitmix};
pub use run::{ClusterMetrics, MetricsSettings, StartError};
pub use select::{weights, MetricsSelector, WeightedRoutees, CPU_STEAL_FACTOR, MIN_CAPACITY};
pub use system::{
    parse_loadavg, parse_meminfo, parse_stat, Collector, CpuTimes, Memory, SystemCollector,
    MIN_CPU_WINDOW,
};

#[cfg(test)]
mod tests;
