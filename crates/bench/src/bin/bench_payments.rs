//! `bench-payments`: durable payment throughput and latency of the engine + storage.
//!
//! `cargo run --release --bin bench-payments [-- --rounds R --transfers N --window W
//! --payments P --dir DIR --no-replay]`
//!
//! Each round measures, side by side on the same machine state:
//! 1. the signing limit: secp256k1 sign + recover per second on one core (libsecp256k1);
//! 2. durable direct transfers per second between two nodes (two threads, two SQLite
//!    logs with `synchronous=FULL` and group commit), each transfer individually
//!    signed, verified and persisted by both sides before it is acknowledged;
//! 3. the latency of sequential 3-hop mediated payments over four durable nodes.
//!
//! Every round checks that each transfer was applied exactly once and that balances
//! match; the first round also replays every node's log and compares. The figures
//! printed are medians over the rounds; the output ends with `direct_tps=`,
//! `sign_limit_tps=`, `mediated_p50_ms=` and `mediated_p99_ms=` lines.

#[path = "../payments/mod.rs"]
mod payments;

use payments::{cpu, direct, mediated, sign};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Published throughput of other implementations (payments per second).
const LND_TPS: f64 = 33.0;
const CLN_TPS: f64 = 20.0;
/// Published latency of other implementations (ms).
const ECLAIR_AVG_MS: f64 = 75.0;
const RAIDEN_MIN_MS: f64 = 200.0;
const RAIDEN_MAX_MS: f64 = 2_000.0;
/// Targets.
const TARGET_TPS: f64 = 10_000.0;
const TARGET_P50_MS: f64 = 5.0;
const TARGET_P99_MS: f64 = 20.0;

