//! Property test: random direct and mediated payments across a small mesh with an
//! unreliable bus (reorders, duplicates, drops, acks included) and a simulated chain
//! that mines secret registrations. Checks: no payment or lock is paid twice, capacities
//! never go negative in anyone's view, every held proof verifies on-chain style, and
//! once time has passed and the bus is drained every lock is resolved, both sides of
//! every channel agree, and each node's ledger equals what its events say it earned
//! and paid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use proptest::prelude::*;
use smartmesh_engine::*;
use smartmesh_primitives::{B256, TokenAmount, keccak256, recover_signer};
use smartmesh_wire::Message;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Op {
    Direct {
        from: usize,
        off: usize,
        amount: u128,
    },
    Mediated {
        from: usize,
        off: usize,
        amount: u128,
    },
    Deliver(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Drop(prop::sample::Index),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..4, 1usize..4, 1u128..40).prop_map(|(from, off, amount)| Op::Direct { from, off, amount }),
        3 => (0usize..4, 1usize..4, 1u128..40).prop_map(|(from, off, amount)| Op::Mediated { from, off, amount }),
        12 => any::<prop::sample::Index>().prop_map(Op::Deliver),
        1 => any::<prop::sample::Index>().prop_map(Op::Duplicate),
        1 => any::<prop::sample::Index>().prop_map(Op::Drop),
        2 => prop_oneof![Just(3u64), Just(30), Just(200)].prop_map(Op::Tick),
    ]
}

#[derive(Default)]
struct Ledger {
    received: BTreeMap<usize, u128>,
    fees: BTreeMap<usize, i128>,
    paid: BTreeMap<usize, u128>,
    /// Lock amount of each mediated payment we started: (initiator, payment id).
    locked_for: BTreeMap<(usize, u64), u128>,
    terminal: BTreeSet<(usize, u64)>,
    received_ids: BTreeSet<(usize, u64)>,
    fee_ids: BTreeSet<(usize, u64)>,
    next_payment_id: u64,
    next_secret: u64,
}

fn u(a: TokenAmount) -> u128 {
    u128::try_from(a.0).expect("small")
}

struct Sim {
    net: Network,
    ledger: Ledger,
}

impl Sim {
    fn new(deposit: u128) -> Self {
        // A ring of four plus one chord: several routes between most pairs.
        let mut net = Network::new(4);
        net.open(0, 1, 1, deposit, deposit);
        net.open(1, 2, 2, deposit, deposit);
        net.open(2, 3, 3, deposit, deposit);
        net.open(3, 0, 4, deposit, deposit);
        net.open(0, 2, 5, deposit, deposit);
        let fee = FeeSchedule {
            flat: amt(1),
            proportional_ppm: 5_000,
        };
        for i in 0..4 {
            let node = net.addr(i);
            net.chain(Input::ActionUpdateFeeSchedule { node, fee });
        }
        net.chain(Input::ChainSynced {
            chain_time: time(0),
        });
        net.tick(1);
        let mut sim = Sim {
            net,
            ledger: Ledger::default(),
        };
        sim.absorb_all();
        sim
    }

    fn step(&mut self, i: usize, input: Input) {
        self.net.step(i, input);
        self.absorb_all();
    }

    fn absorb_all(&mut self) {
        let mut chain_inputs = Vec::new();
        for i in 0..4 {
            for e in self.net.take_events(i) {
                self.absorb(i, e, &mut chain_inputs);
            }
        }
        for input in chain_inputs {
            for i in 0..4 {
                self.net.step(i, input.clone());
            }
            self.absorb_all();
        }
        self.check();
    }

