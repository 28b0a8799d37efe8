//! Metrics, sequence numbers, messages and settings.

use smartmesh_primitives::Address;

/// A node's address in the mesh (its Ethereum address).
pub type NodeId = Address;

/// An additive route metric; [`INFINITY`] means unreachable (a retraction).
pub type Metric = u32;

/// The unreachable metric.
pub const INFINITY: Metric = u32::MAX;

/// A 16-bit sequence number compared modulo 2^16 (RFC 8966 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seqno(pub u16);

impl Seqno {
    /// Whether `self` is newer than `other` (modular comparison).
    pub fn newer_than(self, other: Seqno) -> bool {
        let diff = self.0.wrapping_sub(other.0);
        diff != 0 && diff < 0x8000
    }

    /// The next sequence number.
    pub fn next(self) -> Seqno {
        Seqno(self.0.wrapping_add(1))
    }
}

/// One announced route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteEntry {
    /// Where the route leads.
    pub destination: NodeId,
    /// The destination's sequence number the route is based on.
    pub seqno: Seqno,
    /// The announcer's metric to the destination (forwarding price included).
    pub metric: Metric,
    /// Sum of the forwarding prices (per KiB, token base units) of the nodes between the
    /// announcer and the destination, the announcer included when it forwards.
    pub price: u64,
}

/// Messages between neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Routes (full dumps, triggered updates and retractions).
    Update(Vec<RouteEntry>),
    /// Please announce `destination` with a sequence number at least `seqno`.
    SeqnoRequest {
        /// The destination.
        destination: NodeId,
        /// The wanted sequence number.
        seqno: Seqno,
        /// Hops the request may still travel.
        hop_count: u8,
    },
}

/// Bytes one route entry takes on the wire (address, seqno, metric, price).
pub const ENTRY_BYTES: usize = 20 + 2 + 4 + 8;
/// Bytes of a seqno request.
pub const REQUEST_BYTES: usize = 20 + 2 + 1;

impl Message {
    /// Its size on the wire, for the announcement budget.
    pub fn wire_bytes(&self) -> usize {
        match self {
            Message::Update(entries) => 4 + entries.len() * ENTRY_BYTES,
            Message::SeqnoRequest { .. } => 4 + REQUEST_BYTES,
        }
    }
}

/// A selected route, for callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// Where it leads.
    pub destination: NodeId,
    /// The neighbour to send to.
    pub next_hop: NodeId,
    /// Total metric.
    pub metric: Metric,
    /// Accumulated forwarding price per KiB.
    pub price: u64,
    /// Sequence number.
    pub seqno: Seqno,
}

/// Settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Full dumps to every neighbour this often (milliseconds).
    pub update_interval_ms: u64,
    /// A route not refreshed for this long is dropped (milliseconds).
    pub route_expiry_ms: u64,
    /// Metric added per unit of forwarding price (per KiB).
    pub price_weight: u32,
    /// Announcement bytes each neighbour may be sent per second (token bucket).
    pub budget_bytes_per_sec: u64,
    /// The bucket's depth, bytes.
    pub budget_burst_bytes: u64,
    /// Most routes kept (per destination and neighbour pair).
    pub max_routes: usize,
    /// Most entries in one update message.
    pub max_entries_per_message: usize,
    /// Hops a seqno request travels.
    pub request_hops: u8,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            update_interval_ms: 4_000,
            route_expiry_ms: 14_000,
            price_weight: 1,
            budget_bytes_per_sec: 4_096,
            budget_burst_bytes: 16_384,
            max_routes: 4_096,
            max_entries_per_message: 64,
            request_hops: 16,
        }
    }
}

/// Errors of the routing crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// A setting is out of range.
    #[error("invalid routing setting: {0}")]
    Config(String),
}

impl RoutingConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), RoutingError> {
        if self.update_interval_ms == 0 || self.route_expiry_ms <= self.update_interval_ms {
            return Err(RoutingError::Config(
                "route expiry must exceed a positive update interval".into(),
            ));
        }
        if self.max_entries_per_message == 0 || self.max_routes == 0 {
            return Err(RoutingError::Config("limits must be positive".into()));
        }
        if self.budget_burst_bytes < (4 + ENTRY_BYTES) as u64 {
            return Err(RoutingError::Config(
                "the announcement burst must fit one route".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqnos_compare_modulo_two_to_the_sixteen() {
        assert!(Seqno(1).newer_than(Seqno(0)));
        assert!(Seqno(0).newer_than(Seqno(u16::MAX)));
        assert!(!Seqno(0).newer_than(Seqno(0)));
        assert!(!Seqno(0).newer_than(Seqno(1)));
        assert!(Seqno(0x7fff).newer_than(Seqno(0)));
        assert!(!Seqno(0x8000).newer_than(Seqno(0)));
    }
}
