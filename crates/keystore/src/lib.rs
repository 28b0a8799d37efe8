//! Ethereum keystore v3 files (the "Web3 Secret Storage" format geth, eth-account and
//! most wallets write) holding a node's secp256k1 identity.
//!
//! * [`encrypt`] seals a [`PrivateKey`] under a password: scrypt (by default
//!   n = 2^18, r = 8, p = 1, as geth's "standard" setting) and aes-128-ctr, with the
//!   MAC `keccak256(derived_key[16..32] ++ ciphertext)`.
//! * [`decrypt`] opens files made with scrypt or with pbkdf2/hmac-sha256. A wrong
//!   password is [`KeystoreError::WrongPassword`] (detected by the MAC); malformed files
//!   are other errors, never panics, and absurd KDF parameters are refused before any
//!   memory is allocated for them.
//! * [`write_new`], [`list`], [`find`] and [`load`] manage a directory of such files,
//!   named as geth names them (`UTC--<ISO time>--<address>`), written atomically with
//!   mode 0600.

use aes::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{Address, PrivateKey, keccak256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Largest scrypt working memory (`128 * r * n` bytes) accepted when decrypting: 1 GiB,
/// four times geth's standard setting. Larger values are refused rather than allocated.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Largest scrypt parallelism `p` accepted when decrypting.
pub const MAX_SCRYPT_P: u64 = 16;
/// Largest pbkdf2 iteration count accepted when decrypting.
pub const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;
/// Largest keystore file [`load`] and [`list`] will read.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;

/// Everything that can go wrong reading, writing or opening a keystore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    /// The MAC did not match: the password is wrong (or the file was altered).
    #[error("wrong password (or the keystore file was altered)")]
    WrongPassword,
    /// The file is not valid keystore JSON.
    #[error("malformed keystore JSON: {0}")]
    Json(String),
    /// Only version 3 is supported.
    #[error("unsupported keystore version {0} (only 3 is supported)")]
    UnsupportedVersion(u64),
    /// Only `aes-128-ctr` is supported.
    #[error("unsupported cipher {0:?} (only aes-128-ctr is supported)")]
    UnsupportedCipher(String),
    /// Only `scrypt` and `pbkdf2` (hmac-sha256) are supported.
    #[error("unsupported key derivation function {0:?} (scrypt and pbkdf2 are supported)")]
    UnsupportedKdf(String),
    /// KDF parameters missing, invalid or beyond the accepted limits.
    #[error("invalid key derivation parameters: {0}")]
    InvalidKdfParams(String),
    /// A field is not valid hex.
    #[error("field {0} is not valid hex")]
    Hex(&'static str),
    /// A field has the wrong length.
    #[error("field {field} has {got} bytes, expected {expected}")]
    Length {
        /// The JSON field.
        field: &'static str,
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// The decrypted bytes are not a valid secp256k1 private key.
    #[error("the decrypted key is not a valid secp256k1 private key")]
    InvalidKey,
    /// The file's `address` field does not belong to the key inside it.
    #[error("the file claims address {claimed} but holds the key of {actual}")]
    AddressMismatch {
        /// The address written in the file.
        claimed: Address,
        /// The address of the decrypted key.
        actual: Address,
    },
    /// No keystore file for this address in the directory.
    #[error("no keystore file for {0}")]
    NotFound(Address),
    /// Several keystore files hold this address.
    #[error("several keystore files hold {0}: {1}")]
    Ambiguous(Address, String),
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// A file system operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> KeystoreError {
    KeystoreError::Io {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// The key derivation used by [`encrypt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams(Kdf);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kdf {
    Scrypt { log_n: u8, r: u32, p: u32 },
    Pbkdf2 { c: u32 },
}

impl Default for KdfParams {
    /// geth's standard setting: scrypt n = 2^18, r = 8, p = 1 (256 MiB, about a second).
    fn default() -> Self {
        Self(Kdf::Scrypt {
            log_n: 18,
            r: 8,
            p: 1,
        })
    }
}

impl KdfParams {
    /// geth's standard setting, the same as [`KdfParams::default`].
    pub fn standard() -> Self {
        Self::default()
    }

    /// scrypt n = 2^10, r = 8, p = 1: milliseconds. For tests only; it protects nothing.
    pub fn light() -> Self {
        Self(Kdf::Scrypt {
            log_n: 10,
            r: 8,
            p: 1,
        })
    }

    /// scrypt with n = 2^`log_n`, checked against the limits [`decrypt`] accepts.
    pub fn scrypt(log_n: u8, r: u32, p: u32) -> Result<Self, KeystoreError> {
        let kdf = Kdf::Scrypt { log_n, r, p };
        check_scrypt(
            1u64.checked_shl(u32::from(log_n)).unwrap_or(0),
            r.into(),
            p.into(),
        )?;
        Ok(Self(kdf))
    }

    /// pbkdf2 with hmac-sha256 and `c` rounds (geth's default is 262144).
    pub fn pbkdf2(c: u32) -> Result<Self, KeystoreError> {
        check_pbkdf2(c.into())?;
        Ok(Self(Kdf::Pbkdf2 { c }))
    }
}

/// A keystore v3 file as JSON. Parse with [`Keystore::from_json`], print with
/// [`Keystore::to_json`]; it holds only encrypted material and may be logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keystore {
    /// The key's address as lowercase hex without `0x`, as geth writes it (optional in
    /// the format; checked against the key on [`decrypt`] when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The encrypted key (older geth files spell it `Crypto`).
    #[serde(alias = "Crypto")]
    pub crypto: CryptoJson,
    /// A random (v4) UUID.
    #[serde(default)]
    pub id: String,
    /// Always 3.
    pub version: u64,
}

/// The `crypto` section of a keystore file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CryptoJson {
    /// `aes-128-ctr`.
    pub cipher: String,
    /// The encrypted private key, hex.
    pub ciphertext: String,
    /// The cipher's IV.
    pub cipherparams: CipherParamsJson,
    /// `scrypt` or `pbkdf2`.
    pub kdf: String,
    /// The KDF's parameters.
    pub kdfparams: KdfParamsJson,
    /// `keccak256(derived_key[16..32] ++ ciphertext)`, hex.
    pub mac: String,
}

/// The `cipherparams` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CipherParamsJson {
    /// 16-byte IV, hex.
    pub iv: String,
}

