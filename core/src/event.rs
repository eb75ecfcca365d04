//! Cluster events, produced by diffing the state the user last saw against the current one.
//!
//! Like Pekko, events are not queued as they happen: the node remembers what it has
//! reported and, when polled, reports the next difference. A member that moved through several
//! statuses between two polls yields only the event for its latest status. This keeps memory
//! bounded (no event queue to overflow) while every node still reports the same sequence of
//! statuses for every member.

use crate::buf::Buf;
use core::net::SocketAddr;

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::leader;
use crate::member::{Member, MemberStatus, Role};
use crate::wire::Incompatibility;

/// Most roles whose leaders are tracked for [`Event::RoleLeaderChanged`].
pub const MAX_TRACKED_ROLES: usize = 4;

/// Why this node stopped taking part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It left gracefully (Leaving → Exiting) and confirmed its exit.
    Left,
    /// It was marked Down (by an operator, a downing strategy, or a restart of its address).
    Downed,
    /// It was removed from the membership without having been told first.
    Removed,
    /// Joining did not succeed before `shutdown-after-unsuccessful-join-seed-nodes`.
    JoinGaveUp,
    /// It was let in concurrently with other joiners past the cluster's capacity and dropped
    /// to make room (an [`Event::JoinRefused`] with reason
    /// [`crate::compat::Incompatibility::Capacity`] comes first). Start a new incarnation to
    /// try again.
    Dropped,
    /// It may not lead (`leader-eligible = false`) and was cut off from every member that may
    /// for as long as a decision takes (`stable-after` and the confirmation wait): nobody
    /// could decide for it. Start a new incarnation to join again.
    NoLeader,
}

/// Something the user may want to react to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A member is Joining.
    MemberJoined(Member),
    /// A member is WeaklyUp.
    MemberWeaklyUp(Member),
    /// A member is Up.
    MemberUp(Member),
    /// A member is Leaving.
    MemberLeft(Member),
    /// A member is Exiting.
    MemberExited(Member),
    /// A member is Down.
    MemberDowned(Member),
    /// A member is PreparingForShutdown.
    MemberPreparingForShutdown(Member),
    /// A member is ReadyForShutdown.
    MemberReadyForShutdown(Member),
    /// A member was removed (its status here is the last one seen).
    MemberRemoved {
        /// The member with `status` set to `Removed`.
        member: Member,
        /// Its status before removal.
        previous_status: MemberStatus,
    },
    /// A member is flagged unreachable by at least one observer.
    UnreachableMember(Member),
    /// A previously unreachable member is reachable again for every observer.
    ReachableMember(Member),
    /// The leader changed.
    LeaderChanged(Option<UniqueAddress>),
    /// The leader of a role changed.
    RoleLeaderChanged {
        /// The role.
        role: Role,
        /// Its new leader.
        leader: Option<UniqueAddress>,
    },
    /// This node's join ended refused: `by` refused it and no other seed is left to join
    /// through (or `by` is the node a Join was sent to). The node is Idle again and may join
    /// anew. Refusals from some seeds while others may still take the node are not reported.
    JoinRefused {
        /// Who refused.
        by: SocketAddr,
        /// Why.
        reason: Incompatibility,
    },
    /// This node refused a join request from `from`.
    JoinRequestRefused {
        /// The joiner's address. Only the address: a request in another protocol version does
        /// not decode, so its incarnation is unknown.
        from: SocketAddr,
        /// Why.
        reason: Incompatibility,
    },
    /// This node's downing strategy downed members (split brain resolver, down-all when
    /// unstable, or unsafe auto-down). The members it downed follow as `MemberDowned`.
    Downing(crate::resolver::DowningDecision),
    /// This node sees itself Down (downed by its own side's resolver, by the other side, or
    /// by an operator). It stops taking part within four leader ticks — sooner once the news
    /// has spread — and then reports [`Event::Stopped`] with [`StopReason::Downed`].
    SelfDowned,
    /// This node no longer takes part in the cluster. No further events follow.
    Stopped(StopReason),
    /// A fixed capacity was reached (reported once per kind until polled, however often it
    /// happens in between; [`crate::Stats`] counts each occurrence).
    LimitReached(Limit),
}

