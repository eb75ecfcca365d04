//! Joining: the seed-node process and the join handshake (notes §8).
//!
//! ```text
//! seed list == [self]          → join self at once
//! self is the first seed       → probe the other seeds (InitJoin); the first Ack wins;
//!                                if every other seed Nacks, or seed-node-timeout passes,
//!                                join self: only the first seed can found a cluster
//! otherwise                    → probe all seeds until one Acks; never join self
//! Ack from X                   → send Join to X, wait for Welcome until
//!                                retry-unsuccessful-join-after, then start over
//! refusal from seed X          → X is out of this join (it would refuse again); carry on with
//!                                the others; the join ends refused when none is left
//! refusal from the Join target → the join ends refused
//! ```
//! Probes are retried with a short, growing interval (100 ms doubling up to
//! seed-node-timeout / 5) rather than once per seed-node-timeout as in Pekko: when a whole
//! cluster starts at once the first seed becomes a member within a round trip, and waiting five
//! seconds for the next probe is what makes large cold starts slow.

use core::net::SocketAddr;
use core::time::Duration;

use crate::time::{fraction, scaled, Instant};

/// Most seed nodes.
pub const MAX_SEEDS: usize = 8;

/// What the node must do next for its join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinAction {
    /// Nothing now.
    Wait,
    /// Send InitJoin to these seeds.
    Probe,
    /// Send Join to this member.
    SendJoin(SocketAddr),
    /// Found a new cluster with this node as its first member.
    JoinSelf,
    /// Joining did not succeed in time: give up.
    GiveUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Not joining.
    Idle,
    /// Probing seeds; `first` if this node is the first seed (may found the cluster).
    Probing {
        first: bool,
        next_probe: Instant,
        backoff: Duration,
        deadline: Instant,
    },
    /// Sent Join, waiting for Welcome.
    Joining {
        to: SocketAddr,
        retry_at: Option<Instant>,
    },
}

/// The join state of a node that is not (yet) a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinProcess {
    me: SocketAddr,
    seeds: heapless::Vec<SocketAddr, MAX_SEEDS>,
    stage: Stage,
    /// Seeds (bit i: `seeds[i]`) that answered InitJoinNack during the current probing.
    nacked: u16,
    /// Seeds (bit i: `seeds[i]`) that refused this node during this join. Kept across
    /// restarts: the refusal is about configuration, which a retry does not change.
    refused: u16,
    /// Seeds that refused this node because the cluster is full, since the current probing
    /// began: the cluster may shrink, so they are asked again when probing starts afresh.
    full: u16,
    /// A seed refused this node for capacity during this join: a cluster exists, and the
    /// first seed must not found another.
    cluster_exists: bool,
    /// A member that takes no joiners (one that may not lead) answered during the current
    /// probing round: a cluster exists, and the first seed does not found this round.
    member_answered: bool,
    give_up_at: Option<Instant>,
}

/// Timing settings the join process uses.
#[derive(Debug, Clone, Copy)]
pub struct JoinTiming {
    /// `seed-node-timeout`.
    pub seed_node_timeout: Duration,
    /// `retry-unsuccessful-join-after`.
    pub retry_join_after: Option<Duration>,
    /// `shutdown-after-unsuccessful-join-seed-nodes`.
    pub give_up_after: Option<Duration>,
}

const FIRST_PROBE_BACKOFF: Duration = Duration::from_millis(100);

impl JoinProcess {
    /// Not joining.
    pub fn new(me: SocketAddr) -> Self {
        JoinProcess {
            me,
            seeds: heapless::Vec::new(),
            stage: Stage::Idle,
            nacked: 0,
            refused: 0,
            full: 0,
            cluster_exists: false,
            member_answered: false,
            give_up_at: None,
        }
    }

    /// True while a join is in progress.
    pub fn in_progress(&self) -> bool {
        self.stage != Stage::Idle
    }

    /// The seeds to probe: neither this node itself nor a seed that refused it.
    pub fn probe_targets(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.candidates().map(|(_, s)| s)
    }