/// The `kdfparams` section: scrypt uses `n`, `r`, `p`; pbkdf2 uses `c` and `prf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParamsJson {
    /// Derived key length; must be 32.
    pub dklen: u64,
    /// scrypt cost (a power of two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// scrypt parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<u64>,
    /// scrypt block size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<u64>,
    /// pbkdf2 rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<u64>,
    /// pbkdf2 pseudo-random function; must be `hmac-sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<String>,
    /// Salt, hex.
    pub salt: String,
}

impl Keystore {
    /// Parses keystore JSON. Only the shape is checked here; [`decrypt`] checks the rest.
    pub fn from_json(json: &str) -> Result<Self, KeystoreError> {
        serde_json::from_str(json).map_err(|e| KeystoreError::Json(e.to_string()))
    }

    /// The file's JSON text.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The address the file claims (without decrypting), if it has a valid one.
    pub fn claimed_address(&self) -> Result<Option<Address>, KeystoreError> {
        match &self.address {
            None => Ok(None),
            Some(text) => {
                let bytes = decode_hex_exact::<20>("address", text)?;
                Ok(Some(Address::from(bytes)))
            }
        }
    }
}

fn decode_hex(field: &'static str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    let raw = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(raw).map_err(|_| KeystoreError::Hex(field))
}

fn decode_hex_exact<const N: usize>(
    field: &'static str,
    text: &str,
) -> Result<[u8; N], KeystoreError> {
    let bytes = decode_hex(field, text)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeystoreError::Length {
            field,
            expected: N,
            got: bytes.len(),
        })
}

fn random<const N: usize>() -> Result<[u8; N], KeystoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeystoreError::Random(e.to_string()))?;
    Ok(bytes)
}

