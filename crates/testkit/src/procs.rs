//! `smartmesh node` processes for the demo and the multi-process tests: spawn one with
//! the demo's flags, wait (bounded) for its `ready` and `listening` lines, talk to it
//! through its API; SIGTERM to stop, killed on drop.

use smartmesh_api::ApiClient;
use smartmesh_chain::embedded::EmbeddedChain;
use smartmesh_chain::{CallRequest, Chain};
use smartmesh_contracts::SmartMeshToken;
use smartmesh_primitives::{Address, U256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to start or stop.
pub const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeSpec<'a> {
    /// The `smartmesh` executable.
    pub exe: &'a Path,
    /// A name for messages.
    pub name: &'a str,
    /// Development-mnemonic account index of its identity.
    pub dev_key: usize,
    /// JSON-RPC URL of the chain.
    pub rpc: &'a str,
    /// Deployment file.
    pub deployment: &'a Path,
    /// Data directory.
    pub data_dir: &'a Path,
    /// Static peers.
    pub peers: &'a [String],
    /// Mediation fee (flat base units, ppm).
    pub fee: Option<(u128, u64)>,
    /// Settle timeout of the channels it opens.
    pub settle_timeout: u64,
    /// Where its log goes (`None`: inherited stderr).
    pub log: Option<&'a Path>,
    /// More flags for `smartmesh node`.
    pub extra: &'a [&'a str],
}

/// A running node process.
#[derive(Debug)]
pub struct NodeProcess {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: Address,
    /// A client of its API.
    pub api: ApiClient,
    /// Its listen multiaddrs (with `/p2p/<id>`).
    pub listen: Vec<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    child: Option<Child>,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl NodeProcess {
    /// Starts `smartmesh node` on loopback (TCP, API on a free port, no mDNS) and waits
    /// until it is ready.
    pub fn spawn(spec: &NodeSpec<'_>) -> Result<Self, String> {
        let name = spec.name;
        let mut cmd = Command::new(spec.exe);
        cmd.arg("node")
            .args([
                "--dev-key",
                &spec.dev_key.to_string(),
                "--eth-rpc",
                spec.rpc,
            ])
            .arg("--deployment")
            .arg(spec.deployment)
            .arg("--data-dir")
            .arg(spec.data_dir)
            .args([
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--api-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--no-mdns",
                "--settle-timeout",
                &spec.settle_timeout.to_string(),
            ]);
        for peer in spec.peers {
            cmd.args(["--peer", peer]);
        }
        cmd.args(spec.extra);
        if let Some((flat, ppm)) = spec.fee {
            cmd.args([
                "--fee-flat",
                &flat.to_string(),
                "--fee-ppm",
                &ppm.to_string(),
            ]);
        }
        let stderr = match spec.log {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .map_err(|e| format!("cannot create the log of {name}: {e}"))?,
            ),
            None => Stdio::inherit(),
        };
        let mut child = cmd
            .env(
                "RUST_LOG",
                std::env::var("SMARTMESH_NODE_LOG")
                    .unwrap_or_else(|_| "warn,smartmesh=info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen: Vec<String> = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The ready line comes first; the listen lines follow at once.
                let listen = line.starts_with("listening ");
                seen.push(line);
                if listen && seen.iter().any(|l| l.starts_with("ready ")) {
                    let _ = tx.send(seen.clone());
                }
            }
        });
        let mut process = NodeProcess {
            name: name.to_owned(),
            address: Address::ZERO,
            api: ApiClient::new("http://127.0.0.1:0", "").map_err(|e| e.to_string())?,
            listen: Vec::new(),
            data_dir: spec.data_dir.to_owned(),
            child: Some(child),
        };
        let lines = rx
            .recv_timeout(PROCESS_WAIT)
            .map_err(|_| format!("{name} did not start"))?;
        let ready = lines
            .iter()
            .find(|l| l.starts_with("ready "))
            .ok_or("no ready line")?;
        let field = |key: &str| {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .ok_or_else(|| format!("no {key} in {ready:?}"))
        };
        process.address = field("address=")?
            .parse()
            .map_err(|e| format!("{name}: bad address: {e}"))?;
        let token = std::fs::read_to_string(spec.data_dir.join("api-token"))
            .map_err(|e| format!("{name}: no api-token: {e}"))?;
        process.api = ApiClient::new(field("api=")?, token.trim()).map_err(|e| e.to_string())?;
        process.listen = lines
            .iter()
            .filter_map(|l| l.strip_prefix("listening ").map(str::to_owned))
            .collect();
        Ok(process)
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PROCESS_WAIT;
        while Instant::now() < deadline {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("{} did not stop on SIGTERM", self.name))
    }
}

/// SMT held by `who`.
pub async fn smt_balance(chain: &dyn Chain, token: Address, who: Address) -> Result<U256, String> {
    let call = SmartMeshToken::balanceOfCall { account: who };
    let out = chain
        .call(CallRequest::new(
            token,
            alloy::sol_types::SolCall::abi_encode(&call),
        ))
        .await
        .map_err(|e| e.to_string())?;
    <SmartMeshToken::balanceOfCall as alloy::sol_types::SolCall>::abi_decode_returns(&out)
        .map_err(|e| e.to_string())
}

/// Advances an instantly mining chain by `secs` past its newest block. Each block gets
/// its own second there, so chain time may run ahead of the wall clock.
pub fn advance_past_head(chain: &EmbeddedChain, secs: u64) {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ahead = chain.head().timestamp.0.saturating_sub(wall);
    chain.increase_time(secs + ahead);
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
