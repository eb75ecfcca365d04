//! A run of the adversarial campaign as plain data: the simulator seed, the drawn parameters
//! and a list of (wait, fault) steps. [`super::replay`] runs one deterministically; a failing
//! one is shrunk ([`super::shrink()`]) and printed as a Rust test ([`Schedule::to_rust_test`]).

use std::fmt::Write as _;
use std::time::Duration;

use fjell_core::{Config, Downing, Strategy, WhenUnstable};

use crate::{LinkConfig, NodeId};

/// A split brain resolver strategy, as data (no roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sbr {
    /// `keep-majority`.
    KeepMajority,
    /// `static-quorum` with this quorum size.
    StaticQuorum(u32),
    /// `keep-oldest`.
    KeepOldest {
        /// `down-if-alone`.
        down_if_alone: bool,
    },
    /// `lease-majority` (the simulator's in-memory lease).
    LeaseMajority,
    /// `down-all`.
    DownAll,
}

impl Sbr {
    /// The core's strategy.
    pub fn strategy(self) -> Strategy {
        match self {
            Sbr::KeepMajority => Strategy::KeepMajority { role: None },
            Sbr::StaticQuorum(size) => Strategy::StaticQuorum { size, role: None },
            Sbr::KeepOldest { down_if_alone } => Strategy::KeepOldest {
                down_if_alone,
                role: None,
            },
            Sbr::LeaseMajority => Strategy::LeaseMajority { role: None },
            Sbr::DownAll => Strategy::DownAll,
        }
    }

    fn rust(self) -> String {
        match self {
            Sbr::KeepMajority => "Sbr::KeepMajority".into(),
            Sbr::StaticQuorum(q) => format!("Sbr::StaticQuorum({q})"),
            Sbr::KeepOldest { down_if_alone } => {
                format!("Sbr::KeepOldest {{ down_if_alone: {down_if_alone} }}")
            }
            Sbr::LeaseMajority => "Sbr::LeaseMajority".into(),
            Sbr::DownAll => "Sbr::DownAll".into(),
        }
    }
}

/// The default link of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 1 ms, no jitter, no loss.
    Clean,
    /// 1 ms + up to 20 ms jitter, 1% loss ([`LinkConfig::jittery_lossy`]).
    Jittery,
    /// 5 ms + up to 50 ms jitter, 0.5% loss, 0.5% duplicates.
    Slow,
}

impl Profile {
    /// The link.
    pub fn link(self) -> LinkConfig {
        match self {
            Profile::Clean => LinkConfig::default(),
            Profile::Jittery => LinkConfig::jittery_lossy(),
            Profile::Slow => LinkConfig {
                latency: Duration::from_millis(5),
                jitter: Duration::from_millis(50),
                loss: 0.005,
                duplicate: 0.005,
            },
        }
    }
}

/// A node beyond the initial cluster: added at the start, idle until a [`Fault::Join`] names
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// A node with the run's settings but this strategy (the run's own, or a different one: a
    /// mixed configuration, which the cluster may refuse).
    Joiner(Sbr),
    /// A node of another cluster (another cluster name): it refuses every join request, so
    /// listing it as a seed must not stop a joiner.
    Stranger,
    /// A node with the run's settings whose messages carry this protocol version: it must
    /// never become a member.
    OtherVersion(u8),
}

/// What a run draws before its faults.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Initial cluster size (nodes `0..nodes`, joining through the first three).
    pub nodes: usize,
    /// The cluster's strategy.
    pub sbr: Sbr,
    /// `down-all-when-unstable` on (the default) or off.
    pub down_all_when_unstable: bool,
    /// `stable-after` in ms; `None` is the size-based default.
    pub stable_after_ms: Option<u64>,
    /// The default link.
    pub profile: Profile,
    /// Nodes `nodes..nodes + extras.len()`.
    pub extras: Vec<Extra>,
    /// `max-members` of node `i` (missing or 0: the node's own capacity): runs at and over
    /// the cluster's capacity, with members and joiners that hold different sizes.
    pub max_members: Vec<u16>,
    /// Nodes configured `leader-eligible = false`: members that never lead nor decide for
    /// their side (never node 0, the first seed, which founds the cluster).
    pub followers: Vec<NodeId>,
}

impl Params {
    /// The configuration of a node running `sbr` with this run's other settings.
    pub fn config(&self, sbr: Sbr) -> Config {
        let mut c = Config::default();
        c.downing.downing = Downing::SplitBrainResolver(sbr.strategy());
        c.downing.stable_after = self.stable_after_ms.map(Duration::from_millis);
        c.downing.down_all_when_unstable = if self.down_all_when_unstable {
            WhenUnstable::On
        } else {
            WhenUnstable::Off
        };
        c
    }

