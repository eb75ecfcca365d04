//! Distributed data over real QUIC on loopback, through the async API: local updates
//! converge everywhere; quorum reads and writes reach the replicas their level promises
//! (checked with background replication switched off, so only the quorum can have carried
//! a value); a value of another kind is an error on every node; a deleted key stays
//! deleted; subscribers see changes made elsewhere and keys created later; a write at `All`
//! times out while a member is unresponsive, while a majority write goes through; a peer
//! sending garbage is counted and ignored.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fjell_ddata::crdt::{Element, GCounter, Kind, ORSet, WrongKind};
use fjell_ddata::replicator::{
    KeyRange, Limits, Message, OpError, ReadConsistency, ReplicationError, WriteConsistency,
};
use fjell_ddata::{DataError, Key};
use fjell_quic::DevCa;
use fjell_runtime::{MemberStatus, Termination};

use common::{change_until, eventually, within, Node};

const T: Duration = Duration::from_secs(10);
const MAJORITY_W: WriteConsistency = WriteConsistency::Majority {
    timeout: T,
    min_cap: 0,
};
const MAJORITY_R: ReadConsistency = ReadConsistency::Majority {
    timeout: T,
    min_cap: 0,
};
const ALL_W: WriteConsistency = WriteConsistency::All { timeout: T };
const ALL_R: ReadConsistency = ReadConsistency::All { timeout: T };
const LOCAL_W: WriteConsistency = WriteConsistency::Local;
const LOCAL_R: ReadConsistency = ReadConsistency::Local;

