//! Approvals that outlive one waiting gate, on the server backend: `--no-wait` files a request
//! and stops (75); `--request ID` later runs the command on that request's approval; and
//! `approval.reuse` lets an earlier approval of the same requester's identical digest cover
//! this run.
//!
//! The trust basis is the server's signed decision statement and nothing the requester holds:
//! a statement verifying under the key the policy pins, for request ID and for *this*
//! command's digest as recomputed now (argv, cwd, context env, payload hashes), whose
//! requester is the principal of the token asking now, whose approvers satisfy the
//! requirement the policy sets now, and whose last approval is within the window. The local
//! audit log and the local spool are never consulted: the log is the requester's own file
//! (forgeable), and a spooled request ends with its waiting gate.

use std::time::{Duration, SystemTime};

use super::approve::connect;
use super::verdict::{Outcome, Verdict};
use crate::approval::RequestStatus;
use crate::approval::server::{
    Client, ClientError, Expect, RemoteRequest, Replicas, verify_approval, wait,
};
use crate::audit::ReuseOf;
use crate::audit::note::NoteVerifier;
use crate::audit::statement::Statement;
use crate::config::Env;
use crate::error::Error;
use crate::exec::Cancel;
use crate::output::Output;
use crate::policy::{Classification, Requirement};
use crate::request::{Request, shell_join};

/// How a server backend is reached: its addresses (`url` the first), the decision key the
/// policy pins, and the CA file its TLS is checked against.
pub(super) struct Server<'a> {
    pub url: &'a str,
    pub urls: &'a [String],
    pub key: &'a str,
    pub ca: Option<&'a std::path::Path>,
}

/// `--no-wait`: files the request, prints its id on stdout (alone on its line, for
/// `ID=$(gate --no-wait -- …)`), and stops with 75. Nothing runs.
pub(super) fn file(
    env: &Env,
    out: &Output,
    server: &Server<'_>,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: Duration,
) -> Verdict {
    let (client, _key) = match connect(env, server) {
        Ok(c) => c,
        Err(v) => return v,
    };
    let body = match super::approve::request_body(req, class, requirement, timeout) {
        Ok(b) => b,
        Err(v) => return v,
    };
    let created = match client.call(|c| c.create(&body)) {
        Ok(r) => r,
        Err(ClientError::Unauthorized(m)) => {
            return Verdict::stop(
                Outcome::Error,
                Error::config_hint(
                    format!("the gate server {} refused the token: {m}", server.url),
                    format!("run `gate login {}`, or set `GATE_TOKEN`", server.url),
                ),
            );
        }
        Err(e) => {
            return Verdict::no_decision(
                format!("could not file the request: {e}"),
                Some("nothing ran; run it again when the server is reachable".into()),
            );
        }
    };
    // The server's own policy may refuse it outright: nothing to wait for.
    if created.status == RequestStatus::Denied {
        let why = created
            .rest
            .get("policy_denial")
            .and_then(|v| v.as_str())
            .map(|m| format!(": {}", crate::output::escape(m)))
            .unwrap_or_default();
        return denied(
            format!("the gate server's policy denies this command{why}"),
            "nothing was filed to approve",
        );
    }
    out.data(&created.id);
    let argv = shell_join(&req.argv);
    Verdict::stop(
        Outcome::Pending,
        Error::NoDecision {
            message: format!(
                "filed request {} on {} for {}; not waiting (`--no-wait`)",
                created.id,
                server.url,
                crate::output::escape(&argv)
            ),
            hint: Some(format!(
                "an approver runs `gate approve --server {} {}`; then run `gate --request {} -- {}`",
                server.url,
                created.id,
                created.id,
                crate::output::escape(&argv)
            )),
        },
    )
}

