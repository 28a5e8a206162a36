//! Slack through the server (issue 12 §2): a real `gate serve` whose own policy routes approvals
//! to a `kind: slack` backend pointed at the Slack simulator, a real client waiting through its
//! `kind: server` backend, and clicks built and signed as Slack sends them
//! (`common::slack_interaction`).
//!
//! The attacker is an AI agent running as the requester (alice): it has gate's binary, its own
//! policy files and environment, its server token, and it can send anything to
//! `/slack/interactions`; anyone in the workspace can click any button. Each attack has a test
//! named after it: the command must not run, and the refusal must be on record.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{self, HANG, Server, Watched};
use common::slack_sim::{BOT_TOKEN, CHANNEL, Message, SlackConfig, SlackSim};
use serde_json::Value;

/// The signing secret of the simulated Slack app (the server reads it from its environment).
pub const SECRET: &str = "0a1b2c3d4e5f-sim-signing-secret-77aa";
/// The server's public address, as given to `--public-url`.
pub const PUBLIC: &str = "https://gate.example.test";
/// The buttons' `action_id`s.
pub(crate) const APPROVE: &str = "gate_approve";
pub(crate) const DENY: &str = "gate_deny";

/// The server's policy: `echo deploy` needs one of ops, `echo two` needs two of ops, through
/// the `sec` Slack backend; Slack users map to principals here and only here.
pub(crate) fn server_policy(api_url: &str) -> String {
    format!(
        r#"version: 1
defaults: {{ backend: sec, timeout: 60s }}
groups:
  ops: [alice, bob, carol]
identities:
  alice: {{ slack: U0ALICE01 }}
  bob: {{ slack: U0BOB0001 }}
  carol: {{ slack: U0CAROL01 }}
  mallory: {{ slack: U0MALLORY }}
backends:
  sec:
    kind: slack
    channel: {CHANNEL}
    token: env:GATE_TEST_SLACK_TOKEN
    signing_secret: env:GATE_TEST_SLACK_SIGNING_SECRET
    api_url: "{api_url}"
rules:
  - name: deploy
    match: {{ program: echo, args: [deploy] }}
    decision: approve
    approval: {{ approvers: [ops] }}
  - name: two
    match: {{ program: echo, args: [two] }}
    decision: approve
    approval: {{ approvers: [ops], min_approvals: 2 }}
"#
    )
}

/// Starts `gate serve` in `home` with `policy`, the chat secrets in its environment and
/// `--public-url` (unless `public` is None).
pub fn start_server(
    home: &Path,
    policy: &str,
    env: &[(&str, &str)],
    public: Option<&str>,
) -> Server {
    start_server_at(home, policy, env, public, "127.0.0.1:0")
}

/// [`start_server`] on `listen` (a restart at the address of an earlier server).
pub fn start_server_at(
    home: &Path,
    policy: &str,
    env: &[(&str, &str)],
    public: Option<&str>,
    listen: &str,
) -> Server {
    let policy_path = home.join("server-policy.yaml");
    std::fs::write(&policy_path, policy).unwrap();
    let (db, audit) = (home.join("server.db"), home.join("server-audit.jsonl"));
    let mut c = common::gate_in(home);
    for (k, v) in env {
        c.env(k, v);
    }
    c.arg("--policy")
        .arg(&policy_path)
        .args(["serve", "--listen", listen, "--db"])
        .arg(&db)
        .arg("--audit-log")
        .arg(&audit);
    if let Some(u) = public {
        c.args(["--public-url", u]);
    }
    Server::adopt(common::spawn_server(c), home, db, audit)
}

/// A client's home whose policy asks the server (its key pinned) for every `echo`, from its
/// own view of `ops` (so the client's clause adds no "anyone"); with `extra` appended.
pub fn client_home(srv: &Server, extra: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let policy = format!(
        r#"version: 1
backends:
  team: {{ kind: server, url: "{}", key: "{}" }}
groups:
  ops: [alice, bob, carol]
rules:
  - name: any-echo
    match: {{ program: echo }}
    decision: approve
    approval: {{ backend: team, approvers: [ops], timeout: 60s }}
{extra}"#,
        srv.url,
        srv.vkey()
    );
    std::fs::write(d.path().join("client-policy.yaml"), policy).unwrap();
    d
}

