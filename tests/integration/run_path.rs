//! The run form end to end, against the real binary: the exit-status table of DESIGN §3 row by
//! row, the audit records every run leaves (DESIGN §8, checked with an independent JCS +
//! SHA-256), redaction and context capture, stdio pass-through, signal forwarding, `--json`,
//! concurrent appends, and `confirm` with and without a terminal.

use crate::common;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{poll, spawn, spawn_with_stdin};
use common::{Gate, Ran};
use serde_json::Value;
use sha2::{Digest, Sha256};

const POLICY: &str = r#"version: 1
groups: { sre: [gt-alice, gt-bob, gt-carol] }
context: { env: [GATE_ENV], redact: ['(?i)(password|token|secret)=\S+'] }
rules:
  - name: two
    match: { program: echo, args: [two] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 2, timeout: 30s }
  - name: nope
    match: { program: rm, regex: '(^|\s)-\w*r\w*\s+/(\s|$)' }
    decision: deny
    message: refusing to remove /
  - name: conf
    match: { program: touch, args: [confirm-me] }
    decision: confirm
"#;

const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn gate() -> Gate {
    Gate::new().policy(POLICY)
}

/// The approvers POLICY names, as OS users: a waiting gate fails at once when no eligible
/// approver exists here, and these tests wait (for a timeout) on purpose.
fn approvers_exist() {
    common::users::ensure(&["gt-alice", "gt-bob", "gt-carol"], "run_path");
}

// ---------------------------------------------------------------------------------------------
// An independent RFC 8785 (JCS) for records that hold no floats: object members sorted by
// their UTF-16 code units, no whitespace, strings escaped as serde_json does (which matches JCS:
// \b \f \n \r \t \" \\ short forms, other controls as \u00xx lowercase, nothing else escaped).

fn jcs(v: &Value) -> String {
    let mut out = String::new();
    write_jcs(v, &mut out);
    out
}

fn write_jcs(v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => {
            out.push_str(&serde_json::to_string(v).unwrap())
        }
        Value::Number(n) => {
            assert!(
                n.is_i64() || n.is_u64(),
                "records must not hold floating-point numbers, found {n}"
            );
            out.push_str(&n.to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_jcs(&map[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the whole log file the way an auditor would, and returns its records.
#[track_caller]
fn verify_chain(g: &Gate) -> Vec<Value> {
    let text = std::fs::read_to_string(g.path("audit.jsonl")).expect("the audit log exists");
    assert!(text.ends_with('\n'), "the log ends with a newline");
    let mut prev = GENESIS_PREV.to_owned();
    let mut log_id = None;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let rec: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i}: {e}"));
        assert_eq!(line, jcs(&rec), "line {i} is not written in canonical form");
        assert_eq!(rec["v"], 1, "line {i}: v");
        assert_eq!(
            rec["seq"], i as u64,
            "line {i}: seq is not contiguous from 0"
        );
        assert_eq!(
            rec["prev"],
            prev.as_str(),
            "line {i}: prev does not link to the record before"
        );
        let id = rec["log_id"].as_str().expect("log_id").to_owned();
        assert_eq!(id.len(), 32, "log_id is 128-bit hex");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            log_id.get_or_insert(id.clone()),
            &id,
            "line {i}: log_id changed"
        );
        let kind = rec["kind"].as_str().expect("kind");
        assert_eq!(
            kind == "genesis",
            i == 0,
            "line {i}: genesis exactly at seq 0"
        );
        let ts = rec["ts"].as_str().expect("ts");
        assert!(
            ts.ends_with('Z') && ts.len() == 24,
            "line {i}: ts {ts} is RFC 3339 UTC with ms"
        );
        let mut unhashed = rec.clone();
        let hash = unhashed
            .as_object_mut()
            .unwrap()
            .remove("hash")
            .expect("every record has a hash");
        let hash = hash.as_str().expect("hash is a string").to_owned();
        assert_eq!(
            hash,
            sha256_hex(jcs(&unhashed).as_bytes()),
            "line {i}: hash does not match the record"
        );
        prev = hash;
        records.push(rec);
    }
    records
}

fn decisions(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["kind"] == "decision").collect()
}

fn result_of<'a>(records: &'a [Value], request_id: &str) -> Option<&'a Value> {
    records
        .iter()
        .find(|r| r["kind"] == "result" && r["request_id"] == request_id)
}

