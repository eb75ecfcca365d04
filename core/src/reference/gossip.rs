//! The gossip state before per-member data became columns (verbatim).

use core::net::SocketAddr;
use core::time::Duration;

use super::reachability::{Reachability, ReachabilityFull, ReachabilityStatus};
use super::vclock::{Causality, ClockFull, VectorClock};
use crate::address::{Digest, UniqueAddress};
use crate::capacity::{Capacity, DropLine};
use crate::member::{IllegalTransition, Member, MemberStatus};
use crate::time::Instant;

/// A removed member's identity, kept so stale gossip cannot bring it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    /// The removed incarnation.
    pub address: UniqueAddress,
    /// When it was removed, on this node's clock (derived from the age a peer reported).
    pub removed_at: Instant,
}

/// A gossip operation would exceed a compile-time capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityError {
    /// More than `M` members or clock entries.
    Members,
    /// More than `R` reachability records.
    Reachability,
}

impl From<ClockFull> for CapacityError {
    fn from(_: ClockFull) -> Self {
        CapacityError::Members
    }
}

impl From<ReachabilityFull> for CapacityError {
    fn from(_: ReachabilityFull) -> Self {
        CapacityError::Reachability
    }
}

/// Why a status update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateError {
    /// No such member.
    UnknownMember,
    /// The transition table forbids it.
    Illegal(IllegalTransition),
}

/// The replicated membership state: members (at most `M`), vector clock, seen set,
/// reachability (at most `R` records) and tombstones (at most `M`).
///
/// Invariants kept by every operation here and checked by the wire decoder: members are
/// sorted and unique and none is `Removed`; clock entries, seen entries and reachability
/// observers and subjects are all current members; no member is tombstoned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gossip<const M: usize, const R: usize> {
    pub(crate) members: crate::buf::Buf<Member, M>,
    pub(crate) version: VectorClock<M>,
    pub(crate) seen: crate::buf::Buf<UniqueAddress, M>,
    pub(crate) reachability: Reachability<M, R>,
    pub(crate) tombstones: crate::buf::Buf<Tombstone, M>,
}

impl<const M: usize, const R: usize> Gossip<M, R> {
    /// The empty gossip.
    pub const fn new() -> Self {
        Gossip {
            members: crate::buf::Buf::new(),
            version: VectorClock::new(),
            seen: crate::buf::Buf::new(),
            reachability: Reachability::new(),
            tombstones: crate::buf::Buf::new(),
        }
    }

    /// Empties the gossip.
    pub fn clear(&mut self) {
        self.members.clear();
        self.version.clear();
        self.seen.clear();
        self.reachability.clear();
        self.tombstones.clear();
    }

    /// Members in address order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The vector clock.
    pub fn version(&self) -> &VectorClock<M> {
        &self.version
    }

    /// The reachability table.
    pub fn reachability(&self) -> &Reachability<M, R> {
        &self.reachability
    }

    /// Tombstones in address order.
    pub fn tombstones(&self) -> &[Tombstone] {
        &self.tombstones
    }

    /// Nodes that have seen exactly this version, in address order.
    pub fn seen(&self) -> &[UniqueAddress] {
        &self.seen
    }

    pub(crate) fn index_of(&self, a: &UniqueAddress) -> Result<usize, usize> {
        self.members.binary_search_by(|m| m.address.cmp(a))
    }

    /// The member with identity `a`.
    pub fn member(&self, a: &UniqueAddress) -> Option<&Member> {
        self.index_of(a).ok().map(|i| &self.members[i])
    }

    /// True if `a` is a member.
    pub fn is_member(&self, a: &UniqueAddress) -> bool {
        self.index_of(a).is_ok()
    }

    /// The member at socket address `addr`, whatever its uid.
    pub fn member_at(&self, addr: SocketAddr) -> Option<&Member> {
        self.members.iter().find(|m| m.address.same_address(addr))
    }

    /// True if `a` was removed and its tombstone is still kept.
    pub fn is_tombstoned(&self, a: &UniqueAddress) -> bool {
        self.tombstones
            .binary_search_by(|t| t.address.cmp(a))
            .is_ok()
    }

