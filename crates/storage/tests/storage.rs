//! Storage API tests: open, lock, schema, log, snapshots, replay, meta, corruption.

#![allow(clippy::unwrap_used)]

use smartmesh_storage::{
    DB_FILE, Entry, LOCK_FILE, SCHEMA_VERSION, Seq, Storage, StorageError, StorageOptions,
};
use std::path::Path;

fn open(dir: &Path) -> Storage {
    Storage::open(dir, StorageOptions::default()).unwrap()
}

fn sc(i: u64) -> Vec<u8> {
    format!("state change {i}").into_bytes()
}

#[test]
fn open_creates_database_in_wal_mode_with_full_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/data");
    let s = open(&dir);
    assert!(dir.join(DB_FILE).is_file());
    assert!(dir.join(LOCK_FILE).is_file());
    assert_eq!(s.db_path(), dir.join(DB_FILE));
    assert_eq!(s.dir(), dir);
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.last_seq().unwrap(), Seq::ZERO);
    // Another connection sees WAL mode (it is persistent in the file).
    let raw = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = raw
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, 0x534D_5348);
    s.check_integrity().unwrap();
}

#[test]
fn append_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    assert_eq!(s.append(b"first", &[b"e0", b"e1"]).unwrap(), Seq(1));
    assert_eq!(s.append(b"", &[]).unwrap(), Seq(2)); // empty input, no events
    assert_eq!(s.append(b"third", &[b""]).unwrap(), Seq(3)); // one empty event
    assert_eq!(s.last_seq().unwrap(), Seq(3));

    let all = s.state_changes_after(Seq::ZERO).unwrap();
    assert_eq!(
        all.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![Seq(1), Seq(2), Seq(3)]
    );
    assert_eq!(all[0].data, b"first");
    assert_eq!(all[1].data, b"");
    assert!(all[0].timestamp_ms > 1_600_000_000_000);
    assert_eq!(s.state_changes_after(Seq(2)).unwrap().len(), 1);
    assert!(s.state_changes_after(Seq(3)).unwrap().is_empty());
    assert!(s.state_changes_after(Seq(99)).unwrap().is_empty());
    assert_eq!(s.state_change(Seq(3)).unwrap().unwrap().data, b"third");
    assert_eq!(s.state_change(Seq(4)).unwrap(), None);

    assert_eq!(
        s.events_of(Seq(1)).unwrap(),
        vec![b"e0".to_vec(), b"e1".to_vec()]
    );
    assert!(s.events_of(Seq(2)).unwrap().is_empty());
    assert_eq!(s.events_of(Seq(3)).unwrap(), vec![Vec::<u8>::new()]);
    assert!(s.events_of(Seq(42)).unwrap().is_empty());
    s.check_integrity().unwrap();
}

#[test]
fn paging_through_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    for i in 1..=10 {
        s.append(&sc(i), &[]).unwrap();
    }
    let mut after = Seq::ZERO;
    let mut seen = Vec::new();
    loop {
        let page = s.state_changes_page(after, 3).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().unwrap().seq;
        seen.extend(page.into_iter().map(|c| c.data));
    }
    assert_eq!(seen, (1..=10).map(sc).collect::<Vec<_>>());
}

#[test]
fn append_batch_is_consecutive_and_atomic_with_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.append(b"x", &[]).unwrap();
    let entries: Vec<Entry> = (0..5)
        .map(|i| {
            Entry::new(sc(i))
                .with_event(format!("ev{i}"))
                .with_meta("cursor", vec![i as u8])
        })
        .collect();
    let seqs = s.append_batch(&entries).unwrap();
    assert_eq!(seqs, (2..=6).map(Seq).collect::<Vec<_>>());
    assert_eq!(s.events_of(Seq(4)).unwrap(), vec![b"ev2".to_vec()]);
    assert_eq!(s.get_meta("cursor").unwrap(), Some(vec![4])); // the last write wins
    assert_eq!(s.append_batch(&[]).unwrap(), vec![]);
}

#[test]
fn meta_put_get_delete_and_append_with_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    assert_eq!(s.get_meta("chain_cursor").unwrap(), None);
    s.put_meta("chain_cursor", b"100").unwrap();
    assert_eq!(
        s.get_meta("chain_cursor").unwrap().as_deref(),
        Some(&b"100"[..])
    );
    let seq = s
        .append_with_meta(
            b"block 101 events",
            &[b"ev"],
            &[("chain_cursor", b"101"), ("other", b"")],
        )
        .unwrap();
    assert_eq!(seq, Seq(1));
    assert_eq!(
        s.get_meta("chain_cursor").unwrap().as_deref(),
        Some(&b"101"[..])
    );
    assert_eq!(s.get_meta("other").unwrap(), Some(vec![]));
    assert!(s.delete_meta("other").unwrap());
    assert!(!s.delete_meta("other").unwrap());
    assert_eq!(s.get_meta("other").unwrap(), None);
}

