//! When the split brain resolver decides (notes §11.4): the stable-after timer, down-all when
//! unstable, acting only as the leader of its side, the lease of lease-majority, auto-down, and
//! the down-removal margin. What it decides is [`crate::downing`]'s business; carrying the
//! decision out is the node's.

use crate::buf::Buf;
use core::time::Duration;

use crate::address::{Digest, UniqueAddress};
use crate::config::{Downing, DowningSettings};
use crate::downing::{Decision, Partition, Strategy};
use crate::gossip::Gossip;
use crate::lease::LeaseRequest;
use crate::member::MemberStatus;
use crate::time::{scaled, Instant};

/// Why the resolver acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Membership and reachability were stable for `stable-after`.
    Stable,
    /// Reachability kept changing for longer than `stable-after` plus
    /// `down-all-when-unstable`.
    Unstable,
    /// This side acquired the lease.
    LeaseAcquired,
    /// Another side holds the lease.
    LeaseDenied,
    /// Members were unreachable for `auto-down-unreachable-after` (unsafe auto-down).
    AutoDown,
}

/// A downing decision this node carried out (reported as [`crate::Event::Downing`]). The
/// members it downed follow as [`crate::Event::MemberDowned`] events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DowningDecision {
    /// The configured downing.
    pub by: Downing,
    /// The decision.
    pub decision: Decision,
    /// Why now.
    pub reason: Reason,
    /// How many members it downed.
    pub downed: u32,
    /// Whether this node is among them (it stops shortly after).
    pub self_downed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseState {
    Idle,
    /// The minority waits before asking, so the majority usually gets the lease first.
    Delayed {
        until: Instant,
        decision: Decision,
    },
    /// Asked for the lease to carry out `decision`, taken on the view whose unreachable
    /// members digest to `view`: an answer that arrives after that view changed is stale.
    Asked {
        decision: Decision,
        view: u64,
    },
    /// Held: released `release-after` once the members it downed are gone (`release_at` is
    /// set then).
    Held {
        release_at: Option<Instant>,
    },
}

/// What the resolver asks of the node after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The view has been stable for `stable-after`: make a new version of the state (a clock
    /// bump) and spread it. The decision waits until every member this side counts has seen a
    /// version made after the stable period ended. Without it, an ally cut off silently after
    /// it saw an older, unchanged state (a partition that moved before the failure detector
    /// noticed) would count as an ally.
    Confirm,
    /// Waiting for allies to see the confirmation: send it directly to some members that have
    /// not seen it yet, so an ally is not taken for silent only because random gossip
    /// targets missed it.
    Push,
    /// Carry out this decision.
    Act(Decision, Reason),
}

/// The resolver's clocks and lease state for one node. Recomputes its view only when the
/// gossip changed since the last tick.
#[derive(Debug, Clone)]
pub(crate) struct Resolver<const M: usize> {
    generation: u64,
    /// Digest of the unreachable members (changes are "reachability changes").
    unreachable_digest: u64,
    /// Sorted hashes of (member, status class) for the statuses whose arrival resets the
    /// stable timer: Up (and Leaving and the shutdown statuses, which follow it without a
    /// reset), Exiting and Down. A member entering one of them is a new hash; Joining,
    /// WeaklyUp, Leaving and removal add none, so they do not reset the timer (Pekko).
    timer_members: Buf<u32, M>,
    has_unreachable: bool,
    /// Stable hashes (sorted) of the members that have seen a version made since the
    /// confirmation: they are in contact with this side. Gathered from this node's state and
    /// from every gossip it receives while the confirmation is out.
    contact: Buf<u64, M>,
    /// Since the stable deadline was last set: whether a [`Step::Confirm`] was asked for, and
    /// once the node made it, when.
    confirm: Confirm,
    stable_deadline: Option<Instant>,
    /// First reachability change since the last time everything was reachable (or downed).
    unstable_since: Option<Instant>,
    lease: LeaseState,
    request: Option<LeaseRequest>,
    down_count: u16,
    /// Down members are kept until then (down-removal margin).
    hold_down_until: Option<Instant>,
}

