//! Inputs of the engine, named by where they come from: `Action*` (the local user or
//! node), `Receive*` (a peer), `ContractReceive*` (the chain), and the node's clock and
//! chain-connection reports.

use crate::routing::FeeSchedule;
use crate::state::Balance;
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{Address, B256, ChainTime, ChannelId, TokenAmount};
use smartmesh_wire::{Message, PaymentId};

/// Which channel a direct transfer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferVia {
    /// Any open channel with this partner that has the capacity.
    Partner(Address),
    /// This channel.
    Channel(ChannelId),
}

/// One input of [`crate::transition`]. Inputs are written to the write-ahead log before
/// they are applied, so replaying them reproduces the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// The node clock (chain-time seconds). Drives retries, lock expiry and settlement
    /// while the chain is out of reach.
    Tick {
        /// Current time by the node clock.
        now: ChainTime,
    },
    /// The chain cannot be reached: on-chain actions stay queued.
    ChainUnreachable,
    /// The chain is reachable again and the node is replaying the events it missed;
    /// on-chain actions are still held back.
    ChainReachable,
    /// The node has replayed every missed chain event up to `chain_time`. On the
    /// transition into the synced state, queued on-chain actions are released; while
    /// synced, the node repeats it with each new block so the engine knows chain time.
    ChainSynced {
        /// `block.timestamp` of the newest block seen.
        chain_time: ChainTime,
    },

    /// Pay `amount` over one channel.
    ActionDirectTransfer {
        /// Which channel.
        via: TransferVia,
        /// Amount (> 0).
        amount: TokenAmount,
        /// Payment identifier (for the payee).
        payment_id: PaymentId,
    },
    /// Pay `amount` to `target` over a route of channels with hash-locked transfers.
    ActionMediatedTransfer {
        /// Who is paid.
        target: Address,
        /// What the target receives (fees come on top).
        amount: TokenAmount,
        /// Payment identifier.
        payment_id: PaymentId,
        /// The secret (chosen by the node's random generator, outside the engine).
        secret: B256,
    },
    /// Close a channel on chain with the partner's newest proof.
    ActionClose {
        /// The channel.
        channel_id: ChannelId,
    },
    /// Withdraw up to a new total from a channel (co-signed by the partner).
    ActionWithdraw {
        /// The channel.
        channel_id: ChannelId,
        /// Our new total withdrawn.
        total_withdraw: TokenAmount,
    },
    /// Propose to settle a channel now with the current balances (co-signed).
    ActionCooperativeSettle {
        /// The channel.
        channel_id: ChannelId,
    },
    /// A node's advertised mediation fee schedule (for routing; our own when `node` is
    /// us).
    ActionUpdateFeeSchedule {
        /// The node.
        node: Address,
        /// Its schedule.
        fee: FeeSchedule,
    },
    /// An on-chain action was mined (or is no longer needed).
    ActionOnchainDone {
        /// Its id from [`crate::Event::ContractSend`].
        id: u64,
    },
    /// An on-chain action failed.
    ActionOnchainFailed {
        /// Its id.
        id: u64,
        /// Try again later (e.g. too early, or a transient error); otherwise drop it.
        retry: bool,
    },

    /// A message from a peer. `sender` is authenticated by the transport.
    ReceiveMessage {
        /// The authenticated peer.
        sender: Address,
        /// The decoded message.
        message: Message,
    },

    /// `ChannelOpened` (only channels we take part in matter).
    ContractReceiveChannelOpened {
        /// Channel id.
        channel_id: ChannelId,
        /// participant1.
        participant1: Address,
        /// participant2.
        participant2: Address,
        /// Settle timeout, seconds.
        settle_timeout: u64,
    },
    /// `ChannelDeposit`.
    ContractReceiveChannelDeposit {
        /// Channel id.
        channel_id: ChannelId,
        /// Who deposited.
        participant: Address,
        /// Their new total.
        total_deposit: TokenAmount,
    },
    /// `ChannelWithdraw`.
    ContractReceiveChannelWithdraw {
        /// Channel id.
        channel_id: ChannelId,
        /// Who withdrew.
        participant: Address,
        /// Their new total.
        total_withdraw: TokenAmount,
    },
    /// `ChannelClosed`.
    ContractReceiveChannelClosed {
        /// Channel id.
        channel_id: ChannelId,
        /// Who closed.
        closer: Address,
        /// `block.timestamp` of the close.
        closed_at: ChainTime,
        /// What the closer declared it sent.
        closer_balance: Balance,
        /// The non-closer's proof the closer submitted.
        partner_balance: Balance,
    },
    /// `NonClosingBalanceProofUpdated` (the declaration was confirmed).
    ContractReceiveNonClosingBalanceProofUpdated {
        /// Channel id.
        channel_id: ChannelId,
    },
    /// `ChannelSettled`.
    ContractReceiveChannelSettled {
        /// Channel id.
        channel_id: ChannelId,
        /// Paid to participant1.
        amount1: TokenAmount,
        /// Paid to participant2.
        amount2: TokenAmount,
    },
    /// `CooperativeSettled`.
    ContractReceiveChannelCooperativeSettled {
        /// Channel id.
        channel_id: ChannelId,
        /// Paid to participant1.
        amount1: TokenAmount,
        /// Paid to participant2.
        amount2: TokenAmount,
    },
    /// `ChannelPenalized`.
    ContractReceiveChannelPenalized {
        /// Channel id.
        channel_id: ChannelId,
        /// The non-closer, who got everything.
        beneficiary: Address,
        /// The amount.
        amount: TokenAmount,
    },
    /// `SecretRevealed` of the SecretRegistry.
    ContractReceiveSecretRevealed {
        /// `keccak256(secret)`.
        secrethash: B256,
        /// The secret.
        secret: B256,
        /// `block.timestamp` of the registration.
        revealed_at: ChainTime,
    },
}
