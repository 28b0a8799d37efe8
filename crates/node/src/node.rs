//! The runtime: one actor task owns the engine state and the group committer; an
//! effects task performs each input's events once its append is durable; a chain
//! watcher, an on-chain executor and a clock feed inputs back through the actor.
//!
//! ```text
//!  handles ──┐                       ┌─► transport.send (messages)
//!  watcher ──┤  commands  ┌───────┐  │
//!  clock ────┼──────────► │ actor │──┼─► committer (WAL) ─► effects task ─► executor ─► chain
//!  executor ─┤            └───────┘  │        (in order, after fsync)
//!  inbound ──┘  (peer messages)      └─► replies, observers, broadcast
//! ```

use crate::chain_io::{self, CURSOR_KEY, ChainAccess, ChainCursor};
use crate::clock::Clock;
use crate::error::NodeError;
use crate::transport::{Inbound, Transport};
use smartmesh_chain::deploy::Deployment;
use smartmesh_chain::{Chain, ChainError};
use smartmesh_engine::codec::{
    decode_input, decode_state, encode_events, encode_input, encode_state,
};
use smartmesh_engine::{
    Context, ContractSend, EngineConfig, Event, Input, NodeState, PaymentFailure, transition,
};
use smartmesh_primitives::{Address, PrivateKey, TokenAmount};
use smartmesh_storage::{
    CommitterOptions, Entry, GroupCommitter, Pending, Storage, StorageOptions,
};
use smartmesh_wire::{Message, PaymentId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How a node runs. `NodeConfig::new` gives defaults fit for tests on the embedded
/// chain; every queue is bounded.
#[derive(Clone)]
pub struct NodeConfig {
    /// Data directory (the write-ahead log; locked while the node runs).
    pub data_dir: PathBuf,
    /// The node's key: its address, balance-proof signatures and transactions.
    pub key: PrivateKey,
    /// Where the contracts are.
    pub deployment: Deployment,
    /// Engine tunables for a fresh data directory (a restored node keeps its own).
    pub engine: EngineConfig,
    /// A snapshot is written after this many inputs.
    pub snapshot_every: u64,
    /// How often the clock task looks at the clock (a `Tick` is sent when the second
    /// changed).
    pub tick_interval: Duration,
    /// How often the chain watcher polls for events.
    pub chain_poll_interval: Duration,
    /// Capacity of the command queue (handles, watcher, clock, executor).
    pub command_queue: usize,
    /// Capacity of the queue between the actor and the effects task (inputs appended
    /// but not yet acted on): the pipelining depth of group commit.
    pub effects_queue: usize,
    /// Capacity of the on-chain executor's queue.
    pub onchain_queue: usize,
    /// Attempts per on-chain action before it is dropped (the engine spaces them by
    /// its `onchain_retry_interval`).
    pub onchain_max_attempts: u32,
    /// Payment records kept in memory for queries (the oldest are forgotten).
    pub max_payment_records: usize,
    /// Capacity of the notification broadcast ([`NodeHandle::subscribe`]; slow
    /// subscribers lag and lose notifications).
    pub broadcast_capacity: usize,
    /// Receives every applied input with its events, after it is durable and its
    /// effects ran, in order, with backpressure (the effects task waits for room).
    pub observer: Option<mpsc::Sender<Arc<Applied>>>,
    /// Storage options.
    pub storage: StorageOptions,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("data_dir", &self.data_dir)
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

impl NodeConfig {
    /// Defaults: snapshot every 1,000 inputs, 100 ms clock and 50 ms chain polling.
    pub fn new(data_dir: impl Into<PathBuf>, key: PrivateKey, deployment: Deployment) -> Self {
        Self {
            data_dir: data_dir.into(),
            key,
            deployment,
            engine: EngineConfig::default(),
            snapshot_every: 1_000,
            tick_interval: Duration::from_millis(100),
            chain_poll_interval: Duration::from_millis(50),
            command_queue: 1_024,
            effects_queue: 4_096,
            onchain_queue: 256,
            onchain_max_attempts: 20,
            max_payment_records: 100_000,
            broadcast_capacity: 4_096,
            observer: None,
            storage: StorageOptions::default(),
        }
    }
}

/// One input as applied: its log seq, the input and its events. Handed to observers
/// once durable and acted on.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Its seq in the write-ahead log.
    pub seq: u64,
    /// The input.
    pub input: Input,
    /// What it caused.
    pub events: Vec<Event>,
}

/// What became of a payment, as this node saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Started by us, not yet final.
    Pending,
    /// We paid: the payee holds the proof (direct) or the secret was revealed.
    Sent {
        /// The payee.
        target: Address,
        /// What it receives.
        amount: TokenAmount,
    },
    /// We were paid.
    Received {
        /// The payer.
        initiator: Address,
        /// The amount.
        amount: TokenAmount,
    },
    /// We mediated it: the fee earned is `received - paid`.
    Mediated {
        /// Unlocked to us by the payer.
        received: TokenAmount,
        /// Unlocked by us to the payee.
        paid: TokenAmount,
    },
    /// A payment we started failed.
    Failed(PaymentFailure),
}

