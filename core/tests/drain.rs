//! `Node::drain` against the loop it replaces: a lease-majority cluster that partitions, driven
//! once with `drain` and once with `poll_transmit`, `poll_event` and `poll_lease` by hand, gives
//! the same outputs in the same order; and the sink sees the lease requests. With the `alloc`
//! feature, `Node::drain_vec` (a buffer that grows to the message) gives them too.

use std::net::SocketAddr;
use std::time::Duration;

use fjell_core::{
    Config, Downing, Event, Instant, Lease, LeaseRequest, MemoryLease, Node, Sink, Strategy,
    Transmit, UniqueAddress,
};

type N = Node<8, 16>;
const NODES: usize = 3;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7355))
}

/// One output, as the embedder saw it.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    Transmit(Transmit, Vec<u8>),
    Lease(LeaseRequest),
    Event(Event),
}

/// Records one node's outputs and answers its lease requests at once.
struct Recorder<'a> {
    me: UniqueAddress,
    lease: &'a mut MemoryLease,
    log: &'a mut Vec<(usize, Output)>,
    id: usize,
}

impl Recorder<'_> {
    fn answer(&mut self, req: LeaseRequest, now: Instant) -> Option<bool> {
        self.log.push((self.id, Output::Lease(req)));
        self.lease.answer(req, &self.me, now)
    }
}

impl Sink for Recorder<'_> {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        self.log
            .push((self.id, Output::Transmit(*t, bytes.to_vec())));
    }

    fn lease(&mut self, req: LeaseRequest, now: Instant) -> Option<bool> {
        self.answer(req, now)
    }

    fn event(&mut self, e: Event) {
        self.log.push((self.id, Output::Event(e)));
    }
}

/// The loop every embedder used to write, in `drain`'s documented order.
fn by_hand(node: &mut N, now: Instant, buf: &mut [u8], rec: &mut Recorder<'_>) {
    loop {
        while let Some(t) = node.poll_transmit(now, buf) {
            rec.transmit(&t, &buf[..t.len]);
        }
        while let Some(e) = node.poll_event() {
            rec.event(e);
        }
        let mut answered = false;
        while let Some(req) = node.poll_lease() {
            if let (LeaseRequest::Acquire, Some(granted)) = (req, rec.answer(req, now)) {
                node.handle_lease(now, granted);
                answered = true;
            }
        }
        if !answered {
            return;
        }
    }
}

/// How the outputs are taken.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Drain,
    ByHand,
    #[cfg(feature = "alloc")]
    DrainVec,
}

/// Three lease-majority nodes on an instant network; after 20 s node 2 is cut off. Returns
/// every output of every node, in order.
fn run(mode: Mode) -> Vec<(usize, Output)> {
    let mut config = Config::default();
    config.downing.downing = Downing::SplitBrainResolver(Strategy::LeaseMajority { role: None });
    config.downing.stable_after = Some(Duration::from_secs(2));
    let mut nodes: Vec<Box<N>> = (0..NODES)
        .map(|i| {
            Box::new(
                N::new(
                    config.clone(),
                    fjell_core::UniqueAddress::new(addr(i), i as u64 + 1),
                    i as u64 + 7,
                )
                .unwrap(),
            )
        })
        .collect();
    let seeds: Vec<SocketAddr> = (0..NODES).map(addr).collect();
    let mut lease = MemoryLease::new(Duration::from_secs(60));
    let mut log = Vec::new();
    let mut buf = vec![0u8; N::MAX_MESSAGE_LEN];
    #[cfg(feature = "alloc")]
    let mut grown: Vec<u8> = Vec::new();
    let mut now = Instant::ZERO;
    for n in nodes.iter_mut() {
        n.join_seed_nodes(now, &seeds).unwrap();
    }
    let cut = |from: usize, to: usize, now: Instant| {
        now >= Instant::from_millis(20_000) && (from == 2) != (to == 2)
    };
    while now < Instant::from_millis(60_000) {
        let mut queue: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            let start = log.len();
            let mut rec = Recorder {
                me: node.address(),
                lease: &mut lease,
                log: &mut log,
                id: i,
            };
            match mode {
                Mode::Drain => node.drain(now, &mut buf, &mut rec),
                Mode::ByHand => by_hand(node, now, &mut buf, &mut rec),
                #[cfg(feature = "alloc")]
                Mode::DrainVec => node.drain_vec(now, &mut grown, &mut rec),
            }
            for (_, o) in &log[start..] {
                if let Output::Transmit(t, bytes) = o {
                    queue.push((i, t.destination, bytes.clone()));
                }
            }
        }
        if queue.is_empty() {
            now = nodes.iter().filter_map(|n| n.poll_timeout()).min().unwrap();
            for n in nodes.iter_mut() {
                n.handle_timeout(now);
            }
            continue;
        }
        for (from, to, bytes) in queue {
            let j = (0..NODES).find(|j| addr(*j) == to).unwrap();
            if !cut(from, j, now) {
                let _ = nodes[j].handle_message(now, addr(from), &bytes);
            }
        }
    }
    log
}

#[test]
fn drain_gives_the_outputs_of_the_hand_written_loop_in_the_same_order() {
    let drained = run(Mode::Drain);
    let by_hand = run(Mode::ByHand);
    assert_eq!(drained.len(), by_hand.len());
    assert!(drained == by_hand, "drain and the loop differ");
    // The partition made the majority side decide with the lease, through the sink.
    assert!(drained
        .iter()
        .any(|(_, o)| *o == Output::Lease(LeaseRequest::Acquire)));
    assert!(drained
        .iter()
        .any(|(i, o)| *i != 2 && matches!(o, Output::Event(Event::Downing(_)))));
}

#[cfg(feature = "alloc")]
#[test]
fn drain_vec_gives_the_outputs_of_drain_with_a_buffer_of_the_largest_message() {
    let drained = run(Mode::Drain);
    let grown = run(Mode::DrainVec);
    assert!(grown == drained, "drain_vec and drain differ");
    let largest = grown
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Transmit(t, _) => Some(t.len),
            _ => None,
        })
        .max()
        .unwrap();
    // The messages of a three-node cluster are far below what eight members could need.
    assert!(
        largest * 4 < N::MAX_MESSAGE_LEN,
        "{largest} of {}",
        N::MAX_MESSAGE_LEN
    );
}
