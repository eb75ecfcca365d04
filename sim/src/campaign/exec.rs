//! Replaying a [`Schedule`] deterministically under every oracle.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Duration;

use fjell_core::{
    Downing, Event, Instant, MemberStatus, NodeStatus, Reason, StopReason, Strategy, UniqueAddress,
};

use super::oracle::{Oracle, Violation};
use super::schedule::{Extra, Fault, Sbr, Schedule, Wait};
use crate::{addr_of, LinkConfig, Logged, NodeId, Sim};

/// Which check a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The independent oracle: two running nodes that each report themselves up have each
    /// reported the other's current incarnation downed or removed.
    SplitBrain,
    /// The simulator's own split-brain check ([`Sim::check_split_brain`]).
    SimSplitBrain,
    /// Another simulator invariant (statuses, gossip structure, agreement).
    SimInvariant,
    /// Any other panic (in the core or in the campaign itself).
    Panic,
    /// The initial cluster did not form within 60 s.
    Formation,
    /// A clean partition, injected into a calm cluster and held still past the bound, left a
    /// side that had not decided (its nodes stopped, or every other member downed).
    Undecided,
    /// A clean partition injected into a calm cluster was decided by down-all-when-unstable
    /// (`Reason::Unstable`) instead of on stability.
    UnstableDecision,
    /// A decision on a clean partition injected into a calm cluster came later than
    /// `stable-after` (plus [`DECISION_SLACK`]) after the decider's last reachability change —
    /// as when a graceful leave restarts the timer.
    LateDecision,
    /// A run whose only faults were pauses well under `acceptable-heartbeat-pause` saw an
    /// `UnreachableMember`.
    FalseUnreachable,
    /// A node of another cluster or protocol version became a member.
    ForeignMember,
    /// A node with the cluster's settings that was told to join gave up (or is still trying)
    /// 60 s after the final heal, although one of its seed nodes serves.
    JoinStuck,
    /// A node reported `JoinRefused` but the refusing node never reported
    /// `JoinRequestRefused` (for a refusal for capacity: no member did).
    SilentRefusal,
    /// A run at capacity ([`super::Kind::Capacity`]) left a running member that does not see
    /// convergence after the final heal, the settle period and [`WEDGE_GRACE`].
    Wedged,
    /// A node configured `leader-eligible = false` reported a downing decision, or a node
    /// reported such a node as its leader.
    FollowerLed,
}

impl Check {
    /// Every check.
    pub const ALL: [Check; 14] = [
        Check::SplitBrain,
        Check::SimSplitBrain,
        Check::SimInvariant,
        Check::Panic,
        Check::Formation,
        Check::Undecided,
        Check::UnstableDecision,
        Check::LateDecision,
        Check::FalseUnreachable,
        Check::ForeignMember,
        Check::JoinStuck,
        Check::SilentRefusal,
        Check::Wedged,
        Check::FollowerLed,
    ];
}

/// A failed run.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The check.
    pub check: Check,
    /// Virtual time.
    pub at: Duration,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at t={:?}: {}", self.check, self.at, self.detail)
    }
}

/// A run that passed every check.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Steps whose fault was applied (a fault naming a crashed node is skipped).
    pub faults: usize,
    /// `UnreachableMember` events.
    pub unreachable_events: usize,
    /// Downing decisions.
    pub decisions: usize,
    /// Of which down-all-when-unstable.
    pub unstable_decisions: usize,
    /// Held partitions checked for a decision.
    pub holds_checked: usize,
    /// Over the decisions on held partitions: the longest time from the decider's last
    /// reachability change to its decision, minus `stable-after`.
    pub max_decision_lag: Option<Duration>,
    /// Nodes serving (by their own reports) at the end.
    pub up_at_end: usize,
    /// Steps after which two up nodes had downed each other while one was still unsettled
    /// ([`super::oracle`]): counted, and checked to be gone after the final heal.
    pub unsettled_mutual_downs: usize,
    /// Runs with members that may not lead: held partitions with a side of only such
    /// members.
    pub follower_holds: usize,
    /// Nodes that stopped because they were cut off from every member that may lead.
    pub no_leader_stops: usize,
    /// Virtual time.
    pub virtual_time: Duration,
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Makes panics on threads inside [`replay`] silent (the failure is returned instead). Installs
/// a process-wide panic hook once that defers to the previous one everywhere else.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `schedule` and checks it: `Ok` with a summary, or the first failed check. Deterministic:
/// the same schedule gives the same result. Panics inside (simulator invariants) are caught and
/// returned as failures, silently.
pub fn replay(schedule: &Schedule) -> Result<Report, Failure> {
    match replay_with(schedule, true) {
        Err(mut f) if f.check == Check::SimSplitBrain => {
            // Cross-check the independent oracle: the same run without the simulator's check.
            match replay_with(schedule, false) {
                Err(g) if g.check == Check::SplitBrain => {
                    f.detail += &format!(" [the event-stream oracle agrees: {g}]");
                }
                other => {
                    f.detail += &format!(" [the event-stream oracle did not see it: {other:?}]");
                }
            }
            Err(f)
        }
        r => r,
    }
}

