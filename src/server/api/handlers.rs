//! The API's handlers: create, read, list, approve, deny, cancel, and the health routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::approval::RequestStatus;
use crate::policy::{Clause, Decision, Requirement};
use crate::server::AppState;
use crate::server::auth;
use crate::server::eligibility::{Ballot, Cast, Eligibility, Vote, eligibility};
use crate::server::store::{DecisionRow, Refusal, RequestRow, StoreError};

use super::wire::*;
use crate::server::error::{
    ApiError, JsonBody, body_rejection, json_content_type, query_rejection,
};

/// The authenticated principal of a request.
pub fn principal(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match auth::principal_of(st.store.as_ref(), presented, st.clock.now_ms())? {
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

/// Combines the server's requirement with the client's: every clause of both must hold.
fn combine(
    server: Option<Requirement>,
    client: Option<&Requirement>,
    default_timeout: Duration,
) -> Requirement {
    let mut clauses: Vec<Clause> = Vec::new();
    // The server's own policy sets the longest wait: the timeout of its matched rules (their
    // `timeout`, or its `defaults.timeout` for a rule without one), or its default when no rule
    // of it matched. The client's requirement can only shorten it. (Starting from the default
    // and taking the minimum cut a 30m rule to a 15m default: issue 11 §3.)
    let mut timeout = server.as_ref().map_or(default_timeout, |r| r.timeout);
    let mut allow_requester = true;
    let mut backend = None;
    // Reuse only when both sides' requirements allow it (the shortest window): the server's
    // policy can forbid or shorten what the client's allows, never lengthen it. The server
    // alone answers the lookup for an earlier approval (`GET /v1/requests?digest=`).
    let reuse = crate::policy::combined_reuse(server.iter().chain(client).map(|r| r.reuse));
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
        reuse,
    }
}

/// The last instant the API can show (the end of year 9999): a policy's timeout of a million
/// years must not overflow the clock or make the request's `expires` unprintable.
const LAST_EXPIRY_MS: i64 = 253_402_300_799_000;

/// When a request created at `now_ms` expires: after the server's `allowed` wait, or sooner
/// when the requester asks for less (`timeout_secs`, any size; it never lengthens the wait).
fn expiry_ms(now_ms: i64, allowed: Duration, timeout_secs: Option<u64>) -> i64 {
    let wait = timeout_secs
        .map(Duration::from_secs)
        .map_or(allowed, |t| t.min(allowed));
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    now_ms
        .saturating_add(wait_ms)
        .min(LAST_EXPIRY_MS.max(now_ms))
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    Authed(requester): Authed,
    JsonBody(body): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    if body.argv.is_empty() || body.argv[0].is_empty() {
        return Err(ApiError::bad("`argv`: needs at least the program"));
    }
    if body
        .executable
        .as_deref()
        .is_some_and(|x| !x.starts_with('/'))
    {
        return Err(ApiError::bad(
            "`executable`: must be the absolute path the program was resolved to",
        ));
    }
    let expected = crate::request::command_digest(
        &body.argv,
        &body.cwd,
        &body.env,
        &body.payload,
        body.executable.as_deref(),
    );
    if expected != body.digest {
        return Err(ApiError::bad(
            "`digest`: does not match argv, cwd, env, payload and executable",
        ));
    }
    // A presented ID token is checked before anything else is decided: one that fails any
    // check refuses the request (recorded), never quietly downgrades it to claims.
    let now_secs = st.clock.now_ms().div_euclid(1000);
    let ci_verified = match st
        .oidc
        .check(body.ci_token.as_ref().map(|t| t.expose()), now_secs)
        .await
    {
        crate::server::oidc::TokenCheck::Absent => None,
        crate::server::oidc::TokenCheck::Verified(v) => Some(v),
        crate::server::oidc::TokenCheck::Refused(why) => {
            // The id is the requester's word: recorded only when it is a well-formed UUID.
            let id = body
                .id
                .as_deref()
                .and_then(|i| uuid::Uuid::parse_str(i).ok())
                .map(|u| u.hyphenated().to_string());
            st.record_ci_refusal(id.as_deref(), &requester, &why).await;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ci_token_refused",
                format!("the CI ID token is refused: {why}"),
            ));
        }
    };
    let policy = &st.policy;
    let host = body.claims.host.clone().unwrap_or_default();
    let class = policy.classify_argv_in(
        &body.argv,
        &crate::policy::Place {
            env: &body.env,
            cwd: &body.cwd,
            user: &requester,
            host: &host,
            links: None,
        },
        crate::policy::ci::CiContext::Server(ci_verified.as_ref()),
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
    let now = st.clock.now_ms();
    let expires_ms = expiry_ms(now, requirement.timeout, body.timeout_secs);
    let doc = RequestDoc {
        argv: body.argv.iter().map(|a| policy.redact(a)).collect(),
        cwd: body.cwd.clone(),
        executable: body.executable.clone(),
        context: body
            .env
            .iter()
            .map(|(k, v)| (k.clone(), policy.redact(v)))
            .collect(),
        payload: body.payload.clone(),
        reason: body.reason.clone(),
        claims: body.claims.clone(),
        ci_verified,
        decision: decision.as_str().to_owned(),
        rules: class.matched.iter().map(|r| r.name.clone()).collect(),
        matched: class
            .matched
            .iter()
            .map(|r| MatchedRule {
                name: r.name.clone(),
                decision: r.decision.as_str().to_owned(),
                risk: r.risk.clone(),
                category: r.category.clone(),
            })
            .collect(),
        client_rules: body
            .client
            .as_ref()
            .map(|c| c.rules.clone())
            .unwrap_or_default(),
        requirement,
        policy_denial: policy_denial.clone(),
        // Only the server's own rules name secrets; the client's policy never adds one.
        release: crate::policy::release_of(&class.matched),
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
            RequestStatus::Denied
        } else {
            RequestStatus::Pending
        },
        created_ms: now,
        expires_ms,
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
            crate::server::record_blocking(&audit, r, "request", Some(&who), None)
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    st.recorded(&row, "request", Some(&requester));
    if row.status.is_pending() {
        // Where the server's own policy routes it (never the client's backend names).
        let routed = class
            .requirement
            .as_ref()
            .and_then(|r| r.backend.as_deref());
        crate::server::chat::request_created(&st, &row.id, routed);
    }
    let v = signed_view(&st, &row, &[])?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// At most this many requests are named when a part of an id matches several.
const MAX_CANDIDATES: usize = 10;

/// The request that `typed` (a path's `{id}`) names: a whole id as it is (any status), or the
/// one pending request a part of an id ([`IdQuery`]) matches — short ids are for acting on what
/// waits; a decided request is named by its whole id. A part is looked up among exactly the
/// pending requests the caller could list with `GET /v1/requests?status=pending` — every
/// authenticated principal lists every request, so no lookup reveals a request its caller could
/// not otherwise see. None is 404 `not_found`; several is 409 `ambiguous`, naming them.
async fn resolve(st: &AppState, typed: &str) -> Result<String, ApiError> {
    use crate::request::IdQuery;
    let part = match IdQuery::parse(typed) {
        Ok(IdQuery::Full(id)) => return Ok(id),
        Ok(IdQuery::Part(p)) => p,
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                e.to_string(),
            ));
        }
    };
    let store = Arc::clone(&st.store);
    let p = part.clone();
    let ids = tokio::task::spawn_blocking(move || {
        store.request_ids_matching(&p, Some(RequestStatus::Pending), MAX_CANDIDATES + 1)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    match ids.as_slice() {
        [] => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no pending request matches `{part}`"),
        )),
        [one] => Ok(one.clone()),
        many => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous",
            format!(
                "`{part}` matches {} pending requests: {}{}; give more of the id",
                if many.len() > MAX_CANDIDATES {
                    format!("more than {MAX_CANDIDATES}")
                } else {
                    many.len().to_string()
                },
                many[..many.len().min(MAX_CANDIDATES)].join(", "),
                if many.len() > MAX_CANDIDATES {
                    ", ..."
                } else {
                    ""
                }
            ),
        )),
    }
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    Authed(_): Authed,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    let id = resolve(&st, &id).await?;
    let wait = match &q.wait {
        Some(w) => humantime::parse_duration(w)
            .map_err(|e| ApiError::bad(format!("`wait`: {e} (write e.g. `30s`)")))?
            .min(crate::server::listen::MAX_LONG_POLL),
        None => Duration::ZERO,
    };
    // Subscribe before reading, so a change between the read and the wait is not missed.
    let mut changes = st.changes.subscribe();
    let mut shutdown = st.shutdown.clone();
    let deadline = tokio::time::Instant::now() + wait;
    // The poll answers on every new approval, not only on a final state, so a waiting
    // requester sees `1/2` as it happens. `seen` is how many approvals the caller already
    // showed: one that came between its last answer and this poll answers at once.
    let mut seen = q.seen;
    loop {
        let (row, decisions) = st
            .store
            .request_get(&id)?
            .ok_or_else(|| ApiError::not_found(&id))?;
        let approvals = decisions.iter().filter(|d| d.kind == "approve").count();
        let known = *seen.get_or_insert(approvals);
        let now = tokio::time::Instant::now();
        if !row.status.is_pending() || approvals != known || now >= deadline || *shutdown.borrow() {
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

pub async fn list(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    if let Some(digest) = &q.digest {
        return reusable(&st, &who, digest);
    }
    let status = match q.status.as_deref().map(|s| (s, RequestStatus::parse(s))) {
        None => None,
        Some((_, Some(status))) => Some(status),
        Some((s, None)) => {
            return Err(ApiError::bad(format!(
                "`status`: unknown status `{s}` (pending, approved, denied, expired, cancelled)"
            )));
        }
    };
    let rows = st.store.request_list(status)?;
    let views = rows
        .iter()
        .map(|(r, d)| view(r, d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "requests": views })).into_response())
}