impl<const M: usize> Resolver<M> {
    pub(crate) const fn new() -> Self {
        Resolver {
            generation: u64::MAX,
            unreachable_digest: 0,
            timer_members: Buf::new(),
            has_unreachable: false,
            contact: Buf::new(),
            confirm: Confirm::None,
            stable_deadline: None,
            unstable_since: None,
            lease: LeaseState::Idle,
            request: None,
            down_count: 0,
            hold_down_until: None,
        }
    }

    /// The next request for the lease, if any.
    pub(crate) fn poll_request(&mut self) -> Option<LeaseRequest> {
        self.request.take()
    }

    /// Whether the leader must keep Down members that have not confirmed they stopped.
    pub(crate) fn holds_down_members(&self, now: Instant) -> bool {
        self.hold_down_until.is_some_and(|t| now < t)
    }

    /// Brings the resolver's view up to `g`, the state at `generation`, as a tick does first.
    /// The leader acts on a converged state as soon as it converges, between ticks: the
    /// down-removal margin it reads must already count a Down that arrived since the last tick.
    pub(crate) fn catch_up<const R: usize>(
        &mut self,
        now: Instant,
        g: &Gossip<M, R>,
        generation: u64,
        s: &DowningSettings,
    ) {
        if generation != self.generation {
            self.generation = generation;
            self.observe(now, g, s);
        }
    }

    /// One tick (every leader tick, `tick` apart). `responsible`: this node leads its side and
    /// has been Up. Returns what the node must do now.
    pub(crate) fn tick<const R: usize>(
        &mut self,
        now: Instant,
        g: &Gossip<M, R>,
        generation: u64,
        responsible: bool,
        s: &DowningSettings,
        tick: Duration,
    ) -> Option<Step> {
        let n = g.members().len();
        self.catch_up(now, g, generation, s);
        if let LeaseState::Held { release_at } = self.lease {
            match release_at {
                // Pekko: keep the lease until the downed members are removed, then wait
                // release-after, so the other side has surely stopped before it can win it.
                None if self.down_count == 0 => {
                    self.lease = LeaseState::Held {
                        release_at: Some(now + s.lease_release_after),
                    };
                }
                Some(t) if now >= t => {
                    self.lease = LeaseState::Idle;
                    self.request = Some(LeaseRequest::Release);
                }
                _ => {}
            }
        }
        if s.downing == Downing::Manual {
            return None;
        }
        if let (Some(since), Some(extra)) = (self.unstable_since, s.unstable_after_for(n)) {
            // Every node that may lead, leader or not (one that may not runs no resolver,
            // see `Node::follow`): when nothing settles, nobody can decide safely.
            // The latest a decision on a settled view comes is stable-after plus the
            // confirmation wait (plus, for lease-majority, the minority's delay).
            let lease_delay = match s.downing {
                Downing::SplitBrainResolver(Strategy::LeaseMajority { .. }) => {
                    s.acquire_lease_delay_for_minority
                }
                _ => Duration::ZERO,
            };
            // Stable-after and the confirmation wait each end at the next tick: two ticks.
            let decided_by =
                s.stable_after_for(n) + s.confirm_wait_for(n) + lease_delay + scaled(tick, 2);
            if now >= since + decided_by + extra {
                return Some(Step::Act(Decision::DownAll, Reason::Unstable));
            }
        }
        if !responsible || !self.has_unreachable || self.stable_deadline.is_some_and(|d| now < d) {
            return None;
        }
        let strategy = match s.downing {
            Downing::Manual => return None,
            Downing::UnsafeAutoDown { .. } => {
                return Some(Step::Act(Decision::DownUnreachable, Reason::AutoDown))
            }
            Downing::SplitBrainResolver(strategy) => strategy,
        };
        match self.confirm {
            Confirm::None => {
                self.confirm = Confirm::Asked;
                return Some(Step::Confirm);
            }
            Confirm::Asked => return None,
            // Allies that never see the confirmation are not in contact with this side: once
            // the wait is over they count as the other side (see `Partition::for_decision`).
            Confirm::Made { at, .. }
                if now < at + s.confirm_wait_for(n) && self.partition(g).has_silent() =>
            {
                return Some(Step::Push);
            }
            Confirm::Made { .. } => {}
        }
        let p = self.partition(g);
        let decision = p.decide(&strategy);
        let Strategy::LeaseMajority { role } = strategy else {
            return Some(Step::Act(decision, Reason::Stable));
        };
        match self.lease {
            // Ask again even while holding it: the lease's own expiry is refreshed, and the
            // release is pushed back to `release-after` from this decision.
            LeaseState::Held { .. } => {
                self.ask(decision);
                None
            }
            LeaseState::Asked { .. } => None,
            LeaseState::Delayed { until, .. } if now < until => None,
            LeaseState::Delayed { .. } => {
                self.ask(decision);
                None
            }
            LeaseState::Idle => {
                if p.lease_minority(role) {
                    let until = now + s.acquire_lease_delay_for_minority;
                    self.lease = LeaseState::Delayed { until, decision };
                    if s.acquire_lease_delay_for_minority.is_zero() {
                        self.ask(decision);
                    }
                } else {
                    self.ask(decision);
                }
                None
            }
        }
    }

