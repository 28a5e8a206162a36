//! A Slack Web API simulator for the chat backends' tests: `SlackSim::start(config)` serves
//! `auth.test`, `chat.postMessage` (threads too), `chat.update`, `reactions.get`, `users.info`
//! and `usergroups.users.list` under `<base>/api/`, plus `response_url` endpoints, on
//! 127.0.0.1 with an ephemeral port. It follows the documented wire format
//! (https://docs.slack.dev/apis/web-api): a bearer token in `Authorization` (or a `token` form
//! field, never the query string), JSON or form-encoded POST bodies, GET query strings, HTTP 200
//! with `{"ok":false,"error":…}` for API errors, 429 + `Retry-After` past a method's rate limit.
//! The test drives it: reactions by user id, scopes, channels, users, groups, outages, limits,
//! and reads back every call and every message. docs/dev/chat-simulators.md lists the sources.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Map, Value, json};

use super::sim_http::{self, Served};
use super::slack_blocks;

pub const BOT_TOKEN: &str = "xoxb-1700000000-sim-bot-token";
pub const TEAM_ID: &str = "T0SIMTEAM1";
pub const BOT_USER: &str = "U0SIMBOT01";
pub const CHANNEL: &str = "C0APPROVAL";

/// Slack's documented rate-limit tiers (https://docs.slack.dev/apis/web-api/rate-limits),
/// per method per minute. `chat.postMessage` is "special" (about one message per second per
/// channel): modelled as 60 per minute.
pub const DOCUMENTED_TIERS: &[(&str, u32)] = &[
    ("chat.postMessage", 60),
    ("chat.update", 50),
    ("reactions.get", 50),
    ("users.info", 100),
    ("usergroups.users.list", 20),
];

#[derive(Clone, Debug)]
pub struct SlackUser {
    pub id: String,
    pub name: String,
    pub real_name: String,
    pub deleted: bool,
    pub is_bot: bool,
}

/// What the workspace looks like when the simulator starts.
#[derive(Clone, Debug)]
pub struct SlackConfig {
    pub token: String,
    pub scopes: Vec<String>,
    /// Channel id → (name, the bot is a member).
    pub channels: BTreeMap<String, (String, bool)>,
    pub users: BTreeMap<String, SlackUser>,
    pub usergroups: BTreeMap<String, Vec<String>>,
    /// Method → (calls allowed, per window).
    pub rate_limits: BTreeMap<String, (u32, Duration)>,
    /// Without `full=true`, `reactions.get` lists at most this many users per reaction
    /// (`count` stays exact), as Slack's doc warns the list may be incomplete.
    pub partial_users: usize,
}

impl Default for SlackConfig {
    /// A bot with gate's four scopes, a member of `C0APPROVAL` (not of `C0OUTSIDE`), users
    /// `U0ALICE01` (alice), `U0BOB0001` (bob), `U0MALLORY` (mallory), group `S0OPS0001` = alice
    /// and bob, and the documented tier limits.
    fn default() -> Self {
        let mut c = SlackConfig {
            token: BOT_TOKEN.into(),
            scopes: [
                "chat:write",
                "reactions:read",
                "users:read",
                "usergroups:read",
            ]
            .map(String::from)
            .to_vec(),
            channels: BTreeMap::new(),
            users: BTreeMap::new(),
            usergroups: BTreeMap::new(),
            rate_limits: BTreeMap::new(),
            partial_users: 50,
        };
        c.channels
            .insert(CHANNEL.into(), ("approvals".into(), true));
        c.channels
            .insert("C0OUTSIDE".into(), ("elsewhere".into(), false));
        for (id, name) in [
            ("U0ALICE01", "alice"),
            ("U0BOB0001", "bob"),
            ("U0MALLORY", "mallory"),
        ] {
            c = c.user(id, name);
        }
        c.usergroups.insert(
            "S0OPS0001".into(),
            vec!["U0ALICE01".into(), "U0BOB0001".into()],
        );
        for (m, n) in DOCUMENTED_TIERS {
            c.rate_limits
                .insert(m.to_string(), (*n, Duration::from_secs(60)));
        }
        c
    }
}

