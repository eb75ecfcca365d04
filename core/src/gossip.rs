//! The gossip state, its merge (a state CRDT), the seen set and convergence.

use crate::buf::Buf;
use core::cmp::Ordering;
use core::net::SocketAddr;
use core::time::Duration;

use crate::address::{Digest, UniqueAddress};
use crate::capacity::{Capacity, DropLine};
use crate::member::{IllegalTransition, Member, MemberStatus};
use crate::reachability::{Reachability, ReachabilityFull, ReachabilityStatus, Table, NONE};
use crate::time::Instant;
use crate::vclock::{Causality, VectorClock};

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
///
/// Per-member data (clock counter, seen mark, reachability version as an observer) is kept in
/// columns parallel to `members`, and reachability rows name members by index, rather than by
/// address: the invariant makes every
/// entry a member's, and an index takes a fraction of the 32 bytes of an address. Every
/// change to `members` goes through this module, which keeps the columns aligned and
/// renumbers the rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gossip<const M: usize, const R: usize> {
    pub(crate) members: Buf<Member, M>,
    /// The clock counter of each member (0: no entry).
    clock: Buf<u64, M>,
    /// Whether each member has seen this version.
    seen: Buf<bool, M>,
    pub(crate) reachability: Table<M, R>,
    pub(crate) tombstones: Buf<Tombstone, M>,
}

/// The members that have seen a gossip state's version, in address order
/// ([`Gossip::seen`]).
#[derive(Clone, Copy)]
pub struct Seen<'a> {
    members: &'a [Member],
    seen: &'a [bool],
}

impl<'a> Seen<'a> {
    /// The members that have seen it, in address order.
    pub fn iter(&self) -> SeenIter<'a> {
        SeenIter {
            rows: self.members.iter().zip(self.seen),
        }
    }

    /// How many have seen it.
    pub fn len(&self) -> usize {
        self.seen.iter().filter(|s| **s).count()
    }

    /// True if nobody has seen it.
    pub fn is_empty(&self) -> bool {
        !self.seen.iter().any(|s| *s)
    }
}

impl<'a> IntoIterator for Seen<'a> {
    type Item = &'a UniqueAddress;
    type IntoIter = SeenIter<'a>;

    fn into_iter(self) -> SeenIter<'a> {
        self.iter()
    }
}

impl PartialEq<Seen<'_>> for Seen<'_> {
    fn eq(&self, other: &Seen<'_>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Seen<'_> {}

impl core::fmt::Debug for Seen<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`Seen`].
#[derive(Clone)]
pub struct SeenIter<'a> {
    rows: core::iter::Zip<core::slice::Iter<'a, Member>, core::slice::Iter<'a, bool>>,
}

impl<'a> Iterator for SeenIter<'a> {
    type Item = &'a UniqueAddress;

    fn next(&mut self) -> Option<&'a UniqueAddress> {
        self.rows.find(|(_, s)| **s).map(|(m, _)| &m.address)
    }
}

impl<const M: usize, const R: usize> Gossip<M, R> {
    /// The empty gossip.
    pub const fn new() -> Self {
        Gossip {
            members: Buf::new(),
            clock: Buf::new(),
            seen: Buf::new(),
            reachability: Table::new(),
            tombstones: Buf::new(),
        }
    }

    /// Empties the gossip.
    pub fn clear(&mut self) {
        self.members.clear();
        self.clock.clear();
        self.seen.clear();
        self.reachability.clear();
        self.tombstones.clear();
    }

