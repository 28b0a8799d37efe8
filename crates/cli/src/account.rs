//! `smartmesh account new|import|list`: the node's identity as Ethereum keystore v3
//! files (geth-compatible) in a keystore directory.
//!
//! The password comes from `--password-file` (its first line) or from the environment
//! variable `SMARTMESH_PASSWORD`; an empty password is refused and secrets are never
//! printed. `SMARTMESH_KEYSTORE_LIGHT_KDF=1` is for tests only: it writes files with a
//! trivially weak scrypt setting so test suites stay fast.

use clap::{Args, Subcommand};
use smartmesh_keystore::{KdfParams, encrypt, list, write_new};
use smartmesh_primitives::PrivateKey;
use std::path::{Path, PathBuf};

/// Environment variable holding the password when no `--password-file` is given.
const PASSWORD_ENV: &str = "SMARTMESH_PASSWORD";
/// Test-only: when `1`, new files use a weak, fast scrypt setting.
const LIGHT_KDF_ENV: &str = "SMARTMESH_KEYSTORE_LIGHT_KDF";

/// Flags of `smartmesh account`.
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    action: Action,
    /// Keystore directory [default: ~/.smartmesh/keystore].
    #[arg(
        long,
        value_name = "DIR",
        env = "SMARTMESH_KEYSTORE_DIR",
        global = true
    )]
    keystore_dir: Option<PathBuf>,
    /// File whose first line is the password (or set SMARTMESH_PASSWORD).
    #[arg(long, value_name = "FILE", global = true)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Generate a new random key and store it encrypted.
    New,
    /// Encrypt an existing private key (hex in a file) into the keystore.
    Import {
        /// File holding the private key as hex, with or without 0x.
        #[arg(long, value_name = "FILE")]
        private_key_file: PathBuf,
    },
    /// Print the address and path of every keystore file.
    List,
}

fn keystore_dir(args: &AccountArgs) -> Result<PathBuf, String> {
    if let Some(dir) = &args.keystore_dir {
        return Ok(dir.clone());
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(Path::new(&home).join(".smartmesh/keystore")),
        _ => Err("no home directory: pass --keystore-dir or set SMARTMESH_KEYSTORE_DIR".into()),
    }
}

fn password(args: &AccountArgs) -> Result<String, String> {
    read_password(args.password_file.as_deref())
}

/// The password from the first line of `file`, else from `SMARTMESH_PASSWORD`; empty
/// passwords are refused.
pub(crate) fn read_password(file: Option<&Path>) -> Result<String, String> {
    let password = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
            text.lines().next().unwrap_or_default().to_string()
        }
        None => std::env::var(PASSWORD_ENV)
            .map_err(|_| format!("no password: pass --password-file FILE or set {PASSWORD_ENV}"))?,
    };
    if password.is_empty() {
        return Err("refusing an empty password".into());
    }
    Ok(password)
}

fn kdf_params() -> KdfParams {
    if std::env::var(LIGHT_KDF_ENV).as_deref() == Ok("1") {
        eprintln!("warning: {LIGHT_KDF_ENV}=1: weak key derivation, for tests only");
        KdfParams::light()
    } else {
        KdfParams::standard()
    }
}

fn store(dir: &Path, key: &PrivateKey, password: &str) -> Result<(), String> {
    let keystore = encrypt(key, password.as_bytes(), kdf_params()).map_err(|e| e.to_string())?;
    let path = write_new(dir, &keystore).map_err(|e| e.to_string())?;
    println!("address {}", key.address());
    println!("path    {}", path.display());
    Ok(())
}

/// Runs `smartmesh account`.
pub fn run(args: AccountArgs) -> Result<(), String> {
    let dir = keystore_dir(&args)?;
    match &args.action {
        Action::New => {
            let password = password(&args)?;
            store(&dir, &PrivateKey::random(), &password)
        }
        Action::Import { private_key_file } => {
            let hex = std::fs::read_to_string(private_key_file).map_err(|e| {
                format!(
                    "cannot read private key file {}: {e}",
                    private_key_file.display()
                )
            })?;
            // The error never echoes the file's content.
            let key = PrivateKey::from_hex(&hex).map_err(|_| {
                format!(
                    "{} does not hold a valid private key (64 hex digits, optional 0x)",
                    private_key_file.display()
                )
            })?;
            let password = password(&args)?;
            let listing = list(&dir).map_err(|e| e.to_string())?;
            if let Some((_, path)) = listing.accounts.iter().find(|(a, _)| *a == key.address()) {
                return Err(format!(
                    "{} is already in the keystore: {}",
                    key.address(),
                    path.display()
                ));
            }
            store(&dir, &key, &password)
        }
        Action::List => {
            let listing = list(&dir).map_err(|e| e.to_string())?;
            for (path, reason) in &listing.skipped {
                eprintln!("warning: skipped {}: {reason}", path.display());
            }
            if listing.accounts.is_empty() {
                eprintln!("no accounts in {}", dir.display());
            }
            for (address, path) in &listing.accounts {
                println!("{address} {}", path.display());
            }
            Ok(())
        }
    }
}
