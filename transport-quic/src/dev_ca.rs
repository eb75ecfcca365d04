//! A cluster CA in memory, for development, tests and `fjell certs` (feature `dev-certs`).

use std::net::SocketAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::{Credentials, TlsError, ADMIN_URI_SCHEME, NODE_URI_SCHEME};

fn gen<E: std::fmt::Display>(e: E) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A throwaway cluster CA created in memory, for development and tests. **Not for
/// production**: the CA key lives in process memory and every node that holds this value
/// can mint identities. Creating one logs a warning saying so.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// Creates a new CA (ECDSA P-256, valid for the default rcgen period).
    pub fn new() -> Result<Self, TlsError> {
        tracing::warn!(
            "fjell-quic development mode: throwaway in-memory CA and certificates, not for production"
        );
        Self::with_key(KeyPair::generate().map_err(gen)?)
    }

    /// The CA whose private key is `key_pem` (as written by [`DevCa::key_pem`]), to issue
    /// more certificates from a CA kept in files (`fjell certs`). The certificates it
    /// issues chain to the CA certificate written alongside that key: same name, same key.
    pub fn from_key_pem(key_pem: &str) -> Result<Self, TlsError> {
        Self::with_key(KeyPair::from_pem(key_pem).map_err(gen)?)
    }

    fn with_key(key: KeyPair) -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "fjell development CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(gen)?;
        Ok(DevCa { cert, key })
    }

    /// The CA certificate as PEM (to hand to tools that load PEM files).
    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's private key as PEM (PKCS#8). Whoever holds it can mint identities: keep
    /// it off the nodes.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The certificate and private key of an operator tool named `name`, as PEM text.
    pub fn admin_pem(&self, name: &str) -> Result<(String, String), TlsError> {
        let (cert, key) = self.issue(admin_names(name)?)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Credentials for the node advertising `addr`.
    pub fn node(&self, addr: SocketAddr) -> Result<Credentials, TlsError> {
        let (cert, key) = self.issue(node_names(addr)?)?;
        self.credentials(cert, key)
    }

    /// The certificate and private key (PKCS#8) of the node advertising `addr` as PEM
    /// text, for writing files that [`Credentials::from_pem_files`] loads.
    pub fn node_pem(&self, addr: SocketAddr) -> Result<(String, String), TlsError> {
        let (cert, key) = self.issue(node_names(addr)?)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Credentials for an operator tool named `name`.
    pub fn admin(&self, name: &str) -> Result<Credentials, TlsError> {
        let (cert, key) = self.issue(admin_names(name)?)?;
        self.credentials(cert, key)
    }

    fn credentials(&self, cert: rcgen::Certificate, key: KeyPair) -> Result<Credentials, TlsError> {
        Credentials::from_der(
            vec![self.cert.der().clone()],
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn issue(
        &self,
        (cn, sans): (String, Vec<SanType>),
    ) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(gen)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(gen)?;
        Ok((cert, key))
    }
}

fn node_names(addr: SocketAddr) -> Result<(String, Vec<SanType>), TlsError> {
    let uri = format!("{NODE_URI_SCHEME}{addr}").try_into().map_err(gen)?;
    Ok((
        format!("fjell node {addr}"),
        vec![SanType::URI(uri), SanType::IpAddress(addr.ip())],
    ))
}

fn admin_names(name: &str) -> Result<(String, Vec<SanType>), TlsError> {
    let uri = format!("{ADMIN_URI_SCHEME}{name}")
        .try_into()
        .map_err(gen)?;
    Ok((format!("fjell admin {name}"), vec![SanType::URI(uri)]))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;

    use super::*;
    use crate::tls::{provider, PeerIdentity};

    #[test]
    fn a_ca_reloaded_from_its_key_issues_certificates_that_chain_to_the_original() {
        let ca = DevCa::new().unwrap();
        let again = DevCa::from_key_pem(&ca.key_pem()).unwrap();
        let addr: SocketAddr = "10.0.0.1:7355".parse().unwrap();
        let (cert, key) = again.node_pem(addr).unwrap();
        let creds =
            Credentials::from_pem(ca.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(creds.identity(), &PeerIdentity::Node(addr));
        // What a peer's handshake checks: the chain against the original CA certificate.
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(creds.roots().unwrap()),
            provider(),
        )
        .build()
        .unwrap();
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_client_cert(&creds.chain[0], &[], now)
            .expect("chains to the original CA");
        let other = DevCa::new().unwrap();
        let (stranger, _) = other.node_pem(addr).unwrap();
        let stranger =
            rustls::pki_types::CertificateDer::from_pem_slice(stranger.as_bytes()).unwrap();
        assert!(verifier.verify_client_cert(&stranger, &[], now).is_err());
        let (cert, key) = again.admin_pem("ops").unwrap();
        let admin =
            Credentials::from_pem(ca.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(admin.identity(), &PeerIdentity::Admin("ops".into()));
    }

    #[test]
    fn certificates_certify_the_advertised_address_and_load_from_pem_files() {
        let ca = DevCa::new().unwrap();
        let addr: SocketAddr = "127.0.0.1:7355".parse().unwrap();
        assert_eq!(ca.node(addr).unwrap().identity(), &PeerIdentity::Node(addr));
        assert_eq!(
            ca.admin("alice").unwrap().identity(),
            &PeerIdentity::Admin("alice".into())
        );
        let dir = std::env::temp_dir().join(format!("fjell-quic-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = ca.node_pem(addr).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.ca_pem()).unwrap();
        std::fs::write(dir.join("node.pem"), cert).unwrap();
        std::fs::write(dir.join("node.key"), key).unwrap();
        let loaded = Credentials::from_pem_files(
            dir.join("ca.pem"),
            dir.join("node.pem"),
            dir.join("node.key"),
        )
        .unwrap();
        assert_eq!(loaded.identity(), &PeerIdentity::Node(addr));
        let missing = Credentials::from_pem_files(
            dir.join("missing.pem"),
            dir.join("node.pem"),
            dir.join("node.key"),
        )
        .unwrap_err();
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
        // A key that is not the certificate's is refused at load time.
        let (_, other_key) = ca.node_pem(addr).unwrap();
        std::fs::write(dir.join("other.key"), other_key).unwrap();
        let mismatch = Credentials::from_pem_files(
            dir.join("ca.pem"),
            dir.join("node.pem"),
            dir.join("other.key"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(mismatch.is_err());
    }
}
