//! The mesh's packets on a link and their canonical codec: routing messages, session
//! handshakes and sealed datagrams with source, destination and hop limit. Decoding
//! never panics and refuses trailing bytes, unknown tags and oversized fields.

use crate::MeshError;
use crate::gateway::GatewayAd;
use crate::receipt::Receipt;
use crate::session::{Hello, Sealed, Welcome};
use smartmesh_primitives::{Address, Signature};
use smartmesh_routing::{Message, RouteEntry, Seqno};

/// Codec version.
pub const VERSION: u8 = 1;
/// Largest sealed payload carried in one datagram.
pub const MAX_CIPHERTEXT: usize = 64 * 1024;
/// Most route entries in one routing packet.
pub const MAX_ENTRIES: usize = 256;

/// One packet between neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A routing message for the neighbour itself.
    Routing(Message),
    /// A session opening, carried hop by hop to `hello.responder`.
    Hello {
        /// Hops left.
        hop_limit: u8,
        /// The hello.
        hello: Hello,
    },
    /// A session answer, carried hop by hop to `to`.
    Welcome {
        /// The initiator.
        to: Address,
        /// The responder.
        from: Address,
        /// Hops left.
        hop_limit: u8,
        /// The welcome.
        welcome: Welcome,
    },
    /// A sealed datagram from `source` to `destination`.
    Data {
        /// Sender.
        source: Address,
        /// Receiver.
        destination: Address,
        /// Hops left.
        hop_limit: u8,
        /// The destination pays for carrying it (a gateway's answers to the user who
        /// asked), not the source.
        destination_pays: bool,
        /// The sealed payload.
        sealed: Sealed,
    },
    /// A delivery receipt, carried back along the flow to `receipt.source`.
    Receipt {
        /// Hops left.
        hop_limit: u8,
        /// The receipt.
        receipt: Receipt,
    },
    /// For the neighbour itself: "I paid you `amount` with direct transfer
    /// `payment_id`" (it checks its channel before crediting).
    Paid {
        /// The payment id of the direct transfer.
        payment_id: u64,
        /// Token base units.
        amount: u128,
    },
    /// A gateway advertisement, flooded with a hop limit.
    Gateway {
        /// Hops left.
        hop_limit: u8,
        /// The advertisement.
        ad: GatewayAd,
    },
    /// A link probe (for the link cost); a neighbour answers it at once.
    Probe {
        /// Chosen by the prober.
        nonce: u64,
        /// Whether this is the answer.
        reply: bool,
    },
}

const TAG_UPDATE: u8 = 1;
const TAG_REQUEST: u8 = 2;
const TAG_HELLO: u8 = 3;
const TAG_WELCOME: u8 = 4;
const TAG_DATA: u8 = 5;
const TAG_PROBE: u8 = 6;
const TAG_PROBE_REPLY: u8 = 7;
const TAG_RECEIPT: u8 = 8;
const TAG_PAID: u8 = 9;
const TAG_GATEWAY: u8 = 10;
const TAG_DATA_DESTINATION_PAYS: u8 = 11;

