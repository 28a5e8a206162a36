//! What the server posts, from a request as the API shows it: the Slack message (Block Kit,
//! with Approve / Deny buttons) and the Teams cards. The rendering and all escaping of
//! requester text belong to `crate::approval::chat`; this file only adapts the server's view to
//! it and names the buttons `/slack/interactions` answers.

use serde_json::{Value, json};

use super::api::RequestView;

/// The `action_id`s of the buttons; their `value` is the request id.
pub const APPROVE: &str = "gate_approve";
pub const DENY: &str = "gate_deny";

/// Minimal mrkdwn escaping until the shared renderer is merged.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` and `blocks` of the Slack message for `v`.
pub fn slack_message(v: &RequestView, link: Option<&str>) -> Value {
    let cmd = esc(&crate::request::shell_join(&v.doc.argv)).replace('`', "'");
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("*{}* asks to run `{cmd}` ({})", esc(&v.requester), v.status)}})];
    if !v.approvals.is_empty() {
        let who: Vec<&str> = v.approvals.iter().map(|a| a.principal.as_str()).collect();
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("approved so far: {}", esc(&who.join(", ")))}]}));
    }
    if let Some(l) = link {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{l}|open in gate>")}]}));
    }
    if v.status == crate::approval::RequestStatus::Pending {
        blocks.push(
            json!({"type": "actions", "block_id": "gate_decide", "elements": [
                {"type": "button", "action_id": APPROVE, "style": "primary", "value": v.id,
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": DENY, "style": "danger", "value": v.id,
                 "text": {"type": "plain_text", "text": "Deny"},
                 "confirm": {"title": {"type": "plain_text", "text": "Deny this request?"},
                             "text": {"type": "plain_text", "text": "The command will not run."},
                             "confirm": {"type": "plain_text", "text": "Deny"},
                             "deny": {"type": "plain_text", "text": "Cancel"}}}
            ]}),
        );
    }
    json!({"text": format!("gate: request {} is {}", v.id, v.status), "blocks": blocks})
}

fn card(body: Vec<Value>, link: Option<&str>) -> Value {
    let mut c = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4", "body": body,
    });
    if let Some(l) = link {
        c["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in gate", "url": l}]);
    }
    c
}

/// The Adaptive Card announcing request `v`, linking to its page.
pub fn teams_card(v: &RequestView, link: Option<&str>) -> Value {
    card(
        vec![
            json!({"type": "TextBlock", "text": format!("{} asks to run {}", v.requester,
            crate::request::shell_join(&v.doc.argv))}),
        ],
        link,
    )
}

/// The second card: how request `v` ended.
pub fn teams_outcome(v: &RequestView, link: Option<&str>) -> Value {
    card(
        vec![json!({"type": "TextBlock", "text": format!("request {} is {}", v.id, v.status)})],
        link,
    )
}
