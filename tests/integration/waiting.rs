//! The requester knows where it stands (issue 11 §3): while `gate -- CMD` waits on a real
//! `gate serve`, each approval shows as it arrives, on a line that fits 80 columns and names who
//! can approve; a `--timeout` beyond the policy's limit says it was capped; `-q` prints the
//! request id once and nothing else; the server keeps a request for its rule's timeout, not its
//! default, and no timeout a requester sends stretches that.
//!
//! Off a terminal (CI, an agent, these tests) the progress is a plain `gate: waiting: ...` line
//! each time the state changes. The waits below are hang guards: a step that should come "at
//! once" is given far less than the server's 25 s long-poll, which is how late it came before.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Ran;
use common::process::{HANG, Server, Watched, spawn};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The server's policy: `touch` needs two of security, within 30m; its default is 15m.
/// `stat` matches no rule of the server: its default applies.
const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 15m }
groups:
  security: [alice, bob, erin]
rules:
  - name: touch-needs-two
    match: { program: touch }
    decision: approve
    approval: { approvers: [security], min_approvals: 2, timeout: 30m }
"#;

/// The requester's policy: the same rule, and `stat` needing one approval within 30m.
fn client_policy(url: &str, key: &str) -> String {
    format!(
        r#"version: 1
groups:
  security: [alice, bob, erin]
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
defaults: {{ backend: team }}
rules:
  - name: touch-needs-two
    match: {{ program: touch }}
    decision: approve
    approval: {{ approvers: [security], min_approvals: 2, backend: team, timeout: 30m }}
  - name: stat-needs-one
    match: {{ program: stat }}
    decision: approve
    approval: {{ approvers: [security], backend: team, timeout: 30m }}
"#
    )
}

/// A server, its principals' tokens and a requester's home that pins its key.
struct Setup {
    srv: Server,
    _srv_home: tempfile::TempDir,
    home: tempfile::TempDir,
    alice: String,
    bob: String,
    erin: String,
}

fn setup() -> Setup {
    let srv_home = tempfile::tempdir().unwrap();
    let srv = Server::start(srv_home.path(), SERVER_POLICY);
    let [alice, bob, erin] = ["alice", "bob", "erin"].map(|p| srv.token(p, None));
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("policy.yaml"),
        client_policy(&srv.url, &srv.vkey()),
    )
    .unwrap();
    Setup {
        srv,
        _srv_home: srv_home,
        home,
        alice,
        bob,
        erin,
    }
}

impl Setup {
    fn h(&self) -> &Path {
        self.home.path()
    }

    /// `gate [flags] -- argv` as erin, the requester.
    fn requester(&self, flags: &[&str], argv: &[&str]) -> Command {
        let mut c = common::gate_in(self.h());
        c.env("GATE_TOKEN", &self.erin)
            .arg("--policy")
            .arg(self.h().join("policy.yaml"))
            .args(flags)
            .arg("--")
            .args(argv);
        c
    }

    /// `gate approve --server URL id` as the holder of `token`.
    fn approve(&self, token: &str, id: &str) -> Ran {
        let mut c = common::gate_in(self.h());
        c.env("GATE_TOKEN", token)
            .args(["approve", "--server", &self.srv.url, id]);
        let r = Ran::of(c);
        r.status(0);
        r
    }

    /// `GET /v1/requests/{id}` as alice.
    fn get(&self, id: &str) -> Value {
        http()
            .get(format!("{}/v1/requests/{id}", self.srv.url))
            .bearer_auth(&self.alice)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The id in the requester's `... waiting as request ID on URL` line.
fn request_id(w: &mut Watched) -> String {
    w.stderr_until(" on http", HANG);
    let text = w.stderr_text();
    let at = text.find("waiting as request ").expect("the waiting line") + 19;
    text[at..].chars().take(36).collect()
}

/// The `gate: waiting: ` progress lines printed so far.
fn progress_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("gate: waiting: "))
        .collect()
}

/// Seconds since `created` that `expires` lies, from the API's view of a request.
fn lifetime_secs(v: &Value) -> u64 {
    let at = |k: &str| humantime::parse_rfc3339(v[k].as_str().unwrap()).unwrap();
    at("expires")
        .duration_since(at("created"))
        .unwrap()
        .as_secs()
}

