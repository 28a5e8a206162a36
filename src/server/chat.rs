//! The server's chat side (issue 12 §2, §3): when a request routed by the server's own policy to
//! a `kind: slack` or `kind: teams` backend is created, the server posts it there in the
//! background — never holding up the API's answer — and keeps the post current: every change to
//! the request (an approval, a denial, expiry, cancellation, from any path) re-renders the Slack
//! message (`chat.update`), and a Teams channel gets a second card with the outcome.
//!
//! What it promises:
//! - Chat is only ever told what the store has already recorded: it acts on the ids the store's
//!   committed changes announce (`AppState::changes`), re-reading the request each time.
//! - A post that fails is retried with backoff until the request expires; a permanent failure
//!   (Slack's `channel_not_found`, a refused card) stops at once. Either way the failure goes to
//!   the server's log and is shown on the request (`chat` in the API's view).
//! - Tokens, signing secrets and webhook URLs never reach a log line, an error, `Debug` output or
//!   an audit record: they live in [`Token`]s, and HTTP errors are stripped of their URL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::{self, RequestView};
use crate::approval::RequestStatus;
use crate::secrets::Token;

/// Slack's Web API, when a backend names no `api_url`.
pub const SLACK_API: &str = "https://slack.com/api/";

/// A chat backend of the server's policy, its secrets resolved.
#[derive(Debug, Clone)]
pub enum ChatBackend {
    Slack(SlackBackend),
    Teams(TeamsBackend),
}

#[derive(Debug, Clone)]
pub struct SlackBackend {
    pub channel: String,
    pub token: Token,
    /// Ends with `/`: method names are appended.
    pub api_url: String,
    pub signing_secret: Option<Token>,
}

#[derive(Debug, Clone)]
pub struct TeamsBackend {
    /// The Workflows (or incoming) webhook URL: a credential, so a [`Token`].
    pub webhook: Token,
}

/// What `gate serve` was configured with for chat.
#[derive(Debug, Clone, Default)]
pub struct ChatConfig {
    pub backends: BTreeMap<String, ChatBackend>,
    /// `--public-url`: where people reach this server (links in messages and cards).
    pub public_url: Option<String>,
}

impl ChatConfig {
    /// The signing secrets `/slack/interactions` verifies against.
    pub fn signing_secrets(&self) -> Vec<Token> {
        self.backends
            .values()
            .filter_map(|b| match b {
                ChatBackend::Slack(s) => s.signing_secret.clone(),
                ChatBackend::Teams(_) => None,
            })
            .collect()
    }

    /// The Slack backends (for a click's `response_url` check and message updates).
    pub fn slack(&self) -> impl Iterator<Item = &SlackBackend> {
        self.backends.values().filter_map(|b| match b {
            ChatBackend::Slack(s) => Some(s),
            ChatBackend::Teams(_) => None,
        })
    }

    /// The page of request `id` on the server's web UI.
    pub fn request_link(&self, id: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{}/#r-{id}", u.trim_end_matches('/')))
    }
}

/// Where a request's chat post stands: what the API shows as `chat`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChatNote {
    /// The server policy's backend name.
    pub backend: String,
    /// `posting`, `posted` or `failed`.
    pub state: &'static str,
    /// Why it failed (no secret in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One request's post.
#[derive(Debug, Clone)]
struct Post {
    backend: String,
    /// The Slack message (channel id, ts), once posted.
    slack: Option<(String, String)>,
    note: ChatNote,
}

/// The chat hub: configuration, an HTTP client, and the posts it keeps current.
pub struct Chat {
    pub cfg: ChatConfig,
    http: reqwest::Client,
    posts: Mutex<HashMap<String, Post>>,
    /// One update at a time per request, so an older rendering never lands after a newer one.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Valid Slack interactions seen recently (replay protection).
    pub replay: Mutex<super::slack::ReplayGuard>,
    /// Refused interactions recorded in the audit log this minute (see `slack::refuse`).
    pub refusals: Mutex<super::slack::RefusalBudget>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").field("cfg", &self.cfg).finish()
    }
}

