//! What travels sealed inside a session: chunks of messages and files, and their
//! acknowledgements. Canonical, bounded, never panics on bad bytes.

use crate::MeshError;

/// Message id (random, chosen by the sender).
pub type MessageId = [u8; 16];
/// Largest chunk body (a chunk plus headers fits one sealed datagram).
pub const MAX_CHUNK: usize = 60 * 1024;
/// Largest message or file, bytes.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Longest file name, bytes.
pub const MAX_NAME: usize = 255;

/// One sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Part `index` of `total` of a message (`name` empty for text).
    Chunk {
        /// The message.
        message: MessageId,
        /// This part.
        index: u32,
        /// Parts in all.
        total: u32,
        /// File name (empty: a text message).
        name: String,
        /// The bytes.
        body: Vec<u8>,
    },
    /// Part `index` of `message` arrived.
    ChunkAck {
        /// The message.
        message: MessageId,
        /// The part.
        index: u32,
    },
    /// Open a TCP stream to `host:port` at the receiving gateway.
    StreamOpen {
        /// Stream id (chosen by the opener).
        stream: u32,
        /// Host name or IP literal.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The gateway connected the stream.
    StreamOpened {
        /// Stream id.
        stream: u32,
    },
    /// Stream bytes at `offset`; `fin`: the sender sends nothing after these.
    StreamData {
        /// Stream id.
        stream: u32,
        /// Offset of the first byte.
        offset: u64,
        /// End of the sender's bytes.
        fin: bool,
        /// The bytes.
        body: Vec<u8>,
    },
    /// Every byte before `offset` arrived (cumulative).
    StreamAck {
        /// Stream id.
        stream: u32,
        /// Next expected offset.
        offset: u64,
    },
    /// The stream is over (refused, failed or aborted).
    StreamReset {
        /// Stream id.
        stream: u32,
        /// Why.
        reason: String,
    },
}

const TAG_CHUNK: u8 = 1;
const TAG_CHUNK_ACK: u8 = 2;
const TAG_STREAM_OPEN: u8 = 3;
const TAG_STREAM_OPENED: u8 = 4;
const TAG_STREAM_DATA: u8 = 5;
const TAG_STREAM_ACK: u8 = 6;
const TAG_STREAM_RESET: u8 = 7;

fn short(text: &str) -> &[u8] {
    let mut end = text.len().min(MAX_NAME);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}

/// Most parts a message may have.
pub const MAX_PARTS: u32 = MAX_MESSAGE.div_ceil(MAX_CHUNK) as u32;

impl Payload {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Chunk {
                message,
                index,
                total,
                name,
                body,
            } => {
                let name = &name.as_bytes()[..name.len().min(MAX_NAME)];
                let body = &body[..body.len().min(MAX_CHUNK)];
                let mut out = Vec::with_capacity(1 + 16 + 8 + 1 + name.len() + 4 + body.len());
                out.push(TAG_CHUNK);
                out.extend_from_slice(message);
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(&total.to_be_bytes());
                out.push(name.len() as u8);
                out.extend_from_slice(name);
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(body);
                out
            }
            Payload::ChunkAck { message, index } => {
                let mut out = vec![TAG_CHUNK_ACK];
                out.extend_from_slice(message);
                out.extend_from_slice(&index.to_be_bytes());
                out
            }
            Payload::StreamOpen { stream, host, port } => {
                let host = short(host);
                let mut out = vec![TAG_STREAM_OPEN];
                out.extend_from_slice(&stream.to_be_bytes());
                out.push(host.len() as u8);
                out.extend_from_slice(host);
                out.extend_from_slice(&port.to_be_bytes());
                out
            }
            Payload::StreamOpened { stream } => {
                let mut out = vec![TAG_STREAM_OPENED];
                out.extend_from_slice(&stream.to_be_bytes());
                out
            }
            Payload::StreamData {
                stream,
                offset,
                fin,
                body,
            } => {
                let body = &body[..body.len().min(MAX_CHUNK)];
                let mut out = Vec::with_capacity(1 + 4 + 8 + 1 + 4 + body.len());
                out.push(TAG_STREAM_DATA);
                out.extend_from_slice(&stream.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.push(u8::from(*fin));
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(body);
                out
            }
            Payload::StreamAck { stream, offset } => {
                let mut out = vec![TAG_STREAM_ACK];
                out.extend_from_slice(&stream.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out
            }
            Payload::StreamReset { stream, reason } => {
                let reason = short(reason);
                let mut out = vec![TAG_STREAM_RESET];
                out.extend_from_slice(&stream.to_be_bytes());
                out.push(reason.len() as u8);
                out.extend_from_slice(reason);
                out
            }
        }
    }

