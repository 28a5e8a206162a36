//! `gate doctor` (issue 13 §7) against a healthy set-up and against each broken part: no
//! system tier, a world-writable system policy, an unreachable server, an unwritable log, a
//! readable signing key, hooks that do not run gate, shims PATH does not reach.

use crate::common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::Gate;
use common::process::Server;
use serde_json::Value;

/// `gate doctor --json`, its exit status and the checks by name (the first of each name).
fn doctor(g: Gate) -> (i32, Value) {
    doctor_as(g.args(&["doctor", "--json"]))
}

/// Like [`doctor`], with the arguments `g` already has.
fn doctor_as(c: Gate) -> (i32, Value) {
    let r = common::Ran::from_output(c.command().output().unwrap());
    let v: Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    (r.status, v)
}

fn find<'a>(v: &'a Value, check: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"].as_str().unwrap().starts_with(check))
        .unwrap_or_else(|| panic!("no check `{check}` in {v:#}"))
}

fn status<'a>(v: &'a Value, check: &str) -> &'a str {
    find(v, check)["status"].as_str().unwrap()
}

const POLICY: &str =
    "version: 1\nrules:\n  - name: r\n    match: { program: rm }\n    decision: deny\n";

#[test]
fn a_healthy_set_up_is_all_ok() {
    let g = Gate::new().system_policy("base.yaml", POLICY);
    let (code, v) = doctor(g);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    for c in v["checks"].as_array().unwrap() {
        assert_ne!(c["status"], "fail", "{c}");
        // Each check has the four members the JSON promises.
        for k in ["check", "status", "detail", "hint"] {
            assert!(c.get(k).is_some(), "{k} missing in {c}");
        }
    }
    assert_eq!(status(&v, "system tier"), "ok");
    assert_eq!(status(&v, "policy file"), "ok");
    assert!(
        find(&v, "policy file")["detail"]
            .as_str()
            .unwrap()
            .contains("(system tier)")
    );
    assert_eq!(status(&v, "audit log"), "ok");
    assert!(
        v["note"]
            .as_str()
            .unwrap()
            .contains("only as strong as a root-owned system policy")
    );
}

#[test]
fn the_text_report_is_one_line_per_check_and_says_what_hooks_rest_on() {
    let g = Gate::new().policy(POLICY).args(&["doctor"]);
    let r = common::Ran::from_output(g.command().output().unwrap());
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("warn  system tier: none"), "{}", r.stdout);
    assert!(
        r.stdout.contains("ok    policy file: ") && r.stdout.contains("(GATE_POLICY tier)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "note: agent hooks and shims are only as strong as a root-owned system policy"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn no_system_tier_warns_and_names_the_tier_of_each_file() {
    let g = Gate::new().policy(POLICY);
    let user = g.write(
        "config/gate/policy.yaml",
        &POLICY.replace("name: r", "name: u"),
    );
    let cli = g.write("cli.yaml", &POLICY.replace("name: r", "name: c"));
    let g = g.args(&["--policy", cli.to_str().unwrap(), "doctor", "--json"]);
    let r = common::Ran::from_output(g.command().output().unwrap());
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(r.status, 0, "a warning is not a failure");
    let sys = find(&v, "system tier");
    assert_eq!(sys["status"], "warn");
    assert!(sys["hint"].as_str().unwrap().contains("/etc/gate/policy.d"));
    let details: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "policy file")
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            format!("{} (user tier)", user.display()),
            format!("{} (GATE_POLICY tier)", g.path("policy.yaml").display()),
            format!("{} (--policy tier)", cli.display()),
        ]
    );
}

#[test]
fn a_world_writable_system_policy_fails() {
    let g = Gate::new().system_policy("base.yaml", POLICY);
    let f = g.system_dir().unwrap().join("base.yaml");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, v) = doctor(g);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["ok"], false);
    let c = find(&v, "system tier");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("writable by others"),
        "{c}"
    );
}

#[test]
fn a_policy_that_does_not_load_fails() {
    let g = Gate::new().policy("version: 1\nrules:\n  - name: x\n    nonsense: 1\n");
    let (code, v) = doctor(g);
    assert_eq!(code, 1);
    assert_eq!(status(&v, "policy"), "ok", "the file itself is readable");
    let load = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "policy")
        .unwrap();
    assert_eq!(load["status"], "fail");
}

#[test]
fn an_unreachable_server_fails_and_a_reachable_one_is_ok() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), "version: 1\n");
    let vkey = server.vkey();
    // A port nothing listens on: bind one, note it, close it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = format!(
        "version: 1\nbackends:\n  up: {{ kind: server, url: '{}', key: '{vkey}' }}\n  down: {{ kind: server, url: 'http://{dead}', key: '{vkey}' }}\naudit:\n  sinks:\n    - {{ kind: syslog, url: 'tcp://{dead}' }}\n",
        server.url
    );
    let (code, v) = doctor(Gate::new().policy(&yaml));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(status(&v, "backend up"), "ok");
    assert_eq!(status(&v, "backend down"), "fail");
    assert_eq!(status(&v, "sink syslog"), "fail");
    assert_eq!(status(&v, "token"), "warn", "no token stored for either");
}

