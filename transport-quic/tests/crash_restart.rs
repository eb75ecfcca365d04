//! A node that crashes (killed, no goodbye to its peers) and restarts on the same port with
//! the same credentials is reconnected long before QUIC's idle timeout: its new endpoint
//! answers the old connection's packets with a stateless reset (the reset key derives from
//! the node's private key), and its hello carries a new endpoint instance.
//!
//! The crashing node is a child process (this test binary, running `crash_child_process`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fjell_quic::{Credentials, DevCa, PeerIdentity, Transport, TransportConfig};

const DIR: &str = "FJELL_QUIC_CHILD_DIR";
const PEER: &str = "FJELL_QUIC_CHILD_PEER";

/// The child: a node that answers requests until it is killed. A no-op in a normal run.
#[test]
fn crash_child_process() {
    let (Ok(dir), Ok(peer)) = (std::env::var(DIR), std::env::var(PEER)) else {
        return;
    };
    let dir = Path::new(&dir);
    let creds = Credentials::from_pem_files(
        dir.join("ca.pem"),
        dir.join("node.pem"),
        dir.join("node.key"),
    )
    .unwrap();
    smol::block_on(async {
        let t = Transport::bind(
            TransportConfig::new(creds),
            std::sync::Arc::new(quinn::SmolRuntime),
        )
        .unwrap();
        t.set_members([peer.parse::<SocketAddr>().unwrap()]);
        println!("READY");
        while let Some(m) = t.recv().await {
            if m.is_request() {
                let n: u32 = m.decode().unwrap();
                let _ = t.respond(&m, &n).await;
            }
        }
    });
}

/// Kills the child node when dropped, so a failing test leaves no process behind.
struct ChildNode(Child);

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_child(dir: &Path, peer: SocketAddr) -> ChildNode {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_process", "--exact", "--nocapture"])
        .env(DIR, dir)
        .env(PEER, peer.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l == "READY")),
        "the child node did not start"
    );
    // Keep reading, so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    ChildNode(child)
}

#[test]
fn a_crashed_node_restarted_on_the_same_port_is_reconnected_before_the_idle_timeout() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let a = node_transport(&ca);
        let (socket, b) = free_socket();
        drop(socket);
        let dir = std::env::temp_dir().join(format!("fjell-quic-crash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = ca.node_pem(b).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.ca_pem()).unwrap();
        std::fs::write(dir.join("node.pem"), cert).unwrap();
        std::fs::write(dir.join("node.key"), key).unwrap();
        assert_eq!(
            Credentials::from_pem_files(
                dir.join("ca.pem"),
                dir.join("node.pem"),
                dir.join("node.key")
            )
            .unwrap()
            .identity(),
            &PeerIdentity::Node(b)
        );
        a.set_members([b]);

        let (d, me) = (dir.clone(), a.address());
        let first = smol::unblock(move || start_child(&d, me)).await;
        let one: u32 = a.request(b, &1u32, Duration::from_secs(10)).await.unwrap();
        assert_eq!(one, 1);
        assert!(a.is_connected(b));

        // Crash: SIGKILL, no CONNECTION_CLOSE. A still believes its connection is up.
        drop(first);
        let (d, me) = (dir.clone(), a.address());
        let second = smol::unblock(move || start_child(&d, me)).await;
        let restarted = Instant::now();
        let idle_timeout = TransportConfig::new(ca.node(b).unwrap()).idle_timeout;
        loop {
            match a
                .request::<_, u32>(b, &2u32, Duration::from_millis(300))
                .await
            {
                Ok(2) => break,
                // The first request may go to the dead connection and time out.
                other => assert!(
                    restarted.elapsed() < idle_timeout / 2,
                    "not reconnected after {:?}: {other:?}",
                    restarted.elapsed()
                ),
            }
        }
        eprintln!("reconnected {:?} after the restart", restarted.elapsed());
        drop(second);
        std::fs::remove_dir_all(&dir).unwrap();
        a.close().await;
    })
}
