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

pub fn list(env: &Env, out: &Output, as_json: bool, cli_policy: &[PathBuf]) -> Result<i32, Error> {
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
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
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
