//! How channel messages travel between nodes: the [`Transport`] seam (libp2p implements
//! it in the next step) and [`MemoryNetwork`], an in-process transport for tests.
//!
//! The engine retries every unacknowledged message from its persisted queue, so a
//! transport may drop messages (a full queue, an offline peer); it must not invent or
//! alter them, and the `from` address of an inbound message must be authenticated.

use async_trait::async_trait;
use smartmesh_primitives::Address;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Sends encoded messages to peers by address.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends `bytes` to `to`, best effort: delivery is confirmed only by the peer's
    /// `Ack` message. Must not block for long (bounded queues, drop when full).
    async fn send(&self, to: Address, bytes: Vec<u8>);
}

/// Messages arriving for one node: `(authenticated sender, bytes)`. Bounded.
pub type Inbound = mpsc::Receiver<(Address, Vec<u8>)>;

/// An in-process network of nodes with bounded queues. Messages to an unknown or
/// offline node, or to a full queue, are dropped (the engine retries).
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<NetInner>>,
}

#[derive(Default)]
struct NetInner {
    queues: HashMap<Address, mpsc::Sender<(Address, Vec<u8>)>>,
    offline: HashSet<Address>,
    dropped: u64,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork").finish_non_exhaustive()
    }
}

/// Capacity of each node's inbound queue in a [`MemoryNetwork`].
pub const MEMORY_QUEUE: usize = 4096;

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches `address` (replacing an earlier attachment, e.g. after a restart) and
    /// returns its transport and inbound queue.
    pub fn join(&self, address: Address) -> (Arc<MemoryTransport>, Inbound) {
        let (tx, rx) = mpsc::channel(MEMORY_QUEUE);
        self.lock().queues.insert(address, tx);
        (
            Arc::new(MemoryTransport {
                net: self.clone(),
                me: address,
            }),
            rx,
        )
    }

    /// Takes `address` off the network (its messages in and out are dropped) or back on.
    pub fn set_online(&self, address: Address, online: bool) {
        let mut inner = self.lock();
        if online {
            inner.offline.remove(&address);
        } else {
            inner.offline.insert(address);
        }
    }

    /// Messages dropped so far (offline, unknown or full).
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, from: Address, to: Address, bytes: Vec<u8>) {
        let mut inner = self.lock();
        let queue = if inner.offline.contains(&from) || inner.offline.contains(&to) {
            None
        } else {
            inner.queues.get(&to).cloned()
        };
        let delivered = queue.is_some_and(|q| q.try_send((from, bytes)).is_ok());
        if !delivered {
            inner.dropped += 1;
        }
    }
}

/// One node's end of a [`MemoryNetwork`].
pub struct MemoryTransport {
    net: MemoryNetwork,
    me: Address,
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn send(&self, to: Address, bytes: Vec<u8>) {
        self.net.deliver(self.me, to, bytes);
    }
}
