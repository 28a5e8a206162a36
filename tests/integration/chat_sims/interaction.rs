//! Slack's request signing and the `block_actions` payload the interaction helper builds.

use super::{call, gate_like_blocks};
use crate::common;
use common::sim_http::form_pairs;
use common::slack_interaction::{SignedRequest, hmac_sha256, slack_signature};
use common::slack_sim::{CHANNEL, SlackConfig, SlackSim};
use serde_json::{Value, json};

#[test]
fn signing_reproduces_slacks_documented_example_and_rfc_4231() {
    // https://api.slack.com/docs/verifying-requests-from-slack, "a step-by-step walk-through".
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow\
                &channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner\
                &command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F\
                commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN\
                &trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert_eq!(
        slack_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
    // RFC 4231 test cases 2 and 6 (a key longer than the block is hashed first).
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn a_click_is_a_signed_form_encoded_block_actions_payload() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t", "blocks": gate_like_blocks()}),
    );
    let ts = p["ts"].as_str().unwrap();
    let click = sim.click(CHANNEL, ts, "U0BOB0001", "deny");
    let signed = click.signed("s3cret");
    let pairs = form_pairs(&signed.body);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0, "payload");
    let payload: Value = serde_json::from_str(&pairs[0].1).unwrap();
    assert_eq!(payload["type"], "block_actions");
    assert_eq!(payload["user"]["id"], "U0BOB0001");
    assert_eq!(payload["user"]["username"], "bob");
    assert_eq!(payload["container"]["message_ts"], ts);
    assert_eq!(payload["channel"]["id"], CHANNEL);
    assert_eq!(payload["response_url"], click.response_url);
    assert!(
        payload["trigger_id"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let a = &payload["actions"][0];
    assert_eq!(
        (
            a["action_id"].as_str(),
            a["value"].as_str(),
            a["block_id"].as_str()
        ),
        (Some("deny"), Some("req-1"), Some("decide"))
    );
    assert_eq!(a["style"], "danger");
    // The signature is over `v0:{ts}:{raw body}` with the secret, and only that secret.
    assert_eq!(
        signed.signature.as_deref(),
        Some(slack_signature("s3cret", &signed.timestamp, &signed.body).as_str())
    );
    let now: i64 = signed.timestamp.parse().unwrap();
    assert!((now - common::slack_interaction::unix_now()).abs() <= 5);
    let forged = signed.clone().forged();
    assert_eq!(forged.body, signed.body);
    assert_ne!(forged.signature, signed.signature);
    let aged = signed.clone().aged(301);
    assert!(now - aged.timestamp.parse::<i64>().unwrap() >= 301);
    assert_eq!(
        aged.signature.as_deref(),
        Some(slack_signature("s3cret", &aged.timestamp, &aged.body).as_str())
    );
    assert!(signed.clone().unsigned().signature.is_none());
}

#[test]
fn posting_a_signed_request_sends_slacks_headers_and_replays_byte_for_byte() {
    let sim = SlackSim::start(SlackConfig::default());
    let p = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "t", "blocks": gate_like_blocks()}),
    );
    let ts = p["ts"].as_str().unwrap();
    // Any recording endpoint will do as the receiver: the simulator's own response_url.
    let target = sim.response_url(CHANNEL, ts);
    let req = SignedRequest::new("payload=%7B%7D".into(), "s3cret", 1_700_000_000);
    assert_eq!(
        req.post(&target).0,
        400,
        "a form body is not a response_url message"
    );
    req.post(&target);
    let got = sim.calls_to("response_url");
    assert_eq!(got.len(), 2);
    for c in &got {
        assert_eq!(c.headers["x-slack-request-timestamp"], "1700000000");
        assert_eq!(
            c.headers["x-slack-signature"],
            req.signature.clone().unwrap().as_str()
        );
        assert_eq!(
            c.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(c.raw_body, b"payload=%7B%7D");
    }
}
