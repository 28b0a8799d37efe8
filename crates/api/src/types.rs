//! Request and response bodies of the REST API (JSON). Token amounts travel as decimal
//! strings of base units (JSON numbers cannot hold 256 bits exactly); addresses as
//! `0x` hex; channel and payment ids as decimal strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smartmesh_primitives::{Address, B256, U256};
use std::fmt;
use std::str::FromStr;

/// The version prefix of every endpoint but `/openapi.json` and `/metrics`.
pub const API_PREFIX: &str = "/v1";

/// A token amount in base units, as a decimal string in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub U256);

/// Why a string is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Empty, or not only the digits 0-9.
    #[error("amount must be a decimal string of base units (digits only), got {0:?}")]
    NotDecimal(String),
    /// More than 2^256 - 1.
    #[error("amount overflow: {0:?} does not fit in 256 bits")]
    Overflow(String),
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 200 || !s.bytes().all(|b| b.is_ascii_digit()) {
            let shown: String = s.chars().take(80).collect();
            return Err(AmountError::NotDecimal(shown));
        }
        U256::from_str_radix(s, 10)
            .map(Amount)
            .map_err(|_| AmountError::Overflow(s.chars().take(80).collect()))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A decimal-string id (channel ids are 256-bit, payment ids 64-bit).
pub type IdString = String;

/// `GET /v1/address`: who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's Ethereum address (its identity).
    pub address: Address,
    /// Its libp2p peer id (derived from the same key).
    pub peer_id: String,
    /// Multiaddrs it listens on (each ending in `/p2p/<peer id>`).
    pub listen_addrs: Vec<String>,
    /// Chain id of the chain it settles on.
    pub chain_id: u64,
    /// The TokenNetwork contract.
    pub token_network: Address,
    /// The SMT token contract.
    pub token: Address,
    /// Software version.
    pub version: String,
}

/// One entry of `GET /v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's Ethereum address (authenticated by the link's Noise handshake).
    pub address: Address,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses we know for it.
    pub addrs: Vec<String>,
    /// Whether a link is up now.
    pub connected: bool,
    /// How we learned of it: `mdns`, `static` or `inbound`.
    pub source: String,
}

/// One entry of `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token contract.
    pub token: Address,
    /// Its symbol.
    pub symbol: String,
    /// The TokenNetwork holding its channels.
    pub token_network: Address,
    /// Our balance on chain (`None` while the chain is unreachable).
    pub onchain_balance: Option<Amount>,
    /// What we can still send over open channels.
    pub offchain_capacity: Amount,
}

/// One side's newest balance proof in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceInfo {
    /// Nonce (0: nothing sent).
    pub nonce: u64,
    /// Cumulative transferred amount.
    pub transferred_amount: Amount,
    /// Pending locked amount.
    pub locked_amount: Amount,
    /// Root of the pending locks.
    pub locksroot: B256,
}

/// How a channel ended on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutcomeInfo {
    /// Settled after the timeout.
    Settled {
        /// Paid to us.
        ours: Amount,
        /// Paid to the partner.
        partner: Amount,
    },
    /// Settled cooperatively.
    CooperativelySettled {
        /// Paid to us.
        ours: Amount,
        /// Paid to the partner.
        partner: Amount,
    },
    /// The closer lied: the whole deposit went to `beneficiary`.
    Penalized {
        /// The non-closer.
        beneficiary: Address,
        /// The amount.
        amount: Amount,
    },
}

