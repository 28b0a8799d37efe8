//! The chain crate's one error type.

use smartmesh_primitives::{B256, BlockNumber, Bytes};
use thiserror::Error;

/// Errors of chain access. `Unreachable` is a normal state the caller reports and
/// retries; `Reverted` names the contract's custom error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// The node could not be reached (connection refused, timeout, no route).
    #[error("chain unreachable at {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// Why, as the transport said.
        reason: String,
    },
    /// The contract reverted.
    #[error("reverted: {}", .reason.as_deref().unwrap_or("without a reason"))]
    Reverted {
        /// The decoded custom error, e.g. `SettleTimeoutNotExpired(now=.., settleAt=..)`.
        reason: Option<String>,
        /// The raw revert payload.
        data: Bytes,
        /// The mined transaction, when the revert happened on chain.
        tx_hash: Option<B256>,
    },
    /// The node refused the transaction (bad nonce, insufficient funds, gas too low).
    #[error("transaction rejected: {0}")]
    Rejected(String),
    /// The chain reorganised deeper than the confirmation depth.
    #[error("reorg deeper than the confirmation depth at block {block}")]
    ReorgTooDeep {
        /// First block whose parent no longer matches.
        block: BlockNumber,
    },
    /// The node answered something that does not make sense.
    #[error("invalid response from the chain: {0}")]
    InvalidResponse(String),
    /// A transaction was sent but not included in time.
    #[error("transaction {0} not included in time")]
    NotIncluded(B256),
    /// The embedded EVM failed internally.
    #[error("EVM failure: {0}")]
    Evm(String),
    /// Bad configuration or arguments.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl ChainError {
    /// The decoded revert reason's name (`SettleTimeoutNotExpired`), if this is a revert.
    pub fn revert_name(&self) -> Option<&str> {
        match self {
            Self::Reverted {
                reason: Some(reason),
                ..
            } => Some(reason.split('(').next().unwrap_or(reason)),
            _ => None,
        }
    }

    /// A revert error from raw revert data, decoding the name from our contracts' ABIs.
    pub fn reverted(data: Bytes, tx_hash: Option<B256>) -> Self {
        Self::Reverted {
            reason: smartmesh_contracts::revert_reason(&data),
            data,
            tx_hash,
        }
    }
}