fn replay_with(schedule: &Schedule, sim_check: bool) -> Result<Report, Failure> {
    install_quiet_hook();
    let was = QUIET.with(|q| q.replace(true));
    let at = Cell::new(Duration::ZERO);
    let result = catch_unwind(AssertUnwindSafe(|| Run::new(schedule, &at, sim_check).go()));
    QUIET.with(|q| q.set(was));
    match result {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let check = if msg.starts_with("split brain at") {
                Check::SimSplitBrain
            } else if msg.starts_with("invariant violated") {
                Check::SimInvariant
            } else {
                Check::Panic
            };
            // The simulator's messages say when (`... at t=1.5s: ...`); else the last drain.
            let at = msg
                .split_once("t=")
                .and_then(|(_, rest)| rest.split_once("s:"))
                .and_then(|(secs, _)| secs.parse::<f64>().ok())
                .map_or(at.get(), Duration::from_secs_f64);
            Err(Failure {
                check,
                at,
                detail: msg,
            })
        }
    }
}

struct Hold {
    start: Instant,
    deadline: Instant,
    stable_after: Duration,
    /// The resolver's confirmation wait, which a decision may take on top of `stable_after`
    /// when the decider's side had not flagged every member of the other side.
    confirm_wait: Duration,
    slack: Duration,
    /// A member left gracefully during the hold.
    leaves: bool,
    /// The sides, each reduced to the nodes up at the start.
    sides: Vec<Vec<NodeId>>,
}

struct Run<'a> {
    s: &'a Schedule,
    sim: Sim,
    oracle: Oracle,
    at: &'a Cell<Duration>,
    hold: Option<Hold>,
    holds_checked: usize,
    follower_holds: usize,
    no_leader_stops: usize,
    max_lag: Option<Duration>,
    /// Only pauses well under the acceptable pause: no `UnreachableMember` allowed.
    pause_only: bool,
    /// Nodes with the cluster's settings told to join, with their seed nodes (latest only).
    joiners: Vec<(NodeId, Vec<NodeId>)>,
    lossy: HashSet<NodeId>,
    link: LinkConfig,
    paused_until: Instant,
    /// Until when failure detectors may still be judging with a history a pause or a loss
    /// burst stretched (see [`DETECTOR_MEMORY`]).
    disturbed_until: Instant,
    /// When links were last cut.
    last_cut: Instant,
    /// The latest run of pauses (of all nodes together): from, until.
    pauses: Option<(Instant, Instant)>,
    acceptable: Duration,
    /// Each node's strategy (`None`: another cluster).
    sbr_of: Vec<Option<Sbr>>,
    faults: usize,
    trace: bool,
}

/// How long after `stable-after` (counted from the decider's last reachability change) a
/// decision on a calm, held partition may come: the side has to see the state (a few gossip
/// rounds) and the leader acts on its next tick.
pub const DECISION_SLACK: Duration = Duration::from_secs(4);

/// The settle period the join check needs: a joiner retries every 10 s and a restarted node's
/// old incarnation is first downed and removed (up to `stable-after` twice).
pub const JOIN_SETTLE_MS: u64 = 60_000;

