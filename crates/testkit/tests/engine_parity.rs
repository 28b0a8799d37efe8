//! The channel engine against the real TokenNetwork on the embedded chain (revm): the proofs
//! it signs and the close, penalty and settle actions it emits are accepted by the
//! contract, and the contract pays exactly what `settlement_amounts` predicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use smartmesh_chain::token_network::Balance as ChainBalance;
use smartmesh_contracts::TokenNetwork;
use smartmesh_engine::*;
use smartmesh_primitives::{Bytes, ChainTime, ChannelId, PrivateKey, TokenAmount, U256};
use smartmesh_testkit::flows::events;
use smartmesh_testkit::{Lifecycle, SETTLE_TIMEOUT, SignedBalance};
use smartmesh_wire::Message;

struct Engine {
    state: NodeState,
    ctx: Context,
}

impl Engine {
    fn new(key: &PrivateKey, lc: &Lifecycle) -> Self {
        let state = NodeState::new(
            key.address(),
            lc.deployment.chain_id,
            lc.deployment.token_network,
            EngineConfig::default(),
        );
        let ctx = Context::new(key.clone(), &state);
        Self { state, ctx }
    }

    fn step(&mut self, input: Input) -> Vec<Event> {
        transition(&mut self.state, &self.ctx, input)
    }
}

fn to_chain(b: &Balance) -> ChainBalance {
    ChainBalance {
        nonce: b.nonce.0,
        transferredAmount: b.transferred_amount.0,
        lockedAmount: b.locked_amount.0,
        locksroot: b.locksroot,
    }
}

fn from_chain(b: &ChainBalance) -> Balance {
    Balance {
        nonce: smartmesh_primitives::Nonce(b.nonce),
        transferred_amount: TokenAmount(b.transferredAmount),
        locked_amount: TokenAmount(b.lockedAmount),
        locksroot: b.locksroot,
    }
}

fn signed(p: &SignedBalanceProof) -> SignedBalance {
    SignedBalance {
        balance: to_chain(&p.balance()),
        message_hash: p.message_hash,
        signature: Bytes::copy_from_slice(p.signature.as_bytes()),
    }
}

/// Pays `amount` from `from` to `to` and delivers the message and the ack.
fn pay(from: &mut Engine, to: &mut Engine, amount: u128, payment_id: u64) {
    let partner = to.state.our_address;
    let ev = from.step(Input::ActionDirectTransfer {
        via: TransferVia::Partner(partner),
        amount: TokenAmount::from_u128(amount),
        payment_id,
    });
    for e in ev {
        if let Event::SendMessage { message, .. } = e {
            // Across the wire and back.
            let message = smartmesh_wire::decode(&message.encode()).expect("decodes");
            let out = to.step(Input::ReceiveMessage {
                sender: from.state.our_address,
                message,
            });
            assert!(
                out.iter()
                    .any(|e| matches!(e, Event::PaymentReceived { .. })),
                "{out:?}"
            );
            for e in out {
                if let Event::SendMessage {
                    message: ack @ Message::Ack(_),
                    ..
                } = e
                {
                    from.step(Input::ReceiveMessage {
                        sender: partner,
                        message: ack,
                    });
                }
            }
        }
    }
}

/// A channel between two engines with deposits, known on chain and to both engines.
async fn setup(deposit_a: u64, deposit_b: u64) -> (Lifecycle, Engine, Engine, U256) {
    let mut lc = Lifecycle::embedded(2).await.expect("embedded chain");
    let (ka, kb) = (lc.keys[0].clone(), lc.keys[1].clone());
    let (id, _) = lc.open(&ka, &kb).await.expect("open");
    lc.deposit(id, &ka, U256::from(deposit_a))
        .await
        .expect("deposit a");
    lc.deposit(id, &kb, U256::from(deposit_b))
        .await
        .expect("deposit b");
    let mut a = Engine::new(&ka, &lc);
    let mut b = Engine::new(&kb, &lc);
    let now = ChainTime(lc.now().await.expect("time"));
    for e in [&mut a, &mut b] {
        e.step(Input::ChainSynced { chain_time: now });
        e.step(Input::ContractReceiveChannelOpened {
            channel_id: ChannelId(id),
            participant1: ka.address(),
            participant2: kb.address(),
            settle_timeout: SETTLE_TIMEOUT,
        });
        for (who, total) in [(ka.address(), deposit_a), (kb.address(), deposit_b)] {
            e.step(Input::ContractReceiveChannelDeposit {
                channel_id: ChannelId(id),
                participant: who,
                total_deposit: TokenAmount::from_u128(u128::from(total)),
            });
        }
    }
    (lc, a, b, id)
}

fn closed_input(lc: &Lifecycle, id: U256) -> Input {
    let ch = lc.channel(id).expect("closed channel is tracked");
    Input::ContractReceiveChannelClosed {
        channel_id: ChannelId(id),
        closer: ch.closer,
        closed_at: ChainTime(ch.closedAt),
        closer_balance: from_chain(&ch.closerBalance),
        partner_balance: from_chain(&ch.partnerBalance),
    }
}

