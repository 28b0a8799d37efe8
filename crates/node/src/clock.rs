//! The node's clock, injectable so tests can move hours of node time in milliseconds.

use smartmesh_primitives::ChainTime;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the node takes the time of its `Tick` inputs from (seconds, chain-time scale).
pub trait Clock: Send + Sync + 'static {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> ChainTime;
}

fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> ChainTime {
        ChainTime(wall_secs())
    }
}

/// The wall clock plus an offset that tests move forward (shared by clones), in step
/// with the embedded chain's own `advance_clock`.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    offset: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at wall time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock (and every clone) forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// The total offset from the wall clock, in seconds.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> ChainTime {
        ChainTime(wall_secs().saturating_add(self.offset()))
    }
}
