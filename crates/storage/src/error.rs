//! The one error type of this crate.

use std::path::PathBuf;
use std::sync::Arc;

use crate::Seq;

/// Everything that can go wrong in this crate.
///
/// Variants are grouped by what the caller must do:
///
/// * **Configuration / operator problems** — [`Locked`](Self::Locked),
///   [`SchemaTooNew`](Self::SchemaTooNew), [`NotOurDatabase`](Self::NotOurDatabase),
///   [`InvalidOption`](Self::InvalidOption): the node must not start; report and exit.
/// * **Disk or database failures** — [`Io`](Self::Io), [`Sqlite`](Self::Sqlite),
///   [`Corrupt`](Self::Corrupt), [`CommitterFailed`](Self::CommitterFailed),
///   [`CommitterClosed`](Self::CommitterClosed): nothing that was not acknowledged may be
///   assumed durable. Stop performing effects, and restart from disk (snapshot + replay).
/// * **Caller bugs** — [`SnapshotAhead`](Self::SnapshotAhead),
///   [`PruneDisabled`](Self::PruneDisabled), [`PruneUnsafe`](Self::PruneUnsafe),
///   [`SeqOutOfRange`](Self::SeqOutOfRange), [`CommitterRunning`](Self::CommitterRunning):
///   the request was refused and nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (e.g. "create data directory").
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Another `Storage` (in this or another process) holds the lock on this data
    /// directory. Never run two writers on one directory.
    #[error(
        "data directory {} is locked by another storage instance{}",
        dir.display(),
        match holder_pid { Some(pid) => format!(" (process {pid})"), None => String::new() }
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The process id written into the lock file by the holder, if readable.
        holder_pid: Option<u32>,
    },

    /// An SQLite operation failed.
    #[error("sqlite: {op} on {}: {source}", path.display())]
    Sqlite {
        /// What was being done (e.g. "append").
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },

    /// The database was written by a newer version of this software. Upgrade the
    /// software; never downgrade a data directory.
    #[error(
        "database {} has schema version {found}, this build supports at most {supported}; \
         upgrade the software (downgrading a data directory is not supported)",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found on disk.
        found: u32,
        /// The newest schema version this build knows.
        supported: u32,
    },

    /// The file is an SQLite database, but not one written by this crate.
    #[error("{} is not a SmartMesh node database: {detail}", path.display())]
    NotOurDatabase {
        /// The database file.
        path: PathBuf,
        /// What gave it away.
        detail: String,
    },

    /// Stored data violates an invariant this crate maintains (e.g. a gap in the log,
    /// a negative sequence number, a wrong column type).
    #[error("corrupt data in {}: {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A snapshot was offered for a sequence number that is not in the log yet.
    #[error("snapshot at seq {seq} is ahead of the log (last seq {last})")]
    SnapshotAhead {
        /// The snapshot's sequence number.
        seq: Seq,
        /// The newest sequence number in the log.
        last: Seq,
    },

    /// `prune_before` was called but pruning is not enabled in [`crate::StorageOptions`].
    #[error("pruning is disabled (StorageOptions::allow_prune is false)")]
    PruneDisabled,

    /// `prune_before` asked to delete state changes that replay may still need.
    #[error(
        "refusing to prune before seq {requested}: the safe limit is {}",
        match limit { Some(l) => format!("seq {l} (the second-newest snapshot)"), None => "nothing (fewer than two snapshots)".to_owned() }
    )]
    PruneUnsafe {
        /// The requested bound.
        requested: Seq,
        /// The largest bound that is safe, if any.
        limit: Option<Seq>,
    },

    /// A sequence number does not fit SQLite's signed 64-bit integers.
    #[error("sequence number {0} is out of range")]
    SeqOutOfRange(u64),

    /// An option has an invalid value.
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),

    /// A group committer is already running on this storage.
    #[error("a group committer is already running on this storage")]
    CommitterRunning,

    /// The group committer's writer thread is gone (it panicked, or the committer was
    /// shut down); the submission was not written, or its outcome is unknown.
    #[error("the group committer's writer thread has stopped")]
    CommitterClosed,

    /// An earlier batch of the group committer failed to commit, so the committer
    /// refuses all further work: after a failed commit (e.g. a failed fsync) the disk
    /// can no longer be trusted. Restart from disk.
    #[error("group committer failed earlier and refuses further work: {0}")]
    CommitterFailed(Arc<StorageError>),
}

/// Shorthand for results of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
