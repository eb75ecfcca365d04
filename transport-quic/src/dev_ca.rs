//! A cluster CA in memory, for development, tests and `fjell certs` (feature `dev-certs`).
//!
//! Validity is bounded everywhere: a cluster CA made by [`DevCa::for_cluster`] is valid for
//! the period asked (`fjell certs ca` defaults to [`DevCa::CA_VALIDITY`]), certificates it
//! issues for [`DevCa::LEAF_VALIDITY`] unless told otherwise, never beyond the CA's own end,
//! and the throwaway CA of [`DevCa::new`] for [`DevCa::DEV_VALIDITY`]. Every period starts
//! [`DevCa::CLOCK_SKEW`] in the past, so a peer whose clock runs a little behind does not
//! refuse a certificate made a moment ago.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, Ia5String, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PrintableString, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use crate::tls::{Credentials, TlsError, ADMIN_URI_SCHEME, NODE_URI_SCHEME};

fn gen<E: std::fmt::Display>(e: E) -> TlsError {
    TlsError::Generate(e.to_string())
}

const DAY: u64 = 86_400;

/// The last second rcgen (and X.509 GeneralizedTime) can write: 9999-12-31T23:59:59Z.
const LAST_SECOND: u64 = 253_402_300_799;

/// A cluster CA: its certificate and private key, held in memory to issue node and
/// administrator certificates.
///
/// [`DevCa::new`] makes a throwaway one for development and tests. **Not for production**:
/// its key lives in process memory and every node that holds this value can mint
/// identities; creating one logs a warning saying so. `fjell certs` uses
/// [`DevCa::for_cluster`] to create a CA once (written to files, the key kept off the
/// nodes) and [`DevCa::from_pem`] to issue from those files.
pub struct DevCa {
    /// What issued certificates are signed as: the CA's subject and key identifier,
    /// self-signed by `key`. For a CA read from files this is a re-creation, not the file's
    /// certificate (rcgen 0.13 cannot issue from a parsed certificate without its
    /// `x509-parser` feature, which would pull a second x509-parser version); the subject is
    /// checked to be byte for byte the file's, which is what chaining needs.
    cert: rcgen::Certificate,
    /// The CA certificate as peers see it: `cert` when created here, the file's otherwise.
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    key: KeyPair,
    /// The CA's last valid second (Unix time): no issued certificate outlives its CA.
    ca_until: u64,
    /// How long issued certificates are valid.
    leaf_validity: Duration,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// How long a cluster CA is valid unless told otherwise: 10 years (3650 days).
    pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * DAY);
    /// How long an issued node or administrator certificate is valid unless told
    /// otherwise: 1 year (365 days), and never beyond its CA.
    pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * DAY);
    /// How long the throwaway CA of [`DevCa::new`] (and so everything it issues) is valid:
    /// 90 days, beyond the 30 days within which a running node warns of expiry.
    pub const DEV_VALIDITY: Duration = Duration::from_secs(90 * DAY);
    /// How far in the past every validity period starts: 5 minutes, for clock skew.
    pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
    /// The longest cluster name [`DevCa::for_cluster`] takes: the CA's common name
    /// `fjell cluster CA <name>` stays within X.509's 64 characters.
    pub const MAX_CLUSTER_NAME: usize = 64 - "fjell cluster CA ".len();

    /// Creates a throwaway CA (ECDSA P-256, subject `CN=fjell development CA`, valid for
    /// [`DevCa::DEV_VALIDITY`]) and logs a warning that it is not for production.
    pub fn new() -> Result<Self, TlsError> {
        tracing::warn!(
            "fjell-quic development mode: throwaway in-memory CA and certificates, not for production"
        );
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "fjell development CA");
        Self::create(dn, Self::DEV_VALIDITY)
    }

    /// Creates the CA of the cluster `cluster` (ECDSA P-256), valid for `validity`: subject
    /// `CN=fjell cluster CA <cluster>, O=fjell`, so that CAs of different clusters are told
    /// apart in certificates and logs.
    ///
    /// `cluster` is 1 to [`DevCa::MAX_CLUSTER_NAME`] characters, no control characters.
    pub fn for_cluster(cluster: &str, validity: Duration) -> Result<Self, TlsError> {
        let n = cluster.chars().count();
        if n == 0 || n > Self::MAX_CLUSTER_NAME || cluster.chars().any(char::is_control) {
            return Err(TlsError::Generate(format!(
                "a cluster name is 1 to {} characters, without control characters",
                Self::MAX_CLUSTER_NAME
            )));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("fjell cluster CA {cluster}"));
        dn.push(DnType::OrganizationName, "fjell");
        Self::create(dn, validity)
    }

    fn create(dn: DistinguishedName, validity: Duration) -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(gen)?;
        let (from, until) = period(now(), validity, u64::MAX)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, from, until);
        let cert = params.self_signed(&key).map_err(gen)?;
        Ok(DevCa {
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            cert,
            key,
            ca_until: until,
            leaf_validity: Self::LEAF_VALIDITY,
        })
    }

    /// The CA whose certificate is `ca_pem` (its first certificate) and whose private key
    /// is `key_pem`, as `fjell certs ca` writes them: what it issues chains to that
    /// certificate (same subject, same key, same key identifier).
    ///
    /// Refused, as [`TlsError::Generate`] with the reason: a key that is not the
    /// certificate's, a certificate that is not a CA's or has expired, and a subject this
    /// crate cannot reproduce exactly (string types other than UTF8String, PrintableString
    /// and IA5String, repeated or multi-valued name parts).
    pub fn from_pem(ca_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| TlsError::Pem {
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        let (_, ca) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Pem {
            what: "private key",
            detail: e.to_string(),
        })?;
        if ca.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(TlsError::Generate(
                "the key is not the CA certificate's key".into(),
            ));
        }
        let is_ca = ca
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            return Err(TlsError::Generate(
                "the certificate is not a CA certificate (no basic constraints CA:true)".into(),
            ));
        }
        let validity = ca.validity();
        let (ca_from, ca_until) = (
            validity.not_before.timestamp().max(0) as u64,
            validity.not_after.timestamp().max(0) as u64,
        );
        if ca_until <= now() {
            return Err(TlsError::Generate(format!(
                "the CA certificate expired on {}",
                validity.not_after
            )));
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = subject_of(&ca)?;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Issued certificates name the CA's key by its own identifier, whatever tool made it.
        if let Some(ski) = ca
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
        {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        set_validity(&mut params, ca_from, ca_until);
        let cert = params.self_signed(&key).map_err(gen)?;
        let (_, again) = x509_parser::parse_x509_certificate(cert.der().as_ref())
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        // Chaining compares names byte for byte: a re-encoding that differs would issue
        // certificates no peer accepts.
        if again.subject().as_raw() != ca.subject().as_raw() {
            return Err(TlsError::Generate(format!(
                "cannot reproduce the CA's subject `{}` exactly (unsupported name encoding)",
                ca.subject()
            )));
        }
        let ca_pem =
            first_certificate_block(ca_pem).map_or(ca_pem.to_string(), |b| format!("{b}\n"));
        Ok(DevCa {
            cert,
            ca_der: der.into_owned(),
            ca_pem,
            key,
            ca_until,
            leaf_validity: Self::LEAF_VALIDITY,
        })
    }

    /// This CA, issuing certificates valid for `validity` from now (never beyond the CA's
    /// own end) instead of [`DevCa::LEAF_VALIDITY`].
    pub fn with_leaf_validity(mut self, validity: Duration) -> Self {
        self.leaf_validity = validity;
        self
    }

    /// The CA certificate as PEM (to hand to tools that load PEM files).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
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
            vec![self.ca_der.clone()],
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn issue(
        &self,
        (cn, sans): (String, Vec<SanType>),
    ) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
        let (from, until) = period(now(), self.leaf_validity, self.ca_until)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // Names the CA key, so verifiers can tell apart two CAs of the same subject (a
        // cluster's old and new CA during a rotation).
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, from, until);
        let key = KeyPair::generate().map_err(gen)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(gen)?;
        Ok((cert, key))
    }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The period (Unix seconds) of a certificate made at `now`, valid for `validity` but not
