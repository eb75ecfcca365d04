//! # fjell-sim
//!
//! A deterministic network simulator for [`fjell_core`]: N nodes, a virtual clock, one seed for
//! everything; per-link latency, jitter, loss and duplication (jitter reorders); symmetric and
//! one-way partitions; crashes and restarts with a new uid. An invariant checker runs after
//! every step. A failing run prints its seed; setting `FJELL_SIM_SEED` replays it.
//!
//! ```
//! use fjell_sim::Sim;
//! use fjell_core::{Config, MemberStatus};
//! use std::time::Duration;
//!
//! let mut sim: Sim = Sim::new(7);
//! let ids = sim.start_cluster(3, &Config::default(), 3);
//! sim.run_until(Duration::from_secs(30), |s| s.all_up(&ids)).expect("cluster formed");
//! assert!(sim.node(ids[2]).members().iter().all(|m| m.status == MemberStatus::Up));
//! ```

#![deny(missing_docs)]

pub mod campaign;
pub mod gen;
pub mod membership;
pub mod targets;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use fjell_core::testing::random::Rng;
use fjell_core::{
    Config, DeliveryClass, Event, Instant, Lease, LeaseRequest, Member, MemberStatus, MemoryLease,
    Node, NodeStatus, ReachabilityStatus, Sink, Transmit, UniqueAddress,
};

/// Index of a simulated node (stable across restarts: a restart keeps the address).
pub type NodeId = usize;

/// Properties of a directed link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Base one-way latency.
    pub latency: Duration,
    /// Extra uniform random delay in `[0, jitter]` (which also reorders messages).
    pub jitter: Duration,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
}

impl LinkConfig {
    /// A jittery, lossy link: 1 ms latency, up to 20 ms jitter, 1% loss (the failure-detector
    /// false-alarm tests and campaign).
    pub const fn jittery_lossy() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(20),
            loss: 0.01,
            duplicate: 0.0,
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages handed to the network.
    pub messages: u64,
    /// Bytes handed to the network.
    pub bytes: u64,
    /// Bytes on the gossip lane.
    pub gossip_bytes: u64,
    /// Bytes on the control lane.
    pub control_bytes: u64,
    /// Bytes on the heartbeat lane.
    pub heartbeat_bytes: u64,
    /// Messages dropped by loss, partitions or crashed receivers.
    pub dropped: u64,
}

struct Slot<const M: usize, const R: usize> {
    addr: SocketAddr,
    config: Config,
    node: Option<Box<Node<M, R>>>,
    incarnation: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: Instant,
    seq: u64,
    to: NodeId,
    from: SocketAddr,
    // The receiver's incarnation when sent: a message to a crashed incarnation is lost.
    bytes: Vec<u8>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// Virtual time.
    pub at: Instant,
    /// The node that emitted it.
    pub node: NodeId,
    /// The event.
    pub event: Event,
}

/// The simulator. `M` and `R` are the node capacities.
pub struct Sim<const M: usize = 64, const R: usize = 256> {
    seed: u64,
    now: Instant,
    rng: Rng,
    slots: Vec<Slot<M, R>>,
    by_addr: HashMap<SocketAddr, NodeId>,
    queue: BinaryHeap<Reverse<Delivery>>,
    /// Node deadlines, lazily invalidated: an entry counts only if it equals `deadlines[id]`.
    timers: BinaryHeap<Reverse<(Instant, NodeId)>>,
    deadlines: Vec<Option<Instant>>,
    seq: u64,
    default_link: LinkConfig,
    links: HashMap<(NodeId, NodeId), LinkConfig>,
    blocked: HashSet<(NodeId, NodeId)>,
    /// Directed links blocked for one delivery class only ([`Sim::block_class`]).
    blocked_class: HashSet<(NodeId, NodeId, DeliveryClass)>,
    paused_until: HashMap<NodeId, Instant>,
    log: Vec<Logged>,
    record_events: bool,
    check_invariants: bool,
    check_interval: Duration,
    checker: Checker,
    check_split_brain: bool,
    quiet: bool,
    /// `FJELL_SIM_VIEWS` is set: print a node's view before each decision it makes.
    view_trace: bool,
    /// The view of the node whose timers are running, when `view_trace`.
    view_before: Option<String>,
    wire_version: HashMap<NodeId, u8>,
    /// Per node: the incarnation and generation its split-brain check last ran on.
    split_checked: HashMap<NodeId, (UniqueAddress, u64)>,
    lease: MemoryLease,
    traffic: Traffic,
    buf: Vec<u8>,
}

