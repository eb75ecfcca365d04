//! Capacity as a contract (see `fjell_core::capacity`): a cluster never admits more members than
//! every member can hold, refusals are reported on both sides, and concurrent admissions past
//! the bound are undone the same way on every node instead of wedging the cluster.
//!
//! Each test names the observed failure it guards against (issue 13). Before the capacity
//! contract, `concurrent_joins_at_the_member_limit_do_not_wedge_the_cluster` never converged
//! (every merge failed for lack of room), the (M+1)-th joiner waited forever without an event,
//! and a small node admitted to a large cluster could not decode its gossip.

use std::time::Duration;

use fjell_core::compat::Incompatibility;
use fjell_core::{
    Capacity, Config, Event, Instant, MemberStatus, Node, NodeStatus, StopReason, UniqueAddress,
};
use fjell_sim::{NodeId, Sim};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn refused_for_capacity(e: &Event) -> bool {
    matches!(
        e,
        Event::JoinRefused {
            reason: Incompatibility::Capacity { .. },
            ..
        }
    )
}

fn refusal_reported(e: &Event) -> bool {
    matches!(
        e,
        Event::JoinRequestRefused {
            reason: Incompatibility::Capacity { .. },
            ..
        }
    )
}

/// Three members Up in a cluster of four-member nodes; two nodes join at the same instant
/// through two different members. Both are let in (each member sees room for one), the merge
/// drops the one with the higher address on every node, and it learns so. The cluster then
/// converges with four members and still works: a member leaves and is removed.
#[test]
fn concurrent_joins_at_the_member_limit_do_not_wedge_the_cluster() {
    for seed in 0..20 {
        let mut sim: Sim<4, 8> = Sim::new(seed);
        sim.record_events(true);
        let config = Config::default();
        let ids = sim.start_cluster(3, &config, 1);
        sim.run_until(SECS(30), |s| s.all_up(&ids))
            .unwrap_or_else(|e| panic!("seed {seed}: forming: {e}"));
        let a = sim.add_node(config.clone());
        let b = sim.add_node(config.clone());
        sim.join(a, ids[0]);
        sim.join(b, ids[1]);
        // The one with the higher address (b) goes; a stays.
        let four = [ids[0], ids[1], ids[2], a];
        sim.run_until(SECS(60), |s| {
            s.all_up(&four) && s.converged(&four) && s.is_stopped(b)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            sim.events_of(b).any(refused_for_capacity),
            "seed {seed}: the dropped joiner reports why"
        );
        assert!(sim
            .events_of(b)
            .any(|e| *e == Event::Stopped(StopReason::Dropped)));
        assert!(
            four.iter().any(|&i| sim.events_of(i).any(refusal_reported)),
            "seed {seed}: a member reports the refusal"
        );
        // Still live: a leave completes (it needs convergence).
        sim.leave(ids[2], ids[2]);
        let three = [ids[0], ids[1], a];
        sim.run_until(SECS(60), |s| s.all_up(&three) && s.converged(&three))
            .unwrap_or_else(|e| panic!("seed {seed}: leaving after the drop: {e}"));
        // And the dropped node, as a new incarnation, joins the room the leave made.
        sim.restart(b);
        sim.join(b, ids[0]);
        let again = [ids[0], ids[1], a, b];
        sim.run_until(SECS(60), |s| s.all_up(&again) && s.converged(&again))
            .unwrap_or_else(|e| panic!("seed {seed}: rejoining: {e}"));
    }
}

/// The (M+1)-th joiner is refused with reason Capacity, reported on both sides, and the
/// cluster carries on.
#[test]
fn the_joiner_beyond_the_limit_is_refused_on_both_sides() {
    let mut sim: Sim<4, 8> = Sim::new(7);
    sim.record_events(true);
    let config = Config::default();
    let ids = sim.start_cluster(4, &config, 1);
    sim.run_until(SECS(30), |s| s.all_up(&ids) && s.converged(&ids))
        .unwrap();
    let extra = sim.add_node(config);
    sim.join_seed_nodes(extra, &[ids[0]]);
    sim.run_until(SECS(30), |s| s.node(extra).status() == NodeStatus::Idle)
        .expect("the joiner gives up at once instead of waiting");
    let refusal = sim
        .events_of(extra)
        .find(|e| refused_for_capacity(e))
        .cloned();
    assert!(
        matches!(
            refusal,
            Some(Event::JoinRefused {
                reason: Incompatibility::Capacity {
                    members: 4,
                    holds: 4,
                    ..
                },
                ..
            })
        ),
        "{refusal:?}"
    );
    assert!(sim.events_of(ids[0]).any(refusal_reported));
    sim.run_for(SECS(10));
    assert!(sim.all_up(&ids) && sim.converged(&ids));
}

/// The cluster bound is the smallest member's: a cluster of larger nodes with one 4-member
/// node in it refuses a fifth member, even though the others hold eight.
#[test]
fn the_smallest_member_bounds_the_cluster() {
    let mut sim: Sim<8, 16> = Sim::new(3);
    sim.record_events(true);
    let config = Config::default();
    let ids = sim.start_cluster(4, &config, 1);
    sim.run_until(SECS(30), |s| s.all_up(&ids) && s.converged(&ids))
        .unwrap();
    // Every member record carries what its node holds.
    let caps: Vec<Capacity> = sim
        .node(ids[0])
        .members()
        .iter()
        .map(|m| m.capacity)
        .collect();
    assert!(caps.iter().all(|c| *c == Capacity::of(8, 16)), "{caps:?}");
    // Joiners five to eight fit; the ninth does not.
    let more: Vec<NodeId> = (0..5).map(|_| sim.add_node(config.clone())).collect();
    for &j in &more {
        sim.join_seed_nodes(j, &[ids[0]]);
    }
    let all: Vec<NodeId> = ids.iter().chain(&more).copied().collect();
    sim.run_until(SECS(60), |s| {
        let up = all.iter().filter(|&&i| s.serving(i)).count();
        let idle = more
            .iter()
            .filter(|&&i| s.node(i).status() == NodeStatus::Idle)
            .count();
        up == 8 && idle == 1
    })
    .expect("eight members and one refusal");
    let members: Vec<NodeId> = all.iter().copied().filter(|&i| sim.serving(i)).collect();
    sim.run_until(SECS(60), |s| s.all_up(&members) && s.converged(&members))
        .unwrap();
}

// ----- mixed capacities: nodes of two types on one instant network ----------------------------

type Big = Node<64, 256, 64>;
type Small = Node<16, 12, 8>;

enum AnyNode {
    Big(Box<Big>),
    Small(Box<Small>),
}

macro_rules! each {
    ($n:expr, $x:ident => $e:expr) => {
        match $n {
            AnyNode::Big($x) => $e,
            AnyNode::Small($x) => $e,
        }
    };
}

/// Nodes of both presets; every message is delivered at once, and time jumps to the next
/// timeout. Deterministic.
struct Mixed {
    nodes: Vec<AnyNode>,
    events: Vec<Vec<Event>>,
    now: Instant,
    decode_errors: u64,
}

fn addr(i: usize) -> std::net::SocketAddr {
    fjell_sim::addr_of(i)
}

impl Mixed {
    fn new() -> Self {
        Mixed {
            nodes: Vec::new(),
            events: Vec::new(),
            now: Instant::ZERO,
            decode_errors: 0,
        }
    }

    fn add(&mut self, small: bool) -> usize {
        let i = self.nodes.len();
        let (uid, seed) = (0x1000 + i as u64, 0x2000 + i as u64);
        let n = if small {
            AnyNode::Small(Box::new(
                Small::new(Config::default(), UniqueAddress::new(addr(i), uid), seed).unwrap(),
            ))
        } else {
            AnyNode::Big(Box::new(
                Big::new(Config::default(), UniqueAddress::new(addr(i), uid), seed).unwrap(),
            ))
        };
        self.nodes.push(n);
        self.events.push(Vec::new());
        i
    }

    fn join(&mut self, i: usize, seed: usize) {
        let now = self.now;
        each!(&mut self.nodes[i], n => n.join_seed_nodes(now, &[addr(seed)]).unwrap());
        self.deliver();
    }

    fn deliver(&mut self) {
        let mut buf = vec![0u8; Big::MAX_MESSAGE_LEN];
        let now = self.now;
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(t) = each!(&mut self.nodes[i], n => n.poll_transmit(now, &mut buf)) {
                    moved = true;
                    let j = (0..self.nodes.len()).find(|j| addr(*j) == t.destination);
                    if let Some(j) = j {
                        let r = each!(&mut self.nodes[j], n => n.handle_message(now, addr(i), &buf[..t.len]));
                        if r.is_err() {
                            self.decode_errors += 1;
                        }
                    }
                }
                while let Some(e) = each!(&mut self.nodes[i], n => n.poll_event()) {
                    self.events[i].push(e);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| each!(n, n => n.poll_timeout()))
                .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                break;
            };
            self.now = next.max(self.now);
            let now = self.now;
            for n in self.nodes.iter_mut() {
                each!(n, n => n.handle_timeout(now));
            }
            self.deliver();
        }
        self.now = end;
    }

    fn status(&self, i: usize) -> NodeStatus {
        each!(&self.nodes[i], n => n.status())
    }

    fn self_status(&self, i: usize) -> Option<MemberStatus> {
        each!(&self.nodes[i], n => n.self_member().map(|m| m.status))
    }

    fn converged_size(&self, i: usize) -> Option<usize> {
        each!(&self.nodes[i], n => n.is_converged().then(|| n.members().len()))
    }
}

