//! In-process N-node networks on the embedded chain: real storage in temp dirs, the
//! real contracts, a `MemoryNetwork` between nodes and a shared `ManualClock`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Net, amount, eventually};
use smartmesh_engine::{ChainStatus, ChannelStatus, FeeSchedule, PaymentFailure};
use smartmesh_node::PaymentStatus;
use smartmesh_primitives::{ChannelId, TokenAmount, U256};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn u(v: TokenAmount) -> u128 {
    v.0.to::<u128>()
}

/// Closes every channel from node `closer[k]`, moves time past the settle timeout,
/// and waits until every node saw its channels settled.
async fn close_and_settle(net: &Net, channels: &[(usize, usize, ChannelId)]) {
    for &(closer, _, id) in channels {
        net.node(closer).close(id).await.expect("close");
    }
    for &(closer, other, id) in channels {
        for k in [closer, other] {
            let node = net.node(k).clone();
            eventually("channel closed", WAIT, || {
                let node = node.clone();
                async move {
                    let ch = node.channel(id).await.ok()??;
                    matches!(ch.status, ChannelStatus::Closed | ChannelStatus::Settled)
                        .then_some(())
                }
            })
            .await;
        }
    }
    net.advance(700);
    for &(closer, other, id) in channels {
        for k in [closer, other] {
            let node = net.node(k).clone();
            eventually("channel settled", WAIT, || {
                let node = node.clone();
                async move {
                    let ch = node.channel(id).await.ok()??;
                    (ch.status == ChannelStatus::Settled).then_some(())
                }
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_transfer_and_settlement_match_the_ledger() {
    let mut net = Net::new(2).await;
    let id = net.open(0, 1, 1_000, 500).await;
    let before = (net.smt(0).await, net.smt(1).await);
    let pid = net
        .node(0)
        .pay_direct(net.addr(1), amount(100))
        .await
        .expect("pay");
    let sent = net.node(0).wait_payment(pid, WAIT).await.expect("sent");
    assert_eq!(
        sent,
        PaymentStatus::Sent {
            target: net.addr(1),
            amount: amount(100)
        }
    );
    let received = net.node(1).wait_payment(pid, WAIT).await.expect("received");
    assert_eq!(
        received,
        PaymentStatus::Received {
            initiator: net.addr(0),
            amount: amount(100)
        }
    );
    let pid = net
        .node(1)
        .pay_direct(net.addr(0), amount(30))
        .await
        .expect("pay back");
    net.node(0)
        .wait_payment(pid, WAIT)
        .await
        .expect("received back");
    let a = net.channel(0, id).await;
    assert_eq!(u(a.our_capacity()), 930);
    assert_eq!(u(a.partner_capacity()), 570);
    // Too much is refused without a payment going out.
    let err = net
        .node(0)
        .pay_direct(net.addr(1), amount(10_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, smartmesh_node::NodeError::Rejected(_)),
        "{err}"
    );

    close_and_settle(&net, &[(0, 1, id)]).await;
    let after = (net.smt(0).await, net.smt(1).await);
    // On chain, to the unit: A gets 1000 - 100 + 30, B gets 500 + 100 - 30.
    assert_eq!(after.0 - before.0, U256::from(930));
    assert_eq!(after.1 - before.1, U256::from(570));
    net.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hop_mediated_transfer_pays_exact_fees_and_settles_to_the_unit() {
    let mut net = Net::new(4).await;
    let fees = [(1usize, 2u128, 1_000u64), (2, 1, 0)];
    for (node, flat, ppm) in fees {
        net.announce_fee(node, flat, ppm).await;
    }
    let ab = net.open(0, 1, 10_000, 0).await;
    let bc = net.open(1, 2, 10_000, 0).await;
    let cd = net.open(2, 3, 10_000, 0).await;
    let before: Vec<U256> = [0, 1, 2, 3].iter().map(|_| U256::ZERO).collect();
    let mut before = before;
    for (i, b) in before.iter_mut().enumerate() {
        *b = net.smt(i).await;
    }

    let pay = 1_000u128;
    let fee_c = FeeSchedule {
        flat: amount(1),
        proportional_ppm: 0,
    };
    let fee_b = FeeSchedule {
        flat: amount(2),
        proportional_ppm: 1_000,
    };
    let into_c = u(fee_c.incoming_for(amount(pay)).expect("fee"));
    let into_b = u(fee_b.incoming_for(amount(into_c)).expect("fee"));
    assert_eq!(into_c, 1_001);
    assert_eq!(into_b, 1_005); // 2 + ceil(1001 * 1000 / 1e6) = 4

    let pid = net
        .node(0)
        .pay_mediated(net.addr(3), amount(pay))
        .await
        .expect("pay");
    let sent = net.node(0).wait_payment(pid, WAIT).await.expect("sent");
    assert_eq!(
        sent,
        PaymentStatus::Sent {
            target: net.addr(3),
            amount: amount(pay)
        }
    );
    let got = net.node(3).wait_payment(pid, WAIT).await.expect("received");
    assert_eq!(
        got,
        PaymentStatus::Received {
            initiator: net.addr(0),
            amount: amount(pay)
        }
    );
    for (node, received, paid) in [(1, into_b, into_c), (2, into_c, pay)] {
        let status = net
            .node(node)
            .wait_payment(pid, WAIT)
            .await
            .expect("mediated");
        assert_eq!(
            status,
            PaymentStatus::Mediated {
                received: amount(received),
                paid: amount(paid)
            },
            "mediator {node} earns exactly its fee"
        );
    }
    // Wait for the unlocks to land everywhere (no pending locks).
    for (i, id) in [(0, ab), (1, bc), (2, cd)] {
        let node = net.node(i).clone();
        eventually("unlocked", WAIT, || {
            let node = node.clone();
            async move {
                let ch = node.channel(id).await.ok()??;
                (ch.our.locks.is_empty() && ch.our.locked().is_zero()).then_some(())
            }
        })
        .await;
    }
    close_and_settle(&net, &[(0, 1, ab), (1, 2, bc), (2, 3, cd)]).await;
    let mut delta = Vec::new();
    for (i, b) in before.iter().enumerate() {
        delta.push(net.smt(i).await - *b);
    }
    // A deposited 10,000 and paid 1,005; B deposited 10,000 into B–C, got 1,005, paid
    // 1,001; C deposited 10,000 into C–D, got 1,001, paid 1,000; D got 1,000.
    assert_eq!(delta[0], U256::from(10_000 - into_b));
    assert_eq!(delta[1], U256::from(10_000 + into_b - into_c));
    assert_eq!(delta[2], U256::from(10_000 + into_c - pay));
    assert_eq!(delta[3], U256::from(pay));
    net.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_expires_when_the_target_does_not_answer() {
    let mut net = Net::new(3).await;
    let ab = net.open(0, 1, 1_000, 0).await;
    let bc = net.open(1, 2, 1_000, 0).await;
    // The target goes offline before the payment.
    net.stop(2).await;
    let pid = net
        .node(0)
        .pay_mediated(net.addr(2), amount(100))
        .await
        .expect("pay");
    let node = net.node(1).clone();
    eventually("mediator forwarded", WAIT, || {
        let node = node.clone();
        async move {
            node.query(|s| !s.payments.mediated.is_empty())
                .await
                .ok()?
                .then_some(())
        }
    })
    .await;
    // Hours of node time pass without an answer.
    for _ in 0..4 {
        net.advance(600);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let status = net.node(0).wait_payment(pid, WAIT).await.expect("final");
    assert_eq!(status, PaymentStatus::Failed(PaymentFailure::LockExpired));
    let status = net.node(1).wait_payment(pid, WAIT).await.expect("final");
    assert_eq!(
        status,
        PaymentStatus::Mediated {
            received: amount(0),
            paid: amount(0)
        }
    );
    let a = net.channel(0, ab).await;
    assert_eq!(
        u(a.our_capacity()),
        1_000,
        "the expired lock returned to the initiator"
    );
    let b = net.channel(1, bc).await;
    assert_eq!(u(b.our_capacity()), 1_000);
    net.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediator_restarted_mid_transfer_completes_it() {
    let mut net = Net::new(3).await;
    net.open(0, 1, 1_000, 0).await;
    net.open(1, 2, 1_000, 0).await;
    // Hold the target off the network so the transfer stops at the mediator.
    net.net.set_online(net.addr(2), false);
    let pid = net
        .node(0)
        .pay_mediated(net.addr(2), amount(77))
        .await
        .expect("pay");
    let node = net.node(1).clone();
    eventually("mediator holds the lock", WAIT, || {
        let node = node.clone();
        async move {
            node.query(|s| !s.payments.mediated.is_empty() && !s.queued_messages.is_empty())
                .await
                .ok()?
                .then_some(())
        }
    })
    .await;
    // Restart the mediator from its data directory.
    net.stop(1).await;
    net.net.set_online(net.addr(2), true);
    net.start(1).await;
    let sent = net.node(0).wait_payment(pid, WAIT).await.expect("sent");
    assert_eq!(
        sent,
        PaymentStatus::Sent {
            target: net.addr(2),
            amount: amount(77)
        }
    );
    let got = net.node(2).wait_payment(pid, WAIT).await.expect("received");
    assert_eq!(
        got,
        PaymentStatus::Received {
            initiator: net.addr(0),
            amount: amount(77)
        }
    );
    let mediated = net.node(1).wait_payment(pid, WAIT).await.expect("mediated");
    assert_eq!(
        mediated,
        PaymentStatus::Mediated {
            received: amount(77),
            paid: amount(77)
        }
    );
    net.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_unreachable_for_hours_then_sync_and_settle() {
    let mut net = Net::new(2).await;
    let id = net.open(0, 1, 5_000, 5_000).await;
    let before = (net.smt(0).await, net.smt(1).await);
    net.chain.set_reachable(false);
    for i in 0..2 {
        let node = net.node(i).clone();
        eventually("unreachable seen", WAIT, || {
            let node = node.clone();
            async move { (node.chain_status().await.ok()? == ChainStatus::Unreachable).then_some(()) }
        })
        .await;
    }
    // Six hours of node time (and chain time, unseen) with payments both ways.
    let (mut a_to_b, mut b_to_a) = (0u128, 0u128);
    for step in 0..36u128 {
        net.advance(600);
        let (from, to, amt) = if step % 3 == 0 {
            (1, 0, 7 + step)
        } else {
            (0, 1, 11 + step)
        };
        let pid = net
            .node(from)
            .pay_direct(net.addr(to), amount(amt))
            .await
            .expect("pay offline");
        net.node(to)
            .wait_payment(pid, WAIT)
            .await
            .expect("received offline");
        if from == 0 {
            a_to_b += amt
        } else {
            b_to_a += amt
        }
    }
    // Closing is queued while the chain is away.
    net.node(0).close(id).await.expect("close queued");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(net.channel(0, id).await.status, ChannelStatus::Closing);
    assert!(net.chain_access_channel_open(id));
    net.chain.set_reachable(true);
    for i in 0..2 {
        let node = net.node(i).clone();
        eventually("synced and closed", WAIT, || {
            let node = node.clone();
            async move {
                let s = node.state().await.ok()?;
                let closed = matches!(s.channels.get(&id)?.status, ChannelStatus::Closed);
                (s.chain_status == ChainStatus::Synced && closed).then_some(())
            }
        })
        .await;
    }
    net.advance(700);
    for i in 0..2 {
        let node = net.node(i).clone();
        eventually("settled", WAIT, || {
            let node = node.clone();
            async move { (node.channel(id).await.ok()??.status == ChannelStatus::Settled).then_some(()) }
        })
        .await;
    }
    let after = (net.smt(0).await, net.smt(1).await);
    assert_eq!(after.0 - before.0, U256::from(5_000 - a_to_b + b_to_a));
    assert_eq!(after.1 - before.1, U256::from(5_000 + a_to_b - b_to_a));
    net.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_close_is_punished_with_the_whole_deposit() {
    use smartmesh_chain::TxRequest;
    use smartmesh_chain::token_network::{calls, no_balance};
    use smartmesh_node::chain_io::to_chain;

    let mut net = Net::new(2).await;
    let id = net.open(0, 1, 1_000, 500).await;
    // B pays A twice; it will pretend only the first happened.
    let pid = net
        .node(1)
        .pay_direct(net.addr(0), amount(50))
        .await
        .expect("pay");
    net.node(0).wait_payment(pid, WAIT).await.expect("received");
    let stale = net.channel(1, id).await.our.balance();
    let pid = net
        .node(1)
        .pay_direct(net.addr(0), amount(60))
        .await
        .expect("pay");
    net.node(0).wait_payment(pid, WAIT).await.expect("received");
    // B's node goes away; B closes by hand with its stale declaration.
    net.stop(1).await;
    let ch = net.node(0).chain_access().channel(id).expect("tracked");
    let data = calls::close(
        id.0,
        &ch,
        no_balance(),
        Default::default(),
        Default::default(),
        to_chain(&stale),
    );
    let before = net.smt(0).await;
    net.lc
        .chain
        .send(
            &net.keys[1],
            TxRequest::call(net.lc.deployment.token_network, data),
        )
        .await
        .expect("the lying close is mined");
    // A's node sees it, proves the lie, and takes everything.
    let node = net.node(0).clone();
    let outcome = eventually("penalty", WAIT, || {
        let node = node.clone();
        async move { node.channel(id).await.ok()??.outcome }
    })
    .await;
    assert_eq!(
        outcome,
        smartmesh_engine::ChannelOutcome::Penalized {
            beneficiary: net.addr(0),
            amount: amount(1_500)
        }
    );
    assert_eq!(net.smt(0).await - before, U256::from(1_500));
    net.shutdown_all().await;
}
