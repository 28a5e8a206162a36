//! The auditor's commands (issue 11 §4): `gate log show` says who decided and why on every
//! row, `--request` takes the short id the table shows, times take dates and durations, filters
//! by user, outcome and rule compose with `-n`; `gate log tail [-f]`; `gate log export` with one
//! row per request; `gate log verify` tells a compliance violation from tampering. And the file
//! sink is idempotent per (log id, seq) (§6).
//!
//! The logs here are written through the library's own append path (a real hash chain, signed
//! checkpoints) with the decisions an auditor meets: approvals by people, a denial by a person
//! after an approval, a denial by policy, no decision, a killed run.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::spawn;
use common::{Checked, Gate, Ran};
use gate::audit::{AuditLog, Body, DecisionInfo, ResultInfo};
use gate::request::RequestView;
use serde_json::{Value, json};

/// Request ids whose short form (the last 12 characters) the snapshots show as they are.
fn id(n: u32) -> String {
    format!("01a21800-0000-7000-8000-{n:012}")
}

fn request(n: u32, user: &str, argv: &[&str], reason: Option<&str>) -> RequestView {
    serde_json::from_value(json!({
        "id": id(n),
        "requester": { "user": user, "uid": 1000 + n, "host": "build-7" },
        "command": { "argv": argv, "cwd": "/srv/app" },
        "context": {},
        "reason": reason,
        "digest": "d".repeat(64),
    }))
    .unwrap()
}

