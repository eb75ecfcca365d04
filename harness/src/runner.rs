//! Runs one scenario: builds its network, prepares and starts its nodes, carries out the
//! timeline step by step while watching every node, and reports what failed.
//!
//! Between and during steps the runner polls every 100 ms: new event-log records and
//! application-log lines, processes that ended, and the checks of [`crate::checks`] that
//! hold at every moment. A `wait` step's condition is first seen in the event logs and then
//! confirmed by management answers. The first failure ends the run; the network and every
//! process are torn down either way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fjell_runtime::management::{MemberInfo, Status};

use crate::app::{unix_ms, Received};
use crate::checks::{self, MessageOrder, Observed};
use crate::fleet::Fleet;
use crate::net::{LinkRule, NetSpec, Network};
use crate::scenario::{NamedNodes, Nodes, Scenario, Step, WaitFor, DEFAULT_WITHIN};

/// How often the runner looks at the nodes.
pub const POLL: Duration = Duration::from_millis(100);

/// Set by SIGINT / SIGTERM: the run stops at the next poll and cleans up.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `fjell` binary (certificates, management, the default node program).
    pub fjell: PathBuf,
    /// The directory for this run's files (settings, certificates, logs).
    pub dir: PathBuf,
    /// Print each step as it happens.
    pub verbose: bool,
    /// End the timeline early, at the first convergence of all nodes (`nodes = "all"`) after
    /// this long (the soak).
    pub stop_after: Option<Duration>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// The first failure, if any.
    pub failure: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// What happened, one line per step, with times.
    pub log: Vec<String>,
    /// The run's directory (logs of every node).
    pub dir: PathBuf,
    /// Application messages received and checked.
    pub messages: u64,
    /// Packets the hub dropped for partitions and for loss (proof that the faults acted).
    pub dropped: (u64, u64),
}

/// Runs `scenario`.
pub fn run(scenario: &Scenario, opts: &Options) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome {
        name: scenario.name.clone(),
        failure: None,
        elapsed: Duration::ZERO,
        log: Vec::new(),
        dir: opts.dir.clone(),
        messages: 0,
        dropped: (0, 0),
    };
    let net = match Network::create(NetSpec {
        name_prefix: NetSpec::unique_prefix(),
        nodes: scenario.nodes,
        ipv6: scenario.ipv6,
        seed: scenario.seed,
    }) {
        Ok(n) => n,
        Err(e) => {
            outcome.failure = Some(format!("cannot build the network: {e}"));
            return outcome;
        }
    };
    let fleet = match Fleet::prepare(scenario, &net, &opts.fjell, &opts.dir) {
        Ok(f) => f,
        Err(e) => {
            outcome.failure = Some(e);
            return outcome;
        }
    };
    let mut r = Runner {
        scenario,
        net: &net,
        fleet,
        start,
        verbose: opts.verbose,
        stop_after: opts.stop_after,
        log: Vec::new(),
        order: MessageOrder::default(),
        settled: false,
        cut: false,
    };
    let result = r.steps();
    let result = result.and_then(|()| r.finish());
    r.fleet.stop_all();
    let total = net.stats().total();
    outcome.dropped = (total.dropped_blocked, total.dropped_loss);
    outcome.failure = result.err();
    outcome.messages = r.order.received;
    outcome.log = std::mem::take(&mut r.log);
    outcome.elapsed = start.elapsed();
    outcome
}

struct Runner<'a> {
    scenario: &'a Scenario,
    net: &'a Network,
    fleet: Fleet<'a>,
    start: Instant,
    verbose: bool,
    stop_after: Option<Duration>,
    log: Vec<String>,
    order: MessageOrder,
    /// The cluster converged once: from here on `majority-up` applies.
    settled: bool,
    /// Some link is blocked (a partition or a one-way link not healed yet).
    cut: bool,
}