/// The single decision record in the log and the result record for the same request (if any),
/// checking that the decision comes first.
#[track_caller]
fn only_run(g: &Gate) -> (Value, Option<Value>) {
    let records = verify_chain(g);
    let d = decisions(&records);
    assert_eq!(d.len(), 1, "one decision record expected: {records:#?}");
    let d = d[0].clone();
    let id = d["request"]["id"].as_str().expect("request id").to_owned();
    assert_eq!(
        d["request_id"],
        id.as_str(),
        "decision record names its request"
    );
    let r = result_of(&records, &id).cloned();
    if let Some(r) = &r {
        assert!(
            r["seq"].as_u64() > d["seq"].as_u64(),
            "the result is recorded after the decision"
        );
    }
    (d, r)
}

#[test]
fn the_chain_checker_catches_tampering() {
    // The checker above is what the record tests lean on; show that it can fail.
    let g = gate().args(&["--", "echo", "original"]);
    g.run().status(0);
    verify_chain(&g);
    let log = g.path("audit.jsonl");
    let good = std::fs::read_to_string(&log).unwrap();
    for bad in [
        good.replacen("original", "0riginal", 1),
        good.lines()
            .filter(|l| !l.contains("\"kind\":\"decision\""))
            .map(|l| format!("{l}\n"))
            .collect(),
        good.replacen("{\"", "{ \"", 1),
    ] {
        assert_ne!(bad, good);
        std::fs::write(&log, &bad).unwrap();
        let caught = std::panic::catch_unwind(|| verify_chain(&g));
        assert!(caught.is_err(), "tampered log passed:\n{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Process helpers.

#[track_caller]
fn wait_for_file(path: &std::path::Path) {
    poll(&format!("{} to appear", path.display()), || {
        path.exists().then_some(())
    });
}

/// `gate ARGS` with no controlling terminal (a new session) and stdin from /dev/null.
fn detached(g: &Gate, args: &[&str]) -> Ran {
    let c = g.command();
    let mut s = Command::new("setsid");
    s.arg("-w").arg(c.get_program()).args(args);
    s.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    s.current_dir(g.dir.path());
    spawn(s).finish(Duration::from_secs(30))
}

// ---------------------------------------------------------------------------------------------
// Exit-status table (DESIGN §3), row by row.

#[test]
fn allowed_command_exit_status_passes_through() {
    let g = gate().args(&["--", "sh", "-c", "exit 0"]);
    g.run().status(0);
    let g = gate().args(&["--", "sh", "-c", "exit 3"]);
    g.run().status(3);
    let (d, r) = only_run(&g);
    assert_eq!(d["decision"]["decision"], "allow");
    assert_eq!(d["decision"]["outcome"], "allowed");
    assert_eq!(d["decision"]["run"], true);
    let r = r.expect("a result record");
    assert_eq!(r["result"]["exit_code"], 3);
    assert!(r["result"]["signal"].is_null(), "{r}");
    assert!(r["result"]["duration_ms"].is_u64());
}

#[test]
fn killed_by_signal_exits_128_plus_n() {
    let g = gate().args(&["--", "sh", "-c", "kill -TERM $$"]);
    g.run().status(143);
    let (_, r) = only_run(&g);
    let r = r.expect("a result record");
    assert_eq!(r["result"]["signal"], 15, "{r}");
    assert!(r["result"]["exit_code"].is_null(), "{r}");

    let g = gate().args(&["--", "sh", "-c", "kill -KILL $$"]);
    g.run().status(137);
}

#[test]
fn denied_by_policy_exits_77_naming_rule_and_message_and_does_not_run() {
    let marker = "/"; // `rm -rf /` must never run; the deny rule is all that stands in the way.
    let g = gate().args(&["--", "rm", "-rf", marker]);
    let ran = g.run();
    ran.status(77)
        .stderr_contains("nope")
        .stderr_contains("refusing to remove /");
    let (d, r) = only_run(&g);
    assert_eq!(d["decision"]["decision"], "deny");
    assert_eq!(d["decision"]["outcome"], "denied");
    assert_eq!(d["decision"]["run"], false);
    assert_eq!(d["decision"]["rules"][0]["name"], "nope");
    assert_eq!(d["decision"]["rules"][0]["decision"], "deny");
    assert!(
        d["decision"]["message"]
            .as_str()
            .unwrap()
            .contains("refusing to remove /"),
        "{d}"
    );
    assert!(r.is_none(), "a denied command has no result record");
}

#[test]
fn denied_command_really_does_not_run() {
    let g = Gate::new()
        .policy(
            "version: 1\nrules:\n  - name: no-touch\n    match: { program: touch }\n    decision: deny\n",
        )
        .args(&["--", "touch", "marker"]);
    g.run().status(77).stderr_contains("no-touch");
    assert!(!g.path("marker").exists(), "the denied command ran");
}

#[test]
fn confirm_without_terminal_is_refused_77_even_with_yes_on_stdin() {
    let g = gate();
    let ran = detached(&g, &["--", "touch", "confirm-me"]);
    ran.status(77)
        .stderr_contains("`conf`")
        .stderr_contains("no terminal");
    assert!(
        !g.path("confirm-me").exists(),
        "the unconfirmed command ran"
    );

    // Piped input cannot answer for a human: `yes` on stdin is not a confirmation.
    let g = gate().stdin(b"yes\n").args(&["--", "touch", "confirm-me"]);
    let c = g.command();
    let mut s = Command::new("setsid");
    s.arg("-w")
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    s.current_dir(g.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = s.spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"yes\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !g.path("confirm-me").exists(),
        "stdin confirmed for a human"
    );

    let (d, r) = only_run(&g);
    assert_eq!(d["decision"]["decision"], "confirm");
    assert_eq!(d["decision"]["outcome"], "refused");
    assert_eq!(d["decision"]["run"], false);
    assert!(r.is_none());
}

#[test]
fn approve_timeout_exits_75_and_records_timed_out() {
    approvers_exist();
    let g = gate().args(&["--timeout", "1s", "--", "echo", "two"]);
    let started = Instant::now();
    let ran = g.run();
    // The 1 s of `--timeout`, not the policy's 15 min, is what it waited for.
    ran.status(75).stderr_contains("no decision within 1s");
    assert!(
        !ran.stdout.contains("two"),
        "the unapproved command ran: {}",
        ran.stdout
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "gave up before the timeout"
    );
    let (d, r) = only_run(&g);
    assert_eq!(d["decision"]["decision"], "approve");
    assert_eq!(d["decision"]["outcome"], "timed_out");
    assert_eq!(d["decision"]["run"], false);
    assert!(r.is_none());
    // The spool entry is gone once nobody waits for it.
    let spool = g.path("spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "spool entries left behind: {left:?}");
}

#[test]
fn not_found_exits_127_and_is_recorded() {
    let g = gate().args(&["--", "gate-test-no-such-program"]);
    g.run().status(127).stderr_contains("not found");
    let (d, r) = only_run(&g);
    assert_eq!(d["decision"]["outcome"], "allowed");
    let r = r.expect("a failed start still has a result record");
    assert_eq!(r["result"]["exit_code"], 127);
    assert!(r["result"]["error"].as_str().unwrap().contains("not found"));
}

#[test]
fn not_executable_exits_126() {
    let g = gate();
    let script = g.write("plain.sh", "#!/bin/sh\ntouch ran\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let g = g.args(&["--", "./plain.sh"]);
    g.run()
        .status(126)
        .stderr("error: `./plain.sh`: permission denied (not executable)\n");
    assert!(!g.path("ran").exists());
    let (_, r) = only_run(&g);
    assert_eq!(r.expect("result record")["result"]["exit_code"], 126);

    // Found on PATH but not executable, as a shell reports it.
    let g = gate();
    let bin = g.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = g.write("bin/gate-test-plain", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let g = g.env("PATH", &path).args(&["--", "gate-test-plain"]);
    g.run().status(126).stderr(&format!(
        "error: `{}`: permission denied (not executable)\n",
        p.display()
    ));
}

#[test]
fn no_command_is_a_usage_error() {
    let g = gate();
    let ran = g.run();
    ran.status(2).any_stderr();
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains("Usage"),
        "usage is shown: {}{}",
        ran.stdout,
        ran.stderr
    );
    assert!(
        !g.path("audit.jsonl").exists(),
        "nothing to record for a usage error"
    );
    // An unknown option is a usage error too.
    gate()
        .args(&["--no-such-option", "--", "true"])
        .run()
        .status(2)
        .stderr_contains("error: unexpected argument '--no-such-option' found");
}

#[test]
fn bad_policy_exits_78_and_runs_nothing() {
    let g = Gate::new()
        .policy(
            "version: 1\nrules:\n  - name: x\n    match: { program: touch }\n    decision: maybe\n",
        )
        .args(&["--", "touch", "marker"]);
    let ran = g.run();
    ran.status(78).stderr_contains("policy.yaml:5:");
    assert!(
        !g.path("marker").exists(),
        "the command ran under a broken policy"
    );
    assert!(g.records().is_empty(), "nothing ran, nothing to record");

    // A missing policy file named in GATE_POLICY is an error too, not "no policy".
    let g = gate()
        .env("GATE_POLICY", "/nonexistent/gate-policy.yaml")
        .args(&["--", "touch", "marker"]);
    g.run()
        .status(78)
        .stderr_contains("/nonexistent/gate-policy.yaml");
    assert!(!g.path("marker").exists());
}

#[test]
fn unwritable_log_exits_78_and_the_command_does_not_run() {
    for log in ["/proc/nope/x", "UNDER_A_FILE"] {
        let g = gate();
        let log = if log == "UNDER_A_FILE" {
            let f = g.write("plainfile", "x");
            format!("{}/audit.jsonl", f.display())
        } else {
            log.to_owned()
        };
        let g = g.env("GATE_LOG", &log).args(&["--", "touch", "marker"]);
        g.run().status(78).stderr_contains(&log);
        assert!(
            !g.path("marker").exists(),
            "ran with an unwritable log {log}"
        );
    }
}

#[test]
fn unwritable_log_stops_an_approval_before_anyone_is_asked() {
    let g = gate()
        .env("GATE_LOG", "/proc/nope/x")
        .args(&["--timeout", "20s", "--", "echo", "two"]);
    // Refused before anyone is asked: no wait begins (the marker of one is its progress line).
    let r = g.run();
    r.status(78)
        .stderr_contains("cannot write the audit log `/proc/nope/x`");
    assert!(
        !r.stderr.contains("waiting"),
        "waited for approval first: {}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Records.

#[test]
fn every_decision_is_recorded_in_one_valid_chain() {
    approvers_exist();
    let g = gate();
    let run = |args: &[&str]| {
        let mut c = g.command();
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().unwrap().code().unwrap()
    };
    assert_eq!(run(&["--", "true"]), 0);
    assert_eq!(run(&["--", "rm", "-r", "/"]), 77);
    assert_eq!(run(&["--", "sh", "-c", "exit 5"]), 5);
    assert_eq!(run(&["--timeout", "1s", "--", "echo", "two"]), 75);
    assert_eq!(run(&["--", "gate-test-no-such-program"]), 127);

    let records = verify_chain(&g);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "genesis", "decision", "result", "decision", "decision", "result", "decision",
            "decision", "result"
        ]
    );
    let outcomes: Vec<&str> = decisions(&records)
        .iter()
        .map(|d| d["decision"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["allowed", "denied", "allowed", "timed_out", "allowed"]
    );
    // Each result follows its own decision.
    for (i, r) in records
        .iter()
        .enumerate()
        .filter(|(_, r)| r["kind"] == "result")
    {
        assert_eq!(records[i - 1]["kind"], "decision");
        assert_eq!(records[i - 1]["request_id"], r["request_id"]);
    }
    let ids: BTreeSet<&str> = decisions(&records)
        .iter()
        .map(|d| d["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "request ids are unique");

    let genesis = &records[0];
    assert_eq!(
        genesis["genesis"]["host"],
        nix::unistd::gethostname().unwrap().into_string().unwrap(),
        "genesis names the host"
    );

    let mode = std::fs::metadata(g.path("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "audit log mode is {:o}", mode & 0o777);
}

#[test]
fn decision_record_is_on_disk_before_the_command_starts() {
    // The child copies the log as it finds it when it starts.
    let g = gate();
    let log = g.path("audit.jsonl");
    let copy = g.path("seen.jsonl");
    let g = g.args(&[
        "--",
        "sh",
        "-c",
        r#"cp "$1" "$2""#,
        "sh",
        log.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    g.run().status(0);
    let seen = std::fs::read_to_string(&copy).expect("the log existed when the command started");
    let seen: Vec<Value> = seen
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        seen.len(),
        2,
        "genesis + decision before the run: {seen:#?}"
    );
    assert_eq!(seen[1]["kind"], "decision");
    let (d, r) = only_run(&g);
    assert_eq!(seen[1]["hash"], d["hash"]);
    assert!(r.is_some());
}

#[test]
fn request_fields_are_recorded() {
    let g = gate()
        .env("GATE_ENV", "staging")
        .env("GATE_NOT_CAPTURED", "leak-me-not")
        .env("GATE_REASON", "ticket 42")
        .args(&["--", "sh", "-c", "exit 0"]);
    g.run().status(0);
    let (d, _) = only_run(&g);
    let q = &d["request"];
    assert_eq!(
        q["command"]["argv"],
        serde_json::json!(["sh", "-c", "exit 0"])
    );
    let cwd = std::fs::canonicalize(g.dir.path()).unwrap();
    assert_eq!(
        std::fs::canonicalize(q["command"]["cwd"].as_str().unwrap()).unwrap(),
        cwd
    );
    let exe = q["command"]["executable"]
        .as_str()
        .expect("resolved executable");
    assert!(exe.ends_with("/sh"), "{exe}");
    assert_eq!(q["context"], serde_json::json!({ "GATE_ENV": "staging" }));
    assert_eq!(q["reason"], "ticket 42");
    let uid = nix::unistd::Uid::current().as_raw();
    assert_eq!(q["requester"]["uid"], uid);
    assert!(!q["requester"]["user"].as_str().unwrap().is_empty());
    assert_eq!(
        q["requester"]["host"],
        nix::unistd::gethostname().unwrap().into_string().unwrap()
    );
    let digest = q["digest"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    let log = std::fs::read_to_string(g.path("audit.jsonl")).unwrap();
    assert!(
        !log.contains("leak-me-not"),
        "an env var the policy does not name was recorded"
    );

    // The same command with another context value has another digest.
    let g2 = gate()
        .env("GATE_ENV", "prod")
        .args(&["--", "sh", "-c", "exit 0"]);
    g2.run().status(0);
    let (d2, _) = only_run(&g2);
    assert_ne!(d2["request"]["digest"], d["request"]["digest"]);
    assert_eq!(d2["request"]["context"]["GATE_ENV"], "prod");
}

#[test]
fn secrets_are_redacted_from_argv_and_context() {
    let g = gate().env("GATE_ENV", "token=s3cr3t-ctx").args(&[
        "--",
        "echo",
        "user=bob",
        "password=hunter2",
        "TOKEN=abc123xyz",
    ]);
    let ran = g.run();
    // The command itself still gets the real argv.
    ran.status(0).stdout_has("password=hunter2");
    let (d, _) = only_run(&g);
    let argv = &d["request"]["command"]["argv"];
    assert_eq!(argv[1], "user=bob");
    assert_eq!(argv[2], "password=[REDACTED]", "{argv}");
    assert!(argv[3].as_str().unwrap().contains("[REDACTED]"), "{argv}");
    let log = std::fs::read_to_string(g.path("audit.jsonl")).unwrap();
    for secret in ["hunter2", "abc123xyz", "s3cr3t-ctx"] {
        assert!(!log.contains(secret), "{secret} is in the audit log");
    }
    assert!(
        d["request"]["context"]["GATE_ENV"]
            .as_str()
            .unwrap()
            .contains("[REDACTED]")
    );
}

#[test]
fn redacted_in_denial_message_and_json_too() {
    let g = Gate::new()
        .policy(
            "version: 1\ncontext: { redact: ['(?i)password=\\S+'] }\nrules:\n  - name: no-curl\n    match: { program: curl }\n    decision: deny\n",
        )
        .args(&["--json", "--", "curl", "password=hunter2"]);
    let ran = g.run();
    ran.status(77).any_stderr();
    assert!(
        !ran.stderr.contains("hunter2"),
        "secret on stderr: {}",
        ran.stderr
    );
    let log = std::fs::read_to_string(g.path("audit.jsonl")).unwrap();
    assert!(!log.contains("hunter2"));
}

#[test]
fn log_mode_is_0600_even_with_a_permissive_umask() {
    let g = gate();
    let c = g.command();
    let mut s = Command::new("sh");
    s.arg("-c")
        .arg(r#"umask 000; exec "$0" -- true"#)
        .arg(c.get_program())
        .env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    assert!(s.status().unwrap().success());
    let mode = std::fs::metadata(g.path("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "audit log mode is {:o}", mode & 0o777);
}

// ---------------------------------------------------------------------------------------------
// Stdio, --json and signals.

#[test]
fn stdio_passes_through() {
    let g = gate().args(&["--", "printf", "a\\nb"]);
    let ran = g.run();
    ran.status(0);
    assert_eq!(ran.stdout, "a\nb", "the child's stdout, byte for byte");

    let g = gate().stdin(b"hello from stdin").args(&["--", "cat"]);
    let ran = g.run();
    ran.status(0);
    assert_eq!(ran.stdout, "hello from stdin");

    let g = gate().args(&["--", "sh", "-c", "echo oops >&2"]);
    g.run().status(0).stderr_contains("oops");
}

#[test]
fn json_prints_the_decision_on_stderr() {
    let g = gate().args(&["--json", "--", "echo", "hi"]);
    let ran = g.run();
    ran.status(0).any_stderr();
    common::snap::settings(g.dir.path())
        .bind(|| insta::assert_snapshot!("run_json_allowed", ran.stderr));
    assert_eq!(ran.stdout, "hi\n", "stdout is left to the child");
    let objs: Vec<Value> = ran
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    assert_eq!(objs.len(), 1, "one JSON object on stderr: {}", ran.stderr);
    let (d, _) = only_run(&g);
    assert_eq!(objs[0]["request_id"], d["request_id"]);
    assert_eq!(objs[0]["decision"], "allow");
    assert_eq!(objs[0]["outcome"], "allowed");
    assert_eq!(objs[0]["run"], true);
    assert_eq!(objs[0]["digest"], d["request"]["digest"]);

    let g = gate().args(&["--json", "--", "rm", "-rf", "/"]);
    let ran = g.run();
    ran.status(77).any_stderr();
    common::snap::settings(g.dir.path())
        .bind(|| insta::assert_snapshot!("run_json_denied", ran.stderr));
    let obj: Value = ran
        .stderr
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.is_object())
        })
        .expect("a JSON decision on stderr");
    assert_eq!(obj["decision"], "deny");
    assert_eq!(obj["run"], false);
    assert_eq!(obj["rules"], serde_json::json!(["nope"]));
}

#[test]
fn sigterm_to_gate_is_forwarded_and_the_childs_status_returned() {
    let g = gate();
    let started = g.path("started");
    let mut c = g.command();
    // The path is written into the script, not passed as `$1`: an expansion in an argument of
    // a program some rule inspects (`touch` here) would make the script opaque.
    let script = format!(
        r#"trap 'kill $! 2>/dev/null; exit 42' TERM; sleep 30 & touch '{}'; wait"#,
        started.display()
    );
    c.args(["--", "sh", "-c", &script]);
    let w = spawn(c);
    // The child has set its trap: the marker it writes is all the readiness needed. No sleep
    // for gate to learn the child's pid: a signal that reaches gate before it does is held and
    // forwarded once the child exists (src/exec.rs), which this test pins.
    wait_for_file(&started);
    w.signal(nix::sys::signal::Signal::SIGTERM);
    let ran = w.finish(Duration::from_secs(10));
    ran.status(42);
    let (_, r) = only_run(&g);
    let r = r.expect("the result is recorded after a forwarded signal");
    assert_eq!(r["result"]["exit_code"], 42);
}

#[test]
fn forwarded_signal_that_kills_the_child_gives_128_plus_n() {
    for (sig, n) in [
        (nix::sys::signal::Signal::SIGTERM, 15),
        (nix::sys::signal::Signal::SIGHUP, 1),
        (nix::sys::signal::Signal::SIGINT, 2),
    ] {
        let g = gate();
        let started = g.path("started");
        let mut c = g.command();
        let script = format!("touch '{}'; exec sleep 30", started.display());
        c.args(["--", "sh", "-c", &script]);
        let w = spawn(c);
        wait_for_file(&started);
        w.signal(sig);
        let ran = w.finish(Duration::from_secs(10));
        ran.status(128 + n);
        let (_, r) = only_run(&g);
        let r = r.unwrap_or_else(|| panic!("{sig}: no result record"));
        assert_eq!(r["result"]["signal"], n, "{sig}: {r}");
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

#[test]
fn parallel_runs_share_one_chain() {
    let g = gate();
    let children: Vec<Child> = (0..4)
        .map(|_| {
            let mut c = g.command();
            c.args(["--", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let records = verify_chain(&g);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..=8).collect::<Vec<_>>());
    assert_eq!(records.iter().filter(|r| r["kind"] == "genesis").count(), 1);
    assert_eq!(decisions(&records).len(), 4);
    for d in decisions(&records) {
        let id = d["request_id"].as_str().unwrap();
        assert!(result_of(&records, id).is_some(), "no result for {id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Confirm on a terminal (util-linux `script` provides the pty).

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `gate -- touch confirm-me` on a pty and types `answer` once the prompt shows.
fn confirm_on_pty(g: &Gate, answer: &str) -> Ran {
    let c = g.command();
    let line = std::iter::once(c.get_program().to_str().unwrap())
        .chain(["--", "touch", "confirm-me"])
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut s = Command::new("script");
    s.args(["-qec", &line, "/dev/null"]).env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    s.env("TERM", "dumb").current_dir(g.dir.path());
    let mut w = spawn_with_stdin(s);
    w.stdout_until("to run it", Duration::from_secs(15));
    // Type the answer, but keep stdin open until gate is done (`finish` closes it): an EOF
    // could reach the pty as ^D.
    w.type_in(answer);
    w.finish(Duration::from_secs(15))
}

#[test]
fn confirm_on_a_terminal_with_yes_runs_the_command() {
    let g = gate();
    let ran = confirm_on_pty(&g, "yes\n");
    ran.status(0).stdout_has("confirm");
    assert!(
        g.path("confirm-me").exists(),
        "the confirmed command did not run"
    );
    let (d, r) = only_run(&g);
    assert_eq!(d["decision"]["decision"], "confirm");
    assert_eq!(d["decision"]["outcome"], "confirmed");
    assert_eq!(d["decision"]["run"], true);
    assert_eq!(d["decision"]["rules"][0]["name"], "conf");
    assert_eq!(d["decision"]["approvals"][0]["via"], "tty");
    assert_eq!(r.expect("result")["result"]["exit_code"], 0);
}

#[test]
fn confirm_on_a_terminal_with_anything_else_is_refused_77() {
    for answer in ["no\n", "y\n"] {
        let g = gate();
        let ran = confirm_on_pty(&g, answer);
        ran.status(77);
        assert!(
            !g.path("confirm-me").exists(),
            "ran after answering {answer:?}"
        );
        let (d, r) = only_run(&g);
        assert_eq!(d["decision"]["outcome"], "refused");
        assert_eq!(d["decision"]["run"], false);
        assert!(r.is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Approval bounds that need no other users.

#[test]
fn unusable_spool_exits_78_runs_nothing_and_is_recorded() {
    for case in ["under-a-file", "world-writable-not-sticky"] {
        let g = gate();
        let spool = if case == "under-a-file" {
            g.write("plainfile", "x").join("spool")
        } else {
            let d = g.path("open-spool");
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
            d
        };
        let spool = spool.to_str().unwrap().to_owned();
        let g = g
            .env("GATE_SPOOL", &spool)
            .args(&["--timeout", "20s", "--", "echo", "two"]);
        let ran = g.run();
        // A spool that cannot be made is a configuration error; one anybody could clear of
        // decisions gives no decision (75), with a hint on making a shared one.
        ran.status(if case == "under-a-file" { 78 } else { 75 })
            .stderr_contains(&spool);
        assert!(!ran.stdout.contains("two"), "{case}: the command ran");
        // Not "waited anyway": the outcome below is `error`, not `timed_out`.
        let (d, r) = only_run(&g);
        assert_eq!(d["decision"]["decision"], "approve", "{case}");
        assert_eq!(d["decision"]["run"], false, "{case}");
        assert_eq!(d["decision"]["outcome"], "error", "{case}");
        assert!(d["decision"]["message"].as_str().unwrap().contains(&spool));
        assert!(r.is_none());
    }
}

#[test]
fn timeout_option_never_extends_the_policy_timeout() {
    approvers_exist();
    let g = Gate::new()
        .policy(
            "version: 1\ngroups: { ops: [gt-alice] }\nrules:\n  - name: quick\n    match: { program: echo }\n    decision: approve\n    approval: { approvers: [ops], timeout: 1s }\n",
        )
        .args(&["--timeout", "1h", "--", "echo", "hi"]);
    let ran = g.run();
    ran.status(75).stderr_contains("no decision within 1s");
    assert_eq!(ran.stdout, "");
}
