//! The measurements, defined once for every [`Protocol`].
//!
//! Every measurement starts from the same *formed* cluster: all `n` nodes start joining at
//! t = 0 (each protocol's own way: see the bench), the simulation runs until every node's
//! view holds all `n` members, all Up ([`Plan::form_limit`] at most), then for the warm-up
//! ([`Plan::warmup`], 20 s). The simulation is deterministic, so building the formed cluster
//! again from the same seed gives the same state; the change and crash runs below rely on
//! that (and check it: the traffic counters must match at the fork).
//!
//! 1. **All see all Up** ([`Report::all_up`]): time from the start until every node's view
//!    holds all `n` members, every one Up, checked every [`Plan::check_every`] (10 ms).
//! 2. **Detection** ([`Report::detect_first`], [`Report::detect_all`]): on a formed cluster,
//!    node `n / 2` crashes (see [`crate::net::Sim::crash`]). Time until the first survivor
//!    flags it ([`Observation::Flagged`]) and until every survivor has; the spread is the
//!    difference. For a protocol with a suspicion stage, [`Report::suspect_first`] is the time
//!    until the first survivor suspects it (polled every 10 ms).
//! 3. **Steady traffic** ([`Report::bytes_per_node_s`], [`Report::msgs_per_node_s`]): on a
//!    formed cluster, payload bytes and messages handed to the network over the next
//!    [`Plan::steady`] (60 s), per node per second.
//! 4. **CPU** ([`Report::cpu_us_per_node_s`], [`Report::cpu_us_per_msg`]): user + system CPU
//!    time of the process (`getrusage(RUSAGE_SELF)`; the simulation runs on one thread)
//!    spent simulating the formed cluster from [`Plan::cpu_short`] (30 s) to
//!    [`Plan::cpu_long`] after the warm-up: the cost of the long window minus that of the
//!    30 s one, read at both instants of one run. The window between them is at least 90 s and
//!    at least [`CPU_NODE_SECONDS`] node-seconds: at 100 nodes 90 s is only about 40 ms of CPU,
//!    and two runs of the same code differed by 60%. Divided by `n` × the window, and by the
//!    messages delivered in it. On a shared machine the speed drifts over seconds by as much
//!    as the difference between the protocols, so a comparison of two protocols is made by
//!    [`cpu_duel`] instead: both formed clusters in one process, run in alternating slices.
//!    It includes the network model's own work (queueing each message, copying its bytes),
//!    which is the same per message for every protocol.
//! 5. **Bytes per change** ([`Report::bytes_per_change`]): node `n / 2` of a formed cluster
//!    leaves gracefully; the bytes all nodes send over the next [`Plan::change_window`]
//!    (40 s) minus the bytes the same formed cluster sends over the same window without the
//!    change. It can be negative when a change costs less than the steady traffic the node
//!    that left no longer sends. [`Report::change_seen_by_all`] is the time until every other
//!    node sees the node leaving or gone ([`Observation::Departing`]).
//! 6. **Memory per node** ([`Report::mem_per_node`]): the size of the simulator's per-node
//!    value plus the live heap the nodes hold after formation and warm-up (counted by
//!    [`crate::heap::CountingAlloc`]), divided by `n`. [`Report::value_bytes`] is the size of
//!    the protocol's node value alone.
//!
//! [`extrapolate`] takes a quantity measured at several sizes to 10,000 members.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant as WallInstant};

use crate::heap;
use crate::net::{Link, NodeId, Observation, Protocol, Sim, Traffic};

/// Node-seconds the CPU window covers at least (see the module docs, item 4): about a second
/// of CPU for either protocol at 100 nodes.
pub const CPU_NODE_SECONDS: u64 = 300_000;

/// The sizes, windows and limits of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Nodes.
    pub n: usize,
    /// Seed of the simulation; every node's seed is derived from it.
    pub seed: u64,
    /// The network model.
    pub link: Link,
    /// How long the cluster may take to form; the warm-up starts then either way.
    pub form_limit: Duration,
    /// How often conditions (all Up, suspicion) are checked.
    pub check_every: Duration,
    /// Virtual time between formation and each measurement.
    pub warmup: Duration,
    /// Window of the steady traffic.
    pub steady: Duration,
    /// Start of the CPU window, after the warm-up.
    pub cpu_short: Duration,
    /// End of the CPU window, after the warm-up.
    pub cpu_long: Duration,
    /// Window of the bytes per change.
    pub change_window: Duration,
    /// How long detection may take.
    pub detect_limit: Duration,
}

