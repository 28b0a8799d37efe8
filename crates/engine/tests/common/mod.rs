//! In-process engine nodes for tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use smartmesh_engine::*;
use smartmesh_primitives::{Address, ChainId, ChainTime, ChannelId, PrivateKey, TokenAmount, U256};
use smartmesh_wire::{Message, MessageId};

pub const CHAIN: ChainId = ChainId(1337);

pub fn token_network() -> Address {
    Address::repeat_byte(0x77)
}

pub fn amt(v: u128) -> TokenAmount {
    TokenAmount::from_u128(v)
}

pub fn cid(v: u64) -> ChannelId {
    ChannelId(U256::from(v))
}

/// A deterministic key per index.
pub fn key(i: u8) -> PrivateKey {
    let mut bytes = [0u8; 32];
    bytes[31] = i + 1;
    bytes[0] = 0x42;
    PrivateKey::from_bytes(&bytes).expect("valid key")
}

/// One engine with its key, recording every input (for replay checks).
pub struct Node {
    pub state: NodeState,
    pub ctx: Context,
    pub inputs: Vec<Input>,
}

impl Node {
    pub fn new(i: u8) -> Self {
        Self::with_config(i, EngineConfig::default())
    }

    pub fn with_config(i: u8, config: EngineConfig) -> Self {
        let key = key(i);
        let state = NodeState::new(key.address(), CHAIN, token_network(), config);
        let ctx = Context::new(key, &state);
        Self {
            state,
            ctx,
            inputs: Vec::new(),
        }
    }

    pub fn address(&self) -> Address {
        self.state.our_address
    }

    pub fn step(&mut self, input: Input) -> Vec<Event> {
        self.inputs.push(input.clone());
        transition(&mut self.state, &self.ctx, input)
    }

    pub fn channel(&self, id: ChannelId) -> &ChannelState {
        self.state.channels.get(&id).expect("channel exists")
    }

    /// Feeds a chain event.
    pub fn chain(&mut self, input: Input) -> Vec<Event> {
        self.step(input)
    }

    pub fn receive(&mut self, sender: Address, message: Message) -> Vec<Event> {
        self.step(Input::ReceiveMessage { sender, message })
    }
}

/// Opens channel `id` between `a` (participant1) and `b` with deposits, on both nodes.
pub fn open_channel(a: &mut Node, b: &mut Node, id: u64, deposit_a: u128, deposit_b: u128) {
    let opened = Input::ContractReceiveChannelOpened {
        channel_id: cid(id),
        participant1: a.address(),
        participant2: b.address(),
        settle_timeout: 1000,
    };
    let dep_a = Input::ContractReceiveChannelDeposit {
        channel_id: cid(id),
        participant: a.address(),
        total_deposit: amt(deposit_a),
    };
    let dep_b = Input::ContractReceiveChannelDeposit {
        channel_id: cid(id),
        participant: b.address(),
        total_deposit: amt(deposit_b),
    };
    for node in [a, b] {
        node.chain(opened.clone());
        node.chain(dep_a.clone());
        node.chain(dep_b.clone());
    }
}

/// The messages of `events` addressed anywhere: `(recipient, message)`.
pub fn sent(events: &[Event]) -> Vec<(Address, Message)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SendMessage { recipient, message } => Some((*recipient, message.clone())),
            _ => None,
        })
        .collect()
}

/// The non-ack messages of `events`.
pub fn sent_non_acks(events: &[Event]) -> Vec<(Address, Message)> {
    sent(events)
        .into_iter()
        .filter(|(_, m)| !matches!(m, Message::Ack(_)))
        .collect()
}

/// The ids acknowledged in `events`.
pub fn acks(events: &[Event]) -> Vec<MessageId> {
    sent(events)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Ack(a) => Some(a.message_id),
            _ => None,
        })
        .collect()
}

