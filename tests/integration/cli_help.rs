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
    // Asking for help on it, the same.
    Gate::new()
        .args(&["help", "aprove"])
        .run()
        .status(2)
        .stderr("error: unknown command `aprove`; did you mean `approve`?\n");
    // With its arguments and gate's options around it, the same.
    Gate::new()
        .args(&[
            "--policy",
            "p.yaml",
            "aprove",
            "0193a1b2",
            "--comment",
            "ok",
        ])
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
fn a_pasted_typographic_dash_is_taken_for_the_separator() {
    // `gate — rm -rf x` pasted from a document: nothing runs, and the line to type is shown.
    for (args, fixed) in [
        (&["\u{2014}", "rm", "-rf", "x"][..], "gate -- rm -rf x"),
        (&["-q", "\u{2013}\u{2013}", "ls"], "gate -q -- ls"),
        (&["check", "\u{2212}\u{2212}", "ls"], "gate check -- ls"),
    ] {
        let g = Gate::new();
        let x = g.write("x", "keep");
        let g = g.args(args);
        g.run().status(2).stderr(&format!(
            "error: `{}` is not `--`\nhint: write `--` with two ASCII hyphens: {fixed}\n",
            args.iter().find(|a| !a.is_ascii()).unwrap()
        ));
        assert!(x.exists());
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
             hint: to check a command, put `--` before it: gate check -- kubectl get pods\n",
        );
    Gate::new()
        .args(&["check", "--json", "curl", "-v", "https://example.com"])
        .run()
        .status(2)
        .stderr_contains(
            "hint: to check a command, put `--` before it: gate check --json -- curl -v https://example.com\n",
        );
}

#[test]
fn a_program_named_like_a_subcommand_gets_the_run_form_too() {
    // `man` is both gate's subcommand and a program: clap's message, then the way to run it.
    use std::os::unix::fs::PermissionsExt;
    let g = Gate::new();
    let man = g.write("bin/man", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&man, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", g.path("bin").display());
    let r = g.env("PATH", &path).args(&["man", "ls"]).run();
    r.status(2)
        .stderr_contains("unexpected argument 'ls'")
        .stderr_contains(
            "hint: to run the program `man` through gate, put `--` before it: gate -- man ls\n",
        );
    assert!(r.stdout.is_empty(), "the man page was printed");
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
        .args(&["--color", "bogus", "--", "ls"])
        .run()
        .status(2)
        .stderr_contains("invalid value 'bogus' for '--color <WHEN>'");
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
    let hints: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("hint:"))
        .collect();
    assert_eq!(hints.len(), 1, "{:?}", r.stderr);
    assert!(
        hints[0].contains("\\n") && hints[0].contains("\\e[2J"),
        "{}",
        hints[0]
    );
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
    g.write(
        "config/gate/policy.yaml",
        "version: 1\ndefaults: { decision: allow }\n",
    );
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
fn json_runs_keep_stderr_to_the_one_decision_object_which_carries_the_warning() {
    let r = Gate::new().args(&["--json", "--", "true"]).run();
    r.status(0).any_stderr();
    let v: serde_json::Value = serde_json::from_str(r.stderr.trim()).expect("one JSON object");
    assert_eq!(v["decision"], "allow");
    // The warning is a member of it.
    let w = v["warnings"][0].as_str().unwrap_or_default();
    assert!(
        w.starts_with("no policy file, so every command is allowed"),
        "{v}"
    );
    // With a policy, no such member.
    let r = Gate::new()
        .policy("version: 1\n")
        .args(&["--json", "--", "true"])
        .run();
    r.status(0).any_stderr();
    let v: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert!(v.get("warnings").is_none(), "{v}");
}

// ---- documentation: exit statuses, environment, files, no blank help

/// Every command path below `cmd` (`["log", "verify"]`), hidden and `help` ones left out.
fn command_paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut path = prefix.clone();
        path.push(sub.get_name().to_owned());
        out.push(path.clone());
        command_paths(sub, path, out);
    }
}

fn all_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    command_paths(&gate::cli::command(), Vec::new(), &mut out);
    out
}

