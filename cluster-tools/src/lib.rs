//! # fjell-tools
//!
//! Cluster tools on [fjell-runtime](fjell_runtime)'s [`Cluster`](fjell_runtime::Cluster): what
//! Akka / Pekko Cluster's users reach for above membership, the Rust way (async tasks, typed
//! messages, streams), over the node's own application messaging (no new transport).
//!
//! - [`singleton`]: exactly one instance of a task per cluster (or per role), on the oldest
//!   member; hand-over when it leaves, fail-over once a crashed host is downed and removed.
//! - [`pubsub`]: distributed publish-subscribe — publish to every subscriber of a topic, to
//!   one subscriber per group, or send to a registered path, wherever they are; the registry
//!   spreads by gossip.
//! - [`routing`]: routers over the members (round-robin, random, consistent hashing, and
//!   adaptive load balancing by cluster metrics) that follow membership.
//! - [`metrics`]: each node's CPU, load and memory, sampled and gossiped; subscribers see
//!   every update.
//! - [`death_watch`]: be told when a member is removed.
//!
//! The decisions (who hosts the singleton and the hand-over protocol, the publish-subscribe
//! registry and its versions, which member a router picks, the metrics table and the
//! adaptive weights, which watched member was removed) are sans-IO, driven by membership
//! snapshots, events and messages, and tested without a network (the singleton's in the
//! deterministic simulator, under faults); the async parts only carry them out.
//! Every node using the tools starts one [`hub::Hub`], which carries the tools' messages
//! beside the application's own.
//!
//! ## Example
//!
//! The singleton's decision on two members, without a network: the older one hosts, and the
//! younger takes over only once the older has handed over.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//!
//! use fjell_runtime::core::{AppVersion, Instant, Member, MemberStatus, RoleSet, UniqueAddress};
//! use fjell_tools::singleton::decide::{Action, Manager, Message, Phase};
//!
//! let member = |port: u16, age: u32, status| {
//!     let addr = UniqueAddress::new(SocketAddr::from(([127, 0, 0, 1], port)), 1);
//!     let mut m = Member::joining(addr, RoleSet::new(), AppVersion::default());
//!     m.status = status;
//!     m.up_number = NonZeroU32::new(age);
//!     m
//! };
//! let (a, b) = (member(7001, 1, MemberStatus::Up), member(7002, 2, MemberStatus::Up));
//! let second = Duration::from_secs(1);
//! let mut on_b = Manager::new(b.address, None, second, 10 * second);
//! on_b.handle_members(Instant::ZERO, &[a.clone(), b.clone()]);
//! assert_eq!(on_b.phase(), Phase::Younger);
//!
//! // `a` leaves and is Exiting: `b` asks it to hand over, and waits.
//! let exiting = member(7001, 1, MemberStatus::Exiting);
//! on_b.handle_members(Instant::from_millis(10), &[exiting, b.clone()]);
//! assert_eq!(on_b.phase(), Phase::Becoming);
//! assert!(matches!(
//!     on_b.poll_action(),
//!     Some(Action::Send { message: Message::HandOverToMe { .. }, .. })
//! ));
//!
//! // `a`'s instance has ended: `b` starts its own.
//! let done = Message::HandOverDone { from: a.address.uid() };
//! on_b.handle_message(Instant::from_millis(500), a.address.socket_addr(), done);
//! assert_eq!(on_b.poll_action(), Some(Action::Start));
//! assert_eq!(on_b.phase(), Phase::Running);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod death_watch;
pub mod hub;
pub mod metrics;
pub mod pubsub;
pub mod routing;
pub mod singleton;