/// `--request ID`: runs only on ID's signed approval, for this command's digest and this
/// requester, within the window (the rule's `reuse`, else its `timeout`). Pending: 75 (or wait
/// with `--wait`); denied, another command, another requester or no such request: 77.
#[allow(clippy::too_many_arguments)]
pub(super) fn redeem(
    env: &Env,
    out: &Output,
    server: &Server<'_>,
    req: &Request,
    requirement: &Requirement,
    id: &str,
    wait_for: Option<Duration>,
    cancel: &Cancel,
) -> Verdict {
    let (client, key) = match connect(env, server) {
        Ok(c) => c,
        Err(v) => return v,
    };
    let me = match principal(&client) {
        Ok(p) => p,
        Err(v) => return v,
    };
    let current = match client.call(|c| c.get(id, Duration::ZERO)) {
        Ok(r) => r,
        Err(ClientError::Rejected { status: 404, .. }) => {
            return denied(
                format!("there is no request {id} on {}", server.url),
                "file one with `gate --no-wait -- …`",
            );
        }
        Err(e) => return Verdict::no_decision(format!("cannot read request {id}: {e}"), None),
    };
    // The unsigned answer can only make things stricter here: a request for another command
    // or another requester is refused whatever its status.
    if current.id != id {
        return denied(
            format!(
                "{} answered with request {} for {id}",
                server.url, current.id
            ),
            "pass the whole request id `gate --no-wait` printed",
        );
    }
    if current.requester != me {
        return denied(
            format!(
                "request {id} was filed by {}, not by {me}: an approval covers only its own requester",
                crate::output::escape(&current.requester)
            ),
            "file your own request with `gate --no-wait -- …`",
        );
    }
    if current.digest != req.view.digest {
        return denied(
            format!(
                "request {id} was for another command (or another working directory, \
                 environment or payload): its digest is {}, this command's is {}",
                short(&current.digest),
                short(&req.view.digest)
            ),
            "run exactly the command that was approved, from the same directory, with the same \
             payload files; or file a new request",
        );
    }
    let window = requirement.reuse.unwrap_or(requirement.timeout);
    let expect = Expect {
        key: &key,
        id,
        digest: &req.view.digest,
        requester: &req.view.requester.user,
        requirement,
    };
    let (note, release) = match current.status {
        RequestStatus::Approved => match verify_approval(
            &current,
            &key,
            id,
            &req.view.digest,
            &req.view.requester.user,
            requirement,
        ) {
            Ok(v) => (v.note, v.release),
            Err(e) => return unproven(server, &key, id, &e.to_string()),
        },
        RequestStatus::Pending => match wait_for {
            None => {
                return Verdict::stop(
                    Outcome::Pending,
                    Error::NoDecision {
                        message: format!(
                            "request {id} is still pending ({} of {} approvals); nothing ran",
                            current.approvals.len(),
                            current.approvals.len() as u32 + current.needed
                        ),
                        hint: Some(format!(
                            "an approver runs `gate approve --server {} {id}`; add `--wait` to \
                             wait for it here: `gate --request {id} --wait -- …`",
                            server.url
                        )),
                    },
                );
            }
            Some(limit) => {
                let deadline = std::time::Instant::now() + limit;
                let mut waiter = out.waiter(crate::output::Waiting {
                    command: shell_join(&req.view.command.argv),
                    approvers: Vec::new(),
                    requester_counts: requirement.allow_requester,
                    timeout: limit,
                });
                let waited = wait(
                    &client,
                    current,
                    &expect,
                    deadline,
                    &cancel.flag,
                    &mut |p| waiter.update(p),
                    &mut |e| out.warn(&format!("{e}; still waiting, retrying")),
                    &mut |from, to| out.warn(&format!("{from} stopped answering; waiting on {to}")),
                );
                waiter.finish();
                match waited {
                    Ok((crate::approval::Outcome::Approved(_), Some(s))) => (s.note, s.release),
                    Ok((crate::approval::Outcome::Denied { by, reason, .. }, _)) => {
                        return denied(
                            format!("request {id} was denied by {}: {reason}", by.principal),
                            "nothing ran",
                        );
                    }
                    Ok((crate::approval::Outcome::Cancelled(_), _)) => {
                        return Verdict::no_decision(
                            format!("request {id} was cancelled while waiting"),
                            None,
                        );
                    }
                    Ok(_) => {
                        return Verdict::stop(
                            Outcome::TimedOut,
                            Error::NoDecision {
                                message: format!(
                                    "request {id} was not decided within {}",
                                    humantime::format_duration(limit)
                                ),
                                hint: Some(format!(
                                    "run `gate --request {id} --wait -- …` again later"
                                )),
                            },
                        );
                    }
                    Err(e) => return unproven(server, &key, id, &e.to_string()),
                }
            }
        },
        RequestStatus::Denied => {
            let by = current
                .denial
                .as_ref()
                .map(|d| d.principal.clone())
                .unwrap_or_else(|| "an approver".into());
            return denied(format!("request {id} was denied by {by}"), "nothing ran");
        }
        // Nobody approved it in time, or its requester withdrew it: no decision to act on,
        // and none will come (75, as a timed-out wait).
        RequestStatus::Expired | RequestStatus::Cancelled => {
            return Verdict::stop(
                Outcome::TimedOut,
                Error::NoDecision {
                    message: format!(
                        "request {id} is {} without an approval; nothing ran",
                        current.status.as_str()
                    ),
                    hint: Some("file a new request with `gate --no-wait -- …`".into()),
                },
            );
        }
    };
    let release = (!release.is_empty()).then(|| super::release::Plan {
        url: server.url.to_owned(),
        request_id: id.to_owned(),
        vars: release,
    });
    match accepted(&note, &key, id, &req.view.digest, &me, window, "request") {
        Ok(Verdict::Run {
            outcome,
            approvals,
            statement,
            reuse,
            ..
        }) => Verdict::Run {
            outcome,
            approvals,
            statement,
            reuse,
            release,
        },
        Ok(v) => v,
        Err(Refusal::Stale(why)) => Verdict::stop(
            Outcome::TimedOut,
            Error::NoDecision {
                message: why,
                hint: Some("file a new request with `gate --no-wait -- …`".into()),
            },
        ),
        Err(Refusal::Other(why)) => unproven(server, &key, id, &why),
    }
}