struct Args {
    rounds: usize,
    transfers: u64,
    window: u64,
    payments: usize,
    warmup: usize,
    signs: usize,
    dir: PathBuf,
    replay: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rounds: 3,
        transfers: 20_000,
        window: 1_024,
        payments: 500,
        warmup: 20,
        signs: 4_000,
        dir: std::env::temp_dir(),
        replay: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--rounds" => a.rounds = num(val()?)? as usize,
            "--transfers" => a.transfers = num(val()?)?,
            "--window" => a.window = num(val()?)?,
            "--payments" => a.payments = num(val()?)? as usize,
            "--warmup" => a.warmup = num(val()?)? as usize,
            "--signs" => a.signs = num(val()?)? as usize,
            "--dir" => a.dir = PathBuf::from(val()?),
            "--no-replay" => a.replay = false,
            "-h" | "--help" => {
                println!(
                    "bench-payments [--rounds R] [--transfers N] [--window W] [--payments P] \
                     [--warmup K] [--signs S] [--dir DIR] [--no-replay]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.rounds == 0 || a.transfers == 0 || a.window == 0 || a.payments == 0 || a.signs == 0 {
        return Err(
            "--rounds, --transfers, --window, --payments and --signs must be positive".into(),
        );
    }
    Ok(a)
}

/// The `p` quantile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Fraction of the machine's CPU that other processes used between two
/// `cpu::machine()` readings, given this process's CPU time over the same span.
pub fn others_busy(a: (u64, u64), b: (u64, u64), ours: Duration) -> f64 {
    let total = b.1.saturating_sub(a.1);
    if total == 0 {
        return 0.0;
    }
    // /proc/stat counts in USER_HZ (100 per second).
    let busy_s = b.0.saturating_sub(a.0) as f64 / 100.0;
    ((busy_s - ours.as_secs_f64()) / (total as f64 / 100.0)).clamp(0.0, 1.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us_per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// The filesystem type holding `dir` (longest mount prefix in /proc/mounts).
fn fs_type(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, k)| k)
}

struct Round {
    sign: sign::SignRound,
    direct: direct::DirectRound,
    mediated: mediated::MediatedRound,
}

fn run_round(args: &Args, base: &Path, k: usize) -> Result<Round, String> {
    let dir = base.join(format!("round-{k}"));
    let replay = args.replay && k == 0;
    let sign = sign::measure(args.signs)?;
    let direct = direct::round(&dir, args.transfers, args.window, replay)?;
    let mediated = mediated::round(&dir, args.payments, args.warmup, k as u64, replay)?;
    std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    Ok(Round {
        sign,
        direct,
        mediated,
    })
}

fn print_round(k: usize, r: &Round) {
    let d = &r.direct;
    let m = &r.mediated;
    println!(
        "round {}: sign+recover {:.0}/s (sign {:.1} us, recover {:.1} us) | direct {:.0}/s \
         ({} transfers in {:.2} s, entries per fsync A {:.0} B {:.0}, action-to-durable-ack p50 {:.1} ms p99 {:.1} ms) | \
         mediated to PaymentSent p50 {:.2} ms p99 {:.2} ms, all four nodes done p50 {:.2} ms p99 {:.2} ms",
        k + 1,
        r.sign.pairs_per_s,
        r.sign.sign.as_secs_f64() * 1e6,
        r.sign.recover.as_secs_f64() * 1e6,
        d.tps,
        d.transfers,
        d.elapsed.as_secs_f64(),
        d.batch_a,
        d.batch_b,
        ms(d.lat_p50),
        ms(d.lat_p99),
        ms(percentile(&m.sent, 0.5)),
        ms(percentile(&m.sent, 0.99)),
        ms(percentile(&m.full, 0.5)),
        ms(percentile(&m.full, 0.99)),
    );
    let n = d.transfers;
    let t = |x: &payments::node::Timings| {
        format!(
            "transition {:.1} + log encode {:.1} + submit {:.1} + wire decode {:.1} + wire send {:.1} us (thread on-CPU {:.1} us; {} inputs, {} parks)",
            us_per(x.transition, n),
            us_per(x.log_encode, n),
            us_per(x.submit, n),
            us_per(x.wire_decode, n),
            us_per(x.wire_send, n),
            us_per(x.cpu, n),
            x.inputs,
            x.parks
        )
    };
    println!(
        "  direct, per transfer: A (signs; logs transfer + ack): {}",
        t(&d.a)
    );
    println!(
        "  direct, per transfer: B (recovers; logs transfer):    {}",
        t(&d.b)
    );
    println!(
        "  direct, per transfer: both WAL writer threads {:.1} us on-CPU; whole process {:.0} us on-CPU (= {:.2} of {} cores busy); other processes used {:.0}% of the machine",
        us_per(d.writers_cpu, n),
        us_per(d.process_cpu, n),
        d.process_cpu.as_secs_f64() / d.elapsed.as_secs_f64(),
        cpu::cores(),
        d.others_busy * 100.0
    );
    println!(
        "  mediated: {} payments of {:?} (initiator pays {:?} with fees), process on-CPU {:.0} us per payment, other processes used {:.0}% of the machine",
        m.payments,
        m.amount.0,
        m.paid.0,
        m.cpu_per_payment.as_secs_f64() * 1e6,
        m.others_busy * 100.0
    );
    let per = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    for (i, x) in m.nodes.iter().enumerate() {
        let name = ["initiator", "mediator 1", "mediator 2", "target"][i.min(3)];
        println!(
            "  mediated, {name:<10}: {:.1} inputs/payment; per input: transition {:.1} us, submit-to-durable {:.0} us; per message: inbox wait {:.0} us; thread on-CPU {:.0} us/payment",
            x.inputs as f64 / m.total as f64,
            per(x.transition, x.inputs),
            per(x.commit_wait, x.inputs),
            per(x.inbox_wait, x.received),
            per(x.cpu, m.total as u64),
        );
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-payments: {e}");
            return ExitCode::from(2);
        }
    };
    let base = args
        .dir
        .join(format!("smartmesh-bench-payments-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&base) {
        eprintln!("bench-payments: create {}: {e}", base.display());
        return ExitCode::FAILURE;
    }
    let fs = fs_type(&base);
    println!(
        "bench-payments: {} cores; data under {} ({fs}); every node: own SQLite WAL, synchronous=FULL, group commit; \
         {} rounds, figures are medians",
        cpu::cores(),
        base.display(),
        args.rounds
    );
    if fs == "tmpfs" || fs == "ramfs" {
        println!(
            "WARNING: {fs} does not persist; fsync is free there and the figures are not durable ones (use --dir on a disk)"
        );
    }
    println!(
        "direct: node A signs, logs, sends; node B decodes, recovers, logs, acks; A logs the ack. {} transfers per round, at most {} in flight",
        args.transfers, args.window
    );
    println!(
        "mediated: initiator -> mediator -> mediator -> target (3 channels, fees 1 + 0.1% per mediator); each node on its own thread with its \
         own log and group committer; messages as wire bytes between threads in memory (no network delay: on a real link add 8 one-way \
         delays on the critical path); {} sequential payments per round after {} warm-up; latency from ActionMediatedTransfer to the \
         initiator's durable PaymentSent (Unlock logged, sent)",
        args.payments, args.warmup
    );
    let mut rounds = Vec::new();
    for k in 0..args.rounds {
        match run_round(&args, &base, k) {
            Ok(r) => {
                print_round(k, &r);
                rounds.push(r);
            }
            Err(e) => {
                eprintln!("bench-payments: round {}: {e}", k + 1);
                let _ = std::fs::remove_dir_all(&base);
                return ExitCode::FAILURE;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    if args.replay {
        println!(
            "checks: every round: each transfer applied exactly once, balances equal on both ends of every channel, no locks or unacked messages left, every input logged; \
             round 1: every node's log replayed into identical state and identical logged events"
        );
    }

    let direct_tps = median(rounds.iter().map(|r| r.direct.tps).collect());
    let sign_tps = median(rounds.iter().map(|r| r.sign.pairs_per_s).collect());
    let p50 = median(
        rounds
            .iter()
            .map(|r| ms(percentile(&r.mediated.sent, 0.5)))
            .collect(),
    );
    let p99 = median(
        rounds
            .iter()
            .map(|r| ms(percentile(&r.mediated.sent, 0.99)))
            .collect(),
    );
    let full50 = median(
        rounds
            .iter()
            .map(|r| ms(percentile(&r.mediated.full, 0.5)))
            .collect(),
    );
    let full99 = median(
        rounds
            .iter()
            .map(|r| ms(percentile(&r.mediated.full, 0.99)))
            .collect(),
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let row = |figure: &str,
               value: String,
               target: &str,
               status: &str,
               reference: &str,
               ratio: String| {
        println!("{figure:<40} {value:>10} {target:>9} {status:<6}  {reference:<42} {ratio}");
    };

    println!();
    row(
        "figure (median of rounds)",
        "value".into(),
        "target",
        "",
        "reference",
        "ratio".into(),
    );
    row(
        "durable direct transfers/s, 2 nodes",
        format!("{direct_tps:.0}"),
        ">= 10000",
        met(direct_tps >= TARGET_TPS),
        "LND about 33/s",
        format!("{:.0}x", direct_tps / LND_TPS),
    );
    row(
        "",
        String::new(),
        "",
        "",
        "c-lightning about 20/s",
        format!("{:.0}x", direct_tps / CLN_TPS),
    );
    row(
        "sign + recover/s, one core (limit)",
        format!("{sign_tps:.0}"),
        "-",
        "",
        "direct_tps / sign_limit_tps",
        format!("{:.2}", direct_tps / sign_tps),
    );
    row(
        "mediated 3-hop p50, ms",
        format!("{p50:.2}"),
        "<= 5",
        met(p50 <= TARGET_P50_MS),
        "Eclair about 75 ms average",
        format!(
            "{:.3} ({:.0}x faster)",
            p50 / ECLAIR_AVG_MS,
            ECLAIR_AVG_MS / p50
        ),
    );
    row(
        "",
        String::new(),
        "",
        "",
        "Raiden 200 ms to 2 s per direct transfer",
        format!(
            "{:.0}x to {:.0}x faster",
            RAIDEN_MIN_MS / p50,
            RAIDEN_MAX_MS / p50
        ),
    );
    row(
        "mediated 3-hop p99, ms",
        format!("{p99:.2}"),
        "<= 20",
        met(p99 <= TARGET_P99_MS),
        "Eclair about 75 ms average",
        format!(
            "{:.3} ({:.0}x faster)",
            p99 / ECLAIR_AVG_MS,
            ECLAIR_AVG_MS / p99
        ),
    );
    row(
        "mediated 3-hop until all 4 nodes done, ms",
        format!("{full50:.2}"),
        "-",
        "",
        "p50 (information); p99:",
        format!("{full99:.2}"),
    );
    println!();
    println!("direct_tps={direct_tps:.0}");
    println!("sign_limit_tps={sign_tps:.0}");
    println!("mediated_p50_ms={p50:.2}");
    println!("mediated_p99_ms={p99:.2}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small round of each benchmark passes every check, replay included, so the
    /// benchmark cannot rot unnoticed.
    #[test]
    fn small_rounds_are_correct() {
        let dir = std::env::temp_dir().join(format!(
            "smartmesh-bench-payments-test-{}",
            std::process::id()
        ));
        let d = direct::round(&dir, 300, 64, true).expect("direct round");
        assert_eq!(d.transfers, 300);
        assert!(d.tps > 0.0);
        let m = mediated::round(&dir, 10, 2, 0, true).expect("mediated round");
        assert_eq!((m.sent.len(), m.full.len()), (10, 10));
        let s = sign::measure(50).expect("sign");
        assert!(s.pairs_per_s > 0.0);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