impl Plan {
    /// The comparison's plan for `n` nodes: the windows of the module docs (the CPU window
    /// longer for small `n`), 1 ms links without loss, 600 s to form, 120 s to detect.
    pub fn new(n: usize, seed: u64) -> Plan {
        Plan {
            n,
            seed,
            link: Link::LAN,
            form_limit: Duration::from_secs(600),
            check_every: Duration::from_millis(10),
            warmup: Duration::from_secs(20),
            steady: Duration::from_secs(60),
            cpu_short: Duration::from_secs(30),
            cpu_long: Duration::from_secs(30 + CPU_NODE_SECONDS.div_ceil(n.max(1) as u64).max(90)),
            change_window: Duration::from_secs(40),
            detect_limit: Duration::from_secs(120),
        }
    }

    /// The node that crashes in the detection run and leaves in the change run.
    pub fn subject(&self) -> NodeId {
        self.n / 2
    }
}

/// One protocol's results at one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The protocol's name.
    pub protocol: &'static str,
    /// Nodes.
    pub n: usize,
    /// Until every node sees all `n` members Up; `None` if not within the form limit.
    pub all_up: Option<Duration>,
    /// From the crash until the first survivor flags the crashed node.
    pub detect_first: Option<Duration>,
    /// From the crash until every survivor flags it.
    pub detect_all: Option<Duration>,
    /// From the crash until the first survivor suspects it (protocols with suspicion).
    pub suspect_first: Option<Duration>,
    /// Steady payload bytes per node per second.
    pub bytes_per_node_s: f64,
    /// Steady messages per node per second.
    pub msgs_per_node_s: f64,
    /// CPU µs per node per simulated second.
    pub cpu_us_per_node_s: f64,
    /// CPU µs per delivered message.
    pub cpu_us_per_msg: f64,
    /// Extra bytes all nodes sent because one node left.
    pub bytes_per_change: i64,
    /// From the leave until every other node sees it.
    pub change_seen_by_all: Option<Duration>,
    /// `size_of` the simulator's per-node value (the protocol's adapter).
    pub slot_bytes: usize,
    /// `size_of` the protocol's node value.
    pub value_bytes: usize,
    /// Live heap bytes per node after formation and warm-up.
    pub heap_per_node: f64,
    /// Wall time of the three runs.
    pub wall: Duration,
}

impl Report {
    /// Bytes per node: the per-node value plus the heap per node.
    pub fn mem_per_node(&self) -> f64 {
        self.slot_bytes as f64 + self.heap_per_node
    }

    /// Detection spread: every survivor minus the first.
    pub fn detect_spread(&self) -> Option<Duration> {
        Some(self.detect_all? - self.detect_first?)
    }
}

/// CPU of one protocol in [`cpu_duel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    /// CPU µs per node per simulated second.
    pub us_per_node_s: f64,
    /// CPU µs per delivered message.
    pub us_per_msg: f64,
}

/// Slices of [`cpu_duel`]: each protocol runs this many times, alternating with the other.
pub const DUEL_SLICES: u32 = 20;

/// Steady-state CPU of protocols `A` and `B` measured side by side: both clusters are formed
/// and warmed up, then each runs [`DUEL_SLICES`] slices of the CPU window (module docs,
/// item 4; after [`Plan::cpu_short`] of settling), alternating, and the CPU of each slice is
/// charged to the protocol that ran it. A drift in the machine's speed then falls on both
/// alike, where two separate runs seconds apart can differ by 30%.
pub fn cpu_duel<A: Protocol, B: Protocol>(plan: &Plan) -> (Cpu, Cpu) {
    let (mut a, _, _) = form::<A>(plan);
    let (mut b, _, _) = form::<B>(plan);
    a.run_for(plan.cpu_short);
    b.run_for(plan.cpu_short);
    let window = plan.cpu_long - plan.cpu_short;
    let slice = window / DUEL_SLICES;
    let (mut cpu_a, mut cpu_b) = (Duration::ZERO, Duration::ZERO);
    let (from_a, from_b) = (a.traffic(), b.traffic());
    for _ in 0..DUEL_SLICES {
        let t = process_cpu();
        a.run_for(slice);
        let u = process_cpu();
        b.run_for(slice);
        cpu_a += u - t;
        cpu_b += process_cpu() - u;
    }
    let node_s = plan.n as f64 * (slice * DUEL_SLICES).as_secs_f64();
    let cpu = |c: Duration, from: Traffic, to: Traffic| {
        let us = c.as_secs_f64() * 1e6;
        Cpu {
            us_per_node_s: us / node_s,
            us_per_msg: us / (to.delivered - from.delivered).max(1) as f64,
        }
    };
    (
        cpu(cpu_a, from_a, a.traffic()),
        cpu(cpu_b, from_b, b.traffic()),
    )
}

