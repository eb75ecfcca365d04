//! `DeviceNode`s on one emulated Cortex-M, joined by an in-memory network with 1 ms of latency
//! and a virtual clock, in two scenarios:
//!
//! 1. **Three nodes**, of which node 1 may not lead (`leader-eligible = false`): they form a
//!    cluster, one is stopped, and the other two flag it unreachable, down it (keep-majority,
//!    decided by node 0) and remove it; every event is printed.
//! 2. **Sixteen nodes, the preset's capacity**: they form a cluster and are split 9 | 7; the
//!    nine down and remove the seven, and the seven down themselves. This drives the largest
//!    gossip and the largest resolver decision a `DeviceNode` makes, so the stack depths it
//!    measures are the deep ones.
//!
//! Every call into a node is measured by stack painting (see `fjell_firmware::stack`). The
//! report and the exit status go out through semihosting, so `cargo run` under QEMU fails when
//! a scenario does.
//!
//! The clock is virtual (the loop jumps to the next timer or arrival), so a run takes moments
//! of emulated time however long the scenario; a device reads its monotonic timer instead and
//! otherwise makes the same calls.

#![no_std]
#![no_main]

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fjell_core::{
    Config, DetectorKind, DeviceNode, Downing, Event, Instant, MemberStatus, NodeStatus, Strategy,
    UniqueAddress,
};
use fjell_firmware::net::{Network, MTU};
use fjell_firmware::stack::{self, Depth};

/// How long each phase may take in virtual time before the run fails.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)), 7355)
}

/// The deepest stack use of each kind of call into the core.
#[derive(Default)]
struct Depths {
    handle_message: Depth,
    handle_timeout: Depth,
    poll_transmit: Depth,
    poll_event: Depth,
    poll_timeout: Depth,
}

/// What the three-node run saw of the stopped node, for the checks at the end: bit `i` is set
/// once node `i` reported it.
#[derive(Default)]
struct Seen {
    unreachable: u32,
    downed: u32,
    removed: u32,
    /// Nodes that reported a downing decision.
    decided: u32,
}

/// Why the run failed.
enum Failure {
    Join,
    NetworkFull,
    TooDeep,
    Timeout(&'static str),
    Missing(&'static str),
    Memory(&'static str),
}

impl Failure {
    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Failure::Join => ("join_seed_nodes failed", ""),
            Failure::NetworkFull => ("more datagrams in flight than the network holds", ""),
            Failure::TooDeep => ("a step went deeper than the measured stack window", ""),
            Failure::Timeout(what) => ("timed out waiting for", what),
            Failure::Missing(what) => ("a surviving node did not report", what),
            Failure::Memory(what) => ("the firmware's memory routine is wrong:", what),
        }
    }
}

impl From<stack::TooDeep> for Failure {
    fn from(_: stack::TooDeep) -> Self {
        Failure::TooDeep
    }
}

struct Cluster<const N: usize> {
    nodes: [DeviceNode; N],
    running: [bool; N],
    /// Datagrams between nodes on different sides are lost.
    side: [u8; N],
    net: Network,
    now: Instant,
    depths: Depths,
    /// Print every membership event (the three-node run) or only the milestones.
    verbose: bool,
    /// The node whose departure the three-node run watches.
    watched: Option<SocketAddr>,
    seen: Seen,
    buf: [u8; MTU],
}

impl<const N: usize> Cluster<N> {
    /// `followers`: bit `i` set if node `i` may not lead (`leader-eligible = false`).
    fn new(config: &Config, followers: u32, verbose: bool) -> Self {
        Cluster {
            nodes: core::array::from_fn(|i| {
                let mut config = config.clone();
                config.leader_eligible = followers & (1 << i) == 0;
                DeviceNode::new(
                    config,
                    UniqueAddress::new(addr(i), 1 + i as u64),
                    7 + i as u64,
                )
                .expect("the configuration is valid")
            }),
            running: [true; N],
            side: [0; N],
            net: Network::new(Duration::from_millis(1)),
            now: Instant::ZERO,
            depths: Depths::default(),
            verbose,
            watched: None,
            seen: Seen::default(),
            buf: [0; MTU],
        }
    }

    fn index_of(a: SocketAddr) -> Option<usize> {
        (0..N).find(|&i| addr(i) == a)
    }

    /// Every node joins through node 0.
    fn start(&mut self) -> Result<(), Failure> {
        let seeds = [addr(0)];
        for i in 0..N {
            self.nodes[i]
                .join_seed_nodes(self.now, &seeds)
                .map_err(|_| Failure::Join)?;
            self.drain(i)?;
        }
        Ok(())
    }

