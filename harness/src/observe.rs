//! What the harness knows of each node, from what the node itself reports: its event log
//! (tailed as it grows) replayed into the node's view of the cluster, and its answers to
//! management commands (`fjell members --json`, `fjell status --json`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use fjell_runtime::event_log::EventRecord;
use serde::de::DeserializeOwned;

/// Reads the lines appended to a file since the last read; a line still being written
/// waits for its end.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Tails `path` from its start (the file may not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Tail {
        Tail {
            path: path.into(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The whole lines appended since the last call, parsed; a line that does not parse is
    /// returned as an error with its text.
    pub fn read<T: DeserializeOwned>(&mut self) -> Vec<Result<T, String>> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            out.push(serde_json::from_str(&text).map_err(|e| format!("{e}: {text}")));
        }
        out
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Marks a new start of the node's process.
    pub fn mark_start(&mut self) {
        self.poll();
        self.start_mark = self.records.len();
    }
}
