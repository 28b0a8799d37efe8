//! The canonical binary encoding of [`Message`].
//!
//! Layout: `version (1 byte) || type (1 byte) || fields`, every field at a fixed width
//! (big-endian integers: `u64` 8 bytes, amounts and channel ids 32 bytes; addresses 20
//! bytes; hashes 32 bytes; a route is a 1-byte count then its addresses), and for signed
//! messages the 65-byte signature `r || s || v` (`v` 27 or 28) last. Every message has
//! exactly one encoding: [`decode`] accepts only canonical bytes, so
//! `encode(decode(b)) == b` whenever `decode(b)` succeeds.
//!
//! The message hash of a signed message is `keccak256` of its encoding without the
//! trailing signature; of any other message, of its whole encoding.

use crate::WireError;
use crate::messages::*;
use smartmesh_primitives::{
    Address, B256, ChainId, ChainTime, ChannelId, Nonce, Signature, TokenAmount, U256, keccak256,
};

/// The codec version written as the first byte of every message.
pub const WIRE_VERSION: u8 = 1;

/// The longest route a [`LockedTransfer`] may carry.
pub const MAX_ROUTE_LEN: usize = 32;

/// Length of an encoded signature.
pub const SIGNATURE_LEN: usize = 65;

mod tag {
    pub const DIRECT_TRANSFER: u8 = 1;
    pub const LOCKED_TRANSFER: u8 = 2;
    pub const SECRET_REQUEST: u8 = 3;
    pub const REVEAL_SECRET: u8 = 4;
    pub const UNLOCK: u8 = 5;
    pub const LOCK_EXPIRED: u8 = 6;
    pub const WITHDRAW_REQUEST: u8 = 7;
    pub const WITHDRAW_CONFIRMATION: u8 = 8;
    pub const COOP_SETTLE_REQUEST: u8 = 9;
    pub const COOP_SETTLE_CONFIRMATION: u8 = 10;
    pub const TRANSFER_REFUSED: u8 = 11;
    pub const ACK: u8 = 12;
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u256(&mut self, v: &U256) {
        self.0.extend_from_slice(&v.to_be_bytes::<32>());
    }
    fn amount(&mut self, v: &TokenAmount) {
        self.u256(&v.0);
    }
    fn address(&mut self, v: &Address) {
        self.0.extend_from_slice(v.as_slice());
    }
    fn b256(&mut self, v: &B256) {
        self.0.extend_from_slice(v.as_slice());
    }
    fn balance_proof(&mut self, bp: &BalanceProofData) {
        self.u64(bp.chain_id.0);
        self.address(&bp.token_network);
        self.u256(&bp.channel_id.0);
        self.u64(bp.nonce.0);
        self.amount(&bp.transferred_amount);
        self.amount(&bp.locked_amount);
        self.b256(&bp.locksroot);
    }
    fn lock(&mut self, lock: &HashLock) {
        self.u64(lock.expiration.0);
        self.amount(&lock.amount);
        self.b256(&lock.secrethash);
    }
    fn withdraw(&mut self, w: &WithdrawData) {
        self.u64(w.chain_id.0);
        self.address(&w.token_network);
        self.u256(&w.channel_id.0);
        self.address(&w.participant);
        self.amount(&w.total_withdraw);
        self.u64(w.expiration.0);
    }
    fn coop(&mut self, c: &CooperativeSettleData) {
        self.u64(c.chain_id.0);
        self.address(&c.token_network);
        self.u256(&c.channel_id.0);
        self.address(&c.participant1);
        self.amount(&c.balance1);
        self.address(&c.participant2);
        self.amount(&c.balance2);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        match end.and_then(|end| self.bytes.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(WireError::Truncated {
                offset: self.pos,
                needed: n.saturating_sub(self.bytes.len().saturating_sub(self.pos)),
            }),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }
    fn u256(&mut self) -> Result<U256, WireError> {
        Ok(U256::from_be_bytes(self.array::<32>()?))
    }
    fn amount(&mut self) -> Result<TokenAmount, WireError> {
        self.u256().map(TokenAmount)
    }
    fn address(&mut self) -> Result<Address, WireError> {
        Ok(Address::from(self.array::<20>()?))
    }
    fn b256(&mut self) -> Result<B256, WireError> {
        Ok(B256::from(self.array::<32>()?))
    }
    fn signature(&mut self) -> Result<Signature, WireError> {
        let bytes = self.array::<SIGNATURE_LEN>()?;
        match bytes[SIGNATURE_LEN - 1] {
            27 | 28 => Ok(Signature(bytes)),
            other => Err(WireError::InvalidRecoveryByte(other)),
        }
    }
    fn balance_proof(&mut self) -> Result<BalanceProofData, WireError> {
        Ok(BalanceProofData {
            chain_id: ChainId(self.u64()?),
            token_network: self.address()?,
            channel_id: ChannelId(self.u256()?),
            nonce: Nonce(self.u64()?),
            transferred_amount: self.amount()?,
            locked_amount: self.amount()?,
            locksroot: self.b256()?,
        })
    }
    fn lock(&mut self) -> Result<HashLock, WireError> {
        Ok(HashLock {
            expiration: ChainTime(self.u64()?),
            amount: self.amount()?,
            secrethash: self.b256()?,
        })
    }
    fn withdraw(&mut self) -> Result<WithdrawData, WireError> {
        Ok(WithdrawData {
            chain_id: ChainId(self.u64()?),
            token_network: self.address()?,
            channel_id: ChannelId(self.u256()?),
            participant: self.address()?,
            total_withdraw: self.amount()?,
            expiration: ChainTime(self.u64()?),
        })
    }
    fn coop(&mut self) -> Result<CooperativeSettleData, WireError> {
        Ok(CooperativeSettleData {
            chain_id: ChainId(self.u64()?),
            token_network: self.address()?,
            channel_id: ChannelId(self.u256()?),
            participant1: self.address()?,
            balance1: self.amount()?,
            participant2: self.address()?,
            balance2: self.amount()?,
        })
    }
    fn route(&mut self) -> Result<Vec<Address>, WireError> {
        let len = usize::from(self.u8()?);
        if len > MAX_ROUTE_LEN {
            return Err(WireError::RouteTooLong(len));
        }
        (0..len).map(|_| self.address()).collect()
    }
}

impl Message {
    /// Appends the encoding without the trailing signature (the bytes the message
    /// hash covers) to `out`.
    pub fn encode_unsigned_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.u8(WIRE_VERSION);
        match self {
            Message::DirectTransfer(m) => {
                w.u8(tag::DIRECT_TRANSFER);
                w.u64(m.message_id);
                w.u64(m.payment_id);
                w.balance_proof(&m.balance_proof);
                w.address(&m.recipient);
            }
            Message::LockedTransfer(m) => {
                w.u8(tag::LOCKED_TRANSFER);
                w.u64(m.message_id);
                w.u64(m.payment_id);
                w.balance_proof(&m.balance_proof);
                w.address(&m.recipient);
                w.lock(&m.lock);
                w.address(&m.initiator);
                w.address(&m.target);
                w.amount(&m.target_amount);
                // The codec refuses to write what it could not read back: a longer
                // route is cut (the engine never builds one).
                let hops = &m.route[..m.route.len().min(MAX_ROUTE_LEN)];
                w.u8(hops.len() as u8);
                for hop in hops {
                    w.address(hop);
                }
            }
            Message::SecretRequest(m) => {
                w.u8(tag::SECRET_REQUEST);
                w.u64(m.message_id);
                w.u64(m.payment_id);
                w.b256(&m.secrethash);
                w.amount(&m.amount);
                w.u64(m.expiration.0);
            }
            Message::RevealSecret(m) => {
                w.u8(tag::REVEAL_SECRET);
                w.u64(m.message_id);
                w.b256(&m.secret);
            }
            Message::Unlock(m) => {
                w.u8(tag::UNLOCK);
                w.u64(m.message_id);
                w.u64(m.payment_id);
                w.balance_proof(&m.balance_proof);
                w.address(&m.recipient);
                w.b256(&m.secret);
            }
            Message::LockExpired(m) => {
                w.u8(tag::LOCK_EXPIRED);
                w.u64(m.message_id);
                w.balance_proof(&m.balance_proof);
                w.address(&m.recipient);
                w.b256(&m.secrethash);
            }
            Message::WithdrawRequest(m) => {
                w.u8(tag::WITHDRAW_REQUEST);
                w.u64(m.message_id);
                w.withdraw(&m.withdraw);
            }
            Message::WithdrawConfirmation(m) => {
                w.u8(tag::WITHDRAW_CONFIRMATION);
                w.u64(m.message_id);
                w.withdraw(&m.withdraw);
            }
            Message::CooperativeSettleRequest(m) => {
                w.u8(tag::COOP_SETTLE_REQUEST);
                w.u64(m.message_id);
                w.coop(&m.settle);
            }
            Message::CooperativeSettleConfirmation(m) => {
                w.u8(tag::COOP_SETTLE_CONFIRMATION);
                w.u64(m.message_id);
                w.coop(&m.settle);
            }
            Message::TransferRefused(m) => {
                w.u8(tag::TRANSFER_REFUSED);
                w.u64(m.message_id);
                w.u64(m.payment_id);
                w.b256(&m.secrethash);
                w.u8(m.reason);
            }
            Message::Ack(m) => {
                w.u8(tag::ACK);
                w.u64(m.message_id);
            }
        }
    }