impl PaymentStatus {
    /// Whether the status is final.
    pub fn is_final(&self) -> bool {
        !matches!(self, PaymentStatus::Pending)
    }
}

/// Payment records derived from events (rebuilt by replay on restart), bounded.
#[derive(Debug, Default)]
pub(crate) struct Records {
    by_id: HashMap<PaymentId, PaymentStatus>,
    order: VecDeque<PaymentId>,
    max: usize,
}

impl Records {
    fn set(&mut self, id: PaymentId, status: PaymentStatus) {
        if self.by_id.insert(id, status).is_none() {
            self.order.push_back(id);
            while self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.by_id.remove(&old);
                }
            }
        }
    }

    fn note(&mut self, input: &Input, events: &[Event]) {
        if let Input::ActionDirectTransfer { payment_id, .. }
        | Input::ActionMediatedTransfer { payment_id, .. } = input
            && !self.by_id.contains_key(payment_id)
        {
            self.set(*payment_id, PaymentStatus::Pending);
        }
        for event in events {
            match event {
                Event::PaymentSent {
                    payment_id,
                    target,
                    amount,
                } => self.set(
                    *payment_id,
                    PaymentStatus::Sent {
                        target: *target,
                        amount: *amount,
                    },
                ),
                Event::PaymentReceived {
                    payment_id,
                    initiator,
                    amount,
                } => self.set(
                    *payment_id,
                    PaymentStatus::Received {
                        initiator: *initiator,
                        amount: *amount,
                    },
                ),
                Event::MediationFinished {
                    payment_id,
                    received,
                    paid,
                } => self.set(
                    *payment_id,
                    PaymentStatus::Mediated {
                        received: *received,
                        paid: *paid,
                    },
                ),
                Event::PaymentFailed { payment_id, reason } => {
                    self.set(*payment_id, PaymentStatus::Failed(reason.clone()))
                }
                _ => {}
            }
        }
    }

    pub(crate) fn get(&self, id: PaymentId) -> Option<PaymentStatus> {
        self.by_id.get(&id).cloned()
    }

    pub(crate) fn all(&self) -> BTreeMap<PaymentId, PaymentStatus> {
        self.by_id.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// A read of the actor's state, run inside the actor.
pub(crate) type QueryFn = Box<dyn FnOnce(&NodeState, &Records) + Send>;

/// Reply to an input: its events, once durable.
pub(crate) type InputReply = oneshot::Sender<Result<Arc<Vec<Event>>, NodeError>>;

/// What the actor is asked to do.
#[allow(clippy::large_enum_variant)] // inputs are the common case; boxing them costs more
pub(crate) enum Command {
    /// Apply an input (persist, act), setting `meta` in the same append.
    Input {
        input: Input,
        meta: Vec<(String, Vec<u8>)>,
        reply: Option<InputReply>,
    },
    /// Read the state.
    Query(QueryFn),
    /// Stop: drain, release the data directory, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// One appended input on its way to the effects task.
struct Batch {
    pending: Option<Pending>,
    applied: Arc<Applied>,
    reply: Option<InputReply>,
    snapshot: Option<Vec<u8>>,
}

/// A cheap, cloneable handle to a running node (actor + handle). Every method talks
/// to the actor through a bounded queue.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) address: Address,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) chain: Arc<ChainAccess>,
    pub(crate) notifications: broadcast::Sender<Arc<Applied>>,
    pub(crate) settle_timeout_default: u64,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Starts a node: opens (and locks) its data directory, restores its state (newest
/// snapshot + replay of the later inputs through the engine; events are not
/// re-executed), re-sends the messages still queued in state, and starts the actor,
/// effects, executor, chain watcher and clock tasks on the current tokio runtime.
///
/// `transport`/`inbound` carry channel messages; `clock` gives the node time.
pub async fn start(
    config: NodeConfig,
    chain: Arc<dyn Chain>,
    transport: Arc<dyn Transport>,
    inbound: Inbound,
    clock: Arc<dyn Clock>,
) -> Result<NodeHandle, NodeError> {
    let key = config.key.clone();
    let address = key.address();
    let dir = config.data_dir.clone();
    let storage_options = config.storage.clone();
    let deployment = config.deployment.clone();
    let engine_config = config.engine.clone();
    let max_records = config.max_payment_records;
    let ctx_key = key.clone();
    // Opening and replaying is blocking work (SQLite, signatures).
    let restored = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
        let storage = Storage::open(&dir, storage_options)?;
        let recovery = storage.recover()?;
        let mut state = match &recovery.snapshot {
            Some(snapshot) => decode_state(&snapshot.data)?,
            None => NodeState::new(
                address,
                deployment.chain_id,
                deployment.token_network,
                engine_config,
            ),
        };
        if state.our_address != address || state.token_network != deployment.token_network {
            return Err(NodeError::Invalid(format!(
                "data directory {} belongs to another node or token network",
                dir.display()
            )));
        }
        let ctx = Context::new(ctx_key, &state);
        let mut records = Records {
            max: max_records,
            ..Records::default()
        };
        let last_seq = recovery.last_seq().get();
        for change in recovery.state_changes {
            let input = decode_input(&change.data)?;
            let events = transition(&mut state, &ctx, input.clone());
            records.note(&input, &events);
        }
        let cursor = storage
            .get_meta(CURSOR_KEY)?
            .and_then(|b| ChainCursor::decode(&b))
            .unwrap_or_default();
        let committer = storage.start_committer(CommitterOptions::default())?;
        Ok((storage, committer, state, ctx, records, last_seq, cursor))
    })
    .await
    .map_err(|_| NodeError::Stopped)??;
    let (storage, committer, state, ctx, records, last_seq, cursor) = restored;
    let storage = Arc::new(storage);

    let access = Arc::new(ChainAccess::new(chain, key, config.deployment.clone()));
    let (commands_tx, commands_rx) = mpsc::channel(config.command_queue);
    let (effects_tx, effects_rx) = mpsc::channel(config.effects_queue);
    let (onchain_tx, onchain_rx) = mpsc::channel(config.onchain_queue);
    let (notifications, _) = broadcast::channel(config.broadcast_capacity);

    let effects = tokio::spawn(effects_task(
        effects_rx,
        storage.clone(),
        transport,
        onchain_tx,
        commands_tx.clone(),
        config.observer.clone(),
        notifications.clone(),
    ));
    let executor = tokio::spawn(executor_task(
        onchain_rx,
        access.clone(),
        commands_tx.clone(),
        config.onchain_max_attempts,
    ));
    let watcher = tokio::spawn(watcher_task(
        access.clone(),
        commands_tx.clone(),
        cursor,
        config.chain_poll_interval,
    ));
    let ticker = tokio::spawn(clock_task(clock, commands_tx.clone(), config.tick_interval));

    let mut actor = Actor {
        state,
        ctx,
        committer: Some(committer),
        storage: Some(storage),
        next_seq: last_seq + 1,
        since_snapshot: 0,
        snapshot_every: config.snapshot_every.max(1),
        records,
        effects_tx: Some(effects_tx),
        stopped: false,
        ready: false,
    };
    // Re-derive pending work: messages still queued in state go out again now
    // (they are durable: they are in the replayed state); on-chain actions are released
    // by the `ChainSynced` that follows the watcher's catch-up.
    actor.resend_queued().await;
    actor.apply(Input::ChainReachable, Vec::new(), None).await;

    tokio::spawn(actor.run(
        commands_rx,
        inbound,
        vec![executor, watcher, ticker],
        effects,
    ));
    Ok(NodeHandle {
        address,
        commands: commands_tx,
        chain: access,
        notifications,
        settle_timeout_default: config.deployment.min_settle_timeout.max(600),
    })
}

struct Actor {
    state: NodeState,
    ctx: Context,
    committer: Option<GroupCommitter>,
    storage: Option<Arc<Storage>>,
    next_seq: u64,
    since_snapshot: u64,
    snapshot_every: u64,
    records: Records,
    effects_tx: Option<mpsc::Sender<Batch>>,
    stopped: bool,
    /// Whether peer messages are taken (see `INBOUND_GATE`).
    ready: bool,
}

/// Longest time a starting node holds peer messages back while its chain watcher
/// catches up.
const INBOUND_GATE: Duration = Duration::from_secs(5);

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: Inbound,
        tasks: Vec<JoinHandle<()>>,
        effects: JoinHandle<()>,
    ) {
        let mut shutdown_reply = None;
        // Peer messages wait until the chain watcher first caught up (or found the
        // chain unreachable), bounded by `INBOUND_GATE`. Not needed for safety (the
        // engine does not ack a proof over a channel it has not seen opened, so the
        // partner retries), it only spares those refusals and retries at start.
        let gate = tokio::time::sleep(INBOUND_GATE);
        tokio::pin!(gate);
        loop {
            if self.stopped {
                break;
            }
            tokio::select! {
                // Local work (acks of our own actions, chain inputs, ticks, users)
                // before new remote work.
                biased;
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Input { input, meta, reply }) => {
                        self.apply(input, meta, reply).await;
                    }
                    Some(Command::Query(query)) => query(&self.state, &self.records),
                    Some(Command::Shutdown(reply)) => {
                        shutdown_reply = Some(reply);
                        break;
                    }
                },
                _ = &mut gate, if !self.ready => self.ready = true,
                message = inbound.recv(), if self.ready => {
                    if let Some((sender, bytes)) = message {
                        // Bytes that do not even decode are dropped; everything else is
                        // validated by the engine (never a panic).
                        match smartmesh_wire::decode(&bytes) {
                            Ok(message) => {
                                self.apply(Input::ReceiveMessage { sender, message }, Vec::new(), None)
                                    .await;
                            }
                            Err(e) => tracing::debug!(%sender, error = %e, "undecodable message dropped"),
                        }
                    }
                }
            }
        }
        // Stop: no new inputs; let the effects task finish what is durable.
        for task in &tasks {
            task.abort();
        }
        drop(self.effects_tx.take());
        let _ = effects.await;
        for task in tasks {
            let _ = task.await;
        }
        let committer = self.committer.take();
        let storage = self.storage.take();
        // Dropping the committer joins its writer thread: blocking work.
        let _ = tokio::task::spawn_blocking(move || {
            drop(committer);
            drop(storage);
        })
        .await;
        // Refuse whatever is still queued.
        commands.close();
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Input {
                    reply: Some(reply), ..
                } => {
                    let _ = reply.send(Err(NodeError::Stopped));
                }
                Command::Shutdown(reply) => {
                    let _ = reply.send(());
                }
                _ => {}
            }
        }
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    /// Commit before act: transition, queue the append (group commit), and hand the
    /// events to the effects task, which acts only once the append is durable.
    async fn apply(
        &mut self,
        input: Input,
        meta: Vec<(String, Vec<u8>)>,
        reply: Option<InputReply>,
    ) {
        if self.stopped {
            if let Some(reply) = reply {
                let _ = reply.send(Err(NodeError::Stopped));
            }
            return;
        }
        let encoded_input = match encode_input(&input) {
            Ok(bytes) => bytes,
            Err(e) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.into()));
                }
                return;
            }
        };
        if matches!(input, Input::ChainSynced { .. } | Input::ChainUnreachable) {
            self.ready = true;
        }
        let events = transition(&mut self.state, &self.ctx, input.clone());
        let mut entry = Entry::new(encoded_input);
        if !events.is_empty() {
            match encode_events(&events) {
                Ok(bytes) => entry = entry.with_event(bytes),
                Err(e) => return self.fail(e.into(), reply),
            }
        }
        for (key, value) in meta {
            entry = entry.with_meta(key, value);
        }
        let Some(committer) = &self.committer else {
            return self.fail(NodeError::Stopped, reply);
        };
        let pending = match committer.submit_async(entry).await {
            Ok(pending) => pending,
            Err(e) => return self.fail(e.into(), reply),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.records.note(&input, &events);
        self.since_snapshot += 1;
        let snapshot = if self.since_snapshot >= self.snapshot_every {
            self.since_snapshot = 0;
            encode_state(&self.state).ok()
        } else {
            None
        };
        let batch = Batch {
            pending: Some(pending),
            applied: Arc::new(Applied { seq, input, events }),
            reply,
            snapshot,
        };
        if let Some(tx) = &self.effects_tx
            && tx.send(batch).await.is_err()
        {
            self.stopped = true;
        }
    }

    /// A fatal storage failure: the state in memory is ahead of the disk; stop acting.
    fn fail(&mut self, error: NodeError, reply: Option<InputReply>) {
        tracing::error!(%error, "node stops: write-ahead log failed");
        self.stopped = true;
        if let Some(reply) = reply {
            let _ = reply.send(Err(error));
        }
    }

    async fn resend_queued(&mut self) {
        let events: Vec<Event> = self
            .state
            .queued_messages
            .values()
            .map(|q| Event::SendMessage {
                recipient: q.recipient,
                message: q.message.clone(),
            })
            .collect();
        if events.is_empty() {
            return;
        }
        let batch = Batch {
            pending: None,
            applied: Arc::new(Applied {
                seq: self.next_seq.saturating_sub(1),
                input: Input::Tick {
                    now: self.state.now,
                },
                events,
            }),
            reply: None,
            snapshot: None,
        };
        if let Some(tx) = &self.effects_tx {
            let _ = tx.send(batch).await;
        }
    }
}