/// How long a pause or a loss burst keeps a cluster from counting as calm after it ended. A
/// silence just under the detection point is recorded in the phi detector's history (by design:
/// phi adapts to the jitter it sees), so detection of that peer is slower for a while, flags
/// spread out beyond a short stable-after, and down-all-when-unstable is then the right call
/// (seed 18029: a 4.0 s pause, then a partition 0.2 s later; the paused node was flagged 7 s
/// after the others). Sixty further samples dilute one such interval to a fraction of a second.
pub const DETECTOR_MEMORY: Duration = Duration::from_secs(60);

/// A cut mended within this long may have ended before any detector flagged it, and then
/// counts as a disturbance like a pause (seed 98377: a cut mended after 1.8 s, then a partition
/// a second later).
pub const SHORT_OUTAGE: Duration = Duration::from_secs(6);

const SLICE: Duration = Duration::from_millis(100);

/// How much longer than the settle period a member of a capacity run may take to converge.
pub const WEDGE_GRACE: Duration = Duration::from_secs(60);

impl<'a> Run<'a> {
    fn new(s: &'a Schedule, at: &'a Cell<Duration>, sim_check: bool) -> Self {
        let acceptable = s
            .params
            .config(s.params.sbr)
            .failure_detector
            .acceptable_heartbeat_pause;
        let pause_only = !s.steps.is_empty()
            && s.steps.iter().all(|st| {
                matches!(st.fault, Fault::Pause(_, ms)
                    if Duration::from_millis(ms) + Duration::from_millis(500) < acceptable)
            });
        let mut sim: Sim = Sim::new(s.seed);
        sim.quiet(true);
        sim.check_split_brain(sim_check);
        let link = s.params.profile.link();
        sim.set_default_link(link);
        Run {
            s,
            sim,
            oracle: Oracle::new(s.params.all().len()),
            at,
            hold: None,
            holds_checked: 0,
            follower_holds: 0,
            no_leader_stops: 0,
            max_lag: None,
            pause_only,
            joiners: Vec::new(),
            lossy: HashSet::new(),
            link,
            paused_until: Instant::ZERO,
            disturbed_until: Instant::ZERO,
            last_cut: Instant::ZERO,
            pauses: None,
            acceptable,
            sbr_of: s
                .params
                .all()
                .into_iter()
                .map(|i| match s.params.extra(i) {
                    None => Some(s.params.sbr),
                    Some(Extra::Joiner(sbr)) => Some(sbr),
                    Some(Extra::OtherVersion(_) | Extra::Stranger) => None,
                })
                .collect(),
            faults: 0,
            trace: std::env::var("FJELL_CAMPAIGN_TRACE").is_ok(),
        }
    }

    fn fail(&self, check: Check, detail: String) -> Failure {
        Failure {
            check,
            at: self.sim.elapsed(),
            detail,
        }
    }

    fn go(mut self) -> Result<Report, Failure> {
        let p = &self.s.params;
        for id in p.all() {
            let got = self.sim.add_node(p.config_of(id));
            debug_assert_eq!(got, id);
            self.oracle.boot(id, self.sim.node(id).address());
            match p.extra(id) {
                Some(Extra::OtherVersion(v)) => {
                    self.sim.set_wire_version(id, Some(v));
                    self.oracle.foreign.push(id);
                }
                Some(Extra::Stranger) => self.oracle.foreign.push(id),
                _ => {}
            }
        }
        let base: Vec<NodeId> = (0..p.nodes).collect();
        let seeds = p.seeds();
        for &i in &base {
            self.sim.join_seed_nodes(i, &seeds);
        }
        let formed = self.sim.run_until(Duration::from_secs(60), |s| {
            s.all_up(&base) && s.converged(&base)
        });
        // The pause check counts from here: formation may flag a slow joiner.
        let pause_only = std::mem::replace(&mut self.pause_only, false);
        self.drain()?;
        if let Err(e) = formed {
            return Err(self.fail(Check::Formation, e));
        }
        self.oracle.unreachable_events = 0;
        self.pause_only = pause_only;
        for (k, step) in self.s.steps.iter().enumerate() {
            self.oracle.mark();
            self.wait(step.wait)?;
            self.apply(k, &step.fault)?;
        }
        let tail = self.sim.now() + Duration::from_millis(self.s.tail_ms);
        self.advance(tail)?;
        self.hold = None;
        self.sim.heal();
        for n in std::mem::take(&mut self.lossy) {
            self.relink(n);
        }
        let end = self.sim.now() + Duration::from_millis(self.s.settle_ms);
        self.advance(end)?;
        self.final_checks()?;
        let unstable = self
            .oracle
            .decisions
            .iter()
            .filter(|d| d.reason == Reason::Unstable)
            .count();
        Ok(Report {
            faults: self.faults,
            unreachable_events: self.oracle.unreachable_events,
            decisions: self.oracle.decisions.len(),
            unstable_decisions: unstable,
            holds_checked: self.holds_checked,
            max_decision_lag: self.max_lag,
            up_at_end: self
                .oracle
                .nodes
                .iter()
                .filter(|r| r.running && r.up)
                .count(),
            unsettled_mutual_downs: self.oracle.unsettled_mutual_downs,
            follower_holds: self.follower_holds,
            no_leader_stops: self.no_leader_stops,
            virtual_time: self.sim.elapsed(),
        })
    }

