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
