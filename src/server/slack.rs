//! `POST /slack/interactions`: Approve / Deny clicks from Slack (issue 12 §2, DESIGN §6).
//!
//! The order is the security: the signature is checked on the raw bytes before anything is
//! parsed (`v0=HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")`, compared in constant
//! time, the timestamp within five minutes of the server's clock); a signature seen before
//! within that window is a replay (409). Only then is the payload read. Who clicked is the
//! Slack user id Slack signed, mapped to a principal through the server policy's `identities`;
//! the decision goes through [`api::decide_as`] — the same eligibility check, transaction,
//! audit event, signed statement and wake-up as `POST /v1/requests/{id}/approve` — so chat
//! cannot decide anything the API would refuse. Slack gets its 200 at once; the clicker's
//! feedback and the message update go out in the background.
//!
//! Every refusal is a log line and, up to [`RefusalBudget::PER_MINUTE`] a minute (an
//! unauthenticated caller must not be able to grow the audit log without bound), an event in
//! the server's audit log. Neither ever holds the signing secret or the body.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::api;
use super::chat::{self, ChatBackend};
use super::chat_render::{APPROVE, DENY};
use crate::secrets::Token;

/// How far a request's timestamp may be from the server's clock (Slack's five minutes).
pub const WINDOW_SECS: i64 = 300;

/// The verdict on a request's signature. No `Default`: nothing is verified by omission.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Signed by one of the secrets, in time: the digest of the signature (for replays).
    Valid([u8; 32]),
    /// A header is missing or not in Slack's form.
    Missing(&'static str),
    /// The timestamp is outside the window.
    Stale,
    /// The signature matches no secret.
    Forged,
    /// The server has no signing secret: nothing can be verified.
    NoSecret,
}

/// Checks `X-Slack-Signature` over `body` sent at `X-Slack-Request-Timestamp`, at `now_secs`.
pub fn verify(
    secrets: &[Token],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Signature {
    if secrets.is_empty() {
        return Signature::NoSecret;
    }
    let Some(ts) = timestamp else {
        return Signature::Missing("no `X-Slack-Request-Timestamp` header");
    };
    let Some(sig) = signature else {
        return Signature::Missing("no `X-Slack-Signature` header");
    };
    let Ok(t) = ts.trim().parse::<i64>() else {
        return Signature::Missing("`X-Slack-Request-Timestamp` is not a number");
    };
    if (now_secs - t).abs() > WINDOW_SECS {
        return Signature::Stale;
    }
    let Some(given) = sig.strip_prefix("v0=").and_then(|h| hex::decode(h).ok()) else {
        return Signature::Missing("`X-Slack-Signature` is not `v0=<hex>`");
    };
    let mut base = Vec::with_capacity(body.len() + ts.len() + 4);
    base.extend_from_slice(b"v0:");
    base.extend_from_slice(ts.as_bytes());
    base.push(b':');
    base.extend_from_slice(body);
    let mut ok = false;
    for s in secrets {
        // Every secret is tried, so the time taken says nothing about which one matched;
        // ring's verify compares in constant time.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.expose().as_bytes());
        ok |= ring::hmac::verify(&key, &base, &given).is_ok();
    }
    if ok {
        Signature::Valid(Sha256::digest(&given).into())
    } else {
        Signature::Forged
    }
}

/// What the replay guard says about a valid signature.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    First,
    Replay,
    /// The guard is full of signatures still inside the window: refuse rather than forget one.
    Full,
}

/// Valid signatures of the last window, bounded: entries older than the window (plus a
/// margin for clock steps) are dropped first; past `cap` live entries a new one is refused.
/// Only correctly signed requests get here, so filling it takes Slack's secret.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
    cap: usize,
}

