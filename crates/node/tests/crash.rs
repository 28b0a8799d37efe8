//! The SIGKILL crash test (issue 3, item 5).
//!
//! Design: this test process hosts the chain — an embedded chain with the contracts,
//! served over JSON-RPC by `smartmesh_chain::devchain` on a loopback port — so the
//! chain outlives every kill, as a real chain would. It opens one channel between two
//! funded keys, then starts `smartmesh-crash-node run` (two nodes in one process,
//! durable storage in one temp dir, paying each other continuously over the channel)
//! and kills it with SIGKILL at a random instant, at least 20 times, restarting it each
//! time from the same data directory. The process prints a proof only after the input
//! that produced it is durable and acted on (`SIGNED`/`RECEIVED`), and prints what it
//! recovered on each start (`STATE`). Checked:
//!
//! * nothing printed is lost: after every restart each node's recovered proof nonce is
//!   at least every nonce it printed as signed, and its partner's recovered proof at
//!   least every nonce it printed as received;
//! * no nonce reuse: one `(signer, nonce)` always carries the same transferred amount,
//!   across every run, signed or received;
//! * no gaps: the new nonces a run signs start right after the recovered one and are
//!   consecutive;
//! * the final settlement matches: a last, un-killed `settle` run drains the queues,
//!   prints the final proofs, closes on the same chain; the test moves chain time past
//!   the settle timeout, the node settles, and the SMT each key received on chain is
//!   exactly `deposit - sent + received` by those final proofs (which in turn hold
//!   every proof printed before any kill).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use smartmesh_chain::devchain::DevchainServer;
use smartmesh_primitives::U256;
use smartmesh_testkit::Lifecycle;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 20;
const DEPOSIT: u64 = 1_000_000;

#[derive(Default, Debug)]
struct Run {
    /// node -> (our nonce, our transferred, partner nonce, partner transferred)
    state: BTreeMap<String, (u64, U256, u64, U256)>,
    /// node -> (nonce, transferred) it signed
    signed: BTreeMap<String, Vec<(u64, U256)>>,
    /// node -> (partner's nonce, transferred) it received
    received: BTreeMap<String, Vec<(u64, U256)>>,
    settled: Option<(U256, U256)>,
    closed: bool,
}

fn parse(lines: &[String]) -> Run {
    let mut run = Run::default();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        let amt = |i: usize| f.get(i).and_then(|s| s.parse::<U256>().ok());
        match f.first().copied() {
            Some("STATE") if f.len() == 6 => {
                if let (Some(a), Some(b), Some(c), Some(d)) = (num(2), amt(3), num(4), amt(5)) {
                    run.state.insert(f[1].to_owned(), (a, b, c, d));
                }
            }
            Some(kind @ ("SIGNED" | "RECEIVED")) if f.len() == 4 => {
                if let (Some(n), Some(t)) = (num(2), amt(3)) {
                    let map = if kind == "SIGNED" {
                        &mut run.signed
                    } else {
                        &mut run.received
                    };
                    map.entry(f[1].to_owned()).or_default().push((n, t));
                }
            }
            Some("SETTLED") if f.len() == 3 => {
                run.settled = Some((amt(1).expect("amount1"), amt(2).expect("amount2")));
            }
            Some("CLOSED") => run.closed = true,
            _ => {} // a line cut by the kill
        }
    }
    run
}

fn other(node: &str) -> &'static str {
    if node == "a" { "b" } else { "a" }
}

/// Whether channel `id` is closed on chain (scanning its events from the start).
async fn channel_closed(
    chain: &smartmesh_chain::embedded::EmbeddedChain,
    lc: &Lifecycle,
    id: U256,
) -> bool {
    use smartmesh_chain::{Chain, EventCursor, EventFilter};
    let mut tracker =
        smartmesh_chain::token_network::ChannelTracker::new(lc.deployment.token_network);
    let mut cursor = EventCursor::from_block(lc.deployment.start_block);
    let filter = EventFilter::contracts(vec![lc.deployment.token_network]);
    loop {
        let Ok(batch) = chain.events_since(&cursor, &filter).await else {
            return false;
        };
        tracker.apply_all(&batch.events);
        cursor = batch.cursor;
        if batch.caught_up {
            break;
        }
    }
    tracker.channel(id).is_some_and(|c| c.closedAt != 0) || tracker.outcome(id).is_some()
}

