//! The run path as one pipeline (issue 9 §2): every exit after the decision is recorded once,
//! and says the same words, in the same order, as before the split.

use crate::common;

use common::Gate;

const ALLOW: &str = "version: 1\ndefaults: { decision: allow }\n";

/// `audit.require_remote` with a sink that is down: one warning for the decision, then the
/// refusal — the result is recorded locally but not pushed after the sink just failed.
#[test]
fn an_undelivered_decision_stops_the_run_with_one_warning() {
    let g = Gate::new();
    let copy = g.path("no-such-dir/copy.jsonl");
    let g = g.policy(&format!(
        "{ALLOW}audit:\n  require_remote: true\n  sinks:\n    - {{ kind: file, path: {} }}\n",
        copy.display()
    ));
    let marker = g.path("ran");
    let g = g.args(&["--", "touch", marker.to_str().unwrap()]);
    let ran = g.run();
    // stderr is checked line by line below.
    ran.status(75).any_stderr();
    assert!(!marker.exists(), "nothing may run");
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", ran.stderr);
    assert!(
        lines[0].starts_with("warning: 2 records not yet delivered to sink file-"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        lines[1..],
        [
            "error: the policy requires a remote copy of the decision before the command starts (`audit.require_remote`), and delivery failed",
            "hint: nothing ran; `gate log push` delivers pending records once the sink is back",
        ]
    );
    let records = g.records();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["genesis", "decision", "result"]);
    assert_eq!(records[1]["decision"]["run"], true);
    assert_eq!(
        records[2]["result"],
        serde_json::json!({
            "duration_ms": 0,
            "error": "not run: the decision could not be delivered to every audit sink"
        })
    );
}

/// A program that is not there: the decision to run it, then its result, and 127.
#[test]
fn a_missing_program_is_decided_then_recorded_as_127() {
    let g = Gate::new()
        .policy(ALLOW)
        .args(&["--", "no-such-program-p9"]);
    let ran = g.run();
    // stderr is checked line by line below.
    ran.status(127).any_stderr();
    assert_eq!(
        ran.stderr,
        "error: `no-such-program-p9`: command not found\n"
    );
    let records = g.records();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["decision"]["outcome"], "allowed");
    assert_eq!(records[2]["request_id"], records[1]["request_id"]);
    assert_eq!(
        records[2]["result"],
        serde_json::json!({
            "duration_ms": 0,
            "exit_code": 127,
            "error": "`no-such-program-p9`: command not found"
        })
    );
}

/// A denial: the `--json` line, the error and the record agree, and nothing follows the
/// decision record.
#[test]
fn a_denial_says_the_same_in_json_error_and_record() {
    let g = Gate::new()
        .policy(
            "version: 1\ndefaults: { decision: allow }\nrules:\n  - name: no-rm\n    match: { program: rm }\n    decision: deny\n    message: not here\n",
        )
        .args(&["--json", "--", "rm", "-rf", "x"]);
    let ran = g.run();
    // stderr is checked line by line below.
    ran.status(77).any_stderr();
    let records = g.records();
    assert_eq!(records.len(), 2, "a denial has no result record");
    let d = &records[1];
    let lines: Vec<&str> = ran.stderr.lines().collect();
    let json: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "request_id": d["request_id"],
            "decision": "deny",
            "outcome": "denied",
            "run": false,
            "rules": ["no-rm"],
            "digest": d["request"]["digest"],
        })
    );
    assert_eq!(
        lines[1..],
        [
            "error: denied by rule `no-rm`: not here",
            "hint: try `gate check -- rm -rf x` to see why",
        ]
    );
    assert_eq!(d["decision"]["outcome"], "denied");
    assert_eq!(d["decision"]["run"], false);
    assert_eq!(d["decision"]["message"], "denied by rule `no-rm`: not here");
}

/// A command that ran: its status passes through, and its result follows its decision.
#[test]
fn a_command_that_ran_passes_its_status_and_is_recorded() {
    let g = Gate::new()
        .policy(ALLOW)
        .args(&["--", "sh", "-c", "echo out; exit 3"]);
    let ran = g.run();
    ran.status(3);
    assert_eq!(ran.stdout, "out\n");
    assert_eq!(ran.stderr, "");
    let records = g.records();
    assert_eq!(records[2]["kind"], "result");
    assert_eq!(records[2]["result"]["exit_code"], 3);
    assert!(records[2]["result"].get("error").is_none());
}
