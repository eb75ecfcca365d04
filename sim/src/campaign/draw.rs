//! Drawing a run from a seed: swarm parameters (which fault kinds, cluster size, strategy,
//! settings, link profile, extra nodes) and a schedule of faults whose timing clusters around
//! the instants that matter — failure detection, `stable-after` expiry, a leader tick either
//! side, the first `UnreachableMember` or `Downing` — with small random offsets.

use std::time::Duration;

use fjell_core::testing::random::Rng;
use fjell_core::Config;

use super::schedule::{Extra, Fault, Params, Profile, Sbr, Schedule, Step, Wait};
use crate::NodeId;

/// A fault kind a run may enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Clean partitions into two or three sides that re-form, move one node across, heal.
    Split,
    /// Overlapping cuts between groups, added and mended separately.
    Overlap,
    /// One-way link failures.
    OneWay,
    /// A link group that is cut and mended repeatedly.
    Flap,
    /// A node's links lose most messages for a while.
    LossBurst,
    /// Stop-the-world pauses just under or just over the acceptable pause.
    Pause,
    /// Crashes and restarts with a new uid.
    CrashRestart,
    /// Graceful leaves.
    Leave,
    /// New nodes with the cluster's settings join.
    Join,
    /// New nodes with a different strategy or strategy parameter try to join, and members
    /// restart with one (a rolling configuration change).
    Mixed,
    /// A node of another cluster is listed first among a joiner's seed nodes.
    Stranger,
    /// A node speaking another protocol version tries to join.
    OtherVersion,
    /// The cluster runs at its capacity (`max-members`, some members holding more): joiners,
    /// two at a time through different members, some that cannot hold the cluster. Drawn on a
    /// stream of its own, outside [`Kind::ALL`], so adding it left every earlier seed's run as
    /// it was.
    Capacity,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 12] = [
        Kind::Split,
        Kind::Overlap,
        Kind::OneWay,
        Kind::Flap,
        Kind::LossBurst,
        Kind::Pause,
        Kind::CrashRestart,
        Kind::Leave,
        Kind::Join,
        Kind::Mixed,
        Kind::Stranger,
        Kind::OtherVersion,
    ];
}

/// How a run's pauses are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    /// Only 0.5–1.5 s under the acceptable pause.
    Under,
    /// Only just over it.
    Over,
    /// Either.
    Mixed,
}

/// A drawn run: its schedule and what was drawn to make it (for printing).
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The schedule.
    pub schedule: Schedule,
    /// The fault kinds enabled.
    pub kinds: Vec<Kind>,
    /// How pauses were drawn.
    pub pauses: PauseMode,
}

