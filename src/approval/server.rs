//! The `server` backend: a blocking client of `gate serve`'s API. Submitting and waiting
//! retry transport errors with backoff until the deadline (then the caller fails closed); the
//! wait is a long-poll, so a decision reaches the waiting command as soon as it is made.
//! An approval is believed only as the server's signed statement, checked by
//! [`verify_approval`] against the key the policy pins: a server that merely answers
//! `approved` (a fake one, or one reached through a hijacked address) gets nothing run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Outcome, Progress, RequestStatus};
use crate::audit::Approver;
use crate::audit::note::NoteVerifier;
use crate::audit::statement::{Statement, StatementError, Status};
use crate::policy::Requirement;
use crate::secrets::Token;

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
}

impl ClientError {
    /// Worth retrying until the deadline.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Rejected { status, .. } => *status >= 500 || *status == 429,
            ClientError::Unauthorized(_) => false,
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
    Ok(VerifiedApproval { approvals, note })
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
pub fn server_key(base: &str) -> Result<String, ClientError> {
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let resp = http
        .get(format!("{}/v1/server-key", base.trim_end_matches('/')))
        .send()
        .map_err(|e| ClientError::Transport(without_url(&e)))?;
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
    pub fn new(base: &str, token: Token) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(75))
            .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
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
            .map_err(|e| ClientError::Transport(without_url(&e)))?;
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
        let url = format!("{}/v1/requests/{id}?wait={}s", self.base, wait.as_secs());
        Self::request(self.send(self.http.get(url))?)
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

    pub fn me(&self) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}/v1/me", self.base)))
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

/// What the waiting client will believe: a decision signed by `key`, for request `id` and
/// `digest`, whose approvals meet `requirement` without counting the `requester`.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub key: &'a NoteVerifier,
    pub id: &'a str,
    pub digest: &'a str,
    pub requester: &'a str,
    pub requirement: &'a Requirement,
}

/// A wait that ended with no outcome to obey: nothing runs (no decision, or a configuration
/// error for a refused token).
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The server answered `approved` without a signed approval that counts.
    #[error("the server answered `approved`, but {0}")]
    UnprovenApproval(ApprovalRefused),
    /// The server answered `denied` without a signed denial.
    #[error("the server answered `denied`, but {0}")]
    UnprovenDenial(String),
    /// The server refused the token while the client waited.
    #[error("the server refused the token while waiting: {0}")]
    Unauthorized(String),
    /// The server answered with an error that retrying will not cure.
    #[error("the gate server answered: {0}")]
    Failed(ClientError),
}

/// How often the waiting loop looks at the cancel flag and redraws its progress.
const TICK: Duration = Duration::from_millis(100);
/// How long past its deadline the client still listens for a decision the server made in time.
const GRACE: Duration = Duration::from_secs(2);

