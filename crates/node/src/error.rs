//! The node crate's one error type, classified by what the caller can do about it.

use smartmesh_chain::ChainError;
use smartmesh_engine::codec::CodecError;
use smartmesh_engine::{ActionError, PaymentFailure};
use smartmesh_storage::StorageError;
use thiserror::Error;

/// Everything that can go wrong in the node runtime. Bad peer input is never an error
/// here: it becomes an engine event (`InvalidReceived`) or is dropped when it does not
/// even decode.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The write-ahead log failed. Fatal: the node stopped acting and must be restarted
    /// from disk (after a failed fsync the disk cannot be trusted).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Stored bytes could not be encoded or read back (a bug or a foreign data dir).
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The chain refused or could not run a call we made for the user.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The chain cannot be reached now; retry later (nothing new is opened meanwhile).
    #[error("chain unreachable")]
    ChainUnreachable,
    /// The engine refused a local action (no capacity, unknown channel, ...).
    #[error("action rejected: {0}")]
    Rejected(ActionError),
    /// A payment we started failed.
    #[error("payment failed: {0:?}")]
    PaymentFailed(PaymentFailure),
    /// The request itself is invalid (unknown channel, zero amount, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Waited too long for something (the chain watcher, a payment outcome).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node is shut down (or stopped after a fatal error).
    #[error("node stopped")]
    Stopped,
}

impl NodeError {
    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, NodeError::ChainUnreachable | NodeError::Timeout(_))
            || matches!(self, NodeError::Chain(ChainError::Unreachable { .. }))
    }
}
