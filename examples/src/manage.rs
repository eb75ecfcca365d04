//! The management commands of the `fjell` binary (members, status, leader, unreachable,
//! join, leave, down, is-available) and `fjell certs`: formatting and exit codes, over
//! [`fjell_runtime::management`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use fjell_quic::{Credentials, DevCa};
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

/// `fjell certs ca`: a new cluster CA in `dir` (`ca.pem`, `ca.key`). Refuses to overwrite.
pub fn certs_ca(dir: &Path) -> Result<String, Error> {
    std::fs::create_dir_all(dir)?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    for f in [&cert, &key] {
        if f.exists() {
            return Err(format!("{} exists; not overwriting a CA", f.display()).into());
        }
    }
    let ca = DevCa::new()?;
    std::fs::write(&cert, ca.ca_pem())?;
    write_private(&key, &ca.key_pem())?;
    Ok(format!(
        "wrote {} (give it to every node and tool) and {} (keep it off the nodes)",
        cert.display(),
        key.display()
    ))
}

/// `fjell certs node` / `fjell certs admin`: a certificate and key issued by the CA whose key
/// is `ca_key`, written as `<out>/<name>.pem` and `<out>/<name>.key`.
pub fn certs_issue(
    ca_key: &Path,
    out: &Path,
    name: &str,
    subject: Subject<'_>,
) -> Result<String, Error> {
    let key_pem =
        std::fs::read_to_string(ca_key).map_err(|e| format!("{}: {e}", ca_key.display()))?;
    let ca = DevCa::from_key_pem(&key_pem)?;
    let (cert, key) = match subject {
        Subject::Node(addr) => ca.node_pem(addr)?,
        Subject::Admin(admin) => ca.admin_pem(admin)?,
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
    std::fs::write(&cert_path, cert)?;
    Ok(format!(
        "wrote {} and {}",
        cert_path.display(),
        key_path.display()
    ))
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