/// A fixed capacity of the node, named in [`Event::LimitReached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The outbox was full and an outgoing message was dropped ([`crate::node::OUTBOX_CAPACITY`]).
    /// The protocol treats it as a message lost on the network: every message is repeated or
    /// superseded by a later one.
    Outbox,
    /// The caller's buffer was smaller than [`crate::Node::MAX_MESSAGE_LEN`]: a message was
    /// dropped.
    Buffer,
    /// More members are flagged unreachable than the reachability table holds even compacted:
    /// an observation was not recorded (see [compaction](crate::capacity#reachability-compaction)).
    ReachabilityRecords,
    /// Gossip would hold more members than the smallest member can, even without the joiners
    /// that may be dropped (two sides each moved members up: only a split brain does that).
    /// The gossip was not merged.
    Members,
    /// More departure confirmations than [`crate::node::MAX_DEPARTED`]: the leader removes the
    /// others once the failure detector flags them.
    Departed,
    /// The tombstone table (`M` entries) holds only tombstones younger than
    /// [`crate::node::TOMBSTONE_MIN_AGE`]: members due for removal stay Down or Exiting until one
    /// is old enough to go.
    Tombstones,
}

/// Limits reached and not yet reported, one bit per [`Limit`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits(u8);

impl Limits {
    const ALL: [Limit; 6] = [
        Limit::Outbox,
        Limit::Buffer,
        Limit::ReachabilityRecords,
        Limit::Members,
        Limit::Departed,
        Limit::Tombstones,
    ];

    pub(crate) fn reached(&mut self, l: Limit) {
        self.0 |= 1 << l as u8;
    }

    pub(crate) fn take(&mut self) -> Option<Limit> {
        let l = Self::ALL
            .into_iter()
            .find(|l| self.0 & (1 << *l as u8) != 0)?;
        self.0 &= !(1 << l as u8);
        Some(l)
    }
}

