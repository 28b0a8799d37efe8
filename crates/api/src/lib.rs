//! The node's REST API: request/response types ([`types`]), a typed client
//! ([`client::ApiClient`]) used by the CLI and the demo, and the axum server
//! ([`server`]) over a node handle. `REST.md` describes every endpoint.

pub mod client;
pub mod server;
pub mod types;

pub use client::{ApiClient, ClientError};
pub use server::{
    ApiConfig, ApiError, ApiServer, LinkStats, PeerSource, load_or_create_token, start,
    start_with_mesh,
};
