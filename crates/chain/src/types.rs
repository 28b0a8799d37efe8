//! Requests, receipts, events and cursors shared by every backend.

use serde::{Deserialize, Serialize};
use smartmesh_primitives::{Address, B256, BlockNumber, Bytes, ChainTime, U256};

/// A transaction to sign and send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Recipient; `None` deploys `data` as creation code.
    pub to: Option<Address>,
    /// Calldata or creation code.
    pub data: Bytes,
    /// Wei sent along.
    pub value: U256,
    /// Gas limit; `None` lets the backend estimate it.
    pub gas_limit: Option<u64>,
}

impl TxRequest {
    /// A call of `to` with `data`.
    pub fn call(to: Address, data: impl Into<Bytes>) -> Self {
        Self {
            to: Some(to),
            data: data.into(),
            ..Self::default()
        }
    }

    /// A contract deployment.
    pub fn deploy(creation_code: impl Into<Bytes>) -> Self {
        Self {
            to: None,
            data: creation_code.into(),
            ..Self::default()
        }
    }
}

/// A read-only call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRequest {
    /// Caller seen by the contract (`msg.sender`); zero address if `None`.
    pub from: Option<Address>,
    /// Contract called.
    pub to: Address,
    /// Calldata.
    pub data: Bytes,
}

impl CallRequest {
    /// A call of `to` with `data` from nobody in particular.
    pub fn new(to: Address, data: impl Into<Bytes>) -> Self {
        Self {
            from: None,
            to,
            data: data.into(),
        }
    }
}

/// The newest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Height.
    pub number: BlockNumber,
    /// Hash.
    pub hash: B256,
    /// `block.timestamp`.
    pub timestamp: ChainTime,
}

/// A mined transaction that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block it was included in.
    pub block_number: BlockNumber,
    /// Gas used (after refunds), as in the receipt.
    pub gas_used: u64,
    /// Address of the created contract, for deployments.
    pub contract_address: Option<Address>,
    /// The logs it emitted, in order.
    pub logs: Vec<ChainEvent>,
}

/// One contract log, located in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEvent {
    /// Block height.
    pub block_number: BlockNumber,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp.
    pub block_time: ChainTime,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Index of the log in its block.
    pub log_index: u64,
    /// Emitting contract.
    pub address: Address,
    /// Indexed topics; the first is the event signature hash.
    pub topics: Vec<B256>,
    /// Non-indexed data.
    pub data: Bytes,
}

impl ChainEvent {
    /// As an alloy log, for decoding with `sol!` event types.
    pub fn to_log(&self) -> alloy::primitives::Log {
        alloy::primitives::Log::new_unchecked(self.address, self.topics.clone(), self.data.clone())
    }
}

/// Which events to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Emitting contracts; empty means every contract.
    pub addresses: Vec<Address>,
    /// Most blocks to scan in one call, so a long catch-up reports progress.
    pub max_blocks: u64,
}

impl EventFilter {
    /// Events of these contracts, at most 2,000 blocks per call.
    pub fn contracts(addresses: impl Into<Vec<Address>>) -> Self {
        Self {
            addresses: addresses.into(),
            max_blocks: 2_000,
        }
    }
}

/// Where event scanning resumes. Persist it together with the effects of the events
/// processed, so that a restart neither repeats nor skips any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCursor {
    /// The next block to scan.
    pub next_block: BlockNumber,
    /// Hash of block `next_block - 1` as scanned, to detect a reorg deeper than the
    /// confirmation depth; `None` at the start.
    pub last_hash: Option<B256>,
}

impl EventCursor {
    /// A cursor that starts at `block`.
    pub fn from_block(block: BlockNumber) -> Self {
        Self {
            next_block: block,
            last_hash: None,
        }
    }
}

/// Events returned by [`crate::Chain::events_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    /// Events in chain order.
    pub events: Vec<ChainEvent>,
    /// Cursor after these events.
    pub cursor: EventCursor,
    /// Newest final block (head minus the confirmation depth).
    pub final_block: BlockNumber,
    /// The cursor has reached the final block.
    pub caught_up: bool,
}
