//! A `#![no_std]`, `#![no_main]` program with no allocator that runs a fjell-core node: if the
//! core used `std` or `alloc`, this would not link.

#![no_std]
#![no_main]

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::panic::PanicInfo;

use fjell_core::{
    Config, DeviceNode, Event, Instant, LeaseRequest, MemberStatus, Sink, Transmit, UniqueAddress,
};

/// Drops every output: the check is that the core links, not what it says.
struct Discard;

impl Sink for Discard {
    fn transmit(&mut self, _: &Transmit, _: &[u8]) {}
    fn lease(&mut self, _: LeaseRequest, _: Instant) -> Option<bool> {
        None
    }
    fn event(&mut self, _: Event) {}
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

// The prebuilt `core` is compiled with unwinding; with panic=abort nothing ever calls this.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

// The C runtime's entry point calls `main`; no Rust runtime is involved.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7355);
    let Ok(mut node) = DeviceNode::new(Config::default(), UniqueAddress::new(addr, 1), 2) else {
        return 1;
    };
    let mut now = Instant::ZERO;
    if node.join_seed_nodes(now, &[addr]).is_err() {
        return 2;
    }
    let mut buf = [0u8; 512];
    for _ in 0..10 {
        node.drain(now, &mut buf, &mut Discard);
        match node.poll_timeout() {
            Some(t) => now = t,
            None => break,
        }
        node.handle_timeout(now);
    }
    match node.self_member() {
        Some(m) if m.status == MemberStatus::Up => 0,
        _ => 3,
    }
}
