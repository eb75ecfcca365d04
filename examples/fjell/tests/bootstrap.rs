//! `fjell run` with Cluster Bootstrap: five processes started at once, no seed nodes, the
//! contact points (their `management.http` addresses) in a discovery file. They form one
//! cluster of five, which each one's `/cluster/members` shows.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjell_quic::DevCa;

/// Kills the node when the test ends, passed or not.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GET on a new connection: the status code and the body; `None` if nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

#[test]
fn five_fjell_processes_started_at_once_bootstrap_one_cluster() {
    let dir = std::env::temp_dir().join(format!("fjell-bootstrap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::new().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.ca_pem()).unwrap();
    // Free ports, just released: a QUIC one and an HTTP one per node.
    let nodes: Vec<(SocketAddr, SocketAddr)> = (0..5)
        .map(|_| {
            let quic = UdpSocket::bind("127.0.0.1:0").unwrap();
            let http = TcpListener::bind("127.0.0.1:0").unwrap();
            (quic.local_addr().unwrap(), http.local_addr().unwrap())
        })
        .collect();
    let contacts: String = nodes.iter().map(|(_, h)| format!("{h}\n")).collect();
    std::fs::write(dir.join("contacts"), contacts).unwrap();
    let mut running = Vec::new();
    for (i, (addr, http)) in nodes.iter().enumerate() {
        let (cert, key) = ca.node_pem(*addr).unwrap();
        std::fs::write(dir.join(format!("node{i}.pem")), cert).unwrap();
        std::fs::write(dir.join(format!("node{i}.key")), key).unwrap();
        std::fs::write(
            dir.join(format!("node{i}.toml")),
            format!(
                "bind = \"{addr}\"\nleader-actions-interval = \"200ms\"\n\
                 [tls]\nca = \"ca.pem\"\ncert = \"node{i}.pem\"\nkey = \"node{i}.key\"\n\
                 [management]\nhttp = \"{http}\"\n\
                 [discovery]\nmethod = \"file\"\nfile = \"contacts\"\n\
                 [bootstrap]\nrequired-contact-point-nr = 5\nstable-margin = \"2s\"\n"
            ),
        )
        .unwrap();
    }
    // All five at once.
    for i in 0..5 {
        let log = std::fs::File::create(dir.join(format!("node{i}.log"))).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_fjell"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FJELL_")) {
            c.env_remove(k);
        }
        running.push(Node(
            c.current_dir(&dir)
                .args(["run", "--config", &format!("node{i}.toml")])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));
    }
    let logs = || {
        (0..5)
            .map(|i| std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut views = Vec::new();
    for (_, http) in &nodes {
        loop {
            assert!(Instant::now() < deadline, "no cluster of five:\n{}", logs());
            if let Some((200, body)) = http_get(*http, "/cluster/members") {
                let members: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
                if members.len() == 5 && members.iter().all(|m| m["status"] == "Up") {
                    let mut addrs: Vec<String> =
                        members.iter().map(|m| m["address"].to_string()).collect();
                    addrs.sort();
                    views.push(addrs);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]), "{views:?}");
    let founded = logs().matches("forming one").count();
    assert_eq!(founded, 1, "exactly one founder:\n{}", logs());
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
