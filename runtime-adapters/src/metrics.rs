//! What a node measures of itself, for an exporter: [`Cluster::metrics`](crate::Cluster::metrics)
//! returns a [`Metrics`] snapshot taken by the driver between two inputs, so every number in
//! it describes the same moment. fjell-ops serves it in the Prometheus text format; an
//! application with its own exporter reads the fields.
//!
//! Counters (`*_in`, `*_out`, `leader_changes`, `downing`, the core's and the transport's
//! refusals) only grow for the life of the node; gauges (members, phi, round-trip times)
//! are the value now.

use fjell_core::{Decision, DeliveryClass, MemberStatus, MonitorStats, NodeStatus, UniqueAddress};
use fjell_quic::{ConnectionStats, Counters};

/// Messages and bytes of one delivery class, both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Messages received (handed to the core, whatever it made of them).
    pub messages_in: u64,
    /// Bytes of those messages.
    pub bytes_in: u64,
    /// Messages the core sent (handed to the transport).
    pub messages_out: u64,
    /// Bytes of those messages.
    pub bytes_out: u64,
}

/// The membership traffic of a node, by delivery class (see [`DeliveryClass`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Failure-detector heartbeats and their answers.
    pub heartbeat: Flow,
    /// Gossip: full states, deltas and statuses.
    pub gossip: Flow,
    /// Joins, leaves and other control messages.
    pub control: Flow,
}

impl Traffic {
    pub(crate) fn flow(&mut self, class: DeliveryClass) -> &mut Flow {
        match class {
            DeliveryClass::Heartbeat => &mut self.heartbeat,
            DeliveryClass::Gossip => &mut self.gossip,
            DeliveryClass::Control => &mut self.control,
        }
    }

    pub(crate) fn received(&mut self, class: DeliveryClass, bytes: usize) {
        let f = self.flow(class);
        f.messages_in += 1;
        f.bytes_in += bytes as u64;
    }

    pub(crate) fn sent(&mut self, class: DeliveryClass, bytes: usize) {
        let f = self.flow(class);
        f.messages_out += 1;
        f.bytes_out += bytes as u64;
    }
}

/// Every member status, in the order [`Metrics::members`] counts them.
pub const MEMBER_STATUSES: [MemberStatus; 9] = MemberStatus::ALL;

/// Every split brain resolver decision, in the order [`Metrics::downing`] counts them.
pub const DECISIONS: [Decision; 5] = [
    Decision::DownUnreachable,
    Decision::DownReachable,
    Decision::DownAll,
    Decision::DownIndirectlyConnected,
    Decision::ReverseDownIndirectlyConnected,
];

/// Counters the driver keeps across snapshots.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub(crate) traffic: Traffic,
    pub(crate) leader_changes: u64,
    pub(crate) downing: [u64; DECISIONS.len()],
}

impl Tally {
    /// Counts what an event tells: a leader change, a downing decision.
    pub(crate) fn event(&mut self, e: &fjell_core::Event) {
        match e {
            fjell_core::Event::LeaderChanged(_) => self.leader_changes += 1,
            fjell_core::Event::Downing(d) => {
                if let Some(i) = DECISIONS.iter().position(|x| *x == d.decision) {
                    self.downing[i] += 1;
                }
            }
            _ => {}
        }
    }
}

/// A node's measurements at one moment (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// The node.
    pub node: UniqueAddress,
    /// Where it is in its own life.
    pub node_status: NodeStatus,
    /// Members in this node's view by status, in the order of [`MEMBER_STATUSES`].
    pub members: [usize; MEMBER_STATUSES.len()],
    /// Members some observer flags unreachable.
    pub unreachable: usize,
    /// Whether this node sees convergence.
    pub converged: bool,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// Leader changes this node has seen.
    pub leader_changes: u64,
    /// The split brain resolver's decisions this node carried out, in the order of
    /// [`DECISIONS`].
    pub downing: [u64; DECISIONS.len()],
    /// What the failure detector says of each member it monitors: phi, heartbeat age,
    /// heartbeat round-trip time.
    pub monitored: Vec<MonitorStats>,
    /// Membership messages and bytes in and out.
    pub traffic: Traffic,
    /// The core's refusals and gossip counts (decode errors, sender mismatches, gossip
    /// dropped, over capacity, ...).
    pub core: fjell_core::Stats,
    /// The transport's refusals and drops (malformed, oversized, unknown kind, wrong version,
    /// refused handshakes, ...) and connections established.
    pub transport: Counters,
    /// Connections the QUIC endpoint holds, including ones still closing.
    pub open_connections: usize,
    /// QUIC's measurements of each connection in use: round-trip time, lost packets,
    /// congestion events.
    pub connections: Vec<ConnectionStats>,
}

impl Metrics {
    /// How many members in this node's view have `status`.
    pub fn members_with(&self, status: MemberStatus) -> usize {
        MEMBER_STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.members[i])
    }

    /// How many times this node carried out `decision`.
    pub fn downing_decisions(&self, decision: Decision) -> u64 {
        DECISIONS
            .iter()
            .position(|d| *d == decision)
            .map_or(0, |i| self.downing[i])
    }

    pub(crate) fn take<const M: usize, const R: usize, const H: usize>(
        node: &fjell_core::Node<M, R, H>,
        now: fjell_core::Instant,
        tally: &Tally,
        transport: &fjell_quic::Transport,
    ) -> Metrics {
        let mut members = [0; MEMBER_STATUSES.len()];
        for m in node.members() {
            if let Some(i) = MEMBER_STATUSES.iter().position(|s| *s == m.status) {
                members[i] += 1;
            }
        }
        Metrics {
            node: node.address(),
            node_status: node.status(),
            members,
            unreachable: node.unreachable().count(),
            converged: node.is_converged(),
            is_leader: node.leader() == Some(node.address()),
            leader_changes: tally.leader_changes,
            downing: tally.downing,
            monitored: node.monitored(now).collect(),
            traffic: tally.traffic,
            core: node.stats(),
            transport: transport.counters(),
            open_connections: transport.open_connections(),
            connections: transport.connection_stats(),
        }
    }
}
