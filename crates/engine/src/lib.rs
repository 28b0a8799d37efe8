//! The pure channel engine of SmartMesh: `transition(&mut state, &ctx, input) -> events`.
//!
//! No I/O, no clock, no randomness: time arrives as [`Input::Tick`], chain data as
//! `ContractReceive*` inputs, peer messages as [`Input::ReceiveMessage`]. Signing is
//! deterministic (RFC 6979), so replaying the same inputs reproduces the same state and
//! events. The node persists each input and its events before performing any of them.
//!
//! - [`NodeState`]: channels, queued messages (kept until acknowledged), queued
//!   on-chain actions (kept until mined), clocks.
//! - [`Input`]: `Action*`, `Receive*`, `ContractReceive*`, `Tick`, chain status.
//! - [`Event`]: `SendMessage`, `ContractSend`, and `Payment*`/`InvalidReceived`/...
//! - [`settlement_amounts`]: the contract's settlement formula off-chain.
//! - [`codec`]: the versioned binary format of inputs, events and snapshots.

pub mod codec;
mod event;
mod input;
pub mod mediated;
pub mod routing;
mod settlement;
mod state;
mod transition;

pub use event::{ActionError, ContractSend, Event, InvalidReason, PaymentFailure};
pub use input::{Input, TransferVia};
pub use mediated::PaymentsState;
pub use routing::{FeeSchedule, NoRoute, Route, find_route};
pub use settlement::{Deposits, Settlement, settlement_amounts};
pub use state::{
    Balance, ChainStatus, ChannelOutcome, ChannelState, ChannelStatus, CloseInfo, CoopSettleState,
    EndState, EngineConfig, NodeState, PendingOnchain, PendingWithdraw, QueuedMessage,
    SignedBalanceProof,
};
pub use transition::{Context, proves_lie, transition};
