//! Asking for approval and waiting for it: the `local` spool or the gate server, turned into
//! the run's go / no-go. The backends themselves live in `crate::approval`.

use std::time::Duration;

use serde_json::json;

use super::RunOptions;
use super::verdict::{Outcome, Verdict, why_approval};
use crate::approval::Outcome as Waited;
use crate::approval::local::{LocalError, Reach, SHARED_SPOOL_HINT, Spool, SpoolRequest, now_unix};
use crate::approval::server::{
    Client, ClientError, Expect, RemoteRequest, Replicas, Signed, WaitError, retry, wait,
};
use crate::config::Env;
use crate::error::Error;
use crate::exec::Cancel;
use crate::output::{Output, Waiting};
use crate::policy::{BackendKind, Classification, Decision, Policy, Requirement};
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
    approve_outliving(opts, env, out, policy, req, class, cancel, false)
}

/// [`approve`]; with `outlive`, a request on a server lives as long as the policy allows even
/// when this wait is shorter (an agent hook's), so that it can still be approved afterwards
/// and the same command asked again goes ahead.
#[allow(clippy::too_many_arguments)]
pub(super) fn approve_outliving(
    opts: &RunOptions,
    env: &Env,
    out: &Output,
    policy: &Policy,
    req: &Request,
    class: &Classification,
    cancel: &Cancel,
    outlive: bool,
) -> Result<Verdict, Error> {
    let Some(requirement) = class.requirement.clone() else {
        return Ok(Verdict::stop(
            Outcome::Error,
            Error::internal("approve without requirement"),
        ));
    };
    let backend_name = requirement.backend.clone();
    let mut timeout = capped_timeout(out, opts.timeout, policy, class, &requirement);
    // The server that approved, for fetching what it releases to the run.
    let mut approved_by: Option<&str> = None;
    let (outcome, signed) = match backend_name.as_deref().and_then(|b| policy.backends.get(b)) {
        // A spooled request lives only as long as the gate that waits on it, and the local
        // log is the requester's own: neither can carry an approval to a later run.
        None | Some(BackendKind::Local { .. }) if opts.no_wait || opts.request.is_some() => {
            return Ok(Verdict::stop(
                Outcome::Error,
                Error::config_hint(
                    format!(
                        "`{}` needs a `kind: server` backend: a request in the local spool lives                          only while its gate waits",
                        if opts.no_wait {
                            "--no-wait"
                        } else {
                            "--request"
                        }
                    ),
                    "route this rule to a gate server (`approval.backend` or `defaults.backend`),                      or run without it and wait",
                ),
            ));
        }
        None | Some(BackendKind::Local { .. }) => {
            match wait_local(env, out, policy, req, class, &requirement, timeout, cancel)? {
                Ok(o) => (o, None),
                Err(stopped) => return Ok(stopped),
            }
        }
        Some(BackendKind::Server {
            url, urls, key, ca, ..
        }) => {
            let server = super::two_stage::Server {
                url,
                urls,
                key,
                ca: ca.as_deref(),
            };
            if let Some(id) = &opts.request {
                let wait_for = opts.wait.then_some(timeout);
                return Ok(super::two_stage::redeem(
                    env,
                    out,
                    &server,
                    req,
                    &requirement,
                    id,
                    wait_for,
                    cancel,
                ));
            }
            if opts.no_wait {
                return Ok(super::two_stage::file(
                    env,
                    out,
                    &server,
                    req,
                    class,
                    &requirement,
                    timeout,
                ));
            }
            if let Some(v) = super::two_stage::reuse(env, out, &server, req, &requirement) {
                return Ok(v);
            }
            approved_by = Some(url);
            match wait_server(
                env,
                out,
                &server,
                req,
                class,
                &requirement,
                &mut timeout,
                outlive.then_some(requirement.timeout),
                cancel,
            ) {
                Ok(o) => o,
                Err(stopped) => return Ok(stopped),
            }
        }
        Some(BackendKind::Slack {
            channel,
            token,
            api_url,
            poll,
            ..
        }) => {
            let b = super::slack::SlackBackend {
                name: backend_name.as_deref().unwrap_or_default(),
                channel,
                token,
                api_url: api_url.as_deref(),
                poll: *poll,
            };
            match super::slack::wait_slack(
                out,
                policy,
                &b,
                req,
                class,
                &requirement,
                timeout,
                cancel,
            ) {
                Ok(o) => (o, None),
                Err(stopped) => return Ok(stopped),
            }
        }
        Some(BackendKind::Teams { .. }) => {
            let (message, hint) =
                crate::approval::teams::needs_server(backend_name.as_deref().unwrap_or_default());
            return Ok(Verdict::no_decision(message, Some(hint)));
        }
    };
    let release = match (approved_by, &signed) {
        (Some(url), Some(s)) if !s.release.is_empty() => Some(super::release::Plan {
            url: url.to_owned(),
            request_id: req.id().to_owned(),
            vars: s.release.clone(),
        }),
        _ => None,
    };
    let statement = signed.map(|s| s.note);
    Ok(verdict_of(
        out,
        outcome,
        statement,
        release,
        timeout,
        &requirement,
    ))
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
) -> Result<Result<Waited, Verdict>, Error> {
    let backend_name = requirement.backend.clone();
    let spool = Spool::new(env.spool_path(Some(policy), backend_name.as_deref()));
    let spooled = SpoolRequest {
        request: req.view.clone(),
        decision: class.decision.as_str().to_owned(),
        rules: class.matched.iter().map(|r| r.name.clone()).collect(),
        requirement: requirement.clone(),
        created: crate::audit::record::now(),
        expires_unix: now_unix().saturating_add(timeout.as_secs()),
        pid: std::process::id(),
    };
    // A spool the requester could clear of decisions gives no decision (75); one that cannot
    // be used at all is a configuration error (78). Either way nothing runs, and the decision
    // is still recorded.
    let pending = match spool.submit(&spooled) {
        Ok(p) => p,
        Err(e @ LocalError::Unsafe { .. }) => {
            return Ok(Err(Verdict::no_decision(
                e.to_string(),
                Some(SHARED_SPOOL_HINT.to_owned()),
            )));
        }
        // The shared spool is there, but this user is not one of those who may use it.
        Err(e @ LocalError::Io { .. }) if e.permission_denied() => {
            let group = spool.group().unwrap_or_else(|| "gate".to_owned());
            return Ok(Err(Verdict::stop(
                Outcome::Error,
                Error::config_hint(
                    e.to_string(),
                    format!(
                        "only members of the group `{g}` may use this spool: an admin runs \
                         `sudo usermod -aG {g} {user}`, and the membership applies from your \
                         next login",
                        g = crate::output::escape(&group),
                        user = crate::output::escape(&req.view.requester.user),
                    ),
                ),
            )));
        }
        Err(e) => {
            return Ok(Err(Verdict::stop(
                Outcome::Error,
                Error::config_hint(
                    e.to_string(),
                    format!(
                        "set `GATE_SPOOL` or `backends.<name>.spool` to a shared spool: {SHARED_SPOOL_HINT}"
                    ),
                ),
            )));
        }
    };
    // Waiting where no eligible approver can see the request would be waiting in vain.
    if let Some(stopped) = out_of_reach(out, &spool, req, class, requirement) {
        drop(pending);
        return Ok(Err(stopped));
    }
    announce(
        out,
        &needs_line(req, class, requirement.min_approvals, req.id()),
        &format!("gate approve {}", crate::request::short_id(req.id())),
        req.id(),
    );
    let mut waiter = out.waiter(waiting(req, requirement, timeout));
    let result = pending.wait(&spooled, timeout, &cancel.flag, &mut |p| waiter.update(p));
    waiter.finish();
    drop(pending);
    let outcome = result.map_err(|e| Error::NoDecision {
        message: format!("lost track of the request: {e}"),
        hint: None,
    })?;
    Ok(Ok(outcome))
}

