//! Slack's side of server mode: a `block_actions` interaction payload built as Slack sends it
//! (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload: form-encoded
//! `payload=<json>`), signed as Slack signs it
//! (https://api.slack.com/docs/verifying-requests-from-slack: `X-Slack-Request-Timestamp`, and
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{raw body}"))`), with knobs to
//! forge, age, strip, tamper with and replay it, and to POST it to gate's
//! `/slack/interactions`.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::sim_http::form_encode;
use super::slack_sim::{BOT_USER, SlackSim, TEAM_ID};

/// HMAC-SHA256 (RFC 2104) over SHA-256, written out so the test's signer shares no code with
/// gate's verifier; pinned to RFC 4231's vectors and Slack's documented example in chat_sims.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `v0=<hex>`: Slack's signature of `body` sent at `timestamp`.
pub fn slack_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let base = format!("v0:{timestamp}:{body}");
    format!(
        "v0={}",
        hex::encode(hmac_sha256(secret.as_bytes(), base.as_bytes()))
    )
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A button click: who clicked which button on which message, and where to respond.
#[derive(Clone, Debug)]
pub struct Interaction {
    pub user_id: String,
    pub user_name: String,
    pub channel: String,
    pub message_ts: String,
    /// The message as the clicker saw it (its `blocks` and `text`).
    pub message: Value,
    /// The clicked button element, as it is in the message's blocks.
    pub button: Value,
    pub block_id: String,
    pub response_url: String,
    pub trigger_id: String,
}

impl SlackSim {
    /// `user` clicks the button `action_id` on message `channel`/`ts`: the interaction Slack
    /// would send, with a fresh `response_url` tied to that message.
    #[track_caller]
    pub fn click(&self, channel: &str, ts: &str, user: &str, action_id: &str) -> Interaction {
        let m = self
            .message(channel, ts)
            .unwrap_or_else(|| panic!("click: no message {channel}/{ts}"));
        let blocks = m.blocks.clone().unwrap_or(json!([]));
        let mut found = None;
        for (i, b) in blocks.as_array().into_iter().flatten().enumerate() {
            let block_id = b["block_id"]
                .as_str()
                .map_or(format!("b{i}"), str::to_owned);
            let els = b["elements"].as_array().cloned().unwrap_or_default();
            let acc = b.get("accessory").cloned().into_iter();
            for e in els.into_iter().chain(acc) {
                if e["type"] == "button" && e["action_id"] == action_id {
                    found = Some((e, block_id.clone()));
                }
            }
        }
        let (button, block_id) =
            found.unwrap_or_else(|| panic!("click: no button `{action_id}` on {channel}/{ts}"));
        let message = json!({"type": "message", "user": BOT_USER, "ts": ts,
                             "text": m.text.unwrap_or_default(), "blocks": blocks});
        let user_name = self.user_name(user).unwrap_or_else(|| user.to_lowercase());
        Interaction {
            user_id: user.into(),
            user_name,
            channel: channel.into(),
            message_ts: ts.into(),
            message,
            button,
            block_id,
            response_url: self.response_url(channel, ts),
            trigger_id: format!("{}.{}.sim0trigger", unix_now(), 47445629121u64),
        }
    }
}

impl Interaction {
    /// The `block_actions` payload, fields as Slack's reference lists them.
    pub fn payload(&self) -> Value {
        let b = &self.button;
        let mut action = json!({
            "type": "button",
            "action_id": b["action_id"],
            "block_id": self.block_id,
            "text": b["text"],
            "action_ts": format!("{}.{:06}", unix_now(), 1),
        });
        for k in ["value", "style"] {
            if let Some(v) = b.get(k) {
                action[k] = v.clone();
            }
        }
        json!({
            "type": "block_actions",
            "user": {"id": self.user_id, "username": self.user_name, "name": self.user_name,
                     "team_id": TEAM_ID},
            "api_app_id": "A0SIMAPP01",
            "token": "sim-legacy-verification-token",
            "container": {"type": "message", "message_ts": self.message_ts,
                          "channel_id": self.channel, "is_ephemeral": false},
            "trigger_id": self.trigger_id,
            "team": {"id": TEAM_ID, "domain": "gate-sim"},
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": {"id": self.channel, "name": "approvals"},
            "message": self.message,
            "state": {"values": {}},
            "response_url": self.response_url,
            "actions": [action],
        })
    }

    /// The raw body Slack posts: `payload=<url-encoded JSON>`.
    pub fn body(&self) -> String {
        form_encode(&[("payload", &self.payload().to_string())])
    }

    /// Signed now with `secret`.
    pub fn signed(&self, secret: &str) -> SignedRequest {
        SignedRequest::new(self.body(), secret, unix_now())
    }
}

/// A request as it leaves Slack: body, timestamp and signature, ready to POST (more than once,
/// for a replay).
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub body: String,
    pub timestamp: String,
    pub signature: Option<String>,
    pub content_type: String,
    secret: String,
}

impl SignedRequest {
    pub fn new(body: String, secret: &str, timestamp: i64) -> Self {
        let timestamp = timestamp.to_string();
        let signature = Some(slack_signature(secret, &timestamp, &body));
        SignedRequest {
            body,
            timestamp,
            signature,
            content_type: "application/x-www-form-urlencoded".into(),
            secret: secret.into(),
        }
    }

    /// Signed with a secret that is not the app's: what an attacker without it can send.
    pub fn forged(mut self) -> Self {
        let wrong = format!("{}-not-the-secret", self.secret);
        self.signature = Some(slack_signature(&wrong, &self.timestamp, &self.body));
        self
    }

    /// Correctly signed, but `secs` seconds ago (Slack's window is five minutes).
    pub fn aged(mut self, secs: i64) -> Self {
        self.timestamp = (unix_now() - secs).to_string();
        self.signature = Some(slack_signature(&self.secret, &self.timestamp, &self.body));
        self
    }

    /// No `X-Slack-Signature` header at all.
    pub fn unsigned(mut self) -> Self {
        self.signature = None;
        self
    }

    /// The body changed after signing (the signature no longer matches it).
    pub fn tampered(mut self, body: String) -> Self {
        self.body = body;
        self
    }

    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = ct.into();
        self
    }

    /// POSTs it to `url`; returns the status and body. Call twice to replay.
    #[track_caller]
    pub fn post(&self, url: &str) -> (u16, String) {
        self.try_post(url)
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    /// Like [`SignedRequest::post`], for a test that expects the connection itself to fail.
    pub fn try_post(&self, url: &str) -> Result<(u16, String), reqwest::Error> {
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let mut r = http
            .post(url)
            .header("content-type", &self.content_type)
            .header("user-agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
            .header("x-slack-request-timestamp", &self.timestamp)
            .body(self.body.clone());
        if let Some(s) = &self.signature {
            r = r.header("x-slack-signature", s);
        }
        let resp = r.send()?;
        let status = resp.status().as_u16();
        Ok((status, resp.text()?))
    }
}
