//! The mesh codec: every packet kind round-trips; arbitrary bytes never panic, and what
//! decodes re-encodes to the same bytes (canonical).

use proptest::prelude::*;
use smartmesh_mesh::{Initiating, Packet, respond};
use smartmesh_primitives::{Address, PrivateKey};
use smartmesh_routing::{Message, RouteEntry, Seqno};

fn samples() -> Vec<Packet> {
    let (alice, bob) = (
        PrivateKey::from_bytes(&[1; 32]).expect("key"),
        PrivateKey::from_bytes(&[2; 32]).expect("key"),
    );
    let (pending, hello) = Initiating::start(&alice, bob.address(), &[5; 48]).expect("hello");
    let (_, welcome) = respond(&bob, &hello, &[6; 32]).expect("welcome");
    let mut session = pending.finish(&welcome).expect("session");
    let sealed = session.seal(b"over three hops").expect("seal");
    vec![
        Packet::Routing(Message::Update(vec![RouteEntry {
            destination: Address::repeat_byte(9),
            seqno: Seqno(7),
            metric: 768,
            price: 12,
        }])),
        Packet::Routing(Message::Update(Vec::new())),
        Packet::Routing(Message::SeqnoRequest {
            destination: Address::repeat_byte(3),
            seqno: Seqno(u16::MAX),
            hop_count: 16,
        }),
        Packet::Hello {
            hop_limit: 8,
            hello,
        },
        Packet::Welcome {
            to: alice.address(),
            from: bob.address(),
            hop_limit: 8,
            welcome,
        },
        Packet::Data {
            source: alice.address(),
            destination: bob.address(),
            hop_limit: 3,
            destination_pays: false,
            sealed: sealed.clone(),
        },
        Packet::Data {
            source: bob.address(),
            destination: alice.address(),
            hop_limit: 3,
            destination_pays: true,
            sealed,
        },
        Packet::Probe {
            nonce: u64::MAX,
            reply: false,
        },
        Packet::Receipt {
            hop_limit: 7,
            receipt: smartmesh_mesh::Receipt::sign(
                &bob,
                &smartmesh_mesh::receipt_domain(1337, Address::repeat_byte(4)),
                alice.address(),
                [8; 16],
                true,
                65_536,
            ),
        },
        Packet::Gateway {
            hop_limit: 9,
            ad: smartmesh_mesh::GatewayAd::sign(&alice, 250, 3),
        },
        Packet::Paid {
            payment_id: 42,
            amount: u128::MAX,
        },
        Packet::Probe {
            nonce: 1,
            reply: true,
        },
    ]
}

#[test]
fn every_packet_round_trips_and_damage_is_refused() {
    for packet in samples() {
        let bytes = packet.encode();
        assert_eq!(Packet::decode(&bytes).expect("decode"), packet);
        assert!(
            Packet::decode(&bytes[..bytes.len() - 1]).is_err(),
            "truncated"
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Packet::decode(&longer).is_err(), "trailing byte");
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(Packet::decode(&version).is_err(), "unknown version");
    }
    assert!(Packet::decode(&[1, 99]).is_err(), "unknown tag");
    // A hello whose signature v is 0/1 instead of 27/28 is not canonical.
    let mut hello = samples()[3].encode();
    let v = hello.len() - 1;
    hello[v] -= 27;
    assert!(Packet::decode(&hello).is_err());
    assert!(Packet::decode(&[]).is_err());
    // A length field larger than the limit is refused before allocating.
    let mut huge = vec![1, 5];
    huge.extend_from_slice(&[0; 20 + 20 + 1 + 16 + 8]);
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(Packet::decode(&huge).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_decoding_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(packet) = Packet::decode(&bytes) {
            prop_assert_eq!(packet.encode(), bytes);
        }
    }

    #[test]
    fn mutated_packets_never_panic(index in 0usize..6, position in any::<usize>(), value in any::<u8>()) {
        let mut bytes = samples()[index].encode();
        let at = position % bytes.len();
        bytes[at] = value;
        if let Ok(packet) = Packet::decode(&bytes) {
            prop_assert_eq!(packet.encode(), bytes);
        }
    }
}
