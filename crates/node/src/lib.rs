#![doc = include_str!("../README.md")]

pub mod chain_io;
pub mod clock;
mod error;
mod handle;
mod node;
pub mod transport;

pub use chain_io::{ChainAccess, ChainCursor};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::NodeError;
pub use handle::Balances;
pub use node::{
    Applied, NodeConfig, NodeHandle, PaymentStatus, carries_balance_proof, queued_message_kinds,
    start,
};
pub use transport::{Inbound, MemoryNetwork, MemoryTransport, Transport};
