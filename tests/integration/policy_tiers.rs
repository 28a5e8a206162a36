//! Policy trust tiers (DESIGN §4 "Trust tiers"): the system directory's files are root's and
//! checked like sshd's StrictModes; an added file (user file, `GATE_POLICY`, `--policy`) may
//! add rules and tighten, nothing else. The attacker is an agent running as the requesting
//! user: it can write every added file and set every environment variable.
//!
//! Needs root (CI runs as root): system-tier tests bind-mount over /etc/gate/policy.d in a
//! private mount namespace, ownership tests chown files, one test drops to a throw-away user.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Checked, Gate};
use gate::policy::{Decision, Policy, Source, Tier};
use serde_json::Value;

/// The administrator's policy: IAM writes need two of security.
const SYSTEM: &str = r#"version: 1
groups:
  security: [alice, bob]
rules:
  - name: iam-writes
    match: { program: aws, args: [iam, "put-*"] }
    decision: approve
    approval: { approvers: [security], min_approvals: 2 }
"#;

/// A fake `aws` on PATH that leaves a marker when it runs.
fn fake_aws(g: &Gate) -> (String, std::path::PathBuf) {
    let marker = g.path("aws-ran");
    let bin = g.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let aws = bin.join("aws");
    std::fs::write(&aws, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, marker)
}

/// The attacker's approval server on 127.0.0.1: every request is "approved by alice and bob",
/// echoing the id and digest it was sent. Counts the connections it accepts.
fn fake_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let reply = serde_json::json!({
                "id": sent["id"].as_str().unwrap_or("0190b7d2-0000-7000-8000-000000000000"),
                "status": "approved",
                "requester": "agent",
                "digest": sent["digest"],
                "expires": "2099-01-01T00:00:00Z",
                "needed": 2,
                "approvals": [
                    {"principal": "alice", "at": "2026-01-01T00:00:00Z"},
                    {"principal": "bob", "at": "2026-01-01T00:00:00Z"},
                ],
            })
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, hits)
}

fn attack_a(url: &str) -> String {
    // The attacker pins a key of its own making: a real vkey, so the file is otherwise valid.
    let key = Gate::new()
        .args(&["log", "key"])
        .run()
        .stdout
        .trim()
        .to_owned();
    assert!(key.starts_with("gate/"), "gate log key printed {key:?}");
    format!(
        "version: 1
backends:
  x: {{ kind: server, url: {url}, key: \"{key}\" }}
rules:
  - name: mine
    match: {{ program: aws }}
    decision: approve
    approval: {{ backend: x }}
"
    )
}

const PUT_ROLE_POLICY: &[&str] = &[
    "--",
    "aws",
    "iam",
    "put-role-policy",
    "--role-name",
    "ci",
    "--policy-name",
    "admin",
];

#[test]
fn added_file_cannot_route_approvals_to_its_own_server() {
    let (url, hits) = fake_server();
    let g = Gate::new()
        .system_policy("base.yaml", SYSTEM)
        .policy(&attack_a(&url));
    let (path, marker) = fake_aws(&g);
    let r = g
        .env("PATH", &path)
        .env("GATE_TOKEN", "attacker")
        .args(PUT_ROLE_POLICY)
        .run();
    r.status(78)
        .stderr_contains("`backends.x`")
        .stderr_contains("`approval.backend`")
        .stderr_contains("policy.yaml:3:3")
        .stderr_contains("policy.yaml:8:26");
    assert!(!marker.exists(), "aws ran:\n{}", r.stderr);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the fake server was contacted"
    );
}

/// The same file as the user's own `~/.config/gate/policy.yaml` (XDG) is refused the same way.
#[test]
fn user_config_file_cannot_route_approvals_to_its_own_server() {
    let (url, hits) = fake_server();
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    g.write("config/gate/policy.yaml", &attack_a(&url));
    let (path, marker) = fake_aws(&g);
    g.env("PATH", &path)
        .env("GATE_TOKEN", "attacker")
        .args(PUT_ROLE_POLICY)
        .run()
        .status(78)
        .stderr_contains("config/gate/policy.yaml:3:3");
    assert!(!marker.exists());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the fake server was contacted"
    );
}

