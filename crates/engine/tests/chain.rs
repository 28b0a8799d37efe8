//! Chain events: open, deposit, close (ours and the partner's), penalty, settle,
//! withdraw, cooperative settle, and on-chain actions held while the chain is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use smartmesh_engine::*;
use smartmesh_primitives::{Address, B256, Nonce};

fn pair() -> (Node, Node) {
    let mut a = Node::new(0);
    let mut b = Node::new(1);
    open_channel(&mut a, &mut b, 1, 100, 50);
    (a, b)
}

fn pay_and_deliver(from: &mut Node, to: &mut Node, amount: u128, id: u64) {
    let ev = from.step(Input::ActionDirectTransfer {
        via: TransferVia::Partner(to.address()),
        amount: amt(amount),
        payment_id: id,
    });
    assert!(
        ev.iter().any(|e| matches!(e, Event::PaymentSent { .. })),
        "{ev:?}"
    );
    pump(from, to, ev);
}

fn bal(nonce: u64, transferred: u128) -> Balance {
    Balance {
        nonce: Nonce(nonce),
        transferred_amount: amt(transferred),
        ..Balance::default()
    }
}

#[test]
fn only_our_channels_are_tracked_and_deposits_never_decrease() {
    let mut a = Node::new(0);
    a.chain(Input::ContractReceiveChannelOpened {
        channel_id: cid(3),
        participant1: Address::repeat_byte(1),
        participant2: Address::repeat_byte(2),
        settle_timeout: 10,
    });
    assert!(a.state.channels.is_empty());
    let mut b = Node::new(1);
    open_channel(&mut a, &mut b, 1, 100, 0);
    a.chain(Input::ContractReceiveChannelDeposit {
        channel_id: cid(1),
        participant: a.address(),
        total_deposit: amt(40),
    });
    assert_eq!(a.channel(cid(1)).our.deposit, amt(100));
    assert!(a.channel(cid(1)).we_are_participant1);
    assert!(!b.channel(cid(1)).we_are_participant1);
    assert_eq!(b.channel(cid(1)).partner_capacity(), amt(100));
}

#[test]
fn our_close_carries_the_partners_newest_proof_and_waits_for_the_chain() {
    let (mut a, mut b) = pair();
    pay_and_deliver(&mut a, &mut b, 10, 1);
    pay_and_deliver(&mut b, &mut a, 4, 2);
    pay_and_deliver(&mut b, &mut a, 3, 3);
    // Chain unreachable: the close is queued, not emitted.
    let ev = a.step(Input::ActionClose { channel_id: cid(1) });
    assert!(contract_sends(&ev).is_empty());
    assert_eq!(a.channel(cid(1)).status, ChannelStatus::Closing);
    // Payments over a closing channel are refused.
    let ev = a.step(Input::ActionDirectTransfer {
        via: TransferVia::Channel(cid(1)),
        amount: amt(1),
        payment_id: 9,
    });
    assert!(ev.iter().any(|e| matches!(e, Event::PaymentFailed { .. })));
    // Reconnecting: still held while replaying missed events.
    assert!(contract_sends(&a.step(Input::ChainReachable)).is_empty());
    let ev = a.step(Input::ChainSynced {
        chain_time: time(500),
    });
    let sends = contract_sends(&ev);
    assert_eq!(sends.len(), 1);
    let (
        id,
        ContractSend::Close {
            channel_id,
            partner_proof,
            our_declared,
        },
    ) = sends[0].clone()
    else {
        panic!("expected a close: {sends:?}");
    };
    assert_eq!(channel_id, cid(1));
    let proof = partner_proof.expect("B sent twice");
    assert_eq!(proof.data.nonce, Nonce(2));
    assert_eq!(proof.data.transferred_amount, amt(7));
    assert_eq!(our_declared, bal(1, 10));
    // Mined: the chain event removes it from the queue.
    a.chain(Input::ContractReceiveChannelClosed {
        channel_id: cid(1),
        closer: a.address(),
        closed_at: time(500),
        closer_balance: our_declared,
        partner_balance: proof.balance(),
    });
    assert!(!a.state.pending_onchain.contains_key(&id));
    assert_eq!(a.channel(cid(1)).status, ChannelStatus::Closed);
    // Settle only after closed_at + settle_timeout (1000) as known from the chain.
    assert!(
        contract_sends(&a.step(Input::ChainSynced {
            chain_time: time(1499)
        }))
        .is_empty()
    );
    let ev = a.step(Input::ChainSynced {
        chain_time: time(1500),
    });
    assert!(matches!(
        contract_sends(&ev)[..],
        [(_, ContractSend::Settle { .. })]
    ));
    // Settled: amounts mapped to us and the partner.
    let ev = a.chain(Input::ContractReceiveChannelSettled {
        channel_id: cid(1),
        amount1: amt(97),
        amount2: amt(53),
    });
    assert!(ev.contains(&Event::ChannelFinished {
        channel_id: cid(1),
        outcome: ChannelOutcome::Settled {
            ours: amt(97),
            partner: amt(53)
        },
    }));
    assert!(a.state.pending_onchain.is_empty());
    // The off-chain ledger predicted exactly that.
    let ch = a.channel(cid(1));
    let s = settlement_amounts(
        &Deposits {
            deposit1: amt(100),
            deposit2: amt(50),
            ..Deposits::default()
        },
        &ch.our.balance(),
        &ch.partner.balance(),
    )
    .expect("valid");
    assert_eq!((s.amount1, s.amount2), (amt(97), amt(53)));
}