/// An answer from a chat service, sorted into what to do next.
#[derive(Debug)]
enum Sent {
    Ok(Value),
    /// Try again after this long (429 `Retry-After`, a 5xx, the network).
    Retry(Duration, String),
    /// Will not work by trying again (an `ok:false` error, a refused card).
    Fail(String),
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Chat {
    pub fn new(cfg: ChatConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Chat {
            cfg,
            http,
            posts: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            replay: Mutex::new(super::slack::ReplayGuard::new(100_000)),
            refusals: Mutex::new(super::slack::RefusalBudget::default()),
        }
    }

    /// What the API shows about request `id`'s post.
    pub fn note(&self, id: &str) -> Option<ChatNote> {
        let posts = self.posts.lock().ok()?;
        posts.get(id).map(|p| p.note.clone())
    }

    /// The Slack message of request `id`, once posted.
    pub fn slack_message(&self, id: &str) -> Option<(String, String)> {
        let posts = self.posts.lock().ok()?;
        posts.get(id).and_then(|p| p.slack.clone())
    }

    /// A click on a message this server did not post in this run (it restarted since): the
    /// message is adopted, so the outcome still reaches it.
    pub fn adopt(&self, id: &str, backend: &str, channel: &str, ts: &str) {
        if let Ok(mut posts) = self.posts.lock() {
            posts.entry(id.to_owned()).or_insert_with(|| Post {
                backend: backend.to_owned(),
                slack: Some((channel.to_owned(), ts.to_owned())),
                note: ChatNote {
                    backend: backend.to_owned(),
                    state: "posted",
                    error: None,
                },
            });
        }
    }

    fn set_note(&self, id: &str, state: &'static str, error: Option<String>) {
        if let Ok(mut posts) = self.posts.lock()
            && let Some(p) = posts.get_mut(id)
        {
            p.note.state = state;
            p.note.error = error;
        }
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut locks) = self.locks.lock() {
            locks.remove(id);
        }
        if let Ok(mut posts) = self.posts.lock() {
            posts.remove(id);
        }
    }
}

/// The chat backend the server's policy routes a request to: the deciding rule's
/// `approval.backend`, else `defaults.backend` — the server's policy only, never the client's
/// claim.
pub fn routed(st: &AppState, server_backend: Option<&str>) -> Option<(String, ChatBackend)> {
    let name = server_backend
        .map(str::to_owned)
        .or_else(|| st.policy.default_backend.clone())?;
    let b = st.chat.cfg.backends.get(&name)?.clone();
    Some((name, b))
}

/// Called once a request is recorded: posts it to its chat backend in the background.
pub fn request_created(st: &Arc<AppState>, id: &str, server_backend: Option<&str>) {
    let Some((name, backend)) = routed(st, server_backend) else {
        return;
    };
    if let Ok(mut posts) = st.chat.posts.lock() {
        posts.insert(
            id.to_owned(),
            Post {
                backend: name.clone(),
                slack: None,
                note: ChatNote {
                    backend: name.clone(),
                    state: "posting",
                    error: None,
                },
            },
        );
    }
    let (st, id) = (Arc::clone(st), id.to_owned());
    tokio::spawn(async move { post_new(st, id, name, backend).await });
}

