//! The reachability table: what each observer currently thinks of the subjects it watches.
//!
//! Only an observer changes its own rows, and each change bumps that observer's version, so a
//! merge simply takes, per observer, the rows of the side with the higher version. A subject is
//! unreachable while any observer says so, and reachable again only when every such observer
//! has flipped back.
//!
//! Rows name observer and subject by their index in the gossip's member list, which is sorted
//! by address: index order is address order, so the table keeps the order and every rule it
//! had when rows held addresses, in a fifth of the memory. Observer versions are a column
//! parallel to the member list. The gossip renumbers the rows and moves the column whenever
//! its members change ([`crate::Gossip`]); [`Reachability`] reads the table with addresses.
//!
//! # Compaction
//!
//! Described for users in [`crate::capacity`] ("Reachability compaction"): the table is
//! compacted to the smallest record capacity in the cluster.

use crate::buf::Buf;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::address::UniqueAddress;
use crate::member::{Member, MemberStatus};

/// What one observer thinks of one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReachabilityStatus {
    /// Heartbeats arrive.
    Reachable,
    /// The failure detector gave up on it.
    Unreachable,
    /// Known dead (for example an old incarnation replaced by a restart). Sticky.
    Terminated,
}

/// One observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Record {
    /// Who observed.
    pub observer: UniqueAddress,
    /// Whom.
    pub subject: UniqueAddress,
    /// What it saw.
    pub status: ReachabilityStatus,
    /// The observer's version when it recorded this.
    pub version: u64,
}

/// The table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachabilityFull;

/// A member index that maps to no member (see [`Table::remap`]).
pub(crate) const NONE: u16 = u16::MAX;

/// One observation as stored: observer and subject by member index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) observer: u16,
    pub(crate) subject: u16,
    pub(crate) status: ReachabilityStatus,
    pub(crate) version: u64,
}

impl Row {
    /// The table's sort key.
    fn key(&self) -> (u16, u16) {
        (self.observer, self.subject)
    }

    fn flags(&self) -> bool {
        self.status != ReachabilityStatus::Reachable
    }
}

/// Observer → subject rows (at most `R`) by member index, and each member's version as an
/// observer. Kept by [`crate::Gossip`], which renumbers the rows and moves the versions when
/// its members change; read through [`Reachability`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Table<const M: usize, const R: usize> {
    /// Sorted by (observer, subject): an observer's rows are contiguous.
    records: Buf<Row, R>,
    /// The version of each member as an observer, parallel to the gossip's members (0: none
    /// yet). The gossip moves it along with its other columns.
    pub(crate) versions: Buf<u64, M>,
    /// Rows were compacted away since the table was last empty ([`Table::compact`]).
    compacted: bool,
}

impl<const M: usize, const R: usize> Table<M, R> {
    /// Member indices are stored as `u16`, and [`NONE`] is none of them.
    const INDICES_FIT: () = assert!(M < NONE as usize, "at most 65,534 members");

