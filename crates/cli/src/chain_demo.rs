//! `smartmesh demo --chain-only`: the on-chain side of SmartMesh on an embedded chain — channels
//! opened and funded, balance proofs signed off-chain, a stale close punished, honest
//! and cooperative settlements — with a report of balances, gas and timings.

use smartmesh_chain::ChainError;
use smartmesh_chain::token_network::ChannelOutcome;
use smartmesh_primitives::{Address, U256};
use smartmesh_testkit::{Lifecycle, SignedBalance, fmt_smt, smt};
use std::time::Instant;

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

struct Demo {
    lc: Lifecycle,
    started: Instant,
    gas: Vec<(String, u64)>,
}

impl Demo {
    fn step(&self, text: &str) {
        println!(
            "[{:>7.1} ms] {text}",
            self.started.elapsed().as_secs_f64() * 1e3
        );
    }

    fn gas(&mut self, what: &str, gas: u64) {
        self.gas.push((what.to_string(), gas));
    }

    async fn balances(&self) -> Result<Vec<U256>, ChainError> {
        let mut balances = Vec::new();
        for key in &self.lc.keys {
            balances.push(self.lc.smt_balance(key.address()).await?);
        }
        Ok(balances)
    }

    /// `count` payments of `each` from `sender`, returning the newest signed proof.
    fn pay(&self, sender: usize, id: U256, count: u64, each: U256) -> Vec<SignedBalance> {
        (1..=count)
            .map(|nonce| {
                self.lc
                    .proof(&self.lc.keys[sender], id, nonce, each * U256::from(nonce))
            })
            .collect()
    }
}

fn name_of(lc: &Lifecycle, who: Address) -> &'static str {
    lc.keys
        .iter()
        .position(|k| k.address() == who)
        .map_or("?", |i| NAMES[i])
}

