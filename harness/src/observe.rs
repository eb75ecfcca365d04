//! What the harness knows of each node, from what the node itself reports: its event log
//! (tailed as it grows) replayed into the node's view of the cluster, and its answers to
//! management commands (`fjell members --json`, `fjell status --json`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use fjell_runtime::event_log::EventRecord;
use serde::de::DeserializeOwned;

/// Reads the lines appended to a file since the last read; a line still being written
/// waits for its end. The file stays open between reads (its position is where the last
/// read ended); it is opened once it exists.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
}

impl Tail {
    /// Tails `path` from its start (the file may not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Tail {
        Tail {
            path: path.into(),
            file: None,
            partial: Vec::new(),
        }
    }

    /// The whole lines appended since the last call, parsed; a line that does not parse is
    /// returned as an error with its text.
    pub fn read<T: DeserializeOwned>(&mut self) -> Vec<Result<T, String>> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(f) = &mut self.file else {
            return Vec::new();
        };
        // A failed read keeps what it read; the rest comes with the next one.
        let _ = f.read_to_end(&mut self.partial);
        let mut out = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            out.push(serde_json::from_str(&text).map_err(|e| format!("{e}: {text}")));
        }
        out
    }
}

/// A member as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `IP:PORT#UID`.
    pub incarnation: String,
    /// Its status (`Up`, `Leaving`, `Down`, ...).
    pub status: String,
}

/// One incarnation's view of the cluster, replayed from its event log.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The reporting incarnation, `IP:PORT#UID`.
    pub incarnation: String,
    /// Members by `IP:PORT`.
    pub members: BTreeMap<String, Seen>,
    /// Incarnations flagged unreachable.
    pub unreachable: BTreeSet<String>,
    /// The leader's incarnation.
    pub leader: Option<String>,
    /// Incarnations this node saw downed (`MemberDowned`, or removed while Down).
    pub downed: BTreeSet<String>,
    /// The node reported `Stopped`.
    pub stopped: bool,
    /// The node reported `SelfDowned`.
    pub self_downed: bool,
}

impl View {
    /// Applies one record of this incarnation.
    pub fn apply(&mut self, r: &EventRecord) {
        let member = r.member.clone();
        match r.event.as_str() {
            "MemberRemoved" if member.as_deref() == Some(self.incarnation.as_str()) => {
                // This node saw itself removed and joins again as the same incarnation: its
                // events start over, so does its view (what it downed stays known).
                self.members.clear();
                self.unreachable.clear();
                self.leader = None;
            }
            "MemberRemoved" => {
                if let (Some(m), Some(addr)) = (&member, r.member_address()) {
                    if r.previous_status.as_deref() == Some("Down") {
                        self.downed.insert(m.clone());
                    }
                    if self.members.get(addr).is_some_and(|s| &s.incarnation == m) {
                        self.members.remove(addr);
                    }
                    self.unreachable.remove(m);
                }
            }
            "UnreachableMember" => {
                if let Some(m) = member {
                    self.unreachable.insert(m);
                }
            }
            "ReachableMember" => {
                if let Some(m) = member {
                    self.unreachable.remove(&m);
                }
            }
            "LeaderChanged" => self.leader = r.leader.clone(),
            "SelfDowned" => self.self_downed = true,
            "Stopped" => self.stopped = true,
            _ => {
                if let (Some(m), Some(addr), Some(status)) =
                    (&member, r.member_address(), &r.status)
                {
                    if status == "Down" {
                        self.downed.insert(m.clone());
                    }
                    // A new incarnation on the same address replaces the old one's entry.
                    self.members.insert(
                        addr.to_string(),
                        Seen {
                            incarnation: m.clone(),
                            status: status.clone(),
                        },
                    );
                }
            }
        }
    }

    /// This node's own status as it sees it.
    pub fn own_status(&self) -> Option<&str> {
        let addr = self.incarnation.split('#').next()?;
        self.members
            .get(addr)
            .filter(|s| s.incarnation == self.incarnation)
            .map(|s| s.status.as_str())
    }

    /// Up and taking part: it sees itself Up, and has neither stopped nor been downed.
    pub fn serving(&self) -> bool {
        self.own_status() == Some("Up") && !self.stopped && !self.self_downed
    }

    /// Whether it sees `incarnation` as a member that is not Down.
    pub fn sees_member(&self, incarnation: &str) -> bool {
        let addr = incarnation.split('#').next().unwrap_or_default();
        self.members
            .get(addr)
            .is_some_and(|s| s.incarnation == incarnation && s.status != "Down")
    }
}

/// A node's event log: every record so far, and the view of its latest incarnation.
#[derive(Debug)]
pub struct EventLog {
    tail: Tail,
    /// Every record, in order.
    pub records: Vec<EventRecord>,
    /// Lines that were not records (reported by the checks).
    pub garbage: Vec<String>,
    /// The latest incarnation's view.
    pub view: View,
    /// How many records there were when the node was last started: records after this
    /// belong to the current process.
    pub start_mark: usize,
}