fn elements(set: &ORSet) -> BTreeSet<String> {
    set.decoded::<String>().unwrap().into_iter().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The local GCounter value of `key` on `node`, 0 if absent.
fn count(node: &Node, key: &Key<GCounter>) -> u128 {
    node.dd.local(key).unwrap().map_or(0, |c| c.value())
}

#[test]
fn local_updates_converge_and_subscribers_see_changes_and_deletes() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let settings = |_| fjell_ddata::ReplicatorSettings {
            // The least size allowed, so that an oversized message is cheap to send.
            limits: Limits {
                max_message_bytes: 64 * 1024,
                ..common::fast().limits
            },
            ..common::fast()
        };
        let nodes = common::cluster(&ca, 3, common::config(), settings).await;
        let started = Instant::now();

        // A GCounter incremented on every node at Local converges to the sum everywhere.
        let hits: Key<GCounter> = Key::new("hits");
        let subs: Vec<_> = nodes.iter().map(|n| n.dd.subscribe(&hits)).collect();
        for n in &nodes {
            assert_eq!(n.dd.local(&hits), Ok(None), "no node has the key yet");
        }
        for (i, n) in nodes.iter().enumerate() {
            let id = n.id();
            n.dd.update(&hits, LOCAL_W, |c| c.increment(id, i as u64 + 1))
                .await
                .unwrap();
        }
        for (i, s) in subs.iter().enumerate() {
            let what = format!("hits = 6 on node {i}");
            let c = change_until(10, &what, s, |c| {
                c.value.as_ref().is_some_and(|v| v.value() == 6)
            })
            .await;
            assert_eq!(c.key, "hits");
            let value = nodes[i].dd.local(&hits).unwrap().unwrap();
            assert_eq!(value.value(), 6);
            for (j, m) in nodes.iter().enumerate() {
                assert_eq!(value.total_of(&m.id()), j as u64 + 1, "node {j}'s part");
            }
        }

        // A subscriber on node 2 sees an ORSet changed on node 0: the value, as a Change.
        let fruit: Key<ORSet> = Key::new("fruit");
        let on_2 = nodes[2].dd.subscribe(&fruit);
        assert!(
            on_2.try_next().is_none(),
            "no value yet, so no first change"
        );
        let id0 = nodes[0].id();
        nodes[0]
            .dd
            .update(&fruit, LOCAL_W, |s| {
                s.add(id0, "apple");
                s.add(id0, "fig");
            })
            .await
            .unwrap();
        let c = change_until(10, "apple and fig on node 2", &on_2, |c| {
            c.value.as_ref().is_some_and(|s| s.len() == 2)
        })
        .await;
        assert_eq!(c.key, "fruit");
        assert_eq!(elements(&c.value.unwrap()), names(&["apple", "fig"]));
        nodes[0]
            .dd
            .update(&fruit, LOCAL_W, |s| {
                s.remove("apple");
                s.add(id0, "pear");
            })
            .await
            .unwrap();
        change_until(10, "fig and pear on node 2", &on_2, |c| {
            c.value
                .as_ref()
                .is_some_and(|s| elements(s) == names(&["fig", "pear"]))
        })
        .await;

        // A prefix subscription on node 1 sees keys created after it, and only those.
        let users = nodes[1].dd.subscribe_prefix::<GCounter>("user-");
        assert!(users.try_next().is_none());
        let other: Key<GCounter> = Key::new("other");
        let (ann, bo): (Key<GCounter>, Key<GCounter>) = (Key::new("user-ann"), Key::new("user-bo"));
        let (id0, id2) = (nodes[0].id(), nodes[2].id());
        nodes[0]
            .dd
            .update(&other, LOCAL_W, |c| c.increment(id0, 1))
            .await
            .unwrap();
        nodes[0]
            .dd
            .update(&ann, LOCAL_W, |c| c.increment(id0, 1))
            .await
            .unwrap();
        nodes[2]
            .dd
            .update(&bo, LOCAL_W, |c| c.increment(id2, 2))
            .await
            .unwrap();
        let mut seen = std::collections::BTreeMap::new();
        within(10, "user-ann and user-bo on node 1", async {
            while seen.len() < 2 {
                let c = users.next().await.unwrap().unwrap();
                assert!(c.key.starts_with("user-"), "{} is not a user key", c.key);
                seen.insert(c.key, c.value.unwrap().value());
            }
        })
        .await;
        assert_eq!(seen["user-ann"], 1);
        assert_eq!(seen["user-bo"], 2);
        // "other" reached node 1 too (it was written before "user-ann"), yet was not reported.
        eventually(10, "other on node 1", || count(&nodes[1], &other) == 1).await;
        assert!(users.try_next().is_none(), "only keys with the prefix");

        // Delete: every node reads the key as deleted, subscribers see `None`, and a later
        // update, delete or read of it is refused on every node.
        let deleted: Vec<_> = nodes.iter().map(|n| n.dd.subscribe(&fruit)).collect();
        nodes[0].dd.delete(&fruit, LOCAL_W).await.unwrap();
        for (i, s) in deleted.iter().enumerate() {
            let what = format!("the delete of fruit on node {i}");
            change_until(10, &what, s, |c| c.value.is_none()).await;
        }
        change_until(
            10,
            "the delete on node 2's first subscription",
            &on_2,
            |c| c.value.is_none(),
        )
        .await;
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(n.dd.local(&fruit), Err(DataError::Deleted), "node {i}");
            assert_eq!(
                n.dd.get(&fruit, LOCAL_R).await,
                Err(DataError::Deleted),
                "node {i}"
            );
            assert_eq!(
                n.dd.get(&fruit, MAJORITY_R).await,
                Err(DataError::Deleted),
                "node {i}"
            );
            let id = n.id();
            let refused = n.dd.update(&fruit, ALL_W, |s| s.add(id, "kiwi")).await;
            assert_eq!(refused, Err(DataError::Deleted), "node {i}");
            assert_eq!(n.dd.local(&fruit), Err(DataError::Deleted), "node {i}");
        }

        // A hostile peer: node 0 sends node 1 garbage, an empty message, a message over
        // the size limit and one over the entry limit on the replicator's channel. Node 1
        // counts each and carries on.
        for n in &nodes {
            assert_eq!(n.dd.refused_messages(), 0, "nothing refused before");
        }
        let to = nodes[1].addr();
        let too_many = Message::Status {
            chunk: 0,
            chunks: 1,
            range: KeyRange::ALL,
            digests: (0..501).map(|i| (format!("k{i}"), 1)).collect(),
            reply: false,
            to_uid: nodes[1].id().uid(),
        };
        let hostile: [Vec<u8>; 4] = [
            b"\xff\xff\xff\xff\xff garbage".to_vec(),
            Vec::new(),
            vec![0; 100_000],
            too_many.encode(),
        ];
        for bytes in &hostile {
            nodes[0].hub.send_on(to, "ddata", bytes).await.unwrap();
        }
        eventually(10, "node 1 refusing 4 messages", || {
            nodes[1].dd.refused_messages() == 4
        })
        .await;
        // Node 1 still takes deltas from node 0 and replicates its own writes.
        let id0 = nodes[0].id();
        nodes[0]
            .dd
            .update(&hits, LOCAL_W, |c| c.increment(id0, 10))
            .await
            .unwrap();
        change_until(10, "hits = 16 on node 1", &subs[1], |c| {
            c.value.as_ref().is_some_and(|v| v.value() == 16)
        })
        .await;
        let id1 = nodes[1].id();
        nodes[1]
            .dd
            .update(&hits, ALL_W, |c| c.increment(id1, 100))
            .await
            .unwrap();
        for n in &nodes {
            assert_eq!(count(n, &hits), 116);
        }
        assert_eq!(nodes[1].dd.refused_messages(), 4);
        assert_eq!(nodes[0].dd.refused_messages(), 0);
        assert_eq!(nodes[2].dd.refused_messages(), 0);
        println!(
            "scenario took {:?} after the cluster formed",
            started.elapsed()
        );

        for n in &nodes {
            n.cluster.shutdown().await;
        }
    });
}

