//! Group commit: ordering, concurrency, async, lifecycle.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use smartmesh_storage::{CommitterOptions, Entry, Seq, Storage, StorageError, StorageOptions};

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(dir, StorageOptions::default()).unwrap()
}

fn payload(thread: usize, i: usize) -> Vec<u8> {
    format!("t{thread}-i{i}-").repeat(8).into_bytes()
}

#[test]
fn many_concurrent_submitters_get_distinct_ordered_durable_seqs() {
    const THREADS: usize = 16;
    const PER: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let c = s
        .start_committer(CommitterOptions {
            queue_capacity: 64,
            max_batch: 4096,
        })
        .unwrap();
    let results: Vec<Vec<Seq>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = c.clone();
                scope.spawn(move || {
                    (0..PER)
                        .map(|i| {
                            c.append(
                                Entry::new(payload(t, i))
                                    .with_event(format!("ev{t}-{i}"))
                                    .with_meta(format!("cursor{t}"), i.to_le_bytes().to_vec()),
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = THREADS * PER;
    let mut all = BTreeSet::new();
    for (t, seqs) in results.iter().enumerate() {
        // Each thread waited for each append before the next: its seqs increase.
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "thread {t} seqs not increasing"
        );
        for (i, seq) in seqs.iter().enumerate() {
            assert!(all.insert(*seq), "seq {seq} handed out twice");
            assert_eq!(s.state_change(*seq).unwrap().unwrap().data, payload(t, i));
            assert_eq!(
                s.events_of(*seq).unwrap(),
                vec![format!("ev{t}-{i}").into_bytes()]
            );
        }
        assert_eq!(
            s.get_meta(&format!("cursor{t}")).unwrap(),
            Some((PER - 1).to_le_bytes().to_vec())
        );
    }
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        (1..=total as u64).map(Seq).collect::<Vec<_>>()
    );
    let stats = c.stats();
    assert_eq!(stats.entries, total as u64);
    assert!(stats.batches >= 1 && stats.batches <= total as u64);
    s.check_integrity().unwrap();
}

#[test]
fn seqs_follow_submission_order() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.append(b"direct", &[]).unwrap();
    let c = s.start_committer(CommitterOptions::default()).unwrap();
    // Submit many without waiting, then wait: seqs follow submission order exactly.
    let pending: Vec<_> = (0..2000)
        .map(|i| c.submit(Entry::new(payload(0, i))).unwrap())
        .collect();
    let seqs: Vec<Seq> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(seqs, (2..=2001).map(Seq).collect::<Vec<_>>());
    // Several appends shared a transaction.
    let stats = c.stats();
    assert_eq!(stats.entries, 2000);
    assert!(stats.batches < 2000, "{stats:?}");
    // Direct appends interleave safely with the committer.
    assert_eq!(s.append(b"direct again", &[]).unwrap(), Seq(2002));
    assert_eq!(c.append(Entry::new(b"x".to_vec())).unwrap(), Seq(2003));
}

#[test]
fn tiny_queue_applies_backpressure_without_losing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let c = s
        .start_committer(CommitterOptions {
            queue_capacity: 1,
            max_batch: 2,
        })
        .unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let c = c.clone();
            scope.spawn(move || {
                let p: Vec<_> = (0..50)
                    .map(|i| c.submit(Entry::new(payload(t, i))).unwrap())
                    .collect();
                for p in p {
                    p.wait().unwrap();
                }
            });
        }
    });
    assert_eq!(s.last_seq().unwrap(), Seq(200));
    assert!(c.stats().batches >= 100); // max_batch 2
}

#[test]
fn async_submitters_work_with_and_without_waiting_for_each() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let c = s.start_committer(CommitterOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let seqs = rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut v = Vec::new();
                    for i in 0..20 {
                        v.push(c.append_async(Entry::new(payload(t, i))).await.unwrap());
                    }
                    let p = c.submit_async(Entry::new(b"last".to_vec())).await.unwrap();
                    v.push(p.await.unwrap());
                    v
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let set: BTreeSet<_> = seqs.iter().copied().collect();
    assert_eq!(set.len(), 32 * 21);
    assert_eq!(s.last_seq().unwrap(), Seq(32 * 21));
}

#[test]
fn one_committer_at_a_time_and_it_keeps_the_directory_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let c = s.start_committer(CommitterOptions::default()).unwrap();
    assert!(matches!(
        s.start_committer(CommitterOptions::default()),
        Err(StorageError::CommitterRunning)
    ));
    let c2 = c.clone();
    drop(c);
    // A clone keeps it running.
    assert!(matches!(
        s.start_committer(CommitterOptions::default()),
        Err(StorageError::CommitterRunning)
    ));
    c2.append(Entry::new(b"a".to_vec())).unwrap();
    drop(s);
    // The storage handle is gone, but the writer still owns the directory.
    assert!(matches!(
        Storage::open(tmp.path(), StorageOptions::default()),
        Err(StorageError::Locked { .. })
    ));
    let p = c2
        .submit(Entry::new(b"queued at shutdown".to_vec()))
        .unwrap();
    drop(c2); // drains the queue, stops the writer, releases the lock
    assert_eq!(p.wait().unwrap(), Seq(2));
    let s = open(tmp.path());
    assert_eq!(
        s.state_change(Seq(2)).unwrap().unwrap().data,
        b"queued at shutdown"
    );
    // A new committer can start once the old one has stopped.
    let c = s.start_committer(CommitterOptions::default()).unwrap();
    assert_eq!(c.append(Entry::new(b"b".to_vec())).unwrap(), Seq(3));
}

#[test]
fn dropping_a_pending_does_not_cancel_the_append() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let c = Arc::new(s.start_committer(CommitterOptions::default()).unwrap());
    drop(c.submit(Entry::new(b"fire and forget".to_vec())).unwrap());
    assert_eq!(c.append(Entry::new(b"second".to_vec())).unwrap(), Seq(2));
    assert_eq!(
        s.state_change(Seq(1)).unwrap().unwrap().data,
        b"fire and forget"
    );
}
