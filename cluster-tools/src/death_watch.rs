//! Death watch: be told when a member is gone for good (Pekko's `watch` of an actor on a
//! cluster member, which yields `Terminated` when the member is removed).
//!
//! Membership is the authority, as in Pekko: a watch ends when the watched incarnation is
//! **removed** from the cluster, after it left gracefully (Leaving → Exiting → Removed) or
//! after it was downed (Down → Removed) — never merely because it is unreachable. Once it
//! has ended, work that member did may safely start elsewhere: a downed member was removed
//! only after the leader's down-removal margin, time for it to have stopped. A member that
//! nobody downs stays unreachable and its watch does not end; opt in to
//! [`Notice::Suspected`] to hear of unreachability earlier.
//!
//! A watch never hangs on something that cannot happen: watching what is not a member (never
//! was, already removed, or another incarnation at that address) ends at once with
//! [`Removed::NotAMember`], and when this node stops, every watch ends with
//! [`Removed::Stopped`].
//!
//! - [`watch`]: one member, one future.
//! - [`DeathWatch`]: many members over one subscription, and the suspicion notices.
//! - [`WatchTable`]: the sans-IO rules both run on (membership events in, notices out).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use fjell_runtime::core::{Member, MemberStatus, NodeStatus, StopReason, UniqueAddress};
use fjell_runtime::{member_of, Cluster, ClusterState, Event, Subscription};

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The member left gracefully and was removed: the last status this node saw was
    /// Leaving, Exiting or (full-cluster shutdown) ReadyForShutdown.
    Left {
        /// Its last status before removal, as this node saw it.
        previous_status: MemberStatus,
    },
    /// The member was marked Down (by an operator or a downing strategy) and removed.
    Downed,
    /// The member was removed while the last status this node saw was Joining, WeaklyUp,
    /// Up or PreparingForShutdown: this node learned of how it ended and of its removal at
    /// once (it missed gossip in between), so it cannot tell a leave from a downing. It is
    /// gone all the same. `unreachable` says whether it was flagged unreachable then, which
    /// makes a downing the likelier story.
    Unannounced {
        /// Its last status before removal, as this node saw it.
        previous_status: MemberStatus,
        /// Whether it was flagged unreachable when removed.
        unreachable: bool,
    },
    /// It was not a member (as this node saw the cluster) when the watch began: never
    /// was, already removed, or another incarnation at that address.
    NotAMember,
    /// This node stopped taking part (with the reason it gave, if it gave one) before the
    /// member was removed: nothing more can be learned here. Watching this node itself ends
    /// this way.
    Stopped(Option<StopReason>),
}

impl Removed {
    /// True if the member is known to be removed ([`Removed::Left`], [`Removed::Downed`],
    /// [`Removed::Unannounced`]).
    pub fn is_removed(&self) -> bool {
        matches!(
            self,
            Removed::Left { .. } | Removed::Downed | Removed::Unannounced { .. }
        )
    }

    /// How a removal after `previous_status` (and flagged `unreachable` or not) is reported.
    fn after(previous_status: MemberStatus, unreachable: bool) -> Removed {
        match previous_status {
            MemberStatus::Down => Removed::Downed,
            MemberStatus::Leaving | MemberStatus::Exiting | MemberStatus::ReadyForShutdown => {
                Removed::Left { previous_status }
            }
            MemberStatus::Joining
            | MemberStatus::WeaklyUp
            | MemberStatus::Up
            | MemberStatus::PreparingForShutdown
            | MemberStatus::Removed => Removed::Unannounced {
                previous_status,
                unreachable,
            },
        }
    }
}

/// Something that happened to a watched member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The watch on `member` ended; it is no longer watched.
    Removed {
        /// The watched incarnation.
        member: UniqueAddress,
        /// How.
        removed: Removed,
    },
    /// `member` was flagged unreachable (only with [`WatchTable::notify_suspected`]); it
    /// may be downed and removed next, or become reachable again.
    Suspected(UniqueAddress),
    /// `member`, suspected before, is reachable again for every observer (only with
    /// [`WatchTable::notify_suspected`]).
    Reachable(UniqueAddress),
}

