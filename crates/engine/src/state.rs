//! The node's channel state: everything the engine knows, serde-serializable for
//! snapshots. Mutated in place by [`crate::transition`].

use crate::event::ContractSend;
use crate::mediated::PaymentsState;
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{
    Address, B256, ChainId, ChainTime, ChannelId, Nonce, Signature, TokenAmount,
};
use smartmesh_wire::{BalanceProofData, HashLock, Message, MessageId, sig_serde};
use std::collections::BTreeMap;

/// Tunables of the engine. Times are seconds of chain time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// A queued message not acknowledged after this long is sent again on the next tick.
    pub retry_interval: u64,
    /// An on-chain action that failed with "retry" is tried again after this long.
    pub onchain_retry_interval: u64,
    /// Without chain time from the chain, the node clock must pass a deadline by this
    /// much before the engine believes the chain passed it (clocks drift; blocks lag).
    pub clock_margin: u64,
    /// Lifetime of a withdraw we request (its `expiration` is `now + withdraw_timeout`).
    pub withdraw_timeout: u64,
    /// Margin a mediator or target keeps between the secret's reveal and a lock's
    /// expiration: it registers the secret on chain when a lock it is owed comes this
    /// close to expiring without an off-chain unlock.
    pub reveal_timeout: u64,
    /// Lifetime of the lock an initiator creates (at least `reveal_timeout` per hop).
    pub lock_timeout: u64,
    /// The mediation fee this node charges: flat part, in token units.
    pub fee_flat: TokenAmount,
    /// The mediation fee this node charges: proportional part, in millionths of the
    /// forwarded amount.
    pub fee_proportional_ppm: u64,
    /// Most messages queued for acknowledgement at once (a bound on state size); new
    /// payments are refused beyond it.
    pub max_queued_messages: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            retry_interval: 2,
            onchain_retry_interval: 15,
            clock_margin: 60,
            withdraw_timeout: 600,
            reveal_timeout: 60,
            lock_timeout: 600,
            fee_flat: TokenAmount::ZERO,
            fee_proportional_ppm: 0,
            max_queued_messages: 1_000_000,
        }
    }
}

/// Balance data as the contract's `Balance` struct: what one participant sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Balance {
    /// Nonce (0: nothing sent).
    pub nonce: Nonce,
    /// Cumulative transferred amount.
    pub transferred_amount: TokenAmount,
    /// Pending locked amount.
    pub locked_amount: TokenAmount,
    /// Root of the pending locks.
    pub locksroot: B256,
}

impl From<&BalanceProofData> for Balance {
    fn from(bp: &BalanceProofData) -> Self {
        Self {
            nonce: bp.nonce,
            transferred_amount: bp.transferred_amount,
            locked_amount: bp.locked_amount,
            locksroot: bp.locksroot,
        }
    }
}

impl Balance {
    /// Whether transferred, locked and locksroot equal (what the penalty rule compares).
    pub fn same_amounts(&self, other: &Self) -> bool {
        self.transferred_amount == other.transferred_amount
            && self.locked_amount == other.locked_amount
            && self.locksroot == other.locksroot
    }
}

/// A balance proof with its signature and message hash: everything the contract needs
/// to accept it (`closeChannel` / `updateNonClosingBalanceProof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBalanceProof {
    /// The signed data.
    pub data: BalanceProofData,
    /// `messageHash` of the EIP-712 struct.
    pub message_hash: B256,
    /// The signer's EIP-712 signature.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

impl SignedBalanceProof {
    /// The contract's `Balance` view.
    pub fn balance(&self) -> Balance {
        Balance::from(&self.data)
    }
}

/// A withdraw agreed or requested but not (yet) seen on chain. It counts as withdrawn
/// until it is seen on chain or has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWithdraw {
    /// The new total withdrawn.
    pub total_withdraw: TokenAmount,
    /// Valid on chain while `block.timestamp < expiration`.
    pub expiration: ChainTime,
    /// The withdrawing participant's signature.
    #[serde(with = "sig_serde")]
    pub participant_signature: Signature,
    /// The partner's signature, once confirmed.
    #[serde(with = "crate::state::opt_sig")]
    pub partner_signature: Option<Signature>,
}

/// One participant's side of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndState {
    /// The participant.
    pub address: Address,
    /// Total deposited on chain.
    pub deposit: TokenAmount,
    /// Total withdrawn on chain.
    pub withdrawn: TokenAmount,
    /// A withdraw not yet seen on chain.
    pub pending_withdraw: Option<PendingWithdraw>,
    /// The newest balance proof this participant signed (for us: the newest we sent;
    /// for the partner: the newest we received). `None` while nothing was sent.
    pub proof: Option<SignedBalanceProof>,
    /// This participant's pending locks, in locksroot order.
    pub locks: Vec<HashLock>,
}

