//! Durable storage: the entries of durable keys, kept in one file so they survive a restart of
//! the whole cluster.
//!
//! [`DurableStore`] is a [redb] file with two tables: `entries` (key → the replicator's
//! serialized envelope, opaque here) and `meta` (the format marker [`FORMAT`]). Its calls block;
//! [`DurableWriter`] runs a store on a thread of its own for async callers.
//!
//! # What an acknowledgement means
//!
//! - [`DurableStore::store`], `store_batch`, `remove`: committed, so on disk; it survives a
//!   crash of the process or a power loss.
//! - [`DurableWriter::write`] in [`WriteMode::Through`]: committed, as above.
//! - [`DurableWriter::write`] in [`WriteMode::Behind`]: queued in memory only.
//! - [`DurableWriter::flush`] and [`DurableWriter::close`]: everything queued before the call
//!   is committed, and no write-behind batch failed since the last flush.
//!
//! "Committed" is redb's `Durability::Immediate` with two-phase commit: two `fsync`s per
//! transaction, so a disk that honours `fsync` keeps it. An `Err` from a write means the
//! transaction did not commit and the earlier value stands.
//!
//! **Write-through** ([`WriteMode::Through`]) is Pekko's default and the one to use when an
//! acknowledgement promises durability (Pekko acks a durable write, local or remote, only
//! after the store has replied). Writes that arrive while a commit is running are committed
//! together in the next transaction (group commit), so concurrent writers share the `fsync`s;
//! each still gets its answer only after its own entry is on disk.
//!
//! **Write-behind** ([`WriteMode::Behind`]) trades that promise for throughput: `write`
//! returns once queued, and the thread commits the queue (last value per key wins) in one
//! transaction at most one interval after the first queued write. A crash loses the writes
//! not yet committed: those of the last interval, and of any failed batch still queued. Pekko's LMDB store also replied before writing, but then
//! dropped a failed batch after logging it; here a failed batch is logged at error level,
//! counted ([`DurableWriter::failures`]), kept in the queue and retried the next interval, and
//! reported by the next [`DurableWriter::flush`] or [`DurableWriter::close`]. Besides a crash,
//! only dropping the writer while the disk keeps failing loses queued writes, and that is
//! logged with their count.
//!
//! # What a store refuses to open
//!
//! A store never replaces or empties a file it cannot read: [`DurableStore::open`] fails with
//! the path and a reason for a file that is not a redb file, is truncated (including to zero
//! bytes) or corrupt (redb's integrity check runs at every open), carries another format marker,
//! or is a redb file with tables but no marker. A file open in this or another process is
//! [`DurableError::Locked`] (redb holds an `flock`; Pekko's LMDB store ran with `MDB_NOLOCK`,
//! so two processes could share, and corrupt, one directory). The path is used as given: unlike
//! Pekko's `ddata` directory it never depends on the port.
//!
//! # Example
//!
//! ```
//! use fjell_ddata::durable::{DurableStore, DurableWriter, WriteMode};
//!
//! let dir = std::env::temp_dir().join(format!("fjell-ddata-doc-{}", std::process::id()));
//! let store = DurableStore::open(&dir.join("ddata.redb"))?;
//! let writer = DurableWriter::spawn(store, WriteMode::Through);
//! futures_lite::future::block_on(async {
//!     writer.write("counter".into(), b"envelope".to_vec()).await?; // on disk now
//!     writer.close().await
//! })?;
//!
//! let store = DurableStore::open(&dir.join("ddata.redb"))?;
//! assert_eq!(store.load_all()?, vec![("counter".to_string(), b"envelope".to_vec())]);
//! # drop(store);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), fjell_ddata::durable::DurableError>(())
//! ```
//!
//! # Measuring
//!
//! Writes per second in either mode: time `n` calls of [`DurableWriter::write`] followed by
//! one [`DurableWriter::flush`] (for write-through, also with many writes in flight at once,
//! which group commit batches). [`DurableWriter::commits`] tells how many transactions that
//! took.

// redb's own error type is 160 bytes (one variant holds a read transaction); it is passed
// around only on the failure path, and turned into a small `DurableError` at the edge.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, MultimapTableHandle, ReadableTable, ReadableTableMetadata,
    StorageError, TableDefinition, TableError, TableHandle,
};

