//! The management commands of the `fjell` binary (members, status, leader, unreachable,
//! join, leave, down, is-available) and `fjell certs`: formatting and exit codes, over
//! [`fjell_runtime::management`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjell_quic::tls::Fingerprint;
use fjell_quic::{Credentials, DevCa, PeerIdentity, TlsError};
use fjell_runtime::management::{Client, MemberInfo, Request, Response, Status};

use crate::Error;

/// Exit code: the node refused the command, or is not available.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: the node could not be reached, or refused the administrator.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Asks the node at `node` with the administrator credentials, and renders the answer.
/// Returns the text to print and the exit code.
pub async fn call(
    credentials: &Credentials,
    node: SocketAddr,
    request: Request,
    json: bool,
    timeout: Duration,
) -> (String, u8) {
    let client = match Client::connect(credentials, node, timeout).await {
        Ok(c) => c,
        Err(e) => return (format!("fjell: {e}"), EXIT_UNREACHABLE),
    };
    let answer = client.call(&request).await;
    client.close().await;
    match answer {
        Ok(r) => render(&request, &r, json),
        Err(e) => (format!("fjell: {node}: {e}"), EXIT_UNREACHABLE),
    }
}

fn render(request: &Request, r: &Response, json: bool) -> (String, u8) {
    let code = match r {
        Response::Refused(_) | Response::BadRequest(_) | Response::Available(false) => EXIT_REFUSED,
        _ => 0,
    };
    if json {
        let text = match r {
            Response::Members(m) => serde_json::to_string_pretty(m),
            Response::Status(s) => serde_json::to_string_pretty(s),
            Response::Leader(l) => {
                serde_json::to_string_pretty(&serde_json::json!({ "leader": l }))
            }
            Response::Available(a) => {
                serde_json::to_string_pretty(&serde_json::json!({ "available": a }))
            }
            Response::Done => serde_json::to_string_pretty(&serde_json::json!({ "ok": true })),
            Response::Refused(e) | Response::BadRequest(e) => {
                serde_json::to_string_pretty(&serde_json::json!({ "ok": false, "error": e }))
            }
        };
        return (text.unwrap_or_default(), code);
    }
    let text = match r {
        Response::Members(m) if m.is_empty() && *request == Request::Unreachable => {
            "no unreachable members".to_string()
        }
        Response::Members(m) => members_table(m),
        Response::Status(s) => status_text(s),
        Response::Leader(Some(l)) => l.to_string(),
        Response::Leader(None) => "no leader".to_string(),
        Response::Available(true) => "available".to_string(),
        Response::Available(false) => "not available".to_string(),
        Response::Done => "ok".to_string(),
        Response::Refused(e) => format!("fjell: refused: {e}"),
        Response::BadRequest(e) => format!("fjell: the node could not read the request: {e}"),
    };
    (text, code)
}

fn members_table(members: &[MemberInfo]) -> String {
    let mut out = format!(
        "{:<22} {:<20} {:>9}  {:<11} {:<9} {}",
        "ADDRESS", "STATUS", "UP-NUMBER", "REACHABLE", "VERSION", "ROLES"
    );
    for m in members {
        out.push_str(&format!(
            "\n{:<22} {:<20} {:>9}  {:<11} {:<9} {}",
            m.address.to_string(),
            m.status,
            m.up_number,
            if m.unreachable { "no" } else { "yes" },
            m.app_version,
            m.roles.join(",")
        ));
    }
    out
}

fn status_text(s: &Status) -> String {
    let mut out = format!(
        "node        {}\nstatus      {}{}\nleader      {}\nconverged   {}\nmembers     {} ({} unreachable)",
        s.node,
        s.node_status,
        s.self_member
            .as_ref()
            .map_or(String::new(), |m| format!(" ({}, up-number {})", m.status, m.up_number)),
        s.leader.map_or("none".to_string(), |l| l.to_string()),
        if s.converged { "yes" } else { "no" },
        s.members,
        s.unreachable
    );
    out.push_str(&format!(
        "\n\nmonitored members:\n{:<22} {:>8} {:>15} {:>10}  {}",
        "ADDRESS", "PHI", "LAST HEARTBEAT", "RTT", "AVAILABLE"
    ));
    for m in &s.monitored {
        out.push_str(&format!(
            "\n{:<22} {:>8.2} {:>15} {:>10}  {}",
            m.address.to_string(),
            m.phi,
            m.last_heartbeat_ms
                .map_or("never".to_string(), |ms| format!("{ms} ms ago")),
            m.rtt_us.map_or("-".to_string(), |us| format!(
                "{:.1} ms",
                us as f64 / 1000.0
            )),
            if m.available { "yes" } else { "no" }
        ));
    }
    out
}