impl SlackConfig {
    pub fn user(mut self, id: &str, name: &str) -> Self {
        let u = SlackUser {
            id: id.into(),
            name: name.into(),
            real_name: format!("{name} (sim)"),
            deleted: false,
            is_bot: false,
        };
        self.users.insert(id.into(), u);
        self
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn no_rate_limits(mut self) -> Self {
        self.rate_limits.clear();
        self
    }
}

/// One reaction on a message: its emoji name and who reacted, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Reaction {
    pub name: String,
    pub users: Vec<String>,
}

/// A message as the simulated workspace holds it.
#[derive(Clone, Debug)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    /// The parent's ts for a thread reply.
    pub thread_ts: Option<String>,
    pub user: String,
    pub text: Option<String>,
    pub blocks: Option<Value>,
    pub reactions: Vec<Reaction>,
    /// How many times `chat.update` or a `response_url` replaced it.
    pub edits: u32,
}

/// One request the simulator received and what it answered.
#[derive(Clone, Debug)]
pub struct Call {
    /// The Web API method (`chat.postMessage`), or `response_url` for those posts.
    pub method: String,
    pub http_method: String,
    pub headers: HeaderMap,
    /// Query and body arguments merged, JSON bodies as sent, form fields as strings.
    pub args: Map<String, Value>,
    pub raw_body: Vec<u8>,
    pub status: u16,
    pub response: Value,
}

/// A failure the next request gets instead of being served.
#[derive(Clone, Debug)]
pub enum Fault {
    /// An HTTP error with an HTML body, as a proxy in front of Slack answers (500, 502, 503).
    Status(u16),
    /// The connection closes after the request, with no response at all.
    Drop,
    /// HTTP 200 with `{"ok":false,"error":CODE}`.
    SlackError(String),
}

#[derive(Default)]
struct Book {
    cfg: Option<SlackConfig>,
    revoked: Vec<String>,
    messages: Vec<Message>,
    calls: Vec<Call>,
    faults: VecDeque<Fault>,
    hits: BTreeMap<String, VecDeque<Instant>>,
    /// response_url id → the (channel, ts) of the message the interaction came from.
    response_urls: BTreeMap<String, (String, String)>,
    base_secs: u64,
    seq: u64,
}

impl Book {
    fn cfg(&self) -> &SlackConfig {
        self.cfg.as_ref().unwrap()
    }
    fn cfg_mut(&mut self) -> &mut SlackConfig {
        self.cfg.as_mut().unwrap()
    }
    fn next_ts(&mut self) -> String {
        self.seq += 100;
        format!("{}.{:06}", self.base_secs, self.seq)
    }
    fn find(&mut self, channel: &str, ts: &str) -> Option<&mut Message> {
        self.messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
    }
}

pub struct SlackSim {
    book: Arc<Mutex<Book>>,
    served: Served,
}

impl SlackSim {
    pub fn start(config: SlackConfig) -> SlackSim {
        let base_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let book = Arc::new(Mutex::new(Book {
            cfg: Some(config),
            base_secs,
            ..Book::default()
        }));
        let app = Router::new()
            .route("/api/{method}", any(web_api))
            .route("/actions/{id}", post(response_url))
            .with_state(Arc::clone(&book));
        let b = Arc::clone(&book);
        let drop_next = Arc::new(move || {
            let mut b = b.lock().unwrap();
            if matches!(b.faults.front(), Some(Fault::Drop)) {
                b.faults.pop_front();
                true
            } else {
                false
            }
        });
        let served = sim_http::serve(app, drop_next);
        SlackSim { book, served }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap()
    }

