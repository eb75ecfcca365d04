//! Cluster info logging (Pekko's `log-info` and `log-info-verbose`), with `tracing`:
//!
//! - **One line per membership change** at info ([`ClusterBuilder::log_info`], on by
//!   default): member joined, up, left, exiting, removed, unreachable, reachable again,
//!   leader changes, downing decisions, refused joins.
//! - **Verbose** ([`ClusterBuilder::log_info_verbose`], off by default): the state after each
//!   change (members, unreachable, leader), convergence reached and lost, and heartbeats
//!   started and stopped to each monitored member. At debug level when verbose is off, so
//!   `RUST_LOG=fjell_runtime=debug` shows them without a restart of the setting.
//!
//! [`ClusterBuilder::log_info`]: crate::ClusterBuilder::log_info
//! [`ClusterBuilder::log_info_verbose`]: crate::ClusterBuilder::log_info_verbose

use fjell_core::{Event, Instant, Node, UniqueAddress};

/// At info when verbose, else at debug.
macro_rules! verbose {
    ($on:expr, $($arg:tt)+) => {
        if $on {
            tracing::info!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}

/// What the verbose lines compare against: the previous flush's view.
#[derive(Debug, Default)]
pub(crate) struct ClusterLog {
    verbose: bool,
    converged: Option<bool>,
    monitored: Vec<UniqueAddress>,
}

impl ClusterLog {
    pub(crate) fn new(verbose: bool) -> Self {
        ClusterLog {
            verbose,
            ..Default::default()
        }
    }

    /// Whether verbose lines would be written anywhere (they cost a pass over the monitors).
    fn wanted(&self) -> bool {
        self.verbose || tracing::enabled!(tracing::Level::DEBUG)
    }

    /// After each flush: the state when it changed (`changed`), convergence, heartbeats.
    pub(crate) fn flushed<const M: usize, const R: usize, const H: usize>(
        &mut self,
        node: &Node<M, R, H>,
        now: Instant,
        changed: bool,
    ) {
        if !self.wanted() {
            return;
        }
        let me = node.address();
        let v = self.verbose;
        if changed {
            verbose!(
                v,
                node = %me,
                members = node.members().len(),
                unreachable = node.unreachable().count(),
                leader = ?node.leader().map(|l| l.to_string()),
                converged = node.is_converged(),
                "fjell: cluster state changed"
            );
        }
        let converged = node.is_converged();
        if self.converged.is_some_and(|c| c != converged) {
            if converged {
                verbose!(v, node = %me, "fjell: convergence reached");
            } else {
                verbose!(v, node = %me, "fjell: convergence lost");
            }
        }
        self.converged = Some(converged);
        let mut now_monitored: Vec<UniqueAddress> =
            node.monitored(now).map(|s| s.subject).collect();
        now_monitored.sort();
        if now_monitored != self.monitored {
            for m in now_monitored.iter().filter(|m| !self.monitored.contains(m)) {
                verbose!(v, node = %me, member = %m, "fjell: heartbeats started");
            }
            for m in self.monitored.iter().filter(|m| !now_monitored.contains(m)) {
                verbose!(v, node = %me, member = %m, "fjell: heartbeats stopped");
            }
            self.monitored = now_monitored;
        }
    }
}

/// One info line per membership change (Pekko's `log-info`).
pub(crate) fn log_event(me: &UniqueAddress, e: &Event) {
    match e {
        Event::UnreachableMember(m) => {
            tracing::info!(node = %me, member = %m.address, "fjell: member unreachable");
        }
        Event::ReachableMember(m) => {
            tracing::info!(node = %me, member = %m.address, "fjell: member reachable again");
        }
        Event::MemberRemoved {
            member,
            previous_status,
        } => {
            tracing::info!(node = %me, member = %member.address, ?previous_status, "fjell: member removed");
        }
        Event::LeaderChanged(l) => {
            tracing::info!(node = %me, leader = ?l.map(|l| l.to_string()), "fjell: leader changed");
        }
        Event::RoleLeaderChanged { role, leader } => {
            tracing::info!(node = %me, %role, leader = ?leader.map(|l| l.to_string()), "fjell: role leader changed");
        }
        Event::JoinRefused { by, reason } => {
            tracing::warn!(node = %me, %by, "fjell: join refused: {reason}");
        }
        Event::JoinRequestRefused { from, reason } => {
            tracing::info!(node = %me, %from, "fjell: refused a join request: {reason}");
        }
        Event::Downing(d) => tracing::info!(node = %me, decision = ?d, "fjell: downing"),
        Event::SelfDowned => tracing::warn!(node = %me, "fjell: this node was downed"),
        Event::Stopped(r) => tracing::info!(node = %me, reason = ?r, "fjell: this node stopped"),
        e => {
            if let Some(m) = crate::state::member_of(e) {
                tracing::info!(node = %me, member = %m.address, status = ?m.status, "fjell: member is {:?}", m.status);
            }
        }
    }
}
