//! The Slack Web API simulator against Slack's documented answers and refusals.

use std::time::Duration;

use super::{JSON_UTF8, call, error_of, gate_like_blocks, get, http, is_slack_ts, read};
use crate::common;
use common::slack_sim::{BOT_TOKEN, BOT_USER, CHANNEL, Fault, SlackConfig, SlackSim};
use serde_json::{Value, json};

#[test]
fn auth_test_names_the_bot_and_every_answer_names_the_scopes() {
    let sim = SlackSim::start(SlackConfig::default());
    let r = http()
        .post(format!("{}auth.test", sim.api_url()))
        .bearer_auth(BOT_TOKEN)
        .send()
        .unwrap();
    let (status, v, headers) = read(r);
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["user_id"], BOT_USER);
    assert!(v["team_id"].as_str().unwrap().starts_with('T'));
    assert_eq!(
        headers["x-oauth-scopes"],
        "chat:write,reactions:read,users:read,usergroups:read"
    );
}

#[test]
fn tokens_not_authed_invalid_auth_token_revoked_all_with_http_200() {
    let sim = SlackSim::start(SlackConfig::default());
    let url = format!("{}auth.test", sim.api_url());
    let (s, v, _) = read(http().post(&url).send().unwrap());
    assert_eq!((s, error_of(&v)), (200, "not_authed"));
    // A token in the query string is not honoured; in a form body it is.
    let (_, v, _) = read(
        http()
            .get(&url)
            .query(&[("token", BOT_TOKEN)])
            .send()
            .unwrap(),
    );
    assert_eq!(error_of(&v), "not_authed");
    let form = format!("token={BOT_TOKEN}");
    let r = http()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap();
    assert_eq!(read(r).1["ok"], true);
    let (s, v, _) = read(http().post(&url).bearer_auth("xoxb-other").send().unwrap());
    assert_eq!((s, error_of(&v)), (200, "invalid_auth"));
    sim.revoke_token();
    let (s, v, _) = read(http().post(&url).bearer_auth(BOT_TOKEN).send().unwrap());
    assert_eq!((s, error_of(&v)), (200, "token_revoked"));
}

#[test]
fn post_message_as_json_or_form_posts_with_a_real_looking_ts() {
    let sim = SlackSim::start(SlackConfig::default());
    let v = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "fallback", "blocks": gate_like_blocks()}),
    );
    assert_eq!(v["ok"], true, "{v}");
    let ts = v["ts"].as_str().unwrap();
    assert!(is_slack_ts(ts), "{ts}");
    assert_eq!(v["channel"], CHANNEL);
    assert_eq!(v["message"]["blocks"], gate_like_blocks());
    // Form bodies carry blocks as a JSON string.
    let blocks = gate_like_blocks().to_string();
    let body = common::sim_http::form_encode(&[
        ("channel", CHANNEL),
        ("text", "second"),
        ("blocks", &blocks),
    ]);
    let r = http()
        .post(format!("{}chat.postMessage", sim.api_url()))
        .bearer_auth(BOT_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    let v2 = read(r).1;
    assert_eq!(v2["ok"], true, "{v2}");
    assert!(v2["ts"].as_str().unwrap() > ts, "ts values increase");
    let posted = sim.messages(CHANNEL);
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[1].blocks.as_ref(), Some(&gate_like_blocks()));
    let calls = sim.calls_to("chat.postMessage");
    assert_eq!(calls[0].headers["content-type"], JSON_UTF8);
    assert_eq!(calls[0].args["channel"], CHANNEL);
    assert_eq!(calls[1].args["text"], "second");
}