    /// Adds a new member. Refused (Ok(false)) if tombstoned or present already.
    pub fn add_member(&mut self, m: Member) -> Result<bool, CapacityError> {
        if self.is_tombstoned(&m.address) {
            return Ok(false);
        }
        match self.index_of(&m.address) {
            Ok(_) => Ok(false),
            Err(i) => {
                self.members
                    .insert(i, m)
                    .map_err(|_| CapacityError::Members)?;
                Ok(true)
            }
        }
    }

    /// Records `status` as `observer`'s view of `subject`, within the record capacity of every
    /// member (see [`crate::reachability::Reachability::observe`]). Returns whether it changed.
    pub fn observe(
        &mut self,
        observer: UniqueAddress,
        subject: UniqueAddress,
        status: ReachabilityStatus,
    ) -> Result<bool, CapacityError> {
        let limit = crate::capacity::cluster_records(&self.members, Capacity::of(M, R));
        Ok(self
            .reachability
            .observe(observer, subject, status, &self.members, limit)?)
    }

    /// Moves member `a` to `to` if the transition table allows it. Returns whether it changed.
    pub fn set_status(&mut self, a: &UniqueAddress, to: MemberStatus) -> Result<bool, UpdateError> {
        let i = self.index_of(a).map_err(|_| UpdateError::UnknownMember)?;
        let m = &mut self.members[i];
        let next = m.status.transition(to).map_err(UpdateError::Illegal)?;
        let changed = next != m.status;
        m.status = next;
        Ok(changed)
    }

    pub(crate) fn member_mut(&mut self, a: &UniqueAddress) -> Option<&mut Member> {
        self.index_of(a).ok().map(|i| &mut self.members[i])
    }

    /// Records a local change by `node`: bump its clock entry, and only it has seen the result.
    pub fn bump(&mut self, node: UniqueAddress, mark_seen: bool) -> Result<(), CapacityError> {
        self.version.increment(node)?;
        self.seen.clear();
        if mark_seen && self.is_member(&node) {
            self.seen.push(node).map_err(|_| CapacityError::Members)?;
        }
        Ok(())
    }

    /// Members in address order, each with whether it has seen this version (one linear walk,
    /// both lists being sorted).
    pub fn members_with_seen(&self) -> impl Iterator<Item = (&Member, bool)> {
        let mut seen = self.seen.iter().peekable();
        self.members.iter().map(move |m| {
            while seen.next_if(|s| **s < m.address).is_some() {}
            (m, seen.next_if(|s| **s == m.address).is_some())
        })
    }

    /// True if `a` has seen this version.
    pub fn seen_by(&self, a: &UniqueAddress) -> bool {
        self.seen.binary_search(a).is_ok()
    }

    /// Marks this version seen by `a` (a member).
    pub fn add_seen(&mut self, a: UniqueAddress) {
        if !self.is_member(&a) {
            return;
        }
        if let Err(i) = self.seen.binary_search(&a) {
            // Capacity equals the member capacity and seen ⊆ members: cannot overflow.
            let _ = self.seen.insert(i, a);
        }
    }

    /// Unions in the seen set of a copy with the same version.
    pub fn union_seen(&mut self, other: &Self) {
        for a in &other.seen {
            self.add_seen(*a);
        }
    }

    /// Removes `a` from the seen set.
    pub fn unsee(&mut self, a: &UniqueAddress) {
        if let Ok(i) = self.seen.binary_search(a) {
            self.seen.remove(i);
        }
    }

    /// A digest of the version vector.
    pub fn version_digest(&self) -> u64 {
        self.version.digest()
    }

    /// A digest of the seen set (full identities, uids included).
    pub fn seen_digest(&self) -> u64 {
        let mut h = Digest::new();
        for a in &self.seen {
            h.write_u64(a.stable_hash());
        }
        h.finish()
    }

    /// Deletes member `a`, its seen entry, reachability rows and clock entry, and tombstones
    /// it at `now`. If the tombstone table is full the oldest tombstone is dropped early.
    pub fn remove_member(&mut self, a: &UniqueAddress, now: Instant) {
        if let Ok(i) = self.index_of(a) {
            self.members.remove(i);
        }
        self.unsee(a);
        self.reachability.remove_node(a);
        self.version.prune(a);
        self.add_tombstone(Tombstone {
            address: *a,
            removed_at: now,
        });
    }