/// `fjell certs ca`: a new CA for the cluster `cluster` in `dir` (`ca.pem`, `ca.key`), valid
/// for `validity`. Refuses to overwrite.
pub fn certs_ca(dir: &Path, cluster: &str, validity: Duration) -> Result<String, Error> {
    std::fs::create_dir_all(dir)?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    for f in [&cert, &key] {
        if f.exists() {
            return Err(format!("{} exists; not overwriting a CA", f.display()).into());
        }
    }
    let ca = DevCa::for_cluster(cluster, validity).map_err(plain)?;
    std::fs::write(&cert, ca.ca_pem())?;
    write_private(&key, &ca.key_pem())?;
    Ok(format!(
        "wrote {} (give it to every node and tool) and {} (keep it off the nodes)\n{}",
        cert.display(),
        key.display(),
        describe(ca.ca_pem().as_bytes())?
    ))
}

/// `fjell certs node` / `fjell certs admin`: a certificate and key issued by the CA in
/// `ca_cert` and `ca_key` (what [`certs_ca`] wrote), valid for `validity` (never beyond the
/// CA), written as `<out>/<name>.pem` and `<out>/<name>.key`.
pub fn certs_issue(
    ca_cert: &Path,
    ca_key: &Path,
    out: &Path,
    name: &str,
    subject: Subject<'_>,
    validity: Duration,
) -> Result<String, Error> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (cert_pem, key_pem) = (read(ca_cert)?, read(ca_key)?);
    let ca = DevCa::from_pem(&cert_pem, &key_pem)
        .map_err(|e| {
            format!(
                "cannot issue with the CA in {} and {}: {}",
                ca_cert.display(),
                ca_key.display(),
                plain(e)
            )
        })?
        .with_leaf_validity(validity);
    let (identity, (cert, key)) = match subject {
        Subject::Node(addr) => (PeerIdentity::Node(addr), ca.node_pem(addr).map_err(plain)?),
        Subject::Admin(admin) => (
            PeerIdentity::Admin(admin.to_string()),
            ca.admin_pem(admin).map_err(plain)?,
        ),
    };
    std::fs::create_dir_all(out)?;
    let (cert_path, key_path) = (
        out.join(format!("{name}.pem")),
        out.join(format!("{name}.key")),
    );
    if cert_path.exists() {
        return Err(format!("{} exists; not overwriting it", cert_path.display()).into());
    }
    write_private(&key_path, &key)?;
    std::fs::write(&cert_path, &cert)?;
    Ok(format!(
        "wrote {} and {}\ncertifies    {identity}\n{}",
        cert_path.display(),
        key_path.display(),
        describe(cert.as_bytes())?
    ))
}

/// `fjell certs fingerprint`: one line per file, `sha256:<hex>  FILE`, the fingerprint of
/// the file's first certificate (the leaf of a chain), as `tls.deny` takes it.
pub fn certs_fingerprint(files: &[PathBuf]) -> Result<String, Error> {
    let mut out = Vec::new();
    for f in files {
        let pem = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let fp = Fingerprint::of_pem(&pem).map_err(|e| format!("{}: {e}", f.display()))?;
        out.push(format!("{fp}  {}", f.display()));
    }
    Ok(out.join("\n"))
}

/// Subject, issuer, validity and fingerprint of a PEM certificate, as `fjell certs` prints
/// them after writing one.
fn describe(pem: &[u8]) -> Result<String, Error> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| e.to_string())?;
    let cert = block.parse_x509().map_err(|e| e.to_string())?;
    let v = cert.validity();
    Ok(format!(
        "subject      {}\nissuer       {}\nvalid        {} to {}\nfingerprint  {}",
        cert.subject(),
        cert.issuer(),
        utc(&v.not_before),
        utc(&v.not_after),
        Fingerprint::of_pem(pem)?
    ))
}

/// `2026-12-01 22:46 UTC`.
fn utc(t: &x509_parser::time::ASN1Time) -> String {
    let t = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The reason alone: `DevCa` reports its refusals as [`TlsError::Generate`], whose prefix
/// ("generating development certificates failed") would mislead about a production CA.
fn plain(e: TlsError) -> String {
    match e {
        TlsError::Generate(reason) => reason,
        e => e.to_string(),
    }
}

/// Who a certificate is for.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The node advertising this address.
    Node(SocketAddr),
    /// An operator tool with this name.
    Admin(&'a str),
}

/// Writes a private key, readable by its owner only (on Unix) from the moment the file
/// exists; never over an existing file.
fn write_private(path: &Path, pem: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| format!("{}: {e} (not overwriting a key)", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}
