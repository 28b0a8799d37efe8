//! libp2p links between SmartMesh nodes: TCP and QUIC, Noise, yamux; peers found by
//! mDNS on local links (no server) or given as static addresses; one logical link per
//! peer; channel messages carried by request-response (`/smartmesh/channel/1`) whose
//! response is a transport-level ack (accepted or busy).
//!
//! [`P2pNode`] implements [`smartmesh_node::Transport`]: the engine keeps every message
//! queued until the peer's engine acknowledges it, so this layer may drop (a full queue,
//! a busy or unreachable peer); it never alters a message, and the sender address it
//! reports for an inbound message is derived from the peer's Noise-authenticated key.

mod codec;
mod identity;
mod mesh_link;
mod swarm;

pub use identity::{address_of_peer, peer_id_of};
pub use libp2p::{Multiaddr, PeerId};
pub use mesh_link::{MAX_MESH_FRAME, MeshLinkStats, MeshSendError};
pub use swarm::{P2pNode, start};

use smartmesh_primitives::Address;
use std::time::Duration;

/// Settings of the link layer.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers dialed at start and redialed while disconnected (`/p2p/<id>` optional).
    pub static_peers: Vec<Multiaddr>,
    /// mDNS discovery on local links.
    pub mdns: bool,
    /// Capacity of the queue of inbound messages to the node; when full, the peer is
    /// answered "busy" (backpressure) and the message dropped (its sender retries).
    pub inbound_queue: usize,
    /// Capacity of the queue of mesh frames from neighbours to the mesh; when full,
    /// the links stop reading (the neighbours slow down).
    pub mesh_inbound_queue: usize,
    /// Capacity of the queue of sends waiting for the link task; full means dropped.
    pub outbound_queue: usize,
    /// Largest message accepted or sent, bytes.
    pub max_message_bytes: usize,
    /// How long a request waits for its ack.
    pub request_timeout: Duration,
    /// How often disconnected static peers are dialed again.
    pub redial_interval: Duration,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            static_peers: Vec::new(),
            mdns: true,
            inbound_queue: 4096,
            outbound_queue: 4096,
            mesh_inbound_queue: 1024,
            max_message_bytes: 1 << 20,
            request_timeout: Duration::from_secs(10),
            redial_interval: Duration::from_secs(2),
        }
    }
}

/// `/ip4/0.0.0.0/tcp/0` and `/ip4/0.0.0.0/udp/0/quic-v1`.
pub fn default_listen() -> Vec<Multiaddr> {
    ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// How we learned of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSource {
    /// Found by mDNS on a local link.
    Mdns,
    /// Given as a static peer.
    Static,
    /// It connected to us.
    Inbound,
}

impl std::fmt::Display for PeerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerSource::Mdns => "mdns",
            PeerSource::Static => "static",
            PeerSource::Inbound => "inbound",
        })
    }
}

/// One known peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// Its Ethereum address.
    pub address: Address,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses known for it.
    pub addrs: Vec<String>,
    /// Whether a link is up.
    pub connected: bool,
    /// How we learned of it.
    pub source: PeerSource,
}

/// Counters of the link layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct P2pStats {
    /// Messages handed to a link.
    pub messages_sent: u64,
    /// Messages the peer acknowledged as accepted.
    pub messages_acked: u64,
    /// Messages dropped (queue full, no link, busy peer, failure).
    pub messages_dropped: u64,
    /// Messages received and passed to the node.
    pub messages_received: u64,
    /// Sends waiting for the link task.
    pub outbound_queue_depth: u64,
    /// Inbound messages waiting for the node.
    pub inbound_queue_depth: u64,
    /// Open connections.
    pub connections: u64,
}

/// Errors of the link layer.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The node key cannot be used as a libp2p identity.
    #[error("node key: {0}")]
    Key(String),
    /// The transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A setting is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
}
