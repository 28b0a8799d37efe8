//! Property tests over random sequences of direct transfers between N in-process
//! engines connected by an in-memory bus that delays, reorders, duplicates and drops
//! messages (acks included). Checked after every step and at the end:
//! - tokens are conserved (every node's ledger sums to the deposits; what was sent is
//!   what was received once the bus is drained; both sides agree on the settlement);
//! - nonces strictly increase per sender and channel;
//! - the receiver always holds a valid signed proof (recovered on-chain style over the
//!   EIP-712 digest) of exactly what it was paid;
//! - no transfer is applied twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use proptest::prelude::*;
use smartmesh_engine::*;
use smartmesh_primitives::{Address, ChannelId, TokenAmount, recover_signer};
use smartmesh_wire::Message;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Op {
    Pay {
        from: usize,
        to: usize,
        amount: u128,
    },
    Deliver(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Drop(prop::sample::Index),
    Tick,
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..n, 1..n, 1u128..60).prop_map(move |(from, off, amount)| Op::Pay { from, to: (from + off) % n, amount }),
        6 => any::<prop::sample::Index>().prop_map(Op::Deliver),
        1 => any::<prop::sample::Index>().prop_map(Op::Duplicate),
        1 => any::<prop::sample::Index>().prop_map(Op::Drop),
        1 => Just(Op::Tick),
    ]
}

struct Net {
    nodes: Vec<Node>,
    /// In flight: (from, to, message).
    bus: Vec<(usize, usize, Message)>,
    now: u64,
    /// Channel id -> (participant1 index, participant2 index, deposit1, deposit2).
    channels: BTreeMap<ChannelId, (usize, usize, u128, u128)>,
    /// Sum of PaymentSent / PaymentReceived per (sender, receiver).
    sent_sum: BTreeMap<(usize, usize), u128>,
    received_sum: BTreeMap<(usize, usize), u128>,
    /// Payment ids received per receiver (no payment applied twice).
    received_ids: BTreeSet<(usize, u64)>,
    /// Last nonce created per (sender, channel).
    last_nonce: BTreeMap<(usize, ChannelId), u64>,
    /// Message ids already seen sent per sender (to tell new messages from retries).
    seen_message_ids: BTreeSet<(usize, u64)>,
    next_payment_id: u64,
}

impl Net {
    fn new(n: usize, deposits: &[u128]) -> Self {
        let mut nodes: Vec<Node> = (0..n).map(|i| Node::new(i as u8)).collect();
        let mut channels = BTreeMap::new();
        let mut id = 0u64;
        let mut d = deposits.iter().copied().cycle();
        for i in 0..n {
            for j in (i + 1)..n {
                id += 1;
                let (d1, d2) = (d.next().unwrap_or(0), d.next().unwrap_or(0));
                let (left, right) = nodes.split_at_mut(j);
                open_channel(&mut left[i], &mut right[0], id, d1, d2);
                channels.insert(cid(id), (i, j, d1, d2));
            }
        }
        Self {
            nodes,
            bus: Vec::new(),
            now: 0,
            channels,
            sent_sum: BTreeMap::new(),
            received_sum: BTreeMap::new(),
            received_ids: BTreeSet::new(),
            last_nonce: BTreeMap::new(),
            seen_message_ids: BTreeSet::new(),
            next_payment_id: 1,
        }
    }

    fn index_of(&self, address: Address) -> usize {
        self.nodes
            .iter()
            .position(|n| n.address() == address)
            .expect("known node")
    }