impl ReplayGuard {
    pub fn new(cap: usize) -> Self {
        ReplayGuard {
            seen: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn admit(&mut self, sig: [u8; 32], now_secs: i64) -> Seen {
        let keep_after = now_secs - 2 * WINDOW_SECS;
        while let Some((old, at)) = self.order.front().copied() {
            if at >= keep_after {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.contains_key(&sig) {
            return Seen::Replay;
        }
        if self.seen.len() >= self.cap {
            return Seen::Full;
        }
        self.seen.insert(sig, now_secs);
        self.order.push_back((sig, now_secs));
        Seen::First
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// How many refusals a minute go into the audit log (all go to the log lines).
#[derive(Debug, Default)]
pub struct RefusalBudget {
    minute: i64,
    used: u32,
    skipped: u32,
}

impl RefusalBudget {
    pub const PER_MINUTE: u32 = 60;

    /// Whether this refusal is recorded, and how many were not since the last one that was.
    fn take(&mut self, now_secs: i64) -> Option<u32> {
        let minute = now_secs / 60;
        if minute != self.minute {
            self.minute = minute;
            self.used = 0;
        }
        if self.used < Self::PER_MINUTE {
            self.used += 1;
            Some(std::mem::take(&mut self.skipped))
        } else {
            self.skipped += 1;
            None
        }
    }
}

/// Records a refused interaction and answers it.
async fn refuse(st: &AppState, status: StatusCode, code: &str, why: &str) -> Response {
    tracing::warn!("/slack/interactions refused ({}): {why}", status.as_u16());
    let now = st.clock.now_ms() / 1000;
    let budget = st.chat.refusals.lock().ok().and_then(|mut b| b.take(now));
    if let Some(skipped) = budget {
        let detail = if skipped > 0 {
            format!("{why} ({skipped} earlier refusals over the budget were not recorded)")
        } else {
            why.to_owned()
        };
        let body = crate::audit::Body::Event {
            request_id: "slack:interactions".into(),
            request: None,
            event: api::event_info("slack_refused", None, "refused", Some(detail)),
        };
        if let Err(e) = st.audit.append(body).await {
            tracing::error!("cannot record a refused Slack interaction: {e}");
        }
    }
    let body = json!({ "error": code, "message": why });
    let mut r = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        // RFC 9110: a 401 names how to authenticate — here, Slack's request signature.
        r.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Slack-Signature"),
        );
    }
    r
}

/// The parts of a `block_actions` payload gate reads. Slack adds fields over time: unknown
/// ones are ignored.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: PayloadUser,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    channel: Option<Channel>,
}

#[derive(Debug, Deserialize)]
struct PayloadUser {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Channel {
    id: String,
}

/// The principal whose `identities` entry names Slack user `user` (exactly one, or none).
pub fn principal_of(
    identities: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    user: &str,
) -> Result<String, String> {
    let found: Vec<&String> = identities
        .iter()
        .filter(|(_, ids)| ids.get("slack").is_some_and(|u| u == user))
        .map(|(p, _)| p)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "your Slack account ({user}) is not mapped to a gate principal (`identities:` in the server's policy)"
        )),
        _ => Err(format!(
            "your Slack account ({user}) is mapped to more than one principal in the server's policy"
        )),
    }
}

/// Whether `url` may be posted to as a `response_url`: Slack's hooks host over https, or the
/// host of a configured `api_url` (a simulator, a proxy). The payload is signed, so this is a
/// second line: even a leaked signing secret does not make the server post anywhere.
fn response_url_ok(st: &AppState, url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    if u.scheme() == "https" && u.host_str() == Some("hooks.slack.com") {
        return true;
    }
    st.chat.cfg.slack().any(|s| {
        reqwest::Url::parse(&s.api_url)
            .is_ok_and(|a| a.scheme() == u.scheme() && a.host_str() == u.host_str())
    })
}

pub async fn interactions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // Too large (over 1 MiB) or unreadable: the API's `{error, message}`, like every route.
    let body = match body {
        Ok(b) => b,
        Err(e) => return super::error::body_rejection(e).into_response(),
    };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = st.clock.now_ms() / 1000;
    let secrets = st.chat.cfg.signing_secrets();
    let digest = match verify(
        &secrets,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        now,
    ) {
        Signature::Valid(d) => d,
        Signature::Missing(why) => {
            return refuse(&st, StatusCode::UNAUTHORIZED, "unsigned", why).await;
        }
        Signature::Stale => {
            let why = "the request's timestamp is more than five minutes from the server's clock";
            return refuse(&st, StatusCode::UNAUTHORIZED, "stale", why).await;
        }
        Signature::Forged => {
            let why = "`X-Slack-Signature` does not match the body (not signed with the app's signing secret)";
            return refuse(&st, StatusCode::UNAUTHORIZED, "bad_signature", why).await;
        }
        Signature::NoSecret => {
            let why =
                "the server's policy gives no Slack `signing_secret`, so no click can be verified";
            return refuse(&st, StatusCode::UNAUTHORIZED, "no_signing_secret", why).await;
        }
    };
    let seen = st
        .chat
        .replay
        .lock()
        .map(|mut g| g.admit(digest, now))
        .unwrap_or(Seen::Full);
    match seen {
        Seen::First => {}
        Seen::Replay => {
            let why = "this signed request was already received (a replay)";
            return refuse(&st, StatusCode::CONFLICT, "replayed", why).await;
        }
        Seen::Full => {
            let why = "too many interactions in the last five minutes";
            return refuse(&st, StatusCode::SERVICE_UNAVAILABLE, "busy", why).await;
        }
    }
    let form = header("content-type")
        .and_then(|c| c.split(';').next())
        .map(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if form != Some(true) {
        let why = "an interaction is `application/x-www-form-urlencoded` with a `payload` field";
        return refuse(&st, StatusCode::BAD_REQUEST, "content_type", why).await;
    }
    let payload = match parse(&body) {
        Ok(p) => p,
        Err(why) => return refuse(&st, StatusCode::BAD_REQUEST, "bad_payload", &why).await,
    };
    if payload.kind != "block_actions" {
        let why = format!(
            "interaction type `{}` is not handled (only `block_actions`)",
            payload.kind.chars().take(40).collect::<String>()
        );
        return refuse(&st, StatusCode::BAD_REQUEST, "bad_payload", &why).await;
    }
    let Some(action) = payload.actions.first() else {
        return refuse(
            &st,
            StatusCode::BAD_REQUEST,
            "bad_payload",
            "`actions` is empty",
        )
        .await;
    };
    let approve = match action.action_id.as_str() {
        APPROVE => true,
        DENY => false,
        _ => {
            let why = "the action is not gate's Approve or Deny button";
            return refuse(&st, StatusCode::BAD_REQUEST, "bad_payload", why).await;
        }
    };
    let Some(id) = action
        .value
        .clone()
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
    else {
        let why = "the button's `value` is not a request id";
        return refuse(&st, StatusCode::BAD_REQUEST, "bad_payload", why).await;
    };
    let channel = payload
        .container
        .as_ref()
        .and_then(|c| c.channel_id.clone())
        .or_else(|| payload.channel.as_ref().map(|c| c.id.clone()));
    let ts = payload
        .container
        .as_ref()
        .and_then(|c| c.message_ts.clone());
    // A click on a message other than the one posted for this request is not a click on it.
    if let (Some(posted), Some(c), Some(t)) = (st.chat.slack_message(&id), &channel, &ts)
        && (&posted.0, &posted.1) != (c, t)
    {
        let why = format!("the clicked message is not the one posted for request {id}");
        return refuse(&st, StatusCode::BAD_REQUEST, "bad_payload", &why).await;
    }
    let response_url = payload
        .response_url
        .clone()
        .filter(|u| response_url_ok(&st, u));
    let user = payload.user.id.clone();
    tracing::info!(
        "slack: {user} clicked {} on request {id}",
        if approve { "Approve" } else { "Deny" }
    );
    // Decide now (a millisecond's work) but never past Slack's three seconds: a slow store
    // finishes in the background and the clicker hears by `response_url`.
    let work = {
        let st = Arc::clone(&st);
        tokio::spawn(async move {
            click(&st, &user, &id, approve, channel, ts, response_url).await;
        })
    };
    let _ = tokio::time::timeout(Duration::from_millis(2500), work).await;
    StatusCode::OK.into_response()
}

fn parse(body: &[u8]) -> Result<Payload, String> {
    let mut url = reqwest::Url::parse("http://form.invalid/").map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    url.set_query(Some(text));
    let Some(json) = url
        .query_pairs()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
    else {
        return Err("no `payload` field in the form".into());
    };
    let de = &mut serde_json::Deserializer::from_str(&json);
    serde_path_to_error::deserialize(de)
        .map_err(|e| format!("`payload` at `{}`: {}", e.path(), e.inner()))
}

/// The decision of one verified click, and the clicker's feedback.
async fn click(
    st: &Arc<AppState>,
    user: &str,
    id: &str,
    approve: bool,
    channel: Option<String>,
    ts: Option<String>,
    response_url: Option<String>,
) {
    let principal = match principal_of(&st.policy.identities, user) {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!("slack: click on request {id} refused: {why}");
            ephemeral(st, response_url.as_deref(), &format!("not eligible: {why}")).await;
            return;
        }
    };
    // A message this run did not post (the server restarted): adopt it, so it is updated.
    if let (Some(c), Some(t)) = (&channel, &ts)
        && st.chat.slack_message(id).is_none()
        && let Some(name) = st.chat.cfg.backends.iter().find_map(|(n, b)| {
            matches!(b, ChatBackend::Slack(s) if &s.channel == c).then_some(n.clone())
        })
    {
        st.chat.adopt(id, &name, c, t);
    }
    let comment = Some(if approve {
        format!("approved in Slack ({user})")
    } else {
        format!("denied in Slack ({user})")
    });
    match api::decide_as(st, principal.clone(), id.to_owned(), approve, comment).await {
        Ok((row, decisions)) => {
            let left = api::view(&row, &decisions).map(|v| v.needed).unwrap_or(0);
            let text = match (approve, row.status) {
                (true, crate::approval::RequestStatus::Approved) => {
                    format!(
                        "You approved request {id} as {principal}: it is approved, the command can run."
                    )
                }
                (true, _) => format!(
                    "You approved request {id} as {principal}; {left} more approval{} needed.",
                    if left == 1 { " is" } else { "s are" }
                ),
                (false, _) => format!("You denied request {id} as {principal}."),
            };
            ephemeral(st, response_url.as_deref(), &text).await;
        }
        Err(e) => {
            let what = match e.code {
                "self_approval" | "not_eligible" => "not eligible",
                "already_decided" | "decided" => "already decided",
                "expired" => "expired",
                "not_found" => "no such request",
                _ => "refused",
            };
            tracing::warn!(
                "slack: {principal} ({user}) on request {id}: {what}: {}",
                e.message
            );
            ephemeral(
                st,
                response_url.as_deref(),
                &format!("{what}: {}", e.message),
            )
            .await;
        }
    }
}

