//! Scenarios as data: a TOML file per scenario — the nodes, their settings, a timeline of
//! faults and waits, and what must hold — read into [`Scenario`] and checked before anything
//! starts, so a typo fails with the step and the key, not halfway through a run.
//!
//! The format is described in TESTING.md with a worked example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The most nodes a scenario may have: the harness's address plan (`10.201.0.0/24`).
pub const MAX_NODES: usize = 200;

/// One scenario, as read from its file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// A short name (defaults to the file's stem).
    #[serde(default)]
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// How many nodes (1 to [`MAX_NODES`]); they are numbered from 0.
    pub nodes: usize,
    /// Part of the short selection CI runs.
    #[serde(default)]
    pub ci: bool,
    /// The node program: `"fjell"` (`fjell run`, the default), `"harness-node"` (a program
    /// embedding fjell-runtime that also sends application messages), or a command line of
    /// your own (see [`Program`]).
    #[serde(default)]
    pub program: Program,
    /// The seed nodes, by number (default: the first three).
    #[serde(default)]
    pub seeds: Option<Vec<usize>>,
    /// Use IPv6 addresses (`fd00:f1e1::N`) instead of IPv4 (`10.201.0.N`).
    #[serde(default)]
    pub ipv6: bool,
    /// The seed of the network impairment's random draws (loss, jitter, reordering).
    #[serde(default = "one")]
    pub seed: u64,
    /// Settings for every node's settings file (any `fjell run` key).
    #[serde(default)]
    pub settings: toml::Table,
    /// Settings for single nodes, by number, on top of `settings` (roles, say).
    #[serde(default)]
    pub node_settings: BTreeMap<String, toml::Table>,
    /// What must hold over the whole run.
    #[serde(default)]
    pub expect: Expect,
    /// A control scenario: it shows a check failing, and passes only if the run fails with
    /// a message containing this text (the checks can fail: a scenario set up to split the
    /// brain must be caught).
    #[serde(default)]
    pub fails_with: Option<String>,
    /// The timeline, in order.
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

fn one() -> u64 {
    1
}

/// The program each node runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Program {
    /// A built-in program by name: `"fjell"` or `"harness-node"`.
    Named(BuiltIn),
    /// A command line; `{config}` is replaced by the node's settings file, `{dir}` by its
    /// directory, `{index}` by its number. The program must read its settings with
    /// `fjell_runtime::Settings::from_file` (so it honours `event-log`) and leave gracefully
    /// on SIGTERM. Signals go to the node's process group; a wrapper script should `exec`
    /// the program, so that SIGTERM is not taken for its own.
    Command(Vec<String>),
    /// `fjell run`.
    #[default]
    #[serde(skip)]
    Default,
}

/// The built-in node programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltIn {
    /// `fjell run --config {config}`.
    Fjell,
    /// `fjell-harness node --config {config}`: fjell-runtime embedded in a program that sends
    /// every Up member a numbered application message every 100 ms and logs what it receives.
    HarnessNode,
}

/// What must hold over the whole run. No split brain is always checked, and so is the
/// order of application messages when the program is `harness-node`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    /// No node reports `UnreachableMember` at any time.
    #[serde(default)]
    pub no_unreachable: bool,
    /// No node downs anyone (no `Downing`, `MemberDowned` or `SelfDowned`).
    #[serde(default)]
    pub no_downing: bool,
    /// From the first convergence on, more than half of the nodes are Up at every moment
    /// (a node is Up from its own `MemberUp` until it leaves, is downed, stops or its process
    /// ends).
    #[serde(default)]
    pub majority_up: bool,
}

/// Nodes named in a step: `"all"`, `"leader"` (the leader as the running nodes see it, when
/// the step runs), or numbers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Nodes {
    /// By number.
    List(Vec<usize>),
    /// `"all"` or `"leader"`.
    Named(NamedNodes),
}