#[test]
fn settle_without_chain_time_waits_for_the_clock_margin() {
    let (mut a, _b) = pair();
    a.step(Input::ChainSynced {
        chain_time: time(100),
    });
    a.chain(Input::ContractReceiveChannelClosed {
        channel_id: cid(1),
        closer: a.address(),
        closed_at: time(100),
        closer_balance: Balance::default(),
        partner_balance: Balance::default(),
    });
    // Chain gone; only the node clock advances.
    a.step(Input::ChainUnreachable);
    let margin = a.state.config.clock_margin;
    a.step(Input::Tick {
        now: time(1100 + margin - 1),
    });
    assert!(a.state.pending_onchain.is_empty());
    let ev = a.step(Input::Tick {
        now: time(1100 + margin),
    });
    assert!(
        contract_sends(&ev).is_empty(),
        "queued, not emitted while unreachable"
    );
    assert_eq!(a.state.pending_onchain.len(), 1);
    let ev = a.step(Input::ChainSynced {
        chain_time: time(1200),
    });
    assert!(matches!(
        contract_sends(&ev)[..],
        [(_, ContractSend::Settle { .. })]
    ));
    // A failed attempt is retried after the interval; a done one is forgotten.
    let id = contract_sends(&ev)[0].0;
    a.step(Input::ActionOnchainFailed { id, retry: true });
    assert!(
        contract_sends(&a.step(Input::Tick {
            now: time(1100 + margin + 1)
        }))
        .is_empty()
    );
    let later = 1100 + margin + a.state.config.onchain_retry_interval;
    assert_eq!(
        contract_sends(&a.step(Input::Tick { now: time(later) })).len(),
        1
    );
    a.step(Input::ActionOnchainDone { id });
    assert!(a.state.pending_onchain.is_empty());
}

fn partner_closes(a: &mut Node, b: &Node, declared: Balance) -> Vec<Event> {
    a.step(Input::ChainSynced {
        chain_time: time(10),
    });
    a.chain(Input::ContractReceiveChannelClosed {
        channel_id: cid(1),
        closer: b.address(),
        closed_at: time(10),
        closer_balance: declared,
        partner_balance: a.channel(cid(1)).our.balance(),
    })
}

#[test]
fn stale_declaration_is_penalized_with_the_newest_proof() {
    let (mut a, mut b) = pair();
    for i in 1..=3 {
        pay_and_deliver(&mut b, &mut a, 5, i);
    }
    // B closes declaring only its first transfer.
    let ev = partner_closes(&mut a, &b, bal(1, 5));
    let sends = contract_sends(&ev);
    let [
        (
            _,
            ContractSend::Penalty {
                channel_id,
                closer_proof,
            },
        ),
    ] = &sends[..]
    else {
        panic!("expected a penalty: {sends:?}");
    };
    assert_eq!(*channel_id, cid(1));
    assert_eq!(closer_proof.data.nonce, Nonce(3));
    assert_eq!(closer_proof.data.transferred_amount, amt(15));
    // The proof is what the contract verifies: signed by B over the EIP-712 digest.
    let digest = a
        .ctx
        .domain
        .balance_proof_digest(&closer_proof.data, &closer_proof.message_hash);
    assert_eq!(
        smartmesh_primitives::recover_signer(&digest, &closer_proof.signature),
        Ok(b.address())
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::PenaltyDetected { .. }))
    );
    let ev = a.chain(Input::ContractReceiveChannelPenalized {
        channel_id: cid(1),
        beneficiary: a.address(),
        amount: amt(150),
    });
    assert!(ev.iter().any(|e| matches!(e, Event::ChannelFinished { outcome: ChannelOutcome::Penalized { amount, .. }, .. } if *amount == amt(150))));
    assert!(a.state.pending_onchain.is_empty());
}