    /// An empty table: everyone reachable.
    pub(crate) const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::INDICES_FIT;
        Table {
            records: Buf::new(),
            versions: Buf::new(),
            compacted: false,
        }
    }

    /// All rows, by (observer, subject).
    pub(crate) fn rows(&self) -> &[Row] {
        &self.records
    }

    /// True if no observer has any row.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// See [`Reachability::is_compacted`].
    pub(crate) fn is_compacted(&self) -> bool {
        self.compacted
    }

    /// See [`Reachability::is_compacted`]. Used by the wire decoder.
    pub(crate) fn set_compacted(&mut self, compacted: bool) {
        self.compacted = compacted && !self.records.is_empty();
    }

    /// Version of the member at index `observer` (zero if none).
    pub(crate) fn version_of(&self, observer: u16) -> u64 {
        self.versions[usize::from(observer)]
    }

    /// True if `observer` has rows and all of them say Reachable (never stored by
    /// [`Table::change`]; only a hostile peer sends it).
    pub(crate) fn has_only_reachable_rows(&self) -> bool {
        self.next_all_reachable_rows(0).is_some()
    }

    /// The rows of the first observer, from record `i` on, whose rows all say Reachable.
    fn next_all_reachable_rows(&self, mut i: usize) -> Option<core::ops::Range<usize>> {
        while i < self.records.len() {
            let rows = self.observer_rows(self.records[i].observer);
            if self.records[rows.clone()].iter().all(|r| !r.flags()) {
                return Some(rows);
            }
            i = rows.end;
        }
        None
    }

    fn observer_rows(&self, observer: u16) -> core::ops::Range<usize> {
        let start = self.records.partition_point(|r| r.observer < observer);
        let end = start + self.records[start..].partition_point(|r| r.observer == observer);
        start..end
    }

    /// The rows written by the member at index `observer`.
    pub(crate) fn rows_of(&self, observer: u16) -> &[Row] {
        &self.records[self.observer_rows(observer)]
    }

    /// What the member at index `observer` thinks of the one at index `subject`.
    pub(crate) fn status_by(&self, observer: u16, subject: u16) -> ReachabilityStatus {
        self.rows_of(observer)
            .iter()
            .find(|r| r.subject == subject)
            .map_or(ReachabilityStatus::Reachable, |r| r.status)
    }

    /// Records `status` as the view of the member at index `observer` of the one at `subject`.
    /// Returns whether the table changed.
    pub(crate) fn change(
        &mut self,
        observer: u16,
        subject: u16,
        status: ReachabilityStatus,
    ) -> Result<bool, ReachabilityFull> {
        if observer == subject {
            return Ok(false);
        }
        let rows = self.observer_rows(observer);
        let existing = self.records[rows.clone()]
            .iter()
            .position(|r| r.subject == subject)
            .map(|p| rows.start + p);
        match existing {
            None if status == ReachabilityStatus::Reachable => return Ok(false),
            Some(i) if self.records[i].status == status => return Ok(false),
            Some(i) if self.records[i].status == ReachabilityStatus::Terminated => {
                return Ok(false)
            }
            _ => {}
        }
        if existing.is_none() && self.records.is_full() {
            return Err(ReachabilityFull);
        }
        let version = self.version_of(observer).saturating_add(1);
        self.versions[usize::from(observer)] = version;
        let row = Row {
            observer,
            subject,
            status,
            version,
        };
        match existing {
            Some(i) => self.records[i] = row,
            None => {
                let at = self.records.partition_point(|r| r.key() < row.key());
                self.records.insert(at, row).map_err(|_| ReachabilityFull)?;
            }
        }
        // "All reachable" is not stored: drop the observer's rows once none flags anyone.
        let rows = self.observer_rows(observer);
        if self.records[rows.clone()].iter().all(|r| !r.flags()) {
            self.remove_range(rows);
        }
        Ok(true)
    }

    fn remove_range(&mut self, rows: core::ops::Range<usize>) {
        let n = rows.len();
        if n == 0 {
            return;
        }
        let len = self.records.len();
        self.records[rows.start..].rotate_left(n);
        self.records.truncate(len - n);
    }

    /// A member was inserted at index `i`: later members move up one. Its version is none.
    pub(crate) fn insert_member(&mut self, i: usize) {
        // The gossip inserted the member: the column, of the same capacity, has room.
        let _ = self.versions.insert(i, 0);
        let shift = |x: &mut u16| *x += u16::from(usize::from(*x) >= i);
        for r in self.records.iter_mut() {
            shift(&mut r.observer);
            shift(&mut r.subject);
        }
    }

    /// Forgets the member at index `i` as observer and as subject (it was removed from the
    /// cluster); later members move down one.
    pub(crate) fn remove_member(&mut self, i: usize) {
        self.versions.remove(i);
        let i = i as u16;
        self.records.retain(|r| r.observer != i && r.subject != i);
        let shift = |x: &mut u16| *x -= u16::from(*x > i);
        for r in self.records.iter_mut() {
            shift(&mut r.observer);
            shift(&mut r.subject);
        }
        self.drop_all_reachable_rows();
    }

    /// Renumbers the rows for members about to change: the member at index `i` will be at
    /// `map[i]`, or gone if that is [`NONE`] (its rows go with it). `map` must be increasing
    /// where it is not `NONE`, so the order stays. The versions are the gossip's to move.
    pub(crate) fn remap(&mut self, map: &[u16]) {
        let at = |x: u16| map[usize::from(x)];
        self.records
            .retain(|r| at(r.observer) != NONE && at(r.subject) != NONE);
        for r in self.records.iter_mut() {
            r.observer = at(r.observer);
            r.subject = at(r.subject);
        }
        self.drop_all_reachable_rows();
    }

    /// Keeps the table canonical after rows were dropped: an observer whose remaining rows all
    /// say Reachable has no rows (the wire decoder refuses any other form).
    fn drop_all_reachable_rows(&mut self) {
        let mut from = 0;
        while let Some(rows) = self.next_all_reachable_rows(from) {
            from = rows.start;
            self.remove_range(rows);
        }
        // A partition that is over leaves no rows: compaction starts afresh with the next.
        self.compacted &= !self.records.is_empty();
    }

    /// Merges `other` (over `other_members`) into `self` (over the merged member list
    /// `members`): per observer the rows of the side with the higher version, and on equal
    /// versions the rows of both (a side may have compacted some away); versions take the
    /// maximum. Our rows and versions must already be numbered for `members` ([`Table::remap`]
    /// and the gossip's columns; a member only `other` has has version 0 here); `theirs`
    /// numbers `other`'s (index in `other_members` → index in `members`, [`NONE`] for a member
    /// the merge dropped, whose rows and version do not survive; empty if `other` has neither
    /// rows nor versions). When the result would exceed
    /// `limit` (or `R`) records it is compacted ([`Table::compact`]), the cut of subjects
    /// beyond `limit` included, before the union: the merge does not overflow.
    ///
    /// Only the observer writes its rows, so equal versions carry equal rows, less what
    /// compaction dropped; should a hostile peer send a different status under an equal
    /// version, ours is kept.
    pub(crate) fn merge_in(
        &mut self,
        other: &Self,
        theirs: &[u16],
        other_members: &[Member],
        members: &[Member],
        limit: usize,
    ) -> Result<(), ReachabilityFull> {
        // Beyond `theirs` (never, for a checked message): dropped. Without a panic path, the
        // copies of this closure were 0.35 kB less of a device's flash at opt-level "s".
        let at = |x: u16| theirs.get(usize::from(x)).copied().unwrap_or(NONE);
        let keep = |r: &Row| at(r.observer) != NONE && at(r.subject) != NONE;
        let renumber = |r: &Row| Row {
            observer: at(r.observer),
            subject: at(r.subject),
            ..*r
        };
        // Versions of the observer of one of our rows, by its index in `members`: ours, and
        // theirs (found by address: there are few observers).
        let versions = &self.versions;
        let ours = |o: u16| versions[usize::from(o)];
        let theirs_of_ours = |o: u16| {
            index_in(other_members, &members[usize::from(o)].address)
                .map_or(0, |j| other.versions[j])
        };
        // Drop our rows of observers for which `other` is newer, and take theirs.
        let other_counts =
            |r: &Row| keep(r) && other.versions[usize::from(r.observer)] >= ours(at(r.observer));
        self.records
            .retain(|r| theirs_of_ours(r.observer) <= ours(r.observer));
        self.compacted |= other.compacted;
        let limit = limit.min(R);
        let union_len = crate::sorted::union_len_mapped(
            &self.records,
            &other.records,
            other_counts,
            renumber,
            Row::key,
        );
        // Over the limit, compact first: keep what the best cut keeps, of both sides. One
        // call of the union for both cases (each call site is a copy of it on a device).
        let best = (union_len > limit).then(|| {
            let other_rows = other
                .records
                .iter()
                .filter(|r| other_counts(r))
                .map(renumber);
            Compaction::<M>::new(
                members,
                self.records.iter().copied().chain(other_rows),
                limit,
            )
        });
        if let Some(best) = &best {
            self.compacted = true;
            self.records.retain(|r| best.keeps(r));
        }
        crate::sorted::union_into_mapped(
            &mut self.records,
            &other.records,
            |r| other_counts(r) && best.as_ref().is_none_or(|b| b.keeps(&renumber(r))),
            renumber,
            Row::key,
            |x, _| *x,
        )
        .map_err(|_| ReachabilityFull)?;
        for (k, v) in theirs.iter().zip(&other.versions) {
            if *k != NONE {
                let ours = &mut self.versions[usize::from(*k)];
                *ours = (*ours).max(*v);
            }
        }
        self.drop_all_reachable_rows();
        if self.records.len() > limit {
            self.compact(members, limit);
        }
        Ok(())
    }

    /// Records `status` as the view of `members[observer]` of `members[subject]` while
    /// keeping the table within `limit` records: when full, the table is compacted first
    /// ([`Table::compact`]). A row compaction would drop at once is not added (another
    /// observer's row about the same subject says as much), so a full table does not churn
    /// versions. Fails only when more than `limit` members are flagged.
    pub(crate) fn observe(
        &mut self,
        observer: u16,
        subject: u16,
        status: ReachabilityStatus,
        members: &[Member],
        limit: usize,
    ) -> Result<bool, ReachabilityFull> {
        let limit = limit.min(R);
        let adds = status != ReachabilityStatus::Reachable
            && observer != subject
            && self.status_by(observer, subject) == ReachabilityStatus::Reachable;
        if adds && (self.compacted || self.records.len() >= limit) {
            // Under compaction a row that is not the one compaction keeps would be dropped by
            // the next merge and added again by the next reaper tick, each time a new version:
            // leave it out while another observer's row says as much.
            let row = Row {
                observer,
                subject,
                status,
                version: 0,
            };
            let keeps = |t: &Self| {
                Compaction::<M>::new(members, t.records.iter().copied().chain([row]), limit)
                    .keeps(&row)
            };
            if self.compacted && !keeps(self) {
                return Ok(false);
            }
            if self.records.len() >= limit {
                self.compact(members, limit);
                if self.records.len() >= limit {
                    // Full of flagged members: a subject already flagged is known; another
                    // cannot be recorded.
                    let known = self
                        .records
                        .iter()
                        .any(|r| r.subject == subject && r.flags());
                    return if known {
                        Ok(false)
                    } else {
                        Err(ReachabilityFull)
                    };
                }
            }
        }
        self.change(observer, subject, status)
    }

    /// Compacts the table to at most `limit` records (see the [module docs](self)).
    pub(crate) fn compact(&mut self, members: &[Member], limit: usize) {
        let best = Compaction::<M>::new(members, self.records.iter().copied(), limit);
        let before = self.records.len();
        self.records.retain(|r| best.keeps(r));
        self.compacted |= self.records.len() < before;
        self.drop_all_reachable_rows();
    }

    /// Rebuilds the table from decoded rows, validating their order (the decoder checks the
    /// rest). Observer and subject must be member indices.
    pub(crate) fn push_record(&mut self, r: Row) -> Result<(), ()> {
        if r.observer == r.subject || r.version == 0 {
            return Err(());
        }
        if let Some(last) = self.records.last() {
            if last.key() >= r.key() {
                return Err(());
            }
        }
        self.records.push(r).map_err(|_| ())
    }

    /// Clears the table.
    pub(crate) fn clear(&mut self) {
        self.records.clear();
        self.versions.clear();
        self.compacted = false;
    }
}

