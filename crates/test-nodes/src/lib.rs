//! Third-party Ethereum nodes as child processes, for tests that must run against a
//! node that is not ours: Hardhat 2, pinned in `tests/hardhat/package.json`, installed
//! with `npm ci` on first use, started on a free loopback port and killed on drop
//! (also when a test panics).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a starting node may take to answer.
const READY_LIMIT: Duration = Duration::from_secs(30);

fn hardhat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/hardhat")
        .canonicalize()
        .unwrap()
}

/// Runs `npm ci` once per test process if `node_modules` is missing.
fn ensure_installed(dir: &Path) {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if dir.join("node_modules/hardhat/package.json").exists() {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `npm ci` in {}: {e} (Node.js 20 and npm are required)",
                dir.display()
            )
        });
    assert!(
        output.status.success(),
        "`npm ci` in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Hardhat node child process; killed on drop, also when a test panics.
pub struct HardhatNode {
    dir: PathBuf,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl HardhatNode {
    /// The node's JSON-RPC endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts a node on a free loopback port and waits until it answers (at most 30 s).
    /// Panics with a clear message when Node.js or npm is missing: tests fail, never skip.
    pub async fn start() -> Self {
        let dir = hardhat_dir();
        ensure_installed(&dir);
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let log = std::env::temp_dir().join(format!("hardhat-{port}.log"));
        let mut node = Self {
            dir,
            port,
            log,
            child: None,
        };
        node.spawn().await;
        node
    }

    /// (Re)starts the node process on its port and waits until it answers.
    pub async fn spawn(&mut self) {
        let log = File::create(&self.log).unwrap();
        // `node <hardhat cli>` rather than `npx hardhat`: npx would sit between us and the
        // node process, and killing it could leave the node running.
        let child = Command::new("node")
            .arg(
                self.dir
                    .join("node_modules/hardhat/internal/cli/bootstrap.js"),
            )
            .args([
                "node",
                "--hostname",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
            ])
            .current_dir(&self.dir)
            .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `node`: {e} (Node.js 20 is required)"));
        self.child = Some(child);
        let url = self.url();
        let ready = tokio::select! {
            ready = wait_until_ready(&url, READY_LIMIT) => ready,
            status = self.exited() => panic!("hardhat node exited early ({status}):\n{}", self.log_text()),
        };
        if let Err(err) = ready {
            panic!(
                "hardhat node not ready after {READY_LIMIT:?}: {err}\n{}",
                self.log_text()
            );
        }
    }

    /// Resolves when the child exits.
    async fn exited(&mut self) -> String {
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return status.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the node printed so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Stops the node (it can be started again on the same port).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for HardhatNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `eth_chainId` until the node answers or `limit` passes.
pub async fn wait_until_ready(url: &str, limit: Duration) -> Result<(), String> {
    let client = reqwest::Client::new();
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    let started = Instant::now();
    loop {
        let answer = client
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                if started.elapsed() > limit {
                    return Err(format!("HTTP {}", response.status()));
                }
            }
            Err(e) => {
                if started.elapsed() > limit {
                    return Err(e.to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