    /// Parses canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, MeshError> {
        let err = |what: &str| MeshError::Codec(format!("payload: {what}"));
        let (&tag, rest) = bytes.split_first().ok_or_else(|| err("empty"))?;
        let mut r = rest;
        let mut take = |n: usize| -> Result<&[u8], MeshError> {
            if r.len() < n {
                return Err(err("truncated"));
            }
            let (head, tail) = r.split_at(n);
            r = tail;
            Ok(head)
        };
        let payload = match tag {
            TAG_CHUNK => {
                let mut message = [0u8; 16];
                message.copy_from_slice(take(16)?);
                let index = u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("index"))?);
                let total = u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("total"))?);
                if total == 0 || total > MAX_PARTS || index >= total {
                    return Err(err("part numbers out of range"));
                }
                let name_len = usize::from(take(1)?[0]);
                let name = std::str::from_utf8(take(name_len)?)
                    .map_err(|_| err("file name is not UTF-8"))?
                    .to_owned();
                let body_len =
                    u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("length"))?) as usize;
                if body_len > MAX_CHUNK {
                    return Err(err("chunk too large"));
                }
                let body = take(body_len)?.to_vec();
                Payload::Chunk {
                    message,
                    index,
                    total,
                    name,
                    body,
                }
            }
            TAG_CHUNK_ACK => {
                let mut message = [0u8; 16];
                message.copy_from_slice(take(16)?);
                let index = u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("index"))?);
                Payload::ChunkAck { message, index }
            }
            TAG_STREAM_OPEN => {
                let stream = u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("id"))?);
                let n = usize::from(take(1)?[0]);
                let host = std::str::from_utf8(take(n)?)
                    .map_err(|_| err("host is not UTF-8"))?
                    .to_owned();
                let port = u16::from_be_bytes(take(2)?.try_into().map_err(|_| err("port"))?);
                Payload::StreamOpen { stream, host, port }
            }
            TAG_STREAM_OPENED => Payload::StreamOpened {
                stream: u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("id"))?),
            },
            TAG_STREAM_DATA => {
                let stream = u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("id"))?);
                let offset = u64::from_be_bytes(take(8)?.try_into().map_err(|_| err("offset"))?);
                let fin = match take(1)?[0] {
                    0 => false,
                    1 => true,
                    _ => return Err(err("fin must be 0 or 1")),
                };
                let n =
                    u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("length"))?) as usize;
                if n > MAX_CHUNK {
                    return Err(err("stream data too large"));
                }
                let body = take(n)?.to_vec();
                Payload::StreamData {
                    stream,
                    offset,
                    fin,
                    body,
                }
            }
            TAG_STREAM_ACK => Payload::StreamAck {
                stream: u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("id"))?),
                offset: u64::from_be_bytes(take(8)?.try_into().map_err(|_| err("offset"))?),
            },
            TAG_STREAM_RESET => {
                let stream = u32::from_be_bytes(take(4)?.try_into().map_err(|_| err("id"))?);
                let n = usize::from(take(1)?[0]);
                let reason = std::str::from_utf8(take(n)?)
                    .map_err(|_| err("reason is not UTF-8"))?
                    .to_owned();
                Payload::StreamReset { stream, reason }
            }
            tag => return Err(err(&format!("unknown tag {tag}"))),
        };
        if !r.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn payloads_round_trip_and_bad_ones_are_refused() {
        let chunk = Payload::Chunk {
            message: [7; 16],
            index: 2,
            total: 3,
            name: "report.pdf".into(),
            body: vec![1, 2, 3],
        };
        let ack = Payload::ChunkAck {
            message: [7; 16],
            index: 2,
        };
        let stream = [
            Payload::StreamOpen {
                stream: 3,
                host: "example.org".into(),
                port: 443,
            },
            Payload::StreamOpened { stream: 3 },
            Payload::StreamData {
                stream: 3,
                offset: 1 << 40,
                fin: true,
                body: b"GET / HTTP/1.1".to_vec(),
            },
            Payload::StreamAck {
                stream: 3,
                offset: 99,
            },
            Payload::StreamReset {
                stream: 3,
                reason: "connection refused".into(),
            },
        ];
        for p in [chunk.clone(), ack].into_iter().chain(stream) {
            let bytes = p.encode();
            assert_eq!(Payload::decode(&bytes).expect("decode"), p);
            assert!(Payload::decode(&bytes[..bytes.len() - 1]).is_err());
            let mut longer = bytes;
            longer.push(0);
            assert!(Payload::decode(&longer).is_err());
        }
        let mut bad_index = chunk.encode();
        bad_index[17..21].copy_from_slice(&3u32.to_be_bytes());
        assert!(Payload::decode(&bad_index).is_err(), "index beyond total");
        assert!(Payload::decode(&[]).is_err());
        assert!(Payload::decode(&[9]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_decoding_is_canonical(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            if let Ok(p) = Payload::decode(&bytes) {
                prop_assert_eq!(p.encode(), bytes);
            }
        }
    }
}
