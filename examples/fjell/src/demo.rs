//! `fjell demo`: five nodes (by default) on loopback over QUIC with development certificates.
//! Every membership event is printed as it happens, with the time since the start and the
//! node that saw it. The script: the cluster forms; one node crashes and a survivor's phi for
//! it rises until the others find it unreachable, the split brain resolver downs it and the
//! leader removes it; another node leaves gracefully (Left → Exited → Removed); a final
//! member table.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjell_core::{Event, MemberStatus};
use fjell_runtime::{Cluster, ClusterState, Termination};

use crate::Error;
use fjell_examples::local::Loopback;

/// Demo options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Cluster size (at least 3: one crashes, one leaves, one stays).
    pub nodes: usize,
    /// Keep the remaining nodes running after the script, until the process is stopped.
    pub keep_running: bool,
}

/// How long any one step may take before the demo gives up.
const STEP: Duration = Duration::from_secs(45);

/// Timestamped, node-labelled lines to `out`, from any task.
#[derive(Clone)]
struct Log {
    muted: Arc<std::sync::atomic::AtomicBool>,
    start: Instant,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    names: Arc<HashMap<SocketAddr, String>>,
}

impl Log {
    /// Stops printing the nodes' events (the script's own steps still print).
    fn mute(&self) {
        self.muted.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn event(&self, who: &str, e: &Event) {
        if !self.muted.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(text) = self.describe(e) {
                self.line(who, &text);
            }
        }
    }

    fn line(&self, who: &str, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "[{t:7.3}s] {who:<7} {text}");
        let _ = out.flush();
    }

    fn step(&self, text: &str) {
        self.line("", &format!("== {text} =="));
    }

    fn name(&self, a: SocketAddr) -> String {
        self.names.get(&a).cloned().unwrap_or_else(|| a.to_string())
    }

    /// The event as a short line, or `None` for those the demo does not show.
    fn describe(&self, e: &Event) -> Option<String> {
        let n = |m: &fjell_core::Member| self.name(m.address.socket_addr());
        Some(match e {
            Event::MemberJoined(m) => format!("MemberJoined       {}", n(m)),
            Event::MemberWeaklyUp(m) => format!("MemberWeaklyUp     {}", n(m)),
            Event::MemberUp(m) => format!("MemberUp           {}", n(m)),
            Event::MemberLeft(m) => format!("MemberLeft         {}", n(m)),
            Event::MemberExited(m) => format!("MemberExited       {}", n(m)),
            Event::MemberDowned(m) => format!("MemberDowned       {}", n(m)),
            Event::MemberRemoved {
                member,
                previous_status,
            } => format!("MemberRemoved      {} (was {previous_status:?})", n(member)),
            Event::UnreachableMember(m) => format!("UnreachableMember  {}", n(m)),
            Event::ReachableMember(m) => format!("ReachableMember    {}", n(m)),
            Event::LeaderChanged(Some(l)) => {
                format!("LeaderChanged      {}", self.name(l.socket_addr()))
            }
            Event::Downing(d) => format!(
                "Downing            {} decided {:?} ({:?}): {} member(s) downed",
                match d.by {
                    fjell_core::Downing::SplitBrainResolver(s) => s.name(),
                    fjell_core::Downing::UnsafeAutoDown { .. } => "auto-down",
                    fjell_core::Downing::Manual => "manual",
                },
                d.decision,
                d.reason,
                d.downed
            ),
            Event::SelfDowned => "SelfDowned".to_string(),
            Event::Stopped(r) => format!("Stopped            ({r:?})"),
            _ => return None,
        })
    }
}

