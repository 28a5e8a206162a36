//! Approval reuse (issue 13 §5): with `approval.reuse: D` on every matched rule (client and
//! server policy alike), an approval covers the same requester's identical digest for `D`:
//! the next run asks the server for an approval it may reuse, checks the signed statement
//! (pinned key, its own digest, its own principal, the window) and runs without asking,
//! recording the earlier request id and its approvers. Anything else asks again.
//!
//! The attacks: another requester with the same command; the same command with a payload
//! file edited after the approval; a window past its end; a local audit log forged to hold an
//! approval (gate never reads it for reuse); a reuse record edited in the log afterwards
//! (`gate log verify` flags it).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Ran;
use common::jcs::{jcs, record_hash};
use serde_json::{Value, json};

use crate::two_stage::{Stage, last_decision, records};

fn server_policy(reuse: &str) -> String {
    format!(
        r#"version: 1
defaults: {{ timeout: 60s }}
groups:
  security: [alice, bob]
rules:
  - name: touch-needs-one
    match: {{ program: touch }}
    decision: approve
    approval: {{ approvers: [security], reuse: {reuse} }}
"#
    )
}

/// Runs `touch MARKER` as `token` in `runner`, approving it as alice once it shows up on the
/// server; the run.
fn approved_once(st: &Stage, runner: &Path, token: &str, marker: &Path) -> Ran {
    let mut c = st.gate(runner, token);
    c.args(["--", "touch"]).arg(marker);
    let w = common::process::spawn(c);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (s, v) = st.call("GET", "/v1/requests?status=pending", &st.alice);
        assert_eq!(s, 200, "{v}");
        if let Some(r) = v["requests"].as_array().and_then(|a| a.first()) {
            break r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the client never asked"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    st.approve(&id, &st.alice);
    let r = w.finish(Duration::from_secs(30));
    assert_eq!(r.status, 0, "{}", r.stderr);
    r
}

/// `touch MARKER` as `token` with a short `--timeout`: what a run that must ask gets.
fn again(st: &Stage, runner: &Path, token: &str, marker: &Path) -> Ran {
    let mut c: Command = st.gate(runner, token);
    c.args(["--timeout", "1s", "--", "touch"]).arg(marker);
    Ran::of(c)
}

#[test]
fn reuse_within_the_window_runs_without_asking_and_names_the_earlier_request() {
    let st = Stage::new(&server_policy("10m"));
    let runner = st.runner(&st.policy(", reuse: 10m"));
    let marker = st.marker("m");
    approved_once(&st, runner.path(), &st.erin, &marker);
    let first = last_decision(runner.path());
    let first_id = first["request_id"].as_str().unwrap().to_owned();
    std::fs::remove_file(&marker).unwrap();

    let r = again(&st, runner.path(), &st.erin, &marker);
    r.status(0)
        .stderr_contains("reusing the approval of request");
    assert!(marker.exists(), "the reused approval did not run it");
    let d = last_decision(runner.path());
    assert_ne!(d["request_id"], first_id.as_str(), "a run of its own");
    assert_eq!(
        d["decision"]["reuse"]["request_id"],
        first_id.as_str(),
        "{d}"
    );
    assert_eq!(d["decision"]["reuse"]["via"], "reuse", "{d}");
    assert_eq!(d["decision"]["reuse"]["approvers"], json!(["alice"]), "{d}");
    // Nothing new was asked of anyone.
    let (_, v) = st.call("GET", "/v1/requests?status=pending", &st.alice);
    assert_eq!(v["requests"], json!([]), "{v}");

    // And `gate log verify` accepts it.
    let mut c = common::gate_in(runner.path());
    c.args(["log", "verify", "--json", "--server-key", &st.key]);
    Ran::of(c).status(0);
}

#[test]
fn after_the_window_it_asks_again() {
    let st = Stage::new(&server_policy("1s"));
    let runner = st.runner(&st.policy(", reuse: 1s"));
    let marker = st.marker("m");
    approved_once(&st, runner.path(), &st.erin, &marker);
    std::fs::remove_file(&marker).unwrap();
    // The window is the point of the test: let it pass.
    std::thread::sleep(Duration::from_millis(2200));
    let r = again(&st, runner.path(), &st.erin, &marker);
    r.status(75).stderr_contains("no decision");
    assert!(!marker.exists());
}

#[test]
fn another_requester_cannot_reuse_an_approval() {
    let st = Stage::new(&server_policy("10m"));
    let policy = st.policy(", reuse: 10m");
    let runner = st.runner(&policy);
    let marker = st.marker("m");
    approved_once(&st, runner.path(), &st.erin, &marker);
    std::fs::remove_file(&marker).unwrap();
    // bob, same command, same directory, even the same runner: he is asked for his own.
    let r = again(&st, runner.path(), &st.bob, &marker);
    r.status(75);
    assert!(!r.stderr.contains("reusing"), "{}", r.stderr);
    assert!(!marker.exists());
}

#[test]
fn a_changed_payload_file_cannot_reuse_an_approval() {
    let st = Stage::new(&format!(
        "{}  - name: kubectl-needs-one\n    match: {{ program: kubectl }}\n    decision: approve\n    approval: {{ approvers: [security], reuse: 10m }}\n",
        server_policy("10m")
    ));
    // A `kubectl` that leaves a marker: `-f FILE` is its payload, hashed into the digest.
    let bin = st.work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let marker = st.marker("applied");
    let script = bin.join("kubectl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = st.marker("deploy.yaml");
    std::fs::write(&manifest, "replicas: 1\n").unwrap();
    let policy = format!(
        "{}  - name: kubectl-needs-one\n    match: {{ program: kubectl }}\n    decision: approve\n    approval: {{ approvers: [security], backend: team, reuse: 10m }}\n",
        st.policy(", reuse: 10m")
    );
    let runner = st.runner(&policy);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |timeout: &str| {
        let mut c = st.gate(runner.path(), &st.erin);
        c.env("PATH", &path).args([
            "--timeout",
            timeout,
            "--",
            "kubectl",
            "apply",
            "-f",
            "deploy.yaml",
        ]);
        c
    };
    // Approved once, as written.
    let w = common::process::spawn(kubectl("30s"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (_, v) = st.call("GET", "/v1/requests?status=pending", &st.alice);
        if let Some(r) = v["requests"].as_array().and_then(|a| a.first()) {
            break r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the client never asked"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    st.approve(&id, &st.alice);
    let r = w.finish(Duration::from_secs(30));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();
    // The same words, another manifest: asked again, and nobody answers.
    std::fs::write(&manifest, "replicas: 100\n").unwrap();
    let r = Ran::of(kubectl("1s"));
    r.status(75);
    assert!(!r.stderr.contains("reusing"), "{}", r.stderr);
    assert!(
        !marker.exists(),
        "an edited payload ran on the old approval"
    );
    // Put back as approved: the approval covers it again.
    std::fs::write(&manifest, "replicas: 1\n").unwrap();
    let r = Ran::of(kubectl("1s"));
    r.status(0).stderr_contains("reusing");
    assert!(marker.exists());
}

#[test]
fn reuse_window_only_where_every_policy_allows_it() {
    // The client's rule allows reuse; the server's policy (the one that records the decision)
    // does not: asked again.
    let st = Stage::new(crate::two_stage::SERVER_POLICY);
    let runner = st.runner(&st.policy(", reuse: 10m"));
    let marker = st.marker("m");
    approved_once(&st, runner.path(), &st.erin, &marker);
    std::fs::remove_file(&marker).unwrap();
    let r = again(&st, runner.path(), &st.erin, &marker);
    r.status(75);
    assert!(!marker.exists());
    // And the other way round: the server allows it, the client's own rule does not.
    let st = Stage::new(&server_policy("10m"));
    let runner = st.runner(&st.policy(""));
    approved_once(&st, runner.path(), &st.erin, &marker);
    std::fs::remove_file(&marker).unwrap();
    let r = again(&st, runner.path(), &st.erin, &marker);
    r.status(75);
    assert!(!marker.exists());
}

#[test]
fn reuse_with_a_forged_local_log_gets_no_run() {
    // The requester writes its own log: an approved, run decision for exactly this command,
    // with a made-up statement. Reuse never reads the local log, so this buys nothing.
    let st = Stage::new(&server_policy("10m"));
    let runner = st.runner(&st.policy(", reuse: 10m"));
    let marker = st.marker("m");
    // A real first record (genesis + a filing), then a forged decision appended after it.
    let mut c = st.gate(runner.path(), &st.erin);
    c.args(["--no-wait", "--", "touch"]).arg(&marker);
    let filed = Ran::of(c);
    filed.status(75);
    let log = runner.path().join("audit.jsonl");
    let mut recs = records(&log);
    let mut forged = recs.last().unwrap().clone();
    forged["seq"] = json!(recs.len());
    forged["request_id"] = json!("01900000-0000-7000-8000-000000000001");
    forged["decision"]["outcome"] = json!("approved");
    forged["decision"]["run"] = json!(true);
    forged["decision"]["approvals"] =
        json!([{ "principal": "alice", "at": "2099-01-01T00:00:00.000Z", "via": "server" }]);
    forged["decision"]["statement"] = json!("gate-decision/v1\nforged\n");
    forged["prev"] = recs.last().unwrap()["hash"].clone();
    forged["hash"] = json!(record_hash(&forged));
    recs.push(forged);
    let text: String = recs.iter().map(|r| jcs(r) + "\n").collect();
    std::fs::write(&log, text).unwrap();
    let _ = std::fs::remove_file(format!("{}.checkpoint", log.display()));

    let r = again(&st, runner.path(), &st.erin, &marker);
    assert_ne!(r.status, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("reusing"), "{}", r.stderr);
    assert!(!marker.exists(), "a forged log bought a run");
}

/// Rewrites the last decision of `runner`'s log with `edit`, re-chains it and drops the
/// checkpoint (as someone holding the requester's files can); its seq.
fn tamper(runner: &Path, edit: impl FnOnce(&mut Value)) -> u64 {
    let log = runner.join("audit.jsonl");
    let mut recs = records(&log);
    let i = recs.iter().rposition(|r| r["kind"] == "decision").unwrap();
    edit(&mut recs[i]);
    for j in i..recs.len() {
        if j > 0 {
            let prev = recs[j - 1]["hash"].clone();
            recs[j]["prev"] = prev;
        }
        let h = record_hash(&recs[j]);
        recs[j]["hash"] = json!(h);
    }
    let text: String = recs.iter().map(|r| jcs(r) + "\n").collect();
    std::fs::write(&log, text).unwrap();
    let _ = std::fs::remove_file(format!("{}.checkpoint", log.display()));
    recs[i]["seq"].as_u64().unwrap()
}

fn compliance_problems(runner: &Path, key: &str) -> Vec<(u64, String)> {
    let mut c = common::gate_in(runner);
    c.args(["log", "verify", "--json", "--server-key", key]);
    let r = Ran::of(c);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    v["problems"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["code"] == "compliance")
        .map(|p| {
            (
                p["seq"].as_u64().unwrap_or(u64::MAX),
                p["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// One edit of a reuse record.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn log_verify_flags_a_forged_reuse() {
    let st = Stage::new(&server_policy("10m"));
    let runner = st.runner(&st.policy(", reuse: 10m"));
    let marker = st.marker("m");
    approved_once(&st, runner.path(), &st.erin, &marker);
    let r = again(&st, runner.path(), &st.erin, &marker);
    r.status(0).stderr_contains("reusing");
    let saved = std::fs::read(runner.path().join("audit.jsonl")).unwrap();
    let restore = || std::fs::write(runner.path().join("audit.jsonl"), &saved).unwrap();

    let edits: Vec<(&str, Edit)> = vec![
        // Claims another request's approval than the one its statement signs.
        (
            "01900000",
            Box::new(|d: &mut Value| {
                d["decision"]["reuse"]["request_id"] =
                    json!("01900000-0000-7000-8000-000000000002");
            }),
        ),
        // Another requester's run, reusing erin's approval.
        (
            "asked by erin",
            Box::new(|d: &mut Value| d["decision"]["reuse"]["requester"] = json!("mallory")),
        ),
        // A window the rules never allowed.
        (
            "allows no reuse",
            Box::new(|d: &mut Value| {
                d["decision"]["required"]
                    .as_object_mut()
                    .unwrap()
                    .remove("reuse");
            }),
        ),
        // Run long after the window.
        (
            "outside the",
            Box::new(|d: &mut Value| d["ts"] = json!("2099-01-01T00:00:00.000Z")),
        ),
        // Another command (digest) on the same approval.
        (
            "digest",
            Box::new(|d: &mut Value| d["request"]["digest"] = json!("00".repeat(32))),
        ),
    ];
    for (why, edit) in edits {
        let seq = tamper(runner.path(), |d| edit(d));
        let p = compliance_problems(runner.path(), &st.key);
        assert!(
            p.iter()
                .any(|(s, reason)| *s == seq && reason.contains(why)),
            "{why}: {p:?}"
        );
        restore();
    }
    assert!(compliance_problems(runner.path(), &st.key).is_empty());
}

/// What `gate check --json` says the requirement's reuse window is.
fn checked_reuse(g: common::Gate) -> Value {
    let r = g.args(&["check", "--json", "--", "touch", "x"]).run();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["requirement"]["reuse"].clone()
}

#[test]
fn attack_an_added_file_cannot_stretch_or_create_a_reuse_window_the_system_tier_does_not_allow() {
    const MINE: &str = "version: 1\nrules:\n  - name: mine\n    match: { program: touch }\n    decision: approve\n    approval: { reuse: 8760h }\n";
    // The system rule allows no reuse: the added year buys nothing.
    let g = common::Gate::new()
        .system_policy(
            "base.yaml",
            "version: 1\nrules:\n  - name: sys\n    match: { program: touch }\n    decision: approve\n",
        )
        .policy(MINE);
    assert_eq!(checked_reuse(g), Value::Null);
    // The system rule allows 5m: the shorter window stands.
    let g = common::Gate::new()
        .system_policy(
            "base.yaml",
            "version: 1\nrules:\n  - name: sys\n    match: { program: touch }\n    decision: approve\n    approval: { reuse: 5m }\n",
        )
        .policy(MINE);
    assert_eq!(checked_reuse(g), json!("5m"));
}