fn only_action(events: &[Event]) -> ContractSend {
    let actions: Vec<ContractSend> = events
        .iter()
        .filter_map(|e| match e {
            Event::ContractSend { action, .. } => Some(action.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(actions.len(), 1, "{events:?}");
    actions.into_iter().next().expect("one")
}

#[tokio::test]
async fn engine_close_and_settle_pay_what_the_engine_predicted() {
    let (mut lc, mut a, mut b, id) = setup(1_000, 700).await;
    let (ka, kb) = (lc.keys[0].clone(), lc.keys[1].clone());
    for (i, amount) in [120u128, 5, 77, 300].into_iter().enumerate() {
        pay(&mut a, &mut b, amount, i as u64);
    }
    for (i, amount) in [40u128, 650].into_iter().enumerate() {
        pay(&mut b, &mut a, amount, 100 + i as u64);
    }
    pay(&mut a, &mut b, 1, 200);
    // A closes with what its engine says.
    let ContractSend::Close {
        partner_proof,
        our_declared,
        ..
    } = only_action(&a.step(Input::ActionClose {
        channel_id: ChannelId(id),
    }))
    else {
        panic!("close expected");
    };
    let proof = partner_proof.expect("B paid A");
    lc.close(id, &ka, Some(&signed(&proof)), &to_chain(&our_declared))
        .await
        .expect("the contract accepts the close");
    let closed = closed_input(&lc, id);
    a.step(closed.clone());
    // B sees an honest declaration: nothing to do.
    let ev = b.step(closed);
    assert!(
        !ev.iter().any(|e| matches!(e, Event::ContractSend { .. })),
        "{ev:?}"
    );
    // Predicted settlement from either engine's ledger.
    let deposits = Deposits {
        deposit1: TokenAmount::from_u128(1_000),
        deposit2: TokenAmount::from_u128(700),
        ..Deposits::default()
    };
    let ch_a = a.state.channels[&ChannelId(id)].clone();
    let ch_b = b.state.channels[&ChannelId(id)].clone();
    let predicted =
        settlement_amounts(&deposits, &ch_a.our.balance(), &ch_a.partner.balance()).expect("valid");
    let predicted_b =
        settlement_amounts(&deposits, &ch_b.partner.balance(), &ch_b.our.balance()).expect("valid");
    assert_eq!(predicted, predicted_b);
    // 1000 - 503 + 690 = 1187 and 700 - 690 + 503 = 513.
    assert_eq!(predicted.amount1, TokenAmount::from_u128(1_187));
    assert_eq!(predicted.amount2, TokenAmount::from_u128(513));

    let before = (
        lc.smt_balance(ka.address()).await.expect("bal"),
        lc.smt_balance(kb.address()).await.expect("bal"),
    );
    let receipt = lc.settle(id, &kb).await.expect("settle");
    let settled = events::<TokenNetwork::ChannelSettled>(&receipt);
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].amount1, predicted.amount1.0);
    assert_eq!(settled[0].amount2, predicted.amount2.0);
    let after = (
        lc.smt_balance(ka.address()).await.expect("bal"),
        lc.smt_balance(kb.address()).await.expect("bal"),
    );
    assert_eq!(after.0 - before.0, predicted.amount1.0);
    assert_eq!(after.1 - before.1, predicted.amount2.0);
    let ev = a.step(Input::ContractReceiveChannelSettled {
        channel_id: ChannelId(id),
        amount1: TokenAmount(settled[0].amount1),
        amount2: TokenAmount(settled[0].amount2),
    });
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ChannelFinished { .. }))
    );
    assert!(a.state.pending_onchain.is_empty());
}

#[tokio::test]
async fn stale_declaration_penalty_pays_the_victim_the_whole_deposit() {
    let (mut lc, mut a, mut b, id) = setup(500, 300).await;
    let (ka, kb) = (lc.keys[0].clone(), lc.keys[1].clone());
    pay(&mut b, &mut a, 50, 1);
    let stale = b.state.channels[&ChannelId(id)].our.balance();
    pay(&mut b, &mut a, 60, 2);
    pay(&mut a, &mut b, 10, 3);
    // B closes pretending it only sent its first transfer.
    let a_proof = b.state.channels[&ChannelId(id)]
        .partner
        .proof
        .clone()
        .expect("A paid B");
    lc.close(id, &kb, Some(&signed(&a_proof)), &to_chain(&stale))
        .await
        .expect("close");
    let ContractSend::Penalty { closer_proof, .. } = only_action(&a.step(closed_input(&lc, id)))
    else {
        panic!("penalty expected");
    };
    let before = lc.smt_balance(ka.address()).await.expect("bal");
    let receipt = lc
        .update(id, &ka, &signed(&closer_proof))
        .await
        .expect("the contract accepts the penalty");
    let penalized = events::<TokenNetwork::ChannelPenalized>(&receipt);
    assert_eq!(penalized.len(), 1);
    assert_eq!(penalized[0].beneficiary, ka.address());
    assert_eq!(penalized[0].amount, U256::from(800));
    assert_eq!(
        lc.smt_balance(ka.address()).await.expect("bal") - before,
        U256::from(800)
    );
    let ev = a.step(Input::ContractReceiveChannelPenalized {
        channel_id: ChannelId(id),
        beneficiary: ka.address(),
        amount: TokenAmount::from_u128(800),
    });
    assert!(ev.contains(&Event::ChannelFinished {
        channel_id: ChannelId(id),
        outcome: ChannelOutcome::Penalized {
            beneficiary: ka.address(),
            amount: TokenAmount::from_u128(800)
        },
    }));
}
