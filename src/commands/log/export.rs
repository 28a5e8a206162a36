//! `gate log export`: one row per request — who asked, what, which rules, who decided and why,
//! how it ended — as RFC 4180 CSV or a JSON array, for an auditor's evidence request.

use serde::Serialize;

use super::table;
use crate::audit::record::{Kind, Record};

/// Everything the log says about one request, gathered from its decision, result and (in a
/// gate server's log) events.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RequestRow {
    pub request_id: String,
    pub short_id: String,
    /// The seqs of the first and last record of this request.
    pub seq_first: u64,
    pub seq_last: u64,
    /// When it was decided: the decision record, written just before the command started when
    /// it ran (in a gate server's log: the request's first event).
    pub decided_at: String,
    /// When its result was recorded, if it ran.
    pub finished_at: Option<String>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub host: Option<String>,
    pub agent: Option<String>,
    /// CI provenance as `key=value` pairs joined by `;`.
    pub ci: Option<String>,
    pub cwd: Option<String>,
    /// The command, shell-quoted (redacted as recorded).
    pub command: Option<String>,
    pub reason: Option<String>,
    /// What the policy said: allow, confirm, approve, deny.
    pub decision: Option<String>,
    /// What came of it: allowed, confirmed, approved, denied, refused, timed_out, cancelled,
    /// error (a server's log: its request status).
    pub outcome: Option<String>,
    pub rules: Vec<String>,
    pub approvers: Vec<String>,
    pub denied_by: Option<String>,
    pub deny_reason: Option<String>,
    /// Who decided and why, in words (as `gate log show` says it).
    pub why: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: Option<u64>,
}

