//! Chain access for SmartMesh: one interface ([`Chain`]) for what a node needs of
//! Ethereum — sending transactions, calls, ordered contract events since a persisted
//! cursor, and the chain's time — with two backends:
//!
//! * [`embedded::EmbeddedChain`]: revm in-process, contracts deployed at genesis, funded
//!   development accounts, blocks on demand or on an interval;
//! * [`rpc::RpcChain`]: any Ethereum JSON-RPC node through alloy, with a confirmation
//!   depth so a reorg never delivers an event twice or loses one.
//!
//! [`devchain`] serves an embedded chain over standard JSON-RPC so several processes
//! share one chain. A chain that cannot be reached is a normal state
//! ([`ChainError::Unreachable`]), and reverts carry the contract's error name.

pub mod deploy;
pub mod devchain;
pub mod embedded;
mod error;
pub mod rpc;
pub mod token_network;
mod types;

pub use error::ChainError;
pub use types::{
    CallRequest, ChainEvent, ChainHead, EventBatch, EventCursor, EventFilter, TxReceipt, TxRequest,
};

use async_trait::async_trait;
use smartmesh_primitives::{Address, Bytes, ChainId, PrivateKey, U256};

/// What a node needs of a chain. Implementations are cheap to clone behind an `Arc`
/// and safe to call from many tasks.
#[async_trait]
pub trait Chain: Send + Sync {
    /// The EIP-155 chain id.
    async fn chain_id(&self) -> Result<ChainId, ChainError>;

    /// The newest block: its number, hash and chain time.
    async fn head(&self) -> Result<ChainHead, ChainError>;

    /// Ether balance of an account, in wei.
    async fn balance(&self, account: Address) -> Result<U256, ChainError>;

    /// Number of transactions sent from `account` (its next nonce, pending included).
    async fn nonce(&self, account: Address) -> Result<u64, ChainError>;

    /// Executes a call against the newest state without sending a transaction.
    /// A revert is [`ChainError::Reverted`] with the decoded error name.
    async fn call(&self, request: CallRequest) -> Result<Bytes, ChainError>;

    /// Signs `request` with `signer`, sends it and waits until it is included in a
    /// block. A transaction that would revert is reported as [`ChainError::Reverted`]
    /// (with the contract's error name) and, where the backend can tell beforehand,
    /// is not sent at all.
    async fn send(&self, signer: &PrivateKey, request: TxRequest) -> Result<TxReceipt, ChainError>;

    /// Contract events after `cursor`, in chain order (block, then log index), from
    /// blocks that are final under the backend's confirmation depth. The returned
    /// cursor is what the caller persists with the events it processed. An empty batch
    /// with `caught_up` means nothing new is final yet.
    async fn events_since(
        &self,
        cursor: &EventCursor,
        filter: &EventFilter,
    ) -> Result<EventBatch, ChainError>;

    /// The chain's time: the newest block's timestamp, in seconds.
    async fn time(&self) -> Result<smartmesh_primitives::ChainTime, ChainError> {
        Ok(self.head().await?.timestamp)
    }
}