impl EndState {
    /// The pending lock of `secrethash` and what this side's proof becomes once it is
    /// unlocked: the remaining locks and the transferred amount plus the lock's amount.
    /// `Ok(None)` when there is no such lock; `Err` when the sum overflows.
    pub fn after_unlock(
        &self,
        secrethash: B256,
    ) -> Result<Option<(HashLock, Vec<HashLock>, TokenAmount)>, smartmesh_primitives::PrimitivesError>
    {
        let Some(lock) = self
            .locks
            .iter()
            .find(|l| l.secrethash == secrethash)
            .copied()
        else {
            return Ok(None);
        };
        let rest = self
            .locks
            .iter()
            .filter(|l| l.secrethash != secrethash)
            .copied()
            .collect();
        let transferred = self.transferred().checked_add(lock.amount)?;
        Ok(Some((lock, rest, transferred)))
    }

    /// A side with nothing deposited or sent.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            deposit: TokenAmount::ZERO,
            withdrawn: TokenAmount::ZERO,
            pending_withdraw: None,
            proof: None,
            locks: Vec::new(),
        }
    }

    /// The newest balance (all zero when nothing was sent).
    pub fn balance(&self) -> Balance {
        self.proof
            .as_ref()
            .map(SignedBalanceProof::balance)
            .unwrap_or_default()
    }

    /// Newest nonce (0 when nothing was sent).
    pub fn nonce(&self) -> Nonce {
        self.proof
            .as_ref()
            .map(|p| p.data.nonce)
            .unwrap_or_default()
    }

    /// Cumulative transferred amount.
    pub fn transferred(&self) -> TokenAmount {
        self.proof
            .as_ref()
            .map(|p| p.data.transferred_amount)
            .unwrap_or_default()
    }

    /// Pending locked amount.
    pub fn locked(&self) -> TokenAmount {
        self.proof
            .as_ref()
            .map(|p| p.data.locked_amount)
            .unwrap_or_default()
    }

    /// Root of the pending locks.
    pub fn locksroot(&self) -> B256 {
        self.proof
            .as_ref()
            .map(|p| p.data.locksroot)
            .unwrap_or_default()
    }

    /// Withdrawn total counting a pending withdraw (the larger of both).
    pub fn effective_withdrawn(&self) -> TokenAmount {
        match &self.pending_withdraw {
            Some(p) if p.total_withdraw > self.withdrawn => p.total_withdraw,
            _ => self.withdrawn,
        }
    }
}

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelStatus {
    /// Open: transfers go both ways.
    Opened,
    /// A cooperative settlement was requested or confirmed: no new transfers.
    Settling,
    /// We asked for the close on chain; not yet seen mined.
    Closing,
    /// Closed on chain at `closed_at` by `closer`.
    Closed,
    /// Finished on chain (settled, cooperatively settled or penalized).
    Settled,
}

/// How a channel closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseInfo {
    /// Who closed.
    pub closer: Address,
    /// Chain time of the close.
    pub closed_at: ChainTime,
    /// What the closer declared it sent.
    pub closer_balance: Balance,
    /// The closer's partner's proof it submitted.
    pub partner_balance: Balance,
    /// Whether the settle transaction was queued.
    pub settle_queued: bool,
}

/// How a channel ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelOutcome {
    /// Settled after the timeout (amounts paid now; retained lock amounts excluded).
    Settled {
        /// Paid to us.
        ours: TokenAmount,
        /// Paid to the partner.
        partner: TokenAmount,
    },
    /// Settled cooperatively.
    CooperativelySettled {
        /// Paid to us.
        ours: TokenAmount,
        /// Paid to the partner.
        partner: TokenAmount,
    },
    /// The closer lied: the whole deposit went to `beneficiary`.
    Penalized {
        /// The non-closer.
        beneficiary: Address,
        /// The amount.
        amount: TokenAmount,
    },
}

/// A cooperative settlement in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoopSettleState {
    /// Agreed balance of participant1.
    pub balance1: TokenAmount,
    /// Agreed balance of participant2.
    pub balance2: TokenAmount,
    /// Whether we requested it (else we confirmed the partner's request).
    pub requested_by_us: bool,
    /// Our signature of the `CooperativeSettle`.
    #[serde(with = "sig_serde")]
    pub our_signature: Signature,
}

/// One channel as seen by one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// Contract channel id.
    pub channel_id: ChannelId,
    /// Whether we are the contract's participant1 (the other is participant2).
    pub we_are_participant1: bool,
    /// Settle timeout in seconds.
    pub settle_timeout: u64,
    /// Life-cycle status.
    pub status: ChannelStatus,
    /// Our side.
    pub our: EndState,
    /// The partner's side.
    pub partner: EndState,
    /// Set once closed on chain.
    pub close: Option<CloseInfo>,
    /// A cooperative settlement in progress.
    pub coop_settle: Option<CoopSettleState>,
    /// Set once finished on chain.
    pub outcome: Option<ChannelOutcome>,
}

impl ChannelState {
    /// The partner's address.
    pub fn partner_address(&self) -> Address {
        self.partner.address
    }

