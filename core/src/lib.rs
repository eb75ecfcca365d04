//! # fjell-core
//!
//! A sans-IO cluster membership state machine with the semantics of Akka / Apache Pekko
//! Cluster: member lifecycle (Joining, WeaklyUp, Up, Leaving, Exiting, Down, Removed), gossip
//! with vector clocks and convergence, a derived leader and its actions, seed-node joining,
//! failure detection (phi accrual over a heartbeat ring) feeding a reachability table, and
//! downing: by hand, or by a split brain resolver that lets exactly one side of a partition
//! survive (see [`Strategy`] for the rules and [`DowningSettings`] for when they are
//! applied). A node whose downing settings differ from the cluster's is refused at join
//! ([`compat`]).
//!
//! `#![no_std]`, no clock, no sockets, no threads, and no heap unless asked for (`alloc`).
//! Capacities are compile-time parameters: a [`Node<M, R, H>`] holds at most `M` members, `R`
//! reachability records and `H` heartbeat intervals per monitored member (see the
//! [`DeviceNode`] and [`ServerNode`] presets). The caller passes in time ([`Instant`]), received
//! bytes and a random seed; the node hands back bytes to send, the next timeout and events.
//! Same inputs, same outputs.
//!
//! ## Features
//!
//! - `phi` (default): the phi accrual failure detector. Without it only the deadline detector
//!   ([`DetectorKind::Deadline`]) is compiled in, and none of the double-precision math phi
//!   needs, which is worth about 13 kB of flash on a Cortex-M4; a configuration that
//!   asks for phi is refused by [`Node::new`].
//! - `lead` (default): the code a member that may lead runs, the leader's convergence actions
//!   and its side's downing decisions. Without it a node is a member that never leads
//!   ([`Config::leader_eligible`] must be false, and is by default): it joins through members
//!   that may lead, takes no joiners, and stops when cut off from all of them. About 16 kB of
//!   flash on a Cortex-M4 (at opt-level "z"), which brings a device's firmware under 64 KiB.
//! - `std`: conversions from `std::time::Instant`.
//! - `alloc`: the per-member state on the heap (see "Memory" below), and
//!   `Node::drain_vec` / `Node::poll_transmit_vec` with a message buffer that grows to the
//!   largest message sent. fjell-runtime turns it on.
//!
//! ## Memory
//!
//! Without `alloc` a node holds all its state in its own value, sized by its capacities and
//! not by the cluster: a [`DeviceNode`] is 13.4 kB and can live in a `static`; a
//! [`ServerNode`] is 1.9 MB, which in a debug build passes through the stack when built. With
//! `alloc` the value is under 10 kB whatever the capacities (a [`ServerNode`] is built on any
//! thread), and the per-member state grows with the cluster, never beyond the capacities: a
//! [`ServerNode`] of a 10-member cluster holds about 16 kB, of a 1,000-member one about
//! 400 kB (BENCHMARKS.md, "Memory by cluster size"). Limits stay where they were: a push
//! beyond a capacity, or an allocation that fails, is refused and reported the same way.
//!
//! ## Call order
//!
//! After every input — [`Node::handle_message`], [`Node::handle_timeout`],
//! [`Node::handle_lease`], or a command such as [`Node::join_seed_nodes`] — call
//! [`Node::drain`] with a [`Sink`]: it hands over the messages to send, the events and the
//! lease requests of the lease-majority strategy, in that order (see [`Node::drain`] for why);
//! then wait until [`Node::poll_timeout`] or the next message. The `poll_*` methods it is made
//! of stay public for embedders who want them one at a time.
//!
//! ## Example
//!
//! Two nodes wired back to back, with the caller's own clock and "network":
//!
//! ```
//! use fjell_core::{Config, DeviceNode, Event, Instant, LeaseRequest, MemberStatus, Sink};
//! use fjell_core::{Transmit, UniqueAddress};
//! use std::net::SocketAddr;
//!
//! /// Collects one node's outputs; the loop below delivers them.
//! #[derive(Default)]
//! struct Outputs {
//!     sent: Vec<(SocketAddr, Vec<u8>)>,
//!     up: usize,
//! }
//!
//! impl Sink for Outputs {
//!     fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
//!         self.sent.push((t.destination, bytes.to_vec()));
//!     }
//!     fn lease(&mut self, _: LeaseRequest, _: Instant) -> Option<bool> {
//!         None // the default downing never asks
//!     }
//!     fn event(&mut self, e: Event) {
//!         if let Event::MemberUp(m) = e {
//!             println!("{} up", m.address);
//!             self.up += 1;
//!         }
//!     }
//! }
//!
//! let a: SocketAddr = "10.0.0.1:7355".parse().unwrap();
//! let b: SocketAddr = "10.0.0.2:7355".parse().unwrap();
//! let seeds = [a, b];
//! let mut nodes = [
//!     DeviceNode::new(Config::default(), UniqueAddress::new(a, 0xA), 1).unwrap(),
//!     DeviceNode::new(Config::default(), UniqueAddress::new(b, 0xB), 2).unwrap(),
//! ];
//! let mut now = Instant::ZERO;
//! for n in nodes.iter_mut() {
//!     n.join_seed_nodes(now, &seeds).unwrap();
//! }
//! let mut buf = vec![0u8; DeviceNode::MAX_MESSAGE_LEN];
//! let mut out = Outputs::default();
//! while now < Instant::from_millis(30_000) {
//!     // Deliver everything queued (instantly, in this toy network).
//!     let mut moved = true;
//!     while moved {
//!         moved = false;
//!         for i in 0..2 {
//!             nodes[i].drain(now, &mut buf, &mut out);
//!             let from = nodes[i].address().socket_addr();
//!             for (to, bytes) in std::mem::take(&mut out.sent) {
//!                 let j = if to == a { 0 } else { 1 };
//!                 let _ = nodes[j].handle_message(now, from, &bytes);
//!                 moved = true;
//!             }
//!         }
//!     }
//!     // Advance the clock to the earliest timeout.
//!     now = nodes.iter().filter_map(|n| n.poll_timeout()).min().unwrap();
//!     for n in nodes.iter_mut() {
//!         n.handle_timeout(now);
//!     }
//! }
//! assert!(nodes.iter().all(|n| n.members().len() == 2));
//! assert!(nodes.iter().all(|n| n.members().iter().all(|m| m.status == MemberStatus::Up)));
//! assert_eq!(out.up, 4);
//! ```
//!
//! ## Where fjell differs from Pekko, on purpose
//!
//! - Addresses order numerically (IP, port, uid), not as strings: `10.0.0.9` < `10.0.0.10`.
//! - Tombstones expire on each node's own monotonic clock; peers exchange their age, never a
//!   wall-clock timestamp, so clock skew cannot resurrect or prematurely forget removed nodes.
//! - `gossip-different-view-probability` is honoured (Pekko reads it but never uses it).
//! - The merge relies on tombstones only, which makes it a true state CRDT (commutative,
//!   associative, idempotent; property-tested).
//! - Vector clock entries are keyed by member identity and sent as member indices.
//! - Gossip status messages carry 8-byte digests of the version and the seen set.
//! - Seed probes retry quickly with backoff, so clusters started all at once form in seconds.
//! - A node that stops after exiting or being downed says so (`Departed`), so the leader can
//!   remove it without waiting for the failure detector.
//! - An Exiting node waits to be removed (confirming its exit each leader tick, up to five)
//!   rather than stopping once its exiting tasks are done; when every other member is Down or
//!   Exiting and has seen it Exiting, nobody is left to remove it and it stops at once, so
//!   members that all leave together stop within a leader tick of becoming Exiting.
//! - Failure detectors are keyed by incarnation (address and uid), not by address, and
//!   heartbeats carry the sender's uid tag, so a restarted node does not keep its predecessor
//!   alive.
//! - Ring neighbours monitor each other: one heartbeat each way per interval, echoing the
//!   other's for the round trip, instead of a request and a response per monitor (Pekko);
//!   half the messages for as many monitors.
//! - A monitored member that misses a heartbeat is re-probed five times per interval until it
//!   answers: lost datagrams cost a few bytes instead of a false Unreachable.
//! - Phi uses the exact normal tail by default (Akka's logistic approximation is available)
//!   and stays finite and monotone for every input.
//! - Observations made by Down members are ignored when choosing the leader (Pekko counts
//!   them, so a downed node's stale verdicts can keep a healthy node from leading).
//! - When a node stops it reports a single [`Event::Stopped`] with the reason, rather than a
//!   `MemberRemoved` for every member.
//! - Gossip from a peer is validated before it is used: counters far beyond anything honest,
//!   up-numbers that contradict the status, or reachability rows that cannot exist are refused.
//! - The split brain resolver decides only once every member its side counts as reachable has
//!   seen the current state. Pekko decides on reachability alone, so a member of the other side
//!   that the failure detector has not flagged yet (a short or disturbed heartbeat history
//!   makes detection slower than `stable-after`) counts as an ally and both sides can survive;
//!   the randomized campaign in `fjell-sim` found exactly that.
//! - When `stable-after` has passed, the resolver first makes a new version of the state (a
//!   clock bump) and decides only once every ally has seen that version: an ally that saw an
//!   older, unchanged state and was then cut off (a partition that moved before the move was
//!   detected) is not counted. Members that have not seen it after half of `stable-after` count
//!   as the other side, and the side is led by the leader among the members in contact with it,
//!   so a side decides on stability even when its monitors do not watch every member of the
//!   other side. Down-all-when-unstable waits that half longer, plus
//!   two leader ticks (stable-after and the wait each end at the next tick).
//! - A decision is sent at once to every ally that saw the confirmation (as many as the outbox
//!   holds), not to one gossip target: an ally cut off before it knew whom the decision downed
//!   would count those members as alive.
//! - Static-quorum re-checks its verdict pessimistically, as keep-majority does (our Leaving
//!   members may be Exiting on the other side, its joiners Up there), and keep-oldest's
//!   re-check sets aside only this side's Leaving members: a leave issued here may not have
//!   reached the other side. The exhaustive check in `core/tests/decision_exhaustive.rs`
//!   found both: with Pekko's rules two disjoint sides could both survive.
//! - Each node monitors its `monitored-by-nr-of-members / 2` nearest ring neighbours on each
//!   side whether they are reachable or not (plus the members it flags); Down and Exiting
//!   members come after the live ones, as room allows. Pekko walks past unreachable successors,
//!   which moves the monitors on every detection round of a large partition and restarts
//!   `stable-after` each time.
//! - A node whose own timers fire half a heartbeat interval late or more (a pause, a starved
//!   executor) discounts the gap in its failure detectors instead of flagging its peers.
//! - Every downing setting that changes a decision is part of the join check (Pekko checks the
//!   provider and strategy name only), and a refusal is reported on both sides for every
//!   reason. A refusal from one seed, even the one the Join went to, does not end the seed
//!   process while other seeds remain.
//! - A join from an incarnation that was removed (its Welcome lost before the cluster downed
//!   it) is refused with [`compat::Incompatibility::Removed`] and the joiner stops, instead of
//!   retrying for good.
//! - When the split brain resolver sets indirectly connected records aside, members that have
//!   not seen this side's confirmation stay unreachable: after a partition moved, stale records
//!   make far-side members look indirectly connected, and Pekko's rule would count them here.
//! - A Down that not every member has seen yet keeps the downed member in the split brain
//!   resolver's count, on the other side. Pekko drops Down members from the count at once, so
//!   after a partition moved across a decision two sides could size the cluster differently
//!   and both win. The leader removes the member once everyone has seen the Down.
//! - A side that loses (or is denied the lease) downs only its own members: indirectly
//!   connected members it has had no contact with since its confirmation are left to the side
//!   they are on. Pekko downs every indirectly connected member, which let a losing minority
//!   down majority members that stale records had made look indirectly connected.
//! - A merge that drops the clock entry of a member removed on one side makes a new version:
//!   otherwise the merged state, with the removed member's updates in it, could carry a version
//!   another node holds with other contents.
//! - A member not yet Up answers `InitJoinNack` unless another member has seen its current
//!   state (or it is alone): the node that welcomed it may have crashed before anyone else heard
//!   of it, and a joiner it took in would be stuck with it.
//! - A node that flags members itself gossips first to the members it heard from within the
//!   acceptable heartbeat pause: during a partition they are on its side, and its news reaches
//!   them in a round or two instead of by lucky draws among black-holed members.
//! - The members a `DownIndirectlyConnected` decision keeps must win by the strategy's own rule
//!   against every member that could form another side, or the decision is down-all: after
//!   partitions moved, nearly every member can be indirectly connected, and Pekko's rule let a
//!   side of one keep itself against eight.
//! - Only a heartbeat from the member takes back a node's own flag on it; a monitor that has not
//!   heard from the member yet leaves the flag as it is.
//! - A removed incarnation that still gossips (it missed its Down while cut off) is answered
//!   with the state whose tombstone stops it; Akka relies on Artery's quarantine for this.
//! - For the split brain resolver, a node that sees itself flagged defers to an unflagged
//!   member in contact with it: Pekko's leader rule counts a node as reachable to itself, so
//!   two nodes of one connected side could both decide (one granted the lease, one denied).
//!   When the leader of a side has not decided a stable-after past the deadline (it may be
//!   gone, with nobody here to flag it), the members in contact take over in address order, a
//!   stable-after apart.
//! - Lease-majority asks the lease again for every decision instead of trusting an earlier
//!   grant, and releases it `release-after` from the latest decision taken with it.
//! - A node stopped because it was downed says so with [`Event::SelfDowned`] at once, and the
//!   resolver's decisions are events ([`Event::Downing`]) too.
//! - A heartbeat is 10 bytes (14 with its echo, every fourth) and a converged cluster's gossip
//!   status is 29 bytes: a node sends 5 messages and 73 bytes per second in steady state with
//!   the defaults (4 monitors), and wakes once a second.
//! - A member that this node's gossip reached several times while it had not seen the state,
//!   and that was not heard from since, is no longer preferred as a gossip target (Pekko
//!   prefers it every round): a member cut off with all its monitors would otherwise take
//!   most rounds of the side that cannot reach it.
//! - Capacity is part of the join handshake and of each member record ([`capacity`]): the
//!   cluster never grows past its smallest member, concurrent admissions past the bound are
//!   undone the same way on every node, and a full reachability table is compacted rather than
//!   refused. Pekko has no bound to keep.
//! - Gossip from a Down member is not merged (it is told it is Down instead), and a removal
//!   never pushes out a tombstone younger than [`node::TOMBSTONE_MIN_AGE`]: with a bounded
//!   tombstone table, a stale copy of the state must not bring a removed incarnation back.
//! - A joiner the cluster never heard of (welcomed by a member that was then downed) joins
//!   again, through its seeds, once a member answers it with a state that leaves it out or it
//!   hears from no member for three acceptable heartbeat pauses; it reports itself removed.
//! - A member that the members it hears from no longer gossip with (30 gossip rounds, at
//!   least three acceptable pauses, while some member it does not flag is neither Down nor
//!   Exiting) stops as removed (`StopReason::Removed`): it was removed, or downed, without
//!   learning it, and that incarnation must not come back; a new one can join. Pekko leaves
//!   such a node a member in its own eyes. A member cut off from everyone flags them all and
//!   is left to the downing strategy.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unnameable_types)]