/// The format marker this build writes and accepts, kept in the `meta` table under `format`.
/// Change it when the layout of the file or of the stored values changes incompatibly: an old
/// build then refuses the new file instead of misreading it.
pub const FORMAT: &str = "fjell-ddata 1";

/// Longest key accepted, in bytes of UTF-8. Keys are replicated data ids, which are short;
/// the limit keeps a runaway key from bloating every B-tree page that holds it.
pub const MAX_KEY_LEN: usize = 1024;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";

/// redb's default cache is 1 GiB; `load_all` reads every page once, so a large cache would
/// just hold a second copy of the store in memory.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Most writes one write-through transaction takes: bounds the wait of the first writer in it.
const MAX_GROUP: usize = 1024;

/// A durable store call failed. Every variant names the store's file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The file could not be opened or created, or is not a readable redb file (truncated,
    /// corrupt, not redb, unreadable). It was left as it is: move it away to start afresh, or
    /// restore it from a backup.
    #[error("durable store {}: cannot open: {reason}", path.display())]
    Open {
        /// The store's file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is open already, in this process or another (redb locks it). Two writers
    /// would corrupt it, so the second open is refused.
    #[error("durable store {}: already open in this or another process", path.display())]
    Locked {
        /// The store's file.
        path: PathBuf,
    },
    /// The file is a redb file, but not one this build of fjell-ddata wrote: its format
    /// marker differs from [`FORMAT`] or is missing while the file holds tables.
    #[error("durable store {}: not a {FORMAT:?} store: {reason}", path.display())]
    Format {
        /// The store's file.
        path: PathBuf,
        /// The marker found, or what is missing.
        reason: String,
    },
    /// A key is longer than [`MAX_KEY_LEN`] bytes; nothing was written.
    #[error("durable store {}: key of {len} bytes is longer than {MAX_KEY_LEN}", path.display())]
    KeyTooLong {
        /// The store's file.
        path: PathBuf,
        /// The key's length in bytes.
        len: usize,
    },
    /// The disk (or the user's quota) is full; nothing was written. The store retries on the
    /// next call, so writes succeed again once space is freed.
    #[error("durable store {}: no space left on the disk", path.display())]
    Full {
        /// The store's file.
        path: PathBuf,
    },
    /// Reading the entries failed.
    #[error("durable store {}: read failed: {reason}", path.display())]
    Read {
        /// The store's file.
        path: PathBuf,
        /// The error redb reported.
        reason: String,
    },
    /// A write transaction failed and was rolled back; the earlier values stand.
    #[error("durable store {}: write failed: {reason}", path.display())]
    Write {
        /// The store's file.
        path: PathBuf,
        /// The error redb reported.
        reason: String,
    },
    /// The [`DurableWriter`]'s thread has stopped (it panicked), so the write was not made.
    #[error("durable store {}: the writer thread has stopped", path.display())]
    Closed {
        /// The store's file.
        path: PathBuf,
    },
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

/// One redb file holding the entries of durable keys. See the module docs for what it
/// refuses to open and what a successful call guarantees.
///
/// Calls block on disk I/O (a write waits for two `fsync`s); from async code use a
/// [`DurableWriter`]. The store is `Sync`: calls from several threads are serialized.
///
/// After an I/O error (a full disk, say) redb refuses further work on the open file, so the
/// next call reopens it, with the checks of [`DurableStore::open`], and can fail as that does.
#[derive(Debug)]
pub struct DurableStore {
    path: PathBuf,
    /// `None` after an I/O error: redb refuses all further work on a handle that saw one
    /// (`PreviousIo`), so the next call reopens the file instead of failing forever.
    db: Mutex<Option<Database>>,
}

impl DurableStore {
    /// Opens the store at `path`, creating the file (and its parent directories) if missing.
    ///
    /// Runs redb's integrity check, which reads the whole file (about as long as
    /// [`DurableStore::load_all`]: 40 ms for 34 MB, 240 ms for 135 MB on the development VM). Without it a
    /// damaged value page after a clean shutdown is served as if it were valid.
    ///
    /// # Errors
    ///
    /// [`DurableError::Open`] for a file that is not a readable redb file, truncated
    /// (including to zero bytes) or corrupt; [`DurableError::Locked`] if it is open already;
    /// [`DurableError::Format`] for a redb file this build did not write. The file is never
    /// modified in these cases.
    ///
    /// A truncated file makes redb 2.6 panic instead of returning an error; the panic is caught
    /// and becomes [`DurableError::Open`], but the default panic hook still prints it, and
    /// with `panic = "abort"` it ends the process.
    pub fn open(path: &Path) -> Result<DurableStore, DurableError> {
        let db = open_db(path)?;
        Ok(DurableStore {
            path: path.to_path_buf(),
            db: Mutex::new(Some(db)),
        })
    }

    /// The store's file, as given to [`DurableStore::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, in key order.
    ///
    /// # Errors
    ///
    /// [`DurableError::Read`] if redb fails to read the file.
    pub fn load_all(&self) -> Result<Vec<(String, Vec<u8>)>, DurableError> {
        self.with_db(Op::Read, |db| {
            let txn = db.begin_read()?;
            let table = match txn.open_table(ENTRIES) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(err) => return Err(err.into()),
            };
            let mut entries = Vec::with_capacity(table.len()? as usize);
            for entry in table.iter()? {
                let (key, value) = entry?;
                entries.push((key.value().to_string(), value.value().to_vec()));
            }
            Ok(entries)
        })
    }

    /// Stores `value` under `key` in one transaction, committed when this returns.
    ///
    /// # Errors
    ///
    /// [`DurableError::KeyTooLong`], [`DurableError::Full`], or [`DurableError::Write`] for
    /// any other failure; the earlier value stands in each case.
    pub fn store(&self, key: &str, value: &[u8]) -> Result<(), DurableError> {
        self.store_all([(key, value)].into_iter())
    }

    /// Stores all `entries` in one transaction: all or none are committed. A key given twice
    /// keeps its last value.
    ///
    /// # Errors
    ///
    /// As [`DurableStore::store`]; one key that is too long refuses the whole batch.
    pub fn store_batch(&self, entries: &[(String, Vec<u8>)]) -> Result<(), DurableError> {
        self.store_all(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// Removes `key` in one transaction, committed when this returns. Removing a missing key
    /// is not an error.
    ///
    /// # Errors
    ///
    /// As [`DurableStore::store`].
    pub fn remove(&self, key: &str) -> Result<(), DurableError> {
        self.check_key(key)?;
        self.write_txn(|table| {
            table.remove(key)?;
            Ok(())
        })
    }

    fn store_all<'a>(
        &self,
        entries: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> Result<(), DurableError> {
        // Check every key before writing any, so a bad key costs no transaction.
        for (key, _) in entries.clone() {
            self.check_key(key)?;
        }
        self.write_txn(|table| {
            for (key, value) in entries {
                table.insert(key, value)?;
            }
            Ok(())
        })
    }

    fn check_key(&self, key: &str) -> Result<(), DurableError> {
        check_key(&self.path, key)
    }

    fn write_txn(
        &self,
        body: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<(), redb::Error>,
    ) -> Result<(), DurableError> {
        self.with_db(Op::Write, |db| {
            let mut txn = db.begin_write()?;
            // See `commit_marker` for why every commit is two-phase.
            txn.set_two_phase_commit(true);
            {
                let mut table = txn.open_table(ENTRIES)?;
                body(&mut table)?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    fn with_db<T>(
        &self,
        op: Op,
        body: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T, DurableError> {
        // A panic while holding the lock leaves no half-done state of ours behind: redb
        // rolls back an uncommitted transaction when it is dropped.
        let mut slot = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        let db = match &mut *slot {
            Some(db) => db,
            none => none.insert(open_db(&self.path)?),
        };
        body(db).map_err(|err| {
            if matches!(err, redb::Error::Io(_) | redb::Error::PreviousIo) {
                *slot = None;
            }
            self.failure(op, err)
        })
    }

    fn failure(&self, op: Op, err: redb::Error) -> DurableError {
        let path = self.path.clone();
        if let redb::Error::Io(io) = &err {
            if matches!(
                io.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ) {
                return DurableError::Full { path };
            }
        }
        let reason = err.to_string();
        match op {
            Op::Read => DurableError::Read { path, reason },
            Op::Write => DurableError::Write { path, reason },
        }
    }
}

fn check_key(path: &Path, key: &str) -> Result<(), DurableError> {
    if key.len() > MAX_KEY_LEN {
        return Err(DurableError::KeyTooLong {
            path: path.to_path_buf(),
            len: key.len(),
        });
    }
    Ok(())
}

fn open_error(path: &Path, reason: impl Into<String>) -> DurableError {
    DurableError::Open {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

fn open_db(path: &Path) -> Result<Database, DurableError> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(open_error(path, "not a regular file")),
        // redb would initialize an empty file as a new database. A store is created
        // complete (see `create`), so an empty one was truncated: refusing keeps the loss
        // visible instead of starting silently with no data.
        Ok(meta) if meta.len() == 0 => Err(open_error(
            path,
            "the file is empty (0 bytes), so it was truncated; move it away to start with an empty store",
        )),
        Ok(_) => open_existing(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            create(path)?;
            open_existing(path)
        }
        Err(err) => Err(open_error(path, err.to_string())),
    }
}

/// Creates a complete store (format marker written, committed) under a temporary name, then
/// links it into place, so a crash while creating never leaves a half-made file at `path`
/// that the next start would have to refuse.
fn create(path: &Path) -> Result<(), DurableError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent)
        .map_err(|e| open_error(path, format!("cannot create directory: {e}")))?;
    let temp = temp_path(path);
    let made = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| open_error(path, format!("cannot create {}: {e}", temp.display())))?;
        let db = builder()
            .create_file(file)
            .map_err(|e| open_error(path, e.to_string()))?;
        commit_marker(&db).map_err(|e| open_error(path, e.to_string()))
    })();
    if let Err(err) = made {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    // `hard_link` fails if `path` exists, where `rename` would replace it: a process that
    // created the store first keeps its file (and we open that one).
    let linked = match fs::hard_link(&temp, path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        // File systems without hard links: rename is atomic too, only not exclusive.
        Err(_) => fs::rename(&temp, path),
    };
    let _ = fs::remove_file(&temp);
    linked.map_err(|e| open_error(path, format!("cannot move the new file into place: {e}")))?;
    sync_dir(parent).map_err(|e| open_error(path, format!("cannot sync directory: {e}")))
}

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".creating-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// Makes the new directory entry durable: without it a power loss can forget the file even
/// though its contents were synced.
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// Every commit is two-phase (two `fsync`s instead of one). With one-phase commit, redb's
/// recovery after an unclean shutdown checks the last commit's checksums and, if they fail,
/// silently falls back to the commit before: a damaged file then loses acknowledged writes
/// without a word. Two-phase commit makes redb refuse such a file instead.
fn commit_marker(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    {
        txn.open_table(META)?.insert(FORMAT_KEY, FORMAT)?;
        txn.open_table(ENTRIES)?;
    }
    txn.commit()?;
    Ok(())
}

fn open_existing(path: &Path) -> Result<Database, DurableError> {
    let mut db = match catch_panic(|| builder().open(path)) {
        Ok(Ok(db)) => db,
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(DurableError::Locked {
                path: path.to_path_buf(),
            })
        }
        Ok(Err(err)) => return Err(open_error(path, describe_open_error(err))),
        Err(panic) => {
            return Err(open_error(
                path,
                format!("redb panicked reading it ({panic}); the file is probably truncated"),
            ))
        }
    };
    match catch_panic(|| db.check_integrity()) {
        Ok(Ok(true)) => {}
        // With two-phase commits redb cannot have rolled back a commit here (it reports
        // that as corruption), so what it repaired is only its page allocator state.
        Ok(Ok(false)) => tracing::warn!(
            path = %path.display(),
            "durable store: integrity check repaired the page allocator state"
        ),
        Ok(Err(err)) => {
            return Err(open_error(
                path,
                format!("integrity check failed: {}", describe_open_error(err)),
            ))
        }
        Err(panic) => {
            return Err(open_error(
                path,
                format!("redb panicked checking its integrity ({panic}); the file is damaged"),
            ))
        }
    }
    check_format(path, &db)?;
    Ok(db)
}

fn describe_open_error(err: DatabaseError) -> String {
    match err {
        DatabaseError::Storage(StorageError::Io(io)) => match io.kind() {
            // redb reports a wrong magic number as bare InvalidData.
            io::ErrorKind::InvalidData => "not a redb file (no redb header)".to_string(),
            io::ErrorKind::UnexpectedEof => {
                "shorter than a redb header, so truncated or not a redb file".to_string()
            }
            _ => io.to_string(),
        },
        DatabaseError::Storage(StorageError::Corrupted(what)) => format!("corrupt: {what}"),
        other => other.to_string(),
    }
}

fn check_format(path: &Path, db: &Database) -> Result<(), DurableError> {
    let format_error = |reason: String| DurableError::Format {
        path: path.to_path_buf(),
        reason,
    };
    // `None`: no meta table; `Some(None)`: a meta table without the marker.
    let read = |db: &Database| -> Result<Option<Option<String>>, redb::Error> {
        let txn = db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let marker = meta.get(FORMAT_KEY)?.map(|m| m.value().to_string());
        Ok(Some(marker))
    };
    match read(db) {
        Ok(Some(Some(marker))) if marker == FORMAT => Ok(()),
        Ok(Some(Some(marker))) => Err(format_error(format!("its format marker is {marker:?}"))),
        Ok(Some(None)) => Err(format_error("its meta table has no format marker".into())),
        Ok(None) => {
            let tables = db
                .begin_read()
                .map_err(redb::Error::from)
                .and_then(|txn| {
                    let mut names: Vec<String> =
                        txn.list_tables()?.map(|t| t.name().to_string()).collect();
                    names.extend(txn.list_multimap_tables()?.map(|t| t.name().to_string()));
                    Ok(names)
                })
                .map_err(|e| open_error(path, e.to_string()))?;
            if !tables.is_empty() {
                return Err(format_error(format!(
                    "it has no format marker but holds tables {tables:?}"
                )));
            }
            // An empty redb file (created by something else, or by redb itself) holds
            // nothing to misread: adopt it.
            commit_marker(db).map_err(|e| open_error(path, e.to_string()))
        }
        // A `meta` table of other key or value types is someone else's.
        Err(redb::Error::TableTypeMismatch { table, .. }) => {
            Err(format_error(format!("its {table:?} table has other types")))
        }
        Err(err) => Err(open_error(path, err.to_string())),
    }
}

fn catch_panic<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(body)).map_err(|payload| {
        if let Some(message) = payload.downcast_ref::<&str>() {
            (*message).to_string()
        } else if let Some(message) = payload.downcast_ref::<String>() {
            message.clone()
        } else {
            "unknown panic".to_string()
        }
    })
}