impl Packet {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        match self {
            Packet::Routing(Message::Update(entries)) => {
                out.push(TAG_UPDATE);
                let n = entries.len().min(MAX_ENTRIES);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for e in &entries[..n] {
                    out.extend_from_slice(e.destination.as_slice());
                    out.extend_from_slice(&e.seqno.0.to_be_bytes());
                    out.extend_from_slice(&e.metric.to_be_bytes());
                    out.extend_from_slice(&e.price.to_be_bytes());
                }
            }
            Packet::Routing(Message::SeqnoRequest {
                destination,
                seqno,
                hop_count,
            }) => {
                out.push(TAG_REQUEST);
                out.extend_from_slice(destination.as_slice());
                out.extend_from_slice(&seqno.0.to_be_bytes());
                out.push(*hop_count);
            }
            Packet::Hello { hop_limit, hello } => {
                out.push(TAG_HELLO);
                out.push(*hop_limit);
                out.extend_from_slice(&hello.session);
                out.extend_from_slice(hello.initiator.as_slice());
                out.extend_from_slice(hello.responder.as_slice());
                out.extend_from_slice(&hello.ephemeral);
                out.extend_from_slice(hello.signature.as_bytes());
            }
            Packet::Welcome {
                to,
                from,
                hop_limit,
                welcome,
            } => {
                out.push(TAG_WELCOME);
                out.extend_from_slice(to.as_slice());
                out.extend_from_slice(from.as_slice());
                out.push(*hop_limit);
                out.extend_from_slice(&welcome.session);
                out.extend_from_slice(&welcome.ephemeral);
                out.extend_from_slice(welcome.signature.as_bytes());
            }
            Packet::Data {
                source,
                destination,
                hop_limit,
                destination_pays,
                sealed,
            } => {
                out.push(if *destination_pays {
                    TAG_DATA_DESTINATION_PAYS
                } else {
                    TAG_DATA
                });
                out.extend_from_slice(source.as_slice());
                out.extend_from_slice(destination.as_slice());
                out.push(*hop_limit);
                out.extend_from_slice(&sealed.session);
                out.extend_from_slice(&sealed.counter.to_be_bytes());
                let n = sealed.ciphertext.len().min(MAX_CIPHERTEXT);
                out.extend_from_slice(&(n as u32).to_be_bytes());
                out.extend_from_slice(&sealed.ciphertext[..n]);
            }
            Packet::Receipt { hop_limit, receipt } => {
                out.push(TAG_RECEIPT);
                out.push(*hop_limit);
                out.extend_from_slice(receipt.source.as_slice());
                out.extend_from_slice(receipt.destination.as_slice());
                out.extend_from_slice(&receipt.session);
                out.push(u8::from(receipt.destination_pays));
                out.extend_from_slice(&receipt.bytes.to_be_bytes());
                out.extend_from_slice(receipt.signature.as_bytes());
            }
            Packet::Gateway { hop_limit, ad } => {
                out.push(TAG_GATEWAY);
                out.push(*hop_limit);
                out.extend_from_slice(ad.gateway.as_slice());
                out.extend_from_slice(&ad.price.to_be_bytes());
                out.extend_from_slice(&ad.seqno.to_be_bytes());
                out.extend_from_slice(ad.signature.as_bytes());
            }
            Packet::Paid { payment_id, amount } => {
                out.push(TAG_PAID);
                out.extend_from_slice(&payment_id.to_be_bytes());
                out.extend_from_slice(&amount.to_be_bytes());
            }
            Packet::Probe { nonce, reply } => {
                out.push(if *reply { TAG_PROBE_REPLY } else { TAG_PROBE });
                out.extend_from_slice(&nonce.to_be_bytes());
            }
        }
        out
    }

    /// Parses canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, MeshError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != VERSION {
            return Err(MeshError::Codec(format!("unknown version {version}")));
        }
        let tag = r.u8()?;
        let packet = match tag {
            TAG_UPDATE => {
                let n = usize::from(r.u16()?);
                if n > MAX_ENTRIES {
                    return Err(MeshError::Codec(format!(
                        "{n} route entries (at most {MAX_ENTRIES})"
                    )));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(RouteEntry {
                        destination: r.address()?,
                        seqno: Seqno(r.u16()?),
                        metric: r.u32()?,
                        price: r.u64()?,
                    });
                }
                Packet::Routing(Message::Update(entries))
            }
            TAG_REQUEST => Packet::Routing(Message::SeqnoRequest {
                destination: r.address()?,
                seqno: Seqno(r.u16()?),
                hop_count: r.u8()?,
            }),
            TAG_HELLO => Packet::Hello {
                hop_limit: r.u8()?,
                hello: Hello {
                    session: r.array()?,
                    initiator: r.address()?,
                    responder: r.address()?,
                    ephemeral: r.array()?,
                    signature: r.signature()?,
                },
            },
            TAG_WELCOME => Packet::Welcome {
                to: r.address()?,
                from: r.address()?,
                hop_limit: r.u8()?,
                welcome: Welcome {
                    session: r.array()?,
                    ephemeral: r.array()?,
                    signature: r.signature()?,
                },
            },
            TAG_DATA | TAG_DATA_DESTINATION_PAYS => {
                let source = r.address()?;
                let destination = r.address()?;
                let hop_limit = r.u8()?;
                let session = r.array()?;
                let counter = r.u64()?;
                let n = r.u32()? as usize;
                if n > MAX_CIPHERTEXT {
                    return Err(MeshError::Codec(format!(
                        "payload of {n} bytes (at most {MAX_CIPHERTEXT})"
                    )));
                }
                Packet::Data {
                    source,
                    destination,
                    hop_limit,
                    destination_pays: tag == TAG_DATA_DESTINATION_PAYS,
                    sealed: Sealed {
                        session,
                        counter,
                        ciphertext: r.take(n)?.to_vec(),
                    },
                }
            }
            TAG_RECEIPT => Packet::Receipt {
                hop_limit: r.u8()?,
                receipt: Receipt {
                    source: r.address()?,
                    destination: r.address()?,
                    session: r.array()?,
                    destination_pays: match r.u8()? {
                        0 => false,
                        1 => true,
                        v => return Err(MeshError::Codec(format!("receipt kind {v}"))),
                    },
                    bytes: r.u64()?,
                    signature: r.signature()?,
                },
            },
            TAG_GATEWAY => Packet::Gateway {
                hop_limit: r.u8()?,
                ad: GatewayAd {
                    gateway: r.address()?,
                    price: r.u64()?,
                    seqno: r.u32()?,
                    signature: r.signature()?,
                },
            },
            TAG_PAID => Packet::Paid {
                payment_id: r.u64()?,
                amount: u128::from_be_bytes(r.array()?),
            },
            TAG_PROBE | TAG_PROBE_REPLY => Packet::Probe {
                nonce: r.u64()?,
                reply: tag == TAG_PROBE_REPLY,
            },
            tag => return Err(MeshError::Codec(format!("unknown packet tag {tag}"))),
        };
        if r.at != bytes.len() {
            return Err(MeshError::Codec("trailing bytes".into()));
        }
        Ok(packet)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MeshError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| MeshError::Codec("truncated packet".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MeshError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MeshError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, MeshError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, MeshError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, MeshError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn address(&mut self) -> Result<Address, MeshError> {
        Ok(Address::from(self.array::<20>()?))
    }

    fn signature(&mut self) -> Result<Signature, MeshError> {
        let raw = self.take(65)?;
        let signature =
            Signature::from_slice(raw).map_err(|e| MeshError::Codec(format!("signature: {e}")))?;
        // Canonical: `v` only as 27/28 (the parser also accepts 0/1).
        if signature.as_bytes()[..] != raw[..] {
            return Err(MeshError::Codec("signature v must be 27 or 28".into()));
        }
        Ok(signature)
    }
}
