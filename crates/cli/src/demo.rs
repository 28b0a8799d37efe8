//! `smartmesh demo`: a dev chain and six node processes on loopback, driven only
//! through their REST APIs — channels opened, direct and 3-hop payments, the chain cut
//! off while payments go on, the chain back (queued close submitted), a stale close
//! punished, a file carried over three mesh hops and a web page fetched through SOCKS5
//! and a gateway with the carriers paid per byte, everything settled — with a report
//! that checks the books.

use clap::Args;
use smartmesh_api::types::{
    Amount, ChannelInfo, FeeRequest, OpenChannelRequest, OutcomeInfo, PaymentMode, PaymentRequest,
    TotalRequest,
};
use smartmesh_chain::Chain;
use smartmesh_chain::deploy::{DeployConfig, Grant};
use smartmesh_chain::devchain::DevchainServer;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig};
use smartmesh_chain::token_network::{Balance, ChannelTracker, calls, no_balance};
use smartmesh_primitives::{Address, U256};
use smartmesh_testkit::procs::{NodeProcess, NodeSpec, advance_past_head, smt_balance};

async fn eventually<T, F, Fut>(what: &str, check: F) -> Fallible<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    smartmesh_testkit::procs::eventually(what, WAIT, check).await
}
use smartmesh_testkit::{fmt_smt, smt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Flags of `smartmesh demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Only the on-chain side (contracts on an embedded chain), no node processes.
    #[arg(long)]
    chain_only: bool,
    /// Keep the nodes' data directories (printed at the end).
    #[arg(long)]
    keep: bool,
}

const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
/// The mesh part: alice, bob, carol and dave are linked to each other; erin only to
/// dave and frank (a gateway) only to erin, so alice reaches frank over dave and erin.
const CARRIER_PRICE: &str = "10000000000000"; // 0.00001 SMT per KiB
const GATEWAY_PRICE: &str = "5000000000000";
const MESH_SETTLE: &str = "1000000000000000"; // settle past 0.001 SMT
const MESH_CREDIT: &str = "1000000000000000000"; // cut off past 1 SMT
/// Bounded wait for anything the demo waits on.
const WAIT: Duration = Duration::from_secs(30);
/// Settle timeout of the demo's channels, seconds of chain time.
const SETTLE_TIMEOUT: u64 = 30;

type Fallible<T> = Result<T, String>;

struct Demo {
    started: Instant,
    phase: Instant,
    phases: Vec<(String, Duration)>,
    latencies: Vec<Duration>,
}

impl Demo {
    fn step(&self, text: &str) {
        println!("[{:>6.1} s] {text}", self.started.elapsed().as_secs_f64());
    }

    fn end_phase(&mut self, name: &str) {
        self.phases.push((name.to_owned(), self.phase.elapsed()));
        self.phase = Instant::now();
    }
}

async fn chain_status(node: &NodeProcess) -> Option<String> {
    node.api.chain().await.ok().map(|c| c.status)
}

async fn wait_status(nodes: &[&NodeProcess], status: &str) -> Fallible<()> {
    for node in nodes {
        eventually(
            &format!("{} to report the chain {status}", node.name),
            || async { (chain_status(node).await.as_deref() == Some(status)).then_some(()) },
        )
        .await?;
    }
    Ok(())
}

async fn channel_between(a: &NodeProcess, b: Address) -> Fallible<ChannelInfo> {
    let list = a.api.channels().await.map_err(|e| e.to_string())?;
    list.into_iter()
        .find(|c| c.partner == b)
        .ok_or_else(|| format!("{} has no channel with {b}", a.name))
}

async fn open(
    demo: &Demo,
    a: &NodeProcess,
    b: &NodeProcess,
    ours: u64,
    theirs: u64,
) -> Fallible<String> {
    let opened = a
        .api
        .open_channel(&OpenChannelRequest {
            partner: b.address,
            deposit: Amount(smt(ours)),
            settle_timeout: None,
        })
        .await
        .map_err(|e| format!("{} opens with {}: {e}", a.name, b.name))?;
    let id = opened.channel_id.clone();
    eventually(&format!("{} to see channel {id}", b.name), || async {
        b.api.channel(&id).await.ok()
    })
    .await?;
    if theirs > 0 {
        b.api
            .deposit(
                &id,
                &TotalRequest {
                    total: Amount(smt(theirs)),
                },
            )
            .await
            .map_err(|e| format!("{} deposits: {e}", b.name))?;
        eventually(
            &format!("{} to see {}'s deposit", a.name, b.name),
            || async {
                let c = a.api.channel(&id).await.ok()?;
                (c.partner_deposit.0 == smt(theirs)).then_some(())
            },
        )
        .await?;
    }
    demo.step(&format!(
        "channel {id} {}<->{}: {ours} + {theirs} SMT",
        a.name, b.name
    ));
    Ok(id)
}

async fn pay(
    demo: &mut Demo,
    from: &NodeProcess,
    to: &NodeProcess,
    whole_milli: u64,
    mode: PaymentMode,
) -> Fallible<()> {
    let amount = smt(1) / U256::from(1000u64) * U256::from(whole_milli);
    let started = Instant::now();
    let paid = from
        .api
        .pay(&PaymentRequest {
            target: to.address,
            amount: Amount(amount),
            mode,
            wait: true,
            timeout_ms: Some(20_000),
        })
        .await
        .map_err(|e| format!("{} pays {}: {e}", from.name, to.name))?;
    if paid.status != "sent" {
        return Err(format!("{} pays {}: {:?}", from.name, to.name, paid));
    }
    demo.latencies.push(started.elapsed());
    Ok(())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    if args.chain_only {
        return crate::chain_demo::run().await;
    }
    let tmp = std::env::temp_dir().join(format!("smartmesh-demo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = run_in(&tmp).await;
    if args.keep || result.is_err() {
        println!("data directories and node logs kept in {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

async fn run_in(tmp: &Path) -> Fallible<()> {
    let mut demo = Demo {
        started: Instant::now(),
        phase: Instant::now(),
        phases: Vec::new(),
        latencies: Vec::new(),
    };
    // 1. The dev chain, in this process, served over JSON-RPC on loopback.
    let keys = smartmesh_chain::embedded::dev_keys(NAMES.len() + 1);
    let chain = EmbeddedChain::new(EmbeddedConfig {
        deploy: Some(DeployConfig {
            grants: keys[1..]
                .iter()
                .map(|k| Grant {
                    to: k.address(),
                    amount: smt(10_000),
                })
                .collect(),
            ..DeployConfig::default()
        }),
        ..EmbeddedConfig::default()
    })
    .map_err(|e| format!("dev chain: {e}"))?;
    let deployment = chain.deployment().ok_or("no contracts on the dev chain")?;
    let deployment_file = tmp.join("deployment.json");
    deployment
        .write(&deployment_file)
        .map_err(|e| e.to_string())?;
    let mut server = Some(
        DevchainServer::start(chain.clone(), 0)
            .await
            .map_err(|e| e.to_string())?,
    );
    let port = server.as_ref().map(|s| s.addr().port()).unwrap_or_default();
    let rpc = format!("http://127.0.0.1:{port}/");
    demo.step(&format!("dev chain {} on {rpc}", deployment.chain_id.0));

    let mut nodes: Vec<NodeProcess> = Vec::new();
    let socks_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        probe.local_addr().map_err(|e| e.to_string())?.port()
    };
    let socks_arg = format!("127.0.0.1:{socks_port}");
    for (i, name) in NAMES.iter().enumerate() {
        let peers: Vec<String> = match *name {
            "erin" | "frank" => nodes[i - 1].listen.clone(),
            _ => nodes.iter().flat_map(|n| n.listen.clone()).collect(),
        };
        let extra: Vec<&str> = match *name {
            "alice" => vec![
                "--socks-listen",
                &socks_arg,
                "--mesh-settle-threshold",
                MESH_SETTLE,
            ],
            "dave" | "erin" => vec![
                "--mesh-price",
                CARRIER_PRICE,
                "--mesh-settle-threshold",
                MESH_SETTLE,
                "--mesh-credit-limit",
                MESH_CREDIT,
            ],
            "frank" => vec!["--gateway-price", GATEWAY_PRICE],
            _ => Vec::new(),
        };
        let fee = matches!(*name, "bob" | "carol").then_some((smt(1).to::<u128>() / 100, 1_000));
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let dir = tmp.join(name);
        let log = dir.with_extension("log");
        let node = NodeProcess::spawn(&NodeSpec {
            exe: &exe,
            name,
            dev_key: i + 1,
            rpc: &rpc,
            deployment: &deployment_file,
            data_dir: &dir,
            peers: &peers,
            fee,
            settle_timeout: SETTLE_TIMEOUT,
            log: Some(&log),
            extra: &extra,
        })
        .map_err(|e| format!("{e} (see {})", log.display()))?;
        demo.step(&format!(
            "{name} up: {} api {}",
            node.address,
            node.api.base_url()
        ));
        nodes.push(node);
    }
    let links: Vec<(usize, usize)> = (0..4)
        .flat_map(|i| (i + 1..4).map(move |j| (i, j)))
        .chain([(3, 4), (4, 5)])
        .collect();
    for (i, j) in links {
        let (a, b) = (&nodes[i], &nodes[j]);
        {
            eventually(&format!("{} to link to {}", a.name, b.name), || async {
                let peers = a.api.peers().await.ok()?;
                peers
                    .iter()
                    .any(|p| p.address == b.address && p.connected)
                    .then_some(())
            })
            .await?;
        }
    }
    demo.step("alice, bob, carol and dave linked to every other; erin only to dave, frank only to erin (libp2p over TCP, Noise, yamux)");
    let mut before = Vec::new();
    for n in &nodes {
        before.push(smt_balance(&chain, deployment.token, n.address).await?);
    }
    demo.end_phase("start chain and 6 node processes");

    // 2. Channels in a line alice - bob - carol - dave.
    let (alice, bob, carol, dave) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let ab = open(&demo, alice, bob, 1_000, 500).await?;
    let bc = open(&demo, bob, carol, 1_000, 0).await?;
    let cd = open(&demo, carol, dave, 1_000, 0).await?;
    for mediator in [bob, carol] {
        alice
            .api
            .set_fee(&FeeRequest {
                node: mediator.address,
                flat: Amount(smt(1) / U256::from(100u64)),
                proportional_ppm: 1_000,
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    demo.step("alice learns the mediators' fee: 0.01 SMT + 0.1 %");
    // Alice routes over channels her watcher has seen.
    let head = chain.head().number.0;
    eventually("alice's watcher to reach the chain head", || async {
        (alice.api.chain().await.ok()?.scanned_block >= head).then_some(())
    })
    .await?;
    demo.end_phase("open channels");

    // 3. Payments with the chain up.
    for _ in 0..5 {
        pay(&mut demo, alice, bob, 10_000, PaymentMode::Direct).await?;
    }
    demo.step("alice paid bob 5 x 10 SMT directly");
    pay(&mut demo, bob, alice, 1_000, PaymentMode::Direct).await?;
    // Bob's declaration now: what a stale close will claim later.
    let stale = channel_between(bob, alice.address).await?.our_balance;
    pay(&mut demo, bob, alice, 2_000, PaymentMode::Direct).await?;
    demo.step(&format!(
        "bob paid alice 1 SMT then 2 SMT (bob remembers his nonce-{} state)",
        stale.nonce
    ));
    for _ in 0..3 {
        pay(&mut demo, alice, dave, 20_000, PaymentMode::Mediated).await?;
    }
    demo.step("alice paid dave 3 x 20 SMT over bob and carol (hash-locked, 3 hops)");
    demo.end_phase("payments online");

    // 4. The chain goes away.
    if let Some(s) = server.take() {
        s.stop().await.map_err(|e| e.to_string())?;
    }
    demo.step("chain cut off (the JSON-RPC server is down)");
    wait_status(&[alice, bob, carol, dave], "unreachable").await?;
    demo.step("every node reports the chain unreachable");
    for _ in 0..3 {
        pay(&mut demo, alice, bob, 5_000, PaymentMode::Direct).await?;
    }
    for _ in 0..2 {
        pay(&mut demo, alice, dave, 10_000, PaymentMode::Mediated).await?;
    }
    pay(&mut demo, dave, carol, 3_000, PaymentMode::Direct).await?;
    demo.step("off-internet: alice paid bob 3 x 5 SMT, alice paid dave 2 x 10 SMT over 3 hops, dave paid carol 3 SMT");
    match alice
        .api
        .deposit(
            &ab,
            &TotalRequest {
                total: Amount(smt(2_000)),
            },
        )
        .await
    {
        Err(e) if e.code() == Some("chain_unreachable") => {
            demo.step("alice's deposit is refused while offline: nothing new goes on chain")
        }
        other => {
            return Err(format!(
                "a deposit while offline must be refused: {other:?}"
            ));
        }
    }
    dave.api.close(&cd).await.map_err(|e| e.to_string())?;
    let queued = dave
        .api
        .chain()
        .await
        .map_err(|e| e.to_string())?
        .queued_onchain_actions;
    if queued == 0 {
        return Err("dave's close should be queued while offline".into());
    }
    demo.step(&format!(
        "dave asks to close channel {cd}: queued ({queued} on-chain action)"
    ));
    demo.end_phase("off-internet");

    // 5. The chain returns on the same port.
    server = Some(
        DevchainServer::start(chain.clone(), port)
            .await
            .map_err(|e| e.to_string())?,
    );
    demo.step("chain back");
    wait_status(&[alice, bob, carol, dave], "synced").await?;
    demo.step("every node synced");
    eventually("dave's queued close to be mined", || async {
        let c = dave.api.channel(&cd).await.ok()?;
        (c.status == "closed").then_some(())
    })
    .await?;
    demo.step(&format!("dave's queued close of channel {cd} is on chain"));
    demo.end_phase("reconnect and sync");

    // 6. A stale close: bob stops and closes with his old declaration.
    let mut fees = Vec::new();
    for mediator in [bob, carol] {
        let earned = mediator
            .api
            .payments()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|p| p.fee_earned.map(|f| f.0))
            .fold(U256::ZERO, |a, b| a + b);
        fees.push((mediator.name.clone(), earned));
    }
    let bob_key = keys[2].clone();
    nodes[1].stop()?;
    let (alice, carol, dave) = (&nodes[0], &nodes[2], &nodes[3]);
    let id = U256::from_str_radix(&ab, 10).map_err(|e| e.to_string())?;
    let mut tracker = ChannelTracker::new(deployment.token_network);
    let batch = chain
        .events_since(
            &smartmesh_node::chain_io::start_cursor(&deployment),
            &smartmesh_node::chain_io::event_filter(&deployment),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracker.apply_all(&batch.events);
    let ch = tracker
        .channel(id)
        .ok_or("channel alice-bob not on chain")?
        .clone();
    let declared = Balance {
        nonce: stale.nonce,
        transferredAmount: stale.transferred_amount.0,
        lockedAmount: stale.locked_amount.0,
        locksroot: stale.locksroot,
    };
    let data = calls::close(
        id,
        &ch,
        no_balance(),
        Default::default(),
        Default::default(),
        declared,
    );
    chain
        .send(
            &bob_key,
            smartmesh_chain::TxRequest::call(deployment.token_network, data),
        )
        .await
        .map_err(|e| format!("bob's stale close: {e}"))?;
    demo.step(&format!(
        "bob (node stopped) closes channel {ab} declaring nonce {} — alice holds his nonce {}",
        stale.nonce,
        stale.nonce + 1
    ));
    let penalized = eventually("alice to claim the penalty", || async {
        let c = alice.api.channel(&ab).await.ok()?;
        match c.outcome {
            Some(OutcomeInfo::Penalized {
                beneficiary,
                amount,
            }) => Some((beneficiary, amount)),
            _ => None,
        }
    })
    .await?;
    if penalized.0 != alice.address {
        return Err("the penalty went to the wrong party".into());
    }
    demo.step(&format!(
        "alice's node proved the lie on chain: the whole deposit, {} SMT, went to alice",
        fmt_smt(penalized.1.0)
    ));
    demo.end_phase("stale close punished");

    // 7. Settle the rest: carol closes bob-carol (bob is gone); time passes.
    carol.api.close(&bc).await.map_err(|e| e.to_string())?;
    eventually("carol's close to be mined", || async {
        (carol.api.channel(&bc).await.ok()?.status == "closed").then_some(())
    })
    .await?;
    advance_past_head(&chain, SETTLE_TIMEOUT + 1);
    let mut outcomes = Vec::new();
    for (viewer, id) in [(carol, &bc), (dave, &cd)] {
        let settled = eventually(&format!("channel {id} to settle"), || async {
            viewer.api.channel(id).await.ok()?.outcome
        })
        .await?;
        outcomes.push((viewer, id.clone(), settled));
    }
    demo.step(&format!(
        "channels {bc} and {cd} settled after the {SETTLE_TIMEOUT} s timeout"
    ));
    demo.end_phase("settle");

    // 8. The mesh: data over three hops, a page through a gateway, carriers paid.
    let mesh = mesh_phase(&mut demo, &chain, &nodes, socks_port).await?;
    outcomes.extend(mesh.outcomes);
    demo.end_phase("mesh: data, gateway, carriers paid");

    // 9. Report and the books.
    let mut after = Vec::new();
    for n in &nodes {
        after.push(smt_balance(&chain, deployment.token, n.address).await?);
    }
    // What the off-chain ledger says each node ends with: its payouts minus deposits.
    let mut expected: Vec<i128> = vec![0; nodes.len()];
    let index = |a: Address| nodes.iter().position(|n| n.address == a);
    // Exact base units (an SMT total fits an i128 many times over): no rounding.
    let units = |v: U256| -> i128 { v.to::<i128>() };
    let ab_info = alice.api.channel(&ab).await.map_err(|e| e.to_string())?;
    expected[0] += units(penalized.1.0) - units(ab_info.our_deposit.0);
    expected[1] -= units(ab_info.partner_deposit.0);
    for (viewer, id, outcome) in &outcomes {
        let info = viewer.api.channel(id).await.map_err(|e| e.to_string())?;
        let (v, p) = (
            index(viewer.address).ok_or("?")?,
            index(info.partner).ok_or("?")?,
        );
        let (ours, theirs) = match outcome {
            OutcomeInfo::Settled { ours, partner }
            | OutcomeInfo::CooperativelySettled { ours, partner } => (ours.0, partner.0),
            OutcomeInfo::Penalized { .. } => return Err("unexpected penalty".into()),
        };
        expected[v] += units(ours) - units(info.our_deposit.0);
        expected[p] += units(theirs) - units(info.partner_deposit.0);
    }
    println!();
    println!("REPORT");
    println!(
        "  {:<6} {:>14} {:>14} {:>14}",
        "node", "SMT before", "SMT after", "change"
    );
    let mut balanced = true;
    for (i, n) in nodes.iter().enumerate() {
        let change = units(after[i]) - units(before[i]);
        balanced &= change == expected[i];
        println!(
            "  {:<6} {:>14} {:>14} {:>+14.6}",
            n.name,
            fmt_smt(before[i]),
            fmt_smt(after[i]),
            change as f64 / 1e18
        );
    }
    for (name, fee) in &fees {
        println!("  fees earned by {name}: {} SMT", fmt_smt(*fee));
    }
    for line in &mesh.report {
        println!("  {line}");
    }
    println!(
        "  penalty: bob's stale close cost him his deposit; alice received {} SMT",
        fmt_smt(penalized.1.0)
    );
    println!(
        "  payments: {} made through the API, latency p50 {:.1} ms",
        demo.latencies.len(),
        median(&mut demo.latencies).as_secs_f64() * 1e3
    );
    for (phase, took) in &demo.phases {
        println!("  {phase:<34} {:>7.2} s", took.as_secs_f64());
    }
    println!("  total {:.1} s", demo.started.elapsed().as_secs_f64());
    if !balanced {
        println!(
            "  books: MISMATCH between on-chain balances and the off-chain ledger: {expected:?}"
        );
        return Err("the books do not balance".into());
    }
    println!("  books balanced: every on-chain change equals the off-chain ledger");
    for node in nodes.iter_mut() {
        node.stop()?;
    }
    if let Some(s) = server {
        let _ = s.stop().await;
    }
    Ok(())
}

/// What the mesh phase leaves for the report and the books.
struct MeshPhase<'a> {
    outcomes: Vec<(&'a NodeProcess, String, OutcomeInfo)>,
    report: Vec<String>,
}

/// A web server on loopback standing for "the internet" behind the gateway.
async fn web_server(page: Vec<u8>) -> Fallible<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let page = std::sync::Arc::new(page);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    page.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&page).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// GET http://127.0.0.1:`port`/ through the SOCKS5 proxy at `socks`; the body.
async fn fetch_through_socks(socks: u16, port: u16) -> Fallible<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |e: std::io::Error| e.to_string();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", socks))
        .await
        .map_err(io)?;
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method).await.map_err(io)?;
    let mut connect = vec![5, 1, 0, 1, 127, 0, 0, 1];
    connect.extend_from_slice(&port.to_be_bytes());
    s.write_all(&connect).await.map_err(io)?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply[1] != 0 {
        return Err(format!("the SOCKS5 proxy refused (code {})", reply[1]));
    }
    s.write_all(b"GET / HTTP/1.1\r\nhost: example.mesh\r\nconnection: close\r\n\r\n")
        .await
        .map_err(io)?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).await.map_err(io)?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| response[at + 4..].to_vec())
        .ok_or("no HTTP answer")?;
    Ok(body)
}

async fn mesh_phase<'a>(
    demo: &mut Demo,
    chain: &EmbeddedChain,
    nodes: &'a [NodeProcess],
    socks_port: u16,
) -> Fallible<MeshPhase<'a>> {
    let (alice, dave, erin, frank) = (&nodes[0], &nodes[3], &nodes[4], &nodes[5]);
    let mut report = Vec::new();
    // Channels for the mesh accounts: alice pays dave, dave pays erin.
    let ad = open(demo, alice, dave, 10, 0).await?;
    let de = open(demo, dave, erin, 10, 0).await?;
    eventually("mesh routes alice -> frank over dave and back", || async {
        let there = alice.api.mesh_routes().await.ok()?;
        let back = frank.api.mesh_routes().await.ok()?;
        (there
            .routes
            .iter()
            .any(|r| r.destination == frank.address && r.next_hop == dave.address)
            && back
                .routes
                .iter()
                .any(|r| r.destination == alice.address && r.next_hop == erin.address))
        .then_some(())
    })
    .await?;
    demo.step("alice's mesh route to frank: alice -> dave -> erin -> frank (3 hops, dave and erin charge 0.00001 SMT per KiB)");

    let file: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let queued = alice
        .api
        .send_file(&frank.address.to_string(), "photo.jpg", file.clone())
        .await
        .map_err(|e| e.to_string())?;
    let delivered = eventually("the file to reach frank", || async {
        alice
            .api
            .outbox()
            .await
            .ok()?
            .into_iter()
            .find(|m| m.id == queued.id && m.status == "delivered")
    })
    .await?;
    let received = frank
        .api
        .inbox_message(&queued.id)
        .await
        .map_err(|e| e.to_string())?;
    if received != file {
        return Err("the file arrived damaged".into());
    }
    let took = delivered.delivery_us.unwrap_or(0) as f64 / 1000.0;
    demo.step(&format!(
        "alice sent frank a 1 MiB file end-to-end encrypted over 3 hops: delivered and acknowledged in {took:.0} ms"
    ));
    report.push(format!(
        "mesh: 1 MiB alice -> frank over 3 hops in {took:.0} ms"
    ));

    let page: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let web = web_server(page.clone()).await?;
    eventually("alice to hear of the gateway frank", || async {
        let gateways = alice.api.mesh_gateways().await.ok()?;
        (gateways.first()?.gateway == frank.address).then_some(())
    })
    .await?;
    let started = Instant::now();
    let body = fetch_through_socks(socks_port, web).await?;
    if body != page {
        return Err("the page arrived damaged".into());
    }
    let took = started.elapsed().as_secs_f64() * 1000.0;
    demo.step(&format!(
        "a browser on alice's SOCKS5 proxy fetched a {} KB page through the gateway frank in {took:.0} ms",
        page.len() / 1000
    ));
    report.push(format!(
        "gateway: {} KB page through SOCKS5 on alice and gateway frank in {took:.0} ms",
        page.len() / 1000
    ));

    // The carriers are paid by direct channel transfers once debts pass 0.001 SMT.
    let (dave_acct, erin_acct) = eventually("alice and dave to pay their carriers", || async {
        let at_dave = dave
            .api
            .mesh_accounts()
            .await
            .ok()?
            .into_iter()
            .find(|a| a.neighbour == alice.address)?;
        let at_erin = erin
            .api
            .mesh_accounts()
            .await
            .ok()?
            .into_iter()
            .find(|a| a.neighbour == dave.address)?;
        (at_dave.credited_from_them.0 > U256::ZERO && at_erin.credited_from_them.0 > U256::ZERO)
            .then_some((at_dave, at_erin))
    })
    .await?;
    for (name, acct) in [("dave", &dave_acct), ("erin", &erin_acct)] {
        let line = format!(
            "{name} carried {} bytes for its upstream neighbour, earned {} SMT at its price, was paid {} SMT by channel transfers",
            acct.bytes_carried_for_them,
            fmt_smt(acct.earned.0),
            fmt_smt(acct.credited_from_them.0)
        );
        demo.step(&line);
        report.push(format!("mesh earnings: {line}"));
    }

    // Close the mesh channels; chain time passes; the nodes settle.
    alice.api.close(&ad).await.map_err(|e| e.to_string())?;
    dave.api.close(&de).await.map_err(|e| e.to_string())?;
    for (viewer, id) in [(alice, &ad), (dave, &de)] {
        eventually("a mesh channel close to be mined", || async {
            (viewer.api.channel(id).await.ok()?.status == "closed").then_some(())
        })
        .await?;
    }
    advance_past_head(chain, SETTLE_TIMEOUT + 1);
    let mut outcomes = Vec::new();
    for (viewer, id) in [(alice, &ad), (dave, &de)] {
        let settled = eventually(&format!("channel {id} to settle"), || async {
            viewer.api.channel(id).await.ok()?.outcome
        })
        .await?;
        outcomes.push((viewer, id.clone(), settled));
    }
    demo.step(&format!(
        "mesh channels {ad} and {de} settled: the carriers' earnings are on chain"
    ));
    Ok(MeshPhase { outcomes, report })
}
