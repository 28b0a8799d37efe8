//! `RpcChain` against our devchain server (`smartmesh_chain::devchain`) in-process on a
//! free port: the same flows as `rpc_hardhat.rs`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::TestNode;
use smartmesh_chain::devchain::DevchainServer;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig};

/// An embedded chain served over JSON-RPC; stopping it keeps the chain, restarting
/// serves it again on the same port.
struct DevchainNode {
    chain: EmbeddedChain,
    port: u16,
    server: Option<DevchainServer>,
}

impl DevchainNode {
    async fn start() -> Self {
        let chain = EmbeddedChain::new(EmbeddedConfig::default()).unwrap();
        let server = DevchainServer::start(chain.clone(), 0).await.unwrap();
        Self {
            chain,
            port: server.addr().port(),
            server: Some(server),
        }
    }
}

impl TestNode for DevchainNode {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.unwrap();
        }
    }

    async fn restart(&mut self) {
        self.server = Some(
            DevchainServer::start(self.chain.clone(), self.port)
                .await
                .unwrap(),
        );
        common::wait_until_ready(&self.url(), std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devchain_basic_flow() {
    let node = DevchainNode::start().await;
    common::basic_flow(&node.url(), 1337).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devchain_reorgs_are_never_delivered_twice_nor_lost() {
    let node = DevchainNode::start().await;
    common::reorg_flow(&node.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devchain_stopped_node_is_unreachable_and_recovers() {
    let mut node = DevchainNode::start().await;
    common::unreachable_flow(&mut node).await;
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    common::nothing_listening_flow().await;
}
