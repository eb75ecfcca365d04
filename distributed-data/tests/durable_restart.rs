//! Durable keys survive a restart of every node, over real QUIC on loopback: three nodes
//! write durable (`cart-*`) and other keys, all shut down, three new nodes start on the same
//! store files (one per slot) and read the durable keys back at once, before any peer is
//! reachable, and never the others. In write-through and in write-behind mode (where only
//! the flush at stop can have written the values). A store file that is not a store makes
//! the start fail, naming the file, and leaves the file as it was. A full disk fails the
//! updates of the durable keys whose writes it refused, however late their replication
//! ends, until a write succeeds again.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjell_ddata::crdt::ReplicatedData;
use fjell_ddata::crdt::{GCounter, ORSet};
use fjell_ddata::durable::{DurableError, DurableStore, WriteMode};
use fjell_ddata::replicator::{ReadConsistency, WriteConsistency};
use fjell_ddata::{DataError, DistributedData, Key, ReplicatorSettings, StartError};
use fjell_quic::DevCa;
use fjell_runtime::{Smol, Termination};
use fjell_tools::hub::Hub;

use common::{change_until, within, Node, TempDir};

/// Fast replication, `cart-*` durable in `path`, written in `mode`.
fn durable(path: PathBuf, mode: WriteMode) -> ReplicatorSettings {
    ReplicatorSettings {
        durable_keys: vec!["cart-*".into()],
        durable_path: Some(path),
        durable_write_mode: mode,
        ..common::fast()
    }
}

fn items(set: &ORSet) -> Vec<String> {
    set.decoded().unwrap()
}

/// The keys in the store file at `path`, which must be closed (not locked) and readable.
fn stored_keys(path: &Path) -> Vec<String> {
    let store = DurableStore::open(path).unwrap_or_else(|e| panic!("{e}"));
    store
        .load_all()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

async fn restart_keeps_durable_keys(test: &str, mode: WriteMode) {
    let dir = TempDir::new(test);
    let files: Vec<PathBuf> = (0..3)
        .map(|i| dir.file(&format!("node-{i}.redb")))
        .collect();
    let ca = DevCa::new().unwrap();
    let settings = |i: usize| durable(files[i].clone(), mode);
    let cart: Key<ORSet> = Key::new("cart-ann");
    let visits: Key<GCounter> = Key::new("cart-visits");
    let session: Key<GCounter> = Key::new("session");

    // First life: every node adds an item to the cart and counts a visit; a non-durable
    // counter too.
    let nodes = common::cluster(&ca, 3, common::config(), settings).await;
    let subs: Vec<_> = nodes
        .iter()
        .map(|n| (n.dd.subscribe(&cart), n.dd.subscribe(&visits)))
        .collect();
    let session_subs: Vec<_> = nodes.iter().map(|n| n.dd.subscribe(&session)).collect();
    for (i, n) in nodes.iter().enumerate() {
        let id = n.id();
        let w = WriteConsistency::Local;
        n.dd.update(&cart, w, |s| s.add(id, format!("item-{i}")))
            .await
            .unwrap();
        n.dd.update(&visits, w, |c| c.increment(id, 1))
            .await
            .unwrap();
        n.dd.update(&session, w, |c| c.increment(id, 1))
            .await
            .unwrap();
    }
    // Every replica has every write before the shutdown, so each file has all of them.
    for (i, (c, v)) in subs.iter().enumerate() {
        change_until(10, &format!("three items on node {i}"), c, |c| {
            c.value.as_ref().is_some_and(|s| s.len() == 3)
        })
        .await;
        change_until(10, &format!("three visits on node {i}"), v, |c| {
            c.value.as_ref().is_some_and(|v| v.value() == 3)
        })
        .await;
        change_until(
            10,
            &format!("three sessions on node {i}"),
            &session_subs[i],
            |c| c.value.as_ref().is_some_and(|v| v.value() == 3),
        )
        .await;
    }
    drop(subs);
    drop(session_subs);

    // Every node shuts down; each replicator stops.
    for (i, n) in nodes.iter().enumerate() {
        let ended = within(30, &format!("node {i}'s shutdown"), n.cluster.shutdown()).await;
        assert!(
            matches!(ended, Termination::Stopped(_)),
            "node {i}: {ended:?}"
        );
        common::stopped(10, &format!("node {i}'s replicator"), &n.dd).await;
    }
    // A stopped replicator has closed its store: the file opens, and holds the durable keys
    // (written at stop in write-behind mode) and no other.
    for (i, file) in files.iter().enumerate() {
        let mut keys = stored_keys(file);
        keys.sort();
        assert_eq!(keys, ["cart-ann", "cart-visits"], "node {i}'s file");
    }
    drop(nodes);

    // Second life: new nodes (new ports, new incarnations) on the same files. Each reads the
    // durable keys at once, before it has joined anyone; the other key is gone.
    let (sockets, addrs) = common::sockets(3);
    let nodes: Vec<Node> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| Node::start(&ca, s, &addrs[..1], common::config(), settings(i)))
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        let mut got = items(&n.dd.local(&cart).unwrap().expect("the cart"));
        got.sort();
        assert_eq!(got, ["item-0", "item-1", "item-2"], "node {i}");
        let v = n.dd.local(&visits).unwrap().expect("the visits");
        assert_eq!(v.value(), 3, "node {i}");
        assert_eq!(n.dd.local(&session), Ok(None), "node {i}");
    }
    for n in &nodes {
        common::until(30, "every member Up again", &n.cluster, common::all_up(3)).await;
        common::replicas(10, &n.dd, 3).await;
    }
    // No replica has the non-durable key; the durable ones carry on.
    let all = ReadConsistency::All {
        timeout: Duration::from_secs(10),
    };
    assert_eq!(nodes[0].dd.get(&session, all).await, Ok(None));
    let id = nodes[1].id();
    let all_w = WriteConsistency::All {
        timeout: Duration::from_secs(10),
    };
    nodes[1]
        .dd
        .update(&visits, all_w, |c| c.increment(id, 1))
        .await
        .unwrap();
    for n in &nodes {
        assert_eq!(n.dd.local(&visits).unwrap().unwrap().value(), 4);
    }
    for n in &nodes {
        n.cluster.shutdown().await;
    }
}

