//! The node's REST API: request/response types ([`types`]), a typed client
//! ([`client::ApiClient`]) used by the CLI and the demo, and (module `server`) the axum
//! server over a node handle. `REST.md` describes every endpoint.

pub mod client;
pub mod types;

pub use client::{ApiClient, ClientError};