impl Runner<'_> {
    fn note(&mut self, line: String) {
        let line = format!("[{:7.1}s] {line}", self.start.elapsed().as_secs_f64());
        if self.verbose {
            println!("{line}");
        }
        self.log.push(line);
    }

    fn steps(&mut self) -> Result<(), String> {
        for (k, step) in self.scenario.steps.iter().enumerate() {
            self.note(format!("step {}: {}", k + 1, step.describe()));
            let t = Instant::now();
            self.step(step)
                .map_err(|e| format!("step {} ({}): {e}", k + 1, step.describe()))?;
            if step.wait.is_some() {
                self.note(format!("  held after {:.1} s", t.elapsed().as_secs_f64()));
            }
            if step.wait == Some(WaitFor::Converged)
                && step.nodes == Some(Nodes::Named(NamedNodes::All))
                && self.stop_after.is_some_and(|d| self.start.elapsed() >= d)
            {
                self.note(format!(
                    "stopping after step {} of {}: time is up",
                    k + 1,
                    self.scenario.steps.len()
                ));
                break;
            }
        }
        Ok(())
    }

    /// The last checks, once the timeline is done: two separate clusters are a split brain
    /// only if the network is whole again.
    fn finish(&mut self) -> Result<(), String> {
        self.poll()?;
        if self.cut {
            self.note(
                "the timeline ends with links blocked: no check for separate clusters".into(),
            );
            return Ok(());
        }
        let observed = self.observed();
        if let Some(e) = checks::separate_clusters(&observed) {
            return Err(format!("at the end: {e}"));
        }
        Ok(())
    }

    fn observed(&self) -> Vec<Observed<'_>> {
        self.fleet
            .nodes
            .iter()
            .map(|n| Observed {
                index: n.index,
                alive: n.alive(),
                view: n.events.current(),
            })
            .collect()
    }

    /// One look at every node: new records and messages, ended processes, and the checks
    /// that hold at every moment.
    fn poll(&mut self) -> Result<(), String> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        for (i, status) in self.fleet.reap() {
            self.note(format!("  node {i} exited ({status})"));
        }
        let expect = &self.scenario.expect;
        let mut failures = Vec::new();
        for n in &mut self.fleet.nodes {
            let i = n.index;
            let garbage = n.events.garbage.len();
            for r in n.events.poll() {
                if expect.no_unreachable {
                    failures.extend(checks::unreachable(i, r));
                }
                if expect.no_downing {
                    failures.extend(checks::downing(i, r));
                }
            }
            if let Some(g) = n.events.garbage.get(garbage) {
                failures.push(format!("node {i}: an event log line is not a record: {g}"));
            }
            for m in n.app.read::<Received>() {
                match m {
                    Ok(m) => failures.extend(self.order.check(i, &m)),
                    Err(e) => failures.push(format!("node {i}: bad application log line {e}")),
                }
            }
        }
        let observed = self.observed();
        failures.extend(checks::mutual_downing(&observed));
        if self.settled && expect.majority_up {
            failures.extend(checks::majority_up(&observed, self.scenario.nodes));
        }
        match failures.into_iter().next() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Polls for `d`.
    fn pass(&mut self, d: Duration) -> Result<(), String> {
        let until = Instant::now() + d;
        loop {
            self.poll()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(POLL.min(until - now));
        }
    }

    fn resolve(&self, nodes: &Nodes) -> Result<Vec<usize>, String> {
        match nodes {
            Nodes::List(l) => Ok(l.clone()),
            Nodes::Named(NamedNodes::All) => Ok((0..self.scenario.nodes).collect()),
            Nodes::Named(NamedNodes::Running) => Ok(self.running()),
            Nodes::Named(NamedNodes::Stopped) => Ok(self
                .fleet
                .nodes
                .iter()
                .filter(|n| !n.alive())
                .map(|n| n.index)
                .collect()),
            Nodes::Named(NamedNodes::Leader) => self.leader().map(|l| vec![l]),
        }
    }

    fn running(&self) -> Vec<usize> {
        self.fleet
            .nodes
            .iter()
            .filter(|n| n.alive() && !n.paused)
            .map(|n| n.index)
            .collect()
    }

    /// The leader the running nodes agree on.
    fn leader(&self) -> Result<usize, String> {
        let leaders: BTreeSet<Option<String>> = self
            .running()
            .iter()
            .filter_map(|&i| self.fleet.nodes[i].events.current())
            .map(|v| v.leader.clone())
            .collect();
        let only = match leaders.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(l)] => l.clone(),
            other => {
                return Err(format!(
                    "the running nodes do not agree on a leader: {other:?}"
                ))
            }
        };
        let addr = only.split('#').next().unwrap_or_default();
        self.fleet
            .nodes
            .iter()
            .find(|n| n.addr.to_string() == addr)
            .map(|n| n.index)
            .ok_or_else(|| format!("the leader {only} is no node of this run"))
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        if let Some(nodes) = &step.start {
            let nodes = self.resolve(nodes)?;
            for (k, &i) in nodes.iter().enumerate() {
                if k > 0 {
                    self.pass(step.spacing.unwrap_or_default())?;
                }
                // Every record of the last process is checked before the new one starts.
                self.poll()?;
                self.fleet.start(i)?;
            }
        } else if let Some(nodes) = &step.kill {
            for i in self.resolve(nodes)? {
                self.fleet.kill(i)?;
                self.note(format!("  node {i} killed"));
            }
        } else if let Some(nodes) = &step.terminate {
            for i in self.resolve(nodes)? {
                self.fleet.signal(i, libc::SIGTERM)?;
            }
        } else if let Some(nodes) = &step.pause {
            for i in self.resolve(nodes)? {
                self.fleet.signal(i, libc::SIGSTOP)?;
            }
        } else if let Some(nodes) = &step.resume {
            for i in self.resolve(nodes)? {
                self.fleet.signal(i, libc::SIGCONT)?;
            }
        } else if let Some(sides) = &step.partition {
            self.net.partition(sides);
            self.cut = true;
        } else if let Some(links) = &step.one_way {
            for &[a, b] in links {
                self.net.block_one_way(a, b);
            }
            self.cut = true;
        } else if step.heal {
            self.net.heal();
            self.cut = false;
        } else if let Some(imp) = &step.impair {
            let rule = LinkRule {
                blocked: false,
                delay: imp.delay.unwrap_or_default(),
                jitter: imp.jitter.unwrap_or_default(),
                loss: imp.loss,
                reorder: imp.reorder,
            };
            let n = self.scenario.nodes;
            let links: Vec<[usize; 2]> = match &imp.links {
                Some(links) => links.clone(),
                None => (0..n)
                    .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| [a, b]))
                    .collect(),
            };
            // Impairment does not heal: a blocked link stays blocked.
            for [a, b] in links {
                let blocked = self.net.link(a, b).blocked;
                self.net.set_link(a, b, LinkRule { blocked, ..rule });
            }
        } else if let Some(d) = step.sleep {
            self.pass(d)?;
        } else if let Some(what) = step.wait {
            self.wait(
                what,
                step.nodes.as_ref(),
                step.within.unwrap_or(DEFAULT_WITHIN),
            )?;
        }
        self.poll()
    }

    /// Waits until `what` holds for `nodes` (default: the running ones). A named set
    /// (`"running"`, `"leader"`) is resolved again at every poll: a node that stops during
    /// the wait leaves the running set.
    fn wait(
        &mut self,
        what: WaitFor,
        nodes: Option<&Nodes>,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let since = unix_ms();
        let mut last_confirm: Option<Instant> = None;
        let mut why = String::from("not checked yet");
        loop {
            self.poll()?;
            let resolved = match nodes {
                Some(n) => self.resolve(n),
                None => Ok(self.running()),
            };
            let held = match resolved {
                Err(e) => Err(e),
                Ok(nodes) if nodes.is_empty() => Err("no node to wait for".to_string()),
                Ok(nodes) => self.holds(what, &nodes, since, &mut last_confirm, &why),
            };
            match held {
                Ok(()) => {
                    if what == WaitFor::Converged {
                        self.settled = true;
                    }
                    return Ok(());
                }
                Err(e) => why = e,
            }
            if Instant::now() >= deadline {
                return Err(format!("did not hold within {within:?}: {why}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether `what` holds for `nodes` now (management confirms a convergence seen in the
    /// event logs, at most every 2 s).
    fn holds(
        &self,
        what: WaitFor,
        nodes: &[usize],
        since: u64,
        last_confirm: &mut Option<Instant>,
        why: &str,
    ) -> Result<(), String> {
        match what {
            WaitFor::Exited => self.exited(nodes),
            WaitFor::Up => self.up(nodes),
            WaitFor::Messages => self.messages_since(nodes, since),
            WaitFor::Converged => {
                self.converged_in_logs(nodes)?;
                if last_confirm.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
                    return Err(why.to_string());
                }
                *last_confirm = Some(Instant::now());
                self.converged_by_management(nodes)
            }
        }
    }

    fn exited(&self, nodes: &[usize]) -> Result<(), String> {
        match nodes.iter().find(|&&i| self.fleet.nodes[i].alive()) {
            Some(i) => Err(format!("node {i} still runs")),
            None => Ok(()),
        }
    }

    fn up(&self, nodes: &[usize]) -> Result<(), String> {
        for &i in nodes {
            let n = &self.fleet.nodes[i];
            if !n.alive() || n.events.current().and_then(|v| v.own_status()) != Some("Up") {
                return Err(format!("node {i} is not Up"));
            }
        }
        Ok(())
    }

    fn messages_since(&self, nodes: &[usize], since: u64) -> Result<(), String> {
        for &a in nodes {
            for &b in nodes.iter().filter(|&&b| b != a) {
                let from = self.fleet.nodes[a].addr;
                if self.order.heard.get(&(b, from)).is_none_or(|&t| t < since) {
                    return Err(format!("node {b} has had no message from node {a}"));
                }
            }
        }
        Ok(())
    }

    /// The current incarnation of each node, as it reports itself.
    fn incarnation(&self, i: usize) -> Option<&str> {
        let n = &self.fleet.nodes[i];
        n.events.current().map(|v| v.incarnation.as_str())
    }

    fn converged_in_logs(&self, nodes: &[usize]) -> Result<(), String> {
        let mut expected = BTreeSet::new();
        for &i in nodes {
            let n = &self.fleet.nodes[i];
            if !n.alive() || n.paused {
                return Err(format!("node {i} does not run"));
            }
            let inc = self
                .incarnation(i)
                .ok_or_else(|| format!("node {i} has reported nothing yet"))?;
            expected.insert(inc.to_string());
        }
        let mut leader = None;
        for &i in nodes {
            let v = self.fleet.nodes[i].events.current().ok_or("no view")?;
            let members: BTreeSet<String> =
                v.members.values().map(|s| s.incarnation.clone()).collect();
            if members != expected {
                return Err(format!(
                    "node {i} sees members {members:?}, not {expected:?}"
                ));
            }
            if let Some(s) = v.members.values().find(|s| s.status != "Up") {
                return Err(format!("node {i} sees {} {}", s.incarnation, s.status));
            }
            if !v.unreachable.is_empty() {
                return Err(format!("node {i} sees {:?} unreachable", v.unreachable));
            }
            match (&leader, &v.leader) {
                (_, None) => return Err(format!("node {i} sees no leader")),
                (None, Some(l)) => leader = Some(l.clone()),
                (Some(a), Some(b)) if a != b => {
                    return Err(format!("nodes disagree on the leader: {a} and {b}"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn converged_by_management(&self, nodes: &[usize]) -> Result<(), String> {
        let expected: BTreeSet<(String, u64)> = nodes
            .iter()
            .filter_map(|&i| {
                let inc = self.incarnation(i)?;
                let (addr, uid) = inc.split_once('#')?;
                Some((addr.to_string(), u64::from_str_radix(uid, 16).ok()?))
            })
            .collect();
        let mut leader = None;
        for &i in nodes {
            let members: Vec<MemberInfo> = self.fleet.manage(i, "members", 3)?;
            let seen: BTreeSet<(String, u64)> = members
                .iter()
                .map(|m| (m.address.to_string(), m.uid))
                .collect();
            if seen != expected {
                return Err(format!(
                    "management: node {i} lists {seen:?}, not {expected:?}"
                ));
            }
            if let Some(m) = members.iter().find(|m| m.status != "Up" || m.unreachable) {
                return Err(format!(
                    "management: node {i} lists {} {}{}",
                    m.address,
                    m.status,
                    if m.unreachable { " (unreachable)" } else { "" }
                ));
            }
            let status: Status = self.fleet.manage(i, "status", 3)?;
            if !status.converged {
                return Err(format!("management: node {i} does not see convergence"));
            }
            match (leader, status.leader) {
                (_, None) => return Err(format!("management: node {i} has no leader")),
                (None, l) => leader = l,
                (Some(a), Some(b)) if a != b => {
                    return Err(format!("management: leaders differ: {a} and {b}"))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A directory for a run of `name` under `root`, new each time.
pub fn run_dir(root: &Path, name: &str) -> std::io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = root.join(format!("{name}-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Makes SIGINT and SIGTERM stop the run at its next poll, so the network and the nodes are
/// torn down rather than left behind.
pub fn install_interrupt_handler() {
    extern "C" fn on_signal(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::Relaxed);
    }
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}
