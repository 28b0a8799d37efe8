//! Exclusive advisory lock on a data directory.
//!
//! The lock is an OS file lock (`flock(LOCK_EX | LOCK_NB)` on Unix, `LockFileEx` on
//! Windows, via [`std::fs::File::try_lock`]) on `dir/LOCK`. The kernel releases it when
//! the process dies, however it dies, so a crashed node never leaves a stale lock. It is
//! tied to the open file description, so a second `open` in the same process conflicts
//! too. The holder writes its process id into the file, for the error message only.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A held directory lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir/LOCK` without waiting.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let io = |op: &'static str, path: &PathBuf| {
            let path = path.clone();
            move |source| StorageError::Io { op, path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StorageError::Locked {
                    dir: dir.to_path_buf(),
                    holder_pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(StorageError::Io {
                    op: "lock",
                    path,
                    source,
                });
            }
        }
        // We hold the lock: record our pid (informational only).
        file.set_len(0).map_err(io("truncate lock file", &path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io("seek lock file", &path))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io("write lock file", &path))?;
        Ok(Self { _file: file })
    }
}

/// Reads the holder's pid from the lock file; `None` if absent or unreadable.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}
