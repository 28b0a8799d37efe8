//! Off-chain channel messages of SmartMesh and their versioned canonical binary codec.
//!
//! - [`Message`] and its variants: everything two channel partners say to each other.
//! - [`decode`] / [`Message::encode`]: one canonical encoding per message, versioned by
//!   its first byte; the decoder never panics ([`fuzz_decode`] is the fuzz target).
//! - [`Message::message_hash`]: what a balance proof's EIP-712 `messageHash` binds.
//! - [`Domain`]: EIP-712 signing and verification with a precomputed domain separator.

mod codec;
mod error;
mod messages;
pub mod sig_serde;
mod signing;

pub use codec::{MAX_ROUTE_LEN, SIGNATURE_LEN, WIRE_VERSION, decode, fuzz_decode};
pub use error::WireError;
pub use messages::*;
pub use signing::{BALANCE_PROOF_TYPE, Domain, EMPTY_SIGNATURE, Verified};
