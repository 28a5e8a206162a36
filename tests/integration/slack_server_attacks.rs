//! Slack through the server, the attacks (issue 12 §2, §4): an agent running as the requester,
//! with its own policy, environment and server token, and anyone in the workspace, against the
//! server's `/slack/interactions` and its messages. Each test is named after the attack; the
//! command must not run, and refusals must be on record without a secret in them. The set-up
//! (a real `gate serve`, the Slack simulator, a waiting client) is `slack_server`'s.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::process;
use common::slack_sim::{BOT_TOKEN, CHANNEL, SlackConfig};
use serde_json::Value;

use crate::slack_server::{APPROVE, SECRET, World, client_log, events, pending_id, request, shown};

#[test]
fn agent_mapping_a_slack_user_in_its_own_policy_gains_nothing() {
    // The requester's own policy claims mallory's Slack id is bob: the server reads only its
    // own `identities`, so mallory's click stays mallory's.
    let w = World::start(
        SlackConfig::default(),
        "identities:\n  bob: { slack: U0MALLORY }\n",
    );
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    w.click(&ts, "U0MALLORY", APPROVE);
    let said = w.feedback_until("not eligible");
    assert!(said.contains("mallory"), "{said}");
    assert_eq!(w.status(&id), "pending");
    drop(client);
}