    /// Members in address order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The vector clock.
    pub fn version(&self) -> VectorClock<'_> {
        VectorClock::new(&self.members, &self.clock)
    }

    /// The reachability table.
    pub fn reachability(&self) -> Reachability<'_, M, R> {
        Reachability::new(&self.reachability, &self.members)
    }

    /// Tombstones in address order.
    pub fn tombstones(&self) -> &[Tombstone] {
        &self.tombstones
    }

    /// Nodes that have seen exactly this version, in address order.
    pub fn seen(&self) -> Seen<'_> {
        Seen {
            members: &self.members,
            seen: &self.seen,
        }
    }

    /// The clock counter of each member, by member index (0: no entry). For the wire codec.
    pub(crate) fn clock_column(&self) -> &[u64] {
        &self.clock
    }

    /// Whether each member has seen this version, by member index. For the wire codec.
    pub(crate) fn seen_column(&self) -> &[bool] {
        &self.seen
    }

    /// Appends a decoded member (in address order: the decoder checks) with no clock entry,
    /// unseen. Fails when full.
    pub(crate) fn push_member(&mut self, m: Member) -> Result<(), Member> {
        self.members.push(m)?;
        // The columns have the members' capacity: they fit where the member did.
        let _ = self.clock.push(0);
        let _ = self.seen.push(false);
        let _ = self.reachability.versions.push(0);
        Ok(())
    }

    /// Sets the clock counter of the member at index `i` (in range). For the wire decoder.
    pub(crate) fn set_clock_at(&mut self, i: usize, v: u64) {
        self.clock[i] = v;
    }

    /// Marks the member at index `i` (in range) as having seen this version. For the decoder.
    pub(crate) fn set_seen_at(&mut self, i: usize) {
        self.seen[i] = true;
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

    /// The member at socket address `addr`, whatever its uid (the oldest incarnation's uid
    /// first, if two are members).
    pub fn member_at(&self, addr: SocketAddr) -> Option<&Member> {
        self.index_at(addr).map(|i| &self.members[i])
    }

    /// The index of [`Self::member_at`]. Members are sorted by address and the socket address
    /// leads the order, so this is a binary search: it runs for every message received.
    pub(crate) fn index_at(&self, addr: SocketAddr) -> Option<usize> {
        let i = self
            .members
            .partition_point(|m| m.address.cmp_socket(addr) == core::cmp::Ordering::Less);
        self.members
            .get(i)
            .filter(|m| m.address.same_address(addr))
            .map(|_| i)
    }

    /// [`Self::index_at`], trying `hint` first: the index the sender says it has in its own
    /// list, right whenever both lists are the same. Taken only if it is the answer the search
    /// would give (the first member at `addr`), so a wrong or hostile hint costs a search.
    pub(crate) fn index_at_hinted(&self, addr: SocketAddr, hint: usize) -> Option<usize> {
        let at = |i: usize| {
            self.members
                .get(i)
                .is_some_and(|m| m.address.same_address(addr))
        };
        if at(hint) && (hint == 0 || !at(hint - 1)) {
            Some(hint)
        } else {
            self.index_at(addr)
        }
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
                // The columns have the members' capacity: they fit where the member did.
                let _ = self.clock.insert(i, 0);
                let _ = self.seen.insert(i, false);
                self.reachability.insert_member(i);
                Ok(true)
            }
        }
    }

    /// Records `status` as `observer`'s view of `subject` (both members: for anyone else
    /// nothing changes) within the record capacity of every member: when the table is full it
    /// is compacted first, and under compaction a row compaction would drop at once is not
    /// added (see [`crate::reachability`]). Returns whether it changed; fails only when more
    /// members are flagged than that capacity.
    pub fn observe(
        &mut self,
        observer: UniqueAddress,
        subject: UniqueAddress,
        status: ReachabilityStatus,
    ) -> Result<bool, CapacityError> {
        let (Ok(o), Ok(s)) = (self.index_of(&observer), self.index_of(&subject)) else {
            return Ok(false);
        };
        let limit = crate::capacity::cluster_records(&self.members, Capacity::of(M, R));
        Ok(self
            .reachability
            .observe(o as u16, s as u16, status, &self.members, limit)?)
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

    /// Records a local change by `node` (a member): bump its clock entry, and only it has seen
    /// the result. Only members have clock entries: for anyone else just the seen set is
    /// cleared.
    pub fn bump(&mut self, node: UniqueAddress, mark_seen: bool) -> Result<(), CapacityError> {
        self.seen.fill(false);
        if let Ok(i) = self.index_of(&node) {
            self.clock[i] = self.clock[i].saturating_add(1);
            self.seen[i] = mark_seen;
        }
        Ok(())
    }

    /// Advances `node`'s clock entry without touching the seen set. For tests that build
    /// concurrent states.
    #[cfg(test)]
    pub(crate) fn increment_clock(&mut self, node: &UniqueAddress) {
        let i = self.index_of(node).expect("a member");
        self.clock[i] += 1;
    }

    /// Members in address order, each with whether it has seen this version.
    pub fn members_with_seen(&self) -> impl Iterator<Item = (&Member, bool)> {
        self.members.iter().zip(self.seen.iter().copied())
    }

    /// True if the member at index `i` has seen this version (false out of range).
    pub(crate) fn seen_at(&self, i: usize) -> bool {
        self.seen.get(i).copied().unwrap_or(false)
    }

    /// True if `a` has seen this version.
    pub fn seen_by(&self, a: &UniqueAddress) -> bool {
        self.index_of(a).is_ok_and(|i| self.seen[i])
    }

    /// Marks this version seen by `a` (a member).
    pub fn add_seen(&mut self, a: UniqueAddress) {
        if let Ok(i) = self.index_of(&a) {
            self.seen[i] = true;
        }
    }

    /// Unions in the seen set of a copy with the same version (its members that are ours).
    pub fn union_seen(&mut self, other: &Self) {
        for (i, j) in crate::vclock::pairs(&self.members, &other.members) {
            if let (Some(i), Some(j)) = (i, j) {
                self.seen[i] |= other.seen[j];
            }
        }
    }

    /// Removes `a` from the seen set.
    pub fn unsee(&mut self, a: &UniqueAddress) {
        if let Ok(i) = self.index_of(a) {
            self.seen[i] = false;
        }
    }

    /// A digest of the version vector.
    pub fn version_digest(&self) -> u64 {
        self.version().digest()
    }

    /// A digest of the seen set (full identities, uids included).
    pub fn seen_digest(&self) -> u64 {
        let mut h = Digest::new();
        for a in self.seen() {
            h.write_u64(a.stable_hash());
        }
        h.finish()
    }

    /// Deletes member `a`, its seen entry, reachability rows and clock entry, and tombstones
    /// it at `now`. If the tombstone table is full the oldest tombstone is dropped early.
    pub fn remove_member(&mut self, a: &UniqueAddress, now: Instant) {
        if let Ok(i) = self.index_of(a) {
            self.members.remove(i);
            self.clock.remove(i);
            self.seen.remove(i);
            self.reachability.remove_member(i);
        }
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
        self.version().compare(&other.version())
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
        let self_rel = self.compare(other);
        let untouched = |g: &Self| g.version().iter().all(|(a, _)| !self.is_tombstoned(a));
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
        // Reachability rows name members by index: number ours for the merged members (one
        // index array on the stack, `M` entries), before the members move. Without rows
        // (a cluster at peace) there is nothing to number.
        let mut map = [NONE; M];
        if !self.reachability.is_empty() {
            self.merged_indices(other, &mut map);
        }
        self.reachability.remap(&map);
        self.retain_members(|t, m| t.binary_search_by(|t| t.address.cmp(&m.address)).is_err());
        // 4. Clock (the pointwise maximum) and seen set, along with the members: both sides
        //    keep them to their own members (an invariant). A side whose members were dropped
        //    is not the result. Reachability versions come along too, ours only: the table
        //    merges theirs (it compares both first).
        self.union_members(
            other,
            self_is_result && line.is_none(),
            other_is_result && line.is_none(),
        )?;
        // 5. Reachability, restricted to the merged members. Their rows and versions are
        //    numbered for the merged members as they are taken (none for a dropped member);
        //    a table with neither has nothing to number.
        let theirs = &other.reachability;
        let numbered = if theirs.is_empty() && theirs.versions.iter().all(|v| *v == 0) {
            0
        } else {
            for (i, j) in crate::vclock::pairs(&self.members, &other.members) {
                if let Some(j) = j {
                    map[j] = i.map_or(NONE, |i| i as u16);
                }
            }
            other.members.len()
        };
        let members = &self.members;
        let records = crate::capacity::cluster_records(members, Capacity::of(M, R));
        self.reachability.merge_in(
            &other.reachability,
            &map[..numbered],
            &other.members,
            members,
            records,
        )?;
        Ok(())
    }

    /// Writes into `map[i]` the index the member at `i` will have once `other` is merged in,
    /// or [`NONE`] if it is tombstoned: the merged members are both sides' less tombstoned
    /// ones, in address order.
    fn merged_indices(&self, other: &Self, map: &mut [u16]) {
        let alive = |a: &UniqueAddress| {
            self.tombstones
                .binary_search_by(|t| t.address.cmp(a))
                .is_err()
        };
        let (mut k, mut j) = (0, 0);
        for (i, m) in self.members.iter().enumerate() {
            if !alive(&m.address) {
                map[i] = NONE;
                continue;
            }
            // Theirs before this one come first; one both sides hold counts once.
            while let Some(t) = other.members.get(j).filter(|t| t.address < m.address) {
                k += u16::from(alive(&t.address));
                j += 1;
            }
            j += usize::from(other.members.get(j).is_some_and(|t| t.address == m.address));
            map[i] = k;
            k += 1;
        }
    }

    /// Keeps the members `keep` accepts (given the tombstones), and their columns.
    fn retain_members(&mut self, keep: impl Fn(&[Tombstone], &Member) -> bool) {
        let mut k = 0;
        for i in 0..self.members.len() {
            if keep(&self.tombstones, &self.members[i]) {
                // Order is kept: the member at `k` was dropped, or `k == i`.
                self.members.swap(k, i);
                self.clock[k] = self.clock[i];
                self.seen[k] = self.seen[i];
                self.reachability.versions[k] = self.reachability.versions[i];
                k += 1;
            }
        }
        self.members.truncate(k);
        self.clock.truncate(k);
        self.seen.truncate(k);
        self.reachability.versions.truncate(k);
    }

    /// `self.members ∪= other.members`, less tombstoned members, each shared member keeping
    /// its merge winner, in place from the back (see [`crate::sorted`]) with the columns
    /// alongside: clocks take the pointwise maximum, a seen mark stays if `keep_seen` (ours) or
    /// `take_seen` (theirs) says so, and reachability versions stay ours (0 for a member only
    /// `other` has: [`Table::merge_in`] takes theirs). Members of `self` must not be
    /// tombstoned; the reachability rows are not touched.
    fn union_members(
        &mut self,
        other: &Self,
        keep_seen: bool,
        take_seen: bool,
    ) -> Result<(), CapacityError> {
        if !keep_seen {
            self.seen.fill(false);
        }
        let tombstones = &self.tombstones;
        let taken = |j: usize| {
            let a = &other.members[j].address;
            tombstones.binary_search_by(|t| t.address.cmp(a)).is_err()
        };
        // Our members are not tombstoned (this function's precondition), so counting the live
        // members of both sides counts all of ours and theirs less the tombstoned: the count
        // the capacity rule makes too.
        let alive = |a: &UniqueAddress| tombstones.binary_search_by(|t| t.address.cmp(a)).is_err();
        debug_assert!(self.members.iter().all(|m| alive(&m.address)));
        let n = crate::capacity::union_len(&self.members, &other.members, &alive);
        if n > M {
            return Err(CapacityError::Members);
        }
        let old = self.members.len();
        if let Some(first) = (0..other.members.len()).find(|j| taken(*j)) {
            while self.members.len() < n {
                // Placeholders, overwritten below; the columns have the members' capacity.
                let _ = self.members.push(other.members[first].clone());
                let _ = self.clock.push(0);
                let _ = self.seen.push(false);
                let _ = self.reachability.versions.push(0);
            }
        }
        let prev = |mut j: usize| {
            while j > 0 && !taken(j - 1) {
                j -= 1;
            }
            j
        };
        // Fill from the back; the write index never passes an unread element of `self`.
        let (mut i, mut j, mut k) = (old, prev(other.members.len()), n);
        while j > 0 {
            k -= 1;
            let theirs = &other.members[j - 1];
            let ord = match i {
                0 => Ordering::Less,
                _ => self.members[i - 1].address.cmp(&theirs.address),
            };
            match ord {
                Ordering::Greater => {
                    // What `k` held was a placeholder or already moved on.
                    self.members.swap(k, i - 1);
                    self.clock[k] = self.clock[i - 1];
                    self.seen[k] = self.seen[i - 1];
                    self.reachability.versions[k] = self.reachability.versions[i - 1];
                    i -= 1;
                }
                Ordering::Equal => {
                    self.members[k] = Member::merge_winner(&self.members[i - 1], theirs).clone();
                    self.clock[k] = self.clock[i - 1].max(other.clock[j - 1]);
                    self.seen[k] = self.seen[i - 1] || (take_seen && other.seen[j - 1]);
                    self.reachability.versions[k] = self.reachability.versions[i - 1];
                    i -= 1;
                    j = prev(j - 1);
                }
                Ordering::Less => {
                    self.members[k] = theirs.clone();
                    self.clock[k] = other.clock[j - 1];
                    self.seen[k] = take_seen && other.seen[j - 1];
                    self.reachability.versions[k] = 0;
                    j = prev(j - 1);
                }
            }
        }
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
        let names_removed =
            |a: &Self, b: &Self| a.version().iter().any(|(n, _)| b.is_tombstoned(n));
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

    /// Records `status` as `observer`'s view of `subject` (both members: for anyone else
    /// nothing changes), bumping the observer's version, with no regard for the record
    /// capacity of the cluster (only `R` bounds it). For tests that build states by hand; the
    /// protocol changes reachability through [`Gossip::observe`].
    #[doc(hidden)]
    pub fn change_reachability_for_tests(
        &mut self,
        observer: UniqueAddress,
        subject: UniqueAddress,
        status: ReachabilityStatus,
    ) -> Result<bool, ReachabilityFull> {
        let (Ok(o), Ok(s)) = (self.index_of(&observer), self.index_of(&subject)) else {
            return Ok(false);
        };
        self.reachability.change(o as u16, s as u16, status)
    }

    /// Empties the seen set. For tests.
    #[doc(hidden)]
    pub fn clear_seen_for_tests(&mut self) {
        self.seen.fill(false);
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
        // Clock, seen and reachability version entries are members' by construction: one per
        // member.
        if self.clock.len() != self.members.len() || self.seen.len() != self.members.len() {
            return Err("clock or seen column out of step with the members");
        }
        if self.reachability.versions.len() != self.members.len() {
            return Err("reachability versions out of step with the members");
        }
        // Rows name members by index.
        let n = self.members.len();
        for r in self.reachability.rows() {
            if usize::from(r.observer) >= n || usize::from(r.subject) >= n {
                return Err("reachability record for a non-member");
            }
        }
        if self.members.iter().any(|m| self.is_tombstoned(&m.address)) {
            return Err("a tombstoned member in the member set");
        }
        Ok(())
    }

    /// Whether observations by the member at index `observer` count: only those of members
    /// that are not Down (a downed node's stale verdicts must not block the rest).
    fn observer_counts_at(&self, observer: u16) -> bool {
        self.members[usize::from(observer)].status != MemberStatus::Down
    }

    /// Aggregate reachability of `subject` over observers that count.
    pub fn reachability_of(&self, subject: &UniqueAddress) -> ReachabilityStatus {
        let Ok(s) = self.index_of(subject) else {
            return ReachabilityStatus::Reachable;
        };
        self.reachability
            .rows()
            .iter()
            .filter(|r| usize::from(r.subject) == s && self.observer_counts_at(r.observer))
            .map(|r| r.status)
            .max()
            .unwrap_or(ReachabilityStatus::Reachable)
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
        let unseen = self
            .members_with_seen()
            .any(|(m, seen)| must_have_seen(m) && !seen && !departed.contains(&m.address));
        if unseen {
            return false;
        }
        // One pass over the records: a subject flagged twice is simply checked twice.
        !self.reachability.rows().iter().any(|r| {
            let subject = &self.members[usize::from(r.subject)];
            r.status != ReachabilityStatus::Reachable
                && self.observer_counts_at(r.observer)
                && subject.address != *self_node
                && !departed.contains(&subject.address)
                && !matches!(subject.status, MemberStatus::Down | MemberStatus::Exiting)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AppVersion, RoleSet};
    use crate::reachability::ReachabilityStatus;

    type G = Gossip<8, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    fn with(members: &[(u8, MemberStatus)]) -> G {
        let mut g = G::new();
        for (i, s) in members {
            let mut m = Member::joining(n(*i), RoleSet::new(), AppVersion::default());
            m.status = *s;
            g.add_member(m).unwrap();
        }
        g
    }

    #[test]
    fn a_hint_is_taken_only_where_the_search_would_land() {
        use MemberStatus::*;
        let mut g = with(&[(1, Up), (2, Up), (4, Up)]);
        // A second incarnation of 2 on the same socket: the search answers the first.
        let again = UniqueAddress::new(n(2).socket_addr(), 2);
        g.add_member(Member::joining(
            again,
            RoleSet::new(),
            AppVersion::default(),
        ))
        .unwrap();
        let at = |a: u8| n(a).socket_addr();
        for hint in [0, 1, 2, 3, 4, 9, usize::MAX] {
            for a in [1, 2, 3, 4] {
                assert_eq!(
                    g.index_at_hinted(at(a), hint),
                    g.index_at(at(a)),
                    "address {a}, hint {hint}"
                );
            }
        }
        assert_eq!(
            g.index_at_hinted(at(2), 2),
            Some(1),
            "the older incarnation"
        );
    }

    /// Seed 9456's shape: 3 downed 1 and 2, and was removed by 1 before that reached it. The
    /// merge forgets 3's clock entry, so the result has 1's version with 1 and 2 Down: the
    /// merging node must tell the two apart by a version of its own.
    #[test]
    fn a_merge_that_drops_a_removed_members_entry_reports_it() {
        use MemberStatus::*;
        let base = with(&[(1, Up), (2, Up), (3, Down)]);
        let mut here = base.clone();
        here.remove_member(&n(3), Instant::from_micros(0));
        here.bump(n(1), true).unwrap();
        let mut there = base.clone();
        there.increment_clock(&n(3));
        for i in [1, 2] {
            there.set_status(&n(i), Down).unwrap();
        }
        assert!(here.merge_prunes(&there) && there.merge_prunes(&here));
        let mut merged = there.clone();
        merged.merge_in(&here).unwrap();
        assert_eq!(
            merged.compare(&here),
            Causality::Same,
            "the version cannot tell"
        );
        assert_ne!(merged.members(), here.members());
        assert!(
            !merged.merge_prunes(&here),
            "once merged, nothing more to drop"
        );
    }

    /// The clock and seen set as (member, counter, seen) rows, read through the public API.
    fn rows(g: &G) -> std::vec::Vec<(UniqueAddress, u64, bool)> {
        g.members()
            .iter()
            .map(|m| {
                (
                    m.address,
                    g.version().get(&m.address),
                    g.seen_by(&m.address),
                )
            })
            .collect()
    }

    #[test]
    fn columns_follow_members_through_inserts_and_removals() {
        use MemberStatus::*;
        let mut g = with(&[(5, Up), (2, Up)]);
        g.bump(n(5), true).unwrap();
        g.bump(n(5), true).unwrap();
        g.add_seen(n(2));
        // Inserted before, between and after the existing members: no entry, unseen.
        g.add_member(Member::joining(n(1), RoleSet::new(), AppVersion::default()))
            .unwrap();
        g.add_member(Member::joining(n(3), RoleSet::new(), AppVersion::default()))
            .unwrap();
        g.add_member(Member::joining(n(7), RoleSet::new(), AppVersion::default()))
            .unwrap();
        g.bump(n(3), false).unwrap();
        assert_eq!(
            rows(&g),
            [
                (n(1), 0, false),
                (n(2), 0, false),
                (n(3), 1, false),
                (n(5), 2, false),
                (n(7), 0, false)
            ]
        );
        g.add_seen(n(7));
        g.add_seen(n(2));
        g.remove_member(&n(3), Instant::ZERO);
        assert_eq!(
            rows(&g),
            [
                (n(1), 0, false),
                (n(2), 0, true),
                (n(5), 2, false),
                (n(7), 0, true)
            ]
        );
        assert_eq!(g.version().len(), 1);
        let seen: std::vec::Vec<_> = g.seen().iter().copied().collect();
        assert_eq!(seen, [n(2), n(7)]);
        g.check_invariants().unwrap();
    }

    #[test]
    fn a_merge_of_disjoint_members_interleaves_their_columns() {
        use MemberStatus::*;
        let mut a = with(&[(1, Up), (3, Up), (5, Up)]);
        let mut b = with(&[(2, Up), (4, Up), (6, Up)]);
        a.bump(n(3), true).unwrap();
        a.bump(n(5), true).unwrap();
        b.bump(n(2), true).unwrap();
        b.bump(n(6), true).unwrap();
        let mut m = a.clone();
        m.merge_in(&b).unwrap();
        // Concurrent: nobody has seen the merged version.
        assert_eq!(
            rows(&m),
            [
                (n(1), 0, false),
                (n(2), 1, false),
                (n(3), 1, false),
                (n(4), 0, false),
                (n(5), 1, false),
                (n(6), 1, false)
            ]
        );
        let mut m2 = b.clone();
        m2.merge_in(&a).unwrap();
        assert_eq!(m, m2);
        m.check_invariants().unwrap();
    }

    #[test]
    fn a_merge_of_overlapping_members_takes_the_maximum_and_the_winners_seen_set() {
        use MemberStatus::*;
        let base = with(&[(2, Up), (4, Up)]);
        let mut a = base.clone();
        a.bump(n(2), true).unwrap();
        a.add_member(Member::joining(n(1), RoleSet::new(), AppVersion::default()))
            .unwrap();
        a.bump(n(2), true).unwrap();
        // `b` descends from `a`: its seen set survives, `a`'s does not.
        let mut b = a.clone();
        b.add_member(Member::joining(n(5), RoleSet::new(), AppVersion::default()))
            .unwrap();
        b.bump(n(4), true).unwrap();
        b.add_seen(n(5));
        let mut m = a.clone();
        m.merge_in(&b).unwrap();
        assert_eq!(
            rows(&m),
            [
                (n(1), 0, false),
                (n(2), 2, false),
                (n(4), 1, true),
                (n(5), 0, true)
            ]
        );
        assert_eq!(m, b);
        // Equal versions: both seen sets.
        let mut c = b.clone();
        c.unsee(&n(5));
        c.add_seen(n(1));
        let mut m = b.clone();
        m.merge_in(&c).unwrap();
        let seen: std::vec::Vec<_> = m.seen().iter().copied().collect();
        assert_eq!(seen, [n(1), n(4), n(5)]);
    }

    #[test]
    fn a_merge_drops_tombstoned_and_excess_members_with_their_columns() {
        use MemberStatus::*;
        // Capacity 4: {1 Up, 2 Up, 3 Joining} and {1 Up, 2 Up removed, 4 Joining, 5 Joining}.
        let mut a = Gossip::<4, 4>::new();
        for (i, s) in [(1, Up), (2, Up), (3, Joining)] {
            let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
            m.status = s;
            a.add_member(m).unwrap();
        }
        a.bump(n(1), true).unwrap();
        let mut b = a.clone();
        a.bump(n(2), true).unwrap();
        a.bump(n(3), true).unwrap();
        b.remove_member(&n(3), Instant::ZERO);
        b.remove_member(&n(2), Instant::ZERO);
        for i in [4, 5, 6] {
            b.add_member(Member::joining(n(i), RoleSet::new(), AppVersion::default()))
                .unwrap();
            b.bump(n(i), true).unwrap();
        }
        // {1, 4, 5, 6} fits; 2 and 3 are tombstoned by `b`.
        let mut m = a.clone();
        m.merge_in(&b).unwrap();
        let rows: std::vec::Vec<_> = m
            .members()
            .iter()
            .map(|x| {
                (
                    x.address,
                    m.version().get(&x.address),
                    m.seen_by(&x.address),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (n(1), 1, false),
                (n(4), 1, false),
                (n(5), 1, false),
                (n(6), 1, false)
            ]
        );
        m.check_invariants().unwrap();
        // {1, 5, 6, 7} and {1, 6, 8, 9}: five members, and the highest Joining one (9) goes,
        // with its entry.
        let mut c = m.clone();
        c.remove_member(&n(4), Instant::ZERO);
        c.add_member(Member::joining(n(7), RoleSet::new(), AppVersion::default()))
            .unwrap();
        c.bump(n(7), true).unwrap();
        let mut d = m.clone();
        d.remove_member(&n(4), Instant::ZERO);
        d.remove_member(&n(5), Instant::ZERO);
        for i in [8, 9] {
            d.add_member(Member::joining(n(i), RoleSet::new(), AppVersion::default()))
                .unwrap();
            d.bump(n(i), true).unwrap();
        }
        let drops: std::vec::Vec<_> = c.merge_drops(&d).collect();
        assert_eq!(drops, [n(9)]);
        let mut e = c.clone();
        // Later than the four tombstones (the table holds `M`), so that 9's pushes one out.
        e.merge_in_at(&d, Instant::from_millis(1)).unwrap();
        let rows: std::vec::Vec<_> = e
            .members()
            .iter()
            .map(|x| (x.address, e.version().get(&x.address)))
            .collect();
        assert_eq!(rows, [(n(1), 1), (n(6), 1), (n(7), 1), (n(8), 1)]);
        assert!(e.is_tombstoned(&n(9)) && e.seen().is_empty());
        e.check_invariants().unwrap();
    }

    #[test]
    fn tombstone_removes_member_in_merge() {
        use MemberStatus::*;
        let mut a = with(&[(1, Up), (2, Up)]);
        let b = a.clone();
        a.remove_member(&n(2), Instant::from_millis(5));
        let mut m = G::new();
        m.merge_from(&a, &b).unwrap();
        assert!(!m.is_member(&n(2)));
        assert!(m.is_tombstoned(&n(2)));
        assert!(
            !m.add_member(b.members[1].clone()).unwrap(),
            "tombstoned stays out"
        );
        m.check_invariants().unwrap();
    }

    #[test]
    fn a_merge_that_fits_after_tombstones_is_not_refused() {
        use MemberStatus::*;
        // Capacity 2: {1, 2} and {1, 3} with 2 tombstoned by the second side: the union
        // would be three members, the result is two.
        let mut a = Gossip::<2, 4>::new();
        let mut b = Gossip::<2, 4>::new();
        for (g, other) in [(&mut a, 2u8), (&mut b, 2u8)] {
            let mut m = Member::joining(n(1), RoleSet::new(), AppVersion::default());
            m.status = Up;
            m.up_number = core::num::NonZeroU32::new(1);
            g.add_member(m).unwrap();
            g.add_member(Member::joining(
                n(other),
                RoleSet::new(),
                AppVersion::default(),
            ))
            .unwrap();
        }
        b.remove_member(&n(2), Instant::ZERO);
        b.add_member(Member::joining(n(3), RoleSet::new(), AppVersion::default()))
            .unwrap();
        a.bump(n(1), true).unwrap();
        b.bump(n(3), true).unwrap();
        let mut m = a.clone();
        m.merge_in(&b).unwrap();
        assert!(m.is_member(&n(1)) && m.is_member(&n(3)) && !m.is_member(&n(2)));
        m.check_invariants().unwrap();
    }

    #[test]
    fn convergence_needs_up_members_to_have_seen() {
        use MemberStatus::*;
        let mut g = with(&[(1, Up), (2, Up), (3, Joining)]);
        g.bump(n(1), true).unwrap();
        assert!(!g.is_converged(&n(1), &[]));
        g.add_seen(n(2));
        assert!(
            g.is_converged(&n(1), &[]),
            "joining members need not have seen"
        );
        g.change_reachability_for_tests(n(1), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        assert!(!g.is_converged(&n(1), &[]), "unreachable joiner blocks");
        g.set_status(&n(3), Down).unwrap();
        assert!(g.is_converged(&n(1), &[]), "unless it is down");
    }

    #[test]
    fn first_members_must_all_have_seen() {
        use MemberStatus::*;
        let mut g = with(&[(1, Joining), (2, Joining)]);
        g.bump(n(1), true).unwrap();
        assert!(!g.is_converged(&n(1), &[]));
        g.add_seen(n(2));
        assert!(g.is_converged(&n(1), &[]));
    }

    #[test]
    fn observations_by_down_members_are_ignored() {
        use MemberStatus::*;
        let mut g = with(&[(1, Up), (2, Down), (3, Up)]);
        g.bump(n(1), true).unwrap();
        g.add_seen(n(3));
        g.change_reachability_for_tests(n(2), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        assert!(g.is_converged(&n(1), &[]));
    }

    #[test]
    fn illegal_transition_is_an_error_value() {
        use MemberStatus::*;
        let mut g = with(&[(1, Down)]);
        assert!(matches!(
            g.set_status(&n(1), Up),
            Err(UpdateError::Illegal(_))
        ));
        assert_eq!(g.set_status(&n(9), Up), Err(UpdateError::UnknownMember));
    }
}
