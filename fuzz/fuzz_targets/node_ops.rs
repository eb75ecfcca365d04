//! Three nodes and a hostile network: the fuzzer chooses time steps, which message is delivered,
//! dropped, duplicated or corrupted, injects arbitrary bytes from any address, and issues
//! commands. After every input each node's state must keep its structural invariants (valid
//! gossip). While the network is merely unreliable (loss, duplication, reordering) statuses must
//! also only move forward and removed incarnations never come back (a node that starts over as
//! a joiner, having lost its membership, starts its view's history over); once a message was forged
//! or corrupted, a peer inside the trust boundary may lie about membership (fjell defends its
//! integrity, not against Byzantine members), so only the structural invariants are checked.
//! Each node runs a different split brain resolver strategy with a short stable-after, and the
//! fuzzer answers their lease requests. A node restarted an odd number of times comes back as
//! a member that may not lead (`leader_eligible = false`): it takes no joiners and reads no join
//! request past its sender.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use fjell_core::{
    Config, Downing, Event, Instant, LeaseRequest, Node, NodeStatus, Sink, Strategy, Transmit,
    UniqueAddress,
};
use libfuzzer_sys::fuzz_target;

type N = Node<8, 16, 8>;
const NODES: usize = 3;

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    Timeout(u8),
    Deliver(u8),
    Drop(u8),
    Duplicate(u8),
    Corrupt { k: u8, pos: u16, byte: u8 },
    Inject { to: u8, from: u8, bytes: Vec<u8> },
    Seeds(u8),
    Join { node: u8, target: u8 },
    Leave { by: u8, who: u8 },
    Down { by: u8, who: u8 },
    Restart(u8),
    Lease { node: u8, granted: bool },
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7355))
}

struct World {
    now: Instant,
    nodes: Vec<Box<N>>,
    uids: [u64; NODES],
    pending: Vec<(usize, usize, Vec<u8>)>,
    last: Vec<HashMap<UniqueAddress, fjell_core::MemberStatus>>,
    removed: Vec<HashSet<UniqueAddress>>,
    tampered: bool,
}

impl World {
    fn boot(i: usize, uid: u64) -> Box<N> {
        let mut c = Config::default();
        c.downing.downing = Downing::SplitBrainResolver(match i {
            0 => Strategy::KeepMajority { role: None },
            1 => Strategy::LeaseMajority { role: None },
            _ => Strategy::StaticQuorum {
                size: 2,
                role: None,
            },
        });
        c.downing.stable_after = Some(std::time::Duration::from_secs(1));
        // One world runs every strategy at once, which the join check would refuse: the
        // harness checks state invariants, not that one side survives a partition.
        c.enforce_on_join = false;
        // Each restart adds 100 to the uid (`Op::Restart`).
        c.leader_eligible = (uid / 100) % 2 == 0;
        Box::new(N::new(c, UniqueAddress::new(addr(i), uid), uid).expect("valid config"))
    }

    fn flush(&mut self, i: usize) {
        let mut buf = vec![0u8; N::MAX_MESSAGE_LEN];
        let mut sink = Outputs {
            from: i,
            pending: &mut self.pending,
        };
        self.nodes[i].drain(self.now, &mut buf, &mut sink);
        self.check(i);
    }

    fn check(&mut self, i: usize) {
        let g = self.nodes[i].gossip();
        g.check_invariants().expect("gossip invariants");
        if self.tampered {
            return;
        }
        // A member that lost its membership (it heard from nobody for too long, or the cluster
        // did not know it) starts over as a joiner with an empty view, and may found or join
        // again with the same incarnation: its view's history starts over too, as on a restart.
        if self.nodes[i].status() != NodeStatus::Member {
            self.last[i].clear();
            self.removed[i].clear();
            return;
        }
        for m in g.members() {
            assert!(
                !self.removed[i].contains(&m.address),
                "removed member came back"
            );
            if let Some(prev) = self.last[i].insert(m.address, m.status) {
                assert!(
                    prev.can_reach(m.status),
                    "status moved backwards: {prev:?} -> {:?}",
                    m.status
                );
            }
        }
        let gone: Vec<UniqueAddress> = self.last[i]
            .keys()
            .filter(|a| !g.is_member(a))
            .copied()
            .collect();
        for a in gone {
            self.last[i].remove(&a);
            self.removed[i].insert(a);
        }
    }
}

