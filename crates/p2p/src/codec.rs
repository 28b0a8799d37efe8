//! The `/smartmesh/channel/1` codec: a request is a 4-byte big-endian length and that
//! many bytes (bounded); the response is one byte, accepted or busy.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

/// The protocol name.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/smartmesh/channel/1");

/// The transport ack of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// Queued for the node.
    Accepted,
    /// The node's queue is full: dropped, send again later.
    Busy,
}

/// Length-prefixed bytes, bounded by `max`.
#[derive(Debug, Clone)]
pub(crate) struct ChannelCodec {
    pub(crate) max: usize,
}

impl libp2p::request_response::Codec for ChannelCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Ack;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("message of {len} bytes exceeds the limit of {}", self.max),
            ));
        }
        let mut bytes = vec![0u8; len];
        io.read_exact(&mut bytes).await?;
        Ok(bytes)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Ack>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        match byte[0] {
            1 => Ok(Ack::Accepted),
            2 => Ok(Ack::Busy),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown ack byte {other}"),
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&l| l as usize <= self.max)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        ack: Ack,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let byte = match ack {
            Ack::Accepted => 1u8,
            Ack::Busy => 2u8,
        };
        io.write_all(&[byte]).await?;
        io.close().await
    }
}
