//! The neighbour links the mesh runs on: who is linked, and sending one frame.

use smartmesh_primitives::Address;
use std::time::Duration;

/// Links to neighbours (implemented by the libp2p link layer).
#[async_trait::async_trait]
pub trait Links: Send + Sync + 'static {
    /// Neighbours with a link up.
    fn neighbours(&self) -> Vec<Address>;
    /// Queues a frame without waiting; false if it was not queued.
    fn try_send(&self, to: Address, frame: Vec<u8>) -> bool;
    /// Queues a frame, waiting up to `wait` for room; false if it was not queued.
    async fn send(&self, to: Address, frame: Vec<u8>, wait: Duration) -> bool;
}

#[async_trait::async_trait]
impl Links for smartmesh_p2p::P2pNode {
    fn neighbours(&self) -> Vec<Address> {
        self.connected()
    }

    fn try_send(&self, to: Address, frame: Vec<u8>) -> bool {
        self.mesh_try_send(to, frame).is_ok()
    }

    async fn send(&self, to: Address, frame: Vec<u8>, wait: Duration) -> bool {
        self.mesh_send(to, frame, wait).await.is_ok()
    }
}
