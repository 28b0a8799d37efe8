//! Delivery receipts: the destination of a session signs how many sealed bytes it
//! received on it (cumulative). Every carrier on the way back checks the signature and
//! bills its upstream neighbour for the new bytes at the route's price, so a carrier is
//! paid only for data that arrived. The signature is bound to a domain (the chain id
//! and the token network the accounts settle in) so a receipt means nothing elsewhere.

use crate::SessionId;
use smartmesh_primitives::{Address, B256, PrivateKey, Signature, keccak256, recover_signer};

/// Domain separation of receipt signatures.
pub const RECEIPT_DOMAIN: &[u8] = b"smartmesh/mesh-receipt/v1";

/// Where receipts are valid: the chain and the token network that settle the accounts.
pub fn receipt_domain(chain_id: u64, token_network: Address) -> B256 {
    let mut data = Vec::with_capacity(RECEIPT_DOMAIN.len() + 8 + 20);
    data.extend_from_slice(RECEIPT_DOMAIN);
    data.extend_from_slice(&chain_id.to_be_bytes());
    data.extend_from_slice(token_network.as_slice());
    keccak256(&data)
}

/// A signed delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The session's initiator or responder that sent the data (the payer).
    pub source: Address,
    /// The node that received it and signs.
    pub destination: Address,
    /// The session.
    pub session: SessionId,
    /// Whether it covers the bytes the destination pays for (a gateway's answers) or
    /// those the source pays for; the two are counted apart.
    pub destination_pays: bool,
    /// Sealed bytes of that kind received on the session so far.
    pub bytes: u64,
    /// The destination's signature.
    pub signature: Signature,
}

fn digest(
    domain: &B256,
    source: Address,
    destination: Address,
    session: &SessionId,
    destination_pays: bool,
    bytes: u64,
) -> B256 {
    let mut data = Vec::with_capacity(32 + 20 + 20 + 16 + 1 + 8);
    data.extend_from_slice(domain.as_slice());
    data.extend_from_slice(source.as_slice());
    data.extend_from_slice(destination.as_slice());
    data.extend_from_slice(session);
    data.push(u8::from(destination_pays));
    data.extend_from_slice(&bytes.to_be_bytes());
    keccak256(&data)
}

impl Receipt {
    /// Signs a receipt for `bytes` received from `source` on `session`.
    pub fn sign(
        key: &PrivateKey,
        domain: &B256,
        source: Address,
        session: SessionId,
        destination_pays: bool,
        bytes: u64,
    ) -> Self {
        let destination = key.address();
        let signature = key.sign_digest(&digest(
            domain,
            source,
            destination,
            &session,
            destination_pays,
            bytes,
        ));
        Self {
            source,
            destination,
            session,
            destination_pays,
            bytes,
            signature,
        }
    }

    /// Whether the destination signed it in `domain`.
    pub fn verify(&self, domain: &B256) -> bool {
        let d = digest(
            domain,
            self.source,
            self.destination,
            &self.session,
            self.destination_pays,
            self.bytes,
        );
        recover_signer(&d, &self.signature).is_ok_and(|s| s == self.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_verify_only_unchanged_and_in_their_domain() {
        let key = PrivateKey::from_bytes(&[4; 32]).expect("key");
        let domain = receipt_domain(1337, Address::repeat_byte(1));
        let r = Receipt::sign(&key, &domain, Address::repeat_byte(9), [3; 16], false, 4096);
        assert!(r.verify(&domain));
        assert!(!r.verify(&receipt_domain(1, Address::repeat_byte(1))));
        assert!(!r.verify(&receipt_domain(1337, Address::repeat_byte(2))));
        let mut more = r.clone();
        more.bytes += 1;
        assert!(!more.verify(&domain));
        let mut kind = r.clone();
        kind.destination_pays = true;
        assert!(!kind.verify(&domain));
        let mut other = r;
        other.destination = Address::repeat_byte(5);
        assert!(!other.verify(&domain));
    }
}
