//! Cluster Bootstrap: a fleet of nodes without seed nodes finds its contact points
//! ([`crate::discovery`]), probes each one's `/bootstrap/seed-nodes` endpoint, and either
//! joins the cluster a probe reports or, if none exists yet, lets the lowest contact point
//! found it ([`rules`] has the exact rules; [`run()`] carries them out).

use std::net::SocketAddr;

use fjell_runtime::core::NodeStatus;
use fjell_runtime::{ClusterState, MemberStatus};
use serde::{Deserialize, Serialize};

pub mod rules;
mod run;

pub use rules::{Decision, Rules, Waiting, MAX_SEED_NODES};
pub use run::{contact_point, run, Outcome};

/// The answer of `/bootstrap/seed-nodes`: this node, whether it may lead, and up to
/// [`MAX_SEED_NODES`] members it sees Joining, WeaklyUp or Up, reachable and able to lead
/// (only those take joiners; none while it is in no cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedNodes {
    /// This node's cluster address.
    pub self_node: SocketAddr,
    /// Members a joiner may join through (cluster addresses).
    pub seed_nodes: Vec<SocketAddr>,
    /// This node may lead (`leader-eligible`), so it may found the cluster. Absent in the
    /// answers of nodes before it: those may.
    #[serde(default = "may_lead_by_default")]
    pub may_lead: bool,
}

fn may_lead_by_default() -> bool {
    true
}

impl SeedNodes {
    /// What a node in `state` answers.
    pub fn of(state: &ClusterState) -> SeedNodes {
        let member = state.status == NodeStatus::Member;
        let seed_nodes = state
            .members
            .iter()
            .filter(|_| member)
            .filter(|m| {
                matches!(
                    m.status,
                    MemberStatus::Joining | MemberStatus::WeaklyUp | MemberStatus::Up
                )
            })
            .filter(|m| m.leader_eligible)
            .filter(|m| !state.unreachable.iter().any(|u| u.address == m.address))
            .map(|m| m.address.socket_addr())
            .take(MAX_SEED_NODES)
            .collect();
        SeedNodes {
            self_node: state.self_address.socket_addr(),
            seed_nodes,
            may_lead: state.may_lead,
        }
    }
}