/// `gate -- ARGV` as the requester (its server token), started in the background.
pub fn client_run(home: &Path, token: &str, argv: &[&str]) -> Watched {
    let mut c: Command = common::gate_in(home);
    c.env("GATE_TOKEN", token)
        .arg("--policy")
        .arg(home.join("client-policy.yaml"))
        .arg("--")
        .args(argv);
    process::spawn(c)
}

/// Every record of a JSON Lines log.
pub fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The server's events of `kind` (its audit log's `event` bodies), with their request ids.
pub fn events(srv: &Server, kind: &str) -> Vec<Value> {
    records(&srv.audit)
        .into_iter()
        .filter(|r| r["event"]["type"] == kind)
        .collect()
}

/// `GET /v1/requests/{id}` as `token`.
pub fn request(srv: &Server, token: &str, id: &str) -> Value {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/requests/{id}", srv.url))
        .bearer_auth(token)
        .send()
        .unwrap();
    r.json().unwrap()
}

/// The one pending request of the server (waits for it).
pub fn pending_id(srv: &Server, token: &str) -> String {
    process::poll("a pending request", || {
        let v: Value = reqwest::blocking::Client::new()
            .get(format!("{}/v1/requests?status=pending", srv.url))
            .bearer_auth(token)
            .send()
            .ok()?
            .json()
            .ok()?;
        Some(v["requests"][0]["id"].as_str()?.to_owned())
    })
}

/// A Slack world: the simulator, the server, the requester's token and home.
pub(crate) struct World {
    pub(crate) sim: SlackSim,
    pub(crate) srv: Server,
    pub(crate) alice: String,
    pub(crate) client: tempfile::TempDir,
    pub(crate) _home: tempfile::TempDir,
}

impl World {
    pub(crate) fn start(cfg: SlackConfig, client_extra: &str) -> World {
        let sim = SlackSim::start(cfg.user("U0CAROL01", "carol"));
        let home = tempfile::tempdir().unwrap();
        let srv = start_server(
            home.path(),
            &server_policy(&sim.api_url()),
            &[
                ("GATE_TEST_SLACK_TOKEN", BOT_TOKEN),
                ("GATE_TEST_SLACK_SIGNING_SECRET", SECRET),
            ],
            Some(PUBLIC),
        );
        let alice = srv.token("alice", None);
        let client = client_home(&srv, client_extra);
        World {
            sim,
            srv,
            alice,
            client,
            _home: home,
        }
    }

    pub(crate) fn new() -> World {
        Self::start(SlackConfig::default(), "")
    }

    pub(crate) fn run(&self, argv: &[&str]) -> Watched {
        client_run(self.client.path(), &self.alice, argv)
    }

    /// The message the server posted (waits for it): its ts.
    pub(crate) fn posted(&self) -> String {
        process::poll("the request's message in Slack", || {
            self.sim.messages(CHANNEL).first().map(|m| m.ts.clone())
        })
    }

    pub(crate) fn message(&self, ts: &str) -> Message {
        self.sim.message(CHANNEL, ts).expect("the message")
    }

    pub(crate) fn interactions(&self) -> String {
        format!("{}/slack/interactions", self.srv.url)
    }

    /// `user` clicks `action` on message `ts`, signed with the app's secret; Slack's answer.
    pub(crate) fn click(&self, ts: &str, user: &str, action: &str) -> (u16, String) {
        self.sim
            .click(CHANNEL, ts, user, action)
            .signed(SECRET)
            .post(&self.interactions())
    }

