//! Node processes on loopback, driven through the REST API and the CLI: channels,
//! direct and mediated payments, close and settle with on-chain balances equal to the
//! off-chain ledger; bad input (API and CLI) gets a clear error and changes nothing;
//! metrics and the OpenAPI document are served.

use smartmesh_api::ApiClient;
use smartmesh_api::types::{
    Amount, FeeRequest, OpenChannelRequest, OutcomeInfo, PaymentMode, PaymentRequest, TotalRequest,
};
use smartmesh_chain::deploy::{DeployConfig, Grant};
use smartmesh_chain::devchain::DevchainServer;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, dev_keys};
use smartmesh_primitives::{Address, U256};
use smartmesh_testkit::procs::{NodeProcess, NodeSpec, advance_past_head, smt_balance};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_smartmesh");
const WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: u64 = 20;

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    smartmesh_testkit::procs::eventually(what, WAIT, check)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn smt(chain: &EmbeddedChain, token: Address, who: Address) -> U256 {
    smt_balance(chain, token, who).await.expect("balanceOf")
}

struct Net {
    chain: EmbeddedChain,
    token: Address,
    nodes: Vec<NodeProcess>,
    _server: DevchainServer,
    _tmp: tempfile::TempDir,
}

async fn net(count: usize) -> Net {
    let keys = dev_keys(count + 1);
    let chain = EmbeddedChain::new(EmbeddedConfig {
        deploy: Some(DeployConfig {
            grants: keys[1..]
                .iter()
                .map(|k| Grant {
                    to: k.address(),
                    amount: U256::from(1_000_000u64),
                })
                .collect(),
            ..DeployConfig::default()
        }),
        ..EmbeddedConfig::default()
    })
    .expect("chain");
    let deployment = chain.deployment().expect("deployment");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("deployment.json");
    deployment.write(&file).expect("write deployment");
    let server = DevchainServer::start(chain.clone(), 0)
        .await
        .expect("devchain");
    let mut nodes: Vec<NodeProcess> = Vec::new();
    let url = server.url();
    for i in 0..count {
        let peers: Vec<String> = nodes.iter().flat_map(|n| n.listen.clone()).collect();
        let dir = tmp.path().join(format!("n{i}"));
        let name = format!("node {i}");
        let node = NodeProcess::spawn(&NodeSpec {
            exe: Path::new(BIN),
            name: &name,
            dev_key: i + 1,
            rpc: &url,
            deployment: &file,
            data_dir: &dir,
            peers: &peers,
            fee: (i == 1).then_some((7, 0)),
            settle_timeout: SETTLE_TIMEOUT,
            log: None,
            extra: &[],
        })
        .expect("node starts");
        nodes.push(node);
    }
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            eventually("link", || async {
                a.api
                    .peers()
                    .await
                    .ok()?
                    .iter()
                    .any(|p| p.address == b.address && p.connected)
                    .then_some(())
            })
            .await;
        }
    }
    Net {
        chain,
        token: deployment.token,
        nodes,
        _server: server,
        _tmp: tmp,
    }
}

async fn open(a: &NodeProcess, b: &NodeProcess, deposit: u64) -> String {
    let c = a
        .api
        .open_channel(&OpenChannelRequest {
            partner: b.address,
            deposit: Amount(U256::from(deposit)),
            settle_timeout: None,
        })
        .await
        .expect("open");
    assert_eq!(c.status, "opened");
    let id = c.channel_id.clone();
    eventually("partner sees the channel", || async {
        b.api.channel(&id).await.ok()
    })
    .await;
    id
}