/// A small xorshift, seeded by the clock (the instants need not be reproducible; the
/// seed is printed).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_instants_loses_no_proof_and_settlement_matches() {
    let mut lc = Lifecycle::embedded(2).await.expect("chain");
    let chain = lc.embedded_chain().expect("embedded").clone();
    let server = DevchainServer::start(chain.clone(), 0)
        .await
        .expect("devchain");
    let (ka, kb) = (lc.keys[0].clone(), lc.keys[1].clone());
    let (id, _) = lc
        .open_with_deposit(&ka, &kb, U256::from(DEPOSIT))
        .await
        .expect("open");
    lc.deposit(id, &kb, U256::from(DEPOSIT))
        .await
        .expect("deposit");
    let before = (
        lc.smt_balance(ka.address()).await.expect("bal"),
        lc.smt_balance(kb.address()).await.expect("bal"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let deployment = dir.path().join("deployment.json");
    lc.deployment.write(&deployment).expect("deployment file");
    let args = |mode: &str| {
        vec![
            mode.to_owned(),
            dir.path().join("data").display().to_string(),
            server.url(),
            deployment.display().to_string(),
            hex::encode(ka.to_bytes()),
            hex::encode(kb.to_bytes()),
        ]
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs: Vec<Run> = Vec::new();

    let spawn = |mode: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smartmesh-crash-node"))
            .args(args(mode))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the crash node");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        (child, reader)
    };

    for kill in 0..KILLS {
        let (mut child, reader) = spawn("run");
        // Random instants: some during recovery, most while paying.
        let delay = 100 + rng.next() % 600;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().expect("SIGKILL"); // SIGKILL on Unix
        child.wait().expect("reaped");
        let run = parse(&reader.join().expect("reader"));
        println!(
            "kill {kill} after {delay} ms: signed {:?}",
            run.signed
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect::<Vec<_>>()
        );
        runs.push(run);
    }

    // The final, un-killed run: drain, close, settle.
    let (mut child, reader) = spawn("settle");
    let closed_by = Instant::now() + Duration::from_secs(30);
    // Wait for the close on chain, then move chain time past the settle timeout.
    loop {
        if channel_closed(&chain, &lc, id).await {
            break;
        }
        assert!(
            Instant::now() < closed_by,
            "the final run did not close the channel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    chain.increase_time(700);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("settle run exits");
    let last = parse(&reader.join().expect("reader"));
    assert!(status.success(), "settle run failed: {last:?}");
    runs.push(last);

    // ---- checks ----
    let mut proofs: BTreeMap<(String, u64), U256> = BTreeMap::new();
    let mut record = |signer: &str, nonce: u64, t: U256| {
        if nonce == 0 {
            return;
        }
        let prev = proofs.insert((signer.to_owned(), nonce), t);
        assert!(
            prev.is_none_or(|p| p == t),
            "nonce {nonce} of {signer} reused: {prev:?} vs {t}"
        );
    };
    let mut total_signed = 0usize;
    for (k, run) in runs.iter().enumerate() {
        for (node, list) in &run.signed {
            total_signed += list.len();
            for (n, t) in list {
                record(node, *n, *t);
            }
        }
        for (node, list) in &run.received {
            for (n, t) in list {
                record(other(node), *n, *t);
            }
        }
        for (node, (on, ot, pn, pt)) in &run.state {
            record(node, *on, *ot);
            record(other(node), *pn, *pt);
        }
        // No gaps: the new nonces of a run continue the recovered one.
        for (node, list) in &run.signed {
            let Some((recovered, ..)) = run.state.get(node) else {
                continue;
            };
            let fresh: BTreeSet<u64> = list
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| n > recovered)
                .collect();
            let expected: BTreeSet<u64> =
                (recovered + 1..=fresh.last().copied().unwrap_or(*recovered)).collect();
            assert_eq!(fresh, expected, "run {k}: {node} skipped a nonce");
        }
        // Nothing printed before this run is missing from what it recovered.
        if runs[k].state.len() == 2 {
            for earlier in &runs[..k] {
                for (node, list) in &earlier.signed {
                    let max = list.iter().map(|(n, _)| *n).max().unwrap_or(0);
                    assert!(
                        run.state[node].0 >= max,
                        "run {k}: {node} lost a signed proof"
                    );
                }
                for (node, list) in &earlier.received {
                    let max = list.iter().map(|(n, _)| *n).max().unwrap_or(0);
                    assert!(
                        run.state[node].2 >= max,
                        "run {k}: {node} lost a received proof"
                    );
                }
            }
        }
    }
    assert!(
        total_signed > 100,
        "the process made too few payments ({total_signed})"
    );

    // The final settlement matches the final proofs, to the unit.
    let last = runs.last().expect("final run");
    assert!(last.closed);
    let (a_nonce, a_sent, _, a_got) = last.state["a"];
    let (b_nonce, b_sent, _, b_got) = last.state["b"];
    assert_eq!(a_got, b_sent, "a holds b's newest proof");
    assert_eq!(b_got, a_sent, "b holds a's newest proof");
    let deposit = U256::from(DEPOSIT);
    let expect_a = deposit - a_sent + b_sent;
    let expect_b = deposit - b_sent + a_sent;
    let (amount1, amount2) = last.settled.expect("SETTLED line");
    assert_eq!((amount1, amount2), (expect_a, expect_b));
    let after = (
        lc.smt_balance(ka.address()).await.expect("bal"),
        lc.smt_balance(kb.address()).await.expect("bal"),
    );
    assert_eq!(after.0 - before.0, expect_a);
    assert_eq!(after.1 - before.1, expect_b);
    println!(
        "{} kills in {:?}; final nonces a={a_nonce} b={b_nonce}, a sent {a_sent}, b sent {b_sent}",
        KILLS,
        started.elapsed()
    );
    server.stop().await.expect("stop devchain");
}
