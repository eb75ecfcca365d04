//! # fjell-harness
//!
//! Starts real node processes, each in a network namespace of its own, and injects faults
//! per link and per process (Linux, root).

pub mod net;
