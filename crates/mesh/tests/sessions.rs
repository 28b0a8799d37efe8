//! Sessions: handshake, both directions, tampering, replay, wrong parties, fresh keys.

use smartmesh_mesh::{Initiating, MeshError, Sealed, respond};
use smartmesh_primitives::PrivateKey;

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[seed; 32]).expect("key")
}

fn random(seed: u8) -> [u8; 48] {
    let mut r = [seed; 48];
    r[47] = seed.wrapping_add(1);
    r
}

fn pair(seed: u8) -> (smartmesh_mesh::Session, smartmesh_mesh::Session) {
    let (alice, bob) = (key(1), key(2));
    let (pending, hello) = Initiating::start(&alice, bob.address(), &random(seed)).expect("start");
    let (at_bob, welcome) = respond(&bob, &hello, &[seed.wrapping_add(9); 32]).expect("respond");
    let at_alice = pending.finish(&welcome).expect("finish");
    (at_alice, at_bob)
}

#[test]
fn both_directions_seal_and_open() {
    let (mut a, mut b) = pair(3);
    assert_eq!(a.peer(), key(2).address());
    assert_eq!(b.peer(), key(1).address());
    let sealed = a.seal(b"hello bob").expect("seal");
    assert_ne!(sealed.ciphertext, b"hello bob".to_vec());
    assert_eq!(b.open(&sealed).expect("open"), b"hello bob");
    let back = b.seal(b"hi alice").expect("seal");
    assert_eq!(a.open(&back).expect("open"), b"hi alice");
    // A direction key does not open its own traffic.
    let own = a.seal(b"x").expect("seal");
    assert!(a.open(&own).is_err());
}

#[test]
fn tampering_and_replay_are_refused() {
    let (mut a, mut b) = pair(4);
    let mut sealed = a.seal(b"pay 5").expect("seal");
    let good = sealed.clone();
    sealed.ciphertext[0] ^= 1;
    assert!(matches!(b.open(&sealed), Err(MeshError::Crypto(_))));
    let mut moved = good.clone();
    moved.counter += 1;
    assert!(
        b.open(&moved).is_err(),
        "the counter is bound to the ciphertext"
    );
    assert_eq!(b.open(&good).expect("open"), b"pay 5");
    assert_eq!(b.open(&good), Err(MeshError::Replay));
    // Out of order inside the window is fine; too old is not.
    let later: Vec<Sealed> = (0..70).map(|i| a.seal(&[i]).expect("seal")).collect();
    assert_eq!(b.open(&later[69]).expect("open"), vec![69]);
    assert_eq!(b.open(&later[30]).expect("open"), vec![30]);
    assert_eq!(b.open(&later[30]), Err(MeshError::Replay));
    assert_eq!(
        b.open(&later[2]),
        Err(MeshError::Replay),
        "older than the window"
    );
}

#[test]
fn the_handshake_binds_both_nodes() {
    let (alice, bob, mallory) = (key(1), key(2), key(3));
    let (_, hello) = Initiating::start(&alice, bob.address(), &random(5)).expect("start");
    assert!(
        respond(&mallory, &hello, &[7; 32]).is_err(),
        "hello for bob"
    );
    let mut forged = hello.clone();
    forged.initiator = mallory.address();
    assert!(
        respond(&bob, &forged, &[7; 32]).is_err(),
        "signature names alice"
    );
    let (pending, hello) = Initiating::start(&alice, bob.address(), &random(6)).expect("start");
    let (_, mallory_hello) = Initiating::start(&mallory, bob.address(), &random(6)).expect("start");
    let (_, welcome_to_mallory) = respond(&bob, &mallory_hello, &[8; 32]).expect("respond");
    assert!(
        pending.finish(&welcome_to_mallory).is_err(),
        "welcome of another hello"
    );
    let (_, mut welcome) = respond(&bob, &hello, &[8; 32]).expect("respond");
    welcome.ephemeral = mallory_hello.ephemeral;
    let (pending, _) = Initiating::start(&alice, bob.address(), &random(6)).expect("start");
    assert!(pending.finish(&welcome).is_err(), "swapped ephemeral key");
    assert!(Initiating::start(&alice, alice.address(), &random(1)).is_err());
}

#[test]
fn every_session_has_fresh_keys() {
    let (mut a1, _) = pair(10);
    let (_, mut b2) = pair(11);
    let sealed = a1.seal(b"old session").expect("seal");
    assert!(b2.open(&sealed).is_err(), "another session cannot open it");
}