#[test]
fn agent_without_the_signing_secret_cannot_forge_replay_or_age_a_click() {
    let w = World::new();
    let mut client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    let url = w.interactions();
    let bob = w.sim.click(CHANNEL, &ts, "U0BOB0001", APPROVE);
    let cases: Vec<(&str, common::slack_interaction::SignedRequest, u16)> = vec![
        ("forged", bob.signed(SECRET).forged(), 401),
        ("stale", bob.signed(SECRET).aged(301), 401),
        ("from the future", bob.signed(SECRET).aged(-301), 401),
        ("unsigned", bob.signed(SECRET).unsigned(), 401),
        (
            "tampered",
            bob.signed(SECRET)
                .tampered(bob.body().replace("U0BOB0001", "U0CAROL01")),
            401,
        ),
        (
            "wrong content type",
            bob.signed(SECRET).content_type("application/json"),
            400,
        ),
    ];
    for (what, req, want) in &cases {
        let (status, body) = req.post(&url);
        assert_eq!(status, *want, "{what}: {body}");
        assert!(!body.contains(SECRET), "{what}: {body}");
    }
    // Still pending, still waiting, nothing approved.
    assert_eq!(w.status(&id), "pending");
    assert!(client.running());
    assert!(events(&w.srv, "approval").is_empty());
    // Each refusal is on record in the server's log, without the secret.
    let refused = events(&w.srv, "slack_refused");
    assert_eq!(refused.len(), cases.len(), "{refused:?}");
    let audit = std::fs::read_to_string(&w.srv.audit).unwrap();
    assert!(!audit.contains(SECRET));
    assert!(w.srv.stderr().contains("/slack/interactions refused"));

    // A genuine click, then the same bytes again: the replay is refused (409) and recorded.
    let genuine = w
        .sim
        .click(CHANNEL, &ts, "U0CAROL01", APPROVE)
        .signed(SECRET);
    assert_eq!(genuine.post(&url).0, 200);
    let (status, body) = genuine.post(&url);
    assert_eq!(status, 409, "{body}");
    assert_eq!(events(&w.srv, "slack_refused").len(), cases.len() + 1);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    // Carol approved once.
    assert_eq!(events(&w.srv, "approval").len(), 1);
    // The refusals sit in the server's log without breaking it: it verifies, compliance too.
    let mut c = common::gate_in(w.client.path());
    c.args(["log", "verify"])
        .arg(&w.srv.audit)
        .args(["--json", "--key", &w.srv.vkey()]);
    let r = common::Ran::of(c);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn malformed_signed_payloads_get_400_and_never_stop_the_server() {
    let w = World::new();
    let url = w.interactions();
    let now = common::slack_interaction::unix_now();
    let bodies = [
        "",
        "payload=",
        "payload=%7Bnot%20json",
        "payload=%5B%5D",
        "payload=%7B%22type%22%3A%22block_actions%22%7D",
        "nopayload=1",
        "payload=%7B%22type%22%3A%22view_submission%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%7D",
        "payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U0BOB0001%22%7D%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22gate_approve%22%2C%22value%22%3A%22..%2F..%2Fetc%22%7D%5D%7D",
        "\u{0}\u{1}garbage",
    ];
    for b in bodies {
        let req = common::slack_interaction::SignedRequest::new(b.to_owned(), SECRET, now);
        let (status, body) = req.post(&url);
        assert_eq!(status, 400, "{b:?}: {body}");
    }
    // Over the 1 MiB limit: 413, as the API's `{error, message}`.
    let huge = format!("payload={}", "a".repeat(2 << 20));
    let req = common::slack_interaction::SignedRequest::new(huge, SECRET, now);
    let (status, body) = req.post(&url);
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "too_large");
    // The server still answers.
    let ok = reqwest::blocking::get(format!("{}/healthz", w.srv.url)).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[test]
fn secrets_never_reach_logs_records_answers_or_errors() {
    let w = World::new();
    // A revoked token on the way: the error names Slack's code, never the token.
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let forged = w
        .sim
        .click(CHANNEL, &ts, "U0BOB0001", APPROVE)
        .signed(SECRET)
        .forged();
    w.click(&ts, "U0BOB0001", APPROVE);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    w.sim.revoke_token();
    let client = w.run(&["echo", "deploy"]);
    process::poll("the failure in the server's log", || {
        (!events(&w.srv, "chat_failed").is_empty()).then_some(())
    });
    let id = pending_id(&w.srv, &w.alice);
    let view = request(&w.srv, &w.alice, &id).to_string();
    assert!(view.contains("token_revoked"), "{view}");
    drop(client);
    // A forged click as well, for the refusal records.
    assert_eq!(forged.post(&w.interactions()).0, 401);
    let places = [
        ("server stderr", w.srv.stderr()),
        (
            "server audit log",
            std::fs::read_to_string(&w.srv.audit).unwrap(),
        ),
        ("client stderr", out.stderr.clone()),
        (
            "client audit log",
            std::fs::read_to_string(client_log(&w)).unwrap(),
        ),
        ("API view", view),
    ];
    for (place, text) in places {
        for secret in [BOT_TOKEN, SECRET] {
            assert!(!text.contains(secret), "{secret} in the {place}:\n{text}");
        }
    }
}

#[test]
fn agent_text_cannot_forge_mentions_links_or_an_outcome_in_the_servers_message() {
    let w = World::new();
    let mut c: Command = common::gate_in(w.client.path());
    c.env("GATE_TOKEN", &w.alice)
        .arg("--policy")
        .arg(w.client.path().join("client-policy.yaml"))
        .args([
            "--reason",
            "<!channel> <@U0BOB0001> <https://evil.example|Approved by bob> ``` *APPROVED* ```",
            "--",
            "echo",
            "deploy",
            "```<!here>",
        ]);
    let client = process::spawn(c);
    let ts = w.posted();
    let m = w.message(&ts);
    let all = shown(&m);
    for forged in [
        "<!channel>",
        "<!here>",
        "<@U0BOB0001>",
        "<https://evil.example",
    ] {
        assert!(
            !all.contains(forged),
            "{forged} reached Slack as markup: {all}"
        );
    }
    // The requester's backticks cannot close the command's code block: no raw ``` from it.
    let sections: Vec<String> = m
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"]["text"].as_str().map(str::to_owned))
        .collect();
    for s in &sections {
        assert_eq!(
            s.matches("```").count() % 2,
            0,
            "unbalanced code fence: {s}"
        );
        assert!(!s.contains("``` *APPROVED*"), "{s}");
    }
    drop(client);
}

#[test]
fn a_signing_secret_or_webhook_written_into_a_policy_is_refused_and_not_echoed() {
    let policy = "version: 1\nbackends:\n  sec: { kind: slack, channel: C0APPROVAL, token: \"env:T\", signing_secret: \"8f742231b10e8888abcd99yyyzzz85a5\" }\n  chan: { kind: teams, webhook: \"https://prod.example/workflows/1/invoke?sig=S3CRETSIG\" }\n";
    let r = common::Gate::new()
        .policy(policy)
        .args(&["policy", "lint"])
        .run();
    r.status(78);
    r.stderr_contains("secrets are never written into policy files");
    // The offending lines are shown, their secrets are not.
    assert!(!r.stderr.contains("S3CRETSIG"), "{}", r.stderr);
    assert!(!r.stderr.contains("8f742231b10e"), "{}", r.stderr);
    r.stderr_contains("signing_secret: \"<redacted>\"");
    assert_eq!(
        r.stderr
            .matches("secrets are never written into policy files")
            .count(),
        2,
        "{}",
        r.stderr
    );
}