    /// Sends what node `i` has to send and looks at its events: after every input, as the
    /// core's call order asks (a timer due at once must not run before the events of the
    /// input that set it are seen).
    fn drain(&mut self, i: usize) -> Result<(), Failure> {
        let (node, buf, now) = (&mut self.nodes[i], &mut self.buf, self.now);
        while let Some(t) = stack::measure(&mut self.depths.poll_transmit, || {
            node.poll_transmit(now, buf)
        })? {
            let Some(to) = Self::index_of(t.destination) else {
                continue;
            };
            if self.running[to] && self.side[to] == self.side[i] {
                self.net
                    .send(now, i, to, &buf[..t.len])
                    .map_err(|_| Failure::NetworkFull)?;
            }
        }
        loop {
            let node = &mut self.nodes[i];
            let Some(e) = stack::measure(&mut self.depths.poll_event, || node.poll_event())? else {
                break;
            };
            self.record(i, &e);
        }
        Ok(())
    }

    fn record(&mut self, at: usize, e: &Event) {
        let watched = |m: &fjell_core::Member| Some(m.address.socket_addr()) == self.watched;
        let (who, what) = match e {
            Event::MemberUp(m) => (m.address, "is Up"),
            Event::UnreachableMember(m) if watched(m) => {
                self.seen.unreachable |= 1 << at;
                (m.address, "is unreachable")
            }
            Event::MemberDowned(m) if watched(m) => {
                self.seen.downed |= 1 << at;
                (m.address, "is Down")
            }
            Event::MemberRemoved { member, .. } if watched(member) => {
                self.seen.removed |= 1 << at;
                (member.address, "is removed")
            }
            Event::Downing(_) => {
                self.seen.decided |= 1 << at;
                (self.nodes[at].address(), "decided")
            }
            _ => return,
        };
        if self.verbose {
            let ms = self.now.as_micros() / 1000;
            hprintln!("{:>6} ms  node {}: {} {}", ms, at, who, what);
        }
    }

