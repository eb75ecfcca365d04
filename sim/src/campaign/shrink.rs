//! Shrinking a failing schedule: delta debugging over its steps, then shorter waits and holds,
//! fewer nodes and a plainer network, re-running deterministically after every change and
//! keeping a change only if the run still fails the same check.

use super::exec::{replay, Check, Failure};
use super::schedule::{Fault, Profile, Schedule, Step, Wait};
use crate::NodeId;

/// A shrunk schedule.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest schedule found that still fails.
    pub schedule: Schedule,
    /// Its failure.
    pub failure: Failure,
    /// Replays spent.
    pub replays: usize,
}

fn wait_ms(w: Wait) -> u64 {
    match w {
        Wait::Ms(m) => m,
        _ => 0,
    }
}

fn same(a: Check, b: Check) -> bool {
    let split = |c| matches!(c, Check::SplitBrain | Check::SimSplitBrain);
    a == b || (split(a) && split(b))
}

struct Shrinker {
    best: Schedule,
    failure: Failure,
    replays: usize,
    budget: usize,
}

impl Shrinker {
    /// Keeps `c` if it still fails the same way.
    fn try_keep(&mut self, c: Schedule) -> bool {
        if self.replays >= self.budget || c == self.best {
            return false;
        }
        self.replays += 1;
        match replay(&c) {
            Err(f) if same(f.check, self.failure.check) => {
                self.best = c;
                self.failure = f;
                true
            }
            _ => false,
        }
    }

    fn steps(&mut self) -> bool {
        let mut progress = false;
        let mut chunk = self.best.steps.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            let mut removed = false;
            while i < self.best.steps.len() {
                let mut c = self.best.clone();
                let end = (i + chunk).min(c.steps.len());
                let gone: u64 = c.steps.drain(i..end).map(|s| wait_ms(s.wait)).sum();
                // First with the removed waits kept (later faults stay at their times), then
                // without.
                let mut kept = c.clone();
                match kept.steps.get_mut(i) {
                    Some(Step {
                        wait: Wait::Ms(m), ..
                    }) => *m += gone,
                    Some(_) => {}
                    None => kept.tail_ms += gone,
                }
                if self.try_keep(kept) || self.try_keep(c) {
                    removed = true;
                    progress = true;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 && !removed {
                return progress;
            }
            if !removed {
                chunk = chunk.div_ceil(2);
            }
        }
    }

    fn times(&mut self) -> bool {
        let mut progress = false;
        for settle in [0, 10_000, 30_000] {
            if settle < self.best.settle_ms {
                let mut c = self.best.clone();
                c.settle_ms = settle;
                if self.try_keep(c) {
                    progress = true;
                    break;
                }
            }
        }
        for tail in [0, self.best.tail_ms / 2] {
            if tail < self.best.tail_ms {
                let mut c = self.best.clone();
                c.tail_ms = tail;
                if self.try_keep(c) {
                    progress = true;
                    break;
                }
            }
        }
        for k in 0..self.best.steps.len() {
            let (Wait::Ms(m) | Wait::Unreachable(m) | Wait::Downing(m)) = self.best.steps[k].wait;
            for smaller in [0, m / 2, m * 3 / 4, m.saturating_sub(500)] {
                if smaller >= m {
                    continue;
                }
                let mut c = self.best.clone();
                c.steps[k].wait = match c.steps[k].wait {
                    Wait::Ms(_) => Wait::Ms(smaller),
                    Wait::Unreachable(_) => Wait::Unreachable(smaller),
                    Wait::Downing(_) => Wait::Downing(smaller),
                };
                if self.try_keep(c) {
                    progress = true;
                    break;
                }
            }
        }
        progress
    }

    fn nodes(&mut self) -> bool {
        let mut progress = false;
        let mut id = self.best.params.all().len();
        while id > 0 {
            id -= 1;
            if let Some(c) = remove_node(&self.best, id) {
                if self.try_keep(c) {
                    progress = true;
                }
            }
        }
        progress
    }

    fn network(&mut self) -> bool {
        if self.best.params.profile == Profile::Clean {
            return false;
        }
        let mut c = self.best.clone();
        c.params.profile = Profile::Clean;
        self.try_keep(c)
    }
}

/// Shrinks `schedule`, which fails with `failure`, spending at most `budget` replays.
pub fn shrink(schedule: &Schedule, failure: &Failure, budget: usize) -> Shrunk {
    let mut s = Shrinker {
        best: schedule.clone(),
        failure: failure.clone(),
        replays: 0,
        budget,
    };
    loop {
        let a = s.steps();
        let b = s.nodes();
        let c = s.network();
        let d = s.times();
        if !(a || b || c || d) || s.replays >= s.budget {
            break;
        }
    }
    Shrunk {
        schedule: s.best,
        failure: s.failure,
        replays: s.replays,
    }
}

/// `s` without node `id` (later ids move down by one); steps that only named it go. `None`
/// if nothing would be left to run.
pub fn remove_node(s: &Schedule, id: NodeId) -> Option<Schedule> {
    let mut c = s.clone();
    if id < c.params.nodes {
        if c.params.nodes <= 2 {
            return None;
        }
        c.params.nodes -= 1;
    } else {
        c.params.extras.remove(id - c.params.nodes);
    }
    let map = |x: NodeId| -> Option<NodeId> {
        match x.cmp(&id) {
            std::cmp::Ordering::Less => Some(x),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(x - 1),
        }
    };
    let list = |v: &[NodeId]| -> Vec<NodeId> { v.iter().filter_map(|x| map(*x)).collect() };
    let steps = c
        .steps
        .iter()
        .filter_map(|st| {
            let fault = match &st.fault {
                Fault::Split(sides) => {
                    let sides: Vec<Vec<NodeId>> = sides
                        .iter()
                        .map(|s| list(s))
                        .filter(|s| !s.is_empty())
                        .collect();
                    if sides.len() < 2 {
                        Fault::Heal
                    } else {
                        Fault::Split(sides)
                    }
                }
                Fault::Cut(a, b) | Fault::Mend(a, b) => {
                    let (a, b) = (list(a), list(b));
                    if a.is_empty() || b.is_empty() {
                        return None;
                    }
                    if matches!(st.fault, Fault::Cut(..)) {
                        Fault::Cut(a, b)
                    } else {
                        Fault::Mend(a, b)
                    }
                }
                Fault::OneWay(a, b) => Fault::OneWay(map(*a)?, map(*b)?),
                Fault::Heal => Fault::Heal,
                Fault::Lossy(n, p) => Fault::Lossy(map(*n)?, *p),
                Fault::Restore(n) => Fault::Restore(map(*n)?),
                Fault::Pause(n, ms) => Fault::Pause(map(*n)?, *ms),
                Fault::Crash(n) => Fault::Crash(map(*n)?),
                Fault::Leave(n) => Fault::Leave(map(*n)?),
                Fault::Restart(n, via) => Fault::Restart(map(*n)?, list(via)),
                Fault::Reconfigure(n, sbr, via) => Fault::Reconfigure(map(*n)?, *sbr, list(via)),
                Fault::Join(n, via) => {
                    let via = list(via);
                    if via.is_empty() {
                        return None;
                    }
                    Fault::Join(map(*n)?, via)
                }
            };
            Some(Step {
                wait: st.wait,
                fault,
            })
        })
        .collect();
    c.steps = steps;
    c.params.followers = list(&c.params.followers);
    Some(c)
}