fn decision(v: Value) -> DecisionInfo {
    let mut base = json!({ "rules": [], "by_default": false });
    for (k, x) in v.as_object().unwrap() {
        base[k] = x.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn approver(name: &str, comment: Option<&str>) -> Value {
    json!({ "principal": name, "uid": 2000, "at": "2026-01-01T00:00:00.000Z", "via": "local", "comment": comment })
}

fn required(rule: &str, min: u32) -> Value {
    json!({ "min_approvals": min, "allow_requester": false, "timeout": "15m",
            "clauses": [{ "rule": rule, "approvers": ["sre"], "min_approvals": min }] })
}

fn ran(n: u32, exit_code: Option<i32>, signal: Option<i32>, ms: u64) -> Body {
    Body::Result {
        request_id: id(n),
        result: ResultInfo {
            exit_code,
            signal,
            duration_ms: ms,
            error: None,
        },
    }
}

fn decided(req: RequestView, d: Value) -> Body {
    Body::Decision {
        request: Box::new(req),
        decision: Box::new(decision(d)),
    }
}

/// The day in the life of an auditor: every kind of decision and ending, in one log.
fn day_log(path: &Path, key: &Path) {
    let log = AuditLog::new(path).with_key(key);
    let approve_rule = json!([{ "name": "prod-deploy", "decision": "approve", "risk": "high" }]);
    log.append(vec![
        decided(
            request(1, "erin", &["ls", "-la"], None),
            json!({ "decision": "allow", "outcome": "allowed", "run": true, "by_default": true }),
        ),
        ran(1, Some(0), None, 12),
        decided(
            request(2, "erin", &["kubectl", "get", "pods"], None),
            json!({ "decision": "allow", "outcome": "allowed", "run": true,
                    "rules": [{ "name": "read-only", "decision": "allow" }] }),
        ),
        ran(2, Some(1), None, 1_250),
        decided(
            request(3, "erin", &["deploy", "web", "--prod"], Some("release 4.2")),
            json!({ "decision": "approve", "outcome": "approved", "run": true,
                    "rules": approve_rule, "required": required("prod-deploy", 2),
                    "approvals": [approver("alice", Some("diff looks fine")), approver("bob", None)] }),
        ),
        ran(3, Some(0), None, 83_400),
        // The finding: this row read `denied … [approved by alice]`, with no denier, no reason.
        decided(
            request(4, "frank", &["deploy", "db", "--prod"], None),
            json!({ "decision": "approve", "outcome": "denied", "run": false,
                    "rules": approve_rule, "required": required("prod-deploy", 2),
                    "approvals": [approver("alice", None)],
                    "denied_by": approver("carol", Some("not during the freeze")),
                    "message": "denied by carol: not during the freeze" }),
        ),
        decided(
            request(5, "frank", &["rm", "-rf", "/"], None),
            json!({ "decision": "deny", "outcome": "denied", "run": false,
                    "rules": [{ "name": "rm-root", "decision": "deny" }],
                    "message": "denied by rule `rm-root`: refusing to remove /" }),
        ),
        decided(
            request(6, "erin", &["deploy", "cache", "--prod"], None),
            json!({ "decision": "approve", "outcome": "timed_out", "run": false,
                    "rules": approve_rule, "required": required("prod-deploy", 2),
                    "approvals": [approver("bob", None)],
                    "message": "no decision within 15m (1 of 2 approvals)" }),
        ),
        decided(
            request(7, "erin", &["deploy", "queue", "--prod"], None),
            json!({ "decision": "approve", "outcome": "cancelled", "run": false,
                    "rules": approve_rule, "required": required("prod-deploy", 2),
                    "message": "cancelled while waiting for approval" }),
        ),
        decided(
            request(8, "agent", &["git", "push", "--force"], None),
            json!({ "decision": "confirm", "outcome": "refused", "run": false,
                    "rules": [{ "name": "force-push", "decision": "confirm" }],
                    "message": "`git push --force` needs a confirmation typed at a terminal, and there is none" }),
        ),
        decided(
            request(9, "erin", &["sleep", "600"], None),
            json!({ "decision": "allow", "outcome": "allowed", "run": true, "by_default": true }),
        ),
        ran(9, None, Some(9), 2_500),
    ])
    .unwrap();
}

/// A Gate whose configured log is the day's log.
fn day() -> Gate {
    let g = Gate::new();
    day_log(&g.path("audit.jsonl"), &g.path("state/gate/signing.key"));
    g
}

/// `gate ARGS` in `g`'s world, to the end (see [`Checked`]).
fn run(g: &Gate, args: &[&str]) -> Checked {
    let mut c = g.command();
    c.args(args);
    Checked::new(Ran::of(c))
}

fn log_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["log"];
    all.extend_from_slice(args);
    all
}

/// The table's rows, without the header.
fn rows(stdout: &str) -> Vec<&str> {
    stdout.lines().skip(1).collect()
}

fn snapshot(g: &Gate, name: &str, text: &str) {
    common::snap::settings(g.dir.path()).bind(|| insta::assert_snapshot!(name, text));
}

// ---------------------------------------------------------------------------------------------
// show: who decided and why.

#[test]
fn log_show_table_says_who_decided_and_why() {
    let g = day();
    let out = run(&g, &["log", "show"]);
    snapshot(&g, "log_show_who_decided_and_why", &out.stdout);
}

#[test]
fn a_denied_row_names_the_denier_and_the_reason_not_an_earlier_approver_alone() {
    let g = day();
    let out = run(&g, &["log", "show", "--request", &id(4)]);
    let rows = rows(&out.stdout);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    let row = rows[0];
    assert!(
        row.contains("denied by carol: not during the freeze; approved before by alice"),
        "{row}"
    );
    assert!(!row.contains("[approved by"), "{row}");
}

#[test]
fn every_decision_row_says_who_decided_or_why_nothing_was_decided() {
    let g = day();
    let out = run(&g, &["log", "show"]);
    let want = [
        (id(1), "allowed by default: no rule matched"),
        (id(2), "allowed by rule `read-only`"),
        (
            id(3),
            "approved by alice (\"diff looks fine\"), bob; rule `prod-deploy`",
        ),
        (id(5), "denied by rule `rm-root`: refusing to remove /"),
        (
            id(6),
            "no decision within 15m (1 of 2 approvals); approved before by bob",
        ),
        (id(7), "no decision: cancelled while waiting for approval"),
        (id(8), "refused: `git push --force` needs a confirmation"),
    ];
    for (id, why) in want {
        let short = &id[id.len() - 12..];
        let row = out
            .stdout
            .lines()
            .find(|l| l.contains(short) && l.contains("decision"))
            .unwrap_or_else(|| panic!("no decision row for {short}:\n{}", out.stdout));
        assert!(row.contains(why), "{why:?} not in {row}");
    }
    // Results: exit code or signal, and how long.
    assert!(
        out.stdout.contains("exit 1 after 1.2 s: kubectl get pods"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("exit 0 after 1m 23s: deploy web --prod"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("killed by signal 9 after 2.5 s: sleep 600"),
        "{}",
        out.stdout
    );
}

/// An agent that names its own "approval" in its argv, or hides a line break in it, cannot
/// make its row read as approved: the command is shell-quoted and escaped, and gate's own
/// `[who decided and why]` is the row's last part.
#[test]
fn a_command_cannot_forge_the_who_decided_part_of_its_row() {
    let g = day();
    AuditLog::new(g.path("audit.jsonl"))
        .append(vec![decided(
            request(
                60,
                "erin",
                &[
                    "rm",
                    "-rf",
                    "/]  [approved by alice, bob",
                    "x\n   61  [TIME] decision",
                ],
                None,
            ),
            json!({ "decision": "deny", "outcome": "denied", "run": false,
                    "rules": [{ "name": "rm-root", "decision": "deny" }],
                    "message": "denied by rule `rm-root`: refusing to remove /" }),
        )])
        .unwrap();
    let out = run(&g, &["log", "show", "--request", "000000000060"]);
    let rows = rows(&out.stdout);
    assert_eq!(
        rows.len(),
        1,
        "one line, whatever the argv holds:\n{}",
        out.stdout
    );
    let row = rows[0];
    assert!(row.contains("'/]  [approved by alice, bob'"), "{row}");
    assert!(
        row.ends_with("  [denied by rule `rm-root`: refusing to remove /]"),
        "{row}"
    );
}

// ---------------------------------------------------------------------------------------------
// --request: the id the table shows works.

#[test]
fn request_filter_takes_the_short_id_the_table_shows_the_full_id_and_a_unique_prefix() {
    let g = day();
    let table = run(&g, &["log", "show"]);
    let shown = table
        .stdout
        .lines()
        .find(|l| l.contains("deploy web"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_owned();
    assert_eq!(shown, "000000000003", "the REQUEST column");
    let full = id(3);
    for given in [shown.as_str(), full.as_str(), "0000000003"] {
        let out = run(&g, &["log", "show", "--request", given]);
        let rows = rows(&out.stdout);
        assert_eq!(
            rows.len(),
            2,
            "{given}: its decision and its result\n{}",
            out.stdout
        );
        assert!(rows.iter().all(|r| r.contains("000000000003")), "{given}");
    }
    // A unique prefix: request 50's id differs from the others before its end.
    tricky(&g);
    let prefix = &id(50)[..35];
    let out = run(&g, &["log", "show", "--request", prefix]);
    assert_eq!(rows(&out.stdout).len(), 2, "{prefix}\n{}", out.stdout);
    assert!(rows(&out.stdout).iter().all(|r| r.contains("000000000050")));
}

#[test]
fn request_that_names_no_request_exits_1_with_a_message_not_an_empty_table() {
    let g = day();
    run(&g, &["log", "show", "--request", "ffffffffffff"])
        .status(1)
        .stderr_contains("no request in the log")
        .stderr_contains("`ffffffffffff`");
    let out = run(&g, &["log", "show", "--request", "ffff"]);
    assert_eq!(out.status(1).any_stderr().stdout, "", "no table");
}

#[test]
fn a_prefix_shared_by_several_requests_is_a_usage_error_listing_them() {
    let g = day();
    run(&g, &["log", "show", "--request", "01a21800"])
        .status(2)
        .stderr_contains("matches 9 requests")
        .stderr_contains("000000000001");
}

#[test]
fn a_request_id_with_terminal_controls_is_shown_escaped_in_the_error() {
    let g = day();
    let out = run(&g, &["log", "show", "--request", "\x1b]0;pwned\x07"]);
    out.status(1).stderr_contains("\\e]0;pwned");
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Filters and times.

#[test]
fn filters_by_user_outcome_and_rule_compose_with_n() {
    let g = day();
    let ids = |args: &[&str]| -> Vec<String> {
        let out = run(&g, &log_args(args));
        rows(&out.stdout)
            .iter()
            .map(|r| r.split_whitespace().nth(3).unwrap().to_owned())
            .collect()
    };
    // A user's requests: decisions and results alike.
    assert_eq!(
        ids(&["show", "--user", "frank"]),
        ["000000000004", "000000000005"]
    );
    assert_eq!(
        ids(&["show", "--outcome", "denied"]),
        ["000000000004", "000000000005"]
    );
    assert_eq!(ids(&["show", "--outcome", "timed_out"]), ["000000000006"]);
    assert_eq!(ids(&["show", "--outcome", "timed-out"]), ["000000000006"]);
    assert_eq!(
        ids(&["show", "--rule", "prod-deploy"]),
        [
            "000000000003",
            "000000000003",
            "000000000004",
            "000000000006",
            "000000000007"
        ]
    );
    assert_eq!(
        ids(&[
            "show",
            "--rule",
            "prod-deploy",
            "--user",
            "erin",
            "--outcome",
            "approved"
        ]),
        ["000000000003", "000000000003"]
    );
    // -n keeps the last N of what the filters let through.
    assert_eq!(
        ids(&["show", "--rule", "prod-deploy", "-n", "2"]),
        ["000000000006", "000000000007"]
    );
}

#[test]
fn an_outcome_not_in_the_records_vocabulary_is_a_usage_error() {
    let g = day();
    run(&g, &["log", "show", "--outcome", "rejected"])
        .status(2)
        .stderr_contains("possible values");
}

#[test]
fn a_filter_matching_nothing_prints_an_empty_table_and_says_so() {
    let g = day();
    let out = run(&g, &["log", "show", "--user", "nobody"]);
    out.status(0).stderr("gate: no records match the filters\n");
    assert_eq!(rows(&out.stdout).len(), 0);
}

#[test]
fn since_and_until_take_durations_and_utc_dates() {
    let g = day();
    let records = g.records();
    let count = |args: &[&str]| {
        let out = run(&g, &log_args(args));
        out.any_stderr();
        rows(&out.stdout).len()
    };
    let all = records.len();
    assert_eq!(count(&["show", "--since", "10m"]), all);
    assert_eq!(count(&["show", "--until", "10m"]), 0);
    let ts = records[0]["ts"].as_str().unwrap();
    let day = &ts[..10];
    assert_eq!(count(&["show", "--since", day]), all);
    // A date means that day's start, and `--until` is before it.
    assert_eq!(count(&["show", "--until", day]), 0);
    assert_eq!(count(&["show", "--since", ts]), all);
    // An offset is honoured: the same instant written in another zone.
    let at = humantime::parse_rfc3339_weak(ts).unwrap();
    let plus_two = humantime::format_rfc3339_millis(at + Duration::from_secs(7200))
        .to_string()
        .replace('Z', "+02:00");
    assert_eq!(count(&["show", "--since", &plus_two]), all);
    // Half-open: [since, until).
    assert_eq!(count(&["show", "--since", ts, "--until", ts]), 0);
}

#[test]
fn a_time_that_is_none_of_the_forms_is_a_usage_error_naming_the_forms() {
    let g = day();
    run(&g, &["log", "show", "--since", "yesterday"])
        .status(2)
        .stderr_contains("bad `--since` value `yesterday`")
        .stderr_contains("2026-11-28");
}

// ---------------------------------------------------------------------------------------------
// tail.

#[test]
fn tail_prints_the_last_ten_records_by_default_and_n_of_them_with_n() {
    let g = day();
    let out = run(&g, &["log", "tail"]);
    assert_eq!(rows(&out.stdout).len(), 10);
    assert_eq!(rows(&out.stdout)[9], out.stdout.lines().last().unwrap());
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap()
            .contains("killed by signal 9")
    );
    let out = run(&g, &["log", "tail", "-n", "2", "--json"]);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["kind"], "result");
    assert_eq!(lines[1]["result"]["signal"], 9);
}

#[test]
fn tail_follow_prints_records_another_process_appends_until_ctrl_c_exits_130() {
    let g = day();
    let mut c = g.command();
    c.args(["log", "tail", "-f", "-n", "1"]);
    let mut w = spawn(c);
    w.stdout_until("killed by signal 9", common::process::HANG);
    // Another gate appends (a run through the gate), then the library (another writer).
    let mut run = g.command();
    run.args(["--", "true"]);
    assert!(run.status().unwrap().success());
    w.stdout_until("exit 0 after", common::process::HANG);
    AuditLog::new(g.path("audit.jsonl"))
        .append(vec![decided(
            request(42, "erin", &["echo", "late"], None),
            json!({ "decision": "allow", "outcome": "allowed", "run": true, "by_default": true }),
        )])
        .unwrap();
    w.stdout_until("000000000042", common::process::HANG);
    assert!(w.running(), "follow ended by itself");
    w.signal(nix::sys::signal::Signal::SIGINT);
    let ended = w.finish(common::process::HANG);
    // 130, what a shell reports for `tail -f` ended by Ctrl-C.
    assert_eq!(ended.status, 130, "{}", ended.stderr);
    assert_eq!(ended.stderr, "");
    assert_eq!(
        ended.stdout.matches("echo late").count(),
        1,
        "{}",
        ended.stdout
    );
}

/// `gate log tail -f | head -3`: when the reader leaves, tail ends (0), not writing forever.
#[test]
fn tail_follow_ends_with_0_when_its_reader_goes_away() {
    use std::io::Read;
    let g = day();
    let mut c = g.command();
    c.args(["log", "tail", "-f", "-n", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let deadline = std::time::Instant::now() + common::process::HANG;
    let status = loop {
        // Each new record is a write into the closed pipe.
        AuditLog::new(g.path("audit.jsonl"))
            .append(vec![ran(1, Some(0), None, 1)])
            .unwrap();
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tail -f outlived its reader"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// export.

/// An RFC 4180 reader, independent of gate's writer: quoted fields, doubled quotes, CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => panic!("unquoted {c:?} in {text:?}"),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the last row ends with CRLF"
    );
    rows
}

fn tricky(g: &Gate) {
    AuditLog::new(g.path("audit.jsonl"))
        .append(vec![
            decided(
                request(
                    50,
                    "erin",
                    &["sh", "-c", "=cmd|' /C calc'!A0", "a,b", "say \"hi\"", "two\nlines"],
                    Some("=HYPERLINK(\"http://evil\",\"x\")"),
                ),
                json!({ "decision": "allow", "outcome": "allowed", "run": true, "by_default": true }),
            ),
            ran(50, Some(0), None, 5),
        ])
        .unwrap();
}

fn column<'a>(table: &'a [Vec<String>], row: usize, name: &str) -> &'a str {
    let at = table[0].iter().position(|c| c == name).unwrap();
    &table[row][at]
}

#[test]
fn export_csv_has_one_row_per_request_with_decision_approvers_and_result() {
    let g = day();
    let out = run(&g, &["log", "export", "--format", "csv"]);
    let t = parse_csv(&out.stdout);
    assert_eq!(t.len(), 1 + 9, "a header and one row per request");
    assert!(t.iter().all(|r| r.len() == t[0].len()));
    let row = t.iter().position(|r| r[0] == id(3)).unwrap();
    assert_eq!(column(&t, row, "outcome"), "approved");
    assert_eq!(column(&t, row, "approvers"), "alice;bob");
    assert_eq!(column(&t, row, "rules"), "prod-deploy");
    assert_eq!(column(&t, row, "exit_code"), "0");
    assert_eq!(column(&t, row, "duration_ms"), "83400");
    assert_eq!(column(&t, row, "reason"), "release 4.2");
    assert_eq!(column(&t, row, "short_id"), "000000000003");
    assert!(!column(&t, row, "finished_at").is_empty());
    let denied = t.iter().position(|r| r[0] == id(4)).unwrap();
    assert_eq!(column(&t, denied, "denied_by"), "carol");
    assert_eq!(column(&t, denied, "deny_reason"), "not during the freeze");
    assert_eq!(column(&t, denied, "approvers"), "alice");
    assert_eq!(column(&t, denied, "exit_code"), "");
    let by_policy = t.iter().position(|r| r[0] == id(5)).unwrap();
    assert_eq!(
        column(&t, by_policy, "deny_reason"),
        "denied by rule `rm-root`: refusing to remove /"
    );
    let killed = t.iter().position(|r| r[0] == id(9)).unwrap();
    assert_eq!(column(&t, killed, "signal"), "9");
    // Filters apply per request.
    let out = run(
        &g,
        &["log", "export", "--format", "csv", "--outcome", "denied"],
    );
    assert_eq!(parse_csv(&out.stdout).len(), 1 + 2);
}

#[test]
fn export_csv_defuses_spreadsheet_formulas_and_keeps_commas_quotes_and_newlines() {
    let g = day();
    tricky(&g);
    let out = run(
        &g,
        &["log", "export", "--format", "csv", "--request", &id(50)],
    );
    let t = parse_csv(&out.stdout);
    assert_eq!(t.len(), 2, "{}", out.stdout);
    assert_eq!(
        column(&t, 1, "command"),
        "sh -c '=cmd|'\\'' /C calc'\\''!A0' a,b 'say \"hi\"' 'two\nlines'"
    );
    assert_eq!(
        column(&t, 1, "reason"),
        "'=HYPERLINK(\"http://evil\",\"x\")",
        "a formula gets a leading '"
    );
    // Every cell a spreadsheet would run is defused.
    for row in &t[1..] {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '@', '\t', '\r']),
                "a live formula cell: {cell:?}"
            );
        }
    }
}

