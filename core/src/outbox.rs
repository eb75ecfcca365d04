//! Messages waiting for [`crate::Node::poll_transmit`]: what to send, not its bytes (those are
//! encoded from the current state when polled, so a queued gossip is always the latest).

use core::net::SocketAddr;

use crate::event::{Limit, Limits};
use crate::node::{Stats, OUTBOX_CAPACITY};

/// A message to build when it is polled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    InitJoin,
    InitJoinAck,
    /// `member`: see [`crate::wire::Message::InitJoinNack`].
    InitJoinNack {
        member: bool,
    },
    Join,
    // The recipient's uid (its address is the message's destination): keeps the outbox small.
    Welcome(u64),
    GossipStatus(u64),
    /// A status answering one whose version this node does not know.
    StatusReply(u64),
    Gossip(u64),
    /// Gossip as a delta of the records changed since `since`, or full gossip if that is no
    /// longer known (see [`crate::delta`]).
    Delta {
        uid: u64,
        since: Since,
    },
    Departed,
    /// The reason waits in `Node::refusal`.
    JoinRefused,
    VersionRefused,
    Heartbeat(crate::wire::Beat),
}

/// Which records a delta carries: those changed since...
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Since {
    /// ...the version with this digest, which the receiver holds.
    Version(u64),
    /// ...the version before the current one: the receiver has not seen the current one,
    /// and in a cluster that was converged it most likely holds the one before.
    Previous,
    /// ...the oldest version remembered.
    Oldest,
    /// ...this stamp (computed from the receiver's state, which this node has seen).
    Stamp(u32),
}

/// A queued message and its destination.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub(crate) to: SocketAddr,
    pub(crate) out: Out,
}

/// The queue of outgoing messages, at most [`OUTBOX_CAPACITY`].
#[derive(Debug, Default)]
pub(crate) struct Outbox(heapless::Deque<Pending, OUTBOX_CAPACITY>);

impl Outbox {
    /// Queues `out` for `to`, counting gossip sent in `stats`; when full, the message is
    /// dropped and counted (`outbox_overflow`, [`Limit::Outbox`]).
    pub(crate) fn push(
        &mut self,
        to: SocketAddr,
        out: Out,
        stats: &mut Stats,
        limits: &mut Limits,
    ) {
        match &out {
            // Full gossip (`Out::Gossip`) and deltas are counted when polled: a delta becomes
            // full gossip when its base is no longer known.
            Out::Welcome(_) => stats.gossip_full_sent += 1,
            Out::GossipStatus(_) | Out::StatusReply(_) => stats.gossip_status_sent += 1,
            _ => {}
        }
        if self.0.push_back(Pending { to, out }).is_err() {
            stats.outbox_overflow += 1;
            limits.reached(Limit::Outbox);
        }
    }

    /// The oldest queued message.
    pub(crate) fn pop(&mut self) -> Option<Pending> {
        self.0.pop_front()
    }

    /// Messages that still fit.
    pub(crate) fn room(&self) -> usize {
        OUTBOX_CAPACITY - self.0.len()
    }

    /// No message fits.
    pub(crate) fn is_full(&self) -> bool {
        self.0.is_full()
    }
}