/// A message only the clicker sees.
async fn ephemeral(st: &AppState, response_url: Option<&str>, text: &str) {
    let Some(url) = response_url else {
        return;
    };
    let body: Value = json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": text,
    });
    chat::respond(st, url, &body).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Vec<Token> {
        vec![Token::new("8f742231b10e8888abcd99yyyzzz85a5".into())]
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // https://api.slack.com/docs/verifying-requests-from-slack
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let at = 1531420618;
        assert!(matches!(
            verify(&secret(), Some("1531420618"), Some(sig), body, at),
            Signature::Valid(_)
        ));
        assert!(matches!(
            verify(
                &secret(),
                Some("1531420618"),
                Some(sig),
                body,
                at + WINDOW_SECS
            ),
            Signature::Valid(_)
        ));
        assert_eq!(
            verify(
                &secret(),
                Some("1531420618"),
                Some(sig),
                body,
                at + WINDOW_SECS + 1
            ),
            Signature::Stale
        );
        assert_eq!(
            verify(
                &secret(),
                Some("1531420618"),
                Some(sig),
                b"token=changed",
                at
            ),
            Signature::Forged
        );
        assert!(matches!(
            verify(&secret(), None, Some(sig), body, at),
            Signature::Missing(_)
        ));
        assert!(matches!(
            verify(&secret(), Some("1531420618"), Some("a2114d57"), body, at),
            Signature::Missing(_)
        ));
        assert_eq!(
            verify(&[], Some("1"), Some(sig), body, at),
            Signature::NoSecret
        );
    }

    #[test]
    fn a_replay_is_refused_for_the_window_and_memory_stays_bounded() {
        let mut g = ReplayGuard::new(3);
        assert_eq!(g.admit([1; 32], 1000), Seen::First);
        assert_eq!(g.admit([1; 32], 1000 + WINDOW_SECS), Seen::Replay);
        assert_eq!(g.admit([2; 32], 1001), Seen::First);
        assert_eq!(g.admit([3; 32], 1002), Seen::First);
        assert_eq!(
            g.admit([4; 32], 1003),
            Seen::Full,
            "never forgets a live one"
        );
        // Past twice the window the old ones go, and room is made.
        assert_eq!(g.admit([4; 32], 1003 + 2 * WINDOW_SECS), Seen::First);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn refusals_in_the_audit_log_are_budgeted_per_minute() {
        let mut b = RefusalBudget::default();
        for _ in 0..RefusalBudget::PER_MINUTE {
            assert_eq!(b.take(600), Some(0));
        }
        assert_eq!(b.take(601), None);
        assert_eq!(b.take(602), None);
        assert_eq!(
            b.take(660),
            Some(2),
            "the next minute says how many were skipped"
        );
    }

    #[test]
    fn a_slack_user_maps_to_exactly_one_principal() {
        use std::collections::BTreeMap;
        let ids = |pairs: &[(&str, &str)]| -> BTreeMap<String, BTreeMap<String, String>> {
            pairs
                .iter()
                .map(|(p, u)| {
                    (
                        p.to_string(),
                        BTreeMap::from([("slack".to_owned(), u.to_string())]),
                    )
                })
                .collect()
        };
        assert_eq!(
            principal_of(&ids(&[("alice", "U1"), ("bob", "U2")]), "U2"),
            Ok("bob".into())
        );
        assert!(principal_of(&ids(&[("alice", "U1")]), "U9").is_err());
        assert!(principal_of(&ids(&[("alice", "U1"), ("eve", "U1")]), "U1").is_err());
    }
}