#[test]
fn post_message_refuses_what_slack_refuses() {
    let sim = SlackSim::start(SlackConfig::default());
    let cases = [
        (json!({"text": "no channel"}), "channel_not_found"),
        (
            json!({"channel": "C0NOPE0000", "text": "x"}),
            "channel_not_found",
        ),
        (
            json!({"channel": "C0OUTSIDE", "text": "x"}),
            "not_in_channel",
        ),
        (json!({"channel": CHANNEL}), "no_text"),
        (
            json!({"channel": CHANNEL, "blocks": "[not json"}),
            "invalid_blocks_format",
        ),
        (
            json!({"channel": CHANNEL, "blocks": {"type": "divider"}}),
            "invalid_blocks_format",
        ),
        (
            json!({"channel": CHANNEL, "text": "x", "thread_ts": "1.000001"}),
            "thread_not_found",
        ),
    ];
    for (body, want) in cases {
        let v = call(&sim, "chat.postMessage", body.clone());
        assert_eq!(error_of(&v), want, "{body}");
    }
    let raw = |ct: Option<&str>, body: &str| {
        let mut r = http()
            .post(format!("{}chat.postMessage", sim.api_url()))
            .bearer_auth(BOT_TOKEN)
            .body(body.to_owned());
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        read(r.send().unwrap()).1
    };
    assert_eq!(error_of(&raw(Some(JSON_UTF8), "{not json")), "invalid_json");
    assert_eq!(error_of(&raw(Some(JSON_UTF8), "[1,2]")), "json_not_object");
    assert_eq!(
        error_of(&raw(Some("text/xml"), "<x/>")),
        "invalid_post_type"
    );
    assert_eq!(error_of(&raw(None, "channel=C")), "missing_post_type");
    let ok = raw(
        Some("application/json"),
        &json!({"channel": CHANNEL, "text": "x"}).to_string(),
    );
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(
        ok["response_metadata"]["warnings"],
        json!(["missing_charset"])
    );
    sim.set_scopes(&["reactions:read"]);
    let v = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "x"}),
    );
    assert_eq!(error_of(&v), "missing_scope");
    assert_eq!(
        (v["needed"].as_str(), v["provided"].as_str()),
        (Some("chat:write"), Some("reactions:read"))
    );
    assert_eq!(sim.messages(CHANNEL).len(), 1, "only the good post landed");
}

#[test]
fn block_kit_violations_are_invalid_blocks_with_a_json_pointer() {
    let sim = SlackSim::start(SlackConfig::default());
    let plain = |t: String| json!({"type": "plain_text", "text": t});
    let header = |n: usize| json!([{"type": "header", "text": plain("h".repeat(n))}]);
    let section =
        |n: usize| json!([{"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(n)}}]);
    let dividers = |n: usize| Value::Array(vec![json!({"type": "divider"}); n]);
    let button = |extra: Value| {
        let mut b = json!({"type": "button", "action_id": "a", "text": plain("Go".into())});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!([{"type": "actions", "elements": [b]}])
    };
    let good = [
        header(150),
        section(3000),
        dividers(50),
        button(json!({"style": "danger", "value": "v".repeat(2000)})),
        gate_like_blocks(),
    ];
    for blocks in good {
        let v = call(
            &sim,
            "chat.postMessage",
            json!({"channel": CHANNEL, "blocks": blocks}),
        );
        assert_eq!(v["ok"], true, "refused a valid message: {v}");
    }
    let bad = [
        (header(151), "/blocks/0/text/text"),
        (
            json!([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]),
            "/blocks/0/text/type",
        ),
        (section(3001), "/blocks/0/text/text"),
        (dividers(51), "/blocks"),
        (json!([{"type": "carousel"}]), "/blocks/0/type"),
        (json!([{"text": plain("no type".into())}]), "/blocks/0"),
        (
            json!([{"type": "section", "text": {"type": "markdown", "text": "x"}}]),
            "/blocks/0/text/type",
        ),
        (
            json!([{"type": "section", "text": {"type": "plain_text", "text": ""}}]),
            "/blocks/0/text/text",
        ),
        (
            button(json!({"style": "green"})),
            "/blocks/0/elements/0/style",
        ),
        (
            button(json!({"action_id": "a".repeat(256)})),
            "/blocks/0/elements/0/action_id",
        ),
        (button(json!({"value": 7})), "/blocks/0/elements/0/value"),
        (
            json!([{"type": "actions", "elements": [
            {"type": "button", "action_id": "x", "text": plain("1".into())},
            {"type": "button", "action_id": "x", "text": plain("2".into())}]}]),
            "/blocks/0/elements/1/action_id",
        ),
        (
            json!([{"type": "actions", "elements": []}]),
            "/blocks/0/elements",
        ),
    ];
    for (blocks, pointer) in bad {
        let v = call(
            &sim,
            "chat.postMessage",
            json!({"channel": CHANNEL, "blocks": blocks}),
        );
        assert_eq!(error_of(&v), "invalid_blocks", "{blocks}");
        let msgs = v["response_metadata"]["messages"].to_string();
        assert!(
            msgs.contains(&format!("[json-pointer:{pointer}]")),
            "{pointer} not in {msgs}"
        );
    }
    assert_eq!(sim.messages(CHANNEL).len(), 5);
}

#[test]
fn thread_replies_attach_to_the_parent() {
    let sim = SlackSim::start(SlackConfig::default());
    let parent = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "p"}),
    );
    let pts = parent["ts"].as_str().unwrap();
    let r1 = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "r1", "thread_ts": pts}),
    );
    assert_eq!(r1["message"]["thread_ts"], pts);
    let r1ts = r1["ts"].as_str().unwrap();
    let r2 = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "r2", "thread_ts": r1ts}),
    );
    assert_eq!(
        r2["message"]["thread_ts"], pts,
        "a reply to a reply joins the thread"
    );
    let replies: Vec<_> = sim
        .replies(CHANNEL, pts)
        .into_iter()
        .map(|m| m.text.unwrap())
        .collect();
    assert_eq!(replies, ["r1", "r2"]);
    assert_eq!(
        sim.messages(CHANNEL).len(),
        1,
        "replies are not top-level messages"
    );
}