/// after `cap`.
fn period(now: u64, validity: Duration, cap: u64) -> Result<(u64, u64), TlsError> {
    let from = now.saturating_sub(DevCa::CLOCK_SKEW.as_secs());
    let until = now.saturating_add(validity.as_secs()).min(cap);
    if until > LAST_SECOND {
        return Err(TlsError::Generate(
            "the validity period ends after the year 9999".into(),
        ));
    }
    if until <= now {
        return Err(TlsError::Generate(
            "the validity period is empty (or the CA expires now)".into(),
        ));
    }
    Ok((from, until))
}

/// Sets the validity period from Unix seconds; rcgen takes `time::OffsetDateTime`, reached
/// through rcgen's own constructor (this crate does not depend on `time`).
fn set_validity(params: &mut CertificateParams, from: u64, until: u64) {
    let epoch = date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(from);
    params.not_after = epoch + Duration::from_secs(until);
}

/// The subject of `cert` as rcgen writes names, keeping each value's string type.
fn subject_of(cert: &X509Certificate<'_>) -> Result<DistinguishedName, TlsError> {
    let unsupported = || {
        TlsError::Generate(format!(
            "cannot reproduce the CA's subject `{}` exactly (unsupported name encoding)",
            cert.subject()
        ))
    };
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter_rdn() {
        if rdn.iter().count() != 1 {
            return Err(unsupported());
        }
        for atv in rdn.iter() {
            let oid: Vec<u64> = atv.attr_type().iter().ok_or_else(unsupported)?.collect();
            let text = atv.as_str().map_err(|_| unsupported())?.to_string();
            let value = match atv.attr_value().tag() {
                Tag::Utf8String => DnValue::Utf8String(text),
                Tag::PrintableString => DnValue::PrintableString(
                    PrintableString::try_from(text).map_err(|_| unsupported())?,
                ),
                Tag::Ia5String => {
                    DnValue::Ia5String(Ia5String::try_from(text).map_err(|_| unsupported())?)
                }
                _ => return Err(unsupported()),
            };
            dn.push(DnType::from_oid(&oid), value);
        }
    }
    Ok(dn)
}

