//! `smartmesh demo` (the README's first command) runs to the end: node processes,
//! off-internet payments, the stale close punished, data over three mesh hops, a page
//! through a gateway, carriers paid, the books balanced.

use std::process::Command;

#[test]
fn the_demo_runs_and_the_books_balance() {
    let out = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
        .arg("demo")
        .output()
        .expect("run smartmesh demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for needle in [
        "linked to every other; erin only to dave",
        "every node reports the chain unreachable",
        "off-internet: alice paid bob",
        "queued (1 on-chain action)",
        "every node synced",
        "went to alice",
        "settled after the",
        "fees earned by bob",
        "delivered and acknowledged in",
        "through the gateway frank",
        "mesh earnings: dave carried",
        "mesh channels",
        "books balanced",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn the_chain_only_demo_still_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
        .args(["demo", "--chain-only"])
        .output()
        .expect("run smartmesh demo --chain-only");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
