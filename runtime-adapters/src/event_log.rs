//! The event log: every membership event a node reports, one JSON object per line, for
//! whatever watches nodes from outside — the multi-node harness (`fjell-harness`), a log
//! shipper, a script.
//!
//! Turned on by the `event-log` setting or [`ClusterBuilder::event_log`](crate::ClusterBuilder::event_log).
//! The file is opened for appending when the node is built (a restarted node adds to the
//! same file) and each line is written out as the event happens, so a node killed with
//! SIGKILL leaves every event it reported before. A write that fails is logged once and
//! the log stops; the node carries on.
//!
//! ```
//! use fjell_runtime::event_log::EventRecord;
//!
//! let line = r#"{"unix_ms":1764650000123,"node":"10.0.0.1:7355#00000000000000ab","event":"MemberUp","member":"10.0.0.2:7355#00000000000000cd","status":"Up"}"#;
//! let record: EventRecord = serde_json::from_str(line)?;
//! assert_eq!(record.event, "MemberUp");
//! assert_eq!(record.member_address(), Some("10.0.0.2:7355"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fjell_core::{Event, UniqueAddress};
use serde::{Deserialize, Serialize};

/// One line of the event log. Fields that do not apply to an event are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Wall-clock time the node reported the event, in milliseconds since the Unix epoch
    /// (for lining events up with what happened outside the node).
    pub unix_ms: u64,
    /// The reporting node, `IP:PORT#UID`.
    pub node: String,
    /// The event's name: the [`Event`] variant (`MemberUp`, `UnreachableMember`,
    /// `LeaderChanged`, `Downing`, `SelfDowned`, `Stopped`, ...).
    pub event: String,
    /// The member the event is about, `IP:PORT#UID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// That member's status as the event reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// For `MemberRemoved`: the status before removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    /// For `LeaderChanged` and `RoleLeaderChanged`: the new leader, `IP:PORT#UID`; absent
    /// when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// For `RoleLeaderChanged`: the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// For `JoinRefused` (who refused) and `JoinRequestRefused` (who asked): `IP:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why: a refusal's reason, a downing decision, a stop reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl EventRecord {
    /// The record of `event` as reported by `node` now.
    pub fn of(node: &UniqueAddress, event: &Event) -> EventRecord {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut r = EventRecord {
            unix_ms,
            node: node.to_string(),
            event: name(event).to_string(),
            member: None,
            status: None,
            previous_status: None,
            leader: None,
            role: None,
            peer: None,
            detail: None,
        };
        match event {
            Event::MemberRemoved {
                member,
                previous_status,
            } => {
                r.member = Some(member.address.to_string());
                r.status = Some(format!("{:?}", member.status));
                r.previous_status = Some(format!("{previous_status:?}"));
            }
            Event::LeaderChanged(l) => r.leader = l.map(|l| l.to_string()),
            Event::RoleLeaderChanged { role, leader } => {
                r.role = Some(role.to_string());
                r.leader = leader.map(|l| l.to_string());
            }
            Event::JoinRefused { by, reason } => {
                r.peer = Some(by.to_string());
                r.detail = Some(reason.to_string());
            }
            Event::JoinRequestRefused { from, reason } => {
                r.peer = Some(from.to_string());
                r.detail = Some(reason.to_string());
            }
            Event::Downing(d) => r.detail = Some(format!("{d:?}")),
            Event::Stopped(reason) => r.detail = Some(format!("{reason:?}")),
            Event::LimitReached(limit) => r.detail = Some(format!("{limit:?}")),
            e => {
                if let Some(m) = crate::state::member_of(e) {
                    r.member = Some(m.address.to_string());
                    r.status = Some(format!("{:?}", m.status));
                }
            }
        }
        r
    }

    /// The member's `IP:PORT` (its address without the incarnation's UID).
    pub fn member_address(&self) -> Option<&str> {
        self.member.as_deref().map(without_uid)
    }

    /// The reporting node's `IP:PORT`.
    pub fn node_address(&self) -> &str {
        without_uid(&self.node)
    }

    /// The leader's `IP:PORT`, for leader changes.
    pub fn leader_address(&self) -> Option<&str> {
        self.leader.as_deref().map(without_uid)
    }
}

fn without_uid(a: &str) -> &str {
    a.split_once('#').map_or(a, |(addr, _)| addr)
}

/// The [`Event`] variant's name.
fn name(e: &Event) -> &'static str {
    match e {
        Event::MemberJoined(_) => "MemberJoined",
        Event::MemberWeaklyUp(_) => "MemberWeaklyUp",
        Event::MemberUp(_) => "MemberUp",
        Event::MemberLeft(_) => "MemberLeft",
        Event::MemberExited(_) => "MemberExited",
        Event::MemberDowned(_) => "MemberDowned",
        Event::MemberPreparingForShutdown(_) => "MemberPreparingForShutdown",
        Event::MemberReadyForShutdown(_) => "MemberReadyForShutdown",
        Event::MemberRemoved { .. } => "MemberRemoved",
        Event::UnreachableMember(_) => "UnreachableMember",
        Event::ReachableMember(_) => "ReachableMember",
        Event::LeaderChanged(_) => "LeaderChanged",
        Event::RoleLeaderChanged { .. } => "RoleLeaderChanged",
        Event::JoinRefused { .. } => "JoinRefused",
        Event::JoinRequestRefused { .. } => "JoinRequestRefused",
        Event::Downing(_) => "Downing",
        Event::SelfDowned => "SelfDowned",
        Event::Stopped(_) => "Stopped",
        Event::LimitReached(_) => "LimitReached",
    }
}

/// The open log of one node.
pub(crate) struct EventLog {
    file: Option<File>,
    path: PathBuf,
}

impl EventLog {
    /// Opens `path` for appending (created if missing).
    pub(crate) fn open(path: &Path) -> io::Result<EventLog> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Some(file),
            path: path.to_path_buf(),
        })
    }

    /// Appends the record of `event` as one whole line (a few hundred bytes, written at once
    /// to a file opened for appending; readers wait for the newline).
    pub(crate) fn write(&mut self, node: &UniqueAddress, event: &Event) {
        let Some(file) = &mut self.file else { return };
        let mut line = match serde_json::to_vec(&EventRecord::of(node, event)) {
            Ok(l) => l,
            Err(_) => return, // strings and integers only: cannot fail
        };
        line.push(b'\n');
        if let Err(e) = file.write_all(&line) {
            tracing::warn!(node = %node, path = %self.path.display(), "fjell: the event log stops: {e}");
            self.file = None;
        }
    }
}
