//! Waiting on the server for a decision: a long-poll on a thread of its own, a loop that answers
//! a cancel at once, and the rule that an `approved` or `denied` answer counts only as the
//! server's signed statement for this request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{
    ApprovalRefused, ClientError, RemoteApproval, RemoteRequest, Replicas, Signed, verify_approval,
    verify_statement,
};
use crate::approval::{Outcome, Progress, RequestStatus};
use crate::audit::Approver;
use crate::audit::note::NoteVerifier;
use crate::audit::statement::Status;
use crate::policy::Requirement;

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
/// Returns the outcome and, for an approval, the signed note to record and the variables the
/// server releases to the run. The long-poll moves to the next of `replicas` when the one it
/// waits on stops answering; `on_moved` hears the address it left and the one that answers now.
#[allow(clippy::too_many_arguments)]
pub fn wait(
    replicas: &Replicas,
    mut current: RemoteRequest,
    expect: &Expect<'_>,
    deadline: Instant,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
    on_retry: &mut dyn FnMut(&ClientError),
    on_moved: &mut dyn FnMut(&str, &str),
) -> Result<(Outcome, Option<Signed>), WaitError> {
    let mut at = replicas.current().base().to_owned();
    let answers = poll(
        replicas.clone(),
        current.id.clone(),
        current.approvals.len(),
        deadline,
    );
    let start = Instant::now();
    let mut warned = false;
    loop {
        let approvals = || current.approvals.iter().map(server_approver).collect();
        if cancel.load(Ordering::SeqCst) {
            let _ = replicas.call(|c| c.cancel(&current.id));
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
                let signed = Signed {
                    note: v.note,
                    release: v.release,
                };
                return Ok((Outcome::Approved(v.approvals), Some(signed)));
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
                let now = replicas.current().base();
                if now != at {
                    on_moved(&at, now);
                    at = now.to_owned();
                }
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
/// comes, or the receiver goes away; every answer is sent on. Each poll tells the server how
/// many approvals the last answer had (`seen`, starting from the created request's), so the
/// server answers as soon as another one comes rather than when the poll's 25 s run out.
fn poll(
    replicas: Replicas,
    id: String,
    mut seen: usize,
    deadline: Instant,
) -> std::sync::mpsc::Receiver<Result<RemoteRequest, ClientError>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut backoff =
            crate::http::Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        // A server older than `seen` refuses it (400); it is then polled without, as before.
        let mut with_seen = true;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(Duration::from_secs(25));
            let r = replicas.call(|c| c.get_after(&id, wait, with_seen.then_some(seen)));
            if with_seen
                && matches!(&r, Err(ClientError::Rejected { status: 400, message, .. }) if message.contains("seen"))
            {
                with_seen = false;
                continue;
            }
            if let Ok(answer) = &r {
                seen = answer.approvals.len();
            }
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

    use serde_json::{Value, json};

    use super::*;
    use crate::approval::server::Client;
    use crate::audit::note::NoteSigner;
    use crate::audit::statement::Statement;
    use crate::audit::statement::Vote;
    use crate::policy::Clause;
    use crate::secrets::Token;

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
            reuse: None,
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
        result: Result<(Outcome, Option<Signed>), WaitError>,
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
        let client = Replicas::one(Client::new(base, Token::new("t".into())).unwrap());
        let (mut retries, mut progress) = (0, 0);
        let result = wait(
            &client,
            current,
            &expect,
            deadline,
            &AtomicBool::new(cancel),
            &mut |_| progress += 1,
            &mut |_| retries += 1,
            &mut |_, _| {},
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
        assert!(note.unwrap().note.contains(ID));
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
