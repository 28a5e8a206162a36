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
use axum::http::HeaderMap;
use axum::routing::{any, post};
use serde_json::{Map, Value};

use super::sim_http::{self, Served};
use super::slack_api;

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
    /// When it arrived (for call rates: polls per minute per waiting request).
    pub at: Instant,
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
pub(super) struct Book {
    pub(super) cfg: Option<SlackConfig>,
    pub(super) revoked: Vec<String>,
    pub(super) messages: Vec<Message>,
    pub(super) calls: Vec<Call>,
    pub(super) faults: VecDeque<Fault>,
    /// Added to every Web API answer, as a network and Slack's own latency would.
    pub(super) latency: Duration,
    /// Method → faults for its next calls only.
    pub(super) method_faults: BTreeMap<String, VecDeque<Fault>>,
    pub(super) hits: BTreeMap<String, VecDeque<Instant>>,
    /// response_url id → the (channel, ts) of the message the interaction came from.
    pub(super) response_urls: BTreeMap<String, (String, String)>,
    pub(super) base_secs: u64,
    pub(super) seq: u64,
}

impl Book {
    pub(super) fn cfg(&self) -> &SlackConfig {
        self.cfg.as_ref().unwrap()
    }
    pub(super) fn cfg_mut(&mut self) -> &mut SlackConfig {
        self.cfg.as_mut().unwrap()
    }
    /// `"<unix seconds>.<microseconds>"`, unique and increasing, like Slack's message ids.
    pub(super) fn next_ts(&mut self) -> String {
        self.seq += 100;
        let secs = self.base_secs + self.seq / 1_000_000;
        format!("{secs}.{:06}", self.seq % 1_000_000)
    }
    pub(super) fn find(&mut self, channel: &str, ts: &str) -> Option<&mut Message> {
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
            .route("/api/{method}", any(slack_api::web_api))
            .route("/actions/{id}", post(slack_api::response_url))
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
        let Some(m) = b.find(channel, ts) else {
            drop(b); // a test's mistake must not poison the simulator for the other checks
            panic!("react: no message {channel}/{ts}");
        };
        match m.reactions.iter_mut().find(|r| r.name == name) {
            Some(r) if r.users.iter().any(|u| u == user) => {}
            Some(r) => r.users.push(user.into()),
            None => m.reactions.push(Reaction {
                name: name.into(),
                users: vec![user.into()],
            }),
        }
    }

    /// A message `user` writes in Slack (in a thread when `thread_ts` is given); its ts.
    pub fn post_as_user(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> String {
        let mut b = self.book();
        let ts = b.next_ts();
        b.messages.push(Message {
            channel: channel.into(),
            ts: ts.clone(),
            thread_ts: thread_ts.map(str::to_owned),
            user: user.into(),
            text: Some(text.into()),
            blocks: None,
            reactions: vec![],
            edits: 0,
        });
        ts
    }

    /// Removes `user`'s reaction `name`; a reaction nobody holds any more disappears.
    #[track_caller]
    pub fn unreact(&self, channel: &str, ts: &str, name: &str, user: &str) {
        let mut b = self.book();
        let Some(m) = b.find(channel, ts) else {
            drop(b); // a test's mistake must not poison the simulator for the other checks
            panic!("unreact: no message {channel}/{ts}");
        };
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

    /// The Slack user name of `id`, if the workspace has that user.
    pub fn user_name(&self, id: &str) -> Option<String> {
        self.book().cfg().users.get(id).map(|u| u.name.clone())
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

    /// Every Web API answer from now on takes at least `d` (Slack answers in tens to hundreds
    /// of milliseconds; benchmarks against a 0 ms simulator flatter the backend).
    pub fn set_latency(&self, d: Duration) {
        self.book().latency = d;
    }

    /// The next `n` calls to `method` only get `fault` (a 5xx or an `ok:false` error: a
    /// dropped connection cannot be aimed at one method, since it happens before the request
    /// is read; use [`SlackSim::fail_next`] for that).
    #[track_caller]
    pub fn fail_method(&self, method: &str, n: usize, fault: Fault) {
        assert!(
            !matches!(fault, Fault::Drop),
            "fail_method: a Drop cannot be aimed at one method; use fail_next"
        );
        let mut b = self.book();
        let q = b.method_faults.entry(method.into()).or_default();
        for _ in 0..n {
            q.push_back(fault.clone());
        }
    }

    /// At most `calls` accepted calls to `method` per `per`; the next gets 429 + Retry-After.
    pub fn rate_limit(&self, method: &str, calls: u32, per: Duration) {
        let mut b = self.book();
        b.cfg_mut().rate_limits.insert(method.into(), (calls, per));
        b.hits.remove(method);
    }
}
