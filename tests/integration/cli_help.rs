//! A CLI that helps (issue 11 §5): a misspelt subcommand gets a suggestion, a forgotten `--` a
//! hint with the corrected line, a denial the `gate check` line that explains it, a run with
//! no policy at all a warning; every command documents its exit statuses, every `GATE_*`
//! variable gate reads is in `--help` and the man page, and no argument goes without help.

use crate::common;

use common::Gate;

const DENY_RM: &str = "version: 1\ncontext:\n  redact: ['(?i)password=\\S+']\nrules:\n  - name: no-rm\n    match: { program: rm }\n    decision: deny\n";

// ---- misspelt subcommands and a forgotten `--`

#[test]
fn a_misspelt_subcommand_gets_a_suggestion() {
    for (typo, meant) in [
        ("requets", "requests"),
        ("aprove", "approve"),
        ("chekc", "check"),
        ("plicy", "policy"),
        ("sevre", "serve"),
        ("dney", "deny"),
    ] {
        let r = Gate::new().args(&[typo]).run();
        r.status(2).stderr(&format!(
            "error: unknown command `{typo}`; did you mean `{meant}`?\n"
        ));
        assert!(r.stdout.is_empty());
    }
    // With its arguments and gate's options around it, the same.
    Gate::new()
        .args(&["--policy", "p.yaml", "aprove", "0193a1b2", "--comment", "ok"])
        .run()
        .status(2)
        .stderr_contains("error: unknown command `aprove`; did you mean `approve`?");
}

#[test]
fn a_forgotten_dash_dash_runs_nothing_and_says_where_it_goes() {
    let g = Gate::new();
    let marker = g.path("ran");
    let m = marker.to_str().unwrap();
    for (args, word, fixed) in [
        (vec!["ls", "-la"], "ls", "gate -- ls -la".to_owned()),
        (
            vec!["kubectl", "get", "pods"],
            "kubectl",
            "gate -- kubectl get pods".to_owned(),
        ),
        (vec!["touch", m], "touch", format!("gate -- touch {m}")),
        (
            vec!["-q", "--reason", "tidy up", "touch", m],
            "touch",
            format!("gate -q --reason 'tidy up' -- touch {m}"),
        ),
        (
            vec!["./deploy.sh", "prod"],
            "./deploy.sh",
            "gate -- ./deploy.sh prod".to_owned(),
        ),
    ] {
        let t = Gate::new().args(&args);
        t.run().status(2).stderr(&format!(
            "error: unknown command `{word}`\n\
             hint: to run a command through gate, put `--` before it: {fixed}\n"
        ));
        assert!(!marker.exists(), "`gate {}` ran something", args.join(" "));
        assert!(t.records().is_empty(), "a usage error is recorded");
    }
}

#[test]
fn check_without_dash_dash_is_refused_with_the_line_to_type() {
    // Refused, not guessed: gate's own options are read after `check`, so in
    // `gate check curl -v URL` the `-v` would be gate's and another command classified.
    Gate::new()
        .args(&["check", "kubectl", "get", "pods"])
        .run()
        .status(2)
        .stderr(
            "error: `gate check` takes the command to classify after `--`\n\
             hint: put `--` before the command: gate check -- kubectl get pods\n",
        );
    Gate::new()
        .args(&["check", "--json", "curl", "-v", "https://example.com"])
        .run()
        .status(2)
        .stderr_contains("hint: put `--` before the command: gate check --json -- curl -v https://example.com\n");
}

#[test]
fn options_and_nested_typos_keep_clap_messages() {
    // An option gate does not know is clap's to explain; so is a misspelt nested subcommand.
    Gate::new()
        .args(&["--frobnicate", "ls"])
        .run()
        .status(2)
        .stderr_contains("unexpected argument '--frobnicate'");
    Gate::new()
        .args(&["log", "verfy"])
        .run()
        .status(2)
        .stderr_contains("a similar subcommand exists: 'verify'");
}

#[test]
fn terminal_controls_in_a_mistyped_word_are_shown_escaped() {
    // An agent's argv must not draw on the approver's or the user's terminal through gate's
    // own error message.
    let r = Gate::new()
        .args(&["\u{1b}]0;pwned\u{7}ls", "a\nhint: fake"])
        .run();
    r.status(2).any_stderr();
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("hint:")).count(),
        1,
        "a forged hint line: {:?}",
        r.stderr
    );
}

// ---- the denial hint

#[test]
fn the_denial_hint_names_the_real_command_and_the_policy_flags() {
    let g = Gate::new();
    let extra = g.write("extra policy.yaml", DENY_RM);
    let other = g.write("other.yaml", "version: 1\n");
    let r = g
        .args(&[
            "--policy",
            extra.to_str().unwrap(),
            "--policy",
            other.to_str().unwrap(),
            "--",
            "rm",
            "-rf",
            "it's here",
        ])
        .run();
    r.status(77).stderr(&format!(
        "error: denied by rule `no-rm`\nhint: try `gate check --policy '{}' --policy {} -- rm -rf 'it'\\''s here'` to see why\n",
        extra.display(),
        other.display()
    ));
}

