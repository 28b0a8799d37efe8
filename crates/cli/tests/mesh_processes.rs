//! Node processes on loopback linked only to chosen neighbours (static peers, no
//! mDNS). A text and a file cross four hops end to end through the CLI (`send`,
//! `inbox --save`, `routes`) and the REST API, bad input gets a clear error; a carrier
//! earns exactly bytes × price, is paid by a direct channel transfer, a neighbour that
//! cannot pay is cut off, and the carrier's earnings settle on chain.

use smartmesh_api::types::{Amount, OpenChannelRequest, OutcomeInfo};
use smartmesh_chain::deploy::{DeployConfig, Grant};
use smartmesh_chain::devchain::DevchainServer;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, dev_keys};
use smartmesh_primitives::{Address, U256};
use smartmesh_testkit::procs::{NodeProcess, NodeSpec, advance_past_head, eventually, smt_balance};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_smartmesh");
const WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: u64 = 20;

fn cli(node: &NodeProcess, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(&node.data_dir)
        .output()
        .expect("run the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Net {
    chain: EmbeddedChain,
    token: Address,
    nodes: Vec<NodeProcess>,
    _server: DevchainServer,
    tmp: tempfile::TempDir,
}

/// Starts one node per entry: the indices of earlier nodes it links to, and its flags.
async fn net(topology: &[(&[usize], &[&str])]) -> Net {
    let keys = dev_keys(topology.len() + 1);
    let chain = EmbeddedChain::new(EmbeddedConfig {
        deploy: Some(DeployConfig {
            grants: keys[1..]
                .iter()
                .map(|k| Grant {
                    to: k.address(),
                    amount: U256::from(10_000_000u64),
                })
                .collect(),
            ..DeployConfig::default()
        }),
        ..EmbeddedConfig::default()
    })
    .expect("chain");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("deployment.json");
    let deployment = chain.deployment().expect("deployment");
    deployment.write(&file).expect("write deployment");
    let server = DevchainServer::start(chain.clone(), 0)
        .await
        .expect("devchain");
    let url = server.url();
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for (i, (links, extra)) in topology.iter().enumerate() {
        let peers: Vec<String> = links
            .iter()
            .flat_map(|j| nodes[*j].listen.clone())
            .collect();
        let dir = tmp.path().join(format!("n{i}"));
        let name = format!("node {i}");
        nodes.push(
            NodeProcess::spawn(&NodeSpec {
                exe: Path::new(BIN),
                name: &name,
                dev_key: i + 1,
                rpc: &url,
                deployment: &file,
                data_dir: &dir,
                peers: &peers,
                fee: None,
                settle_timeout: SETTLE_TIMEOUT,
                log: None,
                extra,
            })
            .expect("node starts"),
        );
    }
    Net {
        chain,
        token: deployment.token,
        nodes,
        _server: server,
        tmp,
    }
}

async fn route_via(from: &NodeProcess, to: Address, next_hop: Address) {
    let api = from.api.clone();
    eventually("a route", WAIT, || {
        let api = api.clone();
        async move {
            let routes = api.mesh_routes().await.ok()?;
            routes
                .routes
                .iter()
                .any(|r| r.destination == to && r.next_hop == next_hop)
                .then_some(())
        }
    })
    .await
    .expect("route");
}

async fn delivered(from: &NodeProcess, id: &str) {
    let api = from.api.clone();
    eventually("delivered", WAIT, || {
        let api = api.clone();
        async move {
            let outbox = api.outbox().await.ok()?;
            outbox
                .iter()
                .any(|m| m.id == id && m.status == "delivered")
                .then_some(())
        }
    })
    .await
    .expect("delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_and_file_cross_four_hops_through_the_cli() {
    // Each node links only to the previous one: a line, not a full mesh.
    let net = net(&[
        (&[], &[]),
        (&[0], &[]),
        (&[1], &[]),
        (&[2], &[]),
        (&[3], &[]),
    ])
    .await;
    let (line, tmp) = (&net.nodes, &net.tmp);
    let (first, last) = (&line[0], &line[4]);
    let far = last.address;
    let api = first.api.clone();
    eventually("a route over four hops", WAIT, || {
        let api = api.clone();
        async move {
            let routes = api.mesh_routes().await.ok()?;
            (routes.routes.len() == 4 && routes.routes.iter().any(|r| r.destination == far))
                .then_some(())
        }
    })
    .await
    .expect("route");
    let routes = first.api.mesh_routes().await.expect("routes");
    assert_eq!(
        routes.neighbours.len(),
        1,
        "only the next node is a neighbour"
    );
    let (ok, out, err) = cli(first, &["routes"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("4 routes") && out.contains(&format!("{far}")),
        "{out}"
    );

    // A text, waiting for the end-to-end acknowledgement.
    let (ok, out, err) = cli(
        first,
        &[
            "send",
            &far.to_string(),
            "hello over four hops",
            "--wait",
            "60",
        ],
    );
    assert!(ok, "send: {err}");
    assert!(out.starts_with("delivered"), "{out}");
    let inbox = last.api.inbox().await.expect("inbox");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].from, first.address);
    assert_eq!(inbox[0].text.as_deref(), Some("hello over four hops"));
    let (ok, out, _) = cli(last, &["inbox"]);
    assert!(ok && out.contains("hello over four hops"), "{out}");

    // A 300 KB file the other way, saved by `inbox --save`.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let source = tmp.path().join("photo.jpg");
    std::fs::write(&source, &payload).expect("write file");
    let (ok, _, err) = cli(
        last,
        &[
            "send",
            &first.address.to_string(),
            "--file",
            source.to_str().expect("path"),
            "--wait",
            "60",
        ],
    );
    assert!(ok, "send file: {err}");
    let saved = tmp.path().join("saved");
    let (ok, out, err) = cli(first, &["inbox", "--save", saved.to_str().expect("path")]);
    assert!(ok, "{err}");
    assert!(out.contains("photo.jpg"), "{out}");
    let files: Vec<_> = std::fs::read_dir(&saved)
        .expect("saved dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(files[0].path()).expect("saved file"), payload);
    let carried = line[2].api.mesh_stats().await.expect("stats");
    assert!(carried.forwarded_bytes > 300_000, "{carried:?}");

    // Bad input: clear errors, nothing sent.
    let before = first.api.outbox().await.expect("outbox").len();
    for (args, expected) in [
        (vec!["send", "0x1234", "hi"], "not an address"),
        (vec!["send", &far.to_string()], "give a TEXT or --file"),
        (
            vec!["send", &far.to_string(), "--file", "/nonexistent/file"],
            "cannot read",
        ),
        (
            vec!["send", &first.address.to_string(), "to myself"],
            "itself",
        ),
    ] {
        let (ok, _, err) = cli(first, &args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(first.api.outbox().await.expect("outbox").len(), before);
    let both = format!(r#"{{"to":"{far}","text":"a","body_hex":"00"}}"#);
    let e = first
        .api
        .post_raw("/mesh/messages", &both)
        .await
        .expect_err("both bodies");
    assert_eq!(e.code(), Some("invalid_parameter"));
    let e = first.api.inbox_message("zz").await.expect_err("bad id");
    assert_eq!(e.code(), Some("invalid_parameter"));
    let e = first
        .api
        .inbox_message(&"0".repeat(32))
        .await
        .expect_err("unknown id");
    assert_eq!(e.code(), Some("unknown_message"));
    let e = first
        .api
        .send_file(&far.to_string(), "../etc/passwd", vec![1])
        .await
        .expect_err("path in the name");
    assert_eq!(e.code(), Some("invalid_parameter"));
    assert_eq!(first.api.outbox().await.expect("outbox").len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn carriers_are_paid_bytes_times_price_non_payers_are_cut_off_and_it_settles_on_chain() {
    // 0 - 1 - 2, and 3 - 1. Node 1 carries at 1024 base units per KiB (1 per byte).
    let pays: &[&str] = &["--mesh-settle-threshold", "20000"];
    let carrier: &[&str] = &[
        "--mesh-price",
        "1024",
        "--mesh-settle-threshold",
        "20000",
        "--mesh-credit-limit",
        "50000",
    ];
    let net = net(&[(&[], pays), (&[0], carrier), (&[1], pays), (&[1], pays)]).await;
    let (payer, carrier, dest, freeloader) =
        (&net.nodes[0], &net.nodes[1], &net.nodes[2], &net.nodes[3]);
    let channel = payer
        .api
        .open_channel(&OpenChannelRequest {
            partner: carrier.address,
            deposit: Amount(U256::from(1_000_000u64)),
            settle_timeout: None,
        })
        .await
        .expect("open a channel to the carrier");
    let id = channel.channel_id.clone();
    let api = carrier.api.clone();
    let seen = id.clone();
    eventually("the carrier sees the channel", WAIT, || {
        let (api, seen) = (api.clone(), seen.clone());
        async move { api.channel(&seen).await.ok().map(|_| ()) }
    })
    .await
    .expect("channel");
    route_via(payer, dest.address, carrier.address).await;
    let before = smt_balance(&net.chain, net.token, carrier.address)
        .await
        .expect("balance");

    let file: Vec<u8> = (0..200_000u32).map(|i| (i % 249) as u8).collect();
    let queued = payer
        .api
        .send_file(&dest.address.to_string(), "paid.bin", file)
        .await
        .expect("queued");
    delivered(payer, &queued.id).await;
    let (payer_addr, carrier_addr) = (payer.address, carrier.address);
    let (pa, ca) = (payer.api.clone(), carrier.api.clone());
    let (at_payer, at_carrier) = eventually("the payer settled with the carrier", WAIT, || {
        let (pa, ca) = (pa.clone(), ca.clone());
        async move {
            let at_payer = pa
                .mesh_accounts()
                .await
                .ok()?
                .into_iter()
                .find(|a| a.neighbour == carrier_addr)?;
            let at_carrier = ca
                .mesh_accounts()
                .await
                .ok()?
                .into_iter()
                .find(|a| a.neighbour == payer_addr)?;
            (at_payer.bytes_carried_by_them > 200_000
                && at_payer.owed_by_us.0 - at_payer.paid_to_them.0 < U256::from(20_000u64)
                && at_payer.paid_to_them.0 > U256::ZERO
                && at_carrier.credited_from_them == at_payer.paid_to_them)
                .then_some((at_payer, at_carrier))
        }
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\npayer:\n{:?}\ncarrier:\n{:?}",
            cli(payer, &["earnings"]),
            cli(carrier, &["earnings"])
        )
    });
    // Earnings = receipted bytes × 1024 / 1024, exactly; both sides bill the same.
    assert_eq!(
        at_carrier.earned.0,
        U256::from(at_carrier.bytes_carried_for_them)
    );
    assert_eq!(at_carrier.owed_to_us, at_payer.owed_by_us);
    assert_eq!(at_carrier.standing, "good");
    // The settlements are real direct transfers on the channel.
    let received: U256 = carrier
        .api
        .payments()
        .await
        .expect("payments")
        .iter()
        .filter(|p| p.role == "target" && p.initiator == Some(payer_addr))
        .filter_map(|p| p.amount.as_ref().map(|a| a.0))
        .fold(U256::ZERO, |acc, a| acc + a);
    assert_eq!(received, at_carrier.credited_from_them.0);
    let (ok, out, err) = cli(carrier, &["earnings"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("earned {}", at_carrier.earned)),
        "{out}"
    );

    // Node 3 has no channel: it cannot pay, so past its credit the carrier cuts it off.
    route_via(freeloader, dest.address, carrier.address).await;
    freeloader
        .api
        .send_file(&dest.address.to_string(), "burst.bin", vec![9; 200_000])
        .await
        .expect("queued");
    let free_addr = freeloader.address;
    let ca = carrier.api.clone();
    eventually("the non-payer is cut off", WAIT, || {
        let ca = ca.clone();
        async move {
            let a = ca
                .mesh_accounts()
                .await
                .ok()?
                .into_iter()
                .find(|a| a.neighbour == free_addr)?;
            (a.standing == "cut_off").then_some(())
        }
    })
    .await
    .expect("cut off");
    freeloader
        .api
        .send_message(&dest.address.to_string(), "free ride?")
        .await
        .expect("queued");
    let ca = carrier.api.clone();
    eventually("its packets are refused", WAIT, || {
        let ca = ca.clone();
        async move { (ca.mesh_stats().await.ok()?.cut_off_packets >= 2).then_some(()) }
    })
    .await
    .expect("refused");
    let inbox = dest.api.inbox().await.expect("inbox");
    assert!(
        !inbox
            .iter()
            .any(|m| m.text.as_deref() == Some("free ride?")),
        "nothing of the cut-off node got through"
    );

    // Close, let the timeout pass: the carrier's earnings are on chain.
    payer.api.close(&id).await.expect("close");
    let pa = payer.api.clone();
    let closing = id.clone();
    eventually("closed", WAIT, || {
        let (pa, closing) = (pa.clone(), closing.clone());
        async move { (pa.channel(&closing).await.ok()?.status == "closed").then_some(()) }
    })
    .await
    .expect("closed");
    advance_past_head(&net.chain, SETTLE_TIMEOUT + 1);
    let pa = payer.api.clone();
    let outcome = eventually("settled", WAIT, || {
        let (pa, settling) = (pa.clone(), id.clone());
        async move { pa.channel(&settling).await.ok()?.outcome }
    })
    .await
    .expect("settled");
    assert!(
        matches!(outcome, OutcomeInfo::Settled { .. }),
        "{outcome:?}"
    );
    let after = smt_balance(&net.chain, net.token, carrier.address)
        .await
        .expect("balance");
    // Everything the payer paid for carriage (and nothing else) reached the carrier.
    let paid_now = payer
        .api
        .mesh_accounts()
        .await
        .expect("accounts")
        .into_iter()
        .find(|a| a.neighbour == carrier_addr)
        .expect("account")
        .paid_to_them
        .0;
    assert_eq!(after, before + paid_now);
}