/// Process CPU time (user + system) so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A formed cluster: started at t = 0, all Up (or the form limit), then the warm-up. Returns
/// the simulation, the time to all Up and the live heap before the nodes were started.
pub fn form<P: Protocol>(plan: &Plan) -> (Sim<P>, Option<Duration>, i64) {
    let heap_before = heap::live();
    let mut sim = Sim::<P>::start(plan.n, plan.seed, plan.link);
    let n = plan.n;
    let up = sim.run_until(plan.form_limit, plan.check_every, |s| {
        s.nodes()
            .iter()
            .all(|p| p.members_seen() == n && p.all_up())
    });
    sim.run_for(plan.warmup);
    (sim, up, heap_before)
}

/// Runs the three simulations of `plan` for protocol `P` (steady, change, crash) and reports
/// every measurement of the module docs. `log` gets a line as each run ends.
pub fn measure<P: Protocol>(name: &'static str, plan: &Plan, log: &mut dyn FnMut(&str)) -> Report {
    let wall = WallInstant::now();
    let n = plan.n;
    let subject = plan.subject();

    // Steady run: memory, traffic, CPU, and the baseline of the change run.
    let (mut sim, all_up, heap_before) = form::<P>(plan);
    log(&format!(
        "{name} n={n}: steady run formed and warmed up ({:.1} s wall)",
        wall.elapsed().as_secs_f64()
    ));
    let heap_per_node = (heap::live() - heap_before) as f64 / n as f64;
    let value_bytes = sim.node(0).value_bytes();
    let fork: Traffic = sim.traffic();
    let mut marks: BTreeMap<Duration, (Traffic, Duration)> = BTreeMap::new();
    let mut at = Duration::ZERO;
    for mark in [
        plan.cpu_short,
        plan.change_window,
        plan.steady,
        plan.cpu_long,
    ] {
        marks.insert(mark, (fork, Duration::ZERO));
    }
    let points: Vec<Duration> = marks.keys().copied().collect();
    for mark in points {
        sim.run_for(mark - at);
        at = mark;
        marks.insert(mark, (sim.traffic(), process_cpu()));
    }
    let steady = marks[&plan.steady].0;
    let node_s = n as f64 * plan.steady.as_secs_f64();
    let bytes_per_node_s = (steady.bytes - fork.bytes) as f64 / node_s;
    let msgs_per_node_s = (steady.messages - fork.messages) as f64 / node_s;
    let (t_short, cpu_short) = marks[&plan.cpu_short];
    let (t_long, cpu_long) = marks[&plan.cpu_long];
    let cpu_us = (cpu_long - cpu_short).as_secs_f64() * 1e6;
    let cpu_node_s = n as f64 * (plan.cpu_long - plan.cpu_short).as_secs_f64();
    let cpu_us_per_node_s = cpu_us / cpu_node_s;
    let cpu_us_per_msg = cpu_us / (t_long.delivered - t_short.delivered).max(1) as f64;
    let baseline = marks[&plan.change_window].0.bytes - fork.bytes;
    drop(sim);
    log(&format!(
        "{name} n={n}: steady run done ({:.1} s wall)",
        wall.elapsed().as_secs_f64()
    ));

    // Change run: the same formed cluster, and node `subject` leaves.
    let (mut sim, _, _) = form::<P>(plan);
    assert_eq!(
        sim.traffic(),
        fork,
        "{name}: the change run did not reach the state of the steady run"
    );
    let left_at = sim.now();
    sim.leave(subject);
    sim.run_for(plan.change_window);
    let bytes_per_change = (sim.traffic().bytes - fork.bytes) as i64 - baseline as i64;
    let mut seen = vec![None; n];
    for o in sim.observed() {
        if o.at >= left_at && o.what == Observation::Departing(subject) {
            seen[o.by].get_or_insert(o.at - left_at);
        }
    }
    let change_seen_by_all = latest(&seen, subject);
    drop(sim);
    log(&format!(
        "{name} n={n}: change run done ({:.1} s wall)",
        wall.elapsed().as_secs_f64()
    ));

    // Crash run: the same formed cluster, and node `subject` crashes.
    let (mut sim, _, _) = form::<P>(plan);
    let crashed_at = sim.now();
    sim.crash(subject);
    let mut flagged: Vec<Option<Duration>> = vec![None; n];
    let mut read = 0;
    let polls_suspicion = sim.node(0).suspects(subject).is_some();
    let mut suspect_first = None;
    sim.run_until(plan.detect_limit, plan.check_every, |s| {
        for o in &s.observed()[read..] {
            if o.at >= crashed_at && o.what == Observation::Flagged(subject) {
                flagged[o.by].get_or_insert(o.at - crashed_at);
            }
        }
        read = s.observed().len();
        if polls_suspicion && suspect_first.is_none() {
            let any = (0..n)
                .filter(|&i| i != subject)
                .any(|i| s.node(i).suspects(subject) == Some(true));
            if any {
                suspect_first = Some(s.now() - crashed_at);
            }
        }
        (0..n).all(|i| i == subject || flagged[i].is_some())
    });
    let detect_first = flagged
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != subject)
        .filter_map(|(_, t)| *t)
        .min();
    let detect_all = latest(&flagged, subject);
    drop(sim);
    log(&format!(
        "{name} n={n}: crash run done ({:.1} s wall)",
        wall.elapsed().as_secs_f64()
    ));

    Report {
        protocol: name,
        n,
        all_up,
        detect_first,
        detect_all,
        suspect_first,
        bytes_per_node_s,
        msgs_per_node_s,
        cpu_us_per_node_s,
        cpu_us_per_msg,
        bytes_per_change,
        change_seen_by_all,
        slot_bytes: std::mem::size_of::<P>(),
        value_bytes,
        heap_per_node,
        wall: wall.elapsed(),
    }
}