    /// Members that may not lead never decide nor lead, by their own reports and everyone
    /// else's; counts the ones that stopped cut off from every member that may.
    fn check_followers(&mut self, log: &[Logged]) -> Result<(), Failure> {
        let p = &self.s.params;
        let follower =
            |a: &UniqueAddress| p.followers.iter().any(|f| addr_of(*f) == a.socket_addr());
        for l in log {
            let bad = match &l.event {
                Event::Downing(d) if !p.leader_eligible(l.node) => {
                    format!("node {} may not lead, yet decided {d:?}", l.node)
                }
                Event::LeaderChanged(Some(a)) if follower(a) => format!(
                    "node {} reports {} as its leader, which may not lead",
                    l.node,
                    a.socket_addr()
                ),
                Event::Stopped(StopReason::NoLeader) => {
                    self.no_leader_stops += 1;
                    continue;
                }
                _ => continue,
            };
            return Err(Failure {
                check: Check::FollowerLed,
                at: Duration::from_micros(l.at.as_micros()),
                detail: bad,
            });
        }
        Ok(())
    }

    /// Feeds the events logged so far to the oracle.
    fn drain(&mut self) -> Result<(), Failure> {
        self.at.set(self.sim.elapsed());
        let log = self.sim.take_events();
        if self.trace {
            for l in &log {
                eprintln!(
                    "{:>10.3} n{:<2} {:?}",
                    l.at.as_micros() as f64 / 1e6,
                    l.node,
                    l.event
                );
            }
        }
        self.check_followers(&log)?;
        if let Err(Violation { at, detail }) = self.oracle.feed(&log) {
            let check = if detail.starts_with("split brain") {
                Check::SplitBrain
            } else {
                Check::ForeignMember
            };
            return Err(Failure {
                check,
                at: Duration::from_micros(at.as_micros()),
                detail,
            });
        }
        if self.pause_only && self.oracle.unreachable_events > 0 {
            let first = log
                .iter()
                .find(|l| matches!(l.event, fjell_core::Event::UnreachableMember(_)))
                .map(|l| {
                    format!(
                        "node {} at {:?}: {:?}",
                        l.node,
                        Duration::from_micros(l.at.as_micros()),
                        l.event
                    )
                })
                .unwrap_or_default();
            return Err(self.fail(
                Check::FalseUnreachable,
                format!("only pauses under the acceptable pause, yet {first}"),
            ));
        }
        Ok(())
    }

    /// Runs to `until`, feeding the oracle and checking a held partition at its deadline.
    fn advance(&mut self, until: Instant) -> Result<(), Failure> {
        while self.sim.now() < until {
            let mut next = until;
            if let Some(h) = &self.hold {
                if h.deadline > self.sim.now() && h.deadline < next {
                    next = h.deadline;
                }
            }
            self.sim.run_for(next - self.sim.now());
            self.drain()?;
            if self
                .hold
                .as_ref()
                .is_some_and(|h| self.sim.now() >= h.deadline)
            {
                let h = self.hold.take().expect("checked");
                self.check_hold(&h)?;
            }
        }
        Ok(())
    }