impl<const M: usize, const R: usize> Drop for Sim<M, R> {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.quiet {
            eprintln!(
                "fjell-sim: run failed with seed {} at t={:?}; replay with FJELL_SIM_SEED={}",
                self.seed,
                Duration::from_micros(self.now.as_micros()),
                self.seed
            );
        }
    }
}

/// The seeds a test should run: `FJELL_SIM_SEED` if set (to replay a failure), else `0..n`.
pub fn seeds(n: u64) -> Vec<u64> {
    match std::env::var("FJELL_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("FJELL_SIM_SEED must be an integer")],
        Err(_) => (0..n).collect(),
    }
}

/// The address of simulated node `i`.
pub fn addr_of(i: NodeId) -> SocketAddr {
    let i = i as u32 + 1;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7355))
}

impl<const M: usize, const R: usize> Sim<M, R> {
    /// An empty simulation driven by `seed`.
    pub fn new(seed: u64) -> Self {
        Sim {
            seed,
            now: Instant::ZERO,
            rng: Rng::new(seed ^ 0x5EED_F1E1),
            slots: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            deadlines: Vec::new(),
            seq: 0,
            default_link: LinkConfig::default(),
            links: HashMap::new(),
            blocked: HashSet::new(),
            blocked_class: HashSet::new(),
            paused_until: HashMap::new(),
            log: Vec::new(),
            record_events: true,
            check_invariants: true,
            check_interval: Duration::from_millis(1),
            checker: Checker::default(),
            check_split_brain: false,
            quiet: false,
            view_trace: std::env::var("FJELL_SIM_VIEWS").is_ok(),
            view_before: None,
            wire_version: HashMap::new(),
            split_checked: HashMap::new(),
            lease: MemoryLease::new(Duration::from_secs(120)),
            traffic: Traffic::default(),
            buf: vec![0u8; Node::<M, R>::MAX_MESSAGE_LEN],
        }
    }