impl Notice {
    /// The member the notice is about.
    pub fn member(&self) -> UniqueAddress {
        match self {
            Notice::Removed { member, .. }
            | Notice::Suspected(member)
            | Notice::Reachable(member) => *member,
        }
    }
}

/// What this node last saw of a member.
#[derive(Debug, Clone, Copy)]
struct Seen {
    status: MemberStatus,
    unreachable: bool,
}

/// The rules of death watch, sans-IO: start from a membership snapshot, feed it every
/// event that follows ([`WatchTable::handle`], then [`WatchTable::ended`] if the events
/// end), and take the notices with [`WatchTable::poll`] after each input.
#[derive(Debug, Clone, Default)]
pub struct WatchTable {
    /// Every member as last seen, by incarnation.
    view: BTreeMap<UniqueAddress, Seen>,
    watched: BTreeSet<UniqueAddress>,
    suspicion: bool,
    /// `Some` once this node has stopped, with the reason if it gave one.
    stopped: Option<Option<StopReason>>,
    out: VecDeque<Notice>,
}

impl WatchTable {
    /// A table starting from a member list and the members flagged unreachable.
    pub fn new(members: &[Member], unreachable: &[Member]) -> WatchTable {
        let view = members
            .iter()
            .map(|m| {
                let seen = Seen {
                    status: m.status,
                    unreachable: unreachable.iter().any(|u| u.address == m.address),
                };
                (m.address, seen)
            })
            .collect();
        WatchTable {
            view,
            ..WatchTable::default()
        }
    }

    /// A table starting from `state` (a stopped node's state: every watch ends at once with
    /// [`Removed::Stopped`]).
    pub fn of_state(state: &ClusterState) -> WatchTable {
        let mut t = WatchTable::new(&state.members, &state.unreachable);
        if let NodeStatus::Stopped(reason) = state.status {
            t.stopped = Some(Some(reason));
        }
        t
    }

    /// Also report [`Notice::Suspected`] and [`Notice::Reachable`] (off by default). Turning
    /// it on reports watched members that are unreachable now.
    pub fn notify_suspected(&mut self, on: bool) {
        if on && !self.suspicion {
            for m in &self.watched {
                if self.view.get(m).is_some_and(|s| s.unreachable) {
                    self.out.push_back(Notice::Suspected(*m));
                }
            }
        }
        self.suspicion = on;
    }

    /// Watches `member` (a second watch of the same member is the same watch). The watch of
    /// a member that is not one now, or of any member once this node has stopped, ends at
    /// once.
    pub fn watch(&mut self, member: UniqueAddress) {
        if self.watched.contains(&member) {
            return;
        }
        if let Some(reason) = self.stopped {
            return self.end(member, Removed::Stopped(reason));
        }
        let Some(seen) = self.view.get(&member) else {
            return self.end(member, Removed::NotAMember);
        };
        if self.suspicion && seen.unreachable {
            self.out.push_back(Notice::Suspected(member));
        }
        self.watched.insert(member);
    }

    /// Stops watching `member`, and forgets notices about it not yet polled. Returns true if
    /// it was watched.
    pub fn unwatch(&mut self, member: UniqueAddress) -> bool {
        self.out.retain(|n| n.member() != member);
        self.watched.remove(&member)
    }

    /// True if `member` is watched (its watch has not ended).
    pub fn is_watching(&self, member: UniqueAddress) -> bool {
        self.watched.contains(&member)
    }

