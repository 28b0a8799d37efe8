//! End-to-end sessions between two node addresses, with forward secrecy: each side
//! contributes an ephemeral secp256k1 key signed by its node key; the session keys come
//! from the ephemeral-ephemeral ECDH and the ephemeral secrets are dropped at once, so a
//! node key stolen later opens no recorded traffic. Data is sealed with
//! ChaCha20-Poly1305, one key per direction, a 64-bit counter as nonce and a replay
//! window. Pure: randomness comes from the caller.

use crate::MeshError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secp256k1::ecdh::SharedSecret;
use secp256k1::{PublicKey, SecretKey};
use smartmesh_primitives::{Address, B256, PrivateKey, Signature, keccak256, recover_signer};

/// Domain separation of every hash and signature of the session protocol.
pub const DOMAIN: &[u8] = b"smartmesh/mesh-session/v1";
/// Counters this far behind the newest are refused.
pub const REPLAY_WINDOW: u64 = 64;

/// A session id (random, chosen by the initiator).
pub type SessionId = [u8; 16];

/// First handshake message, initiator to responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Session id.
    pub session: SessionId,
    /// Who starts (its node address).
    pub initiator: Address,
    /// Who is asked.
    pub responder: Address,
    /// The initiator's ephemeral public key, compressed.
    pub ephemeral: [u8; 33],
    /// The initiator's node key over all of the above.
    pub signature: Signature,
}

/// Second handshake message, responder to initiator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Session id.
    pub session: SessionId,
    /// The responder's ephemeral public key, compressed.
    pub ephemeral: [u8; 33],
    /// The responder's node key over the hello and its ephemeral key.
    pub signature: Signature,
}

/// One sealed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Session id.
    pub session: SessionId,
    /// Per-direction counter (the nonce).
    pub counter: u64,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

fn hello_digest(
    session: &SessionId,
    initiator: Address,
    responder: Address,
    eph: &[u8; 33],
) -> B256 {
    let mut data = Vec::with_capacity(DOMAIN.len() + 5 + 16 + 40 + 33);
    data.extend_from_slice(DOMAIN);
    data.extend_from_slice(b"hello");
    data.extend_from_slice(session);
    data.extend_from_slice(initiator.as_slice());
    data.extend_from_slice(responder.as_slice());
    data.extend_from_slice(eph);
    keccak256(&data)
}

fn welcome_digest(hello: &Hello, eph: &[u8; 33]) -> B256 {
    let mut data = Vec::with_capacity(DOMAIN.len() + 7 + 32 + 33);
    data.extend_from_slice(DOMAIN);
    data.extend_from_slice(b"welcome");
    data.extend_from_slice(
        hello_digest(
            &hello.session,
            hello.initiator,
            hello.responder,
            &hello.ephemeral,
        )
        .as_slice(),
    );
    data.extend_from_slice(eph);
    keccak256(&data)
}

fn ephemeral(random: &[u8; 32]) -> Result<(SecretKey, [u8; 33]), MeshError> {
    let secret = SecretKey::from_byte_array(*random)
        .map_err(|_| MeshError::Handshake("the ephemeral randomness is not a valid key".into()))?;
    let public = PublicKey::from_secret_key_global(&secret);
    Ok((secret, public.serialize()))
}

/// The two direction keys from the ephemeral-ephemeral ECDH.
fn derive(
    secret: &SecretKey,
    peer: &[u8; 33],
    eph_i: &[u8; 33],
    eph_r: &[u8; 33],
) -> Result<([u8; 32], [u8; 32]), MeshError> {
    let peer = PublicKey::from_slice(peer).map_err(|_| {
        MeshError::Handshake("the peer's ephemeral key is not a curve point".into())
    })?;
    let shared = SharedSecret::new(&peer, secret).secret_bytes();
    let key = |label: &[u8]| -> [u8; 32] {
        let mut data = Vec::with_capacity(DOMAIN.len() + 3 + 32 + 66);
        data.extend_from_slice(DOMAIN);
        data.extend_from_slice(label);
        data.extend_from_slice(&shared);
        data.extend_from_slice(eph_i);
        data.extend_from_slice(eph_r);
        keccak256(&data).0
    };
    Ok((key(b"i2r"), key(b"r2i")))
}

/// An initiator waiting for the welcome.
#[derive(Debug)]
pub struct Initiating {
    hello: Hello,
    secret: SecretKey,
}

impl Initiating {
    /// Starts a session with `responder`; `random` gives the session id (16 bytes) and
    /// the ephemeral key (32 bytes).
    pub fn start(
        key: &PrivateKey,
        responder: Address,
        random: &[u8; 48],
    ) -> Result<(Self, Hello), MeshError> {
        if responder == key.address() {
            return Err(MeshError::Handshake("a session needs another node".into()));
        }
        let mut session = [0u8; 16];
        session.copy_from_slice(&random[..16]);
        let mut eph_random = [0u8; 32];
        eph_random.copy_from_slice(&random[16..]);
        let (secret, eph) = ephemeral(&eph_random)?;
        let signature = key.sign_digest(&hello_digest(&session, key.address(), responder, &eph));
        let hello = Hello {
            session,
            initiator: key.address(),
            responder,
            ephemeral: eph,
            signature,
        };
        Ok((
            Self {
                hello: hello.clone(),
                secret,
            },
            hello,
        ))
    }

