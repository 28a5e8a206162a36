//! `gate serve secret set|list|rm` (issue 14 §5), and the secret key `gate serve` starts with:
//! found in `GATE_SECRET_KEY`, `--secret-key-file` or the keyring, and checked against the
//! database's key check value before anything is served. Values are read from stdin or a
//! hidden prompt, never from an argument; nothing here prints one.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use serde_json::json;

use crate::cli::SecretCommand;
use crate::config::Env;
use crate::error::Error;
use crate::output::Output;
use crate::secrets::vault::{self, CHECK_NAME, KeyError, KeySource, Sealed, VaultKey};
use crate::server::api::rfc3339;
use crate::server::release::{KeyCheck, check_key};

use crate::server::{Clock, SystemClock};

const KEY_HINT: &str = "set `GATE_SECRET_KEY` (64 hex characters) or pass `--secret-key-file FILE` with the key the secrets were stored with (docs/credentials.md)";

fn store_error(e: impl std::fmt::Display) -> Error {
    Error::config(e.to_string())
}

/// The secret key `gate serve` starts with, checked against the database at `db` (exit 78 when
/// it does not decrypt what is there, or is missing while secrets or `release:` rules exist).
pub fn server_key(
    out: &Output,
    db: &crate::server::store::Database,
    policy: &crate::policy::Policy,
    file: Option<PathBuf>,
) -> Result<Option<VaultKey>, Error> {
    let store = db
        .open()
        .map_err(|e| Error::config(format!("cannot open the database `{db}`: {e}")))?;
    let (key, unusable_keyring) = match VaultKey::load(file.as_deref(), false) {
        Ok((k, source)) => (Some((k, source)), None),
        Err(KeyError::Missing) => (None, None),
        // No variable, no file, and a keyring that does not answer: as if no key, but say why
        // if one turns out to be needed.
        Err(KeyError::Keyring(e)) => (None, Some(e)),
        Err(e) => return Err(Error::config_hint(e.to_string(), KEY_HINT)),
    };
    let now = SystemClock.now_ms();
    let source = key.as_ref().map(|(_, s)| s.to_string());
    match check_key(
        store.as_ref(),
        key.as_ref().map(|(k, _)| k).zip(source.as_deref()),
        policy,
        now,
    ) {
        Ok(KeyCheck::Matches) => {
            out.detail(&format!(
                "secret key from {}",
                source.as_deref().unwrap_or("?")
            ));
            Ok(key.map(|(k, _)| k))
        }
        Ok(KeyCheck::NoKey) => Ok(None),
        Err(e) => {
            let message = match unusable_keyring {
                Some(k) => format!("{e} (the keyring: {k})"),
                None => e.to_string(),
            };
            Err(Error::config_hint(message, KEY_HINT))
        }
    }
}

pub fn secret(env: &Env, out: &Output, cmd: SecretCommand) -> Result<i32, Error> {
    match cmd {
        SecretCommand::Set {
            db,
            secret_key_file,
            name,
        } => set(env, out, db, secret_key_file, &name),
        SecretCommand::List { db, json } => {
            let store = crate::commands::serve::open_existing(env, db)?;
            let rows: Vec<_> = store
                .secret_list()
                .map_err(store_error)?
                .into_iter()
                .filter(|r| r.name != CHECK_NAME)
                .collect();
            if json {
                for r in &rows {
                    out.data(
                        &json!({
                            "name": r.name,
                            "created": rfc3339(r.created_ms),
                            "updated": rfc3339(r.updated_ms),
                        })
                        .to_string(),
                    );
                }
            } else {
                let mut lines = vec![format!("{:<32} {:<25} UPDATED", "NAME", "CREATED")];
                for r in &rows {
                    lines.push(format!(
                        "{:<32} {:<25} {}",
                        r.name,
                        rfc3339(r.created_ms),
                        rfc3339(r.updated_ms)
                    ));
                }
                out.data(&lines.join("\n"));
            }
            Ok(0)
        }
        SecretCommand::Rm { db, name } => {
            let store = crate::commands::serve::open_existing(env, db)?;
            if !vault::valid_name(&name) {
                return Err(Error::Usage(format!("`{name}` is not a secret name")));
            }
            if store.secret_delete(&name).map_err(store_error)? {
                out.info(&format!("deleted secret `{name}`"));
                Ok(0)
            } else {
                out.error(&format!("no secret `{name}`"));
                out.hint("`gate serve secret list` shows the names");
                Ok(1)
            }
        }
    }
}

fn set(
    env: &Env,
    out: &Output,
    db: Option<PathBuf>,
    secret_key_file: Option<PathBuf>,
    name: &str,
) -> Result<i32, Error> {
    if !vault::valid_name(name) {
        return Err(Error::Usage(format!(
            "`{name}` is not a secret name: use 1 to 128 letters, digits, `.`, `_` or `-`, not starting with `.` or `-`"
        )));
    }
    let raw = if std::io::stdin().is_terminal() {
        // A hidden prompt: the value never echoes to the terminal (or its scrollback).
        dialoguer::Password::new()
            .with_prompt(format!("value of secret `{name}`"))
            .interact()
            .map_err(|e| Error::Usage(format!("cannot read the value: {e}")))?
            .into_bytes()
    } else {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| Error::Usage(format!("cannot read the value from stdin: {e}")))?;
        b
    };
    let value = vault::value_from_input(raw).map_err(|e| {
        Error::Usage(format!(
            "secret `{name}`: {e}; pipe the value in, or type it at the prompt"
        ))
    })?;
    let store = crate::commands::serve::open(env, db)?;
    let check = store.secret_get(CHECK_NAME).map_err(store_error)?;
    // A new keyring key only for a database that has none yet: with secrets already sealed
    // under another key, a fresh one would only make them unreadable.
    let (key, source) = VaultKey::load(secret_key_file.as_deref(), check.is_none())
        .map_err(|e| Error::config_hint(e.to_string(), KEY_HINT))?;
    let now = SystemClock.now_ms();
    match check {
        Some(c) if !key.matches(&Sealed(c.sealed.clone())) => {
            return Err(Error::config_hint(
                format!(
                    "the secret key ({source}) is not the key this database's secrets are stored with"
                ),
                KEY_HINT,
            ));
        }
        Some(_) => {}
        None => {
            let sealed = key
                .check_value()
                .map_err(|e| Error::config(e.to_string()))?;
            store
                .secret_put(CHECK_NAME, &sealed.0, now)
                .map_err(store_error)?;
        }
    }
    let sealed = key
        .seal(name, value.expose().as_bytes())
        .map_err(|e| Error::config(e.to_string()))?;
    store
        .secret_put(name, &sealed.0, now)
        .map_err(store_error)?;
    if source == KeySource::KeyringCreated {
        out.info(&format!(
            "made a new secret key in {source}; keep a copy somewhere safe: without it no stored secret can be read"
        ));
    }
    out.info(&format!(
        "stored secret `{name}` (sealed with the key from {source})"
    ));
    Ok(0)
}
