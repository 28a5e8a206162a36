//! Shell strings and wrappers are classified by the commands they run (DESIGN §5): a rule on
//! `rm` or `aws` cannot be stepped around with `bash -c`, `env` or a command substitution, and
//! what cannot be read statically gets `defaults.opaque_shell`.

use crate::common;

use common::Gate;

const POLICY: &str = r#"version: 1
rules:
  - name: rm-root
    match: { program: rm, regex: "\\s'?/+'?(\\s|$)" }
    decision: deny
    message: refusing to remove /
  - name: iam-writes
    match: { program: aws, args: [iam, "{put,delete}-*"] }
    decision: approve
tests:
  - run: [bash, -c, "cd /srv && aws --profile p iam put-role-policy --role-name x"]
    expect: { decision: approve, rule: iam-writes }
  - run: [sh, -c, "echo $(rm -rf /)"]
    expect: { decision: deny, rule: rm-root }
  - run: [env, A=1, rm, -rf, /]
    expect: { decision: deny, rule: rm-root }
  - run: [bash, -c, "ls -l | wc -l"]
    expect: { decision: allow }
"#;

fn check_json(g: &Gate, argv: &[&str]) -> serde_json::Value {
    let mut args = vec!["check", "--json", "--"];
    args.extend_from_slice(argv);
    let r = clone_of(g).args(&args).run();
    r.status(0).stderr(common::NO_SYSTEM_TIER);
    serde_json::from_str(&r.stdout).expect("check --json is JSON")
}

fn clone_of(g: &Gate) -> Gate {
    let n = Gate::new();
    let p = g.path("policy.yaml");
    n.env("GATE_POLICY", p.to_str().unwrap())
}

#[test]
fn a_denied_command_inside_bash_c_is_denied_and_does_not_run() {
    let g = Gate::new().policy(POLICY);
    let marker = g.path("ran");
    let script = format!("touch {} && rm -rf /", marker.display());
    let g = g.args(&["--", "bash", "-c", &script]);
    let r = g.run();
    r.status(77).stderr_contains("rm-root");
    assert!(!marker.exists(), "nothing in the script ran");
    let rec = g.records();
    let decision = rec
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("recorded");
    assert_eq!(decision["decision"]["outcome"], "denied");
    assert_eq!(decision["decision"]["rules"][0]["name"], "rm-root");
}

#[test]
fn wrappers_and_substitutions_are_seen_through() {
    let g = Gate::new().policy(POLICY);
    for argv in [
        vec!["env", "A=1", "rm", "-rf", "/"],
        vec!["sh", "-c", "echo `rm -rf /`"],
        vec!["bash", "-lc", "bash -c 'rm -rf //'"],
        vec!["timeout", "5", "rm", "-rf", "/"],
    ] {
        let v = check_json(&g, &argv);
        assert_eq!(v["decision"], "deny", "{argv:?}: {v:#}");
    }
    let v = check_json(
        &g,
        &["bash", "-c", "cd /srv; aws iam delete-user --user-name x"],
    );
    assert_eq!(v["decision"], "approve");
    let cmds: Vec<String> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert!(
        cmds.contains(&"aws iam delete-user --user-name x".to_string()),
        "{cmds:?}"
    );
    // A plain script with nothing the policy names is allowed, as before.
    assert_eq!(
        check_json(&g, &["bash", "-c", "ls -l | wc -l"])["decision"],
        "allow"
    );
}

#[test]
fn what_cannot_be_read_gets_opaque_shell() {
    let g = Gate::new().policy(POLICY);
    let v = check_json(&g, &["bash", "-c", "eval \"$X\""]);
    assert_eq!(
        v["decision"], "approve",
        "the default for opaque scripts: {v:#}"
    );
    assert!(v["opaque"].as_str().unwrap().contains("eval"));
    // What cannot be read needs what the policy's approve rules need, not one approval from
    // anyone: here the one approve rule, iam-writes.
    assert_eq!(v["requirement"]["clauses"][0]["rule"], "iam-writes");

    let strict = Gate::new().policy(&POLICY.replace(
        "version: 1\n",
        "version: 1\ndefaults: { opaque_shell: deny }\n",
    ));
    let r = strict.args(&["--", "sh", "-c", "$CMD --force"]).run();
    r.status(77)
        .stderr("error: denied by the policy default\nhint: try `gate check -- sh -c '$CMD --force'` to see why\n");
    // Expansions in arguments are not opaque: only the command name matters.
    let v = check_json(&g, &["sh", "-c", "echo \"$HOME\""]);
    assert_eq!(v["decision"], "allow");
    assert!(v["opaque"].is_null());
}