/// The stop when no eligible approver — or too few of them — can use the spool: the request
/// would wait for nobody. Warns about approvers the policy names who are no users here.
fn out_of_reach(
    out: &Output,
    spool: &Spool,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
) -> Option<Verdict> {
    let report = match spool.reach(requirement, req.view.requester.uid) {
        Ok(r) => r,
        Err(e) => {
            return Some(Verdict::stop(Outcome::Error, Error::config(e.to_string())));
        }
    };
    if !report.unknown.is_empty() {
        out.warn(&format!(
            "{} named as approver{} in the policy {} no user on this host, so cannot approve \
             through the local spool",
            report
                .unknown
                .iter()
                .map(|n| format!("`{}`", crate::output::escape(n)))
                .collect::<Vec<_>>()
                .join(", "),
            if report.unknown.len() == 1 { "" } else { "s" },
            if report.unknown.len() == 1 {
                "is"
            } else {
                "are"
            },
        ));
    }
    let (who, why) = match report.reach {
        Reach::Reachable(_) => (None, Vec::new()),
        Reach::Nobody { why } => (Some("nobody who may approve it can use".to_owned()), why),
        Reach::TooFew { can, why } => (
            Some(format!(
                "only {} of those who may approve it ({}) can use",
                can.len(),
                crate::output::escape(&can.join(", "))
            )),
            why,
        ),
    };
    let who = who?;
    let shown: Vec<String> = why
        .iter()
        .take(5)
        .map(|w| crate::output::escape(w).into_owned())
        .collect();
    let more = why.len().saturating_sub(shown.len());
    Some(Verdict::no_decision(
        format!(
            "{} needs {} ({}), but {who} the spool `{}`, so it would wait in vain: \
             {}{}",
            crate::output::escape(&shell_join(&req.view.command.argv)),
            if requirement.min_approvals == 1 {
                "an approval".to_owned()
            } else {
                format!("{} approvals", requirement.min_approvals)
            },
            why_approval(class),
            spool.root().display(),
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ),
        Some(unreachable_hint(&report.group)),
    ))
}

