//! A durable benchmark node: the pure engine, its own SQLite write-ahead log with a group
//! committer, and the node's contract "commit before act": every input is transitioned,
//! then the input and its events are submitted to the group committer, and the events
//! (sending messages, counting payments) are performed only once that append is durable.
//!
//! Each node runs on its own thread ([`run`]); messages travel between threads as wire
//! bytes through an in-memory [`Transport`] (encoded by the sender, decoded by the
//! receiver, as a network transport would). A node never blocks on one append: appends
//! complete in queue order, so the node keeps a FIFO of appends in flight and performs
//! the effects of the oldest ones as they become durable (pipelining), while the group
//! committer folds everything submitted meanwhile into one transaction and one fsync.
//! Entries transitioned in one turn of the loop (up to 32 peer messages, then up to 32
//! local actions) are handed to the committer together, so it takes them as one batch.

use smartmesh_engine::codec::{encode_events, encode_input};
use smartmesh_engine::{Context, EngineConfig, Event, Input, NodeState, transition};
use smartmesh_primitives::{Address, ChainId, PrivateKey};
use smartmesh_storage::{
    CommitterOptions, Entry, GroupCommitter, Pending, Storage, StorageOptions,
};
use smartmesh_wire::{Message, MessageId};
use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Errors of the benchmark (it stops at the first one).
pub type Res<T> = Result<T, String>;

/// The chain id of every benchmark node.
pub const CHAIN: ChainId = ChainId(1337);

/// The TokenNetwork of every benchmark node.
pub fn token_network() -> Address {
    Address::repeat_byte(0x77)
}

/// A deterministic key per node index.
pub fn key(i: u8) -> Res<PrivateKey> {
    let mut bytes = [0x42u8; 32];
    bytes[31] = i + 1;
    PrivateKey::from_bytes(&bytes).map_err(|e| format!("key {i}: {e}"))
}

/// Why an append was made, reported back with its events when it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A local action (user payment, chain event, clock).
    Local,
    /// A peer's `Ack` of our message `MessageId`.
    Ack(MessageId),
    /// Any other peer message.
    Message,
}

struct InFlight {
    pending: Pending,
    events: Vec<Event>,
    origin: Origin,
    submitted: Instant,
}

/// Wall time spent by a node's engine thread, by step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// `transition` (signing and signature recovery are inside).
    pub transition: Duration,
    /// Encoding the input and events for the log (postcard).
    pub log_encode: Duration,
    /// Handing the entry to the group committer.
    pub submit: Duration,
    /// Decoding received wire bytes.
    pub wire_decode: Duration,
    /// Encoding sent messages and handing them to the transport.
    pub wire_send: Duration,
    /// Inputs applied.
    pub inputs: u64,
    /// Times the thread parked (had nothing to do).
    pub parks: u64,
    /// On-CPU time of the engine thread during [`run`] (from the scheduler).
    pub cpu: Duration,
    /// Summed time from submitting an append to seeing it durable (commit latency
    /// including the writer's and this thread's wake-ups).
    pub commit_wait: Duration,
    /// Summed time received messages waited in the inbox (including this thread's
    /// wake-up).
    pub inbox_wait: Duration,
    /// Messages received.
    pub received: u64,
}

/// One engine with its durable log.
pub struct DurableNode {
    /// The engine state (mutated in place by each transition).
    pub state: NodeState,
    ctx: Context,
    committer: GroupCommitter,
    storage: Storage,
    inflight: VecDeque<InFlight>,
    /// Transitioned inputs whose entries are not yet handed to the committer.
    unsubmitted: Vec<(Entry, Vec<Event>, Origin)>,
    /// Where the engine thread's time went.
    pub timings: Timings,
}

impl DurableNode {
    /// Opens `dir` (SQLite WAL, `synchronous=FULL`: durable per commit) and starts its
    /// group committer.
    pub fn open(dir: &Path, key: PrivateKey, config: EngineConfig) -> Res<Self> {
        let storage = Storage::open(dir, StorageOptions::default())
            .map_err(|e| format!("open {}: {e}", dir.display()))?;
        let committer = storage
            .start_committer(CommitterOptions::default())
            .map_err(|e| format!("start committer: {e}"))?;
        let state = NodeState::new(key.address(), CHAIN, token_network(), config);
        let ctx = Context::new(key, &state);
        Ok(Self {
            state,
            ctx,
            committer,
            storage,
            inflight: VecDeque::new(),
            unsubmitted: Vec::new(),
            timings: Timings::default(),
        })
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.state.our_address
    }

