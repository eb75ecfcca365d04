//! The durable store: round trips, write modes, and the files it must refuse to open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjell_ddata::durable::{DurableError, DurableStore, DurableWriter, WriteMode, MAX_KEY_LEN};
use futures_lite::future::block_on;

/// A directory under the system temp dir, unique to one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "fjell-ddata-durable-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(key: &str, value: &[u8]) -> (String, Vec<u8>) {
    (key.to_string(), value.to_vec())
}

fn load(path: &Path) -> Vec<(String, Vec<u8>)> {
    DurableStore::open(path).unwrap().load_all().unwrap()
}

/// A store with a few entries, closed.
fn make_store(path: &Path) {
    let store = DurableStore::open(path).unwrap();
    for i in 0..200 {
        store
            .store(
                &format!("key-{i:03}"),
                format!("value {i}").repeat(20).as_bytes(),
            )
            .unwrap();
    }
}

/// `err` is an open refusal whose message names `path`.
fn assert_refused(err: &DurableError, path: &Path) {
    assert!(
        matches!(err, DurableError::Open { .. } | DurableError::Format { .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "{shown:?} does not name {}",
        path.display()
    );
}

#[test]
fn round_trip_store_load_remove() {
    let dir = TempDir::new("round-trip");
    let store = DurableStore::open(&dir.file("s.redb")).unwrap();
    assert_eq!(store.load_all().unwrap(), vec![]);
    store.store("b", b"2").unwrap();
    store.store("a", b"1").unwrap();
    store.store("empty", b"").unwrap();
    assert_eq!(
        store.load_all().unwrap(),
        vec![entry("a", b"1"), entry("b", b"2"), entry("empty", b"")]
    );
    store.store("a", b"one").unwrap();
    store.remove("b").unwrap();
    store.remove("never-stored").unwrap();
    assert_eq!(
        store.load_all().unwrap(),
        vec![entry("a", b"one"), entry("empty", b"")]
    );
    assert_eq!(store.path(), dir.file("s.redb"));
}

#[test]
fn survives_reopen() {
    let dir = TempDir::new("reopen");
    // Parent directories are created as needed.
    let path = dir.file("nested/deeper/s.redb");
    {
        let store = DurableStore::open(&path).unwrap();
        store.store("k", &[0, 1, 2, 255]).unwrap();
        store.store("gone", b"x").unwrap();
        store.remove("gone").unwrap();
    }
    assert_eq!(load(&path), vec![entry("k", &[0, 1, 2, 255])]);
    // No temporary file of the creation is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("s.redb")]);
}

#[test]
fn batch_is_one_transaction_and_last_value_wins() {
    let dir = TempDir::new("batch");
    let path = dir.file("s.redb");
    let store = DurableStore::open(&path).unwrap();
    store
        .store_batch(&[entry("x", b"1"), entry("y", b"2"), entry("x", b"3")])
        .unwrap();
    assert_eq!(
        store.load_all().unwrap(),
        vec![entry("x", b"3"), entry("y", b"2")]
    );
    // One bad key refuses the whole batch: nothing of it is written.
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let err = store
        .store_batch(&[entry("z", b"4"), (long, b"5".to_vec())])
        .unwrap_err();
    assert!(
        matches!(err, DurableError::KeyTooLong { len, .. } if len == MAX_KEY_LEN + 1),
        "{err:?}"
    );
    drop(store);
    assert_eq!(load(&path), vec![entry("x", b"3"), entry("y", b"2")]);
}

#[test]
fn key_length_limit() {
    let dir = TempDir::new("key-limit");
    let store = DurableStore::open(&dir.file("s.redb")).unwrap();
    store.store(&"k".repeat(MAX_KEY_LEN), b"fits").unwrap();
    let err = store
        .store(&"k".repeat(MAX_KEY_LEN + 1), b"too long")
        .unwrap_err();
    assert!(matches!(err, DurableError::KeyTooLong { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.0.display().to_string()));
    let err = store.remove(&"k".repeat(MAX_KEY_LEN + 1)).unwrap_err();
    assert!(matches!(err, DurableError::KeyTooLong { .. }), "{err:?}");
    assert_eq!(store.load_all().unwrap().len(), 1);
}

#[test]
fn write_through_commits_before_returning() {
    let dir = TempDir::new("through");
    let path = dir.file("s.redb");
    let writer = DurableWriter::spawn(DurableStore::open(&path).unwrap(), WriteMode::Through);
    assert_eq!(writer.mode(), WriteMode::Through);
    block_on(async {
        for i in 0..5u8 {
            writer.write(format!("k{i}"), vec![i]).await.unwrap();
            // One write in flight at a time: each has its own commit, done before `write`
            // returned.
            assert_eq!(writer.commits(), u64::from(i) + 1);
        }
        let err = writer
            .write("k".repeat(MAX_KEY_LEN + 1), vec![])
            .await
            .unwrap_err();
        assert!(matches!(err, DurableError::KeyTooLong { .. }), "{err:?}");
        writer.flush().await.unwrap();
        writer.close().await.unwrap();
    });
    let expected: Vec<_> = (0..5u8).map(|i| (format!("k{i}"), vec![i])).collect();
    assert_eq!(load(&path), expected);
}

#[test]
fn write_through_concurrent_writers_all_land() {
    let dir = TempDir::new("through-concurrent");
    let path = dir.file("s.redb");
    let writer = Arc::new(DurableWriter::spawn(
        DurableStore::open(&path).unwrap(),
        WriteMode::Through,
    ));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    block_on(writer.write(format!("t{t}-{i:02}"), vec![t, i])).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let commits = writer.commits();
    assert!((1..=100).contains(&commits), "{commits} commits");
    assert_eq!(writer.failures(), 0);
    drop(writer);
    let loaded = load(&path);
    assert_eq!(loaded.len(), 100);
    for t in 0..4u8 {
        for i in 0..25u8 {
            assert!(loaded.contains(&(format!("t{t}-{i:02}"), vec![t, i])));
        }
    }
}

#[test]
fn write_behind_queues_and_last_value_wins() {
    let dir = TempDir::new("behind");
    let path = dir.file("s.redb");
    let hour = Duration::from_secs(3600);
    let writer = DurableWriter::spawn(DurableStore::open(&path).unwrap(), WriteMode::Behind(hour));
    block_on(async {
        writer.write("a".into(), b"1".to_vec()).await.unwrap();
        writer.write("b".into(), b"2".to_vec()).await.unwrap();
        writer.write("a".into(), b"3".to_vec()).await.unwrap();
        // Queued, not written: the interval is an hour away.
        assert_eq!(writer.commits(), 0);
        writer.close().await.unwrap();
    });
    assert_eq!(load(&path), vec![entry("a", b"3"), entry("b", b"2")]);
}

#[test]
fn write_behind_flush_commits_the_queue_in_one_transaction() {
    let dir = TempDir::new("behind-flush");
    let path = dir.file("s.redb");
    let writer = DurableWriter::spawn(
        DurableStore::open(&path).unwrap(),
        WriteMode::Behind(Duration::from_secs(3600)),
    );
    block_on(async {
        for i in 0..100u32 {
            writer
                .write(format!("k{}", i % 10), i.to_le_bytes().to_vec())
                .await
                .unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(writer.commits(), 1);
        // Nothing queued: a flush commits nothing.
        writer.flush().await.unwrap();
        assert_eq!(writer.commits(), 1);
    });
    drop(writer);
    let expected: Vec<_> = (90..100u32)
        .map(|i| (format!("k{}", i % 10), i.to_le_bytes().to_vec()))
        .collect();
    assert_eq!(load(&path), expected);
}

#[test]
fn write_behind_commits_after_the_interval() {
    let dir = TempDir::new("behind-interval");
    let path = dir.file("s.redb");
    let writer = DurableWriter::spawn(
        DurableStore::open(&path).unwrap(),
        WriteMode::Behind(Duration::from_millis(50)),
    );
    let queued = Instant::now();
    block_on(writer.write("k".into(), b"v".to_vec())).unwrap();
    while writer.commits() == 0 {
        assert!(
            queued.elapsed() < Duration::from_secs(10),
            "no commit 10 s after a write with a 50 ms interval"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(queued.elapsed() >= Duration::from_millis(50));
    assert_eq!(writer.commits(), 1);
    drop(writer);
    assert_eq!(load(&path), vec![entry("k", b"v")]);
}

#[test]
fn dropping_a_writer_flushes_it() {
    let dir = TempDir::new("behind-drop");
    let path = dir.file("s.redb");
    let writer = DurableWriter::spawn(
        DurableStore::open(&path).unwrap(),
        WriteMode::Behind(Duration::from_secs(3600)),
    );
    block_on(writer.write("k".into(), b"v".to_vec())).unwrap();
    drop(writer);
    // The drop waited for the thread, which released the file: it opens at once.
    assert_eq!(load(&path), vec![entry("k", b"v")]);
}

#[test]
fn second_open_is_locked() {
    let dir = TempDir::new("locked");
    let path = dir.file("s.redb");
    let first = DurableStore::open(&path).unwrap();
    first.store("k", b"v").unwrap();
    let err = DurableStore::open(&path).unwrap_err();
    assert_eq!(err, DurableError::Locked { path: path.clone() });
    assert!(err.to_string().contains(&path.display().to_string()));
    // A writer holds the lock too.
    let writer = DurableWriter::spawn(first, WriteMode::Through);
    assert!(matches!(
        DurableStore::open(&path),
        Err(DurableError::Locked { .. })
    ));
    drop(writer);
    assert_eq!(load(&path), vec![entry("k", b"v")]);
}

#[test]
fn garbage_file_is_refused_and_left_alone() {
    let dir = TempDir::new("garbage");
    let path = dir.file("s.redb");
    // xorshift: random-looking bytes without a dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = DurableStore::open(&path).unwrap_err();
    assert_refused(&err, &path);
    assert!(err.to_string().contains("not a redb file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn truncated_file_is_refused_and_left_alone() {
    let dir = TempDir::new("truncated");
    let path = dir.file("s.redb");
    make_store(&path);
    let whole = std::fs::read(&path).unwrap();
    let len = whole.len();
    // Half is the interesting cut: redb 2.6 panics on it (caught by the store). The others
    // cover the header itself cut short, and an empty file, which redb would take for a new
    // database.
    for cut in [len / 2, len - 1, 4096, 100, 5, 0] {
        std::fs::write(&path, &whole[..cut]).unwrap();
        let err = DurableStore::open(&path).unwrap_err();
        assert_refused(&err, &path);
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            cut,
            "cut {cut} was modified"
        );
        if cut == 0 {
            assert!(err.to_string().contains("empty"), "{err}");
        }
    }
    // The whole file still opens: the refusals were about the cuts.
    std::fs::write(&path, &whole).unwrap();
    assert_eq!(load(&path).len(), 200);
}

#[test]
fn corrupt_value_is_refused() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("s.redb");
    make_store(&path);
    {
        let store = DurableStore::open(&path).unwrap();
        store
            .store("last", b"DISTINCTIVE-VALUE-0123456789")
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let hits = flip(&mut bytes, b"DISTINCTIVE-VALUE-0123456789");
    assert!(hits > 0, "value not found in the file");
    std::fs::write(&path, &bytes).unwrap();
    // Without the integrity check redb serves the damaged value as if it were valid.
    let err = DurableStore::open(&path).unwrap_err();
    assert_refused(&err, &path);
    assert!(err.to_string().contains("integrity"), "{err}");
}

/// Damages every copy of `pattern` in `bytes`; returns how many there were.
fn flip(bytes: &mut [u8], pattern: &[u8]) -> usize {
    let hits: Vec<usize> = bytes
        .windows(pattern.len())
        .enumerate()
        .filter(|(_, w)| *w == pattern)
        .map(|(i, _)| i)
        .collect();
    for &at in &hits {
        bytes[at] ^= 0xff;
    }
    hits.len()
}

const CRASH_CHILD: &str = "FJELL_DDATA_DURABLE_CRASH_CHILD";

/// After a crash (the process exits without closing the store), damage to the last commit
/// must be refused, not rolled back to the commit before: that would drop an acknowledged
/// write without a word, and is what redb does with one-phase commits.
#[test]
fn corrupt_last_commit_after_a_crash_is_refused() {
    if let Some(path) = std::env::var_os(CRASH_CHILD) {
        let store = DurableStore::open(Path::new(&path)).unwrap();
        // Enough history that the commit before the last is a valid one to fall back to
        // (with fewer commits one-phase redb panics in its repair instead).
        for i in 0..50 {
            store.store(&format!("k{i:02}"), &[i; 300]).unwrap();
        }
        store.store("last", b"LAST-COMMIT-0123456789").unwrap();
        std::process::exit(0);
    }
    let dir = TempDir::new("crash");
    let path = dir.file("s.redb");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "corrupt_last_commit_after_a_crash_is_refused",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, &path)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // Undamaged, the crashed store opens with both writes.
    let copy = dir.file("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    let loaded = load(&copy);
    assert_eq!(loaded.len(), 51);
    assert_eq!(loaded[50], entry("last", b"LAST-COMMIT-0123456789"));
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(flip(&mut bytes, b"LAST-COMMIT-0123456789") > 0);
    std::fs::write(&path, &bytes).unwrap();
    let err = DurableStore::open(&path).unwrap_err();
    assert_refused(&err, &path);
}

#[test]
fn wrong_format_marker_is_refused() {
    use redb::{Database, TableDefinition};
    let meta: TableDefinition<&str, &str> = TableDefinition::new("meta");
    let dir = TempDir::new("marker");

    let path = dir.file("future.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(meta)
            .unwrap()
            .insert("format", "fjell-ddata 999")
            .unwrap();
        txn.commit().unwrap();
    }
    let err = DurableStore::open(&path).unwrap_err();
    assert!(matches!(err, DurableError::Format { .. }), "{err:?}");
    assert_refused(&err, &path);
    assert!(err.to_string().contains("fjell-ddata 999"), "{err}");

    // Someone else's redb file: tables but no marker.
    let path = dir.file("other.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<u64, u64> = TableDefinition::new("accounts");
        txn.open_table(other).unwrap().insert(1, 100).unwrap();
        txn.commit().unwrap();
    }
    let err = DurableStore::open(&path).unwrap_err();
    assert!(matches!(err, DurableError::Format { .. }), "{err:?}");
    assert!(err.to_string().contains("accounts"), "{err}");

    // A `meta` table of other types is someone else's too.
    let path = dir.file("other-meta.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<u64, u64> = TableDefinition::new("meta");
        txn.open_table(other).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
    }
    let err = DurableStore::open(&path).unwrap_err();
    assert!(matches!(err, DurableError::Format { .. }), "{err:?}");

    // An empty redb file holds nothing to misread: it is adopted.
    let path = dir.file("empty.redb");
    drop(Database::create(&path).unwrap());
    let store = DurableStore::open(&path).unwrap();
    store.store("k", b"v").unwrap();
    drop(store);
    assert_eq!(load(&path), vec![entry("k", b"v")]);
}

#[test]
fn a_directory_is_refused() {
    let dir = TempDir::new("directory");
    let path = dir.file("s.redb");
    std::fs::create_dir(&path).unwrap();
    let err = DurableStore::open(&path).unwrap_err();
    assert_refused(&err, &path);
}