    fn wait(&mut self, wait: Wait) -> Result<(), Failure> {
        let (offset, limit, seen): (u64, Duration, fn(&Oracle) -> bool) = match wait {
            Wait::Ms(ms) => {
                let t = self.sim.now() + Duration::from_millis(ms);
                return self.advance(t);
            }
            Wait::Unreachable(ms) => (ms, Duration::from_secs(30), |o| {
                o.unreachable_since_mark > 0
            }),
            Wait::Downing(ms) => (ms, Duration::from_secs(60), |o| o.downings_since_mark > 0),
        };
        let limit = self.sim.now() + limit;
        while !seen(&self.oracle) && self.sim.now() < limit {
            let t = (self.sim.now() + SLICE).min(limit);
            self.advance(t)?;
        }
        let t = self.sim.now() + Duration::from_millis(offset);
        self.advance(t)
    }

    fn running(&self, id: NodeId) -> bool {
        self.sim.try_node(id).is_some()
    }

    fn relink(&mut self, n: NodeId) {
        let lossy = |x: &NodeId| self.lossy.contains(x);
        for o in self.s.params.all() {
            if o == n {
                continue;
            }
            let l = if lossy(&n) || lossy(&o) {
                self.sim.link(n, o)
            } else {
                self.link
            };
            self.sim.set_link(n, o, l);
            self.sim.set_link(o, n, l);
        }
    }

    fn apply(&mut self, k: usize, fault: &Fault) -> Result<(), Failure> {
        // Every fault but the split itself and a graceful leave ends a held partition.
        let calm = matches!(fault, Fault::Split(_))
            .then(|| self.calm())
            .flatten();
        match (&mut self.hold, fault) {
            (Some(h), Fault::Leave(_)) => h.leaves = true,
            _ => self.hold = None,
        }
        self.faults += 1;
        if self.trace {
            eprintln!(
                "{:>10.3} step {k}: {fault:?}",
                self.sim.elapsed().as_secs_f64()
            );
        }
        let blocked_before = self.sim.blocked_links().len();
        self.apply_fault(fault, calm)?;
        let (blocked, now) = (self.sim.blocked_links().len(), self.sim.now());
        if blocked > blocked_before {
            self.last_cut = now;
        } else if blocked < blocked_before && now < self.last_cut + SHORT_OUTAGE {
            // Links came back before the failure detector could flag them: the silence is
            // in the phi history now, as after a pause.
            self.disturbed_until = self.disturbed_until.max(now + DETECTOR_MEMORY);
        }
        Ok(())
    }