/// The requester owns its log file and can append anything to it: `verify` calls that
/// tampering, and `export` still must not hand the auditor a live formula in any cell.
#[test]
fn export_of_a_log_its_requester_wrote_into_defuses_formulas_in_every_field() {
    let g = day();
    let mut line = g.records()[1].clone();
    line["request_id"] = json!("=HYPERLINK(\"http://evil\",\"id\")");
    line["request"]["id"] = line["request_id"].clone();
    line["ts"] = json!("+2026");
    line["decision"]["decision"] = json!("@SUM(A1)");
    line["decision"]["outcome"] = json!(" =1+1");
    line["request"]["requester"]["user"] = json!("\u{FF1D}1+1");
    line["seq"] = json!(99);
    let mut text = std::fs::read_to_string(g.path("audit.jsonl")).unwrap();
    text.push_str(&line.to_string());
    text.push('\n');
    std::fs::write(g.path("audit.jsonl"), text).unwrap();
    let out = run(&g, &["log", "export", "--format", "csv"]);
    let t = parse_csv(&out.stdout);
    let row = t
        .iter()
        .find(|r| r[0].contains("HYPERLINK"))
        .expect("the forged row is exported");
    for cell in row {
        assert!(
            !cell
                .trim_start()
                .starts_with(['=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}']),
            "a live formula cell: {cell:?} in {row:?}"
        );
    }
    assert_eq!(row[0], "'=HYPERLINK(\"http://evil\",\"id\")");
}