/// `GET /v1/channels` entries and `GET /v1/channels/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Contract channel id.
    pub channel_id: IdString,
    /// The partner.
    pub partner: Address,
    /// `opened`, `settling`, `closing`, `closed` or `settled`.
    pub status: String,
    /// Settle timeout, seconds.
    pub settle_timeout: u64,
    /// Our total deposit.
    pub our_deposit: Amount,
    /// Our total withdrawn.
    pub our_withdrawn: Amount,
    /// The partner's total deposit.
    pub partner_deposit: Amount,
    /// The partner's total withdrawn.
    pub partner_withdrawn: Amount,
    /// What we can send now.
    pub our_capacity: Amount,
    /// What the partner can send now.
    pub partner_capacity: Amount,
    /// Our newest balance proof (what we sent).
    pub our_balance: BalanceInfo,
    /// The partner's newest balance proof (what we received).
    pub partner_balance: BalanceInfo,
    /// Who closed it, when closed.
    pub closer: Option<Address>,
    /// Set once finished on chain.
    pub outcome: Option<OutcomeInfo>,
}

/// `POST /v1/channels`: open a channel (needs the chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenChannelRequest {
    /// The partner.
    pub partner: Address,
    /// Our deposit (may be "0").
    pub deposit: Amount,
    /// Settle timeout, seconds (the node's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_timeout: Option<u64>,
}

/// `POST /v1/channels/{id}/deposit` and `/withdraw`: the new total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotalRequest {
    /// New total deposit or total withdrawn.
    pub total: Amount,
}

/// How a payment travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMode {
    /// Direct when we have a channel with the target, mediated otherwise.
    #[default]
    Auto,
    /// One signed transfer to a channel partner.
    Direct,
    /// Hash-locked transfers over a route (fees on top).
    Mediated,
}

/// `POST /v1/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// The payee.
    pub target: Address,
    /// What it receives.
    pub amount: Amount,
    /// Direct, mediated or auto (default).
    #[serde(default)]
    pub mode: PaymentMode,
    /// Wait (up to `timeout_ms`, default 10 s) for a final status before answering.
    #[serde(default)]
    pub wait: bool,
    /// Bound on the wait, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A payment as this node saw it (`POST /v1/payments`, `GET /v1/payments[/{id}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInfo {
    /// Payment id.
    pub payment_id: IdString,
    /// `pending`, `sent`, `received`, `mediated` or `failed`.
    pub status: String,
    /// Our role: `initiator`, `target` or `mediator`.
    pub role: String,
    /// The payee, when known.
    pub target: Option<Address>,
    /// The payer, when known.
    pub initiator: Option<Address>,
    /// Amount paid to the target (for a mediator: what it paid on).
    pub amount: Option<Amount>,
    /// Fee earned (mediators).
    pub fee_earned: Option<Amount>,
    /// Why it failed.
    pub failure: Option<String>,
}

/// One entry of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// Position in the node's log (increasing).
    pub seq: u64,
    /// Wall-clock time the node applied it, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Event kind (`payment_sent`, `channel_closed`, ...).
    pub kind: String,
    /// A one-line human description.
    pub detail: String,
}

/// `GET /v1/chain`: the chain connection as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// `unreachable`, `syncing` or `synced`. While not `synced` the node opens nothing on
    /// chain and queues its on-chain actions (payments over open channels go on).
    pub status: String,
    /// `embedded` or the JSON-RPC URL.
    pub endpoint: String,
    /// Chain id.
    pub chain_id: u64,
    /// Newest block the chain reported (`None` if never reached).
    pub head_block: Option<u64>,
    /// Newest block the watcher has scanned.
    pub scanned_block: u64,
    /// Newest chain time seen, seconds.
    pub chain_time: u64,
    /// On-chain actions queued until the chain is synced.
    pub queued_onchain_actions: u64,
    /// Channel messages sent and not yet acknowledged.
    pub queued_messages: u64,
}

/// `GET /v1/status`: one screen of everything (what `smartmesh status` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Who we are.
    pub node: NodeInfo,
    /// The chain connection.
    pub chain: ChainInfo,
    /// Balances.
    pub tokens: Vec<TokenInfo>,
    /// Peers with a link up.
    pub connected_peers: u64,
    /// Channels by status.
    pub channels_open: u64,
    /// Channels not open (closing, closed, settled).
    pub channels_other: u64,
    /// The link layer's counters.
    pub links: LinkStatsInfo,
}