    /// The configuration of node `id`.
    pub fn config_of(&self, id: NodeId) -> Config {
        let mut c = self.config_without_cap(id);
        c.max_members = self.max_members.get(id).copied().filter(|m| *m > 0);
        c.leader_eligible = self.leader_eligible(id);
        c
    }

    /// The configuration node `id` restarts with after a rolling change to `sbr`.
    pub fn reconfigured(&self, id: NodeId, sbr: Sbr) -> Config {
        let mut c = self.config(sbr);
        c.leader_eligible = self.leader_eligible(id);
        c
    }

    /// Whether node `id` may lead (it is not one of [`Params::followers`]).
    pub fn leader_eligible(&self, id: NodeId) -> bool {
        !self.followers.contains(&id)
    }

    fn config_without_cap(&self, id: NodeId) -> Config {
        match id.checked_sub(self.nodes).map(|i| self.extras[i]) {
            None | Some(Extra::OtherVersion(_)) => self.config(self.sbr),
            Some(Extra::Joiner(sbr)) => self.config(sbr),
            Some(Extra::Stranger) => {
                let mut c = self.config(self.sbr);
                c.cluster_name.clear();
                let _ = c.cluster_name.push_str("stranger");
                c
            }
        }
    }

    /// The extra kind of node `id`, if it is one.
    pub fn extra(&self, id: NodeId) -> Option<Extra> {
        id.checked_sub(self.nodes).map(|i| self.extras[i])
    }

    /// All node ids.
    pub fn all(&self) -> Vec<NodeId> {
        (0..self.nodes + self.extras.len()).collect()
    }

    /// The seed nodes (the first three of the initial cluster).
    pub fn seeds(&self) -> Vec<NodeId> {
        (0..self.nodes.min(3)).collect()
    }
}

/// When a step's fault comes, relative to the previous step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// After this many ms.
    Ms(u64),
    /// This many ms after the first `UnreachableMember` any node reports after the previous
    /// step (or 30 s, if none comes).
    Unreachable(u64),
    /// This many ms after the first `Downing` any node reports after the previous step (or
    /// 60 s, if none comes).
    Downing(u64),
}

/// A fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Heal everything, then cut every side off from the others (both ways).
    Split(Vec<Vec<NodeId>>),
    /// Add: no link between the two groups, both ways (on top of what is blocked already).
    Cut(Vec<NodeId>, Vec<NodeId>),
    /// Remove: the links between the two groups work again, both ways.
    Mend(Vec<NodeId>, Vec<NodeId>),
    /// Block the directed link `from → to`.
    OneWay(NodeId, NodeId),
    /// Unblock every link.
    Heal,
    /// Every link to and from the node loses this percentage of messages.
    Lossy(NodeId, u8),
    /// The node's links are back to the run's profile.
    Restore(NodeId),
    /// A stop-the-world pause of this many ms.
    Pause(NodeId, u64),
    /// Crash.
    Crash(NodeId),
    /// Restart with a new uid (crashing first if running) and join through these nodes.
    Restart(NodeId, Vec<NodeId>),
    /// The node leaves gracefully.
    Leave(NodeId),
    /// The (idle) node joins through these nodes, as seed nodes.
    Join(NodeId, Vec<NodeId>),
    /// Restart with a new uid and this strategy (the run's other settings unchanged), and join
    /// through these nodes: a rolling configuration change, which the cluster may refuse.
    Reconfigure(NodeId, Sbr, Vec<NodeId>),
}

impl Fault {
    /// Every node the fault names.
    pub fn nodes(&self) -> Vec<NodeId> {
        match self {
            Fault::Split(sides) => sides.concat(),
            Fault::Cut(a, b) | Fault::Mend(a, b) => [a.as_slice(), b].concat(),
            Fault::OneWay(a, b) => vec![*a, *b],
            Fault::Heal => vec![],
            Fault::Lossy(n, _)
            | Fault::Restore(n)
            | Fault::Pause(n, _)
            | Fault::Crash(n)
            | Fault::Leave(n) => vec![*n],
            Fault::Restart(n, via) | Fault::Join(n, via) | Fault::Reconfigure(n, _, via) => {
                let mut v = vec![*n];
                v.extend(via);
                v
            }
        }
    }

