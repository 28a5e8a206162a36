//! `gate requests`, `gate approve`, `gate deny` against the local spool (or a gate server).
//! For the spool, what an approver sees and signs is what this process recomputes from the
//! request it shows — never what the requester's file claims about itself.

use std::path::PathBuf;

use serde_json::json;

use crate::approval::local::{LocalError, Spool, SpoolRequest};
use crate::config::Env;
use crate::error::Error;
use crate::identity::Identity;
use crate::output::{Output, escape};
use crate::policy::{Classification, Place, Policy};
use crate::request::{Payload, UnreadablePayload, shell_join};

/// At most this many "skipping ..." warnings from one listing.
const MAX_WARNINGS: usize = 20;

/// What redaction puts in place of what it hides (see `Policy::redact`).
const REDACTED: &str = "[REDACTED]";

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

fn local_error(e: LocalError) -> Error {
    match e {
        LocalError::Refused(m) => Error::Denied {
            message: m,
            hint: None,
        },
        LocalError::BadId(_) => Error::Usage(e.to_string()),
        LocalError::NotFound(..) | LocalError::Ambiguous(_) => Error::Config {
            message: e.to_string(),
            hint: Some("`gate requests` lists what is pending".into()),
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
    crate::approval::server::Client::new(url, token).map_err(|e| Error::config(e.to_string()))
}

fn remote_error(e: crate::approval::server::ClientError) -> Error {
    use crate::approval::server::ClientError as E;
    match e {
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
        E::Rejected {
            status: 404 | 409,
            message,
            ..
        } => Error::Config {
            message,
            hint: Some("`gate requests` lists what is pending".into()),
        },
        other => Error::NoDecision {
            message: other.to_string(),
            hint: None,
        },
    }
}

pub fn list(
    env: &Env,
    out: &Output,
    as_json: bool,
    server: Option<&str>,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    if let Some(url) = server_url(env, server) {
        let pending = client(env, url)?.list_pending().map_err(remote_error)?;
        if as_json {
            for r in &pending {
                out.data(&r.to_string());
            }
        } else if pending.is_empty() {
            out.info(&format!("no pending requests on {url}"));
        } else {
            let mut lines = Vec::new();
            for r in &pending {
                let argv: Vec<String> = r["argv"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                // The server relays what the requester sent: every field is escaped.
                let field = |v: &serde_json::Value| escape(v.as_str().unwrap_or("?")).into_owned();
                lines.push(format!("request {}", field(&r["id"])));
                lines.push(format!("  command:   {}", escape(&shell_join(&argv))));
                lines.push(format!(
                    "  requester: {} (on {})",
                    field(&r["requester"]),
                    field(&r["claims"]["host"])
                ));
                lines.push(format!("  cwd:       {}", field(&r["cwd"])));
                if let Some(reason) = r["reason"].as_str() {
                    lines.push(format!("  reason:    {}", escape(reason)));
                }
                let rules: Vec<&str> = r["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str())
                    .collect();
                lines.push(format!("  rules:     {}", escape(&rules.join(", "))));
                let approvals: Vec<&str> = r["approvals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["principal"].as_str())
                    .collect();
                lines.push(format!(
                    "  approvals: {} so far, {} still needed",
                    if approvals.is_empty() {
                        "none".to_owned()
                    } else {
                        escape(&approvals.join(", ")).into_owned()
                    },
                    r["needed"]
                ));
                lines.push(format!("  expires:   {}", field(&r["expires"])));
                lines.push(String::new());
            }
            lines.pop();
            out.text(&lines.join("\n"));
        }
        return Ok(0);
    }
    let (spool, policy) = spool(env, out, cli_policy)?;
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
    if as_json {
        for r in &pending {
            let mut v = json!(r);
            // What this approver makes of it, next to what the requester wrote.
            v["seen"] = see(policy.as_ref(), r).to_json();
            out.data(&v.to_string());
        }
        return Ok(0);
    }
    if pending.is_empty() {
        out.info(&format!(
            "no pending requests in {}",
            spool.root().display()
        ));
        return Ok(0);
    }
    let mut lines = Vec::new();
    for r in &pending {
        show_local(&mut lines, r, &see(policy.as_ref(), r));
        lines.push(String::new());
    }
    lines.pop();
    out.text(&lines.join("\n"));
    Ok(0)
}

/// What an approver makes of a spooled request, by itself: the digest recomputed from what it
/// is shown (payload files hashed again, as this user), and its own policy's classification of
/// the shown command. The request file's own `digest`, `rules` and payload hashes are the
/// requester's word and decide nothing.
struct Seen {
    digest: Result<(String, Vec<Payload>), UnreadablePayload>,
    mine: Result<Classification, Unclassified>,
}

/// Why the approver's own policy gives no reading of a spooled request.
#[derive(Debug, thiserror::Error)]
enum Unclassified {
    #[error("your policy could not be loaded")]
    NoPolicy,
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
}

fn see(policy: Option<&Policy>, r: &SpoolRequest) -> Seen {
    let q = &r.request;
    let mine = match policy {
        None => Err(Unclassified::NoPolicy),
        Some(p) => p
            .try_classify_argv(
                &q.command.argv,
                &Place {
                    env: &q.context,
                    cwd: &q.command.cwd,
                    user: &q.requester.user,
                    host: &q.requester.host,
                    // The requester's PATH is not at hand here: its own gate classifies the
                    // symlinked names; this reading is what the approver is shown.
                    links: None,
                },
            )
            .map_err(Unclassified::from),
    };
    Seen {
        digest: q.recompute_shown_digest(),
        mine,
    }
}

impl Seen {
    fn rules(&self) -> Option<Vec<String>> {
        self.mine
            .as_ref()
            .ok()
            .map(|c| c.matched.iter().map(|m| m.name.clone()).collect())
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "digest": self.digest.as_ref().ok().map(|d| &d.0),
            "payload": self.digest.as_ref().ok().map(|d| &d.1),
            "unreadable": self.digest.as_ref().err().map(|e| e.to_string()),
            "decision": self.mine.as_ref().ok().map(|c| c.decision.as_str()),
            "rules": self.rules(),
        })
    }
}

/// The human-readable entry for one spooled request. Every field the requester wrote is
/// escaped: it is shown, never interpreted by the terminal.
fn show_local(lines: &mut Vec<String>, r: &SpoolRequest, seen: &Seen) {
    let q = &r.request;
    lines.push(format!("request {}", q.id));
    lines.push(format!(
        "  command:   {}",
        escape(&shell_join(&q.command.argv))
    ));
    if q.command.argv.iter().any(|a| a.contains(REDACTED)) {
        lines.push(
            "  note:      parts of this command are redacted: you approve them unseen".into(),
        );
    }
    lines.push(format!(
        "  requester: {} (uid {}) on {}{}",
        escape(&q.requester.user),
        q.requester.uid,
        escape(&q.requester.host),
        q.requester
            .agent
            .as_ref()
            .map(|a| format!(", agent {}", escape(a)))
            .unwrap_or_default()
    ));
    if let Some(ci) = &q.requester.ci {
        lines.push(format!(
            "  ci:        {}",
            escape(
                &ci.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        ));
    }
    lines.push(format!("  cwd:       {}", escape(&q.command.cwd)));
    if !q.context.is_empty() {
        lines.push(format!(
            "  context:   {}",
            escape(
                &q.context
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        ));
    }
    match &seen.digest {
        Ok((_, payload)) => {
            for p in payload {
                lines.push(format!(
                    "  payload:   {} sha256 {} (as you read it now)",
                    escape(&p.path),
                    p.sha256
                        .as_deref()
                        .unwrap_or("- (unreadable by the requester too)")
                ));
            }
        }
        Err(e) => lines.push(format!(
            "  payload:   {} — you cannot approve what you cannot read",
            escape(&e.to_string())
        )),
    }
    if let Some(reason) = &q.reason {
        lines.push(format!("  reason:    {}", escape(reason)));
    }
    let claimed: Vec<String> = r.rules.iter().map(|x| escape(x).into_owned()).collect();
    match &seen.mine {
        Ok(c) => {
            let mine: Vec<String> = c.matched.iter().map(|m| m.name.clone()).collect();
            lines.push(format!(
                "  rules:     {} (your policy: {})",
                if mine.is_empty() {
                    "none".to_owned()
                } else {
                    mine.join(", ")
                },
                c.decision.as_str()
            ));
            if mine != r.rules {
                lines.push(format!(
                    "  note:      the request file says rules `{}` ({}); your policy differs",
                    claimed.join(", "),
                    escape(&r.decision)
                ));
            }
        }
        Err(why) => lines.push(format!(
            "  rules:     {} (as the request file says: {})",
            claimed.join(", "),
            escape(&why.to_string())
        )),
    }
    let eligible = r
        .requirement
        .eligible()
        .map(|e| e.into_iter().collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "anyone but the requester".into());
    lines.push(format!(
        "  needs:     {} approval{} from {}",
        r.requirement.min_approvals,
        if r.requirement.min_approvals == 1 {
            ""
        } else {
            "s"
        },
        escape(&eligible)
    ));
    lines.push(format!("  created:   {}", escape(&r.created)));
    match &seen.digest {
        Ok((d, _)) => lines.push(format!("  digest:    {d} (what `gate approve` signs)")),
        Err(_) => lines.push("  digest:    - (cannot be computed: a payload is unreadable)".into()),
    }
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
        let c = client(env, url)?;
        let r = if approve {
            c.approve(id, comment.as_deref())
        } else {
            c.deny(id, comment.as_deref().unwrap_or(""))
        }
        .map_err(remote_error)?;
        out.info(&format!(
            "{} request {} on {url}; it is now {}{}",
            if approve { "approved" } else { "denied" },
            escape(&r.id),
            r.status,
            if r.status.is_pending() {
                format!(
                    " ({} more approval{} needed)",
                    r.needed,
                    if r.needed == 1 { "" } else { "s" }
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
    let seen = see(policy.as_ref(), &req);
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
        let mut block = Vec::new();
        show_local(&mut block, &req, &seen);
        out.raw_stderr(&format!(
            "gate: {} this request:\n{}",
            if approve { "approving" } else { "denying" },
            block.join("\n")
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
    out.detail(&format!(
        "decision written to {} (digest {digest})",
        path.display()
    ));
    Ok(0)
}