/// How to let approvers reach a spool: join its group, or make the shared one.
fn unreachable_hint(group: &str) -> String {
    let join = |g: &str| {
        format!(
            "add each approver to the group `{g}` (`sudo usermod -aG {g} NAME`; it applies from \
             their next login)"
        )
    };
    if group == "root" || group.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "an admin runs `sudo gate setup local` once (a shared spool for the group `gate`, \
             named by the system policy), then {}",
            join("gate")
        )
    } else {
        format!(
            "{}, or run `sudo gate setup local` for a shared spool",
            join(&crate::output::escape(group))
        )
    }
}

/// The server backend: submit, then long-poll until decided, retrying transport errors until
/// the deadline. The server decides eligibility; the client believes an approval only as a
/// statement signed by the pinned `key`, for its own request id and digest, listing approvers
/// that meet its requirement — anything else is no decision (75) and nothing runs. Returns the
/// outcome and, for an approval, the statement to record; `timeout` becomes the server's limit
/// when its policy allows less.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn wait_server(
    env: &Env,
    out: &Output,
    server: &super::two_stage::Server<'_>,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: &mut Duration,
    lifetime: Option<Duration>,
    cancel: &Cancel,
) -> Result<(Waited, Option<Signed>), Verdict> {
    let config = |message: String, hint: String| {
        Verdict::stop(Outcome::Error, Error::config_hint(message, hint))
    };
    let (client, key) = connect(env, server)?;
    // A hook's request outlives the hook's own wait, so that it can be approved after the
    // hook gave up and the retry finds it approved.
    let body = request_body(
        req,
        class,
        requirement,
        lifetime.map_or(*timeout, |l| l.max(*timeout)),
    )?;
    let started = std::time::Instant::now();
    let deadline = deadline_after(started, *timeout);
    let cancelled = || cancel.is_set();
    let warn = |e: &ClientError| out.warn(&format!("{e}; retrying"));
    // Created on the first replica that answers.
    let created = retry(
        deadline,
        || {
            client.call(|c| match c.create(&body) {
                // A retry after a lost answer: the request is there already.
                Err(ClientError::Rejected { code, .. }) if code == "exists" => {
                    c.get(req.id(), Duration::ZERO)
                }
                other => other,
            })
        },
        warn,
        &cancelled,
    );
    wait_created(
        out,
        &client,
        &key,
        created,
        req,
        class,
        requirement,
        timeout,
        cancel,
        deadline,
        &config,
    )
}

