//! The publish-subscribe registry: who subscribes to what, where, spread by gossip. Sans-IO.
//!
//! Every node owns one **bucket**: the keys (topics, groups of a topic, paths) that have
//! subscribers on that node, each with the bucket version at which it last changed and
//! whether it is still live (a removed key stays as a tombstone until pruned, so its removal
//! spreads). Changing the own bucket bumps its version. Gossip is Pekko's: a node sends a
//! [`Status`] (the version it holds of every bucket) to another; the other answers with a
//! [`Delta`] of the entries newer than that, and with its own status when it is behind, so
//! only the newer side sends entries. Buckets of nodes that are no longer members are
//! dropped; a peer's entries for a non-member are ignored.
//!
//! Limits: at most [`MAX_KEYS`] keys per bucket and [`MAX_KEY_LEN`] bytes per name; a delta
//! carries at most the caller's `max_entries` entries (the rest follow in later rounds). A
//! peer's delta beyond a limit is cut there, never an error that stops the rest.

use std::collections::BTreeMap;

use fjell_runtime::core::{Instant, UniqueAddress};
use serde::{Deserialize, Serialize};

/// Keys one node's bucket holds at most.
pub const MAX_KEYS: usize = 100_000;
/// Bytes a topic, group or path name has at most.
pub const MAX_KEY_LEN: usize = 1024;

/// What a registry entry is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    /// Subscribers of a topic (each gets every message).
    Topic(String),
    /// A group of subscribers of a topic (one of each group gets each message).
    Group {
        /// The topic.
        topic: String,
        /// The group's name.
        group: String,
    },
    /// A registered path (one receiver gets each message sent to it).
    Path(String),
}

impl Key {
    fn len(&self) -> usize {
        match self {
            Key::Topic(t) | Key::Path(t) => t.len(),
            Key::Group { topic, group } => topic.len() + group.len(),
        }
    }
}

/// One key in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The bucket version at which it last changed.
    pub version: u64,
    /// False for a tombstone: the key was removed at `version`.
    pub live: bool,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    version: u64,
    entries: BTreeMap<Key, (Entry, Option<Instant>)>,
}

/// The versions a node holds of every bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// (bucket owner, version held).
    pub versions: Vec<(UniqueAddress, u64)>,
}

/// Entries of some buckets, newer than a status named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The buckets with entries the status lacked.
    pub buckets: Vec<BucketDelta>,
}

/// One bucket's part of a [`Delta`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDelta {
    /// The bucket's node.
    pub owner: UniqueAddress,
    /// The bucket version these entries bring the receiver to.
    pub version: u64,
    /// The entries newer than the status named.
    pub entries: Vec<(Key, Entry)>,
}

/// A node's view of every node's bucket (see the module docs).
#[derive(Debug, Clone)]
pub struct Registry {
    me: UniqueAddress,
    buckets: BTreeMap<UniqueAddress, Bucket>,
}

impl Registry {
    /// An empty registry of node `me`.
    pub fn new(me: UniqueAddress) -> Self {
        let mut buckets = BTreeMap::new();
        buckets.insert(me, Bucket::default());
        Registry { me, buckets }
    }

    /// Marks `key` live in this node's bucket; false if it already was, or the bucket is full
    /// or the name too long.
    pub fn add(&mut self, key: Key) -> bool {
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        let own = self.buckets.get_mut(&self.me).expect("own bucket");
        if own.entries.get(&key).is_some_and(|(e, _)| e.live) {
            return false;
        }
        if !own.entries.contains_key(&key) && own.entries.len() >= MAX_KEYS {
            return false;
        }
        own.version += 1;
        let entry = Entry {
            version: own.version,
            live: true,
        };
        own.entries.insert(key, (entry, None));
        true
    }