pub use crate::settings::WriteMode;

type Reply = async_channel::Sender<Result<(), DurableError>>;

enum Request {
    /// `reply` is `None` in write-behind mode, where the caller does not wait.
    Write {
        key: String,
        value: Vec<u8>,
        reply: Option<Reply>,
    },
    Flush {
        reply: Reply,
    },
    Close {
        reply: Option<Reply>,
    },
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    failures: AtomicU64,
}

/// A [`DurableStore`] on a thread of its own, for async callers; see [`WriteMode`] and the
/// module docs for what a write's `Ok` means in each mode.
///
/// Dropping the writer commits what is queued and waits for the thread, blocking the caller
/// for up to one commit; [`DurableWriter::close`] does the same without blocking and reports
/// whether the last commit succeeded.
#[derive(Debug)]
pub struct DurableWriter {
    requests: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    path: PathBuf,
    mode: WriteMode,
}

impl DurableWriter {
    /// Moves `store` to a new thread that writes in `mode`.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (as `std::thread::spawn`).
    pub fn spawn(store: DurableStore, mode: WriteMode) -> DurableWriter {
        let (requests, inbox) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let path = store.path.clone();
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("fjell-ddata-durable".into())
            .spawn(move || match mode {
                WriteMode::Through => run_through(store, &inbox, &thread_counters),
                WriteMode::Behind(interval) => {
                    run_behind(store, interval, &inbox, &thread_counters)
                }
            })
            .expect("failed to spawn the durable store thread");
        DurableWriter {
            requests,
            thread: Some(thread),
            counters,
            path,
            mode,
        }
    }