/// A `Node<16, 12, 8>` cannot join twenty `Node<64, 256, 64>` nodes: refused with reason
/// Capacity on both sides, and the cluster goes on converging (a new joiner gets Up, a leaving
/// member is removed). Before the contract it was admitted, moved Up, and then could decode no
/// gossip, which kept every other node from converging again.
#[test]
fn a_smaller_node_is_refused_by_a_larger_cluster() {
    let mut net = Mixed::new();
    let bigs: Vec<usize> = (0..20).map(|_| net.add(false)).collect();
    for &i in &bigs {
        net.join(i, 0);
    }
    net.run_for(SECS(30));
    assert!(bigs.iter().all(|&i| net.converged_size(i) == Some(20)));
    let small = net.add(true);
    net.join(small, 0);
    net.run_for(SECS(10));
    assert_eq!(net.status(small), NodeStatus::Idle);
    assert!(net.events[small].iter().any(refused_for_capacity));
    assert!(net.events[0].iter().any(refusal_reported));
    // The cluster is unharmed.
    let newcomer = net.add(false);
    net.join(newcomer, 0);
    let now = net.now;
    each!(&mut net.nodes[0], n => n.leave(now, addr(5)).unwrap());
    net.deliver();
    net.run_for(SECS(30));
    assert_eq!(net.self_status(newcomer), Some(MemberStatus::Up));
    let rest: Vec<usize> = (0..=20).filter(|i| *i != 5 && *i != small).collect();
    assert!(
        rest.iter().all(|&i| net.converged_size(i) == Some(20)),
        "{:?}",
        rest.iter()
            .map(|&i| net.converged_size(i))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        net.decode_errors, 0,
        "every node decodes every message it gets"
    );
}