    fn apply_fault(&mut self, fault: &Fault, calm: Option<usize>) -> Result<(), Failure> {
        match fault {
            Fault::Split(sides) => {
                self.sim.heal();
                for (i, a) in sides.iter().enumerate() {
                    for b in &sides[i + 1..] {
                        self.sim.partition(a, b);
                    }
                }
                if self.trace {
                    eprintln!("{:>10.3} calm: {calm:?}", self.sim.elapsed().as_secs_f64());
                }
                if let Some(members) = calm {
                    let d = self.s.params.config(self.s.params.sbr).downing;
                    let stable_after = d.stable_after_for(members);
                    let confirm_wait = d.confirm_wait_for(members);
                    let mut bound = Duration::from_secs(6 + 3 + 10) + stable_after + confirm_wait;
                    let mut slack = DECISION_SLACK;
                    if matches!(
                        d.downing,
                        Downing::SplitBrainResolver(Strategy::LeaseMajority { .. })
                    ) {
                        // The minority asks at the first leader tick after its delay.
                        bound += d.acquire_lease_delay_for_minority;
                        slack += d.acquire_lease_delay_for_minority + Duration::from_secs(1);
                    }
                    let start = self.sim.now();
                    let sides = sides
                        .iter()
                        .map(|s| {
                            s.iter()
                                .copied()
                                .filter(|i| self.running(*i) && self.oracle.nodes[*i].up)
                                .collect()
                        })
                        .collect();
                    self.hold = Some(Hold {
                        start,
                        deadline: start + bound,
                        stable_after,
                        confirm_wait,
                        slack,
                        leaves: false,
                        sides,
                    });
                }
            }
            Fault::Cut(a, b) => self.sim.partition(a, b),
            Fault::Mend(a, b) => {
                for &x in a {
                    for &y in b {
                        self.sim.unblock(x, y);
                        self.sim.unblock(y, x);
                    }
                }
            }
            Fault::OneWay(a, b) => self.sim.block(*a, *b),
            Fault::Heal => self.sim.heal(),
            Fault::Lossy(n, pct) => {
                self.lossy.insert(*n);
                let l = LinkConfig {
                    loss: f64::from(*pct) / 100.0,
                    ..self.link
                };
                for o in self.s.params.all() {
                    if o != *n {
                        self.sim.set_link(*n, o, l);
                        self.sim.set_link(o, *n, l);
                    }
                }
            }
            Fault::Restore(n) => {
                self.lossy.remove(n);
                self.relink(*n);
                self.disturbed_until = self.disturbed_until.max(self.sim.now() + DETECTOR_MEMORY);
            }
            Fault::Pause(n, ms) => {
                if self.running(*n) {
                    let now = self.sim.now();
                    let d = Duration::from_millis(*ms);
                    self.sim.pause(*n, d);
                    self.paused_until = self.paused_until.max(now + d);
                    self.disturbed_until = self.disturbed_until.max(now + d + DETECTOR_MEMORY);
                    // Pauses (of any nodes) that overlap or come within a heartbeat interval of
                    // each other add up on some heartbeat path: they count as one pause.
                    let gap = Duration::from_secs(1);
                    let (start, until) = match self.pauses {
                        Some((s, u)) if u + gap >= now => (s, u.max(now + d)),
                        _ => (now, now + d),
                    };
                    self.pauses = Some((start, until));
                    if until - start + Duration::from_millis(500) >= self.acceptable {
                        self.pause_only = false;
                    }
                }
            }
            Fault::Crash(n) => {
                if self.running(*n) {
                    self.drain()?;
                    self.sim.crash(*n);
                    self.oracle.crash(*n);
                }
            }
            Fault::Restart(n, via) => {
                self.drain()?;
                if self.running(*n) {
                    self.sim.crash(*n);
                    self.oracle.crash(*n);
                }
                self.sim.restart(*n);
                self.oracle.boot(*n, self.sim.node(*n).address());
                self.joiners.retain(|(j, _)| j != n);
                self.join(*n, via);
            }
            Fault::Reconfigure(n, sbr, via) => {
                self.drain()?;
                if self.running(*n) {
                    self.sim.crash(*n);
                    self.oracle.crash(*n);
                }
                self.sim
                    .restart_with(*n, self.s.params.reconfigured(*n, *sbr));
                self.sbr_of[*n] = Some(*sbr);
                self.oracle.boot(*n, self.sim.node(*n).address());
                self.joiners.retain(|(j, _)| j != n);
                self.join(*n, via);
            }
            Fault::Leave(n) => {
                if self.running(*n) {
                    let a = addr_of(*n);
                    let _ = self.sim.with_node(*n, |x, now| x.leave(now, a));
                }
            }
            Fault::Join(n, via) => {
                if self.running(*n) && self.sim.node(*n).status() == NodeStatus::Idle {
                    self.join(*n, via);
                }
            }
        }
        Ok(())
    }

    fn join(&mut self, n: NodeId, via: &[NodeId]) {
        if via.is_empty() {
            return;
        }
        let mut seeds: Vec<_> = via.iter().map(|v| addr_of(*v)).collect();
        // A node that may not lead must not be the first seed (it cannot found): it lists
        // itself last, as its operator would.
        if !self.s.params.leader_eligible(n) && seeds.len() > 1 && via[0] == n {
            seeds.rotate_left(1);
        }
        if self
            .sim
            .with_node(n, |x, now| x.join_seed_nodes(now, &seeds))
            .is_ok()
        {
            let same = self.sbr_of[n] == Some(self.s.params.sbr);
            if same {
                self.joiners.push((n, via.to_vec()));
            }
        }
    }

