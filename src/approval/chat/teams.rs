//! The Teams form of a request: an Adaptive Card 1.4 (TextBlock, FactSet) with
//! `Action.OpenUrl` links to the server's page for the request — a webhook card cannot post
//! an answer back, so the decision is made on that page. Requester text is escaped for the
//! card's markdown subset ([`super::escape::card_md`]).

use serde_json::{Value, json};

use super::escape;
use super::{ChatMessage, ChatState, need_words, rfc3339, top_risk};
use crate::request::shell_join;

fn text(t: String) -> Value {
    json!({"type": "TextBlock", "text": t, "wrap": true})
}

fn fact(title: &str, value: String) -> Value {
    json!({"title": title, "value": value})
}

fn md(s: &str, max: usize) -> String {
    if s.is_empty() {
        return "(empty)".to_owned();
    }
    escape::card_md(s, max).text
}

/// The Adaptive Card. `request_url`: the server's page for this request (an absolute http(s)
/// URL the caller built; it is used as given).
pub fn teams_card(m: &ChatMessage<'_>, request_url: &str) -> Value {
    let r = m.request;
    let title = match &m.state {
        ChatState::Pending => match top_risk(&m.rules) {
            Some(risk) => format!("gate: approval needed · {} risk", md(risk, 40)),
            None => "gate: approval needed".to_owned(),
        },
        ChatState::Approved => "gate: approved".to_owned(),
        ChatState::Denied { .. } => "gate: denied".to_owned(),
        ChatState::TimedOut => "gate: timed out, nothing ran".to_owned(),
        ChatState::Cancelled => "gate: cancelled, nothing ran".to_owned(),
    };
    let mut body = vec![json!({
        "type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true,
    })];
    let list = |xs: &[String]| -> String {
        if xs.is_empty() {
            "none yet".to_owned()
        } else {
            xs.iter()
                .take(20)
                .map(|a| md(a, 60))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match &m.state {
        ChatState::Pending => {}
        ChatState::Approved => body.push(text(format!(
            "Approved by {}; the command runs now.",
            list(&m.approvals)
        ))),
        ChatState::Denied { by, reason } => body.push(text(format!(
            "Denied by {}{}; nothing ran.",
            md(by, 60),
            reason
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| format!(": {}", md(s, 500)))
                .unwrap_or_default()
        ))),
        ChatState::TimedOut => body.push(text(format!(
            "Timed out with {} of {} approvals; nothing ran.",
            m.approvals.len(),
            m.need.min_approvals
        ))),
        ChatState::Cancelled => {
            body.push(text("Cancelled by the requester; nothing ran.".to_owned()))
        }
    }
    body.push(json!({"type": "TextBlock", "text": "Command", "weight": "Bolder", "wrap": true}));
    body.push(json!({
        "type": "TextBlock",
        "text": md(&shell_join(&r.command.argv), 4000),
        "fontType": "Monospace",
        "wrap": true,
    }));
    let who = &r.requester;
    let mut facts = vec![fact(
        "Requested by",
        format!("{} on {}", md(&who.user, 100), md(&who.host, 100)),
    )];
    if let Some(agent) = &who.agent {
        facts.push(fact("Agent", md(agent, 100)));
    }
    for (k, v) in who.ci.iter().flatten().take(10) {
        facts.push(fact("CI", format!("{}={}", md(k, 60), md(v, 150))));
    }
    facts.push(fact("Working directory", md(&r.command.cwd, 1000)));
    let (count, _) = need_words(&m.need);
    facts.push(fact(
        "Needs",
        if m.need.from.is_empty() {
            format!("{count} approval(s) from anyone but the requester")
        } else {
            let from: Vec<String> = m.need.from.iter().take(10).map(|g| md(g, 60)).collect();
            format!("{count} from {}", from.join(", "))
        },
    ));
    facts.push(fact("Approved so far", list(&m.approvals)));
    facts.push(fact("Expires", rfc3339(m.expires_unix)));
    facts.push(fact("Request", md(&r.id, 80)));
    facts.push(fact(
        "Reason",
        r.reason
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| md(s, 1500))
            .unwrap_or_else(|| "none given".to_owned()),
    ));
    for (k, v) in r.context.iter().take(20) {
        facts.push(fact("Context", format!("{}={}", md(k, 100), md(v, 300))));
    }
    for rule in m.rules.iter().take(20) {
        let mut v = md(&rule.name, 100);
        if let Some(risk) = &rule.risk {
            v.push_str(&format!(" (risk {})", md(risk, 40)));
        }
        if let Some(c) = &rule.category {
            v.push_str(&format!(", {}", md(c, 60)));
        }
        facts.push(fact("Rule", v));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    let label = if m.state == ChatState::Pending {
        "Review and decide"
    } else {
        "Open the request"
    };
    json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": label, "url": request_url}],
    })
}

/// The webhook body that carries `card`: a `message` with one Adaptive Card attachment.
pub fn teams_message(card: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}
