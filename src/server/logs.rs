//! The server as witness of hosts' audit logs (DESIGN §6, §8): `POST /v1/logs/{log_id}/records`
//! takes NDJSON records, checks each one's hash and its link to the head the server holds, takes
//! a resend of what it has as a no-op, and refuses (409, with the evidence, recorded) a different
//! record at a seq it holds, a gap, or a signed checkpoint that is shorter than what it holds or
//! disagrees with it. The host's checkpoint comes in the `Gate-Checkpoint` header (base64), is
//! checked against the key the log's genesis named when the server first saw it, and comes back
//! cosigned by the server's key.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::Authed;
use super::error::ApiError;
use crate::audit::note::{Note, NoteVerifier};
use crate::audit::record::GENESIS_PREV;
use crate::audit::verify::{CheckedRecord, check_record_line};

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn valid_log_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

pub async fn ingest(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    headers: HeaderMap,
    Path(log_id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(super::error::body_rejection)?;
    if !valid_log_id(&log_id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`log_id`: 32 lowercase hex digits",
        ));
    }
    let st2 = Arc::clone(&st);
    let who2 = who.clone();
    let log_id2 = log_id.clone();
    let checkpoint = headers
        .get("gate-checkpoint")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = tokio::task::spawn_blocking(move || {
        ingest_blocking(&st2, &who2, &log_id2, &body, checkpoint.as_deref())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match result {
        Ok(v) => Ok(Json(v).into_response()),
        Err(e) => {
            if e.status == StatusCode::CONFLICT {
                // Refusals of a host's history are evidence: keep them.
                let detail = format!("{}: {}", e.code, e.message);
                let _ = st
                    .store
                    .log_conflict(&log_id, st.clock.now_ms(), &who, &detail);
                st.record_log_event(&log_id, "log_conflict", &who, &detail)
                    .await;
            }
            Err(e)
        }
    }
}

fn ingest_blocking(
    st: &AppState,
    who: &str,
    log_id: &str,
    body: &[u8],
    checkpoint: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let mut records = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let r = check_record_line(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
        if r.log_id != log_id {
            return Err(bad(format!(
                "line {}: belongs to log {}, not {log_id}",
                i + 1,
                r.log_id
            )));
        }
        let last: Option<&(CheckedRecord, &[u8])> = records.last();
        if let Some((prev, _)) = last
            && r.seq != prev.seq + 1
        {
            return Err(bad(format!(
                "line {}: seq {} does not follow {}",
                i + 1,
                r.seq,
                prev.seq
            )));
        }
        records.push((r, line));
    }
    for _attempt in 0..5 {
        let held = st.store.log_get(log_id)?;
        // A log is written by the principal that shipped its genesis: another host's token can
        // neither append to it nor poison the witnessed copy.
        if let Some(owner) = held.as_ref().and_then(|h| h.owner.as_deref())
            && owner != who
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_owner",
                format!("log {log_id} is shipped by {owner}, not {who}"),
            ));
        }
        let (count, head, vkey) = match &held {
            Some(h) => (h.count, h.head.clone(), h.vkey.clone()),
            None => (0, GENESIS_PREV.to_owned(), None),
        };
        let mut duplicates = 0u64;
        let mut fresh = Vec::new();
        let mut new_vkey = None;
        let mut prev = head.clone();
        for (r, line) in &records {
            if r.seq < count {
                let at = st.store.log_hash_at(log_id, r.seq)?;
                if at.as_deref() != Some(r.hash.as_str()) {
                    return Err(conflict(
                        "fork",
                        format!(
                            "seq {} differs from the record the server holds (held {}, sent {}): the log was rewritten",
                            r.seq,
                            at.unwrap_or_default(),
                            r.hash
                        ),
                    ));
                }
                duplicates += 1;
                continue;
            }
            let expected = count + fresh.len() as u64;
            if r.seq != expected {
                return Err(conflict(
                    "gap",
                    format!(
                        "seq {} sent, but the server holds {count} records: send from seq {expected}",
                        r.seq
                    ),
                ));
            }
            if r.prev != prev {
                return Err(conflict(
                    "fork",
                    format!(
                        "seq {} does not link to the head the server holds ({})",
                        r.seq, prev
                    ),
                ));
            }
            if r.seq == 0 {
                if r.kind != "genesis" {
                    return Err(conflict("fork", "seq 0 is not a genesis record".into()));
                }
                new_vkey = r.genesis_key.clone();
            }
            prev = r.hash.clone();
            fresh.push((
                r.seq,
                r.hash.clone(),
                String::from_utf8_lossy(line).into_owned(),
            ));
        }
        let new_count = count + fresh.len() as u64;
        let key = vkey.clone().or(new_vkey.clone());
        if !fresh.is_empty() && checkpoint.is_none() {
            return Err(bad(
                "new records need the host's signed checkpoint in `Gate-Checkpoint`".into(),
            ));
        }
        // The signed checkpoint must not be shorter than, or disagree with, what is held.
        let mut cosigned = None;
        if let Some(b64) = checkpoint {
            let note_text = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| bad("`Gate-Checkpoint`: not base64 of a UTF-8 note".into()))?;
            let note =
                Note::parse(&note_text).map_err(|e| bad(format!("`Gate-Checkpoint`: {e}")))?;
            let Some(vk) = key.as_deref() else {
                return Err(conflict(
                    "unknown_key",
                    "the server holds no key for this log (its genesis names none)".into(),
                ));
            };
            let verifier =
                NoteVerifier::parse(vk).map_err(|e| bad(format!("the log's key: {e}")))?;
            note.verify(&verifier).map_err(|e| {
                conflict(
                    "bad_checkpoint",
                    format!("the checkpoint is not signed by the log's key: {e}"),
                )
            })?;
            let mut lines = note.text.lines();
            let (origin, cp_count, cp_head) = (
                lines.next().unwrap_or(""),
                lines.next().unwrap_or(""),
                lines.next().unwrap_or(""),
            );
            if origin != format!("gate/{log_id}") {
                return Err(bad(format!("`Gate-Checkpoint` is for `{origin}`")));
            }
            let cp_count: u64 = cp_count
                .parse()
                .map_err(|_| bad("`Gate-Checkpoint`: bad count".into()))?;
            let cp_head = base64::engine::general_purpose::STANDARD
                .decode(cp_head)
                .map(hex::encode)
                .unwrap_or_default();
            if cp_count < count {
                return Err(conflict(
                    "shorter_history",
                    format!(
                        "the host's signed checkpoint covers {cp_count} records, but the server holds {count}: the host's log was truncated or rolled back"
                    ),
                ));
            }
            if cp_count >= 1 && cp_count <= new_count {
                let at = if cp_count > count {
                    fresh
                        .get((cp_count - 1 - count) as usize)
                        .map(|(_, h, _)| h.clone())
                } else {
                    st.store.log_hash_at(log_id, cp_count - 1)?
                };
                if at.as_deref() != Some(cp_head.as_str()) {
                    return Err(conflict(
                        "fork",
                        format!(
                            "the signed checkpoint's head at {cp_count} records differs from the records"
                        ),
                    ));
                }
                let signer = &st.signer;
                cosigned = Some(format!("{note_text}{}", signer.signature_line(&note.text)));
            }
        }
        if !st.store.log_append(
            log_id,
            count,
            &fresh,
            new_vkey.as_deref(),
            who,
            st.clock.now_ms(),
        )? {
            continue; // another push moved the head: look again
        }
        if let Some(c) = &cosigned {
            st.store.log_set_cosigned(log_id, c)?;
        }
        let head = fresh.last().map(|(_, h, _)| h.clone()).unwrap_or(head);
        return Ok(json!({
            "log_id": log_id,
            "count": new_count,
            "head": head,
            "accepted": fresh.len(),
            "duplicates": duplicates,
            "cosigned": cosigned,
            "pushed_by": who,
        }));
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the log kept changing; try again",
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromQuery {
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

pub async fn records(
    State(st): State<Arc<AppState>>,
    Authed(_): Authed,
    Path(log_id): Path<String>,
    q: Result<Query<FromQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    if st.store.log_get(&log_id)?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no log `{log_id}`"),
        ));
    }
    let lines = st.store.log_records(
        &log_id,
        q.from.unwrap_or(0),
        q.limit.unwrap_or(10_000).min(100_000),
    )?;
    let mut body = String::new();
    for l in lines {
        body.push_str(&l);
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

pub async fn head(
    State(st): State<Arc<AppState>>,
    Authed(_): Authed,
    Path(log_id): Path<String>,
) -> Result<Response, ApiError> {
    let row = st.store.log_get(&log_id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no log `{log_id}`"),
        )
    })?;
    Ok(Json(json!({ "log_id": row.log_id, "count": row.count, "head": row.head, "vkey": row.vkey, "cosigned": row.cosigned })).into_response())
}