#[test]
fn each_approval_shows_on_the_requesters_progress_line_as_it_arrives() {
    let s = setup();
    let marker = s.h().join("ran");
    let marker = marker.to_str().unwrap();
    // A command carrying terminal controls: what the waiting line shows of it is escaped.
    let argv = ["touch", marker, "\x1b]0;pwned\x07\u{202e}"];
    let mut w = spawn(s.requester(&[], &argv));
    let id = request_id(&mut w);
    w.stderr_until("gate: waiting: 0/2 approvals from security", HANG);

    // Found: `0/2` twelve seconds after an approval. The server's long-poll now answers on
    // each approval, so the line comes long before the 25 s poll would have run out.
    s.approve(&s.alice, &id).stderr_contains("1 more approval");
    w.stderr_until(
        "gate: waiting: 1/2 approvals (alice) from security",
        Duration::from_secs(10),
    );
    assert!(w.running(), "the request ended early\n{}", w.stderr_text());
    assert_eq!(s.get(&id)["status"], "pending");

    s.approve(&s.bob, &id).stderr_contains("now approved");
    let done = w.finish(HANG);
    done.status(0);
    done.stderr_contains("approved by alice, bob");
    assert!(
        Path::new(marker).exists(),
        "the approved command did not run"
    );

    let lines = progress_lines(&done.stderr);
    assert_eq!(lines.len(), 2, "one line per state: {lines:#?}");
    for l in &lines {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l}");
        assert!(!l.contains('\x1b') && !l.contains('\u{202e}'), "{l:?}");
    }
    assert!(
        done.stderr.contains("\\e]0;pwned\\x07\\u{202e}"),
        "the command's controls are shown escaped: {}",
        done.stderr
    );
}

#[test]
fn an_approval_between_two_polls_is_not_missed() {
    // The long-poll is told how many approvals the requester has seen: one that landed while
    // no poll was open answers the next poll at once instead of waiting for another change.
    let s = setup();
    let argv = ["touch", "/nonexistent-dir/never"];
    let mut w = spawn(s.requester(&[], &argv));
    let id = request_id(&mut w);
    w.stderr_until("0/2 approvals", HANG);
    let poll = |seen: usize| {
        let started = std::time::Instant::now();
        let v: Value = http()
            .get(format!(
                "{}/v1/requests/{id}?wait=20s&seen={seen}",
                s.srv.url
            ))
            .bearer_auth(&s.alice)
            .send()
            .unwrap()
            .json()
            .unwrap();
        (v, started.elapsed())
    };
    s.approve(&s.alice, &id);
    // Seen none, there is one: answered without waiting out the 20 s.
    let (v, took) = poll(0);
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    // Seen one, still one: the poll waits, and the next approval (which decides) ends it.
    let bob = s.bob.clone();
    let url = s.srv.url.clone();
    let id2 = id.clone();
    let h = s.h().to_owned();
    let approver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = common::gate_in(&h);
        c.env("GATE_TOKEN", &bob)
            .args(["approve", "--server", &url, &id2]);
        Ran::of(c)
    });
    let (v, _) = poll(1);
    approver.join().unwrap().status(0);
    assert_eq!(v["status"], "approved", "{v}");
    w.finish(HANG).status(1);
}

#[test]
fn the_server_keeps_a_request_for_its_rules_timeout_not_its_default() {
    // Found: rules on both sides said 30m, the server expired the request after 15m (its
    // default).
    let s = setup();
    let mut w = spawn(s.requester(&[], &["touch", "/nonexistent-dir/x"]));
    let id = request_id(&mut w);
    let v = s.get(&id);
    assert_eq!(lifetime_secs(&v), 30 * 60, "{v}");
    assert!(
        !w.stderr_text().contains("waiting at most"),
        "{}",
        w.stderr_text()
    );
    w.signal(nix::sys::signal::Signal::SIGINT);
    w.finish(HANG).status(75);
}

#[test]
fn when_the_servers_policy_allows_less_the_requester_is_told_at_once() {
    // The requester's rule says 30m; the server has no rule for `stat`, so its 15m default
    // decides, and the requester hears it before waiting rather than at the end.
    let s = setup();
    let mut w = spawn(s.requester(&[], &["stat", "/"]));
    let id = request_id(&mut w);
    w.stderr_until(
        "waiting at most 15m: the limit of the gate server's policy",
        HANG,
    );
    assert_eq!(lifetime_secs(&s.get(&id)), 15 * 60);
    w.stderr_until("0/1 approvals from security · 0s of 15m", HANG);
    w.signal(nix::sys::signal::Signal::SIGINT);
    w.finish(HANG).status(75);
}

#[test]
fn a_longer_timeout_than_the_policy_allows_is_capped_and_said_once() {
    let s = setup();
    let mut w = spawn(s.requester(&["--timeout", "2h"], &["touch", "/nonexistent-dir/x"]));
    let id = request_id(&mut w);
    assert_eq!(lifetime_secs(&s.get(&id)), 30 * 60);
    w.signal(nix::sys::signal::Signal::SIGINT);
    let done = w.finish(HANG);
    done.status(75);
    let said = "gate: waiting at most 30m: the policy's limit for rule `touch-needs-two`; \
                `--timeout 2h` was capped\n";
    assert_eq!(done.stderr.matches(said).count(), 1, "{}", done.stderr);

    // A shorter one is taken as it is, and the server keeps the request no longer.
    let mut w = spawn(s.requester(&["--timeout", "90s"], &["touch", "/nonexistent-dir/y"]));
    let id = request_id(&mut w);
    assert_eq!(lifetime_secs(&s.get(&id)), 90);
    w.signal(nix::sys::signal::Signal::SIGINT);
    let done = w.finish(HANG);
    done.status(75);
    assert!(!done.stderr.contains("capped"), "{}", done.stderr);
}

