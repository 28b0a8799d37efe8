//! Durable direct transfers between two nodes, pipelined.
//!
//! Node A (own thread, own storage) signs `DirectTransfer`s and sends each only after
//! its input and events are durable; node B (own thread, own storage) decodes,
//! recovers the signature, applies, persists and only then acks; A applies and persists
//! each ack. A keeps at most `window` transfers in flight, so both group committers
//! batch. A transfer counts when A's record of B's ack is durable.

use crate::payments::cpu;
use crate::payments::node::{self, DurableNode, Origin, Res, Role, Transport};
use smartmesh_engine::{EngineConfig, Event, Input, TransferVia};
use smartmesh_primitives::{ChannelId, TokenAmount, U256};
use smartmesh_wire::MessageId;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one round measured.
#[derive(Clone, Debug, Default)]
pub struct DirectRound {
    /// Transfers completed.
    pub transfers: u64,
    /// Wall time from the first action to the last durable ack record.
    pub elapsed: Duration,
    /// Transfers per second.
    pub tps: f64,
    /// Entries per transaction of A's and B's group committers.
    pub batch_a: f64,
    /// See `batch_a`.
    pub batch_b: f64,
    /// A transfer's time from its action to A's durable ack record, median and p99.
    pub lat_p50: Duration,
    /// See `lat_p50`.
    pub lat_p99: Duration,
    /// Engine-thread timings of A and B.
    pub a: node::Timings,
    /// See `a`.
    pub b: node::Timings,
    /// On-CPU time of both WAL writer threads.
    pub writers_cpu: Duration,
    /// On-CPU time of the whole process during the round.
    pub process_cpu: Duration,
    /// Fraction of the machine's CPU used by other processes during the round.
    pub others_busy: f64,
}

const CHANNEL: u64 = 1;

fn channel() -> ChannelId {
    ChannelId(U256::from(CHANNEL))
}

struct Sender {
    n: u64,
    window: u64,
    started: u64,
    acked: u64,
    first_id: MessageId,
    acked_ids: Vec<bool>,
    started_at: VecDeque<Instant>,
    latencies: Vec<Duration>,
    transport: Arc<Transport>,
    finished_at: Option<Instant>,
}

impl Role for Sender {
    fn next_action(&mut self, _node: &DurableNode) -> Res<Option<Input>> {
        if self.started >= self.n || self.started - self.acked >= self.window {
            return Ok(None);
        }
        let payment_id = self.started;
        self.started += 1;
        self.started_at.push_back(Instant::now());
        Ok(Some(Input::ActionDirectTransfer {
            via: TransferVia::Channel(channel()),
            amount: TokenAmount::from_u128(1),
            payment_id,
        }))
    }

    fn on_durable(&mut self, origin: Origin, events: &[Event], _node: &DurableNode) -> Res<()> {
        match origin {
            Origin::Local => {
                if !events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentSent { .. }))
                {
                    return Err(format!("direct transfer not sent: {events:?}"));
                }
            }
            Origin::Ack(id) => {
                if let Some(e) = events.first() {
                    return Err(format!("unexpected event on ack: {e:?}"));
                }
                let slot = id
                    .checked_sub(self.first_id)
                    .and_then(|i| self.acked_ids.get_mut(i as usize))
                    .ok_or_else(|| format!("ack of unknown message {id}"))?;
                if std::mem::replace(slot, true) {
                    return Err(format!("message {id} acked twice"));
                }
                self.acked += 1;
                let t = self
                    .started_at
                    .pop_front()
                    .ok_or_else(|| "more acks than transfers".to_string())?;
                self.latencies.push(t.elapsed());
                if self.acked == self.n {
                    self.finished_at = Some(Instant::now());
                    self.transport.stop();
                }
            }
            Origin::Message => return Err("A received a non-ack message".into()),
        }
        Ok(())
    }
}

struct Receiver {
    received: Vec<bool>,
}

impl Role for Receiver {
    fn next_action(&mut self, _node: &DurableNode) -> Res<Option<Input>> {
        Ok(None)
    }

    fn on_durable(&mut self, _origin: Origin, events: &[Event], _node: &DurableNode) -> Res<()> {
        for e in events {
            match e {
                Event::PaymentReceived {
                    payment_id, amount, ..
                } => {
                    if *amount != TokenAmount::from_u128(1) {
                        return Err(format!("payment {payment_id}: amount {amount:?}"));
                    }
                    let slot = self
                        .received
                        .get_mut(*payment_id as usize)
                        .ok_or_else(|| format!("unknown payment {payment_id}"))?;
                    if std::mem::replace(slot, true) {
                        return Err(format!("payment {payment_id} applied twice"));
                    }
                }
                Event::SendMessage { .. } => {}
                other => return Err(format!("B: unexpected event {other:?}")),
            }
        }
        Ok(())
    }
}

fn setup(a: &mut DurableNode, b: &mut DurableNode, n: u64) -> Res<()> {
    let (pa, pb) = (a.address(), b.address());
    let inputs = [
        Input::ContractReceiveChannelOpened {
            channel_id: channel(),
            participant1: pa,
            participant2: pb,
            settle_timeout: 100_000,
        },
        Input::ContractReceiveChannelDeposit {
            channel_id: channel(),
            participant: pa,
            total_deposit: TokenAmount::from_u128(u128::from(n) * 2),
        },
    ];
    for node in [a, b] {
        for input in &inputs {
            node.apply_now(input.clone())?;
        }
    }
    Ok(())
}

