//! API tokens: random, shown once, stored only as their SHA-256. A token names a principal;
//! everything the server decides about who asks or approves comes from here, never from the
//! request body.

use sha2::{Digest, Sha256};

use super::store::{Store, StoreError, TokenRow};

pub use crate::secrets::Token;

pub fn hash_token(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| StoreError::Db(format!("no randomness: {e}")))?;
    Ok(hex::encode(b))
}

/// Makes a token for `principal` at `now_ms`; returns the row (stored) and the secret (to
/// show once).
pub fn issue(
    store: &dyn Store,
    principal: &str,
    expires_ms: Option<i64>,
    now_ms: i64,
) -> Result<(TokenRow, Token), StoreError> {
    let id = random_hex(4)?;
    let secret = Token::new(format!("gate_{id}_{}", random_hex(24)?));
    let row = TokenRow {
        id,
        principal: principal.to_owned(),
        hash: secret.hash(),
        created_ms: now_ms,
        expires_ms,
        revoked_ms: None,
    };
    store.token_insert(&row)?;
    Ok((row, secret))
}

/// Why a token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Unknown,
    Revoked,
    Expired,
}

impl AuthFailure {
    pub fn message(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing `Authorization: Bearer <token>`",
            AuthFailure::Unknown => "unknown token",
            AuthFailure::Revoked => "this token was revoked",
            AuthFailure::Expired => "this token has expired",
        }
    }
}

/// The principal behind a presented token at `now_ms`.
pub fn principal_of(
    store: &dyn Store,
    presented: Option<&str>,
    now_ms: i64,
) -> Result<Result<String, AuthFailure>, StoreError> {
    let Some(t) = presented.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Err(AuthFailure::Missing));
    };
    let Some(row) = store.token_by_hash(&hash_token(t))? else {
        return Ok(Err(AuthFailure::Unknown));
    };
    if row.revoked_ms.is_some() {
        return Ok(Err(AuthFailure::Revoked));
    }
    if row.expires_ms.is_some_and(|e| e <= now_ms) {
        return Ok(Err(AuthFailure::Expired));
    }
    Ok(Ok(row.principal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clock::{Clock, ManualClock};
    use crate::server::store::SqliteStore;

    #[test]
    fn a_token_expires_at_its_instant_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("server.db")).unwrap();
        let clock = ManualClock::at(1_700_000_000_000);
        let (row, secret) = issue(
            &store,
            "alice",
            Some(clock.now_ms() + 60_000),
            clock.now_ms(),
        )
        .unwrap();
        assert_eq!(row.created_ms, clock.now_ms());
        let who =
            |c: &ManualClock| principal_of(&store, Some(secret.expose()), c.now_ms()).unwrap();
        assert_eq!(who(&clock), Ok("alice".to_owned()));
        clock.advance(59_999);
        assert_eq!(who(&clock), Ok("alice".to_owned()), "a millisecond before");
        clock.advance(1);
        assert_eq!(who(&clock), Err(AuthFailure::Expired), "at the instant");
        assert_eq!(
            principal_of(&store, Some("gate_nope"), clock.now_ms()).unwrap(),
            Err(AuthFailure::Unknown)
        );
        assert_eq!(
            principal_of(&store, Some("  "), clock.now_ms()).unwrap(),
            Err(AuthFailure::Missing)
        );
    }

    #[test]
    fn a_revoked_token_is_refused_whatever_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("server.db")).unwrap();
        let clock = ManualClock::at(5_000);
        let (row, secret) = issue(&store, "bob", None, clock.now_ms()).unwrap();
        assert!(store.token_revoke(&row.id, clock.now_ms()).unwrap());
        clock.advance(-4_000);
        assert_eq!(
            principal_of(&store, Some(secret.expose()), clock.now_ms()).unwrap(),
            Err(AuthFailure::Revoked)
        );
    }
}
