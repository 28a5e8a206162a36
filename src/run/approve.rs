//! Asking for approval and waiting for it: the `local` spool or the gate server, turned into
//! the run's go / no-go. The backends themselves live in `crate::approval`.

use std::time::Duration;

use serde_json::json;

use super::{Cancel, RunOptions, Verdict, stop, why_approval};
use crate::approval::Outcome;
use crate::approval::local::{LocalError, SHARED_SPOOL_HINT, Spool, SpoolRequest, now_unix};
use crate::audit::Approver;
use crate::config::Env;
use crate::error::Error;
use crate::output::Output;
use crate::policy::{BackendKind, Classification, Policy, Requirement};
use crate::request::{Request, shell_join};

pub(super) fn approve(
    opts: &RunOptions,
    env: &Env,
    out: &Output,
    policy: &Policy,
    req: &Request,
    class: &Classification,
    cancel: &Cancel,
) -> Result<Verdict, Error> {
    let Some(requirement) = class.requirement.clone() else {
        return Ok(stop(
            "error",
            "no approval requirement".into(),
            Error::config("internal: approve without requirement"),
        ));
    };
    let backend_name = requirement.backend.clone();
    let timeout = opts
        .timeout
        .map_or(requirement.timeout, |t| t.min(requirement.timeout));
    let (outcome, statement) = match backend_name.as_deref().and_then(|b| policy.backends.get(b)) {
        None | Some(BackendKind::Local { .. }) => {
            match wait_local(env, out, policy, req, class, &requirement, timeout, cancel)? {
                Ok(o) => (o, None),
                Err(stopped) => return Ok(stopped),
            }
        }
        Some(BackendKind::Server { url, key }) => {
            match wait_server(
                env,
                out,
                url,
                key,
                req,
                class,
                &requirement,
                timeout,
                cancel,
            ) {
                Ok(o) => o,
                Err(stopped) => return Ok(stopped),
            }
        }
        Some(other) => {
            let m = format!(
                "the `{}` backend is not available in this version of gate",
                other.kind()
            );
            return Ok(stop(
                "error",
                m.clone(),
                Error::NoDecision {
                    message: m,
                    hint: Some("use a `kind: local` or `kind: server` backend".into()),
                },
            ));
        }
    };
    Ok(verdict_of(out, outcome, statement, timeout, &requirement))
}

/// The local backend: the spool and the owners of decision files.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn wait_local(
    env: &Env,
    out: &Output,
    policy: &Policy,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Result<Outcome, Verdict>, Error> {
    let backend_name = requirement.backend.clone();
    let spool = Spool::new(env.spool_path(Some(policy), backend_name.as_deref()));
    let spooled = SpoolRequest {
        request: req.view.clone(),
        decision: class.decision.as_str().to_owned(),
        rules: class.matched.iter().map(|r| r.name.clone()).collect(),
        requirement: requirement.clone(),
        created: crate::audit::record::now(),
        expires_unix: now_unix() + timeout.as_secs(),
        pid: std::process::id(),
    };
    // A spool the requester could clear of decisions gives no decision (75); one that cannot
    // be used at all is a configuration error (78). Either way nothing runs, and the decision
    // is still recorded.
    let pending = match spool.submit(&spooled) {
        Ok(p) => p,
        Err(e @ LocalError::Unsafe { .. }) => {
            let m = e.to_string();
            return Ok(Err(stop(
                "error",
                m.clone(),
                Error::NoDecision {
                    message: m,
                    hint: Some(SHARED_SPOOL_HINT.to_owned()),
                },
            )));
        }
        Err(e) => {
            let m = e.to_string();
            return Ok(Err(stop(
                "error",
                m.clone(),
                Error::config_hint(
                    m,
                    format!(
                        "set `GATE_SPOOL` or `backends.<name>.spool` to a shared spool: {SHARED_SPOOL_HINT}"
                    ),
                ),
            )));
        }
    };
    out.info(&format!(
        "{} needs {} approval{} ({}); waiting as request {}",
        crate::output::escape(&shell_join(&req.view.command.argv)),
        requirement.min_approvals,
        if requirement.min_approvals == 1 {
            ""
        } else {
            "s"
        },
        why_approval(class),
        req.id()
    ));
    out.info(&format!("an approver runs: gate approve {}", req.id()));
    let mut waiter = out.waiter("waiting for approval of");
    let result = pending.wait(&spooled, timeout, &cancel.flag, &mut |p| waiter.update(p));
    waiter.finish();
    drop(pending);
    let outcome = result.map_err(|e| Error::NoDecision {
        message: format!("lost track of the request: {e}"),
        hint: None,
    })?;
    Ok(Ok(outcome))
}