/// The named node sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NamedNodes {
    /// Every node.
    All,
    /// The current leader.
    Leader,
    /// Every node whose process runs.
    Running,
    /// Every node whose process does not run.
    Stopped,
}

/// Link impairment: each packet on an impaired link is lost with probability `loss`, else
/// delivered after `delay` ± `jitter`, or at once with probability `reorder`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Impair {
    /// Which directed links (`[from, to]` pairs); every link when absent.
    #[serde(default)]
    pub links: Option<Vec<[usize; 2]>>,
    /// Added delay.
    #[serde(default, with = "humantime_serde")]
    pub delay: Option<Duration>,
    /// Uniform jitter around the delay.
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
    /// Loss probability, 0 to 1.
    #[serde(default)]
    pub loss: f64,
    /// Probability that a packet skips the delay (is reordered), 0 to 1.
    #[serde(default)]
    pub reorder: f64,
}

/// What a `wait` step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitFor {
    /// The nodes (default: every running one) each see exactly the nodes' current
    /// incarnations as members, all Up, none unreachable, and agree on the leader; checked
    /// from the event logs and confirmed by management (`members`, `status`).
    Converged,
    /// The nodes' processes have ended.
    Exited,
    /// The nodes see themselves Up.
    Up,
    /// Every node of `nodes` has received an application message from every other one
    /// since the wait began (program `harness-node`).
    Messages,
}

/// One step of the timeline: exactly one action, with its options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Step {
    /// Start these nodes (again: a new incarnation on the same address), in this order.
    #[serde(default)]
    pub start: Option<Nodes>,
    /// With `start`: the pause between two starts.
    #[serde(default, with = "humantime_serde")]
    pub spacing: Option<Duration>,
    /// SIGKILL these nodes.
    #[serde(default)]
    pub kill: Option<Nodes>,
    /// SIGTERM these nodes (a graceful leave).
    #[serde(default)]
    pub terminate: Option<Nodes>,
    /// SIGSTOP these nodes.
    #[serde(default)]
    pub pause: Option<Nodes>,
    /// SIGCONT these nodes.
    #[serde(default)]
    pub resume: Option<Nodes>,
    /// Cut the network into these sides: every link between two sides is blocked both
    /// ways.
    #[serde(default)]
    pub partition: Option<Vec<Vec<usize>>>,
    /// Block these directed links (`[from, to]`): packets from `from` to `to` are dropped,
    /// the other direction is untouched.
    #[serde(default)]
    pub one_way: Option<Vec<[usize; 2]>>,
    /// Undo every partition, blocked link and impairment.
    #[serde(default)]
    pub heal: bool,
    /// Impair links.
    #[serde(default)]
    pub impair: Option<Impair>,
    /// Let time pass.
    #[serde(default, with = "humantime_serde")]
    pub sleep: Option<Duration>,
    /// Wait for a condition (with `nodes` and `within`).
    #[serde(default)]
    pub wait: Option<WaitFor>,
    /// With `wait`: the nodes the condition is about.
    #[serde(default)]
    pub nodes: Option<Nodes>,
    /// With `wait`: the bound; the run fails if the condition does not hold in time.
    #[serde(default, with = "humantime_serde")]
    pub within: Option<Duration>,
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the step or key.
        reason: String,
    },
}

/// The default bound of a `wait` step.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(60);

