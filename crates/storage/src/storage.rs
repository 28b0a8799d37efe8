//! The [`Storage`] handle: open, append, read, snapshots, metadata.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::error::{Result, StorageError};
use crate::lock::DirLock;
use crate::schema::{self, MIGRATIONS};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "node.sqlite";

/// Sequence number of a state change in the write-ahead log.
///
/// Assigned by the storage, starting at 1, strictly increasing in commit order and
/// never reused (not even after pruning). `Seq(0)` means "before the first state
/// change": `state_changes_after(Seq::ZERO)` is the whole log, and a snapshot at
/// `Seq::ZERO` is a snapshot of the initial state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first state change.
    pub const ZERO: Seq = Seq(0);

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn to_sql(self) -> Result<i64> {
        i64::try_from(self.0).map_err(|_| StorageError::SeqOutOfRange(self.0))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How SQLite syncs commits to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `synchronous=FULL`: every commit is fsynced before it returns. Required for the
    /// durability contract of this crate. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits survive a process crash (SIGKILL) but the last
    /// ones may be lost on power failure or a kernel crash. **Breaks the contract**
    /// that an acknowledged append survives anything; only for tests and benchmarks.
    Normal,
}

/// Options for [`Storage::open`].
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// How many snapshots to keep (the newest ones). At least 1; default 2.
    pub keep_snapshots: usize,
    /// How long SQLite waits for a lock held by another connection. Default 5 s.
    pub busy_timeout: Duration,
    /// Commit durability. Default [`SyncMode::Full`].
    pub sync_mode: SyncMode,
    /// Whether [`Storage::prune_before`] may delete old state changes. Default `false`:
    /// the log keeps every input (and with it every balance proof) forever.
    pub allow_prune: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            keep_snapshots: 2,
            busy_timeout: Duration::from_secs(5),
            sync_mode: SyncMode::Full,
            allow_prune: false,
        }
    }
}

/// One logged input, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// Its sequence number.
    pub seq: Seq,
    /// Wall-clock time of the commit, milliseconds since the Unix epoch (informational).
    pub timestamp_ms: i64,
    /// The serialized state change, exactly as appended.
    pub data: Vec<u8>,
}

/// A stored snapshot of the engine state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The state includes every state change up to and including this one.
    pub seq: Seq,
    /// Wall-clock time it was written, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The serialized state, exactly as written.
    pub data: Vec<u8>,
}

/// What a restarting node needs: the newest snapshot and every state change after it.
///
/// Replay = deserialize `snapshot` (or start from the initial state if `None`), then
/// feed `state_changes` in order through the engine. Events are not re-executed;
/// pending work is re-derived from the resulting state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The newest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Every state change after the snapshot's seq (or the whole log), in order, gap-free.
    pub state_changes: Vec<StateChange>,
}

impl Recovery {
    /// The seq the node's state is at after replay.
    pub fn last_seq(&self) -> Seq {
        self.state_changes
            .last()
            .map(|s| s.seq)
            .or(self.snapshot.as_ref().map(|s| s.seq))
            .unwrap_or(Seq::ZERO)
    }
}

/// One append: a serialized state change, the events it caused, and metadata to set in
/// the same transaction. Owned, so it can be queued to a [`crate::GroupCommitter`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The serialized state change (input).
    pub state_change: Vec<u8>,
    /// The serialized events it caused, in order.
    pub events: Vec<Vec<u8>>,
    /// `(key, value)` metadata to upsert atomically with it (e.g. the chain cursor).
    pub meta: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// An entry with a state change and no events.
    pub fn new(state_change: impl Into<Vec<u8>>) -> Self {
        Self {
            state_change: state_change.into(),
            events: Vec::new(),
            meta: Vec::new(),
        }
    }

    /// Adds an event.
    pub fn with_event(mut self, event: impl Into<Vec<u8>>) -> Self {
        self.events.push(event.into());
        self
    }

    /// Adds a metadata upsert.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }
}

/// The node's durable storage in one data directory. See the crate documentation for
/// the durability contract.
///
/// All methods take `&self`; writes are serialized internally, reads use a separate
/// connection and see the last committed state. `Storage` is `Send + Sync`.
pub struct Storage {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) db_path: PathBuf,
    keep_snapshots: usize,
    allow_prune: bool,
    pub(crate) writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    pub(crate) committer_running: AtomicBool,
    // Dropped last: the connections close before the directory lock is released.
    _lock: DirLock,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Maps an SQLite error, classifying corruption as [`StorageError::Corrupt`].