/// The clients of the server backend's addresses, with the decision key the policy pins for
/// it: a key or `ca:` file that cannot be read, or no token, is a configuration error (78).
/// The token is the first one found for any of the addresses: they are one server.
#[allow(clippy::result_large_err)]
pub(super) fn connect(
    env: &Env,
    server: &super::two_stage::Server<'_>,
) -> Result<(Replicas, crate::audit::note::NoteVerifier), Verdict> {
    let url = server.url;
    let config = |message: String, hint: String| {
        Verdict::stop(Outcome::Error, Error::config_hint(message, hint))
    };
    let key = crate::audit::note::NoteVerifier::parse(server.key).map_err(|e| {
        config(
            format!("the `key` of the server backend for {url} is unusable: {e}"),
            format!("`gate login {url}` prints the server's key"),
        )
    })?;
    let Some(token) = server.urls.iter().find_map(|u| env.server_token(u)) else {
        return Err(config(
            format!("no token for the gate server {url}"),
            format!("run `gate login {url}`, or set `GATE_TOKEN`"),
        ));
    };
    let trust = server.ca.map_or(crate::http::Trust::System, |p| {
        crate::http::Trust::Ca(p.to_owned())
    });
    let mut clients = Vec::new();
    for u in server.urls {
        clients.push(
            Client::with_trust(u, token.clone(), &trust).map_err(|e| {
                config(
                    format!("the server backend for {url}: {e}"),
                    "`ca:` names a PEM file of the certificate authorities that sign the server's certificate".into(),
                )
            })?,
        );
    }
    let replicas = Replicas::new(clients).ok_or_else(|| {
        config(
            "the server backend names no address".into(),
            "give it `url:` or `urls:`".into(),
        )
    })?;
    Ok((replicas, key))
}