    fn ask(&mut self, decision: Decision) {
        self.lease = LeaseState::Asked {
            decision,
            view: self.unreachable_digest,
        };
        self.request = Some(LeaseRequest::Acquire);
    }

    /// The lease's answer: the decision to carry out, if a request was outstanding and the
    /// view it was taken on still holds. A stale answer is dropped (a granted lease is
    /// given back) and the resolver waits for a new stable period.
    pub(crate) fn on_lease<const R: usize>(
        &mut self,
        now: Instant,
        granted: bool,
        g: &Gossip<M, R>,
        generation: u64,
        s: &DowningSettings,
    ) -> Option<(Decision, Reason)> {
        let LeaseState::Asked { decision, view } = self.lease else {
            return None;
        };
        if generation != self.generation {
            self.generation = generation;
            self.observe(now, g, s);
        }
        if !self.has_unreachable || self.unreachable_digest != view {
            self.lease = LeaseState::Idle;
            if granted {
                self.request = Some(LeaseRequest::Release);
            }
            self.restart_stable_timer(now, g.members().len(), s);
            return None;
        }
        if granted {
            self.lease = LeaseState::Held { release_at: None };
            Some((decision, Reason::LeaseAcquired))
        } else {
            self.lease = LeaseState::Idle;
            Some((decision.reverse(), Reason::LeaseDenied))
        }
    }

    /// After carrying out a decision that downed `downed` members: wait for a new stable
    /// period, forget the instability, and keep the downed members for the removal margin.
    pub(crate) fn acted<const R: usize>(
        &mut self,
        now: Instant,
        g: &Gossip<M, R>,
        downed: u32,
        s: &DowningSettings,
    ) {
        let n = g.members().len();
        self.restart_stable_timer(now, n, s);
        self.unstable_since = None;
        if downed > 0 {
            self.hold_down_until = Some(now + s.removal_margin_for(n));
        }
    }

    /// The node made the version asked for by [`Step::Confirm`] at `now`: `g`, its state
    /// now. A version descends from it when this node's own clock entry is at least the
    /// confirmed one (only this node bumps that entry).
    pub(crate) fn confirming<const R: usize>(
        &mut self,
        now: Instant,
        g: &Gossip<M, R>,
        me: &UniqueAddress,
    ) {
        let counter = g.version().get(me);
        self.confirm = Confirm::Made { at: now, counter };
        self.contact.clear();
    }

