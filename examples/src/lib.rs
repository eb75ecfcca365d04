//! The code behind the `fjell` binary and the examples that mirror the Akka cluster
//! documentation, as a library so tests can drive them end to end.
//!
//! - [`local`]: start nodes on loopback over QUIC with development certificates.
//! - [`demo`]: `fjell demo`, a scripted tour: formation, a crash resolved by the split brain
//!   resolver, a graceful leave.
//! - [`listener`]: Akka's *simple cluster listener*.
//! - [`worker`]: Akka's *worker dial-in* (transformation) sample: frontends and backends.
//! - [`manage`]: the management commands and `fjell certs`.
//!
//! ```no_run
//! # fn main() -> Result<(), fjell_examples::Error> {
//! // The demo with three nodes, printing to stdout.
//! let opts = fjell_examples::demo::Options { nodes: 3, keep_running: false };
//! smol::block_on(fjell_examples::demo::run(opts, std::io::stdout()))?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod demo;
pub mod listener;
pub mod local;
pub mod manage;
pub mod worker;

/// A boxed error for the examples' fallible steps.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
