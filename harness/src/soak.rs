//! The soak: a long run of random faults, made as an ordinary scenario so the same runner
//! and checks apply. Each round injects one fault drawn from the seed, holds it for a while,
//! heals, restarts whatever is down, and requires every node to converge again within a
//! bound; split brain is checked at every poll throughout.

use std::time::Duration;

use crate::scenario::{Nodes, Program, Scenario, Step, WaitFor};

/// SplitMix64: the soak's draws, reproducible from its seed.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn secs(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo * 1000 + self.below((hi - lo) * 1000 + 1))
    }
    /// 1 to `most` distinct nodes of `n`.
    fn some(&mut self, n: usize, most: usize) -> Vec<usize> {
        let k = 1 + self.below(most as u64) as usize;
        self.pick(n, k)
    }
    /// `k` distinct nodes of `n`.
    fn pick(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..all.len() {
            let j = i + self.below((all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all.sort_unstable();
        all
    }
}

/// A soak scenario of `nodes` nodes lasting about `duration`, drawn from `seed`.
pub fn scenario(nodes: usize, duration: Duration, seed: u64) -> Scenario {
    let mut d = Draw(seed);
    let mut steps = vec![
        Step {
            start: Some(Nodes::List((0..nodes).collect())),
            spacing: Some(Duration::from_millis(300)),
            ..Step::default()
        },
        converge(nodes),
    ];
    let minority = (nodes - 1) / 2;
    // A round takes 30 s to 2 min (its fault, the heal, the convergence); more rounds than
    // fit are drawn, and the run ends at the first convergence after `duration`
    // (`Options::stop_after`).
    let rounds = (duration.as_secs() / 20).max(1);
    for _ in 0..rounds {
        let all: Vec<usize> = (0..nodes).collect();
        let mut restart = Vec::new();
        match d.below(6) {
            0 => {
                let side = d.some(nodes, minority);
                let rest: Vec<usize> = all.iter().copied().filter(|i| !side.contains(i)).collect();
                steps.push(Step {
                    partition: Some(vec![side.clone(), rest]),
                    ..Step::default()
                });
                steps.push(sleep(d.secs(5, 40)));
                // The minority downs itself; its processes end and start again.
                restart = side;
            }
            1 => {
                let p = d.pick(nodes, 2);
                steps.push(Step {
                    one_way: Some(vec![[p[0], p[1]]]),
                    ..Step::default()
                });
                steps.push(sleep(d.secs(5, 40)));
                restart = all.clone();
            }
            2 => {
                let k = d.some(nodes, minority);
                steps.push(Step {
                    kill: Some(Nodes::List(k.clone())),
                    ..Step::default()
                });
                steps.push(sleep(d.secs(1, 20)));
                restart = k;
            }
            3 => {
                let k = d.some(nodes, minority);
                steps.push(Step {
                    terminate: Some(Nodes::List(k.clone())),
                    ..Step::default()
                });
                steps.push(Step {
                    wait: Some(WaitFor::Exited),
                    nodes: Some(Nodes::List(k.clone())),
                    within: Some(Duration::from_secs(30)),
                    ..Step::default()
                });
                restart = k;
            }
            4 => {
                let k = d.some(nodes, minority);
                steps.push(Step {
                    pause: Some(Nodes::List(k.clone())),
                    ..Step::default()
                });
                steps.push(sleep(d.secs(1, 15)));
                steps.push(Step {
                    resume: Some(Nodes::List(k.clone())),
                    ..Step::default()
                });
                steps.push(sleep(Duration::from_secs(15)));
                restart = all.clone();
            }
            _ => {
                steps.push(Step {
                    impair: Some(crate::scenario::Impair {
                        links: None,
                        delay: Some(Duration::from_millis(d.below(50))),
                        jitter: Some(Duration::from_millis(d.below(20))),
                        loss: d.below(21) as f64 / 100.0,
                        reorder: d.below(11) as f64 / 100.0,
                    }),
                    ..Step::default()
                });
                steps.push(sleep(d.secs(10, 60)));
            }
        }
        steps.push(Step {
            heal: true,
            ..Step::default()
        });
        // Whatever stopped (crashed, downed, left) comes back as a new incarnation; a node
        // downed late, after the first restart, is restarted by the second.
        if !restart.is_empty() {
            steps.push(sleep(Duration::from_secs(20)));
            steps.push(start_stopped());
            steps.push(Step {
                wait: Some(WaitFor::Converged),
                nodes: Some(Nodes::Named(crate::scenario::NamedNodes::Running)),
                within: Some(Duration::from_secs(120)),
                ..Step::default()
            });
            steps.push(start_stopped());
        }
        steps.push(converge(nodes));
    }
    Scenario {
        name: format!("soak-{nodes}-nodes-seed-{seed}"),
        description: format!("{} rounds of random faults", rounds),
        nodes,
        ci: false,
        program: Program::default(),
        seeds: None,
        ipv6: false,
        seed,
        settings: {
            let mut t = toml::Table::new();
            t.insert(
                "downing".into(),
                toml::Value::String("keep-majority".into()),
            );
            t
        },
        node_settings: Default::default(),
        expect: Default::default(),
        steps,
    }
}

fn start_stopped() -> Step {
    Step {
        start: Some(Nodes::Named(crate::scenario::NamedNodes::Stopped)),
        spacing: Some(Duration::from_millis(300)),
        ..Step::default()
    }
}

fn sleep(d: Duration) -> Step {
    Step {
        sleep: Some(d),
        ..Step::default()
    }
}

fn converge(nodes: usize) -> Step {
    Step {
        wait: Some(WaitFor::Converged),
        nodes: Some(Nodes::List((0..nodes).collect())),
        within: Some(Duration::from_secs(120)),
        ..Step::default()
    }
}
