//! `gate check`: classify a command and explain why, running nothing.

use serde_json::json;

use crate::config::Env;
use crate::error::Error;
use crate::output::{Output, Tone, escape};
use crate::policy::Decision;
use crate::run::{build_request, try_classify};

pub fn check(
    env: &Env,
    out: &Output,
    policy_files: &[std::path::PathBuf],
    argv: Vec<String>,
    as_json: bool,
) -> Result<i32, Error> {
    let policy = env.load_policy_lazy(policy_files)?;
    let (req, executable) = build_request(env, &policy, argv, None)?;
    let class = try_classify(&policy, &req)?;
    if !policy.has_system_tier() {
        // Only here, not on the run path: allowed commands stay instant and quiet.
        out.warn(&format!(
            "no system policy (no *.yaml in {}): your own policy files are the top of trust, and anything running as you can edit them; see docs/threat-model.md",
            crate::config::SYSTEM_POLICY_DIR
        ));
    }
    // Routed to Teams: say where the decision has to come from.
    let teams = class
        .requirement
        .as_ref()
        .and_then(|r| r.backend.as_deref())
        .filter(|b| {
            matches!(
                policy.backends.get(*b),
                Some(crate::policy::BackendKind::Teams { .. })
            )
        })
        .map(crate::approval::teams::needs_server);
    if as_json {
        let v = json!({
            "decision": class.decision,
            "by_default": class.by_default,
            "commands": class.commands,
            "opaque": class.opaque,
            "unread": class.unread,
            "rules": class.matched,
            "requirement": class.requirement,
            "words": req.words.iter().map(|w| policy.redact(w)).collect::<Vec<_>>(),
            "argv": req.view.command.argv,
            "executable": executable.as_ref().ok(),
            "digest": req.view.digest,
            "policy_files": policy.files,
            "system_tier": policy.has_system_tier(),
        });
        if let Some((message, _)) = &teams {
            out.warn(message);
        }
        out.data(&serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    let mut lines = Vec::new();
    // The argv is whoever typed it (an agent's, through a hook): shown with controls escaped.
    lines.push(format!(
        "command:  {}",
        escape(&crate::request::shell_join(&req.view.command.argv))
    ));
    let words: Vec<String> = req.words.iter().map(|w| policy.redact(w)).collect();
    lines.push(format!("words:    {}", escape(&words.join(" "))));
    if class.commands.len() > 1 {
        lines.push("runs:".into());
        for c in &class.commands {
            let shown: Vec<String> = c.iter().map(|w| policy.redact(w)).collect();
            lines.push(format!(
                "  - {}",
                escape(&crate::request::shell_join(&shown))
            ));
        }
    }
    if let Some(why) = &class.opaque {
        lines.push(format!(
            "opaque:   {}; `defaults.opaque_shell` is `{}`",
            escape(why),
            policy.opaque_shell.as_str()
        ));
    }
    if let Some(why) = &class.unread {
        lines.push(format!(
            "as written: {}; `defaults.opaque_arguments` is `{}`",
            escape(why),
            policy.opaque_arguments.as_str()
        ));
    }
    if class.by_default {
        lines.push(match &class.default_from {
            Some(f) => format!(
                "why:      no rule of {} matches, and its `defaults.decision` is `{}`",
                f.display(),
                class.decision.as_str()
            ),
            None => "why:      no rule matches and no file sets `defaults.decision`".to_owned(),
        });
    }
    if !class.matched.is_empty() {
        lines.push("matched rules (the most restrictive decides):".into());
        for r in &class.matched {
            let mark = if r.decision == class.decision {
                "*"
            } else {
                " "
            };
            let extra = [
                r.risk.as_ref().map(|x| format!("risk {x}")),
                r.category.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            lines.push(format!(
                "  {mark} {:<24} {:<8} {}:{}{}",
                r.name,
                r.decision.as_str(),
                r.file.display(),
                r.line,
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("  ({extra})")
                }
            ));
            if let Some(m) = &r.message {
                lines.push(format!("      {m}"));
            }
        }
    }
    if let Some(req) = &class.requirement {
        lines.push(format!(
            "approval: {} distinct approver{}, timeout {}{}{}",
            req.min_approvals,
            if req.min_approvals == 1 { "" } else { "s" },
            humantime::format_duration(req.timeout),
            if req.allow_requester {
                ""
            } else {
                ", not the requester"
            },
            req.backend
                .as_ref()
                .map(|b| format!(", backend `{b}`"))
                .unwrap_or_default()
        ));
        for c in &req.clauses {
            let who = match &c.eligible {
                Some(e) => format!("from {}", e.iter().cloned().collect::<Vec<_>>().join(", ")),
                None => "from anyone".to_owned(),
            };
            let groups = if c.groups.is_empty() {
                String::new()
            } else {
                format!(
                    ", at least one from each of {}",
                    c.groups
                        .iter()
                        .map(|g| format!("`{}`", g.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            lines.push(format!(
                "  - {} for `{}` {who}{groups}",
                c.min_approvals, c.rule
            ));
        }
        if let Some(crate::policy::BackendKind::Slack { channel, token, .. }) =
            req.backend.as_ref().and_then(|b| policy.backends.get(b))
        {
            lines.extend(crate::approval::slack::describe(
                channel,
                token,
                req,
                &policy.identities,
            ));
        }
    }
    if class.decision == Decision::Confirm {
        lines.push(
            "confirm:  the requester types `yes` at the terminal; with no terminal it is refused"
                .into(),
        );
    }
    if let Err(e) = executable {
        lines.push(format!("note:     {}", escape(&e.to_string())));
    }
    if let Some((message, hint)) = &teams {
        lines.push(format!("note:     {message}"));
        lines.push(format!("hint:     {hint}"));
    }
    let tone = match class.decision {
        Decision::Allow => Tone::Good,
        Decision::Confirm | Decision::Approve => Tone::Caution,
        Decision::Deny => Tone::Bad,
    };
    out.text_toned(&[
        (None, "decision: "),
        (Some(tone), class.decision.as_str()),
        (None, &format!("\n{}", lines.join("\n"))),
    ]);
    Ok(0)
}
