//! Every process and namespace of a run is gone afterwards: when a check fails, and when the
//! harness itself is killed (its nodes die with it; its namespaces are removed by the next
//! run). The node program is `sleep`, which never reports anything, so the wait fails. Needs
//! root and /dev/net/tun; says so and passes without checking anything when they are
//! missing.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use fjell_harness::net::{cleanup_stale, list_namespaces, PREFIX_ROOT};
use fjell_harness::runner::{self, Options};
use fjell_harness::scenario::Scenario;

/// A scenario whose nodes are `sleep SECS` (SECS tells this test's processes apart).
fn sleepers(secs: u32, wait: &str) -> Scenario {
    Scenario::parse(&format!(
        r#"
        nodes = 3
        program = ["sleep", "{secs}"]
        [[step]]
        start = "all"
        [[step]]
        {wait}
        "#
    ))
    .unwrap()
}

/// Processes whose command line is `sleep SECS`.
fn sleeping(secs: u32) -> usize {
    let want = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c == want.as_bytes())
        .count()
}

fn ours(pid: u32) -> Vec<String> {
    let prefix = format!("{PREFIX_ROOT}{pid}x");
    list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn a_failed_check_leaves_no_process_and_no_namespace() {
    if !common::can_run() {
        return;
    }
    let secs = 900_000 + std::process::id() % 10_000;
    let dir = std::env::temp_dir().join(format!("fjell-harness-cleanup-{}", std::process::id()));
    let o = runner::run(
        &sleepers(secs, "wait = \"converged\"\nwithin = \"1s\""),
        &Options {
            fjell: "/bin/false".into(),
            dir: dir.clone(),
            verbose: false,
            stop_after: None,
        },
    );
    let failure = o.failure.expect("the wait cannot hold");
    assert!(failure.contains("did not hold within 1s"), "{failure}");
    assert_eq!(sleeping(secs), 0, "node processes left behind");
    assert_eq!(ours(std::process::id()), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_killed_harness_takes_its_nodes_along() {
    if !common::can_run() {
        return;
    }
    let secs = 800_000 + std::process::id() % 10_000;
    let dir = std::env::temp_dir().join(format!("fjell-harness-killed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sleepers.toml");
    std::fs::write(
        &file,
        format!("nodes = 3\nprogram = [\"sleep\", \"{secs}\"]\n[[step]]\nstart = \"all\"\n[[step]]\nsleep = \"10m\"\n"),
    )
    .unwrap();
    let mut harness = Command::new(env!("CARGO_BIN_EXE_fjell-harness"))
        .args(["run", "--quiet", "--fjell", "/bin/false", "--out"])
        .arg(&dir)
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sleeping(secs) < 3 {
        assert!(Instant::now() < deadline, "the nodes never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = harness.id();
    harness.kill().unwrap();
    harness.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeping(secs) > 0 {
        assert!(Instant::now() < deadline, "nodes outlived the harness");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its namespaces outlive it; the next run removes them.
    assert_eq!(ours(pid).len(), 3, "{:?}", ours(pid));
    cleanup_stale(PREFIX_ROOT).unwrap();
    assert_eq!(ours(pid), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(dir);
}