fn event(n: u32, kind: &str, who: Option<&str>, status: &str, comment: Option<&str>) -> Body {
    Body::Event {
        request_id: id(n),
        request: (kind == "request")
            .then(|| Box::new(request(n, "erin", &["deploy", "web"], None))),
        event: serde_json::from_value(json!({
            "type": kind, "principal": who, "status": status, "comment": comment,
            "needed": (kind == "request").then_some(2),
        }))
        .unwrap(),
    }
}

#[test]
fn a_gate_servers_log_exports_one_row_per_request_from_its_events() {
    let g = Gate::new();
    let log = g.path("server-audit.jsonl");
    AuditLog::new(&log)
        .append(vec![
            event(1, "request", Some("erin"), "pending", None),
            event(2, "request", Some("erin"), "pending", None),
            event(1, "approval", Some("bob"), "pending", Some("ok")),
            event(2, "denial", Some("carol"), "denied", Some("freeze")),
            event(1, "approval", Some("ann"), "approved", None),
        ])
        .unwrap();
    let out = run(
        &g,
        &["log", "export", "--format", "json", log.to_str().unwrap()],
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{v:#}");
    assert_eq!(v[0]["request_id"], id(1));
    assert_eq!(v[0]["outcome"], "approved");
    assert_eq!(v[0]["approvers"], json!(["bob", "ann"]));
    assert_eq!(v[0]["why"], "approved by bob, ann");
    assert_eq!(v[0]["seq_first"], 1);
    assert_eq!(v[0]["seq_last"], 5);
    assert_eq!(v[1]["outcome"], "denied");
    assert_eq!(v[1]["denied_by"], "carol");
    assert_eq!(v[1]["deny_reason"], "freeze");
    assert_eq!(v[1]["why"], "denied by carol: freeze");
    // And the table says who did what on each event row.
    let out = run(
        &g,
        &["log", "show", "--outcome", "denied", log.to_str().unwrap()],
    );
    assert!(
        out.stdout.contains("denial by carol: freeze  deploy web"),
        "{}",
        out.stdout
    );
}

#[test]
fn export_json_is_one_array_with_exact_values() {
    let g = day();
    tricky(&g);
    let out = run(&g, &["log", "export", "--format", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 10);
    let t = rows.iter().find(|r| r["request_id"] == id(50)).unwrap();
    // JSON is data: exact, not defused.
    assert_eq!(t["reason"], "=HYPERLINK(\"http://evil\",\"x\")");
    let a = rows.iter().find(|r| r["request_id"] == id(3)).unwrap();
    assert_eq!(a["approvers"], json!(["alice", "bob"]));
    assert_eq!(a["exit_code"], 0);
    assert_eq!(a["seq_first"], 5);
    assert_eq!(a["seq_last"], 6);
}

#[test]
fn export_to_a_file_makes_a_new_private_file_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let g = day();
    let file = g.path("evidence.csv");
    let f = file.to_str().unwrap();
    run(&g, &["log", "export", "--format", "csv", "-o", f]);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        parse_csv(&std::fs::read_to_string(&file).unwrap()).len(),
        10
    );
    run(&g, &["log", "export", "--format", "json", "-o", f])
        .status(78)
        .stderr_contains("does not exist yet");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("\"request_id\"")
    );
    // Not through a planted link either.
    let link = g.path("link.csv");
    std::os::unix::fs::symlink(g.path("target.csv"), &link).unwrap();
    run(
        &g,
        &[
            "log",
            "export",
            "--format",
            "csv",
            "-o",
            link.to_str().unwrap(),
        ],
    )
    .status(78)
    .stderr_contains("does not exist yet");
    assert!(!g.path("target.csv").exists());
}

