//! The HTTP API of `gate serve` (DESIGN §6, docs/openapi.yaml). Every route but `/healthz`,
//! `/metrics` and `/v1/server-key` authenticates, before it reads a body ([`Authed`]);
//! eligibility (groups, no self-approval, distinct approvers, expiry, the digest) is decided
//! here, in the store's transaction, never taken from the client. A change is made only if its
//! audit event is written in the same transaction (else 503), and a decided request goes out
//! with the server's signed statement.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::{self, AuthFailure, now_ms};
use super::eligibility::{Ballot, Cast, Eligibility, Vote, eligibility};
use super::store::{DecisionRow, Refusal, RequestRow, StoreError};
use crate::audit::record::EventInfo;
use crate::policy::{Clause, Decision, Requirement};
use crate::request::Payload;

/// An API error: status plus `{error, message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no request `{id}`"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such request")
            }
            StoreError::Refused(Refusal {
                status,
                code,
                message,
            }) => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                code,
                message,
            ),
            StoreError::Unrecorded(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unrecorded",
                format!("the server cannot write its audit log, so nothing was changed: {m}"),
            ),
            StoreError::Db(m) => {
                tracing::error!("store: {m}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not reach its database",
                )
            }
        }
    }
}

/// A JSON body whose errors name the field (`argv[0]: invalid type ...`) and whose size is
/// limited by the router (413 past 1 MiB).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        json_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(JsonBody(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                Err(ApiError::bad(if path == "." {
                    format!("bad JSON body: {inner}")
                } else {
                    format!("`{path}`: {inner}")
                }))
            }
        }
    }
}

/// 415 unless the body is declared JSON (or not declared at all).
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.is_empty() && !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send `Content-Type: application/json`",
        ));
    }
    Ok(())
}

/// A body that could not be read: 413 past the router's limit, else 400; always `{error, message}`.
pub(crate) fn body_rejection(e: BytesRejection) -> ApiError {
    let s = e.status();
    if s == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(s, "too_large", "the body is larger than 1 MiB")
    } else {
        ApiError::bad(e.body_text())
    }
}

/// A query string that does not fit (an unknown parameter...): 400 as `{error, message}`.
fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::bad(e.body_text())
}

/// The authenticated principal of a request.
pub fn principal(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match auth::principal_of(st.store.as_ref(), presented)? {
        Ok(p) => Ok(p),
        Err(f) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            f.message(),
        )),
    }
}

/// The authenticated principal, as an extractor. It comes before any body extractor in a
/// handler's arguments, so a request without a valid token gets its 401 before its body is
/// read or judged.
pub struct Authed(pub String);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        principal(st, &parts.headers).map(Authed)
    }
}

/// What a requester may claim about itself: recorded as context, never trusted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub ci: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub agent: Option<String>,
}

/// What the client's own policy said (it can only add to what the server demands).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientView {
    /// allow, confirm, approve or deny.
    pub decision: String,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub requirement: Option<Requirement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The client's request id (a UUID), so host and server logs name the same request;
    /// the server makes one when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The exact argv (the server redacts it before storing).
    pub argv: Vec<String>,
    pub cwd: String,
    /// The context environment the client captured.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub payload: Vec<Payload>,
    /// SHA-256 of the canonical {argv, cwd, env, payload}; checked.
    pub digest: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub claims: Claims,
    #[serde(default)]
    pub client: Option<ClientView>,
    /// Seconds the requester is willing to wait (the policy's timeout may be shorter).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The stored request document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestDoc {
    pub argv: Vec<String>,
    pub cwd: String,
    pub context: BTreeMap<String, String>,
    pub payload: Vec<Payload>,
    pub reason: Option<String>,
    pub claims: Claims,
    /// The stricter of the server's and the client's decision.
    pub decision: String,
    pub rules: Vec<String>,
    pub client_rules: Vec<String>,
    pub requirement: Requirement,
    /// Set when the server's policy denied the command outright.
    pub policy_denial: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ApprovalView {
    pub principal: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A request as the API shows it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: String,
    pub status: String,
    pub requester: String,
    pub created: String,
    pub expires: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    pub digest: String,
    #[serde(flatten)]
    pub doc: RequestDoc,
    pub approvals: Vec<ApprovalView>,
    /// Approvals still needed (0 once approved).
    pub needed: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<ApprovalView>,
    /// The signed decision statement (`gate-decision/v1`), once decided; see
    /// docs/audit-log-format.md.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
}

pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn doc_of(row: &RequestRow) -> Result<RequestDoc, ApiError> {
    serde_json::from_value(row.doc.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("stored request is unreadable: {e}"),
        )
    })
}

pub fn view(row: &RequestRow, decisions: &[DecisionRow]) -> Result<RequestView, ApiError> {
    let doc = doc_of(row)?;
    let approvals: Vec<ApprovalView> = decisions
        .iter()
        .filter(|d| d.kind == "approve")
        .map(|d| ApprovalView {
            principal: d.principal.clone(),
            at: rfc3339(d.at_ms),
            comment: d.comment.clone(),
        })
        .collect();
    let denial = decisions
        .iter()
        .find(|d| d.kind == "deny")
        .map(|d| ApprovalView {
            principal: d.principal.clone(),
            at: rfc3339(d.at_ms),
            comment: d.comment.clone(),
        })
        .or_else(|| {
            doc.policy_denial.as_ref().map(|m| ApprovalView {
                principal: "policy".into(),
                at: rfc3339(row.created_ms),
                comment: Some(m.clone()),
            })
        });
    let names: BTreeSet<String> = approvals.iter().map(|a| a.principal.clone()).collect();
    let needed = if row.status == "approved" {
        0
    } else {
        doc.requirement
            .min_approvals
            .saturating_sub(names.len() as u32)
            .max(u32::from(!doc.requirement.satisfied_by(&names)))
    };
    Ok(RequestView {
        id: row.id.clone(),
        status: row.status.clone(),
        requester: row.requester.clone(),
        created: rfc3339(row.created_ms),
        expires: rfc3339(row.expires_ms),
        decided: row.decided_ms.map(rfc3339),
        digest: row.digest.clone(),
        doc,
        approvals,
        needed,
        denial,
        statement: None,
    })
}

/// The view a client decides on: with the signed statement once the request is decided.
pub fn signed_view(
    st: &AppState,
    row: &RequestRow,
    decisions: &[DecisionRow],
) -> Result<RequestView, ApiError> {
    let mut v = view(row, decisions)?;
    v.statement = st.statement(row, decisions);
    Ok(v)
}