fn uuid_v4() -> Result<String, KeystoreError> {
    let mut b: [u8; 16] = random()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn check_scrypt(n: u64, r: u64, p: u64) -> Result<scrypt::Params, KeystoreError> {
    let bad = |m: String| Err(KeystoreError::InvalidKdfParams(m));
    if n < 2 || !n.is_power_of_two() {
        return bad(format!("scrypt n = {n} is not a power of two above 1"));
    }
    if r == 0 || p == 0 {
        return bad("scrypt r and p must be positive".into());
    }
    if p > MAX_SCRYPT_P {
        return bad(format!("scrypt p = {p} exceeds {MAX_SCRYPT_P}"));
    }
    let memory = 128u64.checked_mul(r).and_then(|m| m.checked_mul(n));
    if memory.is_none_or(|m| m > MAX_SCRYPT_MEMORY) {
        return bad(format!(
            "scrypt n = {n}, r = {r} needs more than {MAX_SCRYPT_MEMORY} bytes"
        ));
    }
    let (Ok(r), Ok(p)) = (u32::try_from(r), u32::try_from(p)) else {
        return bad("scrypt r or p out of range".into());
    };
    // n is a power of two below 2^64, so its log fits a u8.
    let log_n = n.trailing_zeros() as u8;
    scrypt::Params::new(log_n, r, p)
        .map_err(|e| KeystoreError::InvalidKdfParams(format!("scrypt: {e}")))
}

fn check_pbkdf2(c: u64) -> Result<u32, KeystoreError> {
    if c == 0 || c > MAX_PBKDF2_ROUNDS {
        return Err(KeystoreError::InvalidKdfParams(format!(
            "pbkdf2 c = {c} is not in 1..={MAX_PBKDF2_ROUNDS}"
        )));
    }
    // Bounded above, so it fits.
    Ok(c as u32)
}

fn derive_scrypt(
    password: &[u8],
    salt: &[u8],
    params: &scrypt::Params,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut dk = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, params, dk.as_mut())
        .map_err(|e| KeystoreError::InvalidKdfParams(format!("scrypt: {e}")))?;
    Ok(dk)
}

fn derive_pbkdf2(password: &[u8], salt: &[u8], c: u32) -> Zeroizing<[u8; 32]> {
    let mut dk = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(password, salt, c, dk.as_mut());
    dk
}

fn mac_of(dk: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(16 + ciphertext.len());
    input.extend_from_slice(&dk[16..32]);
    input.extend_from_slice(ciphertext);
    keccak256(&input).0
}

fn apply_aes_ctr(dk: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) -> Result<(), KeystoreError> {
    let mut cipher =
        Aes128Ctr::new_from_slices(&dk[..16], iv).map_err(|_| KeystoreError::Length {
            field: "cipherparams.iv",
            expected: 16,
            got: iv.len(),
        })?;
    cipher.apply_keystream(data);
    Ok(())
}

/// Seals `key` under `password` as a keystore v3 document with a fresh salt, IV and id.
/// Fails only if the operating system's random generator does.
pub fn encrypt(
    key: &PrivateKey,
    password: &[u8],
    params: KdfParams,
) -> Result<Keystore, KeystoreError> {
    let salt: [u8; 32] = random()?;
    let iv: [u8; 16] = random()?;
    let (dk, kdf, kdfparams) = match params.0 {
        Kdf::Scrypt { log_n, r, p } => {
            let n = 1u64 << log_n;
            let checked = check_scrypt(n, r.into(), p.into())?;
            let dk = derive_scrypt(password, &salt, &checked)?;
            let json = KdfParamsJson {
                dklen: 32,
                n: Some(n),
                p: Some(p.into()),
                r: Some(r.into()),
                c: None,
                prf: None,
                salt: hex::encode(salt),
            };
            (dk, "scrypt", json)
        }
        Kdf::Pbkdf2 { c } => {
            let dk = derive_pbkdf2(password, &salt, c);
            let json = KdfParamsJson {
                dklen: 32,
                n: None,
                p: None,
                r: None,
                c: Some(c.into()),
                prf: Some("hmac-sha256".into()),
                salt: hex::encode(salt),
            };
            (dk, "pbkdf2", json)
        }
    };
    let mut ciphertext = key.to_bytes();
    apply_aes_ctr(&dk, &iv, &mut ciphertext)?;
    let mac = mac_of(&dk, &ciphertext);
    Ok(Keystore {
        address: Some(hex::encode(key.address().as_slice())),
        crypto: CryptoJson {
            cipher: "aes-128-ctr".into(),
            ciphertext: hex::encode(ciphertext),
            cipherparams: CipherParamsJson {
                iv: hex::encode(iv),
            },
            kdf: kdf.into(),
            kdfparams,
            mac: hex::encode(mac),
        },
        id: uuid_v4()?,
        version: 3,
    })
}