    /// The storage (for checks after a round).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Transactions and entries committed by this node's group committer.
    pub fn commit_stats(&self) -> smartmesh_storage::CommitStats {
        self.committer.stats()
    }

    /// Appends still waiting to become durable (or to be submitted).
    pub fn in_flight(&self) -> usize {
        self.inflight.len() + self.unsubmitted.len()
    }

    /// Transitions `input` and prepares its log entry (the input with its events). The
    /// entry goes to the group committer at the next [`flush`](Self::flush); the events
    /// are returned by [`poll_durable`](Self::poll_durable) once it is durable.
    pub fn apply(&mut self, input: Input, origin: Origin) -> Res<()> {
        let t0 = Instant::now();
        let input_bytes = encode_input(&input).map_err(|e| format!("encode input: {e}"))?;
        let t1 = Instant::now();
        let events = transition(&mut self.state, &self.ctx, input);
        let t2 = Instant::now();
        let mut entry = Entry::new(input_bytes);
        if !events.is_empty() {
            entry
                .events
                .push(encode_events(&events).map_err(|e| format!("encode events: {e}"))?);
        }
        let t3 = Instant::now();
        let t = &mut self.timings;
        t.log_encode += (t1 - t0) + (t3 - t2);
        t.transition += t2 - t1;
        t.inputs += 1;
        self.unsubmitted.push((entry, events, origin));
        Ok(())
    }

    /// Hands every prepared entry to the group committer, in order. Submitting a turn's
    /// entries together lets the committer take them as one batch (one fsync) instead
    /// of waking for the first one alone.
    pub fn flush(&mut self) -> Res<()> {
        if self.unsubmitted.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        for (entry, events, origin) in self.unsubmitted.drain(..) {
            let pending = self
                .committer
                .submit(entry)
                .map_err(|e| format!("submit: {e}"))?;
            self.inflight.push_back(InFlight {
                pending,
                events,
                origin,
                submitted: t,
            });
        }
        self.timings.submit += t.elapsed();
        Ok(())
    }

    /// Applies `input` and waits until it is durable (setup, outside measurements).
    pub fn apply_now(&mut self, input: Input) -> Res<Vec<Event>> {
        self.apply(input, Origin::Local)?;
        self.flush()?;
        let mut out = None;
        while let Some(f) = self.inflight.pop_front() {
            f.pending.wait().map_err(|e| format!("append: {e}"))?;
            out = Some(f.events);
        }
        out.ok_or_else(|| "nothing applied".to_string())
    }

    /// The oldest append if it is durable now: its origin and events, to perform.
    /// Registers `waker` for it otherwise.
    pub fn poll_durable(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Res<Option<(Origin, Vec<Event>)>> {
        let Some(front) = self.inflight.front_mut() else {
            return Ok(None);
        };
        match Pin::new(&mut front.pending).poll(cx) {
            Poll::Pending => Ok(None),
            Poll::Ready(Err(e)) => Err(format!("append failed: {e}")),
            Poll::Ready(Ok(_seq)) => match self.inflight.pop_front() {
                Some(f) => {
                    self.timings.commit_wait += f.submitted.elapsed();
                    Ok(Some((f.origin, f.events)))
                }
                None => Ok(None),
            },
        }
    }

    /// Stops the committer and closes the storage, returning the state (for replay checks).
    pub fn close(self) -> (NodeState, Context) {
        (self.state, self.ctx)
    }
}

struct Envelope {
    sender: Address,
    bytes: Vec<u8>,
    sent: Instant,
}

/// One node's incoming queue: wire bytes with the authenticated sender.
pub struct Inbox {
    queue: Mutex<Vec<Envelope>>,
    thread: OnceLock<Thread>,
}

impl Inbox {
    fn new() -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            thread: OnceLock::new(),
        }
    }

    fn push(&self, sender: Address, bytes: Vec<u8>) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Envelope {
                sender,
                bytes,
                sent: Instant::now(),
            });
        self.wake();
    }

    fn take(&self, into: &mut VecDeque<Envelope>) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        into.extend(q.drain(..));
    }

    /// Wakes the node's thread (if it runs).
    pub fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The in-memory network between the benchmark's nodes.
///
/// Queues are bounded by the drivers (a window of transfers in flight, or one payment
/// at a time), not here. `outstanding` counts work anywhere in the network (local
/// actions not yet performed, messages not yet durably processed by their receiver), so
/// the nodes stop only when everything has settled.
pub struct Transport {
    peers: Vec<(Address, Arc<Inbox>)>,
    outstanding: AtomicI64,
    stop: AtomicBool,
    failed: AtomicBool,
}

