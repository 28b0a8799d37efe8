//! `smartmesh node` settings and identity: config file < environment < flags, unknown
//! keys and contradictory or missing settings refused with clear errors, a keystore
//! identity (and a wrong password refused), one node per data directory, bad client
//! input refused before anything changes, a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smartmesh");

fn base() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "SMARTMESH_CONFIG",
        "SMARTMESH_DATA_DIR",
        "SMARTMESH_KEYSTORE",
        "SMARTMESH_PASSWORD",
        "SMARTMESH_PASSWORD_FILE",
        "SMARTMESH_ETH_RPC",
        "SMARTMESH_DEPLOYMENT",
        "SMARTMESH_API_LISTEN",
        "SMARTMESH_API",
        "SMARTMESH_API_TOKEN_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn refused(out: Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

/// A node started in the background, stopped with SIGTERM.
struct Running(Child);

impl Running {
    fn start(mut cmd: Command) -> (Self, String) {
        let mut child = cmd
            .args([
                "--api-listen",
                "127.0.0.1:0",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("ready");
        (Running(child), line)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                assert!(status.success(), "clean exit after SIGTERM: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_settings_are_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("node.toml");
    std::fs::write(&config, "data_dir = \"x\"\nlisten_port = 5\n").expect("write");
    let data = tmp.path().join("data");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "listen_port");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--keystore", "k.json"])
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "two identities");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--eth-rpc", "http://127.0.0.1:1"])
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "--deployment");
    let mut cmd = base();
    cmd.args(["node"]).arg("--data-dir").arg(&data);
    refused(cmd.output().expect("run"), "no identity");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--peer", "not-a-multiaddr"])
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "not a multiaddr");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--api-listen", "0.0.0.0:5880"])
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "loopback");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--settle-timeout", "1"])
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "allows 10 to");
    // A wrongly typed value is named with its line.
    std::fs::write(&config, "dev_key = 1\nfee_ppm = \"lots\"\n").expect("write");
    let mut cmd = base();
    cmd.args(["node", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "line 2 (fee_ppm = \"lots\")");
    // A publicly known development key is refused on a chain that is not a dev chain.
    let chain = smartmesh_chain::embedded::EmbeddedChain::new(
        smartmesh_chain::embedded::EmbeddedConfig::with_contracts(),
    )
    .expect("chain");
    let mut deployment = chain.deployment().expect("deployment");
    deployment.chain_id = smartmesh_primitives::ChainId(5);
    let file = tmp.path().join("deployment.json");
    deployment.write(&file).expect("write deployment");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--eth-rpc", "http://127.0.0.1:1"])
        .arg("--deployment")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data);
    refused(cmd.output().expect("run"), "refused on chain id 5");
    assert!(!data.join("node.json").exists());
}

#[test]
fn flags_beat_environment_beat_the_config_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let [from_file, from_env, from_flag] = ["file", "env", "flag"].map(|n| tmp.path().join(n));
    let config = tmp.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ndev_key = 2\n",
            from_file.display().to_string()
        ),
    )
    .expect("write");
    let run = |env: Option<&Path>, flag: Option<&Path>| {
        let mut cmd = base();
        cmd.args(["node", "--config"]).arg(&config);
        if let Some(dir) = env {
            cmd.env("SMARTMESH_DATA_DIR", dir);
        }
        if let Some(dir) = flag {
            cmd.arg("--data-dir").arg(dir);
        }
        let (node, ready) = Running::start(cmd);
        // dev_key = 2 from the file.
        assert!(
            ready.contains("address=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
            "{ready}"
        );
        node
    };
    for (env, flag, expect) in [
        (None, None, &from_file),
        (Some(from_env.as_path()), None, &from_env),
        (
            Some(from_env.as_path()),
            Some(from_flag.as_path()),
            &from_flag,
        ),
    ] {
        let node = run(env, flag);
        assert!(
            expect.join("node.json").exists(),
            "node.json in {}",
            expect.display()
        );
        let token = expect.join("api-token");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token)
            .expect("token")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // The CLI finds the node from its data directory.
        let out = base()
            .arg("status")
            .arg("--data-dir")
            .arg(expect)
            .output()
            .expect("status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("synced"));
        node.stop();
        assert!(
            !expect.join("node.json").exists(),
            "node.json removed at stop"
        );
    }
}