/// Without a system tier the user's files are the top of trust: the same file does reach its
/// server (what the `gate check` warning is about). Shows the harness sees a contact.
#[test]
fn without_a_system_tier_the_added_backend_is_used() {
    let (url, hits) = fake_server();
    let g = Gate::new().policy(&attack_a(&url));
    let (path, _) = fake_aws(&g);
    let r = g
        .env("PATH", &path)
        .env("GATE_TOKEN", "attacker")
        .args(PUT_ROLE_POLICY)
        .run();
    // The fake server answers `approved` unsigned: asked, and refused for that.
    r.status(75).stderr_contains("carries no signed statement");
    assert!(
        hits.load(Ordering::SeqCst) > 0,
        "the server backend was not asked: {}",
        r.stderr
    );
}

#[test]
fn added_file_cannot_allow_opaque_shell_past_the_system_tier() {
    let g = Gate::new()
        .system_policy("base.yaml", SYSTEM)
        .policy("version: 1\ndefaults: { opaque_shell: allow }\n");
    let (path, marker) = fake_aws(&g);
    g.env("PATH", &path)
        .args(&[
            "--",
            "bash",
            "-c",
            "eval \"aws iam put-role-policy --role-name ci --policy-name admin\"",
        ])
        .run()
        .status(78)
        .stderr_contains("`defaults.opaque_shell: allow`")
        .stderr_contains("system policy's `approve`")
        .stderr_contains("policy.yaml:2:27");
    assert!(!marker.exists());
}

fn check_json(g: Gate, argv: &[&str]) -> Value {
    let mut args = vec!["check", "--json", "--"];
    args.extend_from_slice(argv);
    let warning = g.tier_warning();
    let r = g.args(&args).run();
    r.status(0).stderr(warning);
    serde_json::from_str(&r.stdout).expect("check --json prints JSON")
}

const EVAL: &[&str] = &["bash", "-c", "eval \"aws iam put-role-policy\""];

/// Without tiers, a file that doesn't set `opaque_shell` votes `approve`: one file's `allow`
/// no longer wins because the others are silent.
#[test]
fn unset_opaque_shell_votes_approve_in_every_file() {
    let g = Gate::new();
    let a = g.write("a.yaml", "version: 1\ndefaults: { opaque_shell: allow }\n");
    let b = g.write("b.yaml", "version: 1\n");
    let list = format!("{}:{}", a.display(), b.display());
    let v = check_json(g.env("GATE_POLICY", &list), EVAL);
    assert_eq!(v["decision"], "approve", "{v:#}");

    let g = Gate::new();
    let a = g.write("a.yaml", "version: 1\ndefaults: { opaque_shell: allow }\n");
    let b = g.write("b.yaml", "version: 1\ndefaults: { opaque_shell: allow }\n");
    let list = format!("{}:{}", a.display(), b.display());
    let v = check_json(g.env("GATE_POLICY", &list), EVAL);
    assert_eq!(v["decision"], "allow", "every file says allow: {v:#}");
}

/// The run path: an opaque script under a silent system tier and a one-file `allow` never
/// runs unapproved, even without tiers (two added files).
#[test]
fn opaque_script_with_one_allowing_file_does_not_run() {
    let g = Gate::new();
    let a = g.write("a.yaml", "version: 1\ndefaults: { opaque_shell: allow }\n");
    let b = g.write("b.yaml", SYSTEM);
    let list = format!("{}:{}", a.display(), b.display());
    let marker = g.path("ran");
    let script = format!("eval \"touch {}\"", marker.display());
    let r = g
        .env("GATE_POLICY", &list)
        .args(&["--timeout", "1s", "--", "bash", "-c", &script])
        .run();
    // Not run, and for the right reason: it needs an approval nobody gave (this once passed
    // on `--no-wait` being unsupported, 78, whatever the policy said). Its approvers (alice,
    // bob) are no users here, so it fails at once rather than waiting for them in vain.
    r.status(75)
        .stderr_contains("gate cannot read all of it")
        .stderr_contains("nobody who may approve it can use the spool");
    assert!(!marker.exists(), "the opaque script ran");
}