async fn pay(from: &NodeProcess, to: &NodeProcess, amount: u64, mode: PaymentMode) {
    let paid = from
        .api
        .pay(&PaymentRequest {
            target: to.address,
            amount: Amount(U256::from(amount)),
            mode,
            wait: true,
            timeout_ms: Some(20_000),
        })
        .await
        .expect("pay");
    assert_eq!(paid.status, "sent", "{paid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_pay_direct_and_mediated_then_settle_to_the_unit() {
    let net = net(3).await;
    let (a, b, c) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);
    let before: Vec<U256> = {
        let mut v = Vec::new();
        for n in &net.nodes {
            v.push(smt(&net.chain, net.token, n.address).await);
        }
        v
    };
    let ab = open(a, b, 1_000).await;
    let bc = open(b, c, 1_000).await;
    // a routes over the b-c channel once its watcher has seen it.
    let head = net.chain.head().number.0;
    eventually("a's watcher to reach the head", || async {
        (a.api.chain().await.ok()?.scanned_block >= head).then_some(())
    })
    .await;
    a.api
        .set_fee(&FeeRequest {
            node: b.address,
            flat: Amount(U256::from(7u64)),
            proportional_ppm: 0,
        })
        .await
        .expect("fee");
    pay(a, b, 100, PaymentMode::Direct).await;
    pay(a, c, 200, PaymentMode::Mediated).await;
    pay(b, a, 30, PaymentMode::Auto).await;
    let mediated = b.api.payments().await.expect("payments");
    let fee: U256 = mediated
        .iter()
        .filter_map(|p| p.fee_earned.map(|f| f.0))
        .sum();
    assert_eq!(fee, U256::from(7u64), "bob earns exactly his flat fee");
    // The event buffer and the counters follow the node's notifications (asynchronously).
    eventually("payment events", || async {
        let events = a.api.events(None).await.ok()?;
        events
            .iter()
            .any(|e| e.kind == "payment_sent")
            .then_some(())
    })
    .await;
    let sent = "smartmesh_payments_total{role=\"initiator\",status=\"sent\"} 2";
    let metrics = eventually("payment counters", || async {
        let text = a.api.metrics().await.ok()?;
        text.contains(sent).then_some(text)
    })
    .await;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name value");
        assert!(value.parse::<f64>().is_ok(), "bad metrics line {line:?}");
    }
    // Close both channels, let the timeout pass, let the nodes settle by themselves.
    a.api.close(&ab).await.expect("close ab");
    b.api.close(&bc).await.expect("close bc");
    for (node, id) in [(a, &ab), (b, &bc)] {
        eventually("closed", || async {
            (node.api.channel(id).await.ok()?.status == "closed").then_some(())
        })
        .await;
    }
    advance_past_head(&net.chain, SETTLE_TIMEOUT + 1);
    for (node, id) in [(a, &ab), (b, &bc)] {
        let outcome = eventually("settled", || async {
            node.api.channel(id).await.ok()?.outcome
        })
        .await;
        assert!(
            matches!(outcome, OutcomeInfo::Settled { .. }),
            "{outcome:?}"
        );
    }
    let after: Vec<U256> = {
        let mut v = Vec::new();
        for n in &net.nodes {
            v.push(smt(&net.chain, net.token, n.address).await);
        }
        v
    };
    // a: -100 -207 +30; b: +100 +207 -200 -30; c: +200.
    assert_eq!(after[0] + U256::from(277u64), before[0]);
    assert_eq!(after[1], before[1] + U256::from(77u64));
    assert_eq!(after[2], before[2] + U256::from(200u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let net = net(2).await;
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    let id = open(a, b, 1_000).await;
    pay(a, b, 10, PaymentMode::Direct).await;
    let snapshot = || async {
        (
            a.api.channels().await.expect("channels"),
            a.api.payments().await.expect("payments"),
        )
    };
    let before = snapshot().await;

    let code = |r: Result<String, smartmesh_api::ClientError>| {
        r.expect_err("must fail").code().map(str::to_owned)
    };
    let target = format!("{:?}", b.address);
    let max_plus_one = format!("{}0", U256::MAX);
    let deposit_path = format!("/channels/{id}/deposit");
    let cases: Vec<(&str, String, &str)> = vec![
        ("/payments", "{not json".into(), "malformed_json"),
        (
            "/payments",
            format!(r#"{{"target":"{target}","amount":"10","bogus":1}}"#),
            "malformed_json",
        ),
        (
            "/payments",
            format!(r#"{{"target":"{target}","amount":"{max_plus_one}"}}"#),
            "amount_overflow",
        ),
        (
            "/payments",
            format!(r#"{{"target":"{target}","amount":"-5"}}"#),
            "invalid_amount",
        ),
        (
            "/payments",
            format!(r#"{{"target":"{target}","amount":"1.5"}}"#),
            "invalid_amount",
        ),
        (
            "/payments",
            format!(r#"{{"target":"{target}","amount":10}}"#),
            "malformed_json",
        ),
        (
            "/payments",
            r#"{"target":"0x12","amount":"10"}"#.into(),
            "malformed_json",
        ),
        (
            "/payments",
            format!(r#"{{"target":"{target}","amount":"0"}}"#),
            "invalid_parameter",
        ),
        (
            "/channels/999/deposit",
            r#"{"total":"5000"}"#.into(),
            "unknown_channel",
        ),
        ("/channels/abc/close", "{}".into(), "invalid_parameter"),
        (
            &deposit_path,
            format!(r#"{{"total":"{max_plus_one}"}}"#),
            "amount_overflow",
        ),
        (
            &deposit_path,
            format!(r#"{{"total":"{}"}}"#, U256::MAX),
            "rejected",
        ),
        ("/channels", "x".repeat(100_000), "payload_too_large"),
    ];
    for (path, body, want) in &cases {
        assert_eq!(
            code(a.api.post_raw(path, body).await).as_deref(),
            Some(*want),
            "POST {path} {body:.80}"
        );
    }
    // Wrong and missing tokens.
    let wrong = ApiClient::new(a.api.base_url(), &"0".repeat(64)).expect("client");
    let err = wrong.channels().await.expect_err("wrong token");
    assert_eq!(err.code(), Some("unauthorized"));
    let none = ApiClient::new(a.api.base_url(), "").expect("client");
    assert_eq!(
        none.channels().await.expect_err("no token").code(),
        Some("unauthorized")
    );
    let err = wrong
        .pay(&PaymentRequest {
            target: b.address,
            amount: Amount(U256::from(1u64)),
            mode: PaymentMode::Direct,
            wait: false,
            timeout_ms: None,
        })
        .await
        .expect_err("wrong token pays nothing");
    assert_eq!(err.code(), Some("unauthorized"));
    // Unknown route and method, unknown channel and payment.
    assert_eq!(
        a.api
            .get::<serde_json::Value>("/nope")
            .await
            .expect_err("404")
            .code(),
        Some("not_found")
    );
    assert_eq!(
        a.api
            .get::<serde_json::Value>("/fees")
            .await
            .expect_err("405")
            .code(),
        Some("method_not_allowed")
    );
    assert_eq!(
        a.api.channel("424242").await.expect_err("unknown").code(),
        Some("unknown_channel")
    );
    assert_eq!(
        a.api.payment("77").await.expect_err("unknown").code(),
        Some("unknown_payment")
    );
    assert_eq!(
        a.api.payment("x1").await.expect_err("bad id").code(),
        Some("invalid_parameter")
    );
    // The CLI refuses bad amounts before any request, and reports API errors.
    let cli = |args: &[&str], token_file: &Path| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&a.data_dir)
            .arg("--token-file")
            .arg(token_file)
            .output()
            .expect("run cli")
    };
    let token_file = a.data_dir.join("api-token");
    let bad_token = a.data_dir.with_extension("badtoken");
    std::fs::write(&bad_token, "f".repeat(64)).expect("write");
    for (args, token, needle) in [
        (vec!["pay", &target, "1.5"], &token_file, "decimal string"),
        (vec!["pay", &target, &max_plus_one], &token_file, "overflow"),
        (
            vec!["channel", "deposit", "999", "5"],
            &token_file,
            "unknown_channel",
        ),
        (
            vec!["channel", "close", "abc"],
            &token_file,
            "invalid_parameter",
        ),
        (vec!["pay", &target, "5"], &bad_token, "unauthorized"),
        (vec!["pay", "0xnope", "5"], &token_file, "not an address"),
    ] {
        let out = cli(&args, token);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let out = cli(&["channel", "list"], &token_file);
    assert!(out.status.success());
    // Nothing changed.
    assert_eq!(snapshot().await, before);
    // The OpenAPI document lists every route of the router.
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", a.api.base_url()))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    for route in smartmesh_api::server::openapi::ROUTES {
        let path = format!("/v1{}", route.path);
        assert!(
            doc["paths"][&path][route.method].is_object(),
            "{path} {}",
            route.method
        );
    }
    // The token file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let _ = TotalRequest {
        total: Amount::default(),
    };
}
