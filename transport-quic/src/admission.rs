//! Who may use a connection once its TLS handshake succeeded.
//!
//! The handshake proves that the peer holds a key certified by the cluster CA. That alone
//! would let anyone who holds a copy of a node's certificate and key (a leaked key, a cloned
//! VM, the same PEM files deployed on two hosts) speak as that node from anywhere, and the
//! core would take it for the node: the real one would be evicted. So the certified identity
//! is bound to the path:
//!
//! - a node's inbound connection must come from the address its certificate certifies (a
//!   node's single endpoint both listens and dials, so its connections leave from that
//!   address), or from an address the operator declared for it ([`AddressMapping`]: NAT,
//!   containers);
//! - a dialed connection must present the certificate of exactly the address dialed (the
//!   path is then the one this node chose);
//! - a certificate on the deny list is refused whatever the path;
//! - QUIC connection migration is off, so a connection never moves away from the path it
//!   was admitted on.
//!
//! The rules are plain functions of what the handshake established, so they are tested
//! without a network.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::RwLock;

use crate::config::AddressMapping;
use crate::tls::{Fingerprint, PeerIdentity};

/// Why an established connection is not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The certificate carries no identity fjell understands.
    NoIdentity(String),
    /// An inbound connection certified as this very node.
    SelfIdentity,
    /// A dialed node presented another node's certificate.
    WrongNode {
        /// The address dialed.
        dialed: SocketAddr,
        /// What the certificate certifies.
        certified: String,
    },
    /// A node's connection came from an address other than the one certified, with no
    /// declared mapping.
    WrongPath {
        /// What the certificate certifies.
        certified: SocketAddr,
        /// Where the connection came from.
        source: SocketAddr,
    },
    /// The certificate is on the deny list.
    Denied(Fingerprint),
}

impl Refusal {
    /// The QUIC application error code the connection is closed with.
    pub fn close_code(&self) -> u32 {
        use crate::close_code;
        match self {
            Refusal::NoIdentity(_) | Refusal::SelfIdentity => close_code::NOT_A_NODE,
            Refusal::WrongNode { .. } => close_code::IDENTITY_MISMATCH,
            Refusal::WrongPath { .. } => close_code::WRONG_PATH,
            Refusal::Denied(_) => close_code::DENIED,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoIdentity(e) => write!(f, "no usable identity: {e}"),
            Refusal::SelfIdentity => f.write_str("the certificate certifies this node itself"),
            Refusal::WrongNode { dialed, certified } => {
                write!(f, "the certificate at {dialed} certifies {certified}")
            }
            Refusal::WrongPath { certified, source } => write!(
                f,
                "certified as {certified} but connecting from {source} \
                 (declare it in `address-map` if that is a NAT)"
            ),
            Refusal::Denied(fp) => write!(f, "certificate {fp} is on the deny list"),
        }
    }
}

/// The admission rules and the state they read: this node's address, the declared
/// mappings, the deny list (replaceable while running).
#[derive(Debug)]
pub(crate) struct Gate {
    me: SocketAddr,
    mappings: Vec<AddressMapping>,
    deny: RwLock<HashSet<Fingerprint>>,
}

impl Gate {
    pub(crate) fn new(
        me: SocketAddr,
        mappings: Vec<AddressMapping>,
        deny: impl IntoIterator<Item = Fingerprint>,
    ) -> Self {
        Gate {
            me,
            mappings,
            deny: RwLock::new(deny.into_iter().collect()),
        }
    }

    /// Replaces the deny list.
    pub(crate) fn set_deny(&self, deny: impl IntoIterator<Item = Fingerprint>) {
        *self.deny.write().unwrap() = deny.into_iter().collect();
    }

    pub(crate) fn is_denied(&self, fp: &Fingerprint) -> bool {
        self.deny.read().unwrap().contains(fp)
    }

    /// An accepted connection from `source` whose certificate (fingerprint `fp`) certifies
    /// `identity`.
    pub(crate) fn inbound(
        &self,
        identity: &PeerIdentity,
        fp: &Fingerprint,
        source: SocketAddr,
    ) -> Result<(), Refusal> {
        if self.is_denied(fp) {
            return Err(Refusal::Denied(*fp));
        }
        match identity {
            // An operator tool connects from anywhere: its identity is not an address.
            PeerIdentity::Admin(_) => Ok(()),
            PeerIdentity::Node(a) if *a == self.me => Err(Refusal::SelfIdentity),
            PeerIdentity::Node(a) if same_path(*a, source) => Ok(()),
            PeerIdentity::Node(a) if self.mappings.iter().any(|m| m.allows(*a, source)) => Ok(()),
            PeerIdentity::Node(a) => Err(Refusal::WrongPath {
                certified: *a,
                source,
            }),
        }
    }