#[test]
fn quorum_reads_and_writes_reach_their_replicas_and_kinds_are_kept() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let nodes = common::cluster(&ca, 3, common::config(), |_| common::no_background()).await;
        let ids: Vec<_> = nodes.iter().map(Node::id).collect();

        // The premise: without deltas or gossip, a Local write stays on its node.
        let a: Key<GCounter> = Key::new("a");
        nodes[0]
            .dd
            .update(&a, LOCAL_W, |c| c.increment(ids[0], 1))
            .await
            .unwrap();
        assert_eq!(count(&nodes[1], &a), 0);
        assert_eq!(count(&nodes[2], &a), 0);
        // A read at All reaches node 0, and repairs the reader's replica.
        let read = nodes[1].dd.get(&a, ALL_R).await.unwrap();
        assert_eq!(read.map(|c| c.value()), Some(1));
        assert_eq!(count(&nodes[1], &a), 1, "read repair on node 1");
        assert_eq!(count(&nodes[2], &a), 0, "node 2 only answered");

        // A Majority write reaches this node and one other; a Majority read anywhere meets it.
        let b: Key<GCounter> = Key::new("b");
        nodes[0]
            .dd
            .update(&b, MAJORITY_W, |c| c.increment(ids[0], 5))
            .await
            .unwrap();
        let holders = [1, 2]
            .iter()
            .filter(|&&i| count(&nodes[i], &b) == 5)
            .count();
        assert_eq!(holders, 1, "the write reached exactly one other replica");
        for i in [1, 2] {
            let read = nodes[i].dd.get(&b, MAJORITY_R).await.unwrap();
            assert_eq!(
                read.map(|c| c.value()),
                Some(5),
                "majority read on node {i}"
            );
        }

        // An All write is on every replica when it returns.
        let c: Key<GCounter> = Key::new("c");
        nodes[2]
            .dd
            .update(&c, ALL_W, |v| v.increment(ids[2], 7))
            .await
            .unwrap();
        for n in &nodes {
            assert_eq!(count(n, &c), 7);
        }
        // A missing key reads as absent at any level.
        let none: Key<GCounter> = Key::new("none");
        assert_eq!(nodes[1].dd.get(&none, MAJORITY_R).await, Ok(None));
        assert_eq!(nodes[1].dd.get(&none, ALL_R).await, Ok(None));

        // More replicas than exist: refused at once, not after the timeout.
        let started = Instant::now();
        let four = ReadConsistency::From {
            n: 4,
            timeout: Duration::from_secs(30),
        };
        let not_enough = DataError::Replication(ReplicationError::NotEnoughReplicas {
            available: 3,
            required: 4,
        });
        assert_eq!(nodes[0].dd.get(&a, four).await, Err(not_enough.clone()));
        let to_four = WriteConsistency::To {
            n: 4,
            timeout: Duration::from_secs(30),
        };
        let w = nodes[0]
            .dd
            .update(&a, to_four, |c| c.increment(ids[0], 1))
            .await;
        assert_eq!(w, Err(not_enough));
        assert!(started.elapsed() < Duration::from_secs(5), "at once");
        assert_eq!(count(&nodes[0], &a), 2, "the write was applied locally");
        let one = ReadConsistency::From {
            n: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            nodes[0].dd.get(&a, one).await,
            Err(DataError::Op(OpError::BadLevel(_)))
        ));

        // The wrong kind: a GCounter under "k" read, updated, deleted or subscribed to as
        // an ORSet is an error on every node, and the counter stays.
        let k: Key<GCounter> = Key::new("k");
        let k_set: Key<ORSet> = Key::new("k");
        nodes[0]
            .dd
            .update(&k, ALL_W, |c| c.increment(ids[0], 3))
            .await
            .unwrap();
        let wrong = WrongKind {
            expected: Kind::ORSet,
            found: Kind::GCounter,
        };
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(
                n.dd.local(&k_set),
                Err(DataError::WrongKind(wrong)),
                "node {i}"
            );
            assert_eq!(
                n.dd.get(&k_set, LOCAL_R).await,
                Err(DataError::WrongKind(wrong)),
                "node {i}"
            );
            assert_eq!(
                n.dd.get(&k_set, MAJORITY_R).await,
                Err(DataError::WrongKind(wrong)),
                "node {i}"
            );
            let id = n.id();
            let update = n.dd.update(&k_set, ALL_W, |s| s.add(id, "x")).await;
            assert_eq!(update, Err(DataError::WrongKind(wrong)), "node {i}");
            assert_eq!(
                n.dd.delete(&k_set, ALL_W).await,
                Err(DataError::WrongKind(wrong)),
                "node {i}"
            );
            let sub = n.dd.subscribe(&k_set);
            assert_eq!(sub.try_next(), Some(Err(wrong)), "node {i}");
            assert_eq!(count(n, &k), 3, "node {i} keeps the counter");
        }

        // Two kinds written under one key on different nodes: the replica holding the other
        // kind refuses the write, and each keeps its own value.
        let clash: Key<GCounter> = Key::new("clash");
        let clash_set: Key<ORSet> = Key::new("clash");
        nodes[0]
            .dd
            .update(&clash, LOCAL_W, |c| c.increment(ids[0], 1))
            .await
            .unwrap();
        let w = nodes[1]
            .dd
            .update(&clash_set, ALL_W, |s| s.add(ids[1], "x"))
            .await;
        assert_eq!(
            w,
            Err(DataError::Replication(ReplicationError::Refused {
                refused: 1
            }))
        );
        assert_eq!(count(&nodes[0], &clash), 1);
        let set = nodes[1].dd.local(&clash_set).unwrap().unwrap();
        assert!(set.contains(&Element::from("x")));

        for n in &nodes {
            n.cluster.shutdown().await;
        }
    });
}

