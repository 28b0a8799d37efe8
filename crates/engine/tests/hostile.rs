//! Hostile input never panics: genuine messages with random byte mutations (re-decoded,
//! so only canonical messages reach the engine), random senders, and chain events with
//! random values. Every refusal is an `InvalidReceived` or an `ActionRejected`, and the
//! state stays coherent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use proptest::prelude::*;
use smartmesh_engine::*;
use smartmesh_primitives::{Address, B256, ChainTime, keccak256};
use smartmesh_wire::{Message, decode};

/// Genuine messages of every kind that A, B and C exchange on a small line.
fn genuine_messages() -> (Network, Vec<(usize, usize, Message)>) {
    let mut net = Network::new(3);
    net.open(0, 1, 1, 100, 100);
    net.open(1, 2, 2, 100, 100);
    net.chain(Input::ChainSynced {
        chain_time: time(1),
    });
    net.tick(1);
    let mut log = Vec::new();
    let b = net.addr(1);
    net.step(
        0,
        Input::ActionDirectTransfer {
            via: TransferVia::Partner(b),
            amount: amt(5),
            payment_id: 1,
        },
    );
    let c = net.addr(2);
    net.step(
        0,
        Input::ActionMediatedTransfer {
            target: c,
            amount: amt(7),
            payment_id: 2,
            secret: keccak256(b"s"),
        },
    );
    net.step(
        1,
        Input::ActionWithdraw {
            channel_id: cid(1),
            total_withdraw: amt(3),
        },
    );
    while let Some((from, to, message)) = net.bus.pop_front() {
        log.push((from, to, message.clone()));
        let sender = net.addr(from);
        net.step(to, Input::ReceiveMessage { sender, message });
    }
    net.step(2, Input::ActionCooperativeSettle { channel_id: cid(2) });
    while let Some((from, to, message)) = net.bus.pop_front() {
        log.push((from, to, message.clone()));
        let sender = net.addr(from);
        net.step(to, Input::ReceiveMessage { sender, message });
    }
    (net, log)
}

fn coherent(node: &Node) {
    for ch in node.state.channels.values() {
        assert!(ChannelState::distributable(&ch.our, &ch.partner).is_some());
        assert!(ChannelState::distributable(&ch.partner, &ch.our).is_some());
        assert_eq!(
            smartmesh_wire::locksroot(&ch.partner.locks),
            ch.partner.locksroot()
        );
        assert_eq!(smartmesh_wire::locksroot(&ch.our.locks), ch.our.locksroot());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic(
        picks in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), 0usize..4), 1..40),
    ) {
        let (_, log) = genuine_messages();
        prop_assume!(!log.is_empty());
        // Fresh receivers at the state before any message arrived.
        let (mut net, _) = {
            let mut net = Network::new(3);
            net.open(0, 1, 1, 100, 100);
            net.open(1, 2, 2, 100, 100);
            net.tick(1);
            (net, ())
        };
        let stranger = key(9).address();
        for (pick, flips, sender_choice) in picks {
            let (from, to, message) = log[pick.index(log.len())].clone();
            let mut bytes = message.encode();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let Ok(message) = decode(&bytes) else { continue };
            let sender = match sender_choice {
                0 => stranger,
                1 => net.addr((from + 1) % 3),
                _ => net.addr(from),
            };
            net.step(to, Input::ReceiveMessage { sender, message });
            coherent(&net.nodes[to]);
        }
    }

    #[test]
    fn random_chain_events_never_panic(
        events in prop::collection::vec((0u8..8, 0u64..4, 0usize..4, any::<u64>(), any::<u64>(), any::<u64>()), 1..40),
    ) {
        let mut net = Network::new(2);
        net.open(0, 1, 1, 100, 100);
        let who = |i: usize, net: &Network| if i < 2 { net.addr(i) } else { Address::repeat_byte(i as u8) };
        for (kind, channel, participant, x, y, z) in events {
            let channel_id = cid(channel);
            let participant = who(participant, &net);
            let balance = |n: u64, t: u64| Balance { nonce: smartmesh_primitives::Nonce(n % 5), transferred_amount: amt(u128::from(t % 300)), ..Balance::default() };
            let input = match kind {
                0 => Input::ContractReceiveChannelOpened { channel_id, participant1: participant, participant2: who((x % 3) as usize, &net), settle_timeout: y },
                1 => Input::ContractReceiveChannelDeposit { channel_id, participant, total_deposit: amt(u128::from(x)) },
                2 => Input::ContractReceiveChannelWithdraw { channel_id, participant, total_withdraw: amt(u128::from(x)) },
                3 => Input::ContractReceiveChannelClosed { channel_id, closer: participant, closed_at: ChainTime(x), closer_balance: balance(y, z), partner_balance: balance(z, y) },
                4 => Input::ContractReceiveChannelSettled { channel_id, amount1: amt(u128::from(x)), amount2: amt(u128::from(y)) },
                5 => Input::ContractReceiveChannelPenalized { channel_id, beneficiary: participant, amount: amt(u128::from(x)) },
                6 => Input::ContractReceiveSecretRevealed { secrethash: keccak256(x.to_be_bytes()), secret: B256::from(smartmesh_primitives::U256::from(x)), revealed_at: ChainTime(y) },
                _ => Input::Tick { now: ChainTime(x) },
            };
            // Chain events are trusted (they come from the contract), so impossible
            // values may make capacities meaningless; they must still never panic.
            net.chain(input);
        }
    }
}