#[test]
fn chat_update_replaces_text_keeps_blocks_unless_given() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t", "blocks": gate_like_blocks()}),
    );
    let ts = p["ts"].as_str().unwrap();
    let u = call(
        &sim,
        "chat.update",
        json!({"channel": CHANNEL, "ts": ts, "text": "approved"}),
    );
    assert_eq!(
        (u["ok"].clone(), u["ts"].as_str()),
        (json!(true), Some(ts)),
        "{u}"
    );
    let m = sim.message(CHANNEL, ts).unwrap();
    assert_eq!(
        (m.text.as_deref(), m.blocks.is_some(), m.edits),
        (Some("approved"), true, 1)
    );
    call(
        &sim,
        "chat.update",
        json!({"channel": CHANNEL, "ts": ts, "blocks": []}),
    );
    assert!(
        sim.message(CHANNEL, ts).unwrap().blocks.is_none(),
        "an empty array removes blocks"
    );
    let v = call(
        &sim,
        "chat.update",
        json!({"channel": CHANNEL, "ts": "1700000000.999999", "text": "x"}),
    );
    assert_eq!(error_of(&v), "message_not_found");
    let v = call(&sim, "chat.update", json!({"channel": CHANNEL, "ts": ts}));
    assert_eq!(error_of(&v), "no_text");
    let v = call(
        &sim,
        "chat.update",
        json!({"channel": CHANNEL, "ts": ts, "blocks": [{"type": "video"}]}),
    );
    assert_eq!(error_of(&v), "invalid_blocks");
}

