//! Who monitors whom (the heartbeat ring) and the per-monitored-member heartbeat state.
//!
//! Every node orders all members by a stable hash of their identity, so the order is the same
//! everywhere yet unrelated to addresses (neighbours are unlikely to share a rack). A node
//! monitors its `monitored-by-nr-of-members / 2` nearest neighbours on each side of that ring,
//! reachable or not, so the relation is symmetric: the members a node monitors are the members
//! that monitor it. Members it flags itself stay monitored until they answer again, so it can
//! see them come back.
//!
//! Symmetry is what lets one message do the work of two. Pekko sends a request and gets a
//! response per monitor per interval; here each neighbour sends one heartbeat per interval
//! ([`Beat`]), whose arrival feeds the receiver's detector and which echoes the receiver's own
//! latest heartbeat with how long it was held, so the round trip is still measured. A link that
//! fails in one direction is still seen: the side that stops receiving flags the other. With 4
//! monitors per member a node sends 4 heartbeats a second, where request and response with 5
//! monitors took 10 messages; steady-state CPU follows the count of messages and wake-ups, so
//! every regular heartbeat goes out on one tick.
//!
//! Fewer monitors make it likelier that all of a member's monitors are on the far side of a
//! partition, so that nobody on this side flags it (with 4 monitors, one of ten cut-off members
//! in `members_behind_a_partition_stay_unreachable_until_it_heals`, seed 0). Such a member
//! stays reachable here and never sees this side's state; the resolver counts it as the other
//! side once its confirmation round times out, and the gossip stops preferring it once it has
//! ignored a few sends (`crate::recent`). Before that rule, this side's gossip went to it round
//! after round until a member of this side heard no gossip for 30 rounds and stopped itself
//! as removed (`Node::ignored`), which is why the default was 6 for a while.
//!
//! A monitored member that has not been heard from for 1.5 heartbeat intervals (or not yet) is
//! sent heartbeats five times faster, each asking for an answer at once ([`Beat::reply`]), which
//! every node gives, monitored or not (a node just added must be answerable before its Welcome
//! arrives, and views of the ring differ while a change spreads). Loss of single datagrams
//! then costs a few extra bytes instead of a false verdict, while a member that really crashed
//! is suspected exactly as soon as before (the detector's clock runs from the last arrival
//! either way). A stop-the-world pause or a lossy link has to swallow every one of those
//! probes, not just four heartbeats, to cause an Unreachable.

use core::net::SocketAddr;
use core::time::Duration;

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::phi::{Detector, DetectorSettings, FailureDetector};
use crate::reachability::ReachabilityStatus;
use crate::time::{duration_of_millis, fraction, Instant};
pub use crate::wire::{Beat, Echo};

/// Most members one node monitors at once: the configured number plus unreachable ones kept.
pub const MAX_MONITORED: usize = 8;

/// A regular heartbeat carries its echo every this many: the round trip is for operators, not
/// the detector, and without the echo on most of them a node's steady traffic stays within 100
/// bytes a second even with 6 monitors.
const ECHO_EVERY: u8 = 4;

/// Ring neighbours kept on each side: enough to walk past a few Down or Exiting members.
const SIDE: usize = MAX_MONITORED;

/// The low 16 bits of a uid, sent in heartbeats so that a heartbeat from a new incarnation on
/// the same address does not keep the old one alive.
pub fn uid_tag(a: &UniqueAddress) -> u16 {
    a.uid() as u16
}

/// What one node knows about one member it monitors.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor<const H: usize> {
    /// The monitored member.
    pub subject: UniqueAddress,
    detector: Detector<H>,
    /// Expect the first heartbeat by then; if none came, start the detector anyway so a member
    /// that never sends is still detected.
    first_expected_at: Instant,
    /// The latest heartbeat taken from the member: its counter, its send time and when it
    /// arrived (echoed back in this node's next heartbeat).
    last: Option<(u16, u16, Instant)>,
    /// The next heartbeat to it: the node's next tick, or sooner while it is probed.
    next_beat_at: Instant,
    /// Latest round trip in milliseconds (small: devices keep several monitors).
    rtt_millis: Option<u16>,
    /// Heartbeats sent to it, wrapping ([`ECHO_EVERY`]).
    sent: u8,
    /// Its index in the member list of [`Heartbeats::index_generation`]: a heartbeat's sender
    /// and a verdict's subject are found without a search over the members.
    index: u16,
}

