//! `fjell demo` as a user runs it: the binary's output, in order, and its exit code.

use std::process::Command;

#[test]
fn the_demo_forms_a_cluster_resolves_a_crash_and_a_leave() {
    let out = Command::new(env!("CARGO_BIN_EXE_fjell"))
        .args(["demo", "--nodes", "5"])
        .output()
        .expect("fjell runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // Each expected line appears, after the previous one.
    let mut at = 0;
    for want in [
        "== all 5 nodes Up ==",
        "crashing node-5",
        "phi(node-5) =",
        "UnreachableMember  node-5",
        "keep-majority decided DownUnreachable",
        "MemberDowned       node-5",
        "MemberRemoved      node-5 (was Down)",
        "node-4 leaves gracefully",
        "MemberLeft         node-4",
        "MemberExited       node-4",
        "MemberRemoved      node-4 (was Exiting)",
        "node-4  terminated: Stopped(Left)",
        "== final members ==",
        "== done ==",
    ] {
        let found = lines[at..]
            .iter()
            .position(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no {want:?} after line {at}:\n{stdout}"));
        at += found + 1;
    }
    // The survivor's detector suspected the crashed node (sampled twice a second, so this may
    // print before or after the first UnreachableMember).
    assert!(
        lines
            .iter()
            .any(|l| l.contains("phi(node-5)") && l.contains("-> suspected")),
        "{stdout}"
    );
    // The final table lists the three remaining nodes, all Up.
    let table_start = lines
        .iter()
        .position(|l| l.contains("== final members =="))
        .unwrap();
    let table: Vec<&&str> = lines[table_start..]
        .iter()
        .take_while(|l| !l.contains("== shutting"))
        .filter(|l| l.contains("node-") && l.contains(" Up "))
        .collect();
    assert_eq!(table.len(), 3, "{stdout}");
    for gone in ["node-4", "node-5"] {
        assert!(!table.iter().any(|l| l.contains(gone)), "{stdout}");
    }
    // Nobody but the crashed node was ever unreachable.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("UnreachableMember") && !l.contains("node-5")),
        "{stdout}"
    );
}