/// Opens a keystore with `password`. The MAC is checked before decrypting: a mismatch
/// is [`KeystoreError::WrongPassword`].
pub fn decrypt(keystore: &Keystore, password: &[u8]) -> Result<PrivateKey, KeystoreError> {
    if keystore.version != 3 {
        return Err(KeystoreError::UnsupportedVersion(keystore.version));
    }
    let crypto = &keystore.crypto;
    if !crypto.cipher.eq_ignore_ascii_case("aes-128-ctr") {
        return Err(KeystoreError::UnsupportedCipher(crypto.cipher.clone()));
    }
    let claimed = keystore.claimed_address()?;
    let iv = decode_hex_exact::<16>("cipherparams.iv", &crypto.cipherparams.iv)?;
    let ciphertext = decode_hex_exact::<32>("ciphertext", &crypto.ciphertext)?;
    let mac = decode_hex_exact::<32>("mac", &crypto.mac)?;
    let kp = &crypto.kdfparams;
    if kp.dklen != 32 {
        return Err(KeystoreError::InvalidKdfParams(format!(
            "dklen = {} (only 32 is supported)",
            kp.dklen
        )));
    }
    let salt = decode_hex("kdfparams.salt", &kp.salt)?;
    let missing = |name: &str| KeystoreError::InvalidKdfParams(format!("missing {name}"));
    let dk = match crypto.kdf.as_str() {
        "scrypt" => {
            let n = kp.n.ok_or_else(|| missing("n"))?;
            let r = kp.r.ok_or_else(|| missing("r"))?;
            let p = kp.p.ok_or_else(|| missing("p"))?;
            let params = check_scrypt(n, r, p)?;
            derive_scrypt(password, &salt, &params)?
        }
        "pbkdf2" => {
            let c = check_pbkdf2(kp.c.ok_or_else(|| missing("c"))?)?;
            match kp.prf.as_deref() {
                Some("hmac-sha256") => {}
                other => {
                    return Err(KeystoreError::InvalidKdfParams(format!(
                        "pbkdf2 prf {other:?} (only hmac-sha256 is supported)"
                    )));
                }
            }
            derive_pbkdf2(password, &salt, c)
        }
        other => return Err(KeystoreError::UnsupportedKdf(other.to_string())),
    };
    let expected = mac_of(&dk, &ciphertext);
    // Constant-time comparison.
    let diff = expected
        .iter()
        .zip(mac.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(KeystoreError::WrongPassword);
    }
    let mut secret = Zeroizing::new(ciphertext);
    apply_aes_ctr(&dk, &iv, secret.as_mut())?;
    let key = PrivateKey::from_bytes(&secret).map_err(|_| KeystoreError::InvalidKey)?;
    if let Some(claimed) = claimed
        && claimed != key.address()
    {
        return Err(KeystoreError::AddressMismatch {
            claimed,
            actual: key.address(),
        });
    }
    Ok(key)
}

/// `2006-01-02T15-04-05.999999999Z` for `time`, as geth formats keystore file names.
fn iso_file_time(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// The geth-style file name for `address` at `time`: `UTC--<ISO time>--<address hex>`.
pub fn file_name(address: &Address, time: SystemTime) -> String {
    format!(
        "UTC--{}--{}",
        iso_file_time(time),
        hex::encode(address.as_slice())
    )
}

/// Writes `keystore` as a new file in `dir` (created with mode 0700 if missing), named
/// as geth names it, with mode 0600. The write is atomic: a temporary file in `dir` is
/// written, synced and renamed into place; an existing file is never overwritten.
pub fn write_new(dir: &Path, keystore: &Keystore) -> Result<PathBuf, KeystoreError> {
    let address = keystore
        .claimed_address()?
        .ok_or_else(|| KeystoreError::Json("the keystore has no address field".into()))?;
    create_dir_private(dir)?;
    let name = file_name(&address, SystemTime::now());
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "cannot create", e))?;
        file.write_all(keystore.to_json().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_err(&tmp, "cannot write", e))?;
        if path.exists() {
            return Err(io_err(&path, "cannot write", "file exists"));
        }
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, "cannot rename into place", e))?;
        // Make the rename durable; failure here is not worth failing the write for.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(path.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn create_dir_private(dir: &Path) -> Result<(), KeystoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| io_err(dir, "cannot create directory", e))
}