    /// Writes `value` under `key`: committed when this returns in [`WriteMode::Through`],
    /// queued in [`WriteMode::Behind`]. Dropping the future does not withdraw a write that
    /// was sent; it only stops waiting for the answer.
    ///
    /// # Errors
    ///
    /// [`DurableError::KeyTooLong`] (checked before queueing, in both modes),
    /// [`DurableError::Closed`] if the thread has stopped, and in write-through mode any
    /// error of [`DurableStore::store`].
    pub async fn write(&self, key: String, value: Vec<u8>) -> Result<(), DurableError> {
        check_key(&self.path, &key)?;
        match self.mode {
            WriteMode::Behind(_) => self.send(Request::Write {
                key,
                value,
                reply: None,
            }),
            WriteMode::Through => {
                let (reply, answer) = async_channel::bounded(1);
                self.send(Request::Write {
                    key,
                    value,
                    reply: Some(reply),
                })?;
                self.answer(answer).await
            }
        }
    }

    /// Commits everything queued now and reports on what was queued since the last flush.
    /// Returns at once in write-through mode, where nothing waits in a queue.
    ///
    /// # Errors
    ///
    /// The error of this commit if it failed; else the first error of a write-behind batch
    /// that failed since the last flush (its entries were kept and are committed now, but a
    /// crash before could have lost them). The entries of a failed commit stay queued, so a
    /// later `flush` that returns `Ok` means all is on disk.
    pub async fn flush(&self) -> Result<(), DurableError> {
        let (reply, answer) = async_channel::bounded(1);
        self.send(Request::Flush { reply })?;
        self.answer(answer).await
    }

