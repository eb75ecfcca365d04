//! # fjell-harness
//!
//! Starts real node processes, each in a network namespace of its own, and injects faults
//! per link and per process (Linux, root).

pub mod app;
pub mod checks;
pub mod fleet;
pub mod net;
pub mod observe;
pub mod runner;
pub mod scenario;
pub mod soak;
