//! Outputs of the engine: `Send*` (messages), `ContractSend*` (on-chain actions), and
//! `Event*` notifications. The node performs them only after the input and its events
//! are durable; performing one twice is harmless.

use crate::state::{Balance, ChannelOutcome, ChannelStatus, SignedBalanceProof};
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{Address, B256, ChannelId, Signature, TokenAmount};
use smartmesh_wire::{HashLock, Message, PaymentId, sig_serde};
use thiserror::Error;

/// An on-chain action (a TokenNetwork or SecretRegistry call). The node needs the
/// current on-chain `Channel` struct for most of them; it rebuilds it from events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractSend {
    /// `closeChannel` with the partner's newest proof and our declared balance.
    Close {
        /// Channel id.
        channel_id: ChannelId,
        /// The partner's newest proof (`None`: submit the all-zero proof, nonce 0).
        partner_proof: Option<SignedBalanceProof>,
        /// Our newest sent balance.
        our_declared: Balance,
    },
    /// `updateNonClosingBalanceProof` with the closer's proof that contradicts its
    /// declaration: the whole deposit becomes ours.
    Penalty {
        /// Channel id.
        channel_id: ChannelId,
        /// The closer's newest proof we hold.
        closer_proof: SignedBalanceProof,
    },
    /// `settleChannel`.
    Settle {
        /// Channel id.
        channel_id: ChannelId,
    },
    /// `withdraw`, co-signed.
    Withdraw {
        /// Channel id.
        channel_id: ChannelId,
        /// Who withdraws (us).
        participant: Address,
        /// New total.
        total_withdraw: TokenAmount,
        /// Valid while `block.timestamp < expiration`.
        expiration: u64,
        /// The participant's signature.
        #[serde(with = "sig_serde")]
        participant_signature: Signature,
        /// The partner's signature.
        #[serde(with = "sig_serde")]
        partner_signature: Signature,
    },
    /// `cooperativeSettle`, co-signed.
    CooperativeSettle {
        /// Channel id.
        channel_id: ChannelId,
        /// To participant1.
        balance1: TokenAmount,
        /// To participant2.
        balance2: TokenAmount,
        /// participant1's signature.
        #[serde(with = "sig_serde")]
        signature1: Signature,
        /// participant2's signature.
        #[serde(with = "sig_serde")]
        signature2: Signature,
    },
    /// `SecretRegistry.registerSecret`: a lock we are owed is about to expire without
    /// an off-chain unlock.
    RegisterSecret {
        /// The secret.
        secret: B256,
    },
    /// `unlock` of the locks the partner sent us, after settlement.
    Unlock {
        /// Channel id.
        channel_id: ChannelId,
        /// The partner (who sent the locks).
        sender: Address,
        /// Us.
        receiver: Address,
        /// The partner's pending locks in locksroot order.
        locks: Vec<HashLock>,
    },
}

impl ContractSend {
    /// The channel the action concerns, if any.
    pub fn channel_id(&self) -> Option<ChannelId> {
        match self {
            ContractSend::Close { channel_id, .. }
            | ContractSend::Penalty { channel_id, .. }
            | ContractSend::Settle { channel_id }
            | ContractSend::Withdraw { channel_id, .. }
            | ContractSend::CooperativeSettle { channel_id, .. }
            | ContractSend::Unlock { channel_id, .. } => Some(*channel_id),
            ContractSend::RegisterSecret { .. } => None,
        }
    }
}

/// Why a message from a peer was refused. Never a panic: every failed check of peer
/// input ends here.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum InvalidReason {
    /// No channel with this id.
    #[error("unknown channel")]
    UnknownChannel,
    /// The sender is not this channel's partner.
    #[error("sender is not the channel partner")]
    NotPartner,
    /// Chain id or TokenNetwork differ from ours.
    #[error("wrong chain id or token network")]
    WrongDomain,
    /// The message is addressed to someone else.
    #[error("message addressed to another node")]
    WrongRecipient,
    /// The channel no longer takes transfers.
    #[error("channel is not open")]
    ChannelNotOpen,
    /// The nonce skipped ahead (an earlier message is missing; not acknowledged, so the
    /// sender retries in order).
    #[error("nonce {got} is ahead of the expected {expected}")]
    NonceAhead {
        /// The next nonce we expect.
        expected: u64,
        /// The nonce received.
        got: u64,
    },
    /// The transferred amount did not increase as the message requires.
    #[error("transferred amount did not increase correctly")]
    TransferredAmountMismatch,
    /// The locked amount or locksroot changed in a way the message does not explain.
    #[error("locks changed unexpectedly")]
    LocksMismatch,
    /// The sender does not have the capacity for this.
    #[error("amount exceeds the sender's capacity")]
    InsufficientCapacity,
    /// An amount computation overflowed.
    #[error("amount overflow")]
    Overflow,
    /// The signature is malformed or not the partner's.
    #[error("signature does not recover to the partner")]
    BadSignature,
    /// A lock or payment field is inconsistent (expired, route, secret, amounts...).
    #[error("invalid lock or payment: {0}")]
    InvalidLock(String),
    /// The message refers to a payment or withdraw we know nothing about.
    #[error("unknown payment or request")]
    UnknownPayment,
    /// A withdraw or cooperative settlement we cannot agree to.
    #[error("unacceptable request: {0}")]
    Unacceptable(String),
}

