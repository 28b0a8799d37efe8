use thiserror::Error;

/// Errors of the primitives crate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrimitivesError {
    /// Checked arithmetic on an amount, nonce or time overflowed or went below zero.
    #[error("arithmetic overflow: {0}")]
    Overflow(&'static str),
    /// A private key was not a valid secp256k1 scalar.
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// A signature was not 65 bytes `r || s || v`.
    #[error("signature must be 65 bytes, got {0}")]
    SignatureLength(usize),
    /// A signature's `s` was in the upper half of the curve order (malleable).
    #[error("signature has a high s value")]
    HighS,
    /// A signature's `v` was not 27, 28, 0 or 1.
    #[error("signature has an invalid recovery byte {0}")]
    InvalidRecoveryByte(u8),
    /// Recovery failed or gave the zero address.
    #[error("signature does not recover to a valid signer")]
    InvalidSignature,
    /// A decimal or hex string could not be parsed.
    #[error("cannot parse {what}: {input:?}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The offending input (truncated).
        input: String,
    },
}