    /// The session id this handshake proposes.
    pub fn session(&self) -> SessionId {
        self.hello.session
    }

    /// Completes the session with the responder's welcome.
    pub fn finish(self, welcome: &Welcome) -> Result<Session, MeshError> {
        if welcome.session != self.hello.session {
            return Err(MeshError::Handshake("welcome for another session".into()));
        }
        let signer = recover_signer(
            &welcome_digest(&self.hello, &welcome.ephemeral),
            &welcome.signature,
        )
        .map_err(|_| MeshError::Handshake("bad welcome signature".into()))?;
        if signer != self.hello.responder {
            return Err(MeshError::Handshake(
                "the welcome is not signed by the responder".into(),
            ));
        }
        let (i2r, r2i) = derive(
            &self.secret,
            &welcome.ephemeral,
            &self.hello.ephemeral,
            &welcome.ephemeral,
        )?;
        Ok(Session::new(
            self.hello.session,
            self.hello.responder,
            i2r,
            r2i,
        ))
    }
}

/// Answers a hello addressed to `key`'s node; `random` is the responder's ephemeral key.
pub fn respond(
    key: &PrivateKey,
    hello: &Hello,
    random: &[u8; 32],
) -> Result<(Session, Welcome), MeshError> {
    if hello.responder != key.address() {
        return Err(MeshError::Handshake("hello for another node".into()));
    }
    let digest = hello_digest(
        &hello.session,
        hello.initiator,
        hello.responder,
        &hello.ephemeral,
    );
    let signer = recover_signer(&digest, &hello.signature)
        .map_err(|_| MeshError::Handshake("bad hello signature".into()))?;
    if signer != hello.initiator {
        return Err(MeshError::Handshake(
            "the hello is not signed by its initiator".into(),
        ));
    }
    let (secret, eph) = ephemeral(random)?;
    let signature = key.sign_digest(&welcome_digest(hello, &eph));
    let (i2r, r2i) = derive(&secret, &hello.ephemeral, &hello.ephemeral, &eph)?;
    let welcome = Welcome {
        session: hello.session,
        ephemeral: eph,
        signature,
    };
    Ok((
        Session::new(hello.session, hello.initiator, r2i, i2r),
        welcome,
    ))
}

/// An established session (symmetric keys only; the ephemeral secrets are gone).
pub struct Session {
    id: SessionId,
    peer: Address,
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    next_counter: u64,
    newest: Option<u64>,
    window: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("next_counter", &self.next_counter)
            .finish_non_exhaustive()
    }
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

impl Session {
    fn new(id: SessionId, peer: Address, send: [u8; 32], recv: [u8; 32]) -> Self {
        Self {
            id,
            peer,
            send: ChaCha20Poly1305::new(&Key::from(send)),
            recv: ChaCha20Poly1305::new(&Key::from(recv)),
            next_counter: 0,
            newest: None,
            window: 0,
        }
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The other node.
    pub fn peer(&self) -> Address {
        self.peer
    }

    /// Seals `plaintext` for the peer.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Sealed, MeshError> {
        let counter = self.next_counter;
        self.next_counter = counter
            .checked_add(1)
            .ok_or_else(|| MeshError::Crypto("the session is used up: start a new one".into()))?;
        let ciphertext = self
            .send
            .encrypt(
                &Nonce::from(nonce(counter)),
                Payload {
                    msg: plaintext,
                    aad: &self.id,
                },
            )
            .map_err(|_| MeshError::Crypto("sealing failed".into()))?;
        Ok(Sealed {
            session: self.id,
            counter,
            ciphertext,
        })
    }

    /// Opens a datagram from the peer: authenticated, never twice, not too old.
    pub fn open(&mut self, sealed: &Sealed) -> Result<Vec<u8>, MeshError> {
        if sealed.session != self.id {
            return Err(MeshError::Crypto("datagram of another session".into()));
        }
        if let Some(newest) = self.newest {
            if sealed.counter <= newest {
                let age = newest - sealed.counter;
                if age >= REPLAY_WINDOW || self.window & (1u64 << age) != 0 {
                    return Err(MeshError::Replay);
                }
            }
        }
        let plaintext = self
            .recv
            .decrypt(
                &Nonce::from(nonce(sealed.counter)),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &self.id,
                },
            )
            .map_err(|_| MeshError::Crypto("the datagram does not authenticate".into()))?;
        match self.newest {
            Some(newest) if sealed.counter <= newest => {
                self.window |= 1u64 << (newest - sealed.counter);
            }
            Some(newest) => {
                let shift = sealed.counter - newest;
                self.window = if shift >= 64 { 0 } else { self.window << shift };
                self.window |= 1;
                self.newest = Some(sealed.counter);
            }
            None => {
                self.window = 1;
                self.newest = Some(sealed.counter);
            }
        }
        Ok(plaintext)
    }
}