/// A gossip state's reachability table, read with addresses ([`crate::gossip::Gossip::reachability`]).
///
/// Two tables are equal when they hold the same records and versions, whatever member lists
/// they are read through.
pub struct Reachability<'a, const M: usize, const R: usize> {
    table: &'a Table<M, R>,
    members: &'a [Member],
}

impl<const M: usize, const R: usize> Clone for Reachability<'_, M, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<const M: usize, const R: usize> Copy for Reachability<'_, M, R> {}

impl<'a, const M: usize, const R: usize> Reachability<'a, M, R> {
    /// `table` read through `members`, the member list it numbers.
    pub(crate) fn new(table: &'a Table<M, R>, members: &'a [Member]) -> Self {
        Reachability { table, members }
    }

    fn index(&self, a: &UniqueAddress) -> Option<u16> {
        index_in(self.members, a).map(|i| i as u16)
    }

    fn address(&self, i: u16) -> &'a UniqueAddress {
        &self.members[usize::from(i)].address
    }

    fn record(&self, r: &Row) -> Record {
        Record {
            observer: *self.address(r.observer),
            subject: *self.address(r.subject),
            status: r.status,
            version: r.version,
        }
    }

    /// All records, by (observer, subject).
    pub fn records(&self) -> impl ExactSizeIterator<Item = Record> + Clone + 'a {
        let this = *self;
        self.table.records.iter().map(move |r| this.record(r))
    }

    /// All observer versions (those that are not zero), by observer.
    pub fn versions(&self) -> impl Iterator<Item = (&'a UniqueAddress, u64)> + Clone + 'a {
        self.members
            .iter()
            .zip(&self.table.versions)
            .filter(|(_, v)| **v != 0)
            .map(|(m, v)| (&m.address, *v))
    }

    /// True if no observer has any row.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// True if rows were compacted away since the table was last empty: observers then add a
    /// row only where compaction would keep it ([`crate::Gossip::observe`]).
    pub fn is_compacted(&self) -> bool {
        self.table.compacted
    }

    /// Version of `observer` (zero if none).
    pub fn version_of(&self, observer: &UniqueAddress) -> u64 {
        self.index(observer).map_or(0, |o| self.table.version_of(o))
    }

    /// The records written by the member at index `observer` ([`Self::rows_of`] without the
    /// search).
    pub(crate) fn rows_of_index(
        &self,
        observer: usize,
    ) -> impl ExactSizeIterator<Item = Record> + Clone + 'a {
        let this = *self;
        let rows = match u16::try_from(observer) {
            Ok(o) if observer < self.members.len() => self.table.rows_of(o),
            _ => &[],
        };
        rows.iter().map(move |r| this.record(r))
    }

    /// The records written by `observer`.
    pub fn rows_of(
        &self,
        observer: &UniqueAddress,
    ) -> impl ExactSizeIterator<Item = Record> + Clone + 'a {
        let this = *self;
        let rows = match self.index(observer) {
            Some(o) => self.table.rows_of(o),
            None => &[],
        };
        rows.iter().map(move |r| this.record(r))
    }

    /// What the member at index `observer` thinks of the member at index `subject` (indices
    /// into the member list this table belongs to): [`Self::status_by`] without the two
    /// searches, for callers that hold the indices.
    pub(crate) fn status_by_index(&self, observer: usize, subject: usize) -> ReachabilityStatus {
        match (u16::try_from(observer), u16::try_from(subject)) {
            (Ok(o), Ok(s)) if observer < self.members.len() && subject < self.members.len() => {
                self.table.status_by(o, s)
            }
            _ => ReachabilityStatus::Reachable,
        }
    }

    /// What `observer` thinks of `subject`.
    pub fn status_by(
        &self,
        observer: &UniqueAddress,
        subject: &UniqueAddress,
    ) -> ReachabilityStatus {
        match (self.index(observer), self.index(subject)) {
            (Some(o), Some(s)) => self.table.status_by(o, s),
            _ => ReachabilityStatus::Reachable,
        }
    }

    /// Aggregate status of `subject` over observers accepted by `observer_filter`: Terminated if
    /// any says so, else Unreachable if any says so, else Reachable.
    pub fn status_filtered(
        &self,
        subject: &UniqueAddress,
        mut observer_filter: impl FnMut(&UniqueAddress) -> bool,
    ) -> ReachabilityStatus {
        let Some(s) = self.index(subject) else {
            return ReachabilityStatus::Reachable;
        };
        self.table
            .records
            .iter()
            .filter(|r| r.subject == s && observer_filter(self.address(r.observer)))
            .map(|r| r.status)
            .max()
            .unwrap_or(ReachabilityStatus::Reachable)
    }

    /// Aggregate status of `subject` over all observers.
    pub fn status(&self, subject: &UniqueAddress) -> ReachabilityStatus {
        self.status_filtered(subject, |_| true)
    }

    /// True if no observer flags `subject`.
    pub fn is_reachable(&self, subject: &UniqueAddress) -> bool {
        self.status(subject) == ReachabilityStatus::Reachable
    }

    /// Subjects flagged Unreachable or Terminated by at least one observer accepted by
    /// `observer_filter`, each once.
    pub fn flagged_subjects(
        &self,
        observer_filter: impl Fn(&UniqueAddress) -> bool + 'a,
    ) -> impl Iterator<Item = UniqueAddress> + 'a {
        let this = *self;
        let flagged = move |r: &Row| r.flags() && observer_filter(this.address(r.observer));
        let records = &self.table.records;
        records.iter().enumerate().filter_map(move |(k, r)| {
            // Rows are sorted by observer, so a subject can recur: report its first flag only.
            let first = flagged(r)
                && !records[..k]
                    .iter()
                    .any(|q| q.subject == r.subject && flagged(q));
            first.then_some(*this.address(r.subject))
        })
    }
}

