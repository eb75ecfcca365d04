//! The bounded tombstone table (issue 13 item 5): a removed incarnation must never come back,
//! however many removals push tombstones out of the table (it holds `M`).
//!
//! A node merges gossip only from a sender it lists as a current member and sees reachable
//! (`Node::on_gossip`, `Node::valid_peer`), addressed to its own uid. So a stale view that
//! names a removed incarnation X gets in only through a member that stayed a member, or
//! through a message sent before X's removal. Removals happen only at convergence, which
//! waits for every Up/Leaving member to see the state and for every unreachable member to be
//! Down or Exiting (`Gossip::is_converged`); the leader removes unreachable Exiting members at
//! once, and unreachable Down members unless the down-removal margin holds them
//! (`leader::actions_on_convergence`, `keep_down`). That leaves two carriers:
//!
//! - a Down member held by the margin, cut off or frozen since before X's removal; the margin
//!   also holds crashed incarnations, so the removals that pile up meanwhile are those that do
//!   not wait for it: graceful leaves (Exiting) and Down members that confirm they stopped;
//! - a gossip message from a member, delivered after the removals.
//!
//! Either way the stale clock still names members the cluster has pruned, so the comparison
//! is concurrent and the merge keeps every member that neither side has a tombstone for. Before
//! the fix every scenario below that pushes a tombstone out brought removed incarnations back
//! (all of seeds 0..29; the late gossip on 26 of them). Now gossip from a Down member is not
//! merged (it is told it is Down instead), and a removal never pushes out a tombstone younger
//! than `fjell_core::node::TOMBSTONE_MIN_AGE` (removals wait, reported as
//! `Event::LimitReached(Limit::Tombstones)`): each closes one carrier.

use std::collections::HashSet;
use std::time::Duration;

use fjell_core::{
    Config, Downing, DowningSettings, MemberStatus, NodeStatus, StopReason, Strategy, UniqueAddress,
};
use fjell_sim::{LinkConfig, NodeId, Sim};

/// The independent oracle: incarnations the test itself ended (their uid read before the
/// leave, down or crash). Once a node's member list has been seen without a dead incarnation,
/// that node (that incarnation of it) must never list it again: news of a removal takes a few
/// gossip rounds to arrive, and a node cut off since before the removal still lists it in its
/// own stale view, neither of which is a resurrection. [`Oracle::final_check`] then asks that
/// no node of the cluster lists one at the end.
struct Oracle {
    dead: HashSet<UniqueAddress>,
    /// (observer incarnation, dead incarnation): the observer was seen without it.
    cleared: HashSet<(UniqueAddress, UniqueAddress)>,
    violation: Option<String>,
}

impl Oracle {
    fn new() -> Self {
        Oracle {
            dead: HashSet::new(),
            cleared: HashSet::new(),
            violation: None,
        }
    }

    /// Checks every running node; true once a violation is recorded (to end a `run_until`).
    fn check<const M: usize, const R: usize>(&mut self, sim: &Sim<M, R>) -> bool {
        if self.violation.is_some() {
            return true;
        }
        for id in sim.running() {
            let n = sim.node(id);
            let me = n.address();
            for d in &self.dead {
                match n.members().iter().find(|m| m.address == *d) {
                    None => {
                        self.cleared.insert((me, *d));
                    }
                    Some(m) if self.cleared.contains(&(me, *d)) => {
                        self.violation = Some(format!(
                            "t={:?}: node {id} ({me}) lists removed incarnation {d} again, as {:?}",
                            sim.elapsed(),
                            m.status
                        ));
                        return true;
                    }
                    Some(_) => {}
                }
            }
        }
        false
    }

    /// No node of the cluster (`c0` and the running nodes it lists as members) lists a dead
    /// incarnation.
    fn final_check<const M: usize, const R: usize>(&mut self, sim: &Sim<M, R>, c0: NodeId) {
        let cluster = sim.running().filter(|i| {
            *i == c0
                || (!sim.is_stopped(*i) && sim.node(c0).gossip().is_member(&sim.node(*i).address()))
        });
        for id in cluster {
            let n = sim.node(id);
            if let Some(m) = n.members().iter().find(|m| self.dead.contains(&m.address)) {
                self.violation = Some(format!(
                    "t={:?}: at the end node {id} ({}) lists dead incarnation {} as {:?}",
                    sim.elapsed(),
                    n.address(),
                    m.address,
                    m.status
                ));
                return;
            }
        }
    }
}