impl<const H: usize> Monitor<H> {
    /// Its member index, if `current`: the indices were taken from the state the caller
    /// holds.
    fn index_if(&self, current: bool) -> Option<usize> {
        (current && self.index != u16::MAX).then_some(usize::from(self.index))
    }
}

/// Read-only view of a monitored member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorStats {
    /// The monitored member.
    pub subject: UniqueAddress,
    /// Current suspicion (phi for the phi detector).
    pub phi: f64,
    /// Time since the last heartbeat from the member, if one arrived.
    pub last_heartbeat_age: Option<Duration>,
    /// Round-trip time, from the latest echo of this node's heartbeat.
    pub rtt: Option<Duration>,
    /// False once the detector suspects the member.
    pub available: bool,
}

/// What a monitor says of its member (see [`Heartbeats::reap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The detector suspects it.
    Unavailable,
    /// Available, and it has been heard from by this monitor.
    Answering,
    /// Available only because a new monitor has not waited long enough: no evidence either
    /// way, so a flag stays as it is.
    NotYetHeard,
}

/// The heartbeat state of one node: the members it monitors, at most [`MAX_MONITORED`].
#[derive(Debug, Clone, Default)]
pub struct Heartbeats<const H: usize> {
    monitors: heapless::Vec<Monitor<H>, MAX_MONITORED>,
    /// The nearest ring neighbours, successors then predecessors, as indices into the gossip's
    /// members, recomputed only when the membership state changed (indices stay valid until
    /// then). Indices, not addresses, to keep the device preset small.
    ring: heapless::Vec<u16, { SIDE * 2 }>,
    /// How many of `ring` are successors.
    ring_successors: u8,
    ring_members: u16,
    ring_generation: Option<u64>,
    /// Counts every heartbeat this node sends, to anyone ([`Beat::seq`]).
    seq: u16,
    /// When every monitored member gets its regular heartbeat: one tick for all of them, so
    /// a node wakes once per interval rather than once per neighbour.
    next_tick: Instant,
    /// The state the monitors' member indices belong to.
    index_generation: Option<u64>,
    /// The state for which the monitors are exactly the wanted members: until it moves,
    /// [`Heartbeats::update`] has nothing to do.
    settled: Option<u64>,
}

/// Milliseconds of `now`, wrapping: enough to measure round trips shorter than a minute.
pub fn wire_millis(now: Instant) -> u16 {
    now.millis_since(Instant::ZERO) as u16
}