    /// If the cluster is calm — every running member up by its own report, every view holding
    /// exactly those members, all Up and reachable, no link cut, lossy or paused, nor paused,
    /// lossy or briefly cut within [`DETECTOR_MEMORY`] — the number of members.
    fn calm(&self) -> Option<usize> {
        if !self.sim.blocked_links().is_empty()
            || !self.lossy.is_empty()
            || self.disturbed_until > self.sim.now()
        {
            return None;
        }
        let up: Vec<NodeId> = self
            .s
            .params
            .all()
            .into_iter()
            .filter(|i| self.running(*i) && self.oracle.nodes[*i].up)
            .collect();
        let mut want: Vec<UniqueAddress> = up.iter().map(|i| self.sim.node(*i).address()).collect();
        want.sort();
        if up.len() < 2 {
            return None;
        }
        for i in self.s.params.all() {
            let Some(n) = self.sim.try_node(i) else {
                continue;
            };
            if n.status() == NodeStatus::Joining {
                return None;
            }
        }
        let ok = up.iter().all(|i| {
            let n = self.sim.node(*i);
            n.unreachable().next().is_none()
                && n.members().len() == want.len()
                && n.members()
                    .iter()
                    .zip(&want)
                    .all(|(m, w)| m.address == *w && m.status == MemberStatus::Up)
        });
        ok.then_some(up.len())
    }

