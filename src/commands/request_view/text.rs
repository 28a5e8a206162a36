//! The text of `gate requests` (a row per request) and `gate requests ID` (one in full).
//! Every value that came from a requester, or from a server relaying one, is escaped here.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{PrincipalFrom, RequestShown, RulesFrom, Source, Vote};
use crate::approval::RequestStatus;
use crate::output::escape;
use crate::policy::Requirement;
use crate::request::shell_join;

/// `in 14m 3s`, or `3m ago`.
pub fn relative(secs: i64) -> String {
    let d = humantime::format_duration(Duration::from_secs(secs.unsigned_abs()));
    if secs >= 0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

fn plural(n: u32, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// `2 approvals from sre (eligible: a, b, c); the requester does not count`.
pub fn needs(req: &Requirement) -> String {
    let from = |approvers: &[String], eligible: &Option<BTreeSet<String>>| -> String {
        let named = if approvers.is_empty() {
            "anyone".to_owned()
        } else {
            approvers.join(", ")
        };
        match eligible {
            Some(e) if !approvers.iter().eq(e.iter()) => format!(
                "{named} (eligible: {})",
                e.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            _ => named,
        }
    };
    let mut s = match req.clauses.as_slice() {
        [] => format!("{} from anyone", plural(req.min_approvals, "approval")),
        [one] => format!(
            "{} from {}",
            plural(req.min_approvals, "approval"),
            from(&one.approvers, &one.eligible)
        ),
        clauses => format!(
            "{} in all; {}",
            plural(req.min_approvals, "approval"),
            clauses
                .iter()
                .map(|c| format!(
                    "rule {}: {} from {}",
                    c.rule,
                    c.min_approvals,
                    from(&c.approvers, &c.eligible)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    s.push_str(if req.allow_requester {
        "; the requester may approve"
    } else {
        "; the requester does not count"
    });
    s
}

fn votes(v: &[Vote]) -> String {
    v.iter()
        .map(|a| {
            format!(
                "{} at {}{}",
                a.principal,
                a.at,
                a.comment
                    .as_ref()
                    .filter(|c| !c.is_empty())
                    .map(|c| format!(" ({c:?})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `gate requests ID`: one request in full, one `label: value` line each. Every value that
/// came from the requester (or a server relaying it) is escaped.
pub fn detail(r: &RequestShown) -> Vec<String> {
    let e = |s: &str| escape(s).into_owned();
    let mut l = Vec::new();
    let mut line = |label: &str, value: String| l.push(format!("  {label:<12} {value}"));
    let where_ = match r.source {
        Source::Local => format!("in the spool {}", e(&r.location)),
        Source::Server => format!("on {}", e(&r.location)),
    };
    let head = format!("request {} (short id {}) {where_}", r.id, r.short_id);
    line("status:", r.status.as_str().to_owned());
    line("command:", e(&shell_join(&r.command.argv)));
    line(
        "executable:",
        r.command
            .executable
            .as_deref()
            .map(e)
            .unwrap_or_else(|| "- (not resolved by the requester's gate)".into()),
    );
    line("cwd:", e(&r.command.cwd));
    if !r.command.env.is_empty() {
        line(
            "context:",
            e(&r.command
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")),
        );
    }
    for p in &r.command.payload {
        let hash = match (&p.sha256, r.source) {
            (Some(h), Source::Local) => format!("sha256 {h} (as you read it now)"),
            (Some(h), Source::Server) => format!("sha256 {h} (as the requester hashed it)"),
            (None, _) => "- (unreadable)".to_owned(),
        };
        let link = p
            .link
            .as_deref()
            .map(|t| format!(" -> {}", e(t)))
            .unwrap_or_default();
        line("payload:", format!("{}{link} {hash}", e(&p.path)));
    }
    let q = &r.requester;
    let vouched = match q.principal_from {
        PrincipalFrom::SpoolFileOwner => format!(
            "{}{} (the owner of the request file)",
            e(&q.principal),
            q.uid.map(|u| format!(", uid {u}")).unwrap_or_default()
        ),
        PrincipalFrom::ServerToken => format!("{} (its server token)", e(&q.principal)),
    };
    let mut claims = Vec::new();
    if r.source == Source::Server
        && let Some(u) = &q.user
    {
        claims.push(format!(
            "user {}{}",
            e(u),
            q.uid.map(|u| format!(" (uid {u})")).unwrap_or_default()
        ));
    }
    if let Some(h) = &q.host {
        claims.push(format!("host {}", e(h)));
    }
    if let Some(a) = &q.agent {
        claims.push(format!("agent {}", e(a)));
    }
    line(
        "requester:",
        if claims.is_empty() {
            vouched
        } else {
            format!("{vouched}; its gate says {}", claims.join(", "))
        },
    );
    if let Some(v) = &q.ci_verified {
        let shown = serde_json::to_value(v)
            .ok()
            .and_then(|j| j.as_object().cloned())
            .unwrap_or_default();
        line(
            "ci:",
            e(&format!(
                "verified by the server ({}): {}",
                v.issuer,
                shown
                    .iter()
                    .filter(|(k, _)| *k != "issuer")
                    .map(|(k, v)| format!(
                        "{k}={}",
                        v.as_str().map_or(v.to_string(), str::to_owned)
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        );
    }
    if let Some(ci) = &q.ci {
        line(
            "ci claims:",
            e(&format!(
                "{} (unverified: the requester's own word)",
                ci.claims
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        );
    }
    if let Some(reason) = &r.reason {
        line("reason:", e(reason));
    }
    let rules = if r.rules.is_empty() {
        "none".to_owned()
    } else {
        r.rules
            .iter()
            .map(|x| {
                let mut what: Vec<String> = Vec::new();
                what.extend(x.decision.clone());
                what.extend(x.risk.as_ref().map(|v| format!("risk {v}")));
                what.extend(x.category.as_ref().map(|v| format!("category {v}")));
                if what.is_empty() {
                    e(&x.name)
                } else {
                    format!("{} ({})", e(&x.name), e(&what.join(", ")))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let from = match r.rules_from {
        RulesFrom::YourPolicy => "your policy",
        RulesFrom::RequestFile => "the request file",
        RulesFrom::ServerPolicy => "the server's policy",
    };
    line("rules:", format!("{rules} [{from}]"));
    line("needs:", e(&needs(&r.requirement)));
    if !r.release.is_empty() {
        line(
            "releases:",
            e(&r.release
                .iter()
                .map(|v| format!("{} from secret `{}`", v.env, v.secret))
                .collect::<Vec<_>>()
                .join(", ")),
        );
    }
    let have = r.approvals.len() as u32;
    let so_far = if r.approvals.is_empty() {
        "nobody yet".to_owned()
    } else {
        e(&votes(&r.approvals))
    };
    let count = match r.status {
        RequestStatus::Pending => {
            format!(" [{have} of {}; {} more needed]", have + r.needed, r.needed)
        }
        _ => String::new(),
    };
    line("approved by:", format!("{so_far}{count}"));
    if !r.denials.is_empty() {
        line("denied by:", e(&votes(&r.denials)));
    }
    line("created:", e(&r.created));
    line(
        "expires:",
        format!("{} ({})", e(&r.expires), relative(r.expires_in_secs)),
    );
    line(
        "digest:",
        match (&r.digest, r.source) {
            (Some(d), Source::Local) => format!("{d} (what `gate approve` signs)"),
            (Some(d), Source::Server) => d.clone(),
            (None, _) => "- (cannot be computed: a payload is unreadable)".into(),
        },
    );
    for n in &r.notes {
        line("note:", e(n));
    }
    let mut out = vec![head];
    out.append(&mut l);
    out
}

/// `gate requests`: a header and one row per request — short id, requester, approvals so far
/// of those needed, expiry, command — then each request's notes under its short id.
pub fn table(rows: &[RequestShown]) -> Vec<String> {
    let e = |s: &str| escape(s).into_owned();
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let q = &r.requester;
            let mut who = match &q.host {
                Some(h) => format!("{}@{}", e(&q.principal), e(h)),
                None => e(&q.principal),
            };
            // Who drives it, when it says: an agent, a CI system.
            if let Some(a) = &q.agent {
                who.push_str(&format!(" (agent {})", e(a)));
            } else if let Some(system) = q.ci.as_ref().and_then(|c| c.get("system")) {
                who.push_str(&format!(" (ci {})", e(system)));
            }
            let have = r.approvals.len() as u32;
            let approvals = match r.status {
                RequestStatus::Pending => format!("{have}/{}", have + r.needed),
                s => s.as_str().to_owned(),
            };
            [
                r.short_id.clone(),
                who,
                approvals,
                relative(r.expires_in_secs),
                e(&shell_join(&r.command.argv)),
            ]
        })
        .collect();
    let head = ["ID", "REQUESTER", "APPROVALS", "EXPIRES", "COMMAND"].map(str::to_owned);
    let width = |i: usize| {
        cells
            .iter()
            .chain(std::iter::once(&head))
            .map(|c| c[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..4).map(width).collect();
    let row = |c: &[String; 5]| {
        let mut s = String::new();
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&c[i]);
            s.push_str(&" ".repeat(w - c[i].chars().count() + 2));
        }
        s.push_str(&c[4]);
        s
    };
    let mut out = vec![row(&head)];
    out.extend(cells.iter().map(row));
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| r.notes.iter().map(|n| format!("{}: {}", r.short_id, e(n))))
        .collect();
    if !notes.is_empty() {
        out.push(String::new());
        out.extend(notes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_both_ways() {
        assert_eq!(relative(843), "in 14m 3s");
        assert_eq!(relative(-180), "3m ago");
        assert_eq!(relative(0), "in 0s");
    }

    fn clause(rule: &str, approvers: &[&str], eligible: &[&str], n: u32) -> crate::policy::Clause {
        crate::policy::Clause {
            rule: rule.into(),
            approvers: approvers.iter().map(|s| s.to_string()).collect(),
            eligible: Some(eligible.iter().map(|s| s.to_string()).collect()),
            min_approvals: n,
            groups: Vec::new(),
        }
    }

    #[test]
    fn what_is_needed_reads_as_a_sentence() {
        let mut r = Requirement {
            clauses: vec![clause("iam", &["security"], &["alice", "bob"], 2)],
            min_approvals: 2,
            allow_requester: false,
            timeout: Duration::from_secs(60),
            backend: None,
            reuse: None,
        };
        assert_eq!(
            needs(&r),
            "2 approvals from security (eligible: alice, bob); the requester does not count"
        );
        r.clauses.push(clause("k8s", &["carol"], &["carol"], 1));
        r.allow_requester = true;
        assert_eq!(
            needs(&r),
            "2 approvals in all; rule iam: 2 from security (eligible: alice, bob); \
             rule k8s: 1 from carol; the requester may approve"
        );
    }
}