/// Counters of the link layer (in `/status` and `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatsInfo {
    /// Messages handed to a link.
    pub messages_sent: u64,
    /// Messages the peer acknowledged.
    pub messages_acked: u64,
    /// Messages dropped (queue full, no link, busy peer); the engine sends them again.
    pub messages_dropped: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Sends waiting for the link task.
    pub outbound_queue_depth: u64,
    /// Inbound messages waiting for the node.
    pub inbound_queue_depth: u64,
    /// Open connections.
    pub connections: u64,
}

/// `POST /v1/fees`: a node's mediation fee (our own when `node` is our address; another
/// node's to route through it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeRequest {
    /// The mediating node.
    pub node: Address,
    /// Flat part, base units.
    pub flat: Amount,
    /// Proportional part, millionths of the forwarded amount.
    pub proportional_ppm: u64,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error: a stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code, one of [`codes`].
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// `POST /v1/mesh/messages`: a text message (or small bytes, hex) for a node address;
/// files go to `POST /v1/mesh/files?to=ADDRESS&name=NAME` as the raw body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The destination node.
    pub to: Address,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
    /// Or bytes, hex (with or without `0x`).
    #[serde(default)]
    pub body_hex: Option<String>,
}

/// A message queued for sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageQueued {
    /// Message id (32 hex digits).
    pub id: String,
    /// Its size, bytes.
    pub bytes: u64,
}

/// A message that arrived (`GET /v1/mesh/inbox`; the bytes at `/v1/mesh/inbox/{message}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Message id.
    pub id: String,
    /// The sender.
    pub from: Address,
    /// File name (empty for text).
    pub name: String,
    /// Size, bytes.
    pub bytes: u64,
    /// When it was complete (Unix ms).
    pub received_unix_ms: u64,
    /// The text, for a text message that is valid UTF-8.
    pub text: Option<String>,
}

/// A message we sent (`GET /v1/mesh/outbox`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Message id.
    pub id: String,
    /// The destination.
    pub to: Address,
    /// File name (empty for text).
    pub name: String,
    /// Size, bytes.
    pub bytes: u64,
    /// Parts in all.
    pub parts: u32,
    /// Parts acknowledged by the destination.
    pub acked: u32,
    /// `waiting`, `sending`, `delivered` or `expired`.
    pub status: String,
    /// Microseconds from queueing to the destination's last acknowledgement.
    pub delivery_us: Option<u64>,
}

/// A neighbour link of the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshNeighbour {
    /// The neighbour.
    pub address: Address,
    /// Link cost (256: perfect).
    pub cost: u32,
    /// Smoothed probe round trip, microseconds.
    pub rtt_us: Option<u64>,
}

/// A selected mesh route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshRoute {
    /// The destination.
    pub destination: Address,
    /// The neighbour packets go to.
    pub next_hop: Address,
    /// Metric (link costs plus weighted prices).
    pub metric: u32,
    /// Price per KiB of the carriers on the way (token base units).
    pub price_per_kib: u64,
}

/// `GET /v1/mesh/routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshRoutes {
    /// Neighbour links.
    pub neighbours: Vec<MeshNeighbour>,
    /// Selected routes.
    pub routes: Vec<MeshRoute>,
}

/// A mesh neighbour's pay-for-forward account (`GET /v1/mesh/accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshAccount {
    /// The neighbour.
    pub neighbour: Address,
    /// Billed to it for data we carried (receipted by the destinations).
    pub owed_to_us: Amount,
    /// Billed to us for data it carried.
    pub owed_by_us: Amount,
    /// Paid to it by direct channel transfers.
    pub paid_to_them: Amount,
    /// Received from it by direct channel transfers.
    pub credited_from_them: Amount,
    /// Our earnings (our price's share) from its traffic.
    pub earned: Amount,
    /// Receipted bytes we carried for it.
    pub bytes_carried_for_them: u64,
    /// Receipted bytes it carried for us.
    pub bytes_carried_by_them: u64,
    /// `good`, `throttled` or `cut_off`.
    pub standing: String,
}

