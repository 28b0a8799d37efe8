//! An N-node network on the embedded chain: funded keys (testkit), a `MemoryNetwork`,
//! one `ManualClock` shared by the nodes and moved in step with the chain's clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use smartmesh_chain::embedded::EmbeddedChain;
use smartmesh_engine::{ChannelState, EngineConfig};
use smartmesh_node::{ManualClock, MemoryNetwork, NodeConfig, NodeHandle};
use smartmesh_primitives::{Address, ChannelId, PrivateKey, TokenAmount, U256};
use smartmesh_testkit::Lifecycle;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Net {
    pub lc: Lifecycle,
    pub chain: EmbeddedChain,
    pub net: MemoryNetwork,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub keys: Vec<PrivateKey>,
    pub nodes: Vec<Option<NodeHandle>>,
}

pub fn amount(v: u128) -> TokenAmount {
    TokenAmount::from_u128(v)
}

/// Polls `check` until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Net {
    pub async fn new(n: usize) -> Net {
        let lc = Lifecycle::embedded(n).await.expect("embedded chain");
        let chain = lc.embedded_chain().expect("embedded").clone();
        let keys = lc.keys.clone();
        let mut net = Net {
            lc,
            chain,
            net: MemoryNetwork::new(),
            clock: ManualClock::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            keys,
            nodes: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            net.start(i).await;
        }
        net
    }

    pub fn addr(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    pub fn config(&self, i: usize) -> NodeConfig {
        let mut config = NodeConfig::new(
            self.dir.path().join(format!("node{i}")),
            self.keys[i].clone(),
            self.lc.deployment.clone(),
        );
        config.engine = EngineConfig {
            retry_interval: 1,
            ..EngineConfig::default()
        };
        config.snapshot_every = 50;
        config.tick_interval = Duration::from_millis(50);
        config.chain_poll_interval = Duration::from_millis(20);
        config
    }

    pub async fn start(&mut self, i: usize) {
        let (transport, inbound) = self.net.join(self.addr(i));
        let node = smartmesh_node::start(
            self.config(i),
            Arc::new(self.chain.clone()),
            transport,
            inbound,
            Arc::new(self.clock.clone()),
        )
        .await
        .expect("node starts");
        self.nodes[i] = Some(node);
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await.expect("shutdown");
        }
    }

    pub fn node(&self, i: usize) -> &NodeHandle {
        self.nodes[i].as_ref().expect("node running")
    }

    /// Moves node clocks and chain time forward together (mines a block).
    pub fn advance(&self, secs: u64) {
        self.clock.advance(secs);
        self.chain.increase_time(secs);
    }

    /// Opens a channel i–j with deposits, and waits until both nodes know both.
    pub async fn open(&self, i: usize, j: usize, dep_i: u128, dep_j: u128) -> ChannelId {
        let id = self
            .node(i)
            .open_channel(self.addr(j), amount(dep_i))
            .await
            .expect("open");
        if dep_j > 0 {
            self.node(j)
                .deposit(id, amount(dep_j))
                .await
                .expect("deposit");
        }
        // Every running node's graph knows the channel (routing needs it).
        let head = self.chain.head().number.0;
        for node in self.nodes.iter().flatten() {
            node.chain_access()
                .wait_scanned(head, Duration::from_secs(5))
                .await
                .expect("watcher caught up");
            node.state().await.expect("inputs applied");
        }
        for k in [i, j] {
            let node = self.node(k).clone();
            let (a, b) = (self.addr(i), self.addr(j));
            eventually(
                "channel known with deposits",
                Duration::from_secs(5),
                || {
                    let node = node.clone();
                    async move {
                        let ch = node.channel(id).await.ok()??;
                        let dep = |who: Address| {
                            if ch.our.address == who {
                                ch.our.deposit
                            } else {
                                ch.partner.deposit
                            }
                        };
                        (dep(a) == amount(dep_i) && dep(b) == amount(dep_j)).then_some(())
                    }
                },
            )
            .await;
        }
        id
    }

    pub async fn channel(&self, i: usize, id: ChannelId) -> ChannelState {
        self.node(i)
            .channel(id)
            .await
            .expect("query")
            .expect("channel")
    }

    pub async fn smt(&self, i: usize) -> U256 {
        self.lc.smt_balance(self.addr(i)).await.expect("balance")
    }

    /// Tells every node the fee schedules of every node (the mesh will gossip these).
    pub async fn announce_fee(&self, of: usize, flat: u128, ppm: u64) {
        let fee = smartmesh_engine::FeeSchedule {
            flat: amount(flat),
            proportional_ppm: ppm,
        };
        for node in self.nodes.iter().flatten() {
            node.set_fee_schedule(self.addr(of), fee)
                .await
                .expect("fee");
        }
    }

    pub async fn shutdown_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

impl Net {
    /// Whether the chain still has channel `id` open (not closed).
    pub fn chain_access_channel_open(&self, id: ChannelId) -> bool {
        self.nodes
            .iter()
            .flatten()
            .next()
            .and_then(|n| n.chain_access().channel(id))
            .is_some_and(|ch| ch.closedAt == 0)
    }
}