/// `GET /v1/requests?digest=D`: the approvals the caller may reuse for a command of digest `D`
/// — its own requests (never another principal's), approved, of exactly that digest, whose
/// combined requirement (both policies) set `reuse` and whose last approval is within it now.
/// The server decides the window; the client still checks each signed statement.
fn reusable(st: &AppState, who: &str, digest: &str) -> Result<Response, ApiError> {
    let now = st.clock.now_ms();
    // The newest few are enough: the window runs from the last approval.
    let rows = st.store.request_approved_of(who, digest, 20)?;
    let mut views = Vec::new();
    for (r, d) in &rows {
        if r.requester != who || r.digest != digest || r.status != RequestStatus::Approved {
            continue;
        }
        let Ok(doc) = serde_json::from_value::<RequestDoc>(r.doc.clone()) else {
            continue;
        };
        let Some(window) = doc.requirement.reuse else {
            continue;
        };
        let approved_at = d
            .iter()
            .filter(|x| x.kind == "approve")
            .map(|x| x.at_ms)
            .max()
            .or(r.decided_ms);
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        if approved_at.is_some_and(|at| at <= now && now - at <= window_ms) {
            views.push(signed_view(st, r, d)?);
        }
    }
    Ok(Json(json!({ "requests": views })).into_response())
}

