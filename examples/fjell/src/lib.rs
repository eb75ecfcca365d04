//! The code behind the `fjell` binary, as a library so tests can drive it end to end.
//!
//! - [`demo`]: `fjell demo`, a scripted tour: formation, a crash resolved by the split brain
//!   resolver, a graceful leave.
//! - [`manage`]: the management commands and `fjell certs`.
//! - [`fd_chart`]: `fjell fd-chart`, phi curves and detection numbers for tuning.
//!
//! ```no_run
//! # fn main() -> Result<(), fjell_examples::Error> {
//! // The demo with three nodes, printing to stdout.
//! let opts = fjell_cli::demo::Options { nodes: 3, keep_running: false };
//! smol::block_on(fjell_cli::demo::run(opts, std::io::stdout()))?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod demo;
pub mod fd_chart;
pub mod manage;

pub use fjell_examples::Error;