/// The first `CERTIFICATE` block of PEM text, as written.
fn first_certificate_block(pem: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = start + pem[start..].find(END)? + END.len();
    Some(&pem[start..end])
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

    use super::*;
    use crate::tls::{provider, PeerIdentity};

    #[test]
    fn a_ca_read_from_its_files_issues_certificates_that_chain_to_the_file() {
        let ca = DevCa::for_cluster("prod", DevCa::CA_VALIDITY).unwrap();
        let again = DevCa::from_pem(&ca.ca_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.ca_pem(), ca.ca_pem());
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
        // Another CA of the same cluster name has another key: not accepted.
        let other = DevCa::for_cluster("prod", DevCa::CA_VALIDITY).unwrap();
        let (stranger, _) = other.node_pem(addr).unwrap();
        let stranger = CertificateDer::from_pem_slice(stranger.as_bytes()).unwrap();
        assert!(verifier.verify_client_cert(&stranger, &[], now).is_err());
        let (cert, key) = again.admin_pem("ops").unwrap();
        let admin =
            Credentials::from_pem(ca.ca_pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(admin.identity(), &PeerIdentity::Admin("ops".into()));
    }

    #[test]
    fn a_ca_is_refused_with_a_key_that_is_not_its_own_or_a_certificate_that_is_no_ca() {
        let ca = DevCa::for_cluster("prod", DevCa::CA_VALIDITY).unwrap();
        let other = DevCa::for_cluster("prod", DevCa::CA_VALIDITY).unwrap();
        let e = DevCa::from_pem(&ca.ca_pem(), &other.key_pem()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "generating development certificates failed: the key is not the CA certificate's key"
        );
        let (node, node_key) = ca.node_pem("10.0.0.1:7355".parse().unwrap()).unwrap();
        let e = DevCa::from_pem(&node, &node_key).unwrap_err();
        assert!(e.to_string().contains("not a CA certificate"), "{e}");
        assert!(DevCa::from_pem("", &ca.key_pem()).is_err());
        assert!(DevCa::for_cluster("", DevCa::CA_VALIDITY).is_err());
        assert!(DevCa::for_cluster(&"x".repeat(48), DevCa::CA_VALIDITY).is_err());
        assert!(DevCa::for_cluster(&"x".repeat(47), DevCa::CA_VALIDITY).is_ok());
    }

    /// Subject (as x509-parser prints it), issuer, and validity (Unix seconds) of PEM text.
    fn parse(pem: &str) -> (String, String, i64, i64) {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        (
            c.subject().to_string(),
            c.issuer().to_string(),
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    }

    fn unix_now() -> i64 {
        now() as i64
    }

    const SKEW: i64 = 300;
    const DAY: i64 = 86_400;

    /// `t` is `expected`, give or take the seconds a test takes.
    fn about(t: i64, expected: i64) -> bool {
        (t - expected).abs() <= 60
    }

    #[test]
    fn a_cluster_ca_names_the_cluster_and_lasts_ten_years() {
        let ca = DevCa::for_cluster("prod", DevCa::CA_VALIDITY).unwrap();
        let (subject, issuer, from, until) = parse(&ca.ca_pem());
        assert_eq!(subject, "CN=fjell cluster CA prod, O=fjell");
        assert_eq!(issuer, subject);
        let now = unix_now();
        assert!(about(from, now - SKEW), "{from} vs {now}");
        assert!(about(until, now + 3650 * DAY), "{until} vs {now}");
        let short = DevCa::for_cluster("prod", Duration::from_secs(10 * 86_400)).unwrap();
        assert!(about(parse(&short.ca_pem()).3, now + 10 * DAY));
    }

    #[test]
    fn issued_certificates_last_a_year_and_never_outlive_their_ca() {
        let ca = DevCa::for_cluster("prod", DevCa::CA_VALIDITY).unwrap();
        let addr: SocketAddr = "10.0.0.1:7355".parse().unwrap();
        let now = unix_now();
        let (subject, issuer, from, until) = parse(&ca.node_pem(addr).unwrap().0);
        assert_eq!(subject, "CN=fjell node 10.0.0.1:7355");
        assert_eq!(issuer, "CN=fjell cluster CA prod, O=fjell");
        assert!(about(from, now - SKEW));
        assert!(about(until, now + 365 * DAY));
        let ca = ca.with_leaf_validity(Duration::from_secs(7 * 86_400));
        let (_, _, _, until) = parse(&ca.admin_pem("ops").unwrap().0);
        assert!(about(until, now + 7 * DAY));
        // A CA with 10 days left issues certificates that end with it.
        let short = DevCa::for_cluster("prod", Duration::from_secs(10 * 86_400)).unwrap();
        let ca_until = parse(&short.ca_pem()).3;
        let reread = DevCa::from_pem(&short.ca_pem(), &short.key_pem()).unwrap();
        assert_eq!(parse(&reread.node_pem(addr).unwrap().0).3, ca_until);
    }

    #[test]
    fn the_development_ca_is_bounded_too() {
        let ca = DevCa::new().unwrap();
        let now = unix_now();
        let (subject, _, from, until) = parse(&ca.ca_pem());
        assert_eq!(subject, "CN=fjell development CA");
        assert!(about(from, now - SKEW));
        assert!(about(until, now + 90 * DAY));
        let (_, _, _, leaf_until) = parse(&ca.node_pem("127.0.0.1:1".parse().unwrap()).unwrap().0);
        assert_eq!(leaf_until, until);
    }

    /// A CA made by `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 36500
    /// -subj "/C=NO/O=Example AS/CN=Example Root"`: a PrintableString country, and its
    /// own subject key identifier.
    const OPENSSL_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIByTCCAW+gAwIBAgIUFZoptF/7C6nHSF+gBj+/YwNyL/cwCgYIKoZIzj0EAwIw\nOTELMAkGA1UEBhMCTk8xEzARBgNVBAoMCkV4YW1wbGUgQVMxFTATBgNVBAMMDEV4\nYW1wbGUgUm9vdDAgFw0yNjEyMDEyMjU0NDNaGA8yMTI2MTEwNzIyNTQ0M1owOTEL\nMAkGA1UEBhMCTk8xEzARBgNVBAoMCkV4YW1wbGUgQVMxFTATBgNVBAMMDEV4YW1w\nbGUgUm9vdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAkhTT0KDhi2zDcxl9Hq\n9KZkUD6xKuMC5JTrgqDOm5mcWmKEKpdubh0wciqPEwVLMVNdJtLsUWYuVIHpNAJK\n1s+jUzBRMB0GA1UdDgQWBBSqsgkEEj3NnUChsjInUgnjQfsKejAfBgNVHSMEGDAW\ngBSqsgkEEj3NnUChsjInUgnjQfsKejAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49\nBAMCA0gAMEUCIQCOGwOOU1E4R8O+O36T5NWHgQVx58vt34TT171hvuynNQIgF6Xr\nlPQrbseJJaFdNFDil3m9zEC7nT+PxNYvqmIUSEQ=\n-----END CERTIFICATE-----\n";
    const OPENSSL_CA_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgy4UscdpalSM+dw/K\nsoIbP2P48QAxc4sFsy/pejSDtoqhRANCAAQJIU09Cg4Ytsw3MZfR6vSmZFA+sSrj\nAuSU64KgzpuZnFpihCqXbm4dMHIqjxMFSzFTXSbS7FFmLlSB6TQCStbP\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_ca_made_by_another_tool_issues_certificates_that_chain_to_it() {
        let ca = DevCa::from_pem(OPENSSL_CA, OPENSSL_CA_KEY).unwrap();
        let addr: SocketAddr = "10.0.0.1:7355".parse().unwrap();
        let (cert, key) = ca.node_pem(addr).unwrap();
        let creds =
            Credentials::from_pem(OPENSSL_CA.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(creds.roots().unwrap()),
            provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&creds.chain[0], &[], rustls::pki_types::UnixTime::now())
            .expect("chains to the openssl CA");
        assert_eq!(parse(&cert).1, "C=NO, O=Example AS, CN=Example Root");
        let (_, leaf) = x509_parser::parse_x509_certificate(creds.chain[0].as_ref()).unwrap();
        let aki = leaf
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref(),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            aki.0,
            [
                0xaa, 0xb2, 0x09, 0x04, 0x12, 0x3d, 0xcd, 0x9d, 0x40, 0xa1, 0xb2, 0x32, 0x27, 0x52,
                0x09, 0xe3, 0x41, 0xfb, 0x0a, 0x7a
            ]
        );
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
