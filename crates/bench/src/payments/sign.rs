//! The machine's signing limit: one secp256k1 sign plus one recover (libsecp256k1, as
//! on the hot path) per balance proof, on one core.

use crate::payments::node::{self, Res};
use smartmesh_primitives::{B256, keccak256, recover_signer};
use std::time::{Duration, Instant};

/// What one measurement gave.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignRound {
    /// sign + recover pairs per second on one core.
    pub pairs_per_s: f64,
    /// Mean time of one sign.
    pub sign: Duration,
    /// Mean time of one recover (including the address hash).
    pub recover: Duration,
}

/// Signs `n` distinct digests and recovers each signer, on the calling thread.
pub fn measure(n: usize) -> Res<SignRound> {
    let key = node::key(0)?;
    let digests: Vec<B256> = (0..n as u64).map(|i| keccak256(i.to_be_bytes())).collect();
    let t0 = Instant::now();
    let sigs: Vec<_> = digests.iter().map(|d| key.sign_digest(d)).collect();
    let t1 = Instant::now();
    for (d, s) in digests.iter().zip(&sigs) {
        let signer = recover_signer(d, s).map_err(|e| e.to_string())?;
        if signer != key.address() {
            return Err("recovered the wrong signer".into());
        }
    }
    let t2 = Instant::now();
    let total = t2 - t0;
    Ok(SignRound {
        pairs_per_s: n as f64 / total.as_secs_f64(),
        sign: (t1 - t0) / n as u32,
        recover: (t2 - t1) / n as u32,
    })
}
