//! `smartmesh-crash-node`: the process the crash test kills with SIGKILL.
//!
//! `smartmesh-crash-node <run|settle> <data-dir> <rpc-url> <deployment.json> <key-a> <key-b>`
//!
//! Runs two nodes, `a` and `b`, in this process with durable storage under `data-dir`,
//! joined by a `MemoryNetwork`, on the chain at `rpc-url` (a dev chain that outlives
//! this process), sharing one channel opened beforehand. On start it prints each
//! node's recovered proofs:
//!
//! `STATE <node> <our nonce> <our transferred> <partner nonce> <partner transferred>`
//!
//! then, only once each input is durable and acted on:
//!
//! * `SIGNED <node> <nonce> <transferred>` for every balance proof the node sends;
//! * `RECEIVED <node> <nonce> <transferred>` for every payment it accepted (the
//!   partner's proof that carried it).
//!
//! `run` pays 1 unit back and forth, continuously, until killed. `settle` lets the
//! queues drain, prints the final `STATE`, closes the channel from `a`, prints
//! `CLOSED` once both saw it, waits for the settlement (the test moves chain time) and
//! prints `SETTLED <amount1> <amount2>`.

use smartmesh_chain::deploy::Deployment;
use smartmesh_chain::rpc::{RpcChain, RpcConfig};
use smartmesh_engine::{ChannelOutcome, ChannelStatus, Event, Input, NodeState};
use smartmesh_node::{Applied, MemoryNetwork, NodeConfig, NodeHandle, SystemClock};
use smartmesh_primitives::{PrivateKey, TokenAmount};
use smartmesh_wire::Message;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One line on stdout, ignoring a closed pipe (the test may be gone).
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

fn print_state(name: &str, state: &NodeState) {
    for ch in state.channels.values() {
        let (our, partner) = (ch.our.balance(), ch.partner.balance());
        say!(
            "STATE {name} {} {} {} {}",
            our.nonce.0,
            our.transferred_amount.0,
            partner.nonce.0,
            partner.transferred_amount.0
        );
    }
}

fn report(name: &'static str, applied: &Applied) {
    for event in &applied.events {
        if let Event::InvalidReceived { kind, reason, .. } = event
            && std::env::var_os("CRASH_NODE_DEBUG").is_some()
        {
            eprintln!("crash-node {name}: refused {kind}: {reason}");
        }
        if let Event::SendMessage {
            message: message @ Message::DirectTransfer(_),
            ..
        } = event
            && let Some((bp, _)) = message.balance_proof()
        {
            say!("SIGNED {name} {} {}", bp.nonce.0, bp.transferred_amount.0);
        }
    }
    if let Input::ReceiveMessage { message, .. } = &applied.input
        && applied
            .events
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. }))
        && let Some((bp, _)) = message.balance_proof()
    {
        say!("RECEIVED {name} {} {}", bp.nonce.0, bp.transferred_amount.0);
    }
}

async fn start_node(
    name: &'static str,
    dir: &Path,
    key: PrivateKey,
    deployment: &Deployment,
    chain: Arc<RpcChain>,
    link: (
        Arc<smartmesh_node::MemoryTransport>,
        smartmesh_node::Inbound,
    ),
) -> Fallible<NodeHandle> {
    let (observer, mut observed) = mpsc::channel::<Arc<Applied>>(1024);
    let mut config = NodeConfig::new(dir.join(name), key.clone(), deployment.clone());
    config.observer = Some(observer);
    config.snapshot_every = 200;
    config.engine.retry_interval = 1;
    // Backpressure: a payer that runs ahead of its partner's acks is refused.
    config.engine.max_queued_messages = 256;
    let (transport, inbound) = link;
    let node =
        smartmesh_node::start(config, chain, transport, inbound, Arc::new(SystemClock)).await?;
    print_state(name, &node.state().await?);
    tokio::spawn(async move {
        while let Some(applied) = observed.recv().await {
            report(name, &applied);
        }
    });
    Ok(node)
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> Fallible<bool>) -> Fallible<()> {
    for _ in 0..3_000 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("timed out waiting for {what}").into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Fallible<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, dir, url, deployment, key_a, key_b] = args.as_slice() else {
        return Err("usage: smartmesh-crash-node <run|settle> <dir> <rpc-url> <deployment.json> <key-a> <key-b>".into());
    };
    let dir = PathBuf::from(dir);
    let deployment = Deployment::read(Path::new(deployment))?;
    let (ka, kb) = (PrivateKey::from_hex(key_a)?, PrivateKey::from_hex(key_b)?);
    let chain = Arc::new(RpcChain::connect(RpcConfig::dev(url.clone(), 0))?);
    let net = MemoryNetwork::new();
    // Both on the network before either starts: the restarted nodes' re-sent queues
    // must find their partner.
    let (link_a, link_b) = (net.join(ka.address()), net.join(kb.address()));
    let a = start_node("a", &dir, ka.clone(), &deployment, chain.clone(), link_a).await?;
    let b = start_node("b", &dir, kb.clone(), &deployment, chain, link_b).await?;
    say!("READY");

    match mode.as_str() {
        "run" => {
            let mut payers = Vec::new();
            for (from, to) in [(a.clone(), kb.address()), (b.clone(), ka.address())] {
                for _ in 0..2 {
                    let from = from.clone();
                    payers.push(tokio::spawn(async move {
                        loop {
                            if from
                                .pay_direct(to, TokenAmount::from_u128(1))
                                .await
                                .is_err()
                            {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }));
                }
            }
            // Killed long before this.
            tokio::time::sleep(Duration::from_secs(120)).await;
            Ok(())
        }
        "settle" => {
            let id = *a
                .state()
                .await?
                .channels
                .keys()
                .next()
                .ok_or("no channel")?;
            for node in [&a, &b] {
                wait_for("queues to drain", async || {
                    Ok(node.state().await?.queued_messages.is_empty())
                })
                .await?;
            }
            print_state("a", &a.state().await?);
            print_state("b", &b.state().await?);
            eprintln!("crash-node: queues drained; closing");
            a.close(id).await?;
            for node in [&a, &b] {
                wait_for("the close", async || {
                    let ch = node.channel(id).await?.ok_or("channel gone")?;
                    Ok(matches!(
                        ch.status,
                        ChannelStatus::Closed | ChannelStatus::Settled
                    ))
                })
                .await?;
            }
            say!("CLOSED");
            let mut outcome = None;
            wait_for("the settlement", async || {
                outcome = a.channel(id).await?.ok_or("channel gone")?.outcome;
                Ok(outcome.is_some())
            })
            .await?;
            match outcome {
                Some(ChannelOutcome::Settled { ours, partner }) => {
                    let ch = a.channel(id).await?.ok_or("channel gone")?;
                    let (amount1, amount2) = if ch.we_are_participant1 {
                        (ours, partner)
                    } else {
                        (partner, ours)
                    };
                    say!("SETTLED {} {}", amount1.0, amount2.0);
                }
                other => say!("OUTCOME {other:?}"),
            }
            a.shutdown().await?;
            b.shutdown().await?;
            Ok(())
        }
        other => Err(format!("unknown mode {other}").into()),
    }
}
