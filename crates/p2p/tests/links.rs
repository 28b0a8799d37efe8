//! Two link layers on loopback: messages both ways with authenticated senders, over TCP
//! and over QUIC; both sides dialing each other leaves one connection; oversized
//! messages and a full inbound queue drop instead of blocking or panicking.

use smartmesh_node::{Inbound, Transport};
use smartmesh_p2p::{Multiaddr, P2pConfig, P2pNode, start};
use smartmesh_primitives::PrivateKey;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[seed; 32]).expect("key")
}

fn config(listen: &str, peers: Vec<Multiaddr>) -> P2pConfig {
    P2pConfig {
        listen: vec![listen.parse().expect("multiaddr")],
        static_peers: peers,
        mdns: false,
        redial_interval: Duration::from_millis(200),
        ..P2pConfig::default()
    }
}

fn addrs(node: &P2pNode) -> Vec<Multiaddr> {
    node.listen_addrs()
        .iter()
        .map(|a| a.parse().expect("multiaddr"))
        .collect()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends until one arrives (the link may still be coming up; the node layer retries the
/// same way), then returns what arrived.
async fn deliver(from: &P2pNode, to: &P2pNode, inbound: &mut Inbound, bytes: &[u8]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        from.send(to.address(), bytes.to_vec()).await;
        if let Ok(Some((sender, got))) =
            tokio::time::timeout(Duration::from_millis(300), inbound.recv()).await
        {
            assert_eq!(sender, from.address(), "the sender is the peer's key");
            assert_eq!(got, bytes);
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message never arrived"
        );
    }
}

async fn pair(listen: &str) -> ((P2pNode, Inbound), (P2pNode, Inbound)) {
    let a = start(&key(1), config(listen, Vec::new())).await.expect("a");
    let b = start(&key(2), config(listen, addrs(&a.0)))
        .await
        .expect("b");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_over_tcp() {
    let ((a, mut a_in), (b, mut b_in)) = pair("/ip4/127.0.0.1/tcp/0").await;
    eventually("b links to a", || b.is_connected(a.address())).await;
    deliver(&b, &a, &mut a_in, b"hello a").await;
    deliver(&a, &b, &mut b_in, b"hello b").await;
    let peers = a.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].address, b.address());
    assert!(peers[0].connected);
    assert!(a.stats().messages_received >= 1 && b.stats().messages_acked >= 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_over_quic() {
    let ((a, mut a_in), (b, mut b_in)) = pair("/ip4/127.0.0.1/udp/0/quic-v1").await;
    eventually("b links to a", || b.is_connected(a.address())).await;
    deliver(&b, &a, &mut a_in, b"over quic").await;
    deliver(&a, &b, &mut b_in, b"back over quic").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_dialing_leaves_one_link() {
    // Fixed ports so each can name the other before either starts.
    let port_a = free_port();
    let port_b = free_port();
    let addr =
        |port: u16| -> Multiaddr { format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr") };
    let (key_a, key_b) = (key(3), key(4));
    let (a, b) = tokio::join!(
        start(
            &key_a,
            config(&addr(port_a).to_string(), vec![addr(port_b)])
        ),
        start(
            &key_b,
            config(&addr(port_b).to_string(), vec![addr(port_a)])
        ),
    );
    let ((a, mut a_in), (b, mut b_in)) = (a.expect("a"), b.expect("b"));
    eventually("linked", || {
        a.is_connected(b.address()) && b.is_connected(a.address())
    })
    .await;
    // Let redials and duplicate closing settle, then exactly one connection each.
    eventually("one connection each", || {
        a.stats().connections == 1 && b.stats().connections == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(a.stats().connections, 1);
    assert_eq!(b.stats().connections, 1);
    deliver(&a, &b, &mut b_in, b"one link").await;
    deliver(&b, &a, &mut a_in, b"still one link").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_full_queues_drop_without_blocking() {
    let small = |peers| P2pConfig {
        max_message_bytes: 1024,
        inbound_queue: 2,
        ..config("/ip4/127.0.0.1/tcp/0", peers)
    };
    let (a, mut a_in) = start(&key(5), small(Vec::new())).await.expect("a");
    let (b, _b_in) = start(&key(6), small(addrs(&a))).await.expect("b");
    eventually("linked", || b.is_connected(a.address())).await;
    deliver(&b, &a, &mut a_in, b"fits").await;
    // Too large: refused by the sender's codec; nothing arrives, nothing panics.
    let dropped = b.stats().messages_dropped;
    b.send(a.address(), vec![0u8; 4096]).await;
    eventually("oversize dropped", || b.stats().messages_dropped > dropped).await;
    // Nobody reads a's queue (capacity 2): extra messages are answered busy and dropped.
    for i in 0..20u8 {
        b.send(a.address(), vec![i]).await;
    }
    eventually("busy answers counted", || {
        let s = b.stats();
        s.messages_acked + s.messages_dropped >= 1 + 1 + 20
    })
    .await;
    assert!(b.stats().messages_dropped >= 18 + 1, "{:?}", b.stats());
    assert_eq!(a.stats().inbound_queue_depth, 2);
    // Draining the queue lets messages through again.
    while a_in.try_recv().is_ok() {}
    deliver(&b, &a, &mut a_in, b"after the backlog").await;
    a.shutdown().await;
    b.shutdown().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_frames_flow_in_order_with_backpressure_and_size_limits() {
    use smartmesh_p2p::{MAX_MESH_FRAME, MeshSendError};
    let ((a, _a_in), (b, _b_in)) = pair("/ip4/127.0.0.1/tcp/0").await;
    eventually("linked", || {
        a.is_connected(b.address()) && b.is_connected(a.address())
    })
    .await;
    let mut a_mesh = a.take_mesh_inbound().expect("mesh queue");
    assert!(a.take_mesh_inbound().is_none(), "taken once");
    assert_eq!(
        b.mesh_try_send(a.address(), vec![0; MAX_MESH_FRAME + 1]),
        Err(MeshSendError::TooLarge)
    );
    assert_eq!(
        b.mesh_try_send(
            PrivateKey::from_bytes(&[9; 32]).expect("key").address(),
            vec![1]
        ),
        Err(MeshSendError::NoLink)
    );
    // 3000 frames, more than every queue on the way holds: the sender waits for room,
    // nothing is lost, order is kept.
    let sender = b.clone();
    let to = a.address();
    let writer = tokio::spawn(async move {
        for i in 0u32..3000 {
            let mut frame = i.to_be_bytes().to_vec();
            frame.resize(1000, 7);
            sender.mesh_send(to, frame, WAIT).await.expect("queued");
        }
    });
    for i in 0u32..3000 {
        let (from, frame) = tokio::time::timeout(WAIT, a_mesh.recv())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!(from, b.address());
        assert_eq!(frame.len(), 1000);
        assert_eq!(frame[..4], i.to_be_bytes());
    }
    writer.await.expect("writer");
    let stats = b.mesh_stats();
    assert_eq!(stats.frames_sent, 3000);
    assert_eq!(a.mesh_stats().bytes_received, 3_000_000);
    assert_eq!(a.connected(), vec![b.address()]);
    a.shutdown().await;
    b.shutdown().await;
}
