//! `gate requests`, `gate approve`, `gate deny` against the local spool (or a gate server).
//! For the spool, what an approver sees and signs is what this process recomputes from the
//! request it shows — never what the requester's file claims about itself.

use std::path::PathBuf;

use crate::approval::local::{LocalError, Spool, SpoolRequest};
use crate::commands::request_view::{self, REDACTED, RequestShown, Seen, see};
use crate::config::Env;
use crate::error::Error;
use crate::identity::Identity;
use crate::output::{Output, escape};
use crate::policy::Policy;
use crate::request::shell_join;

/// At most this many "skipping ..." warnings from one listing.
const MAX_WARNINGS: usize = 20;

/// The spool, and this user's policy to classify what it holds. The spool can come from the
/// policy: then a broken policy is reported, not guessed around; with `GATE_SPOOL` set it is
/// only a warning, and requests are shown without this user's classification.
fn spool(
    env: &Env,
    out: &Output,
    cli_policy: &[PathBuf],
) -> Result<(Spool, Option<Policy>), Error> {
    let policy = match env.load_policy(cli_policy) {
        Ok(p) => Some(p),
        Err(e) if env.spool.is_some() => {
            out.warn(&format!("cannot classify requests with your policy: {e}"));
            None
        }
        Err(e) => return Err(e.into()),
    };
    Ok((Spool::new(env.spool_path(policy.as_ref(), None)), policy))
}

/// What to do when an id names nothing, or too much.
const LIST_HINT: &str = "`gate requests` lists what is pending, each with its short id";

