//! Two-stage approvals (issue 13 §5): `gate --no-wait -- CMD` files the request on a real
//! `gate serve`, prints its id on stdout and exits 75 without running; a human approves in
//! between; `gate --request ID -- CMD` — from another home (another runner), same token
//! principal, same working directory — runs CMD only on ID's signed approval for CMD's digest
//! as recomputed now. Every way around it (another command, another requester, a pending,
//! denied or expired request, a local spool) runs nothing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Ran;
use common::process::Server;
use serde_json::{Value, json};

/// The server's policy: `touch` needs one approval from `security`.
pub(crate) const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  security: [alice, bob]
rules:
  - name: touch-needs-one
    match: { program: touch }
    decision: approve
    approval: { approvers: [security] }
"#;

/// A gate server, a requester (`erin`), approvers (`alice`, `bob`), and a working directory
/// shared by every "runner" (CI checkouts sit at the same path on every runner).
pub(crate) struct Stage {
    pub srv: Server,
    _srv_home: tempfile::TempDir,
    pub key: String,
    pub erin: String,
    pub alice: String,
    pub bob: String,
    pub work: tempfile::TempDir,
}

impl Stage {
    pub fn new(server_policy: &str) -> Stage {
        let srv_home = tempfile::tempdir().unwrap();
        let srv = Server::start(srv_home.path(), server_policy);
        let [erin, alice, bob] = ["erin", "alice", "bob"].map(|p| srv.token(p, None));
        let key = srv.vkey();
        Stage {
            srv,
            _srv_home: srv_home,
            key,
            erin,
            alice,
            bob,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// The client policy (routing `touch` to the server), with `extra` added to the rule's
    /// `approval:`.
    pub fn policy(&self, extra: &str) -> String {
        format!(
            r#"version: 1
groups:
  security: [alice, bob]
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
rules:
  - name: touch-needs-one
    match: {{ program: touch }}
    decision: approve
    approval: {{ approvers: [security], backend: team, timeout: 60s{extra} }}
"#,
            url = self.srv.url,
            key = self.key
        )
    }

    /// A fresh runner: its own state, log and config, the policy written into it.
    pub fn runner(&self, policy: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("policy.yaml"), policy).unwrap();
        home
    }

    /// `gate` in `runner`, run from the shared working directory, as `token`'s principal.
    pub fn gate(&self, runner: &Path, token: &str) -> Command {
        let mut c = common::gate_in(runner);
        c.current_dir(self.work.path())
            .env("GATE_TOKEN", token)
            .arg("--policy")
            .arg(runner.join("policy.yaml"));
        c
    }

    pub fn marker(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// `method path` as `token`: the status and the JSON answer.
    pub fn call(&self, method: &str, path: &str, token: &str) -> (u16, Value) {
        let mut rb = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .request(method.parse().unwrap(), format!("{}{path}", self.srv.url))
            .bearer_auth(token);
        if path.ends_with("/deny") {
            rb = rb.json(&json!({ "reason": "not today" }));
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn approve(&self, id: &str, token: &str) {
        let (s, v) = self.call("POST", &format!("/v1/requests/{id}/approve"), token);
        assert_eq!(s, 200, "{v}");
    }

    /// Stage 1: `gate --no-wait -- touch MARKER`; the id it printed.
    pub fn file(&self, runner: &Path, marker: &Path) -> String {
        let mut c = self.gate(runner, &self.erin);
        c.args(["--no-wait", "--", "touch"]).arg(marker);
        let r = Ran::of(c);
        r.status(75);
        assert!(!marker.exists(), "--no-wait ran the command");
        let id = r.stdout.trim().to_owned();
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "stdout is not an id: {:?}",
            r.stdout
        );
        assert!(r.stderr.contains("--request"), "no hint: {}", r.stderr);
        id
    }

    /// Stage 2: `gate --request ID [ARGS] -- touch MARKER` as `token`.
    pub fn redeem(
        &self,
        runner: &Path,
        token: &str,
        id: &str,
        args: &[&str],
        marker: &Path,
    ) -> Ran {
        let mut c = self.gate(runner, token);
        c.args(["--request", id])
            .args(args)
            .args(["--", "touch"])
            .arg(marker);
        Ran::of(c)
    }
}

pub(crate) fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The last decision record of a runner's log.
pub(crate) fn last_decision(runner: &Path) -> Value {
    records(&runner.join("audit.jsonl"))
        .into_iter()
        .rev()
        .find(|r| r["kind"] == "decision")
        .expect("a decision record")
}

#[test]
fn two_stage_happy_path_on_a_real_server_runs_on_the_approval_and_records_it() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let marker = st.marker("deployed");
    let id = st.file(one.path(), &marker);
    // Stage 1 recorded the filing, as not run.
    let d = last_decision(one.path());
    assert_eq!(d["decision"]["outcome"], "pending", "{d}");
    assert_eq!(d["decision"]["run"], false, "{d}");

    st.approve(&id, &st.alice);

    // Stage 2 on another runner: its own log and state, same principal, same checkout path.
    let two = st.runner(&policy);
    let r = st.redeem(two.path(), &st.erin, &id, &[], &marker);
    r.status(0);
    assert!(marker.exists(), "the approved command did not run");
    let d = last_decision(two.path());
    assert_eq!(d["decision"]["run"], true, "{d}");
    assert_eq!(d["decision"]["reuse"]["request_id"], id.as_str(), "{d}");
    assert_eq!(d["decision"]["reuse"]["via"], "request", "{d}");
    assert_eq!(d["decision"]["reuse"]["requester"], "erin", "{d}");
    assert_eq!(d["decision"]["reuse"]["approvers"], json!(["alice"]), "{d}");
    assert!(d["decision"]["statement"].as_str().unwrap().contains(&id));

    // And the log proves it offline.
    let mut c = common::gate_in(two.path());
    c.args(["log", "verify", "--json", "--server-key", &st.key]);
    let v = Ran::of(c);
    v.status(0);
}

#[test]
fn no_wait_json_gives_one_object_with_the_id_and_stdout_the_id_alone() {
    let st = Stage::new(SERVER_POLICY);
    let one = st.runner(&st.policy(""));
    let marker = st.marker("m");
    let mut c = st.gate(one.path(), &st.erin);
    c.args(["--no-wait", "--json", "--", "touch"]).arg(&marker);
    let r = Ran::of(c);
    r.status(75);
    let id = r.stdout.trim();
    let first = r
        .stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let v: Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["outcome"], "pending", "{v}");
    assert_eq!(v["run"], false, "{v}");
    assert_eq!(v["request_id"], id, "{v}");
}

#[test]
fn request_for_a_different_command_is_refused_77() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let approved = st.marker("approved");
    let id = st.file(one.path(), &approved);
    st.approve(&id, &st.alice);
    let other = st.marker("other");
    let two = st.runner(&policy);
    let r = st.redeem(two.path(), &st.erin, &id, &[], &other);
    r.status(77).stderr_contains("another command");
    assert!(!other.exists() && !approved.exists());
}

