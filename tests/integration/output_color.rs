//! Colour is decided in one place: `--color`, and a non-empty `NO_COLOR`, which wins over
//! `--color always` (STYLE.md).

use crate::common;

use common::Gate;

const DENY: &str =
    "version: 1\nrules:\n  - name: nope\n    match: { program: rm }\n    decision: deny\n";

fn denied(color: &str, no_color: Option<&str>) -> String {
    let mut g = Gate::new().policy(DENY);
    if let Some(v) = no_color {
        g = g.env("NO_COLOR", v);
    }
    let r = g.args(&["--color", color, "--", "rm", "x"]).run();
    // The colour is what is tested: the caller reads the whole of stderr.
    r.status(77).any_stderr();
    r.stderr.clone()
}

#[test]
fn color_always_colours_the_error() {
    assert!(
        denied("always", None).contains('\u{1b}'),
        "no colour with --color always"
    );
}

#[test]
fn non_empty_no_color_wins_over_color_always() {
    let e = denied("always", Some("1"));
    assert!(
        !e.contains('\u{1b}'),
        "NO_COLOR=1 with --color always coloured: {e:?}"
    );
    assert!(e.contains("error:"), "{e}");
}

#[test]
fn empty_no_color_is_no_wish() {
    assert!(denied("always", Some("")).contains('\u{1b}'));
}

#[test]
fn color_never_and_auto_without_a_terminal_are_plain() {
    assert!(!denied("never", None).contains('\u{1b}'));
    assert!(!denied("auto", None).contains('\u{1b}'));
}