#[test]
fn honest_declaration_needs_nothing() {
    let (mut a, mut b) = pair();
    pay_and_deliver(&mut b, &mut a, 5, 1);
    let declared = a.channel(cid(1)).partner.balance();
    let ev = partner_closes(&mut a, &b, declared);
    assert!(contract_sends(&ev).is_empty());
    assert!(a.state.pending_onchain.is_empty());
    // Nothing received and nothing declared: nothing to do either.
    let (mut c, d) = {
        let mut c = Node::new(2);
        let mut d = Node::new(3);
        open_channel(&mut c, &mut d, 1, 10, 10);
        (c, d)
    };
    assert!(contract_sends(&partner_closes(&mut c, &d, Balance::default())).is_empty());
}

#[test]
fn the_penalty_rule_matches_the_contract() {
    let declared = Balance {
        nonce: Nonce(5),
        transferred_amount: amt(50),
        locked_amount: amt(3),
        locksroot: B256::repeat_byte(1),
    };
    // Higher nonce.
    assert!(proves_lie(
        &declared,
        &Balance {
            nonce: Nonce(6),
            ..declared
        }
    ));
    // Same nonce, any difference.
    assert!(!proves_lie(&declared, &declared));
    assert!(proves_lie(
        &declared,
        &Balance {
            transferred_amount: amt(49),
            ..declared
        }
    ));
    assert!(proves_lie(
        &declared,
        &Balance {
            locked_amount: amt(0),
            ..declared
        }
    ));
    assert!(proves_lie(
        &declared,
        &Balance {
            locksroot: B256::ZERO,
            ..declared
        }
    ));
    // Lower nonce: only with a higher transferred amount.
    assert!(proves_lie(
        &declared,
        &Balance {
            nonce: Nonce(4),
            transferred_amount: amt(51),
            ..declared
        }
    ));
    assert!(!proves_lie(
        &declared,
        &Balance {
            nonce: Nonce(4),
            transferred_amount: amt(50),
            ..declared
        }
    ));
    // Nothing received proves nothing.
    assert!(!proves_lie(&declared, &Balance::default()));
}

#[test]
fn withdraw_is_cosigned_and_counts_until_mined() {
    let (mut a, mut b) = pair();
    a.step(Input::ChainSynced {
        chain_time: time(0),
    });
    let ev = a.step(Input::ActionWithdraw {
        channel_id: cid(1),
        total_withdraw: amt(30),
    });
    assert_eq!(a.channel(cid(1)).our_capacity(), amt(70), "counted at once");
    let all = pump(&mut a, &mut b, ev);
    assert_eq!(
        b.channel(cid(1)).partner_capacity(),
        amt(70),
        "the partner counts it too"
    );
    assert!(invalid_reasons(&all).is_empty(), "{all:?}");
    let sends = contract_sends(&all);
    let [
        (
            id,
            ContractSend::Withdraw {
                total_withdraw,
                participant_signature,
                partner_signature,
                expiration,
                ..
            },
        ),
    ] = &sends[..]
    else {
        panic!("expected a withdraw: {all:?}");
    };
    assert_eq!(*total_withdraw, amt(30));
    // Both signatures verify over the contract's WithdrawProof digest.
    let data = smartmesh_wire::WithdrawData {
        chain_id: CHAIN,
        token_network: token_network(),
        channel_id: cid(1),
        participant: a.address(),
        total_withdraw: amt(30),
        expiration: time(*expiration),
    };
    let digest = a.ctx.domain.withdraw_digest(&data);
    assert_eq!(
        smartmesh_primitives::recover_signer(&digest, participant_signature),
        Ok(a.address())
    );
    assert_eq!(
        smartmesh_primitives::recover_signer(&digest, partner_signature),
        Ok(b.address())
    );
    // A second withdraw while one is pending is refused.
    let ev = a.step(Input::ActionWithdraw {
        channel_id: cid(1),
        total_withdraw: amt(40),
    });
    assert!(ev.iter().any(|e| matches!(e, Event::ActionRejected { .. })));
    // Mined.
    let mined = Input::ContractReceiveChannelWithdraw {
        channel_id: cid(1),
        participant: a.address(),
        total_withdraw: amt(30),
    };
    a.chain(mined.clone());
    b.chain(mined);
    assert!(!a.state.pending_onchain.contains_key(id));
    assert!(a.channel(cid(1)).our.pending_withdraw.is_none());
    assert_eq!(a.channel(cid(1)).our_capacity(), amt(70));
    assert_eq!(b.channel(cid(1)).partner_capacity(), amt(70));
}