#[test]
fn a_keystore_identity_needs_its_password() {
    let tmp = tempfile::tempdir().expect("tmp");
    let keystore_dir = tmp.path().join("keystore");
    let out = base()
        .args(["account", "new", "--keystore-dir"])
        .arg(&keystore_dir)
        .env("SMARTMESH_KEYSTORE_LIGHT_KDF", "1")
        .env("SMARTMESH_PASSWORD", "correct horse")
        .output()
        .expect("account new");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read_dir(&keystore_dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .expect("a keystore file");
    let data = tmp.path().join("data");
    let mut cmd = base();
    cmd.args(["node", "--keystore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .env("SMARTMESH_PASSWORD", "wrong");
    refused(cmd.output().expect("run"), "wrong password");
    assert!(!data.join("node.json").exists());
    let mut cmd = base();
    cmd.args(["node", "--keystore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .env("SMARTMESH_PASSWORD", "correct horse");
    let (node, ready) = Running::start(cmd);
    assert!(ready.starts_with("ready address=0x"));
    // On the embedded chain a keystore identity is funded at start.
    let out = base()
        .arg("status")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("on chain 1000000000000000000000000"),
        "{text}"
    );
    node.stop();
}

/// Runs a client command against the node in `data`.
fn cli(data: &Path, args: &[&str]) -> Output {
    base()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run the client")
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "must succeed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_client_input_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut cmd = base();
    cmd.args(["node", "--dev-key", "1", "--data-dir"])
        .arg(&data);
    let (node, _) = Running::start(cmd);
    let node_json = std::fs::read_to_string(data.join("node.json")).expect("node.json");
    // A channel on the embedded chain with dev account 3 (it need not be online).
    let partner = "0x90F79bf6EB2c4f870365E785982E1f87E6C0bA6F"; // dev account 3
    let opened = ok(cli(&data, &["channel", "open", partner, "1000"]));
    assert!(opened.contains("opened"), "{opened}");
    let id = opened
        .split_whitespace()
        .next()
        .expect("channel id")
        .to_owned();
    let before = ok(cli(&data, &["channel", "list", "--json"]));
    assert!(before.contains("\"our_deposit\": \"1000\""), "{before}");

    let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    let bad_token = tmp.path().join("bad-token");
    std::fs::write(&bad_token, "f".repeat(64)).expect("write");
    let bad_token = bad_token.display().to_string();
    for (args, needle) in [
        (vec!["pay", partner, "1.5"], "(invalid_amount)"),
        (vec!["pay", partner, "1e3"], "(invalid_amount)"),
        (vec!["pay", partner, "-1"], "(invalid_amount)"),
        (vec!["channel", "deposit", &id, over], "(amount_overflow)"),
        (vec!["channel", "withdraw", &id, "1.5"], "(invalid_amount)"),
        (vec!["channel", "show", "999"], "(unknown_channel)"),
        (vec!["channel", "close", "999"], "(unknown_channel)"),
        (
            vec!["channel", "close", "../payments"],
            "(invalid_parameter)",
        ),
        (vec!["payments", "x"], "(invalid_parameter)"),
        (vec!["channel", "open", "0xnope", "5"], "not an address"),
        (
            vec![
                "channel",
                "deposit",
                &id,
                "2000",
                "--token-file",
                &bad_token,
            ],
            "(unauthorized)",
        ),
        (
            vec!["channel", "close", &id, "--api", "http://127.0.0.1:1"],
            "is `smartmesh node` running?",
        ),
    ] {
        let out = cli(&data, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
    assert_eq!(ok(cli(&data, &["channel", "list", "--json"])), before);

    // A second node on the same data directory stops before touching anything.
    let mut cmd = base();
    cmd.args([
        "node",
        "--dev-key",
        "1",
        "--api-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(&data);
    refused(
        cmd.output().expect("run"),
        "in use by another smartmesh node",
    );
    assert_eq!(
        std::fs::read_to_string(data.join("node.json")).expect("node.json"),
        node_json
    );
    assert_eq!(ok(cli(&data, &["channel", "list", "--json"])), before);
    node.stop();
    assert!(
        !data.join("node.json").exists(),
        "node.json removed at stop"
    );
}
