//! # fjell-runtime
//!
//! Drives the sans-IO [`fjell_core::Node`] and a transport on smol, tokio or an executor the
//! user brings, and offers the async `Cluster` API.
//!
//! **Status: not implemented yet.** Until it lands, drive [`fjell_core::Node`] directly as the
//! core's crate documentation shows; this crate re-exports it.
//!
//! ```
//! use fjell_runtime::core::{Config, DeviceNode};
//! let node = DeviceNode::new(Config::default(), "127.0.0.1:7355".parse().unwrap(), 1, 2).unwrap();
//! assert!(node.members().is_empty());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use fjell_core as core;
