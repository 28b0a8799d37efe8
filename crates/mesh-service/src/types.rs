//! Settings, views and errors of the mesh service.

use smartmesh_mesh::MessageId;
use smartmesh_primitives::{Address, B256};
use smartmesh_routing::RoutingConfig;
use std::time::Duration;

/// Settings of the mesh service.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Routing settings.
    pub routing: RoutingConfig,
    /// Our forwarding price, token base units per KiB.
    pub price_per_kib: u64,
    /// Hop limit put on packets we originate.
    pub hop_limit: u8,
    /// How often links are checked, routes ticked and the outbox pumped.
    pub tick: Duration,
    /// How often each link is probed for its cost.
    pub probe_interval: Duration,
    /// A message part not acknowledged for this long is sent again.
    pub retransmit: Duration,
    /// Parts of one message in flight at once.
    pub window: usize,
    /// A message not delivered within this is given up.
    pub message_expiry: Duration,
    /// Bytes of messages waiting in the outbox.
    pub outbox_bytes: usize,
    /// Messages kept in the inbox (the oldest are dropped beyond).
    pub inbox_messages: usize,
    /// Bytes kept in the inbox.
    pub inbox_bytes: usize,
    /// Packets held for unreachable destinations, per source.
    pub store_per_source: usize,
    /// Packets held for unreachable destinations, in all.
    pub store_total: usize,
    /// How long a held packet is kept.
    pub store_expiry: Duration,
    /// How long forwarding waits for room on a busy link before dropping.
    pub link_wait: Duration,
    /// A handshake not answered within this is started again.
    pub handshake_retry: Duration,
    /// Capacity of the command queue of the handle.
    pub command_queue: usize,
    /// Where delivery receipts are valid (`smartmesh_mesh::receipt_domain` of the
    /// chain id and token network the accounts settle in).
    pub receipt_domain: B256,
    /// We pay a neighbour once we owe it this much (base units).
    pub settle_threshold: u128,
    /// A neighbour owing us more than half this is throttled, more than this cut off.
    pub credit_limit: u128,
    /// Rate of a throttled neighbour's data, bytes per second.
    pub throttle_bytes_per_sec: u64,
    /// A destination signs a receipt after this many new bytes (and on every tick).
    pub receipt_every_bytes: u64,
    /// Some(price per KiB): this node is a gateway that opens TCP connections to the
    /// outside for streams, and advertises itself.
    pub gateway_price: Option<u64>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            routing: RoutingConfig {
                update_interval_ms: 1_000,
                route_expiry_ms: 3_500,
                ..RoutingConfig::default()
            },
            price_per_kib: 0,
            hop_limit: 16,
            tick: Duration::from_millis(50),
            probe_interval: Duration::from_millis(250),
            retransmit: Duration::from_millis(1_000),
            window: 128,
            message_expiry: Duration::from_secs(3_600),
            outbox_bytes: 256 << 20,
            inbox_messages: 1_000,
            inbox_bytes: 256 << 20,
            store_per_source: 256,
            store_total: 4_096,
            store_expiry: Duration::from_secs(600),
            link_wait: Duration::from_millis(500),
            handshake_retry: Duration::from_secs(2),
            command_queue: 256,
            receipt_domain: smartmesh_mesh::receipt_domain(0, Address::ZERO),
            settle_threshold: 1_000_000,
            credit_limit: 4_000_000,
            throttle_bytes_per_sec: 64 * 1024,
            receipt_every_bytes: 256 * 1024,
            gateway_price: None,
        }
    }
}

/// A message that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// Its id.
    pub id: MessageId,
    /// The sender (authenticated by the session).
    pub from: Address,
    /// File name (empty for text).
    pub name: String,
    /// The bytes.
    pub body: Vec<u8>,
    /// When it was complete, Unix milliseconds.
    pub received_unix_ms: u64,
}

/// Where a sent message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Waiting for a route or a session.
    Waiting,
    /// Parts are on their way.
    Sending,
    /// Every part was acknowledged by the destination.
    Delivered,
    /// Given up after the expiry.
    Expired,
}