#[test]
fn all_times_out_while_a_member_is_unresponsive_and_majority_goes_through() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let mut nodes = common::cluster(&ca, 3, common::config(), |_| common::fast()).await;
        let x: Key<GCounter> = Key::new("x");
        let short = Duration::from_secs(3);

        // Node 2 shuts down gracefully. While node 0 sees it Exiting, a Majority write goes
        // through (the exiting member counts, and the other one answers if it does not),
        // and so does an All write (an Exiting member does not count for All).
        let gone = nodes[2].addr();
        let leaving = nodes[2].cluster.clone();
        let shutdown = smol::spawn(async move { leaving.shutdown().await });
        let id0 = nodes[0].id();
        let majority = WriteConsistency::Majority {
            timeout: short,
            min_cap: 0,
        };
        let all = WriteConsistency::All { timeout: short };
        let exiting = |s: &fjell_runtime::ClusterState| {
            matches!(
                common::status_of(s, gone),
                Some(MemberStatus::Exiting) | None
            )
        };
        common::until(30, "node 2 Exiting", &nodes[0].cluster, exiting).await;
        let seen = common::status_of(&nodes[0].cluster.state(), gone);
        println!(
            "node 0 sees node 2 as {seen:?} and counts {} replicas",
            nodes[0].dd.replica_count()
        );
        nodes[0]
            .dd
            .update(&x, majority, |c| c.increment(id0, 1))
            .await
            .unwrap();
        nodes[0]
            .dd
            .update(&x, all, |c| c.increment(id0, 1))
            .await
            .unwrap();
        let ended = within(30, "node 2's shutdown", shutdown).await;
        assert!(matches!(ended, Termination::Stopped(_)), "{ended:?}");
        // Once it has stopped, a Majority write goes through too.
        let seen = common::status_of(&nodes[0].cluster.state(), gone);
        println!(
            "node 2 has stopped; node 0 sees it as {seen:?} and counts {} replicas",
            nodes[0].dd.replica_count()
        );
        nodes[0]
            .dd
            .update(&x, majority, |c| c.increment(id0, 1))
            .await
            .unwrap();
        // Once removed, node 2 is no replica: All means the two left.
        for n in &nodes[..2] {
            common::until(30, "node 2 removed", &n.cluster, |s| {
                common::status_of(s, gone).is_none()
            })
            .await;
            common::replicas(10, &n.dd, 2).await;
        }
        nodes[1]
            .dd
            .update(&x, ALL_W, |c| c.increment(nodes[1].id(), 1))
            .await
            .unwrap();
        assert_eq!(count(&nodes[0], &x), 4);
        nodes.pop();

        // Node 3 joins, then crashes: it stays a member, unreachable, and a replica.
        let (sockets, _) = common::sockets(1);
        let seeds = [nodes[0].addr()];
        let socket = sockets.into_iter().next().unwrap();
        nodes.push(Node::start(
            &ca,
            socket,
            &seeds,
            common::config(),
            common::fast(),
        ));
        for n in &nodes {
            common::until(30, "node 3 Up", &n.cluster, common::all_up(3)).await;
            common::replicas(10, &n.dd, 3).await;
        }
        let crashed = nodes[2].addr();
        nodes[2].cluster.abort().await;
        for n in &nodes[..2] {
            common::until(30, "node 3 unreachable", &n.cluster, |s| {
                s.unreachable
                    .iter()
                    .any(|m| m.address.socket_addr() == crashed)
                    && common::status_of(s, crashed) == Some(MemberStatus::Up)
            })
            .await;
            assert_eq!(n.dd.replica_count(), 3, "the crashed member still counts");
        }
        // All cannot be reached: it times out after its timeout with two replies of three.
        let started = Instant::now();
        let w = nodes[0].dd.update(&x, all, |c| c.increment(id0, 1)).await;
        assert_eq!(
            w,
            Err(DataError::Replication(ReplicationError::Timeout {
                replies: 2,
                required: 3
            }))
        );
        // Not before the timeout (give or take the millisecond the replicator rounds to).
        let waited = started.elapsed() + Duration::from_millis(2);
        assert!(waited >= short, "timed out after {waited:?}");
        assert_eq!(count(&nodes[0], &x), 5, "applied locally all the same");
        let all_read = ReadConsistency::All { timeout: short };
        assert!(matches!(
            nodes[1].dd.get(&x, all_read).await,
            Err(DataError::Replication(ReplicationError::Timeout { .. }))
        ));
        // A majority, two of three, goes through, and a majority read sees it.
        nodes[0]
            .dd
            .update(&x, majority, |c| c.increment(id0, 1))
            .await
            .unwrap();
        let read = nodes[1]
            .dd
            .get(
                &x,
                ReadConsistency::Majority {
                    timeout: short,
                    min_cap: 0,
                },
            )
            .await
            .unwrap();
        assert_eq!(read.map(|c| c.value()), Some(6));
        // Downed and removed, the crashed member no longer counts: All goes through.
        nodes[0].cluster.down(crashed).await.unwrap();
        for n in &nodes[..2] {
            common::until(30, "node 3 removed", &n.cluster, |s| {
                common::status_of(s, crashed).is_none()
            })
            .await;
            common::replicas(10, &n.dd, 2).await;
        }
        nodes[0]
            .dd
            .update(&x, all, |c| c.increment(id0, 1))
            .await
            .unwrap();
        assert_eq!(count(&nodes[1], &x), 7);

        for n in &nodes[..2] {
            n.cluster.shutdown().await;
        }
    });
}