impl<const H: usize> Heartbeats<H> {
    /// Nothing monitored.
    pub const fn new() -> Self {
        Heartbeats {
            monitors: heapless::Vec::new(),
            ring: heapless::Vec::new(),
            ring_successors: 0,
            ring_members: 0,
            ring_generation: None,
            seq: 0,
            next_tick: Instant::ZERO,
            index_generation: None,
            settled: None,
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
        self.index_generation = None;
        self.settled = None;
    }

    /// Recomputes the neighbours from the ring: the members this node flags, then the nearest
    /// `k / 2` members on each side of `me` that are not Down or Exiting, then, room
    /// permitting, the Down and Exiting members among the nearest `k / 2` of all members on
    /// each side. New neighbours get a fresh detector; dropped ones are forgotten only while
    /// they look available, so a crashed member keeps its monitor until it is removed.
    /// `generation` identifies the state of `g`: the ring is recomputed only when it moved.
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
        if self.settled == Some(generation) && usize::from(self.ring_members) == g.members().len() {
            return;
        }
        // Indices are valid only for the member list they were computed from; the length
        // check guards against a caller passing a stale generation.
        if self.ring_generation != Some(generation)
            || usize::from(self.ring_members) != g.members().len()
        {
            let (ring, successors) = neighbours(g, me);
            self.ring = ring;
            self.ring_successors = successors as u8;
            self.ring_members = g.members().len() as u16;
            self.ring_generation = Some(generation);
        }
        let mut want: heapless::Vec<UniqueAddress, MAX_MONITORED> = heapless::Vec::new();
        // Members this node itself flags come first, whatever the ring says now: only this
        // node's detector can take its verdict back, and dropping one would flip it to
        // reachable without evidence (a flapping member that keeps a partition unstable).
        // The price, during a large partition: fewer of the k reachable neighbours (at least
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
        // Then the nearest neighbours, reachable or not. Pekko walks past unreachable
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
        // removed. Nearest first, alternating sides, so a full table keeps the closest.
        let j = k.div_ceil(2);
        let (after, before) = self.ring.split_at(usize::from(self.ring_successors));
        // The `n`-th member of a side (nearest first) that is live, or that is on its way out
        // among the nearest `j` of all.
        let nth = |side: &[u16], live: bool, n: usize| {
            let reach = if live { side.len() } else { j };
            side.iter()
                .take(reach)
                .filter_map(|i| g.members().get(usize::from(*i)))
                .filter(|m| crate::downing::downable(m.status) == live)
                .nth(n)
                .map(|m| m.address)
        };
        'fill: for live in [true, false] {
            for n in 0..j {
                for side in [after, before] {
                    let Some(a) = nth(side, live, n) else {
                        continue;
                    };
                    if !want.contains(&a) && want.push(a).is_err() {
                        break 'fill;
                    }
                }
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
                // Evict a stale monitor that is not wanted any more.
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
                last: None,
                next_beat_at: now,
                rtt_millis: None,
                sent: 0,
                index: g.index_of(a).map_or(u16::MAX, |i| i as u16),
            });
        }
        // Indices move only when the state does: retaken once per state, not per interval.
        if self.index_generation != Some(generation) {
            for m in self.monitors.iter_mut() {
                m.index = g.index_of(&m.subject).map_or(u16::MAX, |i| i as u16);
            }
            self.index_generation = Some(generation);
        }
        // Nothing kept beyond the wanted members (those depend on time): the same state
        // wants the same members.
        let exact = self.monitors.len() == want.len()
            && self.monitors.iter().all(|m| want.contains(&m.subject));
        self.settled = exact.then_some(generation);
    }

    /// The heartbeats due at `now`, each with its destination. Every monitored member gets
    /// one per `interval`, all on one tick; one not heard from for 1.5 intervals, or not yet,
    /// gets one every `interval / 5` asking for an answer. Those asking, and every
    /// [`ECHO_EVERY`]th, carry the echo of the member's latest heartbeat.
    pub fn beats(
        &mut self,
        now: Instant,
        interval: Duration,
        me: &UniqueAddress,
    ) -> impl Iterator<Item = (SocketAddr, Beat)> + '_ {
        let tag = uid_tag(me);
        let tick = self.next_tick <= now;
        if tick {
            self.next_tick = now + interval;
        }
        let next_tick = self.next_tick;
        let seq = &mut self.seq;
        self.monitors
            .iter_mut()
            .filter(move |m| tick || m.next_beat_at <= now)
            .filter_map(move |m| {
                let late = match m.detector.last_heartbeat() {
                    Some(t) => now - t > interval + fraction(interval, 2),
                    None => true,
                };
                // Due at or before the last tick: a regular heartbeat the caller had no room
                // for then (it takes as many as its outbox holds).
                let missed = m.next_beat_at + interval <= next_tick;
                m.next_beat_at = if late {
                    now + fraction(interval, 5)
                } else {
                    next_tick
                };
                if !tick && !late && !missed {
                    // Heard from since it was last probed: back to the tick.
                    return None;
                }
                *seq = seq.wrapping_add(1);
                let reply = late || m.last.is_none();
                let with_echo = reply || m.sent % ECHO_EVERY == 0;
                m.sent = m.sent.wrapping_add(1);
                let beat = Beat {
                    seq: *seq,
                    sent: wire_millis(now),
                    tag,
                    reply,
                    echo: if with_echo { echo(m.last, now) } else { None },
                };
                Some((m.subject.socket_addr(), beat))
            })
    }

    /// The answer to a heartbeat that asked for one, whoever sent it: `beat` echoed at once.
    /// The regular heartbeats keep their pace (one timer for all of them).
    pub fn answer(&mut self, now: Instant, beat: &Beat, me: &UniqueAddress) -> Beat {
        self.seq = self.seq.wrapping_add(1);
        Beat {
            seq: self.seq,
            sent: wire_millis(now),
            tag: uid_tag(me),
            reply: false,
            echo: Some(Echo {
                sent: beat.sent,
                held: 0,
            }),
        }
    }

    /// When the next heartbeat is due, if anything is monitored.
    pub fn next_beat_at(&self) -> Option<Instant> {
        let first = self.monitors.iter().map(|m| m.next_beat_at).min()?;
        Some(first.min(self.next_tick))
    }

    /// A heartbeat arrived from `from`. Feeds the detector if it is newer than the last one
    /// taken from that member (duplicates and stale reorderings are ignored) and comes from
    /// the monitored incarnation; measures the round trip from its echo.
    pub fn on_beat(
        &mut self,
        now: Instant,
        from: SocketAddr,
        beat: &Beat,
        s: &DetectorSettings,
        generation: u64,
    ) -> Beaten {
        let Some(at) = self
            .monitors
            .iter()
            .position(|m| m.subject.same_address(from) && uid_tag(&m.subject) == beat.tag)
        else {
            return Beaten::default();
        };
        let index = self.monitors[at].index_if(self.index_generation == Some(generation));
        let m = &mut self.monitors[at];
        if let Some((last, ..)) = m.last {
            if (beat.seq.wrapping_sub(last) as i16) <= 0 {
                return Beaten {
                    taken: false,
                    index,
                };
            }
        }
        m.last = Some((beat.seq, beat.sent, now));
        if let Some(e) = beat.echo {
            let rtt = wire_millis(now).wrapping_sub(e.sent).wrapping_sub(e.held);
            // A hostile or garbled echo gives a "round trip" of most of a minute: not kept.
            if rtt < u16::MAX / 2 {
                m.rtt_millis = Some(rtt);
            }
        }
        // Answers to the fast probes of a late member can arrive in a burst; the first proves
        // it alive, the rest would only fill the history with short intervals.
        let burst = m
            .detector
            .last_heartbeat()
            .is_some_and(|t| now - t < fraction(s.heartbeat_interval, 2));
        if !burst {
            m.detector.heartbeat(now, s);
        }
        Beaten { taken: true, index }
    }

    /// This node did not run for `gap` before `now` (its own timers fired that late): every
    /// detector discounts the gap, and every monitored member is sent a heartbeat at once.
    /// Without it a node waking from a pause would blame its peers for the silence it caused.
    pub fn discount(&mut self, now: Instant, gap: Duration) {
        for m in self.monitors.iter_mut() {
            m.detector.discount(now, gap);
            m.first_expected_at = (m.first_expected_at + gap).max(now);
            m.next_beat_at = now;
        }
        self.next_tick = now;
    }

    /// Starts detectors whose first heartbeat is overdue, then reports each monitored member's
    /// availability, with its member index in the state `generation` where known.
    pub fn reap<'a>(
        &'a mut self,
        now: Instant,
        s: &'a DetectorSettings,
        generation: u64,
    ) -> impl Iterator<Item = (UniqueAddress, Verdict, Option<usize>)> + 'a {
        for m in self.monitors.iter_mut() {
            if !m.detector.is_monitoring() && now >= m.first_expected_at {
                m.detector.heartbeat(now, s);
            }
        }
        let indexed = self.index_generation == Some(generation);
        self.monitors.iter().map(move |m| {
            let verdict = if !m.detector.is_available(now, s) {
                Verdict::Unavailable
            } else if m.last.is_some() {
                Verdict::Answering
            } else {
                Verdict::NotYetHeard
            };
            (m.subject, verdict, m.index_if(indexed))
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
            rtt: m.rtt_millis.map(|ms| duration_of_millis(u64::from(ms))),
            available: m.detector.is_available(now, s),
        })
    }
}

