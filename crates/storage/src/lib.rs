#![doc = include_str!("../README.md")]

mod committer;
mod error;
mod lock;
mod schema;
mod storage;

pub use committer::{CommitStats, CommitterOptions, GroupCommitter, Pending};
pub use error::{Result, StorageError};
pub use lock::LOCK_FILE;
pub use schema::SCHEMA_VERSION;
pub use storage::{
    DB_FILE, Entry, Recovery, Seq, Snapshot, StateChange, Storage, StorageOptions, SyncMode,
};
