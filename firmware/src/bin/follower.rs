//! The rules of a member that never leads, run on the emulated MCU with fjell-core built as the
//! `node` firmware builds it (without its `lead` feature): the defaults say the node may not
//! lead, a configuration that says it may is refused with its key, it cannot found a cluster
//! (as the first seed node, or by joining itself), it joins through another seed, and it
//! answers a seed probe, without reading the joiner's declaration, that it takes no joiners.
//! Reports through semihosting and exits with the result, so `cargo run` under QEMU fails when
//! a rule does not hold. (A member that never leads needs members that may: the cluster firmware,
//! built with `lead`, runs one among them.)

#![no_std]
#![no_main]

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fjell_core::testing::wire::{peek_header, Kind, PROTOCOL_VERSION};
use fjell_core::{CommandError, Config, DetectorKind, DeviceNode, Instant, UniqueAddress};
use fjell_firmware as _;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 7355)
}

fn node(config: &Config) -> Result<DeviceNode, &'static str> {
    DeviceNode::new(config.clone(), UniqueAddress::new(addr(1), 1), 7)
        .map_err(|_| "a node with the defaults is refused")
}

fn run() -> Result<(), &'static str> {
    if cfg!(feature = "lead") {
        return Err(
            "built with fjell-core's `lead` feature; this firmware checks the build without",
        );
    }
    let mut config = Config::default();
    if config.leader_eligible {
        return Err("the defaults say the node may lead");
    }
    config.failure_detector.kind = DetectorKind::Deadline;

    let mut eligible = config.clone();
    eligible.leader_eligible = true;
    match DeviceNode::new(eligible, UniqueAddress::new(addr(1), 1), 7) {
        Err(e) if e.key == "leader-eligible" => hprintln!("refused: {}: {}", e.key, e.reason),
        _ => return Err("a configuration that says the node may lead is not refused"),
    }

    let now = Instant::ZERO;
    let mut n = node(&config)?;
    if n.join_seed_nodes(now, &[addr(1), addr(2)]) != Err(CommandError::CannotFound) {
        return Err("the node founds as the first seed node");
    }
    if n.join(now, addr(1)) != Err(CommandError::CannotFound) {
        return Err("the node founds by joining itself");
    }
    hprintln!("cannot found: as the first seed node, nor by joining itself");

    let mut n = node(&config)?;
    n.join_seed_nodes(now, &[addr(2), addr(1)])
        .map_err(|_| "the node does not join through another seed node")?;
    let mut buf = [0u8; DeviceNode::MAX_MESSAGE_LEN];
    let (_, at) = first_probe(&mut n, addr(2), &mut buf)
        .ok_or("the node does not probe its other seed node")?;
    hprintln!("joins through another seed node: probed {}", addr(2));

    // Another node probes this one. A member that may not lead takes no joiners: it answers
    // from the sender alone, and does not read the joiner's declaration (this build has no
    // reader for one), so a probe cut short is answered too.
    let mut joiner = DeviceNode::new(config, UniqueAddress::new(addr(3), 3), 9)
        .map_err(|_| "a joiner with the defaults is refused")?;
    joiner
        .join_seed_nodes(now, &[addr(1), addr(3)])
        .map_err(|_| "the joiner does not join through this node")?;
    let mut probe = [0u8; DeviceNode::MAX_MESSAGE_LEN];
    let (len, _) = first_probe(&mut joiner, addr(1), &mut probe)
        .ok_or("the joiner does not probe this node")?;
    for bytes in [&probe[..len], &probe[..len - 1]] {
        n.handle_message(at, addr(3), bytes)
            .map_err(|_| "a seed probe is refused as input")?;
        let answer = core::iter::from_fn(|| n.poll_transmit(at, &mut buf))
            .find(|t| t.destination == addr(3))
            .ok_or("a seed probe is not answered")?;
        let nack = (PROTOCOL_VERSION, Kind::InitJoinNack as u8);
        if peek_header(&buf[..answer.len]) != Ok(nack) {
            return Err("a seed probe is answered with something other than InitJoinNack");
        }
    }
    hprintln!("answers seed probes, whole or cut short, that it takes no joiners");
    Ok(())
}

/// Runs `n` until it sends its first probe to `to` (after a short back-off); returns the
/// probe's length in `buf` and the time it went out.
fn first_probe(n: &mut DeviceNode, to: SocketAddr, buf: &mut [u8]) -> Option<(usize, Instant)> {
    let mut at = Instant::ZERO;
    for _ in 0..10 {
        while let Some(t) = n.poll_transmit(at, buf) {
            if t.destination == to {
                return Some((t.len, at));
            }
        }
        at = n.poll_timeout()?;
        n.handle_timeout(at);
    }
    None
}

#[entry]
fn main() -> ! {
    fjell_firmware::finish(run().map_err(|why| (why, "")))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
