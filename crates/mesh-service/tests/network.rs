//! Real link layers on loopback, each with a mesh service; links only between chosen
//! neighbours (static peers, no mDNS). Messages and files cross several hops end to end,
//! traffic reroutes when a carrier goes away, and a message for a destination that is
//! not there yet waits and arrives when it appears.

use smartmesh_mesh_service::{InboxMessage, MeshConfig, MeshHandle, Payments, SendStatus, start};
use smartmesh_p2p::{Multiaddr, P2pConfig, P2pNode};
use smartmesh_primitives::{Address, PrivateKey};
use smartmesh_testkit::procs::eventually;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn key(i: usize) -> PrivateKey {
    PrivateKey::from_bytes(&[i as u8 + 1; 32]).expect("key")
}

struct Host {
    p2p: P2pNode,
    mesh: MeshHandle,
}

/// Channel payments between the in-process hosts: a shared ledger of direct transfers
/// (the process tests use real channels).
#[derive(Default)]
struct Ledger {
    transfers: Mutex<HashMap<u64, (Address, Address, u128)>>,
    next: AtomicU64,
}

struct LedgerPayments {
    me: Address,
    ledger: Arc<Ledger>,
    /// A node that has no channel: every payment fails.
    broke: bool,
}

#[async_trait::async_trait]
impl Payments for LedgerPayments {
    async fn pay(&self, to: Address, amount: u128) -> Result<u64, String> {
        if self.broke {
            return Err("no channel with capacity".into());
        }
        let id = self.ledger.next.fetch_add(1, Ordering::Relaxed);
        self.ledger
            .transfers
            .lock()
            .expect("ledger")
            .insert(id, (self.me, to, amount));
        Ok(id)
    }

    async fn received(&self, payment_id: u64) -> Option<(Address, u128)> {
        let transfers = self.ledger.transfers.lock().expect("ledger");
        let (payer, payee, amount) = *transfers.get(&payment_id)?;
        (payee == self.me).then_some((payer, amount))
    }
}

async fn host(i: usize, neighbours: &[&Host]) -> Host {
    paying_host(
        i,
        neighbours,
        MeshConfig {
            price_per_kib: 10,
            ..MeshConfig::default()
        },
        None,
    )
    .await
}

