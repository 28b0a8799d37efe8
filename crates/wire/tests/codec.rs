//! Codec properties: round trips, canonical encodings, no panic on random bytes, and
//! signatures that verify to the signer over the contract's EIP-712 digest.

use proptest::prelude::*;
use smartmesh_primitives::{
    Address, B256, ChainId, ChainTime, ChannelId, Nonce, PrivateKey, Signature, TokenAmount, U256,
    eip712,
};
use smartmesh_wire::*;

fn u256() -> impl Strategy<Value = U256> {
    prop_oneof![
        any::<u64>().prop_map(U256::from),
        any::<[u8; 32]>().prop_map(U256::from_be_bytes),
        Just(U256::MAX),
        Just(U256::ZERO),
    ]
}
fn amount() -> impl Strategy<Value = TokenAmount> {
    u256().prop_map(TokenAmount)
}
fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from)
}
fn b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}
fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<bool>()).prop_map(|(r, s, v)| {
        let mut bytes = [0u8; 65];
        bytes[..32].copy_from_slice(&r);
        bytes[32..64].copy_from_slice(&s);
        bytes[64] = if v { 28 } else { 27 };
        Signature(bytes)
    })
}
fn balance_proof() -> impl Strategy<Value = BalanceProofData> {
    (
        any::<u64>(),
        address(),
        u256(),
        any::<u64>(),
        amount(),
        amount(),
        b256(),
    )
        .prop_map(|(c, tn, id, n, t, l, root)| BalanceProofData {
            chain_id: ChainId(c),
            token_network: tn,
            channel_id: ChannelId(id),
            nonce: Nonce(n),
            transferred_amount: t,
            locked_amount: l,
            locksroot: root,
        })
}
fn lock() -> impl Strategy<Value = HashLock> {
    (any::<u64>(), amount(), b256()).prop_map(|(e, a, h)| HashLock {
        expiration: ChainTime(e),
        amount: a,
        secrethash: h,
    })
}
fn withdraw() -> impl Strategy<Value = WithdrawData> {
    (
        any::<u64>(),
        address(),
        u256(),
        address(),
        amount(),
        any::<u64>(),
    )
        .prop_map(|(c, tn, id, p, t, e)| WithdrawData {
            chain_id: ChainId(c),
            token_network: tn,
            channel_id: ChannelId(id),
            participant: p,
            total_withdraw: t,
            expiration: ChainTime(e),
        })
}
fn coop() -> impl Strategy<Value = CooperativeSettleData> {
    (
        any::<u64>(),
        address(),
        u256(),
        address(),
        amount(),
        address(),
        amount(),
    )
        .prop_map(|(c, tn, id, p1, b1, p2, b2)| CooperativeSettleData {
            chain_id: ChainId(c),
            token_network: tn,
            channel_id: ChannelId(id),
            participant1: p1,
            balance1: b1,
            participant2: p2,
            balance2: b2,
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            balance_proof(),
            address(),
            signature()
        )
            .prop_map(
                |(message_id, payment_id, balance_proof, recipient, signature)| {
                    Message::DirectTransfer(DirectTransfer {
                        message_id,
                        payment_id,
                        balance_proof,
                        recipient,
                        signature,
                    })
                }
            ),
        (
            (
                any::<u64>(),
                any::<u64>(),
                balance_proof(),
                address(),
                lock()
            ),
            (
                address(),
                address(),
                amount(),
                prop::collection::vec(address(), 0..=MAX_ROUTE_LEN),
                signature()
            )
        )
            .prop_map(
                |(
                    (message_id, payment_id, balance_proof, recipient, lock),
                    (initiator, target, target_amount, route, signature),
                )| {
                    Message::LockedTransfer(LockedTransfer {
                        message_id,
                        payment_id,
                        balance_proof,
                        recipient,
                        lock,
                        initiator,
                        target,
                        target_amount,
                        route,
                        signature,
                    })
                }
            ),
        (any::<u64>(), any::<u64>(), b256(), amount(), any::<u64>()).prop_map(
            |(message_id, payment_id, secrethash, amount, e)| {
                Message::SecretRequest(SecretRequest {
                    message_id,
                    payment_id,
                    secrethash,
                    amount,
                    expiration: ChainTime(e),
                })
            }
        ),
        (any::<u64>(), b256()).prop_map(|(message_id, secret)| Message::RevealSecret(
            RevealSecret { message_id, secret }
        )),
        (
            any::<u64>(),
            any::<u64>(),
            balance_proof(),
            address(),
            b256(),
            signature()
        )
            .prop_map(
                |(message_id, payment_id, balance_proof, recipient, secret, signature)| {
                    Message::Unlock(Unlock {
                        message_id,
                        payment_id,
                        balance_proof,
                        recipient,
                        secret,
                        signature,
                    })
                }
            ),
        (
            any::<u64>(),
            balance_proof(),
            address(),
            b256(),
            signature()
        )
            .prop_map(
                |(message_id, balance_proof, recipient, secrethash, signature)| {
                    Message::LockExpired(LockExpired {
                        message_id,
                        balance_proof,
                        recipient,
                        secrethash,
                        signature,
                    })
                }
            ),
        (any::<u64>(), withdraw(), signature()).prop_map(|(message_id, withdraw, signature)| {
            Message::WithdrawRequest(WithdrawRequest {
                message_id,
                withdraw,
                signature,
            })
        }),
        (any::<u64>(), withdraw(), signature()).prop_map(|(message_id, withdraw, signature)| {
            Message::WithdrawConfirmation(WithdrawConfirmation {
                message_id,
                withdraw,
                signature,
            })
        }),
        (any::<u64>(), coop(), signature()).prop_map(|(message_id, settle, signature)| {
            Message::CooperativeSettleRequest(CooperativeSettleRequest {
                message_id,
                settle,
                signature,
            })
        }),
        (any::<u64>(), coop(), signature()).prop_map(|(message_id, settle, signature)| {
            Message::CooperativeSettleConfirmation(CooperativeSettleConfirmation {
                message_id,
                settle,
                signature,
            })
        }),
        (any::<u64>(), any::<u64>(), b256(), any::<u8>()).prop_map(
            |(message_id, payment_id, secrethash, reason)| {
                Message::TransferRefused(TransferRefused {
                    message_id,
                    payment_id,
                    secrethash,
                    reason,
                })
            }
        ),
        any::<u64>().prop_map(|message_id| Message::Ack(Ack { message_id })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(msg in message()) {
        let bytes = msg.encode();
        prop_assert_eq!(bytes[0], WIRE_VERSION);
        let back = decode(&bytes).expect("decodes");
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.message_hash(), msg.message_hash());
    }

    #[test]
    fn every_strict_prefix_and_extension_is_an_error(msg in message(), extra in any::<u8>()) {
        let bytes = msg.encode();
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert_eq!(decode(&longer), Err(WireError::TrailingBytes(1)));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzz_decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(msg in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = msg.encode();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        fuzz_decode(&bytes);
    }

    #[test]
    fn serde_round_trip_is_lossless(msg in message()) {
        // The engine's WAL serializes messages through serde (postcard); the signature
        // has a hand-written serde.
        let bytes = postcard::to_stdvec(&msg).expect("serializes");
        let back: Message = postcard::from_bytes(&bytes).expect("deserializes");
        prop_assert_eq!(back, msg);
    }
}

#[test]
fn message_hash_excludes_only_the_signature() {
    let mut msg = Message::DirectTransfer(DirectTransfer {
        message_id: 1,
        payment_id: 2,
        balance_proof: BalanceProofData::default(),
        recipient: Address::repeat_byte(3),
        signature: EMPTY_SIGNATURE,
    });
    let hash = msg.message_hash();
    if let Message::DirectTransfer(m) = &mut msg {
        m.signature.0[0] = 9;
    }
    assert_eq!(msg.message_hash(), hash, "signature is not hashed");
    if let Message::DirectTransfer(m) = &mut msg {
        m.payment_id = 3;
    }
    assert_ne!(msg.message_hash(), hash, "payment id is bound");
}

#[test]
fn unknown_version_and_type_are_errors() {
    assert_eq!(decode(&[]), Err(WireError::Empty));
    assert_eq!(decode(&[2, 12]), Err(WireError::UnsupportedVersion(2)));
    assert_eq!(decode(&[1, 200]), Err(WireError::UnknownMessageType(200)));
    let mut ack = Message::Ack(Ack { message_id: 7 }).encode();
    assert_eq!(ack.len(), 10);
    ack.pop();
    assert!(matches!(decode(&ack), Err(WireError::Truncated { .. })));
}

#[test]
fn signature_must_have_canonical_v_and_route_must_be_bounded() {
    let msg = Message::DirectTransfer(DirectTransfer {
        message_id: 1,
        payment_id: 2,
        balance_proof: BalanceProofData::default(),
        recipient: Address::ZERO,
        signature: EMPTY_SIGNATURE,
    });
    let mut bytes = msg.encode();
    let last = bytes.len() - 1;
    bytes[last] = 0;
    assert_eq!(decode(&bytes), Err(WireError::InvalidRecoveryByte(0)));

    let mut lt = LockedTransfer {
        message_id: 1,
        payment_id: 1,
        balance_proof: BalanceProofData::default(),
        recipient: Address::ZERO,
        lock: HashLock {
            expiration: ChainTime(1),
            amount: TokenAmount::from_u128(1),
            secrethash: B256::ZERO,
        },
        initiator: Address::ZERO,
        target: Address::ZERO,
        target_amount: TokenAmount::ZERO,
        route: vec![Address::ZERO; MAX_ROUTE_LEN],
        signature: EMPTY_SIGNATURE,
    };
    let ok = Message::LockedTransfer(lt.clone()).encode();
    assert!(decode(&ok).is_ok());
    // Patch the route count to one more than allowed.
    let count_at = ok.len() - 65 - 20 * MAX_ROUTE_LEN - 1;
    let mut bad = ok.clone();
    bad[count_at] = (MAX_ROUTE_LEN + 1) as u8;
    assert_eq!(
        decode(&bad),
        Err(WireError::RouteTooLong(MAX_ROUTE_LEN + 1))
    );
    lt.route.clear();
    assert!(decode(&Message::LockedTransfer(lt).encode()).is_ok());
}

#[test]
fn signed_balance_proof_verifies_like_the_contract() {
    let key =
        PrivateKey::from_hex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
            .expect("key");
    let tn = Address::repeat_byte(0x11);
    let domain = Domain::new(ChainId(1337), tn);
    let bp = BalanceProofData {
        chain_id: ChainId(1337),
        token_network: tn,
        channel_id: ChannelId(U256::from(5)),
        nonce: Nonce(9),
        transferred_amount: TokenAmount::from_u128(1234),
        locked_amount: TokenAmount::from_u128(5),
        locksroot: B256::repeat_byte(7),
    };
    let mut msg = Message::DirectTransfer(DirectTransfer {
        message_id: 1,
        payment_id: 77,
        balance_proof: bp,
        recipient: Address::repeat_byte(2),
        signature: EMPTY_SIGNATURE,
    });
    let hash = msg.sign(&key, &domain);
    // Same digest as the primitives' (alloy) EIP-712 implementation.
    let reference = eip712::digest(
        &bp.to_eip712(hash),
        &eip712::token_network_domain(ChainId(1337), tn),
    );
    assert_eq!(domain.balance_proof_digest(&bp, &hash), reference);
    let verified = msg.verify(&domain).expect("signed").expect("valid");
    assert_eq!(verified.signer, key.address());
    assert_eq!(verified.message_hash, hash);
    // Survives the wire.
    let back = decode(&msg.encode()).expect("decodes");
    assert_eq!(
        back.verify(&domain).expect("signed").expect("valid").signer,
        key.address()
    );
    // Another domain: another signer.
    let other = Domain::new(ChainId(1), tn);
    assert_ne!(
        msg.verify(&other).expect("signed").map(|v| v.signer),
        Ok(key.address())
    );
    // Unsigned messages have nothing to verify.
    assert!(
        Message::Ack(Ack { message_id: 1 })
            .verify(&domain)
            .is_none()
    );
}

#[test]
fn locksroot_matches_primitives() {
    let locks = [
        HashLock {
            expiration: ChainTime(100),
            amount: TokenAmount::from_u128(5),
            secrethash: B256::repeat_byte(1),
        },
        HashLock {
            expiration: ChainTime(200),
            amount: TokenAmount::from_u128(6),
            secrethash: B256::repeat_byte(2),
        },
    ];
    let prim: Vec<_> = locks.iter().map(HashLock::to_eip712).collect();
    assert_eq!(locksroot(&locks), eip712::locksroot(&prim));
    assert_eq!(locksroot(&[]), B256::ZERO);
}
