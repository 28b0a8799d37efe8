//! Direct transfers: every validation rule, acks, retries, duplicates, replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use smartmesh_engine::*;
use smartmesh_primitives::{
    Address, B256, ChainId, Nonce, PrivateKey, TokenAmount, recover_signer,
};
use smartmesh_wire::{BalanceProofData, DirectTransfer, Domain, EMPTY_SIGNATURE, Message};

fn pair() -> (Node, Node) {
    let mut a = Node::new(0);
    let mut b = Node::new(1);
    open_channel(&mut a, &mut b, 1, 100, 50);
    (a, b)
}

fn pay(a: &mut Node, amount: u128, payment_id: u64) -> Vec<Event> {
    a.step(Input::ActionDirectTransfer {
        via: TransferVia::Channel(cid(1)),
        amount: amt(amount),
        payment_id,
    })
}

/// A DirectTransfer from `key` with the given balance data, signed in `domain`.
fn forged(
    key: &PrivateKey,
    domain: &Domain,
    bp: BalanceProofData,
    recipient: Address,
    message_id: u64,
) -> Message {
    let mut m = Message::DirectTransfer(DirectTransfer {
        message_id,
        payment_id: 9,
        balance_proof: bp,
        recipient,
        signature: EMPTY_SIGNATURE,
    });
    m.sign(key, domain);
    m
}

fn next_bp(transferred: u128, nonce: u64) -> BalanceProofData {
    BalanceProofData {
        chain_id: CHAIN,
        token_network: token_network(),
        channel_id: cid(1),
        nonce: Nonce(nonce),
        transferred_amount: amt(transferred),
        locked_amount: TokenAmount::ZERO,
        locksroot: B256::ZERO,
    }
}

#[test]
fn transfer_is_signed_received_and_acknowledged() {
    let (mut a, mut b) = pair();
    assert_eq!(a.channel(cid(1)).our_capacity(), amt(100));
    let events = pay(&mut a, 30, 7);
    assert!(events.contains(&Event::PaymentSent {
        payment_id: 7,
        target: b.address(),
        amount: amt(30)
    }));
    assert_eq!(a.state.queued_messages.len(), 1);
    let (to, msg) = sent(&events).pop().expect("a message");
    assert_eq!(to, b.address());
    let out = b.receive(a.address(), msg.clone());
    assert!(out.contains(&Event::PaymentReceived {
        payment_id: 7,
        initiator: a.address(),
        amount: amt(30)
    }));
    assert_eq!(acks(&out), vec![msg.message_id()]);
    // B holds a proof the contract accepts: recover over the EIP-712 digest.
    let proof = b.channel(cid(1)).partner.proof.clone().expect("proof");
    let digest = b
        .ctx
        .domain
        .balance_proof_digest(&proof.data, &proof.message_hash);
    assert_eq!(recover_signer(&digest, &proof.signature), Ok(a.address()));
    // Capacities moved on both sides.
    assert_eq!(a.channel(cid(1)).our_capacity(), amt(70));
    assert_eq!(b.channel(cid(1)).our_capacity(), amt(80));
    assert_eq!(b.channel(cid(1)).partner_capacity(), amt(70));
    // The ack empties A's queue.
    a.receive(
        b.address(),
        Message::Ack(smartmesh_wire::Ack {
            message_id: msg.message_id(),
        }),
    );
    assert!(a.state.queued_messages.is_empty());
}

#[test]
fn ack_from_someone_else_does_not_dequeue() {
    let (mut a, b) = pair();
    let events = pay(&mut a, 1, 1);
    let id = sent(&events)[0].1.message_id();
    a.receive(
        Address::repeat_byte(9),
        Message::Ack(smartmesh_wire::Ack { message_id: id }),
    );
    assert_eq!(a.state.queued_messages.len(), 1);
    a.receive(
        b.address(),
        Message::Ack(smartmesh_wire::Ack { message_id: id }),
    );
    assert!(a.state.queued_messages.is_empty());
}

