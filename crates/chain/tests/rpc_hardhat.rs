//! `RpcChain` against a real third-party node: Hardhat 2 (`tests/hardhat`, pinned in its
//! package.json), started as a child process on a free port. Needs Node.js and npm; runs
//! `npm ci` there the first time. Fails (does not skip) when they are missing.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::TestNode;
use smartmesh_test_nodes::HardhatNode;

/// Lets the shared flows stop and restart the node.
struct Hardhat(HardhatNode);

impl TestNode for Hardhat {
    fn url(&self) -> String {
        self.0.url()
    }

    async fn stop(&mut self) {
        self.0.kill();
    }

    async fn restart(&mut self) {
        self.0.spawn().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardhat_basic_flow() {
    let node = HardhatNode::start().await;
    common::basic_flow(&node.url(), 31337).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardhat_reorgs_are_never_delivered_twice_nor_lost() {
    let node = HardhatNode::start().await;
    common::reorg_flow(&node.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardhat_stopped_node_is_unreachable_and_recovers() {
    let mut node = Hardhat(HardhatNode::start().await);
    common::unreachable_flow(&mut node).await;
}
