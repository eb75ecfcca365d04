//! The cluster-scale membership measurements, with their targets: shared by
//! `benches/membership.rs`, which reports them for 1,000 nodes, and `tests/rounds.rs`, which
//! fails when a run misses a target, so a regression shows up in `cargo test` and not only in a
//! bench nobody reads.
//!
//! Every link has 1 ms latency; the gossip interval is the default 1 s. A "round" is one gossip
//! tick on every node, speed-up ticks included (total rounds run across nodes / node count).

use std::time::Duration;

use fjell_core::{Config, MemberStatus};

use crate::targets::Targets;
use crate::{NodeId, Sim};

/// Every node knows every member of a cold start, at most (seconds).
pub const KNOW_ALL_SECS: f64 = 5.0;
/// Every node sees every member of a cold start Up, at most (seconds).
pub const ALL_UP_SECS: f64 = 15.0;
/// Every node of a cold start has the same converged state, at most (seconds).
pub const CONVERGED_SECS: f64 = 20.0;
/// One change (a member leaves) reaches every node, at most (rounds): push-pull gossip's bound
/// for 1,000 nodes is about 8.2 rounds.
pub const CHANGE_ROUNDS: f64 = 12.0;
/// The leader sees convergence on that change, at most (rounds).
pub const CHANGE_CONVERGED_ROUNDS: f64 = 16.0;
/// The member that left is gone from every node's member list, at most (seconds after its
/// leave).
pub const REMOVED_SECS: f64 = 30.0;

/// What a cold start took, in virtual time from the moment every node starts joining.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    /// Until every node knows every member.
    pub know: Duration,
    /// Until every node sees every member Up.
    pub up: Duration,
    /// Until every node has the same state and sees convergence.
    pub converged: Duration,
}

impl ColdStart {
    /// Checks the cold-start targets.
    pub fn check(&self, targets: &mut Targets) {
        targets.at_most(
            "every node knows all members (s)",
            self.know.as_secs_f64(),
            KNOW_ALL_SECS,
        );
        targets.at_most(
            "every node sees all Up (s)",
            self.up.as_secs_f64(),
            ALL_UP_SECS,
        );
        targets.at_most(
            "cold start converged (s)",
            self.converged.as_secs_f64(),
            CONVERGED_SECS,
        );
    }
}

/// What one change (a member leaving) took to spread, in virtual time and rounds from the
/// leave.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// Nodes that counted (running before the leave).
    pub nodes: usize,
    /// Until every node has the change.
    pub everyone: Duration,
    /// Rounds until every node has the change.
    pub everyone_rounds: f64,
    /// Until the leader sees convergence on it.
    pub converged: Duration,
    /// Rounds until the leader sees convergence on it.
    pub converged_rounds: f64,
    /// Until no other node lists the member that left.
    pub removed: Duration,
    /// Gossip-lane bytes all nodes sent from the leave until it was removed everywhere, less
    /// what the same nodes send in as long a steady window (measured just before the leave):
    /// what the change cost.
    pub gossip_bytes: f64,
}

impl Change {
    /// Checks the change targets.
    pub fn check(&self, targets: &mut Targets) {
        targets.at_most(
            "rounds until one change reaches every node",
            self.everyone_rounds,
            CHANGE_ROUNDS,
        );
        targets.at_most(
            "rounds until the leader sees convergence on the change",
            self.converged_rounds,
            CHANGE_CONVERGED_ROUNDS,
        );
        targets.at_most(
            "the member that left is removed everywhere (s)",
            self.removed.as_secs_f64(),
            REMOVED_SECS,
        );
    }
}

fn rounds<const M: usize, const R: usize>(sim: &Sim<M, R>, ids: &[NodeId]) -> u64 {
    ids.iter().map(|&i| sim.node(i).stats().gossip_rounds).sum()
}

/// Starts `n` nodes at once with default settings (three seeds) in a new simulation and runs
/// it until they converge. Invariant checks are off: at 1,000 nodes they would cost more than
/// the simulation.
pub fn cold_start<const M: usize, const R: usize>(
    seed: u64,
    n: usize,
) -> (Sim<M, R>, Vec<NodeId>, ColdStart) {
    let mut sim = Sim::new(seed);
    sim.record_events(false);
    sim.check_invariants(false);
    sim.set_check_interval(Duration::from_millis(10));
    let ids = sim.start_cluster(n, &Config::default(), 3);
    let know = sim
        .run_until(Duration::from_secs(120), |s| {
            ids.iter().all(|&i| s.node(i).members().len() == n)
        })
        .expect("every node knows every member");
    let up = sim
        .run_until(Duration::from_secs(120), |s| s.all_up(&ids))
        .expect("every node sees every member up")
        + know;
    let converged = sim
        .run_until(Duration::from_secs(120), |s| s.converged(&ids))
        .expect("converged")
        + up;
    (
        sim,
        ids,
        ColdStart {
            know,
            up,
            converged,
        },
    )
}

/// Member `leaver` leaves; measures until every running node of `ids` has the change, the
/// leader sees convergence on it, and no other node of `ids` lists `leaver`
/// any more.
pub fn change_propagation<const M: usize, const R: usize>(
    sim: &mut Sim<M, R>,
    ids: &[NodeId],
    leaver: NodeId,
) -> Change {
    // Nodes that left in earlier rounds are stopped and no longer count.
    let ids: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|&i| !sim.is_stopped(i))
        .collect();
    let ids = &ids[..];
    let leader = sim.leader_of(ids[0]).expect("leader");
    let who = sim.node(leaver).address();
    // The steady gossip rate, to subtract from the change's window.
    let steady = Duration::from_secs(10);
    let g0 = sim.traffic().gossip_bytes;
    sim.run_for(steady);
    let per_sec = (sim.traffic().gossip_bytes - g0) as f64 / steady.as_secs_f64();
    let g0 = sim.traffic().gossip_bytes;
    let r0 = rounds(sim, ids);
    sim.leave(leaver, leaver);
    let everyone = sim
        .run_until(Duration::from_secs(60), |s| {
            ids.iter().all(|&i| {
                s.node(i)
                    .members()
                    .iter()
                    .find(|m| m.address == who)
                    .is_none_or(|m| m.status != MemberStatus::Up)
            })
        })
        .expect("change reached every node");
    let r1 = rounds(sim, ids);
    // The leader acts at the instant its state converges (Leaving to Exiting), so the
    // converged state may never be there to look at: having acted on it counts.
    let converged = sim
        .run_until(Duration::from_secs(60), |s| {
            let n = s.node(leader);
            n.is_converged()
                || n.members()
                    .iter()
                    .find(|m| m.address == who)
                    .is_none_or(|m| m.status != MemberStatus::Leaving)
        })
        .expect("leader sees convergence")
        + everyone;
    let r2 = rounds(sim, ids);
    let removed = sim
        .run_until(Duration::from_secs(120), |s| {
            ids.iter()
                .filter(|&&i| i != leaver)
                .all(|&i| s.node(i).members().iter().all(|m| m.address != who))
        })
        .expect("the member that left is removed everywhere")
        + converged;
    let spent = (sim.traffic().gossip_bytes - g0) as f64;
    let n = ids.len() as f64;
    Change {
        nodes: ids.len(),
        everyone,
        everyone_rounds: (r1 - r0) as f64 / n,
        converged,
        converged_rounds: (r2 - r0) as f64 / n,
        removed,
        gossip_bytes: spent - per_sec * removed.as_secs_f64(),
    }
}