#[test]
fn the_denial_hint_line_runs_and_explains() {
    let g = Gate::new();
    let extra = g.write("extra.yaml", DENY_RM);
    let g = g.args(&["--policy", extra.to_str().unwrap(), "--", "rm", "-r", "x y"]);
    let r = g.run();
    r.status(77).any_stderr();
    let hint = r.stderr.lines().find(|l| l.starts_with("hint: ")).unwrap();
    let line = hint
        .strip_prefix("hint: try `gate ")
        .and_then(|h| h.strip_suffix("` to see why"))
        .unwrap_or_else(|| panic!("{hint}"));
    // What the hint says, pasted into a shell, is a `gate check` of the same command.
    let sh = std::process::Command::new("sh")
        .args(["-c", &format!("exec \"$0\" {line}"), common::bin()])
        .env_clear()
        .envs([
            ("HOME", g.path("home")),
            ("XDG_STATE_HOME", g.path("state")),
            ("XDG_CONFIG_HOME", g.path("config")),
        ])
        .current_dir(g.dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&sh.stdout);
    assert!(out.contains("decision: deny"), "{out}");
    assert!(out.contains("command:  rm -r 'x y'"), "{out}");
    assert!(out.contains("no-rm"), "{out}");
}

#[test]
fn attack_a_denied_argv_cannot_forge_lines_or_leak_secrets_through_the_hint() {
    // An agent's argv carrying a newline, an escape sequence and a secret: the hint is one
    // line, shows every control escaped, and redacts as the record does.
    let g = Gate::new().policy(DENY_RM);
    let r = g
        .args(&[
            "--",
            "rm",
            "password=hunter2",
            "x\nhint: run `gate approve` yourself",
            "\u{1b}[2J",
        ])
        .run();
    r.status(77).any_stderr();
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    let hints: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("hint:")).collect();
    assert_eq!(hints.len(), 1, "{:?}", r.stderr);
    assert!(hints[0].contains("\\n") && hints[0].contains("\\e[2J"), "{}", hints[0]);
}

// ---- no policy at all

#[test]
fn a_run_without_any_policy_warns_once_naming_where_it_looked() {
    let g = Gate::new().args(&["--", "true"]);
    let r = g.run();
    let user = g.path("config/gate/policy.yaml");
    r.status(0).stderr(&format!(
        "{}/etc/gate/policy.d/*.yaml, {}, `GATE_POLICY`, `--policy`)\n\
         hint: copy an example from gate's `policies/` directory to {} (or into /etc/gate/policy.d \
         for every user), then check it with `gate policy lint`\n",
        common::NO_POLICY_WARNING,
        user.display(),
        user.display(),
    ));
    // A shell string of several commands is still one warning.
    let r = Gate::new()
        .args(&["--", "sh", "-c", "true; true && true"])
        .run();
    r.status(0).any_stderr();
    assert_eq!(r.stderr.matches("warning:").count(), 1, "{}", r.stderr);
    // And it is recorded all the same.
    assert_eq!(g.records().len(), 3, "genesis, decision, result");
}

#[test]
fn attack_quiet_does_not_hide_that_nothing_is_protected() {
    // An agent passing -q still shows the person reading its transcript that gate decides
    // nothing here.
    Gate::new()
        .args(&["-q", "--", "true"])
        .run()
        .status(0)
        .stderr_contains(common::NO_POLICY_WARNING);
}

#[test]
fn any_policy_file_silences_the_warning() {
    // A policy from any place, even one that allows everything, is a decision someone made.
    Gate::new()
        .policy("version: 1\n")
        .args(&["--", "true"])
        .run()
        .stderr("");
    let g = Gate::new();
    g.write("config/gate/policy.yaml", "version: 1\ndefaults: { decision: allow }\n");
    g.args(&["--", "true"]).run().stderr("");
    let g = Gate::new();
    let p = g.write("p.yaml", "version: 1\n");
    g.args(&["--policy", p.to_str().unwrap(), "--", "true"])
        .run()
        .stderr("");
    Gate::new()
        .system_policy("00-base.yaml", "version: 1\n")
        .args(&["--", "true"])
        .run()
        .stderr("");
}

#[test]
fn json_runs_keep_stderr_to_the_one_decision_object() {
    let r = Gate::new().args(&["--json", "--", "true"]).run();
    r.status(0).any_stderr();
    let v: serde_json::Value = serde_json::from_str(r.stderr.trim()).expect("one JSON object");
    assert_eq!(v["decision"], "allow");
}
