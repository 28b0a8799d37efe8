//! `gas-report`: the gas of every TokenNetwork operation on the embedded chain (revm,
//! current mainnet rules), next to Raiden's published figures (raiden-contracts
//! `gas.json`), ending with the two lifecycle totals.

use smartmesh_primitives::{B256, U256, eip712::Lock, keccak256};
use smartmesh_testkit::{Lifecycle, smt};
use std::process::ExitCode;

/// Raiden's published gas figures for the same operations.
const RAIDEN: &[(&str, u64)] = &[
    ("open", 111_094),
    ("open with deposit", 146_956),
    ("deposit", 56_000),
    ("close", 118_501),
    ("update", 90_516),
    ("settle", 108_569),
    ("cooperative settle", 112_270),
    ("unlock (1 lock)", 38_619),
];
const FULL_TARGET: u64 = 300_000;
const COOP_TARGET: u64 = 200_000;
const RAIDEN_FULL: u64 = 540_000;
const RAIDEN_COOP: u64 = 315_000;

struct Report {
    rows: Vec<(&'static str, u64)>,
}

impl Report {
    fn record(&mut self, name: &'static str, gas: u64) -> u64 {
        self.rows.push((name, gas));
        gas
    }

    fn print(&self) {
        println!(
            "{:<28} {:>10} {:>10} {:>7}",
            "operation", "smartmesh", "raiden", "ratio"
        );
        for (name, gas) in &self.rows {
            match RAIDEN.iter().find(|(r, _)| r == name) {
                Some((_, raiden)) => println!(
                    "{name:<28} {gas:>10} {raiden:>10} {:>7.2}",
                    *gas as f64 / *raiden as f64
                ),
                None => println!("{name:<28} {gas:>10} {:>10} {:>7}", "-", "-"),
            }
        }
    }
}

async fn run() -> Result<(), String> {
    let mut lc = Lifecycle::embedded(4)
        .await
        .map_err(|e| format!("cannot start the embedded chain: {e}"))?;
    let (a, b) = (lc.keys[0].clone(), lc.keys[1].clone());
    let mut report = Report { rows: Vec::new() };
    let err = |e: smartmesh_chain::ChainError| e.to_string();

    // Steady state: the TokenNetwork already holds tokens from another channel, as it
    // does on any live deployment (the first deposit ever pays for a new balance slot).
    let (warm, _) = lc
        .open_with_deposit(&lc.keys[2].clone(), &lc.keys[3].clone(), smt(1))
        .await
        .map_err(err)?;
    let _ = warm;

    // Full lifecycle: open, two deposits, close, update, settle.
    let (id, r) = lc.open(&a, &b).await.map_err(err)?;
    let open = report.record("open", r.gas_used);
    let dep1 = report.record(
        "deposit",
        lc.deposit(id, &a, smt(100)).await.map_err(err)?.gas_used,
    );
    let dep2 = lc.deposit(id, &b, smt(100)).await.map_err(err)?.gas_used;
    report.record("deposit (second participant)", dep2);
    let from_a = lc.proof(&a, id, 3, smt(30));
    let from_b = lc.proof(&b, id, 2, smt(10));
    let close = report.record(
        "close",
        lc.close(id, &a, Some(&from_b), &from_a.balance)
            .await
            .map_err(err)?
            .gas_used,
    );
    let update = report.record(
        "update",
        lc.update(id, &b, &from_a).await.map_err(err)?.gas_used,
    );
    let settle = report.record("settle", lc.settle(id, &b).await.map_err(err)?.gas_used);
    let full = open + dep1 + dep2 + close + update + settle;

    // Cooperative lifecycle: open with deposit, deposit, cooperative settle.
    let (id, r) = lc.open_with_deposit(&a, &b, smt(100)).await.map_err(err)?;
    let open_dep = report.record("open with deposit", r.gas_used);
    let dep = lc.deposit(id, &b, smt(100)).await.map_err(err)?.gas_used;
    let coop = report.record(
        "cooperative settle",
        lc.cooperative_settle(id, &a, &b, smt(120), smt(80))
            .await
            .map_err(err)?
            .gas_used,
    );
    let coop_total = open_dep + dep + coop;

    // Unlock of one lock: a's declaration carries one pending lock whose secret b registered.
    let (id, _) = lc.open_with_deposit(&a, &b, smt(100)).await.map_err(err)?;
    let secret = B256::repeat_byte(0x5e);
    let now = lc.chain.head().await.map_err(err)?.timestamp.0;
    let lock = Lock {
        expiration: now + 10_000,
        amount: smt(5),
        secrethash: keccak256(secret),
    };
    let declared = lc.proof_with_locks(&a, id, 1, U256::ZERO, &[lock]);
    lc.close(id, &a, None, &declared.balance)
        .await
        .map_err(err)?;
    lc.register_secret(&b, secret).await.map_err(err)?;
    lc.settle(id, &b).await.map_err(err)?;
    let unlock = lc
        .tn(
            &b,
            smartmesh_chain::token_network::calls::unlock(
                id,
                a.address(),
                b.address(),
                smartmesh_primitives::eip712::encode_locks(&[lock]),
            ),
        )
        .await
        .map_err(err)?;
    report.record("unlock (1 lock)", unlock.gas_used);

    report.print();
    println!();
    println!(
        "full lifecycle (open + 2 deposits + close + update + settle): {full} gas, target <= {FULL_TARGET}{}, Raiden about {RAIDEN_FULL} (ratio {:.2})",
        if full <= FULL_TARGET {
            " met"
        } else {
            " MISSED"
        },
        full as f64 / RAIDEN_FULL as f64
    );
    println!(
        "cooperative lifecycle (open with deposit + deposit + cooperative settle): {coop_total} gas, target <= {COOP_TARGET}{}, Raiden about {RAIDEN_COOP} (ratio {:.2})",
        if coop_total <= COOP_TARGET {
            " met"
        } else {
            " MISSED"
        },
        coop_total as f64 / RAIDEN_COOP as f64
    );
    println!("lifecycle_full_gas={full}");
    println!("lifecycle_coop_gas={coop_total}");
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gas-report: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gas-report: {message}");
            ExitCode::FAILURE
        }
    }
}