    /// Notes who has seen `g` (this node's state, or gossip just received from a peer): if it
    /// descends from the confirmation, they are in contact with this side.
    pub(crate) fn note_contact<const R: usize>(&mut self, g: &Gossip<M, R>, me: &UniqueAddress) {
        if self.descends(g, me) {
            for a in g.seen() {
                self.add_contact(a);
            }
        }
    }

    /// Notes that `who` holds `g`, this node's state.
    pub(crate) fn note_contact_of<const R: usize>(
        &mut self,
        g: &Gossip<M, R>,
        me: &UniqueAddress,
        who: &UniqueAddress,
    ) {
        if self.descends(g, me) {
            self.add_contact(who);
        }
    }

    fn descends<const R: usize>(&self, g: &Gossip<M, R>, me: &UniqueAddress) -> bool {
        matches!(self.confirm, Confirm::Made { counter, .. } if g.version().get(me) >= counter)
    }

    fn add_contact(&mut self, a: &UniqueAddress) {
        let h = a.stable_hash();
        if let Err(at) = self.contact.binary_search(&h) {
            // Full only if membership churned during the wait: members left out then count as
            // silent, which can only make this side more careful.
            let _ = self.contact.insert(at, h);
        }
    }

    /// Whether a decision is overdue for a node of `rank` (0 first): unreachable members, and
    /// nothing changed for `1 + rank` stable-afters past the stable deadline. The node leading
    /// this side would have decided (and changed the state) by then, so the others take over,
    /// one after the other: the member they defer to may be gone, its seen mark on a version
    /// nobody changes any more being all that is left of it (campaign seeds 21749, 83144).
    pub(crate) fn overdue(
        &self,
        now: Instant,
        members: usize,
        rank: usize,
        s: &DowningSettings,
    ) -> bool {
        let rank = u32::try_from(rank).unwrap_or(u32::MAX).saturating_add(1);
        self.has_unreachable
            && self
                .stable_deadline
                .is_some_and(|d| now >= d + scaled(s.stable_after_for(members), rank))
    }

    /// Whether `a` has seen a version made since the confirmation.
    pub(crate) fn in_contact(&self, a: &UniqueAddress) -> bool {
        matches!(self.confirm, Confirm::Made { .. })
            && self.contact.binary_search(&a.stable_hash()).is_ok()
    }

    /// The partition a decision is taken and carried out on: with the members silent since the
    /// confirmation (see [`Partition::for_decision`]), or as flagged when no confirmation was
    /// made (auto-down, down-all when unstable).
    pub(crate) fn partition<'a, const R: usize>(&self, g: &'a Gossip<M, R>) -> Partition<'a, M, R> {
        match self.confirm {
            Confirm::Made { .. } => Partition::for_decision(g, |a| self.in_contact(a)),
            _ => Partition::of(g),
        }
    }

    fn restart_stable_timer(&mut self, now: Instant, members: usize, s: &DowningSettings) {
        self.stable_deadline = Some(now + s.stable_after_for(members));
        self.confirm = Confirm::None;
    }

    fn observe<const R: usize>(&mut self, now: Instant, g: &Gossip<M, R>, s: &DowningSettings) {
        let n = g.members().len();
        let p = Partition::of(g);
        let mut unreachable = 0u64;
        let mut downs = 0u16;
        let mut member_arrived = false;
        for (i, m) in g.members().iter().enumerate() {
            let h = m.address.stable_hash();
            if p.is_unreachable(i) {
                unreachable = unreachable.wrapping_add(h);
            }
            if m.status == MemberStatus::Down {
                downs = downs.saturating_add(1);
            }
            if let Some(key) = timer_key(h, m.status) {
                member_arrived |= self.timer_members.binary_search(&key).is_err();
            }
        }
        if member_arrived {
            self.timer_members.clear();
            for m in g.members() {
                if let Some(key) = timer_key(m.address.stable_hash(), m.status) {
                    // Cannot fail: at most one key per member, and M members at most.
                    let _ = self.timer_members.push(key);
                }
            }
            crate::sorted::sort_by_key(&mut self.timer_members, |k| *k);
        }
        self.has_unreachable = p.has_unreachable();
        let reachability_changed = unreachable != self.unreachable_digest;
        if reachability_changed || member_arrived {
            self.restart_stable_timer(now, n, s);
        }
        if reachability_changed && self.has_unreachable {
            self.unstable_since.get_or_insert(now);
        }
        if !self.has_unreachable {
            self.unstable_since = None;
            if matches!(self.lease, LeaseState::Delayed { .. }) {
                self.lease = LeaseState::Idle;
            }
        }
        if downs > self.down_count {
            let margin = s.removal_margin_for(n);
            if margin > Duration::ZERO {
                self.hold_down_until = Some(now + margin);
            }
        }
        self.down_count = downs;
        self.unreachable_digest = unreachable;
    }
}

