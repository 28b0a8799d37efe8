//! The mesh task: owns all mesh state; reacts to frames from neighbours, commands from
//! the handle and a periodic tick.

use crate::accounts::{Accounts, Standing};
use crate::links::Links;
use crate::payments::Payments;
use crate::streams::{RecvHalf, SendHalf};
use crate::types::{
    AccountView, InboxMessage, MeshConfig, MeshServiceError, MeshStats, NeighbourView, OutboxView,
    RouteView, SendStatus,
};
use smartmesh_mesh::payload::{MAX_CHUNK, MAX_MESSAGE, MAX_NAME};
use smartmesh_mesh::{
    Forwarder, GatewayAd, Hello, Initiating, MessageId, Packet, Payload, Receipt, Sealed, Session,
    SessionId, Verdict, Welcome, respond,
};
use smartmesh_primitives::{Address, PrivateKey, keccak256};
use smartmesh_routing::{Input, Output, Router};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Sessions kept (the oldest are dropped beyond).
const MAX_SESSIONS: usize = 1024;
/// Message ids remembered as delivered (to acknowledge repeats without delivering twice).
const DELIVERED_MEMORY: usize = 4096;
/// Messages being reassembled per sender.
const PARTIAL_PER_SOURCE: usize = 8;
/// Sent parts not acknowledged after this many tries: the session is started again
/// (the destination may have restarted and lost it).
const TRIES_BEFORE_NEW_SESSION: u32 = 3;
/// Probe answers remembered per link for its loss rate.
const PROBE_HISTORY: usize = 10;
/// Remembered duplicate packet ids.
const FORWARDER_MEMORY: usize = 65_536;
/// Link cost of a perfect link.
const PERFECT_LINK: u32 = 256;
/// Probe intervals without a word from a neighbour before its link counts as down.
const SILENT_PROBES: u64 = 4;
/// Received flows remembered for receipts.
const MAX_RECEIVED_FLOWS: usize = 4096;
/// Payment ids remembered as credited (one transfer is never credited twice).
const CREDITED_MEMORY: usize = 65_536;
/// After a failed settlement payment, wait this long before trying again (ms).
const PAY_BACKOFF_MS: u64 = 5_000;
/// A payment notice is sent this many times (ticks apart): the link may drop one.
const NOTICE_REPEATS: u8 = 3;
/// How long a neighbour's announced payment is looked for on our channel.
const CREDIT_CHECK: Duration = Duration::from_secs(10);

/// Streams open at once.
const MAX_STREAMS: usize = 256;
/// Bytes a stream's writer may queue before it waits.
const STREAM_BUFFER: usize = 1 << 20;
/// Segments delivered to a stream's reader ahead of it.
const STREAM_READ_QUEUE: usize = 256;
/// Stream segments are sent again after this long without progress (ms).
const STREAM_RTO_MS: u64 = 400;
/// A stream whose open is not answered within this is given up (ms).
const STREAM_OPEN_MS: u64 = 30_000;
/// Gateways advertise this often (ms); an advertisement lives three times as long.
const GATEWAY_EVERY_MS: u64 = 2_000;
/// Gateways remembered.
const MAX_GATEWAYS: usize = 256;
/// How long a gateway waits for the outside host to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream: (peer, id); the opener picks odd ids if its address is the smaller.
pub(crate) type StreamKey = (Address, u32);

struct StreamState {
    send: SendHalf,
    recv: RecvHalf,
    /// Bytes for our side's reader (dropped at the peer's fin: the reader sees the end).
    to_app: Option<mpsc::Sender<Vec<u8>>>,
    /// The opener waiting for the gateway's answer.
    opened: Option<oneshot::Sender<Result<(), String>>>,
    /// The gateway connected (always true on the gateway side).
    established: bool,
    /// The open request, while unanswered: host, port, first sent (ms), last sent (ms).
    open: Option<(String, u16, u64, u64)>,
    /// Writers waiting for room.
    waiting: VecDeque<(Vec<u8>, bool, oneshot::Sender<Result<(), MeshServiceError>>)>,
    /// We are the gateway side: the user who opened it pays for what we send.
    serving: bool,
}

/// Results of work done off the task.
enum Internal {
    /// A gateway's connection to the outside host.
    Connected {
        key: StreamKey,
        result: Result<tokio::net::TcpStream, String>,
    },
    Paid {
        to: Address,
        amount: u128,
        result: Result<u64, String>,
    },
    /// An announced payment was checked: `amount` is what to credit (None: not found
    /// on our channel, or not from that neighbour, or another amount).
    Checked {
        from: Address,
        payment_id: u64,
        amount: Option<u128>,
    },
}

struct ReceivedFlow {
    /// The neighbour the data last came from (receipts go back to it).
    via: Address,
    bytes: u64,
    receipted: u64,
}

enum Command {
    Send {
        to: Address,
        name: String,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<MessageId, MeshServiceError>>,
    },
    Inbox(oneshot::Sender<Vec<InboxMessage>>),
    Outbox(oneshot::Sender<Vec<OutboxView>>),
    Routes(oneshot::Sender<(Vec<RouteView>, Vec<NeighbourView>)>),
    Stats(oneshot::Sender<MeshStats>),
    Accounts(oneshot::Sender<Vec<AccountView>>),
    SetPrice(u64),
    OpenStream {
        via: Option<Address>,
        host: String,
        port: u16,
        reply: oneshot::Sender<Result<crate::MeshStream, MeshServiceError>>,
    },
    StreamWrite {
        key: StreamKey,
        bytes: Vec<u8>,
        fin: bool,
        reply: oneshot::Sender<Result<(), MeshServiceError>>,
    },
    StreamReset(StreamKey),
    Gateways(oneshot::Sender<Vec<crate::GatewayView>>),
}

/// Talks to the mesh task. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MeshHandle {
    address: Address,
    commands: mpsc::Sender<Command>,
}

impl MeshHandle {
    /// Our address.
    pub fn address(&self) -> Address {
        self.address
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MeshServiceError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| MeshServiceError::Stopped)?;
        rx.await.map_err(|_| MeshServiceError::Stopped)
    }

    /// Queues a text message (empty `name`) or a file for `to`; it is sent as soon as a
    /// route and a session exist, and retried until acknowledged or expired.
    pub async fn send(
        &self,
        to: Address,
        name: String,
        body: Vec<u8>,
    ) -> Result<MessageId, MeshServiceError> {
        if to == self.address {
            return Err(MeshServiceError::ToSelf);
        }
        if body.len() > MAX_MESSAGE {
            return Err(MeshServiceError::TooLarge {
                size: body.len(),
                limit: MAX_MESSAGE,
            });
        }
        if name.len() > MAX_NAME {
            return Err(MeshServiceError::NameTooLong(MAX_NAME));
        }
        self.ask(|reply| Command::Send {
            to,
            name,
            body,
            reply,
        })
        .await?
    }

    /// Messages received (oldest first).
    pub async fn inbox(&self) -> Result<Vec<InboxMessage>, MeshServiceError> {
        self.ask(Command::Inbox).await
    }

    /// Messages sent or being sent.
    pub async fn outbox(&self) -> Result<Vec<OutboxView>, MeshServiceError> {
        self.ask(Command::Outbox).await
    }

    /// Selected routes and neighbour links.
    pub async fn routes(&self) -> Result<(Vec<RouteView>, Vec<NeighbourView>), MeshServiceError> {
        self.ask(Command::Routes).await
    }

    /// Counters.
    pub async fn stats(&self) -> Result<MeshStats, MeshServiceError> {
        self.ask(Command::Stats).await
    }

    /// Opens a TCP stream to `host:port` through gateway `via` (None: the best one by
    /// route metric plus price); wait for [`crate::MeshStream::opened`] before writing.
    pub async fn open_stream(
        &self,
        via: Option<Address>,
        host: String,
        port: u16,
    ) -> Result<crate::MeshStream, MeshServiceError> {
        self.ask(|reply| Command::OpenStream {
            via,
            host,
            port,
            reply,
        })
        .await?
    }

    pub(crate) async fn stream_write(
        &self,
        key: StreamKey,
        bytes: Vec<u8>,
        fin: bool,
    ) -> Result<(), MeshServiceError> {
        self.ask(|reply| Command::StreamWrite {
            key,
            bytes,
            fin,
            reply,
        })
        .await?
    }

    pub(crate) fn stream_reset(&self, key: StreamKey) {
        let _ = self.commands.try_send(Command::StreamReset(key));
    }

    /// Gateways known, best first.
    pub async fn gateways(&self) -> Result<Vec<crate::GatewayView>, MeshServiceError> {
        self.ask(Command::Gateways).await
    }

    /// Pay-for-forward accounts per neighbour.
    pub async fn accounts(&self) -> Result<Vec<AccountView>, MeshServiceError> {
        self.ask(Command::Accounts).await
    }

    /// Sets our forwarding price per KiB (announced with our routes).
    pub async fn set_price(&self, price_per_kib: u64) -> Result<(), MeshServiceError> {
        self.commands
            .send(Command::SetPrice(price_per_kib))
            .await
            .map_err(|_| MeshServiceError::Stopped)
    }
}

