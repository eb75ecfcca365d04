//! Internals for `fjell-sim`, the fuzz targets and this crate's own tests and benches.
//!
//! **Not part of the public API.** Hidden from the documentation and exempt from semver: these
//! items change whenever the implementation does. An application needs none of them; what it
//! needs is at the crate root.
//!
//! Why a hidden module rather than a cargo feature: the simulator and the fuzz targets build
//! the core as it ships, with nothing switched on or off, and a feature would be unified into
//! every crate of the workspace that depends on the core anyway (quinn-proto exposes its
//! `fuzzing` module the same way).

/// The gossip state, its merge, the seen set and convergence.
pub mod gossip {
    pub use crate::gossip::*;
}

/// Version vectors.
pub mod vclock {
    pub use crate::vclock::*;
}

/// The reachability table.
pub mod reachability {
    pub use crate::reachability::*;
}

/// Failure detectors and the phi function.
pub mod phi {
    pub use crate::phi::*;
}

/// The wire format: message types, encoding and decoding.
pub mod wire {
    pub use crate::wire::*;
}

/// The deterministic random number generator the node uses.
pub mod random {
    pub use crate::random::*;
}

/// The split brain resolver's rules, as pure functions of the gossip.
pub mod downing {
    pub use crate::downing::*;
}

/// Leader election and the leader's actions.
pub mod leader {
    pub use crate::leader::*;
}