#[test]
fn every_command_documents_its_exit_statuses_in_help_and_man_page() {
    let man = tempfile::tempdir().unwrap();
    Gate::new()
        .args(&["man", "--out-dir", man.path().to_str().unwrap()])
        .run();
    for path in all_commands() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let r = Gate::new().args(&args).run();
        let help = &r.stdout;
        let section = help
            .split_once("\nExit status:\n")
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("`gate {}` has no exit statuses:\n{help}", path.join(" ")));
        for status in ["0", "2", "70"] {
            let listed = section
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{status} ")));
            let group = section.contains("that of the subcommand");
            assert!(
                listed || (group && status == "0"),
                "`gate {} --help` does not say what exit {status} means:\n{section}",
                path.join(" ")
            );
        }
        let page =
            std::fs::read_to_string(man.path().join(format!("gate-{}.1", path.join("-")))).unwrap();
        for s in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
            assert!(page.contains(s), "gate-{}.1 lacks {s}", path.join("-"));
        }
    }
    let top = std::fs::read_to_string(man.path().join("gate.1")).unwrap();
    for s in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        assert!(top.contains(s), "gate.1 lacks {s}");
    }
    for (status, _) in gate::cli::reference::RUN_EXIT_STATUS {
        assert!(
            top.contains(&format!(".TP\n\\fB{status}\\fR\n")),
            "gate.1: {status}"
        );
    }
}

#[test]
fn the_exit_status_table_names_only_commands_that_exist() {
    let paths: Vec<String> = all_commands().iter().map(|p| p.join(" ")).collect();
    for (path, rows) in gate::cli::reference::EXIT_STATUS {
        assert!(
            paths.contains(&path.to_string()),
            "a row for `gate {path}`, which does not exist"
        );
        assert!(
            rows.iter().any(|(s, _)| *s == "0"),
            "`gate {path}`: no success status"
        );
    }
}

#[test]
fn documented_exit_statuses_are_the_ones_gate_exits_with() {
    // A sample across the table, run for real.
    let g = Gate::new();
    let bad = g.write("bad.yaml", "version: 1\nrulez: []\n");
    let good = g.write("good.yaml", "version: 1\nrules: []\n");
    let mut cases: Vec<(Vec<&str>, &str, i32)> = vec![
        (
            vec!["policy", "lint", bad.to_str().unwrap()],
            "policy lint",
            78,
        ),
        (
            vec!["policy", "lint", good.to_str().unwrap()],
            "policy lint",
            0,
        ),
        (
            vec!["check", "--policy", bad.to_str().unwrap(), "--", "ls"],
            "check",
            78,
        ),
        (vec!["log", "verify", "/nonexistent/log"], "log verify", 2),
        (
            vec!["serve", "token", "list", "--db", "/nonexistent/x.db"],
            "serve token list",
            78,
        ),
        (vec!["man", "--out-dir", "/proc/nope"], "man", 78),
    ];
    // An id that names nothing is not a configuration error.
    let db = g.path("server.db");
    let db = db.to_str().unwrap();
    Gate::new()
        .args(&[
            "serve",
            "token",
            "issue",
            "--db",
            db,
            "--principal",
            "alice",
        ])
        .run()
        .any_stderr();
    cases.push((
        vec!["serve", "token", "revoke", "--db", db, "tok_nonexistent"],
        "serve token revoke",
        1,
    ));
    for (args, path, status) in cases {
        Gate::new().args(&args).run().status(status).any_stderr();
        let rows = gate::cli::reference::exit_statuses(path, false);
        assert!(
            rows.iter().any(|(s, _)| *s == status.to_string()),
            "`gate {}` exits {status}, which `gate {path} --help` does not list",
            args.join(" ")
        );
    }
}