    /// Flushes (see [`DurableWriter::flush`]), closes the store (releasing the file lock) and
    /// stops the thread. If the final commit fails the queued writes are lost; the error
    /// says so.
    ///
    /// # Errors
    ///
    /// As [`DurableWriter::flush`].
    pub async fn close(mut self) -> Result<(), DurableError> {
        let (reply, answer) = async_channel::bounded(1);
        self.send(Request::Close { reply: Some(reply) })?;
        let result = self.answer(answer).await;
        // The thread answers after closing the store, so this join waits only for it to exit.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        result
    }

    /// Transactions that failed, in either mode, since the writer started. A failed
    /// write-through commit is also reported to its writers; a failed write-behind batch
    /// only here, in the log, and by the next flush.
    pub fn failures(&self) -> u64 {
        self.counters.failures.load(Ordering::Relaxed)
    }

    /// Transactions committed since the writer started: writes divided by commits is the
    /// batching that group commit or write-behind achieved.
    pub fn commits(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// The mode the writer was spawned with.
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, request: Request) -> Result<(), DurableError> {
        self.requests.send(request).map_err(|_| self.closed())
    }

    async fn answer(
        &self,
        answer: async_channel::Receiver<Result<(), DurableError>>,
    ) -> Result<(), DurableError> {
        answer.recv().await.unwrap_or_else(|_| Err(self.closed()))
    }

