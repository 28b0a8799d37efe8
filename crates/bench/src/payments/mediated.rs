//! Latency of sequential mediated payments over 3 channels: initiator → mediator 1 →
//! mediator 2 → target. Four durable nodes, each on its own thread with its own
//! storage and group committer; messages pass between threads in memory as wire bytes
//! (no network delay). Every message is persisted by its sender before it leaves and
//! by its receiver before it is acted on or acked, so the critical path holds nine
//! durable commits: LockedTransfer at I, M1, M2; SecretRequest at T; RevealSecret at
//! I, T, M2, M1; and I's Unlock with `PaymentSent`.
//!
//! A payment starts when the previous one is completely finished (the initiator's
//! `PaymentSent`, both mediators' `MediationFinished` and the target's
//! `PaymentReceived` all durable).

use crate::payments::cpu;
use crate::payments::node::{self, DurableNode, Origin, Res, Role, Transport};
use smartmesh_engine::{EngineConfig, Event, FeeSchedule, Input, find_route};
use smartmesh_primitives::{Address, B256, ChainTime, ChannelId, TokenAmount, U256, keccak256};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one round measured.
#[derive(Clone, Debug, Default)]
pub struct MediatedRound {
    /// Payments measured (after warm-up).
    pub payments: usize,
    /// From `ActionMediatedTransfer` to the initiator's durable `PaymentSent` (its
    /// Unlock to the first hop logged and handed to the transport), sorted.
    pub sent: Vec<Duration>,
    /// From the action to the last of the four nodes durably finishing its part, sorted.
    pub full: Vec<Duration>,
    /// What the initiator paid per payment, including fees, and what the target got.
    pub paid: TokenAmount,
    /// See `paid`.
    pub amount: TokenAmount,
    /// Fraction of the machine's CPU used by other processes during the round.
    pub others_busy: f64,
    /// On-CPU time of the process per payment.
    pub cpu_per_payment: Duration,
    /// Engine-thread timings of the four nodes over all payments (warm-up included).
    pub nodes: Vec<node::Timings>,
    /// Payments run, warm-up included.
    pub total: usize,
}

const NODES: usize = 4;
const AMOUNT: u128 = 1_000;

fn cid(i: u64) -> ChannelId {
    ChannelId(U256::from(i))
}

/// Completion of each payment, shared by the four nodes.
struct Progress {
    base: Instant,
    parts: Vec<AtomicU32>,
    done_ns: Vec<AtomicU64>,
    transport: Arc<Transport>,
    initiator: Address,
}

impl Progress {
    fn mark(&self, payment_id: u64) -> Res<()> {
        let i = payment_id as usize;
        let (Some(parts), Some(done)) = (self.parts.get(i), self.done_ns.get(i)) else {
            return Err(format!("unknown payment {payment_id}"));
        };
        done.fetch_max(self.base.elapsed().as_nanos() as u64, Ordering::AcqRel);
        if parts.fetch_add(1, Ordering::AcqRel) + 1 == NODES as u32
            && let Some(inbox) = self.transport.inbox(self.initiator)
        {
            inbox.wake();
        }
        Ok(())
    }

    fn complete(&self, i: usize) -> bool {
        self.parts
            .get(i)
            .is_some_and(|p| p.load(Ordering::Acquire) == NODES as u32)
    }
}

/// The four roles: 0 initiator, 1 and 2 mediators, 3 target.
struct Part {
    index: usize,
    progress: Arc<Progress>,
    /// What each hop receives in its incoming lock (route amounts).
    amounts: Vec<TokenAmount>,
    target: Address,
    total: usize,
    round: u64,
    started: usize,
    started_at: Vec<Instant>,
    sent_at: Vec<Option<Instant>>,
    stopped: bool,
}

impl Role for Part {
    fn next_action(&mut self, _node: &DurableNode) -> Res<Option<Input>> {
        if self.index != 0 || self.stopped {
            return Ok(None);
        }
        if self.started > 0 && !self.progress.complete(self.started - 1) {
            return Ok(None);
        }
        if self.started == self.total {
            self.stopped = true;
            self.progress.transport.stop();
            return Ok(None);
        }
        let i = self.started;
        self.started += 1;
        self.started_at.push(Instant::now());
        let secret: B256 = keccak256([self.round.to_be_bytes(), (i as u64).to_be_bytes()].concat());
        Ok(Some(Input::ActionMediatedTransfer {
            target: self.target,
            amount: TokenAmount::from_u128(AMOUNT),
            payment_id: i as u64,
            secret,
        }))
    }