/// The body of `POST /v1/requests` for `req`.
///
/// A CI job's OIDC ID token goes with it to the server, which alone verifies it (issue 13 §6).
/// One that was offered but cannot be had stops here: nothing runs on a silently lost identity.
#[allow(clippy::result_large_err)]
pub(super) fn request_body(
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: Duration,
) -> Result<serde_json::Value, Verdict> {
    let ci_token = crate::ci::token::from_env().map_err(|e| {
        Verdict::no_decision(
            e.to_string(),
            Some("nothing ran; see docs/ci.md for the job's `id-token` permission".into()),
        )
    })?;
    let context: std::collections::BTreeMap<String, String> = req
        .env
        .iter()
        .filter(|(k, _)| req.view.context.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let who = &req.view.requester;
    let mut body = json!({
        "id": req.id(),
        "argv": req.argv,
        "cwd": req.view.command.cwd,
        "env": context,
        "payload": req.view.command.payload,
        "executable": req.view.command.executable,
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
    if let Some(t) = &ci_token {
        // Only when there is one: a server from before issue 13 refuses unknown fields.
        body["ci_token"] = t.expose().into();
    }
    Ok(body)
}

/// The wait after `POST /v1/requests` answered `created`.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn wait_created(
    out: &Output,
    client: &Replicas,
    key: &crate::audit::note::NoteVerifier,
    created: Result<RemoteRequest, ClientError>,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: &mut Duration,
    cancel: &Cancel,
    deadline: std::time::Instant,
    config: &dyn Fn(String, String) -> Verdict,
) -> Result<(Waited, Option<Signed>), Verdict> {
    let url = client.current().base().to_owned();
    let current: RemoteRequest = match created {
        Ok(r) => r,
        Err(ClientError::Unauthorized(m)) => {
            return Err(config(
                format!("the gate server {url} refused the token: {m}"),
                format!("run `gate login {url}` with a valid token, or set `GATE_TOKEN`"),
            ));
        }
        Err(e) if cancel.is_set() => {
            return Err(Verdict::no_decision(format!("cancelled: {e}"), None));
        }
        Err(e @ ClientError::Tls { .. }) => {
            return Err(Verdict::no_decision(
                format!("no decision: {e}"),
                Some(format!(
                    "nothing ran; {}",
                    crate::approval::server::TLS_HINT
                )),
            ));
        }
        Err(e) => {
            return Err(Verdict::no_decision(
                format!("no decision: {e}"),
                Some("nothing ran; the command runs only with an approval from the server".into()),
            ));
        }
    };
    announce(
        out,
        &format!(
            "{} on {url}",
            needs_line(req, class, current.needed.max(1), &current.id)
        ),
        &format!("gate approve --server {url} {}", current.id),
        &current.id,
    );
    // The server's policy sets how long the request lives there; when it allows less than
    // this side's, the request ends at the server's expiry: say so now, not at the end.
    if let Some(limit) = server_limit(&current)
        && limit + Duration::from_secs(1) < *timeout
    {
        out.info(&format!(
            "waiting at most {}: the limit of the gate server's policy for this command",
            humantime::format_duration(limit)
        ));
        *timeout = limit;
    }
    // Who can approve, as the server decides it (its requirement combines both policies).
    let shown = current
        .rest
        .get("requirement")
        .and_then(|r| serde_json::from_value::<Requirement>(r.clone()).ok());
    let expect = Expect {
        key,
        id: req.id(),
        digest: &req.view.digest,
        requester: &req.view.requester.user,
        requirement,
    };
    let mut waiter = out.waiter(waiting(
        req,
        shown.as_ref().unwrap_or(requirement),
        *timeout,
    ));
    let waited = wait(
        client,
        current,
        &expect,
        deadline,
        &cancel.flag,
        &mut |p| waiter.update(p),
        &mut |e| out.warn(&format!("{e}; still waiting, retrying")),
        &mut |from, to| out.warn(&format!("{from} stopped answering; waiting on {to}")),
    );
    waiter.finish();
    // The replica that answered last, which may not be the one the request was made on.
    let url = client.current().base();
    waited.map_err(|e| match e {
        WaitError::UnprovenApproval(why) => Verdict::no_decision(
            format!("{url} answered `approved`, but {why}; refusing to run"),
            Some(format!(
                "nothing ran: an approval counts only when signed by the server key the policy pins ({}+{:08x})",
                key.name, key.id
            )),
        ),
        WaitError::UnprovenDenial(why) => {
            Verdict::no_decision(format!("{url} answered `denied`, but {why}; nothing ran"), None)
        }
        WaitError::Unauthorized(m) => Verdict::stop(
            Outcome::Error,
            Error::config(format!(
                "the gate server {url} refused the token while waiting: {m}"
            )),
        ),
        WaitError::Failed(e @ ClientError::Tls { .. }) => Verdict::no_decision(
            format!("no decision: {e}"),
            Some(format!("nothing ran; {}", crate::approval::server::TLS_HINT)),
        ),
        WaitError::Failed(e) => {
            Verdict::no_decision(format!("the gate server answered: {e}"), None)
        }
    })
}

/// The wait this run allows: the requirement's timeout, or a shorter `--timeout`. A longer
/// `--timeout` is capped, and said so once (an agent asking for hours gets the policy's limit).
fn capped_timeout(
    out: &Output,
    asked: Option<Duration>,
    policy: &Policy,
    class: &Classification,
    requirement: &Requirement,
) -> Duration {
    let limit = requirement.timeout;
    match asked {
        Some(t) if t > limit => {
            out.info(&format!(
                "waiting at most {}: {}; `--timeout {}` was capped",
                humantime::format_duration(limit),
                limit_source(policy, class, limit),
                humantime::format_duration(t)
            ));
            limit
        }
        Some(t) => t,
        None => limit,
    }
}

/// Which part of the policy sets a wait of `limit`: a matched rule's `timeout`, the default, or
/// (for a command gate cannot read) the rule with the shortest timeout.
fn limit_source(policy: &Policy, class: &Classification, limit: Duration) -> String {
    let sets_it = |r: &&crate::policy::RuleInfo| {
        r.decision == Decision::Approve
            && r.approval.as_ref().and_then(|a| a.timeout) == Some(limit)
    };
    if let Some(r) = class.matched.iter().find(sets_it) {
        return format!("the policy's limit for rule `{}`", r.name);
    }
    if limit == policy.default_timeout {
        return "the policy's default (`defaults.timeout`)".to_owned();
    }
    match policy.rules.iter().find(sets_it) {
        Some(r) => format!("the policy's limit for rule `{}`", r.name),
        None => "the policy's limit".to_owned(),
    }
}

/// `timeout` after `start`, or as far as the clock goes for an absurd one.
fn deadline_after(start: std::time::Instant, timeout: Duration) -> std::time::Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// How long the server lets the request it created wait: `expires` less `created`.
fn server_limit(r: &RemoteRequest) -> Option<Duration> {
    let created = r.rest.get("created")?.as_str()?;
    let created = humantime::parse_rfc3339(created).ok()?;
    let expires = humantime::parse_rfc3339(&r.expires).ok()?;
    expires.duration_since(created).ok()
}

/// The first thing every backend says of a request it waits on: what needs how many
/// approvals, why, and under which request id.
pub(super) fn needs_line(req: &Request, class: &Classification, needed: u32, id: &str) -> String {
    format!(
        "{} needs {needed} approval{} ({}); waiting as request {id}",
        crate::output::escape(&shell_join(&req.view.command.argv)),
        if needed == 1 { "" } else { "s" },
        why_approval(class),
    )
}

/// Tells the requester which request waits and what an approver runs; with `-q`, only the id,
/// once, so it can still be passed on to an approver.
fn announce(out: &Output, waiting: &str, approve: &str, id: &str) {
    if out.quiet {
        out.notice(&format!("request {id}"));
        return;
    }
    out.info(waiting);
    out.info(&format!(
        "an approver runs: {approve} (Ctrl-C here cancels)"
    ));
}

/// What the waiting display shows besides the progress.
pub(super) fn waiting(req: &Request, requirement: &Requirement, timeout: Duration) -> Waiting {
    let mut approvers: Vec<String> = Vec::new();
    for a in requirement.clauses.iter().flat_map(|c| &c.approvers) {
        if !approvers.contains(a) {
            approvers.push(a.clone());
        }
    }
    Waiting {
        command: shell_join(&req.view.command.argv),
        approvers,
        requester_counts: requirement.allow_requester,
        timeout,
    }
}

/// Turns how the wait ended into the go / no-go.
fn verdict_of(
    out: &Output,
    waited: Waited,
    statement: Option<String>,
    release: Option<super::release::Plan>,
    timeout: Duration,
    requirement: &Requirement,
) -> Verdict {
    match waited {
        Waited::Approved(approvals) => {
            let names: Vec<&str> = approvals.iter().map(|a| a.principal.as_str()).collect();
            out.info(&format!("approved by {}", names.join(", ")));
            Verdict::Run {
                outcome: Outcome::Approved,
                approvals,
                statement,
                reuse: None,
                release,
            }
        }
        Waited::Denied {
            by,
            reason,
            approvals,
        } => Verdict::Stop {
            outcome: Outcome::Denied,
            error: Error::Denied {
                message: format!(
                    "denied by {}{}",
                    by.principal,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    }
                ),
                hint: None,
            },
            denied_by: Some(by),
            approvals,
        },
        Waited::TimedOut(approvals) => Verdict::Stop {
            outcome: Outcome::TimedOut,
            error: Error::NoDecision {
                message: format!(
                    "no decision within {} ({} of {} approvals)",
                    humantime::format_duration(timeout),
                    approvals.len(),
                    requirement.min_approvals
                ),
                hint: Some(
                    "run it again when an approver is available, or pass a longer `--timeout`"
                        .into(),
                ),
            },
            denied_by: None,
            approvals,
        },
        Waited::Cancelled(approvals) => Verdict::Stop {
            outcome: Outcome::Cancelled,
            error: Error::NoDecision {
                message: "cancelled while waiting for approval".to_owned(),
                hint: None,
            },
            denied_by: None,
            approvals,
        },
    }
}