/// Combines the server's requirement with the client's: every clause of both must hold.
fn combine(
    server: Option<Requirement>,
    client: Option<&Requirement>,
    default_timeout: Duration,
) -> Requirement {
    let mut clauses: Vec<Clause> = Vec::new();
    let mut timeout = default_timeout;
    let mut allow_requester = true;
    let mut backend = None;
    for r in server.iter().chain(client) {
        clauses.extend(r.clauses.iter().cloned());
        timeout = timeout.min(r.timeout);
        allow_requester &= r.allow_requester;
        backend = backend.or(r.backend.clone());
    }
    if clauses.is_empty() {
        // The client asked for an approval the server's policy doesn't demand: one approval
        // from anyone but the requester.
        allow_requester = false;
        clauses.push(Clause {
            rule: "requested".into(),
            approvers: Vec::new(),
            eligible: None,
            min_approvals: 1,
            groups: Vec::new(),
        });
    }
    Requirement {
        min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
        allow_requester,
        timeout,
        backend,
        clauses,
    }
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    Authed(requester): Authed,
    JsonBody(body): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    if body.argv.is_empty() || body.argv[0].is_empty() {
        return Err(ApiError::bad("`argv`: needs at least the program"));
    }
    let expected = crate::request::digest(&body.argv, &body.cwd, &body.env, &body.payload);
    if expected != body.digest {
        return Err(ApiError::bad(
            "`digest`: does not match argv, cwd, env and payload",
        ));
    }
    let policy = &st.policy;
    let host = body.claims.host.clone().unwrap_or_default();
    let class = policy.classify_argv(
        &body.argv,
        &crate::policy::Place {
            env: &body.env,
            cwd: &body.cwd,
            user: &requester,
            host: &host,
            links: None,
        },
    );
    let client_decision = match body.client.as_ref().map(|c| c.decision.as_str()) {
        None => Decision::Approve,
        Some(d) => Decision::parse(d).ok_or_else(|| {
            ApiError::bad(format!(
                "`client.decision`: unknown decision `{d}` (allow, confirm, approve, deny)"
            ))
        })?,
    };
    let decision = class.decision.max(client_decision).max(Decision::Approve);
    let requirement = combine(
        class.requirement.clone(),
        body.client.as_ref().and_then(|c| c.requirement.as_ref()),
        policy.default_timeout,
    );
    let policy_denial = (class.decision == Decision::Deny).then(|| {
        let r = class.deciding().next();
        match r {
            Some(r) => format!(
                "denied by the server's rule `{}`{}",
                r.name,
                r.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            None => "denied by the server's policy default".to_owned(),
        }
    });
    let timeout = body
        .timeout_secs
        .map(Duration::from_secs)
        .map_or(requirement.timeout, |t| t.min(requirement.timeout));
    let now = now_ms();
    let doc = RequestDoc {
        argv: body.argv.iter().map(|a| policy.redact(a)).collect(),
        cwd: body.cwd.clone(),
        context: body
            .env
            .iter()
            .map(|(k, v)| (k.clone(), policy.redact(v)))
            .collect(),
        payload: body.payload.clone(),
        reason: body.reason.clone(),
        claims: body.claims.clone(),
        decision: decision.as_str().to_owned(),
        rules: class.matched.iter().map(|r| r.name.clone()).collect(),
        client_rules: body
            .client
            .as_ref()
            .map(|c| c.rules.clone())
            .unwrap_or_default(),
        requirement,
        policy_denial: policy_denial.clone(),
    };
    let id = match &body.id {
        Some(id) => uuid::Uuid::parse_str(id)
            .map_err(|_| ApiError::bad("`id`: not a UUID"))?
            .hyphenated()
            .to_string(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    if st.store.request_get(&id)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("request {id} already exists"),
        ));
    }
    let row = RequestRow {
        id,
        requester: requester.clone(),
        status: if policy_denial.is_some() {
            "denied".into()
        } else {
            "pending".into()
        },
        created_ms: now,
        expires_ms: now + timeout.as_millis() as i64,
        decided_ms: policy_denial.as_ref().map(|_| now),
        digest: body.digest.clone(),
        doc: serde_json::to_value(&doc).unwrap_or(Value::Null),
    };
    let (store, audit, row2, who) = (
        Arc::clone(&st.store),
        st.audit.clone(),
        row.clone(),
        requester.clone(),
    );
    tokio::task::spawn_blocking(move || {
        store.request_insert(&row2, &|r, _| {
            super::record_blocking(&audit, r, "request", Some(&who), None)
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    st.recorded(&row, "request", Some(&requester));
    let v = signed_view(&st, &row, &[])?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Option<String>,
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    Authed(_): Authed,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    let wait = match &q.wait {
        Some(w) => humantime::parse_duration(w)
            .map_err(|e| ApiError::bad(format!("`wait`: {e} (write e.g. `30s`)")))?
            .min(Duration::from_secs(60)),
        None => Duration::ZERO,
    };
    // Subscribe before reading, so a change between the read and the wait is not missed.
    let mut changes = st.changes.subscribe();
    let mut shutdown = st.shutdown.clone();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (row, decisions) = st
            .store
            .request_get(&id)?
            .ok_or_else(|| ApiError::not_found(&id))?;
        let now = tokio::time::Instant::now();
        if row.status != "pending" || now >= deadline || *shutdown.borrow() {
            return Ok(Json(signed_view(&st, &row, &decisions)?).into_response());
        }
        // Wait for a change to *this* request (or the deadline, or shutdown) before reading the
        // store again: with a thousand waiting polls, each change must not wake them all.
        loop {
            tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(changed_id) if changed_id != id => continue,
                    // Ours, or notifications fell behind (`Lagged`): read again.
                    _ => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub status: Option<String>,
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    Authed(_): Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    if let Some(s) = &q.status
        && !["pending", "approved", "denied", "expired", "cancelled"].contains(&s.as_str())
    {
        return Err(ApiError::bad(format!(
            "`status`: unknown status `{s}` (pending, approved, denied, expired, cancelled)"
        )));
    }
    let rows = st.store.request_list(q.status.as_deref())?;
    let views = rows
        .iter()
        .map(|(r, d)| view(r, d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "requests": views })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    pub reason: String,
}

/// Decides whether `principal` may approve or deny this request now, by [`eligibility`] with
/// the store's clock. Runs inside the store's transaction with every decision so far, the new
/// one last; returns the status the request moves to, if any.
fn evaluate(
    principal: &str,
    approve: bool,
    row: &RequestRow,
    all: &[DecisionRow],
) -> Result<Option<String>, Refusal> {
    let doc: RequestDoc = serde_json::from_value(row.doc.clone()).map_err(|e| Refusal {
        status: 500,
        code: "internal",
        message: format!("stored request is unreadable: {e}"),
    })?;
    let req = &doc.requirement;
    let ballot = Ballot {
        requester: &row.requester,
        status: &row.status,
        expires_ms: row.expires_ms,
        requirement: req,
    };
    let previous: Vec<Cast<'_>> = all[..all.len().saturating_sub(1)]
        .iter()
        .map(|d| Cast {
            principal: &d.principal,
            vote: if d.kind == "approve" {
                Vote::Approve
            } else {
                Vote::Deny
            },
        })
        .collect();
    let vote = if approve { Vote::Approve } else { Vote::Deny };
    let outcome = eligibility(&ballot, principal, vote, &previous, now_ms());
    let id = &row.id;
    let message = match outcome {
        Eligibility::Counts => return Ok(None),
        Eligibility::Completes => return Ok(Some("approved".into())),
        Eligibility::Denies => return Ok(Some("denied".into())),
        Eligibility::AlreadyDecided => format!("request {id} is already {}", row.status),
        Eligibility::Expired => format!("request {id} has expired"),
        Eligibility::SelfApproval => format!(
            "{principal} asked for request {id} and cannot decide it; another approver must"
        ),
        Eligibility::NotEligible => {
            let eligible = req
                .eligible()
                .map(|e| e.into_iter().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            format!(
                "{principal} is not an eligible approver of request {id} (eligible: {eligible})"
            )
        }
        Eligibility::Repeat => format!("{principal} has already decided request {id}"),
    };
    let (status, code) = outcome.refusal().unwrap_or((500, "internal"));
    Err(Refusal {
        status,
        code,
        message,
    })
}

async fn decide(
    st: Arc<AppState>,
    who: String,
    id: String,
    approve: bool,
    comment: Option<String>,
) -> Result<Response, ApiError> {
    let (row, all) = decide_as(&st, who, id, approve, comment).await?;
    Ok(Json(signed_view(&st, &row, &all)?).into_response())
}

/// Records `who`'s approval or denial of request `id` if [`evaluate`] accepts it (inside the
/// store's transaction), then records the event and wakes the long-polls. The one path every
/// decision takes, whether it comes through the API or the web page.
pub async fn decide_as(
    st: &AppState,
    who: String,
    id: String,
    approve: bool,
    comment: Option<String>,
) -> Result<(RequestRow, Vec<DecisionRow>), ApiError> {
    let d = DecisionRow {
        request_id: id.clone(),
        principal: who.clone(),
        kind: if approve { "approve" } else { "deny" }.into(),
        comment: comment.clone(),
        at_ms: now_ms(),
    };
    let store = Arc::clone(&st.store);
    let audit = st.audit.clone();
    let (who2, comment2) = (who.clone(), comment.clone());
    let kind = if approve { "approval" } else { "denial" };
    let (row, all) = tokio::task::spawn_blocking(move || {
        store.decide(
            &d,
            &|row, all| evaluate(&who2, approve, row, all),
            &|row, _| super::record_blocking(&audit, row, kind, Some(&who2), comment2.as_deref()),
        )
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found(&id),
        other => other.into(),
    })?;
    st.recorded(&row, kind, Some(&who));
    let _ = st.changes.send(id);
    Ok((row, all))
}

pub async fn approve(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The body is optional: `{}` or nothing at all approve without a comment.
    let body = body.map_err(body_rejection)?;
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        json_content_type(&headers)?;
        let de = &mut serde_json::Deserializer::from_slice(&body);
        let b: ApproveBody = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ApiError::bad(format!("`{path}`: {}", e.into_inner()))
        })?;
        b.comment
    };
    decide(st, who, id, true, comment).await
}

pub async fn deny(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DenyBody>,
) -> Result<Response, ApiError> {
    decide(st, who, id, false, Some(body.reason)).await
}

pub async fn cancel(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (row, _) = st
        .store
        .request_get(&id)?
        .ok_or_else(|| ApiError::not_found(&id))?;
    if row.requester != who {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_requester",
            format!("only {} can cancel request {id}", row.requester),
        ));
    }
    let (store, audit, id2, who2) = (
        Arc::clone(&st.store),
        st.audit.clone(),
        id.clone(),
        who.clone(),
    );
    let finished = tokio::task::spawn_blocking(move || {
        store.finish(&id2, "cancelled", now_ms(), &|row, _| {
            super::record_blocking(&audit, row, "cancellation", Some(&who2), None)
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    if !finished {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "decided",
            format!("request {id} is already {}", row.status),
        ));
    }
    let (row, all) = st
        .store
        .request_get(&id)?
        .ok_or_else(|| ApiError::not_found(&id))?;
    st.recorded(&row, "cancellation", Some(&who));
    let _ = st.changes.send(id);
    Ok(Json(signed_view(&st, &row, &all)?).into_response())
}

pub async fn me(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
) -> Result<Response, ApiError> {
    let groups: Vec<&String> = st
        .policy
        .groups
        .iter()
        .filter(|(_, m)| m.contains(&who))
        .map(|(g, _)| g)
        .collect();
    Ok(Json(json!({ "principal": who, "groups": groups })).into_response())
}

/// The key that signs this server's decision statements (and its checkpoints), in the note
/// `vkey` form a `kind: server` backend pins as `key:`. Public, so `gate login` can show it.
pub async fn server_key(State(st): State<Arc<AppState>>) -> Response {
    Json(json!({ "key": st.signer.verifier().to_vkey() })).into_response()
}

/// `ok`, or 503 naming what would make every decision fail: the database cannot be read, or
/// the audit log cannot be opened for appending or its file system is full.
pub async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = st.store.overdue(i64::MIN) {
        problems.push(format!("the database: {e}"));
    }
    if let Err(e) = crate::audit::AuditLog::new(&st.audit_path).check_writable() {
        problems.push(format!("the audit log: {e}"));
    }
    let dir = st
        .audit_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if let Ok(fs) = nix::sys::statvfs::statvfs(dir)
        && fs.blocks_available() == 0
    {
        problems.push(format!(
            "no space left for the audit log in {}",
            dir.display()
        ));
    }
    if problems.is_empty() {
        "ok\n".into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            problems.join("; "),
        )
        .into_response()
    }
}

pub async fn metrics(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let pending = st.store.request_list(Some("pending"))?.len();
    let body = format!(
        "# HELP gate_pending_requests Requests waiting for a decision.\n# TYPE gate_pending_requests gauge\ngate_pending_requests {pending}\n\
         # HELP gate_events_total Audit events recorded by this server.\n# TYPE gate_events_total counter\ngate_events_total {}\n",
        st.events.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// The event a status change is recorded as.
pub fn event_info(
    kind: &str,
    principal: Option<String>,
    status: &str,
    comment: Option<String>,
) -> EventInfo {
    EventInfo {
        kind: kind.to_owned(),
        principal,
        status: status.to_owned(),
        comment,
    }
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", f.message())
    }
}
