//! `gate requests`, `gate approve`, `gate deny` against the local spool.

use std::path::PathBuf;

use serde_json::json;

use crate::approval::local::{LocalError, Spool};
use crate::config::Env;
use crate::error::Error;
use crate::identity::Identity;
use crate::output::Output;
use crate::request::shell_join;

fn spool(env: &Env, cli_policy: &[PathBuf]) -> Result<Spool, Error> {
    // The spool can come from the policy; a broken policy is reported, not guessed around.
    let policy = if env.spool.is_some() {
        None
    } else {
        Some(crate::run::load_policy(env, cli_policy)?)
    };
    Ok(Spool::new(env.spool_path(policy.as_ref(), None)))
}

fn local_error(e: LocalError) -> Error {
    match e {
        LocalError::Refused(m) => Error::Denied {
            message: m,
            hint: None,
        },
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
    let token = crate::secrets::load(env, url).ok_or_else(|| {
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
                lines.push(format!("request {}", r["id"].as_str().unwrap_or("?")));
                lines.push(format!("  command:   {}", shell_join(&argv)));
                lines.push(format!(
                    "  requester: {} (on {})",
                    r["requester"].as_str().unwrap_or("?"),
                    r["claims"]["host"].as_str().unwrap_or("?")
                ));
                lines.push(format!("  cwd:       {}", r["cwd"].as_str().unwrap_or("?")));
                if let Some(reason) = r["reason"].as_str() {
                    lines.push(format!("  reason:    {reason}"));
                }
                let rules: Vec<&str> = r["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str())
                    .collect();
                lines.push(format!("  rules:     {}", rules.join(", ")));
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
                        approvals.join(", ")
                    },
                    r["needed"]
                ));
                lines.push(format!(
                    "  expires:   {}",
                    r["expires"].as_str().unwrap_or("?")
                ));
                lines.push(String::new());
            }
            lines.pop();
            out.data(&lines.join("\n"));
        }
        return Ok(0);
    }
    let spool = spool(env, cli_policy)?;
    let pending = spool.pending().map_err(local_error)?;
    if as_json {
        for r in &pending {
            out.data(&json!(r).to_string());
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
        let q = &r.request;
        lines.push(format!("request {}", q.id));
        lines.push(format!("  command:   {}", shell_join(&q.command.argv)));
        lines.push(format!(
            "  requester: {} (uid {}) on {}{}",
            q.requester.user,
            q.requester.uid,
            q.requester.host,
            q.requester
                .agent
                .as_ref()
                .map(|a| format!(", agent {a}"))
                .unwrap_or_default()
        ));
        if let Some(ci) = &q.requester.ci {
            lines.push(format!(
                "  ci:        {}",
                ci.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        lines.push(format!("  cwd:       {}", q.command.cwd));
        if !q.context.is_empty() {
            lines.push(format!(
                "  context:   {}",
                q.context
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if let Some(reason) = &q.reason {
            lines.push(format!("  reason:    {reason}"));
        }
        lines.push(format!("  rules:     {}", r.rules.join(", ")));
        let eligible = r
            .requirement
            .eligible()
            .map(|e| e.into_iter().collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "anyone but the requester".into());
        lines.push(format!(
            "  needs:     {} approval{} from {eligible}",
            r.requirement.min_approvals,
            if r.requirement.min_approvals == 1 {
                ""
            } else {
                "s"
            }
        ));
        lines.push(format!("  created:   {}", r.created));
        lines.push(format!("  digest:    {}", q.digest));
        lines.push(String::new());
    }
    lines.pop();
    out.data(&lines.join("\n"));
    Ok(0)
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
            r.id,
            r.status,
            if r.status == "pending" {
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
    let spool = spool(env, cli_policy)?;
    let me = Identity::current();
    let req = spool
        .decide(id, approve, comment, me.uid, &me.user)
        .map_err(local_error)?;
    out.info(&format!(
        "{} request {} ({}) as {}",
        if approve { "approved" } else { "denied" },
        req.request.id,
        shell_join(&req.request.command.argv),
        me.user
    ));
    Ok(0)
}
