//! The mesh on a running node (issue 5): one task owns the router, the sessions, the
//! forwarder, the outbox of messages being sent, the inbox, the store of packets held
//! for unreachable destinations and the pay-for-forward accounts; the API talks to it
//! through a bounded [`MeshHandle`].

pub mod accounts;
mod links;
mod payments;
mod service;
mod socks;
mod streams;
mod types;

pub use accounts::{Account, Standing};
pub use links::Links;
pub use payments::Payments;
pub use service::{MeshHandle, start};
pub use socks::{MeshStream, pipe, serve_socks};
pub use types::{
    AccountView, GatewayView, InboxMessage, MeshConfig, MeshServiceError, MeshStats, NeighbourView,
    OutboxView, RouteView, SendStatus,
};
