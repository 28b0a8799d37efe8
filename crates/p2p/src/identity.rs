//! The node key as a libp2p identity, and a peer's Ethereum address from its peer id.

use crate::P2pError;
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, secp256k1};
use smartmesh_primitives::{Address, PrivateKey, keccak256};

/// Multihash code of the identity hash (the key is inlined in the peer id).
const IDENTITY_MULTIHASH: u64 = 0;

/// The libp2p keypair of a node key (the same secp256k1 key).
pub(crate) fn keypair(key: &PrivateKey) -> Result<Keypair, P2pError> {
    let secret = secp256k1::SecretKey::try_from_bytes(key.to_bytes())
        .map_err(|e| P2pError::Key(e.to_string()))?;
    Ok(Keypair::from(secp256k1::Keypair::from(secret)))
}

/// The peer id of a node key, as text.
pub fn peer_id_of(key: &PrivateKey) -> String {
    keypair(key)
        .map(|k| k.public().to_peer_id().to_string())
        .unwrap_or_default()
}

/// The Ethereum address behind a peer id, when the peer id inlines a secp256k1 key
/// (it always does for SmartMesh nodes; other peers are refused).
pub fn address_of_peer(peer: &PeerId) -> Option<Address> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let secp = public.try_into_secp256k1().ok()?;
    let uncompressed = secp.to_bytes_uncompressed();
    let hash = keccak256(&uncompressed[1..]);
    Some(Address::from_slice(&hash[12..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_id_carries_the_node_address() {
        let key = PrivateKey::from_bytes(&[7u8; 32]).expect("key");
        let peer: PeerId = peer_id_of(&key).parse().expect("peer id");
        assert_eq!(address_of_peer(&peer), Some(key.address()));
        assert_eq!(address_of_peer(&PeerId::random()), None);
    }
}