impl<const M: usize, const R: usize> PartialEq<Reachability<'_, M, R>> for Reachability<'_, M, R> {
    fn eq(&self, other: &Reachability<'_, M, R>) -> bool {
        self.records().eq(other.records())
            && self.versions().eq(other.versions())
            && self.is_compacted() == other.is_compacted()
    }
}

impl<const M: usize, const R: usize> Eq for Reachability<'_, M, R> {}

impl<const M: usize, const R: usize> fmt::Debug for Reachability<'_, M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<I>(I);
        impl<I: Iterator + Clone> fmt::Debug for List<I>
        where
            I::Item: fmt::Debug,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.clone()).finish()
            }
        }
        f.debug_struct("Reachability")
            .field("records", &List(self.records()))
            .field("versions", &List(self.versions()))
            .field("compacted", &self.is_compacted())
            .finish()
    }
}

/// The row compaction keeps per subject, chosen among candidate rows: the worst status, then an
/// observer that is neither flagged nor Down, then the lowest observer address.
struct Compaction<const M: usize> {
    /// Per member index: flagged by some candidate row, or Down.
    doubtful: [bool; M],
    /// Per subject (member index): the best key among its rows, `u32::MAX` if none.
    best: [u32; M],
    /// Subjects from this member index on keep no row (more than `limit` are flagged).
    cut: usize,
}