    /// The texts posted to `response_url`s (what the clickers were told), oldest first.
    pub(crate) fn feedback(&self) -> Vec<String> {
        self.sim
            .calls_to("response_url")
            .iter()
            .filter_map(|c| {
                c.args
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Waits until some feedback contains `needle`.
    pub(crate) fn feedback_until(&self, needle: &str) -> String {
        let what = format!(
            "feedback with {needle:?} (so far {:?})\n{}",
            self.feedback(),
            self.srv.stderr()
        );
        process::poll(&what, || {
            self.feedback().into_iter().find(|t| t.contains(needle))
        })
    }

    pub(crate) fn status(&self, id: &str) -> String {
        request(&self.srv, &self.alice, id)["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The buttons of a message's blocks: (action_id, the whole element).
pub(crate) fn buttons(m: &Message) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for b in m
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let els = b["elements"].as_array().cloned().unwrap_or_default();
        for e in els.into_iter().chain(b.get("accessory").cloned()) {
            if e["type"] == "button" {
                out.push((e["action_id"].as_str().unwrap_or("").to_owned(), e));
            }
        }
    }
    out
}

/// Everything the message shows, as one string (text and blocks).
pub(crate) fn shown(m: &Message) -> String {
    format!(
        "{} {}",
        m.text.as_deref().unwrap_or(""),
        m.blocks.as_ref().map(Value::to_string).unwrap_or_default()
    )
}

pub(crate) fn client_log(w: &World) -> PathBuf {
    w.client.path().join("audit.jsonl")
}

#[test]
fn a_signed_click_by_an_eligible_approver_runs_the_command_with_a_signed_decision() {
    let w = World::new();
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    // The message: posted with the bot token, Approve and Deny buttons, Deny with a confirm.
    let post = &w.sim.calls_to("chat.postMessage")[0];
    assert_eq!(post.status, 200);
    assert_eq!(post.response["ok"], true, "{}", post.response);
    let m = w.message(&ts);
    let b = buttons(&m);
    let ids: Vec<&str> = b.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(ids, [APPROVE, DENY], "{}", shown(&m));
    assert!(
        b[1].1.get("confirm").is_some(),
        "Deny asks first: {}",
        b[1].1
    );
    assert!(shown(&m).contains("deploy"), "{}", shown(&m));

    let (status, _) = w.click(&ts, "U0BOB0001", APPROVE);
    assert_eq!(status, 200);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "deploy\n");

    // The server recorded bob's approval, saying it came from Slack.
    let approvals = events(&w.srv, "approval");
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0]["request_id"], id.as_str());
    assert_eq!(approvals[0]["event"]["principal"], "bob");
    assert_eq!(approvals[0]["event"]["status"], "approved");
    let comment = approvals[0]["event"]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Slack") && comment.contains("U0BOB0001"),
        "{comment}"
    );
    // The client's decision record carries the server's signed statement, and it verifies
    // against the server's key.
    let recs = records(&client_log(&w));
    let d = recs
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("a decision record");
    let note = d["decision"]["statement"].as_str().expect("a statement");
    assert!(note.contains(&format!("request {id}")), "{note}");
    assert!(note.contains("bob"), "{note}");
    let mut c = common::gate_in(w.client.path());
    c.args(["log", "verify"])
        .arg(client_log(&w))
        .args(["--json", "--server-key", &w.srv.vkey()]);
    let r = common::Ran::of(c);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    // And the server's own log, with the approval from Slack in it, is intact under its key.
    let mut c = common::gate_in(w.client.path());
    c.args(["log", "verify"])
        .arg(&w.srv.audit)
        .args(["--json", "--key", &w.srv.vkey()]);
    let r = common::Ran::of(c);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);

    // The message shows the outcome, without buttons.
    let m = process::poll("the message updated with the outcome", || {
        let m = w.message(&ts);
        (m.edits > 0 && buttons(&m).is_empty()).then_some(m)
    });
    assert!(shown(&m).contains("approved"), "{}", shown(&m));
    // The clicker heard it counted.
    w.feedback_until("approved");
}

#[test]
fn requester_clicking_approve_on_its_own_request_is_refused_with_feedback() {
    let w = World::new();
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    // Alice (the requester) is in ops, and her Slack id is hers: still not her own approver.
    let (status, _) = w.click(&ts, "U0ALICE01", APPROVE);
    assert_eq!(
        status, 200,
        "Slack is answered; the refusal goes to the clicker"
    );
    let said = w.feedback_until("not eligible");
    assert!(said.contains("cannot decide"), "{said}");
    assert_eq!(w.status(&id), "pending");
    assert!(events(&w.srv, "approval").is_empty());
    // Deny is a decision too: refused the same way.
    w.click(&ts, "U0ALICE01", DENY);
    process::poll("a second refusal", || {
        (w.feedback()
            .iter()
            .filter(|t| t.contains("not eligible"))
            .count()
            == 2)
            .then_some(())
    });
    assert_eq!(w.status(&id), "pending");
    // Someone else approves: it runs.
    w.click(&ts, "U0BOB0001", APPROVE);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
}