/// One row per request, in the order each first appears in `records`.
pub fn rows(records: &[Record]) -> Vec<RequestRow> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, RequestRow> = Default::default();
    for r in records {
        let Some(id) = r.request_id.as_deref() else {
            continue;
        };
        let row = by_id.entry(id.to_owned()).or_insert_with(|| {
            order.push(id.to_owned());
            RequestRow {
                request_id: id.to_owned(),
                short_id: crate::request::short_id(id).to_owned(),
                seq_first: r.seq,
                decided_at: r.ts.clone(),
                ..RequestRow::default()
            }
        });
        row.seq_last = r.seq;
        if let Some(q) = &r.request {
            row.user = Some(q.requester.user.clone());
            row.uid = Some(q.requester.uid);
            row.host = Some(q.requester.host.clone());
            row.agent = q.requester.agent.clone();
            row.ci = q.requester.ci.as_ref().map(|ci| {
                ci.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";")
            });
            row.cwd = Some(q.command.cwd.clone());
            row.command = Some(crate::request::shell_join(&q.command.argv));
            row.reason = q.reason.clone();
        }
        match r.kind {
            Kind::Decision => {
                if let Some(d) = &r.decision {
                    row.decided_at = r.ts.clone();
                    row.decision = Some(d.decision.clone());
                    row.outcome = Some(d.outcome.clone());
                    row.rules = super::select::rule_names(&d.rules);
                    row.approvers = d.approvals.iter().map(|a| a.principal.clone()).collect();
                    row.denied_by = d.denied_by.as_ref().map(|a| a.principal.clone());
                    row.deny_reason = match &d.denied_by {
                        Some(by) => by.comment.clone(),
                        // A denial by policy: its rule's message.
                        None if d.outcome == "denied" => d.message.clone(),
                        None => None,
                    };
                    row.why = Some(table::why(d));
                }
            }
            Kind::Result => {
                if let Some(x) = &r.result {
                    row.finished_at = Some(r.ts.clone());
                    row.exit_code = x.exit_code;
                    row.signal = x.signal;
                    row.duration_ms = Some(x.duration_ms);
                }
            }
            Kind::Event => {
                if let Some(e) = &r.event {
                    row.outcome = (e.status != "pending").then(|| e.status.clone());
                    let who = e.principal.clone();
                    match e.kind.as_str() {
                        "approval" => row.approvers.extend(who),
                        "denial" => {
                            row.denied_by = who;
                            row.deny_reason = e.comment.clone();
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .map(|mut row| {
            // A gate server's log has events, not a decision record: say it from them.
            if row.why.is_none() {
                row.why = from_events(&row);
            }
            row
        })
        .collect()
}

/// Who decided and why, for a request known from a gate server's events.
fn from_events(row: &RequestRow) -> Option<String> {
    let approvers = row.approvers.join(", ");
    Some(match row.outcome.as_deref()? {
        "approved" => format!("approved by {approvers}"),
        "denied" => format!(
            "denied by {}{}",
            row.denied_by.as_deref().unwrap_or("?"),
            row.deny_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_else(|| " (no reason given)".into())
        ),
        "expired" => "no decision: expired".into(),
        "cancelled" => "no decision: cancelled".into(),
        other => other.to_owned(),
    })
}

/// What a spreadsheet may take for the start of a formula: OWASP's list for CSV injection, a
/// line feed, and the full-width forms some locales read the same way.
const FORMULA_STARTS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// A cell a spreadsheet would take for a formula (one of [`FORMULA_STARTS`] first, after any
/// spaces) gets a leading `'`, which shows as text.
fn defuse(s: &str) -> String {
    if s.trim_start_matches(' ').starts_with(FORMULA_STARTS) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// An RFC 4180 field: always quoted, quotes doubled; line breaks stay inside the quotes.
fn field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

const COLUMNS: &[&str] = &[
    "request_id",
    "short_id",
    "seq_first",
    "seq_last",
    "decided_at",
    "finished_at",
    "user",
    "uid",
    "host",
    "agent",
    "ci",
    "cwd",
    "command",
    "reason",
    "decision",
    "outcome",
    "rules",
    "approvers",
    "denied_by",
    "deny_reason",
    "why",
    "exit_code",
    "signal",
    "duration_ms",
];

/// The rows as CSV: a header, then one CRLF-terminated line per request. Every text cell is
/// defused against formula injection — ids, times and outcomes too: a log its requester can
/// write to may hold anything there. Numbers are written as they are.
pub fn csv(rows: &[RequestRow]) -> String {
    let mut out = String::new();
    let header: Vec<String> = COLUMNS.iter().map(|c| field(c)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in rows {
        let text = |v: &Option<String>| field(&defuse(v.as_deref().unwrap_or("")));
        let own = |v: &str| field(&defuse(v));
        let num = |v: Option<String>| field(&v.unwrap_or_default());
        let cells = [
            own(&r.request_id),
            own(&r.short_id),
            num(Some(r.seq_first.to_string())),
            num(Some(r.seq_last.to_string())),
            own(&r.decided_at),
            own(r.finished_at.as_deref().unwrap_or("")),
            text(&r.user),
            num(r.uid.map(|u| u.to_string())),
            text(&r.host),
            text(&r.agent),
            text(&r.ci),
            text(&r.cwd),
            text(&r.command),
            text(&r.reason),
            text(&r.decision),
            text(&r.outcome),
            field(&defuse(&r.rules.join(";"))),
            field(&defuse(&r.approvers.join(";"))),
            text(&r.denied_by),
            text(&r.deny_reason),
            text(&r.why),
            num(r.exit_code.map(|c| c.to_string())),
            num(r.signal.map(|c| c.to_string())),
            num(r.duration_ms.map(|c| c.to_string())),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_quotes_doubled() {
        let row = RequestRow {
            request_id: "01a2-x".into(),
            command: Some("=cmd|' /C calc'!A0".into()),
            reason: Some("say \"hi\", then\nleave".into()),
            user: Some("@evil".into()),
            cwd: Some("\t/tmp".into()),
            agent: Some("-1+1".into()),
            host: Some("+host".into()),
            ci: Some("\rci".into()),
            decision: Some("  =1+1".into()),
            outcome: Some("\u{FF1D}1+1".into()),
            decided_at: "\n=x".into(),
            exit_code: Some(3),
            ..RequestRow::default()
        };
        let text = csv(&[row]);
        let line = text.split("\r\n").nth(1).unwrap();
        for want in [
            "\"'=cmd|' /C calc'!A0\"",
            "\"say \"\"hi\"\", then\nleave\"",
            "\"'@evil\"",
            "\"'\t/tmp\"",
            "\"'-1+1\"",
            "\"'+host\"",
            "\"'\rci\"",
            "\"'  =1+1\"",
            "\"'\u{FF1D}1+1\"",
            "\"'\n=x\"",
            "\"3\"",
        ] {
            assert!(line.contains(want), "{want:?} in {line:?}");
        }
    }
}