#[test]
fn request_from_another_working_directory_is_refused_77() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let marker = st.marker("m");
    let id = st.file(one.path(), &marker);
    st.approve(&id, &st.alice);
    let two = st.runner(&policy);
    let mut c = st.gate(two.path(), &st.erin);
    c.current_dir(two.path())
        .args(["--request", &id, "--", "touch"])
        .arg(&marker);
    let r = Ran::of(c);
    r.status(77).stderr_contains("another command");
    assert!(!marker.exists());
}

#[test]
fn request_of_another_requester_is_refused_77() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let marker = st.marker("m");
    let id = st.file(one.path(), &marker);
    st.approve(&id, &st.alice);
    // bob holds his own token and the id (ids are not secrets): the approval is erin's.
    let two = st.runner(&policy);
    let r = st.redeem(two.path(), &st.bob, &id, &[], &marker);
    r.status(77).stderr_contains("not by bob");
    assert!(!marker.exists());
}

#[test]
fn pending_request_exits_75_with_the_wait_hint_and_wait_runs_once_approved() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let marker = st.marker("m");
    let id = st.file(one.path(), &marker);
    let two = st.runner(&policy);
    let r = st.redeem(two.path(), &st.erin, &id, &[], &marker);
    r.status(75)
        .stderr_contains("still pending")
        .stderr_contains("--wait");
    assert!(!marker.exists());
    assert_eq!(last_decision(two.path())["decision"]["outcome"], "pending");

    // `--wait`: blocks until an approver decides, then runs.
    let mut c = st.gate(two.path(), &st.erin);
    c.args([
        "--request",
        &id,
        "--wait",
        "--timeout",
        "30s",
        "--",
        "touch",
    ])
    .arg(&marker);
    let w = common::process::spawn(c);
    // Approved while it waits, or just before it asks: either way it runs on the approval.
    std::thread::sleep(Duration::from_millis(300));
    st.approve(&id, &st.alice);
    let r = w.finish(Duration::from_secs(30));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(marker.exists());
}

