//! The runtime's errors: a setting that cannot be used, and why a node could not start.

use std::net::SocketAddr;

use fjell_core::ConfigError;
use fjell_quic::{TlsError, TransportError};

/// A setting that cannot be used, by key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{key}`: {reason}")]
pub struct SettingsError {
    /// The key (with the environment variable it came from, for overrides).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl SettingsError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        SettingsError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A core setting is invalid (the message names the key, as in
    /// [`Config::KEYS`](fjell_core::Config::KEYS)).
    #[error("{0}")]
    Config(ConfigError),
    /// A setting given to the builder or read from a settings file is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// No TLS credentials were given ([`ClusterBuilder::credentials`](crate::ClusterBuilder::credentials) or
    /// [`ClusterBuilder::pem_files`](crate::ClusterBuilder::pem_files)).
    #[error("no TLS credentials: give the builder credentials or PEM files")]
    NoCredentials,
    /// The credentials cannot be loaded or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The advertised address is not the one the node's certificate certifies.
    #[error("the advertised address {advertised} is not the address the certificate certifies ({certified})")]
    AddressMismatch {
        /// What the builder was told.
        advertised: SocketAddr,
        /// What the certificate says.
        certified: String,
    },
    /// The lease-majority strategy was chosen without a lease.
    #[error(
        "downing `lease-majority` needs a lease: give the builder one (ClusterBuilder::lease)"
    )]
    NoLease,
    /// The event log ([`ClusterBuilder::event_log`](crate::ClusterBuilder::event_log))
    /// cannot be opened.
    #[error("cannot open the event log {}: {reason}", path.display())]
    EventLog {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The transport could not start (binding the socket, TLS setup).
    #[error(transparent)]
    Transport(#[from] TransportError),
}
