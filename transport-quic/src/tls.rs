//! Mutual TLS against a cluster CA, and the identity a certificate certifies.
//!
//! Every node presents a certificate chained to the cluster CA and verifies its peer's
//! against the same CA, in both directions; a peer without a certificate, or with one from
//! another CA, fails the handshake. A node certificate names the node's advertised address
//! twice: as a URI SAN `fjell://IP:PORT` (the identity, port included) and as an IP SAN (so
//! standard server-name verification of the dialed IP passes). The transport hands the
//! certified address to the core as the sender of everything on that connection, so the
//! core's sender check refuses a node that claims to be another member.
//!
//! Certificates need both the server and client authentication extended key usages, since
//! every node both listens and dials.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

/// URI scheme of a node identity: `fjell://127.0.0.1:7355`.
pub const NODE_URI_SCHEME: &str = "fjell://";
/// URI scheme of an administrator identity: `fjell-admin://alice`.
pub const ADMIN_URI_SCHEME: &str = "fjell-admin://";

/// Who is at the other end of a connection, as certified by the cluster CA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// A cluster node, identified by its advertised address.
    Node(SocketAddr),
    /// An operator tool: its connections carry management requests only (see
    /// [`crate::admin`]).
    Admin(String),
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerIdentity::Node(a) => write!(f, "{NODE_URI_SCHEME}{a}"),
            PeerIdentity::Admin(n) => write!(f, "{ADMIN_URI_SCHEME}{n}"),
        }
    }
}

/// Why credentials could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The PEM text holds no certificate or key of the expected kind.
    #[error("{what}: no valid PEM {what} found ({detail})")]
    Pem {
        /// What was looked for: "CA certificate", "certificate", "private key".
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// The certificate does not carry a `fjell://` or `fjell-admin://` URI SAN.
    #[error(
        "the certificate carries no fjell identity (URI SAN fjell://IP:PORT or fjell-admin://NAME)"
    )]
    NoIdentity,
    /// The certificate does not parse as X.509.
    #[error("the certificate does not parse: {0}")]
    BadCertificate(String),
    /// rustls refused the configuration (for instance a key that does not match).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA certificate cannot be used as a trust anchor.
    #[error("the CA certificate cannot be used to verify peers: {0}")]
    Verifier(String),
    /// Generating development certificates failed.
    #[error("generating development certificates failed: {0}")]
    Generate(String),
}

/// A node's (or an administrator's) TLS credentials: the cluster CA it trusts, its
/// certificate chain and private key, and the identity the certificate certifies.
#[derive(Debug)]
pub struct Credentials {
    ca: Vec<CertificateDer<'static>>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    identity: PeerIdentity,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Credentials {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            identity: self.identity.clone(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            detail: "the file is empty".into(),
        });
    }
    Ok(certs)
}