/// Starts the mesh task on `links`, reading neighbour frames from `inbound`; accounts
/// are settled with `payments` (without it they are kept but never settled).
pub fn start(
    key: PrivateKey,
    config: MeshConfig,
    links: Arc<dyn Links>,
    inbound: mpsc::Receiver<(Address, Vec<u8>)>,
    payments: Option<Arc<dyn Payments>>,
) -> Result<MeshHandle, MeshServiceError> {
    if config.window == 0 || config.command_queue == 0 || config.hop_limit < 2 {
        return Err(MeshServiceError::Config(
            "window and command queue must be positive, hop limit at least 2".into(),
        ));
    }
    let me = key.address();
    let mut router = Router::new(me, config.routing.clone())
        .map_err(|e| MeshServiceError::Config(e.to_string()))?;
    router.handle(Input::SetPrice {
        price: config.price_per_kib,
    });
    let (commands, command_rx) = mpsc::channel(config.command_queue);
    let (internal, internal_rx) = mpsc::channel(256);
    let handle = MeshHandle {
        address: me,
        commands: commands.clone(),
    };
    let service = Service {
        handle: handle.clone(),
        streams: HashMap::new(),
        next_stream: 0,
        gateways: HashMap::new(),
        stream_opened_due: Vec::new(),
        stream_reset_due: Vec::new(),
        gateway_seqno: 0,
        last_gateway_ms: None,
        price: config.price_per_kib,
        payments,
        internal,
        accounts: Accounts::default(),
        received: HashMap::new(),
        received_order: VecDeque::new(),
        paying: HashSet::new(),
        pay_after: HashMap::new(),
        notices: Vec::new(),
        credited: HashSet::new(),
        credited_order: VecDeque::new(),
        checking: HashSet::new(),
        buckets: HashMap::new(),
        me,
        key,
        links,
        router,
        forwarder: Forwarder::new(FORWARDER_MEMORY),
        started: Instant::now(),
        neighbours: BTreeMap::new(),
        sessions: HashMap::new(),
        session_order: VecDeque::new(),
        current: HashMap::new(),
        initiating: HashMap::new(),
        outbox: Vec::new(),
        outbox_bytes: 0,
        partial: HashMap::new(),
        delivered: HashSet::new(),
        delivered_order: VecDeque::new(),
        inbox: VecDeque::new(),
        inbox_bytes: 0,
        store: HashMap::new(),
        stored_by_source: HashMap::new(),
        stored_total: 0,
        stats: MeshStats::default(),
        next_probe: 0,
        last_probe_ms: 0,
        config,
    };
    tokio::spawn(service.run(inbound, command_rx, internal_rx));
    Ok(handle)
}

struct Link {
    cost: u32,
    rtt_us: Option<u64>,
    /// When anything last came from it (µs since start).
    last_heard_us: u64,
    /// Nothing heard for [`SILENT_PROBES`] probe intervals: routed around until it
    /// answers again (the connection may take long to notice a dead link).
    silent: bool,
    /// Probes sent and not answered: nonce → sent at (µs since start).
    probes: VecDeque<(u64, u64)>,
    /// Answered (true) or lost (false), newest last.
    history: VecDeque<bool>,
}

struct Outgoing {
    id: MessageId,
    to: Address,
    name: String,
    size: usize,
    parts: Vec<Vec<u8>>,
    acked: Vec<bool>,
    /// When each part was last sent (ms) and how often.
    sent: Vec<Option<(u64, u32)>>,
    acked_count: u32,
    queued_us: u64,
    delivered_us: Option<u64>,
    expires_ms: u64,
    status: SendStatus,
}

struct Partial {
    name: String,
    parts: Vec<Option<Vec<u8>>>,
    have: u32,
    bytes: usize,
}

struct Stored {
    source: Address,
    expires_ms: u64,
    packet: Packet,
}

struct Service {
    /// For the streams the task hands out (they talk back through it).
    handle: MeshHandle,
    streams: HashMap<StreamKey, StreamState>,
    next_stream: u32,
    /// Gateways heard of: advertisement and expiry (ms).
    gateways: HashMap<Address, (GatewayAd, u64)>,
    gateway_seqno: u32,
    last_gateway_ms: Option<u64>,
    /// Gateway answers to send on the next pump.
    stream_opened_due: Vec<StreamKey>,
    stream_reset_due: Vec<(StreamKey, String)>,
    price: u64,
    payments: Option<Arc<dyn Payments>>,
    internal: mpsc::Sender<Internal>,
    accounts: Accounts,
    /// Sealed bytes received per (session, source), for receipts.
    received: HashMap<(SessionId, Address, bool), ReceivedFlow>,
    received_order: VecDeque<(SessionId, Address, bool)>,
    /// Neighbours a settlement payment is on its way to.
    paying: HashSet<Address>,
    /// Neighbours not to pay before this time (ms) after a failure.
    pay_after: HashMap<Address, u64>,
    /// Payment notices to repeat: (neighbour, payment id, amount, repeats left).
    notices: Vec<(Address, u64, u128, u8)>,
    credited: HashSet<u64>,
    credited_order: VecDeque<u64>,
    /// Announced payments being checked.
    checking: HashSet<u64>,
    /// Token buckets of throttled neighbours: (bytes, last refill ms).
    buckets: HashMap<Address, (u64, u64)>,
    me: Address,
    key: PrivateKey,
    config: MeshConfig,
    links: Arc<dyn Links>,
    router: Router,
    forwarder: Forwarder,
    started: Instant,
    neighbours: BTreeMap<Address, Link>,
    sessions: HashMap<SessionId, Session>,
    session_order: VecDeque<SessionId>,
    /// The session we send on, per peer.
    current: HashMap<Address, SessionId>,
    /// Handshakes we started: peer → (state, started at ms).
    /// Handshakes we started, newest last (a late welcome still completes an older one).
    initiating: HashMap<Address, VecDeque<(Initiating, u64)>>,
    outbox: Vec<Outgoing>,
    outbox_bytes: usize,
    partial: HashMap<(Address, MessageId), Partial>,
    delivered: HashSet<(Address, MessageId)>,
    delivered_order: VecDeque<(Address, MessageId)>,
    inbox: VecDeque<InboxMessage>,
    inbox_bytes: usize,
    /// Packets held for unreachable destinations.
    store: HashMap<Address, VecDeque<Stored>>,
    stored_by_source: HashMap<Address, usize>,
    stored_total: usize,
    stats: MeshStats,
    next_probe: u64,
    last_probe_ms: u64,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        // Without OS randomness nothing secure can be made; fail loudly, not weakly.
        panic!("the operating system gave no randomness");
    }
    bytes
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Identity of a packet for duplicate suppression (headers only: cheap for big data).
fn packet_id(packet: &Packet) -> Option<[u8; 32]> {
    let mut data = Vec::with_capacity(80);
    match packet {
        Packet::Hello { hello, .. } => {
            data.push(1);
            data.extend_from_slice(&hello.session);
            data.extend_from_slice(hello.initiator.as_slice());
        }
        Packet::Welcome { welcome, from, .. } => {
            data.push(2);
            data.extend_from_slice(&welcome.session);
            data.extend_from_slice(from.as_slice());
        }
        Packet::Data { source, sealed, .. } => {
            data.push(3);
            data.extend_from_slice(source.as_slice());
            data.extend_from_slice(&sealed.session);
            data.extend_from_slice(&sealed.counter.to_be_bytes());
        }
        Packet::Receipt { receipt, .. } => {
            data.push(4);
            data.extend_from_slice(receipt.destination.as_slice());
            data.extend_from_slice(&receipt.session);
            data.push(u8::from(receipt.destination_pays));
            data.extend_from_slice(&receipt.bytes.to_be_bytes());
        }
        Packet::Routing(_)
        | Packet::Probe { .. }
        | Packet::Paid { .. }
        | Packet::Gateway { .. } => return None,
    }
    Some(keccak256(&data).0)
}

