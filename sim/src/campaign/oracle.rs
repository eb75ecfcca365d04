//! The independent split-brain oracle: it reads only what each node *reported* — its event
//! stream, in time order — never the core's own serving rule or the simulator's check.
//!
//! A node counts as up from the moment it reports itself `MemberUp` or `MemberWeaklyUp` until
//! it reports `SelfDowned`, `Stopped`, or itself Downed or Removed. It has downed an incarnation
//! (address and uid) once it reported it `MemberDowned` or `MemberRemoved`. It is *settled* when
//! every member it reports unreachable is one it has downed: it has nothing left to decide.
//!
//! Two running nodes that are both up, both settled and have each downed the other's current
//! incarnation are a split brain: each has finished resolving and goes on without the other.
//! The events are fed in the order they happened and the rule is checked after every step's
//! events, so a split that lasts a single step is caught.
//!
//! Two such nodes of which one is still unsettled are counted, not failed
//! ([`Oracle::unsettled_mutual_downs`]): after a partition moves across a decision, a node can
//! hear that a member was downed by that member's own side before it hears of its own Down from
//! its former side. Both are condemned, and neither has finished deciding; the resolver of each
//! still has unreachable members to decide on, counts the Downs nobody has confirmed as the
//! other side (`fjell_core::testing::downing::Partition`), and so goes down. [`Oracle::strict`] checks
//! after the final heal that no such pair is left.

use std::collections::HashSet;
use std::net::SocketAddr;

use fjell_core::compat::Incompatibility;
use fjell_core::{Event, Instant, Reason, UniqueAddress};

use crate::{addr_of, Logged, NodeId};

/// What one node has reported.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    /// The current incarnation (set by the driver at boot).
    pub uid: Option<UniqueAddress>,
    /// Running (not crashed).
    pub running: bool,
    /// Reported itself Up or WeaklyUp and not since down, removed or stopped.
    pub up: bool,
    /// Reported `SelfDowned` or `Stopped`.
    pub gone: bool,
    /// Ever reported itself Up (this incarnation).
    pub was_up: bool,
    /// Incarnations it reported Downed or Removed.
    pub downed: HashSet<UniqueAddress>,
    /// Incarnations it reports unreachable now.
    pub unreachable: HashSet<UniqueAddress>,
}

impl Reported {
    /// Nothing left to decide: every member it reports unreachable it has also downed.
    pub fn settled(&self) -> bool {
        self.unreachable.iter().all(|u| self.downed.contains(u))
    }
}

/// A downing decision a node reported.
#[derive(Debug, Clone)]
pub struct Decided {
    /// When.
    pub at: Instant,
    /// By whom.
    pub by: NodeId,
    /// Why.
    pub reason: Reason,
    /// When that node had last reported a reachability change (`UnreachableMember` or
    /// `ReachableMember`) before deciding.
    pub last_change: Option<Instant>,
    /// The incarnations that node reported unreachable when it decided.
    pub unreachable: Vec<UniqueAddress>,
}

/// A violation the oracle saw.
#[derive(Debug, Clone)]
pub struct Violation {
    /// When.
    pub at: Instant,
    /// What.
    pub detail: String,
}

/// The oracle's state over a run.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    /// Per node id.
    pub nodes: Vec<Reported>,
    /// Nodes that must never become members (another cluster, another protocol version).
    pub foreign: Vec<NodeId>,
    /// `UnreachableMember` events seen since [`Oracle::mark`].
    pub unreachable_since_mark: usize,
    /// `Downing` events seen since [`Oracle::mark`].
    pub downings_since_mark: usize,
    /// `UnreachableMember` events in all.
    pub unreachable_events: usize,
    /// Every downing decision.
    pub decisions: Vec<Decided>,
    /// Per node: when it last reported a member unreachable or reachable again.
    pub last_reachability: Vec<Option<Instant>>,
    /// Every `JoinRefused` a node reported: when, who, refused by, and whether for capacity.
    pub join_refused: Vec<(Instant, NodeId, SocketAddr, bool)>,
    /// Every `JoinRequestRefused` a node reported: when, who, the joiner, and whether for
    /// capacity.
    pub join_request_refused: Vec<(Instant, NodeId, SocketAddr, bool)>,
    /// Steps after which two up nodes had each downed the other while one of them was still
    /// unsettled (see the module documentation).
    pub unsettled_mutual_downs: usize,
}

impl Oracle {
    /// An oracle for `n` node slots.
    pub fn new(n: usize) -> Self {
        Oracle {
            nodes: vec![Reported::default(); n],
            last_reachability: vec![None; n],
            ..Default::default()
        }
    }

    /// Node `id` (re)booted as `uid`: a fresh incarnation that has reported nothing yet.
    pub fn boot(&mut self, id: NodeId, uid: UniqueAddress) {
        self.nodes[id] = Reported {
            uid: Some(uid),
            running: true,
            ..Default::default()
        };
        self.last_reachability[id] = None;
    }

