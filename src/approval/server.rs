//! The `server` backend: a blocking client of `gate serve`'s API. Submitting and waiting
//! retry transport errors with backoff until the deadline (then the caller fails closed); the
//! wait is a long-poll, so a decision reaches the waiting command as soon as it is made.
//! An approval is believed only as the server's signed statement, checked by
//! [`verify_approval`] against the key the policy pins: a server that merely answers
//! `approved` (a fake one, or one reached through a hijacked address) gets nothing run.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::RequestStatus;
use crate::audit::Approver;
use crate::audit::note::NoteVerifier;
use crate::audit::statement::{Statement, StatementError, Status};
use crate::http::Trust;
use crate::policy::{ReleaseVar, Requirement};
use crate::secrets::Token;
use crate::secrets::vault::{Released, SecretValue};

mod replicas;
mod wait;
pub use replicas::Replicas;
pub use wait::{Expect, WaitError, wait};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the token.
    #[error("the server refused the token: {0}")]
    Unauthorized(String),
    /// The server answered with an error about the request itself.
    #[error("{message} (HTTP {status})")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, timeout, bad gateway...
    #[error("cannot reach the gate server: {0}")]
    Transport(String),
    /// The server's TLS was refused (an untrusted CA, another host's certificate, an expired
    /// one): retrying cannot help, and nothing is sent without it.
    #[error("refused the gate server's TLS: {}: {detail}", problem.describe())]
    Tls {
        problem: crate::http::TlsProblem,
        detail: String,
    },
}

/// What to do about a refused certificate.
pub const TLS_HINT: &str = "if the server's certificate comes from a private certificate authority, name that CA's certificate (PEM) with `ca: FILE` on the server backend (`--ca FILE` or `GATE_CA` for `gate login`, `requests`, `approve`, `deny`)";

impl ClientError {
    /// Worth retrying until the deadline.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Rejected { status, .. } => *status >= 500 || *status == 429,
            ClientError::Unauthorized(_) | ClientError::Tls { .. } => false,
        }
    }
}

