//! Mesh packets from a neighbour and sealed payloads from a session: decoding never
//! panics and is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartmesh_mesh::{Packet, Payload};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        assert_eq!(packet.encode(), data);
    }
    if let Ok(payload) = Payload::decode(data) {
        assert_eq!(payload.encode(), data);
    }
});