    /// How many members are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// True if no member is watched.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// The watched members, in address order.
    pub fn watched(&self) -> impl Iterator<Item = UniqueAddress> + '_ {
        self.watched.iter().copied()
    }

    /// Takes in the next membership event.
    pub fn handle(&mut self, event: &Event) {
        match event {
            Event::MemberRemoved {
                member,
                previous_status,
            } => {
                let seen = self.view.remove(&member.address);
                if self.watched.contains(&member.address) {
                    let unreachable = seen.is_some_and(|s| s.unreachable);
                    self.end(
                        member.address,
                        Removed::after(*previous_status, unreachable),
                    );
                }
            }
            Event::UnreachableMember(m) => self.reachability(m, true),
            Event::ReachableMember(m) => self.reachability(m, false),
            Event::Stopped(reason) => self.stop(Some(*reason)),
            e => {
                if let Some(m) = member_of(e) {
                    let seen = self.view.entry(m.address).or_insert(Seen {
                        status: m.status,
                        unreachable: false,
                    });
                    seen.status = m.status;
                }
            }
        }
    }

    /// The events ended without [`Event::Stopped`] (the node was aborted): every watch ends
    /// with [`Removed::Stopped`].
    pub fn ended(&mut self) {
        if self.stopped.is_none() {
            self.stop(None);
        }
    }

    /// The next notice, if any.
    pub fn poll(&mut self) -> Option<Notice> {
        self.out.pop_front()
    }

    fn reachability(&mut self, m: &Member, unreachable: bool) {
        let Some(seen) = self.view.get_mut(&m.address) else {
            return;
        };
        let changed = seen.unreachable != unreachable;
        seen.unreachable = unreachable;
        if changed && self.suspicion && self.watched.contains(&m.address) {
            self.out.push_back(if unreachable {
                Notice::Suspected(m.address)
            } else {
                Notice::Reachable(m.address)
            });
        }
    }

    fn stop(&mut self, reason: Option<StopReason>) {
        self.stopped = Some(reason);
        for m in std::mem::take(&mut self.watched) {
            self.out.push_back(Notice::Removed {
                member: m,
                removed: Removed::Stopped(reason),
            });
        }
    }

    fn end(&mut self, member: UniqueAddress, removed: Removed) {
        self.watched.remove(&member);
        self.out.push_back(Notice::Removed { member, removed });
    }
}

/// Watches members of a [`Cluster`] over one subscription: [`DeathWatch::watch`] them,
/// then await [`DeathWatch::next`] for what happens to them.
///
/// Holds a subscription, not a [`Cluster`] handle, so it never keeps the node from leaving.
/// Events pile up in the subscription while nobody awaits [`DeathWatch::next`]; drop the
/// watch when done with it.
#[derive(Debug)]
pub struct DeathWatch {
    table: WatchTable,
    events: Subscription,
}

impl DeathWatch {
    /// Starts following `cluster`'s membership.
    pub async fn start(cluster: &Cluster) -> DeathWatch {
        let events = cluster.subscribe().await;
        DeathWatch {
            table: WatchTable::of_state(&events.initial),
            events,
        }
    }

    /// Also report [`Notice::Suspected`] and [`Notice::Reachable`] (see
    /// [`WatchTable::notify_suspected`]).
    pub fn notify_suspected(&mut self, on: bool) {
        self.catch_up();
        self.table.notify_suspected(on);
    }

    /// Watches `member`, as this node sees the cluster now: a member taken from
    /// [`Cluster::state`] or an event is known here. Not a member (or this node stopped):
    /// the next [`DeathWatch::next`] says so at once.
    pub fn watch(&mut self, member: UniqueAddress) {
        // The events published so far, so the member list is the one `Cluster::state`
        // shows (the driver queues events and publishes the state they lead to in one step).
        self.catch_up();
        self.table.watch(member);
    }

    /// Stops watching `member`; returns true if it was watched.
    pub fn unwatch(&mut self, member: UniqueAddress) -> bool {
        self.table.unwatch(member)
    }

    /// True if `member` is watched (its watch has not ended).
    pub fn is_watching(&self, member: UniqueAddress) -> bool {
        self.table.is_watching(member)
    }

    /// The next notice about a watched member; `None` when nothing is watched and no notice
    /// is left. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Option<Notice> {
        loop {
            if let Some(n) = self.table.poll() {
                return Some(n);
            }
            if self.table.is_empty() {
                return None;
            }
            match self.events.next().await {
                Some(e) => self.table.handle(&e),
                None => self.table.ended(),
            }
        }
    }

    fn catch_up(&mut self) {
        while let Some(e) = self.events.try_next() {
            self.table.handle(&e);
        }
    }
}

