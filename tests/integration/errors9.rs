//! Errors with types (issue 9 §4): policy diagnostics travel as data and `output` renders them,
//! coloured when colour is on (a non-empty `NO_COLOR` always wins) and otherwise exactly the
//! text gate always printed; a bug in gate is an internal error, exit 70, that runs nothing.

use crate::common;

use common::Gate;

/// A policy with one unknown key: one diagnostic, with a hint (did you mean `decision`?).
const BAD: &str =
    "version: 1\nrules:\n  - name: x\n    match: { program: rm }\n    decison: deny\n";

/// The diagnostic as gate prints it without colour, `[DIR]` standing for the test directory.
const PLAIN: &str = "error: unknown key `decison`
  --> [DIR]/policy.yaml:5:5
  |
5 |     decison: deny
  |     ^
  = hint: did you mean `decision`?

error: 1 problem in policy
";

fn run_bad(args: &[&str], no_color: Option<&str>) -> (Gate, common::Checked) {
    let mut g = Gate::new().policy(BAD);
    if let Some(v) = no_color {
        g = g.env("NO_COLOR", v);
    }
    let g = g.args(args);
    let r = g.run();
    // Every caller checks stderr itself (coloured or plain, part by part).
    r.any_stderr();
    (g, r)
}

fn filtered(g: &Gate, text: &str) -> String {
    text.replace(&g.dir.path().to_string_lossy().into_owned(), "[DIR]")
}

/// Regression: `main` printed a multi-line config error raw, so `--color always` left policy
/// diagnostics uncoloured while every other error was coloured.
#[test]
fn policy_errors_are_coloured_with_color_always() {
    for args in [
        &["--color", "always", "--", "rm", "x"][..],
        &["--color", "always", "check", "--", "rm", "x"],
        &["--color", "always", "policy", "lint"],
    ] {
        let (g, r) = run_bad(args, None);
        r.status(78);
        let err = filtered(&g, &r.stderr);
        // Each part in its colour: red bold `error` and caret, blue bold arrow and gutter,
        // cyan bold `hint`; the message itself stays plain.
        for styled in [
            "\u{1b}[31m\u{1b}[1merror\u{1b}[0m: unknown key `decison`",
            "\u{1b}[34m\u{1b}[1m-->\u{1b}[0m [DIR]/policy.yaml:5:5",
            "\u{1b}[34m\u{1b}[1m5 |\u{1b}[0m     decison: deny",
            "\u{1b}[31m\u{1b}[1m^\u{1b}[0m",
            "= \u{1b}[36m\u{1b}[1mhint\u{1b}[0m: did you mean `decision`?",
            "\u{1b}[31m\u{1b}[1merror\u{1b}[0m: 1 problem in policy",
        ] {
            assert!(err.contains(styled), "{args:?}: {styled:?} not in {err:?}");
        }
        // Without its colour codes, the text is the plain one.
        assert_eq!(strip_ansi(&err), PLAIN, "{args:?}");
        assert!(!g.path("x").exists());
        assert!(
            g.records().is_empty(),
            "{args:?}: a record for a policy error"
        );
    }
}

#[test]
fn policy_errors_are_plain_with_no_color_or_without_a_terminal() {
    for (args, no_color) in [
        (&["--color", "always", "--", "rm", "x"][..], Some("1")),
        (&["--color", "always", "policy", "lint"], Some("1")),
        (&["--color", "never", "--", "rm", "x"], None),
        (&["--", "rm", "x"], None),
        (&["check", "--json", "--", "rm", "x"], None),
    ] {
        let (g, r) = run_bad(args, no_color);
        r.status(78);
        assert_eq!(
            filtered(&g, &r.stderr),
            PLAIN,
            "{args:?} NO_COLOR={no_color:?}"
        );
        assert_eq!(r.stdout, "", "{args:?}");
    }
}

/// A policy error among several files: every problem, sorted by file, then the count.
#[test]
fn policy_test_reports_problems_the_same_way() {
    let g = Gate::new();
    g.write(
        "a.yaml",
        "version: 1\nrules:\n  - name: x\n    matches: {}\n",
    );
    g.write("b.yaml", "version: 2\n");
    let g = g.args(&["--color", "never", "policy", "test", "a.yaml", "b.yaml"]);
    let r = g.run();
    r.status(78).any_stderr();
    let err = filtered(&g, &r.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("  --> a.yaml:4:5\n"), "{err}");
    assert!(err.contains("  --> b.yaml:1:10\n"), "{err}");
    assert!(err.ends_with("\n\nerror: 3 problems in policy\n"), "{err}");
}

/// A bug in gate (here a crash point that debug builds honour) is an internal error: exit 70,
/// not 78, which would send the user to fix a policy that is fine, nor Rust's 101 — and the
/// command does not run, and no record claims it did.
#[test]
fn an_internal_error_exits_70_and_runs_nothing() {
    for color in ["never", "always"] {
        let g = Gate::new()
            .policy("version: 1\n")
            .env("GATE_TEST_PANIC", "dispatch")
            .args(&["--color", color, "--", "touch", "ran"]);
        let r = g.run();
        r.status(70).any_stderr();
        let err = strip_ansi(&r.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(
            lines[0].starts_with(
                "error: internal error: crash point `dispatch` (GATE_TEST_PANIC) at src/main.rs:"
            ),
            "{err}"
        );
        assert_eq!(
            lines[1],
            "hint: this is a bug in gate, not in your policy or command; please report it with \
             the command that showed it"
        );
        assert_eq!(
            r.stderr.contains('\u{1b}'),
            color == "always",
            "{:?}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("panicked"),
            "Rust's panic report: {}",
            r.stderr
        );
        assert!(!g.path("ran").exists(), "the command ran");
        assert!(g.records().is_empty(), "a record after an internal error");
    }
    // The same run without the crash point does run: the test above can fail.
    let g = Gate::new()
        .policy("version: 1\n")
        .args(&["--", "touch", "ran"]);
    g.run().status(0);
    assert!(g.path("ran").exists());
}

/// Removes SGR colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A value clap cannot read is a usage error (2) that says how to write it; nothing runs.
#[test]
fn a_bad_duration_says_how_to_write_one() {
    let g = Gate::new().policy("version: 1\n").args(&[
        "--timeout",
        "5 fortnights",
        "--",
        "touch",
        "ran",
    ]);
    let r = g.run();
    r.status(2)
        .stderr_has("'5 fortnights' for '--timeout <DURATION>'")
        .stderr_has("(write durations like `90s` or `10m`)");
    assert!(!g.path("ran").exists());
}
