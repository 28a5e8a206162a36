//! What the server posts, from a stored request: the Slack message with Approve / Deny buttons
//! and the Teams cards. The rendering and all escaping of requester text are
//! `crate::approval::chat`'s (the standalone Slack backend shows the same message); this file
//! only turns the server's row, decisions and policy into its [`ChatMessage`].

use serde_json::{Value, json};

use super::api::RequestView as ApiView;
use crate::approval::RequestStatus;
use crate::approval::chat::{self, ChatMessage, ChatState, Need, RuleLine};
use crate::policy::Policy;
use crate::request::RequestView;

pub use crate::approval::chat::{ACTION_APPROVE as APPROVE, ACTION_DENY as DENY};

/// The matched rules as approvers see them: the server's own (with their risk and category)
/// and, by name only, the ones the client's policy added.
fn rules(policy: &Policy, v: &ApiView) -> Vec<RuleLine> {
    let mut out: Vec<RuleLine> = Vec::new();
    for name in v.doc.rules.iter().chain(&v.doc.client_rules) {
        if out.iter().any(|r| &r.name == name) {
            continue;
        }
        let info = policy.rules.iter().find(|r| &r.name == name);
        out.push(RuleLine {
            name: name.clone(),
            risk: info.and_then(|r| r.risk.clone()),
            category: info.and_then(|r| r.category.clone()),
        });
    }
    out
}

fn state(v: &ApiView) -> ChatState {
    match v.status {
        RequestStatus::Pending => ChatState::Pending,
        RequestStatus::Approved => ChatState::Approved,
        RequestStatus::Denied => ChatState::Denied {
            by: v
                .denial
                .as_ref()
                .map_or_else(|| "policy".to_owned(), |d| d.principal.clone()),
            reason: v.denial.as_ref().and_then(|d| d.comment.clone()),
        },
        RequestStatus::Expired => ChatState::TimedOut,
        RequestStatus::Cancelled => ChatState::Cancelled,
    }
}

/// The renderer's view of request `v` (`req`: the same request in the shape hosts record).
pub fn message<'a>(
    policy: &Policy,
    req: &'a RequestView,
    v: &ApiView,
    expires_ms: i64,
) -> ChatMessage<'a> {
    ChatMessage {
        request: req,
        rules: rules(policy, v),
        need: Need::of(&v.doc.requirement),
        approvals: v.approvals.iter().map(|a| a.principal.clone()).collect(),
        expires_unix: u64::try_from(expires_ms / 1000).unwrap_or(0),
        state: state(v),
    }
}

/// `text` and `blocks` of the Slack message (server mode: buttons while pending).
pub fn slack_message(m: &ChatMessage<'_>) -> Value {
    json!({ "text": chat::slack_text(m), "blocks": chat::slack_blocks(m, true) })
}

/// The Adaptive Card about the request (pending or decided), linking to `link`.
pub fn teams_card(m: &ChatMessage<'_>, link: &str) -> Value {
    chat::teams_card(m, link)
}
