//! Who monitors whom (the heartbeat ring) and the per-monitored-member heartbeat state.
//!
//! Every node orders all members by a stable hash of their identity, so the order is the same
//! everywhere yet unrelated to addresses (neighbours are unlikely to share a rack). A node sends
//! heartbeat requests to the next `monitored-by-nr-of-members` members after itself on that
//! ring, reachable or not, and feeds their responses into one failure detector each; members it
//! flags itself stay monitored until they answer again, so it can see them come back.
//!
//! A monitored member that has missed a heartbeat is probed five times faster until it answers:
//! loss of single datagrams then costs a few extra bytes instead of a false verdict, while a
//! member that really crashed is suspected exactly as soon as before (the detector's clock runs
//! from the last response either way). A stop-the-world pause or a lossy link has to swallow
//! every one of those probes, not just four heartbeats, to cause an Unreachable.
//!
//! The default of 5 monitors (Pekko: 9) keeps steady-state traffic within 100 bytes per node
//! per second: 5 requests of 6 bytes and 5 responses of 8 bytes, plus one 27-byte gossip
//! status. One monitor's verdict is enough to flag a member unreachable, so 5 independent
//! observers already make a missed crash very unlikely, while each extra monitor adds another
//! chance of a false verdict under load.

use core::net::SocketAddr;
use core::time::Duration;

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::phi::{Detector, DetectorSettings, FailureDetector};
use crate::reachability::ReachabilityStatus;
use crate::time::Instant;

/// Most members one node monitors at once: the configured number plus unreachable ones kept.
pub const MAX_MONITORED: usize = 8;

/// The low 16 bits of a uid, echoed in heartbeat responses so that a response from a new
/// incarnation on the same address does not keep the old one alive.
pub fn uid_tag(a: &UniqueAddress) -> u16 {
    a.uid() as u16
}

/// What one node knows about one member it monitors.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor<const H: usize> {
    /// The monitored member.
    pub subject: UniqueAddress,
    detector: Detector<H>,
    /// Expect the first response by then; if none came, start the detector anyway so a member
    /// that never answers is still detected.
    first_expected_at: Instant,
    next_seq: u8,
    /// Requests sent so far, saturating: a response must answer one of them.
    sent: u8,
    last_seq: Option<u8>,
    next_request_at: Instant,
    /// Latest round trip in milliseconds (small: devices keep several monitors).
    rtt_millis: Option<u16>,
}

/// Read-only view of a monitored member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorStats {
    /// The monitored member.
    pub subject: UniqueAddress,
    /// Current suspicion (phi for the phi detector).
    pub phi: f64,
    /// Time since the last heartbeat response, if one arrived.
    pub last_heartbeat_age: Option<Duration>,
    /// Round-trip time of the latest response.
    pub rtt: Option<Duration>,
    /// False once the detector suspects the member.
    pub available: bool,
}

/// What a monitor says of its member (see [`Heartbeats::reap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The detector suspects it.
    Unavailable,
    /// Available, and it has answered this monitor.
    Answering,
    /// Available only because a new monitor has not waited long enough: no evidence either
    /// way, so a flag stays as it is.
    NotYetHeard,
}

/// The heartbeat state of one node: the members it monitors, at most [`MAX_MONITORED`].
#[derive(Debug, Clone, Default)]
pub struct Heartbeats<const H: usize> {
    monitors: heapless::Vec<Monitor<H>, MAX_MONITORED>,
    /// The ring successors as indices into the gossip's members, recomputed only when the
    /// membership state changed (indices stay valid until then). Indices, not addresses, to
    /// keep the device preset small.
    ring: heapless::Vec<u16, { MAX_MONITORED * 2 }>,
    ring_members: u16,
    ring_generation: Option<u64>,
}

/// Milliseconds of `now`, wrapping: enough to measure round trips shorter than a minute.
pub fn wire_millis(now: Instant) -> u16 {
    (now.as_micros() / 1000) as u16
}

