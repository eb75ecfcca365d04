//! The management commands against a running 3-node cluster over QUIC, through the `fjell`
//! binary: members, status, leader, is-available, down (which removes the node), and
//! refusals of a missing certificate, one from another CA, and a node's certificate.

mod common;
use common::text;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use fjell_examples::local::Loopback;
use fjell_quic::DevCa;
use fjell_runtime::{ClusterState, MemberStatus, StopReason, Termination};

fn fjell(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjell"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("fjell runs")
}

fn write_admin(dir: &Path, ca: &DevCa, cluster_ca: &DevCa) {
    let (cert, key) = ca.admin_pem("ops").unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), cluster_ca.ca_pem()).unwrap();
    std::fs::write(dir.join("admin.pem"), cert).unwrap();
    std::fs::write(dir.join("admin.key"), key).unwrap();
}

#[test]
fn management_commands_against_a_three_node_cluster() {
    let dir = std::env::temp_dir().join(format!("fjell-management-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    smol::block_on(async {
        let mut lo = Loopback::new(3).unwrap();
        write_admin(&dir, lo.ca(), lo.ca());
        let nodes: Vec<_> = (0..3).map(|i| lo.start(i).unwrap()).collect();
        let all_up = |s: &ClusterState| {
            s.converged
                && s.members.len() == 3
                && s.members.iter().all(|m| m.status == MemberStatus::Up)
        };
        for c in &nodes {
            c.within(Duration::from_secs(30), c.wait_for(all_up))
                .await
                .flatten()
                .expect("formed");
        }
        // A node re-derives whom it monitors once per heartbeat interval, so a cluster that
        // formed in a fraction of a second is all Up before node 1 heartbeats both peers.
        let monitors_both = async {
            while nodes[1].monitored().await.len() < 2 {
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        };
        nodes[1]
            .within(Duration::from_secs(5), monitors_both)
            .await
            .expect("node 1 monitors both peers within a few heartbeat intervals");
        let a: Vec<String> = lo.addrs.iter().map(|a| a.to_string()).collect();
        let n0 = a[0].as_str();

        let out = fjell(&dir, &["members", "--node", n0]);
        assert!(out.status.success(), "{}", text(&out));
        let table = String::from_utf8_lossy(&out.stdout);
        for addr in &a {
            assert!(
                table
                    .lines()
                    .any(|l| l.contains(addr.as_str()) && l.contains(" Up ")),
                "{}",
                text(&out)
            );
        }

        let out = fjell(&dir, &["status", "--node", &a[1], "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["node"], a[1].as_str());
        assert_eq!(status["converged"], true);
        assert_eq!(status["members"], 3);
        let monitored = status["monitored"].as_array().unwrap();
        assert_eq!(monitored.len(), 2, "{status}");
        assert!(monitored
            .iter()
            .all(|m| m["available"] == true && m["phi"].is_number()));
        assert_eq!(status["detector"]["threshold"], 8.0);

        // fd-chart for what node 1 observes: a curve per monitored member once each has
        // answered a few heartbeats (the detector's window starts with two samples).
        let out = fjell(
            &dir,
            &["fd-chart", "--node", &a[1], "--out", "observed.svg"],
        );
        assert!(out.status.success(), "{}", text(&out));
        let report = String::from_utf8_lossy(&out.stdout);
        for peer in [&a[0], &a[2]] {
            let line = report
                .lines()
                .find(|l| l.starts_with(peer.as_str()))
                .unwrap_or_else(|| panic!("no curve for {peer}:\n{report}"));
            // The window's mean: the detector's two starting samples (0.75 s and 1.25 s) and
            // the heartbeats since, about a second apart; this checks the numbers reach the
            // chart, not that they moved.
            let mean: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!((500.0..2000.0).contains(&mean), "{line}");
        }
        let svg = std::fs::read_to_string(dir.join("observed.svg")).unwrap();
        assert!(svg.starts_with("<svg width=\"900\" height=\"560\""));

        let out = fjell(&dir, &["leader", "--node", &a[2], "--json"]);
        let leader: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected = nodes[2].leader().unwrap().socket_addr().to_string();
        assert_eq!(leader["leader"], expected.as_str());

        let out = fjell(&dir, &["is-available", "--node", n0]);
        assert!(out.status.success(), "{}", text(&out));

        // Down through the CLI: the node stops, the others remove it.
        let out = fjell(&dir, &["down", &a[2], "--node", n0]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            nodes[2]
                .within(Duration::from_secs(30), nodes[2].terminated())
                .await,
            Some(Termination::Stopped(StopReason::Downed))
        );
        for c in &nodes[..2] {
            c.within(
                Duration::from_secs(30),
                c.wait_for(|s| s.members.len() == 2 && s.converged),
            )
            .await
            .flatten()
            .expect("the downed node removed");
        }
        let out = fjell(&dir, &["members", "--node", n0, "--json"]);
        let members: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(members.as_array().unwrap().len(), 2, "{}", text(&out));

        // Refused commands exit 1 with the reason.
        let out = fjell(&dir, &["down", "127.0.0.1:9", "--node", n0]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("no member at 127.0.0.1:9"));

        // An administrator certificate from another CA is refused by the node.
        let other = dir.join("other");
        write_admin(&other, &DevCa::new().unwrap(), lo.ca());
        let out = fjell(&other, &["members", "--node", n0]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(out.stdout.is_empty());

        // No certificate at all.
        let out = fjell(&dir, &["members", "--node", n0, "--cert", "missing.pem"]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));

        // A node's certificate is not an administrator's.
        let (cert, key) = lo.ca().node_pem(lo.addrs[2]).unwrap();
        std::fs::write(dir.join("node.pem"), cert).unwrap();
        std::fs::write(dir.join("node.key"), key).unwrap();
        let out = fjell(
            &dir,
            &[
                "members", "--node", n0, "--cert", "node.pem", "--key", "node.key",
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));

        for c in &nodes[..2] {
            c.shutdown().await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
