//! The key `gate serve` keeps released secrets under, and the sealing itself (issue 14 §5):
//! AES-256-GCM, a fresh random nonce per value, the secret's name as associated data so a
//! sealed value copied under another name does not open. The key comes from `GATE_SECRET_KEY`
//! (64 hex characters), else a 0600 key file, else the OS keyring — never from the database.
//! Neither the key nor an opened value is ever shown: their `Debug` is `[redacted]`.

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The environment variable that carries the key as 64 hex characters.
pub const KEY_ENV: &str = "GATE_SECRET_KEY";
/// The keyring entry that holds the key (hex) when neither the variable nor a file is given.
pub const KEYRING_SERVICE: &str = "gate";
pub const KEYRING_USER: &str = "server-secret-key";
/// The name the key check value is sealed under: no secret name can be it (`#` is not allowed
/// in one), so listing and releasing never meet it.
pub const CHECK_NAME: &str = "#key-check";
const CHECK_PLAINTEXT: &[u8] = b"gate secret key check v1";
/// Bound into every seal with the name, so a value sealed for another purpose never opens here.
const AAD_PREFIX: &[u8] = b"gate-secret/v1\0";

/// Why the key cannot be had. No variant holds key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("`{KEY_ENV}` must be exactly 64 hexadecimal characters (32 bytes); it is {0}")]
    EnvMalformed(&'static str),
    #[error("cannot read the secret key file `{}`: {source}", .path.display())]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret key file `{}` is readable by group or others (mode {mode:04o}); make it 0600", .path.display())]
    FileOpen { path: PathBuf, mode: u32 },
    #[error("the secret key file `{}` must hold 64 hexadecimal characters or 32 raw bytes", .path.display())]
    FileMalformed { path: PathBuf },
    #[error(
        "the keyring entry `{KEYRING_SERVICE}/{KEYRING_USER}` is not 64 hexadecimal characters"
    )]
    KeyringMalformed,
    #[error("cannot use the keyring entry `{KEYRING_SERVICE}/{KEYRING_USER}`: {0}")]
    Keyring(String),
    #[error(
        "no secret key: set `{KEY_ENV}`, pass `--secret-key-file FILE`, or keep one in the keyring entry `{KEYRING_SERVICE}/{KEYRING_USER}`"
    )]
    Missing,
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// Where the key came from (said in messages; never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Keyring,
    /// Made now and stored in the keyring (the first `gate serve secret set`).
    KeyringCreated,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => write!(f, "`{KEY_ENV}`"),
            KeySource::File(p) => write!(f, "the file `{}`", p.display()),
            KeySource::Keyring | KeySource::KeyringCreated => {
                write!(f, "the keyring entry `{KEYRING_SERVICE}/{KEYRING_USER}`")
            }
        }
    }
}

/// A value sealed under the key: nonce, then ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// A sealed value that does not open under this key for this name: another key, another
/// name (a row copied), or damaged bytes. Which of them is not knowable, by design of GCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the secret does not decrypt with this key (another key, a row copied from another name, or damaged bytes)"
)]
pub struct OpenError;