impl Credentials {
    /// Loads the cluster CA certificate(s), this node's certificate chain (leaf first) and
    /// its private key (PKCS#8, PKCS#1 or SEC1) from PEM files.
    pub fn from_pem_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::from_pem(
            &read(ca.as_ref())?,
            &read(cert.as_ref())?,
            &read(key.as_ref())?,
        )
    }

    /// Like [`Credentials::from_pem_files`], from PEM text in memory.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let ca = certs("CA certificate", ca)?;
        let chain = certs("certificate", cert)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
            what: "private key",
            detail: e.to_string(),
        })?;
        Self::from_der(ca, chain, key)
    }

    /// Builds credentials from DER: the CA certificate(s), the chain (leaf first), the key.
    pub fn from_der(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let leaf = chain.first().ok_or(TlsError::Pem {
            what: "certificate",
            detail: "empty chain".into(),
        })?;
        let identity = identity_of(leaf)?;
        let creds = Credentials {
            ca,
            chain,
            key,
            identity,
        };
        // Refuse a key that does not match the certificate now rather than at the first
        // handshake.
        creds.rustls_server_config()?;
        Ok(creds)
    }

    /// The identity this certificate certifies.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// The fingerprint of this certificate (what a deny list names).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.chain[0])
    }

    /// When this certificate, or the first CA certificate, expires: whichever is sooner
    /// (from then on peers refuse this node).
    pub fn expires(&self) -> Result<std::time::SystemTime, TlsError> {
        let not_after = |c: &CertificateDer<'_>| -> Result<std::time::SystemTime, TlsError> {
            let (_, parsed) = x509_parser::parse_x509_certificate(c.as_ref())
                .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
            let secs = parsed.validity().not_after.timestamp();
            Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64))
        };
        let leaf = not_after(&self.chain[0])?;
        match self.ca.first() {
            Some(ca) => Ok(leaf.min(not_after(ca)?)),
            None => Ok(leaf),
        }
    }

    pub(crate) fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(roots)
    }

    /// rustls server side: requires and verifies a client certificate from the cluster CA.
    pub(crate) fn rustls_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = provider();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        // No session resumption: a resumed handshake skips certificate verification, so an
        // expired certificate could go on reconnecting through an old session.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok(cfg)
    }

    /// rustls client side: trusts only the cluster CA and presents this certificate.
    pub(crate) fn rustls_client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(cfg)
    }

    /// A quinn client configuration presenting these credentials (what a node uses to dial;
    /// also for tools and tests that speak to a node directly).
    pub fn quinn_client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(self.rustls_client_config()?)
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }

    /// A key for QUIC stateless resets derived from the private key, so a node restarted with
    /// the same credentials can reset its predecessor's connections at once instead of
    /// leaving peers to wait for the idle timeout.
    pub(crate) fn reset_key(&self) -> ring::hmac::Key {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.key.secret_der());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, digest.as_ref())
    }

    /// The key of the connection ID generator, derived from the private key for the same
    /// reason: an endpoint only answers (with a stateless reset) packets whose connection ID
    /// it can verify as its own, so a restarted node must verify its predecessor's IDs.
    pub(crate) fn connection_id_key(&self) -> u64 {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"fjell-quic connection id key");
        ctx.update(self.key.secret_der());
        let mut first = [0u8; 8];
        first.copy_from_slice(&ctx.finish().as_ref()[..8]);
        u64::from_le_bytes(first)
    }
}

/// ALPN protocol name: a peer speaking something else fails the handshake.
pub const ALPN: &[u8] = b"fjell/1";

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The identity certified by a leaf certificate.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?
        .ok_or(TlsError::NoIdentity)?;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(addr) = uri.strip_prefix(NODE_URI_SCHEME) {
                if let Ok(a) = addr.parse() {
                    return Ok(PeerIdentity::Node(a));
                }
            } else if let Some(n) = uri.strip_prefix(ADMIN_URI_SCHEME) {
                return Ok(PeerIdentity::Admin(n.to_owned()));
            }
        }
    }
    Err(TlsError::NoIdentity)
}

/// The identity certified by the peer of an established connection, and the fingerprint of
/// its certificate.
pub(crate) fn peer_identity(
    conn: &quinn::Connection,
) -> Result<(PeerIdentity, Fingerprint), TlsError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoIdentity)?;
    let leaf = certs.first().ok_or(TlsError::NoIdentity)?;
    Ok((identity_of(leaf)?, Fingerprint::of(leaf)))
}

/// The SHA-256 digest of a certificate (DER), the key of a deny list. Written
/// `sha256:` followed by 64 lowercase hex digits (`fjell certs` prints it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `cert`.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// The fingerprint of the first certificate in PEM text.
    pub fn of_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let chain = certs("certificate", pem)?;
        Ok(Self::of(&chain[0]))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A fingerprint that is not `sha256:` and 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a certificate fingerprint is `sha256:` followed by 64 hex digits")]
pub struct BadFingerprint;

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.trim().strip_prefix("sha256:").ok_or(BadFingerprint)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadFingerprint);
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| BadFingerprint)?;
        }
        Ok(Fingerprint(out))
    }
}
