//! Mediated transfers over several hops: fees, secret reveal, unlock, expiry, refusals,
//! routing failures with reasons, on-chain secret registration, restart mid-payment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use smartmesh_engine::mediated::refusal;
use smartmesh_engine::*;
use smartmesh_primitives::{B256, TokenAmount, keccak256};

const FEE: FeeSchedule = FeeSchedule {
    flat: TokenAmount::ZERO,
    proportional_ppm: 10_000,
};

/// A - B - C - D with 100 on each side; B and C charge 1 + 1%.
fn line() -> Network {
    let mut net = Network::new(4);
    net.open(0, 1, 1, 100, 100);
    net.open(1, 2, 2, 100, 100);
    net.open(2, 3, 3, 100, 100);
    let fee = FeeSchedule {
        flat: amt(1),
        ..FEE
    };
    for mediator in [1, 2] {
        let node = net.addr(mediator);
        net.chain(Input::ActionUpdateFeeSchedule { node, fee });
    }
    net.tick(1);
    net
}

fn secret(i: u8) -> B256 {
    keccak256([i, 42])
}

fn pay(
    net: &mut Network,
    from: usize,
    to: usize,
    amount: u128,
    payment_id: u64,
    s: u8,
) -> Vec<Event> {
    let target = net.addr(to);
    net.step(
        from,
        Input::ActionMediatedTransfer {
            target,
            amount: amt(amount),
            payment_id,
            secret: secret(s),
        },
    )
}

fn no_pending_locks(net: &Network) {
    for node in &net.nodes {
        for ch in node.state.channels.values() {
            assert!(
                ch.our.locks.is_empty() && ch.partner.locks.is_empty(),
                "locks left at {}",
                node.address()
            );
            assert!(ch.our.locked().is_zero() && ch.partner.locked().is_zero());
        }
    }
}

#[test]
fn three_hop_payment_with_fees() {
    let mut net = line();
    let route = find_route(&net.nodes[0].state, net.addr(3), amt(50)).expect("route");
    assert_eq!(route.hops, vec![net.addr(1), net.addr(2), net.addr(3)]);
    // C forwards 50 (+1 +0.5 rounded up = 52 in); B forwards 52 (+1 +0.52 -> 54 in).
    assert_eq!(route.amounts, vec![amt(54), amt(52), amt(50)]);
    assert_eq!(route.fees(), amt(4));

    let started = pay(&mut net, 0, 3, 50, 7, 1);
    assert!(
        !started
            .iter()
            .any(|e| matches!(e, Event::PaymentFailed { .. })),
        "{started:?}"
    );
    net.run();
    let a = net.take_events(0);
    let b = net.take_events(1);
    let c = net.take_events(2);
    let d = net.take_events(3);
    assert!(
        a.contains(&Event::PaymentSent {
            payment_id: 7,
            target: net.addr(3),
            amount: amt(50)
        }),
        "{a:?}"
    );
    assert!(
        d.contains(&Event::PaymentReceived {
            payment_id: 7,
            initiator: net.addr(0),
            amount: amt(50)
        }),
        "{d:?}"
    );
    assert!(
        b.contains(&Event::MediationFinished {
            payment_id: 7,
            received: amt(54),
            paid: amt(52)
        }),
        "{b:?}"
    );
    assert!(
        c.contains(&Event::MediationFinished {
            payment_id: 7,
            received: amt(52),
            paid: amt(50)
        }),
        "{c:?}"
    );
    for events in [&a, &b, &c, &d] {
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::InvalidReceived { .. })),
            "{events:?}"
        );
    }
    no_pending_locks(&net);
    // Fee accounting to the unit: A paid 54, B kept 2, C kept 2, D got 50.
    let ch = |n: usize, id: u64| net.nodes[n].channel(cid(id)).clone();
    assert_eq!(ch(0, 1).our.transferred(), amt(54));
    assert_eq!(ch(1, 1).partner.transferred(), amt(54));
    assert_eq!(ch(1, 2).our.transferred(), amt(52));
    assert_eq!(ch(2, 3).our.transferred(), amt(50));
    assert_eq!(ch(3, 3).partner.transferred(), amt(50));
    // Every message was acknowledged; no payment state is left.
    for node in &net.nodes {
        assert!(node.state.queued_messages.is_empty());
        assert!(node.state.payments.initiated.is_empty());
        assert!(node.state.payments.mediated.is_empty());
        assert!(node.state.payments.targeted.is_empty());
    }
}

