//! The management commands of the `fjell` binary (members, status, leader, unreachable,
//! join, leave, down, is-available) and `fjell certs`: formatting and exit codes, over
//! [`fjell_runtime::management`].

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjell_quic::tls::Fingerprint;
use fjell_quic::{Credentials, DevCa, PeerIdentity, TlsError};
use fjell_runtime::management::{Client, MemberInfo, Request, Response, Status};
use futures_lite::future;

use crate::Error;

/// Exit code: the node refused the command, or is not available.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: the node could not be reached, or refused the administrator.
pub const EXIT_UNREACHABLE: u8 = 3;

/// How long [`probe`] waits for a sign that nothing listens. An ICMP error comes back
/// within a round trip; 300 ms covers distant networks without delaying the answer, since
/// the probe runs alongside the handshake.
pub const PROBE_WAIT: Duration = Duration::from_millis(300);

/// Asks the node at `node` with the administrator credentials, and renders the answer.
/// Returns the text to print and the exit code.
///
/// The whole exchange (connection and answer) gets `timeout`. Alongside the QUIC handshake a
/// [`probe`] looks for an ICMP error, so that a port where nothing listens fails at once
/// (`fjell: nothing listens at ADDR (connection refused)`) instead of after `timeout`
/// (`fjell: no answer from ADDR within N s`); both exit with [`EXIT_UNREACHABLE`].
pub async fn call(
    credentials: &Credentials,
    node: SocketAddr,
    request: Request,
    json: bool,
    timeout: Duration,
) -> (String, u8) {
    let probed = async {
        match smol::unblock(move || probe(node, PROBE_WAIT)).await {
            Probe::NothingListens => (
                format!("fjell: nothing listens at {node} (connection refused)"),
                EXIT_UNREACHABLE,
            ),
            Probe::CannotReach(e) => (format!("fjell: cannot reach {node}: {e}"), EXIT_UNREACHABLE),
            // No verdict: the handshake or the timer decides.
            Probe::NoError => future::pending().await,
        }
    };
    let given_up = async {
        smol::Timer::after(timeout).await;
        (
            format!(
                "fjell: no answer from {node} within {} s",
                timeout.as_secs_f64()
            ),
            EXIT_UNREACHABLE,
        )
    };
    // The client's own timeouts are a little longer, so `given_up` speaks for a silent
    // node with one message whether the handshake or the request was waiting.
    let exchange = exchange(
        credentials,
        node,
        request,
        json,
        timeout + Duration::from_secs(1),
    );
    future::or(probed, future::or(exchange, given_up)).await
}

async fn exchange(
    credentials: &Credentials,
    node: SocketAddr,
    request: Request,
    json: bool,
    timeout: Duration,
) -> (String, u8) {
    let client = match Client::connect(credentials, node, timeout, fjell_runtime::Smol).await {
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

/// What [`probe`] learned about a node's UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The host answered with ICMP port unreachable: no process listens on that port.
    NothingListens,
    /// The network or host is unreachable (an ICMP error or a local routing error).
    CannotReach(String),
    /// No error within the wait: something may listen, or packets are dropped silently.
    NoError,
}

/// Sends one byte to `node` from a connected UDP socket and waits up to `wait` for the error
/// the host sends back when nothing listens.
///
/// A QUIC endpoint drops a 1-byte datagram without answering (it is shorter than any QUIC
/// packet), so a node that is up is not disturbed. The QUIC client's own socket is not
/// connected and so never sees ICMP errors (Linux reports them only to connected sockets),
/// which is why a refused port would otherwise look like a silent one until the timeout.
/// On Linux the error arrives as `ConnectionRefused` from `recv`; Windows reports it as
/// `ConnectionReset`.
pub fn probe(node: SocketAddr, wait: Duration) -> Probe {
    let local: SocketAddr = if node.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let verdict = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => Probe::NothingListens,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            Probe::CannotReach(e.to_string())
        }
        _ => Probe::NoError,
    };
    let socket = match UdpSocket::bind(local) {
        Ok(s) => s,
        Err(_) => return Probe::NoError,
    };
    if let Err(e) = socket.connect(node) {
        return verdict(e);
    }
    if socket
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .is_err()
    {
        return Probe::NoError;
    }
    if let Err(e) = socket.send(&[0]) {
        return verdict(e);
    }
    let mut buf = [0u8; 16];
    match socket.recv(&mut buf) {
        Ok(_) => Probe::NoError,
        Err(e) => verdict(e),
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
            up_number(m.up_number),
            if m.unreachable { "no" } else { "yes" },
            m.app_version,
            m.roles.join(",")
        ));
    }
    out
}

/// An up-number for people: `-` until the member is Up.
fn up_number(n: Option<u32>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn status_text(s: &Status) -> String {
    let mut out = format!(
        "node        {}\nstatus      {}{}\nleader      {}\nconverged   {}\nmembers     {} ({} unreachable)",
        s.node,
        s.node_status,
        s.self_member
            .as_ref()
            .map_or(String::new(), |m| format!(" ({}, up-number {})", m.status, up_number(m.up_number))),
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