/// Queues one node's messages to the other nodes; lease requests are left to `Op::Lease`, which
/// answers them later (or never), as a slow or unavailable lease would.
struct Outputs<'a> {
    from: usize,
    pending: &'a mut Vec<(usize, usize, Vec<u8>)>,
}

impl Sink for Outputs<'_> {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        if let Some(to) = (0..NODES).find(|j| addr(*j) == t.destination) {
            if self.pending.len() < 512 {
                self.pending.push((self.from, to, bytes.to_vec()));
            }
        }
    }

    fn lease(&mut self, _: LeaseRequest, _: Instant) -> Option<bool> {
        None
    }

    fn event(&mut self, _: Event) {}
}

fuzz_target!(|ops: Vec<Op>| {
    let uids = [11, 22, 33];
    let mut w = World {
        now: Instant::ZERO,
        nodes: (0..NODES).map(|i| World::boot(i, uids[i])).collect(),
        uids,
        pending: Vec::new(),
        last: vec![HashMap::new(); NODES],
        removed: vec![HashSet::new(); NODES],
        tampered: false,
    };
    let seeds: Vec<SocketAddr> = (0..NODES).map(addr).collect();
    for op in ops.into_iter().take(400) {
        let n = |x: u8| x as usize % NODES;
        match op {
            Op::Advance(ms) => w.now = w.now + std::time::Duration::from_millis(u64::from(ms)),
            Op::Timeout(i) => {
                let i = n(i);
                w.nodes[i].handle_timeout(w.now);
                w.flush(i);
            }
            Op::Deliver(k) | Op::Duplicate(k) if !w.pending.is_empty() => {
                let k = k as usize % w.pending.len();
                let (from, to, bytes) = if matches!(op, Op::Deliver(_)) {
                    w.pending.remove(k)
                } else {
                    w.pending[k].clone()
                };
                let _ = w.nodes[to].handle_message(w.now, addr(from), &bytes);
                w.flush(to);
            }
            Op::Drop(k) if !w.pending.is_empty() => {
                let k = k as usize % w.pending.len();
                w.pending.remove(k);
            }
            Op::Corrupt { k, pos, byte } if !w.pending.is_empty() => {
                let k = k as usize % w.pending.len();
                w.tampered = true;
                let msg = &mut w.pending[k].2;
                if !msg.is_empty() {
                    let p = pos as usize % msg.len();
                    msg[p] ^= byte;
                }
            }
            Op::Inject { to, from, bytes } => {
                w.tampered = true;
                let to = n(to);
                let from = SocketAddr::from(([10, 0, 0, from], 7355));
                let _ = w.nodes[to].handle_message(w.now, from, &bytes);
                w.flush(to);
            }
            Op::Seeds(i) => {
                let i = n(i);
                let _ = w.nodes[i].join_seed_nodes(w.now, &seeds);
                w.flush(i);
            }
            Op::Join { node, target } => {
                let i = n(node);
                let _ = w.nodes[i].join(w.now, addr(n(target)));
                w.flush(i);
            }
            Op::Leave { by, who } => {
                let i = n(by);
                let _ = w.nodes[i].leave(w.now, addr(n(who)));
                w.flush(i);
            }
            Op::Down { by, who } => {
                let i = n(by);
                let _ = w.nodes[i].down(w.now, addr(n(who)));
                w.flush(i);
            }
            Op::Restart(i) => {
                let i = n(i);
                w.uids[i] += 100;
                w.nodes[i] = World::boot(i, w.uids[i]);
                w.last[i].clear();
                w.removed[i].clear();
            }
            Op::Lease { node, granted } => {
                let i = n(node);
                w.nodes[i].handle_lease(w.now, granted);
                w.flush(i);
            }
            _ => {}
        }
    }
});
