//! Durable commit throughput of the storage crate.
//!
//! `cargo run --release -p smartmesh-storage --bin bench-storage [-- --dir DIR --secs S --runs N]`
//!
//! Measures (each the median of N runs of S seconds, in a fresh database each run):
//! * single-row durable commits/s: `Storage::append`, one transaction (one fsync) each;
//! * group-committed durable appends/s with 1, 4, 16 and 64 concurrent submitters,
//!   each waiting for its append to be durable before submitting the next;
//! * one submitter keeping 64 or 1,024 appends in flight (the node's event-loop pattern);
//! * for reference, single-row commits/s with `synchronous=NORMAL` (not durable per commit).
//!
//! Every append is a ~200-byte state change plus one ~200-byte event.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use smartmesh_storage::{CommitterOptions, Entry, Pending, Storage, StorageOptions, SyncMode};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    dir: PathBuf,
    secs: f64,
    runs: usize,
}

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        dir: std::env::temp_dir().join(format!("smartmesh-bench-storage-{}", std::process::id())),
        secs: 1.0,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(val()?),
            "--secs" => a.secs = val()?.parse()?,
            "--runs" => a.runs = val()?.parse()?,
            "-h" | "--help" => {
                println!("bench-storage [--dir DIR] [--secs SECONDS_PER_RUN] [--runs N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.runs == 0 || a.secs <= 0.0 {
        return Err("--runs and --secs must be positive".into());
    }
    Ok(a)
}