impl<const H: usize> Heartbeats<H> {
    /// Nothing monitored.
    pub const fn new() -> Self {
        Heartbeats {
            monitors: heapless::Vec::new(),
            ring: heapless::Vec::new(),
            ring_members: 0,
            ring_generation: None,
        }
    }

    /// The monitored members.
    #[cfg(test)]
    pub fn monitors(&self) -> &[Monitor<H>] {
        &self.monitors
    }

    /// Forgets everything (the node stopped).
    pub fn clear(&mut self) {
        self.monitors.clear();
        self.ring.clear();
        self.ring_generation = None;
    }

    /// Recomputes the receivers from the ring: the members this node flags, then the next `k`
    /// members after `me` by hash that are not Down or Exiting, then, room permitting, the
    /// Down and Exiting members among the next `k` of all members. New receivers
    /// get a fresh detector; dropped receivers are forgotten only while they look available,
    /// so a crashed member keeps its monitor until it is removed. `generation` identifies the
    /// state of `g`: the ring is recomputed only when it moved.
    #[allow(clippy::too_many_arguments)]
    pub fn update<const M: usize, const R: usize>(
        &mut self,
        now: Instant,
        g: &Gossip<M, R>,
        generation: u64,
        me: &UniqueAddress,
        k: usize,
        s: &DetectorSettings,
        expected_response_after: Duration,
    ) {
        // Indices are valid only for the member list they were computed from; the length
        // check guards against a caller passing a stale generation.
        if self.ring_generation != Some(generation)
            || usize::from(self.ring_members) != g.members().len()
        {
            self.ring = successors(g, me);
            self.ring_members = g.members().len() as u16;
            self.ring_generation = Some(generation);
        }
        let ring: heapless::Vec<(UniqueAddress, bool), { MAX_MONITORED * 2 }> = self
            .ring
            .iter()
            .filter_map(|i| g.members().get(usize::from(*i)))
            .map(|m| (m.address, crate::downing::downable(m.status)))
            .collect();
        let mut want: heapless::Vec<UniqueAddress, MAX_MONITORED> = heapless::Vec::new();
        // Members this node itself flags come first, whatever the ring says now: only this
        // node's detector can take its verdict back, and dropping one would flip it to
        // reachable without evidence (a flapping member that keeps a partition unstable).
        // The price, during a large partition: fewer of the k reachable successors (at least
        // one) are watched by this node until the flagged ones are downed and removed.
        // Down members this node flags stay watched until removed: when the network heals,
        // seeing them again is what lets this node gossip their Down to them.
        for r in g.reachability().rows_of(me) {
            if r.status == ReachabilityStatus::Unreachable
                && g.is_member(&r.subject)
                && want.len() + 1 < MAX_MONITORED
            {
                let _ = want.push(r.subject);
            }
        }
        // Then the k nearest ring successors, reachable or not. Pekko walks past unreachable
        // successors until it has k reachable ones; during a large partition that moves the
        // monitors on every detection round, and each round restarts the split brain
        // resolver's stable-after. A fixed set is detected in one round; members of the other
        // side that no monitor of this side watches never see this side's state, and the
        // resolver counts them as the other side once its confirmation round times out.
        // Down and Exiting members are on their way out: they come last, so they never take
        // the slot of a member whose reachability still matters (campaign seed 24082: a lone
        // node watched a downed member instead of one of the other side, flagged that one 3 s
        // late, and down-all-when-unstable overtook its decision). They are still watched as
        // room allows, so that one that stops without its `Departed` arriving is flagged and
        // removed.
        let live = ring.iter().filter(|(_, live)| *live).take(k);
        let leaving = ring.iter().take(k).filter(|(_, live)| !*live);
        for (a, _) in live.chain(leaving) {
            if !want.contains(a) && want.push(*a).is_err() {
                break;
            }
        }
        // Keep monitors that are still wanted; keep others only while they look unavailable
        // (so someone sees them come back) and only as room allows: wanted members first.
        self.monitors.retain(|m| {
            want.contains(&m.subject)
                || (g.is_member(&m.subject) && !m.detector.is_available(now, s))
        });
        for a in want.iter() {
            if self.monitors.iter().any(|m| m.subject == *a) {
                continue;
            }
            if self.monitors.is_full() {
                // Evict a stale receiver that is not wanted any more.
                match self
                    .monitors
                    .iter()
                    .position(|m| !want.contains(&m.subject))
                {
                    Some(i) => {
                        self.monitors.swap_remove(i);
                    }
                    None => break,
                }
            }
            let _ = self.monitors.push(Monitor {
                subject: *a,
                detector: Detector::new(s.kind),
                first_expected_at: now + expected_response_after,
                next_seq: 0,
                sent: 0,
                last_seq: None,
                next_request_at: now,
                rtt_millis: None,
            });
        }
    }