#[test]
fn duplicate_is_acked_again_and_ignored() {
    let (mut a, mut b) = pair();
    let msg = sent(&pay(&mut a, 10, 1))[0].1.clone();
    let first = b.receive(a.address(), msg.clone());
    let state_after_first = b.state.clone();
    let second = b.receive(a.address(), msg.clone());
    assert_eq!(acks(&first), acks(&second));
    assert!(
        !second
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. }))
    );
    assert!(invalid_reasons(&second).is_empty());
    assert_eq!(b.state, state_after_first);
}

#[test]
fn nonce_ahead_is_refused_without_ack_and_accepted_in_order() {
    let (mut a, mut b) = pair();
    let m1 = sent(&pay(&mut a, 10, 1))[0].1.clone();
    let m2 = sent(&pay(&mut a, 10, 2))[0].1.clone();
    let out = b.receive(a.address(), m2.clone());
    assert_eq!(
        invalid_reasons(&out),
        vec![InvalidReason::NonceAhead {
            expected: 1,
            got: 2
        }]
    );
    assert!(acks(&out).is_empty(), "not acked: the sender will retry");
    b.receive(a.address(), m1);
    let out = b.receive(a.address(), m2);
    assert!(
        out.iter()
            .any(|e| matches!(e, Event::PaymentReceived { amount, .. } if *amount == amt(10)))
    );
    assert_eq!(b.channel(cid(1)).partner.transferred(), amt(20));
}

#[test]
fn every_validation_rule_gives_invalid_received() {
    let (a, mut b) = pair();
    let akey = key(0);
    let dom = a.ctx.domain;
    let us = b.address();
    let cases: Vec<(Address, Message, InvalidReason)> = vec![
        (
            a.address(),
            forged(
                &akey,
                &dom,
                BalanceProofData {
                    channel_id: cid(99),
                    ..next_bp(5, 1)
                },
                us,
                1,
            ),
            InvalidReason::UnknownChannel,
        ),
        (
            Address::repeat_byte(5),
            forged(&akey, &dom, next_bp(5, 1), us, 1),
            InvalidReason::NotPartner,
        ),
        (
            a.address(),
            forged(
                &akey,
                &dom,
                BalanceProofData {
                    chain_id: ChainId(1),
                    ..next_bp(5, 1)
                },
                us,
                1,
            ),
            InvalidReason::WrongDomain,
        ),
        (
            a.address(),
            forged(
                &akey,
                &dom,
                BalanceProofData {
                    token_network: Address::repeat_byte(1),
                    ..next_bp(5, 1)
                },
                us,
                1,
            ),
            InvalidReason::WrongDomain,
        ),
        (
            a.address(),
            forged(&akey, &dom, next_bp(5, 1), Address::repeat_byte(3), 1),
            InvalidReason::WrongRecipient,
        ),
        (
            a.address(),
            forged(&akey, &dom, next_bp(0, 1), us, 1),
            InvalidReason::TransferredAmountMismatch,
        ),
        (
            a.address(),
            forged(
                &akey,
                &dom,
                BalanceProofData {
                    locked_amount: amt(1),
                    ..next_bp(5, 1)
                },
                us,
                1,
            ),
            InvalidReason::LocksMismatch,
        ),
        (
            a.address(),
            forged(
                &akey,
                &dom,
                BalanceProofData {
                    locksroot: B256::repeat_byte(1),
                    ..next_bp(5, 1)
                },
                us,
                1,
            ),
            InvalidReason::LocksMismatch,
        ),
        (
            a.address(),
            forged(&akey, &dom, next_bp(101, 1), us, 1),
            InvalidReason::InsufficientCapacity,
        ),
        (
            a.address(),
            forged(&key(7), &dom, next_bp(5, 1), us, 1),
            InvalidReason::BadSignature,
        ),
        (
            a.address(),
            forged(
                &akey,
                &Domain::new(ChainId(1), token_network()),
                next_bp(5, 1),
                us,
                1,
            ),
            InvalidReason::BadSignature,
        ),
    ];
    for (sender, msg, reason) in cases {
        let before = b.state.clone();
        let out = b.receive(sender, msg.clone());
        assert_eq!(invalid_reasons(&out), vec![reason.clone()], "{reason:?}");
        // Refusals are acked (a retry would be refused again), except an unknown
        // channel, which we may simply not have seen opened yet.
        let expected_acks = if reason == InvalidReason::UnknownChannel {
            vec![]
        } else {
            vec![msg.message_id()]
        };
        assert_eq!(acks(&out), expected_acks, "acks for {reason:?}");
        assert_eq!(
            b.state, before,
            "a refused message changes nothing: {reason:?}"
        );
    }
    // A tampered field breaks the signature (the message hash binds the payment id).
    let mut msg = forged(&akey, &dom, next_bp(5, 1), us, 1);
    if let Message::DirectTransfer(m) = &mut msg {
        m.payment_id += 1;
    }
    assert_eq!(
        invalid_reasons(&b.receive(a.address(), msg)),
        vec![InvalidReason::BadSignature]
    );
    // The exact capacity is fine.
    let out = b.receive(a.address(), forged(&akey, &dom, next_bp(100, 1), us, 1));
    assert!(invalid_reasons(&out).is_empty());
    // Then transferred must increase: same amount with the next nonce is refused.
    let out = b.receive(a.address(), forged(&akey, &dom, next_bp(100, 2), us, 2));
    assert_eq!(
        invalid_reasons(&out),
        vec![InvalidReason::TransferredAmountMismatch]
    );
}