#[test]
fn lock_expires_when_the_target_does_not_answer() {
    let mut net = line();
    net.offline.insert(3);
    pay(&mut net, 0, 3, 10, 1, 2);
    net.run();
    // A and B have locked funds.
    assert_eq!(net.nodes[0].channel(cid(1)).our.locks.len(), 1);
    assert_eq!(net.nodes[0].channel(cid(1)).our_capacity(), amt(100 - 14));
    let timeout = net.nodes[0].state.config.lock_timeout + net.nodes[0].state.config.clock_margin;
    // Time passes in steps, with retries; D never answers.
    let mut elapsed = 0;
    while elapsed <= timeout + 10 {
        net.tick(5);
        net.run();
        elapsed += 5;
    }
    let a = net.take_events(0);
    assert!(
        a.iter().any(|e| matches!(
            e,
            Event::PaymentFailed {
                payment_id: 1,
                reason: PaymentFailure::LockExpired
            }
        )),
        "{a:?}"
    );
    // A-B and B-C are clean again; C's lock towards D stays until D comes back.
    for (n, id) in [(0, 1), (1, 1), (1, 2), (2, 2)] {
        let ch = net.nodes[n].channel(cid(id));
        assert!(
            ch.our.locks.is_empty() && ch.partner.locks.is_empty(),
            "node {n} channel {id}"
        );
    }
    assert_eq!(net.nodes[0].channel(cid(1)).our_capacity(), amt(100));
    assert!(net.nodes[0].state.payments.initiated.is_empty());
    // D returns: C's LockExpired is retried and accepted.
    net.offline.clear();
    net.tick(5);
    net.run();
    no_pending_locks(&net);
}

#[test]
fn routing_failures_say_why() {
    let mut net = line();
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
            .expect("failed")
    };
    let stranger = key(9).address();
    let target = stranger;
    assert_eq!(
        fail(net.step(
            0,
            Input::ActionMediatedTransfer {
                target,
                amount: amt(1),
                payment_id: 1,
                secret: secret(1)
            }
        )),
        ActionError::NoRoute(NoRoute::TargetUnknown)
    );
    assert_eq!(
        fail(pay(&mut net, 0, 3, 99, 2, 2)),
        ActionError::NoRoute(NoRoute::InsufficientCapacity)
    );
    // A node with no channels at all.
    let mut lonely = Network::new(5);
    lonely.open(1, 2, 1, 10, 10);
    assert_eq!(
        fail(pay(&mut lonely, 0, 2, 1, 1, 1)),
        ActionError::NoRoute(NoRoute::NoOpenChannels)
    );
    // Two islands.
    let mut islands = Network::new(4);
    islands.open(0, 1, 1, 10, 10);
    islands.open(2, 3, 2, 10, 10);
    assert_eq!(
        fail(pay(&mut islands, 0, 3, 1, 1, 1)),
        ActionError::NoRoute(NoRoute::Disconnected)
    );
    assert_eq!(
        fail(pay(&mut net, 0, 0, 1, 1, 3)),
        ActionError::Invalid("cannot pay ourselves".into())
    );
    assert_eq!(fail(pay(&mut net, 0, 3, 0, 1, 3)), ActionError::ZeroAmount);
}

