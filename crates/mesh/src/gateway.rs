//! Gateway advertisements: an internet node signs "I open TCP connections to the
//! outside at this price"; the advertisement floods the mesh (each node passes a newer
//! one on once), and user nodes pick the best gateway by route metric and price.

use smartmesh_primitives::{Address, B256, PrivateKey, Signature, keccak256, recover_signer};

/// Domain separation of advertisement signatures.
pub const GATEWAY_DOMAIN: &[u8] = b"smartmesh/mesh-gateway/v1";

/// A signed gateway advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayAd {
    /// The gateway node.
    pub gateway: Address,
    /// Its uplink price, token base units per KiB.
    pub price: u64,
    /// Increases with every advertisement (newer replaces older).
    pub seqno: u32,
    /// The gateway's signature.
    pub signature: Signature,
}

fn digest(gateway: Address, price: u64, seqno: u32) -> B256 {
    let mut data = Vec::with_capacity(GATEWAY_DOMAIN.len() + 20 + 8 + 4);
    data.extend_from_slice(GATEWAY_DOMAIN);
    data.extend_from_slice(gateway.as_slice());
    data.extend_from_slice(&price.to_be_bytes());
    data.extend_from_slice(&seqno.to_be_bytes());
    keccak256(&data)
}

impl GatewayAd {
    /// Signs an advertisement for `key`'s node.
    pub fn sign(key: &PrivateKey, price: u64, seqno: u32) -> Self {
        let gateway = key.address();
        Self {
            gateway,
            price,
            seqno,
            signature: key.sign_digest(&digest(gateway, price, seqno)),
        }
    }

    /// Whether the gateway itself signed it.
    pub fn verify(&self) -> bool {
        recover_signer(
            &digest(self.gateway, self.price, self.seqno),
            &self.signature,
        )
        .is_ok_and(|s| s == self.gateway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_own_advertisement_verifies() {
        let key = PrivateKey::from_bytes(&[6; 32]).expect("key");
        let ad = GatewayAd::sign(&key, 100, 7);
        assert!(ad.verify());
        let mut cheaper = ad.clone();
        cheaper.price = 1;
        assert!(!cheaper.verify());
        let mut other = ad;
        other.gateway = Address::repeat_byte(1);
        assert!(!other.verify());
    }
}
