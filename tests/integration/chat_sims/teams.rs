//! The Teams Workflows webhook simulator against the documented envelope and card schema.

use super::{http, read};
use crate::common;
use common::teams_sim::{TeamsConfig, TeamsFault, TeamsSim};
use serde_json::{Value, json};

fn card(version: &str, body: Value, actions: Value) -> Value {
    json!({"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
           "type": "AdaptiveCard", "version": version, "body": body, "actions": actions})
}

fn envelope(card: Value) -> Value {
    json!({"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]})
}

fn gate_like_card() -> Value {
    card(
        "1.4",
        json!([
            {"type": "TextBlock", "text": "Approval needed", "weight": "Bolder", "size": "Medium"},
            {"type": "FactSet", "facts": [{"title": "Command", "value": "systemctl restart nginx"}]},
            {"type": "Container", "items": [{"type": "TextBlock", "text": "reason: deploy", "wrap": true}]},
            {"type": "ColumnSet", "columns": [{"type": "Column", "items": [{"type": "TextBlock", "text": "risk: high"}]}]}
        ]),
        json!([{"type": "Action.OpenUrl", "title": "Review", "url": "https://gate.example/requests/r1"}]),
    )
}

fn post_teams(url: &str, ct: &str, body: String) -> (u16, Value, reqwest::header::HeaderMap) {
    read(
        http()
            .post(url)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap(),
    )
}

#[test]
fn teams_takes_the_documented_envelope_with_202_and_an_empty_body() {
    let sim = TeamsSim::start(TeamsConfig::default());
    let (status, body, _) = post_teams(
        &sim.webhook_url(),
        "application/json",
        envelope(gate_like_card()).to_string(),
    );
    assert_eq!((status, body), (202, json!("")));
    assert_eq!(sim.cards(), [gate_like_card()]);
}

#[test]
fn teams_refuses_what_a_webhook_card_cannot_be() {
    let sim = TeamsSim::start(TeamsConfig::default());
    let url = sim.webhook_url();
    let text = json!([{"type": "TextBlock", "text": "x"}]);
    let open = json!([{"type": "Action.OpenUrl", "title": "t", "url": "https://gate.example/r"}]);
    let mut no_schema = card("1.4", text.clone(), open.clone());
    no_schema.as_object_mut().unwrap().remove("$schema");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"attachments": []}), "`type` must be"),
        (
            json!({"type": "message", "attachments": []}),
            "non-empty array",
        ),
        (
            json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.teams.card.o365connector", "content": {}}]}),
            "contentType",
        ),
        (envelope(no_schema), "$schema"),
        (
            envelope(card("1.5", text.clone(), open.clone())),
            "up to 1.4",
        ),
        (
            envelope(card("2", text.clone(), open.clone())),
            "MAJOR.MINOR",
        ),
        (
            envelope(card(
                "1.4",
                json!([{"type": "Image", "url": "https://x/i.png"}]),
                open.clone(),
            )),
            "Image",
        ),
        (
            envelope(card(
                "1.4",
                json!([{"type": "FactSet", "facts": [{"title": "a", "value": 1}]}]),
                open.clone(),
            )),
            "facts[0]",
        ),
        (
            envelope(card(
                "1.4",
                text.clone(),
                json!([{"type": "Action.Submit", "title": "Approve", "data": {}}]),
            )),
            "Action.Submit",
        ),
        (
            envelope(card(
                "1.4",
                text.clone(),
                json!([{"type": "Action.OpenUrl", "url": "/requests/r1"}]),
            )),
            "absolute",
        ),
        (
            envelope(card(
                "1.4",
                text.clone(),
                json!([{"type": "Action.OpenUrl", "url": "javascript:alert(1)"}]),
            )),
            "absolute",
        ),
    ];
    for (body, why) in cases {
        let (status, v, _) = post_teams(&url, "application/json", body.to_string());
        assert_eq!(status, 400, "{body}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{why:?} not in {msg:?}");
    }
    assert_eq!(
        post_teams(&url, "application/json", "{not json".into()).0,
        400
    );
    assert_eq!(
        post_teams(&url, "text/plain", envelope(gate_like_card()).to_string()).0,
        400
    );
    let huge = card(
        "1.4",
        json!([{"type": "TextBlock", "text": "x".repeat(30_000)}]),
        open.clone(),
    );
    assert_eq!(
        post_teams(&url, "application/json", envelope(huge).to_string()).0,
        413
    );
    let unsigned = url.split("&sig=").next().unwrap().to_owned();
    assert_eq!(
        post_teams(
            &unsigned,
            "application/json",
            envelope(gate_like_card()).to_string()
        )
        .0,
        401
    );
    assert_eq!(
        post_teams(
            &format!("{unsigned}&sig=guess"),
            "application/json",
            envelope(gate_like_card()).to_string()
        )
        .0,
        401
    );
    assert!(sim.cards().is_empty(), "nothing malformed was posted");
    assert_eq!(
        post_teams(
            &url,
            "application/json",
            envelope(card("1.4", text, open)).to_string()
        )
        .0,
        202
    );
    assert_eq!(sim.cards().len(), 1);
}

#[test]
fn teams_like_the_real_service_can_accept_a_bad_card_and_post_nothing() {
    let sim = TeamsSim::start(TeamsConfig {
        async_failures: true,
    });
    let submit = card(
        "1.4",
        json!([]),
        json!([{"type": "Action.Submit", "title": "Approve"}]),
    );
    let (status, _, _) = post_teams(
        &sim.webhook_url(),
        "application/json",
        envelope(submit).to_string(),
    );
    assert_eq!(status, 202);
    assert!(sim.cards().is_empty());
    let refused = sim.posts()[0].refused.clone().unwrap();
    assert!(refused.contains("Action.Submit"), "{refused}");
}

#[test]
fn teams_throttling_and_outages_fail_exactly_the_next_requests() {
    let sim = TeamsSim::start(TeamsConfig::default());
    sim.fail_next(1, TeamsFault::Throttled(7));
    sim.fail_next(1, TeamsFault::Status(502));
    sim.fail_next(1, TeamsFault::Drop);
    let body = envelope(gate_like_card()).to_string();
    let (status, _, headers) = post_teams(&sim.webhook_url(), "application/json", body.clone());
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap()),
        (429, "7")
    );
    assert_eq!(
        post_teams(&sim.webhook_url(), "application/json", body.clone()).0,
        502
    );
    let dropped = http()
        .post(sim.webhook_url())
        .header("content-type", "application/json")
        .body(body.clone())
        .send();
    assert!(dropped.is_err(), "a dropped connection is an error");
    assert_eq!(
        post_teams(&sim.webhook_url(), "application/json", body).0,
        202
    );
    assert_eq!(sim.cards().len(), 1);
}
