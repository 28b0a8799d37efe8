//! Serde for a 65-byte [`Signature`] (the primitives type has none): raw bytes in
//! binary formats, `0x` hex in human-readable ones.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use smartmesh_primitives::Signature;
use std::fmt;

/// Serializes a signature.
pub fn serialize<S: Serializer>(sig: &Signature, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        let mut hex = String::with_capacity(132);
        hex.push_str("0x");
        for byte in sig.0 {
            hex.push_str(&format!("{byte:02x}"));
        }
        serializer.serialize_str(&hex)
    } else {
        serializer.serialize_bytes(&sig.0)
    }
}

/// Deserializes a signature (65 bytes, `v` in 27/28 or 0/1).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Signature, D::Error> {
    struct SigVisitor;
    impl<'de> Visitor<'de> for SigVisitor {
        type Value = Signature;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a 65-byte signature")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Signature, E> {
            Signature::from_slice(v).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Signature, E> {
            let raw = v.strip_prefix("0x").unwrap_or(v);
            if raw.len() != 130 || !raw.is_ascii() {
                return Err(E::custom("signature must be 130 hex digits"));
            }
            let mut bytes = [0u8; 65];
            for (i, byte) in bytes.iter_mut().enumerate() {
                let pair = raw
                    .get(2 * i..2 * i + 2)
                    .ok_or_else(|| E::custom("bad hex"))?;
                *byte = u8::from_str_radix(pair, 16).map_err(E::custom)?;
            }
            Signature::from_slice(&bytes).map_err(E::custom)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
            let mut bytes = Vec::with_capacity(65);
            while let Some(byte) = seq.next_element::<u8>()? {
                if bytes.len() == 65 {
                    return Err(de::Error::custom("signature longer than 65 bytes"));
                }
                bytes.push(byte);
            }
            Signature::from_slice(&bytes).map_err(de::Error::custom)
        }
    }
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(SigVisitor)
    } else {
        deserializer.deserialize_bytes(SigVisitor)
    }
}