    /// The heartbeat requests due at `now`: (destination, sequence number). A member is asked
    /// once per `interval`, or every `interval / 5` once its last response is more than 1.5
    /// intervals old.
    pub fn requests(
        &mut self,
        now: Instant,
        interval: Duration,
    ) -> impl Iterator<Item = (SocketAddr, u8)> + '_ {
        self.monitors
            .iter_mut()
            .filter(move |m| m.next_request_at <= now)
            .map(move |m| {
                let late = m
                    .detector
                    .last_heartbeat()
                    .is_some_and(|t| now - t > interval + interval / 2);
                m.next_request_at = now + if late { interval / 5 } else { interval };
                let seq = m.next_seq;
                m.next_seq = m.next_seq.wrapping_add(1);
                m.sent = m.sent.saturating_add(1);
                (m.subject.socket_addr(), seq)
            })
    }

    /// When the next request is due, if anything is monitored.
    pub fn next_request_at(&self) -> Option<Instant> {
        self.monitors.iter().map(|m| m.next_request_at).min()
    }

    /// A heartbeat response arrived from `from`. Feeds the detector if it answers a request
    /// newer than the last one answered (duplicates and stale reorderings are ignored) and
    /// comes from the monitored incarnation.
    pub fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        seq: u8,
        sent_millis: u16,
        tag: u16,
        s: &DetectorSettings,
    ) -> bool {
        let Some(m) = self
            .monitors
            .iter_mut()
            .find(|m| m.subject.same_address(from) && uid_tag(&m.subject) == tag)
        else {
            return false;
        };
        let newer = match m.last_seq {
            None => true,
            Some(last) => (seq.wrapping_sub(last) as i8) > 0,
        };
        // Only answers to one of the last (at most 127) requests actually sent count.
        let age = m.next_seq.wrapping_sub(seq);
        let sent_recently = age >= 1 && age <= m.sent.min(127);
        if !newer || !sent_recently {
            return false;
        }
        m.last_seq = Some(seq);
        m.rtt_millis = Some(wire_millis(now).wrapping_sub(sent_millis));
        // Answers to the fast probes of a late member can arrive in a burst; the first proves
        // it alive, the rest would only fill the history with short intervals.
        let burst = m
            .detector
            .last_heartbeat()
            .is_some_and(|t| now - t < s.heartbeat_interval / 2);
        if !burst {
            m.detector.heartbeat(now, s);
        }
        true
    }

    /// This node did not run for `gap` before `now` (its own timers fired that late): every
    /// detector discounts the gap, and every monitored member is asked at once. Without it a
    /// node waking from a pause would blame its peers for the silence it caused.
    pub fn discount(&mut self, now: Instant, gap: Duration) {
        for m in self.monitors.iter_mut() {
            m.detector.discount(now, gap);
            m.first_expected_at = (m.first_expected_at + gap).max(now);
            m.next_request_at = now;
        }
    }

    /// Starts detectors whose first response is overdue, then reports each monitored member's
    /// availability.
    pub fn reap<'a>(
        &'a mut self,
        now: Instant,
        s: &'a DetectorSettings,
    ) -> impl Iterator<Item = (UniqueAddress, Verdict)> + 'a {
        for m in self.monitors.iter_mut() {
            if !m.detector.is_monitoring() && now >= m.first_expected_at {
                m.detector.heartbeat(now, s);
            }
        }
        self.monitors.iter().map(move |m| {
            let verdict = if !m.detector.is_available(now, s) {
                Verdict::Unavailable
            } else if m.last_seq.is_some() {
                Verdict::Answering
            } else {
                Verdict::NotYetHeard
            };
            (m.subject, verdict)
        })
    }

    /// The inter-arrival mean and standard deviation (microseconds) of each monitored
    /// member's detector, where it keeps them (see [`Detector::intervals`]).
    pub fn intervals(&self) -> impl Iterator<Item = (UniqueAddress, Option<(f64, f64)>)> + '_ {
        self.monitors
            .iter()
            .map(|m| (m.subject, m.detector.intervals()))
    }

    /// Stats per monitored member.
    pub fn stats<'a>(
        &'a self,
        now: Instant,
        s: &'a DetectorSettings,
    ) -> impl Iterator<Item = MonitorStats> + 'a {
        self.monitors.iter().map(move |m| MonitorStats {
            subject: m.subject,
            phi: m.detector.suspicion(now, s),
            last_heartbeat_age: m.detector.last_heartbeat().map(|t| now - t),
            rtt: m.rtt_millis.map(|ms| Duration::from_millis(u64::from(ms))),
            available: m.detector.is_available(now, s),
        })
    }
}

