//! Browser sessions: a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept in the
//! store under the id's SHA-256 (the id itself is only in the browser), with the principal, the
//! hash of the token signed in with, the session's CSRF token and its expiry. Because they live
//! in the store, a restart of the server signs nobody out.

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

use crate::server::store::{SessionRow, Store, StoreError};

pub const SESSION_COOKIE: &str = "gate_session";
pub const SIGNIN_COOKIE: &str = "gate_signin";
/// How long a browser session lives.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a sign-in form stays usable.
pub const SIGNIN_TTL_SECS: i64 = 3600;
/// Sessions kept at most; past this, the ones closest to expiry are dropped.
const MAX_SESSIONS: usize = 10_000;

/// A live session, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The id from the cookie.
    pub id: String,
    pub principal: String,
    pub token_hash: String,
    pub csrf: String,
}

/// The outcome of the last decision, shown once after the redirect.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no randomness for a session id")]
    NoRandomness,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts a session for `principal`; returns its id (for the cookie).
pub fn create(
    store: &dyn Store,
    principal: String,
    token_hash: String,
    now_ms: i64,
) -> Result<String, SessionError> {
    let id = random_hex(32).ok_or(SessionError::NoRandomness)?;
    let csrf = random_hex(32).ok_or(SessionError::NoRandomness)?;
    let row = SessionRow {
        principal,
        token_hash,
        csrf,
        expires_ms: now_ms + SESSION_TTL_MS,
    };
    store.session_insert(&key_of(&id), &row, now_ms, MAX_SESSIONS)?;
    Ok(id)
}

/// The unexpired session with this id, if any.
pub fn get(store: &dyn Store, id: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
    Ok(store.session_get(&key_of(id), now_ms)?.map(|s| Session {
        id: id.to_owned(),
        principal: s.principal,
        token_hash: s.token_hash,
        csrf: s.csrf,
    }))
}

pub fn remove(store: &dyn Store, id: &str) -> Result<(), StoreError> {
    store.session_delete(&key_of(id))
}

pub fn set_flash(store: &dyn Store, id: &str, flash: &Flash) -> Result<(), StoreError> {
    store.session_set_flash(&key_of(id), flash.ok, &flash.text)
}

pub fn take_flash(store: &dyn Store, id: &str) -> Result<Option<Flash>, StoreError> {
    Ok(store
        .session_take_flash(&key_of(id))?
        .map(|(ok, text)| Flash { ok, text }))
}

fn key_of(session_id: &str) -> String {
    hex::encode(Sha256::digest(session_id.as_bytes()))
}

pub fn random_hex(n: usize) -> Option<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

/// The value of cookie `name`, if the request has a non-empty one.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    // Over HTTPS (`--tls-cert`), never sent back over plain HTTP.
    let secure = if crate::server::tls::serving() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("gate_invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::SqliteStore;

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gate_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, SIGNIN_COOKIE), None);
    }

    #[test]
    fn sessions_outlive_the_store_handle_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let now = 1_000_000;
        let id = {
            let store = SqliteStore::open(&db).unwrap();
            let id = create(&store, "alice".into(), "h".into(), now).unwrap();
            set_flash(
                &store,
                &id,
                &Flash {
                    ok: true,
                    text: "done".into(),
                },
            )
            .unwrap();
            id
        };
        // A new handle on the same database: a restarted server.
        let store = SqliteStore::open(&db).unwrap();
        let s = get(&store, &id, now + 1)
            .unwrap()
            .expect("the session survives");
        assert_eq!((s.principal.as_str(), s.csrf.len()), ("alice", 64));
        let f = take_flash(&store, &id)
            .unwrap()
            .expect("the flash survives");
        assert_eq!((f.ok, f.text.as_str()), (true, "done"));
        assert!(take_flash(&store, &id).unwrap().is_none(), "shown once");
        assert!(get(&store, "not-the-id", now).unwrap().is_none());
        assert!(
            get(&store, &id, now + SESSION_TTL_MS).unwrap().is_none(),
            "expired"
        );
        assert!(
            get(&store, &id, now).unwrap().is_none(),
            "an expired session is deleted"
        );
        let id = create(&store, "bob".into(), "h".into(), now).unwrap();
        remove(&store, &id).unwrap();
        assert!(get(&store, &id, now).unwrap().is_none(), "signed out");
    }
}