    /// Marks `key` removed in this node's bucket (a tombstone, pruned `now` + the caller's
    /// time to live later); false if it was not live.
    pub fn remove(&mut self, now: Instant, key: &Key) -> bool {
        let own = self.buckets.get_mut(&self.me).expect("own bucket");
        let Some((e, dead)) = own.entries.get_mut(key) else {
            return false;
        };
        if !e.live {
            return false;
        }
        own.version += 1;
        *e = Entry {
            version: own.version,
            live: false,
        };
        *dead = Some(now);
        true
    }

    /// What this node holds of every bucket.
    pub fn status(&self) -> Status {
        Status {
            versions: self.buckets.iter().map(|(a, b)| (*a, b.version)).collect(),
        }
    }

    /// The entries `theirs` lacks, at most `max_entries` of them (older changes first, so a
    /// cut delta still moves the receiver forward).
    pub fn delta_for(&self, theirs: &Status, max_entries: usize) -> Delta {
        let mut left = max_entries;
        let mut delta = Delta::default();
        for (owner, bucket) in &self.buckets {
            if left == 0 {
                break;
            }
            let held = theirs
                .versions
                .iter()
                .find(|(a, _)| a == owner)
                .map_or(0, |(_, v)| *v);
            if bucket.version <= held {
                continue;
            }
            let mut newer: Vec<(Key, Entry)> = bucket
                .entries
                .iter()
                .filter(|(_, (e, _))| e.version > held)
                .map(|(k, (e, _))| (k.clone(), *e))
                .collect();
            let version = if newer.len() > left {
                newer.sort_by_key(|(_, e)| e.version);
                newer.truncate(left);
                // Claim only what is sent: the highest version among the entries sent.
                newer.last().map_or(held, |(_, e)| e.version)
            } else {
                bucket.version
            };
            left -= newer.len();
            delta.buckets.push(BucketDelta {
                owner: *owner,
                version,
                entries: newer,
            });
        }
        delta
    }

    /// True if `theirs` holds a bucket newer than this node does (it should send a delta).
    pub fn behind(&self, theirs: &Status, members: &[UniqueAddress]) -> bool {
        theirs.versions.iter().any(|(a, v)| {
            *a != self.me
                && members.contains(a)
                && self.buckets.get(a).map_or(0, |b| b.version) < *v
        })
    }

    /// Takes in a peer's delta: entries of members' buckets (never this node's own) newer
    /// than held. Returns true if anything changed.
    pub fn merge(&mut self, now: Instant, delta: Delta, members: &[UniqueAddress]) -> bool {
        let mut changed = false;
        for BucketDelta {
            owner,
            version,
            entries,
        } in delta.buckets
        {
            if owner == self.me || !members.contains(&owner) {
                continue;
            }
            let bucket = self.buckets.entry(owner).or_default();
            let held = bucket.version;
            for (key, entry) in entries {
                if key.len() > MAX_KEY_LEN || entry.version > version {
                    continue;
                }
                let known = bucket.entries.get(&key).map(|(e, _)| e.version);
                if known.is_some_and(|v| v >= entry.version) {
                    continue;
                }
                // Holding version `held` means every change up to it has been taken in, so an
                // unknown key at or below it is stale: its removal came and its tombstone was
                // pruned (a late or duplicated delta must not bring it back).
                if known.is_none() && entry.version <= held {
                    continue;
                }
                if known.is_none() && bucket.entries.len() >= MAX_KEYS {
                    continue;
                }
                let dead = (!entry.live).then_some(now);
                bucket.entries.insert(key, (entry, dead));
                changed = true;
            }
            if version > bucket.version {
                bucket.version = version;
                changed = true;
            }
        }
        changed
    }

    /// Drops the buckets of nodes not in `members` (this node's own always stays).
    pub fn retain_members(&mut self, members: &[UniqueAddress]) -> bool {
        let me = self.me;
        let before = self.buckets.len();
        self.buckets.retain(|a, _| *a == me || members.contains(a));
        self.buckets.len() != before
    }