/// A small node inside a cluster of larger ones bounds it: with a `Node<16, 12, 8>` among ten
/// larger members, five more joiners get in and the rest are refused, and everyone (the small
/// node too) keeps decoding every message and converges.
#[test]
fn a_small_member_bounds_a_cluster_of_larger_nodes() {
    let mut net = Mixed::new();
    let bigs: Vec<usize> = (0..10).map(|_| net.add(false)).collect();
    for &i in &bigs {
        net.join(i, 0);
    }
    net.run_for(SECS(30));
    let small = net.add(true);
    net.join(small, 0);
    net.run_for(SECS(20));
    assert_eq!(net.self_status(small), Some(MemberStatus::Up));
    let more: Vec<usize> = (0..10).map(|_| net.add(false)).collect();
    for &i in &more {
        net.join(i, 1 + i % 3);
    }
    net.run_for(SECS(60));
    let admitted: Vec<usize> = more
        .iter()
        .copied()
        .filter(|&i| net.status(i) == NodeStatus::Member)
        .collect();
    let refused = more
        .iter()
        .filter(|&&i| net.events[i].iter().any(refused_for_capacity))
        .count();
    assert_eq!(admitted.len(), 5, "16 members in all");
    assert_eq!(refused, 5);
    for &i in bigs.iter().chain([&small]).chain(&admitted) {
        assert_eq!(net.converged_size(i), Some(16), "node {i}");
    }
    assert_eq!(net.decode_errors, 0);
}
