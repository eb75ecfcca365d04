//! Examples that mirror the Akka cluster documentation, as a library so tests can drive
//! them end to end. (The `fjell` binary is the `fjell-cli` package, in `examples/fjell/`.)
//!
//! - [`local`]: start nodes on loopback over QUIC with development certificates.
//! - [`listener`]: Akka's *simple cluster listener*.
//! - [`worker`]: Akka's *worker dial-in* (transformation) sample: frontends and backends.
//!
//! ```no_run
//! # fn main() -> Result<(), fjell_examples::Error> {
//! // Three nodes on loopback that form a cluster.
//! let mut lo = fjell_examples::local::Loopback::new(3)?;
//! let nodes = (0..3).map(|i| lo.start(i)).collect::<Result<Vec<_>, _>>()?;
//! # drop(nodes);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod listener;
pub mod local;
pub mod worker;

/// A boxed error for the examples' fallible steps.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