#[test]
fn route_prefers_cheaper_then_shorter() {
    // A-B-D (B expensive) and A-C-E-D (cheap): the cheap long one wins; equal fees
    // prefer fewer hops.
    let mut net = Network::new(5);
    net.open(0, 1, 1, 100, 100);
    net.open(1, 3, 2, 100, 100);
    net.open(0, 2, 3, 100, 100);
    net.open(2, 4, 4, 100, 100);
    net.open(4, 3, 5, 100, 100);
    let b = net.addr(1);
    net.chain(Input::ActionUpdateFeeSchedule {
        node: b,
        fee: FeeSchedule {
            flat: amt(5),
            proportional_ppm: 0,
        },
    });
    let route = find_route(&net.nodes[0].state, net.addr(3), amt(10)).expect("route");
    assert_eq!(route.hops, vec![net.addr(2), net.addr(4), net.addr(3)]);
    net.chain(Input::ActionUpdateFeeSchedule {
        node: b,
        fee: FeeSchedule::default(),
    });
    let route = find_route(&net.nodes[0].state, net.addr(3), amt(10)).expect("route");
    assert_eq!(route.hops, vec![net.addr(1), net.addr(3)]);
}

#[test]
fn mediator_refuses_an_uncovered_fee_and_the_initiator_hears_of_it() {
    let mut net = line();
    // B raises its fee without A knowing.
    net.step(
        1,
        Input::ActionUpdateFeeSchedule {
            node: key(1).address(),
            fee: FeeSchedule {
                flat: amt(10),
                proportional_ppm: 0,
            },
        },
    );
    pay(&mut net, 0, 3, 10, 5, 4);
    net.run();
    let a = net.take_events(0);
    assert!(
        a.contains(&Event::PaymentFailed {
            payment_id: 5,
            reason: PaymentFailure::Refused(refusal::FEE_TOO_LOW)
        }),
        "{a:?}"
    );
    // The lock still waits for expiry (it is in a signed proof), then leaves.
    assert_eq!(net.nodes[1].channel(cid(1)).partner.locks.len(), 1);
    let timeout = net.nodes[0].state.config.lock_timeout + net.nodes[0].state.config.clock_margin;
    net.tick(timeout + 1);
    net.run();
    no_pending_locks(&net);
    // No second failure event for the same payment.
    let a = net.take_events(0);
    assert!(
        !a.iter().any(|e| matches!(e, Event::PaymentFailed { .. })),
        "{a:?}"
    );
}

#[test]
fn target_registers_the_secret_when_its_payer_does_not_unlock() {
    let mut net = line();
    pay(&mut net, 0, 3, 10, 9, 5);
    // Deliver until D has the secret, then C goes silent.
    for _ in 0..200 {
        if net.nodes[3]
            .state
            .payments
            .targeted
            .values()
            .any(|p| p.secret.is_some())
        {
            break;
        }
        let Some((from, to, message)) = net.bus.pop_front() else {
            break;
        };
        let sender = net.addr(from);
        net.step(to, Input::ReceiveMessage { sender, message });
    }
    assert!(
        net.nodes[3]
            .state
            .payments
            .targeted
            .values()
            .any(|p| p.secret.is_some())
    );
    net.offline.insert(2);
    net.run();
    net.step(
        3,
        Input::ChainSynced {
            chain_time: time(net.now),
        },
    );
    let expiration = net.nodes[3]
        .state
        .payments
        .targeted
        .values()
        .next()
        .expect("payment")
        .lock
        .expiration
        .0;
    let reveal_timeout = net.nodes[3].state.config.reveal_timeout;
    net.take_events(3);
    net.now = expiration - reveal_timeout - 1;
    net.step(3, Input::Tick { now: time(net.now) });
    assert!(
        contract_sends(&net.take_events(3)).is_empty(),
        "not yet in the danger zone"
    );
    net.now += 1;
    net.step(3, Input::Tick { now: time(net.now) });
    let sends = contract_sends(&net.take_events(3));
    assert_eq!(
        sends.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
        vec![ContractSend::RegisterSecret { secret: secret(5) }]
    );
    // Registered on chain in time: C (back online) unlocks off-chain on seeing it.
    net.offline.clear();
    let reg = Input::ContractReceiveSecretRevealed {
        secrethash: keccak256(secret(5)),
        secret: secret(5),
        revealed_at: time(net.now),
    };
    net.chain(reg);
    net.run();
    let d = net.take_events(3);
    assert!(
        d.iter()
            .any(|e| matches!(e, Event::PaymentReceived { payment_id: 9, .. })),
        "{d:?}"
    );
}