    /// `http://127.0.0.1:PORT/api/`: a backend's `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.served.addr)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.served.addr
    }

    /// A fresh `response_url` tied to the message (`channel`, `ts`), as Slack puts in an
    /// interaction payload; what is posted to it is recorded and applied to that message.
    pub fn response_url(&self, channel: &str, ts: &str) -> String {
        let mut b = self.book();
        let id = format!("{TEAM_ID}-{}", b.response_urls.len() + 1);
        b.response_urls
            .insert(id.clone(), (channel.into(), ts.into()));
        format!("http://{}/actions/{id}", self.served.addr)
    }

    /// Adds reaction `name` by `user` to a message, as a person clicking it in Slack.
    #[track_caller]
    pub fn react(&self, channel: &str, ts: &str, name: &str, user: &str) {
        let mut b = self.book();
        let m = b
            .find(channel, ts)
            .unwrap_or_else(|| panic!("react: no message {channel}/{ts}"));
        match m.reactions.iter_mut().find(|r| r.name == name) {
            Some(r) if r.users.iter().any(|u| u == user) => {}
            Some(r) => r.users.push(user.into()),
            None => m.reactions.push(Reaction {
                name: name.into(),
                users: vec![user.into()],
            }),
        }
    }

    /// Removes `user`'s reaction `name`; a reaction nobody holds any more disappears.
    #[track_caller]
    pub fn unreact(&self, channel: &str, ts: &str, name: &str, user: &str) {
        let mut b = self.book();
        let m = b
            .find(channel, ts)
            .unwrap_or_else(|| panic!("unreact: no message {channel}/{ts}"));
        for r in &mut m.reactions {
            if r.name == name {
                r.users.retain(|u| u != user);
            }
        }
        m.reactions.retain(|r| !r.users.is_empty());
    }

    /// Every request received so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.book().calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        self.book().find(channel, ts).cloned()
    }

    /// Top-level messages in `channel`, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let b = self.book();
        let in_channel = |m: &&Message| m.channel == channel && m.thread_ts.is_none();
        b.messages.iter().filter(in_channel).cloned().collect()
    }

    pub fn replies(&self, channel: &str, thread_ts: &str) -> Vec<Message> {
        let b = self.book();
        b.messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(thread_ts))
            .cloned()
            .collect()
    }

    pub fn set_scopes(&self, scopes: &[&str]) {
        self.book().cfg_mut().scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Adds or changes a channel; `member` says whether the bot is in it.
    pub fn set_channel(&self, id: &str, name: &str, member: bool) {
        let mut b = self.book();
        b.cfg_mut()
            .channels
            .insert(id.into(), (name.into(), member));
    }

    pub fn remove_channel(&self, id: &str) {
        self.book().cfg_mut().channels.remove(id);
    }

    pub fn set_user(&self, user: SlackUser) {
        self.book().cfg_mut().users.insert(user.id.clone(), user);
    }

    pub fn set_usergroup(&self, id: &str, members: &[&str]) {
        let members = members.iter().map(|s| s.to_string()).collect();
        self.book().cfg_mut().usergroups.insert(id.into(), members);
    }

    /// From now on the configured token answers `token_revoked`.
    pub fn revoke_token(&self) {
        let mut b = self.book();
        let t = b.cfg().token.clone();
        b.revoked.push(t);
    }

    /// The next `n` requests (Web API or response_url) get `fault` instead of an answer.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut b = self.book();
        for _ in 0..n {
            b.faults.push_back(fault.clone());
        }
    }

    /// At most `calls` accepted calls to `method` per `per`; the next gets 429 + Retry-After.
    pub fn rate_limit(&self, method: &str, calls: u32, per: Duration) {
        let mut b = self.book();
        b.cfg_mut().rate_limits.insert(method.into(), (calls, per));
        b.hits.remove(method);
    }
}

/// An API error: the code and any extra fields (`needed`/`provided`, `response_metadata`).
struct ApiError(String, Map<String, Value>);

fn err(code: &str) -> ApiError {
    ApiError(code.into(), Map::new())
}

type Answer = Result<Value, ApiError>;