// ---------------------------------------------------------------------------------------------
// verify: compliance violation apart from tampering.

fn verify_json(g: &Gate, log: &Path) -> (i32, Value) {
    let out = run(g, &["log", "verify", "--json", log.to_str().unwrap()]);
    let status = out.take_status();
    out.any_stderr();
    (status, serde_json::from_str(&out.stdout).unwrap())
}

#[test]
fn verify_calls_a_run_with_too_few_approvers_a_compliance_violation_not_tampering() {
    let g = Gate::new();
    let log = g.path("short.jsonl");
    AuditLog::new(&log)
        .with_key(g.path("k.key"))
        .append(vec![
            decided(
                request(1, "erin", &["deploy", "web"], None),
                json!({ "decision": "approve", "outcome": "approved", "run": true,
                        "rules": [{ "name": "prod-deploy", "decision": "approve" }],
                        "required": required("prod-deploy", 2),
                        "approvals": [approver("alice", None)] }),
            ),
            ran(1, Some(0), None, 3),
        ])
        .unwrap();
    let (status, r) = verify_json(&g, &log);
    assert_eq!(status, 1, "{r:#}");
    assert_eq!(r["verdict"], "compliance_violation", "{r:#}");
    assert_eq!(r["tampered"], false);
    assert_eq!(r["compliance_violation"], true);
    let out = run(&g, &["log", "verify", log.to_str().unwrap()]);
    out.status(1).any_stderr();
    let last = out.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("COMPLIANCE VIOLATION: 1 problem, first at seq 1"),
        "{last}"
    );
    assert!(!out.stdout.contains("TAMPERED"), "{}", out.stdout);
}

