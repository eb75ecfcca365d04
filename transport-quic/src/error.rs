//! Errors at the transport's boundaries: binding, sending, requesting.

use std::net::SocketAddr;

use crate::config::TransportConfigError;
use crate::tls::TlsError;

/// Why a transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] TransportConfigError),
    /// The credentials cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The credentials certify an administrator, not a node.
    #[error("the certificate certifies {0}, not a node address")]
    NotANode(String),
    /// The UDP socket could not be bound or set up.
    #[error("cannot bind the UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The destination is not a current member (never was, or has been removed): see
    /// [`Transport::set_members`](crate::Transport::set_members).
    #[error("{0} is not a member of the cluster (unknown or removed)")]
    UnknownMember(SocketAddr),
    /// The destination is this node.
    #[error("{0} is this node")]
    ToSelf(SocketAddr),
    /// The peer's queue for that lane is full (membership traffic only; application sends
    /// wait instead).
    #[error("the queue to {0} is full")]
    QueueFull(SocketAddr),
    /// The message is larger than the maximum frame.
    #[error("a message of {len} bytes exceeds the maximum frame of {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The message does not serialize.
    #[error("the message does not serialize: {0}")]
    Serialize(String),
    /// [`Transport::respond`](crate::Transport::respond) was given a one-way message.
    #[error("the message is not a request")]
    NotARequest,
    /// The transport has been closed.
    #[error("the transport is closed")]
    Closed,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request was not sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No response within the timeout (the peer may be slow, gone, or not answering).
    #[error("no response from {0} within the timeout")]
    Timeout(SocketAddr),
    /// The response does not deserialize as the expected type.
    #[error("the response does not deserialize: {0}")]
    Deserialize(String),
}
