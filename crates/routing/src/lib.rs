//! Loop-free distance-vector routing over neighbour links, in the manner of Babel
//! (RFC 8966): per-source sequence numbers, the feasibility condition, retractions,
//! sequence-number requests against starvation, and a byte budget on announcements.
//!
//! Pure: `(state, input) -> outputs`, with time given by the caller, so the same code
//! runs in a node and in simulations. A route's metric is additive and combines link
//! quality (the caller's per-link cost, 256 for a perfect link) with price: a node that
//! forwards adds `price_weight × its price per KiB` (at most [`MAX_PRICE_METRIC`],
//! 16 perfect links) to the metric it announces for other destinations, and the
//! accumulated price travels beside the metric.

mod state;
mod types;

pub use state::{Input, MAX_PRICE_METRIC, Output, Router};
pub use types::{
    INFINITY, Message, Metric, NodeId, RouteEntry, RouteInfo, RoutingConfig, RoutingError, Seqno,
};
