//! Where a server token lives on a client: `GATE_TOKEN`, else the OS keyring (the kernel
//! keyring on Linux, through `keyring`), else a 0600 file under the config directory for
//! machines with neither (CI runners, containers). Tokens never reach logs or `Debug` output.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod vault;

const SERVICE: &str = "gate";

/// A secret that cannot be found or kept. No variant holds a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable `{0}` is not set")]
    EnvUnset(String),
    #[error("cannot read `{path}`: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    /// `keyring:` without the `/` between service and name.
    #[error("write `keyring:SERVICE/NAME`")]
    KeyringForm,
    #[error("no `{reference}` in the keyring: {source}")]
    Keyring {
        reference: String,
        source: keyring::Error,
    },
    #[error("secrets are given as `env:VAR`, `file:PATH` or `keyring:SERVICE/NAME`")]
    Scheme,
    /// `gate login` found no keyring and could not write the fallback file either.
    #[error("no keyring ({keyring}) and cannot write `{}`: {source}", .path.display())]
    Store {
        keyring: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where `gate login` put the token.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    Keyring,
    File(PathBuf),
}

fn normalize(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

fn token_file(config_dir: &Path, server: &str) -> PathBuf {
    let h = hex::encode(Sha256::digest(normalize(server).as_bytes()));
    config_dir.join("tokens").join(&h[..16])
}

/// The token to present to `server`: `GATE_TOKEN` (given as `env_token`), else the keyring,
/// else the file under `config_dir`.
pub fn load(env_token: Option<&Token>, config_dir: &Path, server: &str) -> Option<Token> {
    if let Some(t) = env_token {
        return Some(t.clone());
    }
    if let Ok(entry) = keyring::Entry::new(SERVICE, &normalize(server))
        && let Ok(t) = entry.get_password()
    {
        return Some(Token::new(t));
    }
    std::fs::read_to_string(token_file(config_dir, server))
        .ok()
        .map(|s| Token::new(s.trim().to_owned()))
        .filter(|t| !t.expose().is_empty())
}

/// Whether the OS keyring answers (for `gate doctor`): a look-up of an entry nobody stores
/// either finds nothing (the keyring works) or fails with the keyring's own error.
pub fn keyring_available() -> Result<(), String> {
    match keyring::Entry::new(SERVICE, "gate-doctor-probe").and_then(|e| e.get_password()) {
        Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Stores the token: the keyring if there is one, else a 0600 file (and says so).
pub fn store(config_dir: &Path, server: &str, token: &Token) -> Result<Stored, SecretError> {
    let keyring_error = match keyring::Entry::new(SERVICE, &normalize(server)).and_then(|e| {
        e.set_password(token.expose())?;
        // Read back: some keyrings accept a write they cannot return.
        e.get_password()
    }) {
        Ok(t) if t == token.expose() => return Ok(Stored::Keyring),
        Ok(_) => "the keyring returned another value".to_owned(),
        Err(e) => e.to_string(),
    };
    let path = token_file(config_dir, server);
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).create(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.expose().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| SecretError::Store {
        keyring: keyring_error,
        path: path.clone(),
        source,
    })?;
    Ok(Stored::File(path))
}

/// Resolves a secret reference from a policy file: `env:VAR`, `file:PATH` (trimmed) or
/// `keyring:SERVICE/NAME`.
pub fn resolve(reference: &str) -> Result<Token, SecretError> {
    if let Some(var) = reference.strip_prefix("env:") {
        return std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Token::new)
            .ok_or_else(|| SecretError::EnvUnset(var.to_owned()));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| Token::new(s.trim().to_owned()))
            .map_err(|source| SecretError::File {
                path: path.to_owned(),
                source,
            });
    }
    if let Some(rest) = reference.strip_prefix("keyring:") {
        let (service, name) = rest.split_once('/').ok_or(SecretError::KeyringForm)?;
        return keyring::Entry::new(service, name)
            .and_then(|e| e.get_password())
            .map(Token::new)
            .map_err(|source| SecretError::Keyring {
                reference: rest.to_owned(),
                source,
            });
    }
    Err(SecretError::Scheme)
}

/// A bearer token. `Debug` never shows it. It lives here, at the bottom of the layers, because
/// clients, sinks, configuration and the server all carry one.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

impl Token {
    pub fn new(s: String) -> Self {
        Token(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 the server stores in its place.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_reference_says_how_to_write_one() {
        for (reference, want) in [
            (
                "vault:x",
                "secrets are given as `env:VAR`, `file:PATH` or `keyring:SERVICE/NAME`",
            ),
            ("keyring:gate", "write `keyring:SERVICE/NAME`"),
            (
                "env:GATE_TEST_SURELY_UNSET_VARIABLE",
                "the environment variable `GATE_TEST_SURELY_UNSET_VARIABLE` is not set",
            ),
        ] {
            let e = resolve(reference).expect_err(reference);
            assert_eq!(e.to_string(), want, "{reference}");
        }
        let e = resolve("file:/nonexistent/gate-token").expect_err("missing file");
        assert!(
            matches!(&e, SecretError::File { path, .. } if path == "/nonexistent/gate-token"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("cannot read `/nonexistent/gate-token`: ")
        );
    }
}
