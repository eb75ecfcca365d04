//! The network model both protocols run in: a discrete-event simulator with a virtual clock.
//!
//! One event queue holds every message in flight and every timer of every node, ordered by
//! virtual time and, at equal times, by the order they were queued. A message sent at `t` is
//! delivered at `t + latency` unless it is lost (with probability `loss`, drawn from the
//! simulation's seeded generator): every link has the same latency, so each link is FIFO.
//! A protocol asks for timers in one of two ways, both going into the same queue:
//! [`Ctx::submit_after`] (a timer value handed back later, as foca's `Runtime::submit_after`)
//! or [`Ctx::set_deadline`] (one wake-up time per node that replaces the previous one, as a
//! sans-IO `poll_timeout`).
//!
//! A crashed node ([`Sim::crash`]) neither receives nor sends: messages to or from it, including
//! those in flight, are dropped, and its timers never fire again.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::heap;

/// Index of a node in a simulation, `0..n`.
pub type NodeId = usize;

/// The properties of every link: one model for all of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// One-way latency of every message.
    pub latency: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
}

impl Link {
    /// The model of the comparison: 1 ms one-way latency, no loss.
    pub const LAN: Link = Link {
        latency: Duration::from_millis(1),
        loss: 0.0,
    };
}

/// Counters of the network, from the start of the simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages the protocols handed to the network.
    pub messages: u64,
    /// Payload bytes of those messages, as handed over by the protocols.
    pub bytes: u64,
    /// Messages handed to a receiving node.
    pub delivered: u64,
    /// Messages lost: by `loss`, or to or from a crashed node.
    pub dropped: u64,
}

/// Something a node reports about a peer, through [`Ctx::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The node flags the peer as failed.
    Flagged(NodeId),
    /// The node sees that the peer is leaving or has left: it no longer counts it as Up.
    Departing(NodeId),
}

/// An [`Observation`], with who made it and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Virtual time since the start.
    pub at: Duration,
    /// The observing node.
    pub by: NodeId,
    /// What it saw.
    pub what: Observation,
}

/// One protocol node as the simulator drives it. The scenarios of [`crate::measure`] are
/// written against this trait only, so they cannot favour one protocol.
pub trait Protocol: Sized {
    /// A timer value the node gets back through [`Protocol::on_timer`].
    type Timer;