#[test]
fn data_survives_reopen_and_seqs_continue() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let s = open(tmp.path());
        s.append(b"a", &[b"ea"]).unwrap();
        s.append(b"b", &[]).unwrap();
        s.put_meta("k", b"v").unwrap();
        s.write_snapshot(Seq(1), b"snap1").unwrap();
    }
    let s = open(tmp.path());
    assert_eq!(s.last_seq().unwrap(), Seq(2));
    assert_eq!(s.events_of(Seq(1)).unwrap(), vec![b"ea".to_vec()]);
    assert_eq!(s.get_meta("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.latest_snapshot().unwrap().unwrap().data, b"snap1");
    assert_eq!(s.append(b"c", &[]).unwrap(), Seq(3));
}

#[test]
fn second_open_of_a_directory_is_locked_until_the_first_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    match Storage::open(tmp.path(), StorageOptions::default()) {
        Err(StorageError::Locked { dir, holder_pid }) => {
            assert_eq!(dir, tmp.path());
            assert_eq!(holder_pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let msg = Storage::open(tmp.path(), StorageOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    drop(s);
    let s2 = open(tmp.path());
    s2.append(b"ok", &[]).unwrap();
}

#[test]
fn unreadable_pid_in_lock_file_still_reports_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let _s = open(tmp.path());
    std::fs::write(tmp.path().join(LOCK_FILE), b"garbage").unwrap();
    assert!(matches!(
        Storage::open(tmp.path(), StorageOptions::default()),
        Err(StorageError::Locked {
            holder_pid: None,
            ..
        })
    ));
}

#[test]
fn newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    let raw = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    raw.execute(
        "INSERT INTO schema_version (version, description, applied_at_ms) VALUES (99, 'future', 0)",
        [],
    )
    .unwrap();
    drop(raw);
    let err = Storage::open(tmp.path(), StorageOptions::default()).unwrap_err();
    match &err {
        StorageError::SchemaTooNew {
            found: 99,
            supported,
            path,
        } => {
            assert_eq!(*supported, SCHEMA_VERSION);
            assert_eq!(path, &tmp.path().join(DB_FILE));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("schema version 99"), "{err}");
    // The refused open released the lock and changed nothing.
    let raw = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    let v: i64 = raw
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn snapshots_keep_the_newest_n_and_recovery_replays_after_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    assert_eq!(s.latest_snapshot().unwrap(), None);
    let r = s.recover().unwrap();
    assert_eq!(
        (r.last_seq().get(), r.snapshot, r.state_changes.len()),
        (0, None, 0)
    );

    // A snapshot of the initial state is allowed; one ahead of the log is not.
    s.write_snapshot(Seq::ZERO, b"genesis").unwrap();
    assert!(matches!(
        s.write_snapshot(Seq(1), b"x"),
        Err(StorageError::SnapshotAhead {
            seq: Seq(1),
            last: Seq(0)
        })
    ));
    for i in 1..=9 {
        s.append(&sc(i), &[]).unwrap();
    }
    s.write_snapshot(Seq(3), b"at3").unwrap();
    s.write_snapshot(Seq(6), b"at6-old").unwrap();
    s.write_snapshot(Seq(6), b"at6").unwrap(); // replaced
    assert_eq!(s.snapshot_seqs().unwrap(), vec![Seq(6), Seq(3)]); // default keeps 2
    let latest = s.latest_snapshot().unwrap().unwrap();
    assert_eq!((latest.seq, latest.data.as_slice()), (Seq(6), &b"at6"[..]));

    let r = s.recover().unwrap();
    assert_eq!(r.snapshot.as_ref().unwrap().seq, Seq(6));
    assert_eq!(
        r.state_changes
            .iter()
            .map(|c| c.data.clone())
            .collect::<Vec<_>>(),
        (7..=9).map(sc).collect::<Vec<_>>()
    );
    assert_eq!(r.last_seq(), Seq(9));

    // Replay with a toy engine gives the same state as applying everything.
    let fold = |state: Vec<u8>, input: &[u8]| [state, input.to_vec()].concat();
    let full = (1..=9).map(sc).fold(Vec::new(), |st, i| fold(st, &i));
    let snap_state = (1..=6).map(sc).fold(Vec::new(), |st, i| fold(st, &i));
    let s2 = {
        drop(s);
        open(tmp.path())
    };
    s2.write_snapshot(Seq(6), &snap_state).unwrap();
    let r = s2.recover().unwrap();
    let replayed = r
        .state_changes
        .iter()
        .fold(r.snapshot.unwrap().data, |st, c| fold(st, &c.data));
    assert_eq!(replayed, full);
}

#[test]
fn keep_snapshots_is_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::open(
        tmp.path(),
        StorageOptions {
            keep_snapshots: 3,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 1..=5 {
        s.append(&sc(i), &[]).unwrap();
        s.write_snapshot(Seq(i), &sc(i)).unwrap();
    }
    assert_eq!(s.snapshot_seqs().unwrap(), vec![Seq(5), Seq(4), Seq(3)]);
    assert!(matches!(
        Storage::open(
            &tmp.path().join("x"),
            StorageOptions {
                keep_snapshots: 0,
                ..Default::default()
            }
        ),
        Err(StorageError::InvalidOption(_))
    ));
}

#[test]
fn pruning_is_off_by_default_and_never_removes_what_replay_needs() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let s = open(tmp.path());
        s.append(b"a", &[]).unwrap();
        s.write_snapshot(Seq(1), b"s").unwrap();
        s.append(b"b", &[]).unwrap();
        s.write_snapshot(Seq(2), b"s").unwrap();
        assert!(matches!(
            s.prune_before(Seq(1)),
            Err(StorageError::PruneDisabled)
        ));
    }
    let s = Storage::open(
        tmp.path(),
        StorageOptions {
            allow_prune: true,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 3..=10 {
        s.append(&sc(i), &[format!("ev{i}").as_bytes()]).unwrap();
    }
    s.write_snapshot(Seq(5), b"at5").unwrap();
    s.write_snapshot(Seq(8), b"at8").unwrap();
    // The second-newest snapshot is at 5: anything past it is refused.
    match s.prune_before(Seq(6)) {
        Err(StorageError::PruneUnsafe {
            requested: Seq(6),
            limit: Some(Seq(5)),
        }) => {}
        other => panic!("expected PruneUnsafe, got {other:?}"),
    }
    assert_eq!(s.prune_before(Seq(5)).unwrap(), 4); // seqs 1..=4
    assert_eq!(
        s.state_changes_after(Seq::ZERO)
            .unwrap()
            .first()
            .unwrap()
            .seq,
        Seq(5)
    );
    assert!(s.events_of(Seq(4)).unwrap().is_empty());
    assert_eq!(s.events_of(Seq(5)).unwrap(), vec![b"ev5".to_vec()]);
    s.check_integrity().unwrap();
    assert_eq!(s.recover().unwrap().state_changes.len(), 2); // 9, 10 after snapshot 8
    assert_eq!(s.last_seq().unwrap(), Seq(10));
    assert_eq!(s.append(b"next", &[]).unwrap(), Seq(11));

    // With a single snapshot, nothing may be pruned.
    let tmp2 = tempfile::tempdir().unwrap();
    let s2 = Storage::open(
        tmp2.path(),
        StorageOptions {
            allow_prune: true,
            ..Default::default()
        },
    )
    .unwrap();
    s2.append(b"a", &[]).unwrap();
    s2.write_snapshot(Seq(1), b"s").unwrap();
    assert!(matches!(
        s2.prune_before(Seq(1)),
        Err(StorageError::PruneUnsafe { limit: None, .. })
    ));
}

#[test]
fn garbage_file_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(DB_FILE), vec![0xAB; 10_000]).unwrap();
    let err = Storage::open(tmp.path(), StorageOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(DB_FILE), "{err}");
}

#[test]
fn truncated_database_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let s = open(tmp.path());
        let big = vec![7u8; 3000];
        for _ in 0..200 {
            s.append(&big, &[&big]).unwrap();
        }
    } // closed: the WAL is checkpointed into the main file
    let path = tmp.path().join(DB_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let outcome = Storage::open(tmp.path(), StorageOptions::default()).and_then(|s| {
        s.check_integrity()?;
        s.recover()?;
        Ok(())
    });
    let err = outcome.unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn foreign_sqlite_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    raw.execute_batch("CREATE TABLE accounts (id INTEGER)")
        .unwrap();
    drop(raw);
    assert!(matches!(
        Storage::open(tmp.path(), StorageOptions::default()),
        Err(StorageError::NotOurDatabase { .. })
    ));
}

#[test]
fn tampered_rows_are_reported_as_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()));
    {
        let s = open(tmp.path());
        s.append(b"a", &[b"e"]).unwrap();
        s.append(b"b", &[]).unwrap();
        s.append(b"c", &[]).unwrap();
    }
    let raw = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    raw.execute("DELETE FROM state_changes WHERE seq = 2", [])
        .unwrap();
    raw.execute(
        "INSERT INTO events (state_change_seq, idx, data) VALUES (1, 5, x'00')",
        [],
    )
    .unwrap();
    drop(raw);
    let s = open(tmp.path());
    assert!(matches!(
        s.check_integrity(),
        Err(StorageError::Corrupt { .. })
    ));
    assert!(matches!(s.recover(), Err(StorageError::Corrupt { .. })));
    assert!(matches!(
        s.events_of(Seq(1)),
        Err(StorageError::Corrupt { .. })
    ));
    drop(s);
    let raw = rusqlite::Connection::open(tmp.path().join(DB_FILE)).unwrap();
    raw.execute(
        "INSERT INTO state_changes (seq, timestamp_ms, data) VALUES (-5, 0, x'00')",
        [],
    )
    .unwrap();
    drop(raw);
    let s = open(tmp.path());
    assert!(matches!(
        s.check_integrity(),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn seq_out_of_range_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    assert!(matches!(
        s.state_changes_after(Seq(u64::MAX)),
        Err(StorageError::SeqOutOfRange(_))
    ));
    assert!(matches!(
        s.write_snapshot(Seq(u64::MAX), b""),
        Err(StorageError::SeqOutOfRange(_))
    ));
}