fn config(downing: Downing, margin: Option<Duration>) -> Config {
    Config {
        downing: DowningSettings {
            downing,
            down_removal_margin: margin,
            ..DowningSettings::default()
        },
        ..Config::default()
    }
}

const KEEP_MAJORITY: Downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
const LEASE_MAJORITY: Downing = Downing::SplitBrainResolver(Strategy::LeaseMajority { role: None });
const HOUR: Option<Duration> = Some(Duration::from_secs(3600));
/// Seconds a removal (or a rejoin that needs the old incarnation removed) may take: with the
/// tombstone table full of tombstones younger than `TOMBSTONE_MIN_AGE` (5 minutes), removals
/// wait for the oldest to come of age.
const REMOVAL_WAIT: u64 = 600;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Churn {
    /// The node leaves gracefully (Leaving, Exiting, removed once it confirms).
    Leave,
    /// The first core node downs it; it sees that, stops and confirms, and is removed.
    Down,
    /// It crashes and restarts (new uid, same address): the seed its new incarnation joins
    /// through marks the old one Down, and the leader removes it.
    Restart,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Holder {
    /// The stale node is frozen (a stop-the-world pause, and cut off so that nothing piles up
    /// in its socket buffer); the split brain resolver downs it, or the first core node does
    /// with manual downing.
    Pause,
    /// The stale node keeps running, cut off by a partition; the first core node downs it by
    /// hand (manual downing: its own side has nobody to down).
    Partition,
}

struct Scenario {
    seed: u64,
    config: Config,
    /// Nodes never restarted (the first is the leader, by address).
    core: usize,
    /// Nodes restarted over and over, one at a time in turn.
    churners: usize,
    holder: Holder,
    churn: Churn,
    /// Removals of churning incarnations in all.
    removals: usize,
    /// After how many of them the stale node is resumed (unpaused and healed); churn goes on.
    resume_after: usize,
    /// The churn starts only once the leader has removed the stale node, so that every
    /// removal counted comes after its own (otherwise the churn starts once it is Down).
    churn_after_its_removal: bool,
}

impl Scenario {
    /// Two core nodes and two churners.
    fn new(
        seed: u64,
        config: Config,
        holder: Holder,
        churn: Churn,
        removals: usize,
        resume_after: usize,
    ) -> Self {
        Scenario {
            seed,
            config,
            core: 2,
            churners: 2,
            holder,
            churn,
            removals,
            resume_after,
            churn_after_its_removal: false,
        }
    }
}

/// What a run of [`stale_member`] saw.
#[derive(Debug)]
struct Outcome {
    /// The first violation the oracle saw.
    violation: Option<String>,
    /// The stale node was still a (Down) member at the leader when it resumed.
    held_at_resume: bool,
    /// Tombstones the leader kept when the stale node resumed.
    tombstones_at_resume: usize,
    /// The leader still kept the stale node's own tombstone when it resumed.
    p_tombstoned_at_resume: bool,
    /// The stale node's own status at the end.
    p_status: NodeStatus,
    /// The leader still lists the stale node at the end.
    p_listed: bool,
}

/// Cluster: `core` nodes, then the stale node p, then the churners. p is cut off (frozen or
/// partitioned) and downed; `removals` churning incarnations are removed one after the
/// other; after `resume_after` of them p meets the cluster again, while the churn goes on;
/// then a minute more. The oracle watches every running node throughout; p's own
/// incarnation joins the dead once the leader has removed it.
fn stale_member<const M: usize, const R: usize>(sc: &Scenario) -> Outcome {
    let mut sim: Sim<M, R> = Sim::new(sc.seed);
    // The simulator's own checker too (structural invariants, a removed member coming back).
    sim.check_invariants(true);
    sim.record_events(false);
    let n = sc.core + 1 + sc.churners;
    let ids = sim.start_cluster(n, &sc.config, sc.core.min(2));
    let core: Vec<NodeId> = ids[..sc.core].to_vec();
    let p = ids[sc.core];
    let churners: Vec<NodeId> = ids[sc.core + 1..].to_vec();
    let live: Vec<NodeId> = ids.iter().copied().filter(|i| *i != p).collect();
    let c0 = core[0];
    let mut o = Oracle::new();
    let run =
        |sim: &mut Sim<M, R>, o: &mut Oracle, secs: u64, cond: &dyn Fn(&Sim<M, R>) -> bool| {
            let r = sim.run_until(Duration::from_secs(secs), |s| o.check(s) || cond(s));
            if o.violation.is_some() {
                Ok(false)
            } else {
                r.map(|_| true)
            }
        };
    run(&mut sim, &mut o, 60, &|s| s.all_up(&ids)).expect("cluster formed");
    if sc.holder == Holder::Pause {
        sim.pause(p, Duration::from_secs(24 * 3600));
    }
    sim.partition(&[p], &live);
    if matches!(sc.config.downing.downing, Downing::Manual) {
        run(&mut sim, &mut o, 60, &|s| {
            s.node(c0)
                .unreachable()
                .any(|m| m.address.socket_addr() == s.addr(p))
        })
        .expect("p flagged");
        sim.down(c0, p);
    }
    run(&mut sim, &mut o, 120, &|s| {
        live.iter().all(|i| {
            s.status_of(*i, p) == Some(MemberStatus::Down)
                || !s.node(*i).gossip().is_member(&s.node(p).address())
        })
    })
    .expect("p downed");
    let p_addr = sim.node(p).address();
    if sc.churn_after_its_removal {
        run(&mut sim, &mut o, 60, &|s| {
            !s.node(c0).gossip().is_member(&p_addr)
        })
        .expect("p removed");
    }
    let mut held_at_resume = false;
    let mut tombstones_at_resume = 0;
    let mut p_tombstoned_at_resume = false;
    let mut round = 0;
    let mut ok = true;
    let mut healed = false;
    loop {
        if !sim.node(c0).gossip().is_member(&p_addr) {
            o.dead.insert(p_addr);
        }
        if round == sc.resume_after {
            held_at_resume = sim.node(c0).gossip().is_member(&p_addr);
            tombstones_at_resume = sim.node(c0).gossip().tombstones().len();
            p_tombstoned_at_resume = sim.node(c0).gossip().is_tombstoned(&p_addr);
            if sc.holder == Holder::Pause {
                sim.pause(p, Duration::ZERO);
            }
        }
        if round >= sc.resume_after && !healed {
            let flagging = |s: &Sim<M, R>| s.node(p).unreachable().next().is_some();
            // A frozen p wakes up still cut off, and the partition heals only once p flags
            // someone: p has then made a change of its own, so its view is concurrent with the
            // cluster's whatever else happened.
            if round == sc.removals {
                // No churn left to wait through: wait here.
                ok = run(&mut sim, &mut o, 10, &flagging).unwrap_or(true);
            }
            if flagging(&sim) || round == sc.removals {
                sim.heal();
                healed = true;
            }
        }
        if round == sc.removals || !ok {
            break;
        }
        let c = churners[round % churners.len()];
        let old = sim.node(c).address();
        o.dead.insert(old);
        match sc.churn {
            Churn::Leave => sim.leave(c, c),
            Churn::Down => sim.down(c0, c),
            Churn::Restart => sim.crash(c),
        }
        if sc.churn != Churn::Restart {
            ok = run(&mut sim, &mut o, REMOVAL_WAIT, &|s| {
                s.is_stopped(c) && core.iter().all(|i| !s.node(*i).gossip().is_member(&old))
            })
            .unwrap_or_else(|e| panic!("round {round}: removal: {e}"));
            if !ok {
                break;
            }
        }
        sim.restart(c);
        sim.join_seed_nodes(c, &core);
        let live = &live;
        ok = run(&mut sim, &mut o, REMOVAL_WAIT, &|s| {
            live.iter().all(|i| {
                s.status_of(*i, c) == Some(MemberStatus::Up) && !s.node(*i).gossip().is_member(&old)
            })
        })
        .unwrap_or_else(|e| panic!("round {round}: rejoin: {e}"));
        round += 1;
    }
    if ok {
        let _ = run(&mut sim, &mut o, REMOVAL_WAIT, &|_| false);
    }
    if o.violation.is_none() {
        o.final_check(&sim, c0);
    }
    Outcome {
        violation: o.violation.map(|v| format!("seed {}: {v}", sc.seed)),
        held_at_resume,
        tombstones_at_resume,
        p_tombstoned_at_resume,
        p_status: sim.node(p).status(),
        p_listed: sim.node(c0).gossip().is_member(&p_addr),
    }
}

fn assert_no_resurrection(out: &Outcome) {
    if let Some(v) = &out.violation {
        panic!("a removed incarnation came back: {v}\n{out:?}");
    }
}

// ----- resurrections (fail today) --------------------------------------------------------

/// The smallest case: keep-majority with a one-hour down-removal margin. p is frozen, the
/// resolver downs it and the margin keeps it a member; the two churners leave and rejoin in
/// turn, M + 1 = 9 graceful leaves (Exiting members are not held by the margin), and the
/// ninth pushes the first leaver's tombstone out. p wakes up (still cut off, it flags the
/// dead incarnations it watches, a change of its own), the partition heals, the cluster sees
/// p answer again. Its gossip, stale and concurrent, named the first leaver's old incarnation,
/// which came back as Up on every node (seeds 0..29 all did). Now p's gossip is not merged:
/// p is Down, and is told so.
#[test]
fn m_plus_1_leaves_while_a_frozen_down_member_is_held_keep_the_first_out() {
    for seed in fjell_sim::seeds(1) {
        let out = stale_member::<8, 64>(&Scenario::new(
            seed,
            config(KEEP_MAJORITY, HOUR),
            Holder::Pause,
            Churn::Leave,
            9,
            9,
        ));
        assert!(
            out.held_at_resume && out.tombstones_at_resume == 8,
            "{out:?}"
        );
        assert_no_resurrection(&out);
    }
}

/// Default keep-majority settings (down-removal margin = stable-after, 7 s here). Every
/// time the resolver or an operator downs someone, the leader holds all Down members for
/// another margin (`Resolver::observe`), while a downed member that sees its Down stops,
/// confirms and is removed at once. So a rolling "down and restart" of the churners keeps the
/// frozen p held while removals pile up; p resumes after 10 of them and the churn goes on.
/// Old incarnations of both churners came back (seeds 0..29 all did). Removals that wait for
/// tombstones to come of age now let the margin lapse, so p may be removed before it resumes.
#[test]
fn default_keep_majority_with_rolling_downs_keeps_removed_incarnations_out() {
    for seed in fjell_sim::seeds(1) {
        let out = stale_member::<8, 64>(&Scenario::new(
            seed,
            config(KEEP_MAJORITY, None),
            Holder::Pause,
            Churn::Down,
            30,
            10,
        ));
        assert_no_resurrection(&out);
    }
}

/// The same with lease-majority (the lease is the simulator's memory lease).
#[test]
fn lease_majority_with_rolling_downs_keeps_removed_incarnations_out() {
    for seed in fjell_sim::seeds(1) {
        let out = stale_member::<8, 64>(&Scenario::new(
            seed,
            config(LEASE_MAJORITY, None),
            Holder::Pause,
            Churn::Down,
            30,
            10,
        ));
        assert_no_resurrection(&out);
    }
}

/// Manual downing with a one-hour down-removal margin, and a plain partition: p keeps
/// running on its side (nobody there downs anything), flags the others and bumps its own
/// clock entry, so its view is concurrent with the cluster's for certain. An operator downs
/// p on the majority side; 10 graceful leaves later the partition heals.
#[test]
fn manual_downing_with_a_margin_keeps_removed_incarnations_out_after_a_partition() {
    for seed in fjell_sim::seeds(1) {
        let out = stale_member::<8, 64>(&Scenario::new(
            seed,
            config(Downing::Manual, HOUR),
            Holder::Partition,
            Churn::Leave,
            10,
            10,
        ));
        assert_no_resurrection(&out);
    }
}

/// The first test with the device preset's capacities (M = 16, R = 12): 17 graceful leaves
/// while p is held.
#[test]
fn device_capacities_m_plus_1_leaves_while_a_frozen_down_member_is_held_keep_the_first_out() {
    for seed in fjell_sim::seeds(1) {
        let out = stale_member::<16, 12>(&Scenario::new(
            seed,
            config(KEEP_MAJORITY, HOUR),
            Holder::Pause,
            Churn::Leave,
            17,
            17,
        ));
        assert!(
            out.held_at_resume && out.tombstones_at_resume == 16,
            "{out:?}"
        );
        assert_no_resurrection(&out);
    }
}

/// No held Down member at all (manual downing, no margin): for 2 s right after x starts
/// leaving, the link c1 → c0 delivers two minutes late. A full gossip c1 sent then names x
/// (Leaving, with x's own clock entry, bumped by its leave) and lands at c0 after x's
/// removal and more graceful leaves: c1 is a member c0 sees reachable, and the gossip's clock
/// names an entry c0 has pruned (so it is concurrent). When 11 leaves had pushed the
/// tombstones of x's and y's first incarnations out, whichever it named came back (26 of seeds
/// 0..29). Now the tombstones outlive the message: removals wait until the oldest is
/// `TOMBSTONE_MIN_AGE` old.
#[test]
fn a_gossip_delivered_after_m_plus_1_removals_keeps_removed_incarnations_out() {
    for seed in fjell_sim::seeds(1) {
        let mut sim: Sim<8, 64> = Sim::new(seed);
        sim.check_invariants(false);
        sim.record_events(false);
        let ids = sim.start_cluster(4, &config(Downing::Manual, None), 2);
        let (c0, c1, x, y) = (ids[0], ids[1], ids[2], ids[3]);
        let mut o = Oracle::new();
        sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
            .expect("cluster formed");
        let x0 = sim.node(x).address();
        sim.leave(x, x);
        o.dead.insert(x0);
        let slow = LinkConfig {
            latency: Duration::from_secs(120),
            ..LinkConfig::default()
        };
        sim.set_link(c1, c0, slow);
        sim.run_for(Duration::from_secs(2));
        sim.set_link(c1, c0, LinkConfig::default());
        for round in 0..12 {
            let c = if round % 2 == 0 { x } else { y };
            let old = sim.node(c).address();
            if round > 0 {
                o.dead.insert(old);
                sim.leave(c, c);
            }
            sim.run_until(Duration::from_secs(REMOVAL_WAIT), |s| {
                o.check(s)
                    || (s.is_stopped(c)
                        && [c0, c1]
                            .iter()
                            .all(|i| !s.node(*i).gossip().is_member(&old)))
            })
            .unwrap_or_else(|e| panic!("round {round}: removal: {e}"));
            if o.violation.is_some() {
                break;
            }
            sim.restart(c);
            sim.join_seed_nodes(c, &[c0, c1]);
            sim.run_until(Duration::from_secs(REMOVAL_WAIT), |s| {
                o.check(s) || s.all_up(&ids)
            })
            .unwrap_or_else(|e| panic!("round {round}: rejoin: {e}"));
            if o.violation.is_some() {
                break;
            }
        }
        assert!(
            o.violation.is_some() || !sim.node(c0).gossip().is_tombstoned(&x0),
            "seed {seed}: x's tombstone should be gone by now"
        );
        let _ = sim.run_until(Duration::from_secs(150), |s| o.check(s));
        if o.violation.is_none() {
            o.final_check(&sim, c0);
        }
        if let Some(v) = o.violation {
            panic!("a removed incarnation came back: seed {seed}: {v}");
        }
    }
}

// ----- paths that stay closed --------------------------------------------------------------

/// Control for the first test: with exactly M = 8 leaves every removal's tombstone is still
/// kept, the merge drops the old incarnations p still lists, and p learns it is Down and
/// stops.
#[test]
fn m_leaves_while_a_frozen_down_member_is_held_keep_its_stale_view_out() {
    for seed in fjell_sim::seeds(3) {
        let out = stale_member::<8, 64>(&Scenario::new(
            seed,
            config(KEEP_MAJORITY, HOUR),
            Holder::Pause,
            Churn::Leave,
            8,
            8,
        ));
        assert_no_resurrection(&out);
        assert!(
            out.held_at_resume && out.tombstones_at_resume == 8,
            "{out:?}"
        );
        assert_eq!(
            out.p_status,
            NodeStatus::Stopped(StopReason::Downed),
            "{out:?}"
        );
        assert!(!out.p_listed, "{out:?}");
    }
}

/// Manual downing without a margin (the default): the partitioned p is removed as soon as it
/// is downed, then 10 crash-restarts of the churners push its tombstone out. When the
/// partition heals, nothing of p's stale view gets in: every node drops gossip from a sender
/// it does not list as a member (`Node::on_gossip`, `valid_peer`), p's gossip is addressed to
/// the churners' dead uids (refused by the new incarnations: `to != self.me`), and the
/// cluster sends p nothing (it is no member). Note that p is not stopped either: with its
/// tombstone gone nobody answers it with one (`Node::tell_removed`), so it keeps running,
/// a member of its own stale view.
#[test]
fn a_stale_member_removed_at_once_stays_out_after_its_tombstone_is_evicted() {
    for seed in fjell_sim::seeds(3) {
        let out = stale_member::<8, 64>(&Scenario::new(
            seed,
            config(Downing::Manual, None),
            Holder::Partition,
            Churn::Restart,
            10,
            10,
        ));
        assert_no_resurrection(&out);
        assert!(
            !out.held_at_resume && !out.p_tombstoned_at_resume,
            "{out:?}"
        );
        assert!(!out.p_listed, "{out:?}");
    }
}

/// The removed node itself resumes: p is frozen across its own removal (keep-majority with
/// the default 7 s margin removes it 7 s after downing it), 14 graceful leaves after that push
/// its tombstone out, then p wakes up and gossips its stale view. No node takes it back, for
/// the reasons above; the churn goes on around it for 6 more removals. (The leaves are counted
/// from p's removal: since the leader acts as soon as its state converges, a leave takes about
/// a second, and seven of them fitted in the margin, leaving too few after it.)
#[test]
fn a_node_frozen_across_its_own_removal_stays_out_after_its_tombstone_is_evicted() {
    for seed in fjell_sim::seeds(3) {
        let out = stale_member::<8, 64>(&Scenario {
            churn_after_its_removal: true,
            ..Scenario::new(
                seed,
                config(KEEP_MAJORITY, None),
                Holder::Pause,
                Churn::Leave,
                20,
                14,
            )
        });
        assert_no_resurrection(&out);
        assert!(
            !out.held_at_resume && !out.p_tombstoned_at_resume,
            "{out:?}"
        );
        assert!(!out.p_listed, "{out:?}");
    }
}

/// A Joining member is not needed for convergence while it is reachable, but an unreachable
/// one that is not Down blocks it (`Gossip::is_converged`), so no removal happens while it
/// is cut off: it cannot carry a stale view across M removals without being downed first
/// (and then it is the Down member of the tests above). Same rule for WeaklyUp and Up.
#[test]
fn an_unreachable_joining_member_blocks_every_removal() {
    for seed in fjell_sim::seeds(3) {
        let mut sim: Sim<8, 64> = Sim::new(seed);
        let cfg = config(Downing::Manual, None);
        // Node 0 (the leader once Up, by address) moves nobody up below 6 members, so the
        // joiner stays Joining.
        let strict = Config {
            min_nr_of_members: 6,
            ..cfg.clone()
        };
        let c0 = sim.add_node(strict);
        let others: Vec<NodeId> = (0..3).map(|_| sim.add_node(cfg.clone())).collect();
        for i in &others {
            sim.join_seed_nodes(*i, &others[..1]);
        }
        sim.run_until(Duration::from_secs(60), |s| s.all_up(&others))
            .expect("cluster formed");
        sim.join_seed_nodes(c0, &others[..1]);
        let ids = [c0, others[0], others[1], others[2]];
        sim.run_until(Duration::from_secs(60), |s| {
            s.all_up(&ids) && s.leader_of(others[0]) == Some(c0)
        })
        .expect("node 0 up and leading");
        let j = sim.add_node(cfg.clone());
        sim.join_seed_nodes(j, &[c0]);
        sim.run_until(Duration::from_secs(30), |s| {
            ids.iter()
                .all(|i| s.status_of(*i, j) == Some(MemberStatus::Joining))
        })
        .expect("j joining");
        sim.partition(&[j], &ids);
        sim.run_until(Duration::from_secs(30), |s| {
            s.node(c0)
                .unreachable()
                .any(|m| m.address.socket_addr() == s.addr(j))
        })
        .expect("j flagged");
        assert_eq!(
            sim.status_of(c0, j),
            Some(MemberStatus::Joining),
            "seed {seed}"
        );
        let mut o = Oracle::new();
        let leaver = others[2];
        let old = sim.node(leaver).address();
        sim.leave(leaver, leaver);
        o.dead.insert(old);
        let r = sim.run_until(Duration::from_secs(60), |s| {
            o.check(s) || !s.node(c0).gossip().is_member(&old)
        });
        assert!(r.is_err(), "seed {seed}: removed while j was cut off");
        assert_eq!(
            sim.status_of(c0, leaver),
            Some(MemberStatus::Leaving),
            "seed {seed}"
        );
        assert!(sim.node(c0).gossip().tombstones().is_empty(), "seed {seed}");
        sim.down(c0, j);
        sim.run_until(Duration::from_secs(60), |s| {
            o.check(s) || !s.node(c0).gossip().is_member(&old)
        })
        .expect("removed once j is down");
        assert!(o.violation.is_none(), "{:?}", o.violation);
    }
}

/// A full table of young tombstones makes removals wait, visibly: with `M` = 4, the fifth
/// graceful leave in a row stays Exiting, the leader reports `LimitReached(Tombstones)`, and
/// the member is removed once the oldest tombstone is `TOMBSTONE_MIN_AGE` old.
#[test]
fn removals_wait_for_a_tombstone_to_come_of_age_and_say_so() {
    use fjell_core::node::TOMBSTONE_MIN_AGE;
    use fjell_core::{Event, Limit};
    let mut sim: Sim<4, 16> = Sim::new(5);
    sim.record_events(true);
    let ids = sim.start_cluster(4, &config(Downing::Manual, None), 2);
    sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
        .expect("cluster formed");
    let (c0, c1) = (ids[0], ids[1]);
    let start = sim.now();
    for round in 0..5 {
        let c = ids[2 + round % 2];
        let old = sim.node(c).address();
        sim.leave(c, c);
        let removed = sim.run_until(Duration::from_secs(60), |s| {
            !s.node(c0).gossip().is_member(&old) && !s.node(c1).gossip().is_member(&old)
        });
        if round < 4 {
            removed.unwrap_or_else(|e| panic!("round {round}: {e}"));
            sim.restart(c);
            sim.join_seed_nodes(c, &[c0, c1]);
            sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
                .unwrap_or_else(|e| panic!("round {round}: rejoin: {e}"));
        } else {
            assert!(removed.is_err(), "the fifth removal waits");
            assert_eq!(sim.status_of(c0, c), Some(MemberStatus::Exiting));
            let reported = ids.iter().any(|&i| {
                sim.events_of(i)
                    .any(|e| *e == Event::LimitReached(Limit::Tombstones))
            });
            assert!(reported, "the wait is reported");
            sim.run_until(TOMBSTONE_MIN_AGE, |s| !s.node(c0).gossip().is_member(&old))
                .expect("removed once the oldest tombstone is old enough");
            assert!(sim.now() - start >= TOMBSTONE_MIN_AGE);
        }
    }
}

/// Two members that each downed the other (an operator on each side of a partition) must not
/// answer each other's gossip for good once the partition heals: gossip from a Down member is
/// answered only if it still counts the receiver in (found in review: each answer drew an
/// answer, at network speed).
#[test]
fn two_members_that_downed_each_other_do_not_answer_each_other_for_good() {
    let mut sim: Sim<8, 64> = Sim::new(9);
    let ids = sim.start_cluster(2, &config(Downing::Manual, HOUR), 1);
    sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
        .expect("cluster formed");
    let (a, b) = (ids[0], ids[1]);
    sim.partition(&[a], &[b]);
    sim.run_until(Duration::from_secs(60), |s| {
        s.node(a).unreachable().next().is_some() && s.node(b).unreachable().next().is_some()
    })
    .expect("each flags the other");
    sim.down(a, b);
    sim.down(b, a);
    sim.run_for(Duration::from_secs(5));
    sim.heal();
    sim.run_for(Duration::from_secs(5));
    let before = sim.traffic().gossip_bytes;
    sim.run_for(Duration::from_secs(10));
    let gossip = sim.traffic().gossip_bytes - before;
    // A few full gossips per second at most (a couple of hundred bytes each), not a flood.
    assert!(gossip < 20_000, "{gossip} gossip bytes in 10 s");
}