    /// A connection this node dialed to `dialed`.
    pub(crate) fn dialed(
        &self,
        dialed: SocketAddr,
        identity: &PeerIdentity,
        fp: &Fingerprint,
    ) -> Result<(), Refusal> {
        if self.is_denied(fp) {
            return Err(Refusal::Denied(*fp));
        }
        match identity {
            // Exactly the address dialed: its messages are delivered as from that address,
            // which must be the one the certificate names.
            PeerIdentity::Node(a) if *a == dialed => Ok(()),
            other => Err(Refusal::WrongNode {
                dialed,
                certified: other.to_string(),
            }),
        }
    }
}

/// The same address, an IPv4 address and its IPv4-mapped IPv6 form being the same (a
/// dual-stack socket reports IPv4 peers in the mapped form).
fn same_path(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const FP: Fingerprint = Fingerprint([7; 32]);

    #[test]
    fn a_node_is_admitted_only_from_its_certified_address() {
        let g = Gate::new(a("10.0.0.1:7355"), vec![], []);
        let node2 = PeerIdentity::Node(a("10.0.0.2:7355"));
        assert_eq!(g.inbound(&node2, &FP, a("10.0.0.2:7355")), Ok(()));
        assert_eq!(g.inbound(&node2, &FP, a("[::ffff:10.0.0.2]:7355")), Ok(()));
        for elsewhere in ["10.0.0.9:7355", "10.0.0.2:7356"] {
            assert_eq!(
                g.inbound(&node2, &FP, a(elsewhere)),
                Err(Refusal::WrongPath {
                    certified: a("10.0.0.2:7355"),
                    source: a(elsewhere)
                })
            );
        }
        let me = PeerIdentity::Node(a("10.0.0.1:7355"));
        assert_eq!(
            g.inbound(&me, &FP, a("10.0.0.1:7355")),
            Err(Refusal::SelfIdentity)
        );
        let admin = PeerIdentity::Admin("ops".into());
        assert_eq!(g.inbound(&admin, &FP, a("192.168.1.1:5000")), Ok(()));
    }

    #[test]
    fn declared_mappings_admit_a_translated_source() {
        let ip_only: AddressMapping = "10.0.0.2:7355=192.168.1.5".parse().unwrap();
        let exact: AddressMapping = "10.0.0.3:7355=192.168.1.6:40000".parse().unwrap();
        let g = Gate::new(a("10.0.0.1:7355"), vec![ip_only, exact], []);
        let node2 = PeerIdentity::Node(a("10.0.0.2:7355"));
        let node3 = PeerIdentity::Node(a("10.0.0.3:7355"));
        assert_eq!(g.inbound(&node2, &FP, a("192.168.1.5:1234")), Ok(()));
        assert_eq!(g.inbound(&node3, &FP, a("192.168.1.6:40000")), Ok(()));
        assert!(g.inbound(&node3, &FP, a("192.168.1.6:40001")).is_err());
        // A mapping is for the node it names only.
        assert!(g.inbound(&node3, &FP, a("192.168.1.5:1234")).is_err());
    }

    #[test]
    fn denied_certificates_are_refused_on_every_path_until_the_list_changes() {
        let g = Gate::new(a("10.0.0.1:7355"), vec![], [FP]);
        let node2 = PeerIdentity::Node(a("10.0.0.2:7355"));
        let admin = PeerIdentity::Admin("ops".into());
        assert_eq!(
            g.inbound(&node2, &FP, a("10.0.0.2:7355")),
            Err(Refusal::Denied(FP))
        );
        assert_eq!(
            g.inbound(&admin, &FP, a("10.0.0.2:1")),
            Err(Refusal::Denied(FP))
        );
        assert_eq!(
            g.dialed(a("10.0.0.2:7355"), &node2, &FP),
            Err(Refusal::Denied(FP))
        );
        g.set_deny([]);
        assert_eq!(g.dialed(a("10.0.0.2:7355"), &node2, &FP), Ok(()));
        assert!(g.dialed(a("10.0.0.3:7355"), &node2, &FP).is_err());
        // Another spelling of the address would deliver its messages under another name.
        assert!(g.dialed(a("[::ffff:10.0.0.2]:7355"), &node2, &FP).is_err());
    }
}
