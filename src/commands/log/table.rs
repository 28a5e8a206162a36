//! The rows of `gate log show` and `gate log tail`: one line per record, and on every decision
//! who decided and why; on every result how the command ended and how long it took.

use std::collections::HashMap;

use crate::audit::record::{DecisionInfo, Kind, Record, ResultInfo};
use crate::output::escape;

/// The header line.
pub fn header() -> String {
    format!(
        "{:>5}  {:<24} {:<8} {:<13} {:<10} {:<9} {}",
        "SEQ", "TIME", "KIND", "REQUEST", "USER", "OUTCOME", "COMMAND / RESULT"
    )
}

/// What the rows of a request's later records (results, events) show of it: who asked and what.
#[derive(Debug, Default)]
pub struct Context {
    requests: HashMap<String, (String, String)>,
}

impl Context {
    pub fn learn(&mut self, r: &Record) {
        if let (Some(id), Some(q)) = (&r.request_id, &r.request) {
            self.requests.insert(
                id.clone(),
                (
                    q.requester.user.clone(),
                    crate::request::shell_join(&q.command.argv),
                ),
            );
        }
    }
}

/// One record as a table row. Everything but its seq and kind came from a request, a chat
/// payload or a file: shown with controls escaped, one line per record.
pub fn row(r: &Record, ctx: &Context) -> String {
    let short = r
        .request_id
        .as_deref()
        .map(crate::request::short_id)
        .unwrap_or("-");
    let asked = r.request_id.as_ref().and_then(|id| ctx.requests.get(id));
    let (user, outcome, what) = match r.kind {
        Kind::Genesis => (
            "-".to_owned(),
            "-".to_owned(),
            format!(
                "log {} on {}",
                r.log_id,
                r.genesis.as_ref().map(|g| g.host.as_str()).unwrap_or("?")
            ),
        ),
        Kind::Decision => {
            let q = r.request.as_ref();
            let command = q
                .map(|q| crate::request::shell_join(&q.command.argv))
                .unwrap_or_default();
            match r.decision.as_ref() {
                Some(d) => (
                    q.map(|q| q.requester.user.clone()).unwrap_or_default(),
                    d.outcome.clone(),
                    format!("{command}  [{}]", why(d)),
                ),
                None => (
                    "?".into(),
                    "?".into(),
                    format!("{command}  [the decision cannot be read]"),
                ),
            }
        }
        Kind::Result => {
            let what = ended(r.result.as_ref());
            match asked {
                Some((user, command)) => (user.clone(), "-".into(), format!("{what}: {command}")),
                None => ("?".into(), "-".into(), what),
            }
        }
        Kind::Repair => (
            "-".into(),
            "-".into(),
            format!(
                "repaired a torn line: {} bytes moved to {}",
                r.repair.as_ref().map(|x| x.torn_len).unwrap_or(0),
                r.repair
                    .as_ref()
                    .map(|x| x.side_file.as_str())
                    .unwrap_or("?")
            ),
        ),
        Kind::Event => {
            let e = r.event.as_ref();
            let cmd = r
                .request
                .as_ref()
                .map(|q| crate::request::shell_join(&q.command.argv))
                .or_else(|| asked.map(|(_, c)| c.clone()))
                .map(|c| format!("  {c}"))
                .unwrap_or_default();
            let by = e
                .and_then(|e| e.principal.as_deref())
                .map(|p| format!(" by {p}"))
                .unwrap_or_default();
            (
                e.and_then(|e| e.principal.clone())
                    .unwrap_or_else(|| "-".into()),
                e.map(|e| e.status.clone()).unwrap_or_default(),
                format!(
                    "{}{by}{}{cmd}",
                    e.map(|e| e.kind.as_str()).unwrap_or("?"),
                    e.and_then(|e| e.comment.as_ref())
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
            )
        }
    };
    let kind = match r.kind {
        Kind::Genesis => "genesis",
        Kind::Decision => "decision",
        Kind::Result => "result",
        Kind::Repair => "repair",
        Kind::Event => "event",
    };
    format!(
        "{:>5}  {:<24} {:<8} {:<13} {:<10} {:<9} {}",
        r.seq,
        escape(&r.ts),
        kind,
        escape(short),
        escape(&user),
        escape(&outcome),
        escape(&what)
    )
}

/// How a run ended: its exit code or signal, and how long it took.
pub fn ended(res: Option<&ResultInfo>) -> String {
    let Some(x) = res else {
        return "no result details".into();
    };
    let status = match (x.signal, x.exit_code) {
        (Some(s), _) => format!("killed by signal {s}"),
        (None, Some(c)) => format!("exit {c}"),
        (None, None) => "did not start".into(),
    };
    let err = x
        .error
        .as_ref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    format!("{status} after {}{err}", duration(x.duration_ms))
}

/// Milliseconds as people read them: `850 ms`, `12.3 s`, `4m 05s`.
fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{}.{} s", ms / 1_000, ms % 1_000 / 100),
        _ => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

/// Who decided and why, in words: the approvers of an approval, the denier and reason of a
/// denial by a person, the rule and message of a denial by policy, what was missing when no
/// decision came.
pub fn why(d: &DecisionInfo) -> String {
    let rules = super::select::rule_names(&d.rules);
    let by_rules = || match rules.as_slice() {
        [] => "no rule".to_owned(),
        [one] => format!("rule `{one}`"),
        many => format!(
            "rules {}",
            many.iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let approvers = || {
        d.approvals
            .iter()
            .map(|a| match &a.comment {
                Some(c) if !c.is_empty() => format!("{} (\"{c}\")", a.principal),
                _ => a.principal.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let so_far = || {
        if d.approvals.is_empty() {
            String::new()
        } else {
            format!("; approved before by {}", approvers())
        }
    };
    let message = d.message.as_deref().unwrap_or("");
    match d.outcome.as_str() {
        "allowed" if d.by_default => "allowed by default: no rule matched".into(),
        "allowed" => format!("allowed by {}", by_rules()),
        "confirmed" => format!("confirmed at the terminal; {}", by_rules()),
        "approved" => format!("approved by {}; {}", approvers(), by_rules()),
        "denied" => match &d.denied_by {
            Some(by) => {
                let reason = by
                    .comment
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .map(|c| format!(": {c}"))
                    .unwrap_or_else(|| " (no reason given)".into());
                format!("denied by {}{reason}{}", by.principal, so_far())
            }
            None if message.is_empty() => format!("denied by policy: {}", by_rules()),
            None if message.starts_with("denied by") => message.to_owned(),
            None => format!("denied by policy: {message}"),
        },
        "refused" => format!("refused: {}", or(message, "not confirmed")),
        "timed_out" => no_decision(or(message, "timed out waiting for approval"), so_far()),
        "cancelled" => no_decision(
            or(message, "cancelled while waiting for approval"),
            so_far(),
        ),
        "error" => no_decision(or(message, "error"), so_far()),
        other => format!("{other}: {}", or(message, &by_rules())),
    }
}

fn no_decision(message: &str, so_far: String) -> String {
    if message.starts_with("no decision") {
        format!("{message}{so_far}")
    } else {
        format!("no decision: {message}{so_far}")
    }
}

fn or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() { fallback } else { s }
}