/// Decides whether `principal` may approve or deny this request now, by [`eligibility`] with
/// the store's clock. Runs inside the store's transaction with every decision so far, the new
/// one last; returns the status the request moves to, if any.
/// Judges a vote cast at `now_ms` (the instant the decision row records).
fn evaluate(
    principal: &str,
    approve: bool,
    row: &RequestRow,
    all: &[DecisionRow],
    now_ms: i64,
) -> Result<Option<RequestStatus>, Refusal> {
    let doc: RequestDoc = serde_json::from_value(row.doc.clone()).map_err(|e| Refusal {
        status: 500,
        code: "internal",
        message: format!("stored request is unreadable: {e}"),
    })?;
    let req = &doc.requirement;
    let ballot = Ballot {
        requester: &row.requester,
        status: row.status,
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
    let outcome = eligibility(&ballot, principal, vote, &previous, now_ms);
    let id = &row.id;
    let message = match outcome {
        Eligibility::Counts => return Ok(None),
        Eligibility::Completes => return Ok(Some(RequestStatus::Approved)),
        Eligibility::Denies => return Ok(Some(RequestStatus::Denied)),
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
        at_ms: st.clock.now_ms(),
    };
    let store = Arc::clone(&st.store);
    let audit = st.audit.clone();
    let (who2, comment2) = (who.clone(), comment.clone());
    let kind = if approve { "approval" } else { "denial" };
    let at = d.at_ms;
    let (row, all) = tokio::task::spawn_blocking(move || {
        store.decide(
            &d,
            &|row, all| evaluate(&who2, approve, row, all, at),
            &|row, _| {
                crate::server::record_blocking(&audit, row, kind, Some(&who2), comment2.as_deref())
            },
        )
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found(&id),
        other => other.into(),
    })?;
    st.recorded(&row, kind, Some(&who));
    // The stored id, which the long-polls wait on, whatever form of it the caller used.
    let _ = st.changes.send(row.id.clone());
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
    let id = resolve(&st, &id).await?;
    decide(st, who, id, true, comment).await
}

pub async fn deny(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DenyBody>,
) -> Result<Response, ApiError> {
    let id = resolve(&st, &id).await?;
    decide(st, who, id, false, Some(body.reason)).await
}

pub async fn cancel(
    State(st): State<Arc<AppState>>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = resolve(&st, &id).await?;
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
    let now = st.clock.now_ms();
    let finished = tokio::task::spawn_blocking(move || {
        store.finish(&id2, RequestStatus::Cancelled, now, &|row, _| {
            crate::server::record_blocking(&audit, row, "cancellation", Some(&who2), None)
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
    let _ = st.changes.send(row.id.clone());
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
    let store = Arc::clone(&st.store);
    match tokio::task::spawn_blocking(move || store.check_writable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("the database: {e}")),
        Err(e) => problems.push(format!("the database check failed: {e}")),
    }
    // With PostgreSQL the log is in the database the check above reached.
    if !st.audit.in_database()
        && let Err(e) = crate::audit::AuditLog::new(&st.audit_path).check_writable()
    {
        problems.push(format!("the audit log: {e}"));
    }
    let dir = st
        .audit_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !st.audit.in_database()
        && let Ok(fs) = nix::sys::statvfs::statvfs(dir)
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
    let pending = st.store.request_list(Some(RequestStatus::Pending))?.len();
    let body = format!(
        "# HELP gate_pending_requests Requests waiting for a decision.\n# TYPE gate_pending_requests gauge\ngate_pending_requests {pending}\n\
         # HELP gate_events_total Audit events recorded by this server.\n# TYPE gate_events_total counter\ngate_events_total {}\n",
        st.events.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;

    fn requirement(timeout_min: u64) -> Requirement {
        Requirement {
            clauses: vec![Clause {
                rule: "prod-writes".into(),
                approvers: vec!["sre".into()],
                eligible: None,
                min_approvals: 2,
                groups: Vec::new(),
            }],
            min_approvals: 2,
            allow_requester: false,
            timeout: Duration::from_secs(timeout_min * MIN),
            backend: None,
            reuse: None,
        }
    }

    /// The wait the server allows, in minutes, for a server rule, a client rule, the server's
    /// default.
    fn allowed(server: Option<u64>, client: Option<u64>, default: u64) -> u64 {
        let client = client.map(requirement);
        combine(
            server.map(requirement),
            client.as_ref(),
            Duration::from_secs(default * MIN),
        )
        .timeout
        .as_secs()
            / MIN
    }

    #[test]
    fn a_30m_rule_is_not_cut_to_the_servers_15m_default() {
        // Issue 11 §3: both policies said 30m, the server expired the request after 15m.
        assert_eq!(allowed(Some(30), Some(30), 15), 30);
        assert_eq!(allowed(Some(30), None, 15), 30);
    }

    #[test]
    fn the_servers_policy_sets_the_longest_wait_and_the_client_only_shortens_it() {
        // A client rule asking for longer than the server's rule gets the server's.
        assert_eq!(allowed(Some(30), Some(120), 15), 30);
        // A client rule asking for less gets less.
        assert_eq!(allowed(Some(30), Some(10), 15), 10);
        // A command no rule of the server matched: the server's default, whatever the client's
        // rule says.
        assert_eq!(allowed(None, Some(120), 15), 15);
        assert_eq!(allowed(None, Some(5), 15), 5);
        assert_eq!(allowed(None, None, 15), 15);
    }

    #[test]
    fn a_requester_cannot_stretch_the_expiry_with_a_huge_timeout() {
        let clock = crate::clock::ManualClock::at(1_800_000_000_000);
        let now = crate::clock::Clock::now_ms(&clock);
        let allowed = Duration::from_secs(30 * MIN);
        let cases: &[(Option<u64>, i64)] = &[
            (None, 30 * 60_000),
            (Some(u64::MAX), 30 * 60_000),
            (Some(2 * 3600), 30 * 60_000),
            (Some(60), 60_000),
            (Some(0), 0),
        ];
        for (asked, wait_ms) in cases {
            assert_eq!(expiry_ms(now, allowed, *asked), now + wait_ms, "{asked:?}");
        }
    }

    #[test]
    fn an_absurd_policy_timeout_neither_overflows_nor_makes_expires_unprintable() {
        let now = 1_800_000_000_000;
        for allowed in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            let at = expiry_ms(now, allowed, None);
            assert_eq!(at, LAST_EXPIRY_MS);
            assert!(rfc3339(at).starts_with("9999-12-31T"));
        }
    }
}