    fn on_durable(&mut self, _origin: Origin, events: &[Event], _node: &DurableNode) -> Res<()> {
        let amt = |i: usize| self.amounts.get(i).copied().unwrap_or_default();
        for e in events {
            match (self.index, e) {
                (_, Event::SendMessage { .. }) => {}
                (
                    0,
                    Event::PaymentSent {
                        payment_id, amount, ..
                    },
                ) => {
                    if *amount != TokenAmount::from_u128(AMOUNT) {
                        return Err(format!("payment {payment_id} sent {amount:?}"));
                    }
                    let slot = self
                        .sent_at
                        .get_mut(*payment_id as usize)
                        .ok_or("unknown payment")?;
                    if slot.replace(Instant::now()).is_some() {
                        return Err(format!("payment {payment_id} sent twice"));
                    }
                    self.progress.mark(*payment_id)?;
                }
                (
                    k @ (1 | 2),
                    Event::MediationFinished {
                        payment_id,
                        received,
                        paid,
                    },
                ) => {
                    if *received != amt(k - 1) || *paid != amt(k) {
                        return Err(format!(
                            "mediator {k}: payment {payment_id} received {received:?} paid {paid:?}"
                        ));
                    }
                    self.progress.mark(*payment_id)?;
                }
                (
                    3,
                    Event::PaymentReceived {
                        payment_id, amount, ..
                    },
                ) => {
                    if *amount != TokenAmount::from_u128(AMOUNT) {
                        return Err(format!("payment {payment_id} received {amount:?}"));
                    }
                    self.progress.mark(*payment_id)?;
                }
                (k, other) => return Err(format!("node {k}: unexpected event {other:?}")),
            }
        }
        Ok(())
    }
}

fn setup(nodes: &mut [DurableNode]) -> Res<Vec<TokenAmount>> {
    let addr: Vec<Address> = nodes.iter().map(DurableNode::address).collect();
    let deposit = TokenAmount::from_u128(10u128.pow(30));
    let fee = FeeSchedule {
        flat: TokenAmount::from_u128(1),
        proportional_ppm: 1_000,
    };
    let mut inputs = Vec::new();
    for (id, (i, j)) in [(0usize, 1usize), (1, 2), (2, 3)].into_iter().enumerate() {
        let channel_id = cid(id as u64 + 1);
        inputs.push(Input::ContractReceiveChannelOpened {
            channel_id,
            participant1: addr[i],
            participant2: addr[j],
            settle_timeout: 100_000,
        });
        for p in [addr[i], addr[j]] {
            inputs.push(Input::ContractReceiveChannelDeposit {
                channel_id,
                participant: p,
                total_deposit: deposit,
            });
        }
    }
    for mediator in [addr[1], addr[2]] {
        inputs.push(Input::ActionUpdateFeeSchedule {
            node: mediator,
            fee,
        });
    }
    inputs.push(Input::Tick {
        now: ChainTime(1_000),
    });
    for node in nodes.iter_mut() {
        for input in &inputs {
            node.apply_now(input.clone())?;
        }
    }
    let route = find_route(&nodes[0].state, addr[3], TokenAmount::from_u128(AMOUNT))
        .map_err(|e| format!("no route: {e:?}"))?;
    if route.hops != addr[1..] {
        return Err(format!("unexpected route {:?}", route.hops));
    }
    Ok(route.amounts)
}

