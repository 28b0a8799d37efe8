//! The off-chain messages two channel partners exchange.
//!
//! Only messages that carry a balance proof are signed, once: the EIP-712
//! `BalanceProof` signature whose `messageHash` binds the rest of the message (see
//! [`Message::message_hash`]). Withdraw and cooperative-settle messages carry the
//! EIP-712 signature the contract needs for that operation. Every other message is
//! authenticated by the transport.

use crate::sig_serde;
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{
    Address, B256, ChainId, ChainTime, ChannelId, Nonce, Signature, TokenAmount, U256, eip712,
    keccak256,
};

/// The per-sender message counter; the receiver answers every message with an
/// [`Ack`] carrying it.
pub type MessageId = u64;

/// A payment identifier chosen by the payer (for the payee's bookkeeping).
pub type PaymentId = u64;

/// The balance data of one participant in one channel, as signed in an EIP-712
/// `BalanceProof` (plus the chain id and TokenNetwork that make up its domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct BalanceProofData {
    /// Chain id of the EIP-712 domain.
    pub chain_id: ChainId,
    /// TokenNetwork contract (verifying contract of the EIP-712 domain).
    pub token_network: Address,
    /// Channel the proof is for.
    pub channel_id: ChannelId,
    /// Strictly increasing per signer and channel; 0 means "nothing sent".
    pub nonce: Nonce,
    /// Cumulative amount transferred by the signer; never decreases.
    pub transferred_amount: TokenAmount,
    /// Sum of the signer's pending locks.
    pub locked_amount: TokenAmount,
    /// `keccak256` of the packed pending locks, zero when there are none.
    pub locksroot: B256,
}

impl BalanceProofData {
    /// The EIP-712 struct the contract verifies for this data and `message_hash`.
    pub fn to_eip712(&self, message_hash: B256) -> eip712::BalanceProof {
        eip712::BalanceProof {
            channelId: self.channel_id.0,
            nonce: self.nonce.0,
            transferredAmount: self.transferred_amount.0,
            lockedAmount: self.locked_amount.0,
            locksroot: self.locksroot,
            messageHash: message_hash,
        }
    }

    /// Whether the balance fields (what the contract compares) are equal.
    pub fn same_balance(&self, other: &Self) -> bool {
        self.transferred_amount == other.transferred_amount
            && self.locked_amount == other.locked_amount
            && self.locksroot == other.locksroot
    }
}

/// A hash-locked amount: claimable by the receiver with the secret of `secrethash`
/// registered on chain no later than `expiration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HashLock {
    /// Chain time after which the lock can no longer be claimed.
    pub expiration: ChainTime,
    /// Locked amount.
    pub amount: TokenAmount,
    /// `keccak256(secret)`.
    pub secrethash: B256,
}

impl HashLock {
    /// The 96 packed bytes the contract hashes: `expiration || amount || secrethash`.
    pub fn packed(&self) -> [u8; 96] {
        self.to_eip712().encode_packed()
    }

    /// The primitives' form of this lock.
    pub fn to_eip712(&self) -> eip712::Lock {
        eip712::Lock {
            expiration: self.expiration.0,
            amount: self.amount.0,
            secrethash: self.secrethash,
        }
    }
}

/// `keccak256` of the packed locks in order, zero for none (the contract's locksroot).
pub fn locksroot<'a>(locks: impl IntoIterator<Item = &'a HashLock>) -> B256 {
    let mut packed = Vec::new();
    for lock in locks {
        packed.extend_from_slice(&lock.packed());
    }
    if packed.is_empty() {
        B256::ZERO
    } else {
        keccak256(&packed)
    }
}

/// `keccak256(secret)`, the hash a lock names.
pub fn secrethash(secret: &B256) -> B256 {
    keccak256(secret.as_slice())
}

