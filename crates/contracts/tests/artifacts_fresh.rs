//! The committed artifacts must match a fresh compilation of the sources.

use std::path::PathBuf;
use std::process::Command;

fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!(
            "artifacts_are_fresh: cannot run {what}: {e}. Node.js (with npm) is required to check \
             the contract artifacts; install it and re-run."
        ),
    }
}

#[test]
fn artifacts_are_fresh() {
    let dir = contracts_dir();
    let version = run(Command::new("node").arg("--version"), "`node --version`");
    assert!(
        version.status.success(),
        "artifacts_are_fresh: `node --version` failed; Node.js is required"
    );

    if !dir.join("node_modules/solc").exists()
        || !dir.join("node_modules/@openzeppelin/contracts").exists()
    {
        let out = run(
            Command::new("npm")
                .arg("ci")
                .arg("--no-audit")
                .arg("--no-fund")
                .current_dir(&dir),
            "`npm ci`",
        );
        assert!(
            out.status.success(),
            "artifacts_are_fresh: `npm ci` in {} failed:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let out = run(
        Command::new("node")
            .arg("build.js")
            .arg("--check")
            .current_dir(&dir),
        "`node build.js --check`",
    );
    assert!(
        out.status.success(),
        "artifacts_are_fresh: committed artifacts are STALE (or the build failed); run `node build.js` in \
         contracts/ and commit the result.\n--- output ---\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