/// The schedule for campaign seed `seed`.
pub fn draw(seed: u64) -> Drawn {
    let mut rng = Rng::new(seed ^ 0xAD5E_55A1_7E57_0001);
    let r = &mut rng;
    let nodes = if r.below(3) == 0 {
        3 + r.below(3)
    } else {
        3 + r.below(14)
    };
    let sbr = draw_sbr(r, nodes);
    let down_all_when_unstable = r.below(2) == 0;
    let stable_after_ms = (r.below(3) == 0).then(|| 3000 + r.below(3001) as u64);
    let profile = [
        Profile::Clean,
        Profile::Clean,
        Profile::Jittery,
        Profile::Slow,
    ][r.below(4)];
    let kinds: Vec<Kind> = if r.below(4) == 0 {
        vec![Kind::ALL[r.below(Kind::ALL.len())]]
    } else {
        loop {
            let k: Vec<Kind> = Kind::ALL
                .iter()
                .copied()
                .filter(|_| r.below(5) < 2)
                .collect();
            if !k.is_empty() {
                break k;
            }
        }
    };
    let mut kinds = kinds;
    let pauses = [PauseMode::Under, PauseMode::Over, PauseMode::Mixed][r.below(3)];
    let mut extras = Vec::new();
    if kinds.contains(&Kind::Join) {
        for _ in 0..1 + r.below(2) {
            extras.push(Extra::Joiner(sbr));
        }
    }
    if kinds.contains(&Kind::Mixed) {
        for _ in 0..1 + r.below(2) {
            extras.push(Extra::Joiner(other_sbr(r, sbr, nodes)));
        }
    }
    if kinds.contains(&Kind::Stranger) {
        extras.push(Extra::Stranger);
    }
    if kinds.contains(&Kind::OtherVersion) {
        // Any version but this build's own.
        let v = fjell_core::testing::wire::PROTOCOL_VERSION.wrapping_add(1 + r.below(3) as u8);
        extras.push(Extra::OtherVersion(v));
    }
    let mut max_members = Vec::new();
    let mut capacity_joiners = Vec::new();
    let mut rc = Rng::new(seed ^ 0xCA9A_C17E_0000_0013);
    if rc.below(4) == 0 {
        kinds.push(Kind::Capacity);
        // The cluster holds its initial size or one more; some members hold more than that.
        let cap = (nodes + rc.below(2)) as u16;
        max_members = (0..nodes)
            .map(|_| {
                if rc.below(3) == 0 {
                    cap + 1 + rc.below(3) as u16
                } else {
                    cap
                }
            })
            .collect();
        max_members[rc.below(nodes)] = cap;
        max_members.resize(nodes + extras.len(), 0);
        for _ in 0..2 + rc.below(2) {
            capacity_joiners.push(nodes + extras.len());
            extras.push(Extra::Joiner(sbr));
            // Now and then a joiner that cannot hold the cluster.
            let small = rc.below(4) == 0;
            max_members.push(if small { (nodes - 1) as u16 } else { 0 });
        }
    }
    // Members that may not lead, in a third of the runs, on a stream of their own (earlier
    // seeds' runs stay as they were): one to all but node 0 (the founder), often all but
    // one or two, so that sides with no eligible member are common; joiners too.
    let mut followers = Vec::new();
    let mut rf = Rng::new(seed ^ 0xF011_0E25_0000_0021);
    if rf.below(3) == 0 {
        let mut candidates: Vec<NodeId> = (1..nodes).collect();
        let count = match rf.below(3) {
            0 => nodes - 1,
            1 => (nodes - 1).saturating_sub(1).max(1),
            _ => 1 + rf.below(nodes - 1),
        };
        while followers.len() < count {
            followers.push(candidates.swap_remove(rf.below(candidates.len())));
        }
        for (i, e) in extras.iter().enumerate() {
            if matches!(e, Extra::Joiner(_)) && rf.below(2) == 0 {
                followers.push(nodes + i);
            }
        }
        followers.sort_unstable();
    }
    let params = Params {
        nodes,
        sbr,
        down_all_when_unstable,
        stable_after_ms,
        profile,
        extras,
        max_members,
        followers,
    };
    let mut g = Gen {
        p: &params,
        r,
        sides: None,
        crashed: Vec::new(),
        joined: Vec::new(),
        steps: Vec::new(),
        pauses,
        hold_next: false,
        pauses_only: kinds == [Kind::Pause],
        last_pause: 0,
        odd: Vec::new(),
        leaves: kinds.contains(&Kind::Leave),
        capacity_joiners,
    };
    let faults = if kinds == [Kind::Pause] {
        // Pauses alone: many of them, so a rare false alarm shows.
        5 + g.r.below(40)
    } else {
        1 + g.r.below(10)
    };
    if kinds.contains(&Kind::Split) && g.r.below(2) == 0 {
        // A partition of the calm, formed cluster: its decision is checked against the bound.
        g.fault(Kind::Split);
    }
    while g.steps.len() < faults {
        let kind = kinds[g.r.below(kinds.len())];
        g.fault(kind);
    }
    let tail_ms = if std::mem::take(&mut g.hold_next) || g.r.below(2) == 0 {
        g.hold_ms()
    } else {
        g.wait_ms()
    };
    // The join check needs a minute after the final heal; without joins 20 s show how the
    // healed network settles.
    let joins = g.steps.iter().any(|s| {
        matches!(
            s.fault,
            Fault::Join(..) | Fault::Restart(..) | Fault::Reconfigure(..)
        )
    });
    let schedule = Schedule {
        seed,
        params: params.clone(),
        steps: g.steps,
        tail_ms,
        settle_ms: if joins {
            super::exec::JOIN_SETTLE_MS
        } else {
            20_000
        },
    };
    Drawn {
        schedule,
        kinds,
        pauses,
    }
}