/// Runs one round of `n` transfers with at most `window` in flight, in fresh data
/// directories under `dir`; checks exactly-once delivery and balances; with `replay`,
/// also rebuilds both nodes from their logs and compares.
pub fn round(dir: &Path, n: u64, window: u64, replay: bool) -> Res<DirectRound> {
    let config = EngineConfig::default();
    let (dir_a, dir_b) = (dir.join("direct-a"), dir.join("direct-b"));
    let mut a = DurableNode::open(&dir_a, node::key(0)?, config.clone())?;
    let mut b = DurableNode::open(&dir_b, node::key(1)?, config.clone())?;
    setup(&mut a, &mut b, n)?;
    let setup_entries = (a.commit_stats().entries, b.commit_stats().entries);
    let transport = Transport::new(&[a.address(), b.address()]);
    let mut sender = Sender {
        n,
        window,
        started: 0,
        acked: 0,
        first_id: a.state.next_message_id,
        acked_ids: vec![false; n as usize],
        started_at: VecDeque::with_capacity(window as usize),
        latencies: Vec::with_capacity(n as usize),
        transport: Arc::clone(&transport),
        finished_at: None,
    };
    let mut receiver = Receiver {
        received: vec![false; n as usize],
    };
    let (m0, cpu0) = (cpu::machine(), cpu::process_cpu());
    let start = Instant::now();
    std::thread::scope(|s| -> Res<()> {
        let ta = std::thread::Builder::new()
            .name("bench-direct-a".into())
            .spawn_scoped(s, || node::run(&mut a, &transport, &mut sender))
            .map_err(|e| e.to_string())?;
        let tb = std::thread::Builder::new()
            .name("bench-direct-b".into())
            .spawn_scoped(s, || node::run(&mut b, &transport, &mut receiver))
            .map_err(|e| e.to_string())?;
        let ra = ta.join().map_err(|_| "node A panicked".to_string())?;
        let rb = tb.join().map_err(|_| "node B panicked".to_string())?;
        node::first_cause([ra, rb])
    })?;
    let end = sender.finished_at.ok_or("A never finished")?;
    let elapsed = end - start;
    let (m1, cpu1) = (cpu::machine(), cpu::process_cpu());
    let writers_cpu = cpu::threads_cpu("smartmesh-wal-w");

    // Exactly once, and balances on both sides.
    let one = |v: u64| TokenAmount::from_u128(u128::from(v));
    if let Some(i) = receiver.received.iter().position(|r| !r) {
        return Err(format!("payment {i} never received"));
    }
    if let Some(i) = sender.acked_ids.iter().position(|r| !r) {
        return Err(format!("transfer {i} never acked"));
    }
    let cha = a
        .state
        .channels
        .get(&channel())
        .ok_or("A lost its channel")?;
    let chb = b
        .state
        .channels
        .get(&channel())
        .ok_or("B lost its channel")?;
    if cha.our.transferred() != one(n)
        || chb.partner.transferred() != one(n)
        || cha.our.nonce().0 != n
        || chb.partner.nonce().0 != n
        || cha.our.balance() != chb.partner.balance()
    {
        return Err(format!(
            "balances differ: A sent {:?} (nonce {:?}), B holds {:?} (nonce {:?}), expected {n}",
            cha.our.transferred(),
            cha.our.nonce(),
            chb.partner.transferred(),
            chb.partner.nonce()
        ));
    }
    if !a.state.queued_messages.is_empty() || !b.state.queued_messages.is_empty() {
        return Err("messages left unacknowledged".into());
    }
    // Every input is in the logs: A logged n actions and n acks, B n transfers.
    let (sa, sb) = (a.commit_stats(), b.commit_stats());
    for (name, node, stats, want) in [
        ("A", &a, sa, setup_entries.0 + 2 * n),
        ("B", &b, sb, setup_entries.1 + n),
    ] {
        let last = node.storage().last_seq().map_err(|e| e.to_string())?;
        if stats.entries != want || last.get() != want {
            return Err(format!(
                "{name} logged {} entries (last seq {last}), expected {want}",
                stats.entries
            ));
        }
    }

    let mut lat = sender.latencies;
    lat.sort_unstable();
    let out = DirectRound {
        transfers: n,
        elapsed,
        tps: n as f64 / elapsed.as_secs_f64(),
        batch_a: sa.entries as f64 / sa.batches.max(1) as f64,
        batch_b: sb.entries as f64 / sb.batches.max(1) as f64,
        lat_p50: crate::percentile(&lat, 0.50),
        lat_p99: crate::percentile(&lat, 0.99),
        a: a.timings,
        b: b.timings,
        writers_cpu,
        process_cpu: cpu1.saturating_sub(cpu0),
        others_busy: crate::others_busy(m0, m1, cpu1.saturating_sub(cpu0)),
    };
    if replay {
        crate::payments::replay::check(a, &dir_a, node::key(0)?, &config)?;
        crate::payments::replay::check(b, &dir_b, node::key(1)?, &config)?;
    }
    Ok(out)
}