#[test]
fn policy_tests_classify_shell_strings_too() {
    let g = Gate::new().policy(POLICY);
    let p = g.path("policy.yaml");
    let p = p.to_str().unwrap().to_owned();
    g.args(&["policy", "test", &p])
        .run()
        .status(0)
        .stdout_has("4 passed, 0 failed");
}

/// An opaque command asks what every approve rule asks: with cloud-admin.yaml, two approvals
/// from security and one from sre, where the old default clause asked one from anyone.
#[test]
fn opaque_script_needs_the_strictest_requirement_of_the_policy() {
    let g = Gate::new().policy(include_str!("../../policies/cloud-admin.yaml"));
    for argv in [
        vec!["bash", "-c", "eval \"$X\""],
        vec!["bash", "-c", "aws${IFS}iam${IFS}put-role-policy"],
        vec![
            "python3",
            "-c",
            "import os; os.system('aws iam put-role-policy')",
        ],
    ] {
        let v = check_json(&g, &argv);
        assert_eq!(v["decision"], "approve", "{argv:?}: {v:#}");
        let req = &v["requirement"];
        assert_eq!(req["min_approvals"], 2, "{argv:?}: {v:#}");
        let groups: Vec<&str> = req["clauses"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["groups"].as_array().unwrap())
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(
            groups.contains(&"security") && groups.contains(&"sre"),
            "{groups:?}"
        );
    }
}

/// A script on a shell's stdin is unreadable: it needs approval, and without one nothing runs.
#[test]
fn a_script_piped_into_a_shell_does_not_run_without_approval() {
    let g = Gate::new().policy(POLICY);
    let marker = g.path("ran");
    let r = g
        .args(&["--timeout", "1s", "--", "sh"])
        .stdin(format!("touch {}\n", marker.display()).as_bytes())
        .run();
    r.status(75)
        .stderr_contains("`sh` reads its script from its input")
        .stderr_contains("no decision within 1s");
    assert!(!marker.exists(), "the script did not run");
}

/// `sudo`'s options are read exactly: `--chdir DIR` no longer hides the command after it.
#[test]
fn a_wrapper_option_with_a_value_does_not_hide_the_command() {
    let g = Gate::new().policy(POLICY);
    for argv in [
        vec!["sudo", "--chdir", "/tmp", "rm", "-rf", "/"],
        vec!["sudo", "-R", "/", "rm", "-rf", "/"],
        vec!["env", "-S", "rm -rf /"],
        vec!["chroot", "--userspec", "root", "/", "rm", "-rf", "/"],
        vec!["bash", "-c", "exec -a x rm -rf /"],
        vec!["bash", "-c", "time -p rm -rf /"],
        vec!["bash", "-c", "rm -rf $'\\x2f'"],
    ] {
        let v = check_json(&g, &argv);
        assert_eq!(v["decision"], "deny", "{argv:?}: {v:#}");
    }
}

/// A variable in gate's own environment that makes the command run other code is inherited by
/// the command: `GIT_SSH_COMMAND` runs a program on every push.
#[test]
fn code_running_variables_in_gates_environment_make_the_command_opaque() {
    let g = Gate::new().policy(POLICY);
    let r = clone_of(&g)
        .env("GIT_SSH_COMMAND", "rm -rf /")
        .args(&["check", "--json", "--", "git", "push", "origin", "main"])
        .run();
    r.status(0).stderr(common::NO_SYSTEM_TIER);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["decision"], "approve", "{v:#}");
    assert!(v["opaque"].as_str().unwrap().contains("GIT_SSH_COMMAND"));
    // A pager that is only a pager changes nothing.
    let r = clone_of(&g)
        .env("GIT_PAGER", "cat")
        .args(&["check", "--json", "--", "git", "push", "origin", "main"])
        .run();
    r.status(0).stderr(common::NO_SYSTEM_TIER);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["decision"], "allow", "{v:#}");
    // Without it, `git push` is what the policy says: allowed.
    assert_eq!(
        check_json(&g, &["git", "push", "origin", "main"])["decision"],
        "allow"
    );
}
