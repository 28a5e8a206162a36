//! Teams through the server (issue 12 §3): the server's own policy routes approvals to a
//! `kind: teams` backend (a Workflows webhook, here the simulator); the card links to the
//! server's page for the request; the decision is made on the server (its API or page); a
//! second card reports the outcome. A client whose own policy routes to Teams is told it needs
//! a server.

use crate::common;

use std::time::Duration;

use common::process;
use common::teams_sim::{TeamsConfig, TeamsFault, TeamsSim};
use serde_json::Value;

use crate::slack_server::{
    PUBLIC, client_home, client_run, events, pending_id, request, start_server,
};

fn server_policy() -> String {
    r#"version: 1
defaults: { backend: chan, timeout: 60s }
groups:
  ops: [alice, bob, carol]
backends:
  chan: { kind: teams, webhook: "env:GATE_TEST_TEAMS_WEBHOOK" }
rules:
  - name: deploy
    match: { program: echo, args: [deploy] }
    decision: approve
    risk: high
    approval: { approvers: [ops] }
"#
    .to_owned()
}

struct World {
    sim: TeamsSim,
    srv: common::process::Server,
    alice: String,
    client: tempfile::TempDir,
    _home: tempfile::TempDir,
}

impl World {
    fn start(cfg: TeamsConfig) -> World {
        let sim = TeamsSim::start(cfg);
        let home = tempfile::tempdir().unwrap();
        let srv = start_server(
            home.path(),
            &server_policy(),
            &[("GATE_TEST_TEAMS_WEBHOOK", &sim.webhook_url())],
            Some(PUBLIC),
        );
        let alice = srv.token("alice", None);
        let client = client_home(&srv, "");
        World {
            sim,
            srv,
            alice,
            client,
            _home: home,
        }
    }

    fn cards_until(&self, n: usize) -> Vec<Value> {
        process::poll(&format!("{n} card(s) in Teams"), || {
            let c = self.sim.cards();
            (c.len() >= n).then_some(c)
        })
    }