async fn web_api(
    State(book): State<Arc<Mutex<Book>>>,
    Path(method): Path<String>,
    http_method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut b = book.lock().unwrap();
    let (status, response, extra_headers, args) =
        serve_call(&mut b, &method, &http_method, &uri, &headers, &body);
    b.calls.push(Call {
        method,
        http_method: http_method.to_string(),
        headers,
        args,
        raw_body: body.to_vec(),
        status: status.as_u16(),
        response: response.clone(),
    });
    let mut resp = if status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS {
        (status, axum::Json(response)).into_response()
    } else {
        let page = format!("<html><body><h1>{status}</h1></body></html>");
        (status, [("content-type", "text/html")], page).into_response()
    };
    for (k, v) in extra_headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

type Served4 = (
    StatusCode,
    Value,
    Vec<(&'static str, String)>,
    Map<String, Value>,
);

fn serve_call(
    b: &mut Book,
    method: &str,
    http_method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Served4 {
    let ok_false = |e: ApiError| {
        let mut o = Map::new();
        o.insert("ok".into(), false.into());
        o.insert("error".into(), e.0.into());
        o.extend(e.1);
        Value::Object(o)
    };
    match b.faults.pop_front() {
        Some(Fault::Status(code)) => {
            let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (s, Value::Null, vec![], Map::new());
        }
        Some(Fault::SlackError(code)) => {
            return (StatusCode::OK, ok_false(err(&code)), vec![], Map::new());
        }
        // Drops happen when a connection is accepted; one queued since is for a later request.
        Some(Fault::Drop) => b.faults.push_front(Fault::Drop),
        None => {}
    }
    let (args, warnings, form_token) = match parse_args(http_method, uri, headers, body) {
        Ok(a) => a,
        Err(e) => return (StatusCode::OK, ok_false(e), vec![], Map::new()),
    };
    let token = match bearer(headers, form_token) {
        Ok(t) => t,
        Err(e) => return (StatusCode::OK, ok_false(e), vec![], args),
    };
    if b.revoked.contains(&token) {
        return (StatusCode::OK, ok_false(err("token_revoked")), vec![], args);
    }
    if token != b.cfg().token {
        return (StatusCode::OK, ok_false(err("invalid_auth")), vec![], args);
    }
    if let Some(wait) = over_limit(b, method) {
        let v = json!({"ok": false, "error": "ratelimited"});
        let h = vec![("retry-after", wait.to_string())];
        return (StatusCode::TOO_MANY_REQUESTS, v, h, args);
    }
    let answer = match method {
        "auth.test" => Ok(auth_test(b)),
        "chat.postMessage" => scope(b, "chat:write").and_then(|_| post_message(b, &args)),
        "chat.update" => scope(b, "chat:write").and_then(|_| update(b, &args)),
        "reactions.get" => scope(b, "reactions:read").and_then(|_| reactions_get(b, &args)),
        "users.info" => scope(b, "users:read").and_then(|_| users_info(b, &args)),
        "usergroups.users.list" => {
            scope(b, "usergroups:read").and_then(|_| usergroup_users(b, &args))
        }
        _ => Err(err("unknown_method")),
    };
    let mut v = match answer {
        Ok(Value::Object(mut o)) => {
            let mut all = Map::new();
            all.insert("ok".into(), true.into());
            all.append(&mut o);
            Value::Object(all)
        }
        Ok(other) => other,
        Err(e) => ok_false(e),
    };
    if !warnings.is_empty() {
        v["warning"] = warnings.join(",").into();
        v["response_metadata"]["warnings"] = json!(warnings);
    }
    // Slack names the token's scopes on every authenticated answer.
    let scopes = vec![("x-oauth-scopes", b.cfg().scopes.join(","))];
    (StatusCode::OK, v, scopes, args)
}

/// What a request carries: its arguments, warnings for the answer, a `token` form field.
type Parsed = (Map<String, Value>, Vec<String>, Option<String>);

/// Arguments from the query string and the body. JSON bodies need `application/json`
/// (without `; charset=utf-8` Slack still answers, with a `missing_charset` warning); a token
/// counts only from a form body (JSON bodies must use the header).
fn parse_args(m: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, ApiError> {
    let mut args = Map::new();
    let mut warnings = Vec::new();
    let mut form_token = None;
    for (k, v) in sim_http::form_pairs(uri.query().unwrap_or("")) {
        args.insert(k, v.into());
    }
    if *m == Method::GET || (*m == Method::POST && body.is_empty()) {
        return Ok((args, warnings, None));
    }
    if *m != Method::POST {
        return Err(err("invalid_post_type"));
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase());
    let Some(ct) = ct else {
        return Err(err("missing_post_type"));
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let charset = ct
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_owned());
    if let Some(c) = &charset
        && c != "utf-8"
        && c != "iso-8859-1"
    {
        return Err(err("invalid_charset"));
    }
    let text = std::str::from_utf8(body).map_err(|_| err("invalid_form_data"))?;
    match mime {
        "application/json" => {
            if charset.is_none() {
                warnings.push("missing_charset".into());
            }
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(o)) => args.extend(o),
                Ok(_) => return Err(err("json_not_object")),
                Err(_) => return Err(err("invalid_json")),
            }
        }
        "application/x-www-form-urlencoded" => {
            for (k, v) in sim_http::form_pairs(text) {
                if k == "token" {
                    form_token = Some(v.clone());
                }
                args.insert(k, v.into());
            }
        }
        _ => return Err(err("invalid_post_type")),
    }
    Ok((args, warnings, form_token))
}

/// The token: `Authorization: Bearer …`, or a `token` field in a form body. A token in the
/// query string is not accepted (Slack stopped honouring those for new apps in 2021).
fn bearer(headers: &HeaderMap, form_token: Option<String>) -> Result<String, ApiError> {
    if let Some(h) = headers.get("authorization") {
        let h = h.to_str().unwrap_or("");
        return match h.strip_prefix("Bearer ") {
            Some(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
            _ => Err(err("not_authed")),
        };
    }
    form_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| err("not_authed"))
}

fn over_limit(b: &mut Book, method: &str) -> Option<u64> {
    let (n, per) = *b.cfg().rate_limits.get(method)?;
    let now = Instant::now();
    let hits = b.hits.entry(method.into()).or_default();
    while hits.front().is_some_and(|t| now.duration_since(*t) >= per) {
        hits.pop_front();
    }
    if hits.len() as u32 >= n {
        let oldest = *hits.front()?;
        let left = per.saturating_sub(now.duration_since(oldest));
        return Some(left.as_secs_f64().ceil().max(1.0) as u64);
    }
    hits.push_back(now);
    None
}

fn scope(b: &Book, needed: &str) -> Result<(), ApiError> {
    if b.cfg().scopes.iter().any(|s| s == needed) {
        return Ok(());
    }
    let mut extra = Map::new();
    extra.insert("needed".into(), needed.into());
    extra.insert("provided".into(), b.cfg().scopes.join(",").into());
    Err(ApiError("missing_scope".into(), extra))
}

fn arg<'a>(args: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    args.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn auth_test(_: &Book) -> Value {
    json!({
        "url": "https://gate-sim.slack.com/",
        "team": "gate simulator",
        "user": "gate",
        "team_id": TEAM_ID,
        "user_id": BOT_USER,
        "bot_id": "B0SIMBOT01",
        "is_enterprise_install": false,
    })
}

/// The channel must exist and, for posting, have the bot as a member.
fn channel<'a>(
    b: &Book,
    args: &'a Map<String, Value>,
    need_member: bool,
) -> Result<&'a str, ApiError> {
    let id = arg(args, "channel").ok_or_else(|| err("channel_not_found"))?;
    match b.cfg().channels.get(id) {
        None => Err(err("channel_not_found")),
        Some((_, false)) if need_member => Err(err("not_in_channel")),
        Some(_) => Ok(id),
    }
}

