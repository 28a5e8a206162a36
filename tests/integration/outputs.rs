//! What gate prints for people and for machines, pinned whole: `gate check`'s text and every
//! `--json` output (check, log show, log verify, serve token list) as insta snapshots, with
//! what changes by itself (temp paths, ids, hashes, times, the host) filtered
//! (`common::snap`). A change to any of these is a change users and scripts see: review the
//! snapshot diff (`cargo insta review`) and say so in the commit. The run form's `--json` is in
//! run_path, `gate requests --json` in local_approval, lint messages in policy_cli.

use crate::common;

use common::process::Server;
use common::{Gate, NO_SYSTEM_TIER, Ran};

const POLICY: &str = r#"version: 1
defaults: { timeout: 30m }
groups:
  security: [alice, bob]
  sre: [carol, dave]
rules:
  - name: iam-writes
    match: { program: aws, args: [iam, "{put,attach}-*"] }
    decision: approve
    risk: high
    category: privilege-escalation
    approval: { approvers: [security], min_approvals: 2 }
  - name: prod-profile
    match: { program: aws, env: { AWS_PROFILE: prod } }
    decision: approve
    approval: { approvers: [sre], timeout: 10m }
  - name: rm-root
    match: { program: rm, regex: '(^|\s)-\w*r\w*\s+/(\s|$)' }
    decision: deny
    message: refusing to remove /
  - name: ls-ok
    match: { program: ls }
    decision: allow
"#;

/// `gate check [--json] -- argv` with [`POLICY`] (and `env`): stdout, after checking the
/// exit status and that stderr says only what it says without a system tier.
fn check(json: bool, env: &[(&str, &str)], argv: &[&str]) -> (Gate, String) {
    let mut g = with_fake_aws(Gate::new().policy(POLICY));
    for (k, v) in env {
        g = g.env(k, v);
    }
    let mut args = vec!["check"];
    if json {
        args.push("--json");
    }
    args.push("--");
    args.extend_from_slice(argv);
    let g = g.args(&args);
    let r = g.run();
    r.status(0).stderr(NO_SYSTEM_TIER);
    let out = r.stdout.clone();
    (g, out)
}

/// A snapshot's name, the environment and the command.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn check_text_for_each_decision() {
    let cases: [Case; 4] = [
        ("check_text_allow", &[], &["ls", "-l"]),
        ("check_text_by_default", &[], &["cat", "README"]),
        ("check_text_deny", &[], &["rm", "-rf", "/"]),
        (
            "check_text_approve_two_rules",
            &[("AWS_PROFILE", "prod")],
            &["aws", "iam", "put-role-policy", "--role-name", "ci"],
        ),
    ];
    for (name, env, argv) in cases {
        let (g, out) = check(false, env, argv);
        common::snap::settings(g.dir.path()).bind(|| insta::assert_snapshot!(name, out));
    }
}

#[test]
fn check_json_for_each_decision() {
    let cases: [Case; 3] = [
        ("check_json_allow", &[], &["ls", "-l"]),
        ("check_json_deny", &[], &["rm", "-rf", "/"]),
        (
            "check_json_approve_two_rules",
            &[("AWS_PROFILE", "prod")],
            &["aws", "iam", "put-role-policy", "--role-name", "ci"],
        ),
    ];
    for (name, env, argv) in cases {
        let (g, out) = check(true, env, argv);
        let v: serde_json::Value = serde_json::from_str(&out).expect("check --json is JSON");
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        common::snap::settings(g.dir.path()).bind(|| insta::assert_snapshot!(name, pretty));
    }
}

/// `aws` on PATH as a script in the test directory, so the resolved executable is the same on
/// every machine.
fn with_fake_aws(g: Gate) -> Gate {
    use std::os::unix::fs::PermissionsExt;
    let aws = g.write("bin/aws", "#!/bin/sh\n");
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", g.path("bin").display());
    g.env("PATH", &path)
}

/// A log with an allowed run and a denied one.
fn log_with_two_runs() -> Gate {
    let g = Gate::new().policy(POLICY);
    g.command().args(["--", "ls", "/"]).output().unwrap();
    let r = Ran::of({
        let mut c = g.command();
        c.args(["--", "rm", "-rf", "/"]);
        c
    });
    r.status(77);
    g
}

#[test]
fn log_show_json_prints_the_records_as_stored() {
    let g = log_with_two_runs();
    let r = g
        .command()
        .args(["log", "show", "--json"])
        .output()
        .unwrap();
    let r = Ran::from_output(r);
    r.status(0);
    assert_eq!(r.stderr, "", "log show --json says nothing on stderr");
    let stored = std::fs::read_to_string(g.path("audit.jsonl")).unwrap();
    assert_eq!(r.stdout, stored, "one record per line, as stored");
    common::snap::settings(g.dir.path())
        .bind(|| insta::assert_snapshot!("log_show_json", r.stdout));
}

#[test]
fn log_verify_json_reports_an_intact_log() {
    let g = log_with_two_runs();
    let key = Ran::of({
        let mut c = g.command();
        c.args(["log", "key"]);
        c
    });
    key.status(0);
    let r = Ran::of({
        let mut c = g.command();
        c.args(["log", "verify", "--json", "--key", key.stdout.trim()]);
        c
    });
    r.status(0);
    assert_eq!(r.stderr, "");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON object");
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    let mut settings = common::snap::settings(g.dir.path());
    // The records' length varies with their durations' digits.
    settings.add_filter(r#""bytes": \d+"#, r#""bytes": [BYTES]"#);
    settings.bind(|| insta::assert_snapshot!("log_verify_json_intact", pretty));
}

#[test]
fn serve_token_list_json_names_tokens_never_secrets() {
    let home = tempfile::tempdir().unwrap();
    let srv = Server::start(home.path(), "version: 1\n");
    let secret = srv.token("alice", None);
    srv.token("bob", Some("90d"));
    let mut c = srv.gate();
    c.args(["serve", "token", "list", "--json", "--db"])
        .arg(&srv.db);
    let r = Ran::of(c);
    r.status(0);
    assert!(!r.stdout.contains(&secret), "a secret in the list");
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let pretty = serde_json::to_string_pretty(&lines).unwrap();
    let mut settings = common::snap::settings(home.path());
    // Token ids are random: `gate_<id>_...` shows the id, which the list names.
    settings.add_filter(r#""id": "[0-9a-f]{8}""#, r#""id": "[TOKEN_ID]""#);
    settings.bind(|| insta::assert_snapshot!("serve_token_list_json", pretty));
}
