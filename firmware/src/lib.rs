//! What the two firmwares share: size-first memory routines, an in-memory network that
//! delivers datagrams after a fixed latency, and stack painting to measure how deep each call
//! into the core goes.
//!
//! `src/bin/node.rs` is the smallest firmware that runs a `DeviceNode` (the flash budget is
//! measured on it); `src/bin/cluster.rs` runs three then sixteen nodes on one emulated
//! Cortex-M; `src/bin/follower.rs` checks the rules of a member that never leads in the build
//! without fjell-core's `lead` feature.

#![no_std]

use cortex_m_semihosting::{debug, hprintln};

/// Reports a run's result through semihosting (`PASS`, or `FAIL:` and the reason) and exits
/// QEMU with it, so `cargo run` fails when the run does.
pub fn finish(result: Result<(), (&str, &str)>) -> ! {
    match result {
        Ok(()) => {
            hprintln!("PASS");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err((why, what)) => {
            hprintln!("FAIL: {} {}", why, what);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    // Where the firmware ends if the debugger does not end it (semihosting off).
    loop {
        cortex_m::asm::wfi();
    }
}

pub mod mem;
pub mod net;
pub mod stack;