/// `blocks`: a JSON array, or (form bodies) a string holding one.
fn blocks(args: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let v = match args.get("blocks") {
        None => return Ok(None),
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).map_err(|_| err("invalid_blocks_format"))?
        }
        Some(v) => v.clone(),
    };
    if !v.is_array() {
        return Err(err("invalid_blocks_format"));
    }
    slack_blocks::validate(&v).map_err(|messages| {
        let mut extra = Map::new();
        extra.insert("response_metadata".into(), json!({ "messages": messages }));
        ApiError("invalid_blocks".into(), extra)
    })?;
    Ok(Some(v))
}

fn message_json(m: &Message) -> Value {
    let mut v = json!({"type": "message", "user": m.user, "bot_id": "B0SIMBOT01", "ts": m.ts,
                       "team": TEAM_ID, "text": m.text.clone().unwrap_or_default()});
    if let Some(bl) = &m.blocks {
        v["blocks"] = bl.clone();
    }
    if let Some(t) = &m.thread_ts {
        v["thread_ts"] = t.clone().into();
    }
    v
}

fn post_message(b: &mut Book, args: &Map<String, Value>) -> Answer {
    let channel = channel(b, args, true)?.to_owned();
    let blocks = blocks(args)?;
    let text = arg(args, "text").map(str::to_owned);
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if text.is_none() && !has_blocks {
        return Err(err("no_text"));
    }
    if text.as_ref().is_some_and(|t| t.chars().count() > 40_000) {
        return Err(err("msg_too_long"));
    }
    let thread_ts = match arg(args, "thread_ts") {
        None => None,
        Some(t) => {
            let parent = b.find(&channel, t).ok_or_else(|| err("thread_not_found"))?;
            // A reply to a reply goes to the thread's parent, as in Slack.
            Some(parent.thread_ts.clone().unwrap_or_else(|| t.to_owned()))
        }
    };
    let ts = b.next_ts();
    let m = Message {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts,
        user: BOT_USER.into(),
        text,
        blocks,
        reactions: vec![],
        edits: 0,
    };
    let message = message_json(&m);
    b.messages.push(m);
    Ok(json!({"channel": channel, "ts": ts, "message": message}))
}

