//! The channel lifecycle and the penalty through the JSON-RPC backend (alloy) against
//! `smartmesh devchain` as a separate process and against a Hardhat 2 node, and
//! `smartmesh deploy` writing a deployment file.

use smartmesh_chain::Chain;
use smartmesh_chain::deploy::Deployment;
use smartmesh_chain::rpc::{RpcChain, RpcConfig};
use smartmesh_chain::token_network::ChannelOutcome;
use smartmesh_testkit::{Lifecycle, smt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `smartmesh devchain` child process, killed on drop.
struct Devchain {
    child: Child,
    url: String,
}

impl Devchain {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args(["devchain", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn smartmesh devchain");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("devchain printed its address");
        Self { child, url }
    }
}

impl Drop for Devchain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_flows_against_the_devchain_process() {
    let devchain = Devchain::start(&[]);
    lifecycle_and_penalty(&devchain.url, 1337).await;
    let mut lc = Lifecycle::over_rpc(&devchain.url, 3)
        .await
        .expect("deploy over RPC");
    smartmesh_testkit::flows::run_all(&mut lc)
        .await
        .expect("every contract flow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_flows_against_hardhat() {
    let node = smartmesh_test_nodes::HardhatNode::start().await;
    lifecycle_and_penalty(&node.url(), 31337).await;
    let mut lc = Lifecycle::over_rpc(&node.url(), 3)
        .await
        .expect("deploy over RPC");
    smartmesh_testkit::flows::run_all(&mut lc)
        .await
        .expect("every contract flow");
}

/// Deploys through the JSON-RPC backend and runs an honest channel to settlement and a
/// stale close to its penalty, checking token balances to the unit.
async fn lifecycle_and_penalty(url: &str, chain_id: u64) {
    let mut lc = Lifecycle::over_rpc(url, 3).await.expect("deploy over RPC");
    let (a, b, c) = (lc.keys[0].clone(), lc.keys[1].clone(), lc.keys[2].clone());
    assert_eq!(lc.chain.chain_id().await.expect("chain id").0, chain_id);

    // Honest: close, confirm, settle; balances equal the off-chain ledger to the unit.
    let before_a = lc.smt_balance(a.address()).await.expect("balance");
    let before_b = lc.smt_balance(b.address()).await.expect("balance");
    let (id, _) = lc.open_with_deposit(&a, &b, smt(100)).await.expect("open");
    lc.deposit(id, &b, smt(50)).await.expect("deposit");
    let from_a = lc.proof(&a, id, 4, smt(30));
    let from_b = lc.proof(&b, id, 2, smt(12));
    lc.close(id, &a, Some(&from_b), &from_a.balance)
        .await
        .expect("close");
    let early = lc
        .tn(
            &b,
            smartmesh_chain::token_network::calls::settle(id, &lc.channel(id).expect("ch")),
        )
        .await;
    assert_eq!(
        early.expect_err("too early").revert_name(),
        Some("SettleTimeoutNotExpired")
    );
    lc.update(id, &b, &from_a).await.expect("confirm");
    lc.settle(id, &b).await.expect("settle");
    assert_eq!(
        lc.tracker.outcome(id),
        Some(&ChannelOutcome::Settled {
            amount1: smt(100 - 30 + 12),
            amount2: smt(50 + 30 - 12)
        })
    );
    assert_eq!(
        lc.smt_balance(a.address()).await.expect("balance"),
        before_a - smt(30) + smt(12)
    );
    assert_eq!(
        lc.smt_balance(b.address()).await.expect("balance"),
        before_b + smt(30) - smt(12)
    );

    // Stale close: the closer declares nonce 1 but signed nonce 3; the partner takes all.
    let before_c = lc.smt_balance(c.address()).await.expect("balance");
    let (id, _) = lc.open_with_deposit(&b, &c, smt(70)).await.expect("open");
    lc.deposit(id, &c, smt(30)).await.expect("deposit");
    let proofs: Vec<_> = (1..=3).map(|n| lc.proof(&b, id, n, smt(5 * n))).collect();
    lc.close(id, &b, None, &proofs[0].balance)
        .await
        .expect("stale close");
    lc.update(id, &c, &proofs[2]).await.expect("penalty");
    assert_eq!(
        lc.tracker.outcome(id),
        Some(&ChannelOutcome::Penalized {
            beneficiary: c.address(),
            amount: smt(100)
        })
    );
    assert_eq!(
        lc.smt_balance(c.address()).await.expect("balance"),
        before_c - smt(30) + smt(100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_command_writes_a_usable_deployment_file() {
    let dir = std::env::temp_dir().join(format!("smartmesh-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let genesis_file = dir.join("genesis.json");
    let devchain = Devchain::start(&["--deployment-out", genesis_file.to_str().expect("utf-8")]);
    let genesis = Deployment::read(&genesis_file).expect("devchain wrote its deployment");

    let out = dir.join("deployment.json");
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
        .args([
            "deploy",
            "--eth-rpc",
            &devchain.url,
            "--dev-account",
            "0",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("run smartmesh deploy");
    assert!(
        status.success(),
        "deploy failed after {:?}",
        started.elapsed()
    );
    let deployment = Deployment::read(&out).expect("deployment file");
    assert_eq!(deployment.chain_id.0, 1337);
    assert_ne!(
        deployment.token_network, genesis.token_network,
        "a second, fresh deployment"
    );

    let chain = RpcChain::connect(RpcConfig::new(&devchain.url)).expect("connect");
    let call = smartmesh_contracts::TokenNetwork::tokenCall {};
    let out_bytes = chain
        .call(smartmesh_chain::CallRequest::new(
            deployment.token_network,
            alloy::sol_types::SolCall::abi_encode(&call),
        ))
        .await
        .expect("token()");
    let token = <smartmesh_contracts::TokenNetwork::tokenCall as alloy::sol_types::SolCall>::abi_decode_returns(&out_bytes)
        .expect("address");
    assert_eq!(token, deployment.token);

    // A bad endpoint is a clear error, not a hang or a panic.
    let output = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
        .args([
            "deploy",
            "--eth-rpc",
            "http://127.0.0.1:9",
            "--dev-account",
            "0",
            "--out",
        ])
        .arg(dir.join("never.json"))
        .output()
        .expect("run smartmesh deploy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unreachable"), "stderr: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