    /// Forgets tombstones older than `ttl` at `now`, in every bucket.
    pub fn prune(&mut self, now: Instant, ttl: core::time::Duration) {
        for b in self.buckets.values_mut() {
            b.entries
                .retain(|_, (_, dead)| dead.is_none_or(|d| now.saturating_duration_since(d) < ttl));
        }
    }

    /// The nodes with a live `key`, in address order.
    pub fn nodes_with(&self, key: &Key) -> Vec<UniqueAddress> {
        self.buckets
            .iter()
            .filter(|(_, b)| b.entries.get(key).is_some_and(|(e, _)| e.live))
            .map(|(a, _)| *a)
            .collect()
    }

    /// The groups of `topic` with live subscribers somewhere, each with its nodes.
    pub fn groups_of(&self, topic: &str) -> BTreeMap<String, Vec<UniqueAddress>> {
        let mut groups: BTreeMap<String, Vec<UniqueAddress>> = BTreeMap::new();
        for (a, b) in &self.buckets {
            for (k, (e, _)) in &b.entries {
                if let Key::Group { topic: t, group } = k {
                    if t == topic && e.live {
                        groups.entry(group.clone()).or_default().push(*a);
                    }
                }
            }
        }
        groups
    }

    /// Every topic with a live subscriber (groups' topics included), sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .buckets
            .values()
            .flat_map(|b| b.entries.iter())
            .filter(|(_, (e, _))| e.live)
            .filter_map(|(k, _)| match k {
                Key::Topic(t) | Key::Group { topic: t, .. } => Some(t.clone()),
                Key::Path(_) => None,
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn node(i: u8) -> UniqueAddress {
        UniqueAddress::new(SocketAddr::from(([10, 0, 0, i], 7355)), 1)
    }

    fn topic(t: &str) -> Key {
        Key::Topic(t.into())
    }

    fn bd(owner: UniqueAddress, version: u64, t: &str, entry: u64) -> BucketDelta {
        BucketDelta {
            owner,
            version,
            entries: vec![(
                topic(t),
                Entry {
                    version: entry,
                    live: true,
                },
            )],
        }
    }

    /// Gossips `from` → `to` as the mediator does: status, delta, and the reverse when behind.
    fn exchange(from: &mut Registry, to: &mut Registry, members: &[UniqueAddress], max: usize) {
        let now = Instant::ZERO;
        let delta = to.delta_for(&from.status(), max);
        let behind = to.behind(&from.status(), members);
        from.merge(now, delta, members);
        if behind {
            let d = from.delta_for(&to.status(), max);
            to.merge(now, d, members);
        }
    }

    #[test]
    fn subscriptions_spread_both_ways_and_removals_follow() {
        let members = [node(1), node(2)];
        let (mut a, mut b) = (Registry::new(node(1)), Registry::new(node(2)));
        assert!(a.add(topic("news")));
        assert!(!a.add(topic("news")), "adding twice changes nothing");
        assert!(b.add(topic("sport")));
        exchange(&mut a, &mut b, &members, 100);
        assert_eq!(a.nodes_with(&topic("sport")), [node(2)]);
        assert_eq!(b.nodes_with(&topic("news")), [node(1)]);
        assert_eq!(a.topics(), ["news", "sport"]);
        assert!(a.remove(Instant::ZERO, &topic("news")));
        exchange(&mut b, &mut a, &members, 100);
        assert!(b.nodes_with(&topic("news")).is_empty());
        // Nothing newer on either side: nothing sent.
        assert!(a.delta_for(&b.status(), 100).buckets.is_empty());
        assert!(b.delta_for(&a.status(), 100).buckets.is_empty());
    }

    #[test]
    fn a_cut_delta_still_converges_over_rounds() {
        let members = [node(1), node(2)];
        let (mut a, mut b) = (Registry::new(node(1)), Registry::new(node(2)));
        for i in 0..25 {
            a.add(topic(&format!("t{i}")));
        }
        let mut rounds = 0;
        while b.topics().len() < 25 {
            exchange(&mut b, &mut a, &members, 10);
            rounds += 1;
            assert!(rounds <= 3, "3 rounds of 10 entries carry 25");
        }
        assert!(b.status().versions.contains(&(node(1), 25)));
    }

    #[test]
    fn non_members_and_own_bucket_are_never_taken_from_a_peer() {
        let mut a = Registry::new(node(1));
        let forged = Delta {
            buckets: vec![
                bd(node(1), 99, "x", 99),
                bd(node(9), 5, "y", 5),
                // An entry newer than its bucket's claimed version is a lie.
                bd(node(2), 1, "z", 7),
            ],
        };
        a.merge(Instant::ZERO, forged, &[node(1), node(2)]);
        assert!(a.topics().is_empty());
        assert_eq!(a.status().versions[0], (node(1), 0));
    }

    #[test]
    fn removed_members_buckets_and_old_tombstones_are_dropped() {
        let members = [node(1), node(2)];
        let (mut a, mut b) = (Registry::new(node(1)), Registry::new(node(2)));
        b.add(topic("t"));
        exchange(&mut a, &mut b, &members, 100);
        assert_eq!(a.nodes_with(&topic("t")), [node(2)]);
        assert!(a.retain_members(&[node(1)]));
        assert!(a.nodes_with(&topic("t")).is_empty());

        let t0 = Instant::from_millis(1_000);
        a.add(topic("u"));
        a.remove(t0, &topic("u"));
        a.prune(t0 + Duration::from_secs(60), Duration::from_secs(120));
        assert_eq!(
            a.delta_for(&Status::default(), 100).buckets[0]
                .entries
                .len(),
            1
        );
        a.prune(t0 + Duration::from_secs(121), Duration::from_secs(120));
        assert!(a.delta_for(&Status::default(), 100).buckets[0]
            .entries
            .is_empty());
    }

    #[test]
    fn a_late_delta_does_not_bring_back_a_pruned_subscription() {
        let members = [node(1), node(2)];
        let (mut a, mut b) = (Registry::new(node(1)), Registry::new(node(2)));
        a.add(topic("t"));
        let late = a.delta_for(&b.status(), 100);
        exchange(&mut b, &mut a, &members, 100);
        let t0 = Instant::from_millis(1_000);
        a.remove(t0, &topic("t"));
        exchange(&mut b, &mut a, &members, 100);
        b.prune(t0 + Duration::from_secs(121), Duration::from_secs(120));
        assert!(b.nodes_with(&topic("t")).is_empty());
        // The first delta, delayed past the tombstone's pruning, arrives again.
        b.merge(t0 + Duration::from_secs(122), late, &members);
        assert!(b.nodes_with(&topic("t")).is_empty(), "resurrected");
    }

    #[test]
    fn groups_are_listed_per_topic_with_their_nodes() {
        let members = [node(1), node(2)];
        let (mut a, mut b) = (Registry::new(node(1)), Registry::new(node(2)));
        let g = |t: &str, g: &str| Key::Group {
            topic: t.into(),
            group: g.into(),
        };
        a.add(g("jobs", "workers"));
        b.add(g("jobs", "workers"));
        b.add(g("jobs", "audit"));
        exchange(&mut a, &mut b, &members, 100);
        let groups = a.groups_of("jobs");
        assert_eq!(groups["workers"], [node(1), node(2)]);
        assert_eq!(groups["audit"], [node(2)]);
        assert!(
            a.nodes_with(&topic("jobs")).is_empty(),
            "groups are not plain subscribers"
        );
    }

    #[test]
    fn names_beyond_the_limit_are_refused() {
        let mut a = Registry::new(node(1));
        assert!(!a.add(topic(&"x".repeat(MAX_KEY_LEN + 1))));
    }
}
