//! The policy side of the real `gate` binary: `gate policy lint`, `gate policy test`,
//! `gate check`, merging of several policy files, and the shipped example policies.
//!
//! Bad-input cases are snapshot-tested with insta; the temporary directory is shown as `[DIR]`.
//! Each snapshot case also asserts its exit status and the `path:line:column` of every problem,
//! so a wrong position fails even when someone accepts a snapshot carelessly.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Checked, Gate, NO_SYSTEM_TIER};
use serde_json::{Value, json};

const CONFIG: i32 = 78;

/// Replaces the test directory with `[DIR]` so snapshots do not depend on it.
fn filtered(dir: &Path, text: &str) -> String {
    text.replace(&dir.to_string_lossy().into_owned(), "[DIR]")
}

/// Writes the given files, runs `gate policy lint` on all of them (absolute paths, in order)
/// and returns the test directory (kept alive) with the result.
fn lint(files: &[(&str, &str)]) -> (Gate, Checked) {
    let g = Gate::new();
    let paths: Vec<String> = files
        .iter()
        .map(|(name, yaml)| g.write(name, yaml).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["policy", "lint"];
    args.extend(paths.iter().map(String::as_str));
    let g = g.args(&args);
    let r = g.run();
    (g, r)
}

/// Lints one bad file, asserts exit 78, the exact problem count and that each expected
/// position is reported, and returns stderr with the directory filtered.
#[track_caller]
fn bad(files: &[(&str, &str)], positions: &[&str]) -> String {
    let (g, r) = lint(files);
    r.status(CONFIG).any_stderr();
    let err = filtered(g.dir.path(), &r.stderr);
    for pos in positions {
        assert!(
            err.contains(&format!("  --> [DIR]/{pos}\n")) || err.ends_with(&format!("[DIR]/{pos}")),
            "expected a problem at {pos}:\n{err}"
        );
    }
    let arrows = err.matches("  --> [DIR]/").count();
    assert_eq!(
        arrows,
        positions.len(),
        "expected exactly {} problems:\n{err}",
        positions.len()
    );
    let n = positions.len();
    let summary = format!(
        "error: {n} problem{} in policy",
        if n == 1 { "" } else { "s" }
    );
    assert!(
        err.trim_end().ends_with(&summary),
        "summary line missing:\n{err}"
    );
    assert!(!err.contains("panicked"), "gate panicked:\n{err}");
    assert!(r.stdout.is_empty(), "lint printed on stdout: {}", r.stdout);
    err
}

// ---------------------------------------------------------------------------------------------
// 1. Bad input: one clear error per problem, all at once, path:line:column, exit 78.
// ---------------------------------------------------------------------------------------------

#[test]
fn lint_empty_file() {
    let err = bad(&[("p.yaml", "")], &["p.yaml:1:1"]);
    assert!(err.contains("empty policy file"));
    insta::assert_snapshot!("empty_file", err);
}

#[test]
fn lint_whitespace_and_comment_only_file_is_empty_too() {
    let err = bad(&[("p.yaml", "# nothing here\n\n")], &["p.yaml:1:1"]);
    assert!(err.contains("empty policy file"), "{err}");
}

#[test]
fn lint_yaml_syntax_error() {
    let yaml = "version: 1\nrules:\n  - name: a\n   decision: deny\n  - name: b\n";
    let err = bad(&[("p.yaml", yaml)], &["p.yaml:4:4"]);
    assert!(err.contains("YAML syntax error"));
    insta::assert_snapshot!("yaml_syntax_error", err);
}

#[test]
fn lint_wrong_top_level_types() {
    let yaml = "version: 1\ndefaults: allow\nrules: 5\n";
    let err = bad(&[("p.yaml", yaml)], &["p.yaml:2:11", "p.yaml:3:8"]);
    assert!(err.contains("expected a mapping for `defaults`, found a string"));
    assert!(err.contains("expected a list for `rules`, found an integer"));
    insta::assert_snapshot!("wrong_top_level_types", err);
}

#[test]
fn lint_wrong_types_in_rules() {
    let yaml = r#"version: 1
groups:
  sec: [alice, bob]
rules:
  - name: r1
    match: { program: aws }
    decision: 3
  - name: r2
    match: { program: aws }
    decision: approve
    approval: { approvers: [sec], min_approvals: "two" }
  - name: r3
    match: { program: kubectl, args: iam }
    decision: deny
"#;
    // `decision: 3` is reported once, where it is written (7:15), with no knock-on "rule has
    // no decision"; `"two"` at 11:50; `args: iam` is not a list at 13:38.
    let err = bad(
        &[("p.yaml", yaml)],
        &["p.yaml:7:15", "p.yaml:11:50", "p.yaml:13:38"],
    );
    assert!(err.contains("unknown decision `3`"));
    assert!(err.contains("expected an integer, found a string"));
    assert!(err.contains("expected a list of glob patterns, found a string"));
    insta::assert_snapshot!("wrong_types_in_rules", err);
}

#[test]
fn lint_unknown_keys_with_did_you_mean() {
    let yaml = r#"version: 1
rulez: []
rules:
  - name: r1
    match: { progam: aws, args: [iam] }
    decison: deny
"#;
    let err = bad(
        &[("p.yaml", yaml)],
        &["p.yaml:2:1", "p.yaml:5:14", "p.yaml:6:5"],
    );
    for (key, hint) in [
        ("rulez", "rules"),
        ("progam", "program"),
        ("decison", "decision"),
    ] {
        assert!(
            err.contains(&format!("unknown key `{key}`")),
            "no error for `{key}`:\n{err}"
        );
        assert!(
            err.contains(&format!("= hint: did you mean `{hint}`?")),
            "no hint `{hint}`:\n{err}"
        );
    }
    insta::assert_snapshot!("unknown_keys", err);
}

#[test]
fn lint_unknown_key_far_from_any_lists_the_known_ones() {
    let yaml = "version: 1\nrules:\n  - name: r\n    match: { program: ls, frobnicate: 1 }\n    decision: allow\n";
    let err = bad(&[("p.yaml", yaml)], &["p.yaml:4:27"]);
    assert!(err.contains("unknown key `frobnicate`"));
    assert!(
        err.contains(
            "= hint: expected one of: program, args, args_any, regex, env, cwd, user, host"
        ),
        "{err}"
    );
}

#[test]
fn lint_bad_glob_and_bad_regex() {
    let yaml = r#"version: 1
rules:
  - name: g
    match: { program: "[abc" }
    decision: deny
  - name: re
    match:
      regex: '(unclosed'
    decision: deny
"#;
    let err = bad(&[("p.yaml", yaml)], &["p.yaml:4:23", "p.yaml:8:14"]);
    assert!(err.contains("bad glob `[abc`"));
    assert!(err.contains("bad regex `(unclosed`"));
    insta::assert_snapshot!("bad_glob_and_regex", err);
}

#[test]
fn lint_approvers_unknown_group_too_many_approvals_and_duplicate_rule() {
    // Several cross-reference problems in one file, all reported in one run.
    let yaml = r#"version: 1
groups:
  sec: [alice, bob]
rules:
  - name: a
    match: { program: aws }
    decision: approve
    approval: { approvers: [secuirty] }
  - name: b
    match: { program: kubectl }
    decision: approve
    approval:
      approvers: [sec]
      min_approvals: 3
  - name: a
    match: { program: rm }
    decision: deny
"#;
    let err = bad(
        &[("p.yaml", yaml)],
        &[
            "p.yaml:15:11", // duplicate rule `a`
            "p.yaml:8:29",  // unknown group (no knock-on "nobody can approve" error)
            "p.yaml:14:22", // 3 approvals, 2 members
        ],
    );
    assert!(err.contains("duplicate rule `a`"));
    assert!(err.contains("first defined at [DIR]/p.yaml:5:11"));
    assert!(err.contains("unknown group `secuirty`"));
    assert!(err.contains("rule `b` needs 3 approvals but only 2 principals can approve"));
    insta::assert_snapshot!("groups_and_duplicates", err);
}

#[test]
fn lint_duplicates_across_two_files_point_at_both() {
    let a = r#"version: 1
groups:
  sec: [alice, bob]
rules:
  - name: shared
    match: { program: aws }
    decision: allow
"#;
    let b = r#"version: 1
groups:
  sec: [carol]
rules:
  - name: shared
    match: { program: kubectl }
    decision: deny
"#;
    let err = bad(
        &[("a.yaml", a), ("b.yaml", b)],
        &["b.yaml:3:3", "b.yaml:5:11"],
    );
    assert!(err.contains("duplicate group `sec`"));
    assert!(err.contains("first defined at [DIR]/a.yaml:3:3"));
    assert!(err.contains("duplicate rule `shared`"));
    assert!(err.contains("first defined at [DIR]/a.yaml:5:11"));
    insta::assert_snapshot!("duplicates_across_files", err);
}

#[test]
fn lint_duplicates_across_files_found_through_gate_policy_too() {
    // The same check when the files come from GATE_POLICY rather than the command line.
    let g = Gate::new();
    let a = g.write(
        "a.yaml",
        "version: 1\nrules:\n  - name: x\n    match: { program: ls }\n    decision: allow\n",
    );
    let b = g.write(
        "b.yaml",
        "version: 1\nrules:\n  - name: x\n    match: { program: rm }\n    decision: deny\n",
    );
    let list = format!("{}:{}", a.display(), b.display());
    let g = g.env("GATE_POLICY", &list).args(&["policy", "lint"]);
    let r = g.run();
    r.status(CONFIG).any_stderr();
    let err = filtered(g.dir.path(), &r.stderr);
    assert!(
        err.contains("duplicate rule `x`\n  --> [DIR]/b.yaml:3:11"),
        "{err}"
    );
    assert!(err.contains("first defined at [DIR]/a.yaml:3:11"), "{err}");
}

#[test]
fn lint_float_version() {
    let err = bad(&[("p.yaml", "version: 1.0\nrules: []\n")], &["p.yaml:1:10"]);
    assert!(err.contains("expected the integer 1, found a floating-point number"));
    insta::assert_snapshot!("float_version", err);
}

#[test]
fn lint_unsupported_version() {
    let err = bad(&[("p.yaml", "version: 2\n")], &["p.yaml:1:10"]);
    assert!(err.contains("unsupported policy version 2"), "{err}");
}

#[test]
fn lint_missing_version() {
    let err = bad(
        &[("p.yaml", "rules:\n  - name: a\n    decision: allow\n")],
        &["p.yaml:1:1"],
    );
    assert!(err.contains("missing `version`"));
    insta::assert_snapshot!("missing_version", err);
}

#[test]
fn lint_refuses_inline_secrets_and_points_at_them() {
    let yaml = r#"version: 1
backends:
  chat:
    kind: slack
    channel: C0123ABCD
    token: xoxb-123
  hook:
    kind: teams
    webhook: https://example.webhook.office.com/webhookb2/abc
  fine:
    kind: slack
    channel: C0123ABCD
    token: keyring:gate/slack-bot
"#;
    // The problems are the inline values: `token` on line 6 and `webhook` on line 9.
    let err = bad(&[("p.yaml", yaml)], &["p.yaml:6:12", "p.yaml:9:14"]);
    assert!(err.contains("secrets are never written into policy files"));
    assert!(err.contains("`keyring:SERVICE/NAME`, `env:VAR` or `file:PATH`"));
    insta::assert_snapshot!("inline_secrets", err);
}

#[test]
fn lint_secret_references_are_accepted() {
    let yaml = r#"version: 1
backends:
  a: { kind: slack, channel: C1, token: "keyring:gate/slack" }
  b: { kind: slack, channel: C2, token: "env:SLACK_TOKEN" }
  c: { kind: teams, webhook: "file:/etc/gate/teams-webhook" }
"#;
    let (_g, r) = lint(&[("p.yaml", yaml)]);
    r.status(0).stderr_contains("1 file OK");
}

#[test]
fn lint_many_problems_in_one_file_reported_at_once() {
    // One file, problems of every kind `gate policy lint` checks inside a file.
    let yaml = r#"version: 1
defaults:
  decision: maybe
  timeout: soon
context:
  env: AWS_PROFILE
  redact: ['(?i)(password']
backends:
  chat: { kind: pigeon }
rules:
  - name: one
    match: { program: "[abc", args: [iam, "{put"], regex: '(unclosed' }
    decision: deny
    approval: { min_approvals: 2 }
  - name: two
    match: { progam: aws, env: { GATE_ENV: 5.5 } }
    decision: approve
    approval: { approvers: sec, min_approvals: 0, timeout: "-1m", allow_requester: "yes" }
  - match: { program: ls }
    decision: allow
tests:
  - run: []
    expect: { decision: allow, rulez: [] }
  - run: [ls]
"#;
    let err = bad(
        &[("p.yaml", yaml)],
        &[
            "p.yaml:3:13",  // decision: maybe
            "p.yaml:4:12",  // timeout: soon
            "p.yaml:6:8",   // env: not a list
            "p.yaml:7:12",  // bad redact regex
            "p.yaml:9:17",  // unknown backend kind
            "p.yaml:12:23", // bad glob in program
            "p.yaml:12:43", // bad glob in args
            "p.yaml:12:59", // bad regex
            "p.yaml:11:5",  // approval on a deny rule
            "p.yaml:16:14", // unknown key progam
            "p.yaml:16:44", // float in env glob
            "p.yaml:18:28", // approvers: not a list
            "p.yaml:18:48", // min_approvals: 0
            "p.yaml:18:60", // bad timeout
            "p.yaml:18:84", // allow_requester: "yes"
            "p.yaml:19:5",  // rule without name
            "p.yaml:22:10", // run: []
            "p.yaml:23:32", // unknown key in expect
            "p.yaml:24:5",  // test case without expect
        ],
    );
    insta::assert_snapshot!("many_problems_at_once", err);
}

#[test]
fn lint_reports_problems_of_all_files_at_once() {
    let (g, r) = lint(&[
        ("a.yaml", "version: 1\nrulez: []\n"),
        ("ok.yaml", "version: 1\n"),
        (
            "b.yaml",
            "version: 1\nrules:\n  - name: x\n    match: { program: \"[x\" }\n    decision: deny\n",
        ),
    ]);
    r.status(CONFIG).any_stderr();
    let err = filtered(g.dir.path(), &r.stderr);
    assert!(err.contains("  --> [DIR]/a.yaml:2:1\n"), "{err}");
    assert!(err.contains("  --> [DIR]/b.yaml:4:23\n"), "{err}");
    assert!(
        err.trim_end().ends_with("error: 2 problems in policy"),
        "{err}"
    );
}

/// Issue 2: "all problems in a file reported at once". A file with a bad glob *and* an unknown
/// approver group must report both in one run, not the glob now and the group after a fix.
#[test]
fn lint_reports_per_file_and_cross_reference_problems_together() {
    let yaml = r#"version: 1
rules:
  - name: a
    match: { program: "[abc" }
    decision: approve
    approval: { approvers: [nosuch] }
"#;
    let (g, r) = lint(&[("p.yaml", yaml)]);
    r.status(CONFIG).any_stderr();
    let err = filtered(g.dir.path(), &r.stderr);
    assert!(
        err.contains("  --> [DIR]/p.yaml:4:23\n"),
        "bad glob not reported:\n{err}"
    );
    assert!(
        err.contains("unknown group `nosuch`\n  --> [DIR]/p.yaml:6:29\n"),
        "unknown group not reported together with the bad glob:\n{err}"
    );
}

#[test]
fn lint_of_a_valid_file_says_ok() {
    let (_g, r) = lint(&[(
        "p.yaml",
        "version: 1\nrules:\n  - name: a\n    match: { program: ls }\n    decision: allow\n",
    )]);
    r.status(0).stderr_contains("1 file OK");
    assert!(r.stdout.is_empty());
}

#[test]
fn lint_of_a_missing_file_names_it() {
    let g = Gate::new().args(&["policy", "lint", "nope.yaml"]);
    let r = g.run();
    r.status(CONFIG).stderr_contains("nope.yaml");
}

#[test]
fn run_form_with_a_bad_policy_exits_78_and_runs_nothing() {
    let g = Gate::new().policy("version: 1\nrules:\n  - name: x\n    decison: allow\n");
    let marker = g.path("ran");
    let g = g.args(&["--", "touch", marker.to_str().unwrap()]);
    let r = g.run();
    r.status(CONFIG).stderr_contains("unknown key `decison`");
    assert!(
        filtered(g.dir.path(), &r.stderr).contains("[DIR]/policy.yaml:4:5"),
        "{}",
        r.stderr
    );
    assert!(
        !marker.exists(),
        "the command ran despite the broken policy"
    );

    // The same policy, fixed: the command runs (so the marker check above can fail).
    let g2 = Gate::new().policy("version: 1\n");
    let marker2 = g2.path("ran");
    let g2 = g2.args(&["--", "touch", marker2.to_str().unwrap()]);
    g2.run().status(0);
    assert!(marker2.exists());
}

// ---------------------------------------------------------------------------------------------
// 2. `gate policy test`
// ---------------------------------------------------------------------------------------------

const TESTED: &str = r#"version: 1
rules:
  - name: rm-root
    match: { program: rm, regex: '(^|\s)-\w*r\w*\s+/(\s|$)' }
    decision: deny
  - name: kube-prod
    match: { program: kubectl, args_any: [delete, apply], env: { GATE_ENV: prod } }
    decision: approve
    approval: { min_approvals: 2 }
tests:
  - run: [rm, -rf, /]
    expect: { decision: deny, rule: rm-root }
  - run: [rm, -rf, /tmp/x]
    expect: { decision: allow }
  - run: [kubectl, -n, web, delete, pod, x]
    env: { GATE_ENV: prod }
    expect: { decision: approve, rules: [kube-prod], min_approvals: 2 }
"#;

#[test]
fn policy_test_passing_file() {
    let g = Gate::new();
    let p = g.write("p.yaml", TESTED);
    let r = g.args(&["policy", "test", p.to_str().unwrap()]).run();
    r.status(0).stdout_has("3 passed, 0 failed");
    assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
}

#[test]
fn policy_test_failing_expectation_names_file_and_line() {
    // Two wrong expectations appended after the three good cases (lines 18 and 20):
    // without GATE_ENV=prod the kubectl rule does not match; rm -rf / matches rm-root only.
    let yaml = format!(
        "{TESTED}  - run: [kubectl, -n, web, delete, pod, x]\n    expect: {{ decision: approve }}\n  - run: [rm, -rf, /]\n    expect: {{ decision: deny, rule: kube-prod }}\n"
    );
    let g = Gate::new();
    let p = g.write("p.yaml", &yaml);
    let g = g.args(&["policy", "test", p.to_str().unwrap()]);
    let r = g.run();
    r.status(1);
    let out = filtered(g.dir.path(), &r.stdout);
    assert!(
        out.contains("FAIL  [DIR]/p.yaml:18  kubectl -n web delete pod x\n      expected decision `approve`, got `allow`"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  [DIR]/p.yaml:20  rm -rf /\n      expected rule `kube-prod` to match; matched: rm-root"),
        "{out}"
    );
    assert_eq!(out.matches("FAIL  ").count(), 2, "{out}");
    assert!(out.trim_end().ends_with("3 passed, 2 failed"), "{out}");
    insta::assert_snapshot!("policy_test_failures", out);
}

#[test]
fn policy_test_wrong_decision_is_reported() {
    let yaml = "version: 1\nrules:\n  - name: r\n    match: { program: ls }\n    decision: confirm\ntests:\n  - run: [ls, -l]\n    expect: { decision: allow }\n  - run: [cat]\n    expect: { decision: allow }\n";
    let g = Gate::new();
    let p = g.write("p.yaml", yaml);
    let g = g.args(&["policy", "test", p.to_str().unwrap()]);
    let r = g.run();
    r.status(1);
    let out = filtered(g.dir.path(), &r.stdout);
    assert!(
        out.contains("FAIL  [DIR]/p.yaml:7  ls -l\n      expected decision `allow`, got `confirm`"),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");
}

#[test]
fn policy_test_runs_each_file_alone() {
    // b.yaml's rule would deny `ls`, but a.yaml's tests run against a.yaml only.
    let g = Gate::new();
    let a = g.write(
        "a.yaml",
        "version: 1\ntests:\n  - run: [ls]\n    expect: { decision: allow }\n",
    );
    let b = g.write(
        "b.yaml",
        "version: 1\nrules:\n  - name: no-ls\n    match: { program: ls }\n    decision: deny\ntests:\n  - run: [ls]\n    expect: { decision: deny, rule: no-ls }\n",
    );
    g.args(&["policy", "test", a.to_str().unwrap(), b.to_str().unwrap()])
        .run()
        .status(0)
        .stdout_has("2 passed, 0 failed");
}

#[test]
fn policy_test_with_invalid_policy_exits_78() {
    let g = Gate::new();
    let p = g.write("p.yaml", "version: 1\nrules: 5\n");
    let g = g.args(&["policy", "test", p.to_str().unwrap()]);
    let r = g.run();
    r.status(CONFIG).any_stderr();
    assert!(
        filtered(g.dir.path(), &r.stderr).contains("[DIR]/p.yaml:2:8"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("passed"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// 3. `gate check`
// ---------------------------------------------------------------------------------------------

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn current_host() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

fn matcher_policy() -> String {
    format!(
        r#"version: 1
defaults:
  decision: allow
  timeout: 1h
groups:
  security: [alice, bob, carol]
  sre: [dave, erin]
rules:
  - name: iam-writes
    match: {{ program: aws, args: [iam, "{{put,attach}}-*"] }}
    decision: approve
    approval: {{ approvers: [security], min_approvals: 2, timeout: 30m }}
  - name: aws-prod
    match: {{ program: aws, env: {{ AWS_PROFILE: "prod*" }} }}
    decision: approve
    approval: {{ approvers: [sre], min_approvals: 1, timeout: 10m }}
  - name: s3-copy-out
    match: {{ program: aws, args: [s3], args_any: [cp, mv, sync] }}
    decision: confirm
  - name: k8s-writes
    match: {{ program: kubectl, args_any: [apply, delete, patch] }}
    decision: approve
  - name: k8s-prod
    match: {{ program: kubectl, env: {{ GATE_ENV: "prod*" }} }}
    decision: confirm
  - name: tf-destroy
    match: {{ program: terraform, args: [destroy] }}
    decision: deny
    message: never destroy from a laptop
  - name: tf-any
    match: {{ program: terraform }}
    decision: confirm
  - name: git-force
    match: {{ program: git, args: [push], regex: '\s(--force|-f)(\s|$)' }}
    decision: confirm
  - name: quoted
    match: {{ program: echo, regex: "'two words'" }}
    decision: confirm
  - name: sys-tools
    match: {{ program: "sys*" }}
    decision: confirm
  - name: in-vault
    match: {{ cwd: "*/vault-*" }}
    decision: deny
  - name: me-on-this-host
    match: {{ program: id, user: "{user}", host: "{host}" }}
    decision: confirm
  - name: someone-else
    match: {{ program: id, user: nobody-gate-test }}
    decision: deny
"#,
        user = current_user(),
        host = current_host(),
    )
}

/// Runs `gate check --json -- argv` and parses the JSON.
fn check_json(g: Gate, argv: &[&str]) -> Value {
    let mut args = vec!["check", "--json", "--"];
    args.extend_from_slice(argv);
    let r = g.args(&args).run();
    r.status(0).stderr(NO_SYSTEM_TIER);
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", r.stdout))
}

fn rule_names(v: &Value) -> Vec<String> {
    v["rules"]
        .as_array()
        .expect("rules is an array")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

fn words(v: &Value) -> Vec<String> {
    v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn check_matchers_table() {
    struct Case {
        argv: &'static [&'static str],
        env: &'static [(&'static str, &'static str)],
        decision: &'static str,
        rules: &'static [&'static str],
        words: &'static [&'static str],
    }
    let cases = [
        // program + args prefix with a brace glob; aws global options are skipped.
        Case {
            argv: &[
                "aws",
                "--profile",
                "p",
                "iam",
                "put-role-policy",
                "--role-name",
                "x",
            ],
            env: &[],
            decision: "approve",
            rules: &["iam-writes"],
            words: &["iam", "put-role-policy"],
        },
        Case {
            argv: &["aws", "--region", "eu-west-1", "iam", "attach-role-policy"],
            env: &[],
            decision: "approve",
            rules: &["iam-writes"],
            words: &["iam", "attach-role-policy"],
        },
        Case {
            argv: &["aws", "iam", "create-role", "--role-name", "x"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["iam", "create-role"],
        },
        // A prefix longer than the words does not match.
        Case {
            argv: &["aws", "iam"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["iam"],
        },
        // args + args_any: the word right after the prefix.
        Case {
            argv: &["aws", "s3", "cp", "s3://bucket/key", "."],
            env: &[],
            decision: "confirm",
            rules: &["s3-copy-out"],
            words: &["s3", "cp", "s3://bucket/key", "."],
        },
        Case {
            argv: &["aws", "s3", "ls", "cp"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["s3", "ls", "cp"],
        },
        // env glob on the requester's environment.
        Case {
            argv: &["aws", "sts", "get-caller-identity"],
            env: &[("AWS_PROFILE", "production")],
            decision: "approve",
            rules: &["aws-prod"],
            words: &["sts", "get-caller-identity"],
        },
        Case {
            argv: &["aws", "sts", "get-caller-identity"],
            env: &[("AWS_PROFILE", "staging")],
            decision: "allow",
            rules: &[],
            words: &["sts", "get-caller-identity"],
        },
        // kubectl: --context and -n take values; args_any without a prefix looks at word 0.
        Case {
            argv: &[
                "kubectl",
                "--context",
                "c",
                "-n",
                "ns",
                "delete",
                "pod",
                "x",
            ],
            env: &[],
            decision: "approve",
            rules: &["k8s-writes"],
            words: &["delete", "pod", "x"],
        },
        Case {
            argv: &["kubectl", "get", "delete"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["get", "delete"],
        },
        Case {
            argv: &["kubectl", "get", "pods"],
            env: &[("GATE_ENV", "prod-eu")],
            decision: "confirm",
            rules: &["k8s-prod"],
            words: &["get", "pods"],
        },
        // Most restrictive wins: approve (k8s-writes) over confirm (k8s-prod).
        Case {
            argv: &["kubectl", "-n", "web", "apply", "-f", "x.yaml"],
            env: &[("GATE_ENV", "prod")],
            decision: "approve",
            rules: &["k8s-writes", "k8s-prod"],
            words: &["apply"],
        },
        // terraform: -chdir= is an option; deny beats confirm.
        Case {
            argv: &["terraform", "-chdir=infra", "destroy", "-auto-approve"],
            env: &[],
            decision: "deny",
            rules: &["tf-destroy", "tf-any"],
            words: &["destroy"],
        },
        Case {
            argv: &["terraform", "plan"],
            env: &[],
            decision: "confirm",
            rules: &["tf-any"],
            words: &["plan"],
        },
        // git: -C takes a value (even one that looks like a subcommand).
        Case {
            argv: &["git", "-C", "repo", "push", "--force", "origin", "main"],
            env: &[],
            decision: "confirm",
            rules: &["git-force"],
            words: &["push", "origin", "main"],
        },
        Case {
            argv: &["git", "push", "origin", "main"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["push", "origin", "main"],
        },
        Case {
            argv: &["git", "-C", "push", "status", "-f"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["status"],
        },
        // regex runs on the shell-quoted command line.
        Case {
            argv: &["echo", "two words"],
            env: &[],
            decision: "confirm",
            rules: &["quoted"],
            words: &["two words"],
        },
        Case {
            argv: &["echo", "two", "words"],
            env: &[],
            decision: "allow",
            rules: &[],
            words: &["two", "words"],
        },
        // program glob on the basename.
        Case {
            argv: &["/usr/bin/systemctl", "restart", "x"],
            env: &[],
            decision: "confirm",
            rules: &["sys-tools"],
            words: &["restart", "x"],
        },
        // user and host globs on the requester.
        Case {
            argv: &["id"],
            env: &[],
            decision: "confirm",
            rules: &["me-on-this-host"],
            words: &[],
        },
    ];
    let policy = matcher_policy();
    for c in &cases {
        let mut g = Gate::new().policy(&policy);
        for (k, v) in c.env {
            g = g.env(k, v);
        }
        let v = check_json(g, c.argv);
        let what = format!("{:?} env {:?}: {v:#}", c.argv, c.env);
        assert_eq!(v["decision"], c.decision, "decision of {what}");
        assert_eq!(rule_names(&v), c.rules, "matched rules of {what}");
        assert_eq!(words(&v), c.words, "words of {what}");
        assert_eq!(v["by_default"], c.rules.is_empty(), "by_default of {what}");
    }
}

#[test]
fn check_cwd_glob() {
    let policy = matcher_policy();
    let g = Gate::new().policy(&policy);
    let vault = g.path("vault-prod");
    std::fs::create_dir_all(&vault).unwrap();
    let g = g.args(&["check", "--json", "--", "ls"]);
    let out = g.command().current_dir(&vault).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "deny", "{v:#}");
    assert_eq!(rule_names(&v), ["in-vault"]);

    // The test directory itself is not a vault.
    let v = check_json(Gate::new().policy(&policy), &["ls"]);
    assert_eq!(v["decision"], "allow", "{v:#}");
    assert_eq!(v["by_default"], true);
}

#[test]
fn check_combines_two_approve_rules() {
    let v = check_json(
        Gate::new()
            .policy(&matcher_policy())
            .env("AWS_PROFILE", "prod"),
        &["aws", "iam", "put-role-policy", "--role-name", "ci"],
    );
    assert_eq!(v["decision"], "approve");
    assert_eq!(rule_names(&v), ["iam-writes", "aws-prod"]);
    let req = &v["requirement"];
    assert_eq!(req["min_approvals"], 2, "largest min_approvals: {req:#}");
    assert_eq!(req["timeout"], "10m", "shortest timeout: {req:#}");
    assert_eq!(req["allow_requester"], false);
    let clauses = req["clauses"].as_array().unwrap();
    assert_eq!(
        clauses.len(),
        2,
        "each rule's approver set is its own clause: {req:#}"
    );
    assert_eq!(clauses[0]["rule"], "iam-writes");
    assert_eq!(clauses[0]["min_approvals"], 2);
    assert_eq!(clauses[0]["eligible"], json!(["alice", "bob", "carol"]));
    assert_eq!(clauses[1]["rule"], "aws-prod");
    assert_eq!(clauses[1]["min_approvals"], 1);
    assert_eq!(clauses[1]["eligible"], json!(["dave", "erin"]));
}

#[test]
fn check_text_output_explains_the_decision() {
    let g = Gate::new()
        .policy(&matcher_policy())
        .env("AWS_PROFILE", "prod")
        .args(&["check", "--", "aws", "iam", "put-role-policy"]);
    let r = g.run();
    r.status(0).stderr(NO_SYSTEM_TIER);
    let out = filtered(g.dir.path(), &r.stdout);
    let line_of = |name: &str| {
        matcher_policy()
            .lines()
            .position(|l| l.trim() == format!("- name: {name}"))
            .unwrap()
            + 1
    };
    assert!(out.starts_with("decision: approve\n"), "{out}");
    assert!(out.contains("words:    iam put-role-policy\n"), "{out}");
    assert!(
        out.contains(&format!(
            "  * iam-writes               approve  [DIR]/policy.yaml:{}\n",
            line_of("iam-writes")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  * aws-prod                 approve  [DIR]/policy.yaml:{}\n",
            line_of("aws-prod")
        )),
        "{out}"
    );
    assert!(
        out.contains("approval: 2 distinct approvers, timeout 10m, not the requester\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  - 2 for `iam-writes` from alice, bob, carol, at least one from each of `security`\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("  - 1 for `aws-prod` from dave, erin"),
        "{out}"
    );

    // A deny shows the rule's message; the non-deciding rule is listed without the star.
    let r = Gate::new()
        .policy(&matcher_policy())
        .args(&["check", "--", "terraform", "destroy"])
        .run();
    r.status(0)
        .stderr(NO_SYSTEM_TIER)
        .stdout_has("decision: deny\n")
        .stdout_has("  * tf-destroy ")
        .stdout_has("      never destroy from a laptop\n")
        .stdout_has("    tf-any                   confirm ");
}

#[test]
fn check_by_default_when_nothing_matches() {
    let g = Gate::new().policy(&matcher_policy());
    let r = g.args(&["check", "--", "cat", "README"]).run();
    r.status(0)
        .stderr(NO_SYSTEM_TIER)
        .stdout_has("decision: allow\n")
        .stdout_has("why:      no rule of ")
        .stdout_has("matches, and its `defaults.decision` is `allow`");

    let v = check_json(
        Gate::new().policy("version: 1\ndefaults: { decision: approve, timeout: 20m }\n"),
        &["cat", "README"],
    );
    assert_eq!(v["decision"], "approve");
    assert_eq!(v["by_default"], true);
    assert_eq!(v["rules"], json!([]));
    assert_eq!(v["requirement"]["min_approvals"], 1);
    assert_eq!(v["requirement"]["timeout"], "20m");
    assert_eq!(v["requirement"]["clauses"][0]["rule"], "defaults");
}

#[test]
fn check_runs_nothing() {
    let g = Gate::new().policy("version: 1\n");
    let marker = g.path("ran");
    let g = g.args(&["check", "--", "touch", marker.to_str().unwrap()]);
    let r = g.run();
    r.status(0)
        .stderr(NO_SYSTEM_TIER)
        .stdout_has("decision: allow");
    assert!(!marker.exists(), "gate check ran the command");
}

#[test]
fn check_json_shape() {
    let g = Gate::new().policy(&matcher_policy());
    let policy_path = g.path("policy.yaml");
    let v = check_json(
        g,
        &["kubectl", "--context", "prod", "delete", "pod", "web-1"],
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "decision",
            "by_default",
            "commands",
            "opaque",
            "unread",
            "rules",
            "requirement",
            "words",
            "argv",
            "executable",
            "digest",
            "policy_files",
            "system_tier"
        ]
    );
    assert_eq!(v["decision"], "approve");
    assert_eq!(v["by_default"], false);
    let rule = &v["rules"][0];
    assert_eq!(rule["name"], "k8s-writes");
    assert_eq!(rule["decision"], "approve");
    assert_eq!(rule["file"], policy_path.to_str().unwrap());
    let line = matcher_policy()
        .lines()
        .position(|l| l.trim() == "- name: k8s-writes")
        .unwrap()
        + 1;
    assert_eq!(rule["line"], line);
    let req = v["requirement"].as_object().unwrap();
    let req_keys: Vec<&str> = req.keys().map(String::as_str).collect();
    for k in [
        "clauses",
        "min_approvals",
        "allow_requester",
        "timeout",
        "backend",
    ] {
        assert!(req_keys.contains(&k), "requirement lacks {k}: {req:?}");
    }
    assert_eq!(req["min_approvals"], 1);
    assert_eq!(req["timeout"], "1h", "defaults.timeout applies: {req:?}");
    assert_eq!(req["backend"], Value::Null);
    assert_eq!(
        v["argv"],
        json!(["kubectl", "--context", "prod", "delete", "pod", "web-1"])
    );
    assert_eq!(v["words"], json!(["delete", "pod", "web-1"]));
    let digest = v["digest"].as_str().unwrap();
    assert!(
        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "digest is not SHA-256 hex: {digest}"
    );
    assert_eq!(v["policy_files"], json!([policy_path.to_str().unwrap()]));

    // An executable that exists is resolved on PATH; one that does not is null.
    let v = check_json(Gate::new().policy("version: 1\n"), &["ls"]);
    let exe = v["executable"].as_str().expect("ls resolves");
    assert!(exe.starts_with('/') && exe.ends_with("/ls"), "{exe}");
    let v = check_json(
        Gate::new().policy("version: 1\n"),
        &["no-such-program-gate-test"],
    );
    assert_eq!(v["executable"], Value::Null);
    assert_eq!(v["requirement"], Value::Null);
}

#[test]
fn check_json_digest_depends_on_argv() {
    let a = check_json(Gate::new().policy("version: 1\n"), &["echo", "a"]);
    let b = check_json(Gate::new().policy("version: 1\n"), &["echo", "b"]);
    assert_ne!(a["digest"], b["digest"]);
}

// ---------------------------------------------------------------------------------------------
// Merging: system dir (not touched here), user file, GATE_POLICY, --policy.
// ---------------------------------------------------------------------------------------------

/// A test directory with a user file, two GATE_POLICY files and a `--policy` file.
fn merged() -> (Gate, PathBuf) {
    let g = Gate::new();
    // The user's own file tries to loosen: default allow, an allow rule for rm.
    g.write(
        "config/gate/policy.yaml",
        r#"version: 1
defaults: { decision: allow, timeout: 2h }
rules:
  - name: user-rm-ok
    match: { program: rm }
    decision: allow
"#,
    );
    let a = g.write(
        "a.yaml",
        r#"version: 1
defaults: { decision: deny }
rules:
  - name: ls-ok
    match: { program: ls }
    decision: allow
  # Defaults are per file: without an opinion on git, this file's default would deny it.
  - name: git-ok
    match: { program: git }
    decision: allow
  - name: no-rm
    match: { program: rm }
    decision: deny
    message: no rm here
"#,
    );
    let b = g.write(
        "b.yaml",
        r#"version: 1
groups:
  sre: [dave, erin]
rules:
  - name: push-needs-one
    match: { program: git, args: [push] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 1, timeout: 1h }
"#,
    );
    let c = g.write(
        "c.yaml",
        r#"version: 1
groups:
  leads: [fay, gus, hal]
rules:
  - name: push-needs-two
    match: { program: git, args: [push] }
    decision: approve
    approval: { approvers: [leads], min_approvals: 2, timeout: 5m }
"#,
    );
    let list = format!("{}:{}", a.display(), b.display());
    let g = g.env("GATE_POLICY", &list);
    (g, c)
}

/// Runs `gate ARGS` and parses stdout as JSON.
fn json_of(g: Gate, args: &[&str]) -> Value {
    let r = g.args(args).run();
    r.status(0).stderr(NO_SYSTEM_TIER);
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", r.stdout))
}

#[test]
fn merge_gate_policy_and_cli_policy_files() {
    let (g, c) = merged();
    let files: Vec<String> = ["config/gate/policy.yaml", "a.yaml", "b.yaml", "c.yaml"]
        .iter()
        .map(|f| g.path(f).to_string_lossy().into_owned())
        .collect();
    let c = c.to_string_lossy().into_owned();
    let v = json_of(
        g,
        &[
            "check", "--json", "--policy", &c, "--", "git", "push", "origin", "main",
        ],
    );
    // Merge order: user file, GATE_POLICY in order, then --policy.
    assert_eq!(v["policy_files"], json!(files), "{v:#}");
    assert_eq!(v["decision"], "approve");
    assert_eq!(
        rule_names(&v),
        ["git-ok", "push-needs-one", "push-needs-two"]
    );
    let req = &v["requirement"];
    assert_eq!(req["min_approvals"], 2, "{req:#}");
    assert_eq!(req["timeout"], "5m", "{req:#}");
    assert_eq!(req["clauses"][0]["eligible"], json!(["dave", "erin"]));
    assert_eq!(req["clauses"][1]["eligible"], json!(["fay", "gus", "hal"]));

    // Without the --policy file only the first approve rule applies.
    let (g, _) = merged();
    let v = json_of(
        g,
        &["check", "--json", "--", "git", "push", "origin", "main"],
    );
    assert_eq!(rule_names(&v), ["git-ok", "push-needs-one"]);
    assert_eq!(v["requirement"]["min_approvals"], 1);
    assert_eq!(v["requirement"]["timeout"], "1h");
}

#[test]
fn merge_global_policy_flag_before_the_subcommand() {
    // `--policy` is a global flag: it works before the subcommand as well as after it.
    let (g, c) = merged();
    let c = c.to_string_lossy().into_owned();
    let v = json_of(
        g,
        &[
            "--policy", &c, "check", "--json", "--", "git", "push", "origin", "main",
        ],
    );
    assert_eq!(
        rule_names(&v),
        ["git-ok", "push-needs-one", "push-needs-two"]
    );
}

#[test]
fn merge_later_files_only_tighten() {
    // The user file says `defaults.decision: allow` and allows rm; a.yaml says deny for both.
    let (g, _) = merged();
    let v = json_of(g, &["check", "--json", "--", "cat", "x"]);
    assert_eq!(
        v["decision"], "deny",
        "the most restrictive default wins: {v:#}"
    );
    assert_eq!(v["by_default"], true);

    let (g, _) = merged();
    let v = json_of(g, &["check", "--json", "--", "rm", "-f", "x"]);
    assert_eq!(v["decision"], "deny", "{v:#}");
    assert_eq!(rule_names(&v), ["user-rm-ok", "no-rm"]);

    // The same user file alone does allow both: the deny above came from merging.
    let g = Gate::new();
    g.write(
        "config/gate/policy.yaml",
        "version: 1\ndefaults: { decision: allow }\nrules:\n  - name: user-rm-ok\n    match: { program: rm }\n    decision: allow\n",
    );
    let v = json_of(g, &["check", "--json", "--", "rm", "-f", "x"]);
    assert_eq!(v["decision"], "allow", "{v:#}");

    // The run form obeys the merge: rm is refused with the rule's message, nothing runs.
    let (g, _) = merged();
    let victim = g.write("victim", "x");
    let g = g.args(&["--", "rm", "-f", victim.to_str().unwrap()]);
    let r = g.run();
    r.status(77)
        .stderr_contains("no-rm")
        .stderr_contains("no rm here");
    assert!(victim.exists(), "a denied rm ran");
}

#[test]
fn merge_duplicate_group_across_gate_policy_and_cli_file() {
    let (g, _) = merged();
    let d = g.write("d.yaml", "version: 1\ngroups:\n  sre: [mallory]\n");
    let g = g.args(&["check", "--policy", d.to_str().unwrap(), "--", "ls"]);
    let r = g.run();
    r.status(CONFIG).any_stderr();
    let err = filtered(g.dir.path(), &r.stderr);
    assert!(
        err.contains("duplicate group `sre`\n  --> [DIR]/d.yaml:3:3"),
        "{err}"
    );
    assert!(err.contains("first defined at [DIR]/b.yaml:3:3"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 4. Shipped policies.
// ---------------------------------------------------------------------------------------------

fn shipped_policies() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no policies/*.yaml shipped");
    files
}

#[test]
fn shipped_policies_lint_clean() {
    for p in shipped_policies() {
        let r = Gate::new()
            .args(&["policy", "lint", p.to_str().unwrap()])
            .run();
        r.status(0).stderr_contains("gate: 1 file OK, ");
        assert_eq!(r.stderr.lines().count(), 1, "{}: {}", p.display(), r.stderr);
    }
}

#[test]
fn shipped_policies_pass_their_tests() {
    for p in shipped_policies() {
        let r = Gate::new()
            .args(&["policy", "test", p.to_str().unwrap()])
            .run();
        assert_eq!(
            r.status,
            0,
            "{} fails its tests:\n{}\n{}",
            p.display(),
            r.stdout,
            r.stderr
        );
        let summary = r.stdout.lines().last().unwrap_or("");
        let passed: usize = summary
            .strip_suffix(" passed, 0 failed")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: unexpected summary {summary:?}", p.display()));
        assert!(passed > 0, "{} has no `tests:` cases", p.display());
    }
}
