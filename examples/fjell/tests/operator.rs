//! What an operator meets, through the `fjell` binary: certificates from `fjell certs` (named
//! CA, bounded validity, chaining to the CA on disk, fingerprints), a node run from them and
//! managed by host name with the management variables exported, and the messages for a
//! missing settings file, a name that does not resolve, a port where nothing listens and a
//! node that does not answer.

mod common;
use common::text;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fjell_quic::tls::Fingerprint;
use fjell_quic::{Credentials, DevCa, PeerIdentity};

/// `fjell` in `dir` with `env` and none of the caller's own `FJELL_` variables.
fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fjell"));
    c.current_dir(dir).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FJELL_")) {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c
}

fn fjell(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(dir, args, env).output().expect("fjell runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fjell-operator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback UDP port nothing listens on (just released by this process).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Administrator files (`ca.pem`, `admin.pem`, `admin.key`) from a throwaway CA.
fn write_admin(dir: &Path) {
    let ca = DevCa::new().unwrap();
    let (cert, key) = ca.admin_pem("ops").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.ca_pem()).unwrap();
    std::fs::write(dir.join("admin.pem"), cert).unwrap();
    std::fs::write(dir.join("admin.key"), key).unwrap();
}

/// Subject, issuer, not-before and not-after (Unix seconds) of a PEM certificate file.
fn certificate(path: &Path) -> (String, String, i64, i64) {
    let pem = std::fs::read(path).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = block.parse_x509().unwrap();
    (
        cert.subject().to_string(),
        cert.issuer().to_string(),
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

/// `t` is `expected`, give or take the time the test takes.
fn about(t: i64, expected: i64) -> bool {
    (t - expected).abs() <= 120
}

/// The `fingerprint  sha256:...` line of `fjell certs` output.
fn printed_fingerprint(out: &str) -> Fingerprint {
    out.lines()
        .find_map(|l| l.strip_prefix("fingerprint"))
        .expect("a fingerprint line")
        .trim()
        .parse()
        .unwrap()
}

/// A GET on a new connection: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

/// Kills the node when the test ends, passed or not.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn certificates_name_their_cluster_expire_and_chain_to_the_ca_on_disk() {
    let dir = scratch("certs");
    let out = fjell(&dir, &["certs", "ca", "--cluster", "prod"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let now = unix_now();
    let (subject, issuer, from, until) = certificate(&dir.join("ca.pem"));
    assert_eq!(subject, "CN=fjell cluster CA prod, O=fjell");
    assert_eq!(issuer, subject);
    assert!(about(from, now - 300), "{from} vs {now}");
    assert!(about(until, now + 3650 * DAY), "{until} vs {now}");
    let ca_fingerprint = printed_fingerprint(&stdout(&out));
    assert_eq!(
        ca_fingerprint,
        Fingerprint::of_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap()
    );
    // Never over an existing CA.
    let again = fjell(&dir, &["certs", "ca", "--cluster", "prod"], &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));

    let out = fjell(&dir, &["certs", "node", "--addr", "127.0.0.1:7355"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("certifies    fjell://127.0.0.1:7355\n"),
        "{}",
        text(&out)
    );
    let (subject, issuer, from, until) = certificate(&dir.join("node.pem"));
    assert_eq!(subject, "CN=fjell node 127.0.0.1:7355");
    assert_eq!(issuer, "CN=fjell cluster CA prod, O=fjell");
    assert!(about(from, now - 300), "{from} vs {now}");
    assert!(about(until, now + 365 * DAY), "{until} vs {now}");
    let node = Credentials::from_pem_files(
        dir.join("ca.pem"),
        dir.join("node.pem"),
        dir.join("node.key"),
    )
    .expect("the node's files load against ca.pem");
    assert_eq!(
        node.identity(),
        &PeerIdentity::Node("127.0.0.1:7355".parse().unwrap())
    );
    let node_fingerprint = printed_fingerprint(&stdout(&out));

    let out = fjell(
        &dir,
        &[
            "certs", "admin", "--admin", "ops", "--name", "ops", "--days", "30",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (_, _, _, until) = certificate(&dir.join("ops.pem"));
    assert!(about(until, now + 30 * DAY), "{until} vs {now}");

    // The fingerprints printed at issue time are the ones `certs fingerprint` gives.
    let out = fjell(&dir, &["certs", "fingerprint", "node.pem", "ca.pem"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        format!("{node_fingerprint}  node.pem\n{ca_fingerprint}  ca.pem\n")
    );
    let out = fjell(&dir, &["certs", "fingerprint", "node.key"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Issuing needs the key of the CA certificate on disk.
    let other = dir.join("other");
    let out = fjell(
        &dir,
        &["certs", "ca", "--cluster", "other", "--out", "other"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = fjell(
        &dir,
        &[
            "certs",
            "node",
            "--addr",
            "127.0.0.1:7356",
            "--ca-key",
            "other/ca.key",
            "--name",
            "mixed",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        stderr(&out),
        "fjell certs: cannot issue with the CA in ca.pem and other/ca.key: \
         the key is not the CA certificate's key\n"
    );
    assert!(!dir.join("mixed.pem").exists() && other.join("ca.pem").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_runs_from_fjell_certs_files_and_is_managed_by_host_name() {
    let dir = scratch("run");
    let port = free_port();
    let name = format!("localhost:{port}");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for args in [
        &["certs", "ca", "--cluster", "test"][..],
        &["certs", "node", "--addr", &name],
        &["certs", "admin", "--admin", "ops", "--name", "ops"],
    ] {
        let out = fjell(&dir, args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        if args[1] == "node" {
            assert!(
                stdout(&out)
                    .starts_with(&format!("{name} resolves to {addr}; certifying {addr}\n")),
                "{}",
                text(&out)
            );
        }
    }
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "advertised-address = \"{name}\"\nseed-nodes = [\"{name}\"]\n\
             leader-actions-interval = \"200ms\"\nlog-json = true\nlog-info-verbose = true\n\
             [tls]\nca = \"ca.pem\"\ncert = \"node.pem\"\nkey = \"node.key\"\n\
             [management]\nhttp = \"{http}\"\n"
        ),
    )
    .unwrap();
    // What the README suggests for the management commands, exported in the node's shell.
    let env = [
        ("FJELL_NODE", name.as_str()),
        ("FJELL_ADMIN_CA", "ca.pem"),
        ("FJELL_ADMIN_CERT", "ops.pem"),
        ("FJELL_ADMIN_KEY", "ops.key"),
    ];
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let mut node = Node(
        command(&dir, &["run", "--config", "node.toml"], &env)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            panic!(
                "fjell run ended ({status}):\n{}",
                std::fs::read_to_string(dir.join("node.log")).unwrap()
            );
        }
        let out = fjell(&dir, &["is-available", "--timeout", "2"], &env);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "never available: {}", text(&out));
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = fjell(&dir, &["members"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with(&addr.to_string()) && l.contains(" Up ")),
        "{}",
        text(&out)
    );
    // The HTTP endpoints of `management.http`: what a probe and a scraper see.
    assert_eq!(http_get(http, "/alive"), (200, "alive\n".to_string()));
    assert_eq!(http_get(http, "/ready"), (200, "ready\n".to_string()));
    let out = fjell(&dir, &["members", "--json"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let (status, members) = http_get(http, "/cluster/members");
    assert_eq!(status, 200);
    assert_eq!(
        members,
        stdout(&out).trim_end(),
        "the same JSON as fjell members --json"
    );
    let (status, metrics) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fjell_members{status=\"up\"} 1\n"),
        "{metrics}"
    );
    // `log-json`: every line is a JSON object; `log-info-verbose`: the state changes at info.
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
    let messages: Vec<String> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for want in [
        "fjell: member is Up",
        "fjell: cluster state changed",
        "fjell: HTTP endpoints on",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(want)),
            "no {want:?} in\n{log}"
        );
    }
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settings_errors_name_the_file_the_key_and_the_variable() {
    let dir = scratch("settings");
    let out = fjell(&dir, &["run", "--config", "node.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        stderr(&out),
        "fjell run: cannot read the settings file node.toml: No such file or directory (os error 2)\n"
    );

    std::fs::write(
        dir.join("seeds.toml"),
        "seed-nodes = [\"nohost.invalid:7355\"]\n",
    )
    .unwrap();
    let out = fjell(&dir, &["run", "--config", "seeds.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).starts_with(
            "fjell run: seeds.toml: invalid setting `seed-nodes`: \
             cannot resolve `nohost.invalid:7355`: "
        ),
        "{}",
        text(&out)
    );

    std::fs::write(dir.join("http.toml"), "[management]\nhttp = 8558\n").unwrap();
    let out = fjell(&dir, &["run", "--config", "http.toml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).starts_with("fjell run: http.toml: invalid setting `management.http`: "),
        "{}",
        text(&out)
    );

    // The management variables are not settings; any other unknown FJELL_ variable is
    // still a typo to report.
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    let out = fjell(
        &dir,
        &["run", "--config", "empty.toml"],
        &[
            ("FJELL_NODE", "10.0.0.1:7355"),
            ("FJELL_ADMIN_CA", "ca.pem"),
            ("FJELL_ADMIN_CERT", "admin.pem"),
            ("FJELL_ADMIN_KEY", "admin.key"),
            ("FJELL_GOSSIP_INTERVALL", "1s"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        stderr(&out),
        "fjell run: empty.toml: invalid setting `gossip-intervall (from FJELL_GOSSIP_INTERVALL)`: \
         unknown key\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_port_where_nothing_listens_fails_at_once() {
    let dir = scratch("refused");
    write_admin(&dir);
    let node = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = fjell(&dir, &["members", "--node", &node, "--timeout", "10"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        stderr(&out),
        format!("fjell: nothing listens at {node} (connection refused)\n")
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_port_that_never_answers_times_out() {
    let dir = scratch("silent");
    write_admin(&dir);
    // Bound, so no ICMP error comes back, and never read.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let node = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = fjell(&dir, &["status", "--node", &node, "--timeout", "1"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        stderr(&out),
        format!("fjell: no answer from {node} within 1 s\n")
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    let out = fjell(&dir, &["status", "--node", "nohost.invalid:7355"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stderr(&out).starts_with("fjell: cannot resolve `nohost.invalid:7355`: "),
        "{}",
        text(&out)
    );
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
}