#[test]
fn denied_request_is_refused_77() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let marker = st.marker("m");
    let id = st.file(one.path(), &marker);
    let (s, v) = st.call("POST", &format!("/v1/requests/{id}/deny"), &st.alice);
    assert_eq!(s, 200, "{v}");
    let two = st.runner(&policy);
    let r = st.redeem(two.path(), &st.erin, &id, &[], &marker);
    r.status(77).stderr_contains("denied by alice");
    assert!(!marker.exists());
}

#[test]
fn expired_request_exits_75_and_says_to_file_a_new_one() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let one = st.runner(&policy);
    let marker = st.marker("m");
    let mut c = st.gate(one.path(), &st.erin);
    c.args(["--no-wait", "--timeout", "1s", "--", "touch"])
        .arg(&marker);
    let r = Ran::of(c);
    r.status(75);
    let id = r.stdout.trim().to_owned();
    // The server expires it (its sweep); approving it then is refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = st.call("GET", &format!("/v1/requests/{id}"), &st.alice);
        if v["status"] == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never expired: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let two = st.runner(&policy);
    let r = st.redeem(two.path(), &st.erin, &id, &[], &marker);
    r.status(75)
        .stderr_contains("expired")
        .stderr_contains("--no-wait");
    assert!(!marker.exists());
}

#[test]
fn request_that_does_not_exist_is_refused_77_and_a_malformed_id_is_a_usage_error() {
    let st = Stage::new(SERVER_POLICY);
    let policy = st.policy("");
    let two = st.runner(&policy);
    let marker = st.marker("m");
    let r = st.redeem(
        two.path(),
        &st.erin,
        "01900000-0000-7000-8000-000000000000",
        &[],
        &marker,
    );
    r.status(77).stderr_contains("no request");
    for bad in [
        "../../etc",
        "0190",
        "01900000-0000-7000-8000-00000000000Z",
        "",
    ] {
        let r = st.redeem(two.path(), &st.erin, bad, &[], &marker);
        r.status(2).stderr_contains("not a request id");
    }
    assert!(!marker.exists());
}

#[test]
fn no_wait_and_request_on_the_local_spool_are_configuration_errors() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(
        h.join("policy.yaml"),
        "version: 1\nrules:\n  - name: t\n    match: { program: touch }\n    decision: approve\n",
    )
    .unwrap();
    let marker = h.join("m");
    for args in [
        vec!["--no-wait".to_owned()],
        vec![
            "--request".to_owned(),
            "01900000-0000-7000-8000-000000000000".to_owned(),
        ],
    ] {
        let mut c = common::gate_in(h);
        c.arg("--policy")
            .arg(h.join("policy.yaml"))
            .args(&args)
            .args(["--", "touch"])
            .arg(&marker);
        let r = Ran::of(c);
        r.status(78).stderr_contains("kind: server");
        assert!(!marker.exists());
    }
}

#[test]
fn attack_an_approval_not_signed_by_the_pinned_key_runs_nothing() {
    let st = Stage::new(SERVER_POLICY);
    let one = st.runner(&st.policy(""));
    let marker = st.marker("m");
    let id = st.file(one.path(), &marker);
    st.approve(&id, &st.alice);
    // Stage 2's policy pins another key (this runner's own host key): the server's answer of
    // `approved` is then unproven, whatever it says.
    let two = tempfile::tempdir().unwrap();
    let mut c = common::gate_in(two.path());
    c.args(["log", "key"]);
    let k = Ran::of(c);
    let other = k.stdout.trim().to_owned();
    assert!(other.starts_with("gate/"), "{other}");
    let policy = st.policy("").replace(&st.key, &other);
    std::fs::write(two.path().join("policy.yaml"), policy).unwrap();
    let r = st.redeem(two.path(), &st.erin, &id, &[], &marker);
    r.status(75).stderr_contains("refusing to run");
    assert!(
        !marker.exists(),
        "ran on an approval the pinned key did not sign"
    );
    assert_eq!(last_decision(two.path())["decision"]["run"], false);
}
