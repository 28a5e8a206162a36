//! What an approver reads in chat: one approval request rendered as Slack Block Kit
//! ([`slack_blocks`], [`slack_text`]) or as a Teams Adaptive Card 1.4 ([`teams_card`],
//! [`teams_message`]). Pure functions, no I/O: the standalone Slack backend and the server's
//! chat integration build the same message from the same [`ChatMessage`].
//!
//! Everything that came from the requester or from a policy file is escaped for the target
//! (see [`escape`]): no requester text can become a link, a mention, formatting, or a way out
//! of the command's code block, and every Block Kit limit (header ≤150, section ≤3000, field
//! ≤2000 characters) is met by cutting with a note — rendering never fails.

pub mod escape;
mod slack;
mod teams;

pub use slack::{ACTION_APPROVE, ACTION_DENY, slack_blocks, slack_text};
pub use teams::{teams_card, teams_message};

use crate::policy::Requirement;
use crate::request::RequestView;

/// One matched rule as approvers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine {
    pub name: String,
    pub risk: Option<String>,
    pub category: Option<String>,
}

/// How many approvals are needed, from whom: "2 of 3 from `security`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub min_approvals: u32,
    /// How many principals may approve; `None`: anyone but the requester.
    pub eligible: Option<usize>,
    /// Groups (or principals) named by the rules, each of which must take part.
    pub from: Vec<String>,
}

impl Need {
    pub fn of(r: &Requirement) -> Need {
        let mut from: Vec<String> = Vec::new();
        for a in r.clauses.iter().flat_map(|c| &c.approvers) {
            if !from.contains(a) {
                from.push(a.clone());
            }
        }
        Need {
            min_approvals: r.min_approvals.max(1),
            eligible: r.eligible().map(|e| e.len()),
            from,
        }
    }
}

/// Where the request stands; a decided message shows its outcome on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatState {
    Pending,
    Approved,
    Denied { by: String, reason: Option<String> },
    TimedOut,
    Cancelled,
}

/// Everything one chat message about a request shows.
#[derive(Debug, Clone)]
pub struct ChatMessage<'a> {
    /// The redacted request (argv, cwd, context env, reason, requester).
    pub request: &'a RequestView,
    /// The matched `approve` rules.
    pub rules: Vec<RuleLine>,
    pub need: Need,
    /// Principals who approved so far (in order).
    pub approvals: Vec<String>,
    /// When the request expires, in Unix seconds.
    pub expires_unix: u64,
    pub state: ChatState,
}

/// The highest risk named by the rules (`critical` > `high` > `medium` > `low` > others).
fn top_risk(rules: &[RuleLine]) -> Option<&str> {
    let rank = |r: &str| match r.to_ascii_lowercase().as_str() {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    };
    rules
        .iter()
        .filter_map(|r| r.risk.as_deref())
        .max_by_key(|r| rank(r))
}

/// "2 of 3 from security, sre" / "1 from anyone but the requester", without markup.
fn need_words(n: &Need) -> (String, String) {
    let count = match n.eligible {
        Some(m) => format!("{} of {m}", n.min_approvals),
        None => n.min_approvals.to_string(),
    };
    (count, n.from.join(", "))
}

/// RFC 3339 (UTC, seconds) for `unix`.
fn rfc3339(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.min(253_402_300_799));
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests;