    /// Moves the clock to the next arrival or timer, and feeds the nodes what is due.
    fn step(&mut self) -> Result<(), Failure> {
        let mut next = self.net.next_arrival();
        for i in (0..N).filter(|&i| self.running[i]) {
            let node = &self.nodes[i];
            let t = stack::measure(&mut self.depths.poll_timeout, || node.poll_timeout())?;
            next = match (next, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.now = self.now.max(next.unwrap_or(self.now));
        let now = self.now;
        while let Some(d) = self.net.receive(now) {
            if self.running[d.to] {
                let node = &mut self.nodes[d.to];
                let from = addr(d.from);
                // A peer's bad message is the peer's problem: the node reports it and goes on.
                let _ = stack::measure(&mut self.depths.handle_message, || {
                    node.handle_message(now, from, &d.bytes)
                })?;
                self.drain(d.to)?;
            }
        }
        for i in 0..N {
            let node = &mut self.nodes[i];
            if self.running[i] && node.poll_timeout().is_some_and(|t| t <= now) {
                stack::measure(&mut self.depths.handle_timeout, || node.handle_timeout(now))?;
                self.drain(i)?;
            }
        }
        Ok(())
    }

    /// Steps until `done` holds, or fails after [`PHASE_LIMIT`].
    fn run_until(
        &mut self,
        what: &'static str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<Instant, Failure> {
        let limit = self.now + PHASE_LIMIT;
        while !done(self) {
            if self.now > limit {
                return Err(Failure::Timeout(what));
            }
            self.step()?;
        }
        Ok(self.now)
    }

    /// Every node in `nodes` sees exactly `nodes` as its members, all Up.
    fn members_are(&self, nodes: impl Iterator<Item = usize> + Clone) -> bool {
        let count = nodes.clone().count();
        nodes.clone().all(|i| {
            let members = self.nodes[i].members();
            members.len() == count
                && members.iter().all(|m| {
                    m.status == MemberStatus::Up
                        && nodes.clone().any(|j| addr(j) == m.address.socket_addr())
                })
        })
    }

    fn report(&self, title: &str) {
        let d = &self.depths;
        hprintln!("{}: deepest stack use per call into a node", title);
        for (name, depth) in [
            ("handle_message", d.handle_message),
            ("handle_timeout", d.handle_timeout),
            ("poll_transmit", d.poll_transmit),
            ("poll_event", d.poll_event),
            ("poll_timeout", d.poll_timeout),
        ] {
            hprintln!(
                "  stack: {:<15} {:>6} B over {} calls",
                name,
                depth.max,
                depth.calls
            );
        }
        hprintln!(
            "  network: {} datagrams, {} bytes",
            self.net.sent,
            self.net.bytes
        );
    }
}

fn ms(t: Instant) -> u64 {
    t.as_micros() / 1000
}

/// Three nodes, of which node 1 may not lead; the third stops and the other two remove it
/// (node 0 decides).
fn three(config: &Config) -> Result<(), Failure> {
    const VICTIM: usize = 2;
    let mut c = Cluster::<3>::new(config, 0b010, true);
    let result = (|| {
        c.start()?;
        let up = c.run_until("all Up", |c| c.members_are(0..3))?;
        hprintln!("{:>6} ms  every node sees 3 members Up", ms(up));
        c.running[VICTIM] = false;
        c.watched = Some(addr(VICTIM));
        hprintln!("{:>6} ms  node {} stopped", ms(up), VICTIM);
        let gone = c.run_until("removal", |c| c.members_are(0..2))?;
        hprintln!(
            "{:>6} ms  nodes 0 and 1 have removed node {} ({} ms after it stopped)",
            ms(gone),
            VICTIM,
            (gone - up).as_millis()
        );
        // Each survivor, nodes 0 and 1, reports each step.
        const SURVIVORS: u32 = 0b011;
        if c.seen.unreachable != SURVIVORS {
            return Err(Failure::Missing("UnreachableMember"));
        }
        if c.seen.downed != SURVIVORS {
            return Err(Failure::Missing("MemberDowned"));
        }
        if c.seen.removed != SURVIVORS {
            return Err(Failure::Missing("MemberRemoved"));
        }
        // Node 0 decided; node 1, which may not lead, did not.
        if c.seen.decided != 0b001 {
            return Err(Failure::Missing("Downing from node 0 alone"));
        }
        Ok(())
    })();
    c.report("three nodes");
    result
}

/// Sixteen nodes split 9 | 7: the nine remove the seven, the seven down themselves.
fn sixteen(config: &Config) -> Result<(), Failure> {
    const N: usize = 16;
    const MAJORITY: usize = 9;
    let mut c = Cluster::<N>::new(config, 0, false);
    let result = (|| {
        c.start()?;
        let up = c.run_until("all Up", |c| c.members_are(0..N))?;
        hprintln!("{:>6} ms  every node sees {} members Up", ms(up), N);
        c.side[MAJORITY..].fill(1);
        hprintln!("{:>6} ms  split {} | {}", ms(up), MAJORITY, N - MAJORITY);
        let decided = c.run_until("the split to be resolved", |c| {
            c.members_are(0..MAJORITY)
                && c.nodes[MAJORITY..]
                    .iter()
                    .all(|n| matches!(n.status(), NodeStatus::Stopped(_)))
        })?;
        hprintln!(
            "{:>6} ms  the {} removed the {}, who stopped ({} ms after the split)",
            ms(decided),
            MAJORITY,
            N - MAJORITY,
            (decided - up).as_millis()
        );
        Ok(())
    })();
    c.report("sixteen nodes");
    result
}

fn run() -> Result<(), Failure> {
    fjell_firmware::mem::self_check().map_err(Failure::Memory)?;
    hprintln!("memory routines (fjell_firmware::mem): checked");
    // fjell-core is built without the `phi` feature (see Cargo.toml): the defaults, which ask
    // for phi, must be refused with the key to change, and the deadline detector taken.
    let mut config = Config::default();
    if cfg!(not(feature = "phi")) {
        match DeviceNode::new(config.clone(), UniqueAddress::new(addr(0), 1), 7) {
            Err(e) if e.key == "failure-detector.implementation" => {
                hprintln!("phi is not compiled in: {}: {}", e.key, e.reason)
            }
            _ => return Err(Failure::Missing("a refusal of phi without its feature")),
        }
        config.failure_detector.kind = DetectorKind::Deadline;
    }
    config.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    hprintln!(
        "RAM: DeviceNode {} B, datagram buffer {} B",
        core::mem::size_of::<DeviceNode>(),
        MTU
    );
    three(&config)?;
    sixteen(&config)
}

#[entry]
fn main() -> ! {
    fjell_firmware::finish(run().map_err(|e| e.describe()))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    halt()
}

/// Where the firmware ends if the debugger does not end it (semihosting off).
fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
