//! API tokens: random, shown once, stored only as their SHA-256. A token names a principal;
//! everything the server decides about who asks or approves comes from here, never from the
//! request body.

use sha2::{Digest, Sha256};

use super::store::{Store, StoreError, TokenRow};

pub use crate::secrets::Token;

pub fn hash_token(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| StoreError::Db(format!("no randomness: {e}")))?;
    Ok(hex::encode(b))
}

/// Makes a token for `principal`; returns the row (stored) and the secret (to show once).
pub fn issue(
    store: &dyn Store,
    principal: &str,
    expires_ms: Option<i64>,
) -> Result<(TokenRow, Token), StoreError> {
    let id = random_hex(4)?;
    let secret = Token::new(format!("gate_{id}_{}", random_hex(24)?));
    let row = TokenRow {
        id,
        principal: principal.to_owned(),
        hash: secret.hash(),
        created_ms: now_ms(),
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

/// The principal behind a presented token.
pub fn principal_of(
    store: &dyn Store,
    presented: Option<&str>,
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
    if row.expires_ms.is_some_and(|e| e <= now_ms()) {
        return Ok(Err(AuthFailure::Expired));
    }
    Ok(Ok(row.principal))
}