/// Why a local action was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ActionError {
    /// No such channel.
    #[error("unknown channel")]
    UnknownChannel,
    /// No open channel with this partner can carry the amount.
    #[error("no open channel with that partner has the capacity")]
    NoChannelWithCapacity,
    /// The channel is not open.
    #[error("channel is not open")]
    ChannelNotOpen,
    /// The channel is not in a state that allows this.
    #[error("channel is in the wrong state for this")]
    WrongChannelState,
    /// The amount is zero.
    #[error("amount must be positive")]
    ZeroAmount,
    /// Not enough capacity.
    #[error("insufficient capacity: {available} available")]
    InsufficientCapacity {
        /// What could be sent.
        available: TokenAmount,
    },
    /// An amount, nonce or time overflowed.
    #[error("overflow")]
    Overflow,
    /// Too many unacknowledged messages: the partner is not answering.
    #[error("too many unacknowledged messages")]
    QueueFull,
    /// Pending locks prevent it (cooperative settle).
    #[error("pending locks prevent this")]
    PendingLocks,
    /// No route to the target (with why).
    #[error("no route: {0}")]
    NoRoute(crate::routing::NoRoute),
    /// Nothing to do (e.g. withdraw total not above the current one).
    #[error("{0}")]
    Invalid(String),
}

/// Why an outgoing payment failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentFailure {
    /// The action was refused before anything was sent.
    Rejected(ActionError),
    /// A hop refused the transfer (its reason code).
    Refused(u8),
    /// The lock expired before the secret was revealed.
    LockExpired,
}

/// One output of [`crate::transition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Send `message` to `recipient` (balance-proof messages are signed already).
    SendMessage {
        /// The peer.
        recipient: Address,
        /// The message.
        message: Message,
    },
    /// Perform an on-chain action; report it with `ActionOnchainDone`/`Failed { id }`
    /// or the chain event it causes. Emitted only while the chain is synced.
    ContractSend {
        /// Id in `pending_onchain`.
        id: u64,
        /// What to do.
        action: ContractSend,
    },
    /// A payment we made is irrevocably sent (the payee holds the signed proof or, for
    /// a mediated payment, the secret was revealed).
    PaymentSent {
        /// Payment id.
        payment_id: PaymentId,
        /// The payee.
        target: Address,
        /// Amount the payee receives.
        amount: TokenAmount,
    },
    /// A payment reached us.
    PaymentReceived {
        /// Payment id.
        payment_id: PaymentId,
        /// The payer (the initiator for mediated payments).
        initiator: Address,
        /// Amount received.
        amount: TokenAmount,
    },
    /// A payment we started failed.
    PaymentFailed {
        /// Payment id.
        payment_id: PaymentId,
        /// Why.
        reason: PaymentFailure,
    },
    /// A payment we mediated is resolved on both sides: `received` from the payer and
    /// `paid` to the payee (zero for a side whose lock expired). The fee earned is
    /// `received - paid`.
    MediationFinished {
        /// Payment id.
        payment_id: PaymentId,
        /// Unlocked to us by the payer.
        received: TokenAmount,
        /// Unlocked by us to the payee.
        paid: TokenAmount,
    },
    /// A peer's message was refused.
    InvalidReceived {
        /// The peer.
        sender: Address,
        /// Which message type.
        kind: String,
        /// Why.
        reason: InvalidReason,
    },
    /// A local action was refused.
    ActionRejected {
        /// Why.
        reason: ActionError,
    },
    /// A channel changed status.
    ChannelStatusChanged {
        /// Channel id.
        channel_id: ChannelId,
        /// New status.
        status: ChannelStatus,
    },
    /// The partner closed with a stale or false declaration; a penalty is queued.
    PenaltyDetected {
        /// Channel id.
        channel_id: ChannelId,
        /// What the partner declared.
        declared: Balance,
        /// The newest proof we hold from it.
        ours: Balance,
    },
    /// A channel finished on chain.
    ChannelFinished {
        /// Channel id.
        channel_id: ChannelId,
        /// How.
        outcome: ChannelOutcome,
    },
    /// A withdraw we asked for was co-signed (the on-chain call is queued).
    WithdrawConfirmed {
        /// Channel id.
        channel_id: ChannelId,
        /// New total.
        total_withdraw: TokenAmount,
    },
}