fn update(b: &mut Book, args: &Map<String, Value>) -> Answer {
    let channel = channel(b, args, true)?.to_owned();
    let ts = arg(args, "ts")
        .ok_or_else(|| err("message_not_found"))?
        .to_owned();
    let blocks = blocks(args)?;
    let text = arg(args, "text").map(str::to_owned);
    if text.is_none() && blocks.is_none() {
        return Err(err("no_text"));
    }
    let m = b
        .find(&channel, &ts)
        .ok_or_else(|| err("message_not_found"))?;
    if m.user != BOT_USER {
        return Err(err("cant_update_message"));
    }
    if let Some(t) = text {
        m.text = Some(t);
    }
    // Without `blocks` the previous blocks stay; an empty array removes them.
    if let Some(bl) = blocks {
        m.blocks = Some(bl).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    }
    m.edits += 1;
    let message = message_json(m);
    let text = m.text.clone().unwrap_or_default();
    Ok(json!({"channel": channel, "ts": ts, "text": text, "message": message}))
}

fn reactions_get(b: &mut Book, args: &Map<String, Value>) -> Answer {
    let (Some(_), Some(ts)) = (arg(args, "channel"), arg(args, "timestamp")) else {
        return Err(err("no_item_specified"));
    };
    let ts = ts.to_owned();
    let channel = channel(b, args, false)?.to_owned();
    if !is_ts(&ts) {
        return Err(err("bad_timestamp"));
    }
    let full = matches!(args.get("full"), Some(Value::Bool(true)))
        || matches!(arg(args, "full"), Some("true" | "1"));
    let cap = if full {
        usize::MAX
    } else {
        b.cfg().partial_users
    };
    let m = b
        .find(&channel, &ts)
        .ok_or_else(|| err("message_not_found"))?;
    let mut message = message_json(m);
    if !m.reactions.is_empty() {
        let rs: Vec<Value> = m
            .reactions
            .iter()
            .map(|r| {
                let users: Vec<&String> = r.users.iter().take(cap).collect();
                json!({"name": r.name, "users": users, "count": r.users.len()})
            })
            .collect();
        message["reactions"] = rs.into();
    }
    message["permalink"] = format!(
        "https://gate-sim.slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    )
    .into();
    Ok(json!({"type": "message", "channel": channel, "message": message}))
}

fn is_ts(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(a), Some(c), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !a.is_empty() && !c.is_empty() && a.bytes().chain(c.bytes()).all(|b| b.is_ascii_digit())
}

fn users_info(b: &Book, args: &Map<String, Value>) -> Answer {
    let id = arg(args, "user").ok_or_else(|| err("user_not_found"))?;
    let u = b.cfg().users.get(id).ok_or_else(|| err("user_not_found"))?;
    Ok(json!({"user": {
        "id": u.id, "team_id": TEAM_ID, "name": u.name, "deleted": u.deleted,
        "real_name": u.real_name, "is_bot": u.is_bot, "is_app_user": false,
        "profile": {"real_name": u.real_name, "display_name": u.name, "team": TEAM_ID},
    }}))
}

fn usergroup_users(b: &Book, args: &Map<String, Value>) -> Answer {
    let id = arg(args, "usergroup").ok_or_else(|| err("invalid_arguments"))?;
    let users = b
        .cfg()
        .usergroups
        .get(id)
        .ok_or_else(|| err("no_such_subteam"))?;
    Ok(json!({ "users": users }))
}

/// What a `response_url` accepts (https://docs.slack.dev/interactivity/handling-user-interaction):
/// a JSON message (`text` and/or `blocks`), optionally `replace_original` or
/// `delete_original`; it answers like an incoming webhook: 200 `ok`, or 400 with a reason.
async fn response_url(
    State(book): State<Arc<Mutex<Book>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut b = book.lock().unwrap();
    match b.faults.pop_front() {
        Some(Fault::Drop) => b.faults.push_front(Fault::Drop),
        Some(Fault::Status(c)) => {
            return StatusCode::from_u16(c)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        Some(Fault::SlackError(_)) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        None => {}
    }
    let parsed = serde_json::from_slice::<Value>(&body);
    let (status, answer) = apply_response(&mut b, &id, &headers, parsed);
    let args = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    b.calls.push(Call {
        method: "response_url".into(),
        http_method: "POST".into(),
        headers,
        args,
        raw_body: body.to_vec(),
        status: status.as_u16(),
        response: Value::String(answer.into()),
    });
    (status, answer).into_response()
}

fn apply_response(
    b: &mut Book,
    id: &str,
    headers: &HeaderMap,
    parsed: Result<Value, serde_json::Error>,
) -> (StatusCode, &'static str) {
    let Some((channel, ts)) = b.response_urls.get(id).cloned() else {
        return (StatusCode::NOT_FOUND, "no_service");
    };
    let json_ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let Ok(Value::Object(o)) = parsed.map_err(|_| ()) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload");
    };
    if !json_ct {
        return (StatusCode::BAD_REQUEST, "invalid_payload");
    }
    let blocks = match blocks(&o) {
        Ok(bl) => bl,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid_blocks"),
    };
    let text = arg(&o, "text").map(str::to_owned);
    let delete = o.get("delete_original") == Some(&Value::Bool(true));
    if delete {
        b.messages.retain(|m| !(m.channel == channel && m.ts == ts));
        return (StatusCode::OK, "ok");
    }
    if text.is_none() && blocks.is_none() {
        return (StatusCode::BAD_REQUEST, "no_text");
    }
    if o.get("replace_original") == Some(&Value::Bool(true)) {
        let Some(m) = b.find(&channel, &ts) else {
            return (StatusCode::NOT_FOUND, "message_not_found");
        };
        m.text = text;
        m.blocks = blocks;
        m.edits += 1;
    }
    (StatusCode::OK, "ok")
}