#[test]
fn durable_keys_survive_a_full_restart_write_through() {
    smol::block_on(restart_keeps_durable_keys(
        "restart-through",
        WriteMode::Through,
    ));
}

#[test]
fn durable_keys_survive_a_full_restart_write_behind() {
    // An hour between commits: only the flush when the replicator stops writes the values.
    smol::block_on(restart_keeps_durable_keys(
        "restart-behind",
        WriteMode::Behind(Duration::from_secs(3600)),
    ));
}

#[test]
fn a_corrupt_store_file_fails_the_start_and_names_the_file() {
    smol::block_on(async {
        let dir = TempDir::new("corrupt");
        let ca = DevCa::new().unwrap();
        let (sockets, addrs) = common::sockets(1);
        let cluster = common::node(
            &ca,
            sockets.into_iter().next().unwrap(),
            &addrs,
            common::config(),
        );
        let hub = Hub::start(&cluster, Smol);

        let garbage = dir.file("garbage.redb");
        let bytes = b"this is not a redb file, just some bytes".repeat(100);
        std::fs::write(&garbage, &bytes).unwrap();
        let empty = dir.file("empty.redb");
        std::fs::write(&empty, b"").unwrap();
        for file in [&garbage, &empty] {
            let settings = durable(file.clone(), WriteMode::Through);
            let err = DistributedData::start(&hub, settings).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.contains(&file.display().to_string()),
                "{shown:?} names {}",
                file.display()
            );
            assert!(
                matches!(err, StartError::Durable(DurableError::Open { .. })),
                "{err:?}"
            );
        }
        assert_eq!(std::fs::read(&garbage).unwrap(), bytes, "left as it was");
        assert_eq!(std::fs::read(&empty).unwrap(), b"", "left as it was");

        // The failed starts left the hub's channel free: a good store starts.
        let good = durable(dir.file("good.redb"), WriteMode::Through);
        let dd = DistributedData::start(&hub, good).unwrap();
        let key: Key<GCounter> = Key::new("cart-1");
        let id = cluster.self_address();
        dd.update(&key, WriteConsistency::Local, |c| c.increment(id, 1))
            .await
            .unwrap();
        cluster.shutdown().await;
    });
}