/// Where the confirmation round stands (see [`Step::Confirm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    None,
    Asked,
    /// Made at `at`; this node's own clock entry in the confirmed version was `counter`.
    Made {
        at: Instant,
        counter: u64,
    },
}

/// The key under which a member in `status` counts for the stable timer, if its status is one
/// whose arrival resets the timer.
fn timer_key(address_hash: u64, status: MemberStatus) -> Option<u32> {
    let class = match status {
        MemberStatus::Joining | MemberStatus::WeaklyUp | MemberStatus::Removed => return None,
        MemberStatus::Up
        | MemberStatus::Leaving
        | MemberStatus::PreparingForShutdown
        | MemberStatus::ReadyForShutdown => 1,
        MemberStatus::Exiting => 2,
        MemberStatus::Down => 3,
    };
    let mut d = Digest::new();
    d.write_u64(address_hash);
    d.write_u64(class);
    // 32 bits keep the device preset small; a collision only misses one timer restart.
    Some(d.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::UniqueAddress;
    use crate::member::{AppVersion, Member, RoleSet};
    use crate::reachability::ReachabilityStatus;

    const TICK: Duration = Duration::from_secs(1);
    use core::time::Duration;

    type G = Gossip<8, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    /// Five Up members; node 1 flags `flagged`, and the others have seen the state.
    fn view(flagged: &[u8]) -> G {
        let mut g = G::new();
        for i in 1..=5 {
            let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
            m.status = MemberStatus::Up;
            m.up_number = core::num::NonZeroU32::new(u32::from(i));
            g.add_member(m).unwrap();
            if !flagged.contains(&i) {
                g.add_seen(n(i));
            }
        }
        for f in flagged {
            g.change_reachability_for_tests(n(1), n(*f), ReachabilityStatus::Unreachable)
                .unwrap();
        }
        g
    }

    fn lease_majority() -> DowningSettings {
        DowningSettings {
            downing: Downing::SplitBrainResolver(Strategy::LeaseMajority { role: None }),
            stable_after: Some(Duration::from_secs(5)),
            ..DowningSettings::default()
        }
    }

    /// A resolver that has asked for the lease on the view where 4 and 5 are unreachable.
    fn asked(s: &DowningSettings) -> (Resolver<8>, Instant) {
        let mut r = Resolver::new();
        let t0 = Instant::ZERO;
        let g = view(&[4, 5]);
        assert_eq!(r.tick(t0, &g, 1, true, s, TICK), None);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(r.tick(later, &g, 1, true, s, TICK), Some(Step::Confirm));
        // (The node bumps the state here; the allies have seen the new version.)
        r.confirming(later, &g, &n(1));
        r.note_contact(&g, &n(1));
        assert_eq!(r.tick(later, &g, 2, true, s, TICK), None);
        assert_eq!(r.poll_request(), Some(LeaseRequest::Acquire));
        (r, later)
    }

    #[test]
    fn a_lease_answer_acts_on_the_view_it_was_asked_for() {
        let s = lease_majority();
        let (mut r, now) = asked(&s);
        let got = r.on_lease(now, true, &view(&[4, 5]), 1, &s);
        assert_eq!(
            got,
            Some((Decision::DownUnreachable, Reason::LeaseAcquired))
        );
        let (mut r, now) = asked(&s);
        let got = r.on_lease(now, false, &view(&[4, 5]), 1, &s);
        assert_eq!(got, Some((Decision::DownReachable, Reason::LeaseDenied)));
    }

    #[test]
    fn a_lease_answer_after_the_view_changed_is_dropped_and_the_lease_given_back() {
        let s = lease_majority();
        // Healed while the lease was being asked: nothing to down any more.
        let (mut r, now) = asked(&s);
        assert_eq!(r.on_lease(now, false, &view(&[]), 3, &s), None);
        let (mut r, now) = asked(&s);
        assert_eq!(r.on_lease(now, true, &view(&[]), 3, &s), None);
        assert_eq!(r.poll_request(), Some(LeaseRequest::Release));
        // Someone else became unreachable meanwhile: not what was decided on.
        let (mut r, now) = asked(&s);
        assert_eq!(r.on_lease(now, true, &view(&[3, 4, 5]), 3, &s), None);
        assert_eq!(r.poll_request(), Some(LeaseRequest::Release));
    }

    #[test]
    fn the_lease_is_held_until_the_downed_members_are_gone() {
        let s = lease_majority();
        let (mut r, now) = asked(&s);
        assert!(r.on_lease(now, true, &view(&[4, 5]), 1, &s).is_some());
        // The downed members are still there (Down): no release, however long.
        let mut g = view(&[4, 5]);
        for i in [4, 5] {
            g.set_status(&n(i), MemberStatus::Down).unwrap();
        }
        let later = now + Duration::from_secs(600);
        r.tick(later, &g, 2, true, &s, TICK);
        assert_eq!(r.poll_request(), None);
        // Removed: release-after runs from then on.
        let mut g = view(&[]);
        for i in [4, 5] {
            g.remove_member(&n(i), later);
        }
        r.tick(later, &g, 3, true, &s, TICK);
        assert_eq!(r.poll_request(), None);
        r.tick(later + s.lease_release_after, &g, 3, true, &s, TICK);
        assert_eq!(r.poll_request(), Some(LeaseRequest::Release));
    }

    fn keep_majority() -> DowningSettings {
        DowningSettings {
            downing: Downing::SplitBrainResolver(Strategy::KeepMajority { role: None }),
            stable_after: Some(Duration::from_secs(5)),
            ..DowningSettings::default()
        }
    }

    #[test]
    fn a_decision_waits_for_every_ally_to_see_a_version_made_after_the_stable_period() {
        let s = keep_majority();
        let mut r = Resolver::<8>::new();
        let g = view(&[4, 5]);
        assert_eq!(r.tick(Instant::ZERO, &g, 1, true, &s, TICK), None);
        let later = Instant::ZERO + Duration::from_secs(6);
        // Everyone on this side saw the state, but that was before the stable period ended.
        assert_eq!(r.tick(later, &g, 1, true, &s, TICK), Some(Step::Confirm));
        // The bumped version: only this node (1) has seen it so far.
        let mut fresh = g.clone();
        fresh.bump(n(1), true).unwrap();
        r.confirming(later, &fresh, &n(1));
        r.note_contact(&fresh, &n(1));
        assert_eq!(r.tick(later, &fresh, 2, true, &s, TICK), Some(Step::Push));
        // An older version that 2 and 3 saw does not count.
        r.note_contact(&g, &n(1));
        fresh.add_seen(n(2));
        r.note_contact(&fresh, &n(1));
        assert_eq!(
            r.tick(later, &fresh, 3, true, &s, TICK),
            Some(Step::Push),
            "3 has not seen it"
        );
        fresh.add_seen(n(3));
        r.note_contact(&fresh, &n(1));
        assert_eq!(
            r.tick(later, &fresh, 4, true, &s, TICK),
            Some(Step::Act(Decision::DownUnreachable, Reason::Stable))
        );
    }

    #[test]
    fn allies_that_never_see_the_confirmation_count_as_the_other_side() {
        let s = keep_majority();
        let mut r = Resolver::<8>::new();
        let g = view(&[5]);
        assert_eq!(r.tick(Instant::ZERO, &g, 1, true, &s, TICK), None);
        let t = Instant::ZERO + Duration::from_secs(6);
        assert_eq!(r.tick(t, &g, 1, true, &s, TICK), Some(Step::Confirm));
        // 1 and 2 see it; 3 and 4 are cut off where nobody here watches them.
        let mut fresh = g.clone();
        fresh.bump(n(1), true).unwrap();
        r.confirming(t, &fresh, &n(1));
        fresh.add_seen(n(2));
        r.note_contact(&fresh, &n(1));
        let wait = s.confirm_wait_for(5);
        assert_eq!(
            r.tick(t + wait / 2, &fresh, 2, true, &s, TICK),
            Some(Step::Push)
        );
        assert_eq!(
            r.tick(t + wait, &fresh, 2, true, &s, TICK),
            Some(Step::Act(Decision::DownReachable, Reason::Stable)),
            "2 in contact against 3 silent or flagged"
        );
        let mask = r.partition(&fresh).to_down(
            &Strategy::KeepMajority { role: None },
            Decision::DownReachable,
        );
        // This side only: the silent members and 5 (flagged) are the other side.
        assert_eq!(&mask[..5], &[true, true, false, false, false]);
    }

    /// The instant of `r`'s stable deadline, probed tick by tick (100 ms resolution).
    fn deadline_after(r: &mut Resolver<8>, from: Instant, g: &G, generation: u64) -> Duration {
        let s = keep_majority();
        let mut t = from;
        assert_eq!(r.tick(t, g, generation, false, &s, TICK), None);
        loop {
            t = t + Duration::from_millis(100);
            // Probe a copy as the responsible node, so the real resolver stays unconfirmed.
            if r.clone().tick(t, g, generation, true, &s, TICK).is_some() {
                return t - from;
            }
        }
    }

    #[test]
    fn leaving_and_removal_keep_the_stable_timer_up_exiting_and_down_restart_it() {
        let s = keep_majority();
        let t0 = Instant::ZERO;
        let t1 = t0 + Duration::from_secs(3);
        let base = view(&[5]);
        type Change = fn(&mut G);
        let cases: &[(&str, Change, bool)] = &[
            (
                "leaving",
                |g| {
                    let _ = g.set_status(&n(2), MemberStatus::Leaving);
                },
                false,
            ),
            (
                "removed",
                |g| g.remove_member(&n(3), Instant::ZERO + Duration::from_secs(3)),
                false,
            ),
            (
                "joining",
                |g| {
                    let m = Member::joining(n(7), RoleSet::new(), AppVersion::default());
                    g.add_member(m).unwrap();
                    g.add_seen(n(7));
                },
                false,
            ),
            (
                "exiting",
                |g| {
                    g.set_status(&n(2), MemberStatus::Leaving).unwrap();
                    g.set_status(&n(2), MemberStatus::Exiting).unwrap();
                },
                true,
            ),
            (
                "down",
                |g| {
                    let _ = g.set_status(&n(3), MemberStatus::Down);
                },
                true,
            ),
        ];
        for (what, change, resets) in cases {
            let mut r = Resolver::<8>::new();
            assert_eq!(r.tick(t0, &base, 1, false, &s, TICK), None);
            let mut g = base.clone();
            change(&mut g);
            let left = deadline_after(&mut r, t1, &g, 2);
            let want = if *resets {
                s.stable_after.unwrap()
            } else {
                s.stable_after.unwrap() - (t1 - t0)
            };
            assert!(
                left >= want && left < want + Duration::from_millis(200),
                "{what}: decided {left:?} after the change, expected {want:?}"
            );
        }
    }
}