/// A payment over one channel: the new balance proof raises `transferred_amount` by
/// the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectTransfer {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// Payer's payment identifier.
    pub payment_id: PaymentId,
    /// The sender's new balance proof.
    pub balance_proof: BalanceProofData,
    /// The payee (the channel partner).
    pub recipient: Address,
    /// EIP-712 `BalanceProof` signature of the sender.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// A hop of a mediated payment: the new balance proof adds `lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedTransfer {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// Initiator's payment identifier.
    pub payment_id: PaymentId,
    /// The sender's new balance proof (with `lock` added).
    pub balance_proof: BalanceProofData,
    /// The next hop (the channel partner).
    pub recipient: Address,
    /// The lock added by this transfer.
    pub lock: HashLock,
    /// Who started the payment.
    pub initiator: Address,
    /// Who is paid.
    pub target: Address,
    /// What the target must receive (fees are the difference to `lock.amount`).
    pub target_amount: TokenAmount,
    /// The hops after `recipient`, ending with `target`; empty when `recipient` is
    /// the target. At most [`crate::MAX_ROUTE_LEN`] entries.
    pub route: Vec<Address>,
    /// EIP-712 `BalanceProof` signature of the sender.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// The target asks the initiator for the secret of a payment it is ready to accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRequest {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// Initiator's payment identifier.
    pub payment_id: PaymentId,
    /// The lock's hash.
    pub secrethash: B256,
    /// Amount the target received in its lock.
    pub amount: TokenAmount,
    /// Expiration of the target's lock.
    pub expiration: ChainTime,
}

/// Reveals a secret: initiator to target, then backwards hop by hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealSecret {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// The secret (`keccak256(secret)` is the lock's hash).
    pub secret: B256,
}

/// Settles a lock off-chain: its amount moves from locked to transferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlock {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// Initiator's payment identifier.
    pub payment_id: PaymentId,
    /// The sender's new balance proof (lock removed, its amount transferred).
    pub balance_proof: BalanceProofData,
    /// The channel partner.
    pub recipient: Address,
    /// The secret of the lock removed.
    pub secret: B256,
    /// EIP-712 `BalanceProof` signature of the sender.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// Removes an expired lock off-chain: its amount returns to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockExpired {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// The sender's new balance proof (lock removed, transferred unchanged).
    pub balance_proof: BalanceProofData,
    /// The channel partner.
    pub recipient: Address,
    /// Hash of the expired lock.
    pub secrethash: B256,
    /// EIP-712 `BalanceProof` signature of the sender.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// The fields of an EIP-712 `WithdrawProof` plus its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawData {
    /// Chain id of the EIP-712 domain.
    pub chain_id: ChainId,
    /// TokenNetwork contract.
    pub token_network: Address,
    /// Channel.
    pub channel_id: ChannelId,
    /// Who withdraws.
    pub participant: Address,
    /// New total withdrawn by `participant`.
    pub total_withdraw: TokenAmount,
    /// The withdraw is valid on chain while `block.timestamp < expiration`.
    pub expiration: ChainTime,
}

impl WithdrawData {
    /// The EIP-712 struct.
    pub fn to_eip712(&self) -> eip712::WithdrawProof {
        eip712::WithdrawProof {
            channelId: self.channel_id.0,
            participant: self.participant,
            totalWithdraw: self.total_withdraw.0,
            expiration: U256::from(self.expiration.0),
        }
    }
}

/// A participant asks its partner to co-sign a withdraw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawRequest {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// What is withdrawn.
    pub withdraw: WithdrawData,
    /// The participant's EIP-712 `WithdrawProof` signature.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// The partner's co-signature of a withdraw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawConfirmation {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// What is withdrawn (as requested).
    pub withdraw: WithdrawData,
    /// The partner's EIP-712 `WithdrawProof` signature.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// The fields of an EIP-712 `CooperativeSettle` plus its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooperativeSettleData {
    /// Chain id of the EIP-712 domain.
    pub chain_id: ChainId,
    /// TokenNetwork contract.
    pub token_network: Address,
    /// Channel.
    pub channel_id: ChannelId,
    /// The channel's participant1.
    pub participant1: Address,
    /// Paid to participant1.
    pub balance1: TokenAmount,
    /// The channel's participant2.
    pub participant2: Address,
    /// Paid to participant2.
    pub balance2: TokenAmount,
}

impl CooperativeSettleData {
    /// The EIP-712 struct.
    pub fn to_eip712(&self) -> eip712::CooperativeSettle {
        eip712::CooperativeSettle {
            channelId: self.channel_id.0,
            participant1: self.participant1,
            balance1: self.balance1.0,
            participant2: self.participant2,
            balance2: self.balance2.0,
        }
    }
}

