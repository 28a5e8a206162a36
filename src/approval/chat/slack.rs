//! The Slack Block Kit form of a request: header, outcome (once decided), the command in a code
//! block, who / where / how many / until when, reason, context env, matched rules, and either
//! the reaction instructions (standalone) or Approve / Deny buttons (server mode).
//! Limits (https://docs.slack.dev/reference/block-kit/blocks): header ≤150, section text ≤3000,
//! a field ≤2000, ≤10 fields, ≤50 blocks; every piece of requester text is capped before it is
//! placed, so the composed text stays inside them and markup is never cut in half.

use serde_json::{Value, json};

use super::escape::{self, Escaped};
use super::{ChatMessage, ChatState, need_words, rfc3339, top_risk};
use crate::request::shell_join;

/// `action_id` of the Approve button; its `value` is the request id and nothing else.
pub const ACTION_APPROVE: &str = "gate_approve";
/// `action_id` of the Deny button (behind a confirmation dialog).
pub const ACTION_DENY: &str = "gate_deny";

const SECTION_MAX: usize = 3000;

/// What escaping changed, said once at the end of the message.
#[derive(Default)]
struct Notes {
    replaced: bool,
    cut: bool,
}

impl Notes {
    fn take(&mut self, e: Escaped) -> String {
        self.replaced |= e.replaced;
        self.cut |= e.cut > 0;
        e.text
    }

    /// Requester text as inline code (no formatting applies inside it).
    fn code(&mut self, s: &str, max: usize) -> String {
        if s.is_empty() {
            return "_(empty)_".to_owned();
        }
        format!("`{}`", self.take(escape::mrkdwn(s, max)))
    }

    /// Requester text as a code block.
    fn block(&mut self, s: &str, max: usize) -> String {
        if s.is_empty() {
            return "_(empty)_".to_owned();
        }
        format!("```{}```", self.take(escape::mrkdwn(s, max)))
    }
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": true})
}

/// Lines added while they fit in `max` characters; the rest are counted in a last line.
fn lines_within(lines: Vec<String>, max: usize) -> String {
    let mut out = String::new();
    let total = lines.len();
    for (i, l) in lines.into_iter().enumerate() {
        let more = format!("\n_… and {} more_", total - i);
        if out.chars().count() + l.chars().count() + 1 + more.chars().count() > max {
            out.push_str(&more);
            return out;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&l);
    }
    out
}

