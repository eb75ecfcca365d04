//! A snapshot of the cluster as one node sees it.

use std::net::SocketAddr;

use fjell_core::{Event, Member, MemberStatus, Node, NodeStatus, Role, UniqueAddress};

/// The cluster as this node saw it at one moment (Pekko's `CurrentClusterState`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    /// This node's identity (address and incarnation).
    pub self_address: UniqueAddress,
    /// Where this node is in its own life.
    pub status: NodeStatus,
    /// Members in address order, including this node once it is one.
    pub members: Vec<Member>,
    /// Members flagged unreachable by some observer.
    pub unreachable: Vec<Member>,
    /// The leader, if there is one.
    pub leader: Option<UniqueAddress>,
    /// The leader of the members with each role any member has, by role.
    pub role_leaders: Vec<(Role, Option<UniqueAddress>)>,
    /// True if this node sees convergence (every reachable member has seen this state).
    pub converged: bool,
    /// Whether this node may lead (`leader-eligible`): only such a node founds a cluster or
    /// takes joiners.
    pub may_lead: bool,
}

impl ClusterState {
    /// The state of a node that has not joined yet.
    pub(crate) fn initial(self_address: UniqueAddress, may_lead: bool) -> Self {
        ClusterState {
            self_address,
            status: NodeStatus::Idle,
            members: Vec::new(),
            unreachable: Vec::new(),
            leader: None,
            role_leaders: Vec::new(),
            converged: false,
            may_lead,
        }
    }

    /// The state `node` is in now.
    pub(crate) fn of<const M: usize, const R: usize, const H: usize>(node: &Node<M, R, H>) -> Self {
        ClusterState {
            self_address: node.address(),
            status: node.status(),
            members: node.members().to_vec(),
            unreachable: node.unreachable().cloned().collect(),
            leader: node.leader(),
            role_leaders: role_leaders(node),
            converged: node.is_converged(),
            may_lead: node.config().leader_eligible,
        }
    }

    /// This node's member record, once it is a member.
    pub fn self_member(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.address == self.self_address)
    }

    /// The member at `addr` (any incarnation), if any.
    pub fn member(&self, addr: SocketAddr) -> Option<&Member> {
        self.members.iter().find(|m| m.address.same_address(addr))
    }

    /// Members with `status`.
    pub fn with_status(&self, status: MemberStatus) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.status == status)
    }

    /// The leader of the members with `role`, if any has it.
    pub fn role_leader(&self, role: &str) -> Option<UniqueAddress> {
        self.role_leaders
            .iter()
            .find(|(r, _)| r.as_str() == role)
            .and_then(|(_, l)| *l)
    }

    /// True if this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader == Some(self.self_address)
    }
}

fn role_leaders<const M: usize, const R: usize, const H: usize>(
    node: &Node<M, R, H>,
) -> Vec<(Role, Option<UniqueAddress>)> {
    let mut roles: Vec<Role> = Vec::new();
    for r in node.members().iter().flat_map(|m| m.roles.iter()) {
        if !roles.contains(r) {
            roles.push(*r);
        }
    }
    roles
        .into_iter()
        .map(|r| (r, node.role_leader(r.as_str())))
        .collect()
}

/// The member an event is about, if it is about one (member status changes, removal,
/// reachability). A removed member's status is `Removed`.
pub fn member_of(event: &Event) -> Option<&Member> {
    match event {
        Event::MemberJoined(m)
        | Event::MemberWeaklyUp(m)
        | Event::MemberUp(m)
        | Event::MemberLeft(m)
        | Event::MemberExited(m)
        | Event::MemberDowned(m)
        | Event::MemberPreparingForShutdown(m)
        | Event::MemberReadyForShutdown(m)
        | Event::UnreachableMember(m)
        | Event::ReachableMember(m) => Some(m),
        Event::MemberRemoved { member, .. } => Some(member),
        _ => None,
    }
}