#[test]
fn received_amounts_raise_the_senders_capacity() {
    let (mut a, mut b) = pair();
    let m = sent(&pay(&mut a, 100, 1))[0].1.clone();
    b.receive(a.address(), m);
    assert_eq!(a.channel(cid(1)).our_capacity(), amt(0));
    // B pays back 20; A may then send 20 again.
    let m = sent(&b.step(Input::ActionDirectTransfer {
        via: TransferVia::Partner(a.address()),
        amount: amt(20),
        payment_id: 2,
    }))[0]
        .1
        .clone();
    a.receive(b.address(), m);
    assert_eq!(a.channel(cid(1)).our_capacity(), amt(20));
    let m = sent(&pay(&mut a, 20, 3))[0].1.clone();
    assert!(invalid_reasons(&b.receive(a.address(), m)).is_empty());
    assert_eq!(b.channel(cid(1)).our_capacity(), amt(150));
}

#[test]
fn refused_actions_say_why() {
    let (mut a, _b) = pair();
    let fail = |events: Vec<Event>| -> ActionError {
        events
            .into_iter()
            .find_map(|e| match e {
                Event::PaymentFailed {
                    reason: PaymentFailure::Rejected(r),
                    ..
                } => Some(r),
                _ => None,
            })
            .expect("a failure")
    };
    assert_eq!(fail(pay(&mut a, 0, 1)), ActionError::ZeroAmount);
    assert_eq!(
        fail(pay(&mut a, 101, 1)),
        ActionError::InsufficientCapacity {
            available: amt(100)
        }
    );
    assert_eq!(
        fail(a.step(Input::ActionDirectTransfer {
            via: TransferVia::Channel(cid(5)),
            amount: amt(1),
            payment_id: 1
        })),
        ActionError::UnknownChannel
    );
    assert_eq!(
        fail(a.step(Input::ActionDirectTransfer {
            via: TransferVia::Partner(Address::repeat_byte(4)),
            amount: amt(1),
            payment_id: 1
        })),
        ActionError::NoChannelWithCapacity
    );
    assert!(a.state.queued_messages.is_empty());
    assert_eq!(a.channel(cid(1)).our.nonce(), Nonce(0));
}

#[test]
fn unacknowledged_messages_are_retried_on_tick() {
    let (mut a, _b) = pair();
    a.step(Input::Tick { now: time(100) });
    let events = pay(&mut a, 5, 1);
    let msg = sent(&events)[0].1.clone();
    assert!(sent(&a.step(Input::Tick { now: time(101) })).is_empty());
    let retry = a.step(Input::Tick { now: time(102) });
    assert_eq!(sent(&retry), vec![(key(1).address(), msg.clone())]);
    assert!(sent(&a.step(Input::Tick { now: time(103) })).is_empty());
    // The queue survives a snapshot round trip (retries survive restarts).
    let bytes = codec::encode_state(&a.state).expect("encodes");
    let restored = codec::decode_state(&bytes).expect("decodes");
    assert_eq!(restored, a.state);
    assert_eq!(
        restored.queued_messages.values().next().map(|q| &q.message),
        Some(&msg)
    );
}