    pub(crate) fn add_tombstone(&mut self, t: Tombstone) {
        match self
            .tombstones
            .binary_search_by(|x| x.address.cmp(&t.address))
        {
            Ok(i) => {
                let x = &mut self.tombstones[i];
                x.removed_at = x.removed_at.min(t.removed_at);
            }
            Err(i) => {
                if self.tombstones.is_full() {
                    // Full: the oldest tombstone is the one closest to expiring anyway. If the
                    // new one is older still, it is the one to go.
                    let oldest = self
                        .tombstones
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, x)| x.removed_at)
                        .map(|(k, _)| k);
                    match oldest {
                        Some(k) if self.tombstones[k].removed_at < t.removed_at => {
                            self.tombstones.remove(k);
                        }
                        _ => return,
                    }
                    let i = self
                        .tombstones
                        .binary_search_by(|x| x.address.cmp(&t.address))
                        .unwrap_or_else(|e| e);
                    let _ = self.tombstones.insert(i, t);
                } else {
                    let _ = self.tombstones.insert(i, t);
                }
            }
        }
    }

    /// How many more tombstones fit without pushing out one younger than `keep` (free slots
    /// plus tombstones at least `keep` old).
    pub fn tombstone_room(&self, now: Instant, keep: Duration) -> usize {
        let old = self
            .tombstones
            .iter()
            .filter(|t| now - t.removed_at >= keep)
            .count();
        M - self.tombstones.len() + old
    }

    /// Drops tombstones older than `ttl` on this node's clock. Returns whether any went.
    pub fn prune_tombstones(&mut self, now: Instant, ttl: Duration) -> bool {
        let before = self.tombstones.len();
        self.tombstones.retain(|t| now - t.removed_at < ttl);
        before != self.tombstones.len()
    }

    /// Compares versions.
    pub fn compare(&self, other: &Self) -> Causality {
        self.version.compare(&other.version)
    }

    /// `self := merge(self, other)`: a state CRDT (commutative, associative, idempotent) over
    /// members, tombstones, version and reachability, computed in place.
    ///
    /// Members are unioned, each keeping its most advanced copy; tombstones are unioned (earliest
    /// removal wins) and remove the members they name; clocks take the pointwise maximum and
    /// reachability the newest rows per observer, both restricted to the merged members. The
    /// seen set keeps the entries of each side whose version equals the merged version (so it
    /// is empty after a truly concurrent merge). The seen set annotates one version and is not
    /// part of the lattice: the merge is commutative on it, but associativity holds for the rest.
    ///
    /// Pekko also drops a member that is Down or Exiting on one side and missing on the other,
    /// guessing it was removed; that guess breaks associativity. fjell relies on tombstones,
    /// which always travel with a removal.
    ///
    /// Beyond the cluster's capacity (the smallest [`crate::Capacity::holds`] of the merged
    /// members), Joining and then WeaklyUp members are dropped by a rule every node applies
    /// alike ([`crate::capacity::DropLine`]) and tombstoned as removed at `now`, so that no
    /// stale copy brings them back; only members that are further on can make it fail.
    ///
    /// On a capacity error `self` is left half-merged and must be discarded: merge into a
    /// scratch copy when the original must survive (as [`crate::Node`] does).
    pub fn merge_in_at(&mut self, other: &Self, now: Instant) -> Result<(), CapacityError> {
        // 1. Tombstones: union, earliest removal time.
        for t in &other.tombstones {
            self.add_tombstone(*t);
        }
        // 2. Which side's seen set stays valid: a side whose version is the merged version.
        let self_rel = self.version.compare(&other.version);
        let untouched = |g: &Self| g.version.iter().all(|(a, _)| !self.is_tombstoned(a));
        let self_is_result =
            matches!(self_rel, Causality::Same | Causality::After) && untouched(self);
        let other_is_result =
            matches!(self_rel, Causality::Same | Causality::Before) && untouched(other);
        // 3. Members: union minus tombstoned; same member → merge winner. Tombstoned members
        //    are dropped before the union so it never overflows when the result fits. Beyond
        //    the cluster's capacity, Joining and then WeaklyUp members go by a rule every node
        //    applies alike (`capacity::DropLine`).
        let tombstones = &self.tombstones;
        let alive = |a: &UniqueAddress| tombstones.binary_search_by(|t| t.address.cmp(a)).is_err();
        let line = DropLine::compute(&self.members, &other.members, alive, Capacity::of(M, R))
            .map_err(|_| CapacityError::Members)?;
        if let Some(line) = line {
            self.tombstone_dropped(other, &line, now);
        }
        let tombstones = &self.tombstones;
        let alive = |a: &UniqueAddress| tombstones.binary_search_by(|t| t.address.cmp(a)).is_err();
        self.members.retain(|m| alive(&m.address));
        super::union_into_where(
            &mut self.members,
            &other.members,
            |m| alive(&m.address),
            |m| m.address,
            |x, y| Member::merge_winner(x, y).clone(),
        )
        .map_err(|_| CapacityError::Members)?;
        // 4. Clock and reachability, restricted to the merged members. Both sides keep them to
        //    their own members (an invariant), so "still a member" is "not tombstoned" (the
        //    dropped members were tombstoned too).
        let tombstones = &self.tombstones;
        let member = |a: &UniqueAddress| tombstones.binary_search_by(|t| t.address.cmp(a)).is_err();
        self.version.retain(member);
        self.version.merge_in_where(&other.version, member)?;
        let members = &self.members;
        let records = crate::capacity::cluster_records(members, Capacity::of(M, R));
        self.reachability
            .merge_in(&other.reachability, member, members, records)?;
        // 5. Seen. A side whose members were dropped is not the result.
        if !self_is_result || line.is_some() {
            self.seen.clear();
        }
        if other_is_result && line.is_none() {
            crate::sorted::union_into(&mut self.seen, &other.seen, |a| *a, |a, _| *a)
                .map_err(|_| CapacityError::Members)?;
        }
        self.seen.retain(|a| member(a));
        Ok(())
    }

    /// `self := merge(self, other)` for states within capacity, or where dropped members may be
    /// tombstoned as removed at [`Instant::ZERO`] (see [`Gossip::merge_in_at`]).
    pub fn merge_in(&mut self, other: &Self) -> Result<(), CapacityError> {
        self.merge_in_at(other, Instant::ZERO)
    }

    /// Tombstones the members of `self` ∪ `other` that `line` drops, judged by their merged
    /// status.
    fn tombstone_dropped(&mut self, other: &Self, line: &DropLine, now: Instant) {
        let removed_at = now;
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if line.drops_member(m, other.member(&m.address)) {
                let address = m.address;
                self.add_tombstone(Tombstone {
                    address,
                    removed_at,
                });
            }
        }
        for m in &other.members {
            if !self.is_member(&m.address) && line.drops_member(m, None) {
                let address = m.address;
                self.add_tombstone(Tombstone {
                    address,
                    removed_at,
                });
            }
        }
    }

    /// Whether merging `self` and `other` drops clock entries: one clock names a member the
    /// other side has removed. (A merge that drops members for capacity prunes their entries
    /// too: see [`Gossip::merge_drops`].) The merged clock then forgets the updates those entries counted,
    /// and can equal a version some node holds with other contents; the merging node must make
    /// a version of its own ([`Gossip::bump`]).
    pub fn merge_prunes(&self, other: &Self) -> bool {
        let names_removed = |a: &Self, b: &Self| a.version.iter().any(|(n, _)| b.is_tombstoned(n));
        names_removed(self, other) || names_removed(other, self)
    }

    /// The members that merging `self` and `other` drops to stay within the cluster's
    /// capacity (see [`crate::capacity`]), each once.
    pub fn merge_drops<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = UniqueAddress> + 'a {
        let alive = |a: &UniqueAddress| !self.is_tombstoned(a) && !other.is_tombstoned(a);
        let line = DropLine::compute(&self.members, &other.members, alive, Capacity::of(M, R))
            .ok()
            .flatten();
        let ours = self
            .members
            .iter()
            .filter(move |m| alive(&m.address))
            .filter(move |m| line.is_some_and(|l| l.drops_member(m, other.member(&m.address))));
        let theirs = other
            .members
            .iter()
            .filter(move |m| alive(&m.address) && !self.is_member(&m.address))
            .filter(move |m| line.is_some_and(|l| l.drops_member(m, None)));
        ours.chain(theirs).map(|m| m.address)
    }

    /// `self := merge(a, b)` (see [`Gossip::merge_in`]).
    pub fn merge_from(&mut self, a: &Self, b: &Self) -> Result<(), CapacityError> {
        self.clone_from(a);
        self.merge_in(b)
    }

    /// Replaces the reachability table, dropping rows about non-members. For tests that build
    /// states by hand; the protocol changes reachability only through its observers.
    #[doc(hidden)]
    pub fn set_reachability_for_tests(&mut self, mut r: Reachability<M, R>) {
        let members = &self.members;
        r.retain_members(&|a: &UniqueAddress| {
            members.binary_search_by(|m| m.address.cmp(a)).is_ok()
        });
        self.reachability = r;
    }

    /// Empties the seen set. For tests.
    #[doc(hidden)]
    pub fn clear_seen_for_tests(&mut self) {
        self.seen.clear();
    }

    /// Checks the invariants listed on [`Gossip`]. Used by decoders, tests and the simulator.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        for w in self.members.windows(2) {
            if w[0].address >= w[1].address {
                return Err("members not sorted or duplicated");
            }
        }
        if self
            .members
            .iter()
            .any(|m| m.status == MemberStatus::Removed)
        {
            return Err("a Removed member in the member set");
        }
        if self.version.iter().any(|(a, _)| !self.is_member(a)) {
            return Err("clock entry for a non-member");
        }
        if self.seen.iter().any(|a| !self.is_member(a)) {
            return Err("seen entry for a non-member");
        }
        if self
            .reachability
            .versions()
            .any(|(a, _)| !self.is_member(a))
        {
            return Err("reachability version for a non-member");
        }
        for r in self.reachability.records() {
            if !self.is_member(&r.observer) || !self.is_member(&r.subject) {
                return Err("reachability record for a non-member");
            }
        }
        if self.members.iter().any(|m| self.is_tombstoned(&m.address)) {
            return Err("a tombstoned member in the member set");
        }
        Ok(())
    }

    /// Whether observations by `observer` count: only those of members that are not Down (a
    /// downed node's stale verdicts must not block the rest).
    pub(crate) fn observer_counts(&self, observer: &UniqueAddress) -> bool {
        self.member(observer)
            .is_some_and(|m| m.status != MemberStatus::Down)
    }

    /// Aggregate reachability of `subject` over observers that count.
    pub fn reachability_of(&self, subject: &UniqueAddress) -> ReachabilityStatus {
        self.reachability
            .status_filtered(subject, |o| self.observer_counts(o))
    }

    /// Convergence (notes §6): every member that must have seen this version has (or has
    /// confirmed its exit), and every member flagged unreachable (by observers that are not
    /// Down) is Down or Exiting. `departed` lists nodes that confirmed they stopped.
    pub fn is_converged(&self, self_node: &UniqueAddress, departed: &[UniqueAddress]) -> bool {
        let first_in_cluster = !self
            .members
            .iter()
            .any(|m| m.status.counts_for_convergence());
        let must_have_seen = |m: &Member| {
            m.status.counts_for_convergence()
                || (first_in_cluster
                    && matches!(m.status, MemberStatus::Joining | MemberStatus::WeaklyUp))
        };
        let unseen = self.members.iter().any(|m| {
            must_have_seen(m) && !self.seen_by(&m.address) && !departed.contains(&m.address)
        });
        if unseen {
            return false;
        }
        // One pass over the records: a subject flagged twice is simply checked twice.
        !self.reachability.records().iter().any(|r| {
            r.status != ReachabilityStatus::Reachable
                && self.observer_counts(&r.observer)
                && r.subject != *self_node
                && !departed.contains(&r.subject)
                && self.member(&r.subject).is_some_and(|m| {
                    !matches!(m.status, MemberStatus::Down | MemberStatus::Exiting)
                })
        })
    }
}