async fn paying_host(
    i: usize,
    neighbours: &[&Host],
    config: MeshConfig,
    payments: Option<Arc<dyn Payments>>,
) -> Host {
    let peers: Vec<Multiaddr> = neighbours
        .iter()
        .flat_map(|h| h.p2p.listen_addrs())
        .filter_map(|a| a.parse().ok())
        .collect();
    let links = P2pConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")],
        static_peers: peers,
        mdns: false,
        redial_interval: Duration::from_millis(200),
        ..P2pConfig::default()
    };
    let (p2p, _channel_inbound) = smartmesh_p2p::start(&key(i), links).await.expect("links");
    let inbound = p2p.take_mesh_inbound().expect("mesh queue");
    let mesh = start(key(i), config, Arc::new(p2p.clone()), inbound, payments).expect("mesh");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn carriers_earn_bytes_times_price_the_payer_settles_and_a_non_payer_is_cut_off() {
    let ledger = Arc::new(Ledger::default());
    let config = |price| MeshConfig {
        price_per_kib: price,
        settle_threshold: 10_000,
        credit_limit: 100_000,
        receipt_every_bytes: 16 * 1024,
        ..MeshConfig::default()
    };
    let payments = |i: usize, broke: bool| -> Option<Arc<dyn Payments>> {
        Some(Arc::new(LedgerPayments {
            me: key(i).address(),
            ledger: ledger.clone(),
            broke,
        }))
    };
    // a - b - c, and d - b; b charges 1024 per KiB (1 base unit per byte).
    let a = paying_host(30, &[], config(0), payments(30, false)).await;
    let b = paying_host(31, &[&a], config(1024), payments(31, false)).await;
    let c = paying_host(32, &[&b], config(0), payments(32, false)).await;
    route_via(&a, c.mesh.address(), b.mesh.address()).await;

    let file: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let id = a
        .mesh
        .send(c.mesh.address(), "bill.bin".into(), file.clone())
        .await
        .expect("queued");
    assert_eq!(arrived(&c, a.mesh.address(), "bill.bin").await.body, file);
    delivered(&a, id).await;
    // Every byte receipted, then a's debt falls under the threshold by payments.
    let (a_addr, b_addr) = (a.mesh.address(), b.mesh.address());
    let (am, bm) = (a.mesh.clone(), b.mesh.clone());
    let (at_a, at_b) = eventually("a settled with b", WAIT, || {
        let (am, bm) = (am.clone(), bm.clone());
        async move {
            let at_a = am
                .accounts()
                .await
                .ok()?
                .into_iter()
                .find(|v| v.neighbour == b_addr)?;
            let at_b = bm
                .accounts()
                .await
                .ok()?
                .into_iter()
                .find(|v| v.neighbour == a_addr)?;
            (at_a.bytes_carried_by_them > 200_000
                && at_a.owed_by_us - at_a.paid_to_them < 10_000
                && at_a.paid_to_them > 0
                && at_b.credited_from_them == at_a.paid_to_them)
                .then_some((at_a, at_b))
        }
    })
    .await
    .expect("settled");
    // b's earnings from a's traffic: exactly the receipted bytes × 1024 / 1024.
    assert_eq!(at_b.earned, u128::from(at_b.bytes_carried_for_them));
    assert_eq!(at_b.bytes_carried_for_them, at_a.bytes_carried_by_them);
    assert_eq!(at_b.owed_to_us, at_a.owed_by_us, "both sides bill the same");
    assert_eq!(at_b.standing, "good");
    let paid_in_ledger: u128 = ledger
        .transfers
        .lock()
        .expect("ledger")
        .values()
        .filter(|(from, to, _)| *from == a_addr && *to == b_addr)
        .map(|(_, _, amount)| amount)
        .sum();
    assert_eq!(paid_in_ledger, at_a.paid_to_them);

    // d cannot pay. Its first burst is carried (receipts come after the data, so a
    // neighbour can run up to one window past its credit); once the receipts put it
    // past its credit it is cut off, and nothing more of it is carried.
    let d = paying_host(33, &[&b], config(0), payments(33, true)).await;
    route_via(&d, c.mesh.address(), b.mesh.address()).await;
    d.mesh
        .send(c.mesh.address(), "burst.bin".into(), vec![7; 300_000])
        .await
        .expect("queued");
    let d_addr = d.mesh.address();
    let bm = b.mesh.clone();
    eventually("d cut off", WAIT, || {
        let bm = bm.clone();
        async move {
            let v = bm
                .accounts()
                .await
                .ok()?
                .into_iter()
                .find(|v| v.neighbour == d_addr)?;
            (v.standing == "cut_off").then_some(())
        }
    })
    .await
    .expect("cut off");
    let owed = b
        .mesh
        .accounts()
        .await
        .expect("accounts")
        .into_iter()
        .find(|v| v.neighbour == d_addr)
        .expect("d's account");
    assert_eq!(owed.credited_from_them, 0);
    assert!(owed.owed_to_us > 100_000, "{owed:?}");
    d.mesh
        .send(c.mesh.address(), "after.txt".into(), b"free ride?".to_vec())
        .await
        .expect("queued");
    let bm = b.mesh.clone();
    eventually("d's packets refused", WAIT, || {
        let bm = bm.clone();
        async move { (bm.stats().await.ok()?.cut_off_packets >= 2).then_some(()) }
    })
    .await
    .expect("refused");
    assert!(
        !c.mesh
            .inbox()
            .await
            .expect("inbox")
            .iter()
            .any(|m| m.name == "after.txt"),
        "nothing of the cut-off node got through"
    );
    // a, who pays, still gets through b.
    let id = a
        .mesh
        .send(c.mesh.address(), String::new(), b"still welcome".to_vec())
        .await
        .expect("queued");
    delivered(&a, id).await;
    for h in [&a, &b, &c, &d] {
        h.p2p.shutdown().await;
    }
}

