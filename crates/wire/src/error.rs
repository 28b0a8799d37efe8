use thiserror::Error;

/// Why bytes are not a valid message. Every malformed input gives one of these; the
/// decoder never panics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// No bytes at all.
    #[error("empty message")]
    Empty,
    /// The first byte names a codec version this build does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// The type byte names no message.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// The input ended inside a field.
    #[error("truncated message: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes remained after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A route longer than [`crate::MAX_ROUTE_LEN`].
    #[error("route of {0} hops is too long")]
    RouteTooLong(usize),
    /// A signature's `v` byte was not 27 or 28 (the canonical form).
    #[error("signature recovery byte {0} is not 27 or 28")]
    InvalidRecoveryByte(u8),
}
