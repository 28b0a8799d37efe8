//! `smartmesh account`: drives the built binary in a temporary directory.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

/// The first development account of the well-known test mnemonic.
const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const DEV_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

fn smartmesh(dir: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smartmesh"));
    cmd.arg("account")
        .args(args)
        .env("SMARTMESH_KEYSTORE_DIR", dir.join("keystore"))
        .env("SMARTMESH_KEYSTORE_LIGHT_KDF", "1")
        .env_remove("SMARTMESH_PASSWORD")
        .env("HOME", dir);
    if let Some(p) = password {
        cmd.env("SMARTMESH_PASSWORD", p);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn new_import_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let empty = smartmesh(dir, &["list"], None);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert_eq!(stdout(&empty), "");

    let new = smartmesh(dir, &["new"], Some("correct horse"));
    assert!(new.status.success(), "{}", stderr(&new));
    let out = stdout(&new);
    let address = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("address ")
        .unwrap()
        .to_string();
    let path = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("path    ")
        .unwrap()
        .to_string();
    assert!(Path::new(&path).starts_with(dir.join("keystore")));

    // The file decrypts with the password and holds the printed address.
    let key = smartmesh_keystore::load(Path::new(&path), b"correct horse").unwrap();
    assert_eq!(key.address().to_string(), address);
    assert_eq!(
        smartmesh_keystore::load(Path::new(&path), b"wrong horse").unwrap_err(),
        smartmesh_keystore::KeystoreError::WrongPassword
    );
    // The secret is never printed.
    let secret = hex_lower(&key.to_bytes());
    assert!(!out.contains(&secret) && !stderr(&new).contains(&secret));

    // Import a known key with the password from a file (first line only).
    let key_file = dir.join("key.hex");
    std::fs::write(&key_file, format!("{DEV_KEY}\n")).unwrap();
    let pw_file = dir.join("pw.txt");
    std::fs::write(&pw_file, "s3cret\nignored second line\n").unwrap();
    let import = smartmesh(
        dir,
        &[
            "import",
            "--private-key-file",
            key_file.to_str().unwrap(),
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(stdout(&import).contains(DEV_ADDRESS), "{}", stdout(&import));
    assert!(!stdout(&import).contains(&DEV_KEY[2..]));
    let imported = stdout(&import)
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("path    ")
        .unwrap()
        .to_string();
    let key = smartmesh_keystore::load(Path::new(&imported), b"s3cret").unwrap();
    assert_eq!(key.address().to_string(), DEV_ADDRESS);

    // Importing the same key again is refused.
    let again = smartmesh(
        dir,
        &["import", "--private-key-file", key_file.to_str().unwrap()],
        Some("other"),
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already in the keystore"),
        "{}",
        stderr(&again)
    );

    // A stray file is skipped with a warning; both accounts are listed.
    std::fs::write(dir.join("keystore/notes.txt"), "hello").unwrap();
    let listed = smartmesh(dir, &["list"], None);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let lines: Vec<String> = stdout(&listed).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.contains(&format!("{address} {path}")), "{lines:?}");
    assert!(
        lines.contains(&format!("{DEV_ADDRESS} {imported}")),
        "{lines:?}"
    );
    assert!(stderr(&listed).contains("skipped") && stderr(&listed).contains("notes.txt"));

    // --keystore-dir overrides the environment.
    let other = dir.join("other");
    let listed = smartmesh(
        dir,
        &["list", "--keystore-dir", other.to_str().unwrap()],
        None,
    );
    assert!(listed.status.success());
    assert_eq!(stdout(&listed), "");
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fails = |args: &[&str], password: Option<&str>, needle: &str| {
        let o = smartmesh(dir, args, password);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "");
    };
    fails(&["new"], None, "no password");
    fails(&["new"], Some(""), "empty password");
    let empty_pw = dir.join("empty-pw");
    std::fs::write(&empty_pw, "\n").unwrap();
    fails(
        &["new", "--password-file", empty_pw.to_str().unwrap()],
        None,
        "empty password",
    );
    fails(
        &["new", "--password-file", "/nonexistent/pw"],
        None,
        "cannot read password file",
    );
    fails(
        &["import", "--private-key-file", "/nonexistent/key"],
        Some("pw"),
        "cannot read private key file",
    );
    let bad_key = dir.join("bad.hex");
    std::fs::write(&bad_key, "0xnothex-secretish").unwrap();
    fails(
        &["import", "--private-key-file", bad_key.to_str().unwrap()],
        Some("pw"),
        "not hold a valid private key",
    );
    let o = smartmesh(
        dir,
        &["import", "--private-key-file", bad_key.to_str().unwrap()],
        Some("pw"),
    );
    assert!(!stderr(&o).contains("secretish"));
    std::fs::write(&bad_key, "00".repeat(32)).unwrap();
    fails(
        &["import", "--private-key-file", bad_key.to_str().unwrap()],
        Some("pw"),
        "not hold a valid private key",
    );
    // Nothing was written by any of the failures.
    assert!(!dir.join("keystore").exists());
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