#[test]
fn quiet_prints_the_request_id_once_and_nothing_else() {
    let s = setup();
    let marker = s.h().join("quiet-ran");
    let mut w = spawn(s.requester(&["-q"], &["touch", marker.to_str().unwrap()]));
    w.stderr_until("gate: request ", HANG);
    let id = common::process::poll("the request id", || {
        let text = w.stderr_text();
        let line = text.lines().next()?;
        let id = line.strip_prefix("gate: request ")?;
        (id.len() == 36).then(|| id.to_owned())
    });
    s.approve(&s.alice, &id);
    s.approve(&s.bob, &id);
    let done = w.finish(HANG);
    done.status(0);
    assert_eq!(done.stderr, format!("gate: request {id}\n"));
    assert!(marker.exists());
}

#[test]
fn an_agent_sending_an_absurd_timeout_to_the_server_gets_the_rules() {
    // A requester talking to the API itself: a huge `timeout_secs` does not stretch the
    // expiry past the rule's 30m, a negative or non-number one is refused, zero expires it.
    let s = setup();
    let create = |timeout: Value| {
        let argv = ["touch", "/tmp/x"];
        let doc = json!({"argv": argv, "cwd": "/srv", "env": {}, "payload": []});
        let digest = hex::encode(Sha256::digest(common::jcs::jcs(&doc).as_bytes()));
        let r = http()
            .post(format!("{}/v1/requests", s.srv.url))
            .bearer_auth(&s.erin)
            .json(&json!({"argv": argv, "cwd": "/srv", "digest": digest, "timeout_secs": timeout}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    for huge in [json!(u64::MAX), json!(10_u64.pow(12))] {
        let (status, v) = create(huge);
        assert_eq!(status, 201, "{v}");
        assert_eq!(lifetime_secs(&v), 30 * 60, "{v}");
    }
    for bad in [json!(-1), json!("2h"), json!(1.5)] {
        let (status, v) = create(bad.clone());
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let (status, v) = create(json!(0));
    assert_eq!(status, 201, "{v}");
    assert_eq!(lifetime_secs(&v), 0, "{v}");
}

#[test]
fn timeout_zero_gives_no_decision_and_runs_nothing() {
    let s = setup();
    let marker = s.h().join("zero-ran");
    let done =
        spawn(s.requester(&["--timeout", "0s"], &["touch", marker.to_str().unwrap()])).finish(HANG);
    done.status(75).stderr_contains("no decision");
    assert!(!marker.exists());
}

/// Runs `c` on a pseudo-terminal `cols` columns wide (util-linux `script`, with `TERM=xterm`)
/// until it ends; everything it drew, with the pty's line endings.
fn on_a_terminal(c: &Command, cols: u16) -> (i32, String) {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', r"'\''"));
    let mut line = format!("stty cols {cols} rows 30; exec {}", quote(c.get_program()));
    for a in c.get_args() {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut script = Command::new("script");
    script.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    script
        .env("TERM", "xterm")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(c.get_current_dir().unwrap());
    let done = spawn(script).finish(HANG);
    (done.status, done.stdout)
}

#[test]
fn on_a_terminal_the_spinner_line_fits_the_width_and_names_who_can_approve() {
    // Every frame the spinner draws fits the terminal, and never more than 80 columns: a
    // wrapped line leaves half of itself behind at each redraw. `script` must be installed.
    let s = setup();
    let long = format!("--reason={}", "日本語 and a very long argument ".repeat(8));
    let csi = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    for cols in [200_u16, 50] {
        let c = s.requester(
            &["--timeout", "1s"],
            &["touch", "/nonexistent-dir/x", &long],
        );
        let (status, drawn) = on_a_terminal(&c, cols);
        assert_eq!(status, 75, "{drawn}");
        let frames: Vec<String> = drawn
            .split(['\r', '\n'])
            .map(|f| csi.replace_all(f, "").trim_end().to_owned())
            .filter(|f| f.contains("approvals from"))
            .collect();
        assert!(!frames.is_empty(), "no spinner drawn:\n{drawn}");
        for f in &frames {
            let width = unicode_width::UnicodeWidthStr::width(f.as_str());
            assert!(
                width <= usize::from(cols).min(80),
                "{width} columns on a {cols}-column terminal: {f}"
            );
            assert!(
                !f.starts_with("gate: waiting"),
                "a plain line on a terminal: {f}"
            );
        }
        assert!(
            frames[0].contains("0/2 approvals from security"),
            "{}",
            frames[0]
        );
    }
}