#[cfg(test)]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

// The public surface: everything an application needs is re-exported at the crate root; the
// few public modules hold secondary items (limits, error details) and the longer write-ups.
// Everything else is an implementation detail, reachable only through the hidden `testing`
// module for fjell-sim, the fuzz targets and this crate's own tests and benches.
mod address;
mod buf;
pub mod capacity;
mod codec;
pub mod compat;
pub mod config;
pub mod delta;
mod departure;
mod downing;
mod error;
pub mod event;
mod gossip;
mod heartbeat;
mod join;
mod leader;
mod lease;
pub mod member;
mod news;
pub mod node;
mod outbox;
mod phi;
mod random;
mod reachability;
mod recent;
#[cfg(test)]
mod reference;
mod resolver;
mod room;
mod sink;
mod sorted;
mod states;
#[cfg(feature = "std")]
mod std_support;
#[doc(hidden)]
pub mod testing;
mod time;
mod timer;
mod vclock;
mod view;
mod wire;

pub use address::UniqueAddress;
pub use capacity::Capacity;
pub use compat::Incompatibility;
pub use config::{Config, ConfigError, Downing, DowningSettings, WhenUnstable};
pub use downing::{Decision, Strategy};
pub use event::{Event, Limit, StopReason};
pub use heartbeat::MonitorStats;
pub use join::MAX_SEEDS;
pub use lease::{Lease, LeaseRequest, MemoryLease};
pub use member::{AppVersion, Member, MemberStatus, Role, RoleSet};
pub use node::{CommandError, InputError, Node, NodeStatus, Stats, Transmit};
#[cfg(feature = "phi")]
pub use phi::{phi_after, phi_of};
pub use phi::{DetectorKind, DetectorSettings, PhiFormula};
pub use reachability::ReachabilityStatus;
pub use resolver::{DowningDecision, Reason};
pub use sink::Sink;
pub use time::Instant;
pub use wire::{DeliveryClass, Malformed, WireError};

/// Capacities for small devices: 16 members, 12 reachability records, 8 heartbeat intervals
/// per monitored member. The whole state fits in 16 KiB.
pub type DeviceNode = Node<16, 12, 8>;
/// Capacities for servers: 4,096 members, 2,048 reachability records (half the members: a
/// full table is compacted to one record per flagged member, and the side of a partition that
/// may survive flags fewer than half, see [`capacity`]), 1,000 heartbeat intervals per
/// monitored member (Pekko's `max-sample-size`). Large (megabytes): keep it on the heap.
pub type ServerNode = Node<4096, 2048, 1000>;

#[cfg(test)]
mod tests {
    #[test]
    fn device_preset_fits_in_16_kib() {
        let size = core::mem::size_of::<crate::DeviceNode>();
        assert!(size <= 16 * 1024, "DeviceNode is {size} bytes");
    }
}
