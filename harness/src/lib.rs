//! # fjell-harness
//!
//! The multi-node test harness: fjell nodes as real processes, each in a network namespace
//! of its own, with faults injected per link and per process, and checks made only from what
//! the nodes report. Akka's multi-node testkit, for fjell, as data: a scenario is a small
//! TOML file (the nodes, their settings, a timeline of faults and waits, and what must hold),
//! so you can write scenarios for your own deployment and your own binary.
//!
//! Linux and root only (network namespaces, TUN devices). `fjell-harness run` runs scenario
//! files; `fjell-harness soak` runs random faults for as long as you like;
//! `fjell-harness env` says what the machine offers. TESTING.md has a worked example.
//!
//! - [`net`]: the network — a namespace per node, joined by a userspace switch over TUN
//!   devices that applies each directed link's rule (blocked, delay, jitter, loss,
//!   reordering) and counts what it did.
//! - [`fleet`]: the node processes — certificates and settings files, start, SIGKILL,
//!   SIGTERM, SIGSTOP/SIGCONT, restart on the same address, management questions.
//! - [`observe`]: each node's event log (the `event-log` setting) replayed into its view of
//!   the cluster.
//! - [`checks`]: the oracle — no split brain (as decisions and as clusters), no
//!   unreachable or downed members where a scenario forbids them, a majority Up, application
//!   messages in order.
//! - [`scenario`]: the file format; [`runner`]: one run; [`soak`]: the random schedule;
//!   [`app`]: the harness's own node program (fjell-runtime embedded, with application
//!   traffic).
//!
//! ```
//! use fjell_harness::scenario::{Nodes, Scenario};
//!
//! let s = Scenario::parse(r#"
//!     description = "the leader crashes; the others remove it"
//!     nodes = 5
//!     [settings]
//!     downing = "keep-majority"
//!     [[step]]
//!     start = "all"
//!     [[step]]
//!     wait = "converged"
//!     within = "30s"
//!     [[step]]
//!     kill = "leader"
//!     [[step]]
//!     wait = "converged"
//!     nodes = "running"
//!     within = "45s"
//! "#)?;
//! assert_eq!(s.steps.len(), 4);
//! assert_eq!(s.seed_nodes(), [0, 1, 2]);
//! # Ok::<(), String>(())
//! ```

pub mod app;
pub mod checks;
pub mod fleet;
pub mod net;
pub mod observe;
pub mod runner;
pub mod scenario;
pub mod soak;