    /// What `sender` may still send: `deposit - withdrawn - transferred + received -
    /// locked` (withdrawn counting a pending withdraw), `None` if negative or
    /// overflowing.
    pub fn distributable(sender: &EndState, receiver: &EndState) -> Option<TokenAmount> {
        let plus = sender.deposit.checked_add(receiver.transferred()).ok()?;
        let minus = sender
            .effective_withdrawn()
            .checked_add(sender.transferred())
            .ok()?
            .checked_add(sender.locked())
            .ok()?;
        plus.checked_sub(minus).ok()
    }

    /// What we may still send in this channel (zero when the sums do not work out).
    pub fn our_capacity(&self) -> TokenAmount {
        Self::distributable(&self.our, &self.partner).unwrap_or_default()
    }

    /// What the partner may still send us.
    pub fn partner_capacity(&self) -> TokenAmount {
        Self::distributable(&self.partner, &self.our).unwrap_or_default()
    }

    /// Whether new transfers may be sent or accepted.
    pub fn is_open(&self) -> bool {
        self.status == ChannelStatus::Opened
    }

    /// Participant1's and participant2's ends, in contract order.
    pub fn ends_in_contract_order(&self) -> (&EndState, &EndState) {
        if self.we_are_participant1 {
            (&self.our, &self.partner)
        } else {
            (&self.partner, &self.our)
        }
    }
}

/// A message waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Who it goes to.
    pub recipient: Address,
    /// The message (already signed).
    pub message: Message,
    /// Node time of the last send; re-sent on a tick after `retry_interval`.
    pub last_sent: ChainTime,
}

/// An on-chain action waiting to be mined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOnchain {
    /// What to do.
    pub action: ContractSend,
    /// When set, re-emitted on the first tick at or after this node time.
    pub retry_at: Option<ChainTime>,
}

/// What the engine knows of the chain connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainStatus {
    /// No connection: on-chain actions stay queued.
    Unreachable,
    /// Connected, replaying missed events: on-chain actions stay queued.
    Syncing,
    /// Caught up: on-chain actions are emitted.
    Synced,
}

/// Everything one node's engine knows (for one TokenNetwork).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Our address (the node key's).
    pub our_address: Address,
    /// Chain id.
    pub chain_id: ChainId,
    /// TokenNetwork contract.
    pub token_network: Address,
    /// Tunables.
    pub config: EngineConfig,
    /// Our channels by id.
    pub channels: BTreeMap<ChannelId, ChannelState>,
    /// The id of the next message we send.
    pub next_message_id: MessageId,
    /// Messages sent and not yet acknowledged, by message id.
    pub queued_messages: BTreeMap<MessageId, QueuedMessage>,
    /// The id of the next on-chain action.
    pub next_onchain_id: u64,
    /// On-chain actions not yet reported mined, by id.
    pub pending_onchain: BTreeMap<u64, PendingOnchain>,
    /// Node clock (from the latest tick).
    pub now: ChainTime,
    /// Newest chain time known from the chain itself (`ChainSynced`).
    pub chain_time: ChainTime,
    /// Chain connection.
    pub chain_status: ChainStatus,
    /// Mediated payments in flight and the known channel graph.
    pub payments: PaymentsState,
}

impl NodeState {
    /// A fresh node with no channels, chain not yet reached.
    pub fn new(
        our_address: Address,
        chain_id: ChainId,
        token_network: Address,
        config: EngineConfig,
    ) -> Self {
        Self {
            our_address,
            chain_id,
            token_network,
            config,
            channels: BTreeMap::new(),
            next_message_id: 1,
            queued_messages: BTreeMap::new(),
            next_onchain_id: 1,
            pending_onchain: BTreeMap::new(),
            now: ChainTime(0),
            chain_time: ChainTime(0),
            chain_status: ChainStatus::Unreachable,
            payments: PaymentsState::default(),
        }
    }

    /// Our best estimate of a lower bound on chain time: chain time seen from the chain,
    /// or the node clock less the clock margin, whichever is later.
    pub fn safe_chain_time(&self) -> ChainTime {
        let from_clock = ChainTime(self.now.0.saturating_sub(self.config.clock_margin));
        self.chain_time.max(from_clock)
    }

    /// The open channel with `partner` that can carry `amount` (the one with the most
    /// capacity), if any.
    pub fn channel_to(&self, partner: Address, amount: TokenAmount) -> Option<&ChannelState> {
        self.channels
            .values()
            .filter(|ch| ch.partner.address == partner && ch.is_open())
            .filter(|ch| ch.our_capacity() >= amount)
            .max_by_key(|ch| ch.our_capacity())
    }
}

/// Serde for an optional signature.
pub(crate) mod opt_sig {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use smartmesh_primitives::Signature;

    #[derive(Serialize, Deserialize)]
    struct Wrap(#[serde(with = "smartmesh_wire::sig_serde")] Signature);

    pub fn serialize<S: Serializer>(sig: &Option<Signature>, s: S) -> Result<S::Ok, S::Error> {
        sig.map(Wrap).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Signature>, D::Error> {
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}