impl Transport {
    /// A network of `addresses`, one inbox each.
    pub fn new(addresses: &[Address]) -> Arc<Self> {
        Arc::new(Self {
            peers: addresses
                .iter()
                .map(|a| (*a, Arc::new(Inbox::new())))
                .collect(),
            outstanding: AtomicI64::new(0),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        })
    }

    /// The inbox of `address`.
    pub fn inbox(&self, address: Address) -> Option<&Arc<Inbox>> {
        self.peers
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, i)| i)
    }

    fn send(&self, from: Address, to: Address, message: &Message) -> Res<()> {
        let inbox = self
            .inbox(to)
            .ok_or_else(|| format!("message to unknown node {to}"))?;
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        inbox.push(from, message.encode());
        Ok(())
    }

    fn begin(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 && self.stopping() {
            self.wake_all();
        }
    }

    /// Asks every node to stop once the network is quiet.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn quiet(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0
    }

    /// Wakes every node.
    pub fn wake_all(&self) {
        for (_, i) in &self.peers {
            i.wake();
        }
    }
}

/// What a node does besides answering peers: the benchmark driver on that node.
pub trait Role {
    /// The next local action to apply now, if any (called repeatedly each turn, so it
    /// must bound itself).
    fn next_action(&mut self, node: &DurableNode) -> Res<Option<Input>>;
    /// An append became durable and its events were performed (messages sent).
    fn on_durable(&mut self, origin: Origin, events: &[Event], node: &DurableNode) -> Res<()>;
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Most inputs applied per turn from one source before performing durable effects
/// (local work first, then new remote work, then new local work).
const TURN: usize = 32;

const STOPPED: &str = "stopped: another node failed";

/// The error that caused the others (a node that failed first), if any.
pub fn first_cause(results: impl IntoIterator<Item = Res<()>>) -> Res<()> {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    match errors
        .iter()
        .find(|e| e.as_str() != STOPPED)
        .or(errors.first())
    {
        Some(e) => Err(e.clone()),
        None => Ok(()),
    }
}

/// Runs `node` on the current thread until the transport is stopped and quiet.
pub fn run(node: &mut DurableNode, transport: &Transport, role: &mut dyn Role) -> Res<()> {
    let me = node.address();
    let inbox = Arc::clone(
        transport
            .inbox(me)
            .ok_or_else(|| "node not in the transport".to_string())?,
    );
    let _ = inbox.thread.set(std::thread::current());
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut received: VecDeque<Envelope> = VecDeque::new();
    let cpu0 = crate::payments::cpu::thread_cpu();
    let result = (|| -> Res<()> {
        loop {
            if transport.failed.load(Ordering::Acquire) {
                return Err(STOPPED.into());
            }
            let mut progress = false;
            // 1. Perform the effects of everything durable (oldest first).
            while let Some((origin, events)) = node.poll_durable(&mut cx)? {
                progress = true;
                let t = Instant::now();
                for e in &events {
                    if let Event::SendMessage { recipient, message } = e {
                        transport.send(me, *recipient, message)?;
                    }
                }
                node.timings.wire_send += t.elapsed();
                role.on_durable(origin, &events, node)?;
                transport.end();
            }
            // 2. Peer messages.
            inbox.take(&mut received);
            for _ in 0..TURN {
                let Some(Envelope {
                    sender,
                    bytes,
                    sent,
                }) = received.pop_front()
                else {
                    break;
                };
                progress = true;
                let t = Instant::now();
                node.timings.inbox_wait += t - sent;
                node.timings.received += 1;
                let message = smartmesh_wire::decode(&bytes)
                    .map_err(|e| format!("undecodable message from {sender}: {e}"))?;
                node.timings.wire_decode += t.elapsed();
                let origin = match &message {
                    Message::Ack(a) => Origin::Ack(a.message_id),
                    _ => Origin::Message,
                };
                node.apply(Input::ReceiveMessage { sender, message }, origin)?;
            }
            node.flush()?;
            // 3. New local work.
            for _ in 0..TURN {
                let Some(input) = role.next_action(node)? else {
                    break;
                };
                progress = true;
                transport.begin();
                node.apply(input, Origin::Local)?;
            }
            node.flush()?;
            if !progress {
                if transport.stopping()
                    && transport.quiet()
                    && node.in_flight() == 0
                    && received.is_empty()
                {
                    return Ok(());
                }
                node.timings.parks += 1;
                std::thread::park();
            }
        }
    })();
    node.timings.cpu = crate::payments::cpu::thread_cpu().saturating_sub(cpu0);
    if result.is_err() {
        // Let the other nodes end too.
        transport.failed.store(true, Ordering::Release);
        transport.stop();
    }
    result
}