impl SendStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Waiting => "waiting",
            SendStatus::Sending => "sending",
            SendStatus::Delivered => "delivered",
            SendStatus::Expired => "expired",
        }
    }
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxView {
    /// Its id.
    pub id: MessageId,
    /// The destination.
    pub to: Address,
    /// File name (empty for text).
    pub name: String,
    /// Size, bytes.
    pub bytes: u64,
    /// Parts in all.
    pub parts: u32,
    /// Parts acknowledged.
    pub acked: u32,
    /// Where it stands.
    pub status: SendStatus,
    /// Microseconds from queueing to the last acknowledgement, once delivered.
    pub delivery_us: Option<u64>,
}

/// A selected route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    /// The destination.
    pub destination: Address,
    /// The neighbour packets go to.
    pub next_hop: Address,
    /// Route metric (link costs plus weighted prices).
    pub metric: u32,
    /// Price per KiB of the forwarding nodes on the way.
    pub price_per_kib: u64,
}

/// A neighbour link as the mesh sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourView {
    /// The neighbour.
    pub address: Address,
    /// Link cost (256: perfect).
    pub cost: u32,
    /// Smoothed probe round trip, microseconds (None before the first answer).
    pub rtt_us: Option<u64>,
}

/// A neighbour's pay-for-forward account (amounts in token base units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The neighbour.
    pub neighbour: Address,
    /// Billed to it for data we carried (receipted).
    pub owed_to_us: u128,
    /// Billed to us for data it carried (receipted).
    pub owed_by_us: u128,
    /// Paid to it by channel transfers.
    pub paid_to_them: u128,
    /// Received from it by channel transfers.
    pub credited_from_them: u128,
    /// Our earnings (our own price's share) from its traffic.
    pub earned: u128,
    /// Receipted bytes we carried for it.
    pub bytes_carried_for_them: u64,
    /// Receipted bytes it carried for us.
    pub bytes_carried_by_them: u64,
    /// `good`, `throttled` or `cut_off`.
    pub standing: &'static str,
}

/// Counters of the mesh service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshStats {
    /// Packets forwarded for others.
    pub forwarded_packets: u64,
    /// Bytes forwarded for others.
    pub forwarded_bytes: u64,
    /// Packets dropped (no route and store full, hop limit, duplicates, busy links).
    pub dropped_packets: u64,
    /// Packets held for unreachable destinations now.
    pub stored_packets: u64,
    /// Malformed packets from neighbours.
    pub bad_packets: u64,
    /// Messages delivered to us.
    pub messages_received: u64,
    /// Our messages acknowledged in full.
    pub messages_delivered: u64,
    /// Sessions established.
    pub sessions: u64,
    /// Packets refused from neighbours past their credit.
    pub cut_off_packets: u64,
    /// Packets dropped by throttling.
    pub throttled_packets: u64,
    /// Receipts signed.
    pub receipts_signed: u64,
    /// Settlement payments made.
    pub settlements: u64,
}

/// Errors of the mesh service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshServiceError {
    /// The service stopped.
    #[error("the mesh service is not running")]
    Stopped,
    /// The message is larger than the limit.
    #[error("message of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A message to ourselves.
    #[error("cannot send a message to this node itself")]
    ToSelf,
    /// The outbox is full.
    #[error("the outbox is full ({bytes} bytes waiting); try again later")]
    OutboxFull {
        /// Bytes waiting.
        bytes: usize,
    },
    /// A file name too long.
    #[error("file name longer than {0} bytes")]
    NameTooLong(usize),
    /// A setting is invalid.
    #[error("invalid mesh setting: {0}")]
    Config(String),
    /// No gateway is known and reachable.
    #[error("no gateway is reachable over the mesh")]
    NoGateway,
    /// Too many streams open.
    #[error("too many streams open (at most {0})")]
    TooManyStreams(usize),
    /// The stream is closed or was reset.
    #[error("the stream is closed")]
    StreamClosed,
    /// The gateway refused or could not open the stream.
    #[error("the gateway could not open the stream: {0}")]
    StreamRefused(String),
}

/// A gateway known to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayView {
    /// The gateway node.
    pub gateway: Address,
    /// Its uplink price per KiB.
    pub price_per_kib: u64,
    /// Route metric to it.
    pub metric: u32,
    /// Carriers' price per KiB on the way.
    pub route_price_per_kib: u64,
}