pub fn invalid_reasons(events: &[Event]) -> Vec<InvalidReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InvalidReceived { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub fn contract_sends(events: &[Event]) -> Vec<(u64, ContractSend)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ContractSend { id, action } => Some((*id, action.clone())),
            _ => None,
        })
        .collect()
}

/// Delivers every message in `events` from `from` to `to` (and the replies back, until
/// quiet). Returns all events produced.
pub fn pump(from: &mut Node, to: &mut Node, events: Vec<Event>) -> Vec<Event> {
    let mut all = Vec::new();
    let mut pending: Vec<(bool, Message)> = sent(&events)
        .into_iter()
        .filter(|(r, _)| *r == to.address())
        .map(|(_, m)| (true, m))
        .collect();
    while let Some((forward, message)) = (!pending.is_empty()).then(|| pending.remove(0)) {
        let (sender, receiver) = if forward {
            (from.address(), &mut *to)
        } else {
            (to.address(), &mut *from)
        };
        let out = receiver.receive(sender, message);
        for (recipient, m) in sent(&out) {
            if recipient == from.address() && forward {
                pending.push((false, m));
            } else if recipient == to.address() && !forward {
                pending.push((true, m));
            }
        }
        all.extend(out);
    }
    all
}

pub fn time(t: u64) -> ChainTime {
    ChainTime(t)
}

/// N engines on an in-memory bus; chain events go to every node.
pub struct Network {
    pub nodes: Vec<Node>,
    pub bus: std::collections::VecDeque<(usize, usize, Message)>,
    pub events: Vec<Vec<Event>>,
    pub offline: std::collections::BTreeSet<usize>,
    pub now: u64,
}

impl Network {
    pub fn new(n: usize) -> Self {
        Self {
            nodes: (0..n).map(|i| Node::new(i as u8)).collect(),
            bus: Default::default(),
            events: vec![Vec::new(); n],
            offline: Default::default(),
            now: 0,
        }
    }

    pub fn addr(&self, i: usize) -> Address {
        self.nodes[i].address()
    }

    pub fn index_of(&self, a: Address) -> Option<usize> {
        self.nodes.iter().position(|n| n.address() == a)
    }

    pub fn step(&mut self, i: usize, input: Input) -> Vec<Event> {
        let out = self.nodes[i].step(input);
        for e in &out {
            if let Event::SendMessage { recipient, message } = e
                && let Some(to) = self.index_of(*recipient)
            {
                self.bus.push_back((i, to, message.clone()));
            }
        }
        self.events[i].extend(out.clone());
        out
    }

    /// A chain event seen by every node.
    pub fn chain(&mut self, input: Input) {
        for i in 0..self.nodes.len() {
            self.step(i, input.clone());
        }
    }

    pub fn open(&mut self, i: usize, j: usize, id: u64, di: u128, dj: u128) {
        let (a, b) = (self.addr(i), self.addr(j));
        self.chain(Input::ContractReceiveChannelOpened {
            channel_id: cid(id),
            participant1: a,
            participant2: b,
            settle_timeout: 1000,
        });
        self.chain(Input::ContractReceiveChannelDeposit {
            channel_id: cid(id),
            participant: a,
            total_deposit: amt(di),
        });
        self.chain(Input::ContractReceiveChannelDeposit {
            channel_id: cid(id),
            participant: b,
            total_deposit: amt(dj),
        });
    }

    /// Delivers messages until the bus is empty; messages from or to offline nodes are
    /// lost.
    pub fn run(&mut self) {
        let mut budget = 100_000;
        while let Some((from, to, message)) = self.bus.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if self.offline.contains(&from) || self.offline.contains(&to) {
                continue;
            }
            let sender = self.addr(from);
            self.step(to, Input::ReceiveMessage { sender, message });
        }
    }

    pub fn tick(&mut self, dt: u64) {
        self.now += dt;
        for i in 0..self.nodes.len() {
            if !self.offline.contains(&i) {
                self.step(
                    i,
                    Input::Tick {
                        now: time(self.now),
                    },
                );
            }
        }
    }

    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.events[i])
    }
}