#[test]
fn withdraw_beyond_capacity_is_refused_by_both() {
    let (mut a, mut b) = pair();
    let ev = a.step(Input::ActionWithdraw {
        channel_id: cid(1),
        total_withdraw: amt(101),
    });
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::ActionRejected {
            reason: ActionError::InsufficientCapacity { .. }
        }
    )));
    // A partner that asks for too much is refused.
    let ev = b.step(Input::ActionWithdraw {
        channel_id: cid(1),
        total_withdraw: amt(50),
    });
    // Meanwhile B's capacity shrinks... A pays nothing; B's own request is fine.
    let all = pump(&mut b, &mut a, ev);
    assert!(invalid_reasons(&all).is_empty());
}

#[test]
fn expired_withdraw_stops_counting_once_the_chain_is_past_it() {
    let (mut a, mut b) = pair();
    a.step(Input::Tick { now: time(100) });
    b.step(Input::Tick { now: time(100) });
    let ev = a.step(Input::ActionWithdraw {
        channel_id: cid(1),
        total_withdraw: amt(30),
    });
    pump(&mut a, &mut b, ev);
    let expiration = a
        .channel(cid(1))
        .our
        .pending_withdraw
        .as_ref()
        .expect("pending")
        .expiration;
    // The clock alone does not release it (the chain may have mined it unseen)...
    b.step(Input::Tick {
        now: time(expiration.0 + 10_000),
    });
    assert_eq!(b.channel(cid(1)).partner_capacity(), amt(70));
    // ...a synced chain past the expiration does.
    b.step(Input::ChainSynced {
        chain_time: expiration,
    });
    assert_eq!(b.channel(cid(1)).partner_capacity(), amt(100));
}

#[test]
fn cooperative_settle_is_cosigned_with_the_current_balances() {
    let (mut a, mut b) = pair();
    pay_and_deliver(&mut a, &mut b, 30, 1);
    pay_and_deliver(&mut b, &mut a, 5, 2);
    a.step(Input::ChainSynced {
        chain_time: time(1),
    });
    let ev = a.step(Input::ActionCooperativeSettle { channel_id: cid(1) });
    assert_eq!(a.channel(cid(1)).status, ChannelStatus::Settling);
    let all = pump(&mut a, &mut b, ev);
    assert!(invalid_reasons(&all).is_empty(), "{all:?}");
    assert_eq!(b.channel(cid(1)).status, ChannelStatus::Settling);
    let sends = contract_sends(&all);
    let [
        (
            _,
            ContractSend::CooperativeSettle {
                balance1,
                balance2,
                signature1,
                signature2,
                ..
            },
        ),
    ] = &sends[..]
    else {
        panic!("expected a cooperative settle: {all:?}");
    };
    assert_eq!((*balance1, *balance2), (amt(75), amt(75)));
    let data = smartmesh_wire::CooperativeSettleData {
        chain_id: CHAIN,
        token_network: token_network(),
        channel_id: cid(1),
        participant1: a.address(),
        balance1: amt(75),
        participant2: b.address(),
        balance2: amt(75),
    };
    let digest = a.ctx.domain.cooperative_settle_digest(&data);
    assert_eq!(
        smartmesh_primitives::recover_signer(&digest, signature1),
        Ok(a.address())
    );
    assert_eq!(
        smartmesh_primitives::recover_signer(&digest, signature2),
        Ok(b.address())
    );
    // No transfers while settling.
    let ev = b.step(Input::ActionDirectTransfer {
        via: TransferVia::Channel(cid(1)),
        amount: amt(1),
        payment_id: 3,
    });
    assert!(ev.iter().any(|e| matches!(e, Event::PaymentFailed { .. })));
    let done = Input::ContractReceiveChannelCooperativeSettled {
        channel_id: cid(1),
        amount1: amt(75),
        amount2: amt(75),
    };
    let ev = b.chain(done);
    assert!(ev.contains(&Event::ChannelFinished {
        channel_id: cid(1),
        outcome: ChannelOutcome::CooperativelySettled {
            ours: amt(75),
            partner: amt(75)
        },
    }));
}

#[test]
fn cooperative_settle_with_different_views_is_refused() {
    let (mut a, mut b) = pair();
    // B pays A, but the message has not arrived when A proposes.
    let in_flight = b.step(Input::ActionDirectTransfer {
        via: TransferVia::Channel(cid(1)),
        amount: amt(5),
        payment_id: 1,
    });
    assert!(!in_flight.is_empty());
    let ev = a.step(Input::ActionCooperativeSettle { channel_id: cid(1) });
    let all = pump(&mut a, &mut b, ev);
    assert!(
        matches!(invalid_reasons(&all)[..], [InvalidReason::Unacceptable(_)]),
        "{all:?}"
    );
    assert!(contract_sends(&all).is_empty());
    // A can still close.
    let ev = a.step(Input::ActionClose { channel_id: cid(1) });
    assert!(!ev.iter().any(|e| matches!(e, Event::ActionRejected { .. })));
}
