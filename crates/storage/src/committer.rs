//! Group commit: one writer thread, many submitters, one fsync per batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StorageError};
use crate::storage::{Entry, Inner, Seq, Storage};

/// Options for [`Storage::start_committer`].
#[derive(Clone, Debug)]
pub struct CommitterOptions {
    /// Capacity of the submission queue; `submit` blocks (or awaits) while it is full.
    /// Default 8,192.
    pub queue_capacity: usize,
    /// Most entries committed in one transaction. Default 8,192.
    pub max_batch: usize,
}

impl Default for CommitterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            max_batch: 8192,
        }
    }
}

/// Counters of a group committer, for benchmarks and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions committed.
    pub batches: u64,
    /// Entries committed.
    pub entries: u64,
}

struct Request {
    entry: Entry,
    reply: oneshot::Sender<Result<Seq>>,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    entries: AtomicU64,
}

/// Handle to a running group committer; cheap to clone (actor + handle).
///
/// A dedicated writer thread takes everything queued (up to
/// [`CommitterOptions::max_batch`]), commits it in **one** transaction with one fsync,
/// and only then completes each submitter with its seq. So every append is durable
/// before it is acknowledged, yet throughput is not capped at one fsync per append.
/// Seqs follow queue order: if submission A returned before submission B was made,
/// A's seq is smaller.
///
/// If a batch fails to commit, its submitters and every later one get
/// [`StorageError::CommitterFailed`]: after a failed commit the node must stop acting
/// and restart from disk.
///
/// When the last handle is dropped, the writer commits what is still queued and
/// exits; the drop waits for that (so the directory lock can be released right after).
#[derive(Clone)]
pub struct GroupCommitter {
    shared: Arc<Shared>,
}

struct Shared {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            // The writer drains the queue and exits now that every sender is gone.
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The completion of one submission: resolves to its seq once the batch holding it is
/// durable. Use [`wait`](Self::wait) from blocking code or `.await` it from async code.
///
/// Dropping it does **not** cancel the append; the entry is committed regardless.
#[derive(Debug)]
#[must_use = "the append is acknowledged only when this completes"]
pub struct Pending {
    rx: oneshot::Receiver<Result<Seq>>,
}

impl Pending {
    /// Blocks until the entry is durable; returns its seq.
    ///
    /// Must not be called from inside an async runtime's worker thread (it panics
    /// there, like `tokio::sync::oneshot::Receiver::blocking_recv`); `.await` instead.
    pub fn wait(self) -> Result<Seq> {
        self.rx
            .blocking_recv()
            .unwrap_or(Err(StorageError::CommitterClosed))
    }
}

impl Future for Pending {
    type Output = Result<Seq>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StorageError::CommitterClosed)))
    }
}

impl Storage {
    /// Starts the group committer: a writer thread sharing this storage's write
    /// connection. At most one runs per `Storage` ([`StorageError::CommitterRunning`]).
    /// The directory stays locked while the committer runs, even if this `Storage` is
    /// dropped first.
    pub fn start_committer(&self, options: CommitterOptions) -> Result<GroupCommitter> {
        if options.queue_capacity == 0 {
            return Err(StorageError::InvalidOption(
                "queue_capacity must be at least 1",
            ));
        }
        if options.max_batch == 0 {
            return Err(StorageError::InvalidOption("max_batch must be at least 1"));
        }
        if self.inner.committer_running.swap(true, Ordering::AcqRel) {
            return Err(StorageError::CommitterRunning);
        }
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        let counters = Arc::new(Counters::default());
        let inner = Arc::clone(&self.inner);
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("smartmesh-wal-writer".into())
            .spawn(move || {
                let _guard = RunningGuard(Arc::clone(&inner));
                writer_loop(&inner, rx, options.max_batch, &c);
            })
            .map_err(|source| {
                self.inner.committer_running.store(false, Ordering::Release);
                StorageError::Io {
                    op: "spawn writer thread",
                    path: self.inner.dir.clone(),
                    source,
                }
            })?;
        Ok(GroupCommitter {
            shared: Arc::new(Shared {
                tx: Some(tx),
                thread: Some(thread),
                counters,
            }),
        })
    }
}

/// Clears the "committer running" flag when the writer thread ends (even by panic).
struct RunningGuard(Arc<Inner>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.committer_running.store(false, Ordering::Release);
    }
}