#[test]
fn reactions_get_lists_names_users_and_counts() {
    let sim = SlackSim::start(SlackConfig {
        partial_users: 1,
        ..SlackConfig::default()
    });
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t"}),
    );
    let ts = p["ts"].as_str().unwrap();
    let v = get(
        &sim,
        "reactions.get",
        &[("channel", CHANNEL), ("timestamp", ts), ("full", "true")],
    );
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["message"].get("reactions").is_none(),
        "no reactions yet: {v}"
    );
    sim.react(CHANNEL, ts, "white_check_mark", "U0ALICE01");
    sim.react(CHANNEL, ts, "white_check_mark", "U0BOB0001");
    sim.react(CHANNEL, ts, "x", "U0MALLORY");
    sim.unreact(CHANNEL, ts, "x", "U0MALLORY");
    let v = get(
        &sim,
        "reactions.get",
        &[("channel", CHANNEL), ("timestamp", ts), ("full", "true")],
    );
    assert_eq!(
        (v["type"].as_str(), v["channel"].as_str()),
        (Some("message"), Some(CHANNEL))
    );
    assert_eq!(
        v["message"]["reactions"],
        json!([{"name": "white_check_mark", "users": ["U0ALICE01", "U0BOB0001"], "count": 2}])
    );
    // Without full=true the user list may be cut short; the count stays exact.
    let v = call(
        &sim,
        "reactions.get",
        json!({"channel": CHANNEL, "timestamp": ts}),
    );
    assert_eq!(v["message"]["reactions"][0]["users"], json!(["U0ALICE01"]));
    assert_eq!(v["message"]["reactions"][0]["count"], 2);
    let err = |q: &[(&str, &str)]| error_of(&get(&sim, "reactions.get", q)).to_owned();
    assert_eq!(err(&[("channel", CHANNEL)]), "no_item_specified");
    assert_eq!(
        err(&[("channel", CHANNEL), ("timestamp", "yesterday")]),
        "bad_timestamp"
    );
    assert_eq!(
        err(&[("channel", CHANNEL), ("timestamp", "1700000000.999999")]),
        "message_not_found"
    );
    assert_eq!(
        err(&[("channel", "C0NOPE0000"), ("timestamp", ts)]),
        "channel_not_found"
    );
    sim.set_scopes(&["chat:write"]);
    let v = get(
        &sim,
        "reactions.get",
        &[("channel", CHANNEL), ("timestamp", ts)],
    );
    assert_eq!(
        (error_of(&v), v["needed"].as_str()),
        ("missing_scope", Some("reactions:read"))
    );
}

#[test]
fn users_info_and_usergroup_members() {
    let sim = SlackSim::start(SlackConfig::default());
    let v = get(&sim, "users.info", &[("user", "U0ALICE01")]);
    assert_eq!(
        (v["user"]["id"].as_str(), v["user"]["name"].as_str()),
        (Some("U0ALICE01"), Some("alice"))
    );
    assert_eq!(v["user"]["deleted"], false);
    assert_eq!(
        error_of(&get(&sim, "users.info", &[("user", "U0NOBODY1")])),
        "user_not_found"
    );
    let v = get(&sim, "usergroups.users.list", &[("usergroup", "S0OPS0001")]);
    assert_eq!(v["users"], json!(["U0ALICE01", "U0BOB0001"]));
    sim.set_usergroup("S0OPS0001", &["U0BOB0001"]);
    let v = get(&sim, "usergroups.users.list", &[("usergroup", "S0OPS0001")]);
    assert_eq!(v["users"], json!(["U0BOB0001"]));
    let v = get(&sim, "usergroups.users.list", &[("usergroup", "S0NOSUCH1")]);
    assert_eq!(error_of(&v), "no_such_subteam");
    sim.set_scopes(&["chat:write", "reactions:read"]);
    let v = get(&sim, "users.info", &[("user", "U0ALICE01")]);
    assert_eq!(
        (error_of(&v), v["needed"].as_str()),
        ("missing_scope", Some("users:read"))
    );
    let v = get(&sim, "usergroups.users.list", &[("usergroup", "S0OPS0001")]);
    assert_eq!(v["provided"], "chat:write,reactions:read");
}

#[test]
fn rate_limits_answer_429_with_retry_after_until_the_window_passes() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t"}),
    );
    let ts = p["ts"].as_str().unwrap().to_owned();
    let q = [
        ("channel", CHANNEL),
        ("timestamp", ts.as_str()),
        ("full", "true"),
    ];
    let once = || {
        let r = http()
            .get(format!("{}reactions.get", sim.api_url()))
            .bearer_auth(BOT_TOKEN)
            .query(&q)
            .send()
            .unwrap();
        read(r)
    };
    // reactions.get is Tier 3: 50 a minute by default.
    for i in 0..50 {
        assert_eq!(once().0, 200, "call {i}");
    }
    let (status, v, headers) = once();
    assert_eq!((status, error_of(&v)), (429, "ratelimited"));
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Other methods have their own budget.
    assert_eq!(
        get(&sim, "users.info", &[("user", "U0ALICE01")])["ok"],
        true
    );
    // A short window shows Retry-After is honest: after waiting that long, calls go through.
    sim.rate_limit("reactions.get", 1, Duration::from_secs(1));
    assert_eq!(once().0, 200);
    let (status, _, headers) = once();
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(once().0, 200);
}