impl<const M: usize> Compaction<M> {
    fn new(members: &[Member], rows: impl Iterator<Item = Row> + Clone, limit: usize) -> Self {
        let mut doubtful = [false; M];
        for (i, m) in members.iter().enumerate().take(M) {
            doubtful[i] = m.status == MemberStatus::Down;
        }
        for r in rows.clone() {
            if r.flags() {
                doubtful[usize::from(r.subject)] = true;
            }
        }
        let mut best = [u32::MAX; M];
        for r in rows {
            let (s, o) = (usize::from(r.subject), usize::from(r.observer));
            best[s] = best[s].min(key(&r, o, doubtful[o]));
        }
        // One row per flagged subject: beyond `limit` of them, the highest addresses go.
        let mut cut = M;
        let mut kept = 0;
        for (i, b) in best.iter().enumerate() {
            if *b != u32::MAX {
                if kept == limit {
                    cut = i;
                    break;
                }
                kept += 1;
            }
        }
        Compaction {
            doubtful,
            best,
            cut,
        }
    }

    fn keeps(&self, r: &Row) -> bool {
        let (s, o) = (usize::from(r.subject), usize::from(r.observer));
        s < self.cut && r.flags() && self.best[s] == key(r, o, self.doubtful[o])
    }
}

fn index_in(members: &[Member], a: &UniqueAddress) -> Option<usize> {
    members.binary_search_by(|m| m.address.cmp(a)).ok()
}

