//! # fjell-ddata
//!
//! Distributed data on fjell (Akka / Pekko Distributed Data for Rust): nodes share values
//! through a key-value API whose values are conflict-free replicated data types. Any node
//! updates any key without coordination; replicas merge and converge; each read and write
//! chooses its consistency (local, `n` replicas, a majority, all).
//!
//! - [`crdt`]: the data types — [`GCounter`](crdt::GCounter), [`PNCounter`](crdt::PNCounter),
//!   [`GSet`](crdt::GSet), [`ORSet`](crdt::ORSet), [`LWWRegister`](crdt::LWWRegister),
//!   [`Flag`](crdt::Flag), [`ORMap`](crdt::ORMap), [`LWWMap`](crdt::LWWMap),
//!   [`PNCounterMap`](crdt::PNCounterMap), [`ORMultiMap`](crdt::ORMultiMap) — as
//!   delta-state CRDTs with pruning of removed members.
//! - [`replicator`]: the sans-IO replicator — consistency levels and quorums, delta
//!   propagation, anti-entropy gossip (digests first, then entries), pruning, bounded
//!   decoding of peers' messages. Driven by the caller, tested in a deterministic
//!   simulation.
//! - `DistributedData` (feature `runtime`, on by default): the async API on a node's
//!   fjell-tools hub: typed [`Key`]s, `get` / `update` / `delete`, subscriptions as
//!   streams of changes.
//! - `durable` (feature `durable`, part of `runtime`): keys marked durable are stored in a
//!   [redb](https://docs.rs/redb) file and survive a restart of every node; an unreadable
//!   file is an error at start that names it.
//!
//! Without its default features the crate is the data types and the sans-IO replicator on
//! fjell-core alone, for a runtime of your own.
//!
//! ## Example
//!
//! Two replicas, driven by hand without a network: each increments a counter, they
//! exchange their deltas, and both read the sum.
//!
//! ```
//! use std::net::SocketAddr;
//! use fjell_ddata::crdt::GCounter;
//! use fjell_ddata::replicator::{MemberView, Output, Replicator, WriteConsistency};
//! use fjell_ddata::{Key, ReplicatorSettings};
//! use fjell_runtime::core::{MemberStatus, UniqueAddress};
//!
//! let id = |port| UniqueAddress::new(SocketAddr::from(([127, 0, 0, 1], port)), 1);
//! let (a, b) = (id(7001), id(7002));
//! let members: Vec<MemberView> = [a, b]
//!     .map(|id| MemberView { id, status: MemberStatus::Up, reachable: true })
//!     .to_vec();
//! let settings = ReplicatorSettings::default();
//! let mut ra = Replicator::new(a, settings.clone(), 1, 0);
//! let mut rb = Replicator::new(b, settings, 2, 0);
//! ra.handle_members(0, &members);
//! rb.handle_members(0, &members);
//!
//! let hits: Key<GCounter> = Key::new("hits");
//! ra.update(0, &hits, WriteConsistency::Local, |c| c.increment(a, 2)).unwrap();
//! rb.update(0, &hits, WriteConsistency::Local, |c| c.increment(b, 3)).unwrap();
//!
//! // At the next delta tick each sends its delta to the other.
//! fn exchange(from: &mut Replicator, to: &mut Replicator, now: u64) {
//!     from.handle_timeout(now);
//!     while let Some(output) = from.poll_output() {
//!         if let Output::Send { message, .. } = output {
//!             to.handle_message(now, from.id().socket_addr(), message);
//!         }
//!     }
//! }
//! let tick = ra.poll_timeout();
//! exchange(&mut ra, &mut rb, tick);
//! exchange(&mut rb, &mut ra, tick);
//! assert_eq!(ra.local(&hits).unwrap().unwrap().value(), 5);
//! assert_eq!(rb.local(&hits).unwrap().unwrap().value(), 5);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crdt;
#[cfg(feature = "durable")]
pub mod durable;
mod key;
pub mod replicator;
#[cfg(feature = "runtime")]
mod run;
mod settings;

pub use key::{Key, MAX_KEY_LEN};
#[cfg(feature = "runtime")]
pub use run::{Change, Changes, DataError, DistributedData, StartError};
pub use settings::{ReplicatorSettings, SettingsError, WriteMode};