/// Where a packet goes.
fn destination_of(packet: &Packet) -> Option<(Address, Address)> {
    match packet {
        Packet::Hello { hello, .. } => Some((hello.initiator, hello.responder)),
        Packet::Welcome { to, from, .. } => Some((*from, *to)),
        Packet::Data {
            source,
            destination,
            ..
        } => Some((*source, *destination)),
        Packet::Receipt { receipt, .. } => Some((receipt.destination, receipt.source)),
        Packet::Routing(_)
        | Packet::Probe { .. }
        | Packet::Paid { .. }
        | Packet::Gateway { .. } => None,
    }
}

fn with_hop_limit(packet: Packet, limit: u8) -> Packet {
    match packet {
        Packet::Hello { hello, .. } => Packet::Hello {
            hop_limit: limit,
            hello,
        },
        Packet::Welcome {
            to, from, welcome, ..
        } => Packet::Welcome {
            to,
            from,
            hop_limit: limit,
            welcome,
        },
        Packet::Data {
            source,
            destination,
            destination_pays,
            sealed,
            ..
        } => Packet::Data {
            source,
            destination,
            hop_limit: limit,
            destination_pays,
            sealed,
        },
        Packet::Receipt { receipt, .. } => Packet::Receipt {
            hop_limit: limit,
            receipt,
        },
        other => other,
    }
}

fn hop_limit_of(packet: &Packet) -> u8 {
    match packet {
        Packet::Hello { hop_limit, .. }
        | Packet::Welcome { hop_limit, .. }
        | Packet::Data { hop_limit, .. }
        | Packet::Receipt { hop_limit, .. } => *hop_limit,
        _ => 0,
    }
}

