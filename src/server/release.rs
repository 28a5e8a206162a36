//! Credential release (issue 14 §5): `POST /v1/requests/{id}/release` hands the values of the
//! secrets the server's own rules name to the run they were approved for, once. The caller
//! must be the request's principal, name the request's digest, and come while the approval
//! is fresh; every secret is opened before anything is marked, so a failure releases nothing
//! and leaves the release unspent. The `released` event names variables and secrets, never a
//! value, and is durable before any value leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::approval::RequestStatus;
use crate::policy::ReleaseVar;
use crate::secrets::vault::{CHECK_NAME, Sealed, VaultKey};
use crate::server::AppState;
use crate::server::api::{Authed, doc_of};
use crate::server::error::{ApiError, JsonBody};
use crate::server::store::{Store, StoreError};

/// How long after its approval a request's secrets can still be fetched, when its own expiry
/// is sooner: the waiting client fetches them at once, so this only covers a slow network.
pub const RELEASE_GRACE_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The digest of the command the caller is about to run: must be the request's.
    pub digest: String,
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> ApiError {
    ApiError::new(status, code, message)
}

/// The `released` event's text: which variables get which secrets.
pub fn describe(vars: &[ReleaseVar]) -> String {
    vars.iter()
        .map(|v| format!("{}=secret:{}", v.env, v.secret))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn release(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReleaseBody>,
) -> Result<Response, ApiError> {
    // Only a whole id: a release is for exactly the request the caller waited on.
    let id = match crate::request::IdQuery::parse(&id) {
        Ok(crate::request::IdQuery::Full(id)) => id,
        _ => return Err(ApiError::not_found(&id)),
    };
    let (row, _) = st
        .store
        .request_get(&id)?
        .ok_or_else(|| ApiError::not_found(&id))?;
    if row.requester != who {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "not_requester",
            format!(
                "only {} can fetch what request {id} releases",
                row.requester
            ),
        ));
    }
    if body.digest != row.digest {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "digest_mismatch",
            format!("request {id} was approved for another command (digest differs)"),
        ));
    }
    match row.status {
        RequestStatus::Approved => {}
        RequestStatus::Pending => {
            return Err(refuse(
                StatusCode::CONFLICT,
                "not_approved",
                format!("request {id} is not approved yet"),
            ));
        }
        RequestStatus::Expired => {
            return Err(refuse(
                StatusCode::GONE,
                "expired",
                format!("request {id} has expired"),
            ));
        }
        RequestStatus::Denied | RequestStatus::Cancelled => {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "not_approved",
                format!("request {id} is {}", row.status),
            ));
        }
    }
    let now = st.clock.now_ms();
    let until = row
        .expires_ms
        .max(row.decided_ms.unwrap_or(row.created_ms) + RELEASE_GRACE_MS);
    if now > until {
        return Err(refuse(
            StatusCode::GONE,
            "expired",
            format!("the approval of request {id} is too old to release secrets to"),
        ));
    }
    let doc = doc_of(&row)?;
    if doc.release.is_empty() {
        return Err(refuse(
            StatusCode::CONFLICT,
            "nothing_to_release",
            format!("the server's policy releases no secret to request {id}"),
        ));
    }
    let Some(vault) = st.vault.clone() else {
        tracing::error!("request {id} needs secrets, but the server has no secret key");
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_secret_key",
            "the server has no secret key, so it cannot release secrets".into(),
        ));
    };
    // Open every value first: a missing or undecryptable secret releases nothing and leaves
    // the release unspent.
    let mut values = BTreeMap::new();
    for v in &doc.release {
        let stored = st.store.secret_get(&v.secret)?.ok_or_else(|| {
            tracing::error!(
                "request {id}: secret `{}` (for `{}`) is not stored",
                v.secret,
                v.env
            );
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "secret_missing",
                format!("the server holds no secret `{}`", v.secret),
            )
        })?;
        let value = vault
            .open_value(&v.secret, &Sealed(stored.sealed))
            .map_err(|e| {
                tracing::error!("request {id}: secret `{}`: {e}", v.secret);
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secret_undecryptable",
                    format!("the secret `{}` cannot be decrypted: {e}", v.secret),
                )
            })?;
        values.insert(v.env.clone(), value);
    }
    let (store, audit, id2, who2, text) = (
        Arc::clone(&st.store),
        st.audit.clone(),
        id.clone(),
        who.clone(),
        describe(&doc.release),
    );
    let released = tokio::task::spawn_blocking(move || {
        store.request_release(&id2, &who2, now, &|row, _| {
            crate::server::record_blocking(&audit, row, "released", Some(&who2), Some(&text))
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found(&id),
        other => other.into(),
    })?;
    if !released {
        return Err(refuse(
            StatusCode::CONFLICT,
            "already_released",
            format!("the secrets of request {id} were released already: one release per approval"),
        ));
    }
    st.recorded(&row, "released", Some(&who));
    let variables: BTreeMap<&str, &str> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "request_id": id, "variables": variables })),
    )
        .into_response())
}

/// What the start-up check found.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum KeyCheck {
    /// The key opens the database's check value (or the database had none, and now has one).
    Matches,
    /// No key and nothing that needs one.
    NoKey,
}

/// Why `gate serve` cannot start with this key (exit 78).
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "the secret key ({0}) does not decrypt the secrets in the database: it is not the key they were stored with"
    )]
    WrongKey(String),
    #[error("the database holds {0} secret(s), but no secret key is configured")]
    NoKeyForSecrets(usize),
    #[error("rule `{0}` of the policy releases secrets, but no secret key is configured")]
    NoKeyForPolicy(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Key(#[from] crate::secrets::vault::KeyError),
}

/// Checks `key` against the database's key check value before the server answers anyone, and
/// stores one when the database has none yet. With no key, a database holding secrets or a
/// policy naming them is an error: the server would only answer 503 to every approved run.
pub fn check_key(
    store: &dyn Store,
    key: Option<(&VaultKey, &str)>,
    policy: &crate::policy::Policy,
    now_ms: i64,
) -> Result<KeyCheck, KeyCheckError> {
    let rows = store.secret_list()?;
    let check = rows.iter().find(|r| r.name == CHECK_NAME);
    let Some((key, source)) = key else {
        let held = rows.iter().filter(|r| r.name != CHECK_NAME).count();
        if held > 0 {
            return Err(KeyCheckError::NoKeyForSecrets(held));
        }
        if let Some(r) = policy.rules.iter().find(|r| !r.release.is_empty()) {
            return Err(KeyCheckError::NoKeyForPolicy(r.name.clone()));
        }
        return Ok(KeyCheck::NoKey);
    };
    match check {
        Some(c) if key.matches(&Sealed(c.sealed.clone())) => Ok(KeyCheck::Matches),
        Some(_) => Err(KeyCheckError::WrongKey(source.to_owned())),
        None => {
            // Secrets stored before a check value existed: each must open under this key.
            for r in &rows {
                if key.open(&r.name, &Sealed(r.sealed.clone())).is_err() {
                    return Err(KeyCheckError::WrongKey(source.to_owned()));
                }
            }
            // Only if no other starter (a replica, `gate serve secret`) stored one meanwhile;
            // if one did, its key must be this one.
            if store.secret_put_new(CHECK_NAME, &key.check_value()?.0, now_ms)? {
                return Ok(KeyCheck::Matches);
            }
            match store.secret_get(CHECK_NAME)? {
                Some(c) if key.matches(&Sealed(c.sealed.clone())) => Ok(KeyCheck::Matches),
                _ => Err(KeyCheckError::WrongKey(source.to_owned())),
            }
        }
    }
}