    fn closed(&self) -> DurableError {
        DurableError::Closed {
            path: self.path.clone(),
        }
    }
}

impl Drop for DurableWriter {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.requests.send(Request::Close { reply: None });
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "durable store thread panicked");
            }
        }
    }
}

fn respond(reply: Option<Reply>, result: Result<(), DurableError>) {
    if let Some(reply) = reply {
        // The caller may have stopped waiting (its future was dropped); nothing to tell.
        let _ = reply.try_send(result);
    }
}

fn run_through(store: DurableStore, inbox: &mpsc::Receiver<Request>, counters: &Counters) {
    let mut next = None;
    loop {
        let request = match next.take() {
            Some(request) => request,
            None => match inbox.recv() {
                Ok(request) => request,
                Err(mpsc::RecvError) => return,
            },
        };
        match request {
            Request::Write { key, value, reply } => {
                let mut batch = vec![(key, value)];
                let mut replies = vec![reply];
                // Group commit: whatever queued up during the last commit goes in this one.
                while batch.len() < MAX_GROUP {
                    match inbox.try_recv() {
                        Ok(Request::Write { key, value, reply }) => {
                            batch.push((key, value));
                            replies.push(reply);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let result = store.store_batch(&batch);
                count(counters, &result);
                if let Err(err) = &result {
                    tracing::error!(path = %store.path.display(), entries = batch.len(), error = %err,
                        "durable store: write-through commit failed");
                }
                for reply in replies {
                    respond(reply, result.clone());
                }
            }
            // Every write was answered after its commit: nothing is pending.
            Request::Flush { reply } => respond(Some(reply), Ok(())),
            Request::Close { reply } => {
                drop(store);
                respond(reply, Ok(()));
                return;
            }
        }
    }
}

fn count(counters: &Counters, result: &Result<(), DurableError>) {
    let counter = match result {
        Ok(()) => &counters.commits,
        Err(_) => &counters.failures,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The write-behind queue and what failed since the last flush.
struct Behind {
    store: DurableStore,
    /// Last value per key; a `BTreeMap` so a batch writes keys in order, as B-trees like.
    pending: BTreeMap<String, Vec<u8>>,
    /// First failure since the last flush, for the flush to report.
    failed: Option<DurableError>,
}

impl Behind {
    /// Commits the queue in one transaction. On failure the entries stay queued: nothing
    /// newer can have arrived meanwhile, since this thread is the only one adding to it.
    fn commit(&mut self, counters: &Counters) -> Result<(), DurableError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self
            .store
            .store_all(self.pending.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        count(counters, &result);
        match &result {
            Ok(()) => self.pending.clear(),
            Err(err) => {
                tracing::error!(path = %self.store.path.display(), entries = self.pending.len(),
                    error = %err, "durable store: write-behind batch failed; kept for retry");
                self.failed.get_or_insert_with(|| err.clone());
            }
        }
        result
    }

    fn flush(&mut self, counters: &Counters) -> Result<(), DurableError> {
        let result = self.commit(counters);
        let earlier = self.failed.take();
        result.and(earlier.map_or(Ok(()), Err))
    }
}

fn run_behind(
    store: DurableStore,
    interval: Duration,
    inbox: &mpsc::Receiver<Request>,
    counters: &Counters,
) {
    let mut behind = Behind {
        store,
        pending: BTreeMap::new(),
        failed: None,
    };
    // When the queue must be committed; `None` while it is empty, so an idle writer sleeps.
    let mut deadline: Option<Instant> = None;
    loop {
        let request = match deadline {
            None => inbox.recv().ok(),
            Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(request) => Some(request),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // A failed batch is retried one interval later.
                    deadline = behind
                        .commit(counters)
                        .err()
                        .map(|_| Instant::now() + interval);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        // No request: every sender is gone without a Close. That cannot happen while the
        // writer exists (its drop sends one); close all the same.
        match request.unwrap_or(Request::Close { reply: None }) {
            Request::Write { key, value, reply } => {
                behind.pending.insert(key, value);
                deadline.get_or_insert_with(|| Instant::now() + interval);
                respond(reply, Ok(()));
            }
            Request::Flush { reply } => {
                let result = behind.flush(counters);
                deadline = (!behind.pending.is_empty()).then(|| Instant::now() + interval);
                respond(Some(reply), result);
            }
            Request::Close { reply } => {
                let result = behind.flush(counters);
                if !behind.pending.is_empty() {
                    tracing::error!(path = %behind.store.path.display(),
                        entries = behind.pending.len(),
                        "durable store: closing with uncommitted write-behind entries; they are lost");
                }
                drop(behind);
                respond(reply, result);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Failure paths, with a redb backend that fails on demand: a real disk is hard to fill
    //! on cue.

    use super::*;
    use redb::backends::InMemoryBackend;
    use redb::StorageBackend;
    use std::sync::atomic::AtomicBool;

    /// An in-memory redb backend whose writes and syncs fail with "disk full" while `full`.
    #[derive(Debug)]
    struct FullDisk {
        inner: InMemoryBackend,
        full: Arc<AtomicBool>,
    }

    impl FullDisk {
        fn check(&self) -> io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                Err(io::ErrorKind::StorageFull.into())
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for FullDisk {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            self.inner.read(offset, len)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> io::Result<()> {
            self.check()?;
            self.inner.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(test: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!(
                "fjell-ddata-durable-unit-{test}-{}.redb",
                std::process::id()
            ));
            let _ = fs::remove_file(&path);
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    /// A store whose handle sits on a disk that fills when `full` is set. Once a write
    /// fails, the store reopens `path`: a real, empty store, where retries succeed.
    fn store_on_full_disk(path: &Path) -> (DurableStore, Arc<AtomicBool>) {
        drop(DurableStore::open(path).unwrap());
        let full = Arc::new(AtomicBool::new(false));
        let db = builder()
            .create_with_backend(FullDisk {
                inner: InMemoryBackend::new(),
                full: full.clone(),
            })
            .unwrap();
        commit_marker(&db).unwrap();
        let store = DurableStore {
            path: path.to_path_buf(),
            db: Mutex::new(Some(db)),
        };
        (store, full)
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        futures_lite::future::block_on(future)
    }

    #[test]
    fn full_disk_is_reported_and_the_store_reopens() {
        let file = TempFile::new("full");
        let (store, full) = store_on_full_disk(&file.0);
        full.store(true, Ordering::SeqCst);
        let err = store.store("k", b"v").unwrap_err();
        assert_eq!(
            err,
            DurableError::Full {
                path: file.0.clone()
            }
        );
        // The failed handle was dropped; this call reopens the file and succeeds.
        store.store("k", b"v").unwrap();
        assert_eq!(store.load_all().unwrap(), vec![("k".into(), b"v".to_vec())]);
    }

    #[test]
    fn write_through_reports_a_failed_commit_to_the_writer() {
        let file = TempFile::new("through-full");
        let (store, full) = store_on_full_disk(&file.0);
        full.store(true, Ordering::SeqCst);
        let writer = DurableWriter::spawn(store, WriteMode::Through);
        block_on(async {
            let err = writer.write("k".into(), b"v".to_vec()).await.unwrap_err();
            assert!(matches!(err, DurableError::Full { .. }), "{err:?}");
            assert_eq!(writer.failures(), 1);
            writer.write("k".into(), b"v2".to_vec()).await.unwrap();
            // Failures were answered to their writers; nothing is left for a flush.
            writer.close().await.unwrap();
        });
        let store = DurableStore::open(&file.0).unwrap();
        assert_eq!(
            store.load_all().unwrap(),
            vec![("k".into(), b"v2".to_vec())]
        );
    }

    #[test]
    fn failed_write_behind_batch_is_kept_retried_and_reported_by_flush() {
        let file = TempFile::new("behind-full");
        let (store, full) = store_on_full_disk(&file.0);
        full.store(true, Ordering::SeqCst);
        let interval = Duration::from_millis(20);
        let writer = DurableWriter::spawn(store, WriteMode::Behind(interval));
        block_on(writer.write("a".into(), b"1".to_vec())).unwrap();
        // The timed commit fails on the full disk, the retry an interval later reopens the
        // file and succeeds.
        let start = Instant::now();
        while writer.commits() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "no retry");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(writer.failures(), 1);
        block_on(async {
            // The data is safe now, but the failure since the last flush is still reported
            // once.
            let err = writer.flush().await.unwrap_err();
            assert!(matches!(err, DurableError::Full { .. }), "{err:?}");
            writer.flush().await.unwrap();
            writer.close().await.unwrap();
        });
        let store = DurableStore::open(&file.0).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![("a".into(), b"1".to_vec())]);
    }

    #[test]
    fn flush_reports_its_own_failed_commit_and_keeps_the_entries() {
        let file = TempFile::new("behind-flush-full");
        let (store, full) = store_on_full_disk(&file.0);
        full.store(true, Ordering::SeqCst);
        let writer = DurableWriter::spawn(store, WriteMode::Behind(Duration::from_secs(3600)));
        block_on(async {
            writer.write("a".into(), b"1".to_vec()).await.unwrap();
            writer.write("b".into(), b"2".to_vec()).await.unwrap();
            let err = writer.flush().await.unwrap_err();
            assert!(matches!(err, DurableError::Full { .. }), "{err:?}");
            assert_eq!((writer.commits(), writer.failures()), (0, 1));
            // Newer value for a kept key: last value wins over the kept one.
            writer.write("a".into(), b"3".to_vec()).await.unwrap();
            writer.flush().await.unwrap();
            assert_eq!((writer.commits(), writer.failures()), (1, 1));
            writer.close().await.unwrap();
        });
        let store = DurableStore::open(&file.0).unwrap();
        assert_eq!(
            store.load_all().unwrap(),
            vec![("a".into(), b"3".to_vec()), ("b".into(), b"2".to_vec())]
        );
    }
}
