//! The link task: owns the libp2p swarm; [`P2pNode`] talks to it through a bounded queue
//! and reads shared counters and the peer table.

use crate::codec::{Ack, ChannelCodec, PROTOCOL};
use crate::identity::{address_of_peer, keypair};
use crate::mesh_link::{MeshLinkStats, MeshLinks, MeshSendError};
use crate::{P2pConfig, P2pError, P2pStats, PeerSource, PeerSummary};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, mdns, noise, tcp, yamux};
use smartmesh_node::{Inbound, Transport};
use smartmesh_primitives::{Address, PrivateKey};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Messages held for a peer while its link is being dialed.
const PENDING_PER_PEER: usize = 64;
/// Addresses remembered per peer.
const ADDRS_PER_PEER: usize = 8;
/// Peers remembered (connected or not); the oldest disconnected are forgotten beyond.
const MAX_PEERS: usize = 1024;
/// Connections idle this long are closed (the redial brings static peers back).
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long `start` waits for the listeners to come up.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
struct Behaviour {
    channel: request_response::Behaviour<ChannelCodec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    stream: libp2p_stream::Behaviour,
}

enum Command {
    Send { to: Address, bytes: Vec<u8> },
    Shutdown(oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    connections: AtomicU64,
}

struct PeerEntry {
    address: Address,
    addrs: BTreeSet<Multiaddr>,
    connections: Vec<(ConnectionId, bool)>,
    source: PeerSource,
}

#[derive(Default)]
struct Table {
    peers: HashMap<PeerId, PeerEntry>,
    by_address: HashMap<Address, PeerId>,
    listen: Vec<Multiaddr>,
}

struct Shared {
    local: PeerId,
    address: Address,
    counters: Counters,
    table: Mutex<Table>,
}

impl Shared {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drop_message(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running link layer. Cheap to clone.
#[derive(Clone)]
pub struct P2pNode {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    inbound: mpsc::WeakSender<(Address, Vec<u8>)>,
    mesh: Arc<MeshLinks>,
    mesh_inbound: Arc<Mutex<Option<Inbound>>>,
}

impl std::fmt::Debug for P2pNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pNode")
            .field("peer_id", &self.shared.local)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Transport for P2pNode {
    async fn send(&self, to: Address, bytes: Vec<u8>) {
        if self.commands.try_send(Command::Send { to, bytes }).is_err() {
            self.shared.drop_message();
        }
    }
}

impl P2pNode {
    /// Our peer id.
    pub fn peer_id(&self) -> String {
        self.shared.local.to_string()
    }

    /// Our Ethereum address.
    pub fn address(&self) -> Address {
        self.shared.address
    }

    /// Addresses we listen on, each ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> Vec<String> {
        self.shared
            .table()
            .listen
            .iter()
            .map(|a| with_peer(a, self.shared.local).to_string())
            .collect()
    }

    /// Known peers.
    pub fn peers(&self) -> Vec<PeerSummary> {
        let table = self.shared.table();
        let mut peers: Vec<PeerSummary> = table
            .peers
            .iter()
            .map(|(id, e)| PeerSummary {
                address: e.address,
                peer_id: id.to_string(),
                addrs: e.addrs.iter().map(ToString::to_string).collect(),
                connected: !e.connections.is_empty(),
                source: e.source,
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        peers
    }

    /// Whether a link to `address` is up.
    pub fn is_connected(&self, address: Address) -> bool {
        let table = self.shared.table();
        table
            .by_address
            .get(&address)
            .and_then(|id| table.peers.get(id))
            .is_some_and(|e| !e.connections.is_empty())
    }

    /// Counters and queue depths.
    pub fn stats(&self) -> P2pStats {
        let c = &self.shared.counters;
        let outbound = self
            .commands
            .max_capacity()
            .saturating_sub(self.commands.capacity());
        let inbound = self
            .inbound
            .upgrade()
            .map(|tx| tx.max_capacity().saturating_sub(tx.capacity()))
            .unwrap_or(0);
        P2pStats {
            messages_sent: c.sent.load(Ordering::Relaxed),
            messages_acked: c.acked.load(Ordering::Relaxed),
            messages_dropped: c.dropped.load(Ordering::Relaxed),
            messages_received: c.received.load(Ordering::Relaxed),
            outbound_queue_depth: outbound as u64,
            inbound_queue_depth: inbound as u64,
            connections: c.connections.load(Ordering::Relaxed),
        }
    }

    /// Addresses of the neighbours with a link up.
    pub fn connected(&self) -> Vec<Address> {
        let table = self.shared.table();
        let mut up: Vec<Address> = table
            .peers
            .values()
            .filter(|e| !e.connections.is_empty())
            .map(|e| e.address)
            .collect();
        up.sort();
        up
    }

    /// The queue of mesh frames from neighbours (sender address, frame); it can be
    /// taken once.
    pub fn take_mesh_inbound(&self) -> Option<Inbound> {
        self.mesh_inbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn linked_peer(&self, to: Address) -> Result<PeerId, MeshSendError> {
        let table = self.shared.table();
        table
            .by_address
            .get(&to)
            .filter(|id| {
                table
                    .peers
                    .get(id)
                    .is_some_and(|e| !e.connections.is_empty())
            })
            .copied()
            .ok_or(MeshSendError::NoLink)
    }

    /// Queues a mesh frame for the neighbour `to` without waiting.
    pub fn mesh_try_send(&self, to: Address, frame: Vec<u8>) -> Result<(), MeshSendError> {
        let peer = self
            .linked_peer(to)
            .inspect_err(|_| self.mesh.drop_frame())?;
        self.mesh.try_send(to, peer, frame)
    }

    /// Queues a mesh frame for the neighbour `to`, waiting up to `wait` for room.
    pub async fn mesh_send(
        &self,
        to: Address,
        frame: Vec<u8>,
        wait: Duration,
    ) -> Result<(), MeshSendError> {
        let peer = self
            .linked_peer(to)
            .inspect_err(|_| self.mesh.drop_frame())?;
        self.mesh.send(to, peer, frame, wait).await
    }

    /// Counters of the mesh links.
    pub fn mesh_stats(&self) -> MeshLinkStats {
        self.mesh.stats()
    }

    /// Stops the link task (closing every connection).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Starts the link layer with the node key as identity; returns once every listener
/// is up. Messages for the node arrive on the returned queue.
pub async fn start(key: &PrivateKey, config: P2pConfig) -> Result<(P2pNode, Inbound), P2pError> {
    if config.inbound_queue == 0
        || config.outbound_queue == 0
        || config.mesh_inbound_queue == 0
        || config.max_message_bytes == 0
    {
        return Err(P2pError::Config(
            "queue sizes and the message limit must be positive".into(),
        ));
    }
    let keypair = keypair(key)?;
    let local = keypair.public().to_peer_id();
    let codec = ChannelCodec {
        max: config.max_message_bytes,
    };
    let rr_config = request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(256);
    let mdns_enabled = config.mdns;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| {
            let mdns = if mdns_enabled {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                channel: request_response::Behaviour::with_codec(
                    codec,
                    [(PROTOCOL, ProtocolSupport::Full)],
                    rr_config,
                ),
                mdns: Toggle::from(mdns),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| P2pError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    // Wait until every listener reported an address (or failed).
    let mut listening = Vec::new();
    let mut pending: BTreeSet<_> = (0..config.listen.len()).collect();
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    let mut ids = Vec::new();
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| P2pError::Listen {
                addr: format!("{:?}", config.listen),
                reason: "listeners did not come up".into(),
            })?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if !ids.contains(&listener_id) {
                    ids.push(listener_id);
                    pending.pop_first();
                }
                listening.push(address);
            }
            SwarmEvent::ListenerError { error, .. }
            | SwarmEvent::ListenerClosed {
                reason: Err(error), ..
            } => {
                return Err(P2pError::Listen {
                    addr: format!("{:?}", config.listen),
                    reason: error.to_string(),
                });
            }
            _ => {}
        }
    }
    let address = key.address();
    let shared = Arc::new(Shared {
        local,
        address,
        counters: Counters::default(),
        table: Mutex::new(Table {
            listen: listening,
            ..Table::default()
        }),
    });
    let (commands, command_rx) = mpsc::channel(config.outbound_queue);
    let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_queue);
    let (mesh_tx, mesh_rx) = mpsc::channel(config.mesh_inbound_queue);
    let mesh = MeshLinks::start(swarm.behaviour().stream.new_control(), mesh_tx);
    let node = P2pNode {
        shared: shared.clone(),
        commands,
        inbound: inbound_tx.downgrade(),
        mesh,
        mesh_inbound: Arc::new(Mutex::new(Some(mesh_rx))),
    };
    let task = LinkTask {
        swarm,
        shared,
        inbound: inbound_tx,
        static_peers: config.static_peers.clone(),
        pending: HashMap::new(),
        in_flight: HashMap::new(),
    };
    tokio::spawn(task.run(command_rx, config.redial_interval));
    Ok((node, inbound_rx))
}

struct LinkTask {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    inbound: mpsc::Sender<(Address, Vec<u8>)>,
    static_peers: Vec<Multiaddr>,
    /// Messages waiting for a link being dialed, per peer (bounded).
    pending: HashMap<PeerId, VecDeque<Vec<u8>>>,
    /// Requests sent and not yet answered.
    in_flight: HashMap<request_response::OutboundRequestId, PeerId>,
}

impl LinkTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, redial: Duration) {
        self.dial_static();
        let mut redial = tokio::time::interval(redial);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send { to, bytes }) => self.send(to, bytes),
                    Some(Command::Shutdown(done)) => {
                        let _ = done.send(());
                        break;
                    }
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = redial.tick() => self.dial_static(),
            }
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn dial_static(&mut self) {
        for addr in self.static_peers.clone() {
            if let Some(peer) = peer_of(&addr)
                && self.swarm.is_connected(&peer)
            {
                continue;
            }
            if peer_of(&addr).is_none() && self.static_addr_connected(&addr) {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "dial failed");
            }
        }
    }

    /// Whether a static address without a peer id is already linked.
    fn static_addr_connected(&self, addr: &Multiaddr) -> bool {
        let table = self.shared.table();
        table
            .peers
            .values()
            .any(|e| !e.connections.is_empty() && e.addrs.contains(addr))
    }

    fn send(&mut self, to: Address, bytes: Vec<u8>) {
        let peer = self.shared.table().by_address.get(&to).copied();
        let Some(peer) = peer else {
            tracing::debug!(%to, "no known peer for the address; dropped");
            self.shared.drop_message();
            return;
        };
        if self.swarm.is_connected(&peer) {
            self.request(peer, bytes);
            return;
        }
        let queue = self.pending.entry(peer).or_default();
        if queue.len() >= PENDING_PER_PEER {
            self.shared.drop_message();
            return;
        }
        queue.push_back(bytes);
        let addrs: Vec<Multiaddr> = self
            .shared
            .table()
            .peers
            .get(&peer)
            .map(|e| e.addrs.iter().cloned().collect())
            .unwrap_or_default();
        self.dial_peer(peer, addrs);
    }

    fn request(&mut self, peer: PeerId, bytes: Vec<u8>) {
        let id = self
            .swarm
            .behaviour_mut()
            .channel
            .send_request(&peer, bytes);
        self.in_flight.insert(id, peer);
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn dial_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addrs)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "dial failed");
        }
    }

    fn flush_pending(&mut self, peer: PeerId) {
        if let Some(queue) = self.pending.remove(&peer) {
            for bytes in queue {
                self.request(peer, bytes);
            }
        }
    }

    fn learn(&mut self, peer: PeerId, addr: Option<Multiaddr>, source: PeerSource) -> bool {
        let Some(address) = address_of_peer(&peer) else {
            return false;
        };
        let mut table = self.shared.table();
        if !table.peers.contains_key(&peer) && table.peers.len() >= MAX_PEERS {
            // Forget a disconnected peer to make room.
            let victim = table
                .peers
                .iter()
                .find(|(_, e)| e.connections.is_empty())
                .map(|(id, _)| *id);
            match victim {
                Some(v) => {
                    if let Some(old) = table.peers.remove(&v) {
                        table.by_address.remove(&old.address);
                    }
                }
                None => return false,
            }
        }
        table.by_address.insert(address, peer);
        let entry = table.peers.entry(peer).or_insert_with(|| PeerEntry {
            address,
            addrs: BTreeSet::new(),
            connections: Vec::new(),
            source,
        });
        if source == PeerSource::Static {
            entry.source = PeerSource::Static;
        }
        if let Some(addr) = addr.map(|a| without_peer(&a))
            && entry.addrs.len() < ADDRS_PER_PEER
        {
            entry.addrs.insert(addr);
        }
        true
    }

    fn is_static(&self, addr: &Multiaddr) -> bool {
        let bare = without_peer(addr);
        self.static_peers.iter().any(|s| without_peer(s) == bare)
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let mut table = self.shared.table();
                if !table.listen.contains(&address) {
                    table.listen.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.shared.table().listen.retain(|a| a != &address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                let mut table = self.shared.table();
                if let Some(entry) = table.peers.get_mut(&peer_id) {
                    let before = entry.connections.len();
                    entry.connections.retain(|(id, _)| *id != connection_id);
                    if entry.connections.len() < before {
                        self.shared
                            .counters
                            .connections
                            .fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                if !self.swarm.is_connected(&peer)
                    && let Some(queue) = self.pending.remove(&peer)
                {
                    tracing::debug!(%peer, %error, dropped = queue.len(), "dial failed");
                    for _ in queue {
                        self.shared.drop_message();
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(BehaviourEvent::Channel(event)) => self.on_channel(event),
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, connection: ConnectionId, endpoint: &ConnectedPoint) {
        let (addr, dialer) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), true),
            ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr.clone(), false),
        };
        let source = if dialer && self.is_static(&addr) {
            PeerSource::Static
        } else if dialer {
            PeerSource::Mdns
        } else {
            PeerSource::Inbound
        };
        // Keep the listener side's ephemeral port out of the address book.
        let learned = if dialer { Some(addr) } else { None };
        if !self.learn(peer, learned, source) {
            tracing::info!(%peer, "refusing a peer whose key is not secp256k1");
            self.swarm.close_connection(connection);
            return;
        }
        let extra = {
            let mut table = self.shared.table();
            let Some(entry) = table.peers.get_mut(&peer) else {
                return;
            };
            entry.connections.push((connection, dialer));
            self.shared
                .counters
                .connections
                .fetch_add(1, Ordering::Relaxed);
            // One logical link per peer: only the side with the smaller peer id closes
            // duplicates, keeping a connection it dialed (the oldest such), so both
            // sides never close different ones.
            if self.shared.local < peer && entry.connections.len() > 1 {
                let keep = entry
                    .connections
                    .iter()
                    .find(|(_, d)| *d)
                    .or_else(|| entry.connections.first())
                    .map(|(id, _)| *id);
                entry
                    .connections
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| Some(*id) != keep)
                    .collect()
            } else {
                Vec::new()
            }
        };
        for id in extra {
            self.swarm.close_connection(id);
        }
        self.flush_pending(peer);
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        match event {
            mdns::Event::Discovered(found) => {
                for (peer, addr) in found {
                    if peer == self.shared.local
                        || !self.learn(peer, Some(addr.clone()), PeerSource::Mdns)
                    {
                        continue;
                    }
                    if !self.swarm.is_connected(&peer) {
                        self.dial_peer(peer, vec![addr]);
                    }
                }
            }
            mdns::Event::Expired(gone) => {
                let mut table = self.shared.table();
                for (peer, addr) in gone {
                    if let Some(entry) = table.peers.get_mut(&peer) {
                        entry.addrs.remove(&without_peer(&addr));
                    }
                }
            }
        }
    }

    fn on_channel(&mut self, event: request_response::Event<Vec<u8>, Ack>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(from) = address_of_peer(&peer) else {
                    return;
                };
                let ack = match self.inbound.try_send((from, request)) {
                    Ok(()) => {
                        self.shared
                            .counters
                            .received
                            .fetch_add(1, Ordering::Relaxed);
                        Ack::Accepted
                    }
                    Err(_) => Ack::Busy,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .channel
                    .send_response(channel, ack);
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.in_flight.remove(&request_id);
                match response {
                    Ack::Accepted => self.shared.counters.acked.fetch_add(1, Ordering::Relaxed),
                    Ack::Busy => self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed),
                };
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.in_flight.remove(&request_id);
                tracing::debug!(%peer, %error, "message not delivered");
                self.shared.drop_message();
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "bad inbound message");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}