/// A gateway out of the mesh (`GET /v1/mesh/gateways`, best first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshGateway {
    /// The gateway node.
    pub gateway: Address,
    /// Its advertised uplink price per KiB.
    pub price_per_kib: u64,
    /// Route metric to it.
    pub metric: u32,
    /// Carriers' price per KiB on the way.
    pub route_price_per_kib: u64,
}

/// `GET /v1/mesh/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshStatsInfo {
    /// Packets forwarded for others.
    pub forwarded_packets: u64,
    /// Bytes forwarded for others.
    pub forwarded_bytes: u64,
    /// Packets dropped.
    pub dropped_packets: u64,
    /// Packets held for unreachable destinations.
    pub stored_packets: u64,
    /// Malformed packets from neighbours.
    pub bad_packets: u64,
    /// Messages received.
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

/// The error codes the API answers with.
pub mod codes {
    /// Missing or wrong bearer token (401).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The body is not valid JSON or not the expected shape (400).
    pub const MALFORMED_JSON: &str = "malformed_json";
    /// An amount is not a decimal string (400).
    pub const INVALID_AMOUNT: &str = "invalid_amount";
    /// An amount does not fit in 256 bits, or a sum would overflow (400).
    pub const AMOUNT_OVERFLOW: &str = "amount_overflow";
    /// A path or query parameter is malformed (400).
    pub const INVALID_PARAMETER: &str = "invalid_parameter";
    /// No such channel (404).
    pub const UNKNOWN_CHANNEL: &str = "unknown_channel";
    /// No such payment (404).
    pub const UNKNOWN_PAYMENT: &str = "unknown_payment";
    /// No such endpoint (404).
    pub const NOT_FOUND: &str = "not_found";
    /// Method not allowed on this endpoint (405).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The engine refused the action: no capacity, no route, channel not open... (409).
    pub const REJECTED: &str = "rejected";
    /// The payment failed (409).
    pub const PAYMENT_FAILED: &str = "payment_failed";
    /// The chain is unreachable; nothing new is opened on chain meanwhile (503).
    pub const CHAIN_UNREACHABLE: &str = "chain_unreachable";
    /// The chain refused the transaction (409).
    pub const CHAIN_ERROR: &str = "chain_error";
    /// Waited too long (504).
    pub const TIMEOUT: &str = "timeout";
    /// The node is stopping (503).
    pub const STOPPED: &str = "stopped";
    /// The request body is too large (413).
    pub const TOO_LARGE: &str = "payload_too_large";
    /// A bug or a storage failure (500).
    pub const INTERNAL: &str = "internal";
    /// This node runs without the mesh (503).
    pub const MESH_UNAVAILABLE: &str = "mesh_unavailable";
    /// No such message (404).
    pub const UNKNOWN_MESSAGE: &str = "unknown_message";
    /// The mesh outbox is full (503).
    pub const OUTBOX_FULL: &str = "outbox_full";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimal_strings() {
        let max = U256::MAX.to_string();
        let parsed: Amount = max.parse().expect("max fits");
        assert_eq!(parsed.0, U256::MAX);
        assert_eq!(
            serde_json::to_string(&parsed).expect("ser"),
            format!("\"{max}\"")
        );
        let over = format!("{max}0");
        assert!(matches!(
            over.parse::<Amount>(),
            Err(AmountError::Overflow(_))
        ));
        for bad in ["", "-1", "1.5", "0x10", " 1", "1e3"] {
            assert!(
                matches!(bad.parse::<Amount>(), Err(AmountError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(
            serde_json::from_str::<Amount>("12").is_err(),
            "numbers are refused"
        );
    }
}