/// Keeps every post current: runs for the server's life, acting on each recorded change.
pub async fn follow_changes(st: Arc<AppState>) {
    let mut changes = st.changes.subscribe();
    loop {
        match changes.recv().await {
            Ok(id) => {
                let known = st.chat.posts.lock().is_ok_and(|p| p.contains_key(&id));
                if known {
                    let st = Arc::clone(&st);
                    tokio::spawn(async move { refresh(&st, &id).await });
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Notifications were dropped: bring every post up to date.
                let ids: Vec<String> = st
                    .chat
                    .posts
                    .lock()
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for id in ids {
                    let st = Arc::clone(&st);
                    tokio::spawn(async move { refresh(&st, &id).await });
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A request as it stands now, in the shapes the renderer reads.
struct Snapshot {
    view: RequestView,
    request: crate::request::RequestView,
    expires_ms: i64,
}

impl Snapshot {
    fn message(&self, st: &AppState) -> crate::approval::chat::ChatMessage<'_> {
        super::chat_render::message(&st.policy, &self.request, &self.view, self.expires_ms)
    }
}

/// The request now (None when it is gone or unreadable).
fn current(st: &AppState, id: &str) -> Option<Snapshot> {
    let (row, decisions) = st.store.request_get(id).ok()??;
    Some(Snapshot {
        view: api::view(&row, &decisions).ok()?,
        request: super::request_view(&row),
        expires_ms: row.expires_ms,
    })
}

async fn post_new(st: Arc<AppState>, id: String, name: String, backend: ChatBackend) {
    let Some(snap) = current(&st, &id) else {
        return;
    };
    let deadline_ms = snap.expires_ms;
    let link = st.chat.cfg.request_link(&id).unwrap_or_default();
    let lock = st.chat.lock_for(&id);
    let _held = lock.lock().await;
    // A request decided before it could be announced needs no announcement.
    let pending = || {
        st.store
            .request_get(&id)
            .ok()
            .flatten()
            .is_some_and(|(r, _)| r.status.is_pending())
    };
    let result = match &backend {
        ChatBackend::Slack(s) => {
            let msg = super::chat_render::slack_message(&snap.message(&st));
            let mut body = json!({ "channel": s.channel });
            merge(&mut body, msg);
            let sent = with_retry(&st, deadline_ms, &pending, || {
                slack_call(&st.chat.http, s, "chat.postMessage", &body)
            })
            .await;
            sent.map(|v| {
                let channel = v["channel"].as_str().unwrap_or(&s.channel).to_owned();
                let ts = v["ts"].as_str().unwrap_or_default().to_owned();
                if let Ok(mut posts) = st.chat.posts.lock()
                    && let Some(p) = posts.get_mut(&id)
                {
                    p.slack = Some((channel, ts));
                }
            })
        }
        ChatBackend::Teams(t) => {
            let card = super::chat_render::teams_card(&snap.message(&st), &link);
            with_retry(&st, deadline_ms, &pending, || {
                teams_post(&st.chat.http, t, &card)
            })
            .await
            .map(|_| ())
        }
    };
    match result {
        Ok(()) => {
            st.chat.set_note(&id, "posted", None);
            tracing::info!("request {id} posted to the `{name}` backend");
        }
        Err(why) => {
            let why = format!("posting to the `{name}` backend failed: {why}");
            st.chat.set_note(&id, "failed", Some(why.clone()));
            record_failure(&st, &id, &why).await;
        }
    }
    drop(_held);
    // A decision may have come while it was being posted.
    refresh(&st, &id).await;
}

/// Brings request `id`'s post up to date with what the store holds now.
async fn refresh(st: &Arc<AppState>, id: &str) {
    let Some(name) = st
        .chat
        .posts
        .lock()
        .ok()
        .and_then(|p| p.get(id).map(|p| p.backend.clone()))
    else {
        return;
    };
    let Some(backend) = st.chat.cfg.backends.get(&name).cloned() else {
        return;
    };
    let lock = st.chat.lock_for(id);
    let _held = lock.lock().await;
    // Read under the lock: the post may have landed (or failed) since.
    let Some(post) = st.chat.posts.lock().ok().and_then(|p| p.get(id).cloned()) else {
        return;
    };
    let Some(snap) = current(st, id) else {
        return;
    };
    let link = st.chat.cfg.request_link(id).unwrap_or_default();
    let decided = snap.view.status != RequestStatus::Pending;
    // An update is worth a minute of tries, not a wait until expiry.
    let deadline = st.clock.now_ms() + 60_000;
    let result = match (&backend, &post.slack) {
        (ChatBackend::Slack(s), Some((channel, ts))) => {
            let msg = super::chat_render::slack_message(&snap.message(st));
            let mut body = json!({ "channel": channel, "ts": ts });
            merge(&mut body, msg);
            with_retry(st, deadline, &|| true, || {
                slack_call(&st.chat.http, s, "chat.update", &body)
            })
            .await
            .map(|_| ())
        }
        // A Teams card cannot be edited: the outcome is a second card, once.
        (ChatBackend::Teams(t), _) if decided && post.note.state == "posted" => {
            let card = super::chat_render::teams_card(&snap.message(st), &link);
            with_retry(st, deadline, &|| true, || {
                teams_post(&st.chat.http, t, &card)
            })
            .await
            .map(|_| ())
        }
        // Not posted (yet, or ever): nothing to bring up to date.
        _ => Ok(()),
    };
    if let Err(why) = result {
        let why = format!("updating the `{name}` post failed: {why}");
        st.chat.set_note(id, "failed", Some(why.clone()));
        record_failure(st, id, &why).await;
    }
    // Decided is final: nothing more to keep current. While the first post is still on its
    // way, its task brings the post up to date (and forgets it) when it lands.
    if decided && post.note.state != "posting" {
        drop(_held);
        st.chat.forget(id);
    }
}

/// A chat delivery failure, in the server's log: as an event of its own (`chat:<id>`, so the
/// request's own events and their compliance walk are untouched) and a log line.
async fn record_failure(st: &AppState, id: &str, why: &str) {
    tracing::warn!("request {id}: {why}");
    let body = crate::audit::Body::Event {
        request_id: format!("chat:{id}"),
        request: None,
        event: api::event_info("chat_failed", None, "failed", Some(why.to_owned())),
    };
    if let Err(e) = st.audit.append(body).await {
        tracing::error!("cannot record the chat failure of request {id}: {e}");
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// Calls `send` until it succeeds, fails for good, or `deadline_ms` (the server's clock) passes,
/// waiting 0.5 s, 1 s, 2 s … (at most 30 s) or what a 429 asks between tries.
async fn with_retry<F, Fut>(
    st: &AppState,
    deadline_ms: i64,
    wanted: &(dyn Fn() -> bool + Sync),
    mut send: F,
) -> Result<Value, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Sent>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        let (wait, why) = match send().await {
            Sent::Ok(v) => return Ok(v),
            Sent::Fail(why) => return Err(why),
            Sent::Retry(wait, why) => (wait.max(backoff), why),
        };
        let left = deadline_ms - st.clock.now_ms();
        if left <= 0 || (wait.as_millis() as i64) > left {
            return Err(format!("{why}; gave up at the deadline"));
        }
        if !wanted() {
            return Err(format!(
                "{why}; not retried: the request was decided meanwhile"
            ));
        }
        tracing::warn!("chat: {why}; retrying in {}ms", wait.as_millis());
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What to tell the operator about a Slack error code.
pub fn slack_hint(code: &str) -> &'static str {
    match code {
        "channel_not_found" => "check the channel id, and invite the bot to it (`/invite @gate`)",
        "not_in_channel" => "invite the bot to the channel (`/invite @gate`)",
        "missing_scope" => "add the scope Slack names (`chat:write`) to the app and reinstall it",
        "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => {
            "the bot token is wrong or revoked: install the app again and update the secret"
        }
        "message_not_found" | "cant_update_message" => {
            "the message was deleted or is not the bot's"
        }
        _ => "see https://api.slack.com/methods for the code",
    }
}

/// One Slack Web API call (JSON, bearer token), sorted into [`Sent`].
async fn slack_call(http: &reqwest::Client, s: &SlackBackend, method: &str, body: &Value) -> Sent {
    let url = format!("{}{method}", s.api_url);
    let r = http
        .post(&url)
        .bearer_auth(s.token.expose())
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await;
    let resp = match r {
        Ok(r) => r,
        Err(e) => {
            return Sent::Retry(
                Duration::ZERO,
                format!("Slack {method}: {}", e.without_url()),
            );
        }
    };
    let status = resp.status();
    if status.as_u16() == 429 {
        let secs = retry_after(resp.headers()).unwrap_or(1);
        return Sent::Retry(
            Duration::from_secs(secs),
            format!("Slack {method}: rate limited (Retry-After {secs}s)"),
        );
    }
    if status.is_server_error() {
        return Sent::Retry(Duration::ZERO, format!("Slack {method}: HTTP {status}"));
    }
    let v: Value = match resp.json().await {
        Ok(v) => v,
        Err(_) if status.is_success() => {
            return Sent::Retry(
                Duration::ZERO,
                format!("Slack {method}: an answer that is not JSON"),
            );
        }
        Err(_) => return Sent::Fail(format!("Slack {method}: HTTP {status}")),
    };
    if v["ok"] == Value::Bool(true) {
        return Sent::Ok(v);
    }
    let code = v["error"].as_str().unwrap_or("unknown_error");
    let mut why = format!("Slack {method}: `{code}`");
    if let Some(needed) = v["needed"].as_str() {
        why.push_str(&format!(" (needs `{needed}`)"));
    }
    Sent::Fail(format!("{why}; hint: {}", slack_hint(code)))
}

/// Posts to a `response_url` (JSON): feedback to the person who clicked.
pub async fn respond(st: &AppState, response_url: &str, body: &Value) {
    let r = st
        .chat
        .http
        .post(response_url)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!("slack response_url answered HTTP {}", r.status()),
        Err(e) => tracing::warn!("slack response_url: {}", e.without_url()),
    }
}

/// One Teams webhook post (the Workflows envelope around an Adaptive Card).
async fn teams_post(http: &reqwest::Client, t: &TeamsBackend, card: &Value) -> Sent {
    let body = crate::approval::chat::teams_message(card.clone());
    let r = http
        .post(t.webhook.expose())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    let resp = match r {
        // Never the URL: it is the webhook's credential.
        Err(e) => {
            return Sent::Retry(
                Duration::ZERO,
                format!("Teams webhook: {}", e.without_url()),
            );
        }
        Ok(r) => r,
    };
    let status = resp.status();
    match status.as_u16() {
        200..=299 => Sent::Ok(Value::Null),
        429 => {
            let secs = retry_after(resp.headers()).unwrap_or(1);
            Sent::Retry(
                Duration::from_secs(secs),
                format!("Teams webhook: throttled (Retry-After {secs}s)"),
            )
        }
        500..=599 => Sent::Retry(Duration::ZERO, format!("Teams webhook: HTTP {status}")),
        401 | 403 | 404 => Sent::Fail(format!(
            "Teams webhook: HTTP {status}; hint: the webhook URL is wrong or its flow was turned off: copy it again from the Workflow"
        )),
        _ => {
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>();
            Sent::Fail(format!("Teams webhook: HTTP {status} {msg}"))
        }
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<u64> {
    h.get("retry-after")?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_secret() {
        let cfg = ChatConfig {
            backends: BTreeMap::from([
                (
                    "sec".to_owned(),
                    ChatBackend::Slack(SlackBackend {
                        channel: "C1".into(),
                        token: Token::new("xoxb-secret-token".into()),
                        api_url: SLACK_API.into(),
                        signing_secret: Some(Token::new("8f742231b10e8888abcd99yyyzzz85a5".into())),
                    }),
                ),
                (
                    "teams".to_owned(),
                    ChatBackend::Teams(TeamsBackend {
                        webhook: Token::new("https://x.example/workflows/1?sig=SECRETSIG".into()),
                    }),
                ),
            ]),
            public_url: None,
        };
        let shown = format!("{:?}", Chat::new(cfg));
        for secret in [
            "xoxb-secret-token",
            "8f742231b10e",
            "SECRETSIG",
            "workflows",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