#[test]
fn mediator_restarted_mid_payment_finishes_it() {
    let mut net = line();
    pay(&mut net, 0, 3, 20, 11, 6);
    // Deliver a few messages, then "restart" B from a snapshot plus nothing else.
    for _ in 0..3 {
        let Some((from, to, message)) = net.bus.pop_front() else {
            break;
        };
        let sender = net.addr(from);
        net.step(to, Input::ReceiveMessage { sender, message });
    }
    let snapshot = codec::encode_state(&net.nodes[1].state).expect("encodes");
    net.nodes[1].state = codec::decode_state(&snapshot).expect("decodes");
    // Messages in flight to B are lost in the crash; retries bring them back.
    net.bus.retain(|(_, to, _)| *to != 1);
    for _ in 0..10 {
        net.tick(3);
        net.run();
    }
    let d = net.take_events(3);
    assert!(
        d.iter()
            .any(|e| matches!(e, Event::PaymentReceived { payment_id: 11, .. })),
        "{d:?}"
    );
    let a = net.take_events(0);
    assert!(
        a.iter()
            .any(|e| matches!(e, Event::PaymentSent { payment_id: 11, .. })),
        "{a:?}"
    );
    no_pending_locks(&net);
}

#[test]
fn closing_with_a_pending_lock_claims_it_on_chain_after_settlement() {
    let mut net = line();
    pay(&mut net, 0, 3, 10, 12, 7);
    for _ in 0..200 {
        if net.nodes[3]
            .state
            .payments
            .targeted
            .values()
            .any(|p| p.secret.is_some())
        {
            break;
        }
        let Some((from, to, message)) = net.bus.pop_front() else {
            break;
        };
        let sender = net.addr(from);
        net.step(to, Input::ReceiveMessage { sender, message });
    }
    net.bus.clear();
    // D closes its channel with C, holding C's proof with the lock.
    net.step(
        3,
        Input::ChainSynced {
            chain_time: time(net.now),
        },
    );
    let ev = net.step(3, Input::ActionClose { channel_id: cid(3) });
    let [
        (
            _,
            ContractSend::Close {
                partner_proof: Some(proof),
                our_declared,
                ..
            },
        ),
    ] = &contract_sends(&ev)[..]
    else {
        panic!("close expected: {ev:?}");
    };
    assert_eq!(proof.data.locked_amount, amt(10));
    let (c, d) = (net.addr(2), net.addr(3));
    net.chain(Input::ContractReceiveSecretRevealed {
        secrethash: keccak256(secret(7)),
        secret: secret(7),
        revealed_at: time(net.now),
    });
    net.chain(Input::ContractReceiveChannelClosed {
        channel_id: cid(3),
        closer: d,
        closed_at: time(net.now),
        closer_balance: *our_declared,
        partner_balance: proof.balance(),
    });
    net.take_events(3);
    net.chain(Input::ContractReceiveChannelSettled {
        channel_id: cid(3),
        amount1: amt(90),
        amount2: amt(100),
    });
    let sends = contract_sends(&net.take_events(3));
    let [
        (
            _,
            ContractSend::Unlock {
                sender,
                receiver,
                locks,
                ..
            },
        ),
    ] = &sends[..]
    else {
        panic!("unlock expected: {sends:?}");
    };
    assert_eq!((*sender, *receiver), (c, d));
    assert_eq!(locks.len(), 1);
    assert_eq!(smartmesh_wire::locksroot(locks), proof.data.locksroot);
}
