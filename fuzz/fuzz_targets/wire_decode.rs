//! Peer bytes into the wire decoder: never a panic, and what decodes re-encodes to the
//! same bytes (one encoding per message).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    smartmesh_wire::fuzz_decode(data);
});