/// A participant proposes to settle the channel now with these balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooperativeSettleRequest {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// The proposed settlement.
    pub settle: CooperativeSettleData,
    /// The sender's EIP-712 `CooperativeSettle` signature.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// The partner's co-signature of a cooperative settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooperativeSettleConfirmation {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// The settlement (as requested).
    pub settle: CooperativeSettleData,
    /// The sender's EIP-712 `CooperativeSettle` signature.
    #[serde(with = "sig_serde")]
    pub signature: Signature,
}

/// Why a hop refused a mediated transfer (sent back towards the initiator so it can stop
/// waiting; the lock itself still leaves the channel only by expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRefused {
    /// Sender's message counter.
    pub message_id: MessageId,
    /// Initiator's payment identifier.
    pub payment_id: PaymentId,
    /// The lock's hash.
    pub secrethash: B256,
    /// Reason code (see the engine's documentation).
    pub reason: u8,
}

/// Acknowledges that a message was received and persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged message's id (the sender's counter).
    pub message_id: MessageId,
}

/// Every off-chain message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// See [`DirectTransfer`].
    DirectTransfer(DirectTransfer),
    /// See [`LockedTransfer`].
    LockedTransfer(LockedTransfer),
    /// See [`SecretRequest`].
    SecretRequest(SecretRequest),
    /// See [`RevealSecret`].
    RevealSecret(RevealSecret),
    /// See [`Unlock`].
    Unlock(Unlock),
    /// See [`LockExpired`].
    LockExpired(LockExpired),
    /// See [`WithdrawRequest`].
    WithdrawRequest(WithdrawRequest),
    /// See [`WithdrawConfirmation`].
    WithdrawConfirmation(WithdrawConfirmation),
    /// See [`CooperativeSettleRequest`].
    CooperativeSettleRequest(CooperativeSettleRequest),
    /// See [`CooperativeSettleConfirmation`].
    CooperativeSettleConfirmation(CooperativeSettleConfirmation),
    /// See [`TransferRefused`].
    TransferRefused(TransferRefused),
    /// See [`Ack`].
    Ack(Ack),
}

impl Message {
    /// The sender's message id (for acks: the id acknowledged).
    pub fn message_id(&self) -> MessageId {
        match self {
            Message::DirectTransfer(m) => m.message_id,
            Message::LockedTransfer(m) => m.message_id,
            Message::SecretRequest(m) => m.message_id,
            Message::RevealSecret(m) => m.message_id,
            Message::Unlock(m) => m.message_id,
            Message::LockExpired(m) => m.message_id,
            Message::WithdrawRequest(m) => m.message_id,
            Message::WithdrawConfirmation(m) => m.message_id,
            Message::CooperativeSettleRequest(m) => m.message_id,
            Message::CooperativeSettleConfirmation(m) => m.message_id,
            Message::TransferRefused(m) => m.message_id,
            Message::Ack(m) => m.message_id,
        }
    }

    /// The balance proof and its signature, for the messages that carry one.
    pub fn balance_proof(&self) -> Option<(&BalanceProofData, &Signature)> {
        match self {
            Message::DirectTransfer(m) => Some((&m.balance_proof, &m.signature)),
            Message::LockedTransfer(m) => Some((&m.balance_proof, &m.signature)),
            Message::Unlock(m) => Some((&m.balance_proof, &m.signature)),
            Message::LockExpired(m) => Some((&m.balance_proof, &m.signature)),
            _ => None,
        }
    }

    /// A short name of the message type (for logs and reasons).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::DirectTransfer(_) => "DirectTransfer",
            Message::LockedTransfer(_) => "LockedTransfer",
            Message::SecretRequest(_) => "SecretRequest",
            Message::RevealSecret(_) => "RevealSecret",
            Message::Unlock(_) => "Unlock",
            Message::LockExpired(_) => "LockExpired",
            Message::WithdrawRequest(_) => "WithdrawRequest",
            Message::WithdrawConfirmation(_) => "WithdrawConfirmation",
            Message::CooperativeSettleRequest(_) => "CooperativeSettleRequest",
            Message::CooperativeSettleConfirmation(_) => "CooperativeSettleConfirmation",
            Message::TransferRefused(_) => "TransferRefused",
            Message::Ack(_) => "Ack",
        }
    }
}
