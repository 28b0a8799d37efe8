//! Engine-only throughput of direct transfers between two nodes (no storage, no
//! network): `cargo run --release -p smartmesh-engine --example throughput`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use smartmesh_engine::*;
use smartmesh_primitives::{Address, ChainId, ChannelId, PrivateKey, TokenAmount, U256};
use smartmesh_wire::Message;
use std::time::Instant;

fn node(i: u8) -> (NodeState, Context) {
    let mut bytes = [7u8; 32];
    bytes[31] = i;
    let key = PrivateKey::from_bytes(&bytes).expect("key");
    let state = NodeState::new(
        key.address(),
        ChainId(1),
        Address::repeat_byte(1),
        EngineConfig::default(),
    );
    let ctx = Context::new(key, &state);
    (state, ctx)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let (mut a, actx) = node(1);
    let (mut b, bctx) = node(2);
    let id = ChannelId(U256::from(1));
    for (s, c) in [(&mut a, &actx), (&mut b, &bctx)] {
        let (p1, p2) = (actx.key.address(), bctx.key.address());
        transition(
            s,
            c,
            Input::ContractReceiveChannelOpened {
                channel_id: id,
                participant1: p1,
                participant2: p2,
                settle_timeout: 100,
            },
        );
        transition(
            s,
            c,
            Input::ContractReceiveChannelDeposit {
                channel_id: id,
                participant: p1,
                total_deposit: TokenAmount::from_u128(u128::MAX),
            },
        );
    }
    let (mut send, mut recv, mut ack) = (0f64, 0f64, 0f64);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let ev = transition(
            &mut a,
            &actx,
            Input::ActionDirectTransfer {
                via: TransferVia::Channel(id),
                amount: TokenAmount::from_u128(1),
                payment_id: i,
            },
        );
        send += t.elapsed().as_secs_f64();
        let Some(Event::SendMessage { message, .. }) = ev.into_iter().next() else {
            panic!("no message")
        };
        let bytes = message.encode();
        let t = Instant::now();
        let message = smartmesh_wire::decode(&bytes).expect("decodes");
        let ev = transition(
            &mut b,
            &bctx,
            Input::ReceiveMessage {
                sender: actx.key.address(),
                message,
            },
        );
        recv += t.elapsed().as_secs_f64();
        let ack_msg = ev
            .into_iter()
            .find_map(|e| match e {
                Event::SendMessage {
                    message: m @ Message::Ack(_),
                    ..
                } => Some(m),
                _ => None,
            })
            .expect("ack");
        let t = Instant::now();
        transition(
            &mut a,
            &actx,
            Input::ReceiveMessage {
                sender: bctx.key.address(),
                message: ack_msg,
            },
        );
        ack += t.elapsed().as_secs_f64();
    }
    let total = start.elapsed().as_secs_f64();
    let per = |x: f64| x / n as f64 * 1e6;
    println!(
        "transfers={n} total_s={total:.3} serial_tps={:.0}",
        n as f64 / total
    );
    println!(
        "sender_us={:.1} receiver_us={:.1} ack_us={:.2}",
        per(send),
        per(recv),
        per(ack)
    );
    // The signing limit: one sign + one recover on one core.
    let digest = smartmesh_primitives::keccak256(b"x");
    let t = Instant::now();
    let mut sig = actx.key.sign_digest(&digest);
    for i in 0..2000u32 {
        sig = actx
            .key
            .sign_digest(&smartmesh_primitives::keccak256(i.to_be_bytes()));
    }
    let sign_us = t.elapsed().as_secs_f64() / 2000.0 * 1e6;
    let t = Instant::now();
    for _ in 0..2000 {
        let _ = smartmesh_primitives::recover_signer(&digest, &sig);
    }
    let recover_us = t.elapsed().as_secs_f64() / 2000.0 * 1e6;
    let sample = transition(
        &mut a,
        &actx,
        Input::ActionDirectTransfer {
            via: TransferVia::Channel(id),
            amount: TokenAmount::from_u128(1),
            payment_id: 0,
        },
    );
    if let Some(Event::SendMessage { message, .. }) = sample.into_iter().next() {
        let t = Instant::now();
        for _ in 0..2000 {
            let _ = message.verify(&bctx.domain);
        }
        println!(
            "message.verify_us={:.1}",
            t.elapsed().as_secs_f64() / 2000.0 * 1e6
        );
        let t = Instant::now();
        for _ in 0..2000 {
            let _ = message.message_hash();
        }
        println!(
            "message_hash_us={:.2}",
            t.elapsed().as_secs_f64() / 2000.0 * 1e6
        );
    }
    println!("raw sign_us={sign_us:.1} recover_us={recover_us:.1}");
    println!(
        "pipelined_tps (sender and receiver on separate cores) = {:.0}",
        1e6 / per(send).max(per(recv) + per(ack))
    );
}