/// Runs the demo.
pub async fn run() -> Result<(), String> {
    let err = |e: ChainError| e.to_string();
    let started = Instant::now();
    let lc = Lifecycle::embedded(NAMES.len())
        .await
        .map_err(|e| format!("embedded chain: {e}"))?;
    let mut demo = Demo {
        lc,
        started,
        gas: Vec::new(),
    };
    let [alice, bob, carol, dave] = [0, 1, 2, 3].map(|i| demo.lc.keys[i].clone());
    demo.step(&format!(
        "embedded chain {} up; SMT {} TokenNetwork {}",
        demo.lc.deployment.chain_id, demo.lc.deployment.token, demo.lc.deployment.token_network
    ));
    let before = demo.balances().await.map_err(err)?;

    // 1. alice and bob: alice will lie at close.
    let (ab, r) = demo.lc.open(&alice, &bob).await.map_err(err)?;
    demo.gas("open", r.gas_used);
    let r = demo.lc.deposit(ab, &alice, smt(1000)).await.map_err(err)?;
    demo.gas("deposit", r.gas_used);
    demo.lc.deposit(ab, &bob, smt(1000)).await.map_err(err)?;
    demo.step(&format!("channel {ab} alice<->bob opened, 1000 SMT each"));
    let from_alice = demo.pay(0, ab, 5, smt(20));
    let from_bob = demo.pay(1, ab, 3, smt(10));
    demo.step(
        "off-chain: alice paid bob 5 x 20 SMT, bob paid alice 3 x 10 SMT (signed balance proofs)",
    );
    let stale = &from_alice[1];
    let r = demo
        .lc
        .close(ab, &alice, from_bob.last(), &stale.balance)
        .await
        .map_err(err)?;
    demo.gas("close", r.gas_used);
    demo.step(&format!(
        "alice closes declaring her stale proof (nonce {}, {} SMT sent) instead of nonce 5 (100 SMT)",
        stale.balance.nonce,
        fmt_smt(stale.balance.transferredAmount)
    ));
    let newest = from_alice.last().ok_or("no proof")?.clone();
    let r = demo.lc.update(ab, &bob, &newest).await.map_err(err)?;
    demo.gas("update (penalty)", r.gas_used);
    match demo.lc.tracker.outcome(ab) {
        Some(ChannelOutcome::Penalized {
            beneficiary,
            amount,
        }) => demo.step(&format!(
            "bob presents alice's nonce-5 proof: penalty, {} SMT (the whole deposit) to {}",
            fmt_smt(*amount),
            name_of(&demo.lc, *beneficiary)
        )),
        other => return Err(format!("expected a penalty, got {other:?}")),
    }

    // 2. bob and carol: an honest close, confirmed, settled after the timeout.
    let (bc, r) = demo
        .lc
        .open_with_deposit(&bob, &carol, smt(500))
        .await
        .map_err(err)?;
    demo.gas("open with deposit", r.gas_used);
    demo.lc.deposit(bc, &carol, smt(500)).await.map_err(err)?;
    let from_carol = demo.pay(2, bc, 4, smt(30));
    let from_bob = demo.pay(1, bc, 1, smt(5));
    demo.step(&format!(
        "channel {bc} bob<->carol: carol paid bob 4 x 30 SMT, bob paid carol 5 SMT"
    ));
    let r = demo
        .lc
        .close(bc, &bob, from_carol.last(), &from_bob[0].balance)
        .await
        .map_err(err)?;
    demo.gas("close", r.gas_used);
    let r = demo
        .lc
        .update(bc, &carol, &from_bob[0])
        .await
        .map_err(err)?;
    demo.gas("update (confirm)", r.gas_used);
    demo.step("bob closes honestly; carol confirms his declaration");
    let r = demo.lc.settle(bc, &carol).await.map_err(err)?;
    demo.gas("settle", r.gas_used);
    match demo.lc.tracker.outcome(bc) {
        Some(ChannelOutcome::Settled { amount1, amount2 }) => {
            let (want_bob, want_carol) = (smt(500 + 120 - 5), smt(500 - 120 + 5));
            if (*amount1, *amount2) != (want_bob, want_carol) {
                return Err(format!(
                    "settlement {amount1}/{amount2} differs from the off-chain ledger"
                ));
            }
            demo.step(&format!(
                "settled after the timeout: bob {} SMT, carol {} SMT (equal to the off-chain ledger)",
                fmt_smt(*amount1),
                fmt_smt(*amount2)
            ));
        }
        other => return Err(format!("expected a settlement, got {other:?}")),
    }

    // 3. carol and dave: cooperative settlement, no waiting.
    let (cd, _) = demo
        .lc
        .open_with_deposit(&carol, &dave, smt(300))
        .await
        .map_err(err)?;
    demo.lc.deposit(cd, &dave, smt(300)).await.map_err(err)?;
    let r = demo
        .lc
        .cooperative_settle(cd, &carol, &dave, smt(250), smt(350))
        .await
        .map_err(err)?;
    demo.gas("cooperative settle", r.gas_used);
    demo.step(&format!(
        "channel {cd} carol<->dave settled cooperatively: carol 250, dave 350"
    ));

    let after = demo.balances().await.map_err(err)?;
    println!();
    println!(
        "{:<8} {:>16} {:>16} {:>12}",
        "account", "SMT before", "SMT after", "change"
    );
    for (i, name) in NAMES.iter().enumerate() {
        let (b, a) = (before[i], after[i]);
        let change = if a >= b {
            format!("+{}", fmt_smt(a - b))
        } else {
            format!("-{}", fmt_smt(b - a))
        };
        println!(
            "{name:<8} {:>16} {:>16} {change:>12}",
            fmt_smt(b),
            fmt_smt(a)
        );
    }
    println!();
    println!("{:<22} {:>9}", "operation", "gas");
    for (what, gas) in &demo.gas {
        println!("{what:<22} {gas:>9}");
    }
    println!();
    println!(
        "demo finished in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