    fn step(&mut self, i: usize, input: Input) {
        let events = self.nodes[i].step(input);
        for event in events {
            match event {
                Event::SendMessage { recipient, message } => {
                    if let Message::DirectTransfer(m) = &message
                        && self.seen_message_ids.insert((i, m.message_id))
                    {
                        // A newly created transfer: its nonce follows the previous one.
                        let key = (i, m.balance_proof.channel_id);
                        let last = self.last_nonce.get(&key).copied().unwrap_or(0);
                        assert_eq!(
                            m.balance_proof.nonce.0,
                            last + 1,
                            "nonces strictly increase"
                        );
                        self.last_nonce.insert(key, m.balance_proof.nonce.0);
                    }
                    let to = self.index_of(recipient);
                    self.bus.push((i, to, message));
                }
                Event::PaymentSent { target, amount, .. } => {
                    let to = self.index_of(target);
                    *self.sent_sum.entry((i, to)).or_default() += to_u128(amount);
                }
                Event::PaymentReceived {
                    initiator,
                    amount,
                    payment_id,
                } => {
                    let from = self.index_of(initiator);
                    assert!(
                        self.received_ids.insert((i, payment_id)),
                        "payment {payment_id} applied twice"
                    );
                    *self.received_sum.entry((from, i)).or_default() += to_u128(amount);
                }
                Event::InvalidReceived { reason, .. } => {
                    // Honest peers only ever trip over reordering.
                    assert!(
                        matches!(reason, InvalidReason::NonceAhead { .. }),
                        "unexpected refusal {reason:?}"
                    );
                }
                Event::PaymentFailed { reason, .. } => {
                    assert!(
                        matches!(
                            reason,
                            PaymentFailure::Rejected(ActionError::NoChannelWithCapacity)
                        ),
                        "unexpected failure {reason:?}"
                    );
                }
                Event::ContractSend { .. } => panic!("no on-chain action expected"),
                _ => {}
            }
        }
        self.check_invariants();
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Pay { from, to, amount } => {
                let payment_id = self.next_payment_id;
                self.next_payment_id += 1;
                let via = TransferVia::Partner(self.nodes[to].address());
                self.step(
                    from,
                    Input::ActionDirectTransfer {
                        via,
                        amount: amt(amount),
                        payment_id,
                    },
                );
            }
            Op::Deliver(index) if !self.bus.is_empty() => {
                let (from, to, message) = self.bus.remove(index.index(self.bus.len()));
                let sender = self.nodes[from].address();
                self.step(to, Input::ReceiveMessage { sender, message });
            }
            Op::Duplicate(index) if !self.bus.is_empty() => {
                let (from, to, message) = self.bus[index.index(self.bus.len())].clone();
                let sender = self.nodes[from].address();
                self.step(to, Input::ReceiveMessage { sender, message });
            }
            Op::Drop(index) if !self.bus.is_empty() => {
                self.bus.remove(index.index(self.bus.len()));
            }
            Op::Tick => {
                self.now += 3;
                for i in 0..self.nodes.len() {
                    self.step(
                        i,
                        Input::Tick {
                            now: time(self.now),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn drain(&mut self) {
        for _ in 0..100 {
            while !self.bus.is_empty() {
                let (from, to, message) = self.bus.remove(0);
                let sender = self.nodes[from].address();
                self.step(to, Input::ReceiveMessage { sender, message });
            }
            if self
                .nodes
                .iter()
                .all(|n| n.state.queued_messages.is_empty())
            {
                return;
            }
            self.apply(Op::Tick);
        }
        panic!("the network did not settle down");
    }

    fn check_invariants(&self) {
        for (id, &(p1, p2, d1, d2)) in &self.channels {
            for (me, other) in [(p1, p2), (p2, p1)] {
                let node = &self.nodes[me];
                let ch = node.channel(*id);
                // Both capacities are computable (never negative) from each side's view.
                assert!(ChannelState::distributable(&ch.our, &ch.partner).is_some());
                assert!(ChannelState::distributable(&ch.partner, &ch.our).is_some());
                // The receiver holds a valid signed proof of exactly what it was paid.
                let received = self.received_sum.get(&(other, me)).copied().unwrap_or(0);
                assert_eq!(to_u128(ch.partner.transferred()), received);
                if let Some(proof) = &ch.partner.proof {
                    let digest = node
                        .ctx
                        .domain
                        .balance_proof_digest(&proof.data, &proof.message_hash);
                    assert_eq!(
                        recover_signer(&digest, &proof.signature),
                        Ok(ch.partner.address)
                    );
                    assert_eq!(proof.data.channel_id, *id);
                }
                // Never more received than sent.
                let sent = self.sent_sum.get(&(other, me)).copied().unwrap_or(0);
                assert!(received <= sent);
                // Conservation in this node's ledger: both settlement shares add up to
                // the deposits.
                let (b1, b2) = if ch.we_are_participant1 {
                    (ch.our.balance(), ch.partner.balance())
                } else {
                    (ch.partner.balance(), ch.our.balance())
                };
                let deposits = Deposits {
                    deposit1: amt(d1),
                    deposit2: amt(d2),
                    ..Deposits::default()
                };
                let s = settlement_amounts(&deposits, &b1, &b2).expect("valid");
                assert_eq!(to_u128(s.amount1) + to_u128(s.amount2), d1 + d2);
                // No clamping: nobody ever sent more than it had.
                let mine = if ch.we_are_participant1 {
                    s.amount1
                } else {
                    s.amount2
                };
                let expected = if ch.we_are_participant1 { d1 } else { d2 }
                    + to_u128(ch.partner.transferred());
                assert_eq!(to_u128(mine) + to_u128(ch.our.transferred()), expected);
            }
        }
    }

    fn check_final(&self) {
        assert_eq!(
            self.sent_sum.values().sum::<u128>(),
            self.received_sum.values().sum::<u128>()
        );
        assert_eq!(self.sent_sum, self.received_sum);
        for (id, &(p1, p2, _, _)) in &self.channels {
            let a = self.nodes[p1].channel(*id);
            let b = self.nodes[p2].channel(*id);
            assert_eq!(
                a.our.proof, b.partner.proof,
                "both sides agree on p1's proof"
            );
            assert_eq!(
                a.partner.proof, b.our.proof,
                "both sides agree on p2's proof"
            );
            assert_eq!(a.our_capacity(), b.partner_capacity());
            assert_eq!(a.partner_capacity(), b.our_capacity());
        }
    }
}

fn to_u128(a: TokenAmount) -> u128 {
    u128::try_from(a.0).expect("small amounts")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_transfers_over_an_unreliable_bus(
        n in 2usize..=4,
        deposits in prop::collection::vec(0u128..200, 2..6),
        ops in prop::collection::vec(op(4), 1..120),
    ) {
        let mut net = Net::new(n, &deposits);
        for op in ops {
            let op = match op {
                Op::Pay { from, to, amount } => {
                    let (from, to) = (from % n, to % n);
                    if from == to { continue; }
                    Op::Pay { from, to, amount }
                }
                other => other,
            };
            net.apply(op);
        }
        net.drain();
        net.check_final();
        // Replaying a node's inputs reproduces its state exactly.
        let mut replay = Node::new(0);
        for input in net.nodes[0].inputs.clone() {
            replay.step(input);
        }
        prop_assert_eq!(&replay.state, &net.nodes[0].state);
    }
}