#[test]
fn outages_fail_exactly_the_next_requests() {
    let sim = SlackSim::start(SlackConfig::default());
    let url = format!("{}auth.test", sim.api_url());
    let send = || http().post(&url).bearer_auth(BOT_TOKEN).send();
    sim.fail_next(1, Fault::Status(503));
    sim.fail_next(1, Fault::Drop);
    sim.fail_next(1, Fault::Status(500));
    sim.fail_next(1, Fault::SlackError("internal_error".into()));
    let r = send().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(
        r.text().unwrap().contains("<html>"),
        "a proxy's page, not Slack JSON"
    );
    let e = send().expect_err("a dropped connection is an error, not a response");
    assert!(e.is_request() || e.is_connect() || e.is_body(), "{e:?}");
    assert_eq!(send().unwrap().status().as_u16(), 500);
    let (s, v, _) = read(send().unwrap());
    assert_eq!((s, error_of(&v)), (200, "internal_error"));
    assert_eq!(read(send().unwrap()).1["ok"], true, "the outage is over");
}

#[test]
fn response_url_posts_are_recorded_and_replace_the_message() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t", "blocks": gate_like_blocks()}),
    );
    let ts = p["ts"].as_str().unwrap();
    let click = sim.click(CHANNEL, ts, "U0ALICE01", "approve");
    let post = |ct: &str, body: String| {
        let r = http()
            .post(&click.response_url)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let done = json!({"replace_original": true, "text": "approved by alice",
                      "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "approved"}}]});
    assert_eq!(post(JSON_UTF8, done.to_string()), (200, "ok".into()));
    let m = sim.message(CHANNEL, ts).unwrap();
    assert_eq!((m.text.as_deref(), m.edits), (Some("approved by alice"), 1));
    assert_eq!(
        post("application/x-www-form-urlencoded", "text=x".into()).0,
        400
    );
    assert_eq!(post(JSON_UTF8, "{}".into()), (400, "no_text".into()));
    let bad = json!({"replace_original": true, "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]});
    assert_eq!(
        post(JSON_UTF8, bad.to_string()),
        (400, "invalid_blocks".into())
    );
    let recorded = sim.calls_to("response_url");
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[0].args["text"], "approved by alice");
}

#[test]
fn a_fault_aimed_at_one_method_leaves_the_others_alone_and_is_recorded() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t"}),
    );
    let ts = p["ts"].as_str().unwrap().to_owned();
    sim.fail_method("reactions.get", 2, Fault::Status(503));
    sim.fail_method("reactions.get", 1, Fault::SlackError("fatal_error".into()));
    assert_eq!(call(&sim, "auth.test", json!({}))["ok"], true);
    let q = json!({"channel": CHANNEL, "timestamp": ts, "full": true});
    let status = |q: &Value| {
        let r = http()
            .post(format!("{}reactions.get", sim.api_url()))
            .bearer_auth(BOT_TOKEN)
            .json(q)
            .send()
            .unwrap();
        r.status().as_u16()
    };
    assert_eq!([status(&q), status(&q)], [503, 503]);
    assert_eq!(
        error_of(&call(&sim, "reactions.get", q.clone())),
        "fatal_error"
    );
    assert_eq!(call(&sim, "reactions.get", q.clone())["ok"], true);
    let tries = sim.calls_to("reactions.get");
    assert_eq!(tries.len(), 4);
    assert!(
        tries.iter().all(|c| c.args["timestamp"] == ts.as_str()),
        "retries keep their arguments"
    );
    assert_eq!(
        tries.iter().map(|c| c.status).collect::<Vec<_>>(),
        [503, 503, 200, 200]
    );
}

#[test]
fn post_message_takes_a_channel_name_update_and_reactions_want_the_id() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": "#approvals", "text": "t"}),
    );
    assert_eq!(p["channel"], CHANNEL, "{p}");
    let ts = p["ts"].as_str().unwrap();
    let v = call(
        &sim,
        "chat.update",
        json!({"channel": "approvals", "ts": ts, "text": "u"}),
    );
    assert_eq!(error_of(&v), "channel_not_found");
    let v = call(
        &sim,
        "chat.postMessage",
        json!({"channel": "#elsewhere", "text": "t"}),
    );
    assert_eq!(error_of(&v), "not_in_channel");
    let v = call(&sim, "chat.delete", json!({"channel": CHANNEL, "ts": ts}));
    assert_eq!(
        (error_of(&v), v["req_method"].as_str()),
        ("unknown_method", Some("chat.delete"))
    );
}