impl Scenario {
    /// Reads and checks the scenario in `path`.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |reason: String| ScenarioError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut s: Scenario = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
        }
        s.validate().map_err(invalid)?;
        Ok(s)
    }

    /// Parses a scenario from text (for tests and generated scenarios) and checks it.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// The seed nodes, by number.
    pub fn seed_nodes(&self) -> Vec<usize> {
        self.seeds
            .clone()
            .unwrap_or_else(|| (0..self.nodes.min(3)).collect())
    }

    /// Checks what the type cannot: node numbers in range, one action per step, options
    /// only with their action, probabilities within 0 to 1.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(format!(
                "`nodes` must be 1 to {MAX_NODES}, not {}",
                self.nodes
            ));
        }
        let n = self.nodes;
        let node = |i: usize, what: &str| -> Result<(), String> {
            if i < n {
                Ok(())
            } else {
                Err(format!(
                    "{what}: node {i} does not exist (nodes are 0 to {})",
                    n - 1
                ))
            }
        };
        for &i in &self.seed_nodes() {
            node(i, "`seeds`")?;
        }
        if self.seed_nodes().is_empty() && !self.settings.contains_key("discovery") {
            return Err(
                "`seeds` is empty: nodes need someone to join (or [settings.discovery] to bootstrap)"
                    .into(),
            );
        }
        for k in self.node_settings.keys() {
            let i: usize = k
                .parse()
                .map_err(|_| format!("`node-settings.{k}`: not a node number"))?;
            node(i, &format!("`node-settings.{k}`"))?;
        }
        if let Program::Command(c) = &self.program {
            if c.is_empty() {
                return Err("`program`: the command line is empty".into());
            }
        }
        let waits_for_messages = self.steps.iter().any(|s| s.wait == Some(WaitFor::Messages));
        if waits_for_messages && !matches!(self.program, Program::Named(BuiltIn::HarnessNode)) {
            return Err("`wait = \"messages\"` needs `program = \"harness-node\"`".into());
        }
        for (k, step) in self.steps.iter().enumerate() {
            step.validate(n)
                .map_err(|e| format!("step {} ({}): {e}", k + 1, step.describe()))?;
        }
        Ok(())
    }
}

impl Step {
    /// The step's action, in words.
    pub fn describe(&self) -> String {
        let nodes = |n: &Nodes| match n {
            Nodes::List(l) => format!("{l:?}"),
            Nodes::Named(NamedNodes::All) => "all".into(),
            Nodes::Named(NamedNodes::Leader) => "the leader".into(),
            Nodes::Named(NamedNodes::Running) => "the running nodes".into(),
            Nodes::Named(NamedNodes::Stopped) => "the stopped nodes".into(),
        };
        if let Some(n) = &self.start {
            format!("start {}", nodes(n))
        } else if let Some(n) = &self.kill {
            format!("kill {}", nodes(n))
        } else if let Some(n) = &self.terminate {
            format!("terminate {}", nodes(n))
        } else if let Some(n) = &self.pause {
            format!("pause {}", nodes(n))
        } else if let Some(n) = &self.resume {
            format!("resume {}", nodes(n))
        } else if let Some(p) = &self.partition {
            format!("partition {p:?}")
        } else if let Some(l) = &self.one_way {
            format!("block one way {l:?}")
        } else if self.heal {
            "heal".into()
        } else if let Some(i) = &self.impair {
            format!(
                "impair {} (delay {:?}, jitter {:?}, loss {}, reorder {})",
                i.links
                    .as_ref()
                    .map_or("every link".into(), |l| format!("{l:?}")),
                i.delay.unwrap_or_default(),
                i.jitter.unwrap_or_default(),
                i.loss,
                i.reorder
            )
        } else if let Some(d) = self.sleep {
            format!("sleep {d:?}")
        } else if let Some(w) = self.wait {
            format!(
                "wait until {} {:?} within {:?}",
                self.nodes
                    .as_ref()
                    .map_or("the running nodes".into(), nodes),
                w,
                self.within.unwrap_or(DEFAULT_WITHIN)
            )
        } else {
            "nothing".into()
        }
    }

