//! Mesh links: one long-lived `/smartmesh/mesh/1` stream per neighbour and direction,
//! carrying length-prefixed mesh packets. Unlike channel messages (one request each),
//! mesh traffic is a flow: a stream keeps the frames in order and lets a slow reader
//! push back on its writer through yamux and TCP, so bulk data is neither dropped nor
//! buffered without bound.

use crate::identity::address_of_peer;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use smartmesh_primitives::Address;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The protocol name.
pub(crate) const MESH_PROTOCOL: StreamProtocol = StreamProtocol::new("/smartmesh/mesh/1");
/// Largest mesh frame sent or accepted, bytes.
pub const MAX_MESH_FRAME: usize = 128 * 1024;
/// Frames queued per neighbour before a send is refused as full.
const WRITER_QUEUE: usize = 256;
/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mesh frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MeshSendError {
    /// No link to that neighbour is up.
    #[error("no link to the neighbour")]
    NoLink,
    /// The neighbour's queue is full (it reads slower than we write).
    #[error("the link's queue is full")]
    Full,
    /// The frame is larger than [`MAX_MESH_FRAME`].
    #[error("frame too large")]
    TooLarge,
}

/// Counters of the mesh links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshLinkStats {
    /// Frames written to a link.
    pub frames_sent: u64,
    /// Frames read from links and handed to the mesh.
    pub frames_received: u64,
    /// Frames refused or lost (no link, full queue, broken stream).
    pub frames_dropped: u64,
    /// Payload bytes written.
    pub bytes_sent: u64,
    /// Payload bytes read.
    pub bytes_received: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

struct Writer {
    id: u64,
    frames: mpsc::Sender<Vec<u8>>,
}

/// The mesh side of the link layer.
pub(crate) struct MeshLinks {
    control: Mutex<libp2p_stream::Control>,
    writers: Mutex<HashMap<Address, Writer>>,
    next_writer: AtomicU64,
    counters: Counters,
}

impl MeshLinks {
    /// Starts accepting mesh streams; frames read go to `inbound` (awaiting room, so a
    /// full queue slows the neighbour down instead of losing its frames).
    pub(crate) fn start(
        mut control: libp2p_stream::Control,
        inbound: mpsc::Sender<(Address, Vec<u8>)>,
    ) -> Arc<Self> {
        let incoming = control.accept(MESH_PROTOCOL);
        let links = Arc::new(Self {
            control: Mutex::new(control),
            writers: Mutex::new(HashMap::new()),
            next_writer: AtomicU64::new(0),
            counters: Counters::default(),
        });
        match incoming {
            Ok(incoming) => {
                tokio::spawn(accept_loop(incoming, Arc::downgrade(&links), inbound));
            }
            Err(e) => tracing::error!(error = %e, "mesh protocol registered twice"),
        }
        links
    }

    pub(crate) fn stats(&self) -> MeshLinkStats {
        let c = &self.counters;
        MeshLinkStats {
            frames_sent: c.sent.load(Ordering::Relaxed),
            frames_received: c.received.load(Ordering::Relaxed),
            frames_dropped: c.dropped.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        }
    }

    fn writer(self: &Arc<Self>, to: Address, peer: PeerId) -> mpsc::Sender<Vec<u8>> {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = writers.get(&to)
            && !w.frames.is_closed()
        {
            return w.frames.clone();
        }
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let id = self.next_writer.fetch_add(1, Ordering::Relaxed);
        writers.insert(
            to,
            Writer {
                id,
                frames: tx.clone(),
            },
        );
        let control = self
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tokio::spawn(write_loop(control, peer, to, id, rx, Arc::downgrade(self)));
        tx
    }

    /// Queues `frame` for neighbour `to` (its peer id `peer`) without waiting.
    pub(crate) fn try_send(
        self: &Arc<Self>,
        to: Address,
        peer: PeerId,
        frame: Vec<u8>,
    ) -> Result<(), MeshSendError> {
        if frame.len() > MAX_MESH_FRAME {
            return Err(MeshSendError::TooLarge);
        }
        self.writer(to, peer).try_send(frame).map_err(|_| {
            self.drop_frame();
            MeshSendError::Full
        })
    }

    /// Queues `frame`, waiting up to `wait` for room.
    pub(crate) async fn send(
        self: &Arc<Self>,
        to: Address,
        peer: PeerId,
        frame: Vec<u8>,
        wait: Duration,
    ) -> Result<(), MeshSendError> {
        if frame.len() > MAX_MESH_FRAME {
            return Err(MeshSendError::TooLarge);
        }
        let writer = self.writer(to, peer);
        match tokio::time::timeout(wait, writer.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.drop_frame();
                Err(MeshSendError::Full)
            }
        }
    }

    pub(crate) fn drop_frame(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn forget_writer(&self, to: Address, id: u64) {
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if writers.get(&to).is_some_and(|w| w.id == id) {
            writers.remove(&to);
        }
    }
}

async fn write_loop(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    to: Address,
    id: u64,
    mut frames: mpsc::Receiver<Vec<u8>>,
    links: Weak<MeshLinks>,
) {
    let opened = tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, MESH_PROTOCOL)).await;
    let stream = match opened {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%to, error = %e, "mesh stream not opened");
            None
        }
        Err(_) => {
            tracing::debug!(%to, "mesh stream not opened in time");
            None
        }
    };
    if let Some(stream) = stream {
        let mut stream = futures::io::BufWriter::with_capacity(64 * 1024, stream);
        while let Some(frame) = frames.recv().await {
            let Some(links) = links.upgrade() else { break };
            let len = (frame.len() as u32).to_be_bytes();
            let written = async {
                stream.write_all(&len).await?;
                stream.write_all(&frame).await?;
                if frames.is_empty() {
                    stream.flush().await?;
                }
                Ok::<_, std::io::Error>(())
            }
            .await;
            match written {
                Ok(()) => {
                    links.counters.sent.fetch_add(1, Ordering::Relaxed);
                    links
                        .counters
                        .bytes_sent
                        .fetch_add(frame.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(%to, error = %e, "mesh stream broke");
                    links.drop_frame();
                    break;
                }
            }
        }
        let _ = stream.close().await;
    }
    frames.close();
    if let Some(links) = links.upgrade() {
        links.forget_writer(to, id);
        while frames.try_recv().is_ok() {
            links.drop_frame();
        }
    }
}

async fn accept_loop(
    mut incoming: libp2p_stream::IncomingStreams,
    links: Weak<MeshLinks>,
    inbound: mpsc::Sender<(Address, Vec<u8>)>,
) {
    while let Some((peer, stream)) = incoming.next().await {
        let Some(from) = address_of_peer(&peer) else {
            continue;
        };
        tokio::spawn(read_loop(stream, from, links.clone(), inbound.clone()));
    }
}

async fn read_loop(
    stream: libp2p::Stream,
    from: Address,
    links: Weak<MeshLinks>,
    inbound: mpsc::Sender<(Address, Vec<u8>)>,
) {
    let mut stream = futures::io::BufReader::with_capacity(64 * 1024, stream);
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_MESH_FRAME {
            tracing::debug!(%from, len, "oversized mesh frame: link dropped");
            return;
        }
        let mut frame = vec![0u8; len];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        if let Some(links) = links.upgrade() {
            links.counters.received.fetch_add(1, Ordering::Relaxed);
            links
                .counters
                .bytes_received
                .fetch_add(len as u64, Ordering::Relaxed);
        }
        if inbound.send((from, frame)).await.is_err() {
            return;
        }
    }
}