    fn check_hold(&mut self, h: &Hold) -> Result<(), Failure> {
        self.holds_checked += 1;
        let p = &self.s.params;
        if h.sides
            .iter()
            .any(|side| !side.iter().any(|x| p.leader_eligible(*x)))
        {
            self.follower_holds += 1;
        }
        let held = self.sim.now() - h.start;
        for side in &h.sides {
            let uids: HashSet<UniqueAddress> = side
                .iter()
                .filter_map(|i| self.sim.try_node(*i).map(|n| n.address()))
                .collect();
            for &x in side {
                if !self.running(x) || self.oracle.nodes[x].gone || self.sim.is_stopped(x) {
                    continue;
                }
                let n = self.sim.node(x);
                let open: Vec<String> = n
                    .members()
                    .iter()
                    .filter(|m| !uids.contains(&m.address) && m.status != MemberStatus::Down)
                    .map(|m| {
                        format!(
                            "{}:{:?}{}",
                            m.address.socket_addr().ip(),
                            m.status,
                            if n.gossip().reachability().is_reachable(&m.address) {
                                ""
                            } else {
                                " (unreachable)"
                            }
                        )
                    })
                    .collect();
                if !open.is_empty() {
                    return Err(self.fail(
                        Check::Undecided,
                        format!(
                            "partition {:?} held {held:?} from a calm cluster: node {x} neither \
                             stopped nor downed the other side; still open in its view: [{}]",
                            h.sides,
                            open.join(", ")
                        ),
                    ));
                }
            }
        }
        let in_sides: HashSet<NodeId> = h.sides.concat().into_iter().collect();
        let decided: Vec<_> = self
            .oracle
            .decisions
            .iter()
            .filter(|d| d.at >= h.start && in_sides.contains(&d.by))
            .cloned()
            .collect();
        for d in &decided {
            if d.reason == Reason::Unstable {
                return Err(self.fail(
                    Check::UnstableDecision,
                    format!(
                        "partition {:?} injected into a calm cluster and held still: node {} \
                         downed all as unstable {:?} after the partition",
                        h.sides,
                        d.by,
                        d.at - h.start
                    ),
                ));
            }
        }
        for d in &decided {
            // Reachability last changed (in the decider's reports) at `since`: the decision is
            // due `stable-after` later, plus the time for its side to see that state and a leader
            // tick (and, for lease-majority, the minority's delay).
            let since = d.last_change.unwrap_or(h.start).max(h.start);
            let lag = (d.at - since).saturating_sub(h.stable_after);
            self.max_lag = self.max_lag.max(Some(lag));
            // A side that has not flagged every member of the other side decides once its
            // confirmation round times out: stable-after plus the confirmation wait.
            let all_flagged = h
                .sides
                .iter()
                .filter(|side| !side.contains(&d.by))
                .flatten()
                .filter_map(|i| self.oracle.nodes[*i].uid)
                .all(|u| d.unreachable.contains(&u));
            let wait = if all_flagged {
                Duration::ZERO
            } else {
                h.confirm_wait
            };
            if d.at > since + h.stable_after + wait + h.slack {
                return Err(self.fail(
                    Check::LateDecision,
                    format!(
                        "partition {:?} injected into a calm cluster{}: node {} decided ({:?}) {:?} \
                         after its last reachability change, more than stable-after ({:?}) + {:?}",
                        h.sides,
                        if h.leaves { ", with a graceful leave during it" } else { "" },
                        d.by,
                        d.reason,
                        d.at - since,
                        h.stable_after,
                        h.slack + wait
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Capacity runs: every running member sees convergence after the final heal and the
    /// settle period, or within [`WEDGE_GRACE`] more (a joiner whose Welcome was lost retries
    /// after 10 s, and a restarted node's old incarnation is removed first).
    fn wedged(&mut self) -> Result<(), Failure> {
        if self.s.params.max_members.is_empty() || self.s.settle_ms < JOIN_SETTLE_MS {
            return Ok(());
        }
        let end = self.sim.now() + WEDGE_GRACE;
        loop {
            let wedged = self.s.params.all().into_iter().find(|&i| {
                self.running(i)
                    && self.sim.node(i).status() == NodeStatus::Member
                    && !self.sim.node(i).is_converged()
            });
            let Some(i) = wedged else {
                return Ok(());
            };
            if self.sim.now() >= end {
                return Err(self.fail(
                    Check::Wedged,
                    format!(
                        "node {i} does not see convergence {:?} after the final heal: {}",
                        Duration::from_millis(self.s.settle_ms) + WEDGE_GRACE,
                        self.sim.describe_view(i)
                    ),
                ));
            }
            let next = self.sim.now() + Duration::from_secs(1);
            self.advance(next)?;
        }
    }

    fn final_checks(&mut self) -> Result<(), Failure> {
        self.wedged()?;
        if self.s.settle_ms >= JOIN_SETTLE_MS {
            if let Err(detail) = self.oracle.strict() {
                return Err(self.fail(Check::SplitBrain, detail));
            }
        }
        let joiners = if self.s.settle_ms >= JOIN_SETTLE_MS {
            &self.joiners[..]
        } else {
            &[]
        };
        for (j, via) in joiners {
            let r = &self.oracle.nodes[*j];
            if !self.running(*j) || r.was_up || r.gone || self.sim.is_stopped(*j) {
                continue;
            }
            // Refused because the cluster is full, or the joiner cannot hold it (as a member
            // reported).
            let me = addr_of(*j);
            if self
                .oracle
                .join_request_refused
                .iter()
                .any(|x| x.2 == me && x.3)
            {
                continue;
            }
            // A node that was welcomed counts as in: whether a welcomed joiner whose welcomer
            // crashed before the news spread ever gets Up is not this check's question.
            if self.sim.node(*j).status() == NodeStatus::Member {
                continue;
            }
            // A seed that serves with the joiner's settings (a rolling change may have left the
            // serving seeds with others, which rightly refuse it); only a member that may lead
            // takes joiners.
            if let Some(v) = via.iter().find(|v| {
                **v != *j
                    && self.s.params.leader_eligible(**v)
                    && self.running(**v)
                    && self.oracle.nodes[**v].up
                    && self.sbr_of[**v] == self.sbr_of[*j]
            }) {
                return Err(self.fail(
                    Check::JoinStuck,
                    format!(
                        "node {j} joined through {via:?} but is {:?} {:?} after the final heal, \
                         although seed {v} serves with the same settings",
                        self.sim.node(*j).status(),
                        Duration::from_millis(self.s.settle_ms)
                    ),
                ));
            }
        }
        for (t, j, by, capacity) in &self.oracle.join_refused {
            let me = addr_of(*j);
            // A joiner dropped for capacity hears it from whoever sends it the state first,
            // not necessarily from the member whose merge dropped it (which reports it).
            let told = self
                .oracle
                .join_request_refused
                .iter()
                .any(|(t2, r, from, _)| {
                    t2 <= t && (*capacity || addr_of(*r) == *by) && *from == me
                });
            if !told {
                return Err(self.fail(
                    Check::SilentRefusal,
                    format!(
                        "node {j} reported JoinRefused by {by} at {:?}, but {by} never reported \
                         JoinRequestRefused for it",
                        Duration::from_micros(t.as_micros())
                    ),
                ));
            }
        }
        Ok(())
    }
}