/// `approval.reuse`: an earlier approval of this requester's identical digest, within the
/// window, as the server finds it and its signed statement proves it. `None`: ask as usual.
pub(super) fn reuse(
    env: &Env,
    out: &Output,
    server: &Server<'_>,
    req: &Request,
    requirement: &Requirement,
) -> Option<Verdict> {
    let window = requirement.reuse?;
    let (client, key) = connect(env, server).ok()?;
    let me = principal(&client).ok()?;
    let found = match client.call(|c| c.reusable(&req.view.digest)) {
        Ok(f) => f,
        Err(e) => {
            out.detail(&format!("no approval to reuse: {e}"));
            return None;
        }
    };
    // The newest approval first: it leaves the most of the window.
    let mut candidates: Vec<(String, RemoteRequest)> = found
        .into_iter()
        .filter(|r| r.status == RequestStatus::Approved && r.digest == req.view.digest)
        .filter_map(|r| {
            let v = verify_approval(
                &r,
                &key,
                &r.id,
                &req.view.digest,
                &req.view.requester.user,
                requirement,
            )
            .ok()?;
            // An approval that released secrets has spent its one release: not reusable.
            if !v.release.is_empty() {
                return None;
            }
            Some((v.note, r))
        })
        .collect();
    candidates.sort_by(|a, b| b.1.id.cmp(&a.1.id));
    for (note, r) in candidates {
        if let Ok(v) = accepted(&note, &key, &r.id, &req.view.digest, &me, window, "reuse") {
            out.info(&format!(
                "reusing the approval of request {} (`approval.reuse`: {})",
                r.id,
                humantime::format_duration(window)
            ));
            return Some(v);
        }
    }
    None
}

/// Why a signed approval is not acted on.
enum Refusal {
    /// Its last approval is older than the window.
    Stale(String),
    /// Anything else: not signed by the pinned key, another request, digest or requester.
    Other(String),
}

/// Opens the signed `note` and checks it approves request `id` for `digest`, was asked by
/// `me`, and its last approval is at most `window` old; the verdict to run on it.
fn accepted(
    note: &str,
    key: &NoteVerifier,
    id: &str,
    digest: &str,
    me: &str,
    window: Duration,
    via: &str,
) -> Result<Verdict, Refusal> {
    let (statement, _) = Statement::open(note, std::slice::from_ref(key))
        .map_err(|e| Refusal::Other(e.to_string()))?;
    statement
        .approves(id, digest)
        .map_err(|e| Refusal::Other(e.to_string()))?;
    if statement.requester != me {
        return Err(Refusal::Other(format!(
            "the signed statement names the requester {}, not {me}",
            statement.requester
        )));
    }
    let last = statement
        .approvals
        .iter()
        .filter_map(|v| humantime::parse_rfc3339(&v.at).ok())
        .max()
        .ok_or_else(|| Refusal::Other("the signed statement lists no approval".into()))?;
    let age = SystemTime::now().duration_since(last).unwrap_or_default();
    if age > window {
        return Err(Refusal::Stale(format!(
            "the approval of request {id} is {} old, more than the {} it covers; nothing ran",
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_duration(window)
        )));
    }
    let approvals = statement
        .approvals
        .iter()
        .map(|v| crate::audit::Approver {
            principal: v.principal.clone(),
            uid: None,
            at: v.at.clone(),
            via: "server".into(),
            comment: None,
        })
        .collect();
    Ok(Verdict::Run {
        outcome: Outcome::Approved,
        approvals,
        statement: Some(note.to_owned()),
        reuse: Some(ReuseOf {
            request_id: id.to_owned(),
            requester: statement.requester.clone(),
            approvers: statement
                .approvals
                .iter()
                .map(|v| v.principal.clone())
                .collect(),
            via: via.to_owned(),
        }),
        release: None,
    })
}

/// The principal of the token this gate holds, as the server reports it.
#[allow(clippy::result_large_err)]
fn principal(client: &Replicas) -> Result<String, Verdict> {
    let v = client.call(Client::me).map_err(|e| match e {
        ClientError::Unauthorized(m) => Verdict::stop(
            Outcome::Error,
            Error::config(format!("the gate server refused the token: {m}")),
        ),
        e => Verdict::no_decision(format!("cannot ask the gate server who you are: {e}"), None),
    })?;
    v["principal"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Verdict::no_decision("the gate server did not say who you are".into(), None))
}

fn denied(message: String, hint: &str) -> Verdict {
    Verdict::stop(
        Outcome::Denied,
        Error::Denied {
            message,
            hint: Some(hint.to_owned()),
        },
    )
}

fn unproven(server: &Server<'_>, key: &NoteVerifier, id: &str, why: &str) -> Verdict {
    Verdict::no_decision(
        format!(
            "{} answered that request {id} is approved, but {why}; refusing to run",
            server.url
        ),
        Some(format!(
            "nothing ran: an approval counts only when signed by the server key the policy pins ({}+{:08x})",
            key.name, key.id
        )),
    )
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
