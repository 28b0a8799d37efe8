//! Bytes from disk into the engine's WAL and snapshot decoders: a corrupted file is an
//! error, never a panic; what decodes re-encodes to the same bytes.
#![no_main]
use smartmesh_engine::codec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(input) = codec::decode_input(data) {
        let again = codec::encode_input(&input).expect("a decoded input encodes");
        assert_eq!(codec::decode_input(&again).ok(), Some(input));
    }
    let _ = codec::decode_events(data);
    let _ = codec::decode_state(data);
});
