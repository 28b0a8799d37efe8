//! The mesh layer's pure parts (issue 5): end-to-end sessions with forward secrecy
//! ([`session`]) and the forwarding checks every carrier applies (hop limit, duplicate
//! suppression, [`forward`]) and the packets on a link ([`wire`]). Routing itself is `smartmesh-routing`.

pub mod forward;
pub mod gateway;
pub mod payload;
pub mod receipt;
pub mod session;
pub mod wire;

pub use forward::{Forwarder, Verdict};
pub use gateway::GatewayAd;
pub use payload::{MessageId, Payload};
pub use receipt::{Receipt, receipt_domain};
pub use session::{Hello, Initiating, Sealed, Session, SessionId, Welcome, respond};
pub use wire::Packet;

/// Errors of the mesh crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// The handshake failed (bad signature, wrong node, bad key).
    #[error("session handshake: {0}")]
    Handshake(String),
    /// A datagram did not authenticate or could not be sealed.
    #[error("session crypto: {0}")]
    Crypto(String),
    /// A packet's bytes are malformed.
    #[error("mesh codec: {0}")]
    Codec(String),
    /// A datagram was seen before or is too old.
    #[error("replayed or too old datagram")]
    Replay,
}