/// The 256-bit key. `Debug` never shows it.
pub struct VaultKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey([redacted])")
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl VaultKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes 32 bytes");
        VaultKey {
            key: LessSafeKey::new(unbound),
        }
    }

    /// The key from, in this order: `GATE_SECRET_KEY`, `file`, the keyring. With `create`,
    /// a missing keyring entry (and no other source) is made with a fresh random key.
    pub fn load(file: Option<&Path>, create: bool) -> Result<(Self, KeySource), KeyError> {
        if let Some(v) = std::env::var_os(KEY_ENV) {
            let Some(s) = v.to_str() else {
                return Err(KeyError::EnvMalformed("not text"));
            };
            return match parse_hex32(s) {
                Some(k) => Ok((Self::from_bytes(&k), KeySource::Env)),
                None if s.len() != 64 => Err(KeyError::EnvMalformed(if s.is_empty() {
                    "empty"
                } else {
                    "of another length"
                })),
                None => Err(KeyError::EnvMalformed("not hexadecimal")),
            };
        }
        if let Some(path) = file {
            return Self::from_file(path).map(|k| (k, KeySource::File(path.to_owned())));
        }
        Self::from_keyring(create)
    }

    fn from_file(path: &Path) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |source| KeyError::FileRead {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::FileOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Self::from_bytes(&k));
        }
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| parse_hex32(s.trim()))
            .map(|k| Self::from_bytes(&k))
            .ok_or_else(|| KeyError::FileMalformed {
                path: path.to_owned(),
            })
    }

    fn from_keyring(create: bool) -> Result<(Self, KeySource), KeyError> {
        let entry = keyring::Entry::new(KEYRING_SERVICE, KEYRING_USER)
            .map_err(|e| KeyError::Keyring(e.to_string()))?;
        match entry.get_password() {
            Ok(s) => parse_hex32(s.trim())
                .map(|k| (Self::from_bytes(&k), KeySource::Keyring))
                .ok_or(KeyError::KeyringMalformed),
            Err(keyring::Error::NoEntry) if create => {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k).map_err(|e| KeyError::Random(e.to_string()))?;
                let hex = hex::encode(k);
                let lost =
                    |why: String| KeyError::Keyring(format!("it cannot keep a new key ({why})"));
                entry.set_password(&hex).map_err(|e| lost(e.to_string()))?;
                // Read back: some keyrings accept a write they cannot return, and a key that
                // is lost after sealing loses every secret.
                match entry.get_password() {
                    Ok(back) if back == hex => {
                        Ok((Self::from_bytes(&k), KeySource::KeyringCreated))
                    }
                    Ok(_) => Err(lost("it returned another value than was stored".into())),
                    Err(e) => Err(lost(format!("it cannot return what was stored: {e}"))),
                }
            }
            Err(keyring::Error::NoEntry) => Err(KeyError::Missing),
            Err(e) => Err(KeyError::Keyring(e.to_string())),
        }
    }

    fn aad(name: &str) -> Vec<u8> {
        let mut a = AAD_PREFIX.to_vec();
        a.extend_from_slice(name.as_bytes());
        a
    }

    /// Seals `plaintext` for `name` under a fresh random nonce.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Sealed, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(name)),
                &mut buf,
            )
            .map_err(|_| KeyError::Random("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(Sealed(out))
    }

    /// Opens what [`VaultKey::seal`] sealed for `name`.
    pub fn open(&self, name: &str, sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        if sealed.0.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(OpenError);
        }
        let (nonce, ct) = sealed.0.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(name)), &mut buf)
            .map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }

    /// Opens a secret's value as the text an environment variable carries.
    pub fn open_value(&self, name: &str, sealed: &Sealed) -> Result<SecretValue, OpenError> {
        let bytes = self.open(name, sealed)?;
        String::from_utf8(bytes)
            .map(SecretValue::new)
            .map_err(|_| OpenError)
    }

    /// The key check value kept in the database: proves at start that this is the key the
    /// secrets were sealed with, without opening any of them.
    pub fn check_value(&self) -> Result<Sealed, KeyError> {
        self.seal(CHECK_NAME, CHECK_PLAINTEXT)
    }

    /// Whether `check` (from [`VaultKey::check_value`]) was made with this key.
    pub fn matches(&self, check: &Sealed) -> bool {
        self.open(CHECK_NAME, check)
            .is_ok_and(|p| p == CHECK_PLAINTEXT)
    }
}

/// A released secret's value. `Debug` and `Display` show `[redacted]`; only
/// [`SecretValue::expose`] gives the text, for the child's environment and the wire.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretValue {
    pub fn new(s: String) -> Self {
        SecretValue(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a value cannot be a secret's: it must be text an environment variable can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("the value is empty")]
    Empty,
    #[error("the value is not UTF-8 text")]
    NotText,
    #[error("the value contains a NUL byte, which an environment variable cannot carry")]
    Nul,
}

/// The value `gate serve secret set` stores from what it read on stdin: one trailing newline
/// (`\n` or `\r\n`) stripped, nothing else; refused when empty, not UTF-8, or holding NUL.
pub fn value_from_input(mut bytes: Vec<u8>) -> Result<SecretValue, ValueError> {
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(ValueError::Empty);
    }
    if bytes.contains(&0) {
        return Err(ValueError::Nul);
    }
    String::from_utf8(bytes)
        .map(SecretValue)
        .map_err(|_| ValueError::NotText)
}

