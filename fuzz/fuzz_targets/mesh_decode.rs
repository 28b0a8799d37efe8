//! Mesh packets from a neighbour: decoding never panics and is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartmesh_mesh::Packet;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        assert_eq!(packet.encode(), data);
    }
});