#[test]
fn replaying_the_inputs_reproduces_state_and_events() {
    let (mut a, mut b) = pair();
    let mut events_a = Vec::new();
    for i in 1..=5u64 {
        let ev = pay(&mut a, u128::from(i), i);
        events_a.extend(ev.clone());
        pump(&mut a, &mut b, ev);
    }
    a.step(Input::Tick { now: time(50) });
    a.step(Input::ActionClose { channel_id: cid(1) });
    // Replay A's inputs on a fresh state: identical state (signatures are deterministic).
    let mut replay = Node::new(0);
    let mut replay_events = Vec::new();
    for input in a.inputs.clone() {
        // Inputs survive the WAL format.
        let bytes = codec::encode_input(&input).expect("encodes");
        let input = codec::decode_input(&bytes).expect("decodes");
        let ev = replay.step(input);
        let bytes = codec::encode_events(&ev).expect("encodes");
        assert_eq!(codec::decode_events(&bytes).expect("decodes"), ev);
        replay_events.extend(ev);
    }
    assert_eq!(replay.state, a.state);
    for e in &events_a {
        assert!(replay_events.contains(e));
    }
}

#[test]
fn storage_codec_rejects_bad_versions() {
    assert_eq!(codec::decode_input(&[]), Err(codec::CodecError::Empty));
    assert_eq!(
        codec::decode_input(&[9, 0]),
        Err(codec::CodecError::UnsupportedVersion(9))
    );
    assert!(codec::decode_input(&[codec::STORAGE_FORMAT_VERSION, 250, 1]).is_err());
    let mut bytes = codec::encode_input(&Input::Tick { now: time(5) }).expect("encodes");
    bytes.push(0);
    assert!(matches!(
        codec::decode_input(&bytes),
        Err(codec::CodecError::Malformed(_))
    ));
}

#[test]
fn state_is_json_serializable_too() {
    let (mut a, mut b) = pair();
    let ev = pay(&mut a, 3, 1);
    pump(&mut a, &mut b, ev);
    let json = serde_json::to_string(&b.state).expect("json");
    let back: NodeState = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, b.state);
}

/// Regression: a proof that arrived before the receiver saw the channel open on chain
/// was refused as `UnknownChannel` but acked, so the sender dropped it and the channel
/// stuck forever on "nonce ahead". It must not be acked, and its retry must apply.
#[test]
fn regression_transfer_before_receiver_saw_channel_open_was_acked_and_lost() {
    let mut a = Node::new(0);
    let mut b = Node::new(1);
    let mut c = Node::new(2);
    open_channel(&mut a, &mut c, 7, 1, 1); // unrelated; b still knows no channel 1
    let opened = Input::ContractReceiveChannelOpened {
        channel_id: cid(1),
        participant1: a.address(),
        participant2: b.address(),
        settle_timeout: 1000,
    };
    let deposit = Input::ContractReceiveChannelDeposit {
        channel_id: cid(1),
        participant: a.address(),
        total_deposit: amt(100),
    };
    a.chain(opened.clone());
    a.chain(deposit.clone());
    let (to, message) = sent(&pay(&mut a, 10, 1))[0].clone();
    assert_eq!(to, b.address());

    let early = b.receive(a.address(), message.clone());
    assert_eq!(invalid_reasons(&early), vec![InvalidReason::UnknownChannel]);
    assert!(
        acks(&early).is_empty(),
        "an unknown channel must not be acked"
    );

    b.chain(opened);
    b.chain(deposit);
    let retried = b.receive(a.address(), message);
    assert!(invalid_reasons(&retried).is_empty());
    assert_eq!(acks(&retried).len(), 1);
    assert_eq!(b.channel(cid(1)).partner.transferred(), amt(10));
}