fn local_error(e: LocalError) -> Error {
    match e {
        LocalError::Refused(m) => Error::Denied {
            message: m,
            hint: None,
        },
        LocalError::BadId(_) | LocalError::Query(_) => Error::Usage(e.to_string()),
        // An entry that is there but not a request anyone may act on: no request by that id.
        LocalError::NotFound(..) | LocalError::BadRequest(..) => Error::NoSuchRequest {
            message: e.to_string(),
            hint: Some(LIST_HINT.into()),
        },
        LocalError::Ambiguous { typed, candidates } => Error::NoSuchRequest {
            message: format!(
                "`{typed}` matches {} pending requests:\n{}",
                candidates.len(),
                candidates
                    .iter()
                    .map(|r| format!(
                        "  {}  {}: {}",
                        r.request.id,
                        escape(&r.request.requester.user),
                        escape(&shell_join(&r.request.command.argv))
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            hint: Some("give more of the id (the whole id always works)".into()),
        },
        other => Error::config(other.to_string()),
    }
}

/// The server to talk to: `--server`, else `GATE_SERVER`.
fn server_url<'a>(env: &'a Env, flag: Option<&'a str>) -> Option<&'a str> {
    flag.or(env.server.as_deref())
}

fn client(env: &Env, url: &str) -> Result<crate::approval::server::Client, Error> {
    let token = env.server_token(url).ok_or_else(|| {
        Error::config_hint(
            format!("no token for the gate server {url}"),
            format!("run `gate login {url}`, or set `GATE_TOKEN`"),
        )
    })?;
    crate::approval::server::Client::with_trust(url, token, &env.trust()).map_err(|e| {
        Error::config_hint(
            e.to_string(),
            "`--ca` (or `GATE_CA`) names a PEM file of the CA certificates that sign the server's",
        )
    })
}

fn remote_error(e: crate::approval::server::ClientError) -> Error {
    use crate::approval::server::ClientError as E;
    match e {
        e @ E::Tls { .. } => Error::NoDecision {
            message: e.to_string(),
            hint: Some(crate::approval::server::TLS_HINT.into()),
        },
        E::Unauthorized(m) => Error::config_hint(
            format!("the server refused the token: {m}"),
            "run `gate login URL` again",
        ),
        E::Rejected {
            status: 403,
            message,
            ..
        } => Error::Denied {
            message,
            hint: None,
        },
        // The id names no request, or several: not a fault of the setup.
        E::Rejected {
            status: 404,
            message,
            ..
        } => Error::NoSuchRequest {
            message,
            hint: Some("`gate requests --server URL` lists what is pending".into()),
        },
        E::Rejected {
            status: 409,
            code,
            message,
        } if code == "ambiguous" => Error::NoSuchRequest {
            message,
            hint: Some("give more of the id (the whole id always works)".into()),
        },
        // Decided already, expired, or this principal has decided it: refused, as the spool
        // refuses the same.
        E::Rejected {
            status: 409,
            message,
            ..
        } => Error::Denied {
            message,
            hint: Some("`gate requests --server URL ID` shows where it stands".into()),
        },
        other => Error::NoDecision {
            message: other.to_string(),
            hint: None,
        },
    }
}

/// `gate requests [ID]`: every pending request in a row each, or the one `id` names in full;
/// `--json`, the same in the documented shape ([`request_view::FORMAT`]), one object per line.
pub fn list(
    env: &Env,
    out: &Output,
    id: Option<&str>,
    as_json: bool,
    server: Option<&str>,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    let (shown, place): (Vec<RequestShown>, String) = if let Some(url) = server_url(env, server) {
        let c = client(env, url)?;
        let shown = match id {
            Some(id) => {
                // The server resolves a part of an id among what this token may see.
                let one = c.get_value(&typed_id(id)?).map_err(remote_error)?;
                vec![request_view::server(&one, url).map_err(bad_answer)?]
            }
            None => c
                .list_pending()
                .map_err(remote_error)?
                .iter()
                .map(|v| request_view::server(v, url))
                .collect::<Result<_, _>>()
                .map_err(bad_answer)?,
        };
        (shown, format!("on {url}"))
    } else {
        let (spool, policy) = spool(env, out, cli_policy)?;
        let pending = match id {
            Some(id) => vec![spool.find(id).map_err(local_error)?],
            None => {
                let (pending, warnings) = spool.pending().map_err(local_error)?;
                // Anyone who can write the spool can fill it with junk: say so, without a flood.
                for w in warnings.iter().take(MAX_WARNINGS) {
                    out.warn(&escape(w));
                }
                if warnings.len() > MAX_WARNINGS {
                    out.warn(&format!(
                        "... and {} more entries in the spool that are not usable requests",
                        warnings.len() - MAX_WARNINGS
                    ));
                }
                pending
            }
        };
        let shown = pending
            .iter()
            .map(|r| local_shown(&spool, policy.as_ref(), r).0)
            .collect();
        (shown, format!("in {}", spool.root().display()))
    };
    if as_json {
        for r in &shown {
            out.data(&serde_json::to_string(r).map_err(Error::internal)?);
        }
        return Ok(0);
    }
    if id.is_some() {
        let lines: Vec<String> = shown.iter().flat_map(request_view::detail).collect();
        out.text(&lines.join("\n"));
        return Ok(0);
    }
    if shown.is_empty() {
        out.info(&format!("no pending requests {place}"));
        return Ok(0);
    }
    out.text(&request_view::table(&shown).join("\n"));
    Ok(0)
}

/// What was typed as an id, checked before it goes anywhere: a usage error (2) when it cannot
/// be one.
fn typed_id(typed: &str) -> Result<String, Error> {
    crate::request::IdQuery::parse(typed)
        .map(|q| q.as_str().to_owned())
        .map_err(|e| Error::Usage(e.to_string()))
}

/// `1 more approval needed`.
fn more_needed(n: u32) -> String {
    format!("{n} more approval{} needed", if n == 1 { "" } else { "s" })
}

/// A server answer that is not the request it should be.
fn bad_answer(message: String) -> Error {
    Error::NoDecision {
        message,
        hint: None,
    }
}

/// A spooled request as this user sees it, and the reading behind it.
fn local_shown(spool: &Spool, policy: Option<&Policy>, r: &SpoolRequest) -> (RequestShown, Seen) {
    let seen = see(policy, r);
    let digest = match &seen.digest {
        Ok((d, _)) => d.clone(),
        // Nothing this user signs can count; still show who has decided.
        Err(_) => r.request.shown_digest(),
    };
    let scan = spool.decisions(r, &digest).map_err(|e| e.to_string());
    let shown = request_view::local(r, &seen, scan, &spool.root().display().to_string());
    (shown, seen)
}

pub fn decide(
    env: &Env,
    out: &Output,
    id: &str,
    approve: bool,
    comment: Option<String>,
    server: Option<&str>,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    if let Some(url) = server_url(env, server) {
        // Checked here too, so what was typed never becomes more of the URL than an id.
        let id = typed_id(id)?;
        let c = client(env, url)?;
        let r = if approve {
            c.approve(&id, comment.as_deref())
        } else {
            c.deny(&id, comment.as_deref().unwrap_or(""))
        }
        .map_err(remote_error)?;
        let names: Vec<&str> = r.approvals.iter().map(|a| a.principal.as_str()).collect();
        let have = names.len() as u32;
        out.info(&format!(
            "{} request {} on {url}; it is now {}{}",
            if approve { "approved" } else { "denied" },
            escape(&r.id),
            r.status,
            if r.status.is_pending() {
                format!(
                    ": {have} of {} approvals so far ({}); {}",
                    have + r.needed,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        escape(&names.join(", ")).into_owned()
                    },
                    more_needed(r.needed),
                )
            } else {
                String::new()
            }
        ));
        return Ok(0);
    }
    let (spool, policy) = spool(env, out, cli_policy)?;
    let me = Identity::current();
    let req = spool.find(id).map_err(local_error)?;
    let (shown, seen) = local_shown(&spool, policy.as_ref(), &req);
    // Sign what this user was shown, recomputed here; never the digest the file claims.
    let digest = match &seen.digest {
        Ok((d, _)) => d.clone(),
        // A denial needs no digest: it stops the request whatever it says.
        Err(_) if !approve => req.request.shown_digest(),
        Err(e) => {
            return Err(Error::Denied {
                message: format!(
                    "not approving request {}: {}, so you cannot see what you would approve",
                    req.request.id,
                    escape(&e.to_string())
                ),
                hint: Some(
                    "ask the requester to make it readable to you, or deny the request".into(),
                ),
            });
        }
    };
    // The requester's own policy chooses what is redacted; a program nobody can see is not
    // something to sign.
    if approve
        && req
            .request
            .command
            .argv
            .first()
            .is_none_or(|p| p.contains(REDACTED))
    {
        return Err(Error::Denied {
            message: format!(
                "not approving request {}: the program it runs is hidden by redaction, so you \
                 cannot see what you would approve",
                req.request.id
            ),
            hint: Some(
                "deny it, or ask for it without a `redact` pattern that hides the program".into(),
            ),
        });
    }
    if let Ok(c) = &seen.mine {
        let mine: Vec<String> = c.matched.iter().map(|m| m.name.clone()).collect();
        if mine != req.rules {
            out.warn(&format!(
                "the request file says rules `{}`; your policy matches `{}` ({})",
                escape(&req.rules.join(", ")),
                mine.join(", "),
                c.decision.as_str()
            ));
        }
    }
    // What is signed is shown as it is signed: the file may have changed since `gate requests`.
    if !out.quiet {
        out.raw_stderr(&format!(
            "gate: {} this request:\n{}",
            if approve { "approving" } else { "denying" },
            request_view::detail(&shown).join("\n")
        ));
    }
    // An approver at a terminal confirms what it is about to sign; a script is not asked.
    if approve
        && out.interactive()
        && !out.ask(&format!(
            "approve request {} exactly as shown above?",
            req.request.id
        ))
    {
        out.info("not approved; nothing was written");
        return Ok(1);
    }
    let path = spool
        .decide(&req, approve, comment, me.uid, &me.user, &digest)
        .map_err(local_error)?;
    out.info(&format!(
        "{} request {} ({}) as {}",
        if approve { "approved" } else { "denied" },
        req.request.id,
        escape(&shell_join(&req.request.command.argv)),
        me.user
    ));
    // Where it stands now, counted as the waiting gate counts.
    if approve && let Ok(now) = spool.decisions(&req, &digest) {
        let names: Vec<&str> = now.approvals.iter().map(|a| a.principal.as_str()).collect();
        let have = names.len() as u32;
        let needed = req
            .requirement
            .min_approvals
            .saturating_sub(have)
            .max(u32::from(!req.requirement.satisfied_by(
                &names.iter().map(|n| (*n).to_owned()).collect(),
            )));
        out.info(&format!(
            "{have} of {} approvals so far ({}){}",
            have + needed,
            escape(&names.join(", ")),
            if needed == 0 {
                "; the waiting gate runs it now".to_owned()
            } else {
                format!("; {}", more_needed(needed))
            }
        ));
    }
    out.detail(&format!(
        "decision written to {} (digest {digest})",
        path.display()
    ));
    Ok(0)
}