/// Performs the events of each input, in order, once its append is durable.
async fn effects_task(
    mut batches: mpsc::Receiver<Batch>,
    storage: Arc<Storage>,
    transport: Arc<dyn Transport>,
    onchain: mpsc::Sender<(u64, ContractSend)>,
    commands: mpsc::Sender<Command>,
    observer: Option<mpsc::Sender<Arc<Applied>>>,
    notifications: broadcast::Sender<Arc<Applied>>,
) {
    while let Some(batch) = batches.recv().await {
        if let Some(pending) = batch.pending {
            match pending.await {
                Ok(seq) => {
                    if let Some(snapshot) = &batch.snapshot {
                        let storage = storage.clone();
                        let data = snapshot.clone();
                        let written =
                            tokio::task::spawn_blocking(move || storage.write_snapshot(seq, &data))
                                .await;
                        if !matches!(written, Ok(Ok(()))) {
                            tracing::warn!("snapshot at {seq} not written");
                        }
                    }
                }
                Err(e) => {
                    // Not durable: never act. The actor stops on its next append.
                    tracing::error!(error = %e, "append failed; effects stop");
                    if let Some(reply) = batch.reply {
                        let _ = reply.send(Err(e.into()));
                    }
                    break;
                }
            }
        }
        for event in &batch.applied.events {
            match event {
                Event::SendMessage { recipient, message } => {
                    transport.send(*recipient, message.encode()).await;
                }
                // Executor queue full: tell the engine to try again later.
                Event::ContractSend { id, action }
                    if onchain.try_send((*id, action.clone())).is_err() =>
                {
                    let _ = commands.try_send(Command::Input {
                        input: Input::ActionOnchainFailed {
                            id: *id,
                            retry: true,
                        },
                        meta: Vec::new(),
                        reply: None,
                    });
                }
                _ => {}
            }
        }
        if let Some(reply) = batch.reply {
            let _ = reply.send(Ok(Arc::new(batch.applied.events.clone())));
        }
        if let Some(observer) = &observer
            && observer.send(batch.applied.clone()).await.is_err()
        {
            tracing::debug!("observer gone");
        }
        let _ = notifications.send(batch.applied);
    }
}