fn draw_sbr(r: &mut Rng, nodes: usize) -> Sbr {
    match r.below(5) {
        0 => Sbr::KeepMajority,
        1 => Sbr::StaticQuorum(if r.below(4) == 0 {
            1 + r.below(nodes) as u32
        } else {
            (nodes / 2 + 1) as u32
        }),
        2 => Sbr::KeepOldest {
            down_if_alone: r.below(2) == 0,
        },
        3 => Sbr::LeaseMajority,
        _ => Sbr::DownAll,
    }
}

/// A strategy that differs from `sbr`: another strategy, or the same one with another parameter.
fn other_sbr(r: &mut Rng, sbr: Sbr, nodes: usize) -> Sbr {
    if r.below(2) == 0 {
        match sbr {
            Sbr::StaticQuorum(q) => return Sbr::StaticQuorum(q % nodes as u32 + 1),
            Sbr::KeepOldest { down_if_alone } => {
                return Sbr::KeepOldest {
                    down_if_alone: !down_if_alone,
                }
            }
            _ => {}
        }
    }
    loop {
        let s = draw_sbr(r, nodes);
        if s != sbr {
            return s;
        }
    }
}

struct Gen<'a, 'r> {
    p: &'a Params,
    r: &'r mut Rng,
    /// The current clean partition, if the last network fault was a split.
    sides: Option<Vec<Vec<NodeId>>>,
    crashed: Vec<NodeId>,
    joined: Vec<NodeId>,
    steps: Vec<Step>,
    pauses: PauseMode,
    /// The next wait holds the network still long enough for a decision.
    hold_next: bool,
    pauses_only: bool,
    last_pause: u64,
    /// Members running another strategy than the cluster's (joined or reconfigured).
    odd: Vec<NodeId>,
    /// Graceful leaves are enabled.
    leaves: bool,
    /// The extras drawn for [`Kind::Capacity`].
    capacity_joiners: Vec<NodeId>,
}

impl Gen<'_, '_> {
    fn config(&self) -> Config {
        self.p.config(self.p.sbr)
    }

    fn stable_after_ms(&self) -> u64 {
        let n = self.p.nodes + self.joined.len();
        self.config().downing.stable_after_for(n).as_millis() as u64
    }

    /// Roughly when a cut link is flagged: the acceptable pause, a heartbeat, the reaper,
    /// gossip.
    fn detect_ms(&mut self) -> u64 {
        let fd = self.config().failure_detector;
        fd.acceptable_heartbeat_pause.as_millis() as u64 + 1000 + self.r.below(2001) as u64
    }

    fn offset(&mut self) -> u64 {
        self.r.below(1501) as u64
    }

    /// A wait around the time a partition is detected: a drawn detection time or the first
    /// `UnreachableMember`, then an offset and zero to three gossip rounds / leader ticks.
    fn detect_wait(&mut self) -> Wait {
        let rounds = self.r.below(4) as u64 * 1000;
        if self.r.below(3) == 0 {
            Wait::Unreachable(self.offset() + rounds)
        } else {
            Wait::Ms(self.detect_ms() + self.offset() + rounds)
        }
    }

    fn move_one(&mut self, mut sides: Vec<Vec<NodeId>>) -> Vec<Vec<NodeId>> {
        let from = self.r.below(sides.len());
        let mut to = self.r.below(sides.len() - 1);
        if to >= from {
            to += 1;
        }
        let k = self.r.below(sides[from].len());
        let x = sides[from].remove(k);
        sides[to].push(x);
        sides[to].sort();
        sides.retain(|s| !s.is_empty());
        sides
    }

    fn new_sides(&mut self, n: usize, boundary: bool) -> Vec<Vec<NodeId>> {
        if !self.odd.is_empty() && (boundary || self.r.below(2) == 0) {
            // Along the configuration boundary: the differently configured members and up to
            // two others against the rest.
            let mut a = self.odd.clone();
            let others: Vec<NodeId> = self
                .members()
                .into_iter()
                .filter(|m| !a.contains(m))
                .collect();
            let others = self.shuffled(&others);
            let k = self.r.below(3).min(others.len().saturating_sub(1));
            a.extend(&others[..k]);
            a.sort();
            let b: Vec<NodeId> = self
                .p
                .all()
                .into_iter()
                .filter(|i| !a.contains(i))
                .collect();
            if !b.is_empty() && b.iter().any(|i| self.members().contains(i)) {
                return vec![a, b];
            }
        }
        let parts = if n >= 3 && self.r.below(4) == 0 { 3 } else { 2 };
        self.sides(parts)
    }