    fn absorb(&mut self, i: usize, e: Event, chain: &mut Vec<Input>) {
        let l = &mut self.ledger;
        match e {
            Event::SendMessage {
                message: Message::LockedTransfer(m),
                ..
            } if m.initiator == self.net.addr(i) => {
                l.locked_for
                    .entry((i, m.payment_id))
                    .or_insert(u(m.lock.amount));
            }
            Event::PaymentSent {
                payment_id, amount, ..
            } => {
                assert!(
                    l.terminal.insert((i, payment_id)),
                    "payment {payment_id} of {i} ended twice"
                );
                let paid = l
                    .locked_for
                    .get(&(i, payment_id))
                    .copied()
                    .unwrap_or(u(amount));
                *l.paid.entry(i).or_default() += paid;
            }
            Event::PaymentFailed { payment_id, reason }
                if !matches!(reason, PaymentFailure::Rejected(_)) =>
            {
                assert!(
                    l.terminal.insert((i, payment_id)),
                    "payment {payment_id} of {i} ended twice"
                );
            }
            Event::PaymentReceived {
                payment_id,
                initiator,
                amount,
            } => {
                let from = self.net.index_of(initiator).expect("known");
                assert!(
                    l.received_ids.insert((from, payment_id)),
                    "payment {payment_id} received twice"
                );
                *l.received.entry(i).or_default() += u(amount);
            }
            Event::MediationFinished {
                payment_id,
                received,
                paid,
            } => {
                assert!(
                    l.fee_ids.insert((i, payment_id)),
                    "mediation {payment_id} finished twice at {i}"
                );
                *l.fees.entry(i).or_default() += u(received) as i128 - u(paid) as i128;
            }
            Event::InvalidReceived {
                reason,
                sender,
                kind,
            } => {
                // Honest peers only trip over reordering, and over late copies of
                // unsigned messages whose payment is already over.
                let late_copy = matches!(reason, InvalidReason::UnknownPayment)
                    && matches!(
                        kind.as_str(),
                        "SecretRequest" | "RevealSecret" | "TransferRefused"
                    );
                assert!(
                    late_copy || matches!(reason, InvalidReason::NonceAhead { .. }),
                    "node {i} refused {kind} from {sender}: {reason:?}"
                );
            }
            Event::ContractSend {
                id,
                action: ContractSend::RegisterSecret { secret },
            } => {
                // The simulated chain mines it at once.
                chain.push(Input::ContractReceiveSecretRevealed {
                    secrethash: keccak256(secret),
                    secret,
                    revealed_at: time(self.net.now),
                });
                chain.push(Input::ActionOnchainDone { id });
            }
            Event::ContractSend { action, .. } => panic!("unexpected on-chain action {action:?}"),
            _ => {}
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Direct { from, off, amount } | Op::Mediated { from, off, amount } => {
                let to = (from + off) % 4;
                self.ledger.next_payment_id += 1;
                let payment_id = self.ledger.next_payment_id;
                let target = self.net.addr(to);
                let input = if matches!(op, Op::Direct { .. }) {
                    Input::ActionDirectTransfer {
                        via: TransferVia::Partner(target),
                        amount: amt(amount),
                        payment_id,
                    }
                } else {
                    self.ledger.next_secret += 1;
                    let secret = B256::from(
                        smartmesh_primitives::U256::from(self.ledger.next_secret)
                            + smartmesh_primitives::U256::from(1u64 << 40),
                    );
                    Input::ActionMediatedTransfer {
                        target,
                        amount: amt(amount),
                        payment_id,
                        secret,
                    }
                };
                self.step(from, input);
            }
            Op::Deliver(index) if !self.net.bus.is_empty() => {
                let (from, to, message) = self
                    .net
                    .bus
                    .remove(index.index(self.net.bus.len()))
                    .expect("in range");
                let sender = self.net.addr(from);
                self.step(to, Input::ReceiveMessage { sender, message });
            }
            Op::Duplicate(index) if !self.net.bus.is_empty() => {
                let (from, to, message) = self.net.bus[index.index(self.net.bus.len())].clone();
                let sender = self.net.addr(from);
                self.step(to, Input::ReceiveMessage { sender, message });
            }
            Op::Drop(index) if !self.net.bus.is_empty() => {
                self.net.bus.remove(index.index(self.net.bus.len()));
            }
            Op::Tick(dt) => {
                self.net.tick(dt);
                self.absorb_all();
            }
            _ => {}
        }
    }

    fn drain(&mut self) {
        // Long enough for every lock to expire or be unlocked.
        for _ in 0..60 {
            while let Some((from, to, message)) = self.net.bus.pop_front() {
                let sender = self.net.addr(from);
                self.step(to, Input::ReceiveMessage { sender, message });
            }
            self.net.tick(30);
            self.absorb_all();
        }
        while let Some((from, to, message)) = self.net.bus.pop_front() {
            let sender = self.net.addr(from);
            self.step(to, Input::ReceiveMessage { sender, message });
        }
    }

    fn check(&self) {
        for node in &self.net.nodes {
            for ch in node.state.channels.values() {
                assert!(
                    ChannelState::distributable(&ch.our, &ch.partner).is_some(),
                    "negative capacity"
                );
                assert!(
                    ChannelState::distributable(&ch.partner, &ch.our).is_some(),
                    "negative capacity"
                );
                if let Some(proof) = &ch.partner.proof {
                    let digest = node
                        .ctx
                        .domain
                        .balance_proof_digest(&proof.data, &proof.message_hash);
                    assert_eq!(
                        recover_signer(&digest, &proof.signature),
                        Ok(ch.partner.address)
                    );
                    assert_eq!(
                        smartmesh_wire::locksroot(&ch.partner.locks),
                        proof.data.locksroot
                    );
                }
            }
        }
    }

    fn check_final(&self) {
        for node in &self.net.nodes {
            assert!(
                node.state.queued_messages.is_empty(),
                "unacked messages left"
            );
            assert!(
                node.state.payments.initiated.is_empty(),
                "initiated payments left"
            );
            for ch in node.state.channels.values() {
                assert!(ch.our.locks.is_empty(), "lock left: {:?}", ch.our.locks);
                assert!(ch.partner.locks.is_empty(), "partner lock left");
                let other = self.net.index_of(ch.partner.address).expect("known");
                let theirs = self.net.nodes[other].channel(ch.channel_id);
                assert_eq!(ch.our.proof, theirs.partner.proof, "sides agree");
            }
        }
        // Each node's ledger: what it holds now versus its deposits equals what its
        // events say it received, earned and paid.
        for (i, node) in self.net.nodes.iter().enumerate() {
            let mut net_gain: i128 = 0;
            for ch in node.state.channels.values() {
                net_gain += u(ch.partner.transferred()) as i128 - u(ch.our.transferred()) as i128;
            }
            let l = &self.ledger;
            let expected = l.received.get(&i).copied().unwrap_or(0) as i128
                + l.fees.get(&i).copied().unwrap_or(0)
                - l.paid.get(&i).copied().unwrap_or(0) as i128;
            assert_eq!(net_gain, expected, "ledger of node {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_mediated_and_direct_payments(deposit in 20u128..150, ops in prop::collection::vec(op(), 1..100)) {
        let mut sim = Sim::new(deposit);
        for op in ops {
            sim.apply(op);
        }
        sim.drain();
        sim.check_final();
    }
}