impl Event {
    /// The member event for a status, if that status has one.
    pub fn for_status(m: &Member) -> Option<Event> {
        let m2 = m.clone();
        Some(match m.status {
            MemberStatus::Joining => Event::MemberJoined(m2),
            MemberStatus::WeaklyUp => Event::MemberWeaklyUp(m2),
            MemberStatus::Up => Event::MemberUp(m2),
            MemberStatus::Leaving => Event::MemberLeft(m2),
            MemberStatus::Exiting => Event::MemberExited(m2),
            MemberStatus::Down => Event::MemberDowned(m2),
            MemberStatus::PreparingForShutdown => Event::MemberPreparingForShutdown(m2),
            MemberStatus::ReadyForShutdown => Event::MemberReadyForShutdown(m2),
            MemberStatus::Removed => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    member: Member,
    unreachable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Removed,
    Members,
    Unreachable,
    Reachable,
    Leader,
    RoleLeaders,
    Done,
}

/// Remembers what has been reported and reports the next difference (order as in Pekko:
/// removals, member changes, unreachable, reachable, leader, role leaders).
#[derive(Debug, Clone)]
pub(crate) struct Publisher<const M: usize> {
    seen: Buf<Seen, M>,
    leader: Option<UniqueAddress>,
    role_leaders: heapless::Vec<(Role, Option<UniqueAddress>), MAX_TRACKED_ROLES>,
    phase: Phase,
    cursor: usize,
}

impl<const M: usize> Default for Publisher<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const M: usize> Publisher<M> {
    /// Nothing reported yet.
    pub const fn new() -> Self {
        Publisher {
            seen: Buf::new(),
            leader: None,
            role_leaders: heapless::Vec::new(),
            phase: Phase::Done,
            cursor: 0,
        }
    }

    /// Forgets what was reported, without reporting anything: the node starts over as a
    /// joiner, and its next membership is reported as a fresh one.
    pub fn reset(&mut self) {
        self.seen.clear();
        self.leader = None;
        self.role_leaders.clear();
        self.phase = Phase::Done;
        self.cursor = 0;
    }

    /// The state changed: start diffing again from the top.
    pub fn invalidate(&mut self) {
        self.phase = Phase::Removed;
        self.cursor = 0;
    }

    /// True if there may be something to report.
    pub fn pending(&self) -> bool {
        self.phase != Phase::Done
    }

    /// The next difference between what was reported and `g`, or `None` when all is reported.
    pub fn poll<const R: usize>(
        &mut self,
        g: &Gossip<M, R>,
        self_node: &UniqueAddress,
    ) -> Option<Event> {
        loop {
            match self.phase {
                Phase::Removed => {
                    while let Some(s) = self.seen.get(self.cursor) {
                        if g.is_member(&s.member.address) {
                            self.cursor += 1;
                            continue;
                        }
                        let s = self.seen.remove(self.cursor);
                        let mut member = s.member;
                        let previous_status = member.status;
                        member.status = MemberStatus::Removed;
                        return Some(Event::MemberRemoved {
                            member,
                            previous_status,
                        });
                    }
                    self.next_phase();
                }
                Phase::Members => {
                    while let Some(m) = g.members.get(self.cursor) {
                        self.cursor += 1;
                        match self
                            .seen
                            .binary_search_by(|s| s.member.address.cmp(&m.address))
                        {
                            Ok(i) => {
                                let old = &mut self.seen[i].member;
                                if old.status != m.status || old.up_number != m.up_number {
                                    *old = m.clone();
                                    if let Some(e) = Event::for_status(m) {
                                        return Some(e);
                                    }
                                }
                            }
                            Err(i) => {
                                // Cannot overflow: seen ⊆ members after the Removed phase.
                                let _ = self.seen.insert(
                                    i,
                                    Seen {
                                        member: m.clone(),
                                        unreachable: false,
                                    },
                                );
                                if let Some(e) = Event::for_status(m) {
                                    return Some(e);
                                }
                            }
                        }
                    }
                    self.next_phase();
                }
                Phase::Unreachable | Phase::Reachable => {
                    let want_unreachable = self.phase == Phase::Unreachable;
                    while let Some(s) = self.seen.get_mut(self.cursor) {
                        self.cursor += 1;
                        if s.member.address == *self_node {
                            continue;
                        }
                        let now_unreachable = !g.reachability().is_reachable(&s.member.address);
                        if now_unreachable != s.unreachable && now_unreachable == want_unreachable {
                            s.unreachable = now_unreachable;
                            let m = s.member.clone();
                            return Some(if want_unreachable {
                                Event::UnreachableMember(m)
                            } else {
                                Event::ReachableMember(m)
                            });
                        }
                    }
                    self.next_phase();
                }
                Phase::Leader => {
                    self.next_phase();
                    let l = leader::leader(g, self_node);
                    if l != self.leader {
                        self.leader = l;
                        return Some(Event::LeaderChanged(l));
                    }
                }
                Phase::RoleLeaders => {
                    if let Some(e) = self.poll_role_leaders(g, self_node) {
                        return Some(e);
                    }
                    self.next_phase();
                }
                Phase::Done => return None,
            }
        }
    }

    fn poll_role_leaders<const R: usize>(
        &mut self,
        g: &Gossip<M, R>,
        self_node: &UniqueAddress,
    ) -> Option<Event> {
        // Track every role present now (up to the limit); roles that vanished report None once.
        for m in g.members.iter() {
            for role in m.roles.iter() {
                if !self.role_leaders.iter().any(|(r, _)| r == role) {
                    let _ = self.role_leaders.push((*role, None));
                }
            }
        }
        while let Some((role, old)) = self.role_leaders.get_mut(self.cursor) {
            let role = *role;
            let l = leader::role_leader(g, self_node, role.as_str());
            if l != *old {
                *old = l;
                self.cursor += 1;
                return Some(Event::RoleLeaderChanged { role, leader: l });
            }
            if l.is_none() {
                // The role is gone and its end was reported: free the slot.
                self.role_leaders.remove(self.cursor);
            } else {
                self.cursor += 1;
            }
        }
        None
    }

    fn next_phase(&mut self) {
        self.cursor = 0;
        self.phase = match self.phase {
            Phase::Removed => Phase::Members,
            Phase::Members => Phase::Unreachable,
            Phase::Unreachable => Phase::Reachable,
            Phase::Reachable => Phase::Leader,
            Phase::Leader => Phase::RoleLeaders,
            Phase::RoleLeaders | Phase::Done => Phase::Done,
        };
    }
}

/// The current state as events from an empty one: what a new subscriber that asked for
/// "initial state as events" replays. Borrowing, allocation-free.
#[derive(Debug, Clone)]
pub struct Replay<'a, const M: usize, const R: usize> {
    g: &'a Gossip<M, R>,
    me: UniqueAddress,
    phase: u8,
    i: usize,
    j: usize,
}

impl<'a, const M: usize, const R: usize> Replay<'a, M, R> {
    pub(crate) fn new(g: &'a Gossip<M, R>, me: UniqueAddress) -> Self {
        Replay {
            g,
            me,
            phase: 0,
            i: 0,
            j: 0,
        }
    }
}

impl<const M: usize, const R: usize> Iterator for Replay<'_, M, R> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let g = self.g;
        loop {
            match self.phase {
                0 => match g.members.get(self.i) {
                    Some(m) => {
                        self.i += 1;
                        if let Some(e) = Event::for_status(m) {
                            return Some(e);
                        }
                    }
                    None => (self.phase, self.i) = (1, 0),
                },
                1 => match g.members.get(self.i) {
                    Some(m) => {
                        self.i += 1;
                        if m.address != self.me && !g.reachability().is_reachable(&m.address) {
                            return Some(Event::UnreachableMember(m.clone()));
                        }
                    }
                    None => (self.phase, self.i) = (2, 0),
                },
                2 => {
                    self.phase = 3;
                    if let Some(l) = leader::leader(g, &self.me) {
                        return Some(Event::LeaderChanged(Some(l)));
                    }
                }
                3 => {
                    let m = g.members.get(self.i)?;
                    match m.roles.iter().nth(self.j) {
                        None => (self.i, self.j) = (self.i + 1, 0),
                        Some(role) => {
                            self.j += 1;
                            let first = !g.members[..self.i]
                                .iter()
                                .any(|x| x.roles.contains(role.as_str()));
                            if first {
                                if let Some(l) = leader::role_leader(g, &self.me, role.as_str()) {
                                    return Some(Event::RoleLeaderChanged {
                                        role: *role,
                                        leader: Some(l),
                                    });
                                }
                            }
                        }
                    }
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AppVersion, RoleSet};
    use crate::reachability::ReachabilityStatus;
    use crate::time::Instant;

    type G = Gossip<8, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    fn drain(p: &mut Publisher<8>, g: &G) -> heapless::Vec<Event, 32> {
        p.invalidate();
        let mut v = heapless::Vec::new();
        while let Some(e) = p.poll(g, &n(1)) {
            v.push(e).unwrap();
        }
        v
    }

    #[test]
    fn diff_reports_changes_in_order_and_only_once() {
        let mut g = G::new();
        let mut p = Publisher::<8>::new();
        g.add_member(Member::joining(n(1), RoleSet::new(), AppVersion::default()))
            .unwrap();
        let e = drain(&mut p, &g);
        assert!(matches!(e[0], Event::MemberJoined(_)));
        assert_eq!(e[1], Event::LeaderChanged(Some(n(1))));
        assert_eq!(e.len(), 2);
        assert!(drain(&mut p, &g).is_empty());

        g.add_member(Member::joining(n(2), RoleSet::new(), AppVersion::default()))
            .unwrap();
        g.set_status(&n(1), MemberStatus::Up).unwrap();
        g.change_reachability_for_tests(n(1), n(2), ReachabilityStatus::Unreachable)
            .unwrap();
        let e = drain(&mut p, &g);
        assert!(matches!(e[0], Event::MemberUp(ref m) if m.address == n(1)));
        assert!(matches!(e[1], Event::MemberJoined(ref m) if m.address == n(2)));
        assert!(matches!(e[2], Event::UnreachableMember(ref m) if m.address == n(2)));
        assert_eq!(e.len(), 3);

        g.remove_member(&n(2), Instant::ZERO);
        let e = drain(&mut p, &g);
        assert!(matches!(
            e[0],
            Event::MemberRemoved { ref member, previous_status: MemberStatus::Joining }
                if member.address == n(2) && member.status == MemberStatus::Removed
        ));
        assert_eq!(e.len(), 1);
    }
}