/// Resolves when the incarnation `member` is removed from `cluster` (or at once if it is
/// not a member, or when this node stops), saying how. For many members, or to hear of
/// unreachability, use a [`DeathWatch`].
pub async fn watch(cluster: &Cluster, member: UniqueAddress) -> Removed {
    let mut w = DeathWatch::start(cluster).await;
    w.watch(member);
    while let Some(n) = w.next().await {
        if let Notice::Removed { removed, .. } = n {
            return removed;
        }
    }
    // Not reached: the only watch ends with a `Removed` notice before `next` returns `None`.
    Removed::Stopped(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjell_runtime::core::{AppVersion, RoleSet};
    use std::net::SocketAddr;

    fn member(i: u8, status: MemberStatus) -> Member {
        let addr = SocketAddr::new([10, 0, 0, i].into(), 7355);
        let mut m = Member::joining(
            UniqueAddress::new(addr, u64::from(i)),
            RoleSet::new(),
            AppVersion::default(),
        );
        m.status = status;
        m
    }

    fn with(m: &Member, status: MemberStatus) -> Member {
        let mut m = m.clone();
        m.status = status;
        m
    }

    fn removed(m: &Member, previous_status: MemberStatus) -> Event {
        Event::MemberRemoved {
            member: with(m, MemberStatus::Removed),
            previous_status,
        }
    }

    fn drain(t: &mut WatchTable) -> Vec<Notice> {
        std::iter::from_fn(|| t.poll()).collect()
    }

    fn three() -> (Vec<Member>, WatchTable) {
        let ms: Vec<_> = (1..=3).map(|i| member(i, MemberStatus::Up)).collect();
        let t = WatchTable::new(&ms, &[]);
        (ms, t)
    }

    #[test]
    fn left_then_removed() {
        let (ms, mut t) = three();
        t.watch(ms[2].address);
        t.handle(&Event::MemberLeft(with(&ms[2], MemberStatus::Leaving)));
        t.handle(&Event::MemberExited(with(&ms[2], MemberStatus::Exiting)));
        assert_eq!(drain(&mut t), []);
        t.handle(&removed(&ms[2], MemberStatus::Exiting));
        assert_eq!(
            drain(&mut t),
            [Notice::Removed {
                member: ms[2].address,
                removed: Removed::Left {
                    previous_status: MemberStatus::Exiting
                }
            }]
        );
        assert!(!t.is_watching(ms[2].address));
    }

    #[test]
    fn downed_then_removed_with_suspicion() {
        let (ms, mut t) = three();
        t.notify_suspected(true);
        t.watch(ms[1].address);
        t.watch(ms[2].address);
        t.handle(&Event::UnreachableMember(ms[1].clone()));
        t.handle(&Event::UnreachableMember(ms[1].clone()));
        assert_eq!(drain(&mut t), [Notice::Suspected(ms[1].address)]);
        t.handle(&Event::MemberDowned(with(&ms[1], MemberStatus::Down)));
        t.handle(&removed(&ms[1], MemberStatus::Down));
        assert_eq!(
            drain(&mut t),
            [Notice::Removed {
                member: ms[1].address,
                removed: Removed::Downed
            }]
        );
        // The other watch goes on; a member not watched makes no notice.
        assert!(t.is_watching(ms[2].address));
        t.handle(&Event::UnreachableMember(ms[0].clone()));
        assert_eq!(drain(&mut t), []);
    }

    #[test]
    fn suspicion_is_opt_in_and_reports_recovery() {
        let (ms, mut t) = three();
        t.watch(ms[1].address);
        t.handle(&Event::UnreachableMember(ms[1].clone()));
        assert_eq!(drain(&mut t), []);
        // Switched on while unreachable: said at once.
        t.notify_suspected(true);
        assert_eq!(drain(&mut t), [Notice::Suspected(ms[1].address)]);
        t.handle(&Event::ReachableMember(ms[1].clone()));
        assert_eq!(drain(&mut t), [Notice::Reachable(ms[1].address)]);
    }

    #[test]
    fn a_removal_without_its_cause_is_unannounced() {
        let ms: Vec<_> = (1..=3).map(|i| member(i, MemberStatus::Up)).collect();
        let mut t = WatchTable::new(&ms, &ms[2..]);
        t.watch(ms[2].address);
        t.handle(&removed(&ms[2], MemberStatus::Up));
        let [Notice::Removed { removed: r, .. }] = drain(&mut t)[..] else {
            panic!("one notice")
        };
        assert_eq!(
            r,
            Removed::Unannounced {
                previous_status: MemberStatus::Up,
                unreachable: true
            }
        );
        assert!(r.is_removed());
    }

    #[test]
    fn not_a_member_ends_at_once() {
        let (ms, mut t) = three();
        let stranger = member(9, MemberStatus::Up).address;
        let other_incarnation = UniqueAddress::new(ms[0].address.socket_addr(), 12345);
        t.watch(stranger);
        t.watch(other_incarnation);
        let got: Vec<_> = drain(&mut t);
        assert_eq!(
            got,
            [
                Notice::Removed {
                    member: stranger,
                    removed: Removed::NotAMember
                },
                Notice::Removed {
                    member: other_incarnation,
                    removed: Removed::NotAMember
                }
            ]
        );
        assert!(!got[0].member().same_address(ms[0].address.socket_addr()));
        // Removed already: not a member either.
        t.handle(&removed(&ms[1], MemberStatus::Exiting));
        t.watch(ms[1].address);
        assert_eq!(
            drain(&mut t),
            [Notice::Removed {
                member: ms[1].address,
                removed: Removed::NotAMember
            }]
        );
    }

    #[test]
    fn a_member_that_joins_later_can_be_watched() {
        let (_, mut t) = three();
        let late = member(7, MemberStatus::Joining);
        t.handle(&Event::MemberJoined(late.clone()));
        t.handle(&Event::MemberUp(with(&late, MemberStatus::Up)));
        t.watch(late.address);
        assert_eq!(drain(&mut t), []);
        t.handle(&Event::MemberDowned(with(&late, MemberStatus::Down)));
        t.handle(&removed(&late, MemberStatus::Down));
        assert_eq!(
            drain(&mut t),
            [Notice::Removed {
                member: late.address,
                removed: Removed::Downed
            }]
        );
    }

    #[test]
    fn this_node_stopping_ends_every_watch() {
        let (ms, mut t) = three();
        t.watch(ms[1].address);
        t.watch(ms[2].address);
        t.handle(&Event::Stopped(StopReason::Downed));
        let got = drain(&mut t);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|n| matches!(
            n,
            Notice::Removed {
                removed: Removed::Stopped(Some(StopReason::Downed)),
                ..
            }
        )));
        // And every later watch.
        t.watch(ms[0].address);
        assert_eq!(
            drain(&mut t),
            [Notice::Removed {
                member: ms[0].address,
                removed: Removed::Stopped(Some(StopReason::Downed))
            }]
        );
        // Events that end without a reason.
        let (ms, mut t) = three();
        t.watch(ms[1].address);
        t.ended();
        assert_eq!(
            drain(&mut t),
            [Notice::Removed {
                member: ms[1].address,
                removed: Removed::Stopped(None)
            }]
        );
    }

    #[test]
    fn watching_twice_is_one_watch_and_unwatch_forgets() {
        let (ms, mut t) = three();
        t.watch(ms[1].address);
        t.watch(ms[1].address);
        t.handle(&removed(&ms[1], MemberStatus::Down));
        assert_eq!(drain(&mut t).len(), 1);
        t.watch(ms[2].address);
        t.handle(&removed(&ms[2], MemberStatus::Down));
        assert!(!t.unwatch(ms[2].address), "its watch had ended");
        assert_eq!(drain(&mut t), [], "the pending notice is forgotten");
    }
}