    /// The buffer size a node of these capacities needs for any message.
    pub const fn max_message_len() -> usize {
        Node::<M, R>::MAX_MESSAGE_LEN
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.now.as_micros())
    }

    /// Keep (default) or discard the event log; large runs discard it.
    pub fn record_events(&mut self, on: bool) {
        self.record_events = on;
    }

    /// Run (default) or skip the per-step invariant checks; benchmarks skip them.
    pub fn check_invariants(&mut self, on: bool) {
        self.check_invariants = on;
    }

    /// Also check, after every step, that the cluster never splits in two: no two running
    /// nodes that each still serve (self Up, WeaklyUp, Leaving or shutting down) and are
    /// [settled](Sim::settled) have each downed or removed the other. Off by default: it
    /// compares the stepped node with every other one.
    pub fn check_split_brain(&mut self, on: bool) {
        self.check_split_brain = on;
    }

    /// The lease every node's lease-majority strategy asks (held in memory, answered at once,
    /// expiring 120 s after it is taken).
    pub fn lease(&self) -> &MemoryLease {
        &self.lease
    }

    /// How often [`Sim::run_until`] evaluates its condition, in virtual time. Large clusters
    /// use a coarser interval: the condition usually scans every node.
    pub fn set_check_interval(&mut self, every: Duration) {
        self.check_interval = every;
    }

    /// Link properties for every link without its own.
    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.default_link = link;
    }

    /// Link properties for the directed link `from → to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: LinkConfig) {
        self.links.insert((from, to), link);
    }

    /// Adds a node (not yet joined) and returns its id.
    pub fn add_node(&mut self, config: Config) -> NodeId {
        let id = self.slots.len();
        let addr = addr_of(id);
        self.slots.push(Slot {
            addr,
            config,
            node: None,
            incarnation: 0,
        });
        self.by_addr.insert(addr, id);
        self.deadlines.push(None);
        self.boot(id);
        id
    }

    fn boot(&mut self, id: NodeId) {
        let uid = self.rng.next_u64() | 1;
        let node_seed = self.rng.next_u64();
        let slot = &mut self.slots[id];
        slot.incarnation += 1;
        let node = Node::new(
            slot.config.clone(),
            UniqueAddress::new(slot.addr, uid),
            node_seed,
        )
        .unwrap_or_else(|e| panic!("node {id}: {e}"));
        slot.node = Some(Box::new(node));
    }

    /// Number of node slots (crashed ones included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The socket address of node `id`.
    pub fn addr(&self, id: NodeId) -> SocketAddr {
        self.slots[id].addr
    }

    /// The running node `id`. Panics if it is crashed.
    pub fn node(&self, id: NodeId) -> &Node<M, R> {
        self.slots[id]
            .node
            .as_deref()
            .unwrap_or_else(|| panic!("node {id} is crashed"))
    }

    /// The running node `id`, if any.
    pub fn try_node(&self, id: NodeId) -> Option<&Node<M, R>> {
        self.slots[id].node.as_deref()
    }

    /// Ids of nodes that are running (not crashed).
    pub fn running(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.slots.len()).filter(|i| self.slots[*i].node.is_some())
    }

    /// Runs a command on node `id` at the current time, then flushes its outputs.
    pub fn with_node<T>(&mut self, id: NodeId, f: impl FnOnce(&mut Node<M, R>, Instant) -> T) -> T {
        let now = self.now;
        let node = self.slots[id]
            .node
            .as_deref_mut()
            .unwrap_or_else(|| panic!("node {id} is crashed"));
        let t = f(node, now);
        self.flush(id);
        t
    }

    /// Adds `n` nodes with `config`, each joining through the first `seeds` of them (all of
    /// them if fewer), and returns their ids. Run the simulation to let them form.
    pub fn start_cluster(&mut self, n: usize, config: &Config, seeds: usize) -> Vec<NodeId> {
        let ids: Vec<NodeId> = (0..n).map(|_| self.add_node(config.clone())).collect();
        for &i in &ids {
            self.join_seed_nodes(i, &ids[..seeds.min(n)]);
        }
        ids
    }

    /// Node `id` joins through the seed nodes `seeds` (in that order).
    pub fn join_seed_nodes(&mut self, id: NodeId, seeds: &[NodeId]) {
        let seeds: Vec<SocketAddr> = seeds.iter().map(|s| self.addr(*s)).collect();
        self.with_node(id, |n, now| n.join_seed_nodes(now, &seeds))
            .expect("join_seed_nodes");
    }

    /// Node `id` joins through the member `target`.
    pub fn join(&mut self, id: NodeId, target: NodeId) {
        let t = self.addr(target);
        self.with_node(id, |n, now| n.join(now, t)).expect("join");
    }

    /// Node `by` asks `who` to leave.
    pub fn leave(&mut self, by: NodeId, who: NodeId) {
        let a = self.addr(who);
        self.with_node(by, |n, now| n.leave(now, a)).expect("leave");
    }

    /// Node `by` downs `who`.
    pub fn down(&mut self, by: NodeId, who: NodeId) {
        let a = self.addr(who);
        self.with_node(by, |n, now| n.down(now, a)).expect("down");
    }

    /// Crashes node `id`: it stops at once and messages to it are lost.
    pub fn crash(&mut self, id: NodeId) {
        self.slots[id].node = None;
        self.deadlines[id] = None;
    }

    /// Restarts node `id` on the same address with a new uid. It must join again.
    pub fn restart(&mut self, id: NodeId) {
        self.boot(id);
        self.reschedule(id);
    }

    /// Restarts node `id` on the same address with a new uid and new settings (a rolling
    /// configuration change). It must join again.
    pub fn restart_with(&mut self, id: NodeId, config: Config) {
        self.slots[id].config = config;
        self.restart(id);
    }

    /// Stops node `id` from processing anything until `d` from now (a stop-the-world pause);
    /// its messages and timers wait.
    pub fn pause(&mut self, id: NodeId, d: Duration) {
        self.paused_until.insert(id, self.now + d);
        self.reschedule(id);
    }

    /// Records node `id`'s next deadline (after anything that may have changed it).
    fn reschedule(&mut self, id: NodeId) {
        let t = self.slots[id].node.as_ref().and_then(|n| n.poll_timeout());
        let t = match (t, self.paused(id)) {
            (Some(t), Some(p)) => Some(t.max(p)),
            (t, _) => t,
        };
        if self.deadlines[id] != t {
            self.deadlines[id] = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t, id)));
            }
        }
    }

    /// Unblocks the directed link `from → to` (undoes [`Sim::block`] or one direction of
    /// [`Sim::partition`]).
    pub fn unblock(&mut self, from: NodeId, to: NodeId) {
        self.blocked.remove(&(from, to));
    }

    /// The link properties of `from → to` now (its own, or the default).
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkConfig {
        *self.links.get(&(from, to)).unwrap_or(&self.default_link)
    }

    /// Makes node `id` send every message with `version` as the protocol version (the second
    /// envelope byte), as a node of another fjell release would; `None` stops rewriting.
    pub fn set_wire_version(&mut self, id: NodeId, version: Option<u8>) {
        match version {
            Some(v) => self.wire_version.insert(id, v),
            None => self.wire_version.remove(&id),
        };
    }

    /// Takes the event log recorded so far, leaving it empty (a long run that reads the log
    /// as it goes keeps it short this way).
    pub fn take_events(&mut self) -> Vec<Logged> {
        std::mem::take(&mut self.log)
    }

    /// Quiet (true) or not (the default): a quiet simulation prints nothing when a check
    /// panics — neither the event log on a split brain nor the replay hint — for drivers that
    /// catch the panic and report it themselves.
    pub fn quiet(&mut self, on: bool) {
        self.quiet = on;
    }

    /// Blocks the directed link `from → to`.
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Blocks the directed link `from → to` for messages of `class` only: for example gossip
    /// lost while heartbeats pass, as when another process took over a node's connections.
    pub fn block_class(&mut self, from: NodeId, to: NodeId, class: DeliveryClass) {
        self.blocked_class.insert((from, to, class));
    }

    /// Splits the nodes into two sides that cannot reach each other.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.block(x, y);
                self.block(y, x);
            }
        }
    }

    /// The blocked directed links, sorted.
    pub fn blocked_links(&self) -> Vec<(NodeId, NodeId)> {
        let mut v: Vec<_> = self.blocked.iter().copied().collect();
        v.sort();
        v
    }

    /// Removes every partition and block.
    pub fn heal(&mut self) {
        self.blocked.clear();
        self.blocked_class.clear();
    }

    /// The event log (if recording).
    pub fn events(&self) -> &[Logged] {
        &self.log
    }

    /// Events logged by node `id`.
    pub fn events_of(&self, id: NodeId) -> impl Iterator<Item = &Event> {
        self.log
            .iter()
            .filter(move |l| l.node == id)
            .map(|l| &l.event)
    }

    /// Traffic so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    fn paused(&self, id: NodeId) -> Option<Instant> {
        self.paused_until
            .get(&id)
            .copied()
            .filter(|t| *t > self.now)
    }

    fn next_node_timeout(&mut self) -> Option<(Instant, NodeId)> {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if self.deadlines[id] == Some(t) {
                return Some((t, id));
            }
            self.timers.pop(); // stale
        }
        None
    }

    /// Advances to the next thing that happens and processes it. False if nothing is left.
    pub fn step(&mut self) -> bool {
        let next_msg = self.queue.peek().map(|Reverse(d)| d.at);
        let next_timer = self.next_node_timeout();
        let take_msg = match (next_msg, next_timer) {
            (None, None) => return false,
            (Some(m), Some((t, _))) => m <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if take_msg {
            let Reverse(d) = self.queue.pop().expect("peeked");
            self.now = self.now.max(d.at);
            if let Some(p) = self.paused(d.to) {
                // The receiver is frozen: the message waits in its socket buffer.
                self.requeue(d, p);
                return true;
            }
            self.deliver(d);
        } else {
            let (t, id) = next_timer.expect("checked");
            self.timers.pop();
            self.deadlines[id] = None;
            self.now = self.now.max(t);
            if self.paused(id).is_some() {
                self.reschedule(id);
                return true;
            }
            let now = self.now;
            self.view_before = self.view_trace.then(|| self.describe_view(id));
            if let Some(n) = self.slots[id].node.as_deref_mut() {
                n.handle_timeout(now);
            }
            self.flush(id);
            self.view_before = None;
        }
        true
    }

    /// One node's view, on one line per member: status, whether it has seen the current
    /// version, and the unreachability records about it (for `FJELL_SIM_VIEWS`).
    pub fn describe_view(&self, id: NodeId) -> String {
        let Some(node) = self.slots[id].node.as_deref() else {
            return format!("n{id}: not running");
        };
        let g = node.gossip();
        let name = |a: &UniqueAddress| {
            self.by_addr
                .get(&a.socket_addr())
                .map_or_else(|| a.socket_addr().to_string(), |n| format!("n{n}"))
        };
        let mut out = format!(
            "view of n{id} (leader {:?}):",
            node.leader().map(|l| name(&l))
        );
        for (m, seen) in g.members_with_seen() {
            let by: Vec<String> = g
                .reachability()
                .records()
                .filter(|r| r.subject == m.address && r.status != ReachabilityStatus::Reachable)
                .map(|r| format!("{}:{:?}", name(&r.observer), r.status))
                .collect();
            out += &format!(
                "\n    {} {:?}{} flagged by [{}]",
                name(&m.address),
                m.status,
                if seen { " seen" } else { "" },
                by.join(" ")
            );
        }
        out
    }

    fn requeue(&mut self, mut d: Delivery, at: Instant) {
        d.at = at;
        d.seq = self.seq;
        self.seq += 1;
        self.queue.push(Reverse(d));
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        let Some(node) = self.slots[d.to].node.as_deref_mut() else {
            self.traffic.dropped += 1;
            return;
        };
        // Decode errors are counted by the node itself; a simulated peer never lies.
        let _ = node.handle_message(now, d.from, &d.bytes);
        self.flush(d.to);
    }

    fn flush(&mut self, id: NodeId) {
        let now = self.now;
        let from = self.slots[id].addr;
        let mut out = Vec::new();
        let mut events = Vec::new();
        if let Some(node) = self.slots[id].node.as_deref_mut() {
            let mut sink = Outputs {
                now,
                me: node.address(),
                lease: &mut self.lease,
                out: &mut out,
                events: &mut events,
                view_before: self.view_before.as_deref(),
            };
            node.drain(now, &mut self.buf, &mut sink);
        }
        for (t, bytes) in out {
            self.traffic.messages += 1;
            self.traffic.bytes += bytes.len() as u64;
            match t.class {
                DeliveryClass::Gossip => self.traffic.gossip_bytes += bytes.len() as u64,
                DeliveryClass::Control => self.traffic.control_bytes += bytes.len() as u64,
                DeliveryClass::Heartbeat => self.traffic.heartbeat_bytes += bytes.len() as u64,
            }
            let mut bytes = bytes;
            if let (Some(v), Some(b)) = (self.wire_version.get(&id), bytes.get_mut(1)) {
                *b = *v;
            }
            self.transmit(id, from, t.destination, t.class, bytes);
        }
        if self.check_invariants {
            if let Some(node) = self.slots[id].node.as_deref() {
                if let Err(e) = self.checker.after_step(id, node) {
                    panic!(
                        "invariant violated at node {id}, t={:?}: {e}",
                        self.elapsed()
                    );
                }
            }
            // The check is symmetric in the two nodes: a node whose state has not changed
            // since its last check (same incarnation and generation) cannot have completed a
            // split the other node's own checks missed.
            let key = self.slots[id]
                .node
                .as_deref()
                .map(|n| (n.address(), n.generation()));
            let changed = key.is_some() && self.split_checked.get(&id) != key.as_ref();
            if self.check_split_brain && changed {
                if let Some(k) = key {
                    self.split_checked.insert(id, k);
                }
                if let Err(e) = self.split_brain_check(id) {
                    if self.record_events && !self.quiet {
                        for l in &self.log {
                            eprintln!(
                                "{:?} n{} {:?}",
                                Duration::from_micros(l.at.as_micros()),
                                l.node,
                                l.event
                            );
                        }
                    }
                    panic!("split brain at t={:?}: {e}", self.elapsed());
                }
            }
        }
        self.reschedule(id);
        if self.record_events {
            for event in events {
                self.log.push(Logged {
                    at: now,
                    node: id,
                    event,
                });
            }
        }
    }

    fn transmit(
        &mut self,
        from_id: NodeId,
        from: SocketAddr,
        to: SocketAddr,
        class: DeliveryClass,
        bytes: Vec<u8>,
    ) {
        let Some(&to_id) = self.by_addr.get(&to) else {
            self.traffic.dropped += 1;
            return;
        };
        if self.blocked.contains(&(from_id, to_id))
            || self.blocked_class.contains(&(from_id, to_id, class))
        {
            self.traffic.dropped += 1;
            return;
        }
        let link = *self
            .links
            .get(&(from_id, to_id))
            .unwrap_or(&self.default_link);
        if link.loss > 0.0 && (self.rng.unit() as f64) < link.loss {
            self.traffic.dropped += 1;
            return;
        }
        let copies = if link.duplicate > 0.0 && (self.rng.unit() as f64) < link.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if link.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_micros(self.rng.below(link.jitter.as_micros() as usize + 1) as u64)
            };
            let d = Delivery {
                at: self.now + link.latency + jitter,
                seq: self.seq,
                to: to_id,
                from,
                bytes: bytes.clone(),
            };
            self.seq += 1;
            self.queue.push(Reverse(d));
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.peek_time().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }

    fn peek_time(&mut self) -> Option<Instant> {
        let next_msg = self.queue.peek().map(|Reverse(d)| d.at);
        next_msg
            .into_iter()
            .chain(self.next_node_timeout().map(|(t, _)| t))
            .min()
    }

    /// Runs until `cond` holds or `limit` of virtual time passes. `cond` is checked whenever
    /// virtual time advances, at most once per [`Sim::set_check_interval`] (1 ms by default),
    /// so the time returned is exact to that granularity. Returns the virtual time taken, or an
    /// error after `limit`.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> Result<Duration, String> {
        let start = self.now;
        let end = self.now + limit;
        if cond(self) {
            return Ok(Duration::ZERO);
        }
        let mut next_check = self.now;
        while let Some(t) = self.peek_time() {
            if t > end {
                break;
            }
            if t > next_check {
                // Everything up to `t` has run: the state is final for the instants before it.
                if cond(self) {
                    return Ok(self.now - start);
                }
                next_check = t.max(self.now + self.check_interval);
            }
            self.step();
        }
        if cond(self) {
            return Ok(self.now - start);
        }
        self.now = self.now.max(end);
        Err(format!(
            "condition not met within {limit:?} (seed {})",
            self.seed
        ))
    }

    // ----- predicates for tests ----------------------------------------------------------

    /// True if every node in `ids` is running, a member, and sees exactly the nodes `ids` as
    /// members, all Up.
    pub fn all_up(&self, ids: &[NodeId]) -> bool {
        self.all_see(ids, ids, |m| m.status == MemberStatus::Up)
    }

    /// True if every node in `observers` sees exactly the nodes `members` (current
    /// incarnations) as members, and each satisfies `pred`.
    pub fn all_see(
        &self,
        observers: &[NodeId],
        members: &[NodeId],
        pred: impl Fn(&Member) -> bool,
    ) -> bool {
        let want: Option<Vec<UniqueAddress>> = members
            .iter()
            .map(|i| self.try_node(*i).map(|n| n.address()))
            .collect();
        let Some(mut want) = want else { return false };
        want.sort();
        observers.iter().all(|o| {
            self.try_node(*o).is_some_and(|n| {
                n.members().len() == want.len()
                    && n.members()
                        .iter()
                        .zip(&want)
                        .all(|(m, w)| m.address == *w && pred(m))
            })
        })
    }

    /// True if all nodes in `ids` hold the same gossip version, see convergence and agree on
    /// members, statuses and leader.
    pub fn converged(&self, ids: &[NodeId]) -> bool {
        let nodes: Option<Vec<&Node<M, R>>> = ids.iter().map(|i| self.try_node(*i)).collect();
        let Some(nodes) = nodes else { return false };
        let Some(first) = nodes.first() else {
            return true;
        };
        nodes.iter().all(|n| {
            n.is_converged()
                && n.gossip().version() == first.gossip().version()
                && n.members() == first.members()
                && n.leader() == first.leader()
        })
    }

    /// Checks the agreement invariant: nodes in `ids` that share a version and see convergence
    /// agree on members, statuses and leader.
    pub fn check_agreement(&self, ids: &[NodeId]) -> Result<(), String> {
        let nodes: Vec<&Node<M, R>> = ids
            .iter()
            .filter_map(|i| self.try_node(*i))
            .filter(|n| n.is_converged())
            .collect();
        for a in &nodes {
            for b in &nodes {
                if a.gossip().version() == b.gossip().version()
                    && (a.members() != b.members() || a.leader() != b.leader())
                {
                    return Err(format!(
                        "{} and {} share a converged version but disagree",
                        a.address(),
                        b.address()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The leader as node `id` sees it, as a node id.
    pub fn leader_of(&self, id: NodeId) -> Option<NodeId> {
        let l = self.node(id).leader()?;
        self.by_addr.get(&l.socket_addr()).copied()
    }

    /// The status of node `who` (current incarnation) as `observer` sees it.
    pub fn status_of(&self, observer: NodeId, who: NodeId) -> Option<MemberStatus> {
        let w = self.try_node(who)?.address();
        self.try_node(observer)?
            .gossip()
            .member(&w)
            .map(|m| m.status)
    }

    /// Whether node `id` runs and still serves: a member whose own status is Up, WeaklyUp,
    /// Leaving or one of the shutdown statuses.
    pub fn serving(&self, id: NodeId) -> bool {
        self.try_node(id).is_some_and(|n| {
            n.status() == NodeStatus::Member
                && n.self_member().is_some_and(|m| {
                    matches!(
                        m.status,
                        MemberStatus::Up
                            | MemberStatus::WeaklyUp
                            | MemberStatus::Leaving
                            | MemberStatus::PreparingForShutdown
                            | MemberStatus::ReadyForShutdown
                    )
                })
        })
    }

    /// Whether running node `by` has downed or removed the current incarnation of `who`.
    fn has_downed(&self, by: NodeId, who: NodeId) -> bool {
        let (Some(b), Some(w)) = (self.try_node(by), self.try_node(who)) else {
            return false;
        };
        let a = w.address();
        let g = b.gossip();
        match g.member(&a) {
            Some(m) => m.status == MemberStatus::Down,
            None => {
                g.is_tombstoned(&a)
                    || self
                        .checker
                        .views
                        .get(&by)
                        .is_some_and(|v| v.incarnation == b.address() && v.removed.contains(&a))
            }
        }
    }

    /// Whether node `id` has nothing left to decide: every member it sees flagged unreachable
    /// is Down or Exiting. Until then a node that has downed a peer which downed it may still be
    /// in the middle of resolving a partition that moved (see [`campaign::oracle`]).
    pub fn settled(&self, id: NodeId) -> bool {
        self.try_node(id).is_none_or(|n| {
            n.unreachable()
                .all(|m| !fjell_core::testing::downing::downable(m.status))
        })
    }

    /// The split-brain invariant for node `id` against every other node.
    fn split_brain_check(&self, id: NodeId) -> Result<(), String> {
        if !self.serving(id) {
            return Ok(());
        }
        for other in self.running().filter(|o| *o != id) {
            if self.serving(other)
                && self.has_downed(id, other)
                && self.has_downed(other, id)
                && self.settled(id)
                && self.settled(other)
            {
                let view = |i: NodeId| {
                    let n = self.node(i);
                    let members: Vec<String> = n
                        .members()
                        .iter()
                        .map(|m| format!("{}:{:?}", m.address.socket_addr().ip(), m.status))
                        .collect();
                    format!("node {i} sees [{}]", members.join(", "))
                };
                return Err(format!(
                    "nodes {id} and {other} both serve and each has downed the other (seed {}); \
                     {}; {}",
                    self.seed,
                    view(id),
                    view(other)
                ));
            }
        }
        Ok(())
    }

    /// True if node `id` has stopped (or crashed).
    pub fn is_stopped(&self, id: NodeId) -> bool {
        self.try_node(id)
            .is_none_or(|n| matches!(n.status(), NodeStatus::Stopped(_)))
    }
}

/// Per-step invariants: statuses move only forward (to a status the transition table can reach) and a removed
/// incarnation never comes back, as each node sees them; every gossip keeps its structural
/// invariants; and nodes that see convergence on the same version agree on members, statuses
/// and leader.
#[derive(Default)]
struct Checker {
    views: HashMap<NodeId, View>,
    /// Per gossip version seen at convergence: a digest of (members, statuses, leader) and the
    /// node that saw it. Two converged nodes with one version must agree.
    converged: HashMap<u64, (u64, NodeId, String)>,
}

struct View {
    incarnation: UniqueAddress,
    generation: Option<u64>,
    last: HashMap<UniqueAddress, MemberStatus>,
    removed: HashSet<UniqueAddress>,
}

impl Checker {
    fn after_step<const M: usize, const R: usize>(
        &mut self,
        id: NodeId,
        node: &Node<M, R>,
    ) -> Result<(), String> {
        let view = self.views.entry(id).or_insert_with(|| View {
            incarnation: node.address(),
            generation: None,
            last: HashMap::new(),
            removed: HashSet::new(),
        });
        // A restarted node's view starts afresh, and so does the view of a node that is not a
        // member (it may join again: a joiner the cluster never heard of starts over).
        let member = matches!(node.status(), NodeStatus::Member | NodeStatus::Exiting);
        if view.incarnation != node.address() || !member {
            view.incarnation = node.address();
            view.generation = None;
            view.last.clear();
            view.removed.clear();
        }
        if view.generation == Some(node.generation()) {
            return Ok(()); // nothing changed since the last check
        }
        view.generation = Some(node.generation());
        let g = node.gossip();
        g.check_invariants().map_err(|e| e.to_string())?;
        for m in g.members() {
            if view.removed.contains(&m.address) {
                return Err(format!("removed member {} came back", m.address));
            }
            if let Some(prev) = view.last.insert(m.address, m.status) {
                if !prev.can_reach(m.status) {
                    return Err(format!(
                        "{}: status moved backwards from {prev:?} to {:?}",
                        m.address, m.status
                    ));
                }
            }
        }
        if node.is_converged() {
            // The leader each node acts on, except where a node leads in its own view only:
            // each counts itself as reachable (Pekko's rule), so a flagged member that is
            // Exiting, and ignored by convergence, may lead itself while nobody else may lead
            // (every other member may not). Then compare the leader as any node sees it.
            let me = node.address();
            let leader = match node.leader() {
                Some(l) if l == me && !g.reachability().is_reachable(&me) => {
                    let outsider = UniqueAddress::new(SocketAddr::from(([0, 0, 0, 0], 0)), 0);
                    fjell_core::testing::leader::leader(g, &outsider)
                }
                own => own,
            };
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(g.members(), &mut h);
            std::hash::Hash::hash(&leader, &mut h);
            let agreed = std::hash::Hasher::finish(&h);
            let version = g.version_digest();
            let describe = || {
                let members: Vec<String> = g
                    .members()
                    .iter()
                    .map(|m| format!("{}:{:?}", m.address.socket_addr().ip(), m.status))
                    .collect();
                let leader = leader.map(|l| l.socket_addr().ip());
                format!("[{}] leader {leader:?}", members.join(", "))
            };
            match self.converged.get(&version) {
                Some((other, by, seen)) if *other != agreed => {
                    return Err(format!(
                        "node {id} and node {by} both see convergence on one version but \
                         disagree on members, statuses or leader: {} against {seen}",
                        describe()
                    ));
                }
                Some(_) => {}
                None => {
                    self.converged.insert(version, (agreed, id, describe()));
                }
            }
        }
        if view.last.len() > g.members().len() {
            // Members that vanished from this node's view are removed for it.
            let gone: Vec<UniqueAddress> = view
                .last
                .keys()
                .filter(|a| !g.is_member(a))
                .copied()
                .collect();
            for a in gone {
                view.last.remove(&a);
                view.removed.insert(a);
            }
        }
        Ok(())
    }
}

/// One node's outputs during [`Sim::flush`]: messages and events are collected, lease requests
/// answered at once from the simulation's [`MemoryLease`].
struct Outputs<'a> {
    now: Instant,
    me: UniqueAddress,
    lease: &'a mut MemoryLease,
    out: &'a mut Vec<(Transmit, Vec<u8>)>,
    events: &'a mut Vec<Event>,
    view_before: Option<&'a str>,
}

impl Sink for Outputs<'_> {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        self.out.push((*t, bytes.to_vec()));
    }

    fn lease(&mut self, req: LeaseRequest, now: Instant) -> Option<bool> {
        self.lease.answer(req, &self.me, now)
    }

    fn event(&mut self, e: Event) {
        if let (Event::Downing(_), Some(v)) = (&e, self.view_before) {
            eprintln!(
                "{:>10.3} before deciding, {v}",
                self.now.as_micros() as f64 / 1e6
            );
        }
        self.events.push(e);
    }
}
