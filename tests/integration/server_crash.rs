//! The server killed at each point of the approve path (issue 10): a crash point
//! (`GATE_SERVER_CRASH_AT`, compiled into debug builds only) aborts `gate serve` exactly there,
//! as `kill -9` would; a restart on the same database and log must then hold what it held:
//! the log verifies, an approval acknowledged with 200 is in the log, a request the database
//! calls approved has every approval that decided it in the log — before the event that says
//! "approved" — and no request is approved that the log does not show approved.

use crate::common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const POLICY: &str = "version: 1
groups:
  ops: [ann, bob, cy]
rules:
  - name: two-of-ops
    match: {program: deploy}
    decision: approve
    approval: {approvers: [ops], min_approvals: 2}
";

struct Server {
    child: Option<std::process::Child>,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(home: &Path, crash_at: Option<&str>) -> Server {
    let mut c = common::gate_in(home);
    if let Some(p) = crash_at {
        c.env("GATE_SERVER_CRASH_AT", p);
    }
    let (s, _, _) = common::serve_in(c, home, POLICY, "127.0.0.1:0");
    Server {
        url: format!("http://{}", s.addr),
        child: Some(s.child),
    }
}

fn token(home: &Path, principal: &str) -> String {
    let mut c = common::gate_in(home);
    c.args(["serve", "token", "issue", "--principal", principal, "--db"])
        .arg(home.join("server.db"));
    let r = c.output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8(r.stdout).unwrap().trim().to_owned()
}

/// The call's status and body, or None when the connection broke (the server died).
fn call(
    url: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let http = reqwest::blocking::Client::new();
    let mut r = http
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().ok()?;
    let status = r.status().as_u16();
    let text = r.text().ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn digest_of(argv: &[&str]) -> String {
    use sha2::Digest;
    let doc = json!({"argv": argv, "cwd": "/", "env": {}, "payload": []});
    hex::encode(sha2::Sha256::digest(
        gate::jcs::canonicalize(&doc).unwrap().as_bytes(),
    ))
}

/// The events of the server log for `id` that took effect, as (type, principal, status) in
/// log order: events a later `void` event names are left out.
fn events(log: &Path, id: &str) -> Vec<(String, String, String)> {
    let records: Vec<Value> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "event" && r["request_id"] == id)
        .collect();
    let voided: Vec<u64> = records
        .iter()
        .filter(|r| r["event"]["type"] == "void")
        .filter_map(|r| r["event"]["voids"].as_u64())
        .collect();
    records
        .iter()
        .filter(|r| r["event"]["type"] != "void" && !voided.contains(&r["seq"].as_u64().unwrap()))
        .map(|r| {
            let e = &r["event"];
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["principal"].as_str().unwrap_or("").to_owned(),
                e["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Every approval the log counts is one the database holds, and the other way round.
fn log_matches_database(log: &Path, id: &str, v: &Value) {
    let mut logged: Vec<String> = events(log, id)
        .into_iter()
        .filter(|e| e.0 == "approval")
        .map(|e| e.1)
        .collect();
    let mut held: Vec<String> = v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    held.sort();
    assert_eq!(
        logged, held,
        "the log's approvals are not the database's: {v}"
    );
}

fn verify(home: &Path, log: &PathBuf) {
    let mut c = common::gate_in(home);
    c.args(["log", "verify"]).arg(log);
    let r = c.output().unwrap();
    assert!(
        r.status.success(),
        "the server log does not verify after the crash:\n{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}

/// Asserts the server aborted at its crash point (SIGABRT), waiting a little for it.
fn aborted(srv: &mut Server) {
    use std::os::unix::process::ExitStatusExt;
    let child = srv.child.as_mut().unwrap();
    for _ in 0..200 {
        if let Some(st) = child.try_wait().unwrap() {
            assert_eq!(
                st.signal(),
                Some(6),
                "the server ended without its crash: {st:?}"
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the server never reached its crash point");
}

/// Crashes the server at `point` while two approvers decide one request, restarts it, and
/// checks what the database and the log say.
fn crash_during_the_approvals(point: &str) {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let log = home.join("server-audit.jsonl");
    let mut srv = start(home, Some(point));
    let [erin, ann, bob] = ["erin", "ann", "bob"].map(|p| token(home, p));
    let argv = ["deploy", "prod"];
    let mut acked = Vec::new();
    let created = call(
        &srv.url,
        "POST",
        "/v1/requests",
        &erin,
        Some(json!({"argv": argv, "cwd": "/", "digest": digest_of(&argv)})),
    );
    let id = match created {
        Some((201, v)) => v["id"].as_str().unwrap().to_owned(),
        Some(other) => panic!("create: {other:?}"),
        None => {
            // Crashed creating it: after a restart the log verifies and nothing is pending
            // that the log does not show.
            aborted(&mut srv);
            drop(srv);
            let srv = start(home, None);
            verify(home, &log);
            let (_, list) = call(&srv.url, "GET", "/v1/requests", &erin, None).unwrap();
            let listed: Vec<String> = list["requests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            for id in &listed {
                assert!(
                    events(&log, id).iter().any(|e| e.0 == "request"),
                    "request {id} is in the database, not in the log"
                );
            }
            // And a request the log holds but the database lost is voided.
            let text = std::fs::read_to_string(&log).unwrap();
            for r in text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            {
                if r["event"]["type"] == "request" {
                    let id = r["request_id"].as_str().unwrap();
                    assert!(
                        listed.iter().any(|l| l == id) || events(&log, id).is_empty(),
                        "request {id} is logged, not in the database, and not voided"
                    );
                }
            }
            return;
        }
    };
    for who in [&ann, &bob] {
        match call(
            &srv.url,
            "POST",
            &format!("/v1/requests/{id}/approve"),
            who,
            None,
        ) {
            Some((200, v)) => acked.push(v["approvals"].as_array().unwrap().len()),
            Some(other) => panic!("approve: {other:?}"),
            None => break,
        }
    }
    aborted(&mut srv);
    drop(srv);

    let srv = start(home, None);
    verify(home, &log);
    let (_, v) = call(&srv.url, "GET", &format!("/v1/requests/{id}"), &erin, None).unwrap();
    let ev = events(&log, &id);
    assert_eq!(ev.first().map(|e| e.0.as_str()), Some("request"), "{ev:?}");
    log_matches_database(&log, &id, &v);
    // Every approval acknowledged with 200 is in the log.
    let logged: Vec<&str> = ev
        .iter()
        .filter(|e| e.0 == "approval")
        .map(|e| e.1.as_str())
        .collect();
    for (i, who) in ["ann", "bob"].iter().enumerate().take(acked.len()) {
        assert!(
            logged.contains(who),
            "{who}'s approval was acknowledged ({}), not logged: {ev:?}",
            acked[i]
        );
    }
    // What the database holds as decided, the log showed first, with its approvals before.
    if v["status"] == "approved" {
        let at = ev
            .iter()
            .position(|e| e.2 == "approved")
            .unwrap_or_else(|| panic!("approved in the database, never in the log: {ev:?}"));
        let before: std::collections::BTreeSet<&str> = ev[..=at]
            .iter()
            .filter(|e| e.0 == "approval")
            .map(|e| e.1.as_str())
            .collect();
        assert!(before.len() >= 2, "approved with {before:?} logged: {ev:?}");
    } else {
        assert_eq!(v["status"], "pending", "{v}");
        // The restarted server takes the missing approvals, and logs them in order.
        for who in [&ann, &bob] {
            let (st, _) = call(
                &srv.url,
                "POST",
                &format!("/v1/requests/{id}/approve"),
                who,
                None,
            )
            .unwrap();
            assert!(st == 200 || st == 409, "{st}");
        }
        let (_, v) = call(&srv.url, "GET", &format!("/v1/requests/{id}"), &erin, None).unwrap();
        assert_eq!(v["status"], "approved", "{v}");
        let ev = events(&log, &id);
        let last = ev.iter().rposition(|e| e.0 == "approval").unwrap();
        assert_eq!(ev[last].2, "approved", "{ev:?}");
        log_matches_database(&log, &id, &v);
        verify(home, &log);
    }
}

#[test]
fn killed_before_the_first_approval_is_logged() {
    crash_during_the_approvals("approval:before-log");
}

#[test]
fn killed_after_the_first_approval_is_logged_before_it_commits() {
    crash_during_the_approvals("approval:after-log");
}

#[test]
fn killed_after_the_first_approval_commits() {
    crash_during_the_approvals("approval:committed");
}

#[test]
fn killed_before_the_deciding_approval_is_logged() {
    crash_during_the_approvals("approval:before-log#2");
}

#[test]
fn killed_after_the_deciding_approval_is_logged_before_it_commits() {
    crash_during_the_approvals("approval:after-log#2");
}

#[test]
fn killed_after_the_deciding_approval_commits() {
    crash_during_the_approvals("approval:committed#2");
}

#[test]
fn killed_while_recording_a_new_request() {
    crash_during_the_approvals("request:after-log");
}

#[test]
fn a_release_build_has_no_crash_points() {
    // The points are compiled only with debug assertions: the shipped server cannot be
    // stopped through its environment.
    let src = include_str!("../../src/server/crash.rs");
    assert!(
        src.contains("#[cfg(debug_assertions)]\n    {"),
        "crash points must stay debug-only"
    );
}

#[test]
fn concurrent_approvals_are_logged_in_commit_order() {
    // Two approvers race on each of 40 requests: in the log, the approval that left a request
    // pending always comes before the one that approved it, and each request has exactly two.
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let srv = start(home, None);
    let [erin, ann, bob] = ["erin", "ann", "bob"].map(|p| token(home, p));
    let ids: Vec<String> = (0..40)
        .map(|i| {
            let argv = ["deploy", &format!("svc-{i}")];
            let argv: Vec<&str> = argv.iter().map(|s| s.as_ref()).collect();
            let (st, v) = call(
                &srv.url,
                "POST",
                "/v1/requests",
                &erin,
                Some(json!({"argv": argv, "cwd": "/", "digest": digest_of(&argv)})),
            )
            .unwrap();
            assert_eq!(st, 201, "{v}");
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    std::thread::scope(|s| {
        for who in [&ann, &bob] {
            let (ids, url) = (&ids, &srv.url);
            s.spawn(move || {
                for id in ids {
                    let (st, v) = call(
                        url,
                        "POST",
                        &format!("/v1/requests/{id}/approve"),
                        who,
                        None,
                    )
                    .unwrap();
                    assert_eq!(st, 200, "{v}");
                }
            });
        }
    });
    let log = home.join("server-audit.jsonl");
    verify(home, &log);
    for id in &ids {
        let statuses: Vec<String> = events(&log, id)
            .into_iter()
            .filter(|e| e.0 == "approval")
            .map(|e| e.2)
            .collect();
        assert_eq!(statuses, ["pending", "approved"], "request {id}");
    }
}

/// One server event to write: (type, principal, status, needed, voids).
type Ev<'a> = (&'a str, Option<&'a str>, &'a str, Option<u32>, Option<u64>);

/// A server log written with `events`.
fn server_log(home: &Path, events: &[Ev<'_>]) -> PathBuf {
    use gate::audit::record::EventInfo;
    use gate::audit::{AuditLog, Body};
    let path = home.join("server-audit.jsonl");
    let log = AuditLog::new(&path).with_key(home.join("server.key"));
    let bodies = events
        .iter()
        .map(|(kind, who, status, needed, voids)| Body::Event {
            request_id: "0190a000-0000-7000-8000-000000000001".into(),
            request: None,
            event: EventInfo {
                kind: (*kind).into(),
                principal: who.map(Into::into),
                status: (*status).into(),
                comment: None,
                needed: *needed,
                voids: *voids,
            },
        })
        .collect();
    log.append(bodies).unwrap();
    path
}

fn verify_output(home: &Path, log: &Path) -> (i32, String) {
    let mut c = common::gate_in(home);
    c.args(["log", "verify"]).arg(log);
    let r = c.output().unwrap();
    (
        r.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        ),
    )
}

#[test]
fn a_server_log_missing_an_approval_event_is_not_intact() {
    // The chain is whole — the server never wrote the first approval — but the request it
    // approved needed two: verify names it as a compliance violation, exit 1.
    let home = tempfile::tempdir().unwrap();
    let log = server_log(
        home.path(),
        &[
            ("request", Some("erin"), "pending", Some(2), None),
            ("approval", Some("bob"), "approved", None, None),
        ],
    );
    let (code, out) = verify_output(home.path(), &log);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("compliance"), "{out}");
    assert!(out.contains("approved with 1 of the 2 approvals"), "{out}");
}

#[test]
fn a_voided_approval_does_not_make_up_the_count() {
    let home = tempfile::tempdir().unwrap();
    // seq 0 is the genesis: ann's approval is seq 2, voided at seq 4.
    let bad = server_log(
        home.path(),
        &[
            ("request", Some("erin"), "pending", Some(2), None),
            ("approval", Some("ann"), "pending", None, None),
            ("approval", Some("bob"), "approved", None, None),
        ],
    );
    let (code, out) = verify_output(home.path(), &bad);
    assert_eq!(code, 0, "{out}");
    let home = tempfile::tempdir().unwrap();
    let log = server_log(
        home.path(),
        &[
            ("request", Some("erin"), "pending", Some(2), None),
            ("approval", Some("ann"), "pending", None, None),
            ("void", None, "pending", None, Some(2)),
            ("approval", Some("bob"), "approved", None, None),
        ],
    );
    let (code, out) = verify_output(home.path(), &log);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("approved with 1 of the 2 approvals"), "{out}");
}