#[test]
fn workspace_member_outside_the_group_and_unmapped_user_are_refused_with_feedback() {
    let w = World::new();
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    // Mallory is mapped to a principal, but not in ops.
    w.click(&ts, "U0MALLORY", APPROVE);
    let said = w.feedback_until("not eligible");
    assert!(said.contains("mallory"), "{said}");
    // Someone whose Slack account maps to no principal at all.
    w.sim.set_user(common::slack_sim::SlackUser {
        id: "U0STRANGER".into(),
        name: "stranger".into(),
        real_name: "A Stranger".into(),
        deleted: false,
        is_bot: false,
    });
    w.click(&ts, "U0STRANGER", APPROVE);
    let said = w.feedback_until("not mapped");
    assert!(said.starts_with("not eligible"), "{said}");
    assert_eq!(w.status(&id), "pending");
    assert!(events(&w.srv, "approval").is_empty());
    // Both feedback messages were only for the clicker.
    for c in w.sim.calls_to("response_url") {
        assert_eq!(c.args["response_type"], "ephemeral", "{:?}", c.args);
        assert_eq!(c.args["replace_original"], false);
    }
    w.click(&ts, "U0CAROL01", APPROVE);
    client.finish(Duration::from_secs(30)).status(0);
}

#[test]
fn two_of_n_needs_two_distinct_clicks() {
    let w = World::new();
    let mut client = w.run(&["echo", "two"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    w.click(&ts, "U0BOB0001", APPROVE);
    w.feedback_until("1 more approval");
    // Bob again (a new click, a new signature): counts once.
    w.click(&ts, "U0BOB0001", APPROVE);
    w.feedback_until("already decided");
    assert_eq!(w.status(&id), "pending");
    assert!(client.running());
    // The message shows who approved so far and still has its buttons.
    let m = process::poll("the message shows bob's approval", || {
        let m = w.message(&ts);
        (m.edits > 0).then_some(m)
    });
    assert!(shown(&m).contains("bob"), "{}", shown(&m));
    assert_eq!(buttons(&m).len(), 2);
    w.click(&ts, "U0CAROL01", APPROVE);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "two\n");
    let who: Vec<&str> = vec!["bob", "carol"];
    let approvals = events(&w.srv, "approval");
    let got: Vec<&str> = approvals
        .iter()
        .map(|e| e["event"]["principal"].as_str().unwrap())
        .collect();
    assert_eq!(got, who);
}

#[test]
fn deny_click_stops_the_command_with_77_and_the_message_says_so() {
    let w = World::new();
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    // Carol has the message open too, and clicks after bob has denied.
    let late = w.sim.click(CHANNEL, &ts, "U0CAROL01", APPROVE);
    let (status, _) = w.click(&ts, "U0BOB0001", DENY);
    assert_eq!(status, 200);
    let out = client.finish(Duration::from_secs(30));
    out.status(77);
    assert!(out.stdout.is_empty());
    let denial = events(&w.srv, "denial");
    assert_eq!(denial.len(), 1);
    assert_eq!(denial[0]["event"]["principal"], "bob");
    let m = process::poll("the message updated with the denial", || {
        let m = w.message(&ts);
        (m.edits > 0 && buttons(&m).is_empty()).then_some(m)
    });
    assert!(shown(&m).contains("denied"), "{}", shown(&m));
    // A click after the decision changes nothing and says why.
    assert_eq!(late.signed(SECRET).post(&w.interactions()).0, 200);
    w.feedback_until("already decided");
}

#[test]
fn the_message_follows_a_decision_made_through_the_api() {
    // Approved through the API (not Slack): the Slack message still shows the outcome.
    let w = World::new();
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    let bob = w.srv.token("bob", None);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/requests/{id}/approve", w.srv.url))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    client.finish(Duration::from_secs(30)).status(0);
    let m = process::poll("the message updated", || {
        let m = w.message(&ts);
        (m.edits > 0 && buttons(&m).is_empty()).then_some(m)
    });
    assert!(shown(&m).contains("approved"), "{}", shown(&m));
    assert!(!w.sim.calls_to("chat.update").is_empty());
}

#[test]
fn the_message_shows_an_expired_request_and_its_buttons_go() {
    let w = World::new();
    let mut c: Command = common::gate_in(w.client.path());
    c.env("GATE_TOKEN", &w.alice)
        .arg("--policy")
        .arg(w.client.path().join("client-policy.yaml"))
        .args(["--timeout", "2s", "--", "echo", "deploy"]);
    let client = process::spawn(c);
    let ts = w.posted();
    let out = client.finish(Duration::from_secs(30));
    out.status(75);
    let m = process::poll("the message updated with the expiry", || {
        let m = w.message(&ts);
        (m.edits > 0 && buttons(&m).is_empty()).then_some(m)
    });
    assert!(shown(&m).contains("timed out"), "{}", shown(&m));
}

#[test]
fn slack_outage_is_retried_and_a_lasting_failure_is_on_record_and_on_the_request() {
    use common::slack_sim::Fault;
    let w = World::new();
    // Two 503s, then a rate limit: the post still lands.
    w.sim.fail_method("chat.postMessage", 2, Fault::Status(503));
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let statuses: Vec<u16> = w
        .sim
        .calls_to("chat.postMessage")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    w.click(&ts, "U0BOB0001", APPROVE);
    client.finish(Duration::from_secs(30)).status(0);

    // The bot was removed from the channel: Slack's error, a hint, on the request and in the
    // server's log; the request still waits for a decision by other means.
    w.sim.set_channel(CHANNEL, "approvals", false);
    let client = w.run(&["echo", "deploy"]);
    let id = process::poll("the second request", || {
        let v: Value = reqwest::blocking::Client::new()
            .get(format!("{}/v1/requests?status=pending", w.srv.url))
            .bearer_auth(&w.alice)
            .send()
            .ok()?
            .json()
            .ok()?;
        Some(v["requests"][0]["id"].as_str()?.to_owned())
    });
    let note = process::poll("the failure on the request", || {
        let v = request(&w.srv, &w.alice, &id);
        (v["chat"]["state"] == "failed").then_some(v["chat"].clone())
    });
    let why = note["error"].as_str().unwrap();
    assert!(
        why.contains("not_in_channel") && why.contains("invite"),
        "{why}"
    );
    let failed = process::poll("the failure in the server's log", || {
        let e = events(&w.srv, "chat_failed");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(failed[0]["request_id"], format!("chat:{id}"));
    assert!(w.srv.stderr().contains("not_in_channel"));
    drop(client);
}

#[test]
fn gate_serve_with_an_unreadable_chat_secret_is_a_configuration_error_naming_the_reference() {
    let sim = SlackSim::start(SlackConfig::default());
    let home = tempfile::tempdir().unwrap();
    let policy_path = home.path().join("server-policy.yaml");
    std::fs::write(&policy_path, server_policy(&sim.api_url())).unwrap();
    let mut c = common::gate_in(home.path());
    c.env("GATE_TEST_SLACK_TOKEN", BOT_TOKEN)
        .arg("--policy")
        .arg(&policy_path)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(home.path().join("server.db"));
    let r = common::Ran::of(c);
    r.status(78);
    r.stderr_contains("backend `sec`");
    r.stderr_contains("env:GATE_TEST_SLACK_SIGNING_SECRET");
    assert!(!r.stderr.contains(BOT_TOKEN));
    let _ = HANG;
}

#[test]
fn a_click_after_a_server_restart_still_decides_and_updates_the_message() {
    let mut w = World::new();
    let client = w.run(&["echo", "deploy"]);
    let ts = w.posted();
    let id = pending_id(&w.srv, &w.alice);
    // The server restarts (an upgrade): it no longer remembers having posted the message.
    let addr = w.srv.addr.clone();
    assert_eq!(w.srv.stop(), 0);
    w.srv = start_server_at(
        w._home.path(),
        &server_policy(&w.sim.api_url()),
        &[
            ("GATE_TEST_SLACK_TOKEN", BOT_TOKEN),
            ("GATE_TEST_SLACK_SIGNING_SECRET", SECRET),
        ],
        Some(PUBLIC),
        &addr,
    );
    assert_eq!(w.status(&id), "pending");
    let (status, _) = w.click(&ts, "U0BOB0001", APPROVE);
    assert_eq!(status, 200);
    let out = client.finish(Duration::from_secs(60));
    out.status(0);
    let m = process::poll("the message updated after the restart", || {
        let m = w.message(&ts);
        (m.edits > 0 && buttons(&m).is_empty()).then_some(m)
    });
    assert!(shown(&m).contains("pproved"), "{}", shown(&m));
}
