//! Two hosts in their own network namespaces, joined by one link, with the chain on a
//! third host they reach over separate links. They find each other by mDNS (no static
//! peers, no server), open a channel while the chain is up, lose every route to the
//! chain, keep paying each other off-internet (and queue a close), then settle once the
//! chain returns. Needs root and `ip netns` (CI runs as root); skips with a message
//! otherwise.
//!
//! ```text
//!   ns A 10.231.1.1 ── 10.231.1.2 ns B        (mDNS, payments)
//!   ns A 10.231.2.1 ── 10.231.2.2 ns C        (chain, cut and restored)
//!   ns B 10.231.3.1 ── 10.231.3.2 ns C
//! ```

use serde_json::Value;
use smartmesh_testkit::netns::{ip, is_root};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smartmesh");
const WAIT: Duration = Duration::from_secs(90);

fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    ip(&full)
}

/// The three namespaces and their links; removed on drop (which also removes the
/// veth pairs inside them).
struct Hosts {
    a: String,
    b: String,
    c: String,
    /// Interface of A towards the chain, and of B towards the chain.
    a_uplink: String,
    b_uplink: String,
}

impl Hosts {
    fn create() -> Result<Self, String> {
        let tag = std::process::id() % 100_000;
        let hosts = Hosts {
            a: format!("smA{tag}"),
            b: format!("smB{tag}"),
            c: format!("smC{tag}"),
            a_uplink: format!("aC{tag}"),
            b_uplink: format!("bC{tag}"),
        };
        for ns in [&hosts.a, &hosts.b, &hosts.c] {
            ip(&["netns", "add", ns])?;
            in_ns(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        let links = [
            (
                &hosts.a,
                format!("aB{tag}"),
                "10.231.1.1/24",
                &hosts.b,
                format!("bA{tag}"),
                "10.231.1.2/24",
            ),
            (
                &hosts.a,
                hosts.a_uplink.clone(),
                "10.231.2.1/24",
                &hosts.c,
                format!("cA{tag}"),
                "10.231.2.2/24",
            ),
            (
                &hosts.b,
                hosts.b_uplink.clone(),
                "10.231.3.1/24",
                &hosts.c,
                format!("cB{tag}"),
                "10.231.3.2/24",
            ),
        ];
        for (ns1, if1, addr1, ns2, if2, addr2) in &links {
            ip(&[
                "link", "add", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2,
            ])?;
            in_ns(ns1, &["ip", "addr", "add", addr1, "dev", if1])?;
            in_ns(ns2, &["ip", "addr", "add", addr2, "dev", if2])?;
            in_ns(ns1, &["ip", "link", "set", if1, "up"])?;
            in_ns(ns2, &["ip", "link", "set", if2, "up"])?;
        }
        Ok(hosts)
    }

    fn set_chain_links(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        in_ns(&self.a, &["ip", "link", "set", &self.a_uplink, state]).expect("A uplink");
        in_ns(&self.b, &["ip", "link", "set", &self.b_uplink, state]).expect("B uplink");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b, &self.c] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A child process in a namespace, killed on drop.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `smartmesh args…` in `ns` and waits (bounded) for a stdout line starting
/// with `marker`; returns the process and that line. Later output is drained.
fn spawn_until(ns: &str, name: &'static str, args: &[&str], marker: &str) -> (Proc, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, BIN])
        .args(args)
        .env("RUST_LOG", "warn,smartmesh=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.starts_with(&marker) {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    let proc = Proc { child, name };
    let line = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{} did not get ready", proc.name));
    (proc, line)
}

/// Runs a client command (`smartmesh --json …` against the node whose data dir is
/// `dir`) inside `ns` and returns its JSON output.
fn cli(ns: &str, dir: &Path, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, BIN])
        .args(args)
        .arg("--json")
        .env("SMARTMESH_DATA_DIR", dir)
        .output()
        .map_err(|e| format!("run smartmesh {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "smartmesh {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "smartmesh {}: not JSON ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Polls `check` every 200 ms until it returns `Some`, for at most [`WAIT`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn chain_status(ns: &str, dir: &Path) -> Option<String> {
    let status = cli(ns, dir, &["status"]).ok()?;
    status["chain"]["status"].as_str().map(str::to_owned)
}

fn amount(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

#[test]
fn two_hosts_find_each_other_pay_offline_and_settle_when_the_chain_returns() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let hosts = match Hosts::create() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipped: cannot build network namespaces here: {e}");
            return;
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let deployment = tmp.path().join("deployment.json");
    let deployment_arg = deployment.to_str().expect("utf-8 path");
    // The chain host: a dev chain mining every 500 ms, so chain time flows.
    let (_chain, _) = spawn_until(
        &hosts.c,
        "devchain",
        &[
            "devchain",
            "--host",
            "0.0.0.0",
            "--port",
            "8545",
            "--block-time",
            "500",
            "--deployment-out",
            deployment_arg,
        ],
        "listening on",
    );
    let dirs: [PathBuf; 2] = [tmp.path().join("a"), tmp.path().join("b")];
    let start_node = |ns: &str, name: &'static str, key: &str, rpc: &str, dir: &Path| {
        spawn_until(
            ns,
            name,
            &[
                "node",
                "--dev-key",
                key,
                "--eth-rpc",
                rpc,
                "--deployment",
                deployment_arg,
                "--data-dir",
                dir.to_str().expect("utf-8"),
                "--api-listen",
                "127.0.0.1:0",
                "--settle-timeout",
                "10",
            ],
            "ready",
        )
    };
    let (node_a, ready_a) = start_node(&hosts.a, "node A", "0", "http://10.231.2.2:8545", &dirs[0]);
    let (node_b, ready_b) = start_node(&hosts.b, "node B", "1", "http://10.231.3.2:8545", &dirs[1]);
    let address_of = |ready: &str| -> String {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .expect("address in the ready line")
            .to_owned()
    };
    let (addr_a, addr_b) = (address_of(&ready_a), address_of(&ready_b));

    // Discovery by mDNS only: each lists the other as a connected peer.
    for (ns, dir, other) in [(&hosts.a, &dirs[0], &addr_b), (&hosts.b, &dirs[1], &addr_a)] {
        eventually("mDNS discovery", || {
            let peers = cli(ns, dir, &["peers"]).ok()?;
            peers.as_array()?.iter().find(|p| {
                p["connected"] == Value::Bool(true)
                    && p["address"]
                        .as_str()
                        .is_some_and(|a| a.eq_ignore_ascii_case(other))
            })?;
            Some(())
        });
    }

    // A channel, funded by both, while the chain is reachable.
    let opened = cli(&hosts.a, &dirs[0], &["channel", "open", &addr_b, "1000"]).expect("open");
    let id = opened["channel_id"]
        .as_str()
        .expect("channel id")
        .to_owned();
    eventually("B sees the channel", || {
        cli(&hosts.b, &dirs[1], &["channel", "show", &id]).ok()
    });
    cli(&hosts.b, &dirs[1], &["channel", "deposit", &id, "500"]).expect("B deposits");
    eventually("A sees B's deposit", || {
        let ch = cli(&hosts.a, &dirs[0], &["channel", "show", &id]).ok()?;
        (amount(&ch["partner_deposit"]) == 500).then_some(())
    });

    // The chain goes away for both hosts.
    hosts.set_chain_links(false);
    for (ns, dir) in [(&hosts.a, &dirs[0]), (&hosts.b, &dirs[1])] {
        eventually("the node reports the chain unreachable", || {
            (chain_status(ns, dir)? == "unreachable").then_some(())
        });
    }
    // Off-internet: payments both ways keep working.
    let mut a_to_b = 0u128;
    let mut b_to_a = 0u128;
    for i in 1..=5u128 {
        let paid = cli(
            &hosts.a,
            &dirs[0],
            &["pay", &addr_b, &(10 * i).to_string(), "--mode", "direct"],
        )
        .expect("A pays B off-internet");
        assert_eq!(paid["status"], "sent", "{paid}");
        a_to_b += 10 * i;
    }
    let paid = cli(
        &hosts.b,
        &dirs[1],
        &["pay", &addr_a, "35", "--mode", "direct"],
    )
    .expect("B pays A off-internet");
    assert_eq!(paid["status"], "sent", "{paid}");
    b_to_a += 35;
    // Opening anything new on chain is refused while offline.
    let refused = cli(&hosts.a, &dirs[0], &["channel", "deposit", &id, "2000"]);
    assert!(
        refused.is_err(),
        "a deposit while the chain is unreachable must fail"
    );
    // A asks for a close: queued until the chain returns.
    cli(&hosts.a, &dirs[0], &["channel", "close", &id]).expect("close is queued");
    let status = cli(&hosts.a, &dirs[0], &["status"]).expect("status");
    assert!(
        status["chain"]["queued_onchain_actions"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the close is queued: {status}"
    );

    // The chain returns: both sync, A's close goes out, the channel settles by itself
    // once the 10 s settle timeout passed.
    hosts.set_chain_links(true);
    for (ns, dir) in [(&hosts.a, &dirs[0]), (&hosts.b, &dirs[1])] {
        eventually("the channel settles on chain", || {
            let ch = cli(ns, dir, &["channel", "show", &id]).ok()?;
            ch["outcome"].is_object().then_some(ch)
        });
    }
    let ch = cli(&hosts.a, &dirs[0], &["channel", "show", &id]).expect("channel");
    let outcome = &ch["outcome"];
    assert_eq!(outcome["kind"], "settled", "{ch}");
    assert_eq!(amount(&outcome["ours"]), 1000 - a_to_b + b_to_a, "{ch}");
    assert_eq!(amount(&outcome["partner"]), 500 + a_to_b - b_to_a, "{ch}");
    assert_eq!(chain_status(&hosts.a, &dirs[0]).as_deref(), Some("synced"));
    drop((node_a, node_b));
}