fn writer_loop(
    inner: &Inner,
    mut rx: mpsc::Receiver<Request>,
    max_batch: usize,
    counters: &Counters,
) {
    let mut failed: Option<Arc<StorageError>> = None;
    let mut batch: Vec<Request> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if let Some(cause) = &failed {
            for r in batch.drain(..) {
                let _ = r
                    .reply
                    .send(Err(StorageError::CommitterFailed(Arc::clone(cause))));
            }
            continue;
        }
        let mut replies = Vec::with_capacity(batch.len());
        for r in batch.drain(..) {
            entries.push(r.entry);
            replies.push(r.reply);
        }
        match inner.append_batch(&entries) {
            Ok(seqs) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .entries
                    .fetch_add(seqs.len() as u64, Ordering::Relaxed);
                for (reply, seq) in replies.into_iter().zip(seqs) {
                    // A dropped `Pending` just means nobody waits; the entry is durable.
                    let _ = reply.send(Ok(seq));
                }
            }
            Err(e) => {
                let cause = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(StorageError::CommitterFailed(Arc::clone(&cause))));
                }
                failed = Some(cause);
            }
        }
        entries.clear();
    }
}

impl GroupCommitter {
    fn sender(&self) -> Result<&mpsc::Sender<Request>> {
        self.shared.tx.as_ref().ok_or(StorageError::CommitterClosed)
    }

    /// Queues an entry, blocking while the queue is full; returns its completion.
    ///
    /// Must not be called from inside an async runtime's worker thread (it panics
    /// there, like `tokio::sync::mpsc::Sender::blocking_send`); use
    /// [`submit_async`](Self::submit_async).
    pub fn submit(&self, entry: Entry) -> Result<Pending> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .blocking_send(Request { entry, reply })
            .map_err(|_| StorageError::CommitterClosed)?;
        Ok(Pending { rx })
    }

    /// Queues an entry, waiting asynchronously while the queue is full; returns its
    /// completion. Cancel-safe: if this future is dropped before it completes, the entry
    /// was not queued.
    pub async fn submit_async(&self, entry: Entry) -> Result<Pending> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(Request { entry, reply })
            .await
            .map_err(|_| StorageError::CommitterClosed)?;
        Ok(Pending { rx })
    }

    /// Submits and waits: returns once the entry is durable. Blocking; see
    /// [`submit`](Self::submit).
    pub fn append(&self, entry: Entry) -> Result<Seq> {
        self.submit(entry)?.wait()
    }

    /// Submits and awaits: resolves once the entry is durable.
    ///
    /// Not cancel-safe as a whole: once queued, dropping the future does not stop the
    /// entry from being committed, but its seq is then unknown to the caller.
    pub async fn append_async(&self, entry: Entry) -> Result<Seq> {
        self.submit_async(entry).await?.await
    }

    /// Batches and entries committed so far.
    pub fn stats(&self) -> CommitStats {
        let c = &self.shared.counters;
        CommitStats {
            batches: c.batches.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::storage::{StorageOptions, lock};

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Storage>();
        check::<GroupCommitter>();
        fn check_send<T: Send>() {}
        check_send::<Pending>();
    }

    #[test]
    fn writer_connection_is_wal_with_full_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
        let w = lock(&s.inner.writer);
        let sync: i64 = w.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        let mode: String = w
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_failed_batch_rolls_back_and_poisons_the_committer() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
        s.append(b"before", &[]).unwrap();
        // Make inserts of long state changes fail, as a full disk would.
        lock(&s.inner.writer)
            .execute_batch(
                "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.state_changes
                 WHEN length(NEW.data) > 10 BEGIN SELECT RAISE(ABORT, 'simulated failure'); END;",
            )
            .unwrap();
        let c = s.start_committer(CommitterOptions::default()).unwrap();
        assert_eq!(c.append(Entry::new(b"short".to_vec())).unwrap(), Seq(2));
        let err = c.append(Entry::new(vec![0u8; 100])).unwrap_err();
        assert!(matches!(err, StorageError::CommitterFailed(_)), "{err:?}");
        assert!(err.to_string().contains("simulated failure"), "{err}");
        // Everything after a failure is refused, even entries that would have worked.
        assert!(matches!(
            c.append(Entry::new(b"short".to_vec())),
            Err(StorageError::CommitterFailed(_))
        ));
        assert_eq!(s.last_seq().unwrap(), Seq(2));
        assert_eq!(
            c.stats(),
            CommitStats {
                batches: 1,
                entries: 1
            }
        );
    }

    #[test]
    fn invalid_options_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(tmp.path(), StorageOptions::default()).unwrap();
        for o in [
            CommitterOptions {
                queue_capacity: 0,
                ..Default::default()
            },
            CommitterOptions {
                max_batch: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                s.start_committer(o),
                Err(StorageError::InvalidOption(_))
            ));
        }
        // A refused start does not leave the "running" flag set.
        drop(s.start_committer(CommitterOptions::default()).unwrap());
    }
}