/// One case per key an added file may not set while a system tier exists: the key named,
/// with its `file:line:column`.
#[test]
fn added_file_keys_reserved_for_the_system_tier_are_errors() {
    // Positions count the `version: 1` line prepended below.
    let cases: &[(&str, &str, &str)] = &[
        ("backends:\n  x: { kind: local }\n", "`backends.x`", ":3:3"),
        (
            "backends:\n  team: { kind: server, url: \"http://127.0.0.1:1\" }\n",
            "`backends.team`",
            ":3:3",
        ),
        (
            "defaults:\n  backend: local\n",
            "`defaults.backend`",
            ":3:12",
        ),
        (
            "rules:\n  - name: r\n    match: { program: aws }\n    decision: approve\n    approval: { backend: local }\n",
            "`approval.backend`",
            ":6:26",
        ),
        (
            "identities:\n  alice: { slack: U0AGENT }\n",
            "`identities.alice`",
            ":3:3",
        ),
        (
            "audit:\n  path: /tmp/elsewhere.jsonl\n",
            "`audit.path`",
            ":3:9",
        ),
        ("audit:\n  key: /tmp/my.key\n", "`audit.key`", ":3:8"),
        (
            "defaults:\n  opaque_shell: allow\n",
            "`defaults.opaque_shell: allow`",
            ":3:17",
        ),
        (
            "defaults:\n  opaque_shell: confirm\n",
            "`defaults.opaque_shell: confirm`",
            ":3:17",
        ),
        (
            "defaults:\n  timeout: 1h\n",
            "`defaults.timeout: 1h`",
            ":3:12",
        ),
        (
            "defaults:\n  opaque_approval: { approvers: [security] }\n",
            "`defaults.opaque_approval`",
            ":3:3",
        ),
        ("context:\n  redact: ['.+']\n", "`context.redact`", ":3:12"),
    ];
    for (yaml, key, at) in cases {
        let g = Gate::new()
            .system_policy("base.yaml", SYSTEM)
            .policy(&format!("version: 1\n{yaml}"));
        let r = g.args(&["check", "--", "true"]).run();
        r.status(78).stderr_contains(key);
        assert!(
            r.stderr.contains(&format!("policy.yaml{at}")),
            "{key}: no position policy.yaml{at} in:\n{}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "gate check printed a decision");
    }
}

/// `gate policy lint` with no FILE checks the configured files as a run loads them, so it
/// reports what the run would refuse; with FILEs named, they are one tier.
#[test]
fn lint_of_the_configured_files_reports_tier_violations() {
    const ADDED: &str = "version: 1\nbackends:\n  x: { kind: local }\n";
    let g = Gate::new().system_policy("base.yaml", SYSTEM).policy(ADDED);
    g.args(&["policy", "lint"])
        .run()
        .status(78)
        .stderr_contains("`backends.x`")
        .stderr_contains("policy.yaml:3:3");

    let g = Gate::new().system_policy("base.yaml", SYSTEM).policy(ADDED);
    let p = g.path("policy.yaml");
    g.args(&["policy", "lint", p.to_str().unwrap()])
        .run()
        .status(0)
        .stderr("gate: 1 file OK, 0 rules\n");
}

/// `defaults.decision` and `audit.require_remote` are bounded by what the system tier says.
#[test]
fn added_file_cannot_loosen_the_system_defaults() {
    let sys = "version: 1\ndefaults: { decision: approve, timeout: 5m }\naudit:\n  require_remote: true\n  sinks: [{ kind: server, url: \"http://127.0.0.1:1\" }]\n";
    for (yaml, key) in [
        (
            "defaults: { decision: allow }\n",
            "`defaults.decision: allow`",
        ),
        (
            "defaults: { decision: confirm }\n",
            "`defaults.decision: confirm`",
        ),
        ("defaults: { timeout: 10m }\n", "`defaults.timeout: 10m`"),
        (
            "audit: { require_remote: false }\n",
            "`audit.require_remote: false`",
        ),
    ] {
        Gate::new()
            .system_policy("base.yaml", sys)
            .policy(&format!("version: 1\n{yaml}"))
            .args(&["check", "--", "true"])
            .run()
            .status(78)
            .stderr_contains(key)
            .stderr_contains("policy.yaml:2:");
    }
}

/// Every violation in one go, like the other policy diagnostics.
#[test]
fn every_reserved_key_is_reported_at_once() {
    let added = "version: 1
defaults: { backend: local, opaque_shell: allow, timeout: 2h }
identities:
  alice: { slack: U0AGENT }
backends:
  x: { kind: local }
audit: { path: /tmp/x.jsonl, key: /tmp/k }
rules:
  - name: mine
    match: { program: aws }
    decision: approve
    approval: { backend: x }
";
    let r = Gate::new()
        .system_policy("base.yaml", SYSTEM)
        .policy(added)
        .args(&["check", "--", "true"])
        .run();
    r.status(78).stderr_contains("error: 8 problems in policy");
}

/// What an added file may do under a system tier: add rules, new groups, context env and
/// sinks, and tighten defaults.
#[test]
fn added_file_may_add_rules_and_tighten() {
    let added = "version: 1
defaults: { decision: confirm, opaque_shell: deny, timeout: 5m }
context: { env: [AWS_PROFILE] }
groups:
  oncall: [carol, dave]
audit:
  require_remote: false
  sinks: [{ kind: file, path: /tmp/gate-tiers-extra.jsonl }]
rules:
  - name: s3-deletes
    match: { program: aws, args: [s3, rm] }
    decision: approve
    approval: { approvers: [oncall], min_approvals: 2 }
";
    let g = Gate::new().system_policy("base.yaml", SYSTEM).policy(added);
    let v = check_json(g, &["aws", "s3", "rm", "s3://b/k"]);
    assert_eq!(v["decision"], "approve", "{v:#}");
    assert_eq!(v["system_tier"], true);
    assert_eq!(v["requirement"]["min_approvals"], 2);

    let g = Gate::new().system_policy("base.yaml", SYSTEM).policy(added);
    let v = check_json(g, EVAL);
    assert_eq!(
        v["decision"], "deny",
        "the added file tightened opaque_shell: {v:#}"
    );
}

/// A system rule's approvers resolve against the system tier alone: an added file can't
/// supply a group the system names, nor shadow a system principal with a group of that name.
#[test]
fn added_group_cannot_become_a_system_rules_approvers() {
    let sys = "version: 1
groups:
  security: [alice, bob]
rules:
  - name: iam
    match: { program: aws, args: [iam] }
    decision: approve
    approval: { approvers: [alice] }
  - name: kms
    match: { program: aws, args: [kms] }
    decision: approve
    approval: { approvers: [oncall] }
";
    // `oncall` exists only in the added file: the system rule naming it stays unresolved.
    let g = Gate::new()
        .system_policy("base.yaml", sys)
        .policy("version: 1\ngroups:\n  alice: [agent]\n  oncall: [agent]\n");
    let r = g.args(&["check", "--", "true"]).run();
    r.status(78)
        .stderr_contains("unknown group `oncall`")
        .stderr_contains("base.yaml:12:29");

    // A group named `alice` (the agent's choice of members) does not widen `iam`'s approver.
    let sys_ok = sys.replace("[oncall]", "[security]");
    let g = Gate::new()
        .system_policy("base.yaml", &sys_ok)
        .policy("version: 1\ngroups:\n  alice: [agent]\n");
    let v = check_json(g, &["aws", "iam", "put-role-policy"]);
    let eligible = &v["requirement"]["clauses"][0]["eligible"];
    assert_eq!(eligible, &serde_json::json!(["alice"]), "{v:#}");
}

// ---- ownership (StrictModes) ----

fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

fn check_true(g: Gate) -> Checked {
    g.args(&["check", "--", "true"]).run()
}

#[test]
fn system_dir_owned_by_another_user_is_refused() {
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    chown(g.system_dir().unwrap(), 65534);
    check_true(g)
        .status(78)
        .stderr_contains("`/etc/gate/policy.d` is owned by uid 65534, not root")
        .stderr_contains("hint:")
        .stderr_contains("chown root /etc/gate/policy.d");
}

#[test]
fn group_writable_system_dir_is_refused() {
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    std::fs::set_permissions(
        g.system_dir().unwrap(),
        std::fs::Permissions::from_mode(0o775),
    )
    .unwrap();
    check_true(g)
        .status(78)
        .stderr_contains("`/etc/gate/policy.d` is writable by its group")
        .stderr_contains("chmod go-w /etc/gate/policy.d");
}

#[test]
fn system_file_owned_by_another_user_is_refused() {
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    chown(&g.system_dir().unwrap().join("base.yaml"), 65534);
    check_true(g)
        .status(78)
        .stderr_contains("`/etc/gate/policy.d/base.yaml` is owned by uid 65534, not root")
        .stderr_contains("chown root /etc/gate/policy.d/base.yaml");
}

#[test]
fn group_or_world_writable_system_file_is_refused() {
    for (mode, what) in [
        (0o664, "is writable by its group"),
        (0o646, "is writable by others"),
    ] {
        let g = Gate::new().system_policy("base.yaml", SYSTEM);
        let f = g.system_dir().unwrap().join("base.yaml");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        check_true(g)
            .status(78)
            .stderr_contains(&format!("`/etc/gate/policy.d/base.yaml` {what}"))
            .stderr_contains("chmod go-w /etc/gate/policy.d/base.yaml");
    }
}

/// The run path refuses too, before anything runs.
#[test]
fn unsafe_system_file_stops_the_run() {
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    chown(&g.system_dir().unwrap().join("base.yaml"), 65534);
    let marker = g.path("ran");
    g.args(&["--", "touch", marker.to_str().unwrap()])
        .run()
        .status(78)
        .stderr_contains("refusing the system policy");
    assert!(!marker.exists());
}

/// A system file that is a symlink is judged by its target: the target's owner, and the
/// directories the target lives in.
#[test]
fn symlinked_system_file_is_checked_through_its_target() {
    // Target owned by someone else.
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    let dir = g.system_dir().unwrap().to_path_buf();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("sub/agent.txt"), "version: 1\n").unwrap();
    chown(&dir.join("sub/agent.txt"), 65534);
    std::os::unix::fs::symlink("sub/agent.txt", dir.join("link.yaml")).unwrap();
    check_true(g)
        .status(78)
        .stderr_contains("`/etc/gate/policy.d/sub/agent.txt` is owned by uid 65534, not root")
        .stderr_contains("(`/etc/gate/policy.d/link.yaml` leads to it)");

    // Root's target in a directory someone else owns (who could swap it).
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    let dir = g.system_dir().unwrap().to_path_buf();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("sub/root.txt"), "version: 1\n").unwrap();
    chown(&dir.join("sub"), 65534);
    std::os::unix::fs::symlink("sub/root.txt", dir.join("link.yaml")).unwrap();
    check_true(g)
        .status(78)
        .stderr_contains("`/etc/gate/policy.d/sub` is owned by uid 65534, not root");

    // A target under root's control is fine.
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    let dir = g.system_dir().unwrap().to_path_buf();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("sub/extra.txt"),
        "version: 1\nrules:\n  - { name: no-rm, match: { program: rm }, decision: deny }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("sub/extra.txt", dir.join("link.yaml")).unwrap();
    let v = check_json(g, &["rm", "x"]);
    assert_eq!(v["decision"], "deny", "{v:#}");
}

