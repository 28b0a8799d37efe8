//! secp256k1 keys and 65-byte Ethereum signatures, on libsecp256k1 (the hot path of
//! every balance proof; alloy's pure-Rust recovery is several times slower).

use crate::PrimitivesError;
use alloy::primitives::{Address, B256, U256, keccak256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};
use std::fmt;

/// Half the secp256k1 group order: signatures with a larger `s` are malleable copies.
const HALF_ORDER: U256 = U256::from_be_bytes([
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

/// A node's secp256k1 private key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct PrivateKey {
    secret: SecretKey,
    address: Address,
}

impl PrivateKey {
    /// A key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, PrimitivesError> {
        let secret =
            SecretKey::from_byte_array(*bytes).map_err(|_| PrimitivesError::InvalidPrivateKey)?;
        let public = PublicKey::from_secret_key_global(&secret);
        Ok(Self {
            secret,
            address: address_of(&public),
        })
    }

    /// A key from hex, with or without `0x`.
    pub fn from_hex(hex_key: &str) -> Result<Self, PrimitivesError> {
        let raw = hex_key.trim().trim_start_matches("0x");
        let mut bytes = [0u8; 32];
        alloy::hex::decode_to_slice(raw, &mut bytes)
            .map_err(|_| PrimitivesError::InvalidPrivateKey)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        loop {
            let bytes: [u8; 32] = rand_bytes();
            if let Ok(key) = Self::from_bytes(&bytes) {
                return key;
            }
        }
    }

    /// The secret bytes (for key stores and chain signers only).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.secret_bytes()
    }

    /// The Ethereum address of this key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest (already EIP-712 or EIP-191 hashed). Always low-s.
    pub fn sign_digest(&self, digest: &B256) -> Signature {
        let msg = Message::from_digest(digest.0);
        let sig = SECP256K1.sign_ecdsa_recoverable(msg, &self.secret);
        let (recid, compact) = sig.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&compact);
        // i32 of a RecoveryId is 0..=3; Ethereum's v is 27 + parity.
        out[64] = 27 + i32::from(recid) as u8;
        Signature(out)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.address)
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // The OS generator failing is unrecoverable for key generation; report loudly.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("operating system random generator failed");
    bytes
}

fn address_of(public: &PublicKey) -> Address {
    let uncompressed = public.serialize_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

/// A 65-byte Ethereum signature `r || s || v` with `v` in {27, 28}.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 65]);

impl Signature {
    /// Parses 65 bytes; accepts `v` as 0/1 or 27/28 and normalises it to 27/28.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, PrimitivesError> {
        let array: [u8; 65] = bytes
            .try_into()
            .map_err(|_| PrimitivesError::SignatureLength(bytes.len()))?;
        let mut sig = Self(array);
        sig.0[64] = match array[64] {
            0 | 1 => array[64] + 27,
            27 | 28 => array[64],
            other => return Err(PrimitivesError::InvalidRecoveryByte(other)),
        };
        Ok(sig)
    }

    /// The bytes, as the contracts expect them.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// `s` as an integer.
    pub fn s(&self) -> U256 {
        U256::from_be_slice(&self.0[32..64])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{})", alloy::hex::encode(self.0))
    }
}

/// Recovers the signer of `digest`. Rejects high-s, bad `v` and the zero address,
/// as the contracts do, so nothing verified here can be refused on chain.
pub fn recover_signer(digest: &B256, signature: &Signature) -> Result<Address, PrimitivesError> {
    if signature.s() > HALF_ORDER {
        return Err(PrimitivesError::HighS);
    }
    let v = signature.0[64];
    let parity = match v {
        27 | 28 => i32::from(v - 27),
        other => return Err(PrimitivesError::InvalidRecoveryByte(other)),
    };
    let recid =
        RecoveryId::try_from(parity).map_err(|_| PrimitivesError::InvalidRecoveryByte(v))?;
    let sig = RecoverableSignature::from_compact(&signature.0[..64], recid)
        .map_err(|_| PrimitivesError::InvalidSignature)?;
    let public = SECP256K1
        .recover_ecdsa(Message::from_digest(digest.0), &sig)
        .map_err(|_| PrimitivesError::InvalidSignature)?;
    let address = address_of(&public);
    if address == Address::ZERO {
        return Err(PrimitivesError::InvalidSignature);
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{SignerSync, local::PrivateKeySigner};

    /// The first development account of the well-known test mnemonic.
    const DEV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn address_matches_known_dev_account() {
        let key = PrivateKey::from_hex(DEV_KEY).expect("valid key");
        assert_eq!(
            key.address(),
            crate::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
    }

    #[test]
    fn signature_is_byte_identical_to_alloy_signer() {
        let key = PrivateKey::from_hex(DEV_KEY).expect("valid key");
        let alloy_signer: PrivateKeySigner = DEV_KEY.parse().expect("valid key");
        for i in 0u8..20 {
            let digest = keccak256([i; 7]);
            let ours = key.sign_digest(&digest);
            let theirs = alloy_signer.sign_hash_sync(&digest).expect("signs");
            assert_eq!(ours.0.to_vec(), theirs.as_bytes().to_vec(), "digest {i}");
            assert_eq!(recover_signer(&digest, &ours), Ok(key.address()));
        }
    }

    #[test]
    fn high_s_is_rejected() {
        let key = PrivateKey::random();
        let digest = keccak256(b"high s");
        let sig = key.sign_digest(&digest);
        // The malleable twin: s' = n - s, v flipped. It recovers the same key in raw ECDSA.
        let n = HALF_ORDER * U256::from(2) + U256::from(1);
        let s_twin = n - sig.s();
        let mut twin = sig.0;
        twin[32..64].copy_from_slice(&s_twin.to_be_bytes::<32>());
        twin[64] = if sig.0[64] == 27 { 28 } else { 27 };
        assert_eq!(
            recover_signer(&digest, &Signature(twin)),
            Err(PrimitivesError::HighS)
        );
    }

    #[test]
    fn bad_signatures_are_errors_not_panics() {
        let digest = keccak256(b"x");
        assert!(Signature::from_slice(&[0u8; 64]).is_err());
        assert!(Signature::from_slice(&[0u8; 66]).is_err());
        let mut bad = [0u8; 65];
        bad[64] = 5;
        assert!(Signature::from_slice(&bad).is_err());
        bad[64] = 27;
        assert!(recover_signer(&digest, &Signature(bad)).is_err());
        assert!(PrivateKey::from_bytes(&[0u8; 32]).is_err());
        assert!(PrivateKey::from_hex("zz").is_err());
    }
}