/// Waits for the server to decide `current` (as created), until `deadline` (plus a short
/// grace for a decision made just in time) or until `cancel` is set, which withdraws the
/// request. The long-poll runs on its own thread so a cancel is answered at once; transient
/// errors are retried and reported once to `on_retry`; `progress` hears the approvals so far.
/// An `approved` or `denied` answer counts only as the signed statement `expect` describes.
/// Returns the outcome and, for an approval, the signed note to record.
pub fn wait(
    client: &Client,
    mut current: RemoteRequest,
    expect: &Expect<'_>,
    deadline: Instant,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
    on_retry: &mut dyn FnMut(&ClientError),
) -> Result<(Outcome, Option<String>), WaitError> {
    let answers = poll(client.clone(), current.id.clone(), deadline);
    let start = Instant::now();
    let mut warned = false;
    loop {
        let approvals = || current.approvals.iter().map(server_approver).collect();
        if cancel.load(Ordering::SeqCst) {
            let _ = client.cancel(&current.id);
            return Ok((Outcome::Cancelled(approvals()), None));
        }
        match current.status {
            RequestStatus::Approved => {
                let v = verify_approval(
                    &current,
                    expect.key,
                    expect.id,
                    expect.digest,
                    expect.requester,
                    expect.requirement,
                )
                .map_err(WaitError::UnprovenApproval)?;
                return Ok((Outcome::Approved(v.approvals), Some(v.note)));
            }
            RequestStatus::Denied => return Ok((verified_denial(&current, expect)?, None)),
            RequestStatus::Expired => return Ok((Outcome::TimedOut(approvals()), None)),
            RequestStatus::Cancelled => return Ok((Outcome::Cancelled(approvals()), None)),
            RequestStatus::Pending => {}
        }
        if Instant::now() >= deadline + GRACE {
            return Ok((Outcome::TimedOut(approvals()), None));
        }
        progress(&Progress {
            request_id: current.id.clone(),
            elapsed: start.elapsed(),
            approvers: current
                .approvals
                .iter()
                .map(|a| a.principal.clone())
                .collect(),
            needed: current.approvals.len() as u32 + current.needed,
            ignored: Vec::new(),
        });
        match answers.recv_timeout(TICK) {
            Ok(Ok(r)) => {
                warned = false;
                current = r;
            }
            Ok(Err(ClientError::Unauthorized(m))) => return Err(WaitError::Unauthorized(m)),
            Ok(Err(e)) if e.is_transient() => {
                if !warned {
                    on_retry(&e);
                }
                warned = true;
            }
            Ok(Err(e)) => return Err(WaitError::Failed(e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                if Instant::now() >= deadline {
                    return Ok((Outcome::TimedOut(approvals()), None));
                }
                std::thread::sleep(TICK);
            }
        }
    }
}

/// Long-polls request `id` on a thread of its own until it is decided, a non-transient error
/// comes, or the receiver goes away; every answer is sent on.
fn poll(
    client: Client,
    id: String,
    deadline: Instant,
) -> std::sync::mpsc::Receiver<Result<RemoteRequest, ClientError>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut backoff =
            crate::http::Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(Duration::from_secs(25));
            let r = client.get(&id, wait);
            let failed = r.is_err();
            let stop_now = matches!(&r, Ok(x) if !x.status.is_pending())
                || matches!(&r, Err(e) if !e.is_transient());
            if tx.send(r).is_err() || stop_now {
                return;
            }
            if failed {
                std::thread::sleep(backoff.after_failure(None));
            } else {
                backoff.reset();
                if left.is_zero() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    rx
}

/// A `denied` answer as an outcome: a denial runs nothing either way, but it is checked so
/// that the log pins it only on whoever the server signed for.
fn verified_denial(current: &RemoteRequest, expect: &Expect<'_>) -> Result<Outcome, WaitError> {
    let signed = verify_statement(
        current,
        expect.key,
        expect.id,
        expect.digest,
        Status::Denied,
    );
    let denial = signed.as_ref().ok().and_then(|(s, _)| s.denial.clone());
    let Some(vote) = denial else {
        return Err(WaitError::UnprovenDenial(match signed {
            Err(e) => e.to_string(),
            Ok(_) => "the signed statement names no denial".to_owned(),
        }));
    };
    let comment = current.denial.as_ref().and_then(|d| d.comment.clone());
    Ok(Outcome::Denied {
        by: Approver {
            principal: vote.principal,
            uid: None,
            at: vote.at,
            via: "server".into(),
            comment: comment.clone(),
        },
        reason: comment.unwrap_or_default(),
        approvals: current.approvals.iter().map(server_approver).collect(),
    })
}

/// An approval the server reports (unsigned: shown and recorded with an outcome that runs
/// nothing, never trusted for one that runs).
fn server_approver(a: &RemoteApproval) -> Approver {
    Approver {
        principal: a.principal.clone(),
        uid: None,
        at: a.at.clone(),
        via: "server".into(),
        comment: a.comment.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::audit::note::NoteSigner;
    use crate::audit::statement::Vote;
    use crate::policy::Clause;

    const ID: &str = "0190aaaa-0000-7000-8000-000000000001";
    const DIGEST: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";
    const AT: &str = "2026-01-01T00:00:00Z";

    /// A server on 127.0.0.1 that answers each request with the next of `answers` (the last
    /// one again once they run out) and keeps the request lines it saw.
    fn serve(answers: Vec<(u16, Value)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (i, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                log.lock().unwrap().push(line.trim_end().to_owned());
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let _ = reader.by_ref().take(length).read_to_end(&mut Vec::new());
                let (status, body) = &answers[i.min(answers.len() - 1)];
                let body = body.to_string();
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (base, seen)
    }

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("gate-test", &[7; 32]).unwrap()
    }

    fn requirement() -> Requirement {
        Requirement {
            clauses: vec![Clause {
                rule: "r".into(),
                approvers: Vec::new(),
                eligible: None,
                min_approvals: 1,
                groups: Vec::new(),
            }],
            min_approvals: 1,
            allow_requester: false,
            timeout: Duration::from_secs(60),
            backend: None,
        }
    }

    /// The server's answer for the request in `status`, signed by `signer` when given.
    fn answer(status: Status, signer: Option<&NoteSigner>) -> Value {
        let vote = |p: &str| Vote {
            principal: p.into(),
            at: AT.into(),
        };
        let (approvals, denial) = match status {
            Status::Denied => (Vec::new(), Some(vote("bob"))),
            _ => (vec![vote("ann")], None),
        };
        let statement = signer.map(|k| {
            Statement {
                request_id: ID.into(),
                digest: DIGEST.into(),
                requester: "alice".into(),
                status,
                approvals: approvals.clone(),
                denial: denial.clone(),
                time: AT.into(),
            }
            .sign(k)
            .unwrap()
        });
        json!({
            "id": ID, "status": status.as_str(), "requester": "alice", "digest": DIGEST,
            "expires": AT, "needed": 0, "statement": statement,
            "approvals": approvals.iter().map(|v| json!({"principal": v.principal, "at": v.at})).collect::<Vec<_>>(),
            "denial": denial.map(|v| json!({"principal": v.principal, "at": v.at, "comment": "not now"})),
        })
    }

    fn pending() -> RemoteRequest {
        serde_json::from_value(json!({
            "id": ID, "status": "pending", "requester": "alice", "digest": DIGEST,
            "expires": AT, "needed": 1,
        }))
        .unwrap()
    }

    fn with_status(status: &str) -> RemoteRequest {
        RemoteRequest {
            status: RequestStatus::parse(status).unwrap(),
            ..pending()
        }
    }

    struct Waited {
        result: Result<(Outcome, Option<String>), WaitError>,
        retries: usize,
        progress: usize,
    }

    fn wait_on(base: &str, current: RemoteRequest, deadline: Instant, cancel: bool) -> Waited {
        let key = signer().verifier();
        let requirement = requirement();
        let expect = Expect {
            key: &key,
            id: ID,
            digest: DIGEST,
            requester: "alice",
            requirement: &requirement,
        };
        let client = Client::new(base, Token::new("t".into())).unwrap();
        let (mut retries, mut progress) = (0, 0);
        let result = wait(
            &client,
            current,
            &expect,
            deadline,
            &AtomicBool::new(cancel),
            &mut |_| progress += 1,
            &mut |_| retries += 1,
        );
        Waited {
            result,
            retries,
            progress,
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    const NOWHERE: &str = "http://127.0.0.1:9";

    #[test]
    fn a_signed_approval_that_meets_the_requirement_is_believed() {
        let k = signer();
        let (base, _) = serve(vec![(200, answer(Status::Approved, Some(&k)))]);
        let w = wait_on(&base, pending(), soon(), false);
        let (outcome, note) = w.result.unwrap();
        let Outcome::Approved(approvals) = outcome else {
            panic!("not approved: {outcome:?}");
        };
        assert_eq!(approvals.len(), 1);
        assert_eq!(approvals[0].principal, "ann");
        assert!(note.unwrap().contains(ID));
        assert!(w.progress >= 1, "the pending state was shown");
    }

    #[test]
    fn an_approval_without_the_pinned_signature_runs_nothing() {
        let other = NoteSigner::from_seed("gate-test", &[9; 32]).unwrap();
        for signer in [None, Some(&other)] {
            let (base, _) = serve(vec![(200, answer(Status::Approved, signer))]);
            let w = wait_on(&base, pending(), soon(), false);
            assert!(
                matches!(w.result, Err(WaitError::UnprovenApproval(_))),
                "{:?}",
                w.result
            );
        }
    }

    #[test]
    fn a_denial_names_whom_the_server_signed_for_or_is_no_decision() {
        let k = signer();
        let (base, _) = serve(vec![(200, answer(Status::Denied, Some(&k)))]);
        match wait_on(&base, pending(), soon(), false).result.unwrap().0 {
            Outcome::Denied { by, reason, .. } => {
                assert_eq!(by.principal, "bob");
                assert_eq!(reason, "not now");
            }
            other => panic!("not denied: {other:?}"),
        }
        let (base, _) = serve(vec![(200, answer(Status::Denied, None))]);
        let w = wait_on(&base, pending(), soon(), false);
        assert!(
            matches!(&w.result, Err(WaitError::UnprovenDenial(m)) if m.contains("no signed statement")),
            "{:?}",
            w.result
        );
    }

    #[test]
    fn expired_and_cancelled_end_the_wait_without_running() {
        let w = wait_on(NOWHERE, with_status("expired"), soon(), false);
        assert_eq!(w.result.unwrap().0, Outcome::TimedOut(Vec::new()));
        let w = wait_on(NOWHERE, with_status("cancelled"), soon(), false);
        assert_eq!(w.result.unwrap().0, Outcome::Cancelled(Vec::new()));
    }

    #[test]
    fn a_cancel_withdraws_the_request_on_the_server() {
        let (base, seen) = serve(vec![(200, answer(Status::Cancelled, None))]);
        let w = wait_on(&base, pending(), soon(), true);
        assert_eq!(w.result.unwrap().0, Outcome::Cancelled(Vec::new()));
        let cancel = format!("POST /v1/requests/{ID}/cancel HTTP/1.1");
        // The long-poll thread may have asked too; the cancel is what counts.
        assert!(seen.lock().unwrap().contains(&cancel), "{seen:?}");
    }

    #[test]
    fn past_the_deadline_and_its_grace_it_times_out() {
        let w = wait_on(NOWHERE, pending(), Instant::now() - GRACE, false);
        assert_eq!(w.result.unwrap().0, Outcome::TimedOut(Vec::new()));
    }

    #[test]
    fn a_refused_token_or_a_bad_request_while_waiting_is_not_retried() {
        let (base, _) = serve(vec![(401, json!({"message": "revoked"}))]);
        let w = wait_on(&base, pending(), soon(), false);
        assert!(
            matches!(&w.result, Err(WaitError::Unauthorized(m)) if m == "revoked"),
            "{:?}",
            w.result
        );
        let (base, _) = serve(vec![(
            404,
            json!({"error": "not_found", "message": "gone"}),
        )]);
        let w = wait_on(&base, pending(), soon(), false);
        assert!(
            matches!(
                &w.result,
                Err(WaitError::Failed(ClientError::Rejected { status: 404, .. }))
            ),
            "{:?}",
            w.result
        );
        assert_eq!(w.retries, 0);
    }

    #[test]
    fn transient_errors_are_retried_and_reported_once() {
        let k = signer();
        let busy = (503, json!({"error": "busy", "message": "busy"}));
        let (base, _) = serve(vec![
            busy.clone(),
            busy,
            (200, answer(Status::Approved, Some(&k))),
        ]);
        let w = wait_on(&base, pending(), soon(), false);
        assert!(matches!(w.result, Ok((Outcome::Approved(_), Some(_)))));
        assert_eq!(w.retries, 1, "one warning for one run of failures");
    }
}
