//! The smallest firmware that runs a `DeviceNode`: what the flash budget (64 KiB on thumbv7em
//! with LTO, at opt-level "s" and at the release profile's "z") is measured on. The node is a
//! member that never leads: built without fjell-core's `lead` feature, so `Config::default()`
//! has `leader_eligible = false` and the leader's actions and the downing decisions are left
//! out; members that may lead (a gateway, servers) decide for it, and it joins through them. A
//! SysTick interrupt keeps the clock; a radio or Ethernet driver would fill [`RX`] and send
//! what [`TX`] holds (here they are plain memory, read and written volatile so nothing is
//! optimised away). Every call a device makes into the core is here: `join_seed_nodes`,
//! `handle_message`, `handle_timeout`, `poll_transmit`, `poll_event` and `poll_timeout`.

#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use fjell_core::{Config, DetectorKind, DeviceNode, Event, Instant, UniqueAddress};
// Links the size-first memory routines (`fjell_firmware::mem`): a crate never named is not
// linked, and compiler-builtins' routines would be used (3 kB more).
use fjell_firmware as _;

/// Core clock of the board (the MPS2 boards run at 25 MHz).
const CORE_HZ: u32 = 25_000_000;

/// Milliseconds since boot, kept by SysTick.
static MILLIS: AtomicU32 = AtomicU32::new(0);

/// A datagram buffer shared with a driver.
struct Mailbox {
    len: AtomicU32,
    from: AtomicU32,
    bytes: UnsafeCell<[u8; DeviceNode::MAX_MESSAGE_LEN]>,
}

// SAFETY: `bytes` is only read while `len` is non-zero and only written while it is zero,
// the hand-over a driver and this loop agree on.
unsafe impl Sync for Mailbox {}

impl Mailbox {
    const fn new() -> Self {
        Mailbox {
            len: AtomicU32::new(0),
            from: AtomicU32::new(0),
            bytes: UnsafeCell::new([0; DeviceNode::MAX_MESSAGE_LEN]),
        }
    }
}

/// Where the driver puts a received datagram (`len` non-zero when one is there).
static RX: Mailbox = Mailbox::new();
/// Where this loop puts a datagram for the driver to send.
static TX: Mailbox = Mailbox::new();

#[exception]
fn SysTick() {
    // Single writer: a load and a store, no read-modify-write (thumbv6m has none).
    MILLIS.store(
        MILLIS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

fn now() -> Instant {
    Instant::from_millis(u64::from(MILLIS.load(Ordering::Relaxed)))
}

#[entry]
fn main() -> ! {
    let mut core = cortex_m::Peripherals::take().expect("taken once, at boot");
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(CORE_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_counter();
    core.SYST.enable_interrupt();

    let me = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7355);
    let seed = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 7355);
    // fjell-core is built without the `phi` feature (see Cargo.toml): the deadline detector.
    // Without `lead`, the defaults already say the node may not lead.
    let mut config = Config::default();
    if cfg!(not(feature = "phi")) {
        config.failure_detector.kind = DetectorKind::Deadline;
    }
    let Ok(mut node) = DeviceNode::new(config, UniqueAddress::new(me, 1), 0x5eed) else {
        halt()
    };
    if node.join_seed_nodes(now(), &[seed]).is_err() {
        halt()
    }
    let mut members_up = drain(&mut node, now());
    loop {
        let t = now();
        let len = RX.len.load(Ordering::Acquire) as usize;
        if len != 0 {
            let from = Ipv4Addr::from(RX.from.load(Ordering::Relaxed));
            // SAFETY: the driver wrote `bytes` before setting `len` and waits until it is 0.
            let bytes = unsafe { &(&*RX.bytes.get())[..len] };
            // A bad datagram is the sender's problem; the node counts it and goes on.
            let _ = node.handle_message(t, SocketAddr::new(IpAddr::V4(from), 7355), bytes);
            RX.len.store(0, Ordering::Release);
            members_up += drain(&mut node, t);
        }
        if node.poll_timeout().is_some_and(|at| at <= t) {
            node.handle_timeout(t);
            members_up += drain(&mut node, t);
        }
        // An application would act on the events; keep the count observable.
        core::hint::black_box(members_up);
        cortex_m::asm::wfi();
    }
}

/// Hands what the node has to send to the driver, and reads its events: after every input,
/// as the core's call order asks. Returns how many members came Up.
fn drain(node: &mut DeviceNode, t: Instant) -> u32 {
    // While the driver still holds a datagram, the rest waits in the node's outbox.
    while TX.len.load(Ordering::Acquire) == 0 {
        // SAFETY: the driver does not touch `bytes` while `len` is 0.
        let buf = unsafe { &mut *TX.bytes.get() };
        let Some(out) = node.poll_transmit(t, buf) else {
            break;
        };
        if let IpAddr::V4(ip) = out.destination.ip() {
            TX.from.store(u32::from(ip), Ordering::Relaxed);
        }
        TX.len.store(out.len as u32, Ordering::Release);
    }
    let mut up = 0;
    while let Some(e) = node.poll_event() {
        if let Event::MemberUp(_) = e {
            up += 1;
        }
    }
    up
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
