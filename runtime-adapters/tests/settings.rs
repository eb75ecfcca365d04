//! Settings files and environment overrides: what they set, and errors that name the key.

mod common;

use std::time::Duration;

use fjell_core::{DetectorKind, Downing, Strategy, WhenUnstable};
use fjell_runtime::{Settings, SettingsError};

fn err(text: &str) -> SettingsError {
    Settings::from_toml(text).expect_err(text)
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FILE: &str = r#"
advertised-address = "10.0.0.1:7355"
bind = "0.0.0.0:7355"
seed-nodes = ["10.0.0.1:7355", "10.0.0.2:7355"]
roles = ["backend", "eu"]
app-version = "1.4.0"
cluster-name = "shop"
gossip-interval = "500ms"
retry-unsuccessful-join-after = "off"
downing = "static-quorum"
log-info = false
shutdown-timeout = "1m"

[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"

[failure-detector]
implementation = "deadline"
threshold = 10
acceptable-heartbeat-pause = "5s"

[split-brain-resolver]
stable-after = "20s"
down-all-when-unstable = "off"
static-quorum.quorum-size = 3
static-quorum.role = "backend"

[compat]
schema = "v3"

[configuration-compatibility-check]
enforce-on-join = "off"

[role-min-nr-of-members]
backend = 2
"#;

#[test]
fn a_full_file_sets_every_kind_of_key() {
    let s = Settings::from_toml(FILE).unwrap();
    assert_eq!(s.advertised_address, Some("10.0.0.1:7355".parse().unwrap()));
    assert_eq!(s.bind, Some("0.0.0.0:7355".parse().unwrap()));
    assert_eq!(s.seed_nodes.len(), 2);
    assert!(!s.log_info);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(s.tls.as_ref().unwrap().key.to_str(), Some("node.key"));
    let c = &s.config;
    assert!(c.roles.contains("backend") && c.roles.contains("eu"));
    assert_eq!(c.app_version.to_string(), "1.4.0");
    assert_eq!(c.cluster_name.as_str(), "shop");
    assert_eq!(c.gossip_interval, Duration::from_millis(500));
    assert_eq!(c.retry_unsuccessful_join_after, None);
    assert_eq!(c.failure_detector.kind, DetectorKind::Deadline);
    assert_eq!(c.failure_detector.threshold, 10.0);
    assert_eq!(
        c.failure_detector.acceptable_heartbeat_pause,
        Duration::from_secs(5)
    );
    assert_eq!(c.downing.stable_after, Some(Duration::from_secs(20)));
    assert_eq!(c.downing.down_all_when_unstable, WhenUnstable::Off);
    match c.downing.downing {
        Downing::SplitBrainResolver(Strategy::StaticQuorum { size, role }) => {
            assert_eq!(size, 3);
            assert_eq!(role.unwrap().as_str(), "backend");
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(c.compat_settings[0].0.as_str(), "schema");
    assert!(!c.enforce_on_join);
    assert_eq!(c.role_min_nr_of_members[0].1, 2);
    // Defaults stay where the file says nothing.
    assert_eq!(c.leader_actions_interval, Duration::from_secs(1));
    assert_eq!(Settings::from_toml("").unwrap(), Settings::default());
}

#[test]
fn errors_name_the_key() {
    let e = err("gossip-intervall = \"1s\"");
    assert_eq!(e.key, "gossip-intervall");
    assert!(e.to_string().contains("unknown key"), "{e}");
    assert_eq!(
        err("[failure-detector]\nthreshhold = 3").key,
        "failure-detector.threshhold"
    );
    assert_eq!(err("gossip-interval = \"5x\"").key, "gossip-interval");
    assert_eq!(err("gossip-interval = 5").key, "gossip-interval");
    assert_eq!(err("seed-nodes = [\"nowhere\"]").key, "seed-nodes");
    assert_eq!(err("roles = [\"a\", \"b\", \"c\", \"d\"]").key, "roles");
    assert_eq!(err("downing = \"keep-everyone\"").key, "downing");
    assert_eq!(
        err("configuration-compatibility-check.enforce-on-join = 0").key,
        "configuration-compatibility-check.enforce-on-join"
    );
    assert_eq!(
        err("downing = \"static-quorum\"").key,
        "split-brain-resolver.static-quorum.quorum-size"
    );
    assert_eq!(
        err("downing = \"keep-majority\"\nauto-down-unreachable-after = \"5s\"").key,
        "auto-down-unreachable-after"
    );
    // The core's own validation, with the core's key names.
    assert_eq!(err("min-nr-of-members = 0").key, "min-nr-of-members");
    assert_eq!(
        err("[failure-detector]\nthreshold = -1").key,
        "failure-detector.threshold"
    );
    assert_eq!(err("gossip-interval = \"0s\"").key, "gossip-interval");
    assert_eq!(
        err("[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"").key,
        "tls.key"
    );
    let e = err("gossip-interval = ");
    assert_eq!(e.key, "(syntax)");
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn environment_overrides_the_file() {
    let s = Settings::load(
        FILE,
        env(&[
            ("FJELL_GOSSIP_INTERVAL", "2s"),
            ("FJELL_FAILURE_DETECTOR__THRESHOLD", "12"),
            ("FJELL_SEED_NODES", "10.0.0.9:1, 10.0.0.8:2"),
            ("FJELL_DOWNING", "keep-oldest"),
            ("FJELL_LOG_INFO", "true"),
            (
                "FJELL_SPLIT_BRAIN_RESOLVER__KEEP_OLDEST__DOWN_IF_ALONE",
                "false",
            ),
            ("PATH", "/usr/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(s.config.gossip_interval, Duration::from_secs(2));
    assert_eq!(s.config.failure_detector.threshold, 12.0);
    assert_eq!(
        s.seed_nodes,
        ["10.0.0.9:1".parse().unwrap(), "10.0.0.8:2".parse().unwrap()]
    );
    assert!(s.log_info);
    assert_eq!(
        s.config.downing.downing,
        Downing::SplitBrainResolver(Strategy::KeepOldest {
            down_if_alone: false,
            role: None
        })
    );

    let e = Settings::load("", env(&[("FJELL_GOSSIP_INTERVALL", "2s")])).unwrap_err();
    assert!(e.key.contains("gossip-intervall") && e.key.contains("FJELL_GOSSIP_INTERVALL"));
    let e = Settings::load("", env(&[("FJELL_GOSSIP_INTERVAL", "soon")])).unwrap_err();
    assert!(e.to_string().contains("FJELL_GOSSIP_INTERVAL"), "{e}");
}

#[cfg(feature = "smol")]
#[test]
fn a_node_starts_from_a_settings_file_with_pem_files() {
    use fjell_runtime::{ClusterBuilder, Smol, StartError};

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let ca = fjell_quic::DevCa::new().unwrap();
    let (cert, key) = ca.node_pem(addr).unwrap();
    let dir = std::env::temp_dir().join(format!("fjell-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.ca_pem()).unwrap();
    std::fs::write(dir.join("node.pem"), cert).unwrap();
    std::fs::write(dir.join("node.key"), key).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        format!(
            "advertised-address = \"{addr}\"\nseed-nodes = [\"{addr}\"]\n\
             leader-actions-interval = \"200ms\"\n\
             event-log = \"{0}/events.jsonl\"\n\
             [tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/node.pem\"\nkey = \"{0}/node.key\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let settings = Settings::from_file(&file).unwrap();

    // The advertised address must be the certified one.
    let other = "127.0.0.1:1".parse().unwrap();
    let mismatch = settings
        .clone()
        .builder()
        .advertised_address(other)
        .build(Smol);
    assert!(matches!(mismatch, Err(StartError::AddressMismatch { .. })));
    // Lease-majority needs a lease.
    let no_lease = ClusterBuilder::new()
        .downing(Downing::SplitBrainResolver(Strategy::LeaseMajority {
            role: None,
        }))
        .credentials(ca.node(other).unwrap())
        .build(Smol);
    assert!(matches!(no_lease, Err(StartError::NoLease)));
    // An event log that cannot be opened fails the start, naming the file.
    let unwritable = settings
        .clone()
        .builder()
        .event_log(dir.join("no-such-dir/events.jsonl"))
        .build(Smol);
    match unwritable {
        Err(e @ StartError::EventLog { .. }) => {
            assert!(e.to_string().contains("no-such-dir/events.jsonl"), "{e}")
        }
        other => panic!("expected an event log error, got {:?}", other.err()),
    }

    smol::block_on(async {
        let cluster = settings.builder().socket(socket).start().unwrap();
        common::comes_up_and_leaves(&cluster).await;
    });
    // The event log holds what the node reported, one JSON record a line, in order.
    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let records: Vec<fjell_runtime::event_log::EventRecord> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
    let me = addr.to_string();
    let up = records
        .iter()
        .position(|r| r.event == "MemberUp" && r.member_address() == Some(me.as_str()));
    let leader = records
        .iter()
        .position(|r| r.event == "LeaderChanged" && r.leader_address() == Some(me.as_str()));
    assert!(up.is_some() && leader.is_some(), "{names:?}");
    assert_eq!(names.last(), Some(&"Stopped"), "{names:?}");
    assert!(records.iter().all(|r| r.node_address() == me), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
