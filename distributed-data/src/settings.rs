//! The replicator's settings (Pekko's `pekko.cluster.distributed-data`), checked at start.

use std::path::PathBuf;
use std::time::Duration;

use crate::replicator::Limits;

/// Settings of one replicator. [`Default`] gives Pekko's defaults where Pekko has one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatorSettings {
    /// The hub channel: replicators with the same name replicate the same data.
    pub name: String,
    /// Only members with this role hold replicas (`None`: every member).
    pub role: Option<String>,
    /// How often a replica sends the digests of its entries to another (Pekko: 2 s).
    pub gossip_interval: Duration,
    /// How often deltas of local updates go out (Pekko: `max(gossip-interval / 5, 200 ms)`).
    pub delta_interval: Duration,
    /// Peers sent deltas per tick at most: a delta reaches up to this many peers one tick
    /// after the update, and the rest in the ticks after (32; Pekko uses `N/5 + 1`, at most
    /// 10, so a delta takes up to five ticks in any cluster of more than 5).
    pub delta_fanout: usize,
    /// Updates of one key folded into one delta before the key is sent whole instead
    /// (Pekko's `delta-crdt.max-delta-size`: 50).
    pub max_delta_size: usize,
    /// Keys in one status or gossip message (Pekko: 500).
    pub max_delta_elements: usize,
    /// How often removed members' data is checked for pruning (Pekko: 120 s).
    pub pruning_interval: Duration,
    /// How long a removed member's data must have had to spread, counted only while every
    /// member is reachable, before its pruning starts (Pekko: 300 s).
    pub max_pruning_dissemination: Duration,
    /// How long a performed-pruning marker is kept, stripping late data of the removed
    /// member (Pekko: 6 h; 10 d for durable keys).
    pub pruning_marker_time_to_live: Duration,
    /// The marker's time to live for durable keys.
    pub durable_pruning_marker_time_to_live: Duration,
    /// Keys stored durably: exact ids, `prefix*`, or `*` for all.
    pub durable_keys: Vec<String>,
    /// The durable store's file; required if `durable_keys` is not empty.
    pub durable_path: Option<PathBuf>,
    /// Write-through (an update succeeds once stored) or write-behind.
    pub durable_write_mode: WriteMode,
    /// Bounds on what peers may send.
    pub limits: Limits,
    /// Changes a subscriber's queue holds before older ones are dropped.
    pub subscriber_buffer: usize,
}

impl Default for ReplicatorSettings {
    fn default() -> Self {
        ReplicatorSettings {
            name: "ddata".into(),
            role: None,
            gossip_interval: Duration::from_secs(2),
            delta_interval: Duration::from_millis(400),
            delta_fanout: 32,
            max_delta_size: 50,
            max_delta_elements: 500,
            pruning_interval: Duration::from_secs(120),
            max_pruning_dissemination: Duration::from_secs(300),
            pruning_marker_time_to_live: Duration::from_secs(6 * 3600),
            durable_pruning_marker_time_to_live: Duration::from_secs(10 * 24 * 3600),
            durable_keys: Vec::new(),
            durable_path: None,
            durable_write_mode: WriteMode::Through,
            limits: Limits {
                max_entries: 500,
                max_entry_size: 1_000_000,
                max_message_bytes: 16 << 20,
            },
            subscriber_buffer: 64,
        }
    }
}

/// A setting is out of range: its key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("distributed-data setting `{key}`: {reason}")]
pub struct SettingsError {
    /// The setting.
    pub key: &'static str,
    /// Why.
    pub reason: &'static str,
}

impl ReplicatorSettings {
    /// Checks every setting; the first bad one is named.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key, reason| Err(SettingsError { key, reason });
        if self.name.is_empty() {
            return bad("name", "must not be empty");
        }
        if self.role.as_deref() == Some("") {
            return bad(
                "role",
                "must not be empty (leave it unset for every member)",
            );
        }
        for (key, d) in [
            ("gossip-interval", self.gossip_interval),
            ("delta-interval", self.delta_interval),
            ("pruning-interval", self.pruning_interval),
        ] {
            if d.is_zero() {
                return bad(key, "must be positive");
            }
        }
        if self.delta_fanout == 0 {
            return bad("delta-fanout", "must be positive");
        }
        if self.max_delta_size == 0 {
            return bad("max-delta-size", "must be positive");
        }
        if self.max_delta_elements == 0 {
            return bad("max-delta-elements", "must be positive");
        }
        if self.max_delta_elements > self.limits.max_entries {
            return bad(
                "max-delta-elements",
                "must not exceed limits.max-entries, or peers refuse our own messages",
            );
        }
        if self.pruning_marker_time_to_live < self.max_pruning_dissemination {
            return bad(
                "pruning-marker-time-to-live",
                "must be at least max-pruning-dissemination",
            );
        }
        if self.durable_pruning_marker_time_to_live < self.pruning_marker_time_to_live {
            return bad(
                "durable.pruning-marker-time-to-live",
                "must be at least pruning-marker-time-to-live",
            );
        }
        if !self.durable_keys.is_empty() && self.durable_path.is_none() {
            return bad("durable.path", "is required when durable.keys is not empty");
        }
        if self.durable_keys.iter().any(|k| k.is_empty()) {
            return bad("durable.keys", "a pattern must not be empty");
        }
        if self.limits.max_message_bytes < 64 * 1024 {
            return bad("limits.max-message-bytes", "must be at least 64 KiB");
        }
        if self.limits.max_entries == 0 || self.limits.max_entry_size == 0 {
            return bad("limits", "must be positive");
        }
        if self.subscriber_buffer == 0 {
            return bad("subscriber-buffer", "must be positive");
        }
        Ok(())
    }

    /// True if `key` is stored durably.
    pub fn is_durable(&self, key: &str) -> bool {
        self.durable_keys.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => p == key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(ReplicatorSettings::default().validate(), Ok(()));
        let s = ReplicatorSettings {
            durable_keys: vec!["cart-*".into()],
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "durable.path");
        let s = ReplicatorSettings {
            gossip_interval: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "gossip-interval");
    }

    #[test]
    fn durable_patterns() {
        let s = ReplicatorSettings {
            durable_keys: vec!["cart-*".into(), "config".into()],
            ..Default::default()
        };
        assert!(s.is_durable("cart-1"));
        assert!(s.is_durable("config"));
        assert!(!s.is_durable("config2"));
        assert!(!s.is_durable("cache"));
        let all = ReplicatorSettings {
            durable_keys: vec!["*".into()],
            ..Default::default()
        };
        assert!(all.is_durable("anything"));
    }
}

/// When durable writes are committed, and so what a durable write's success promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every write is committed before it succeeds (writes arriving during a commit are
    /// committed together in the next one). Success means the value is on disk.
    Through,
    /// A write succeeds once queued; the queue (last value per key) is committed in one
    /// transaction at most this long after the first write queued. Success means queued
    /// only: a crash loses up to one interval of writes (`DurableWriter::flush` says
    /// whether they are on disk).
    Behind(Duration),
}