    fn approve_as(&self, principal: &str, id: &str) {
        let t = self.srv.token(principal, None);
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/v1/requests/{id}/approve", self.srv.url))
            .bearer_auth(t)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// Every `Action.OpenUrl` URL of a card.
fn links(card: &Value) -> Vec<String> {
    card["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "Action.OpenUrl")
        .filter_map(|a| a["url"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn card_links_to_the_request_page_the_server_decides_and_an_outcome_card_follows() {
    let w = World::start(TeamsConfig::default());
    let client = client_run(w.client.path(), &w.alice, &["echo", "deploy"]);
    let cards = w.cards_until(1);
    let id = pending_id(&w.srv, &w.alice);
    // The card: Adaptive Card 1.4, the command, and an OpenUrl to this request's page at the
    // public address (webhook cards cannot post an answer back).
    let card = &cards[0];
    assert_eq!(card["version"], "1.4");
    assert!(card.to_string().contains("echo deploy"), "{card}");
    assert_eq!(links(card), [format!("{PUBLIC}/#r-{id}")]);
    let post = &w.sim.posts()[0];
    assert_eq!(post.status, 202);
    // The request's page is where that link lands: the server's web UI lists it by that id.
    let page = reqwest::blocking::get(format!("{}/", w.srv.url)).unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(request(&w.srv, &w.alice, &id)["chat"]["state"], "posted");

    // Bob decides on the server: the client runs, and a second card reports the outcome.
    w.approve_as("bob", &id);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "deploy\n");
    let cards = w.cards_until(2);
    let outcome = cards[1].to_string();
    assert!(outcome.contains("approved"), "{outcome}");
    assert!(outcome.contains("bob"), "{outcome}");
    assert_eq!(links(&cards[1]), [format!("{PUBLIC}/#r-{id}")]);
    // Only two cards: one request, one outcome.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.sim.cards().len(), 2);
}

#[test]
fn a_denial_on_the_server_ends_the_client_with_77_and_the_outcome_card_says_so() {
    let w = World::start(TeamsConfig::default());
    let client = client_run(w.client.path(), &w.alice, &["echo", "deploy"]);
    w.cards_until(1);
    let id = pending_id(&w.srv, &w.alice);
    let carol = w.srv.token("carol", None);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/requests/{id}/deny", w.srv.url))
        .bearer_auth(carol)
        .json(&serde_json::json!({"reason": "not today"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    client.finish(Duration::from_secs(30)).status(77);
    let cards = w.cards_until(2);
    let outcome = cards[1].to_string();
    assert!(
        outcome.contains("denied") && outcome.contains("carol"),
        "{outcome}"
    );
}

#[test]
fn throttling_and_outages_are_retried_and_the_webhook_url_never_shows() {
    let w = World::start(TeamsConfig::default());
    w.sim.fail_next(1, TeamsFault::Throttled(1));
    w.sim.fail_next(1, TeamsFault::Status(502));
    w.sim.fail_next(1, TeamsFault::Drop);
    let client = client_run(w.client.path(), &w.alice, &["echo", "deploy"]);
    w.cards_until(1);
    let id = pending_id(&w.srv, &w.alice);
    w.approve_as("bob", &id);
    client.finish(Duration::from_secs(30)).status(0);
    w.cards_until(2);
    let url = w.sim.webhook_url();
    let sig = url.split("sig=").nth(1).unwrap();
    for (place, text) in [
        ("server stderr", w.srv.stderr()),
        (
            "server audit log",
            std::fs::read_to_string(&w.srv.audit).unwrap(),
        ),
        ("API view", request(&w.srv, &w.alice, &id).to_string()),
    ] {
        assert!(
            !text.contains(sig),
            "the webhook's sig in the {place}:\n{text}"
        );
        assert!(
            !text.contains("/workflows/"),
            "the webhook URL in the {place}:\n{text}"
        );
    }
    assert!(w.srv.stderr().contains("retrying"), "{}", w.srv.stderr());
}

#[test]
fn a_refused_card_is_on_record_and_on_the_request() {
    // The flow was deleted (404): no retry. The failure is shown, without the URL.
    let w = World::start(TeamsConfig::default());
    w.sim.fail_next(1, TeamsFault::Status(404));
    let client = client_run(w.client.path(), &w.alice, &["echo", "deploy"]);
    let id = pending_id(&w.srv, &w.alice);
    let note = process::poll("the failure on the request", || {
        let v = request(&w.srv, &w.alice, &id);
        (v["chat"]["state"] == "failed").then_some(v["chat"].clone())
    });
    let why = note["error"].as_str().unwrap();
    assert!(why.contains("404") && why.contains("Workflow"), "{why}");
    assert!(!why.contains("sig="), "{why}");
    let failed = events(&w.srv, "chat_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    // Decided on the server anyway; the server then stops following the post (no outcome card
    // for a card that never went out, and nothing kept in memory for it).
    w.approve_as("bob", &id);
    client.finish(Duration::from_secs(30)).status(0);
    process::poll("the post forgotten once decided", || {
        request(&w.srv, &w.alice, &id)
            .get("chat")
            .is_none()
            .then_some(())
    });
    assert_eq!(w.sim.cards().len(), 0);
}

#[test]
fn gate_serve_refuses_a_teams_backend_without_a_public_url() {
    let sim = TeamsSim::start(TeamsConfig::default());
    let home = tempfile::tempdir().unwrap();
    let policy = home.path().join("server-policy.yaml");
    std::fs::write(&policy, server_policy()).unwrap();
    let mut c = common::gate_in(home.path());
    c.env("GATE_TEST_TEAMS_WEBHOOK", sim.webhook_url())
        .arg("--policy")
        .arg(&policy)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(home.path().join("server.db"));
    let r = common::Ran::of(c);
    r.status(78);
    r.stderr_contains("--public-url");
    assert!(!r.stderr.contains("sig="), "{}", r.stderr);
}

/// A client policy that routes to Teams itself, with no server.
const CLIENT_TEAMS: &str = r#"version: 1
backends:
  chan: { kind: teams, webhook: "env:TEAMS_URL" }
rules:
  - name: deploy
    match: { program: echo, args: [deploy] }
    decision: approve
    approval: { backend: chan }
"#;

#[test]
fn a_client_routing_to_teams_without_a_server_is_told_teams_needs_one() {
    let g = || common::Gate::new().policy(CLIENT_TEAMS);
    // `gate policy lint`: a warning, the policy itself is valid.
    let r = g().args(&["policy", "lint"]).run();
    r.status(0);
    r.stderr_contains("Teams requires a server backend");
    // `gate check`: a note on where the decision must come from.
    let r = g().args(&["check", "--", "echo", "deploy"]).run();
    r.status(0);
    r.any_stderr();
    assert!(
        r.stdout.contains("Teams requires a server backend"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    // Running it: no decision (75), nothing ran, and the same words.
    let r = g().args(&["--", "echo", "deploy"]).run();
    r.status(75);
    assert!(r.stdout.is_empty());
    r.stderr_contains("Teams requires a server backend");
    r.stderr_contains("kind: server");
}

#[test]
fn agent_text_cannot_add_links_or_formatting_to_the_teams_card() {
    let w = World::start(TeamsConfig::default());
    let mut c = common::gate_in(w.client.path());
    c.env("GATE_TOKEN", &w.alice)
        .arg("--policy")
        .arg(w.client.path().join("client-policy.yaml"))
        .args([
            "--reason",
            "**Approved by bob** [Approve here](https://evil.example/approve)",
            "--",
            "echo",
            "deploy",
        ]);
    let client = process::spawn(c);
    let cards = w.cards_until(1);
    let id = pending_id(&w.srv, &w.alice);
    // The only link is the server's page for the request.
    assert_eq!(links(&cards[0]), [format!("{PUBLIC}/#r-{id}")]);
    let text = cards[0].to_string();
    assert!(!text.contains("[Approve here](https://evil"), "{text}");
    assert!(!text.contains("**Approved by bob**"), "{text}");
    drop(client);
}
