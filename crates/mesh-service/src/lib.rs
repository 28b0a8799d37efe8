//! The mesh on a running node (issue 5): one task owns the router, the sessions, the
//! forwarder, the outbox of messages being sent, the inbox and the store of packets
//! held for unreachable destinations; the API talks to it through a bounded
//! [`MeshHandle`].

mod links;
mod service;
mod types;

pub use links::Links;
pub use service::{MeshHandle, start};
pub use types::{
    InboxMessage, MeshConfig, MeshServiceError, MeshStats, NeighbourView, OutboxView, RouteView,
    SendStatus,
};