/// The latest of the times of every node but `except`; `None` if one is missing.
fn latest(times: &[Option<Duration>], except: NodeId) -> Option<Duration> {
    times
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != except)
        .map(|(_, t)| *t)
        .try_fold(Duration::ZERO, |acc, t| Some(acc.max(t?)))
}

/// Extrapolates a quantity measured at several sizes to `to` members, as a power law through
/// the two largest sizes: `q(to) = q(n2) · (to / n2)^a` with `a = ln(q2 / q1) / ln(n2 / n1)`.
/// With one size (or a non-positive value) `a` is `default_exponent`. Returns `(q(to), a)`, or
/// `None` when the largest value is not positive.
///
/// ```
/// use fjell_compare::measure::extrapolate;
/// // Grows linearly: 10 at 100, 100 at 1,000 → 1,000 at 10,000.
/// let (q, a) = extrapolate(&[(100, 10.0), (1_000, 100.0)], 10_000, 1.0).unwrap();
/// assert!((q - 1_000.0).abs() < 1e-6 && (a - 1.0).abs() < 1e-9);
/// ```
pub fn extrapolate(
    points: &[(usize, f64)],
    to: usize,
    default_exponent: f64,
) -> Option<(f64, f64)> {
    let mut p: Vec<(usize, f64)> = points.to_vec();
    p.sort_by_key(|&(n, _)| n);
    let &(n2, q2) = p.last()?;
    if q2 <= 0.0 {
        return None;
    }
    let a = match p.len().checked_sub(2).map(|i| p[i]) {
        Some((n1, q1)) if q1 > 0.0 && n1 < n2 => (q2 / q1).ln() / (n2 as f64 / n1 as f64).ln(),
        _ => default_exponent,
    };
    Some((q2 * (to as f64 / n2 as f64).powf(a), a))
}

/// Seconds with two decimals, or `>limit` when the measurement did not finish.
pub fn secs(d: Option<Duration>, limit: Duration) -> String {
    match d {
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
        None => format!("> {} s", limit.as_secs()),
    }
}