/// A throw-away user for the unreadable-directory test.
fn throwaway_user() -> (u32, u32) {
    const NAME: &str = "gt-tiers";
    let lookup = || nix::unistd::User::from_name(NAME).ok().flatten();
    if lookup().is_none() {
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", NAME])
            .output()
            .expect("run useradd (the tests run as root)");
    }
    let u = lookup().expect("useradd gt-tiers");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Runs `gate check -- true` as the throw-away user, with `g`'s system tier.
fn check_as_user(g: &Gate) -> (Option<i32>, String) {
    let (uid, gid) = throwaway_user();
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(common::bin())
        .args(["check", "--", "true"])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .current_dir("/");
    let out = common::system_tier(&c, g.system_dir().unwrap())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A system directory or file the user cannot read fails closed (78), never "no system tier".
#[test]
fn unreadable_system_dir_or_file_fails_closed() {
    // Readable: the user gets a decision (so the 78s below come from the permissions).
    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    let (code, stderr) = check_as_user(&g);
    assert_eq!(code, Some(0), "{stderr}");

    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    std::fs::set_permissions(
        g.system_dir().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let (code, stderr) = check_as_user(&g);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("`/etc/gate/policy.d`"), "{stderr}");

    let g = Gate::new().system_policy("base.yaml", SYSTEM);
    let f = g.system_dir().unwrap().join("base.yaml");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, stderr) = check_as_user(&g);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("`/etc/gate/policy.d/base.yaml`"),
        "{stderr}"
    );
}

