//! The reachability table before it was keyed by member index (verbatim).

use serde::{Deserialize, Serialize};

use crate::address::UniqueAddress;
use crate::member::{Member, MemberStatus};

pub use crate::reachability::ReachabilityStatus;

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

/// Observer → subject records (at most `R`) and per-observer versions (at most `M` observers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reachability<const M: usize, const R: usize> {
    /// Sorted by (observer, subject): an observer's rows are contiguous.
    records: crate::buf::Buf<Record, R>,
    /// Sorted by observer.
    versions: crate::buf::Buf<(UniqueAddress, u64), M>,
    /// Rows were compacted away since the table was last empty ([`Reachability::compact`]).
    compacted: bool,
}

impl<const M: usize, const R: usize> Reachability<M, R> {
    /// An empty table: everyone reachable.
    pub const fn new() -> Self {
        Reachability {
            records: crate::buf::Buf::new(),
            versions: crate::buf::Buf::new(),
            compacted: false,
        }
    }

    /// All records.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// All observer versions.
    pub fn versions(&self) -> impl Iterator<Item = (&UniqueAddress, u64)> {
        self.versions.iter().map(|(a, v)| (a, *v))
    }

    /// True if no observer has any row.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// True if rows were compacted away since the table was last empty: observers then add a
    /// row only where compaction would keep it ([`Reachability::observe`]).
    pub fn is_compacted(&self) -> bool {
        self.compacted
    }

    /// See [`Self::is_compacted`]. Used by the wire decoder.
    pub(crate) fn set_compacted(&mut self, compacted: bool) {
        self.compacted = compacted && !self.records.is_empty();
    }

    /// Version of `observer` (zero if none).
    pub fn version_of(&self, observer: &UniqueAddress) -> u64 {
        version_in(&self.versions, observer)
    }

    /// True if `observer` has rows and all of them say Reachable (never stored by
    /// [`Reachability::change`]; only a hostile peer sends it).
    pub(crate) fn has_only_reachable_rows(&self) -> bool {
        self.next_all_reachable_rows(0).is_some()
    }

    /// The rows of the first observer, from record `i` on, whose rows all say Reachable.
    fn next_all_reachable_rows(&self, mut i: usize) -> Option<core::ops::Range<usize>> {
        while i < self.records.len() {
            let rows = self.observer_rows(&self.records[i].observer);
            if self.records[rows.clone()]
                .iter()
                .all(|r| r.status == ReachabilityStatus::Reachable)
            {
                return Some(rows);
            }
            i = rows.end;
        }
        None
    }

    fn observer_rows(&self, observer: &UniqueAddress) -> core::ops::Range<usize> {
        let start = self.records.partition_point(|r| r.observer < *observer);
        let end = start + self.records[start..].partition_point(|r| r.observer == *observer);
        start..end
    }

    /// The rows written by `observer`.
    pub fn rows_of(&self, observer: &UniqueAddress) -> &[Record] {
        &self.records[self.observer_rows(observer)]
    }

    /// What `observer` thinks of `subject`.
    pub fn status_by(
        &self,
        observer: &UniqueAddress,
        subject: &UniqueAddress,
    ) -> ReachabilityStatus {
        let rows = self.observer_rows(observer);
        self.records[rows]
            .iter()
            .find(|r| r.subject == *subject)
            .map_or(ReachabilityStatus::Reachable, |r| r.status)
    }