impl EventLog {
    /// The event log in `path`.
    pub fn new(path: impl Into<PathBuf>) -> EventLog {
        EventLog {
            tail: Tail::new(path),
            records: Vec::new(),
            garbage: Vec::new(),
            view: View::default(),
            start_mark: 0,
        }
    }

    /// Reads what was appended; returns the new records.
    pub fn poll(&mut self) -> &[EventRecord] {
        let from = self.records.len();
        for r in self.tail.read::<EventRecord>() {
            match r {
                Ok(r) => {
                    if r.node != self.view.incarnation {
                        self.view = View {
                            incarnation: r.node.clone(),
                            ..View::default()
                        };
                    }
                    self.view.apply(&r);
                    self.records.push(r);
                }
                Err(e) => self.garbage.push(e),
            }
        }
        &self.records[from..]
    }

    /// The current process's view, once it has reported anything.
    pub fn current(&self) -> Option<&View> {
        (self.records.len() > self.start_mark).then_some(&self.view)
    }

    /// Marks a new start of the node's process. A line the last process left half written
    /// (killed mid-write) is dropped, so it is not glued to the new process's first line.
    pub fn mark_start(&mut self) {
        self.poll();
        self.tail.partial.clear();
        self.start_mark = self.records.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: &str, event: &str, member: Option<&str>, status: Option<&str>) -> EventRecord {
        EventRecord {
            unix_ms: 0,
            node: node.into(),
            event: event.into(),
            member: member.map(Into::into),
            status: status.map(Into::into),
            previous_status: None,
            leader: None,
            role: None,
            peer: None,
            detail: None,
        }
    }

    fn view(records: &[EventRecord]) -> View {
        let mut v = View {
            incarnation: records[0].node.clone(),
            ..View::default()
        };
        records.iter().for_each(|r| v.apply(r));
        v
    }

    const ME: &str = "10.201.0.1:7355#01";
    const B1: &str = "10.201.0.2:7355#02";
    const B2: &str = "10.201.0.2:7355#03";

    #[test]
    fn a_new_incarnation_replaces_the_old_one_and_the_old_ones_removal_keeps_it() {
        let mut removed = record(ME, "MemberRemoved", Some(B1), Some("Removed"));
        removed.previous_status = Some("Down".into());
        let v = view(&[
            record(ME, "MemberUp", Some(ME), Some("Up")),
            record(ME, "MemberUp", Some(B1), Some("Up")),
            record(ME, "MemberDowned", Some(B1), Some("Down")),
            record(ME, "MemberJoined", Some(B2), Some("Joining")),
            removed,
            record(ME, "MemberUp", Some(B2), Some("Up")),
        ]);
        assert!(v.serving());
        assert!(v.sees_member(B2) && !v.sees_member(B1));
        assert!(v.downed.contains(B1) && !v.downed.contains(B2));
        assert_eq!(v.members.len(), 2);
    }

    /// Two members Up, B1 the leader and unreachable.
    fn b1_leads_and_is_unreachable() -> Vec<EventRecord> {
        let mut leader = record(ME, "LeaderChanged", None, None);
        leader.leader = Some(B1.into());
        vec![
            record(ME, "MemberUp", Some(ME), Some("Up")),
            record(ME, "MemberUp", Some(B1), Some("Up")),
            leader,
            record(ME, "UnreachableMember", Some(B1), Some("Up")),
        ]
    }

    #[test]
    fn unreachable_and_leader_follow_the_events() {
        let v = view(&b1_leads_and_is_unreachable());
        assert!(v.unreachable.contains(B1));
        assert_eq!(v.leader.as_deref(), Some(B1));
        let mut v = v;
        v.apply(&record(ME, "ReachableMember", Some(B1), Some("Up")));
        assert!(v.unreachable.is_empty());
        v.apply(&record(ME, "SelfDowned", None, None));
        assert!(!v.serving());
    }

    #[test]
    fn a_node_removed_and_joining_again_starts_its_view_over() {
        let mut records = b1_leads_and_is_unreachable();
        records.push(record(ME, "MemberRemoved", Some(ME), Some("Removed")));
        records.push(record(ME, "MemberJoined", Some(ME), Some("Joining")));
        let v = view(&records);
        assert_eq!(v.members.len(), 1);
        assert!(v.unreachable.is_empty() && v.leader.is_none());
        assert!(!v.serving());
    }

    #[test]
    fn the_tail_waits_for_whole_lines_and_drops_a_torn_one_at_a_restart() {
        let dir = std::env::temp_dir().join(format!("fjell-harness-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let line = serde_json::to_string(&record(ME, "MemberUp", Some(ME), Some("Up"))).unwrap();
        std::fs::write(&path, format!("{line}\n{}", &line[..10])).unwrap();
        let mut log = EventLog::new(&path);
        assert_eq!(log.poll().len(), 1);
        // The process died mid-line; a new one appends whole lines.
        log.mark_start();
        let mut f = std::fs::File::options().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
        assert_eq!(log.poll().len(), 1);
        assert!(log.garbage.is_empty(), "{:?}", log.garbage);
        let _ = std::fs::remove_dir_all(dir);
    }
}