#[test]
fn the_bot_cannot_update_a_persons_message_and_long_text_is_truncated() {
    let sim = SlackSim::start(SlackConfig::default());
    let ts = sim.post_as_user(CHANNEL, "U0ALICE01", "I wrote this", None);
    let v = call(
        &sim,
        "chat.update",
        json!({"channel": CHANNEL, "ts": ts, "text": "edited"}),
    );
    assert_eq!(error_of(&v), "cant_update_message");
    assert_eq!(
        sim.message(CHANNEL, &ts).unwrap().text.as_deref(),
        Some("I wrote this")
    );
    let long = "é".repeat(40_001);
    let v = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": long}),
    );
    let kept = sim
        .message(CHANNEL, v["ts"].as_str().unwrap())
        .unwrap()
        .text
        .unwrap();
    assert_eq!(kept.chars().count(), 40_000);
}

#[test]
fn garbage_gets_a_documented_error_and_the_simulator_keeps_answering() {
    let sim = SlackSim::start(SlackConfig::default());
    let bodies = [
        json!({"channel": CHANNEL, "blocks": [1, "x", null, {"type": 5}, []]}),
        json!({"channel": CHANNEL, "blocks": [{"type": "section", "fields": "x", "accessory": 3}]}),
        json!({"channel": CHANNEL, "blocks": [{"type": "context", "elements": [5, {"type": "image"}]}]}),
        json!({"channel": CHANNEL, "blocks": [{"type": "actions", "elements": [
            {"type": "button", "text": 1, "confirm": []}, {"type": "overflow"}, 7]}]}),
        json!({"channel": CHANNEL, "blocks": [{"type": "header", "text": null, "block_id": 9}]}),
    ];
    for body in bodies {
        let v = call(&sim, "chat.postMessage", body.clone());
        assert_eq!(error_of(&v), "invalid_blocks", "{body}");
    }
    for weird in [
        json!({"channel": 5, "text": "x"}),
        json!({"channel": CHANNEL, "text": ["x"]}),
    ] {
        let v = call(&sim, "chat.postMessage", weird.clone());
        assert_eq!(v["ok"], false, "{weird}");
    }
    let r = http()
        .post(format!("{}chat.postMessage", sim.api_url()))
        .bearer_auth(BOT_TOKEN)
        .header("content-type", JSON_UTF8)
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .unwrap();
    assert_eq!(error_of(&read(r).1), "invalid_form_data");
    assert_eq!(call(&sim, "auth.test", json!({}))["ok"], true);
}

#[test]
fn latency_delays_every_answer_and_calls_carry_their_arrival_time() {
    let sim = SlackSim::start(SlackConfig::default());
    sim.set_latency(Duration::from_millis(150));
    let before = std::time::Instant::now();
    assert_eq!(call(&sim, "auth.test", json!({}))["ok"], true);
    assert!(before.elapsed() >= Duration::from_millis(150));
    call(&sim, "auth.test", json!({}));
    let calls = sim.calls_to("auth.test");
    assert!(calls[0].at >= before && calls[1].at >= calls[0].at + Duration::from_millis(150));
}
