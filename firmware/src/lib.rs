//! What the two firmwares share: size-first memory routines, an in-memory network that
//! delivers datagrams after a fixed latency, and stack painting to measure how deep each call
//! into the core goes.
//!
//! `src/bin/node.rs` is the smallest firmware that runs a `DeviceNode` (the flash budget is
//! measured on it); `src/bin/cluster.rs` runs three nodes on one emulated Cortex-M.

#![no_std]

pub mod mem;
pub mod net;
pub mod stack;