fn bytes(seed: u8) -> Vec<u8> {
    (0..200u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn fresh(dir: &Path, name: &str) -> BoxResult<PathBuf> {
    let d = dir.join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    Ok(d)
}

fn single(dir: &Path, secs: f64, sync_mode: SyncMode) -> BoxResult<f64> {
    let d = fresh(dir, "single")?;
    let s = Storage::open(
        &d,
        StorageOptions {
            sync_mode,
            ..Default::default()
        },
    )?;
    let (sc, ev) = (bytes(1), bytes(2));
    let dur = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        s.append(&sc, &[&ev])?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(s);
    std::fs::remove_dir_all(&d)?;
    Ok(rate)
}

/// The disk's raw durable-write rate: 4 KiB overwrite + `fdatasync`, for context (the
/// figures below depend on it; it drops sharply while other processes write heavily).
fn disk_probe(dir: &Path, secs: f64) -> BoxResult<f64> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5Au8; 4096];
    f.write_all(&block)?;
    f.sync_all()?;
    let dur = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

struct GroupRun {
    rate: f64,
    avg_batch: f64,
    p50_us: f64,
    p99_us: f64,
}

fn group(dir: &Path, secs: f64, submitters: usize) -> BoxResult<GroupRun> {
    let d = fresh(dir, "group")?;
    let s = Storage::open(&d, StorageOptions::default())?;
    let c = s.start_committer(CommitterOptions::default())?;
    let (sc, ev) = (bytes(3), bytes(4));
    let dur = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let lat: Vec<Duration> = std::thread::scope(|scope| -> BoxResult<Vec<Duration>> {
        let handles: Vec<_> = (0..submitters)
            .map(|_| {
                let (c, sc, ev) = (c.clone(), sc.clone(), ev.clone());
                scope.spawn(move || -> BoxResult<Vec<Duration>> {
                    let mut lat = Vec::new();
                    while start.elapsed() < dur {
                        let t = Instant::now();
                        c.append(Entry {
                            state_change: sc.clone(),
                            events: vec![ev.clone()],
                            meta: Vec::new(),
                        })?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| "submitter panicked")??);
        }
        Ok(all)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let stats = c.stats();
    drop(c);
    drop(s);
    std::fs::remove_dir_all(&d)?;
    let mut lat = lat;
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(GroupRun {
        rate: stats.entries as f64 / elapsed,
        avg_batch: stats.entries as f64 / (stats.batches.max(1)) as f64,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

/// One submitter keeping up to `window` appends in flight (how a node's event loop
/// uses the committer: submit, keep working, act on each input once it is durable).
fn pipelined(dir: &Path, secs: f64, window: usize) -> BoxResult<(f64, f64)> {
    let d = fresh(dir, "pipelined")?;
    let s = Storage::open(&d, StorageOptions::default())?;
    let c = s.start_committer(CommitterOptions::default())?;
    let (sc, ev) = (bytes(5), bytes(6));
    let dur = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut in_flight: std::collections::VecDeque<Pending> =
        std::collections::VecDeque::with_capacity(window);
    let mut done = 0u64;
    while start.elapsed() < dur {
        if in_flight.len() == window
            && let Some(p) = in_flight.pop_front()
        {
            p.wait()?;
            done += 1;
        }
        in_flight.push_back(c.submit(Entry {
            state_change: sc.clone(),
            events: vec![ev.clone()],
            meta: Vec::new(),
        })?);
    }
    for p in in_flight {
        p.wait()?;
        done += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = c.stats();
    drop(c);
    drop(s);
    std::fs::remove_dir_all(&d)?;
    Ok((
        done as f64 / elapsed,
        stats.entries as f64 / (stats.batches.max(1)) as f64,
    ))
}

fn median_by<T>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

fn fmt_runs(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone, Copy)]
enum Case {
    Disk,
    Single(SyncMode),
    Group(usize),
    Pipelined(usize),
}

impl Case {
    fn name(self) -> String {
        match self {
            Case::Disk => "disk_fdatasync_per_s".into(),
            Case::Single(SyncMode::Full) => "single_durable_commits_per_s".into(),
            Case::Single(SyncMode::Normal) => "reference_normal_commits_per_s".into(),
            Case::Group(k) => format!("group_{k}_durable_appends_per_s"),
            Case::Pipelined(w) => format!("pipelined_1x{w}_durable_appends_per_s"),
        }
    }

    fn note(self) -> String {
        match self {
            Case::Disk => "4 KiB overwrite + fdatasync; context only".into(),
            Case::Single(SyncMode::Full) => "one append per transaction".into(),
            Case::Single(SyncMode::Normal) => "synchronous=NORMAL, NOT durable per commit".into(),
            Case::Group(k) => format!("{k} threads, each waits for its ack"),
            Case::Pipelined(w) => format!("one submitter, {w} in flight"),
        }
    }

    fn measure(self, dir: &Path, secs: f64) -> BoxResult<GroupRun> {
        let plain = |rate| GroupRun {
            rate,
            avg_batch: 1.0,
            p50_us: 0.0,
            p99_us: 0.0,
        };
        Ok(match self {
            Case::Disk => plain(disk_probe(dir, secs / 2.0)?),
            Case::Single(mode) => plain(single(dir, secs, mode)?),
            Case::Group(k) => group(dir, secs, k)?,
            Case::Pipelined(w) => {
                let (rate, avg_batch) = pipelined(dir, secs, w)?;
                GroupRun {
                    rate,
                    avg_batch,
                    p50_us: 0.0,
                    p99_us: 0.0,
                }
            }
        })
    }
}

fn run() -> BoxResult<()> {
    let a = parse_args()?;
    std::fs::create_dir_all(&a.dir)?;
    println!(
        "bench-storage: dir={} ; append = 200-byte state change + one 200-byte event ; \
         SQLite WAL synchronous=FULL ; median of {} rounds x {:.1} s, cases interleaved per round",
        a.dir.display(),
        a.runs,
        a.secs
    );
    let cases = [
        Case::Disk,
        Case::Single(SyncMode::Full),
        Case::Group(1),
        Case::Group(4),
        Case::Group(16),
        Case::Group(64),
        Case::Pipelined(64),
        Case::Pipelined(1024),
        Case::Single(SyncMode::Normal),
    ];
    // Rounds outside, cases inside: a disk slowed by other processes for a few seconds
    // then hurts one run of every case instead of every run of one case.
    let mut results: Vec<Vec<GroupRun>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..a.runs {
        for (case, out) in cases.iter().zip(results.iter_mut()) {
            out.push(case.measure(&a.dir, a.secs)?);
        }
    }
    let mut single_med = f64::NAN;
    let mut ratios = Vec::new();
    for (case, runs) in cases.iter().zip(results) {
        let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
        let m = median_by(runs, |r| r.rate);
        let mut extra = String::new();
        match case {
            Case::Group(_) => {
                extra = format!(
                    " avg_batch={:.1} ack_p50_us={:.0} ack_p99_us={:.0}",
                    m.avg_batch, m.p50_us, m.p99_us
                )
            }
            Case::Pipelined(_) => extra = format!(" avg_batch={:.1}", m.avg_batch),
            _ => {}
        }
        println!(
            "{}={:.0}{extra}   ({}; runs: {})",
            case.name(),
            m.rate,
            case.note(),
            fmt_runs(&rates)
        );
        match case {
            Case::Single(SyncMode::Full) => single_med = m.rate,
            Case::Group(k) => ratios.push((format!("group_{k}"), m.rate)),
            Case::Pipelined(w) => ratios.push((format!("pipelined_1x{w}"), m.rate)),
            _ => {}
        }
    }
    for (name, rate) in ratios {
        println!("ratio_{name}_over_single={:.2}", rate / single_med);
    }
    let _ = std::fs::remove_dir(&a.dir);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-storage: {e}");
            ExitCode::FAILURE
        }
    }
}