    /// The signature that ends the encoding, for signed messages.
    pub fn signature(&self) -> Option<&Signature> {
        match self {
            Message::DirectTransfer(m) => Some(&m.signature),
            Message::LockedTransfer(m) => Some(&m.signature),
            Message::Unlock(m) => Some(&m.signature),
            Message::LockExpired(m) => Some(&m.signature),
            Message::WithdrawRequest(m) => Some(&m.signature),
            Message::WithdrawConfirmation(m) => Some(&m.signature),
            Message::CooperativeSettleRequest(m) => Some(&m.signature),
            Message::CooperativeSettleConfirmation(m) => Some(&m.signature),
            Message::SecretRequest(_)
            | Message::RevealSecret(_)
            | Message::TransferRefused(_)
            | Message::Ack(_) => None,
        }
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_unsigned_into(out);
        if let Some(sig) = self.signature() {
            out.extend_from_slice(&sig.0);
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            Message::Ack(_) => 10,
            Message::LockedTransfer(m) => 400 + 20 * m.route.len(),
            _ => 320,
        }
    }

    /// `keccak256` of the encoding without the trailing signature: the `messageHash` a
    /// balance proof signs, binding every field of the message.
    pub fn message_hash(&self) -> B256 {
        let mut buf = Vec::with_capacity(self.encoded_len_hint());
        self.encode_unsigned_into(&mut buf);
        keccak256(&buf)
    }
}

