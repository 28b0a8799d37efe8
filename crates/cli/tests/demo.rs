//! `smartmesh demo` (the README's first command) runs to the end: node processes,
//! off-internet payments, the stale close punished, the books balanced.

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
        "every node linked to every other",
        "every node reports the chain unreachable",
        "off-internet: alice paid bob",
        "queued (1 on-chain action)",
        "every node synced",
        "went to alice",
        "settled after the",
        "fees earned by bob",
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