/// Whether `name` can name a secret: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with `.`
/// or `-` (so it is never an option, a hidden file or the key check's name).
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Values released to one run, and the redaction that keeps them out of what gate prints or
/// records.
#[derive(Debug, Clone, Default)]
pub struct Released {
    /// (environment variable, value), in the order released.
    pub vars: Vec<(String, SecretValue)>,
}

impl Released {
    /// `text` with every released value replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        // Longest first, so a value that contains another is replaced whole.
        let mut values: Vec<&str> = self
            .vars
            .iter()
            .map(|(_, v)| v.expose())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for v in values {
            if out.contains(v) {
                out = out.replace(v, "[REDACTED]");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> VaultKey {
        VaultKey::from_bytes(&[b; 32])
    }

    #[test]
    fn a_sealed_value_opens_only_under_its_key_and_its_name() {
        let k = key(1);
        let s = k.seal("prod-deploy", b"tok3n").unwrap();
        assert_eq!(k.open("prod-deploy", &s).unwrap(), b"tok3n");
        assert_eq!(k.open("db", &s), Err(OpenError));
        assert_eq!(key(2).open("prod-deploy", &s), Err(OpenError));
        let mut bad = s.clone();
        *bad.0.last_mut().unwrap() ^= 1;
        assert_eq!(k.open("prod-deploy", &bad), Err(OpenError));
        assert_eq!(k.open("prod-deploy", &Sealed(vec![0; 5])), Err(OpenError));
    }

    #[test]
    fn each_seal_takes_a_fresh_nonce() {
        let k = key(1);
        let a = k.seal("x", b"same").unwrap();
        let b = k.seal("x", b"same").unwrap();
        assert_ne!(a.0[..NONCE_LEN], b.0[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn the_check_value_tells_the_right_key_from_another() {
        let check = key(7).check_value().unwrap();
        assert!(key(7).matches(&check));
        assert!(!key(8).matches(&check));
    }

    #[test]
    fn input_loses_one_trailing_newline_and_nothing_else() {
        let v = |s: &[u8]| value_from_input(s.to_vec()).map(|v| v.expose().to_owned());
        assert_eq!(v(b"abc\n").unwrap(), "abc");
        assert_eq!(v(b"abc\r\n").unwrap(), "abc");
        assert_eq!(v(b"abc\n\n").unwrap(), "abc\n");
        assert_eq!(v(b" abc ").unwrap(), " abc ");
        assert_eq!(v(b"\n"), Err(ValueError::Empty));
        assert_eq!(v(b""), Err(ValueError::Empty));
        assert_eq!(v(b"a\0b"), Err(ValueError::Nul));
        assert_eq!(v(b"\xff\xfe"), Err(ValueError::NotText));
    }

    #[test]
    fn names_are_plain_words() {
        for ok in ["prod-deploy", "db", "a.b_c-1", "X"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-rf",
            "a/b",
            "a b",
            CHECK_NAME,
            &"x".repeat(129),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_a_value_or_the_key() {
        let v = SecretValue::new("hunter2".into());
        assert_eq!(format!("{v:?}"), "[redacted]");
        assert_eq!(format!("{v}"), "[redacted]");
        let r = Released {
            vars: vec![("X".into(), v)],
        };
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(!format!("{:?}", key(3)).contains("03"));
    }

    #[test]
    fn redaction_replaces_every_released_value() {
        let r = Released {
            vars: vec![
                ("A".into(), SecretValue::new("abc".into())),
                ("B".into(), SecretValue::new("abcdef".into())),
            ],
        };
        assert_eq!(r.redact("x=abcdef y=abc z"), "x=[REDACTED] y=[REDACTED] z");
    }
}