    /// A wait drawn around the instants that matter.
    fn wait(&mut self) -> Wait {
        if std::mem::take(&mut self.hold_next) {
            return Wait::Ms(self.hold_ms());
        }
        match self.r.below(12) {
            0 | 1 => Wait::Ms(self.offset()),
            2..=5 => self.detect_wait(),
            6 => Wait::Downing(self.offset()),
            7 | 8 => {
                // Around stable-after expiry, a leader tick either side.
                let d = self.detect_ms() + self.stable_after_ms();
                Wait::Ms((d + self.offset() + self.r.below(3) as u64 * 1000).saturating_sub(1000))
            }
            9 => Wait::Ms(self.hold_ms()),
            _ => Wait::Ms(1000 + self.r.below(39_001) as u64),
        }
    }

    fn wait_ms(&mut self) -> u64 {
        match self.wait() {
            Wait::Ms(m) => m,
            _ => self.offset(),
        }
    }

    /// Long enough for a calm partition to be decided and checked.
    fn hold_ms(&mut self) -> u64 {
        19_000 + self.stable_after_ms() + 2000 + self.r.below(10_001) as u64
    }

    /// Nodes faults may name: the initial cluster and joined extras.
    fn members(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = (0..self.p.nodes).collect();
        v.extend(&self.joined);
        v
    }

    fn pick(&mut self, from: &[NodeId]) -> NodeId {
        from[self.r.below(from.len())]
    }

    fn shuffled(&mut self, v: &[NodeId]) -> Vec<NodeId> {
        let mut v = v.to_vec();
        for i in (1..v.len()).rev() {
            v.swap(i, self.r.below(i + 1));
        }
        v
    }

    /// Every node (extras too, so the split is clean) into `parts` non-empty sides.
    fn sides(&mut self, parts: usize) -> Vec<Vec<NodeId>> {
        let all = self.shuffled(&self.p.all());
        let members = self.members();
        let mut sides: Vec<Vec<NodeId>> = vec![Vec::new(); parts];
        // Members first: the first side gets 1, 2, half or any number of them (small sides
        // and halves are where the edges are), the others share the rest; non-members anywhere.
        let (m, rest): (Vec<NodeId>, Vec<NodeId>) = all.iter().partition(|i| members.contains(i));
        let n = m.len();
        let first = match self.r.below(5) {
            0 | 1 => 1,
            2 => 2,
            3 => n / 2,
            _ => 1 + self.r.below(n - 1),
        }
        .clamp(1, n + 1 - parts);
        for (k, i) in m.iter().enumerate() {
            let s = if k < first {
                0
            } else if k < first + parts - 1 {
                k - first + 1
            } else {
                1 + self.r.below(parts - 1)
            };
            sides[s].push(*i);
        }
        for i in rest {
            let s = self.r.below(parts);
            sides[s].push(i);
        }
        sides.retain(|s| !s.is_empty());
        for s in &mut sides {
            s.sort();
        }
        sides
    }

    fn push(&mut self, wait: Wait, fault: Fault) {
        if !matches!(fault, Fault::Split(_)) && fault_touches_network(&fault) {
            self.sides = None;
        }
        self.steps.push(Step { wait, fault });
    }

