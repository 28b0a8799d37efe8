//! Test helper for the SIGKILL crash test (`tests/crash.rs`); not a user tool.
//!
//! `wal-crash-child DIR ROUND THREADS` opens the storage in DIR, starts the group
//! committer and runs THREADS submitters that append as fast as they can. After each
//! acknowledged append it prints `SEQ THREAD COUNTER` (one line, flushed). It prints
//! `ready PID` once the storage is open. It runs until killed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use smartmesh_storage::{CommitterOptions, Entry, Storage, StorageOptions};

/// The state change appended by `thread` as its `counter`-th append in `round`.
/// Must match `payload` in `tests/crash.rs`.
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

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wal-crash-child: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, round, threads] = args.as_slice() else {
        return Err("usage: wal-crash-child DIR ROUND THREADS".into());
    };
    let dir = PathBuf::from(dir);
    let round: u64 = round.parse()?;
    let threads: u64 = threads.parse()?;

    let storage = Storage::open(&dir, StorageOptions::default())?;
    let committer = storage.start_committer(CommitterOptions::default())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {}", std::process::id())?;
        out.flush()?;
    }
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let c = committer.clone();
            std::thread::spawn(move || -> Result<(), String> {
                for counter in 0.. {
                    let entry = Entry::new(payload(round, t, counter))
                        .with_event(event(round, t, counter))
                        .with_meta(format!("cursor/r{round}/t{t}"), counter.to_string());
                    let seq = c.append(entry).map_err(|e| e.to_string())?;
                    // Printed only after the append is acknowledged (durable).
                    let line = format!("{seq} {t} {counter}\n");
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes())
                        .and_then(|()| out.flush())
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "submitter panicked")??;
    }
    Ok(())
}
