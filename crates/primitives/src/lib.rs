//! Shared vocabulary of SmartMesh: exact newtypes for money, nonces, ids and time,
//! EIP-712 typed data for everything signed off-chain, and secp256k1 signing.
//!
//! Nothing here does I/O. Amounts use checked arithmetic only: an overflow is an
//! error the caller must handle, never a wrap-around.

mod amounts;
pub mod eip712;
mod error;
mod keys;

pub use alloy::primitives::{Address, B256, Bytes, U256, address, b256, keccak256};
pub use amounts::{BlockNumber, ChainId, ChainTime, ChannelId, Nonce, TokenAmount};
pub use error::PrimitivesError;
pub use keys::{PrivateKey, Signature, recover_signer};