    /// The seeds this node may still join through, with their indices.
    fn candidates(&self) -> impl Iterator<Item = (usize, SocketAddr)> + '_ {
        let refused = self.refused | self.full;
        self.seeds
            .iter()
            .copied()
            .enumerate()
            .filter(move |(i, s)| *s != self.me && refused & (1 << i) == 0)
    }

    /// The index of the candidate seed at `from`, if it is one. One copy of the search: its
    /// copies inlined at each caller were 0.6 kB more of a device's flash.
    #[inline(never)]
    fn candidate_at(&self, from: SocketAddr) -> Option<usize> {
        self.candidates().find(|(_, s)| *s == from).map(|(i, _)| i)
    }

    /// The member a Join was sent to, if waiting for its Welcome.
    pub fn joining_to(&self) -> Option<SocketAddr> {
        match self.stage {
            Stage::Joining { to, .. } => Some(to),
            _ => None,
        }
    }

    /// Starts the seed-node process. Duplicate seeds are ignored; more than [`MAX_SEEDS`] are
    /// cut off.
    pub fn start_seeds(
        &mut self,
        now: Instant,
        seeds: &[SocketAddr],
        t: &JoinTiming,
    ) -> JoinAction {
        self.seeds.clear();
        self.refused = 0;
        self.cluster_exists = false;
        for s in seeds {
            if !self.seeds.contains(s) {
                let _ = self.seeds.push(*s);
            }
        }
        self.give_up_at = t.give_up_after.map(|d| now + d);
        self.restart(now, t)
    }

    /// Starts a direct join to `to`.
    pub fn start_join(&mut self, now: Instant, to: SocketAddr, t: &JoinTiming) -> JoinAction {
        self.seeds.clear();
        self.refused = 0;
        self.cluster_exists = false;
        self.give_up_at = t.give_up_after.map(|d| now + d);
        if to == self.me {
            self.stage = Stage::Idle;
            return JoinAction::JoinSelf;
        }
        self.join(now, to, t)
    }

    fn restart(&mut self, now: Instant, t: &JoinTiming) -> JoinAction {
        if self.seeds.is_empty() {
            self.stage = Stage::Idle;
            return JoinAction::Wait;
        }
        if self.seeds.iter().all(|s| *s == self.me) {
            self.stage = Stage::Idle;
            return JoinAction::JoinSelf;
        }
        self.stage = Stage::Probing {
            first: self.seeds[0] == self.me,
            next_probe: now + FIRST_PROBE_BACKOFF,
            backoff: FIRST_PROBE_BACKOFF,
            deadline: now + t.seed_node_timeout,
        };
        self.nacked = 0;
        self.full = 0;
        self.member_answered = false;
        JoinAction::Probe
    }

    fn join(&mut self, now: Instant, to: SocketAddr, t: &JoinTiming) -> JoinAction {
        self.stage = Stage::Joining {
            to,
            retry_at: t.retry_join_after.map(|d| now + d),
        };
        JoinAction::SendJoin(to)
    }

    /// A seed answered InitJoinAck: it is a member and takes joins. The first Ack wins.
    pub fn on_ack(&mut self, now: Instant, from: SocketAddr, t: &JoinTiming) -> JoinAction {
        match self.stage {
            Stage::Probing { .. } if self.candidate_at(from).is_some() => self.join(now, from, t),
            _ => JoinAction::Wait,
        }
    }

    /// A seed answered InitJoinNack. Only the first seed cares: it founds when every other
    /// seed is not a member. `member`: the seed is a member all the same, one that takes no
    /// joiners (it may not lead); the first seed does not found while such members answer,
    /// and only after a whole probing round without one (they stop once cut off from every
    /// member that may lead).
    pub fn on_nack(&mut self, from: SocketAddr, member: bool) -> JoinAction {
        if let Some(i) = self.candidate_at(from) {
            if member {
                self.member_answered = true;
            } else {
                self.nacked |= 1 << i;
            }
        }
        self.first_seed_may_found()
    }

    /// The first seed founds the cluster at once when every seed it could join through is not
    /// a member either: nobody else can found it.
    fn first_seed_may_found(&mut self) -> JoinAction {
        if self.cluster_exists {
            return JoinAction::Wait;
        }
        if let Stage::Probing { first: true, .. } = self.stage {
            let nacked = self.nacked;
            if self.candidates().all(|(i, _)| nacked & (1 << i) != 0) {
                self.stage = Stage::Idle;
                return JoinAction::JoinSelf;
            }
        }
        JoinAction::Wait
    }

    /// `from` refused this node (incompatible configuration or protocol version). `None`: the
    /// join is over — `from` is the node a direct Join went to, or the last seed left.
    /// Otherwise `from` is out of this join and the returned action carries on with the
    /// others (probing them afresh if `from` was the seed the Join went to); a refusal from a
    /// node this process never contacted changes nothing.
    ///
    /// One seed's refusal must not end the join: a seed that is not initialised yet answers
    /// every InitJoin, and a stale, misconfigured or restarted one (which may have founded a
    /// cluster of its own, campaign seed 192015) must not keep a node out of a cluster that the
    /// other seeds would take it into.
    ///
    /// A `temporary` refusal (the cluster is full) holds only until probing starts afresh.
    pub fn on_refused(
        &mut self,
        now: Instant,
        from: SocketAddr,
        t: &JoinTiming,
        temporary: bool,
    ) -> Option<JoinAction> {
        let seed = self.candidate_at(from);
        let mark = |j: &mut Self, i: usize| {
            if temporary {
                j.full |= 1 << i;
                j.cluster_exists = true;
            } else {
                j.refused |= 1 << i;
            }
        };
        if self.joining_to() == Some(from) {
            let i = seed?;
            mark(self, i);
            self.candidates().next()?;
            let action = self.restart(now, t);
            // Probing afresh right away: the seed that just refused stays out of this round.
            mark(self, i);
            return Some(action);
        }
        let Some(i) = seed else {
            return Some(JoinAction::Wait);
        };
        mark(self, i);
        match self.stage {
            // The Join target has not refused: its Welcome may still come.
            Stage::Joining { .. } => Some(JoinAction::Wait),
            _ if self.candidates().next().is_none() => None,
            _ => Some(self.first_seed_may_found()),
        }
    }

    /// Joins again through the same seeds, or else through `via` (a member of the lost
    /// view): the membership this node won was lost (see [`crate::Node`]). Refusals are
    /// forgotten.
    pub fn resume(&mut self, now: Instant, t: &JoinTiming, via: Option<SocketAddr>) -> JoinAction {
        self.refused = 0;
        self.cluster_exists = false;
        self.give_up_at = t.give_up_after.map(|d| now + d);
        match via {
            Some(to) if self.seeds.is_empty() => self.join(now, to, t),
            _ => self.restart(now, t),
        }
    }

    /// The join was refused or this node became a member: stop.
    pub fn stop(&mut self) {
        self.stage = Stage::Idle;
        self.give_up_at = None;
    }

    /// The next instant [`Self::on_timeout`] wants to run.
    pub fn next_timeout(&self) -> Option<Instant> {
        let stage = match &self.stage {
            Stage::Idle => None,
            Stage::Probing {
                first,
                next_probe,
                deadline,
                ..
            } => Some(if *first && !self.cluster_exists {
                (*next_probe).min(*deadline)
            } else {
                *next_probe
            }),
            Stage::Joining { retry_at, .. } => *retry_at,
        };
        match (stage, self.give_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b).filter(|_| self.in_progress()),
        }
    }

    /// Runs due timers.
    pub fn on_timeout(&mut self, now: Instant, t: &JoinTiming) -> JoinAction {
        if !self.in_progress() {
            return JoinAction::Wait;
        }
        if self.give_up_at.is_some_and(|g| now >= g) {
            self.stop();
            return JoinAction::GiveUp;
        }
        let cap = fraction(t.seed_node_timeout, 5).max(FIRST_PROBE_BACKOFF);
        match &mut self.stage {
            Stage::Idle => JoinAction::Wait,
            Stage::Probing {
                first: true,
                deadline,
                ..
            } if now >= *deadline && !self.cluster_exists => {
                if self.member_answered {
                    // A member that takes no joiners answered this round: ask again.
                    *deadline = now + t.seed_node_timeout;
                    self.full = 0;
                    self.member_answered = false;
                    return JoinAction::Probe;
                }
                self.stage = Stage::Idle;
                JoinAction::JoinSelf
            }
            Stage::Probing {
                next_probe,
                backoff,
                deadline,
                ..
            } if now >= *next_probe => {
                *backoff = scaled(*backoff, 2).min(cap);
                *next_probe = now + *backoff;
                if now >= *deadline {
                    // Every seed-node-timeout, seeds that were full are asked again, and a
                    // new round asks whether members that take no joiners are still there.
                    *deadline = now + t.seed_node_timeout;
                    self.full = 0;
                    self.member_answered = false;
                }
                JoinAction::Probe
            }
            Stage::Probing { .. } => JoinAction::Wait,
            Stage::Joining { retry_at, to } if retry_at.is_some_and(|r| now >= r) => {
                let to = *to;
                if self.seeds.is_empty() {
                    self.join(now, to, t)
                } else {
                    self.restart(now, t)
                }
            }
            Stage::Joining { .. } => JoinAction::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: JoinTiming = JoinTiming {
        seed_node_timeout: Duration::from_secs(5),
        retry_join_after: Some(Duration::from_secs(10)),
        give_up_after: None,
    };

    fn a(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn single_seed_that_is_self_joins_self() {
        let mut j = JoinProcess::new(a(1));
        assert_eq!(
            j.start_seeds(Instant::ZERO, &[a(1)], &T),
            JoinAction::JoinSelf
        );
    }

    #[test]
    fn first_seed_joins_self_when_all_others_nack() {
        let mut j = JoinProcess::new(a(1));
        assert_eq!(
            j.start_seeds(Instant::ZERO, &[a(1), a(2), a(3)], &T),
            JoinAction::Probe
        );
        assert_eq!(j.on_nack(a(2), false), JoinAction::Wait);
        assert_eq!(j.on_nack(a(2), false), JoinAction::Wait);
        assert_eq!(j.on_nack(a(3), false), JoinAction::JoinSelf);
    }

    /// Members that may not lead answer "member, no joiners": the first seed does not found
    /// beside them, in that round or any round they answer in; only after a round without.
    #[test]
    fn first_seed_does_not_found_while_members_that_take_no_joiners_answer() {
        let mut j = JoinProcess::new(a(1));
        j.start_seeds(Instant::ZERO, &[a(1), a(2), a(3)], &T);
        assert_eq!(j.on_nack(a(2), true), JoinAction::Wait);
        assert_eq!(j.on_nack(a(3), false), JoinAction::Wait);
        let mut now = Instant::ZERO;
        // Two rounds in which the member answers: no founding.
        for round in 1..=2u64 {
            while now < Instant::from_millis(5_000 * round) {
                now = j.next_timeout().unwrap();
                assert_ne!(j.on_timeout(now, &T), JoinAction::JoinSelf, "round {round}");
            }
            assert_eq!(j.on_nack(a(2), true), JoinAction::Wait);
        }
        // The member answered in the rounds ending at 5, 10 and 15 s (the last answer came as
        // the second round ended). Then it is silent (it stopped): the first seed founds at
        // the end of that round, and not before.
        let mut founded = None;
        while founded.is_none() && now < Instant::from_millis(30_000) {
            now = j.next_timeout().unwrap();
            if j.on_timeout(now, &T) == JoinAction::JoinSelf {
                founded = Some(now);
            }
        }
        assert_eq!(founded, Some(Instant::from_millis(20_000)));
    }

    #[test]
    fn first_seed_joins_self_after_timeout_but_others_never_do() {
        let mut first = JoinProcess::new(a(1));
        first.start_seeds(Instant::ZERO, &[a(1), a(2)], &T);
        let mut other = JoinProcess::new(a(2));
        other.start_seeds(Instant::ZERO, &[a(1), a(2)], &T);
        let mut now = Instant::ZERO;
        let mut first_result = JoinAction::Wait;
        while now < Instant::from_millis(5_000) {
            now = first.next_timeout().unwrap();
            first_result = first.on_timeout(now, &T);
            assert_ne!(other.on_timeout(now, &T), JoinAction::JoinSelf);
            if first_result == JoinAction::JoinSelf {
                break;
            }
        }
        assert_eq!(first_result, JoinAction::JoinSelf);
        assert_eq!(now, Instant::from_millis(5_000));
        assert_eq!(other.on_nack(a(1), false), JoinAction::Wait);
    }

    #[test]
    fn ack_leads_to_join_and_retry_restarts_probing() {
        let mut j = JoinProcess::new(a(5));
        j.start_seeds(Instant::ZERO, &[a(1), a(2)], &T);
        assert_eq!(
            j.on_ack(Instant::ZERO, a(9), &T),
            JoinAction::Wait,
            "not a seed"
        );
        assert_eq!(
            j.on_ack(Instant::ZERO, a(2), &T),
            JoinAction::SendJoin(a(2))
        );
        assert_eq!(
            j.on_ack(Instant::ZERO, a(1), &T),
            JoinAction::Wait,
            "first ack wins"
        );
        assert_eq!(j.next_timeout(), Some(Instant::from_millis(10_000)));
        assert_eq!(
            j.on_timeout(Instant::from_millis(10_000), &T),
            JoinAction::Probe
        );
    }

    #[test]
    fn a_refusing_seed_is_dropped_and_the_join_ends_when_none_is_left() {
        let mut j = JoinProcess::new(a(5));
        j.start_seeds(Instant::ZERO, &[a(1), a(2), a(3)], &T);
        assert_eq!(
            j.on_refused(Instant::ZERO, a(9), &T, false),
            Some(JoinAction::Wait),
            "not contacted"
        );
        assert_eq!(
            j.on_refused(Instant::ZERO, a(1), &T, false),
            Some(JoinAction::Wait)
        );
        assert_eq!(
            j.probe_targets().collect::<heapless::Vec<_, 4>>(),
            [a(2), a(3)]
        );
        assert_eq!(
            j.on_ack(Instant::ZERO, a(1), &T),
            JoinAction::Wait,
            "refused"
        );
        assert_eq!(
            j.on_refused(Instant::ZERO, a(2), &T, false),
            Some(JoinAction::Wait)
        );
        assert_eq!(j.on_refused(Instant::ZERO, a(3), &T, false), None);
    }

    /// Seed 192015: the seed the Join went to had restarted with other settings and founded a
    /// cluster of its own; its refusal must send the joiner to the other seeds.
    #[test]
    fn a_refusal_from_the_join_target_moves_on_to_the_other_seeds() {
        let mut j = JoinProcess::new(a(5));
        j.start_seeds(Instant::ZERO, &[a(1), a(2), a(3)], &T);
        j.on_ack(Instant::ZERO, a(2), &T);
        assert_eq!(
            j.on_refused(Instant::ZERO, a(1), &T, false),
            Some(JoinAction::Wait)
        );
        assert_eq!(j.joining_to(), Some(a(2)));
        assert_eq!(
            j.on_refused(Instant::ZERO, a(2), &T, false),
            Some(JoinAction::Probe),
            "a(3) is left"
        );
        assert_eq!(j.probe_targets().collect::<heapless::Vec<_, 4>>(), [a(3)]);
        j.on_ack(Instant::ZERO, a(3), &T);
        assert_eq!(
            j.on_refused(Instant::ZERO, a(3), &T, false),
            None,
            "none left"
        );
        let mut direct = JoinProcess::new(a(5));
        direct.start_join(Instant::ZERO, a(1), &T);
        assert_eq!(
            direct.on_refused(Instant::ZERO, a(2), &T, false),
            Some(JoinAction::Wait)
        );
        assert_eq!(direct.on_refused(Instant::ZERO, a(1), &T, false), None);
    }

    #[test]
    fn a_full_cluster_is_asked_again_when_probing_starts_afresh() {
        let mut j = JoinProcess::new(a(9));
        j.start_seeds(Instant::ZERO, &[a(1), a(2)], &T);
        // Seed 1 is full; seed 2 does not answer (cut off).
        assert_eq!(
            j.on_refused(Instant::ZERO, a(1), &T, true),
            Some(JoinAction::Wait)
        );
        assert_eq!(j.probe_targets().collect::<heapless::Vec<_, 4>>(), [a(2)]);
        // The next round asks seed 1 again: the cluster may have room by now.
        let mut now = Instant::ZERO;
        let mut probed_again = false;
        for _ in 0..100 {
            now = j.next_timeout().unwrap();
            if j.on_timeout(now, &T) == JoinAction::Probe && j.probe_targets().any(|s| s == a(1)) {
                probed_again = true;
                break;
            }
        }
        assert!(probed_again, "seed 1 asked again by {now:?}");
        // Both full in one round: the join ends (the caller is told and may retry).
        let mut j = JoinProcess::new(a(9));
        j.start_seeds(Instant::ZERO, &[a(1), a(2)], &T);
        assert!(j.on_refused(Instant::ZERO, a(1), &T, true).is_some());
        assert_eq!(j.on_refused(Instant::ZERO, a(2), &T, true), None);
    }

    #[test]
    fn the_first_seed_never_founds_once_a_seed_was_full() {
        // A full cluster exists: neither the nacks of the others nor the deadline may make
        // the first seed found a second one.
        let mut j = JoinProcess::new(a(1));
        j.start_seeds(Instant::ZERO, &[a(1), a(2), a(3)], &T);
        assert_eq!(
            j.on_refused(Instant::ZERO, a(2), &T, true),
            Some(JoinAction::Wait)
        );
        assert_eq!(j.on_nack(a(3), false), JoinAction::Wait);
        let mut now = Instant::ZERO;
        for _ in 0..50 {
            let next = j.next_timeout().unwrap();
            assert!(next > now, "time moves on: {next:?}");
            now = next;
            assert_ne!(j.on_timeout(now, &T), JoinAction::JoinSelf, "at {now:?}");
        }
    }

    #[test]
    fn the_first_seed_founds_when_the_seeds_left_all_nack() {
        let mut j = JoinProcess::new(a(1));
        j.start_seeds(Instant::ZERO, &[a(1), a(2), a(3)], &T);
        assert_eq!(j.on_nack(a(3), false), JoinAction::Wait);
        assert_eq!(
            j.on_refused(Instant::ZERO, a(2), &T, false),
            Some(JoinAction::JoinSelf)
        );
        let mut j = JoinProcess::new(a(1));
        j.start_seeds(Instant::ZERO, &[a(1), a(2)], &T);
        assert_eq!(
            j.on_refused(Instant::ZERO, a(2), &T, false),
            None,
            "refused by all: never founds"
        );
    }

    #[test]
    fn probes_back_off_to_a_cap() {
        let mut j = JoinProcess::new(a(5));
        j.start_seeds(Instant::ZERO, &[a(1)], &T);
        let mut last = Instant::ZERO;
        let mut gaps = heapless::Vec::<u64, 16>::new();
        for _ in 0..8 {
            let t = j.next_timeout().unwrap();
            assert_eq!(j.on_timeout(t, &T), JoinAction::Probe);
            gaps.push((t - last).as_millis() as u64).unwrap();
            last = t;
        }
        assert_eq!(&gaps[..], &[100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let t = JoinTiming {
            give_up_after: Some(Duration::from_secs(3)),
            ..T
        };
        let mut j = JoinProcess::new(a(5));
        j.start_seeds(Instant::ZERO, &[a(1)], &t);
        let mut now;
        loop {
            now = j.next_timeout().unwrap();
            if j.on_timeout(now, &t) == JoinAction::GiveUp {
                break;
            }
        }
        assert_eq!(now, Instant::from_millis(3_000));
        assert!(!j.in_progress());
    }
}
