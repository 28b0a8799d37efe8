//! SIGKILL crash test: a child process appends through the group committer as fast as
//! it can and reports every acknowledged seq; the parent kills it at random instants,
//! reopens the directory and checks that nothing acknowledged was lost.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smartmesh_storage::{Seq, Storage, StorageError, StorageOptions};

const CHILD: &str = env!("CARGO_BIN_EXE_wal-crash-child");
const THREADS: u64 = 8;

/// Must match `payload` in `src/bin/wal-crash-child.rs`.
fn payload(round: u64, thread: u64, counter: u64) -> Vec<u8> {
    let mut v = format!("sc r{round} t{thread} c{counter} ").into_bytes();
    v.extend((0..150u64).map(|k| ((round * 31 + thread * 7 + counter + k) % 251) as u8));
    v
}

fn event(round: u64, thread: u64, counter: u64) -> Vec<u8> {
    let mut v = b"ev ".to_vec();
    v.extend(payload(round, thread, counter));
    v
}

/// Parses the `(round, thread, counter)` a stored state change claims to be.
fn parse(data: &[u8]) -> Option<(u64, u64, u64)> {
    let mut parts = data.splitn(5, |&b| b == b' ');
    (parts.next()? == b"sc").then_some(())?;
    let num = |p: &[u8], prefix: u8| -> Option<u64> {
        std::str::from_utf8(p.strip_prefix(&[prefix])?)
            .ok()?
            .parse()
            .ok()
    };
    Some((
        num(parts.next()?, b'r')?,
        num(parts.next()?, b't')?,
        num(parts.next()?, b'c')?,
    ))
}

fn spawn(dir: &Path, round: u64) -> Child {
    Command::new(CHILD)
        .arg(dir)
        .arg(round.to_string())
        .arg(THREADS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads complete lines until EOF; a line cut off by the kill (no newline) is dropped.
fn read_lines(stdout: ChildStdout) -> Vec<String> {
    let mut r = BufReader::new(stdout);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return lines,
            Ok(_) if line.ends_with('\n') => lines.push(line.trim_end().to_owned()),
            Ok(_) => return lines,
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_instants_loses_no_acknowledged_append() {
    let seed = std::env::var("WAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (set WAL_CRASH_SEED to repeat)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let started = Instant::now();
    let rounds = 24u64;
    let mut total_acked = 0usize;
    let mut rounds_with_acks = 0;
    let mut last = Seq::ZERO;

    for round in 0..rounds {
        let mut child = spawn(dir, round);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || read_lines(stdout));
        // Kill at a random instant: sometimes during open or migration, mostly mid-stream.
        std::thread::sleep(Duration::from_millis(rng.next() % 150));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: child exited on its own: {status}"
        );
        let lines = reader.join().unwrap();

        let mut acked: Vec<(Seq, u64, u64)> = Vec::new();
        for l in &lines {
            if l.starts_with("ready ") {
                continue;
            }
            let mut f = l.split(' ').map(|x| x.parse::<u64>().unwrap());
            acked.push((Seq(f.next().unwrap()), f.next().unwrap(), f.next().unwrap()));
        }
        total_acked += acked.len();
        rounds_with_acks += usize::from(!acked.is_empty());

        // The kernel released the lock with the process: reopening must succeed.
        let s = match Storage::open(dir, StorageOptions::default()) {
            Ok(s) => s,
            Err(e) => panic!("round {round}: reopen after SIGKILL failed: {e}"),
        };
        s.check_integrity().unwrap();

        // Every row this round wrote is whole, and each thread's rows are 0, 1, 2, ...
        let rows = s.state_changes_after(last).unwrap();
        let mut next_counter: BTreeMap<u64, u64> = BTreeMap::new();
        for (expect_seq, row) in (last.0 + 1..).zip(&rows) {
            assert_eq!(row.seq.0, expect_seq, "round {round}: gap in the log");
            let (r, t, c) = parse(&row.data)
                .unwrap_or_else(|| panic!("round {round}: unparsable row {}", row.seq));
            assert_eq!(r, round, "round {round}: row {} from round {r}", row.seq);
            assert_eq!(
                row.data,
                payload(r, t, c),
                "round {round}: torn state change {}",
                row.seq
            );
            assert_eq!(
                s.events_of(row.seq).unwrap(),
                vec![event(r, t, c)],
                "round {round}: events of {}",
                row.seq
            );
            let n = next_counter.entry(t).or_insert(0);
            assert_eq!(c, *n, "round {round}: thread {t} skipped a counter");
            *n += 1;
        }
        // The meta written with each append is exactly as new as that thread's last row.
        for t in 0..THREADS {
            let meta = s.get_meta(&format!("cursor/r{round}/t{t}")).unwrap();
            let want = next_counter
                .get(&t)
                .map(|n| (n - 1).to_string().into_bytes());
            assert_eq!(
                meta, want,
                "round {round}: meta of thread {t} not atomic with its append"
            );
        }
        // Every acknowledged append is there, with the right bytes.
        for &(seq, t, c) in &acked {
            let row = s
                .state_change(seq)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acked seq {seq} lost"));
            assert_eq!(
                row.data,
                payload(round, t, c),
                "round {round}: acked seq {seq} has wrong bytes"
            );
        }
        last = s.last_seq().unwrap();
        assert!(acked.iter().all(|(seq, ..)| *seq <= last));
        drop(s);
    }

    // The whole log, all rounds: gap-free from 1, every row valid.
    let s = Storage::open(dir, StorageOptions::default()).unwrap();
    let all = s.state_changes_after(Seq::ZERO).unwrap();
    assert_eq!(all.len() as u64, last.0);
    for (i, row) in all.iter().enumerate() {
        assert_eq!(row.seq, Seq(i as u64 + 1));
        let (r, t, c) = parse(&row.data).unwrap();
        assert_eq!(row.data, payload(r, t, c));
    }
    eprintln!(
        "crash test: {rounds} kills, {rounds_with_acks} with acknowledged appends, {total_acked} acknowledged, \
         {} rows in the log, {:.1} s",
        last.0,
        started.elapsed().as_secs_f64()
    );
    assert!(
        rounds_with_acks > 0,
        "the child never got to append; the test proved nothing"
    );
}

#[test]
fn a_second_process_is_refused_while_the_first_holds_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn(tmp.path(), 0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("ready {}", child.id()));
    match Storage::open(tmp.path(), StorageOptions::default()) {
        Err(StorageError::Locked { holder_pid, .. }) => assert_eq!(holder_pid, Some(child.id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(out);
    Storage::open(tmp.path(), StorageOptions::default())
        .unwrap()
        .check_integrity()
        .unwrap();
}
