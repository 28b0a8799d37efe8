//! Five node processes on loopback linked in a line (each knows only its neighbour,
//! no mDNS): a text and a file cross four hops end to end through the CLI (`send`,
//! `inbox --save`, `routes`) and the REST API; bad input gets a clear error.

use smartmesh_chain::deploy::{DeployConfig, Grant};
use smartmesh_chain::devchain::DevchainServer;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, dev_keys};
use smartmesh_primitives::U256;
use smartmesh_testkit::procs::{NodeProcess, NodeSpec, eventually};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_smartmesh");
const WAIT: Duration = Duration::from_secs(60);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_and_file_cross_four_hops_through_the_cli() {
    let keys = dev_keys(6);
    let chain = EmbeddedChain::new(EmbeddedConfig {
        deploy: Some(DeployConfig {
            grants: keys[1..]
                .iter()
                .map(|k| Grant {
                    to: k.address(),
                    amount: U256::from(1_000u64),
                })
                .collect(),
            ..DeployConfig::default()
        }),
        ..EmbeddedConfig::default()
    })
    .expect("chain");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("deployment.json");
    chain
        .deployment()
        .expect("deployment")
        .write(&file)
        .expect("write deployment");
    let server = DevchainServer::start(chain.clone(), 0)
        .await
        .expect("devchain");
    let url = server.url();
    let mut line: Vec<NodeProcess> = Vec::new();
    for i in 0..5 {
        // Only the previous node: a line, not a full mesh.
        let peers: Vec<String> = line.last().map(|n| n.listen.clone()).unwrap_or_default();
        let dir = tmp.path().join(format!("n{i}"));
        let name = format!("node {i}");
        line.push(
            NodeProcess::spawn(&NodeSpec {
                exe: Path::new(BIN),
                name: &name,
                dev_key: i + 1,
                rpc: &url,
                deployment: &file,
                data_dir: &dir,
                peers: &peers,
                fee: None,
                settle_timeout: 20,
                log: None,
            })
            .expect("node starts"),
        );
    }
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
    drop(line);
}