/// Runs `warmup + n` sequential payments in fresh directories under `dir`, checks
/// every payment and the balances of the three channels at the end; with `replay`,
/// rebuilds all four nodes from their logs and compares.
pub fn round(dir: &Path, n: usize, warmup: usize, round: u64, replay: bool) -> Res<MediatedRound> {
    let config = EngineConfig::default();
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..NODES {
        let d = dir.join(format!("mediated-{i}"));
        nodes.push(DurableNode::open(&d, node::key(i as u8)?, config.clone())?);
        dirs.push(d);
    }
    let amounts = setup(&mut nodes)?;
    let addr: Vec<Address> = nodes.iter().map(DurableNode::address).collect();
    let total = warmup + n;
    let transport = Transport::new(&addr);
    let progress = Arc::new(Progress {
        base: Instant::now(),
        parts: (0..total).map(|_| AtomicU32::new(0)).collect(),
        done_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        transport: Arc::clone(&transport),
        initiator: addr[0],
    });
    let mut parts: Vec<Part> = (0..NODES)
        .map(|index| Part {
            index,
            progress: Arc::clone(&progress),
            amounts: amounts.clone(),
            target: addr[3],
            total,
            round,
            started: 0,
            started_at: Vec::with_capacity(total),
            sent_at: vec![None; total],
            stopped: false,
        })
        .collect();
    let (m0, cpu0) = (cpu::machine(), cpu::process_cpu());
    std::thread::scope(|s| -> Res<()> {
        let mut handles = Vec::new();
        for (i, (nd, part)) in nodes.iter_mut().zip(parts.iter_mut()).enumerate() {
            let t = &transport;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("bench-hop-{i}"))
                    .spawn_scoped(s, move || node::run(nd, t, part))
                    .map_err(|e| e.to_string())?,
            );
        }
        let mut results = Vec::new();
        for h in handles {
            results.push(h.join().map_err(|_| "a node panicked".to_string())?);
        }
        node::first_cause(results)
    })?;
    let (m1, cpu1) = (cpu::machine(), cpu::process_cpu());

    // Every payment completed once at every node; balances add up to the unit.
    let init = &parts[0];
    if init.started != total {
        return Err(format!("{} of {total} payments started", init.started));
    }
    let times = |v: u128| {
        amounts
            .iter()
            .map(|a| TokenAmount(a.0 * U256::from(v)))
            .collect::<Vec<_>>()
    };
    let sums = times(total as u128);
    for (k, (payer, payee)) in [(0usize, 1usize), (1, 2), (2, 3)].into_iter().enumerate() {
        let id = cid(k as u64 + 1);
        let out = nodes[payer].state.channels.get(&id).ok_or("channel lost")?;
        let inn = nodes[payee].state.channels.get(&id).ok_or("channel lost")?;
        if out.our.transferred() != sums[k]
            || inn.partner.transferred() != sums[k]
            || out.our.balance() != inn.partner.balance()
            || !out.our.locks.is_empty()
            || !inn.partner.locks.is_empty()
        {
            return Err(format!(
                "channel {} (hop {k}): payer sent {:?}, payee holds {:?}, expected {:?}; locks left {} / {}",
                k + 1,
                out.our.transferred(),
                inn.partner.transferred(),
                sums[k],
                out.our.locks.len(),
                inn.partner.locks.len()
            ));
        }
    }
    for (i, nd) in nodes.iter().enumerate() {
        let p = &nd.state.payments;
        if !nd.state.queued_messages.is_empty()
            || !p.initiated.is_empty()
            || !p.mediated.is_empty()
            || !p.targeted.is_empty()
        {
            return Err(format!("node {i} has unfinished work"));
        }
    }
    let mut sent = Vec::with_capacity(n);
    let mut full = Vec::with_capacity(n);
    for i in warmup..total {
        let t0 = init.started_at[i];
        let s = init.sent_at[i].ok_or("payment not sent")?;
        sent.push(s - t0);
        let done =
            progress.base + Duration::from_nanos(progress.done_ns[i].load(Ordering::Acquire));
        full.push(done.saturating_duration_since(t0));
    }
    sent.sort_unstable();
    full.sort_unstable();
    let out = MediatedRound {
        payments: n,
        sent,
        full,
        paid: amounts[0],
        amount: TokenAmount::from_u128(AMOUNT),
        others_busy: crate::others_busy(m0, m1, cpu1.saturating_sub(cpu0)),
        cpu_per_payment: cpu1.saturating_sub(cpu0) / total as u32,
        nodes: nodes.iter().map(|nd| nd.timings).collect(),
        total,
    };
    if replay {
        for (i, (nd, d)) in nodes.into_iter().zip(&dirs).enumerate() {
            crate::payments::replay::check(nd, d, node::key(i as u8)?, &config)?;
        }
    }
    Ok(out)
}