/// The server backend: submit, then long-poll until decided, retrying transport errors until
/// the deadline. The server decides eligibility; the client believes an approval only as a
/// statement signed by the pinned `key`, for its own request id and digest, listing approvers
/// that meet its requirement — anything else is no decision (75) and nothing runs. Returns the
/// outcome and, for an approval, the statement to record.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn wait_server(
    env: &Env,
    out: &Output,
    url: &str,
    key: &str,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<(Outcome, Option<String>), Verdict> {
    use crate::approval::server::{
        Client, ClientError, RemoteRequest, retry, verify_approval, verify_statement,
    };
    use crate::audit::statement::Status;
    let no_decision = |m: String, hint: Option<String>| {
        stop("error", m.clone(), Error::NoDecision { message: m, hint })
    };
    let key = match crate::audit::note::NoteVerifier::parse(key) {
        Ok(k) => k,
        Err(e) => {
            let m = format!("the `key` of the server backend for {url} is unusable: {e}");
            return Err(stop(
                "error",
                m.clone(),
                Error::config_hint(m, format!("`gate login {url}` prints the server's key")),
            ));
        }
    };
    let Some(token) = env.server_token(url) else {
        let m = format!("no token for the gate server {url}");
        return Err(stop(
            "error",
            m.clone(),
            Error::config_hint(m, format!("run `gate login {url}`, or set `GATE_TOKEN`")),
        ));
    };
    let client = Client::new(url, token).map_err(|e| no_decision(e.to_string(), None))?;
    let context: std::collections::BTreeMap<String, String> = req
        .env
        .iter()
        .filter(|(k, _)| req.view.context.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let who = &req.view.requester;
    let body = json!({
        "id": req.id(),
        "argv": req.argv,
        "cwd": req.view.command.cwd,
        "env": context,
        "payload": req.view.command.payload,
        "digest": req.view.digest,
        "reason": req.view.reason,
        "claims": { "user": who.user, "uid": who.uid, "host": who.host, "ci": who.ci, "agent": who.agent },
        "client": {
            "decision": class.decision.as_str(),
            "rules": class.matched.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            "requirement": requirement,
        },
        "timeout_secs": timeout.as_secs(),
    });
    let deadline = std::time::Instant::now() + timeout;
    let cancelled = || cancel.is_set();
    let warn = |e: &ClientError| out.warn(&format!("{e}; retrying"));
    let created = retry(
        deadline,
        || match client.create(&body) {
            // A retry after a lost answer: the request is there already.
            Err(ClientError::Rejected { code, .. }) if code == "exists" => {
                client.get(req.id(), Duration::ZERO)
            }
            other => other,
        },
        warn,
        &cancelled,
    );
    let mut current: RemoteRequest = match created {
        Ok(r) => r,
        Err(ClientError::Unauthorized(m)) => {
            let m = format!("the gate server {url} refused the token: {m}");
            return Err(stop(
                "error",
                m.clone(),
                Error::config_hint(
                    m,
                    format!("run `gate login {url}` with a valid token, or set `GATE_TOKEN`"),
                ),
            ));
        }
        Err(e) if cancel.is_set() => return Err(no_decision(format!("cancelled: {e}"), None)),
        Err(e) => {
            return Err(no_decision(
                format!("no decision: {e}"),
                Some("nothing ran; the command runs only with an approval from the server".into()),
            ));
        }
    };
    out.info(&format!(
        "{} needs {} approval{} ({}); waiting as request {} on {url}",
        crate::output::escape(&shell_join(&req.view.command.argv)),
        current.needed.max(1),
        if current.needed == 1 { "" } else { "s" },
        why_approval(class),
        current.id
    ));
    out.info(&format!(
        "an approver runs: gate approve --server {url} {}",
        current.id
    ));
    // The long-poll runs on its own thread so Ctrl-C is answered at once.
    let (tx, rx) = std::sync::mpsc::channel::<Result<RemoteRequest, ClientError>>();
    let poller = client.clone();
    let id = current.id.clone();
    std::thread::spawn(move || {
        let mut backoff =
            crate::http::Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let wait = left.min(Duration::from_secs(25));
            let r = poller.get(&id, wait);
            let failed = r.is_err();
            let stop_now = matches!(&r, Ok(x) if x.status != "pending")
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
    let mut waiter = out.waiter("waiting for approval of");
    let start = std::time::Instant::now();
    let mut backoff_until = None;
    let approver = |a: &crate::approval::server::RemoteApproval| Approver {
        principal: a.principal.clone(),
        uid: None,
        at: a.at.clone(),
        via: "server".into(),
        comment: a.comment.clone(),
    };
    let mut statement = None;
    let outcome = loop {
        if cancel.is_set() {
            let _ = client.cancel(&current.id);
            break Outcome::Cancelled(current.approvals.iter().map(approver).collect());
        }
        match current.status.as_str() {
            "approved" => {
                match verify_approval(
                    &current,
                    &key,
                    req.id(),
                    &req.view.digest,
                    &req.view.requester.user,
                    requirement,
                ) {
                    Ok(v) => {
                        statement = Some(v.note);
                        break Outcome::Approved(v.approvals);
                    }
                    Err(why) => {
                        waiter.finish();
                        return Err(no_decision(
                            format!("{url} answered `approved`, but {why}; refusing to run"),
                            Some(format!(
                                "nothing ran: an approval counts only when signed by the server key the policy pins ({}+{:08x})",
                                key.name, key.id
                            )),
                        ));
                    }
                }
            }
            "denied" => {
                // A denial runs nothing either way; it is checked so that the log pins it
                // only on whoever the server signed for.
                let signed =
                    verify_statement(&current, &key, req.id(), &req.view.digest, Status::Denied);
                let denial = signed.as_ref().ok().and_then(|(s, _)| s.denial.clone());
                let Some(vote) = denial else {
                    waiter.finish();
                    let why = match signed {
                        Err(e) => e.to_string(),
                        Ok(_) => "the signed statement names no denial".to_owned(),
                    };
                    return Err(no_decision(
                        format!("{url} answered `denied`, but {why}; nothing ran"),
                        None,
                    ));
                };
                let comment = current.denial.as_ref().and_then(|d| d.comment.clone());
                break Outcome::Denied {
                    by: Approver {
                        principal: vote.principal,
                        uid: None,
                        at: vote.at,
                        via: "server".into(),
                        comment: comment.clone(),
                    },
                    reason: comment.unwrap_or_default(),
                    approvals: current.approvals.iter().map(approver).collect(),
                };
            }
            "expired" => break Outcome::TimedOut(current.approvals.iter().map(approver).collect()),
            "cancelled" => {
                break Outcome::Cancelled(current.approvals.iter().map(approver).collect());
            }
            _ => {}
        }
        if std::time::Instant::now() >= deadline + Duration::from_secs(2) {
            break Outcome::TimedOut(current.approvals.iter().map(approver).collect());
        }
        waiter.update(&crate::approval::Progress {
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
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(r)) => {
                backoff_until = None;
                current = r;
            }
            Ok(Err(ClientError::Unauthorized(m))) => {
                waiter.finish();
                let m = format!("the gate server {url} refused the token while waiting: {m}");
                return Err(stop("error", m.clone(), Error::config(m)));
            }
            Ok(Err(e)) if e.is_transient() => {
                if backoff_until.is_none() {
                    out.warn(&format!("{e}; still waiting, retrying"));
                }
                backoff_until = Some(std::time::Instant::now());
            }
            Ok(Err(e)) => {
                waiter.finish();
                return Err(no_decision(format!("the gate server answered: {e}"), None));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                if std::time::Instant::now() >= deadline {
                    break Outcome::TimedOut(current.approvals.iter().map(approver).collect());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    waiter.finish();
    Ok((outcome, statement))
}

/// Turns how the wait ended into the go / no-go.
fn verdict_of(
    out: &Output,
    outcome: Outcome,
    statement: Option<String>,
    timeout: Duration,
    requirement: &Requirement,
) -> Verdict {
    match outcome {
        Outcome::Approved(approvals) => {
            let names: Vec<&str> = approvals.iter().map(|a| a.principal.as_str()).collect();
            out.info(&format!("approved by {}", names.join(", ")));
            Verdict::Run {
                outcome: "approved",
                approvals,
                statement,
            }
        }
        Outcome::Denied {
            by,
            reason,
            approvals,
        } => {
            let m = format!(
                "denied by {}{}",
                by.principal,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            );
            Verdict::Stop {
                outcome: "denied",
                message: m.clone(),
                denied_by: Some(by),
                approvals,
                error: Error::Denied {
                    message: m,
                    hint: None,
                },
            }
        }
        Outcome::TimedOut(approvals) => {
            let m = format!(
                "no decision within {} ({} of {} approvals)",
                humantime::format_duration(timeout),
                approvals.len(),
                requirement.min_approvals
            );
            Verdict::Stop {
                outcome: "timed_out",
                message: m.clone(),
                denied_by: None,
                approvals,
                error: Error::NoDecision {
                    message: m,
                    hint: Some(
                        "run it again when an approver is available, or pass a longer `--timeout`"
                            .into(),
                    ),
                },
            }
        }
        Outcome::Cancelled(approvals) => {
            let m = "cancelled while waiting for approval".to_owned();
            Verdict::Stop {
                outcome: "cancelled",
                message: m.clone(),
                denied_by: None,
                approvals,
                error: Error::NoDecision {
                    message: m,
                    hint: None,
                },
            }
        }
    }
}