    /// Builds node `id` of a cluster of `n` nodes with its own `seed`, and starts it joining
    /// at `ctx.now()`.
    fn start(id: NodeId, n: usize, seed: u64, ctx: &mut Ctx<'_, Self::Timer>) -> Self;

    /// A message from `from` arrived.
    fn on_message(&mut self, from: NodeId, bytes: &[u8], ctx: &mut Ctx<'_, Self::Timer>);

    /// A timer submitted with [`Ctx::submit_after`] is due.
    fn on_timer(&mut self, timer: Self::Timer, ctx: &mut Ctx<'_, Self::Timer>) {
        let _ = (timer, ctx);
    }

    /// The deadline set with [`Ctx::set_deadline`] is due.
    fn on_deadline(&mut self, ctx: &mut Ctx<'_, Self::Timer>) {
        let _ = ctx;
    }

    /// This node leaves the cluster gracefully.
    fn leave(&mut self, ctx: &mut Ctx<'_, Self::Timer>);

    /// Members in this node's view, itself included.
    fn members_seen(&self) -> usize;

    /// Every member in this node's view is Up (alive and fully admitted).
    fn all_up(&self) -> bool;

    /// Whether this node suspects `peer` now; `None` for a protocol without a suspicion
    /// stage before its failure verdict.
    fn suspects(&self, peer: NodeId) -> Option<bool> {
        let _ = peer;
        None
    }

    /// Bytes of the node's own value (its `size_of`, not counting the heap).
    fn value_bytes(&self) -> usize;
}

enum Event<T> {
    Deliver {
        from: NodeId,
        to: NodeId,
        bytes: Vec<u8>,
    },
    Timer {
        node: NodeId,
        timer: T,
    },
    Deadline {
        node: NodeId,
    },
}

struct Entry<T> {
    at: Duration,
    seq: u64,
    event: Event<T>,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    // Reversed: the heap pops the earliest entry, and the first queued among equal times.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The network and timer state the nodes' calls write into.
struct Net<T> {
    link: Link,
    rng: SplitMix,
    queue: BinaryHeap<Entry<T>>,
    seq: u64,
    traffic: Traffic,
    deadlines: Vec<Option<Duration>>,
    crashed: Vec<bool>,
    observed: Vec<Observed>,
}

impl<T> Net<T> {
    fn push(&mut self, at: Duration, event: Event<T>) {
        self.seq += 1;
        let seq = self.seq;
        self.queue.push(Entry { at, seq, event });
    }
}

/// What a node's call may do to the world: send, ask for timers, report observations.
pub struct Ctx<'a, T> {
    now: Duration,
    me: NodeId,
    net: &'a mut Net<T>,
}

impl<T> Ctx<'_, T> {
    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The node being called.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Sends `bytes` to node `to`; counted in [`Traffic`] as one message of `bytes.len()`.
    pub fn send(&mut self, to: NodeId, bytes: &[u8]) {
        let (now, me) = (self.now, self.me);
        let net = &mut *self.net;
        heap::unattributed(|| {
            net.traffic.messages += 1;
            net.traffic.bytes += bytes.len() as u64;
            if net.link.loss > 0.0 && net.rng.next_f64() < net.link.loss {
                net.traffic.dropped += 1;
                return;
            }
            let at = now + net.link.latency;
            let event = Event::Deliver {
                from: me,
                to,
                bytes: bytes.to_vec(),
            };
            net.push(at, event);
        });
    }

    /// Hands `timer` back to this node through [`Protocol::on_timer`] after `after`.
    pub fn submit_after(&mut self, after: Duration, timer: T) {
        let (now, node) = (self.now, self.me);
        let net = &mut *self.net;
        heap::unattributed(|| net.push(now + after, Event::Timer { node, timer }));
    }

    /// Sets this node's one deadline (replacing the previous one; `None` clears it): at that
    /// time [`Protocol::on_deadline`] is called.
    pub fn set_deadline(&mut self, at: Option<Duration>) {
        let node = self.me;
        let net = &mut *self.net;
        if net.deadlines[node] == at {
            return;
        }
        net.deadlines[node] = at;
        if let Some(at) = at {
            heap::unattributed(|| net.push(at, Event::Deadline { node }));
        }
    }

    /// Reports what this node saw about a peer.
    pub fn observe(&mut self, what: Observation) {
        let o = Observed {
            at: self.now,
            by: self.me,
            what,
        };
        let net = &mut *self.net;
        heap::unattributed(|| net.observed.push(o));
    }
}

/// A simulation of `n` nodes of protocol `P`.
pub struct Sim<P: Protocol> {
    nodes: Vec<P>,
    net: Net<P::Timer>,
    now: Duration,
}

impl<P: Protocol> Sim<P> {
    /// Starts `n` nodes at time zero, in id order, each with its own seed derived from `seed`.
    pub fn start(n: usize, seed: u64, link: Link) -> Self {
        let mut net = Net {
            link,
            rng: SplitMix(seed ^ 0x0E7_5EED),
            queue: BinaryHeap::new(),
            seq: 0,
            traffic: Traffic::default(),
            deadlines: vec![None; n],
            crashed: vec![false; n],
            observed: Vec::new(),
        };
        let mut nodes = Vec::with_capacity(n);
        for id in 0..n {
            let node_seed = SplitMix(seed ^ (id as u64).wrapping_mul(0x9E37_79B9)).next_u64();
            let mut ctx = Ctx {
                now: Duration::ZERO,
                me: id,
                net: &mut net,
            };
            nodes.push(heap::attributed(|| P::start(id, n, node_seed, &mut ctx)));
        }
        Sim {
            nodes,
            net,
            now: Duration::ZERO,
        }
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Number of nodes, crashed ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if the simulation has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `id`.
    pub fn node(&self, id: NodeId) -> &P {
        &self.nodes[id]
    }

    /// Every node, crashed ones included.
    pub fn nodes(&self) -> &[P] {
        &self.nodes
    }

    /// Whether node `id` has crashed.
    pub fn is_crashed(&self, id: NodeId) -> bool {
        self.net.crashed[id]
    }

    /// The network counters so far.
    pub fn traffic(&self) -> Traffic {
        self.net.traffic
    }

    /// Every observation reported so far, in time order.
    pub fn observed(&self) -> &[Observed] {
        &self.net.observed
    }

    /// Crashes node `id` now.
    pub fn crash(&mut self, id: NodeId) {
        self.net.crashed[id] = true;
        self.net.deadlines[id] = None;
    }

    /// Node `id` leaves gracefully now.
    pub fn leave(&mut self, id: NodeId) {
        let mut ctx = Ctx {
            now: self.now,
            me: id,
            net: &mut self.net,
        };
        let node = &mut self.nodes[id];
        heap::attributed(|| node.leave(&mut ctx));
    }

    /// Runs every event due up to and including `now() + d`; the clock then reads that time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.net.queue.peek().is_some_and(|e| e.at <= until) {
            self.step();
        }
        self.now = until;
    }

    /// Evaluates `done` now and then every `every` of virtual time, for at most `limit`.
    /// Returns the time from the call until the first evaluation that held, or `None`.
    pub fn run_until(
        &mut self,
        limit: Duration,
        every: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        loop {
            if done(self) {
                return Some(self.now - start);
            }
            if self.now - start >= limit {
                return None;
            }
            self.run_for(every);
        }
    }

    fn step(&mut self) {
        let Some(entry) = self.net.queue.pop() else {
            return;
        };
        self.now = entry.at;
        match entry.event {
            Event::Deliver { from, to, bytes } => {
                if self.net.crashed[from] || self.net.crashed[to] {
                    self.net.traffic.dropped += 1;
                    return;
                }
                self.net.traffic.delivered += 1;
                let mut ctx = Ctx {
                    now: self.now,
                    me: to,
                    net: &mut self.net,
                };
                let node = &mut self.nodes[to];
                heap::attributed(|| node.on_message(from, &bytes, &mut ctx));
            }
            Event::Timer { node: id, timer } => {
                if self.net.crashed[id] {
                    return;
                }
                let mut ctx = Ctx {
                    now: self.now,
                    me: id,
                    net: &mut self.net,
                };
                let node = &mut self.nodes[id];
                heap::attributed(|| node.on_timer(timer, &mut ctx));
            }
            Event::Deadline { node: id } => {
                // Only the node's current deadline counts: earlier ones were replaced.
                if self.net.crashed[id] || self.net.deadlines[id] != Some(entry.at) {
                    return;
                }
                self.net.deadlines[id] = None;
                let mut ctx = Ctx {
                    now: self.now,
                    me: id,
                    net: &mut self.net,
                };
                let node = &mut self.nodes[id];
                heap::attributed(|| node.on_deadline(&mut ctx));
            }
        }
    }
}

/// SplitMix64: seeds and the loss draws.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 0 sends three numbered messages to node 1 at t = 0 and two more at t = 5 ms; every
    /// node records what it receives and when.
    struct Recorder {
        got: Vec<(Duration, NodeId, u8)>,
        timer_at: Option<Duration>,
    }