/// Decodes one message from exactly `bytes`. Never panics; accepts canonical encodings
/// only.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8().map_err(|_| WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let message = match r.u8()? {
        tag::DIRECT_TRANSFER => Message::DirectTransfer(DirectTransfer {
            message_id: r.u64()?,
            payment_id: r.u64()?,
            balance_proof: r.balance_proof()?,
            recipient: r.address()?,
            signature: r.signature()?,
        }),
        tag::LOCKED_TRANSFER => Message::LockedTransfer(LockedTransfer {
            message_id: r.u64()?,
            payment_id: r.u64()?,
            balance_proof: r.balance_proof()?,
            recipient: r.address()?,
            lock: r.lock()?,
            initiator: r.address()?,
            target: r.address()?,
            target_amount: r.amount()?,
            route: r.route()?,
            signature: r.signature()?,
        }),
        tag::SECRET_REQUEST => Message::SecretRequest(SecretRequest {
            message_id: r.u64()?,
            payment_id: r.u64()?,
            secrethash: r.b256()?,
            amount: r.amount()?,
            expiration: ChainTime(r.u64()?),
        }),
        tag::REVEAL_SECRET => Message::RevealSecret(RevealSecret {
            message_id: r.u64()?,
            secret: r.b256()?,
        }),
        tag::UNLOCK => Message::Unlock(Unlock {
            message_id: r.u64()?,
            payment_id: r.u64()?,
            balance_proof: r.balance_proof()?,
            recipient: r.address()?,
            secret: r.b256()?,
            signature: r.signature()?,
        }),
        tag::LOCK_EXPIRED => Message::LockExpired(LockExpired {
            message_id: r.u64()?,
            balance_proof: r.balance_proof()?,
            recipient: r.address()?,
            secrethash: r.b256()?,
            signature: r.signature()?,
        }),
        tag::WITHDRAW_REQUEST => Message::WithdrawRequest(WithdrawRequest {
            message_id: r.u64()?,
            withdraw: r.withdraw()?,
            signature: r.signature()?,
        }),
        tag::WITHDRAW_CONFIRMATION => Message::WithdrawConfirmation(WithdrawConfirmation {
            message_id: r.u64()?,
            withdraw: r.withdraw()?,
            signature: r.signature()?,
        }),
        tag::COOP_SETTLE_REQUEST => Message::CooperativeSettleRequest(CooperativeSettleRequest {
            message_id: r.u64()?,
            settle: r.coop()?,
            signature: r.signature()?,
        }),
        tag::COOP_SETTLE_CONFIRMATION => {
            Message::CooperativeSettleConfirmation(CooperativeSettleConfirmation {
                message_id: r.u64()?,
                settle: r.coop()?,
                signature: r.signature()?,
            })
        }
        tag::TRANSFER_REFUSED => Message::TransferRefused(TransferRefused {
            message_id: r.u64()?,
            payment_id: r.u64()?,
            secrethash: r.b256()?,
            reason: r.u8()?,
        }),
        tag::ACK => Message::Ack(Ack {
            message_id: r.u64()?,
        }),
        other => return Err(WireError::UnknownMessageType(other)),
    };
    let rest = bytes.len().saturating_sub(r.pos);
    if rest != 0 {
        return Err(WireError::TrailingBytes(rest));
    }
    Ok(message)
}

/// The fuzz entry point: decodes arbitrary bytes and, when they decode, checks that the
/// encoding is canonical (re-encoding gives the same bytes). Panics only if the codec
/// itself is broken, which is what a fuzzer looks for.
pub fn fuzz_decode(bytes: &[u8]) {
    if let Ok(message) = decode(bytes) {
        assert_eq!(message.encode(), bytes, "non-canonical encoding accepted");
        let _ = message.message_hash();
    }
}
