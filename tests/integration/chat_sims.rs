//! Fidelity of the chat simulators (issue 12 §5): the Slack Web API simulator answers
//! documented calls as Slack does and refuses malformed ones with Slack's error codes; the
//! interaction signer reproduces Slack's documented signing example; the Teams Workflows
//! webhook simulator takes the documented envelope with 202 and refuses what Teams would not
//! render. The Slack and Teams backends are tested against these, so a simulator that
//! accepted what the real service refuses would let a broken backend pass.

use crate::common;

use std::time::Duration;

use common::slack_sim::{BOT_TOKEN, SlackSim};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

mod interaction;
mod slack;
mod teams;
mod usage;

const JSON_UTF8: &str = "application/json; charset=utf-8";

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The answer as (HTTP status, JSON body, response headers).
fn read(r: Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v, headers)
}

/// POSTs a JSON body with the bot token, as a Slack client does.
fn call(sim: &SlackSim, method: &str, body: Value) -> Value {
    let r = http()
        .post(format!("{}{method}", sim.api_url()))
        .header("authorization", format!("Bearer {BOT_TOKEN}"))
        .header("content-type", JSON_UTF8)
        .body(body.to_string())
        .send()
        .unwrap();
    let (status, v, _) = read(r);
    assert_eq!(status, 200, "{method}: {v}");
    v
}

fn get(sim: &SlackSim, method: &str, query: &[(&str, &str)]) -> Value {
    let r = http()
        .get(format!("{}{method}", sim.api_url()))
        .bearer_auth(BOT_TOKEN)
        .query(query)
        .send()
        .unwrap();
    read(r).1
}

#[track_caller]
fn error_of(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "expected ok:false, got {v}");
    v["error"].as_str().expect("error code")
}

fn is_slack_ts(s: &str) -> bool {
    let re = regex::Regex::new(r"^\d{10}\.\d{6}$").unwrap();
    re.is_match(s)
}

/// The kind of message gate posts: header, context, section with a code block, fields,
/// Approve / Deny buttons (Deny with a confirmation), a divider.
fn gate_like_blocks() -> Value {
    let plain = |t: &str| json!({"type": "plain_text", "text": t});
    let md = |t: &str| json!({"type": "mrkdwn", "text": t});
    json!([
        {"type": "header", "text": plain("Approval needed: systemctl restart nginx")},
        {"type": "context", "elements": [md("requested by *alice* on `web-1`")]},
        {"type": "section", "text": md("```systemctl restart nginx```"),
         "fields": [md("*cwd*\n/srv"), md("*risk*\nhigh")]},
        {"type": "divider"},
        {"type": "actions", "block_id": "decide", "elements": [
            {"type": "button", "action_id": "approve", "value": "req-1", "style": "primary",
             "text": plain("Approve")},
            {"type": "button", "action_id": "deny", "value": "req-1", "style": "danger",
             "text": plain("Deny"),
             "confirm": {"title": plain("Deny?"), "text": md("Deny this request?"),
                         "confirm": plain("Deny"), "deny": plain("Back")}}
        ]}
    ])
}