/// Sends an input to the actor without waiting for it to be applied.
async fn feed(
    commands: &mpsc::Sender<Command>,
    input: Input,
    meta: Vec<(String, Vec<u8>)>,
) -> bool {
    commands
        .send(Command::Input {
            input,
            meta,
            reply: None,
        })
        .await
        .is_ok()
}

/// Performs on-chain actions one at a time (one key, sequential nonces) and reports
/// each as `ActionOnchainDone` / `ActionOnchainFailed`.
async fn executor_task(
    mut actions: mpsc::Receiver<(u64, ContractSend)>,
    access: Arc<ChainAccess>,
    commands: mpsc::Sender<Command>,
    max_attempts: u32,
) {
    let mut attempts: HashMap<u64, u32> = HashMap::new();
    while let Some((id, action)) = actions.recv().await {
        let tries = attempts.entry(id).or_insert(0);
        *tries += 1;
        let tries = *tries;
        if attempts.len() > 10_000 {
            attempts.clear();
        }
        let finished = action.channel_id().is_some_and(|cid| {
            access
                .tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .outcome(cid.0)
                .is_some()
        });
        let input = if finished {
            // The channel is over on chain: nothing left to do.
            Input::ActionOnchainDone { id }
        } else {
            match access.build(&action) {
                // The watcher has not seen the channel yet: later.
                None => Input::ActionOnchainFailed {
                    id,
                    retry: tries < max_attempts,
                },
                Some(tx) => match access.chain.send(&access.key, tx).await {
                    Ok(_) => Input::ActionOnchainDone { id },
                    Err(e) => {
                        tracing::info!(id, error = %e, ?action, "on-chain action failed");
                        let retry = match &e {
                            ChainError::Unreachable { .. } => true,
                            _ => tries < max_attempts,
                        };
                        Input::ActionOnchainFailed { id, retry }
                    }
                },
            }
        };
        if matches!(input, Input::ActionOnchainDone { .. }) {
            attempts.remove(&id);
        }
        if !feed(&commands, input, Vec::new()).await {
            break;
        }
    }
}