    fn rust(&self) -> String {
        let v = |x: &[NodeId]| format!("vec!{x:?}");
        match self {
            Fault::Split(sides) => format!(
                "Fault::Split(vec![{}])",
                sides.iter().map(|s| v(s)).collect::<Vec<_>>().join(", ")
            ),
            Fault::Cut(a, b) => format!("Fault::Cut({}, {})", v(a), v(b)),
            Fault::Mend(a, b) => format!("Fault::Mend({}, {})", v(a), v(b)),
            Fault::OneWay(a, b) => format!("Fault::OneWay({a}, {b})"),
            Fault::Heal => "Fault::Heal".into(),
            Fault::Lossy(n, p) => format!("Fault::Lossy({n}, {p})"),
            Fault::Restore(n) => format!("Fault::Restore({n})"),
            Fault::Pause(n, ms) => format!("Fault::Pause({n}, {ms})"),
            Fault::Crash(n) => format!("Fault::Crash({n})"),
            Fault::Restart(n, via) => format!("Fault::Restart({n}, {})", v(via)),
            Fault::Leave(n) => format!("Fault::Leave({n})"),
            Fault::Join(n, via) => format!("Fault::Join({n}, {})", v(via)),
            Fault::Reconfigure(n, sbr, via) => {
                format!("Fault::Reconfigure({n}, {}, {})", sbr.rust(), v(via))
            }
        }
    }
}

/// One step: wait, then inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When, relative to the previous step (the first: to the formed cluster).
    pub wait: Wait,
    /// What.
    pub fault: Fault,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The simulator seed (and the campaign seed it was drawn from).
    pub seed: u64,
    /// The parameters.
    pub params: Params,
    /// The faults.
    pub steps: Vec<Step>,
    /// How long the state after the last step is held, in ms.
    pub tail_ms: u64,
    /// How long the run goes on after the final heal, in ms.
    pub settle_ms: u64,
}

impl Schedule {
    /// The schedule as a Rust expression.
    pub fn to_rust(&self) -> String {
        let p = &self.params;
        let mut s = String::new();
        let _ = writeln!(s, "Schedule {{");
        let _ = writeln!(s, "    seed: {},", self.seed);
        let _ = writeln!(s, "    params: Params {{");
        let _ = writeln!(s, "        nodes: {},", p.nodes);
        let _ = writeln!(s, "        sbr: {},", p.sbr.rust());
        let _ = writeln!(
            s,
            "        down_all_when_unstable: {},",
            p.down_all_when_unstable
        );
        let _ = writeln!(s, "        stable_after_ms: {:?},", p.stable_after_ms);
        let _ = writeln!(s, "        profile: Profile::{:?},", p.profile);
        let extras: Vec<String> = p
            .extras
            .iter()
            .map(|e| match e {
                Extra::Joiner(sbr) => format!("Extra::Joiner({})", sbr.rust()),
                Extra::Stranger => "Extra::Stranger".into(),
                // Relative to the current version, so the schedule still means "another
                // version" after the protocol version changes.
                Extra::OtherVersion(v) => format!(
                    "Extra::OtherVersion(fjell_core::testing::wire::PROTOCOL_VERSION.wrapping_add({}))",
                    v.wrapping_sub(fjell_core::testing::wire::PROTOCOL_VERSION)
                ),
            })
            .collect();
        let _ = writeln!(s, "        extras: vec![{}],", extras.join(", "));
        let _ = writeln!(s, "        max_members: vec!{:?},", p.max_members);
        let _ = writeln!(s, "        followers: vec!{:?},", p.followers);
        let _ = writeln!(s, "    }},");
        let _ = writeln!(s, "    steps: vec![");
        for st in &self.steps {
            let _ = writeln!(
                s,
                "        Step {{ wait: Wait::{:?}, fault: {} }},",
                st.wait,
                st.fault.rust()
            );
        }
        let _ = writeln!(s, "    ],");
        let _ = writeln!(s, "    tail_ms: {},", self.tail_ms);
        let _ = writeln!(s, "    settle_ms: {},", self.settle_ms);
        s.push('}');
        s
    }

    /// A test that replays this schedule and expects no oracle to fail, ready for
    /// `sim/tests/`.
    pub fn to_rust_test(&self, name: &str) -> String {
        let body = self.to_rust().replace('\n', "\n    ");
        format!(
            "#[test]\nfn {name}() {{\n    use fjell_sim::campaign::*;\n    let schedule = {body};\n    \
             if let Err(f) = replay(&schedule) {{\n        panic!(\"{{f}}\");\n    }}\n}}\n"
        )
    }

    /// Total virtual time of the fault phase if every wait were a plain delay (event waits
    /// count their offset), in ms.
    pub fn nominal_ms(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s.wait {
                Wait::Ms(m) | Wait::Unreachable(m) | Wait::Downing(m) => m,
            })
            .sum::<u64>()
            + self.tail_ms
            + self.settle_ms
    }
}