    fn validate(&self, n: usize) -> Result<(), String> {
        let actions = [
            self.start.is_some(),
            self.kill.is_some(),
            self.terminate.is_some(),
            self.pause.is_some(),
            self.resume.is_some(),
            self.partition.is_some(),
            self.one_way.is_some(),
            self.heal,
            self.impair.is_some(),
            self.sleep.is_some(),
            self.wait.is_some(),
        ]
        .iter()
        .filter(|a| **a)
        .count();
        if actions != 1 {
            return Err(format!(
                "a step has exactly one action (start, kill, terminate, pause, resume, partition, one-way, heal, impair, sleep, wait); this one has {actions}"
            ));
        }
        if self.spacing.is_some() && self.start.is_none() {
            return Err("`spacing` goes with `start`".into());
        }
        if (self.nodes.is_some() || self.within.is_some()) && self.wait.is_none() {
            return Err("`nodes` and `within` go with `wait`".into());
        }
        let check = |i: usize| {
            if i < n {
                Ok(())
            } else {
                Err(format!(
                    "node {i} does not exist (nodes are 0 to {})",
                    n - 1
                ))
            }
        };
        for set in [
            &self.start,
            &self.kill,
            &self.terminate,
            &self.pause,
            &self.resume,
            &self.nodes,
        ]
        .into_iter()
        .flatten()
        {
            if let Nodes::List(l) = set {
                l.iter().try_for_each(|&i| check(i))?;
            }
        }
        if let Some(sides) = &self.partition {
            if sides.len() < 2 {
                return Err("a partition has at least two sides".into());
            }
            let mut seen = vec![false; n];
            for &i in sides.iter().flatten() {
                check(i)?;
                if std::mem::replace(&mut seen[i], true) {
                    return Err(format!("node {i} is on two sides"));
                }
            }
        }
        for [a, b] in self.one_way.iter().flatten() {
            check(*a)?;
            check(*b)?;
        }
        if let Some(i) = &self.impair {
            for [a, b] in i.links.iter().flatten() {
                check(*a)?;
                check(*b)?;
            }
            for (what, p) in [("loss", i.loss), ("reorder", i.reorder)] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("`{what}` must be 0 to 1, not {p}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_reads_and_names_its_mistakes() {
        let ok = r#"
            nodes = 3
            [settings]
            downing = "keep-majority"
            [[step]]
            start = "all"
            spacing = "200ms"
            [[step]]
            wait = "converged"
            within = "30s"
            [[step]]
            kill = "leader"
        "#;
        let s = Scenario::parse(ok).unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[1].within, Some(Duration::from_secs(30)));
        assert_eq!(s.steps[2].kill, Some(Nodes::Named(NamedNodes::Leader)));

        let two_actions = "nodes = 3\n[[step]]\nkill = [0]\nheal = true\n";
        let e = Scenario::parse(two_actions).unwrap_err();
        assert!(
            e.contains("step 1") && e.contains("exactly one action"),
            "{e}"
        );
        let out_of_range = "nodes = 3\n[[step]]\npartition = [[0], [1, 3]]\n";
        let e = Scenario::parse(out_of_range).unwrap_err();
        assert!(e.contains("node 3 does not exist"), "{e}");
        let unknown = "nodes = 3\n[[step]]\nexplode = true\n";
        let e = Scenario::parse(unknown).unwrap_err();
        assert!(e.contains("explode"), "{e}");
        let stray = "nodes = 3\n[[step]]\nsleep = \"1s\"\nwithin = \"2s\"\n";
        assert!(Scenario::parse(stray)
            .unwrap_err()
            .contains("go with `wait`"));
        let loss = "nodes = 3\n[[step]]\nimpair = { loss = 1.5 }\n";
        assert!(Scenario::parse(loss)
            .unwrap_err()
            .contains("`loss` must be 0 to 1"));
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every scenario in the repository reads and passes its checks, and the CI selection
    /// is not empty (so a typo fails `cargo test`, not the CI run of the harness).
    #[test]
    fn the_shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        let mut ci = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
                ci += usize::from(s.ci);
            }
        }
        assert!(n >= 10, "{n} scenarios");
        assert!(ci >= 3, "{ci} in the CI selection");
    }
}