/// Polls the chain for contract events after the persisted cursor and turns them into
/// inputs (cursor stored in the same append), reports reachability, and sends
/// `ChainSynced` once caught up and with each new block.
async fn watcher_task(
    access: Arc<ChainAccess>,
    commands: mpsc::Sender<Command>,
    persisted: ChainCursor,
    poll: Duration,
) {
    let filter = chain_io::event_filter(&access.deployment);
    // The tracker needs the whole history; inputs only what the engine has not seen.
    let mut scan = chain_io::start_cursor(&access.deployment);
    let mut seen = persisted;
    let mut reachable = true;
    let mut synced = false;
    loop {
        let batch = match access.chain.events_since(&scan, &filter).await {
            Ok(batch) => batch,
            Err(e) => {
                if reachable {
                    tracing::info!(error = %e, "chain unreachable");
                    reachable = false;
                    synced = false;
                    if !feed(&commands, Input::ChainUnreachable, Vec::new()).await {
                        return;
                    }
                }
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        if !reachable {
            reachable = true;
            if !feed(&commands, Input::ChainReachable, Vec::new()).await {
                return;
            }
        }
        for event in &batch.events {
            access
                .tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply(event);
            let pos = (event.block_number.0, event.log_index);
            if seen.last_event.is_some_and(|last| pos <= last) {
                continue;
            }
            if let Some(input) = chain_io::decode_event(&access.deployment, event) {
                seen.last_event = Some(pos);
                let meta = vec![(CURSOR_KEY.to_owned(), seen.encode())];
                if !feed(&commands, input, meta).await {
                    return;
                }
            }
        }
        scan = batch.cursor;
        if batch.caught_up {
            match access.chain.head().await {
                Ok(head) => {
                    if !synced || head.number.0 > seen.synced_block {
                        synced = true;
                        seen.synced_block = head.number.0.max(seen.synced_block);
                        let meta = vec![(CURSOR_KEY.to_owned(), seen.encode())];
                        let input = Input::ChainSynced {
                            chain_time: head.timestamp,
                        };
                        if !feed(&commands, input, meta).await {
                            return;
                        }
                    }
                    access.scanned.send_replace(batch.final_block.0);
                }
                Err(_) => continue,
            }
            tokio::time::sleep(poll).await;
        } else {
            access
                .scanned
                .send_replace(scan.next_block.0.saturating_sub(1));
        }
    }
}

/// Sends `Tick` whenever the node clock's second changes.
async fn clock_task(clock: Arc<dyn Clock>, commands: mpsc::Sender<Command>, every: Duration) {
    let mut last = None;
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = clock.now();
        if last.is_none_or(|l| now > l) {
            last = Some(now);
            if !feed(&commands, Input::Tick { now }, Vec::new()).await {
                return;
            }
        }
    }
}

/// The message ids of a node's messages still waiting for acknowledgement (for tests
/// and monitoring).
pub fn queued_message_kinds(state: &NodeState) -> Vec<&'static str> {
    state
        .queued_messages
        .values()
        .map(|q| q.message.kind())
        .collect()
}

/// Whether `message` carries a balance proof (what the crash test reports).
pub fn carries_balance_proof(message: &Message) -> bool {
    message.balance_proof().is_some()
}