#[test]
fn verify_calls_self_approval_a_compliance_violation() {
    let g = Gate::new();
    let log = g.path("self.jsonl");
    AuditLog::new(&log)
        .with_key(g.path("k.key"))
        .append(vec![decided(
            request(1, "erin", &["deploy", "web"], None),
            json!({ "decision": "approve", "outcome": "approved", "run": true,
                    "rules": [{ "name": "prod-deploy", "decision": "approve" }],
                    "required": required("prod-deploy", 1),
                    "approvals": [approver("erin", None)] }),
        )])
        .unwrap();
    let (status, r) = verify_json(&g, &log);
    assert_eq!(status, 1);
    assert_eq!(r["verdict"], "compliance_violation", "{r:#}");
    assert!(
        r["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("self-approval")
    );
}

#[test]
fn verify_calls_an_edited_record_tampering_and_keeps_the_compliance_finding_apart() {
    let g = Gate::new();
    let log = g.path("edited.jsonl");
    AuditLog::new(&log)
        .with_key(g.path("k.key"))
        .append(vec![
            decided(
                request(1, "erin", &["deploy", "web"], None),
                json!({ "decision": "approve", "outcome": "approved", "run": true,
                        "rules": [{ "name": "prod-deploy", "decision": "approve" }],
                        "required": required("prod-deploy", 2),
                        "approvals": [approver("alice", None)] }),
            ),
            decided(
                request(2, "erin", &["ls"], None),
                json!({ "decision": "allow", "outcome": "allowed", "run": true, "by_default": true }),
            ),
        ])
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replace("[\"ls\"]", "[\"id\"]")).unwrap();
    let (status, r) = verify_json(&g, &log);
    assert_eq!(status, 1);
    assert_eq!(r["verdict"], "tampered", "{r:#}");
    assert_eq!(r["tampered"], true);
    assert_eq!(r["compliance_violation"], true);
    let out = run(&g, &["log", "verify", log.to_str().unwrap()]);
    out.status(1).any_stderr();
    let last = out.stdout.lines().last().unwrap();
    assert!(last.starts_with("TAMPERED: "), "{last}");
    assert!(
        last.contains("COMPLIANCE VIOLATION too: 1 problem"),
        "{last}"
    );
}

