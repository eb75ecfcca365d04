//! Three `DeviceNode`s on one emulated Cortex-M, joined by an in-memory network with 1 ms of
//! latency and a virtual clock: they form a cluster, one is stopped, and the other two flag it
//! unreachable, down it (keep-majority) and remove it. The report and the exit status go out
//! through semihosting, so `cargo run` under QEMU fails when the cluster does.
//!
//! The clock is virtual (the loop jumps to the next timer or arrival), so the run takes
//! moments of emulated time however long the scenario is; a device reads its monotonic timer
//! instead and otherwise makes the same calls.

#![no_std]
#![no_main]

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fjell_core::{
    Config, DeviceNode, Downing, Event, Instant, MemberStatus, Strategy, UniqueAddress,
};
use fjell_firmware::net::{Network, MTU};
use fjell_firmware::stack::{self, Depth};

const NODES: usize = 3;
/// The node that is stopped once the cluster is up.
const VICTIM: usize = 2;
/// How long each phase may take in virtual time before the run fails.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)), 7355)
}

fn index_of(a: SocketAddr) -> Option<usize> {
    (0..NODES).find(|&i| addr(i) == a)
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

/// What the run saw, for the checks at the end.
#[derive(Default)]
struct Seen {
    unreachable: [bool; NODES],
    downed: [bool; NODES],
    removed: [bool; NODES],
}

struct Cluster {
    nodes: [DeviceNode; NODES],
    running: [bool; NODES],
    net: Network,
    now: Instant,
    depths: Depths,
    seen: Seen,
    buf: [u8; MTU],
}

/// Why the run failed.
enum Failure {
    Config,
    Join,
    NetworkFull,
    TooDeep,
    Timeout(&'static str),
    Missing(&'static str),
}

impl Failure {
    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Failure::Config => ("the configuration was refused", ""),
            Failure::Join => ("join_seed_nodes failed", ""),
            Failure::NetworkFull => ("more datagrams in flight than the network holds", ""),
            Failure::TooDeep => ("a step went deeper than the measured stack window", ""),
            Failure::Timeout(what) => ("timed out waiting for", what),
            Failure::Missing(what) => ("a surviving node never reported", what),
        }
    }
}

impl From<stack::TooDeep> for Failure {
    fn from(_: stack::TooDeep) -> Self {
        Failure::TooDeep
    }
}

impl Cluster {
    /// Sends what every running node has to send and reports its events.
    fn drain(&mut self) -> Result<(), Failure> {
        for i in 0..NODES {
            if !self.running[i] {
                continue;
            }
            let (node, buf, now) = (&mut self.nodes[i], &mut self.buf, self.now);
            while let Some(t) = stack::measure(&mut self.depths.poll_transmit, || {
                node.poll_transmit(now, buf)
            })? {
                if let Some(to) = index_of(t.destination) {
                    if self.running[to] {
                        self.net
                            .send(now, i, to, &buf[..t.len])
                            .map_err(|_| Failure::NetworkFull)?;
                    }
                }
            }
            loop {
                let node = &mut self.nodes[i];
                let Some(e) = stack::measure(&mut self.depths.poll_event, || node.poll_event())?
                else {
                    break;
                };
                self.record(i, &e);
            }
        }
        Ok(())
    }

    fn record(&mut self, at: usize, e: &Event) {
        let victim = addr(VICTIM);
        let (who, what) = match e {
            Event::MemberUp(m) => (m.address, "is Up"),
            Event::UnreachableMember(m) if m.address.socket_addr() == victim => {
                self.seen.unreachable[at] = true;
                (m.address, "is unreachable")
            }
            Event::MemberDowned(m) if m.address.socket_addr() == victim => {
                self.seen.downed[at] = true;
                (m.address, "is Down")
            }
            Event::MemberRemoved { member, .. } if member.address.socket_addr() == victim => {
                self.seen.removed[at] = true;
                (member.address, "is removed")
            }
            _ => return,
        };
        hprintln!(
            "{:>6} ms  node {}: {} {}",
            self.now.as_micros() / 1000,
            at,
            who,
            what
        );
    }

    /// Moves the clock to the next arrival or timer, and feeds the nodes what is due.
    fn step(&mut self) -> Result<(), Failure> {
        let mut next = self.net.next_arrival();
        for i in (0..NODES).filter(|&i| self.running[i]) {
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
            }
        }
        for i in (0..NODES).filter(|&i| self.running[i]) {
            let node = &mut self.nodes[i];
            if node.poll_timeout().is_some_and(|t| t <= now) {
                stack::measure(&mut self.depths.handle_timeout, || node.handle_timeout(now))?;
            }
        }
        self.drain()
    }

    /// Steps until `done` holds, or fails after [`PHASE_LIMIT`].
    fn run_until(
        &mut self,
        what: &'static str,
        done: impl Fn(&Cluster) -> bool,
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
}

fn all_up(c: &Cluster) -> bool {
    c.nodes.iter().all(|n| {
        n.members().len() == NODES && n.members().iter().all(|m| m.status == MemberStatus::Up)
    })
}

fn victim_removed(c: &Cluster) -> bool {
    (0..NODES).filter(|&i| i != VICTIM).all(|i| {
        let n = &c.nodes[i];
        n.members().len() == NODES - 1 && n.members().iter().all(|m| m.status == MemberStatus::Up)
    })
}

fn run(c: &mut Cluster) -> Result<(), Failure> {
    let seeds = [addr(0)];
    for node in &mut c.nodes {
        node.join_seed_nodes(c.now, &seeds)
            .map_err(|_| Failure::Join)?;
    }
    c.drain()?;
    let up = c.run_until("all Up", all_up)?;
    hprintln!(
        "{:>6} ms  every node sees {} members Up",
        up.as_micros() / 1000,
        NODES
    );

    c.running[VICTIM] = false;
    hprintln!("{:>6} ms  node {} stopped", up.as_micros() / 1000, VICTIM);
    let gone = c.run_until("removal", victim_removed)?;
    hprintln!(
        "{:>6} ms  nodes 0 and 1 have removed node {} ({} ms after it stopped)",
        gone.as_micros() / 1000,
        VICTIM,
        (gone - up).as_millis()
    );
    for i in (0..NODES).filter(|&i| i != VICTIM) {
        if !c.seen.unreachable[i] {
            return Err(Failure::Missing("UnreachableMember"));
        }
        if !c.seen.downed[i] {
            return Err(Failure::Missing("MemberDowned"));
        }
        if !c.seen.removed[i] {
            return Err(Failure::Missing("MemberRemoved"));
        }
    }
    Ok(())
}

fn report(c: &Cluster) {
    let d = &c.depths;
    hprintln!(
        "RAM: DeviceNode {} B each, {} B for three",
        core::mem::size_of::<DeviceNode>(),
        3 * core::mem::size_of::<DeviceNode>()
    );
    hprintln!("RAM: datagram buffer {} B", MTU);
    for (name, depth) in [
        ("handle_message", d.handle_message),
        ("handle_timeout", d.handle_timeout),
        ("poll_transmit", d.poll_transmit),
        ("poll_event", d.poll_event),
        ("poll_timeout", d.poll_timeout),
    ] {
        hprintln!(
            "stack: {:<15} {:>6} B deepest over {} calls",
            name,
            depth.max,
            depth.calls
        );
    }
    hprintln!("network: {} datagrams, {} bytes", c.net.sent, c.net.bytes);
}

#[entry]
fn main() -> ! {
    let status = match start() {
        Ok(()) => {
            hprintln!("PASS");
            debug::EXIT_SUCCESS
        }
        Err(e) => {
            let (why, what) = e.describe();
            hprintln!("FAIL: {} {}", why, what);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(status);
    halt()
}

fn start() -> Result<(), Failure> {
    let mut config = Config::default();
    config.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    let node = |i: usize| {
        DeviceNode::new(
            config.clone(),
            UniqueAddress::new(addr(i), 1 + i as u64),
            7 + i as u64,
        )
        .map_err(|_| Failure::Config)
    };
    let mut c = Cluster {
        nodes: [node(0)?, node(1)?, node(2)?],
        running: [true; NODES],
        net: Network::new(Duration::from_millis(1)),
        now: Instant::ZERO,
        depths: Depths::default(),
        seen: Seen::default(),
        buf: [0; MTU],
    };
    let result = run(&mut c);
    report(&c);
    result
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