    /// Aggregate status of `subject` over observers accepted by `observer_filter`: Terminated if
    /// any says so, else Unreachable if any says so, else Reachable.
    pub fn status_filtered(
        &self,
        subject: &UniqueAddress,
        mut observer_filter: impl FnMut(&UniqueAddress) -> bool,
    ) -> ReachabilityStatus {
        self.records
            .iter()
            .filter(|r| r.subject == *subject && observer_filter(&r.observer))
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

    /// Records `status` as `observer`'s view of `subject`. Returns whether the table changed.
    pub fn change(
        &mut self,
        observer: UniqueAddress,
        subject: UniqueAddress,
        status: ReachabilityStatus,
    ) -> Result<bool, ReachabilityFull> {
        if observer == subject {
            return Ok(false);
        }
        let rows = self.observer_rows(&observer);
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
        let version = self.version_of(&observer).saturating_add(1);
        self.set_version(observer, version)?;
        let rec = Record {
            observer,
            subject,
            status,
            version,
        };
        match existing {
            Some(i) => self.records[i] = rec,
            None => {
                let at = self
                    .records
                    .partition_point(|r| (r.observer, r.subject) < (observer, subject));
                self.records.insert(at, rec).map_err(|_| ReachabilityFull)?;
            }
        }
        // "All reachable" is not stored: drop the observer's rows once none flags anyone.
        let rows = self.observer_rows(&observer);
        if self.records[rows.clone()]
            .iter()
            .all(|r| r.status == ReachabilityStatus::Reachable)
        {
            self.remove_range(rows);
        }
        Ok(true)
    }

    fn set_version(&mut self, observer: UniqueAddress, v: u64) -> Result<(), ReachabilityFull> {
        match self.versions.binary_search_by(|(a, _)| a.cmp(&observer)) {
            Ok(i) => self.versions[i].1 = v,
            Err(i) => self
                .versions
                .insert(i, (observer, v))
                .map_err(|_| ReachabilityFull)?,
        }
        Ok(())
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

    /// Forgets `node` as observer and as subject (it was removed from the cluster).
    pub fn remove_node(&mut self, node: &UniqueAddress) {
        self.records
            .retain(|r| r.observer != *node && r.subject != *node);
        if let Ok(i) = self.versions.binary_search_by(|(a, _)| a.cmp(node)) {
            self.versions.remove(i);
        }
        self.drop_all_reachable_rows();
    }

    /// Keeps only observers and subjects accepted by `is_member`.
    pub fn retain_members(&mut self, is_member: &impl Fn(&UniqueAddress) -> bool) {
        self.records
            .retain(|r| is_member(&r.observer) && is_member(&r.subject));
        self.versions.retain(|(a, _)| is_member(a));
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

    /// Subjects flagged Unreachable or Terminated by at least one observer accepted by
    /// `observer_filter`, each once.
    pub fn flagged_subjects<'a>(
        &'a self,
        observer_filter: impl Fn(&UniqueAddress) -> bool + 'a,
    ) -> impl Iterator<Item = UniqueAddress> + 'a {
        let flagged = move |r: &Record| {
            r.status != ReachabilityStatus::Reachable && observer_filter(&r.observer)
        };
        let records = &self.records;
        records.iter().enumerate().filter_map(move |(k, r)| {
            // Rows are sorted by observer, so a subject can recur: report its first flag only.
            let first = flagged(r)
                && !records[..k]
                    .iter()
                    .any(|q| q.subject == r.subject && flagged(q));
            first.then_some(r.subject)
        })
    }

    /// Merges `other` into `self`: per observer (a current member: `is_member`, the merged
    /// `members` for compaction) the rows of the side with
    /// the higher version, and on equal versions the rows of both (a side may have compacted
    /// some away); only rows whose subject is a member survive. When the result would exceed
    /// `limit` (or `R`) records it is compacted ([`Reachability::compact`]), the cut of
    /// subjects beyond `limit` included, before the union: the merge does not overflow.
    ///
    /// Only the observer writes its rows, so equal versions carry equal rows, less what
    /// compaction dropped; should a hostile peer send a different status under an equal
    /// version, ours is kept.
    pub fn merge_in(
        &mut self,
        other: &Self,
        is_member: impl Fn(&UniqueAddress) -> bool,
        members: &[Member],
        limit: usize,
    ) -> Result<(), ReachabilityFull> {
        // Drop what will not survive first, so the unions below only grow towards a result
        // that fits whenever the merged state does.
        self.retain_members(&is_member);
        let keep = |r: &Record| is_member(&r.observer) && is_member(&r.subject);
        // Drop our rows of observers for which `other` is newer, and take theirs.
        let versions = &self.versions;
        let other_newer =
            |o: &UniqueAddress| version_in(&other.versions, o) > version_in(versions, o);
        let other_counts = |r: &Record| {
            keep(r) && version_in(&other.versions, &r.observer) >= version_in(versions, &r.observer)
        };
        self.records.retain(|r| !other_newer(&r.observer));
        self.compacted |= other.compacted;
        let limit = limit.min(R);
        let union_len =
            crate::sorted::union_len_where(&self.records, &other.records, other_counts, |r| {
                (r.observer, r.subject)
            });
        if union_len <= limit {
            super::union_into_where(
                &mut self.records,
                &other.records,
                other_counts,
                |r| (r.observer, r.subject),
                |x, _| *x,
            )
            .map_err(|_| ReachabilityFull)?;
        } else {
            let other_rows = || other.records.iter().filter(|r| other_counts(r));
            let best =
                Compaction::<M>::new(members, self.records.iter().chain(other_rows()), limit);
            self.compacted = true;
            self.records.retain(|r| best.keeps(r, members));
            super::union_into_where(
                &mut self.records,
                &other.records,
                |r| other_counts(r) && best.keeps(r, members),
                |r| (r.observer, r.subject),
                |x, _| *x,
            )
            .map_err(|_| ReachabilityFull)?;
        }
        super::union_into_where(
            &mut self.versions,
            &other.versions,
            |e| is_member(&e.0),
            |e| e.0,
            |x, y| (x.0, x.1.max(y.1)),
        )
        .map_err(|_| ReachabilityFull)?;
        self.drop_all_reachable_rows();
        if self.records.len() > limit {
            self.compact(members, limit);
        }
        Ok(())
    }

    /// Records `status` as `observer`'s view of `subject` while keeping the table within
    /// `limit` records: when full, the table is compacted first ([`Reachability::compact`]).
    /// A row compaction would drop at once is not added (another observer's row about the
    /// same subject says as much), so a full table does not churn versions. Fails only when
    /// more than `limit` members are flagged.
    pub fn observe(
        &mut self,
        observer: UniqueAddress,
        subject: UniqueAddress,
        status: ReachabilityStatus,
        members: &[Member],
        limit: usize,
    ) -> Result<bool, ReachabilityFull> {
        let limit = limit.min(R);
        let adds = status != ReachabilityStatus::Reachable
            && observer != subject
            && self.status_by(&observer, &subject) == ReachabilityStatus::Reachable;
        if adds && (self.compacted || self.records.len() >= limit) {
            // Under compaction a row that is not the one compaction keeps would be dropped by
            // the next merge and added again by the next reaper tick, each time a new version:
            // leave it out while another observer's row says as much.
            let row = Record {
                observer,
                subject,
                status,
                version: 0,
            };
            let keeps = |t: &Self| {
                Compaction::<M>::new(members, t.records.iter().chain([&row]), limit)
                    .keeps(&row, members)
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
                        .any(|r| r.subject == subject && r.status != ReachabilityStatus::Reachable);
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

    /// Compacts the table to at most `limit` records: one row per flagged subject (the worst
    /// status, from an observer that is itself neither flagged nor Down where there is one,
    /// lowest address first), no rows saying Reachable; if more than `limit` subjects are
    /// flagged, those with the highest addresses lose their rows (a merge makes the same cut
    /// before its union, so that it never overflows). Versions stay, so a peer
    /// with the full rows of an observer merges them back in.
    ///
    /// What the split brain resolver reads survives compaction: which members are flagged and
    /// by an observer that counts, and whether some flagging observer is itself reachable
    /// (a member flagged only by flagged observers is indirectly connected). Which members
    /// each observer flags is lost, so a member one observer takes back stays reachable until
    /// another observer that still flags it re-flags it (its next reaper tick).
    pub fn compact(&mut self, members: &[Member], limit: usize) {
        let best = Compaction::<M>::new(members, self.records.iter(), limit);
        let before = self.records.len();
        self.records.retain(|r| best.keeps(r, members));
        self.compacted |= self.records.len() < before;
        self.drop_all_reachable_rows();
    }

    /// Rebuilds the table from decoded parts, validating order. Used by the wire decoder.
    pub(crate) fn push_version(&mut self, observer: UniqueAddress, v: u64) -> Result<(), ()> {
        if let Some(last) = self.versions.last() {
            if last.0 >= observer {
                return Err(());
            }
        }
        self.versions.push((observer, v)).map_err(|_| ())
    }

    /// See [`Self::push_version`].
    pub(crate) fn push_record(&mut self, r: Record) -> Result<(), ()> {
        if r.observer == r.subject || r.version == 0 {
            return Err(());
        }
        if let Some(last) = self.records.last() {
            if (last.observer, last.subject) >= (r.observer, r.subject) {
                return Err(());
            }
        }
        self.records.push(r).map_err(|_| ())
    }

    /// Sets the compacted flag as is (for the test oracle's conversion; not in the original).
    pub(crate) fn set_compacted_exactly(&mut self, compacted: bool) {
        self.compacted = compacted;
    }

    /// Clears the table.
    pub fn clear(&mut self) {
        self.records.clear();
        self.versions.clear();
        self.compacted = false;
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
    fn new<'a>(
        members: &[Member],
        rows: impl Iterator<Item = &'a Record> + Clone,
        limit: usize,
    ) -> Self {
        let mut doubtful = [false; M];
        for (i, m) in members.iter().enumerate().take(M) {
            doubtful[i] = m.status == MemberStatus::Down;
        }
        for r in rows.clone() {
            if r.status != ReachabilityStatus::Reachable {
                if let Some(i) = index_in(members, &r.subject) {
                    doubtful[i] = true;
                }
            }
        }
        let mut best = [u32::MAX; M];
        for r in rows {
            if let (Some(s), Some(o)) = (
                index_in(members, &r.subject),
                index_in(members, &r.observer),
            ) {
                best[s] = best[s].min(key(r, o, doubtful[o]));
            }
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

    fn keeps(&self, r: &Record, members: &[Member]) -> bool {
        match (
            index_in(members, &r.subject),
            index_in(members, &r.observer),
        ) {
            (Some(s), Some(o)) => {
                s < self.cut
                    && r.status != ReachabilityStatus::Reachable
                    && self.best[s] == key(r, o, self.doubtful[o])
            }
            _ => false,
        }
    }
}

fn index_in(members: &[Member], a: &UniqueAddress) -> Option<usize> {
    members.binary_search_by(|m| m.address.cmp(a)).ok()
}

/// Lower is kept first: status (Terminated before Unreachable), then an observer that counts
/// and is reachable, then the observer's index (address order). Reachable rows never win.
fn key(r: &Record, observer: usize, observer_doubtful: bool) -> u32 {
    let status = match r.status {
        ReachabilityStatus::Terminated => 0,
        ReachabilityStatus::Unreachable => 1,
        ReachabilityStatus::Reachable => 3,
    };
    (status << 24) | (u32::from(observer_doubtful) << 16) | (observer as u32 & 0xFFFF)
}

fn version_in<const M: usize>(
    versions: &crate::buf::Buf<(UniqueAddress, u64), M>,
    observer: &UniqueAddress,
) -> u64 {
    match versions.binary_search_by(|(a, _)| a.cmp(observer)) {
        Ok(i) => versions[i].1,
        Err(_) => 0,
    }
}