fn read_small(path: &Path) -> Result<String, KeystoreError> {
    let meta = fs::metadata(path).map_err(|e| io_err(path, "cannot read", e))?;
    if meta.len() > MAX_FILE_SIZE {
        return Err(io_err(
            path,
            "cannot read",
            format!("larger than {MAX_FILE_SIZE} bytes, not a keystore file"),
        ));
    }
    fs::read_to_string(path).map_err(|e| io_err(path, "cannot read", e))
}

/// Reads and parses the keystore file at `path` without decrypting it.
pub fn read(path: &Path) -> Result<Keystore, KeystoreError> {
    Keystore::from_json(&read_small(path)?)
}

/// Reads the keystore file at `path` and decrypts it with `password`.
pub fn load(path: &Path, password: &[u8]) -> Result<PrivateKey, KeystoreError> {
    decrypt(&read(path)?, password)
}

/// The accounts found in a keystore directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Each keystore file's address and path, sorted by file name (oldest first for
    /// geth-named files).
    pub accounts: Vec<(Address, PathBuf)>,
    /// Files that are not keystore files, with the reason; they are skipped, not fatal.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Lists the keystore files in `dir` (a missing directory is empty). Hidden files and
/// directories are ignored; other files that are not keystore v3 files with an
/// address field are reported in [`Listing::skipped`].
pub fn list(dir: &Path) -> Result<Listing, KeystoreError> {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(io_err(dir, "cannot list", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, "cannot list", e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') || path.is_dir() {
            continue;
        }
        let parsed = read(&path).and_then(|ks| {
            if ks.version != 3 {
                return Err(KeystoreError::UnsupportedVersion(ks.version));
            }
            ks.claimed_address()?
                .ok_or_else(|| KeystoreError::Json("no address field".into()))
        });
        match parsed {
            Ok(address) => listing.accounts.push((address, path)),
            Err(e) => listing.skipped.push((path, e.to_string())),
        }
    }
    listing.accounts.sort_by(|a, b| a.1.cmp(&b.1));
    listing.skipped.sort();
    Ok(listing)
}

/// The one keystore file in `dir` holding `address`.
pub fn find(dir: &Path, address: &Address) -> Result<PathBuf, KeystoreError> {
    let matches: Vec<PathBuf> = list(dir)?
        .accounts
        .into_iter()
        .filter(|(a, _)| a == address)
        .map(|(_, p)| p)
        .collect();
    match matches.as_slice() {
        [] => Err(KeystoreError::NotFound(*address)),
        [one] => Ok(one.clone()),
        many => Err(KeystoreError::Ambiguous(
            *address,
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_time_matches_known_instants() {
        let t = UNIX_EPOCH + std::time::Duration::new(0, 0);
        assert_eq!(iso_file_time(t), "1970-01-01T00-00-00.000000000Z");
        // 2024-02-29T13:45:07.5Z
        let t = UNIX_EPOCH + std::time::Duration::new(1_709_214_307, 500_000_000);
        assert_eq!(iso_file_time(t), "2024-02-29T13-45-07.500000000Z");
    }

    #[test]
    fn uuid_is_v4_shaped() {
        let id = uuid_v4().expect("random");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn kdf_param_limits() {
        assert!(KdfParams::scrypt(18, 8, 1).is_ok());
        assert!(KdfParams::scrypt(0, 8, 1).is_err());
        assert!(KdfParams::scrypt(40, 8, 1).is_err());
        assert!(KdfParams::scrypt(10, 0, 1).is_err());
        assert!(KdfParams::pbkdf2(0).is_err());
        assert!(KdfParams::pbkdf2(1000).is_ok());
    }
}