// ---- `gate check` says when there is no system tier ----

#[test]
fn check_warns_when_there_is_no_system_policy() {
    let r = Gate::new()
        .policy(SYSTEM)
        .args(&["check", "--", "ls"])
        .run();
    r.status(0).stderr(common::NO_SYSTEM_TIER);
    let v = check_json(Gate::new().policy(SYSTEM), &["ls"]);
    assert_eq!(v["system_tier"], false);
}

#[test]
fn check_is_quiet_about_tiers_when_a_system_policy_exists() {
    let r = Gate::new()
        .system_policy("base.yaml", SYSTEM)
        .args(&["check", "--", "ls"])
        .run();
    r.status(0);
    assert!(!r.stderr.contains("no system policy"), "{}", r.stderr);
}

/// Allowed commands stay quiet on the run path, system tier or not.
#[test]
fn run_path_does_not_warn_about_the_missing_system_policy() {
    let r = Gate::new().policy(SYSTEM).args(&["--", "true"]).run();
    r.status(0);
    assert!(!r.stderr.contains("system policy"), "{}", r.stderr);
}

/// An empty system directory (no *.yaml) is no system tier.
#[test]
fn system_dir_without_yaml_is_no_tier() {
    let g = Gate::new().system_policy("README", "not a policy\n");
    let g = g.policy("version: 1\nbackends:\n  x: { kind: local }\n");
    let r = g.args(&["check", "--", "ls"]).run();
    r.status(0).stderr_contains("warning: no system policy");
}