#[test]
fn an_unwritable_log_fails() {
    // A log whose directory is a file: it can never be made.
    let g = Gate::new();
    g.write("not-a-dir", "x");
    let log = g.path("not-a-dir/audit.jsonl");
    let g = g.env("GATE_LOG", log.to_str().unwrap());
    let (code, v) = doctor(g);
    assert_eq!(code, 1);
    assert_eq!(status(&v, "audit log"), "fail");

    // A log that is a symlink: gate never follows one.
    let g = Gate::new();
    g.write("real.jsonl", "");
    symlink(g.path("real.jsonl"), g.path("audit.jsonl")).unwrap();
    let (code, v) = doctor(g);
    assert_eq!(code, 1);
    let c = find(&v, "audit log");
    assert_eq!(c["status"], "fail");
    assert!(c["detail"].as_str().unwrap().contains("symlink"));

    // A log in a directory anyone can write to.
    let g = Gate::new();
    let open = g.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let g = g.env("GATE_LOG", open.join("audit.jsonl").to_str().unwrap());
    let (code, v) = doctor(g);
    assert_eq!(code, 1);
    assert_eq!(status(&v, "audit log"), "fail");
}

#[test]
fn a_signing_key_others_can_read_fails() {
    let g = Gate::new();
    let key = g.write("state/gate/signing.key", "not really a key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, v) = doctor(g);
    assert_eq!(code, 1);
    assert_eq!(status(&v, "signing key"), "fail");
}

#[test]
fn hooks_are_found_in_each_agents_settings() {
    let g = Gate::new();
    g.write(
        "home/.claude/settings.json",
        r#"{"model":"x","hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"/usr/local/bin/gate hook claude-code","timeout":600}]}]}}"#,
    );
    g.write(
        "home/.gemini/settings.json",
        r#"{"hooks":{"BeforeTool":[{"hooks":[{"type":"command","command":"./lint.sh"}]}]}}"#,
    );
    g.write(
        "home/.codex/config.toml",
        "model = \"o3\"\n# gate hook codex, someday\n",
    );
    std::fs::create_dir_all(g.path("home/.cursor")).unwrap();
    let (code, v) = doctor(g);
    assert_eq!(code, 0);
    assert_eq!(status(&v, "hooks claude-code"), "ok");
    assert!(
        find(&v, "hooks claude-code")["detail"]
            .as_str()
            .unwrap()
            .contains(".claude/settings.json")
    );
    let gemini = find(&v, "hooks gemini");
    assert_eq!(gemini["status"], "warn", "{gemini}");
    assert_eq!(gemini["hint"], "gate setup gemini");
    // A comment that mentions `gate hook` is no hook.
    assert_eq!(status(&v, "hooks codex"), "warn");
    assert_eq!(
        status(&v, "hooks cursor"),
        "warn",
        "~/.cursor exists, no hooks.json"
    );
}

#[test]
fn shims_not_on_path_or_behind_the_real_program_warn() {
    let keep = tempfile::tempdir().unwrap();
    std::fs::set_permissions(keep.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let g = Gate::new();
    let bin = keep.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shims = keep.path().join("shims");
    let path_with = |first: &Path, second: &Path| {
        std::env::join_paths([first, second, Path::new("/usr/bin"), Path::new("/bin")])
            .unwrap()
            .into_string()
            .unwrap()
    };
    let install = Gate::new().env("PATH", &path_with(&bin, &bin)).args(&[
        "shim",
        "install",
        "--dir",
        shims.to_str().unwrap(),
        "tool",
    ]);
    common::Ran::from_output(install.command().output().unwrap()).status(0);
    let dir_arg = ["doctor", "--json", "--shim-dir", shims.to_str().unwrap()];

    // Shims first: ok.
    let (code, v) = doctor_as(g.env("PATH", &path_with(&shims, &bin)).args(&dir_arg));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(status(&v, "shim tool"), "ok");

    // The real program first: warn, with the PATH line to fix it.
    let g = Gate::new();
    let (_, v) = doctor_as(g.env("PATH", &path_with(&bin, &shims)).args(&dir_arg));
    let c = find(&v, "shim tool");
    assert_eq!(c["status"], "warn");
    assert!(
        c["detail"].as_str().unwrap().contains("before the shim"),
        "{c}"
    );

    // Not on PATH at all.
    let g = Gate::new();
    let (_, v) = doctor_as(g.env("PATH", &path_with(&bin, &bin)).args(&dir_arg));
    assert_eq!(status(&v, "shims"), "warn");

    // A shim directory others can write to: they could swap a shim for anything.
    std::fs::set_permissions(&shims, std::fs::Permissions::from_mode(0o777)).unwrap();
    let g = Gate::new();
    let (code, v) = doctor_as(g.env("PATH", &path_with(&shims, &bin)).args(&dir_arg));
    assert_eq!(code, 1);
    assert_eq!(status(&v, "shims"), "fail");
}

#[test]
fn a_local_spool_no_approver_can_reach_fails() {
    let yaml = "version: 1\nbackends:\n  loc: { kind: local }\n";
    // The test's spool (mode 1777, as `gate setup local` would let approvers in): ok.
    let (code, v) = doctor(Gate::new().policy(yaml));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(status(&v, "backend loc"), "ok");
    // A spool only its owner can enter: nobody else could ever approve.
    let g = Gate::new().policy(yaml);
    let closed = g.path("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let g = g.env("GATE_SPOOL", closed.to_str().unwrap());
    let (code, v) = doctor(g);
    assert_eq!(code, 1);
    let c = find(&v, "backend loc");
    assert_eq!(c["status"], "fail");
    assert!(c["detail"].as_str().unwrap().contains("no approver"), "{c}");
    // No spool at all.
    let g = Gate::new().policy(yaml);
    let missing = g.path("missing");
    let (code, v) = doctor(g.env("GATE_SPOOL", missing.to_str().unwrap()));
    assert_eq!(code, 1);
    assert_eq!(find(&v, "backend loc")["hint"], "sudo gate setup local");
}
