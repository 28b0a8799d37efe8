//! The write-ahead-log and snapshot format of inputs, events and state: a version byte
//! then postcard (compact, deterministic serde binary).

use crate::{Event, Input, NodeState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Version byte of the storage format; bumped whenever a stored type changes shape.
pub const STORAGE_FORMAT_VERSION: u8 = 1;

/// Why stored bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// Empty input.
    #[error("empty record")]
    Empty,
    /// Written by a different format version.
    #[error("unsupported storage format version {0}")]
    UnsupportedVersion(u8),
    /// Malformed bytes.
    #[error("malformed record: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_extend(value, vec![STORAGE_FORMAT_VERSION])
        .map_err(|e| CodecError::Malformed(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&STORAGE_FORMAT_VERSION, rest)) => {
            let (value, tail) = postcard::take_from_bytes(rest)
                .map_err(|e| CodecError::Malformed(e.to_string()))?;
            if !tail.is_empty() {
                return Err(CodecError::Malformed(format!(
                    "{} trailing bytes",
                    tail.len()
                )));
            }
            Ok(value)
        }
        Some((&other, _)) => Err(CodecError::UnsupportedVersion(other)),
    }
}

/// Encodes an input for the write-ahead log.
pub fn encode_input(input: &Input) -> Result<Vec<u8>, CodecError> {
    encode(input)
}

/// Decodes an input from the write-ahead log.
pub fn decode_input(bytes: &[u8]) -> Result<Input, CodecError> {
    decode(bytes)
}

/// Encodes the events of one transition.
pub fn encode_events(events: &[Event]) -> Result<Vec<u8>, CodecError> {
    encode(&events)
}

/// Decodes the events of one transition.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, CodecError> {
    decode(bytes)
}

/// Encodes a state snapshot.
pub fn encode_state(state: &NodeState) -> Result<Vec<u8>, CodecError> {
    encode(state)
}

/// Decodes a state snapshot.
pub fn decode_state(bytes: &[u8]) -> Result<NodeState, CodecError> {
    decode(bytes)
}