/// Lower is kept first: status (Terminated before Unreachable), then an observer that counts
/// and is reachable, then the observer's index (address order). Reachable rows never win.
fn key(r: &Row, observer: usize, observer_doubtful: bool) -> u32 {
    let status = match r.status {
        ReachabilityStatus::Terminated => 0,
        ReachabilityStatus::Unreachable => 1,
        ReachabilityStatus::Reachable => 3,
    };
    (status << 24) | (u32::from(observer_doubtful) << 16) | (observer as u32 & 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::ReachabilityStatus::*;
    use super::*;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    fn members(ids: &[u8]) -> std::vec::Vec<Member> {
        ids.iter()
            .map(|i| Member::joining(n(*i), Default::default(), Default::default()))
            .collect()
    }

    /// The index of `n(i)` in `ms`.
    fn at(ms: &[Member], i: u8) -> u16 {
        index_in(ms, &n(i)).expect("a member") as u16
    }

    /// An empty table over `ms` (no versions yet).
    fn table<const R: usize>(ms: &[Member]) -> Table<16, R> {
        let mut t = Table::new();
        t.versions.extend(ms.iter().map(|_| 0));
        t
    }

    /// `n(o)`'s view of `n(s)`, both in `ms`.
    fn change<const R: usize>(
        t: &mut Table<16, R>,
        ms: &[Member],
        o: u8,
        s: u8,
        status: ReachabilityStatus,
    ) -> bool {
        t.change(at(ms, o), at(ms, s), status).unwrap()
    }

    fn view<'a, const M: usize, const R: usize>(
        t: &'a Table<M, R>,
        ms: &'a [Member],
    ) -> Reachability<'a, M, R> {
        Reachability::new(t, ms)
    }

    /// Renumbering for the same members.
    const SAME: [u16; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

    #[test]
    fn reachable_again_only_when_every_observer_agrees() {
        let ms = members(&[1, 2, 3]);
        let mut t = table::<16>(&ms);
        assert!(change(&mut t, &ms, 1, 3, Unreachable));
        assert!(change(&mut t, &ms, 2, 3, Unreachable));
        assert_eq!(view(&t, &ms).status(&n(3)), Unreachable);
        change(&mut t, &ms, 1, 3, Reachable);
        assert_eq!(view(&t, &ms).status(&n(3)), Unreachable);
        change(&mut t, &ms, 2, 3, Reachable);
        assert_eq!(view(&t, &ms).status(&n(3)), Reachable);
        assert!(t.is_empty(), "all-reachable rows are not stored");
        assert_eq!(t.version_of(at(&ms, 1)), 2);
    }

    #[test]
    fn removing_a_node_leaves_no_all_reachable_rows() {
        // Observer 1 flags 2 (then healed: the row stays, since 1 still flags 4) and 4; once 4
        // is removed, 1's rows say only Reachable and must go, or the decoder refuses the state.
        let ms = members(&[1, 2, 4]);
        let table = || {
            let mut t = table::<16>(&ms);
            change(&mut t, &ms, 1, 2, Unreachable);
            change(&mut t, &ms, 1, 4, Unreachable);
            change(&mut t, &ms, 1, 2, Reachable);
            assert_eq!(t.rows().len(), 2);
            t
        };
        let mut t = table();
        t.remove_member(2);
        assert!(t.is_empty());
        assert!(!t.has_only_reachable_rows());
        assert_eq!(t.version_of(0), 3, "the observer's version stays");
        let mut t = table();
        t.remap(&[0, 1, NONE]);
        assert!(t.is_empty());
    }

    #[test]
    fn inserting_and_removing_members_renumber_the_rows() {
        let ms = members(&[1, 3, 5]);
        let mut t = table::<16>(&ms);
        change(&mut t, &ms, 1, 3, Unreachable);
        change(&mut t, &ms, 3, 5, Unreachable);
        change(&mut t, &ms, 5, 1, Terminated);
        let before: std::vec::Vec<Record> = view(&t, &ms).records().collect();
        // 2 goes in between, 6 after: the records, read with addresses, stay.
        let ms = members(&[1, 2, 3, 5]);
        t.insert_member(1);
        assert_eq!(
            view(&t, &ms).records().collect::<std::vec::Vec<_>>(),
            before
        );
        let ms = members(&[1, 2, 3, 5, 6]);
        t.insert_member(4);
        assert_eq!(
            view(&t, &ms).records().collect::<std::vec::Vec<_>>(),
            before
        );
        // 3 goes, with its rows as observer and subject, and its version.
        t.remove_member(2);
        let ms = members(&[1, 2, 5, 6]);
        let after: std::vec::Vec<_> = view(&t, &ms)
            .records()
            .map(|r| (r.observer, r.subject, r.status))
            .collect();
        assert_eq!(after, [(n(5), n(1), Terminated)]);
        assert_eq!(&t.versions[..], &[1, 0, 1, 0]);
    }

    #[test]
    fn terminated_is_sticky_and_self_observation_ignored() {
        let ms = members(&[1, 2, 3]);
        let mut t = table::<16>(&ms);
        change(&mut t, &ms, 1, 2, Terminated);
        assert!(!change(&mut t, &ms, 1, 2, Reachable));
        assert_eq!(view(&t, &ms).status(&n(2)), Terminated);
        assert!(!change(&mut t, &ms, 1, 1, Unreachable));
        change(&mut t, &ms, 3, 2, Unreachable);
        assert_eq!(view(&t, &ms).status(&n(2)), Terminated);
    }

    #[test]
    fn merge_takes_newer_rows_per_observer() {
        let all = members(&[1, 2, 3]);
        let mut a = table::<16>(&all);
        change(&mut a, &all, 1, 2, Unreachable);
        let mut b = a.clone();
        change(&mut b, &all, 1, 2, Reachable); // observer 1, version 2: all reachable
        change(&mut a, &all, 3, 2, Unreachable);
        let mut m = a.clone();
        m.merge_in(&b, &SAME[..3], &all, &all, 16).unwrap();
        assert_eq!(view(&m, &all).status_by(&n(1), &n(2)), Reachable);
        assert_eq!(view(&m, &all).status_by(&n(3), &n(2)), Unreachable);
        let mut m2 = b.clone();
        m2.merge_in(&a, &SAME[..3], &all, &all, 16).unwrap();
        assert_eq!(m, m2);
        // Without member 2: ours renumbered first (the gossip moves the versions), theirs as
        // they are taken.
        let without = [0, NONE, 1];
        let mut m3 = a.clone();
        m3.remap(&without);
        m3.versions = [a.versions[0], a.versions[2]].into_iter().collect();
        m3.merge_in(&b, &without, &all, &members(&[1, 3]), 16)
            .unwrap();
        assert!(m3.is_empty());
        assert_eq!(&m3.versions[..], &[2, 1]);
    }

    #[test]
    fn a_merge_renumbers_the_other_sides_rows() {
        // Ours over {1, 3}, theirs over {2, 3}: merged {1, 2, 3}.
        let (ours, theirs, all) = (members(&[1, 3]), members(&[2, 3]), members(&[1, 2, 3]));
        let mut a = table::<16>(&ours);
        change(&mut a, &ours, 1, 3, Unreachable);
        let mut b = table::<16>(&theirs);
        change(&mut b, &theirs, 2, 3, Terminated);
        change(&mut b, &theirs, 3, 2, Unreachable);
        a.remap(&[0, 2]);
        a.versions = [1, 0, 0].into_iter().collect();
        a.merge_in(&b, &[1, 2], &theirs, &all, 16).unwrap();
        let rows: std::vec::Vec<_> = view(&a, &all)
            .records()
            .map(|r| (r.observer, r.subject, r.status))
            .collect();
        assert_eq!(
            rows,
            [
                (n(1), n(3), Unreachable),
                (n(2), n(3), Terminated),
                (n(3), n(2), Unreachable)
            ]
        );
        assert_eq!(&a.versions[..], &[1, 1, 1]);
    }

    #[test]
    fn a_merge_with_more_flagged_members_than_records_keeps_the_lowest_and_never_fails() {
        // Two sides each flag four members; a table of six holds the union only compacted and
        // cut: the two highest-addressed subjects lose their rows, and the merge succeeds.
        let all = members(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let mut a = table::<6>(&all);
        let mut b = table::<6>(&all);
        for s in 3..=6 {
            change(&mut a, &all, 1, s, Unreachable);
        }
        for s in 7..=10 {
            change(&mut b, &all, 2, s, Unreachable);
        }
        a.merge_in(&b, &SAME, &all, &all, 6).unwrap();
        assert_eq!(a.rows().len(), 6);
        assert!(a.is_compacted());
        let flagged: std::vec::Vec<_> = view(&a, &all).flagged_subjects(|_| true).collect();
        assert_eq!(flagged, [3, 4, 5, 6, 7, 8].map(n));
    }

    #[test]
    fn flagged_subjects_are_unique() {
        let ms = members(&[1, 2, 4, 5]);
        let mut t = table::<16>(&ms);
        change(&mut t, &ms, 1, 5, Unreachable);
        change(&mut t, &ms, 2, 5, Unreachable);
        change(&mut t, &ms, 2, 4, Unreachable);
        let mut v: heapless::Vec<_, 8> = view(&t, &ms).flagged_subjects(|_| true).collect();
        v.sort();
        assert_eq!(&v[..], &[n(4), n(5)]);
        let v: heapless::Vec<_, 8> = view(&t, &ms).flagged_subjects(|o| *o == n(1)).collect();
        assert_eq!(&v[..], &[n(5)]);
    }
}
