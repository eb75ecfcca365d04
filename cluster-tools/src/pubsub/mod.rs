//! Distributed publish-subscribe (Pekko's `DistributedPubSubMediator`): publish to every
//! subscriber of a topic in the cluster, to one subscriber per group, or send to a
//! registered path, without knowing where the receivers are.
//!
//! Start a [`DistributedPubSub`] on every node with the same settings. Subscribing registers
//! the topic in this node's bucket of the [`registry`], which spreads by gossip (a status
//! every `gossip-interval`, answered with the entries the sender lacks); a subscription is
//! visible on every node within a few gossip intervals. Publishing sends one message to each
//! node with subscribers, which hands it to its local subscribers (async streams, bounded:
//! a full one drops the message and counts a dead letter). Buckets of removed members are
//! dropped, so nothing is published to them.
//!
//! Delivery is at most once and unordered across publishers; messages from one publisher to
//! one node arrive in order.

pub mod registry;
mod run;

pub use run::{DistributedPubSub, PubSubError, PubSubSettings, Published, Subscription};
