//! The checked-in shell completions (`completions/`) and man pages (`man/`) must be exactly what
//! the current `gate` binary generates. When they drift, the test fails and says how to
//! regenerate them; with `GATE_UPDATE_GENERATED=1` it rewrites the checked-in copies instead
//! (removing stale files), the way uv keeps its generated references current.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use common::Gate;

const REGENERATE: &str = "run `cargo run -- completions bash --out-dir completions && cargo run -- man --out-dir man` \
     (or `GATE_UPDATE_GENERATED=1 cargo test --test generated`) and commit the result";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real binary to generate `what` ("completions" or "man") into a fresh directory.
fn generate(what: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let args: Vec<&str> = match what {
        "completions" => vec!["completions", "bash", "--out-dir", dir],
        "man" => vec!["man", "--out-dir", dir],
        _ => unreachable!(),
    };
    let r = Gate::new().args(&args).run();
    r.status(0);
    assert!(
        r.stdout.is_empty(),
        "`gate {what} --out-dir` also printed on stdout"
    );
    out
}

/// The regular files directly in `dir` (none when it does not exist).
fn files(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Every way `checked_in` differs from `fresh`: missing, different and stale files.
fn drift(checked_in: &Path, fresh: &Path) -> Vec<String> {
    let want = files(fresh);
    let have = files(checked_in);
    let mut problems = Vec::new();
    for name in &want {
        if !have.contains(name) {
            problems.push(format!("missing: {name}"));
        } else if std::fs::read(checked_in.join(name)).unwrap()
            != std::fs::read(fresh.join(name)).unwrap()
        {
            problems.push(format!("out of date: {name}"));
        }
    }
    for name in have.difference(&want) {
        problems.push(format!("stale (gate no longer generates it): {name}"));
    }
    problems
}

/// Makes `checked_in` hold exactly the files of `fresh`.
fn sync(checked_in: &Path, fresh: &Path) {
    std::fs::create_dir_all(checked_in).unwrap();
    let want = files(fresh);
    for name in files(checked_in).difference(&want) {
        std::fs::remove_file(checked_in.join(name)).unwrap();
    }
    for name in &want {
        std::fs::copy(fresh.join(name), checked_in.join(name)).unwrap();
    }
}

fn updating() -> bool {
    std::env::var_os("GATE_UPDATE_GENERATED").is_some_and(|v| v == "1")
}

fn keep_current(what: &str) {
    let fresh = generate(what);
    let checked_in = root().join(what);
    let problems = drift(&checked_in, fresh.path());
    if problems.is_empty() {
        return;
    }
    if updating() {
        sync(&checked_in, fresh.path());
        assert!(drift(&checked_in, fresh.path()).is_empty());
        eprintln!("updated {}: {}", checked_in.display(), problems.join("; "));
        return;
    }
    panic!(
        "the checked-in `{what}/` differs from what gate generates:\n  {}\n{REGENERATE}",
        problems.join("\n  ")
    );
}

#[test]
fn checked_in_completions_are_current() {
    keep_current("completions");
}

#[test]
fn checked_in_man_pages_are_current() {
    keep_current("man");
}

#[test]
fn drift_catches_stale_changed_and_missing_files() {
    let fresh = generate("man");
    let copy = tempfile::tempdir().unwrap();
    sync(copy.path(), fresh.path());
    assert_eq!(drift(copy.path(), fresh.path()), Vec::<String>::new());

    // A page for a subcommand that no longer exists.
    std::fs::write(
        copy.path().join("gate-frobnicate.1"),
        ".TH gate-frobnicate 1\n",
    )
    .unwrap();
    // A page edited by hand, and one deleted.
    std::fs::write(copy.path().join("gate-check.1"), "edited\n").unwrap();
    std::fs::remove_file(copy.path().join("gate-man.1")).unwrap();
    assert_eq!(
        drift(copy.path(), fresh.path()),
        [
            "out of date: gate-check.1",
            "missing: gate-man.1",
            "stale (gate no longer generates it): gate-frobnicate.1",
        ]
    );

    // What GATE_UPDATE_GENERATED=1 does repairs all three.
    sync(copy.path(), fresh.path());
    assert_eq!(drift(copy.path(), fresh.path()), Vec::<String>::new());
    assert!(!copy.path().join("gate-frobnicate.1").exists());
}

#[test]
fn completions_for_every_shell() {
    let dir = generate("completions");
    let expected = ["_gate", "_gate.ps1", "gate.bash", "gate.elv", "gate.fish"];
    assert_eq!(
        files(dir.path()),
        expected
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    // `gate completions SHELL` prints exactly what --out-dir writes for that shell.
    for (shell, file) in [
        ("bash", "gate.bash"),
        ("zsh", "_gate"),
        ("fish", "gate.fish"),
        ("elvish", "gate.elv"),
        ("powershell", "_gate.ps1"),
    ] {
        let r = Gate::new().args(&["completions", shell]).run();
        r.status(0);
        let written = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(r.stdout, written, "`gate completions {shell}` vs {file}");
        for sub in ["check", "policy", "requests", "approve"] {
            assert!(written.contains(sub), "{file} does not complete `{sub}`");
        }
    }
}

#[test]
fn completions_bash_prints_a_script_for_gate() {
    let r = Gate::new().args(&["completions", "bash"]).run();
    r.status(0);
    assert!(
        r.stdout.starts_with("_gate() {"),
        "{}",
        &r.stdout[..r.stdout.len().min(200)]
    );
    assert!(r.stdout.contains("complete -F _gate"), "no `complete` line");
    assert!(
        r.stdout.contains("--policy"),
        "global --policy not completed"
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn completions_unknown_shell_is_a_usage_error() {
    Gate::new()
        .args(&["completions", "tcsh"])
        .run()
        .status(2)
        .stderr_contains("tcsh");
}

#[test]
fn man_prints_a_roff_page() {
    let r = Gate::new().args(&["man"]).run();
    r.status(0);
    // clap_mangen opens with a few roff requests (`.ie`/`.el` for the quote string), then `.TH`.
    let th = r
        .stdout
        .lines()
        .position(|l| l.starts_with(".TH "))
        .expect("no .TH line");
    assert!(
        r.stdout.lines().take(th).all(|l| l.starts_with('.')),
        "non-roff text before .TH:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().nth(th).unwrap().starts_with(".TH gate 1 "),
        "{}",
        r.stdout
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
    ] {
        assert!(r.stdout.contains(section), "gate.1 lacks {section}");
    }
    // It is the same page that --out-dir writes as gate.1.
    let dir = generate("man");
    assert_eq!(
        r.stdout,
        std::fs::read_to_string(dir.path().join("gate.1")).unwrap()
    );
}

/// `gate` plus every subcommand path, as man page names (`gate-policy-lint.1`).
fn page_names(cmd: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
    out.insert(format!("{prefix}.1"));
    for sub in cmd.get_subcommands() {
        if sub.get_name() != "help" && !sub.is_hide_set() {
            page_names(sub, &format!("{prefix}-{}", sub.get_name()), out);
        }
    }
}

#[test]
fn man_writes_one_page_per_subcommand() {
    let mut expected = BTreeSet::new();
    page_names(&gate::cli::Cli::command(), "gate", &mut expected);
    assert!(expected.contains("gate-policy-lint.1") && expected.contains("gate-check.1"));
    // And the policy file format, in section 5.
    expected.insert("gate-policy.5".to_owned());
    let dir = generate("man");
    assert_eq!(files(dir.path()), expected);
    for name in &expected {
        let page = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let (title, section) = name.rsplit_once('.').unwrap();
        assert!(
            page.contains(&format!(".TH {title} {section} ")),
            "{name} has no `.TH {title} {section}` header"
        );
    }
}
