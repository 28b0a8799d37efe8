//! EIP-712 typed data of everything signed off-chain. The type strings are the ones in
//! `contracts/README.md`; the contracts hash the same structs, so a digest computed here
//! is the digest the contract verifies.

use crate::{Address, B256, ChainId, PrivateKey, Signature, U256, keccak256};
use alloy::sol_types::{Eip712Domain, SolStruct};
use std::borrow::Cow;

alloy::sol! {
    /// One participant's balance proof for one channel.
    #[derive(Debug, PartialEq, Eq)]
    struct BalanceProof {
        uint256 channelId;
        uint64 nonce;
        uint256 transferredAmount;
        uint256 lockedAmount;
        bytes32 locksroot;
        bytes32 messageHash;
    }

    /// The non-closer's permission for a delegate to submit the closer's proof.
    #[derive(Debug, PartialEq, Eq)]
    struct UpdateAuthorization {
        uint256 channelId;
        address closer;
        bytes32 balanceProofDigest;
    }

    /// A co-signed withdraw of a participant's total.
    #[derive(Debug, PartialEq, Eq)]
    struct WithdrawProof {
        uint256 channelId;
        address participant;
        uint256 totalWithdraw;
        uint256 expiration;
    }

    /// Both participants' agreement on final balances.
    #[derive(Debug, PartialEq, Eq)]
    struct CooperativeSettle {
        uint256 channelId;
        address participant1;
        uint256 balance1;
        address participant2;
        uint256 balance2;
    }

    /// A participant's permission for an agent to deposit its tokens (gasless deposit).
    #[derive(Debug, PartialEq, Eq)]
    struct DepositAuthorization {
        uint256 channelId;
        address participant;
        uint256 totalDeposit;
        address agent;
        uint256 fee;
        uint256 deadline;
    }

    /// The signed authorized payment agent of the SMT token.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithFee {
        address from;
        address to;
        uint256 value;
        uint256 fee;
        address agent;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    /// Cancels an unused `TransferWithFee` nonce.
    #[derive(Debug, PartialEq, Eq)]
    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }

    /// EIP-2612 permit.
    #[derive(Debug, PartialEq, Eq)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

/// Name in the TokenNetwork's EIP-712 domain.
pub const TOKEN_NETWORK_NAME: &str = "SmartMesh TokenNetwork";
/// Name in the SMT token's EIP-712 domain.
pub const TOKEN_NAME: &str = "SmartMesh Token";
/// Version in both domains.
pub const DOMAIN_VERSION: &str = "1";

fn domain(name: &'static str, chain_id: ChainId, contract: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(Cow::Borrowed(name)),
        Some(Cow::Borrowed(DOMAIN_VERSION)),
        Some(U256::from(chain_id.0)),
        Some(contract),
        None,
    )
}

/// The domain of one TokenNetwork on one chain.
pub fn token_network_domain(chain_id: ChainId, token_network: Address) -> Eip712Domain {
    domain(TOKEN_NETWORK_NAME, chain_id, token_network)
}

/// The domain of the SMT token on one chain.
pub fn token_domain(chain_id: ChainId, token: Address) -> Eip712Domain {
    domain(TOKEN_NAME, chain_id, token)
}

/// The digest that is signed for `value` in `domain`.
pub fn digest<T: SolStruct>(value: &T, domain: &Eip712Domain) -> B256 {
    value.eip712_signing_hash(domain)
}

/// Signs `value` as EIP-712 typed data in `domain`.
pub fn sign<T: SolStruct>(key: &PrivateKey, value: &T, domain: &Eip712Domain) -> Signature {
    key.sign_digest(&digest(value, domain))
}

/// A hash-locked amount: claimable by the receiver with the secret of `secrethash`
/// registered on chain no later than `expiration` (chain time, seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lock {
    /// Chain time after which the lock can no longer be claimed.
    pub expiration: u64,
    /// Locked amount.
    pub amount: U256,
    /// `keccak256(secret)`.
    pub secrethash: B256,
}

impl Lock {
    /// The 96-byte packed form the contract hashes: `expiration || amount || secrethash`.
    pub fn encode_packed(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..32].copy_from_slice(&U256::from(self.expiration).to_be_bytes::<32>());
        out[32..64].copy_from_slice(&self.amount.to_be_bytes::<32>());
        out[64..].copy_from_slice(self.secrethash.as_slice());
        out
    }
}

/// The packed concatenation of `locks`, as passed to `unlock`.
pub fn encode_locks(locks: &[Lock]) -> Vec<u8> {
    locks.iter().flat_map(|lock| lock.encode_packed()).collect()
}

/// `keccak256` of the packed locks, or zero when there are none.
pub fn locksroot(locks: &[Lock]) -> B256 {
    if locks.is_empty() {
        B256::ZERO
    } else {
        keccak256(encode_locks(locks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover_signer;
    use alloy::signers::{SignerSync, local::PrivateKeySigner};

    #[test]
    fn type_strings_match_the_contract_spec() {
        assert_eq!(
            BalanceProof::eip712_encode_type(),
            "BalanceProof(uint256 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksroot,bytes32 messageHash)"
        );
        assert_eq!(
            TransferWithFee::eip712_encode_type(),
            "TransferWithFee(address from,address to,uint256 value,uint256 fee,address agent,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
        );
        assert_eq!(
            DepositAuthorization::eip712_encode_type(),
            "DepositAuthorization(uint256 channelId,address participant,uint256 totalDeposit,address agent,uint256 fee,uint256 deadline)"
        );
    }

    #[test]
    fn typed_signature_matches_alloy_signer_and_binds_the_domain() {
        let hex_key = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let key = PrivateKey::from_hex(hex_key).expect("key");
        let wallet: PrivateKeySigner = hex_key.parse().expect("key");
        let proof = BalanceProof {
            channelId: U256::from(7),
            nonce: 3,
            transferredAmount: U256::from(1000),
            lockedAmount: U256::ZERO,
            locksroot: B256::ZERO,
            messageHash: keccak256(b"msg"),
        };
        let contract = Address::repeat_byte(0x11);
        let dom = token_network_domain(ChainId(1337), contract);
        let ours = sign(&key, &proof, &dom);
        let theirs = wallet
            .sign_hash_sync(&proof.eip712_signing_hash(&dom))
            .expect("signs");
        assert_eq!(ours.0.to_vec(), theirs.as_bytes().to_vec());
        assert_eq!(
            recover_signer(&digest(&proof, &dom), &ours),
            Ok(key.address())
        );
        // Another chain or contract gives another digest: the signature is dead there.
        let other_chain = token_network_domain(ChainId(1), contract);
        let other_contract = token_network_domain(ChainId(1337), Address::repeat_byte(0x22));
        assert_ne!(digest(&proof, &dom), digest(&proof, &other_chain));
        assert_ne!(digest(&proof, &dom), digest(&proof, &other_contract));
        assert_ne!(
            recover_signer(&digest(&proof, &other_chain), &ours),
            Ok(key.address())
        );
    }

    #[test]
    fn locksroot_of_nothing_is_zero() {
        assert_eq!(locksroot(&[]), B256::ZERO);
        let lock = Lock {
            expiration: 5,
            amount: U256::from(9),
            secrethash: B256::repeat_byte(1),
        };
        assert_eq!(lock.encode_packed().len(), 96);
        assert_eq!(locksroot(&[lock]), keccak256(lock.encode_packed()));
    }
}