    fn fault(&mut self, kind: Kind) {
        let wait = self.wait();
        let members = self.members();
        let n = members.len();
        match kind {
            Kind::Split => {
                if self.r.below(5) == 0 {
                    self.sides = None;
                    return self.push(wait, Fault::Heal);
                }
                // An episode: a partition, and perhaps one or two more that replace it (heal and
                // re-form differently, or move one node across) around the time it is detected.
                let episode = [1, 1, 2, 3][self.r.below(4)];
                let mut w = wait;
                for e in 0..episode {
                    if e > 0 {
                        w = self.detect_wait();
                    }
                    let sides = match self.sides.clone() {
                        Some(sides) if sides.len() >= 2 && self.r.below(2) == 0 => {
                            let moved = self.move_one(sides);
                            if moved.len() >= 2 {
                                moved
                            } else {
                                self.new_sides(n, false)
                            }
                        }
                        _ => self.new_sides(n, false),
                    };
                    self.sides = Some(sides.clone());
                    self.push(w, Fault::Split(sides));
                }
                self.hold_next = self.r.below(2) == 0;
                if self.hold_next && self.leaves && self.r.below(2) == 0 {
                    // A graceful leave while the partition is held, between its detection and
                    // the decision.
                    let w = self.detect_ms()
                        + self.offset()
                        + self.r.below(self.stable_after_ms() as usize) as u64;
                    let x = self.pick(&members);
                    self.push(Wait::Ms(w), Fault::Leave(x));
                    self.hold_next = true;
                }
            }
            Kind::Overlap => {
                if self.r.below(4) == 0 {
                    return self.push(wait, Fault::Heal);
                }
                let s = self.shuffled(&members);
                let a = 1 + self.r.below(n - 1);
                let b = 1 + self.r.below(n - a);
                let (x, y) = (s[..a].to_vec(), s[a..a + b].to_vec());
                self.push(wait, Fault::Cut(x.clone(), y.clone()));
                if self.r.below(2) == 0 {
                    let w = self.wait();
                    self.push(w, Fault::Mend(x, y));
                }
            }
            Kind::OneWay => {
                if self.r.below(4) == 0 {
                    return self.push(wait, Fault::Heal);
                }
                let a = self.pick(&members);
                let others: Vec<NodeId> = members.iter().copied().filter(|x| *x != a).collect();
                let b = self.pick(&others);
                self.push(wait, Fault::OneWay(a, b));
            }
            Kind::Flap => {
                let s = self.shuffled(&members);
                let a = 1 + self.r.below(n - 1);
                let (x, y) = (s[..a].to_vec(), s[a..].to_vec());
                let cycles = 2 + self.r.below(5);
                let mut w = wait;
                for _ in 0..cycles {
                    self.push(w, Fault::Cut(x.clone(), y.clone()));
                    let down = if self.r.below(2) == 0 {
                        Wait::Ms(self.detect_ms() + self.offset())
                    } else {
                        Wait::Ms(300 + self.r.below(6000) as u64)
                    };
                    self.push(down, Fault::Mend(x.clone(), y.clone()));
                    w = Wait::Ms(200 + self.r.below(3000) as u64);
                }
            }
            Kind::LossBurst => {
                let x = self.pick(&members);
                let pct = 30 + self.r.below(70) as u8;
                self.push(wait, Fault::Lossy(x, pct));
                let hold = Wait::Ms(500 + self.r.below(10_000) as u64);
                self.push(hold, Fault::Restore(x));
            }
            Kind::Pause => {
                let x = self.pick(&members);
                let acceptable = self
                    .config()
                    .failure_detector
                    .acceptable_heartbeat_pause
                    .as_millis() as u64;
                let under = match self.pauses {
                    PauseMode::Under => true,
                    PauseMode::Over => false,
                    PauseMode::Mixed => self.r.below(2) == 0,
                };
                let ms = if under {
                    acceptable.saturating_sub(501 + self.r.below(1000) as u64)
                } else {
                    acceptable + 1 + self.r.below(2000) as u64
                };
                let wait = if self.pauses_only {
                    // Alone, pauses are spaced so each stands on its own.
                    Wait::Ms(self.last_pause + 1000 + self.r.below(4000) as u64)
                } else {
                    wait
                };
                self.last_pause = ms.max(1);
                self.push(wait, Fault::Pause(x, ms.max(1)));
            }
            Kind::CrashRestart => {
                if !self.crashed.is_empty() && self.r.below(2) == 0 {
                    let k = self.r.below(self.crashed.len());
                    let x = self.crashed.swap_remove(k);
                    let via = self.via();
                    self.push(wait, Fault::Restart(x, via));
                } else if self.r.below(4) == 0 {
                    // Restart in place: a new uid at once.
                    let x = self.pick(&members);
                    let via = self.via();
                    self.push(wait, Fault::Restart(x, via));
                } else {
                    let up: Vec<NodeId> = members
                        .iter()
                        .copied()
                        .filter(|m| !self.crashed.contains(m))
                        .collect();
                    if up.len() > 1 {
                        let x = self.pick(&up);
                        self.crashed.push(x);
                        self.push(wait, Fault::Crash(x));
                    }
                }
            }
            Kind::Leave => {
                let x = self.pick(&members);
                self.push(wait, Fault::Leave(x));
            }
            Kind::Capacity => {
                // Two joiners at the same instant, through different members.
                let idle: Vec<NodeId> = self
                    .capacity_joiners
                    .iter()
                    .copied()
                    .filter(|x| !self.joined.contains(x))
                    .take(2)
                    .collect();
                let first = self.r.below(n);
                for (k, x) in idle.into_iter().enumerate() {
                    let member = members[(first + k) % n];
                    self.joined.push(x);
                    let at = if k == 0 { wait } else { Wait::Ms(0) };
                    self.push(at, Fault::Join(x, vec![member]));
                }
            }
            Kind::Join | Kind::Mixed | Kind::OtherVersion | Kind::Stranger => {
                let want = |e: &Extra| {
                    matches!(
                        (kind, e),
                        (Kind::OtherVersion, Extra::OtherVersion(_))
                            | (Kind::Join | Kind::Mixed, Extra::Joiner(_))
                    )
                };
                let idle: Vec<NodeId> = self
                    .p
                    .extras
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| want(e) && !self.joined.contains(&(self.p.nodes + i)))
                    .map(|(i, _)| self.p.nodes + i)
                    .collect();
                if kind == Kind::Mixed && (idle.is_empty() || self.r.below(2) == 0) {
                    self.reconfigure(wait, &members);
                } else if let Some(&x) = idle.first() {
                    let via = self.via();
                    self.joined.push(x);
                    if matches!(self.p.extra(x), Some(Extra::Joiner(s)) if s != self.p.sbr) {
                        self.odd.push(x);
                    }
                    self.push(wait, Fault::Join(x, via));
                }
                if kind == Kind::Mixed && !self.odd.is_empty() && self.r.below(2) == 0 {
                    // A rolling change goes on for a node or two; then the network splits along
                    // the configuration boundary and stays split.
                    for _ in 0..self.r.below(3) {
                        let w = Wait::Ms(3000 + self.r.below(12_000) as u64);
                        let members = self.members();
                        self.reconfigure(w, &members);
                    }
                    let w = Wait::Ms(5000 + self.r.below(15_000) as u64);
                    let n = self.members().len();
                    let sides = self.new_sides(n, true);
                    self.sides = Some(sides.clone());
                    self.push(w, Fault::Split(sides));
                    self.hold_next = true;
                }
                if kind != Kind::Mixed && idle.is_empty() {
                    if kind == Kind::Stranger {
                        // A restart whose seed list starts with the stranger.
                        let x = self.pick(&members);
                        let via = self.via();
                        self.push(wait, Fault::Restart(x, via));
                    } else {
                        let x = self.pick(&members);
                        self.push(wait, Fault::Leave(x));
                    }
                }
            }
        }
    }

    /// A member comes back with another strategy, usually the next in address order, as a
    /// rolling configuration change goes.
    fn reconfigure(&mut self, wait: Wait, members: &[NodeId]) {
        let next = members.iter().copied().find(|m| !self.odd.contains(m));
        let x = match next {
            Some(x) if self.r.below(3) > 0 => x,
            _ => self.pick(members),
        };
        let sbr = other_sbr(self.r, self.p.sbr, self.p.nodes);
        if !self.odd.contains(&x) {
            self.odd.push(x);
        }
        self.crashed.retain(|c| *c != x);
        let via = self.via();
        self.push(wait, Fault::Reconfigure(x, sbr, via));
    }

    /// Seed nodes for a join: the cluster's seeds, sometimes shuffled, with the stranger (if
    /// any) first.
    fn via(&mut self) -> Vec<NodeId> {
        let mut via = self.p.seeds();
        if self.r.below(3) == 0 {
            via = self.shuffled(&via);
        }
        if let Some(i) = self.p.extras.iter().position(|e| *e == Extra::Stranger) {
            via.insert(0, self.p.nodes + i);
        }
        via
    }
}

fn fault_touches_network(f: &Fault) -> bool {
    matches!(
        f,
        Fault::Cut(..) | Fault::Mend(..) | Fault::OneWay(..) | Fault::Heal
    )
}

/// The virtual length of the fault phase, roughly (for sizing slices).
pub fn nominal(d: &Drawn) -> Duration {
    Duration::from_millis(d.schedule.nominal_ms())
}
