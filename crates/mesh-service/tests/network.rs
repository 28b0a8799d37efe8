//! Real link layers on loopback, each with a mesh service; links only between chosen
//! neighbours (static peers, no mDNS). Messages and files cross several hops end to end,
//! traffic reroutes when a carrier goes away, and a message for a destination that is
//! not there yet waits and arrives when it appears.

use smartmesh_mesh_service::{InboxMessage, MeshConfig, MeshHandle, SendStatus, start};
use smartmesh_p2p::{Multiaddr, P2pConfig, P2pNode};
use smartmesh_primitives::{Address, PrivateKey};
use smartmesh_testkit::procs::eventually;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn key(i: usize) -> PrivateKey {
    PrivateKey::from_bytes(&[i as u8 + 1; 32]).expect("key")
}

struct Host {
    p2p: P2pNode,
    mesh: MeshHandle,
}

async fn host(i: usize, neighbours: &[&Host]) -> Host {
    let peers: Vec<Multiaddr> = neighbours
        .iter()
        .flat_map(|h| h.p2p.listen_addrs())
        .filter_map(|a| a.parse().ok())
        .collect();
    let config = P2pConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")],
        static_peers: peers,
        mdns: false,
        redial_interval: Duration::from_millis(200),
        ..P2pConfig::default()
    };
    let (p2p, _channel_inbound) = smartmesh_p2p::start(&key(i), config).await.expect("links");
    let inbound = p2p.take_mesh_inbound().expect("mesh queue");
    let mesh = start(
        key(i),
        MeshConfig {
            price_per_kib: 10,
            ..MeshConfig::default()
        },
        Arc::new(p2p.clone()),
        inbound,
    )
    .expect("mesh");
    Host { p2p, mesh }
}

async fn arrived(at: &Host, from: Address, name: &str) -> InboxMessage {
    let mesh = at.mesh.clone();
    eventually(&format!("{name} arrives"), WAIT, || {
        let mesh = mesh.clone();
        let name = name.to_owned();
        async move {
            mesh.inbox()
                .await
                .ok()?
                .into_iter()
                .find(|m| m.from == from && m.name == name)
        }
    })
    .await
    .expect("arrived")
}

async fn delivered(from: &Host, id: [u8; 16]) {
    let mesh = from.mesh.clone();
    eventually("delivery acknowledged", WAIT, || {
        let mesh = mesh.clone();
        async move {
            mesh.outbox()
                .await
                .ok()?
                .into_iter()
                .find(|m| m.id == id && m.status == SendStatus::Delivered)
        }
    })
    .await
    .expect("delivered");
}

async fn route_via(at: &Host, destination: Address, next_hop: Address) {
    let mesh = at.mesh.clone();
    eventually("route", WAIT, || {
        let mesh = mesh.clone();
        async move {
            let (routes, _) = mesh.routes().await.ok()?;
            routes
                .into_iter()
                .find(|r| r.destination == destination && r.next_hop == next_hop)
        }
    })
    .await
    .expect("route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_and_files_cross_four_hops_end_to_end() {
    let mut line: Vec<Host> = Vec::new();
    for i in 0..5 {
        let previous: Vec<&Host> = line.last().into_iter().collect();
        let h = host(i, &previous).await;
        line.push(h);
    }
    let (first, last) = (&line[0], &line[4]);
    route_via(first, last.mesh.address(), line[1].mesh.address()).await;
    let (routes, neighbours) = first.mesh.routes().await.expect("routes");
    assert_eq!(neighbours.len(), 1, "only the neighbour is linked");
    let far = routes
        .iter()
        .find(|r| r.destination == last.mesh.address())
        .expect("route to the far end");
    assert_eq!(far.price_per_kib, 30, "three carriers at 10 per KiB");

    let text = first
        .mesh
        .send(
            last.mesh.address(),
            String::new(),
            b"hello over four hops".to_vec(),
        )
        .await
        .expect("queued");
    let got = arrived(last, first.mesh.address(), "").await;
    assert_eq!(got.body, b"hello over four hops");
    delivered(first, text).await;

    // A file of 1 MiB + 1 byte: 18 parts, reassembled in order.
    let file: Vec<u8> = (0..(1 << 20) + 1)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    let id = last
        .mesh
        .send(first.mesh.address(), "data.bin".into(), file.clone())
        .await
        .expect("queued");
    let got = arrived(first, last.mesh.address(), "data.bin").await;
    assert_eq!(got.body, file);
    delivered(last, id).await;
    let carried = line[2].mesh.stats().await.expect("stats");
    assert!(
        carried.forwarded_bytes > file.len() as u64,
        "the middle carrier forwarded the file: {carried:?}"
    );
    // The carriers saw only ciphertext: nothing of the text in clear is checked here,
    // the sessions' tests cover that; what matters is that nobody else got a copy.
    for middle in &line[1..4] {
        assert!(middle.mesh.inbox().await.expect("inbox").is_empty());
    }

    // Bad calls are refused with clear errors.
    assert!(
        first
            .mesh
            .send(first.mesh.address(), String::new(), vec![1])
            .await
            .is_err()
    );
    assert!(
        first
            .mesh
            .send(
                last.mesh.address(),
                String::new(),
                vec![0; 16 * 1024 * 1024 + 1]
            )
            .await
            .is_err()
    );
    for h in &line {
        h.p2p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_reroutes_when_a_carrier_goes_away() {
    // Diamond: a - b - d and a - c - d.
    let a = host(10, &[]).await;
    let b = host(11, &[&a]).await;
    let c = host(12, &[&a]).await;
    let d = host(13, &[&b, &c]).await;
    let to = d.mesh.address();
    let mesh = a.mesh.clone();
    let first_hop = eventually("a route to d", WAIT, || {
        let mesh = mesh.clone();
        async move {
            let (routes, _) = mesh.routes().await.ok()?;
            routes
                .into_iter()
                .find(|r| r.destination == to)
                .map(|r| r.next_hop)
        }
    })
    .await
    .expect("route");
    let id = a
        .mesh
        .send(to, String::new(), b"before".to_vec())
        .await
        .expect("queued");
    arrived(&d, a.mesh.address(), "").await;
    delivered(&a, id).await;

    let (gone, other) = if first_hop == b.mesh.address() {
        (&b, &c)
    } else {
        (&c, &b)
    };
    gone.p2p.shutdown().await;
    route_via(&a, to, other.mesh.address()).await;
    let id = a
        .mesh
        .send(to, "after".into(), b"after the cut".to_vec())
        .await
        .expect("queued");
    let got = arrived(&d, a.mesh.address(), "after").await;
    assert_eq!(got.body, b"after the cut");
    delivered(&a, id).await;
    for h in [&a, &b, &c, &d] {
        h.p2p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_for_an_absent_node_waits_and_arrives_when_it_appears() {
    let a = host(20, &[]).await;
    let b = host(21, &[&a]).await;
    let absent = key(22).address();
    let id = a
        .mesh
        .send(absent, String::new(), b"are you there".to_vec())
        .await
        .expect("queued");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = a.mesh.outbox().await.expect("outbox");
    assert_eq!(waiting[0].status, SendStatus::Waiting, "no route yet");
    let c = host(22, &[&b]).await;
    let got = arrived(&c, a.mesh.address(), "").await;
    assert_eq!(got.body, b"are you there");
    delivered(&a, id).await;
    for h in [&a, &b, &c] {
        h.p2p.shutdown().await;
    }
}