/// Once a replicator reports that it has stopped (`is_stopped`, its subscriptions ending),
/// its store is closed: the file opens again at once (its lock released) and holds what
/// was written, including write-behind writes that only the flush at stop commits.
#[test]
fn a_stopped_replicator_has_flushed_and_closed_its_store() {
    smol::block_on(async {
        let dir = TempDir::new("stopped");
        let ca = DevCa::new().unwrap();
        for (round, mode) in [
            WriteMode::Behind(Duration::from_secs(3600)),
            WriteMode::Through,
        ]
        .into_iter()
        .enumerate()
        {
            let (sockets, addrs) = common::sockets(1);
            let socket = sockets.into_iter().next().unwrap();
            let file = dir.file(&format!("round-{round}.redb"));
            let node = Node::start(
                &ca,
                socket,
                &addrs,
                common::config(),
                durable(file.clone(), mode),
            );
            common::until(30, "the node Up", &node.cluster, common::all_up(1)).await;
            let key: Key<GCounter> = Key::new("cart-1");
            let id = node.id();
            node.dd
                .update(&key, WriteConsistency::Local, |c| c.increment(id, 1))
                .await
                .unwrap();
            let ended = within(30, "the shutdown", node.cluster.shutdown()).await;
            assert!(matches!(ended, Termination::Stopped(_)), "{ended:?}");
            common::stopped(10, "the replicator", &node.dd).await;
            assert_eq!(stored_keys(&file), ["cart-1"], "{mode:?}");
        }
    });
}

/// A tmpfs of `kib` KiB mounted at `dir` (this harness runs as root, as the multi-host
/// tests do), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, kib: u64) -> SmallDisk {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk(dir.to_path_buf())
    }

    /// Fills the disk with a file; removing it frees the space.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_majority_update_whose_store_it_refused() {
    smol::block_on(async {
        let dir = TempDir::new("full-disk");
        let disk = SmallDisk::mount(dir.path(), 4096);
        let ca = DevCa::new().unwrap();
        let store = dir.file("node.redb");
        let nodes = common::cluster(&ca, 2, common::config(), |i| {
            if i == 0 {
                durable(store.clone(), WriteMode::Through)
            } else {
                common::fast()
            }
        })
        .await;
        let cart: Key<ORSet> = Key::new("cart-ann");
        let id = nodes[0].id();
        let majority = WriteConsistency::Majority {
            timeout: Duration::from_secs(10),
            min_cap: 0,
        };
        nodes[0]
            .dd
            .update(&cart, majority, |s| s.add(id, "fits"))
            .await
            .expect("a write with room on the disk");
        let filler = disk.fill();
        // The store is written at once, the peer acknowledges later: the failure must
        // still reach this update.
        let big = "x".repeat(60_000);
        let failed = nodes[0]
            .dd
            .update(&cart, majority, |s| s.add(id, big.clone()))
            .await;
        assert!(
            matches!(failed, Err(DataError::Store(_))),
            "an unstored durable write succeeded: {failed:?}"
        );
        // In memory and replicated all the same.
        assert_eq!(nodes[0].dd.local(&cart).unwrap().unwrap().len(), 2);
        // Space again: the next write stores the whole entry, and succeeds.
        std::fs::remove_file(filler).unwrap();
        nodes[0]
            .dd
            .update(&cart, majority, |s| s.add(id, "after"))
            .await
            .expect("a write once the disk has room");
        for n in &nodes {
            n.cluster.shutdown().await;
        }
        drop(nodes);
        let mut keys = stored_keys(&store);
        keys.sort();
        assert_eq!(keys, ["cart-ann"]);
        let stored = DurableStore::open(&store).unwrap().load_all().unwrap();
        let envelope: fjell_ddata::replicator::Envelope =
            postcard::from_bytes(&stored[0].1).unwrap();
        let set = ORSet::from_data(envelope.data().unwrap().clone()).unwrap();
        assert_eq!(set.len(), 3, "the store has the entry with every write");
    });
}
