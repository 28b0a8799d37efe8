//! Schema version table and ordered migrations.
//!
//! The database records every applied migration in `schema_version`; the current
//! version is the largest recorded. Version 0 is an empty database. On open, every
//! migration newer than the current version runs, in order, in one transaction with
//! the version bump, so a crash mid-migration leaves the old version intact. A database
//! whose version is newer than this build knows is refused
//! ([`StorageError::SchemaTooNew`]).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{Result, StorageError};
use crate::storage::{now_ms, sql_err};

/// `PRAGMA application_id` of a SmartMesh node database ("SMSH").
pub(crate) const APPLICATION_ID: i32 = 0x534D_5348;

/// The newest schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = 1;

/// One schema step: brings a database from `version - 1` to `version`.
pub(crate) struct Migration {
    /// The version after this step.
    pub(crate) version: u32,
    /// Recorded in `schema_version` for people reading the database.
    pub(crate) description: &'static str,
    /// Applies the step inside the migration transaction.
    pub(crate) apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

/// Every migration, oldest first; versions are 1, 2, 3, ... without gaps.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "write-ahead log: state_changes, events, snapshots, meta",
    apply: v1,
}];

fn v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE state_changes (
             seq          INTEGER PRIMARY KEY AUTOINCREMENT,
             timestamp_ms INTEGER NOT NULL,
             data         BLOB    NOT NULL
         ) STRICT;
         CREATE TABLE events (
             seq              INTEGER PRIMARY KEY,
             state_change_seq INTEGER NOT NULL,
             idx              INTEGER NOT NULL,
             data             BLOB    NOT NULL,
             UNIQUE (state_change_seq, idx)
         ) STRICT;
         CREATE TABLE snapshots (
             seq          INTEGER PRIMARY KEY,
             timestamp_ms INTEGER NOT NULL,
             data         BLOB    NOT NULL
         ) STRICT;
         CREATE TABLE meta (
             key   TEXT NOT NULL PRIMARY KEY,
             value BLOB NOT NULL
         ) STRICT, WITHOUT ROWID;",
    )
}

/// Brings the database to the newest version in `migrations`; returns that version.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, migrations: &[Migration]) -> Result<u32> {
    let e = |op| move |source| sql_err(op, path, source);
    let supported = migrations.last().map_or(0, |m| m.version);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e("begin migration"))?;

    let app_id: i32 = tx
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(e("read application_id"))?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StorageError::NotOurDatabase {
            path: path.to_path_buf(),
            detail: format!("application_id is {app_id:#x}, expected {APPLICATION_ID:#x}"),
        });
    }

    let has_version_table: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version')",
            [],
            |r| r.get(0),
        )
        .map_err(e("inspect schema"))?;
    let current = if has_version_table {
        let v: Option<i64> = tx
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(e("read schema version"))?;
        match v {
            None => 0,
            Some(v) => u32::try_from(v).map_err(|_| StorageError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("schema version {v} is out of range"),
            })?,
        }
    } else {
        let other: Option<String> = tx
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(e("inspect schema"))?;
        if let Some(name) = other {
            return Err(StorageError::NotOurDatabase {
                path: path.to_path_buf(),
                detail: format!("it has a table `{name}` but no schema_version table"),
            });
        }
        tx.execute_batch(
            "CREATE TABLE schema_version (
                 version       INTEGER PRIMARY KEY,
                 description   TEXT    NOT NULL,
                 applied_at_ms INTEGER NOT NULL
             ) STRICT;",
        )
        .map_err(e("create schema_version"))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(e("set application_id"))?;
        0
    };

    if current > supported {
        return Err(StorageError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            supported,
        });
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        (m.apply)(&tx).map_err(e("apply migration"))?;
        tx.execute(
            "INSERT INTO schema_version (version, description, applied_at_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.description, now_ms()],
        )
        .map_err(e("record migration"))?;
    }
    tx.commit().map_err(e("commit migration"))?;
    Ok(supported)
}

/// Reads the schema version without changing anything (0 if there is no table).
pub(crate) fn read_version(conn: &Connection, path: &Path) -> Result<u32> {
    let v: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .map_err(|s| sql_err("read schema version", path, s))?;
    let v = v.unwrap_or(0);
    u32::try_from(v).map_err(|_| StorageError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("schema version {v} is out of range"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn migrations_are_dense_and_end_at_schema_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version as usize,
                i + 1,
                "migration versions must be 1, 2, 3, ..."
            );
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    fn fake_v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE t (a INTEGER NOT NULL) STRICT; INSERT INTO t VALUES (7);")
    }
    fn fake_v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 40; UPDATE t SET b = b + 2;",
        )
    }
    fn failing_v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE u (x INTEGER); SELECT * FROM no_such_table;")
    }
    const FAKE: &[Migration] = &[
        Migration {
            version: 1,
            description: "fake v1",
            apply: fake_v1,
        },
        Migration {
            version: 2,
            description: "fake v2",
            apply: fake_v2,
        },
        Migration {
            version: 3,
            description: "fake v3 that fails",
            apply: failing_v3,
        },
    ];

    #[test]
    fn older_database_is_migrated_step_by_step_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        // A "v0" (empty) database goes to v1 with only the first migration known.
        assert_eq!(migrate(&mut conn, &path, &FAKE[..1]).unwrap(), 1);
        assert_eq!(read_version(&conn, &path).unwrap(), 1);
        // A newer build knows v2: the v1 data survives and is transformed.
        assert_eq!(migrate(&mut conn, &path, &FAKE[..2]).unwrap(), 2);
        let (a, b): (i64, i64) = conn
            .query_row("SELECT a, b FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((a, b), (7, 42));
        // Re-running is a no-op.
        assert_eq!(migrate(&mut conn, &path, &FAKE[..2]).unwrap(), 2);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        // A failing step rolls back completely: still v2, no half-created table.
        assert!(matches!(
            migrate(&mut conn, &path, FAKE),
            Err(StorageError::Sqlite { .. })
        ));
        assert_eq!(read_version(&conn, &path).unwrap(), 2);
        let u: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'u')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!u);
        // An older build refuses the newer database.
        match migrate(&mut conn, &path, &FAKE[..1]) {
            Err(StorageError::SchemaTooNew {
                found: 2,
                supported: 1,
                ..
            }) => {}
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn foreign_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER)")
            .unwrap();
        assert!(matches!(
            migrate(&mut conn, &path, MIGRATIONS),
            Err(StorageError::NotOurDatabase { .. })
        ));
        let path2 = dir.path().join("other2.sqlite");
        let mut conn2 = Connection::open(&path2).unwrap();
        conn2.pragma_update(None, "application_id", 1234).unwrap();
        assert!(matches!(
            migrate(&mut conn2, &path2, MIGRATIONS),
            Err(StorageError::NotOurDatabase { .. })
        ));
    }
}