// ---------------------------------------------------------------------------------------------
// The file sink: idempotent per (log id, seq).

fn sink_policy(g: Gate, sink: &Path) -> Gate {
    g.policy(&format!(
        "version: 1\naudit:\n  sinks:\n    - {{ kind: file, path: {} }}\n",
        sink.display()
    ))
}

fn sink_lines(sink: &Path) -> Vec<Value> {
    std::fs::read_to_string(sink)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn copy_log(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let cp = |p: &Path| PathBuf::from(format!("{}.checkpoint", p.display()));
    let _ = std::fs::copy(cp(from), cp(to));
}

#[test]
fn pushing_a_copied_log_appends_nothing_the_file_sink_already_holds() {
    let g = Gate::new();
    let sink = g.path("sink/audit-copy.jsonl");
    std::fs::create_dir_all(sink.parent().unwrap()).unwrap();
    let g = sink_policy(g, &sink);
    for _ in 0..3 {
        run(&g, &["--", "true"]).any_stderr();
    }
    let held = sink_lines(&sink);
    assert_eq!(held.len(), 7, "genesis and three decisions and results");
    // A copy of the log: the same log id, and a delivery cursor of its own starting at 0.
    let copy = g.path("copy/audit.jsonl");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    copy_log(&g.path("audit.jsonl"), &copy);
    run(&g, &["log", "push", copy.to_str().unwrap()]).stderr_contains("7 delivered, 0 pending");
    assert_eq!(
        sink_lines(&sink),
        held,
        "the copy appended records a second time"
    );
    // The original log, appended to, still delivers its new records once.
    run(&g, &["--", "true"]).any_stderr();
    let after = sink_lines(&sink);
    assert_eq!(after.len(), 9);
    let seqs: Vec<u64> = after.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..9).collect::<Vec<_>>());
    // And the copy, pushed again now that the sink holds more than it does, adds nothing.
    run(&g, &["log", "push", copy.to_str().unwrap()]).any_stderr();
    assert_eq!(sink_lines(&sink).len(), 9);
}

#[test]
fn pushing_a_diverged_copy_is_refused_and_appends_nothing() {
    let g = Gate::new();
    let sink = g.path("sink/audit-fork.jsonl");
    std::fs::create_dir_all(sink.parent().unwrap()).unwrap();
    let g = sink_policy(g, &sink);
    run(&g, &["--", "true"]).any_stderr();
    let copy = g.path("copy/audit.jsonl");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    copy_log(&g.path("audit.jsonl"), &copy);
    // Both go on, differently: the same log id and seqs, other records.
    run(&g, &["--", "true"]).any_stderr();
    let mut c = g.command();
    c.args(["--", "echo", "fork"]).env("GATE_LOG", &copy);
    Checked::new(Ran::of(c)).any_stderr();
    let held = sink_lines(&sink);
    assert_eq!(held.len(), 5);
    run(&g, &["log", "push", copy.to_str().unwrap()])
        .status(1)
        .stderr_contains("fork");
    assert_eq!(sink_lines(&sink), held, "the fork was appended");
}