impl Service {
    fn now_ms(&self) -> u64 {
        ms(self.started.elapsed())
    }

    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<(Address, Vec<u8>)>,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
    ) {
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                frame = inbound.recv() => match frame {
                    Some((from, bytes)) => self.on_frame(from, &bytes).await,
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                Some(done) = internal.recv() => {
                    self.on_internal(done);
                    self.pump_streams().await;
                }
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                to,
                name,
                body,
                reply,
            } => {
                let result = self.queue_message(to, name, body);
                let _ = reply.send(result);
                self.pump().await;
            }
            Command::Inbox(reply) => {
                let _ = reply.send(self.inbox.iter().cloned().collect());
            }
            Command::Outbox(reply) => {
                let _ = reply.send(
                    self.outbox
                        .iter()
                        .map(|m| OutboxView {
                            id: m.id,
                            to: m.to,
                            name: m.name.clone(),
                            bytes: m.size as u64,
                            parts: m.parts.len() as u32,
                            acked: m.acked_count,
                            status: m.status,
                            delivery_us: m.delivered_us.map(|d| d.saturating_sub(m.queued_us)),
                        })
                        .collect(),
                );
            }
            Command::Routes(reply) => {
                let routes = self
                    .router
                    .routes()
                    .into_iter()
                    .map(|r| RouteView {
                        destination: r.destination,
                        next_hop: r.next_hop,
                        metric: r.metric,
                        price_per_kib: r.price,
                    })
                    .collect();
                let neighbours = self
                    .neighbours
                    .iter()
                    .map(|(a, l)| NeighbourView {
                        address: *a,
                        cost: l.cost,
                        rtt_us: l.rtt_us,
                    })
                    .collect();
                let _ = reply.send((routes, neighbours));
            }
            Command::Stats(reply) => {
                let mut stats = self.stats;
                stats.stored_packets = self.stored_total as u64;
                let _ = reply.send(stats);
            }
            Command::Accounts(reply) => {
                let limit = self.config.credit_limit;
                let views = self
                    .accounts
                    .all()
                    .iter()
                    .map(|(n, a)| AccountView {
                        neighbour: *n,
                        owed_to_us: crate::accounts::units_to_tokens(a.owed_to_us_units),
                        owed_by_us: crate::accounts::units_to_tokens(a.owed_by_us_units),
                        paid_to_them: a.paid_to_them,
                        credited_from_them: a.credited_from_them,
                        earned: a.earned(),
                        bytes_carried_for_them: a.bytes_carried_for_them,
                        bytes_carried_by_them: a.bytes_carried_by_them,
                        standing: self.accounts.standing(*n, limit).as_str(),
                    })
                    .collect();
                let _ = reply.send(views);
            }
            Command::OpenStream {
                via,
                host,
                port,
                reply,
            } => {
                let result = self.open_stream(via, host, port);
                let _ = reply.send(result);
                self.pump_streams().await;
            }
            Command::StreamWrite {
                key,
                bytes,
                fin,
                reply,
            } => {
                match self.streams.get_mut(&key) {
                    None => {
                        let _ = reply.send(Err(MeshServiceError::StreamClosed));
                    }
                    Some(st) if st.send.queued() >= STREAM_BUFFER => {
                        st.waiting.push_back((bytes, fin, reply));
                    }
                    Some(st) => {
                        st.send.push(&bytes);
                        if fin {
                            st.send.finish();
                        }
                        let _ = reply.send(Ok(()));
                    }
                }
                self.pump_streams().await;
            }
            Command::StreamReset(key) => {
                if self.streams.contains_key(&key) {
                    self.send_payload(
                        key.0,
                        &Payload::StreamReset {
                            stream: key.1,
                            reason: "closed by the application".into(),
                        },
                    )
                    .await;
                    self.drop_stream(key, "closed");
                }
            }
            Command::Gateways(reply) => {
                let _ = reply.send(self.gateway_views());
            }
            Command::SetPrice(price) => {
                self.price = price;
                let out = self.router.handle(Input::SetPrice { price });
                self.on_router(out).await;
            }
        }
    }

    fn queue_message(
        &mut self,
        to: Address,
        name: String,
        body: Vec<u8>,
    ) -> Result<MessageId, MeshServiceError> {
        // Forget finished messages first (the newest 256 are kept for the outbox view).
        let finished = self
            .outbox
            .iter()
            .filter(|m| matches!(m.status, SendStatus::Delivered | SendStatus::Expired))
            .count();
        if finished > 256 {
            let mut drop = finished - 256;
            self.outbox.retain(|m| {
                let done = matches!(m.status, SendStatus::Delivered | SendStatus::Expired);
                if done && drop > 0 {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
        if self.outbox_bytes.saturating_add(body.len()) > self.config.outbox_bytes {
            return Err(MeshServiceError::OutboxFull {
                bytes: self.outbox_bytes,
            });
        }
        let id: MessageId = random();
        let parts: Vec<Vec<u8>> = if body.is_empty() {
            vec![Vec::new()]
        } else {
            body.chunks(MAX_CHUNK).map(<[u8]>::to_vec).collect()
        };
        let n = parts.len();
        self.outbox_bytes += body.len();
        self.outbox.push(Outgoing {
            id,
            to,
            name,
            size: body.len(),
            parts,
            acked: vec![false; n],
            sent: vec![None; n],
            acked_count: 0,
            queued_us: self.started.elapsed().as_micros() as u64,
            delivered_us: None,
            expires_ms: self.now_ms() + ms(self.config.message_expiry),
            status: SendStatus::Waiting,
        });
        Ok(id)
    }

    async fn on_tick(&mut self) {
        let now = self.now_ms();
        self.check_links(now).await;
        let out = self.router.handle(Input::Tick { now_ms: now });
        self.on_router(out).await;
        self.expire(now);
        self.flush_store().await;
        self.pump().await;
        self.send_receipts(0).await;
        self.settle(now);
        self.repeat_notices();
        self.advertise(now);
        self.pump_streams().await;
    }

    /// Links up and down, probes and link costs.
    async fn check_links(&mut self, now: u64) {
        let up: Vec<Address> = self.links.neighbours();
        let gone: Vec<Address> = self
            .neighbours
            .keys()
            .filter(|a| !up.contains(a))
            .copied()
            .collect();
        for neighbour in gone {
            self.neighbours.remove(&neighbour);
            let out = self.router.handle(Input::LinkDown { neighbour });
            self.on_router(out).await;
        }
        for neighbour in up {
            if neighbour == self.me || self.neighbours.contains_key(&neighbour) {
                continue;
            }
            self.neighbours.insert(
                neighbour,
                Link {
                    cost: PERFECT_LINK,
                    rtt_us: None,
                    last_heard_us: self.started.elapsed().as_micros() as u64,
                    silent: false,
                    probes: VecDeque::new(),
                    history: VecDeque::new(),
                },
            );
            let out = self.router.handle(Input::LinkUp {
                neighbour,
                cost: PERFECT_LINK,
            });
            self.on_router(out).await;
        }
        if now.saturating_sub(self.last_probe_ms) < ms(self.config.probe_interval) {
            return;
        }
        self.last_probe_ms = now;
        let timeout_us = ms(self.config.probe_interval) * 4_000;
        let now_us = self.started.elapsed().as_micros() as u64;
        let mut changed = Vec::new();
        let mut went_silent = Vec::new();
        let silence_us = ms(self.config.probe_interval) * 1_000 * SILENT_PROBES;
        for (address, link) in &mut self.neighbours {
            if !link.silent && now_us.saturating_sub(link.last_heard_us) > silence_us {
                link.silent = true;
                went_silent.push(*address);
            }
            while link
                .probes
                .front()
                .is_some_and(|(_, sent)| now_us.saturating_sub(*sent) > timeout_us)
            {
                link.probes.pop_front();
                link.history.push_back(false);
            }
            while link.history.len() > PROBE_HISTORY {
                link.history.pop_front();
            }
            let cost = link_cost(link);
            if cost != link.cost {
                link.cost = cost;
                changed.push((*address, cost));
            }
            let nonce = self.next_probe;
            self.next_probe = self.next_probe.wrapping_add(1);
            if link.probes.len() < PROBE_HISTORY {
                link.probes.push_back((nonce, now_us));
            }
            let frame = Packet::Probe {
                nonce,
                reply: false,
            }
            .encode();
            self.links.try_send(*address, frame);
        }
        for neighbour in went_silent {
            tracing::info!(%neighbour, "mesh link silent: routing around it");
            let out = self.router.handle(Input::LinkDown { neighbour });
            self.on_router(out).await;
        }
        for (neighbour, cost) in changed {
            if self.neighbours.get(&neighbour).is_some_and(|l| !l.silent) {
                let out = self.router.handle(Input::LinkCost { neighbour, cost });
                self.on_router(out).await;
            }
        }
    }

    /// Anything from a neighbour shows its link works.
    async fn heard(&mut self, from: Address) {
        let now_us = self.started.elapsed().as_micros() as u64;
        let Some(link) = self.neighbours.get_mut(&from) else {
            return;
        };
        link.last_heard_us = now_us;
        if link.silent {
            link.silent = false;
            let cost = link.cost;
            tracing::info!(neighbour = %from, "mesh link answers again");
            let out = self.router.handle(Input::LinkUp {
                neighbour: from,
                cost,
            });
            self.on_router(out).await;
        }
    }

    async fn on_router(&mut self, outputs: Vec<Output>) {
        let mut reachable = false;
        for output in outputs {
            match output {
                Output::Send { to, message } => {
                    self.links.try_send(to, Packet::Routing(message).encode());
                }
                Output::RouteChanged { route, .. } => reachable |= route.is_some(),
            }
        }
        if reachable {
            self.flush_store().await;
        }
    }

    async fn on_frame(&mut self, from: Address, bytes: &[u8]) {
        let Ok(packet) = Packet::decode(bytes) else {
            self.stats.bad_packets += 1;
            return;
        };
        self.heard(from).await;
        match packet {
            Packet::Routing(message) => {
                if self.neighbours.contains_key(&from) {
                    let out = self.router.handle(Input::Receive { from, message });
                    self.on_router(out).await;
                }
            }
            Packet::Probe {
                nonce,
                reply: false,
            } => {
                self.links
                    .try_send(from, Packet::Probe { nonce, reply: true }.encode());
            }
            Packet::Probe { nonce, reply: true } => {
                let elapsed_us = self.started.elapsed().as_micros() as u64;
                if let Some(link) = self.neighbours.get_mut(&from)
                    && let Some(at) = link.probes.iter().position(|(n, _)| *n == nonce)
                    && let Some((_, sent)) = link.probes.remove(at)
                {
                    let rtt = elapsed_us.saturating_sub(sent).max(1);
                    link.rtt_us = Some(match link.rtt_us {
                        Some(old) => (old * 7 + rtt) / 8,
                        None => rtt,
                    });
                    link.history.push_back(true);
                }
            }
            Packet::Paid { payment_id, amount } => self.check_payment(from, payment_id, amount),
            Packet::Gateway { hop_limit, ad } => self.on_gateway(from, hop_limit, ad),
            Packet::Receipt { hop_limit, receipt } => self.on_receipt(hop_limit, receipt).await,
            packet => {
                let Some((_, destination)) = destination_of(&packet) else {
                    return;
                };
                if destination == self.me {
                    self.deliver(from, packet).await;
                    self.send_receipts(self.config.receipt_every_bytes).await;
                } else {
                    self.forward(from, packet, bytes.len()).await;
                }
            }
        }
    }

    async fn forward(&mut self, from: Address, packet: Packet, size: usize) {
        let Some(id) = packet_id(&packet) else { return };
        let verdict = self.forwarder.check(id, hop_limit_of(&packet));
        if !matches!(verdict, Verdict::Forward { .. }) {
            self.stats.dropped_packets += 1;
            return;
        }
        if let Packet::Data {
            source,
            destination,
            destination_pays,
            sealed,
            ..
        } = &packet
        {
            let route = self.router.route(*destination);
            // The neighbour that pays for this packet must be in good standing.
            let payer = if *destination_pays {
                route.map(|r| r.next_hop)
            } else {
                Some(from)
            };
            if let Some(payer) = payer
                && !self.admit(payer, size)
            {
                return;
            }
            if let Some(route) = route {
                let bytes = sealed.ciphertext.len() as u64;
                if *destination_pays {
                    let price_up = self.price_toward(*source);
                    self.accounts.carried_for_destination(
                        sealed.session,
                        *source,
                        *destination,
                        Some(from),
                        Some(route.next_hop),
                        price_up,
                        self.price,
                        bytes,
                    );
                } else {
                    self.accounts.sent(
                        sealed.session,
                        *source,
                        *destination,
                        Some(from),
                        route.next_hop,
                        route.price,
                        self.price,
                        bytes,
                    );
                }
            }
        }
        if let Verdict::Forward { hop_limit } = verdict {
            let packet = with_hop_limit(packet, hop_limit);
            if self.route_out(packet).await {
                self.stats.forwarded_packets += 1;
                self.stats.forwarded_bytes += size as u64;
            }
        }
    }

    /// Sends a packet toward its destination, or holds it while there is no route.
    async fn route_out(&mut self, packet: Packet) -> bool {
        let Some((source, destination)) = destination_of(&packet) else {
            return false;
        };
        match self.router.route(destination) {
            Some(route) => {
                let sent = self
                    .links
                    .send(route.next_hop, packet.encode(), self.config.link_wait)
                    .await;
                if !sent {
                    self.stats.dropped_packets += 1;
                }
                sent
            }
            None => {
                self.hold(source, destination, packet);
                false
            }
        }
    }

    /// Store-and-forward: keeps a packet for an unreachable destination, bounded per
    /// source and in all, until a route appears or it expires.
    fn hold(&mut self, source: Address, destination: Address, packet: Packet) {
        let per_source = self.stored_by_source.entry(source).or_default();
        if *per_source >= self.config.store_per_source
            || self.stored_total >= self.config.store_total
        {
            self.stats.dropped_packets += 1;
            return;
        }
        *per_source += 1;
        self.stored_total += 1;
        let expires_ms = self.now_ms() + ms(self.config.store_expiry);
        self.store
            .entry(destination)
            .or_default()
            .push_back(Stored {
                source,
                expires_ms,
                packet,
            });
    }

    fn release(&mut self, source: Address) {
        self.stored_total = self.stored_total.saturating_sub(1);
        if let Some(n) = self.stored_by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.stored_by_source.remove(&source);
            }
        }
    }

    async fn flush_store(&mut self) {
        let ready: Vec<Address> = self
            .store
            .keys()
            .filter(|d| self.router.route(**d).is_some())
            .copied()
            .collect();
        for destination in ready {
            let Some(held) = self.store.remove(&destination) else {
                continue;
            };
            for stored in held {
                self.release(stored.source);
                self.route_out(stored.packet).await;
            }
        }
    }

    fn expire(&mut self, now: u64) {
        let mut released = Vec::new();
        self.store.retain(|_, held| {
            held.retain(|s| {
                let keep = s.expires_ms > now;
                if !keep {
                    released.push(s.source);
                }
                keep
            });
            !held.is_empty()
        });
        self.stats.dropped_packets += released.len() as u64;
        for source in released {
            self.release(source);
        }
        for m in &mut self.outbox {
            if matches!(m.status, SendStatus::Waiting | SendStatus::Sending) && m.expires_ms <= now
            {
                m.status = SendStatus::Expired;
                self.outbox_bytes = self.outbox_bytes.saturating_sub(m.size);
                m.parts = Vec::new();
            }
        }
        let retry = ms(self.config.handshake_retry);
        self.initiating.retain(|_, tries| {
            tries.retain(|(_, started)| now.saturating_sub(*started) < retry * 4);
            !tries.is_empty()
        });
    }

    fn remember_session(&mut self, session: Session) {
        let id = session.id();
        if self.sessions.insert(id, session).is_none() {
            self.session_order.push_back(id);
            self.stats.sessions += 1;
        }
        while self.session_order.len() > MAX_SESSIONS {
            if let Some(old) = self.session_order.pop_front() {
                self.sessions.remove(&old);
                self.current.retain(|_, s| *s != old);
            }
        }
    }

    async fn deliver(&mut self, from: Address, packet: Packet) {
        match packet {
            Packet::Hello { hello, .. } => self.on_hello(hello).await,
            Packet::Welcome { from, welcome, .. } => self.on_welcome(from, welcome).await,
            Packet::Data {
                source,
                sealed,
                destination_pays,
                ..
            } => self.on_data(from, source, sealed, destination_pays).await,
            _ => {}
        }
    }

    async fn on_hello(&mut self, hello: Hello) {
        if self.sessions.contains_key(&hello.session) {
            return;
        }
        let initiator = hello.initiator;
        match respond(&self.key, &hello, &random()) {
            Ok((session, welcome)) => {
                let id = session.id();
                self.remember_session(session);
                // Both may have started at once: the smaller address's hello wins, so
                // both sides send on the same session.
                if !self.initiating.contains_key(&initiator) || initiator < self.me {
                    self.initiating.remove(&initiator);
                    self.current.insert(initiator, id);
                }
                let packet = Packet::Welcome {
                    to: initiator,
                    from: self.me,
                    hop_limit: self.config.hop_limit,
                    welcome,
                };
                self.route_out(packet).await;
                self.pump().await;
            }
            Err(e) => {
                tracing::debug!(%initiator, error = %e, "hello refused");
                self.stats.bad_packets += 1;
            }
        }
    }

    async fn on_welcome(&mut self, from: Address, welcome: Welcome) {
        let Some(tries) = self.initiating.get_mut(&from) else {
            return;
        };
        let Some(at) = tries
            .iter()
            .position(|(p, _)| p.session() == welcome.session)
        else {
            return;
        };
        let Some((pending, _)) = tries.remove(at) else {
            return;
        };
        self.initiating.remove(&from);
        match pending.finish(&welcome) {
            Ok(session) => {
                if session.peer() != from {
                    self.stats.bad_packets += 1;
                    return;
                }
                self.current.insert(from, session.id());
                self.remember_session(session);
                self.pump().await;
                self.pump_streams().await;
            }
            Err(e) => {
                tracing::debug!(%from, error = %e, "welcome refused");
                self.stats.bad_packets += 1;
            }
        }
    }

    async fn on_data(
        &mut self,
        from: Address,
        source: Address,
        sealed: Sealed,
        destination_pays: bool,
    ) {
        let Some(session) = self.sessions.get_mut(&sealed.session) else {
            self.stats.dropped_packets += 1;
            return;
        };
        if session.peer() != source {
            self.stats.bad_packets += 1;
            return;
        }
        let Ok(plain) = session.open(&sealed) else {
            self.stats.dropped_packets += 1;
            return;
        };
        // Only authentic, first-time data counts for receipts and bills.
        self.count_received(from, source, &sealed, destination_pays);
        if destination_pays {
            let price_up = self.price_toward(source);
            self.accounts.carried_for_destination(
                sealed.session,
                source,
                self.me,
                Some(from),
                None,
                price_up,
                0,
                sealed.ciphertext.len() as u64,
            );
        }
        match Payload::decode(&plain) {
            Ok(Payload::Chunk {
                message,
                index,
                total,
                name,
                body,
            }) => {
                self.on_chunk(source, sealed.session, message, index, total, name, body)
                    .await;
            }
            Ok(Payload::ChunkAck { message, index }) => self.on_ack(source, message, index).await,
            Ok(Payload::StreamOpen { stream, host, port }) => {
                self.on_stream_open((source, stream), host, port).await;
            }
            Ok(Payload::StreamOpened { stream }) => {
                if let Some(st) = self.streams.get_mut(&(source, stream)) {
                    st.established = true;
                    st.open = None;
                    if let Some(tx) = st.opened.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                self.pump_streams().await;
            }
            Ok(Payload::StreamData {
                stream,
                offset,
                fin,
                body,
            }) => {
                self.on_stream_data((source, stream), offset, fin, body)
                    .await
            }
            Ok(Payload::StreamAck { stream, offset }) => {
                self.on_stream_ack((source, stream), offset).await;
            }
            Ok(Payload::StreamReset { stream, reason }) => {
                self.drop_stream((source, stream), &reason);
            }
            Err(_) => self.stats.bad_packets += 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_chunk(
        &mut self,
        source: Address,
        session: SessionId,
        message: MessageId,
        index: u32,
        total: u32,
        name: String,
        body: Vec<u8>,
    ) {
        let key = (source, message);
        let mut accepted = self.delivered.contains(&key);
        if !accepted {
            let from_source = self.partial.keys().filter(|(s, _)| *s == source).count();
            if !self.partial.contains_key(&key) && from_source >= PARTIAL_PER_SOURCE {
                // Too many messages at once from one sender: not acknowledged, so it
                // sends again later.
                self.stats.dropped_packets += 1;
                return;
            }
            let partial = self.partial.entry(key).or_insert_with(|| Partial {
                name: name.clone(),
                parts: vec![None; total as usize],
                have: 0,
                bytes: 0,
            });
            if partial.parts.len() != total as usize || partial.name != name {
                self.stats.bad_packets += 1;
                return;
            }
            if let Some(slot) = partial.parts.get_mut(index as usize) {
                if slot.is_none() {
                    partial.bytes += body.len();
                    partial.have += 1;
                    *slot = Some(body);
                }
                accepted = true;
            }
            if partial.have == total
                && let Some(done) = self.partial.remove(&key)
            {
                let body: Vec<u8> = done.parts.into_iter().flatten().flatten().collect();
                self.stats.messages_received += 1;
                self.remember_delivered(key);
                self.inbox_bytes += body.len();
                self.inbox.push_back(InboxMessage {
                    id: message,
                    from: source,
                    name: done.name,
                    body,
                    received_unix_ms: unix_ms(),
                });
                while self.inbox.len() > self.config.inbox_messages
                    || self.inbox_bytes > self.config.inbox_bytes
                {
                    match self.inbox.pop_front() {
                        Some(old) => {
                            self.inbox_bytes = self.inbox_bytes.saturating_sub(old.body.len())
                        }
                        None => break,
                    }
                }
            }
        }
        if accepted {
            let ack = Payload::ChunkAck { message, index }.encode();
            // Acknowledge on the session the part came on (the sender has its keys).
            self.seal_and_send(source, session, &ack).await;
        }
    }

    fn remember_delivered(&mut self, key: (Address, MessageId)) {
        if self.delivered.insert(key) {
            self.delivered_order.push_back(key);
        }
        while self.delivered_order.len() > DELIVERED_MEMORY {
            if let Some(old) = self.delivered_order.pop_front() {
                self.delivered.remove(&old);
            }
        }
    }

    async fn on_ack(&mut self, source: Address, message: MessageId, index: u32) {
        let Some(m) = self
            .outbox
            .iter_mut()
            .find(|m| m.id == message && m.to == source)
        else {
            return;
        };
        let i = index as usize;
        if m.status != SendStatus::Sending || i >= m.acked.len() || m.acked[i] {
            return;
        }
        m.acked[i] = true;
        m.acked_count += 1;
        if m.acked_count as usize == m.acked.len() {
            m.status = SendStatus::Delivered;
            m.delivered_us = Some(self.started.elapsed().as_micros() as u64);
            m.parts = Vec::new();
            self.outbox_bytes = self.outbox_bytes.saturating_sub(m.size);
            self.stats.messages_delivered += 1;
        }
        self.pump().await;
    }

    async fn seal_and_send(&mut self, to: Address, session: SessionId, plain: &[u8]) -> bool {
        self.seal_and_send_paid(to, session, plain, false).await
    }

    /// What the nodes between us and `source` (a gateway, say) charge per KiB for data
    /// coming from it, its uplink price included.
    fn price_toward(&self, source: Address) -> u64 {
        let carriers = self.router.route(source).map_or(0, |r| r.price);
        let uplink = self.gateways.get(&source).map_or(0, |(ad, _)| ad.price);
        carriers.saturating_add(uplink)
    }

    /// Seals and sends; `destination_pays`: the destination pays the carriers (and our
    /// uplink price) for it — a gateway's answers to the user who asked.
    async fn seal_and_send_paid(
        &mut self,
        to: Address,
        session: SessionId,
        plain: &[u8],
        destination_pays: bool,
    ) -> bool {
        let Some(s) = self.sessions.get_mut(&session) else {
            return false;
        };
        let Ok(sealed) = s.seal(plain) else {
            return false;
        };
        if let Some(route) = self.router.route(to) {
            let bytes = sealed.ciphertext.len() as u64;
            if destination_pays {
                let uplink = self.config.gateway_price.unwrap_or(0);
                self.accounts.carried_for_destination(
                    sealed.session,
                    self.me,
                    to,
                    None,
                    Some(route.next_hop),
                    0,
                    uplink,
                    bytes,
                );
            } else {
                self.accounts.sent(
                    sealed.session,
                    self.me,
                    to,
                    None,
                    route.next_hop,
                    route.price,
                    0,
                    bytes,
                );
            }
        }
        let packet = Packet::Data {
            source: self.me,
            destination: to,
            hop_limit: self.config.hop_limit,
            destination_pays,
            sealed,
        };
        self.route_out(packet).await
    }

    /// Whether a data packet from neighbour `from` may be carried: not past its credit,
    /// and within the throttled rate past half of it.
    fn admit(&mut self, from: Address, size: usize) -> bool {
        match self.accounts.standing(from, self.config.credit_limit) {
            Standing::Good => {
                self.buckets.remove(&from);
                true
            }
            Standing::CutOff => {
                self.stats.cut_off_packets += 1;
                false
            }
            Standing::Throttled => {
                let now = self.now_ms();
                let rate = self.config.throttle_bytes_per_sec;
                let (tokens, last) = self.buckets.entry(from).or_insert((rate, now));
                let refill = rate.saturating_mul(now.saturating_sub(*last)) / 1000;
                *tokens = tokens.saturating_add(refill).min(rate);
                *last = now;
                if *tokens >= size as u64 {
                    *tokens -= size as u64;
                    true
                } else {
                    self.stats.throttled_packets += 1;
                    false
                }
            }
        }
    }

    fn count_received(
        &mut self,
        via: Address,
        source: Address,
        sealed: &Sealed,
        destination_pays: bool,
    ) {
        // Only data of a session we hold counts (anything else cannot be opened).
        if self
            .sessions
            .get(&sealed.session)
            .is_none_or(|s| s.peer() != source)
        {
            return;
        }
        let key = (sealed.session, source, destination_pays);
        let flow = self.received.entry(key).or_insert_with(|| {
            self.received_order.push_back(key);
            ReceivedFlow {
                via,
                bytes: 0,
                receipted: 0,
            }
        });
        flow.via = via;
        flow.bytes = flow.bytes.saturating_add(sealed.ciphertext.len() as u64);
        while self.received_order.len() > MAX_RECEIVED_FLOWS {
            if let Some(old) = self.received_order.pop_front() {
                self.received.remove(&old);
            }
        }
    }

    /// Signs receipts for flows with at least `min_new` unreceipted bytes (0: any).
    async fn send_receipts(&mut self, min_new: u64) {
        let due: Vec<((SessionId, Address, bool), Address, u64)> = self
            .received
            .iter_mut()
            .filter(|(_, f)| f.bytes > f.receipted && f.bytes - f.receipted >= min_new)
            .map(|(k, f)| {
                f.receipted = f.bytes;
                (*k, f.via, f.bytes)
            })
            .collect();
        for ((session, source, destination_pays), via, bytes) in due {
            let receipt = Receipt::sign(
                &self.key,
                &self.config.receipt_domain,
                source,
                session,
                destination_pays,
                bytes,
            );
            self.stats.receipts_signed += 1;
            if destination_pays {
                // We pay for this flow (a gateway's answers): our own receipt bills us.
                self.accounts
                    .receipt_of_kind(session, source, self.me, true, bytes);
            }
            let packet = Packet::Receipt {
                hop_limit: self.config.hop_limit,
                receipt,
            };
            self.links
                .send(via, packet.encode(), self.config.link_wait)
                .await;
        }
    }

    /// A receipt on its way back: checked, billed, passed to the flow's upstream.
    async fn on_receipt(&mut self, hop_limit: u8, receipt: Receipt) {
        if !receipt.verify(&self.config.receipt_domain) {
            self.stats.bad_packets += 1;
            return;
        }
        let Some(billed) = self.accounts.receipt_of_kind(
            receipt.session,
            receipt.source,
            receipt.destination,
            receipt.destination_pays,
            receipt.bytes,
        ) else {
            return;
        };
        if let Some(up) = billed.upstream
            && hop_limit > 1
        {
            let packet = Packet::Receipt {
                hop_limit: hop_limit - 1,
                receipt,
            };
            self.links.try_send(up, packet.encode());
        }
    }

    /// Pays neighbours we owe past the threshold, one payment at a time each.
    fn settle(&mut self, now: u64) {
        let Some(payments) = self.payments.clone() else {
            return;
        };
        for (to, amount) in self.accounts.to_settle(self.config.settle_threshold) {
            if self.paying.contains(&to) || self.pay_after.get(&to).is_some_and(|t| *t > now) {
                continue;
            }
            self.paying.insert(to);
            self.accounts.paid(to, amount);
            let done = self.internal.clone();
            let payments = payments.clone();
            tokio::spawn(async move {
                let result = payments.pay(to, amount).await;
                let _ = done.send(Internal::Paid { to, amount, result }).await;
            });
        }
    }

    fn on_internal(&mut self, done: Internal) {
        match done {
            Internal::Connected { key, result } => self.on_connected(key, result),
            Internal::Paid { to, amount, result } => {
                self.paying.remove(&to);
                match result {
                    Ok(payment_id) => {
                        self.stats.settlements += 1;
                        self.notices.push((to, payment_id, amount, NOTICE_REPEATS));
                        self.repeat_notices();
                    }
                    Err(e) => {
                        tracing::info!(neighbour = %to, amount, error = %e, "mesh settlement payment failed; retrying later");
                        self.accounts.unpaid(to, amount);
                        self.pay_after.insert(to, self.now_ms() + PAY_BACKOFF_MS);
                    }
                }
            }
            Internal::Checked {
                from,
                payment_id,
                amount,
            } => {
                self.checking.remove(&payment_id);
                let Some(amount) = amount else {
                    tracing::info!(neighbour = %from, payment_id, "announced mesh payment not found on our channel; not credited");
                    return;
                };
                if self.credited.insert(payment_id) {
                    self.credited_order.push_back(payment_id);
                    self.accounts.credited(from, amount);
                }
                while self.credited_order.len() > CREDITED_MEMORY {
                    if let Some(old) = self.credited_order.pop_front() {
                        self.credited.remove(&old);
                    }
                }
            }
        }
    }

    fn repeat_notices(&mut self) {
        for (to, payment_id, amount, left) in &mut self.notices {
            let notice = Packet::Paid {
                payment_id: *payment_id,
                amount: *amount,
            };
            self.links.try_send(*to, notice.encode());
            *left = left.saturating_sub(1);
        }
        self.notices.retain(|n| n.3 > 0);
    }

    /// A neighbour says it paid: credit it once the transfer is on our channel.
    fn check_payment(&mut self, from: Address, payment_id: u64, amount: u128) {
        let Some(payments) = self.payments.clone() else {
            return;
        };
        if self.credited.contains(&payment_id)
            || self.checking.len() >= 256
            || !self.checking.insert(payment_id)
        {
            return;
        }
        let done = self.internal.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + CREDIT_CHECK;
            let mut found = None;
            while Instant::now() < deadline {
                if let Some((payer, got)) = payments.received(payment_id).await {
                    found = (payer == from && got == amount).then_some(amount);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = done
                .send(Internal::Checked {
                    from,
                    payment_id,
                    amount: found,
                })
                .await;
        });
    }

    /// Seals `payload` for `to` on the current session (false: no session yet).
    async fn send_payload(&mut self, to: Address, payload: &Payload) -> bool {
        let Some(&session) = self.current.get(&to) else {
            let now = self.now_ms();
            self.handshake(to, now).await;
            return false;
        };
        self.seal_and_send(to, session, &payload.encode()).await
    }

    fn gateway_views(&self) -> Vec<crate::GatewayView> {
        let mut views: Vec<crate::GatewayView> = self
            .gateways
            .values()
            .filter_map(|(ad, _)| {
                let route = self.router.route(ad.gateway)?;
                Some(crate::GatewayView {
                    gateway: ad.gateway,
                    price_per_kib: ad.price,
                    metric: route.metric,
                    route_price_per_kib: route.price,
                })
            })
            .collect();
        views.sort_by_key(|g| {
            u64::from(g.metric)
                .saturating_add(g.price_per_kib)
                .saturating_add(g.route_price_per_kib)
        });
        views
    }

    /// Gateways sign and flood an advertisement every few seconds.
    fn advertise(&mut self, now: u64) {
        let Some(price) = self.config.gateway_price else {
            return;
        };
        if self
            .last_gateway_ms
            .is_some_and(|t| now.saturating_sub(t) < GATEWAY_EVERY_MS)
        {
            return;
        }
        self.last_gateway_ms = Some(now);
        self.gateway_seqno = self.gateway_seqno.wrapping_add(1);
        let ad = GatewayAd::sign(&self.key, price, self.gateway_seqno);
        let frame = Packet::Gateway {
            hop_limit: self.config.hop_limit,
            ad,
        }
        .encode();
        for n in self.neighbours.keys() {
            self.links.try_send(*n, frame.clone());
        }
    }

    fn on_gateway(&mut self, from: Address, hop_limit: u8, ad: GatewayAd) {
        let now = self.now_ms();
        self.gateways.retain(|_, (_, expires)| *expires > now);
        if ad.gateway == self.me
            || self
                .gateways
                .get(&ad.gateway)
                .is_some_and(|(old, _)| old.seqno >= ad.seqno)
            || (!self.gateways.contains_key(&ad.gateway) && self.gateways.len() >= MAX_GATEWAYS)
        {
            return;
        }
        if !ad.verify() {
            self.stats.bad_packets += 1;
            return;
        }
        self.gateways
            .insert(ad.gateway, (ad.clone(), now + 3 * GATEWAY_EVERY_MS));
        if hop_limit > 1 {
            let frame = Packet::Gateway {
                hop_limit: hop_limit - 1,
                ad,
            }
            .encode();
            for n in self.neighbours.keys().filter(|n| **n != from) {
                self.links.try_send(*n, frame.clone());
            }
        }
    }

    fn new_stream_state(&self, established: bool) -> (StreamState, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(STREAM_READ_QUEUE);
        (
            StreamState {
                send: SendHalf::default(),
                recv: RecvHalf::default(),
                to_app: Some(tx),
                opened: None,
                established,
                open: None,
                waiting: VecDeque::new(),
                serving: false,
            },
            rx,
        )
    }

    fn open_stream(
        &mut self,
        via: Option<Address>,
        host: String,
        port: u16,
    ) -> Result<crate::MeshStream, MeshServiceError> {
        if host.is_empty() || host.len() > MAX_NAME {
            return Err(MeshServiceError::Config(format!(
                "a host name of 1 to {MAX_NAME} bytes"
            )));
        }
        let gateway = match via {
            Some(g) => g,
            None => self
                .gateway_views()
                .first()
                .map(|g| g.gateway)
                .ok_or(MeshServiceError::NoGateway)?,
        };
        if gateway == self.me {
            return Err(MeshServiceError::ToSelf);
        }
        if self.streams.len() >= MAX_STREAMS {
            return Err(MeshServiceError::TooManyStreams(MAX_STREAMS));
        }
        let parity = u32::from(self.me < gateway);
        let id = self.next_stream.wrapping_mul(2).wrapping_add(parity);
        self.next_stream = self.next_stream.wrapping_add(1);
        let key = (gateway, id);
        let (mut state, incoming) = self.new_stream_state(false);
        let (tx, rx) = oneshot::channel();
        state.opened = Some(tx);
        let now = self.now_ms();
        state.open = Some((host, port, now, 0));
        self.streams.insert(key, state);
        Ok(crate::MeshStream {
            key,
            gateway,
            handle: self.handle.clone(),
            incoming,
            opened: Some(rx),
        })
    }

    async fn on_stream_open(&mut self, key: StreamKey, host: String, port: u16) {
        if let Some(st) = self.streams.get(&key) {
            if st.established {
                self.send_payload(key.0, &Payload::StreamOpened { stream: key.1 })
                    .await;
            }
            return;
        }
        let refuse = if self.config.gateway_price.is_none() {
            Some("this node is not a gateway")
        } else if self.streams.len() >= MAX_STREAMS {
            Some("the gateway has too many streams open")
        } else {
            None
        };
        if let Some(reason) = refuse {
            self.send_payload(
                key.0,
                &Payload::StreamReset {
                    stream: key.1,
                    reason: reason.into(),
                },
            )
            .await;
            return;
        }
        // Reserve the key while connecting (duplicates of the open are ignored).
        let (state, _) = self.new_stream_state(false);
        self.streams.insert(key, state);
        let done = self.internal.clone();
        tokio::spawn(async move {
            let target = format!("{host}:{port}");
            let result = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(&target),
            )
            .await
            {
                Ok(Ok(tcp)) => Ok(tcp),
                Ok(Err(e)) => Err(format!("cannot connect to {target}: {e}")),
                Err(_) => Err(format!("{target} did not answer in time")),
            };
            let _ = done.send(Internal::Connected { key, result }).await;
        });
    }

    fn on_connected(&mut self, key: StreamKey, result: Result<tokio::net::TcpStream, String>) {
        if !self.streams.contains_key(&key) {
            return;
        }
        match result {
            Ok(tcp) => {
                let (mut state, incoming) = self.new_stream_state(true);
                // Answer the open on the next pump (the task sends from there).
                state.open = None;
                state.serving = true;
                self.streams.insert(key, state);
                self.stream_opened_due.push(key);
                let stream = crate::MeshStream {
                    key,
                    gateway: key.0,
                    handle: self.handle.clone(),
                    incoming,
                    opened: None,
                };
                tokio::spawn(crate::socks::pipe(tcp, stream));
            }
            Err(reason) => {
                self.streams.remove(&key);
                self.stream_reset_due.push((key, reason));
            }
        }
    }

    fn drop_stream(&mut self, key: StreamKey, reason: &str) {
        if let Some(mut st) = self.streams.remove(&key) {
            if let Some(tx) = st.opened.take() {
                let _ = tx.send(Err(reason.to_owned()));
            }
            for (_, _, reply) in st.waiting.drain(..) {
                let _ = reply.send(Err(MeshServiceError::StreamClosed));
            }
        }
    }

    async fn on_stream_data(&mut self, key: StreamKey, offset: u64, fin: bool, body: Vec<u8>) {
        let Some(st) = self.streams.get_mut(&key) else {
            self.send_payload(
                key.0,
                &Payload::StreamReset {
                    stream: key.1,
                    reason: "no such stream".into(),
                },
            )
            .await;
            return;
        };
        if st.recv.in_order(offset) {
            let taken = match &st.to_app {
                Some(tx) if !body.is_empty() => tx.try_send(body.clone()).is_ok(),
                Some(_) => true,
                // Our reader is gone: take and discard.
                None => true,
            };
            if taken {
                st.recv.took(body.len(), fin);
                if fin {
                    st.to_app = None;
                }
            }
        }
        let ack = st.recv.ack();
        let finished = st.recv.fin && st.send.done();
        self.send_payload(
            key.0,
            &Payload::StreamAck {
                stream: key.1,
                offset: ack,
            },
        )
        .await;
        if finished {
            self.streams.remove(&key);
        }
    }

    async fn on_stream_ack(&mut self, key: StreamKey, offset: u64) {
        let now = self.now_ms();
        let Some(st) = self.streams.get_mut(&key) else {
            return;
        };
        st.send.ack(offset, now);
        while st.send.queued() < STREAM_BUFFER {
            let Some((bytes, fin, reply)) = st.waiting.pop_front() else {
                break;
            };
            st.send.push(&bytes);
            if fin {
                st.send.finish();
            }
            let _ = reply.send(Ok(()));
        }
        if st.recv.fin && st.send.done() {
            self.streams.remove(&key);
        }
        self.pump_streams().await;
    }

    /// Sends what the streams may send now: opens (again), answers, resets, segments.
    async fn pump_streams(&mut self) {
        let now = self.now_ms();
        for (key, reason) in std::mem::take(&mut self.stream_reset_due) {
            self.send_payload(
                key.0,
                &Payload::StreamReset {
                    stream: key.1,
                    reason,
                },
            )
            .await;
        }
        for key in std::mem::take(&mut self.stream_opened_due) {
            self.send_payload(key.0, &Payload::StreamOpened { stream: key.1 })
                .await;
        }
        let mut out: Vec<(Address, Payload)> = Vec::new();
        let mut opens: Vec<StreamKey> = Vec::new();
        let mut paid_by_destination: Vec<(Address, Payload)> = Vec::new();
        let mut expired = Vec::new();
        for (key, st) in &mut self.streams {
            if let Some((host, port, first, last)) = &mut st.open {
                if now.saturating_sub(*first) > STREAM_OPEN_MS {
                    expired.push(*key);
                    continue;
                }
                if *last == 0 || now.saturating_sub(*last) >= STREAM_RTO_MS {
                    *last = now.max(1);
                    opens.push(*key);
                    out.push((
                        key.0,
                        Payload::StreamOpen {
                            stream: key.1,
                            host: host.clone(),
                            port: *port,
                        },
                    ));
                }
                continue;
            }
            if !st.established {
                continue;
            }
            for (offset, fin, body) in st.send.to_send(now, STREAM_RTO_MS) {
                let data = Payload::StreamData {
                    stream: key.1,
                    offset,
                    fin,
                    body,
                };
                if st.serving {
                    paid_by_destination.push((key.0, data));
                } else {
                    out.push((key.0, data));
                }
            }
        }
        for key in expired {
            self.drop_stream(key, "the gateway did not answer");
        }
        for (to, payload) in paid_by_destination {
            if let Some(&session) = self.current.get(&to) {
                self.seal_and_send_paid(to, session, &payload.encode(), true)
                    .await;
            }
        }
        for (to, payload) in out {
            let is_open = matches!(payload, Payload::StreamOpen { .. });
            let sent = self.send_payload(to, &payload).await;
            if is_open && !sent {
                // No session yet: send the open as soon as there is one.
                for key in opens.iter().filter(|k| k.0 == to) {
                    if let Some((_, _, _, last)) =
                        self.streams.get_mut(key).and_then(|st| st.open.as_mut())
                    {
                        *last = 0;
                    }
                }
            }
        }
    }

    /// Sends what the outbox may send now: handshakes for destinations without a
    /// session, then parts within the window that were never sent or are overdue.
    async fn pump(&mut self) {
        let now = self.now_ms();
        let retransmit = ms(self.config.retransmit);
        let mut need_session = Vec::new();
        let mut renew = Vec::new();
        let mut sends: Vec<(Address, SessionId, Vec<u8>)> = Vec::new();
        for m in &mut self.outbox {
            if !matches!(m.status, SendStatus::Waiting | SendStatus::Sending) {
                continue;
            }
            let Some(&session) = self.current.get(&m.to) else {
                need_session.push(m.to);
                continue;
            };
            if self.router.route(m.to).is_none() {
                continue;
            }
            m.status = SendStatus::Sending;
            let mut in_flight = 0;
            for i in 0..m.parts.len() {
                if m.acked[i] {
                    continue;
                }
                let due = match m.sent[i] {
                    None => true,
                    Some((at, _)) => now.saturating_sub(at) >= retransmit,
                };
                if let Some((_, tries)) = m.sent[i]
                    && tries >= TRIES_BEFORE_NEW_SESSION
                {
                    renew.push(m.to);
                    m.sent[i] = Some((now, 0));
                    break;
                }
                if due {
                    let tries = m.sent[i].map_or(0, |(_, t)| t) + 1;
                    m.sent[i] = Some((now, tries));
                    let chunk = Payload::Chunk {
                        message: m.id,
                        index: i as u32,
                        total: m.parts.len() as u32,
                        name: m.name.clone(),
                        body: m.parts[i].clone(),
                    };
                    sends.push((m.to, session, chunk.encode()));
                }
                in_flight += 1;
                if in_flight >= self.config.window {
                    break;
                }
            }
        }
        for peer in renew {
            // The destination may have lost the session (restart): start a new one.
            self.current.remove(&peer);
            need_session.push(peer);
        }
        for (to, session, plain) in sends {
            self.seal_and_send(to, session, &plain).await;
        }
        need_session.sort();
        need_session.dedup();
        for peer in need_session {
            self.handshake(peer, now).await;
        }
    }

    async fn handshake(&mut self, peer: Address, now: u64) {
        if self.router.route(peer).is_none() {
            return;
        }
        if let Some((_, started)) = self.initiating.get(&peer).and_then(|t| t.back())
            && now.saturating_sub(*started) < ms(self.config.handshake_retry)
        {
            return;
        }
        match Initiating::start(&self.key, peer, &random()) {
            Ok((pending, hello)) => {
                let tries = self.initiating.entry(peer).or_default();
                tries.push_back((pending, now));
                while tries.len() > 4 {
                    tries.pop_front();
                }
                let packet = Packet::Hello {
                    hop_limit: self.config.hop_limit,
                    hello,
                };
                self.route_out(packet).await;
            }
            Err(e) => tracing::debug!(%peer, error = %e, "no handshake"),
        }
    }
}

/// Link cost from probe answers: a lossless link costs 256 plus 16 per whole 4 ms of
/// round trip (coarse, so jitter does not churn routes; at most 256 more, so a busy
/// link's queueing does not flap routes), divided by the delivery rate squared (as ETX).
fn link_cost(link: &Link) -> u32 {
    let rtt_part = link.rtt_us.map_or(0, |us| (us / 4_000).min(16) * 16) as u32;
    let base = PERFECT_LINK + rtt_part;
    let total = link.history.len() as u32;
    if total == 0 {
        return base;
    }
    let answered = link.history.iter().filter(|ok| **ok).count() as u32;
    if answered == 0 {
        return smartmesh_routing::INFINITY - 1;
    }
    // base / (answered/total)^2, in integers.
    let cost = u64::from(base) * u64::from(total) * u64::from(total)
        / (u64::from(answered) * u64::from(answered));
    cost.min(u64::from(smartmesh_routing::INFINITY - 1)) as u32
}