/// What [`Heartbeats::on_beat`] did with a heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Beaten {
    /// It fed the sender's detector.
    pub taken: bool,
    /// The sender is a monitored member at this index of the current member list.
    pub index: Option<usize>,
}

/// The echo of the latest heartbeat taken from a member, sent back in this node's next one.
fn echo(last: Option<(u16, u16, Instant)>, now: Instant) -> Option<Echo> {
    last.map(|(_, sent, at)| Echo {
        sent,
        held: u16::try_from(now.millis_since(at)).unwrap_or(u16::MAX),
    })
}

/// The members nearest to `me` on the ring (by stable hash, ties by address): up to [`SIDE`]
/// successors, nearest first, then up to [`SIDE`] predecessors, nearest first; and how many
/// are successors. O(members · that bound), no allocation.
fn neighbours<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    me: &UniqueAddress,
) -> (heapless::Vec<u16, { SIDE * 2 }>, usize) {
    let origin = me.stable_hash();
    // Distances from me, clockwise and anticlockwise; the key includes the address so ties
    // are broken everywhere the same way.
    type Best = heapless::Vec<((u64, UniqueAddress), u16), SIDE>;
    fn keep(best: &mut Best, d: (u64, UniqueAddress), i: u16) {
        if best.is_full() {
            if best.last().is_some_and(|(x, _)| *x <= d) {
                return;
            }
            best.pop();
        }
        let at = best.partition_point(|(x, _)| *x < d);
        let _ = best.insert(at, (d, i));
    }
    let (mut after, mut before) = (Best::new(), Best::new());
    for (i, m) in g.members().iter().enumerate() {
        if m.address == *me {
            continue;
        }
        let h = m.address.stable_hash();
        keep(&mut after, (h.wrapping_sub(origin), m.address), i as u16);
        keep(&mut before, (origin.wrapping_sub(h), m.address), i as u16);
    }
    let successors = after.len();
    let ring = after.into_iter().chain(before).map(|(_, i)| i).collect();
    (ring, successors)
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
        monitored_by_nr_of_members: 4,
        expected_response_after: Duration::from_secs(1),
    };

    /// Each member is monitored by exactly `k` others, and those are the members it monitors
    /// (one heartbeat each way serves both sides).
    #[test]
    fn every_member_is_monitored_by_exactly_the_k_it_monitors() {
        let g = gossip(20);
        for k in [2, 4, 6] {
            let mut watches = [[false; 21]; 21];
            for i in 1..=20 {
                let mut h = Heartbeats::<8>::new();
                watch(&mut h, Instant::ZERO, &g, i, k);
                assert_eq!(h.monitors().len(), k);
                for m in h.monitors() {
                    assert_ne!(m.subject, n(i));
                    watches[usize::from(i)][(m.subject.uid() - 1000) as usize] = true;
                }
            }
            let pairs = (1..=20).flat_map(|a| (1..=20).map(move |b| (a, b)));
            for (a, b) in pairs {
                assert_eq!(watches[a][b], watches[b][a], "k {k}: {a} and {b}");
            }
            for a in 1..=20 {
                let by = watches.iter().filter(|w| w[a]).count();
                assert_eq!(by, k, "k {k}: member {a} monitored by {by}");
            }
        }
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
        watch(&mut h, Instant::ZERO, &g, 1, 4);
        assert_eq!(h.monitors().len(), 2);
        let g = gossip(5);
        watch(&mut h, Instant::ZERO, &g, 1, 4);
        assert_eq!(h.monitors().len(), 4);
    }

    #[test]
    fn the_ring_successors_stay_monitored_whatever_their_reachability() {
        let mut g = gossip(20);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 4);
        let before: heapless::Vec<UniqueAddress, 8> =
            h.monitors().iter().map(|m| m.subject).collect();
        // Someone flags the first neighbour: it is still one of the four (a fixed set is
        // detected in one round during a partition).
        g.change_reachability_for_tests(n(2), before[0], ReachabilityStatus::Unreachable)
            .unwrap();
        watch(&mut h, Instant::ZERO, &g, 1, 4);
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
        watch(&mut h, Instant::ZERO, &g, 1, 4);
        assert_eq!(h.monitors().len(), 5);
        assert!(h.monitors().iter().any(|m| m.subject == other));
    }

    /// Node 2's heartbeat to node 1, as node 2 would send it at `ms`.
    fn beat(seq: u16, ms: u64, reply: bool, echo: Option<Echo>) -> Beat {
        Beat {
            seq,
            sent: wire_millis(Instant::from_millis(ms)),
            tag: uid_tag(&n(2)),
            reply,
            echo,
        }
    }

    /// A new monitor is no evidence that its member is back: until it is heard from, the
    /// verdict is `NotYetHeard`, and a flag on the member stays (found by the resolution
    /// bench: a silent member a winning decision downed and flagged lost its flag to a fresh
    /// monitor, and was never removed).
    #[test]
    fn only_a_heartbeat_says_a_member_is_answering() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 4);
        let verdicts =
            |h: &mut Heartbeats<8>, ms| h.reap(Instant::from_millis(ms), &S, 0).next().unwrap().1;
        assert_eq!(verdicts(&mut h, 500), Verdict::NotYetHeard);
        assert_eq!(verdicts(&mut h, 1_500), Verdict::NotYetHeard);
        let to = n(2).socket_addr();
        let b = beat(1, 1_505, false, None);
        assert!(h.on_beat(Instant::from_millis(1_510), to, &b, &S, 0).taken);
        assert_eq!(verdicts(&mut h, 1_600), Verdict::Answering);
    }

    #[test]
    fn heartbeats_feed_the_detector_once_and_echoes_measure_rtt() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 4);
        let i = S.heartbeat_interval;
        let at = Instant::from_millis;
        let (to, mine) = h.beats(at(0), i, &n(1)).next().unwrap();
        assert_eq!(to, n(2).socket_addr());
        assert_eq!(mine.tag, uid_tag(&n(1)));
        assert!(mine.reply, "never heard from: asks for an answer");
        assert_eq!(mine.echo, None);
        // Node 2 held node 1's heartbeat for 3 ms; the message took 2 ms each way.
        let echo = Some(Echo {
            sent: mine.sent,
            held: 3,
        });
        let theirs = beat(5, 5, false, echo);
        let other = Beat {
            tag: uid_tag(&n(2)) ^ 1,
            ..theirs
        };
        assert!(
            !h.on_beat(at(7), to, &other, &S, 0).taken,
            "other incarnation"
        );
        let taken = h.on_beat(at(7), to, &theirs, &S, gen(&g));
        assert_eq!(
            taken,
            Beaten {
                taken: true,
                index: Some(1)
            },
            "the sender's member index, without a search"
        );
        assert!(!h.on_beat(at(7), to, &theirs, &S, 0).taken, "duplicate");
        assert!(
            !h.on_beat(at(8), to, &beat(4, 6, false, None), &S, 0).taken,
            "older"
        );
        let st = h.stats(at(7), &S).next().unwrap();
        assert_eq!(st.rtt, Some(Duration::from_millis(4)));
        assert_eq!(st.last_heartbeat_age, Some(Duration::ZERO));
        // The next heartbeat echoes node 2's, held since it arrived.
        // Heard from: one heartbeat per interval, on the tick, asking for nothing; every
        // fourth echoes node 2's latest, held since it arrived.
        assert_eq!(h.beats(at(200), i, &n(1)).count(), 0);
        assert_eq!(h.next_beat_at(), Some(at(1_000)));
        for t in 1..=4u16 {
            let ms = u64::from(t) * 1_000;
            assert!(
                h.on_beat(at(ms - 10), to, &beat(5 + t, ms - 12, false, None), &S, 0)
                    .taken
            );
            let (_, next) = h.beats(at(ms), i, &n(1)).next().unwrap();
            assert!(!next.reply);
            assert!(next.seq.wrapping_sub(mine.seq) as i16 > 0);
            let echo = Echo {
                sent: wire_millis(at(ms - 12)),
                held: 10,
            };
            assert_eq!(next.echo, (t == 4).then_some(echo), "{t}");
            assert_eq!(h.next_beat_at(), Some(at(ms + 1_000)));
        }
    }

    /// A heartbeat asking for an answer is answered at once by anyone, with its echo; the
    /// regular heartbeats keep one tick for every monitored member.
    #[test]
    fn a_heartbeat_that_asks_is_answered_at_once() {
        let g = gossip(3);
        let mut h = Heartbeats::<8>::new();
        let i = S.heartbeat_interval;
        let at = Instant::from_millis;
        let stranger = Beat {
            tag: uid_tag(&n(9)),
            ..beat(1, 10, true, None)
        };
        let a = h.answer(at(12), &stranger, &n(1));
        assert!(!a.reply);
        assert_eq!(
            a.echo,
            Some(Echo {
                sent: stranger.sent,
                held: 0
            })
        );
        assert_eq!(a.tag, uid_tag(&n(1)));
        watch(&mut h, at(0), &g, 1, 4);
        assert_eq!(h.beats(at(0), i, &n(1)).count(), 2);
        let asks = beat(1, 100, true, None);
        assert!(h.on_beat(at(101), n(2).socket_addr(), &asks, &S, 0).taken);
        // Node 3 was not heard from: still probed fast; node 2 at the next tick.
        assert_eq!(h.next_beat_at(), Some(at(200)));
        let probed: heapless::Vec<SocketAddr, 8> =
            h.beats(at(200), i, &n(1)).map(|(to, _)| to).collect();
        assert_eq!(probed, [n(3).socket_addr()]);
        assert_eq!(h.beats(at(1_000), i, &n(1)).count(), 2, "one tick for both");
    }

    /// A regular heartbeat the caller could not take at the tick (a full outbox) goes at the
    /// next call, not an interval later.
    #[test]
    fn a_heartbeat_without_room_at_the_tick_goes_next() {
        let g = gossip(3);
        let mut h = Heartbeats::<8>::new();
        let i = S.heartbeat_interval;
        let at = Instant::from_millis;
        watch(&mut h, at(0), &g, 1, 4);
        assert_eq!(h.beats(at(0), i, &n(1)).count(), 2);
        for (ms, from) in [(1, 2), (2, 3)] {
            let b = Beat {
                tag: uid_tag(&n(from)),
                ..beat(1, ms, false, None)
            };
            assert!(h.on_beat(at(ms), n(from).socket_addr(), &b, &S, 0).taken);
        }
        assert_eq!(h.beats(at(1_000), i, &n(1)).take(1).count(), 1);
        assert!(h.next_beat_at() <= Some(at(1_000)), "one left over, due");
        assert_eq!(h.beats(at(1_050), i, &n(1)).count(), 1);
        assert_eq!(h.beats(at(1_100), i, &n(1)).count(), 0);
        assert_eq!(h.next_beat_at(), Some(at(2_000)));
    }

    #[test]
    fn a_late_member_is_probed_faster_until_it_answers() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        let i = S.heartbeat_interval;
        let at = Instant::from_millis;
        let to = n(2).socket_addr();
        watch(&mut h, at(0), &g, 1, 4);
        assert_eq!(h.beats(at(0), i, &n(1)).count(), 1);
        assert_eq!(h.next_beat_at(), Some(at(200)), "not heard from yet");
        assert!(h.on_beat(at(5), to, &beat(1, 3, false, None), &S, 0).taken);
        assert_eq!(
            h.beats(at(200), i, &n(1)).count(),
            0,
            "heard from: the tick"
        );
        assert_eq!(h.next_beat_at(), Some(at(1_000)));
        assert_eq!(h.beats(at(1_000), i, &n(1)).count(), 1); // node 2's next is lost
        let (_, b) = h.beats(at(2_000), i, &n(1)).next().unwrap(); // 1.995 s silent: late
        assert!(b.reply);
        assert_eq!(h.next_beat_at(), Some(at(2_200)));
        let (_, b) = h.beats(at(2_200), i, &n(1)).next().unwrap();
        assert!(b.reply);
        assert!(
            h.on_beat(at(2_210), to, &beat(2, 2_208, false, None), &S, 0)
                .taken
        );
        assert_eq!(h.beats(at(2_400), i, &n(1)).count(), 0, "heard from again");
        assert_eq!(h.next_beat_at(), Some(at(3_000)), "back to the tick");
        let (_, b) = h.beats(at(3_000), i, &n(1)).next().unwrap();
        assert!(!b.reply);
    }

    #[test]
    fn a_member_that_never_answers_is_still_detected() {
        let g = gossip(2);
        let mut h = Heartbeats::<8>::new();
        watch(&mut h, Instant::ZERO, &g, 1, 5);
        let at = |s: u64| Instant::from_millis(s);
        assert!(h
            .reap(at(500), &S, 0)
            .all(|(_, v, _)| v != Verdict::Unavailable));
        assert!(
            h.reap(at(1_000), &S, 0)
                .all(|(_, v, _)| v != Verdict::Unavailable),
            "first heartbeat synthesised"
        );
        // Bootstrapped at 1 s: μ = 1 s + 3 s pause, σ = 250 ms → suspected after ≈ 6.4 s.
        assert!(h
            .reap(at(6_300), &S, 0)
            .all(|(_, v, _)| v != Verdict::Unavailable));
        assert!(h
            .reap(at(6_500), &S, 0)
            .all(|(_, v, _)| v == Verdict::Unavailable));
    }
}