    /// Node `id` crashed.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes[id].running = false;
        self.nodes[id].up = false;
    }

    /// Starts counting `UnreachableMember` and `Downing` events afresh.
    pub fn mark(&mut self) {
        self.unreachable_since_mark = 0;
        self.downings_since_mark = 0;
    }

    /// Feeds logged events, in order; the first violation is returned.
    ///
    /// The events one node reports in one step (same node, same instant, consecutive) happen
    /// together: the split-brain rule is checked after the last of them, so a node that downs
    /// everyone, itself included, in one step never counts as up with the others downed.
    pub fn feed(&mut self, log: &[Logged]) -> Result<(), Violation> {
        let mut i = 0;
        while i < log.len() {
            let (node, at) = (log[i].node, log[i].at);
            while i < log.len() && log[i].node == node && log[i].at == at {
                self.event(&log[i])?;
                i += 1;
            }
            self.check(node)
                .map_err(|detail| Violation { at, detail })?;
        }
        Ok(())
    }

    fn event(&mut self, l: &Logged) -> Result<(), Violation> {
        let id = l.node;
        let me = self.nodes[id].uid;
        let is_me = |m: &UniqueAddress| Some(*m) == me;
        let violation = |detail: String| Violation { at: l.at, detail };
        let foreign_addr = |m: &UniqueAddress| {
            self.foreign
                .iter()
                .find(|f| addr_of(**f) == m.socket_addr())
                .copied()
        };
        match &l.event {
            Event::MemberJoined(m)
            | Event::MemberWeaklyUp(m)
            | Event::MemberUp(m)
            | Event::MemberLeft(m) => {
                if let Some(f) = foreign_addr(&m.address) {
                    return Err(violation(format!(
                        "node {id} reports foreign node {f} (another cluster or protocol \
                         version) as a member: {:?}",
                        l.event
                    )));
                }
                if is_me(&m.address)
                    && matches!(l.event, Event::MemberUp(_) | Event::MemberWeaklyUp(_))
                {
                    let r = &mut self.nodes[id];
                    if !r.gone {
                        r.up = true;
                        r.was_up = true;
                    }
                }
            }
            Event::MemberDowned(m) | Event::MemberRemoved { member: m, .. } => {
                if matches!(l.event, Event::MemberRemoved { .. }) {
                    self.nodes[id].unreachable.remove(&m.address);
                }
                if is_me(&m.address) {
                    self.nodes[id].up = false;
                } else {
                    self.nodes[id].downed.insert(m.address);
                }
            }
            Event::SelfDowned | Event::Stopped(_) => {
                let r = &mut self.nodes[id];
                r.up = false;
                r.gone = true;
            }
            Event::UnreachableMember(m) => {
                self.unreachable_since_mark += 1;
                self.unreachable_events += 1;
                self.last_reachability[id] = Some(l.at);
                self.nodes[id].unreachable.insert(m.address);
            }
            Event::ReachableMember(m) => {
                self.last_reachability[id] = Some(l.at);
                self.nodes[id].unreachable.remove(&m.address);
            }
            Event::Downing(d) => {
                self.downings_since_mark += 1;
                self.decisions.push(Decided {
                    at: l.at,
                    by: id,
                    reason: d.reason,
                    last_change: self.last_reachability[id],
                    unreachable: self.nodes[id].unreachable.iter().copied().collect(),
                });
            }
            Event::JoinRefused { by, reason } => {
                let capacity = matches!(reason, Incompatibility::Capacity { .. });
                self.join_refused.push((l.at, id, *by, capacity))
            }
            Event::JoinRequestRefused { from, reason } => {
                let capacity = matches!(reason, Incompatibility::Capacity { .. });
                self.join_request_refused.push((l.at, id, *from, capacity))
            }
            _ => {}
        }
        Ok(())
    }

    /// The split-brain rule for node `id` against every other node.
    fn check(&mut self, id: NodeId) -> Result<(), String> {
        match self.mutually_downed(id) {
            Some((j, true)) => Err(format!(
                "split brain: nodes {id} and {j} both report themselves up, have nothing left \
                 to decide, and each reported the other's current incarnation downed or removed"
            )),
            Some((_, false)) => {
                self.unsettled_mutual_downs += 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A node that is up, as is `id`, and that has downed `id` as `id` has downed it, and
    /// whether both are settled (a settled pair first).
    fn mutually_downed(&self, id: NodeId) -> Option<(NodeId, bool)> {
        let a = &self.nodes[id];
        let ua = a.uid?;
        if !(a.running && a.up) {
            return None;
        }
        let mut unsettled = None;
        for (j, b) in self.nodes.iter().enumerate() {
            let Some(ub) = b.uid else { continue };
            if j != id && b.running && b.up && a.downed.contains(&ub) && b.downed.contains(&ua) {
                if a.settled() && b.settled() {
                    return Some((j, true));
                }
                unsettled = Some((j, false));
            }
        }
        unsettled
    }

    /// The split-brain rule without the settled exemption, over every node: after the final
    /// heal and settle time, no two up nodes may have downed each other at all.
    pub fn strict(&self) -> Result<(), String> {
        for id in 0..self.nodes.len() {
            if let Some((j, _)) = self.mutually_downed(id) {
                return Err(format!(
                    "split brain: nodes {id} and {j} both report themselves up after the final \
                     heal, and each reported the other's current incarnation downed or removed"
                ));
            }
        }
        Ok(())
    }
}