/// A tiny web server: answers every request with `page`.
async fn web_server(page: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    page.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(page).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_is_fetched_through_socks_and_a_gateway_two_hops_away() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    static PAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let page: &'static [u8] =
        PAGE.get_or_init(|| (0..400_000u32).map(|i| (i % 97) as u8 + 32).collect());
    let web = web_server(page).await;
    // user - carrier - gateway
    let user = host(40, &[]).await;
    let carrier = host(41, &[&user]).await;
    let gateway = paying_host(
        42,
        &[&carrier],
        MeshConfig {
            gateway_price: Some(5),
            ..MeshConfig::default()
        },
        None,
    )
    .await;
    let mesh = user.mesh.clone();
    let gw = gateway.mesh.address();
    eventually("the gateway is known", WAIT, || {
        let mesh = mesh.clone();
        async move {
            mesh.gateways()
                .await
                .ok()?
                .first()
                .filter(|g| g.gateway == gw && g.price_per_kib == 5)
                .map(|_| ())
        }
    })
    .await
    .expect("gateway");
    let socks = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let socks_addr = socks.local_addr().expect("addr");
    tokio::spawn(smartmesh_mesh_service::serve_socks(
        socks,
        user.mesh.clone(),
    ));

    let mut client = tokio::net::TcpStream::connect(socks_addr)
        .await
        .expect("socks");
    client.write_all(&[5, 1, 0]).await.expect("greeting");
    let mut answer = [0u8; 2];
    client.read_exact(&mut answer).await.expect("method");
    assert_eq!(answer, [5, 0]);
    let host_name = b"localhost";
    let mut request = vec![5, 1, 0, 3, host_name.len() as u8];
    request.extend_from_slice(host_name);
    request.extend_from_slice(&web.port().to_be_bytes());
    client.write_all(&request).await.expect("connect");
    let mut reply = [0u8; 10];
    client.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply[1], 0, "SOCKS success");
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.expect("response");
    let body_at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(&response[body_at..], page);
    let carried = carrier.mesh.stats().await.expect("stats");
    assert!(carried.forwarded_bytes > 400_000, "{carried:?}");
    // The user pays for the answer: the carrier bills it carrier + uplink price, pays
    // the gateway its uplink price; the gateway earns the uplink.
    let (um, cm, gm) = (
        user.mesh.clone(),
        carrier.mesh.clone(),
        gateway.mesh.clone(),
    );
    let (ua, ca, gc) = (user.mesh.address(), carrier.mesh.address(), gw);
    let (at_user, at_carrier_user, at_carrier_gw, at_gw) =
        eventually("the answer billed", WAIT, || {
            let (um, cm, gm) = (um.clone(), cm.clone(), gm.clone());
            async move {
                let find = |list: Vec<smartmesh_mesh_service::AccountView>, n: Address| {
                    list.into_iter().find(|a| a.neighbour == n)
                };
                let at_user = find(um.accounts().await.ok()?, ca)?;
                let at_carrier_user = find(cm.accounts().await.ok()?, ua)?;
                let at_carrier_gw = find(cm.accounts().await.ok()?, gc)?;
                let at_gw = find(gm.accounts().await.ok()?, ca)?;
                (at_gw.bytes_carried_for_them > 400_000
                    && at_carrier_user.bytes_carried_for_them >= at_gw.bytes_carried_for_them
                    && at_user.bytes_carried_by_them == at_carrier_user.bytes_carried_for_them
                    && at_carrier_gw.bytes_carried_by_them
                        == at_carrier_user.bytes_carried_for_them)
                    .then_some((at_user, at_carrier_user, at_carrier_gw, at_gw))
            }
        })
        .await
        .expect("billed");
    let answered = u128::from(at_gw.bytes_carried_for_them);
    assert_eq!(
        at_gw.earned,
        answered * 5 / 1024,
        "the gateway earns its uplink"
    );
    // What the carrier owes the gateway is what the gateway bills it.
    assert_eq!(at_carrier_gw.owed_by_us, at_gw.owed_to_us);
    assert_eq!(at_gw.owed_to_us, answered * 5 / 1024);
    assert!(
        at_carrier_user.owed_to_us >= answered * 15 / 1024,
        "{at_carrier_user:?}"
    );
    assert!(at_carrier_user.earned >= answered * 10 / 1024);
    assert_eq!(
        at_user.owed_by_us, at_carrier_user.owed_to_us,
        "both sides bill the same"
    );

    // A port nobody listens on: the gateway refuses, the client hears so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut client = tokio::net::TcpStream::connect(socks_addr)
        .await
        .expect("socks");
    client.write_all(&[5, 1, 0]).await.expect("greeting");
    client.read_exact(&mut answer).await.expect("method");
    let mut request = vec![5, 1, 0, 1, 127, 0, 0, 1];
    request.extend_from_slice(&closed.to_be_bytes());
    client.write_all(&request).await.expect("connect");
    client.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply[1], 5, "connection refused");
    for h in [&user, &carrier, &gateway] {
        h.p2p.shutdown().await;
    }
}
