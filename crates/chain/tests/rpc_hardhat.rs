//! `RpcChain` against a real third-party node: Hardhat 2 (`tests/hardhat`, pinned in its
//! package.json), started as a child process on a free port. Needs Node.js and npm; runs
//! `npm ci` there the first time. Fails (does not skip) when they are missing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::TestNode;

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
struct HardhatNode {
    dir: PathBuf,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl HardhatNode {
    async fn start() -> Self {
        let dir = hardhat_dir();
        ensure_installed(&dir);
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hardhat-{port}.log"));
        let mut node = Self {
            dir,
            port,
            log,
            child: None,
        };
        node.spawn().await;
        node
    }

    async fn spawn(&mut self) {
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
            ready = common::wait_until_ready(&url, READY_LIMIT) => ready,
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

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn kill(&mut self) {
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

impl TestNode for HardhatNode {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn stop(&mut self) {
        self.kill();
    }

    async fn restart(&mut self) {
        self.spawn().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardhat_basic_flow() {
    let node = HardhatNode::start().await;
    common::basic_flow(&node.url(), 31337).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardhat_reorgs_are_never_delivered_twice_nor_lost() {
    let node = HardhatNode::start().await;
    common::reorg_flow(&node.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardhat_stopped_node_is_unreachable_and_recovers() {
    let mut node = HardhatNode::start().await;
    common::unreachable_flow(&mut node).await;
}