    impl Protocol for Recorder {
        type Timer = u8;

        fn start(id: NodeId, _n: usize, _seed: u64, ctx: &mut Ctx<'_, u8>) -> Self {
            if id == 0 {
                for i in 0..3 {
                    ctx.send(1, &[i]);
                }
                ctx.submit_after(Duration::from_millis(5), 3);
            }
            Recorder {
                got: Vec::new(),
                timer_at: None,
            }
        }

        fn on_message(&mut self, from: NodeId, bytes: &[u8], ctx: &mut Ctx<'_, u8>) {
            self.got.push((ctx.now(), from, bytes[0]));
        }

        fn on_timer(&mut self, first: u8, ctx: &mut Ctx<'_, u8>) {
            self.timer_at = Some(ctx.now());
            ctx.send(1, &[first]);
            ctx.send(1, &[first + 1]);
        }

        fn leave(&mut self, _: &mut Ctx<'_, u8>) {}

        fn members_seen(&self) -> usize {
            self.got.len()
        }

        fn all_up(&self) -> bool {
            true
        }

        fn value_bytes(&self) -> usize {
            std::mem::size_of::<Self>()
        }
    }

    #[test]
    fn delivers_after_exactly_the_latency_in_fifo_order() {
        let link = Link {
            latency: Duration::from_micros(1_250),
            loss: 0.0,
        };
        let mut sim: Sim<Recorder> = Sim::start(2, 7, link);
        sim.run_for(Duration::from_millis(1));
        assert!(
            sim.node(1).got.is_empty(),
            "nothing arrives before the latency"
        );
        sim.run_for(Duration::from_millis(20));
        let ms = Duration::from_millis;
        assert_eq!(sim.node(0).timer_at, Some(ms(5)));
        let expected = vec![
            (link.latency, 0, 0),
            (link.latency, 0, 1),
            (link.latency, 0, 2),
            (ms(5) + link.latency, 0, 3),
            (ms(5) + link.latency, 0, 4),
        ];
        assert_eq!(sim.node(1).got, expected);
        let t = sim.traffic();
        assert_eq!((t.messages, t.bytes, t.delivered, t.dropped), (5, 5, 5, 0));
    }

    #[test]
    fn a_crashed_node_neither_receives_nor_sends() {
        let mut sim: Sim<Recorder> = Sim::start(2, 7, Link::LAN);
        sim.crash(1);
        sim.run_for(Duration::from_millis(20));
        assert!(sim.node(1).got.is_empty());
        assert_eq!(sim.traffic().dropped, 5);
    }

    #[test]
    fn loss_drops_about_its_share() {
        let link = Link {
            latency: Duration::from_millis(1),
            loss: 0.5,
        };
        let mut sim: Sim<Recorder> = Sim::start(2, 7, link);
        let mut ctx = Ctx {
            now: Duration::ZERO,
            me: 0,
            net: &mut sim.net,
        };
        for _ in 0..1_000 {
            ctx.send(1, &[9]);
        }
        let dropped = sim.traffic().dropped;
        assert!((400..600).contains(&dropped), "{dropped} of 1,003 lost");
    }
}