/// The message's blocks. `buttons`: server mode (Approve / Deny, each carrying only the
/// request id as `value`); otherwise approvers react, and the last block says how.
pub fn slack_blocks(m: &ChatMessage<'_>, buttons: bool) -> Vec<Value> {
    let r = m.request;
    let mut n = Notes::default();
    let mut blocks = Vec::new();

    let header = match &m.state {
        ChatState::Pending => match top_risk(&m.rules) {
            Some(risk) => format!(
                "gate: approval needed · {} risk",
                escape::plain(risk, 40).text
            ),
            None => "gate: approval needed".to_owned(),
        },
        ChatState::Approved => "gate: approved".to_owned(),
        ChatState::Denied { .. } => "gate: denied".to_owned(),
        ChatState::TimedOut => "gate: timed out, nothing ran".to_owned(),
        ChatState::Cancelled => "gate: cancelled, nothing ran".to_owned(),
    };
    blocks.push(json!({"type": "header", "text": plain(&header)}));

    let approvals = |n: &mut Notes, list: &[String]| -> String {
        if list.is_empty() {
            return "none yet".to_owned();
        }
        let shown: Vec<String> = list.iter().take(20).map(|a| n.code(a, 60)).collect();
        let mut s = shown.join(", ");
        if list.len() > 20 {
            s.push_str(&format!(" and {} more", list.len() - 20));
        }
        s
    };
    let outcome = match &m.state {
        ChatState::Pending => None,
        ChatState::Approved => Some(format!(
            ":white_check_mark: *Approved* by {}; the command runs now.",
            approvals(&mut n, &m.approvals)
        )),
        ChatState::Denied { by, reason } => Some(format!(
            ":x: *Denied* by {}{}; nothing ran.",
            n.code(by, 60),
            match reason {
                Some(why) if !why.is_empty() => format!(": {}", n.code(why, 500)),
                _ => String::new(),
            }
        )),
        ChatState::TimedOut => Some(format!(
            ":hourglass: *Timed out* with {} of {} approvals; nothing ran.",
            m.approvals.len(),
            m.need.min_approvals
        )),
        ChatState::Cancelled => {
            Some(":no_entry_sign: *Cancelled* by the requester; nothing ran.".to_owned())
        }
    };
    if let Some(o) = outcome {
        blocks.push(section(o));
    }

    let argv = shell_join(&r.command.argv);
    blocks.push(section(format!("*Command*\n{}", n.block(&argv, 2800))));

    let who = &r.requester;
    let mut requester = format!(
        "*Requested by*\n{} on {}",
        n.code(&who.user, 100),
        n.code(&who.host, 100)
    );
    if let Some(agent) = &who.agent {
        requester.push_str(&format!("\nagent {}", n.code(agent, 100)));
    }
    if let Some(ci) = &who.ci {
        let lines: Vec<String> = ci
            .iter()
            .map(|(k, v)| format!("{}={}", n.code(k, 60), n.code(v, 150)))
            .collect();
        requester.push_str("\nCI:\n");
        requester.push_str(&lines_within(lines, 1400));
    }
    let (count, _) = need_words(&m.need);
    let needs = if m.need.from.is_empty() {
        format!("*Needs*\n{count} approval(s) from anyone but the requester")
    } else {
        let names: Vec<String> = m.need.from.iter().take(10).map(|g| n.code(g, 60)).collect();
        let more = m.need.from.len().saturating_sub(10);
        format!(
            "*Needs*\n{count} from {}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    let fields = vec![
        mrkdwn(requester),
        mrkdwn(format!(
            "*Working directory*\n{}",
            n.code(&r.command.cwd, 1000)
        )),
        mrkdwn(needs),
        mrkdwn(format!(
            "*Approved so far*\n{}",
            approvals(&mut n, &m.approvals)
        )),
        // Plain UTC rather than Slack's `<!date^…>` entity: the message then holds no
        // `<…>` markup at all, which makes "no requester text became markup" checkable.
        mrkdwn(format!(
            "*Expires*\n{}",
            rfc3339(m.expires_unix)
                .replace('T', " ")
                .replace('Z', " UTC")
        )),
        mrkdwn(format!("*Request*\n{}", n.code(&r.id, 80))),
    ];
    blocks.push(json!({"type": "section", "fields": fields}));

    blocks.push(section(match &r.reason {
        Some(why) if !why.is_empty() => format!("*Reason*\n{}", n.block(why, 1500)),
        _ => "*Reason*\n_none given_".to_owned(),
    }));

    if !r.context.is_empty() {
        let lines: Vec<String> = r
            .context
            .iter()
            .map(|(k, v)| format!("{}={}", n.code(k, 100), n.code(v, 300)))
            .collect();
        blocks.push(section(format!(
            "*Context*\n{}",
            lines_within(lines, SECTION_MAX - 20)
        )));
    }

    if !m.rules.is_empty() {
        let lines: Vec<String> = m
            .rules
            .iter()
            .map(|rule| {
                let mut l = format!("• {}", n.code(&rule.name, 100));
                let mut tags = Vec::new();
                if let Some(risk) = &rule.risk {
                    tags.push(format!("risk {}", n.code(risk, 40)));
                }
                if let Some(c) = &rule.category {
                    tags.push(n.code(c, 60));
                }
                if !tags.is_empty() {
                    l.push_str(&format!(" — {}", tags.join(", ")));
                }
                l
            })
            .collect();
        blocks.push(section(format!(
            "*Matched rules*\n{}",
            lines_within(lines, SECTION_MAX - 30)
        )));
    }

    if m.state == ChatState::Pending {
        if buttons {
            blocks.push(json!({
                "type": "actions",
                "block_id": "gate_decision",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_APPROVE,
                        "text": plain("Approve"),
                        "style": "primary",
                        "value": r.id,
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_DENY,
                        "text": plain("Deny"),
                        "style": "danger",
                        "value": r.id,
                        "confirm": {
                            "title": plain("Deny this command?"),
                            "text": mrkdwn("The command will not run, and the requester is told you denied it.".to_owned()),
                            "confirm": plain("Deny"),
                            "deny": plain("Cancel"),
                            "style": "danger",
                        },
                    },
                ],
            }));
        } else {
            blocks.push(json!({"type": "context", "elements": [mrkdwn(
                "React :white_check_mark: to approve or :x: to deny. Only eligible approvers \
                 count, never the requester; one eligible :x: denies."
                    .to_owned()
            )]}));
        }
    }

    let mut notes = vec![format!(
        "digest `{}`",
        escape::mrkdwn(&short(&r.digest), 20).text
    )];
    if n.replaced {
        notes.push("backticks and at signs in requester text are shown as `ˋ` and `＠`".to_owned());
    }
    if n.cut {
        notes.push("long values are cut (…); the audit record holds them in full".to_owned());
    }
    blocks.push(json!({"type": "context", "elements": [mrkdwn(notes.join(" · "))]}));
    blocks
}

fn short(digest: &str) -> String {
    digest.chars().take(16).collect()
}

/// The notification / fallback `text` sent with the blocks (Slack parses it too, so it is
/// escaped the same way).
pub fn slack_text(m: &ChatMessage<'_>) -> String {
    let r = m.request;
    let argv = escape::mrkdwn(&shell_join(&r.command.argv), 200).text;
    let user = escape::mrkdwn(&r.requester.user, 60).text;
    let host = escape::mrkdwn(&r.requester.host, 60).text;
    let what = match &m.state {
        ChatState::Pending => "approval needed",
        ChatState::Approved => "approved",
        ChatState::Denied { .. } => "denied",
        ChatState::TimedOut => "timed out, nothing ran",
        ChatState::Cancelled => "cancelled, nothing ran",
    };
    format!("gate: {what}: {argv} (requested by {user} on {host})")
}