// ---- `defaults.opaque_approval`: parsed, validated, merged, exposed ----

fn load(files: &[(&str, Tier)]) -> Result<Policy, gate::policy::PolicyError> {
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<Source> = files
        .iter()
        .enumerate()
        .map(|(i, (yaml, tier))| {
            let path = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            Source { path, tier: *tier }
        })
        .collect();
    Policy::load_sources(&sources)
}

#[test]
fn opaque_approval_is_merged_from_the_system_tier() {
    let sys = format!(
        "{SYSTEM}defaults:\n  opaque_approval: {{ approvers: [security], min_approvals: 2 }}\n"
    );
    let p = load(&[(&sys, Tier::System), ("version: 1\n", Tier::Added)]).unwrap();
    let a = p.opaque_approval.as_ref().expect("opaque_approval");
    assert_eq!(a.min_approvals, 2);
    assert_eq!(a.approvers, vec!["security".to_owned()]);
    assert_eq!(
        a.eligible.as_ref().unwrap().iter().collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert!(!a.allow_requester);
    assert_eq!(p.opaque_shell, Decision::Approve);

    // No system tier: any file may set it.
    let p = load(&[(&sys, Tier::Added)]).unwrap();
    assert!(p.opaque_approval.is_some());
    assert!(!p.has_system_tier());
    assert!(
        load(&[("version: 1\n", Tier::Added)])
            .unwrap()
            .opaque_approval
            .is_none()
    );
}

#[test]
fn opaque_approval_is_validated_like_an_approval() {
    for (yaml, message) in [
        (
            "  opaque_approval: { approvers: [nobody] }\n",
            "unknown group `nobody`",
        ),
        (
            "  opaque_approval: { approvers: [security], min_approvals: 3 }\n",
            "`defaults.opaque_approval` needs 3 approvals but only 2 principals can approve",
        ),
        (
            "  opaque_approval: { approvers: [security], min_approvals: 0 }\n",
            "`min_approvals` must be 1 to 100, not 0",
        ),
        (
            "  opaque_approval: { approvers: [security], backend: x }\n",
            "unknown key `backend`",
        ),
        ("  opaque_approval: yes\n", "expected a mapping"),
    ] {
        let sys = format!("{SYSTEM}defaults:\n{yaml}");
        let err = load(&[(&sys, Tier::System)]).err().expect("an error");
        let text = err.to_string();
        assert!(text.contains(message), "{yaml}: {text}");
        assert!(text.contains("0.yaml:10:"), "{yaml}: no position in {text}");
    }
    // Twice across files is a duplicate, like a group.
    let one = format!("{SYSTEM}defaults:\n  opaque_approval: {{ approvers: [security] }}\n");
    let two = "version: 1\ndefaults:\n  opaque_approval: { approvers: [alice] }\n";
    let err = load(&[(&one, Tier::System), (two, Tier::System)])
        .err()
        .expect("duplicate");
    assert!(
        err.to_string()
            .contains("duplicate key `defaults.opaque_approval`"),
        "{err}"
    );
}

/// `gate check --json -- bash -c SCRIPT` under `sys` as the system tier: the clause names.
fn opaque_clauses(sys: &str, script: &str) -> (Value, Vec<String>) {
    let r = Gate::new()
        .system_policy("10-base.yaml", sys)
        .args(&["check", "--json", "--", "bash", "-c", script])
        .run();
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let rules = v["requirement"]["clauses"]
        .as_array()
        .unwrap_or_else(|| panic!("no requirement: {v}"))
        .iter()
        .map(|c| c["rule"].as_str().unwrap().to_owned())
        .collect();
    (v, rules)
}

/// `defaults.opaque_approval` in the system tier decides who approves what gate cannot read;
/// the readable part of the script still needs its own rules' approvals.
#[test]
fn system_opaque_approval_replaces_the_derived_requirement_but_keeps_matched_rules() {
    let base = format!(
        "{SYSTEM}  - name: kube\n    match: {{ program: kubectl }}\n    decision: approve\n    approval: {{ approvers: [sre] }}\n"
    )
    .replace(
        "groups:\n  security: [alice, bob]\n",
        "groups:\n  security: [alice, bob]\n  sre: [carol]\n  ops: [dave]\n",
    );
    let sys = base.replace(
        "rules:\n",
        "defaults:\n  opaque_approval: { approvers: [ops] }\nrules:\n",
    );
    // Opaque alone: the ops clause, not every rule's clause.
    let (v, rules) = opaque_clauses(&sys, "eval \"$X\"");
    assert_eq!(v["decision"], "approve");
    assert_eq!(rules, ["opaque-approval"], "{v}");
    // With a readable IAM write: the IAM rule's two security approvals still count.
    let (v, rules) = opaque_clauses(&sys, "aws iam put-role-policy --role-name x; eval \"$X\"");
    assert_eq!(rules, ["iam-writes", "opaque-approval"], "{v}");
    assert_eq!(v["requirement"]["min_approvals"], 2, "{v}");
    // Without it, the derived requirement names every approve rule of the policy.
    let (v, rules) = opaque_clauses(&base, "eval \"$X\"");
    assert_eq!(rules, ["iam-writes", "kube"], "{v}");
}
