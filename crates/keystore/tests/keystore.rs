//! Keystore v3: the Web3 Secret Storage test vectors, round trips, wrong passwords,
//! tampering, malformed input (no panics) and the directory helpers.

#![allow(clippy::unwrap_used, missing_docs)]

use proptest::prelude::*;
use smartmesh_keystore::{
    KdfParams, Keystore, KeystoreError, decrypt, encrypt, find, list, load, write_new,
};
use smartmesh_primitives::PrivateKey;
use std::path::Path;

/// The private key of the Web3 Secret Storage Definition's test vectors.
const WIKI_KEY: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const WIKI_PASSWORD: &[u8] = b"testpassword";

fn fixture(name: &str) -> Keystore {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Keystore::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn wiki_scrypt_vector_decrypts() {
    let key = decrypt(&fixture("wiki-scrypt.json"), WIKI_PASSWORD).unwrap();
    assert_eq!(hex::encode(key.to_bytes()), WIKI_KEY);
}

#[test]
fn wiki_pbkdf2_vector_decrypts() {
    let ks = fixture("wiki-pbkdf2.json");
    let key = decrypt(&ks, WIKI_PASSWORD).unwrap();
    assert_eq!(hex::encode(key.to_bytes()), WIKI_KEY);
    assert_eq!(
        decrypt(&ks, b"testpassworD").unwrap_err(),
        KeystoreError::WrongPassword
    );
}

#[test]
fn round_trip_scrypt_and_pbkdf2() {
    let key = PrivateKey::random();
    for params in [KdfParams::light(), KdfParams::pbkdf2(1000).unwrap()] {
        let ks = encrypt(&key, b"hunter2", params).unwrap();
        assert_eq!(ks.version, 3);
        assert_eq!(ks.crypto.cipher, "aes-128-ctr");
        let address = ks.address.clone().unwrap();
        assert_eq!(address, hex::encode(key.address().as_slice()));
        assert_eq!(address, address.to_lowercase());
        assert!(!address.starts_with("0x"));
        // Through JSON text, as on disk.
        let parsed = Keystore::from_json(&ks.to_json()).unwrap();
        assert_eq!(parsed, ks);
        let back = decrypt(&parsed, b"hunter2").unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        assert_eq!(
            decrypt(&parsed, b"hunter3").unwrap_err(),
            KeystoreError::WrongPassword
        );
    }
}

#[test]
fn default_params_are_geth_standard() {
    // Encrypting with the real setting takes about a second; check the JSON it writes.
    let ks = encrypt(&PrivateKey::random(), b"pw", KdfParams::default()).unwrap();
    let kp = &ks.crypto.kdfparams;
    assert_eq!(
        (ks.crypto.kdf.as_str(), kp.n, kp.r, kp.p, kp.dklen),
        ("scrypt", Some(1 << 18), Some(8), Some(1), 32)
    );
}

#[test]
fn fresh_salt_iv_and_id_each_time() {
    let key = PrivateKey::random();
    let a = encrypt(&key, b"pw", KdfParams::light()).unwrap();
    let b = encrypt(&key, b"pw", KdfParams::light()).unwrap();
    assert_ne!(a.crypto.kdfparams.salt, b.crypto.kdfparams.salt);
    assert_ne!(a.crypto.cipherparams.iv, b.crypto.cipherparams.iv);
    assert_ne!(a.id, b.id);
    assert_ne!(a.crypto.ciphertext, b.crypto.ciphertext);
}

fn flip_hex(text: &str, index: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = index % chars.len();
    chars[i] = if chars[i] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

#[test]
fn tampering_is_detected() {
    let key = PrivateKey::random();
    let ks = encrypt(&key, b"pw", KdfParams::light()).unwrap();
    for i in [0, 17, 63] {
        let mut t = ks.clone();
        t.crypto.ciphertext = flip_hex(&t.crypto.ciphertext, i);
        assert_eq!(
            decrypt(&t, b"pw").unwrap_err(),
            KeystoreError::WrongPassword
        );
        let mut t = ks.clone();
        t.crypto.mac = flip_hex(&t.crypto.mac, i);
        assert_eq!(
            decrypt(&t, b"pw").unwrap_err(),
            KeystoreError::WrongPassword
        );
        let mut t = ks.clone();
        t.crypto.kdfparams.salt = flip_hex(&t.crypto.kdfparams.salt, i);
        assert_eq!(
            decrypt(&t, b"pw").unwrap_err(),
            KeystoreError::WrongPassword
        );
    }
    // A different claimed address is caught after decryption.
    let mut t = ks.clone();
    t.address = Some(hex::encode(PrivateKey::random().address().as_slice()));
    assert!(matches!(
        decrypt(&t, b"pw").unwrap_err(),
        KeystoreError::AddressMismatch { .. }
    ));
}

#[test]
fn malformed_fields_are_clear_errors() {
    let ks = encrypt(&PrivateKey::random(), b"pw", KdfParams::light()).unwrap();
    let check = |edit: &dyn Fn(&mut Keystore), want: &dyn Fn(&KeystoreError) -> bool| {
        let mut t = ks.clone();
        edit(&mut t);
        let err = decrypt(&t, b"pw").unwrap_err();
        assert!(want(&err), "unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
    };
    check(&|t| t.version = 1, &|e| {
        matches!(e, KeystoreError::UnsupportedVersion(1))
    });
    check(&|t| t.crypto.cipher = "aes-128-cbc".into(), &|e| {
        matches!(e, KeystoreError::UnsupportedCipher(_))
    });
    check(&|t| t.crypto.kdf = "argon2".into(), &|e| {
        matches!(e, KeystoreError::UnsupportedKdf(_))
    });
    check(&|t| t.crypto.ciphertext = "zz".into(), &|e| {
        matches!(e, KeystoreError::Hex("ciphertext"))
    });
    check(&|t| t.crypto.ciphertext.truncate(62), &|e| {
        matches!(
            e,
            KeystoreError::Length {
                field: "ciphertext",
                got: 31,
                ..
            }
        )
    });
    check(&|t| t.crypto.cipherparams.iv.push_str("00"), &|e| {
        matches!(
            e,
            KeystoreError::Length {
                field: "cipherparams.iv",
                ..
            }
        )
    });
    check(&|t| t.crypto.mac = String::new(), &|e| {
        matches!(e, KeystoreError::Length { field: "mac", .. })
    });
    check(&|t| t.address = Some("xyz".into()), &|e| {
        matches!(e, KeystoreError::Hex("address"))
    });
    check(&|t| t.crypto.kdfparams.dklen = 16, &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.n = Some(1000), &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.n = Some(1 << 40), &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.n = Some(u64::MAX), &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.r = Some(0), &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.r = Some(u64::MAX), &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.p = Some(1 << 20), &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(&|t| t.crypto.kdfparams.p = None, &|e| {
        matches!(e, KeystoreError::InvalidKdfParams(_))
    });
    check(
        &|t| {
            t.crypto.kdf = "pbkdf2".into();
            t.crypto.kdfparams.c = Some(10);
            t.crypto.kdfparams.prf = Some("hmac-sha512".into());
        },
        &|e| matches!(e, KeystoreError::InvalidKdfParams(_)),
    );
    check(
        &|t| {
            t.crypto.kdf = "pbkdf2".into();
            t.crypto.kdfparams.c = Some(u64::MAX);
            t.crypto.kdfparams.prf = Some("hmac-sha256".into());
        },
        &|e| matches!(e, KeystoreError::InvalidKdfParams(_)),
    );
    for bad in [
        "",
        "{}",
        "[]",
        "null",
        "{\"version\":3}",
        "{\"crypto\":1,\"version\":3}",
        "\u{0}",
    ] {
        assert!(
            matches!(Keystore::from_json(bad), Err(KeystoreError::Json(_))),
            "{bad:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any byte mutation of a valid file's JSON is an error or (if it missed the
    /// secret material) the right key — never a panic, never a different key.
    #[test]
    fn mutated_json_never_panics(pos in any::<usize>(), byte in any::<u8>(), cut in any::<bool>()) {
        let key = PrivateKey::from_hex(WIKI_KEY).unwrap();
        let ks = encrypt(&key, b"pw", KdfParams::scrypt(4, 1, 1).unwrap()).unwrap();
        let mut json = ks.to_json().into_bytes();
        let i = pos % json.len();
        if cut { json.truncate(i) } else { json[i] = byte }
        let text = String::from_utf8_lossy(&json);
        if let Ok(parsed) = Keystore::from_json(&text)
            && let Ok(got) = decrypt(&parsed, b"pw")
        {
            prop_assert_eq!(got.to_bytes(), key.to_bytes());
        }
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        if let Ok(parsed) = Keystore::from_json(&text) {
            let _ = decrypt(&parsed, b"pw");
        }
    }
}

#[test]
fn files_are_geth_named_private_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let ks_dir = dir.path().join("nested/keystore");
    let key = PrivateKey::random();
    let ks = encrypt(&key, b"pw", KdfParams::light()).unwrap();
    let path = write_new(&ks_dir, &ks).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("UTC--"), "{name}");
    assert!(
        name.ends_with(&format!("--{}", hex::encode(key.address().as_slice()))),
        "{name}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&ks_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&ks_dir).unwrap().count(), 1);

    assert_eq!(load(&path, b"pw").unwrap().to_bytes(), key.to_bytes());
    assert_eq!(
        load(&path, b"nope").unwrap_err(),
        KeystoreError::WrongPassword
    );

    // Junk next to it is skipped with a reason, hidden files are ignored.
    std::fs::write(ks_dir.join("README"), "not a keystore").unwrap();
    std::fs::write(ks_dir.join(".hidden"), "ignored").unwrap();
    std::fs::write(ks_dir.join("big"), vec![b' '; 100_000]).unwrap();
    let other = PrivateKey::random();
    let path2 = write_new(
        &ks_dir,
        &encrypt(&other, b"pw2", KdfParams::light()).unwrap(),
    )
    .unwrap();
    let listing = list(&ks_dir).unwrap();
    assert_eq!(
        listing.accounts,
        vec![
            (key.address(), path.clone()),
            (other.address(), path2.clone())
        ]
    );
    assert_eq!(listing.skipped.len(), 2, "{:?}", listing.skipped);

    assert_eq!(find(&ks_dir, &other.address()).unwrap(), path2);
    let stranger = PrivateKey::random().address();
    assert_eq!(
        find(&ks_dir, &stranger).unwrap_err(),
        KeystoreError::NotFound(stranger)
    );

    // A missing directory lists as empty.
    assert_eq!(list(&dir.path().join("absent")).unwrap().accounts, vec![]);
    // Loading a missing file is an I/O error naming the path.
    let err = load(&dir.path().join("absent.json"), b"pw").unwrap_err();
    assert!(matches!(err, KeystoreError::Io { .. }) && err.to_string().contains("absent.json"));
}

#[test]
fn wiki_vectors_without_address_are_skipped_by_list_but_load() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wiki-pbkdf2.json");
    let dst = dir.path().join("wiki.json");
    std::fs::copy(&src, &dst).unwrap();
    assert_eq!(list(dir.path()).unwrap().skipped.len(), 1);
    assert_eq!(
        hex::encode(load(&dst, WIKI_PASSWORD).unwrap().to_bytes()),
        WIKI_KEY
    );
}