/// The members after `me` on the ring (by stable hash, ties by address), nearest first, at
/// most [`MAX_MONITORED`] · 2 of them. O(members · that bound), no allocation.
fn successors<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    me: &UniqueAddress,
) -> heapless::Vec<u16, { MAX_MONITORED * 2 }> {
    let origin = (me.stable_hash(), *me);
    // Clockwise distance from me; the key includes the address so ties are broken everywhere
    // the same way.
    let dist = |a: &UniqueAddress| (a.stable_hash().wrapping_sub(origin.0), *a);
    let mut best: heapless::Vec<((u64, UniqueAddress), u16), { MAX_MONITORED * 2 }> =
        heapless::Vec::new();
    for (i, m) in g.members().iter().enumerate() {
        if m.address == *me {
            continue;
        }
        let d = dist(&m.address);
        if best.is_full() && best.last().is_some_and(|(x, _)| *x <= d) {
            continue;
        }
        if best.is_full() {
            best.pop();
        }
        let at = best.partition_point(|(x, _)| *x < d);
        let _ = best.insert(at, (d, i as u16));
    }
    best.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AppVersion, Member, MemberStatus, RoleSet};
    use crate::reachability::ReachabilityStatus;

    type G = Gossip<32, 32>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1000 + u64::from(i))
    }

    fn gossip(count: u8) -> G {
        let mut g = G::new();
        for i in 1..=count {
            g.add_member(Member::joining(n(i), RoleSet::new(), AppVersion::default()))
                .unwrap();
        }
        g
    }

    /// A stand-in generation that changes whenever the test's gossip does.
    fn gen(g: &G) -> u64 {
        g.version_digest() ^ g.reachability().records().len() as u64
    }

    /// Node `me` (re)derives whom it monitors, `k` at a time.
    fn watch(h: &mut Heartbeats<8>, now: Instant, g: &G, me: u8, k: usize) {
        h.update(now, g, gen(g), &n(me), k, &S, Duration::from_secs(1));
    }

    const S: DetectorSettings = DetectorSettings {
        kind: crate::phi::DetectorKind::Phi,
        threshold: 8.0,
        min_std_deviation: Duration::from_millis(100),
        acceptable_heartbeat_pause: Duration::from_secs(3),
        heartbeat_interval: Duration::from_secs(1),
        formula: crate::phi::PhiFormula::Exact,
        monitored_by_nr_of_members: 5,
        expected_response_after: Duration::from_secs(1),
    };

    #[test]
    fn every_member_is_monitored_by_exactly_k_others() {
        let g = gossip(20);
        let mut watched_by = [0u32; 21];
        for i in 1..=20 {
            let mut h = Heartbeats::<8>::new();
            watch(&mut h, Instant::ZERO, &g, i, 5);
            assert_eq!(h.monitors().len(), 5);
            for m in h.monitors() {
                assert_ne!(m.subject, n(i));
                watched_by[(m.subject.uid() - 1000) as usize] += 1;
            }
        }
        assert!(watched_by[1..].iter().all(|c| *c == 5), "{watched_by:?}");
    }

    /// Seed 24082's shape: a downed member not yet removed took one of the k ring slots, and a
    /// member whose reachability mattered went unwatched. Down and Exiting members come after
    /// the live ones, still watched as room allows (a downed node that stops without its
    /// `Departed` arriving must be flagged to be removed).
    #[test]
    fn down_and_exiting_members_take_no_ring_slot() {
        let mut g = gossip(4);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 2);
        let first: heapless::Vec<UniqueAddress, 8> =
            h.monitors().iter().map(|m| m.subject).collect();
        g.set_status(&first[0], MemberStatus::Down).unwrap();
        g.set_status(&first[1], MemberStatus::Up).unwrap();
        g.set_status(&first[1], MemberStatus::Leaving).unwrap();
        g.set_status(&first[1], MemberStatus::Exiting).unwrap();
        g.bump(n(1), true).unwrap();
        watch(&mut h, Instant::from_micros(10_000_000), &g, 1, 2);
        let now: heapless::Vec<UniqueAddress, 8> = h.monitors().iter().map(|m| m.subject).collect();
        // The only live member left comes first; the two on their way out are still watched
        // after it (room allowing), so one that stops unannounced is flagged and removed.
        assert_eq!(now.len(), 3, "{now:?}");
        let live = (2..=4).map(n).find(|a| !first.contains(a)).unwrap();
        assert!(
            now.contains(&live),
            "not among the first 2 of the ring, but the only live one"
        );
        assert!(first.iter().all(|f| now.contains(f)));
    }

    #[test]
    fn small_clusters_monitor_everyone_else() {
        let g = gossip(3);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 5);
        assert_eq!(h.monitors().len(), 2);
    }

    #[test]
    fn the_ring_successors_stay_monitored_whatever_their_reachability() {
        let mut g = gossip(20);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 3);
        let before: heapless::Vec<UniqueAddress, 8> =
            h.monitors().iter().map(|m| m.subject).collect();
        // Someone flags the first successor: it is still one of the three (a fixed set is
        // detected in one round during a partition).
        g.change_reachability_for_tests(n(2), before[0], ReachabilityStatus::Unreachable)
            .unwrap();
        watch(&mut h, Instant::ZERO, &g, 1, 3);
        let after: heapless::Vec<UniqueAddress, 8> =
            h.monitors().iter().map(|m| m.subject).collect();
        assert_eq!(before, after);
        // A member this node flags itself is monitored even when it is no successor.
        let other = (2..=20)
            .map(n)
            .find(|a| !before.contains(a))
            .expect("a non-successor");
        g.change_reachability_for_tests(n(1), other, ReachabilityStatus::Unreachable)
            .unwrap();
        watch(&mut h, Instant::ZERO, &g, 1, 3);
        assert_eq!(h.monitors().len(), 4);
        assert!(h.monitors().iter().any(|m| m.subject == other));
    }

    /// A new monitor is no evidence that its member is back: until it answers, the verdict is
    /// `NotYetHeard`, and a flag on the member stays (found by the resolution bench: a silent
    /// member a winning decision downed and flagged lost its flag to a fresh monitor, and was
    /// never removed).
    #[test]
    fn only_an_answer_says_a_member_is_answering() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 5);
        let verdicts =
            |h: &mut Heartbeats<8>, ms| h.reap(Instant::from_millis(ms), &S).next().unwrap().1;
        assert_eq!(verdicts(&mut h, 500), Verdict::NotYetHeard);
        assert_eq!(verdicts(&mut h, 1_500), Verdict::NotYetHeard);
        let (to, seq) = h
            .requests(Instant::from_millis(1_500), S.heartbeat_interval)
            .next()
            .unwrap();
        let sent = wire_millis(Instant::from_millis(1_500));
        assert!(h.on_response(
            Instant::from_millis(1_510),
            to,
            seq,
            sent,
            uid_tag(&n(2)),
            &S
        ));
        assert_eq!(verdicts(&mut h, 1_600), Verdict::Answering);
    }

    #[test]
    fn responses_feed_the_detector_once_and_measure_rtt() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 5);
        let (to, seq) = h
            .requests(Instant::ZERO, S.heartbeat_interval)
            .next()
            .unwrap();
        assert_eq!(to, n(2).socket_addr());
        let now = Instant::from_millis(7);
        let sent = wire_millis(Instant::ZERO);
        assert!(
            !h.on_response(now, to, seq, sent, uid_tag(&n(2)) ^ 1, &S),
            "other incarnation"
        );
        assert!(
            !h.on_response(now, to, seq.wrapping_add(1), sent, uid_tag(&n(2)), &S),
            "never sent"
        );
        assert!(h.on_response(now, to, seq, sent, uid_tag(&n(2)), &S));
        assert!(
            !h.on_response(now, to, seq, sent, uid_tag(&n(2)), &S),
            "duplicate"
        );
        let st = h.stats(now, &S).next().unwrap();
        assert_eq!(st.rtt, Some(Duration::from_millis(7)));
        assert_eq!(st.last_heartbeat_age, Some(Duration::ZERO));
    }

    #[test]
    fn a_late_member_is_probed_faster_until_it_answers() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        let i = S.heartbeat_interval;
        let at = |ms: u64| Instant::from_millis(ms);
        watch(&mut h, at(0), &g, 1, 5);
        let (to, seq) = h.requests(at(0), i).next().unwrap();
        assert!(h.on_response(at(5), to, seq, 0, uid_tag(&n(2)), &S));
        assert_eq!(h.next_request_at(), Some(at(1_000)));
        assert_eq!(h.requests(at(1_000), i).count(), 1); // lost
        assert_eq!(h.next_request_at(), Some(at(2_000)));
        assert_eq!(h.requests(at(2_000), i).count(), 1); // 1.995 s silent: late
        assert_eq!(h.next_request_at(), Some(at(2_200)));
        let (_, seq) = h.requests(at(2_200), i).next().unwrap();
        assert!(h.on_response(at(2_210), to, seq, 0, uid_tag(&n(2)), &S));
        assert_eq!(
            h.requests(at(2_400), i).count(),
            1,
            "last probe before the answer"
        );
        assert_eq!(
            h.next_request_at(),
            Some(at(3_400)),
            "back to the normal pace"
        );
    }

    #[test]
    fn a_member_that_never_answers_is_still_detected() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 5);
        let at = |s: u64| Instant::from_millis(s);
        assert!(h.reap(at(500), &S).all(|(_, v)| v != Verdict::Unavailable));
        assert!(
            h.reap(at(1_000), &S)
                .all(|(_, v)| v != Verdict::Unavailable),
            "first heartbeat synthesised"
        );
        // Bootstrapped at 1 s: μ = 1 s + 3 s pause, σ = 250 ms → suspected after ≈ 6.4 s.
        assert!(h
            .reap(at(6_300), &S)
            .all(|(_, v)| v != Verdict::Unavailable));
        assert!(h
            .reap(at(6_500), &S)
            .all(|(_, v)| v == Verdict::Unavailable));
    }
}