#[test]
fn term_dumb_gets_no_colour_even_with_color_always() {
    // A dumb terminal shows escape sequences as text: like NO_COLOR, it wins over the flag.
    let r = Gate::new()
        .policy(DENY)
        .env("TERM", "dumb")
        .args(&["--color", "always", "--", "rm", "x"])
        .run();
    r.status(77).any_stderr();
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    assert!(r.stderr.starts_with("error: denied"), "{}", r.stderr);
    // Any other terminal type keeps what --color says.
    let r = Gate::new()
        .policy(DENY)
        .env("TERM", "xterm-256color")
        .args(&["--color", "always", "--", "rm", "x"])
        .run();
    r.status(77).any_stderr();
    assert!(r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

/// `gate ARGS` with `--color WHEN` and extra environment: (stdout, stderr) of a run with the
/// expected status.
fn output(g: &Gate, args: &[&str], env: &[(&str, &str)], status: i32) -> (String, String) {
    let mut c = g.command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let r = common::Ran::of(c);
    r.status(status);
    (r.stdout, r.stderr)
}

/// Each way of asking for no colour, and `--color always` alone, for one command.
fn honours_color(g: &Gate, args: &[&str], status: i32, coloured: fn(&str, &str) -> bool) {
    fn with<'a>(when: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["--color", when];
        a.extend_from_slice(args);
        a
    }
    let (out, err) = output(g, &with("always", args), &[], status);
    assert!(
        coloured(&out, &err),
        "`gate --color always {}` is not coloured:\n{out}\n{err}",
        args.join(" ")
    );
    for (when, env) in [
        ("never", vec![]),
        ("auto", vec![]),
        ("always", vec![("NO_COLOR", "1")]),
        ("always", vec![("TERM", "dumb")]),
    ] {
        let (out, err) = output(g, &with(when, args), &env, status);
        assert!(
            !out.contains('\u{1b}') && !err.contains('\u{1b}'),
            "`gate --color {when} {}` with {env:?} is coloured:\n{out:?}\n{err:?}",
            args.join(" ")
        );
    }
}

const APPROVE_RM: &str =
    "version: 1\nrules:\n  - name: ask\n    match: { program: rm }\n    decision: approve\n";

#[test]
fn color_applies_to_check() {
    let g = Gate::new().policy(APPROVE_RM);
    honours_color(&g, &["check", "--", "rm", "x"], 0, |out, _| {
        out.starts_with("decision: \u{1b}[")
    });
    let plain = output(&g, &["check", "--", "rm", "x"], &[], 0).0;
    assert!(plain.starts_with("decision: approve\n"), "{plain}");
    // The colour is added after escaping: requester text cannot smuggle its own.
    let (out, _) = output(
        &g,
        &["--color", "always", "check", "--", "rm", "\u{1b}[31mx"],
        &[],
        0,
    );
    assert!(out.contains("rm '\\e[31mx'"), "{out:?}");
}

#[test]
fn color_applies_to_policy_lint() {
    let g = Gate::new();
    let good = g.write("good.yaml", "version: 1\nrules: []\n");
    let bad = g.write("bad.yaml", "version: 1\nrulez: []\n");
    honours_color(
        &g,
        &["policy", "lint", good.to_str().unwrap()],
        0,
        |_, err| err.contains('\u{1b}'),
    );
    honours_color(
        &g,
        &["policy", "lint", bad.to_str().unwrap()],
        78,
        |_, err| err.contains("\u{1b}[31m"),
    );
}

#[test]
fn color_applies_to_log_verify() {
    let g = Gate::new().policy(APPROVE_RM);
    output(&g, &["--", "true"], &[], 0);
    honours_color(&g, &["log", "verify"], 0, |out, _| {
        out.lines()
            .any(|l| l.starts_with("\u{1b}[32m") && l.contains("INTACT"))
    });
    // A tampered log: its verdict in red.
    let log = g.path("audit.jsonl");
    let text = std::fs::read_to_string(&log)
        .unwrap()
        .replace("\"true\"", "\"false\"");
    std::fs::write(&log, text).unwrap();
    honours_color(&g, &["log", "verify"], 1, |out, _| {
        out.lines()
            .any(|l| l.starts_with("\u{1b}[31m") && l.contains("TAMPERED"))
    });
}

#[test]
fn usage_errors_and_help_follow_color_too() {
    // clap's messages and gate's own usage hints, before anything else is read.
    for args in [
        &["--color", "always", "--bogus"][..],
        &["--color=always", "requets"],
        &["--color", "always", "check", "--help"],
    ] {
        let g = Gate::new();
        let status = if args.contains(&"--help") { 0 } else { 2 };
        let (out, err) = output(&g, args, &[], status);
        assert!(
            out.contains('\u{1b}') || err.contains('\u{1b}'),
            "`gate {}` not coloured",
            args.join(" ")
        );
        for env in [("NO_COLOR", "1"), ("TERM", "dumb")] {
            let (out, err) = output(&g, args, &[env], status);
            assert!(
                !out.contains('\u{1b}') && !err.contains('\u{1b}'),
                "`gate {}` with {env:?} coloured: {out:?} {err:?}",
                args.join(" ")
            );
        }
        let mut never = args.to_vec();
        never[0] = "--color=never";
        if never[1] == "always" {
            never.remove(1);
        }
        let (out, err) = output(&g, &never, &[], status);
        assert!(
            !out.contains('\u{1b}') && !err.contains('\u{1b}'),
            "{never:?}"
        );
    }
}

#[test]
fn color_applies_to_policy_test() {
    let g = Gate::new();
    let p = g.write(
        "p.yaml",
        "version: 1\nrules:\n  - name: no-rm\n    match: { program: rm }\n    decision: deny\ntests:\n  - run: [rm, x]\n    expect: { decision: allow }\n",
    );
    honours_color(&g, &["policy", "test", p.to_str().unwrap()], 1, |out, _| {
        out.starts_with("\u{1b}[31m") && out.contains("FAIL")
    });
    let plain = output(&g, &["policy", "test", p.to_str().unwrap()], &[], 1).0;
    assert!(plain.starts_with("FAIL  "), "{plain}");
    assert!(plain.ends_with("0 passed, 1 failed\n"), "{plain}");
}