pub(crate) fn sql_err(op: &'static str, path: &Path, source: rusqlite::Error) -> StorageError {
    let corrupt = match &source {
        rusqlite::Error::SqliteFailure(e, _) => {
            matches!(e.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        }
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => true,
        _ => false,
    };
    if corrupt {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{op}: {source}"),
        }
    } else {
        StorageError::Sqlite {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the guard leaves no half-done transaction behind
    // (rusqlite rolls back on drop), so the connection is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Storage {
    /// Opens (creating if needed) the data directory `dir`.
    ///
    /// Creates `dir` and `dir/node.sqlite`, takes the exclusive lock on `dir/LOCK` for
    /// the life of the returned value, sets WAL mode and the sync mode, and migrates the
    /// schema to [`crate::SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`StorageError::Locked`] if another `Storage` holds the directory (in any process),
    /// [`StorageError::SchemaTooNew`] if a newer build wrote the database,
    /// [`StorageError::NotOurDatabase`] / [`StorageError::Corrupt`] if the file is not a
    /// valid node database, [`StorageError::Io`] / [`StorageError::Sqlite`] otherwise.
    pub fn open(dir: &Path, options: StorageOptions) -> Result<Storage> {
        if options.keep_snapshots == 0 {
            return Err(StorageError::InvalidOption(
                "keep_snapshots must be at least 1",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            op: "create data directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = DirLock::acquire(dir)?;
        let db_path = dir.join(DB_FILE);
        let created = !db_path.exists();
        let e = |op| {
            let p = db_path.clone();
            move |source| sql_err(op, &p, source)
        };

        let mut writer = Connection::open(&db_path).map_err(e("open"))?;
        writer
            .busy_timeout(options.busy_timeout)
            .map_err(e("set busy_timeout"))?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(e("set journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Corrupt {
                path: db_path.clone(),
                detail: format!("could not switch to WAL mode (journal_mode is {mode})"),
            });
        }
        let sync = match options.sync_mode {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        };
        writer
            .pragma_update(None, "synchronous", sync)
            .map_err(e("set synchronous"))?;
        schema::migrate(&mut writer, &db_path, MIGRATIONS)?;
        if created {
            sync_dir(dir)?;
        }

        let reader = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(e("open reader"))?;
        reader
            .busy_timeout(options.busy_timeout)
            .map_err(e("set busy_timeout"))?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(e("set query_only"))?;

        Ok(Storage {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db_path,
                keep_snapshots: options.keep_snapshots,
                allow_prune: options.allow_prune,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                committer_running: AtomicBool::new(false),
                _lock: lock,
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The database file (`dir/node.sqlite`).
    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// The schema version of the open database (always [`crate::SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> Result<u32> {
        schema::read_version(&lock(&self.inner.reader), &self.inner.db_path)
    }

    /// Appends a state change and the events it caused in one durable transaction and
    /// returns its seq. When this returns `Ok`, the append survives a crash.
    pub fn append(&self, state_change: &[u8], events: &[&[u8]]) -> Result<Seq> {
        self.append_with_meta(state_change, events, &[])
    }

    /// Like [`append`](Self::append), and also upserts `meta` in the same transaction.
    pub fn append_with_meta(
        &self,
        state_change: &[u8],
        events: &[&[u8]],
        meta: &[(&str, &[u8])],
    ) -> Result<Seq> {
        let seq = self.inner.write("append", |tx, ts| {
            insert_entry(
                tx,
                ts,
                state_change,
                events.iter().copied(),
                meta.iter().map(|(k, v)| (*k, *v)),
            )
        })?;
        self.inner.seq_from(seq)
    }

    /// Appends several entries in one durable transaction (one fsync); returns their
    /// seqs, consecutive and in order. This is what the group committer does per batch.
    pub fn append_batch(&self, entries: &[Entry]) -> Result<Vec<Seq>> {
        self.inner.append_batch(entries)
    }

    /// The seq of the newest state change, or `Seq::ZERO` if the log is empty.
    pub fn last_seq(&self) -> Result<Seq> {
        let conn = lock(&self.inner.reader);
        self.inner.last_seq_on(&conn, "last_seq")
    }

    /// One state change, if present.
    pub fn state_change(&self, seq: Seq) -> Result<Option<StateChange>> {
        let s = seq.to_sql()?;
        let conn = lock(&self.inner.reader);
        let e = self.inner.e("read state change");
        let mut stmt = conn
            .prepare_cached("SELECT seq, timestamp_ms, data FROM state_changes WHERE seq = ?1")
            .map_err(&e)?;
        let row = stmt
            .query_row([s], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(&e)?;
        row.map(|(seq, ts, data)| {
            Ok(StateChange {
                seq: self.inner.seq_from(seq)?,
                timestamp_ms: ts,
                data,
            })
        })
        .transpose()
    }

    /// Every state change with seq greater than `after`, in order.
    pub fn state_changes_after(&self, after: Seq) -> Result<Vec<StateChange>> {
        self.state_changes_page(after, usize::MAX)
    }

    /// At most `limit` state changes with seq greater than `after`, in order. Page
    /// through a long log with `after = last returned seq`.
    pub fn state_changes_page(&self, after: Seq, limit: usize) -> Result<Vec<StateChange>> {
        let conn = lock(&self.inner.reader);
        self.inner.state_changes_on(&conn, after, limit)
    }

    /// The events logged with state change `seq`, in order (empty if none or unknown).
    pub fn events_of(&self, seq: Seq) -> Result<Vec<Vec<u8>>> {
        let s = seq.to_sql()?;
        let conn = lock(&self.inner.reader);
        let e = self.inner.e("read events");
        let mut stmt = conn
            .prepare_cached("SELECT idx, data FROM events WHERE state_change_seq = ?1 ORDER BY idx")
            .map_err(&e)?;
        let rows = stmt
            .query_map([s], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(&e)?;
        let mut out = Vec::new();
        for row in rows {
            let (idx, data) = row.map_err(&e)?;
            if usize::try_from(idx).ok() != Some(out.len()) {
                return Err(self.inner.corrupt(format!(
                    "events of seq {seq}: index {idx} where {} expected",
                    out.len()
                )));
            }
            out.push(data);
        }
        Ok(out)
    }

    /// Writes a snapshot of the state after state change `seq`, atomically, and deletes
    /// all but the newest [`StorageOptions::keep_snapshots`]. Replaces a snapshot at the
    /// same seq. `seq` must already be in the log ([`StorageError::SnapshotAhead`]).
    pub fn write_snapshot(&self, seq: Seq, data: &[u8]) -> Result<()> {
        let s = seq.to_sql()?;
        let keep = i64::try_from(self.inner.keep_snapshots).unwrap_or(i64::MAX);
        let inner = &self.inner;
        inner.write_result("write snapshot", |tx, ts| {
            let last = inner.last_seq_on(tx, "write snapshot")?;
            if seq > last {
                return Err(StorageError::SnapshotAhead { seq, last });
            }
            let e = inner.e("write snapshot");
            tx.prepare_cached("INSERT OR REPLACE INTO snapshots (seq, timestamp_ms, data) VALUES (?1, ?2, ?3)")
                .and_then(|mut st| st.execute(params![s, ts, data]))
                .map_err(&e)?;
            tx.prepare_cached(
                "DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?1)",
            )
            .and_then(|mut st| st.execute([keep]))
            .map_err(&e)?;
            Ok(())
        })
    }

    /// The newest snapshot, if any.
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>> {
        let conn = lock(&self.inner.reader);
        self.inner.latest_snapshot_on(&conn)
    }

    /// The seqs of the stored snapshots, newest first.
    pub fn snapshot_seqs(&self) -> Result<Vec<Seq>> {
        let conn = lock(&self.inner.reader);
        self.inner.snapshot_seqs_on(&conn)
    }

    /// Everything a restarting node needs, read in one consistent transaction: the
    /// newest snapshot and every state change after it. Checks that the state changes
    /// follow the snapshot without a gap ([`StorageError::Corrupt`] otherwise).
    pub fn recover(&self) -> Result<Recovery> {
        let mut conn = lock(&self.inner.reader);
        let tx = conn
            .transaction()
            .map_err(self.inner.e("begin recovery read"))?;
        let snapshot = self.inner.latest_snapshot_on(&tx)?;
        let from = snapshot.as_ref().map_or(Seq::ZERO, |s| s.seq);
        let state_changes = self.inner.state_changes_on(&tx, from, usize::MAX)?;
        drop(tx);
        for (expect, sc) in (from.0 + 1..).zip(&state_changes) {
            if sc.seq.0 != expect {
                return Err(self.inner.corrupt(format!(
                    "replay after snapshot seq {from} needs seq {expect}, but the next stored is {}",
                    sc.seq
                )));
            }
        }
        Ok(Recovery {
            snapshot,
            state_changes,
        })
    }

    /// Upserts one metadata value, durably, in its own transaction.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner
            .write("put meta", |tx, _| upsert_meta(tx, key, value))
    }

    /// Reads one metadata value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = lock(&self.inner.reader);
        let e = self.inner.e("get meta");
        let mut stmt = conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .map_err(&e)?;
        stmt.query_row([key], |r| r.get(0)).optional().map_err(&e)
    }

    /// Deletes one metadata value; returns whether it existed.
    pub fn delete_meta(&self, key: &str) -> Result<bool> {
        self.inner.write("delete meta", |tx, _| {
            Ok(tx.execute("DELETE FROM meta WHERE key = ?1", [key])? > 0)
        })
    }

    /// Deletes state changes (and their events) with seq less than `before`; returns how
    /// many state changes were deleted.
    ///
    /// Refused unless [`StorageOptions::allow_prune`] is set, and refused unless `before`
    /// is at most the seq of the **second-newest** snapshot, so that even if the newest
    /// snapshot turned out unusable, replay from the one before it still has every state
    /// change it needs. Balance proofs live in the log: prune only when the snapshots
    /// carry every proof the node may still have to present.
    pub fn prune_before(&self, before: Seq) -> Result<u64> {
        if !self.inner.allow_prune {
            return Err(StorageError::PruneDisabled);
        }
        let b = before.to_sql()?;
        let inner = &self.inner;
        inner.write_result("prune", |tx, _| {
            let seqs = inner.snapshot_seqs_on(tx)?;
            let limit = seqs.get(1).copied();
            if limit.is_none_or(|l| before > l) {
                return Err(StorageError::PruneUnsafe {
                    requested: before,
                    limit,
                });
            }
            let e = inner.e("prune");
            tx.execute("DELETE FROM events WHERE state_change_seq < ?1", [b])
                .map_err(&e)?;
            let n = tx
                .execute("DELETE FROM state_changes WHERE seq < ?1", [b])
                .map_err(&e)?;
            Ok(n as u64)
        })
    }

    /// Checks the database: SQLite's `quick_check`, a gap-free log that reaches back to
    /// the oldest point replay may start from, and well-formed event lists.
    pub fn check_integrity(&self) -> Result<()> {
        let mut conn = lock(&self.inner.reader);
        let inner = &self.inner;
        let e = inner.e("check integrity");
        let tx = conn.transaction().map_err(&e)?;
        let qc: String = tx
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(&e)?;
        if qc != "ok" {
            return Err(inner.corrupt(format!("quick_check: {qc}")));
        }
        let (min, max, count): (Option<i64>, Option<i64>, i64) = tx
            .query_row(
                "SELECT MIN(seq), MAX(seq), COUNT(*) FROM state_changes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(&e)?;
        let oldest_snapshot = inner.snapshot_seqs_on(&tx)?.last().copied();
        if let (Some(min), Some(max)) = (min, max) {
            if min < 1 || max - min + 1 != count {
                return Err(
                    inner.corrupt(format!("log has gaps: seqs {min}..={max} but {count} rows"))
                );
            }
            let start = oldest_snapshot.map_or(0, |s| s.0);
            if inner.seq_from(min)?.0 > start + 1 {
                return Err(inner.corrupt(format!(
                    "log starts at seq {min}, replay may need seq {}",
                    start + 1
                )));
            }
        }
        let last = max.unwrap_or(0);
        let seq_row: Option<i64> = tx
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'state_changes'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&e)?;
        if seq_row.unwrap_or(0) != last && max.is_some() {
            return Err(inner.corrupt(format!(
                "sequence counter {} but last seq {last}",
                seq_row.unwrap_or(0)
            )));
        }
        let orphan: Option<i64> = tx
            .query_row(
                "SELECT state_change_seq FROM events WHERE state_change_seq NOT IN (SELECT seq FROM state_changes) LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&e)?;
        if let Some(o) = orphan {
            return Err(inner.corrupt(format!("events of missing state change {o}")));
        }
        let bad: Option<i64> = tx
            .query_row(
                "SELECT state_change_seq FROM events GROUP BY state_change_seq
                 HAVING MIN(idx) != 0 OR MAX(idx) + 1 != COUNT(*) LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&e)?;
        if let Some(b) = bad {
            return Err(inner.corrupt(format!("events of seq {b} are not numbered 0..n")));
        }
        if let Some(s) = oldest_snapshot
            && s.0 > last as u64
        {
            return Err(inner.corrupt(format!(
                "snapshot at seq {s} is ahead of the log (last {last})"
            )));
        }
        Ok(())
    }
}

impl Inner {
    pub(crate) fn e(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StorageError + '_ {
        move |source| sql_err(op, &self.db_path, source)
    }

    fn corrupt(&self, detail: String) -> StorageError {
        StorageError::Corrupt {
            path: self.db_path.clone(),
            detail,
        }
    }

    fn seq_from(&self, v: i64) -> Result<Seq> {
        u64::try_from(v)
            .map(Seq)
            .map_err(|_| self.corrupt(format!("negative seq {v}")))
    }

    /// Runs `f` in an immediate write transaction and commits (durably).
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>, i64) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.write_result(op, |tx, ts| f(tx, ts).map_err(self.e(op)))
    }

    fn write_result<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>, i64) -> Result<T>,
    ) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.e(op))?;
        let out = f(&tx, now_ms())?;
        tx.commit().map_err(self.e(op))?;
        Ok(out)
    }

    pub(crate) fn append_batch(&self, entries: &[Entry]) -> Result<Vec<Seq>> {
        let seqs = self.write("append batch", |tx, ts| {
            entries
                .iter()
                .map(|en| {
                    insert_entry(
                        tx,
                        ts,
                        &en.state_change,
                        en.events.iter().map(Vec::as_slice),
                        en.meta.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                    )
                })
                .collect::<rusqlite::Result<Vec<i64>>>()
        })?;
        seqs.into_iter().map(|s| self.seq_from(s)).collect()
    }

    fn last_seq_on(&self, conn: &Connection, op: &'static str) -> Result<Seq> {
        let v: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM state_changes")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(self.e(op))?;
        self.seq_from(v)
    }

    fn state_changes_on(
        &self,
        conn: &Connection,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StateChange>> {
        let a = after.to_sql()?;
        let l = i64::try_from(limit).unwrap_or(i64::MAX);
        let e = self.e("read state changes");
        let mut stmt = conn
            .prepare_cached("SELECT seq, timestamp_ms, data FROM state_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(&e)?;
        let rows = stmt
            .query_map([a, l], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
            .map_err(&e)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, timestamp_ms, data) = row.map_err(&e)?;
            out.push(StateChange {
                seq: self.seq_from(seq)?,
                timestamp_ms,
                data,
            });
        }
        Ok(out)
    }

    fn latest_snapshot_on(&self, conn: &Connection) -> Result<Option<Snapshot>> {
        let e = self.e("read snapshot");
        let row = conn
            .prepare_cached(
                "SELECT seq, timestamp_ms, data FROM snapshots ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(&e)?;
        row.map(|(seq, timestamp_ms, data)| {
            Ok(Snapshot {
                seq: self.seq_from(seq)?,
                timestamp_ms,
                data,
            })
        })
        .transpose()
    }

    fn snapshot_seqs_on(&self, conn: &Connection) -> Result<Vec<Seq>> {
        let e = self.e("read snapshots");
        let mut stmt = conn
            .prepare_cached("SELECT seq FROM snapshots ORDER BY seq DESC")
            .map_err(&e)?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(&e)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.seq_from(r.map_err(&e)?)?);
        }
        Ok(out)
    }
}

fn insert_entry<'a>(
    tx: &Transaction<'_>,
    ts: i64,
    state_change: &[u8],
    events: impl IntoIterator<Item = &'a [u8]>,
    meta: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO state_changes (timestamp_ms, data) VALUES (?1, ?2)")?
        .execute(params![ts, state_change])?;
    let seq = tx.last_insert_rowid();
    let mut ins =
        tx.prepare_cached("INSERT INTO events (state_change_seq, idx, data) VALUES (?1, ?2, ?3)")?;
    for (idx, ev) in events.into_iter().enumerate() {
        ins.execute(params![seq, idx as i64, ev])?;
    }
    for (k, v) in meta {
        upsert_meta(tx, k, v)?;
    }
    Ok(seq)
}

fn upsert_meta(tx: &Transaction<'_>, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute(params![key, value])?;
    Ok(())
}

/// Makes a newly created file's directory entry durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StorageError::Io {
                op: "sync data directory",
                path: dir.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