/// A byte count with three significant digits and a unit (B, kB, MB, GB; powers of 1,000).
pub fn bytes(b: f64) -> String {
    let (v, unit) = match b.abs() {
        x if x >= 1e9 => (b / 1e9, "GB"),
        x if x >= 1e6 => (b / 1e6, "MB"),
        x if x >= 1e3 => (b / 1e3, "kB"),
        _ => (b, "B"),
    };
    let digits = match v.abs() {
        x if x >= 100.0 => 0,
        x if x >= 10.0 => 1,
        _ => 2,
    };
    format!("{v:.digits$} {unit}")
}

/// The table of one size: one line per protocol, every measurement (Markdown).
pub fn size_table(plan: &Plan, reports: &[&Report]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| N | protocol | all Up | detect first / all (spread) | first suspect | B/node/s | \
         msgs/node/s | CPU µs/node-s | CPU µs/msg | bytes/change | change seen by all | \
         mem/node (heap) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let spread = r
            .detect_spread()
            .map_or("—".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
        let suspect = match r.suspect_first {
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
            None => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} ({}) | {} | {:.1} | {:.2} | {:.1} | {:.3} | {} | {} | {} ({}) |",
            r.n,
            r.protocol,
            secs(r.all_up, plan.form_limit),
            secs(r.detect_first, plan.detect_limit),
            secs(r.detect_all, plan.detect_limit),
            spread,
            suspect,
            r.bytes_per_node_s,
            r.msgs_per_node_s,
            r.cpu_us_per_node_s,
            r.cpu_us_per_msg,
            bytes(r.bytes_per_change as f64),
            secs(r.change_seen_by_all, plan.change_window),
            bytes(r.mem_per_node()),
            bytes(r.heap_per_node),
        );
    }
    s
}

/// The summary in the issue's columns: one line per size, fjell's and foca's reports side by
/// side (Markdown).
pub fn summary_table(plan: &Plan, pairs: &[(&Report, &Report)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| N | fjell all Up | fjell detect first/all | foca detect first/all | fjell B/node/s | \
         foca B/node/s | fjell msgs/node/s | foca msgs/node/s | fjell CPU µs/node-s | \
         foca CPU µs/node-s | fjell CPU µs/msg | foca CPU µs/msg | fjell bytes/change | \
         foca bytes/change | fjell mem/node | foca mem/node |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let d =
        |d: Option<Duration>| d.map_or("—".to_string(), |d| format!("{:.2}", d.as_secs_f64()));
    for (a, b) in pairs {
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} s | {} / {} s | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | \
             {:.3} | {:.3} | {} | {} | {} | {} |",
            a.n,
            secs(a.all_up, plan.form_limit),
            d(a.detect_first),
            d(a.detect_all),
            d(b.detect_first),
            d(b.detect_all),
            a.bytes_per_node_s,
            b.bytes_per_node_s,
            a.msgs_per_node_s,
            b.msgs_per_node_s,
            a.cpu_us_per_node_s,
            b.cpu_us_per_node_s,
            a.cpu_us_per_msg,
            b.cpu_us_per_msg,
            bytes(a.bytes_per_change as f64),
            bytes(b.bytes_per_change as f64),
            bytes(a.mem_per_node()),
            bytes(b.mem_per_node()),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolation_follows_the_two_largest_sizes() {
        // Quadratic in n between 100 and 1,000: 100× at 10,000.
        let (q, a) = extrapolate(&[(10, 5.0), (1_000, 1e6), (100, 1e4)], 10_000, 1.0).unwrap();
        assert!((a - 2.0).abs() < 1e-9);
        assert!((q - 1e8).abs() < 1.0);
        // One size: the default exponent.
        let (q, a) = extrapolate(&[(1_000, 7.0)], 10_000, 0.0).unwrap();
        assert_eq!((q, a), (7.0, 0.0));
        assert!(extrapolate(&[(1_000, -3.0)], 10_000, 1.0).is_none());
    }

    #[test]
    fn latest_needs_every_node_but_the_subject() {
        let s = Duration::from_secs;
        assert_eq!(latest(&[Some(s(1)), None, Some(s(3))], 1), Some(s(3)));
        assert_eq!(latest(&[Some(s(1)), None, Some(s(3))], 0), None);
    }

    #[test]
    fn byte_counts_read_at_a_glance() {
        assert_eq!(bytes(97.0), "97.0 B");
        assert_eq!(bytes(27_790.0), "27.8 kB");
        assert_eq!(bytes(-3_400.0), "-3.40 kB");
        assert_eq!(bytes(1_834_544.0), "1.83 MB");
    }
}