/// One approval as the server reports it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RemoteApproval {
    pub principal: String,
    pub at: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A request as the server reports it (the fields the client uses).
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteRequest {
    pub id: String,
    pub status: RequestStatus,
    pub requester: String,
    pub digest: String,
    pub expires: String,
    #[serde(default)]
    pub approvals: Vec<RemoteApproval>,
    #[serde(default)]
    pub denial: Option<RemoteApproval>,
    #[serde(default)]
    pub needed: u32,
    /// The signed decision statement, once decided.
    #[serde(default)]
    pub statement: Option<String>,
    /// Everything else, for display.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// Why an answer of `approved` is not acted on.
#[derive(Debug, thiserror::Error)]
#[must_use]
pub enum ApprovalRefused {
    #[error("{0}")]
    Statement(#[from] StatementError),
    /// Signed and for this request, but the approvals it lists do not meet the requirement.
    #[error("the signed approvals ({0}) do not satisfy this command's requirement")]
    Unsatisfied(String),
}

/// An approval proven by the server's signed statement.
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifiedApproval {
    /// The approvers as the statement lists them (comments from the unsigned answer).
    pub approvals: Vec<Approver>,
    /// The signed note, to keep in the decision record.
    pub note: String,
    /// The variables the server's policy releases to this run (names only, from the answer).
    pub release: Vec<ReleaseVar>,
}

/// What a wait proved besides the outcome: the signed note, and the variables the server will
/// release to the run (issue 14 §5).
#[derive(Debug, Clone)]
pub struct Signed {
    pub note: String,
    pub release: Vec<ReleaseVar>,
}

/// The variables the server says it releases to an approved run of `answer` (its `release`
/// member; none when absent or unreadable, which only means nothing is asked for).
pub fn release_plan(answer: &RemoteRequest) -> Vec<ReleaseVar> {
    answer
        .rest
        .get("release")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Checks an `approved` answer: its statement must verify under `key`, be for request `id`
/// and `digest`, say `approved`, and list approvers that satisfy `requirement` — the
/// requester (the server's principal, or the local user) not counting unless it allows.
pub fn verify_approval(
    answer: &RemoteRequest,
    key: &NoteVerifier,
    id: &str,
    digest: &str,
    requester: &str,
    requirement: &Requirement,
) -> Result<VerifiedApproval, ApprovalRefused> {
    let (statement, note) = verify_statement(answer, key, id, digest, Status::Approved)?;
    let names: std::collections::BTreeSet<String> = statement
        .approvals
        .iter()
        .map(|v| v.principal.clone())
        .filter(|p| requirement.allow_requester || (*p != statement.requester && p != requester))
        .collect();
    if !requirement.satisfied_by(&names) {
        let listed: Vec<&str> = statement
            .approvals
            .iter()
            .map(|v| v.principal.as_str())
            .collect();
        return Err(ApprovalRefused::Unsatisfied(if listed.is_empty() {
            "none".into()
        } else {
            listed.join(", ")
        }));
    }
    let approvals = statement
        .approvals
        .iter()
        .map(|v| Approver {
            principal: v.principal.clone(),
            uid: None,
            at: v.at.clone(),
            via: "server".into(),
            comment: answer
                .approvals
                .iter()
                .find(|a| a.principal == v.principal)
                .and_then(|a| a.comment.clone()),
        })
        .collect();
    Ok(VerifiedApproval {
        approvals,
        note,
        release: release_plan(answer),
    })
}

/// Checks that `answer` carries a statement signed by `key`, for request `id` and `digest`,
/// saying `status`; returns it and the signed note.
pub fn verify_statement(
    answer: &RemoteRequest,
    key: &NoteVerifier,
    id: &str,
    digest: &str,
    status: Status,
) -> Result<(Statement, String), StatementError> {
    let note = answer.statement.as_deref().ok_or(StatementError::Missing)?;
    let (statement, _) = Statement::open(note, std::slice::from_ref(key))?;
    statement.decides(id, digest, status)?;
    Ok((statement, note.to_owned()))
}

/// The server's decision-signing key, as `GET /v1/server-key` reports it (no token needed).
pub fn server_key(base: &str, trust: &Trust) -> Result<String, ClientError> {
    let builder = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")));
    let http = crate::http::trusting(builder, trust)
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .build()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let resp = http
        .get(format!("{}/v1/server-key", base.trim_end_matches('/')))
        .send()
        .map_err(|e| failed(&e))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap_or(Value::Null);
    match body["key"].as_str() {
        Some(k) if status == 200 => Ok(k.to_owned()),
        _ => Err(ClientError::Rejected {
            status,
            code: "no_key".into(),
            message: "the server did not say its key (is it an older gate serve?)".into(),
        }),
    }
}

/// A client of one server with one token. `Debug` shows no token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Token,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}, token redacted)", self.base)
    }
}

impl Client {
    /// A client that trusts the built-in web PKI roots.
    pub fn new(base: &str, token: Token) -> Result<Self, ClientError> {
        Self::with_trust(base, token, &Trust::System)
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// A client that trusts what `trust` says for the server's certificate. A `ca:` file that
    /// cannot be used is [`TrustError`](crate::http::TrustError), a configuration error.
    pub fn with_trust(
        base: &str,
        token: Token,
        trust: &Trust,
    ) -> Result<Self, crate::http::TrustError> {
        let builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(75))
            .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")));
        let http = crate::http::trusting(builder, trust)?
            .build()
            .map_err(|e| {
                crate::http::TrustError::Bad(
                    match trust {
                        Trust::Ca(p) => p.clone(),
                        Trust::System => "(built-in roots)".into(),
                    },
                    error_chain(&e),
                )
            })?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Result<Value, ClientError> {
        let resp = rb
            .bearer_auth(self.token.expose())
            .send()
            .map_err(|e| failed(&e))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body["message"].as_str().unwrap_or("no message").to_owned();
        let code = body["error"].as_str().unwrap_or("").to_owned();
        Err(match status {
            401 => ClientError::Unauthorized(message),
            _ => ClientError::Rejected {
                status,
                code,
                message,
            },
        })
    }

    fn request(v: Value) -> Result<RemoteRequest, ClientError> {
        serde_json::from_value(v)
            .map_err(|e| ClientError::Transport(format!("unexpected answer from the server: {e}")))
    }

    pub fn create(&self, body: &Value) -> Result<RemoteRequest, ClientError> {
        Self::request(
            self.send(
                self.http
                    .post(format!("{}/v1/requests", self.base))
                    .json(body),
            )?,
        )
    }

    /// Long-polls for up to `wait`.
    pub fn get(&self, id: &str, wait: Duration) -> Result<RemoteRequest, ClientError> {
        self.get_after(id, wait, None)
    }

    /// Long-polls for up to `wait`, answered early once the request is decided or has other
    /// than `seen` approvals (a new one), so a waiting requester sees each as it comes.
    pub fn get_after(
        &self,
        id: &str,
        wait: Duration,
        seen: Option<usize>,
    ) -> Result<RemoteRequest, ClientError> {
        let mut url = format!("{}/v1/requests/{id}?wait={}s", self.base, wait.as_secs());
        if let Some(n) = seen {
            url.push_str(&format!("&seen={n}"));
        }
        Self::request(self.send(self.http.get(url))?)
    }

    /// One request as the server shows it (`id`: a whole id, or a part the server resolves),
    /// as JSON, every member kept, at once (no wait).
    pub fn get_value(&self, id: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}/v1/requests/{id}", self.base)))
    }

    /// The caller's own approved requests of `digest` that the server says an approval reuse
    /// still covers (`GET /v1/requests?digest=`). Each must still be checked against the
    /// pinned key: this answer is not signed, the statements in it are.
    pub fn reusable(&self, digest: &str) -> Result<Vec<RemoteRequest>, ClientError> {
        if !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let v = self.send(
            self.http
                .get(format!("{}/v1/requests?digest={digest}", self.base)),
        )?;
        Ok(v["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| serde_json::from_value(r.clone()).ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn list_pending(&self) -> Result<Vec<Value>, ClientError> {
        let v = self.send(
            self.http
                .get(format!("{}/v1/requests?status=pending", self.base)),
        )?;
        Ok(v["requests"].as_array().cloned().unwrap_or_default())
    }

    pub fn approve(&self, id: &str, comment: Option<&str>) -> Result<RemoteRequest, ClientError> {
        let body = json!({ "comment": comment });
        Self::request(
            self.send(
                self.http
                    .post(format!("{}/v1/requests/{id}/approve", self.base))
                    .json(&body),
            )?,
        )
    }

    pub fn deny(&self, id: &str, reason: &str) -> Result<RemoteRequest, ClientError> {
        let body = json!({ "reason": reason });
        Self::request(
            self.send(
                self.http
                    .post(format!("{}/v1/requests/{id}/deny", self.base))
                    .json(&body),
            )?,
        )
    }

    pub fn cancel(&self, id: &str) -> Result<RemoteRequest, ClientError> {
        Self::request(
            self.send(
                self.http
                    .post(format!("{}/v1/requests/{id}/cancel", self.base)),
            )?,
        )
    }

    /// Fetches the secrets request `id` releases to the run of `digest` (once per approval).
    /// The answer's values go into [`Released`] and nowhere else; an error never carries one.
    pub fn release(&self, id: &str, digest: &str) -> Result<Released, ClientError> {
        let v = self.send(
            self.http
                .post(format!("{}/v1/requests/{id}/release", self.base))
                .json(&json!({ "digest": digest })),
        )?;
        let vars: std::collections::BTreeMap<String, SecretValue> =
            serde_json::from_value(v["variables"].clone()).map_err(|_| {
                ClientError::Transport(
                    "unexpected answer from the server: `variables` is not a map of strings".into(),
                )
            })?;
        Ok(Released {
            vars: vars.into_iter().collect(),
        })
    }

    pub fn me(&self) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}/v1/me", self.base)))
    }
}

/// A request that got no answer: a refused TLS certificate, or a transport failure.
fn failed(e: &reqwest::Error) -> ClientError {
    match crate::http::tls_problem(e) {
        Some((problem, detail)) => ClientError::Tls { problem, detail },
        None => ClientError::Transport(without_url(e)),
    }
}

/// reqwest errors can include the URL; keep messages short and free of query strings.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = error_chain(e);
    if e.is_connect() {
        s = format!("connection failed ({s})");
    } else if e.is_timeout() {
        s = format!("timed out ({s})");
    }
    s
}

pub use crate::http::error_chain;

/// Retries `f` on transient errors with exponential backoff (0.25 s doubling to 5 s) until
/// `deadline`; `on_retry` hears about each failure.
pub fn retry<T>(
    deadline: Instant,
    mut f: impl FnMut() -> Result<T, ClientError>,
    mut on_retry: impl FnMut(&ClientError),
    cancelled: &dyn Fn() -> bool,
) -> Result<T, ClientError> {
    let mut backoff = crate::http::Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && !cancelled() => {
                let delay = backoff.after_failure(None);
                if Instant::now() + delay >= deadline {
                    return Err(e);
                }
                on_retry(&e);
                let until = Instant::now() + delay;
                while Instant::now() < until && !cancelled() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(e) => return Err(e),
        }
    }
}
