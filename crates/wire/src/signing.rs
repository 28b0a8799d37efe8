//! EIP-712 signing and verification of the signed messages, with the domain separator
//! computed once (the balance-proof digest is on the hot path of every transfer).

use crate::messages::*;
use smartmesh_primitives::{
    Address, B256, ChainId, PrimitivesError, PrivateKey, Signature, eip712, keccak256,
    recover_signer,
};

/// The EIP-712 type string of a balance proof (as in `contracts/README.md`).
pub const BALANCE_PROOF_TYPE: &str = "BalanceProof(uint256 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksroot,bytes32 messageHash)";

/// One TokenNetwork's EIP-712 domain on one chain, with its separator precomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    /// Chain id.
    pub chain_id: ChainId,
    /// TokenNetwork contract (the verifying contract).
    pub token_network: Address,
    separator: B256,
    balance_proof_typehash: B256,
}

impl Domain {
    /// The domain of `token_network` on `chain_id`.
    pub fn new(chain_id: ChainId, token_network: Address) -> Self {
        Self {
            chain_id,
            token_network,
            separator: eip712::token_network_domain(chain_id, token_network).separator(),
            balance_proof_typehash: keccak256(BALANCE_PROOF_TYPE.as_bytes()),
        }
    }

    /// The EIP-712 domain separator.
    pub fn separator(&self) -> B256 {
        self.separator
    }

    /// The digest the contract verifies for a balance proof: equal to
    /// `eip712::digest(&bp.to_eip712(message_hash), &token_network_domain(..))`.
    pub fn balance_proof_digest(&self, bp: &BalanceProofData, message_hash: &B256) -> B256 {
        let mut words = [0u8; 7 * 32];
        words[..32].copy_from_slice(self.balance_proof_typehash.as_slice());
        words[32..64].copy_from_slice(&bp.channel_id.0.to_be_bytes::<32>());
        words[88..96].copy_from_slice(&bp.nonce.0.to_be_bytes());
        words[96..128].copy_from_slice(&bp.transferred_amount.0.to_be_bytes::<32>());
        words[128..160].copy_from_slice(&bp.locked_amount.0.to_be_bytes::<32>());
        words[160..192].copy_from_slice(bp.locksroot.as_slice());
        words[192..224].copy_from_slice(message_hash.as_slice());
        let struct_hash = keccak256(words);
        let mut outer = [0u8; 66];
        outer[0] = 0x19;
        outer[1] = 0x01;
        outer[2..34].copy_from_slice(self.separator.as_slice());
        outer[34..66].copy_from_slice(struct_hash.as_slice());
        keccak256(outer)
    }

    /// Whether data names this domain (chain id and TokenNetwork).
    pub fn matches(&self, chain_id: ChainId, token_network: Address) -> bool {
        self.chain_id == chain_id && self.token_network == token_network
    }

    /// The digest of a `WithdrawProof` in this domain.
    pub fn withdraw_digest(&self, w: &WithdrawData) -> B256 {
        eip712::digest(
            &w.to_eip712(),
            &eip712::token_network_domain(self.chain_id, self.token_network),
        )
    }

    /// The digest of a `CooperativeSettle` in this domain.
    pub fn cooperative_settle_digest(&self, c: &CooperativeSettleData) -> B256 {
        eip712::digest(
            &c.to_eip712(),
            &eip712::token_network_domain(self.chain_id, self.token_network),
        )
    }
}

/// What a verified signed message proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The recovered signer.
    pub signer: Address,
    /// The message hash the signature covers (for balance-proof messages; zero otherwise).
    pub message_hash: B256,
}

impl Message {
    /// Signs the message in place with `key` (no-op for unsigned messages) and returns the
    /// message hash (what a balance proof's `messageHash` is). Deterministic (RFC 6979).
    pub fn sign(&mut self, key: &PrivateKey, domain: &Domain) -> B256 {
        let message_hash = self.message_hash();
        let digest = match self.balance_proof() {
            Some((bp, _)) => domain.balance_proof_digest(bp, &message_hash),
            None => match self.other_digest(domain) {
                Some(digest) => digest,
                None => return message_hash,
            },
        };
        let sig = key.sign_digest(&digest);
        if let Some(slot) = self.signature_mut() {
            *slot = sig;
        }
        message_hash
    }

    /// Recovers the signer of a signed message (`None` for unsigned ones). Rejects
    /// high-s signatures and the zero address, as the contracts do.
    pub fn verify(&self, domain: &Domain) -> Option<Result<Verified, PrimitivesError>> {
        let message_hash = self.message_hash();
        let (digest, sig) = match self.balance_proof() {
            Some((bp, sig)) => (domain.balance_proof_digest(bp, &message_hash), sig),
            None => (self.other_digest(domain)?, self.signature()?),
        };
        Some(recover_signer(&digest, sig).map(|signer| Verified {
            signer,
            message_hash,
        }))
    }

    fn other_digest(&self, domain: &Domain) -> Option<B256> {
        match self {
            Message::WithdrawRequest(m) => Some(domain.withdraw_digest(&m.withdraw)),
            Message::WithdrawConfirmation(m) => Some(domain.withdraw_digest(&m.withdraw)),
            Message::CooperativeSettleRequest(m) => {
                Some(domain.cooperative_settle_digest(&m.settle))
            }
            Message::CooperativeSettleConfirmation(m) => {
                Some(domain.cooperative_settle_digest(&m.settle))
            }
            _ => None,
        }
    }

    fn signature_mut(&mut self) -> Option<&mut Signature> {
        match self {
            Message::DirectTransfer(m) => Some(&mut m.signature),
            Message::LockedTransfer(m) => Some(&mut m.signature),
            Message::Unlock(m) => Some(&mut m.signature),
            Message::LockExpired(m) => Some(&mut m.signature),
            Message::WithdrawRequest(m) => Some(&mut m.signature),
            Message::WithdrawConfirmation(m) => Some(&mut m.signature),
            Message::CooperativeSettleRequest(m) => Some(&mut m.signature),
            Message::CooperativeSettleConfirmation(m) => Some(&mut m.signature),
            _ => None,
        }
    }
}

/// A placeholder signature (all zero, `v` 27) for a message about to be signed.
pub const EMPTY_SIGNATURE: Signature = {
    let mut bytes = [0u8; 65];
    bytes[64] = 27;
    Signature(bytes)
};