/// `GATE_*` names anywhere in src/'s code (string literals outside test modules): whatever way
/// a variable is read (`var`, a helper, a constant), its name is written once as a literal.
/// The debug-only crash points and a unit test's input are not for users: release builds do
/// not read them.
fn gate_variables_read() -> std::collections::BTreeSet<String> {
    const NOT_FOR_USERS: &[&str] = &[
        "GATE_TEST_PANIC",      // debug builds: a crash point in main
        "GATE_SERVER_CRASH_AT", // debug builds: the server's crash points
        "GATE_YAML_COMPARE",    // a unit test's extra input
    ];
    fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = std::collections::BTreeSet::new();
    for f in files {
        // Unit-test files and modules hold example data (`GATE_ENV` in a policy), not reads.
        if f.file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, _) in code.match_indices("\"GATE_") {
            let name: String = code[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !NOT_FOR_USERS.contains(&name.as_str()) {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_gate_variable_gate_reads_is_in_help_and_the_man_page() {
    let vars = gate_variables_read();
    // The scan finds what it must: the variables DESIGN names, and the build-time one.
    for v in [
        "GATE_POLICY",
        "GATE_LOG",
        "GATE_SPOOL",
        "GATE_REASON",
        "GATE_TOKEN",
        "GATE_SERVER",
        "GATE_AGENT",
        "GATE_SYSTEM_POLICY_DIR",
    ] {
        assert!(vars.contains(v), "the scan missed {v}: {vars:?}");
    }
    let help = Gate::new().args(&["--help"]).run().stdout.clone();
    let env_help = help
        .split_once("\nEnvironment:\n")
        .map(|(_, s)| s)
        .expect("an Environment section");
    let man = Gate::new().args(&["man"]).run().stdout.clone();
    let env_man = man
        .split_once(".SH ENVIRONMENT\n")
        .and_then(|(_, s)| s.split("\n.SH ").next())
        .expect("an ENVIRONMENT section");
    for v in &vars {
        assert!(
            env_help
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{v} "))),
            "{v} is read by gate but not in `gate --help`'s Environment"
        );
        assert!(
            env_man.contains(&format!("\\fB{}\\fR", v.replace('-', "\\-"))),
            "{v} is read by gate but not in gate(1)'s ENVIRONMENT"
        );
    }
    for v in ["NO_COLOR", "TERM", "XDG_CONFIG_HOME", "XDG_STATE_HOME"] {
        assert!(
            env_man.contains(&format!("\\fB{v}\\fR")),
            "gate(1) ENVIRONMENT lacks {v}"
        );
    }
}

#[test]
fn no_command_option_or_argument_goes_without_help() {
    fn walk(cmd: &clap::Command, path: &str, blank: &mut Vec<String>) {
        if cmd
            .get_about()
            .is_none_or(|a| a.to_string().trim().is_empty())
        {
            blank.push(format!("`{path}` (the command itself)"));
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let help = arg
                .get_help()
                .or(arg.get_long_help())
                .map(|h| h.to_string());
            if help.is_none_or(|h| h.trim().is_empty()) {
                blank.push(format!("`{path}` argument `{}`", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{path} {}", sub.get_name()), blank);
        }
    }
    let mut cmd = gate::cli::command();
    cmd.build();
    let mut blank = Vec::new();
    walk(&cmd, "gate", &mut blank);
    assert!(
        blank.is_empty(),
        "without help text:\n  {}",
        blank.join("\n  ")
    );
}

#[test]
fn the_policy_page_describes_every_key_the_policy_checker_accepts() {
    // The keys gate accepts are the lists its checker suggests from on an unknown key; each
    // must be in gate-policy(5), so a new key cannot go undocumented.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy/check");
    let mut keys = std::collections::BTreeSet::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("&[") {
            let before = &text[i.saturating_sub(200)..i];
            // An argument of `unknown_key(..)` (no `)` between), or a `const X: &[&str]`.
            let in_call = before
                .rfind("unknown_key(")
                .is_some_and(|at| !before[at..].contains(')'));
            let is_key_list = in_call || before.ends_with("&[&str] = ");
            if !is_key_list {
                continue;
            }
            let list = text[i + 2..].split(']').next().unwrap();
            for k in list.split(',') {
                let k = k.trim().trim_matches('"');
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    keys.insert(k.to_owned());
                }
            }
        }
    }
    for k in [
        "version",
        "rules",
        "min_approvals",
        "args_any",
        "opaque_approval",
        "webhook",
        "expect",
    ] {
        assert!(keys.contains(k), "the scan missed `{k}`: {keys:?}");
    }
    let g = Gate::new();
    let out = g.path("man");
    Gate::new()
        .args(&["man", "--out-dir", out.to_str().unwrap()])
        .run();
    let text = std::fs::read_to_string(out.join("gate-policy.5")).unwrap();
    for k in &keys {
        assert!(
            text.contains(&format!("\\fB{k}\\fR")),
            "gate-policy(5) does not describe the key `{k}`"
        );
    }
    // And the sink kinds' fields, which serde reads.
    for k in ["url", "ca", "app_name", "preset", "token", "labels", "path"] {
        assert!(
            text.contains(&format!("\\fB{k}\\fR")),
            "gate-policy(5): sink field `{k}`"
        );
    }
}