/// Runs the demo, writing to `out`. Returns once the script is done (or, with
/// `keep_running`, never, unless a step fails).
pub async fn run(opts: Options, out: impl Write + Send + 'static) -> Result<(), Error> {
    let n = opts.nodes;
    if n < 3 {
        return Err("the demo needs at least 3 nodes".into());
    }
    let mut lo = Loopback::new(n)?;
    let names: HashMap<SocketAddr, String> = lo
        .addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, format!("node-{}", i + 1)))
        .collect();
    let log = Log {
        muted: Default::default(),
        start: Instant::now(),
        out: Arc::new(Mutex::new(Box::new(out))),
        names: Arc::new(names),
    };
    log.step(&format!(
        "starting {n} nodes on loopback over QUIC (development certificates), seeds: {}",
        lo.seeds()
            .iter()
            .map(|a| log.name(*a))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (i, a) in lo.addrs.iter().enumerate() {
        log.line(&format!("node-{}", i + 1), &format!("listens on {a}"));
    }
    let mut nodes = Vec::new();
    for i in 0..n {
        let c = lo.start(i)?;
        let sub = c.subscribe().await;
        let (log2, who) = (log.clone(), format!("node-{}", i + 1));
        smol::spawn(async move {
            while let Some(e) = sub.next().await {
                log2.event(&who, &e);
            }
        })
        .detach();
        nodes.push(c);
    }
    let everyone = lo.addrs.clone();
    for c in &nodes {
        wait(c, "formation", |s| all_up(s, &everyone)).await?;
    }
    log.step(&format!("all {n} nodes Up"));
    table(&log, &nodes[0].state());

    // A crash: the split brain resolver on the surviving side downs the node.
    let victim = n - 1;
    let victim_addr = lo.addrs[victim];
    log.step(&format!(
        "crashing {} (no goodbye: its transport just closes)",
        log.name(victim_addr)
    ));
    let t = nodes[victim].abort().await;
    log.line(&log.name(victim_addr), &format!("terminated: {t:?}"));
    watch_phi(&log, &nodes[..victim], victim_addr).await;
    let survivors: Vec<SocketAddr> = lo.addrs[..victim].to_vec();
    for c in &nodes[..victim] {
        wait(c, "the crashed node's removal", |s| all_up(s, &survivors)).await?;
    }
    log.step(&format!(
        "{} was found unreachable, downed by the split brain resolver and removed",
        log.name(victim_addr)
    ));

    // A graceful leave.
    let leaver = n - 2;
    let leaver_addr = lo.addrs[leaver];
    log.step(&format!("{} leaves gracefully", log.name(leaver_addr)));
    let t = nodes[leaver].shutdown().await;
    log.line(&log.name(leaver_addr), &format!("terminated: {t:?}"));
    if t != Termination::Stopped(fjell_core::StopReason::Left) {
        return Err(format!("the leave did not complete: {t:?}").into());
    }
    let rest: Vec<SocketAddr> = lo.addrs[..leaver].to_vec();
    for c in &nodes[..leaver] {
        wait(c, "the leaver's removal", |s| all_up(s, &rest)).await?;
    }
    log.step("final members");
    table(&log, &nodes[0].state());
    if opts.keep_running {
        log.step("keeping the remaining nodes running; stop with Ctrl-C");
        smol::future::pending::<()>().await;
    }
    log.step("shutting the remaining nodes down (each leaves gracefully)");
    let quiet = log.clone();
    quiet.mute();
    let ends: Vec<_> = nodes[..leaver]
        .iter()
        .cloned()
        .map(|c| smol::spawn(async move { c.shutdown().await }))
        .collect();
    for end in ends {
        end.await;
    }
    log.step("done");
    Ok(())
}

/// Prints, twice a second, how the failure detector of the first of `survivors` that
/// monitors `subject` sees it, until it suspects it (or stops monitoring it).
async fn watch_phi(log: &Log, survivors: &[Cluster], subject: SocketAddr) {
    let deadline = Instant::now() + STEP;
    let mut watcher: Option<&Cluster> = None;
    while Instant::now() < deadline {
        let mut found = None;
        for c in watcher.map_or(survivors, std::slice::from_ref) {
            let stats = c.monitored().await;
            if let Some(m) = stats
                .into_iter()
                .find(|m| m.subject.socket_addr() == subject)
            {
                found = Some((c, m));
                break;
            }
        }
        let Some((c, m)) = found else {
            if watcher.is_some() {
                return; // no longer monitored: it was flagged and the ring moved on
            }
            // Monitors are re-derived once per heartbeat interval: ask again shortly.
            smol::Timer::after(Duration::from_millis(100)).await;
            continue;
        };
        watcher = Some(c);
        let who = log.name(c.self_address().socket_addr());
        let age = m.last_heartbeat_age.map_or("never".to_string(), |a| {
            format!("{:.1} s ago", a.as_secs_f64())
        });
        log.line(
            &who,
            &format!(
                "phi({}) = {:5.2}  last heartbeat {age}{}",
                log.name(subject),
                m.phi,
                if m.available { "" } else { "  -> suspected" }
            ),
        );
        if !m.available {
            return;
        }
        smol::Timer::after(Duration::from_millis(500)).await;
    }
}

/// Waits (at most [`STEP`]) until node `c`'s state satisfies `cond`.
async fn wait(
    c: &Cluster,
    what: &str,
    cond: impl Fn(&ClusterState) -> bool,
) -> Result<ClusterState, Error> {
    match c.within(STEP, c.wait_for(cond)).await {
        Some(Some(s)) => Ok(s),
        _ => Err(format!("{} gave up waiting for {what}", c.self_address()).into()),
    }
}

/// Exactly `addrs` are members, all Up, converged, nobody unreachable.
fn all_up(s: &ClusterState, addrs: &[SocketAddr]) -> bool {
    s.converged
        && s.unreachable.is_empty()
        && s.members.len() == addrs.len()
        && s.members
            .iter()
            .all(|m| m.status == MemberStatus::Up && addrs.contains(&m.address.socket_addr()))
}

fn table(log: &Log, s: &ClusterState) {
    log.line(
        "",
        "  node     address              status  up-number  leader",
    );
    let mut members: Vec<_> = s.members.iter().collect();
    // Oldest first; members not yet Up last.
    members.sort_by_key(|m| m.up_number.map_or(u32::MAX, |n| n.get()));
    for m in members {
        let a = m.address.socket_addr();
        let leader = if s.leader == Some(m.address) { "*" } else { "" };
        log.line(
            "",
            &format!(
                "  {:<8} {:<20} {:<7} {:>9}  {leader}",
                log.name(a),
                a.to_string(),
                format!("{:?}", m.status),
                m.up_number
                    .map_or_else(|| "-".to_string(), |n| n.to_string())
            ),
        );
    }
}
