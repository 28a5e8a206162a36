//! The README's tour and the docs' examples run as tests (the harness is
//! `common::doctest`): a documented command that stops working, a policy snippet that no
//! longer lints, or an example that is neither run nor says why, fails here with the doc's
//! `file:line`. Every markdown file of the repository is covered: the ones named below each have
//! a test, and `every_other_markdown_file_runs` takes any file added later.

use crate::common;

use common::doctest::{self, Directive};

/// Runs `rel` and fails with every broken example. A file with no runnable example at all is
/// suspicious too (a harness that finds nothing passes everything).
#[track_caller]
fn doc(rel: &str) {
    let run = doctest::run_doc(rel);
    let ran = run.ran;
    run.finish();
    assert!(ran > 0, "{rel}: not one example ran");
}

#[test]
fn readme_tour_runs() {
    doc("README.md");
}

#[test]
fn policy_reference_examples_run() {
    doc("docs/policy.md");
}

#[test]
fn server_examples_run_against_a_real_server() {
    doc("docs/server.md");
}

#[test]
fn sinks_examples_run() {
    doc("docs/sinks.md");
}

#[test]
fn sinks_http_examples_run() {
    doc("docs/sinks-http.md");
}

#[test]
fn sinks_syslog_examples_run() {
    doc("docs/sinks-syslog.md");
}

#[test]
fn audit_log_format_examples_run() {
    doc("docs/audit-log-format.md");
}

#[test]
fn agents_examples_run() {
    doc("docs/agents.md");
}

const NAMED: &[&str] = &[
    "README.md",
    "docs/policy.md",
    "docs/server.md",
    "docs/sinks.md",
    "docs/sinks-http.md",
    "docs/sinks-syslog.md",
    "docs/audit-log-format.md",
    "docs/agents.md",
];

/// Markdown files no test above names (docs added by later work, the threat model): their
/// gate commands must run or say why not, like everyone's. They need not have a runnable one.
#[test]
fn every_other_markdown_file_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.to_owned(), root.join("docs")] {
        collect_md(&dir, root, &mut files);
    }
    let mut failures = Vec::new();
    for rel in files.iter().filter(|f| !NAMED.contains(&f.as_str())) {
        failures.append(&mut doctest::run_doc(rel).failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn collect_md(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.extension().is_some_and(|e| e == "md") && p.is_file() {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        } else if p.is_dir() && p.starts_with(root.join("docs")) && p != root.join("docs") {
            collect_md(&p, root, out);
        }
    }
}

/// The harness itself: a broken example fails, at its line, and so does an unmarked one.
#[test]
fn a_broken_example_fails_with_its_doc_line() {
    let md = "# t\n\n\
              ```console\n\
              $ gate check -- true\n\
              decision: deny\n\
              ```\n\n\
              <!-- doc-test: exit 0 -->\n\
              ```yaml\n\
              version: 1\n\
              rules:\n\
              \x20 - name: x\n\
              \x20   approval: { approvers: [nobody] }\n\
              \x20   decision: approve\n\
              ```\n\n\
              Run it:\n\n\
              \x20   gate log show\n\n\
              ```sh\n\
              gate policy lint no-such-file.yaml\n\
              ```\n";
    let mut run = doctest::DocRun::new("t.md");
    run.run(md);
    let all = run.failures.join("\n");
    assert_eq!(run.failures.len(), 4, "{all}");
    assert!(
        all.contains("t.md:4: `gate check -- true` printed something else than the doc shows"),
        "{all}"
    );
    assert!(
        all.contains("t.md:9: `gate policy lint` of this policy exited 78"),
        "{all}"
    );
    assert!(all.contains("unknown group `nobody`"), "{all}");
    assert!(
        all.contains("t.md:19: this indented block runs gate (`gate log show`)"),
        "{all}"
    );
    assert!(all.contains("t.md:21: the script exited 78"), "{all}");
}

#[test]
fn a_skip_needs_a_reason_and_a_block() {
    for (md, problem) in [
        (
            "<!-- doc-test: skip -->\n```sh\ngate x\n```\n",
            "`skip` needs a reason",
        ),
        (
            "<!-- doc-test: exit x -->\n```sh\ngate x\n```\n",
            "`exit` takes a status",
        ),
        (
            "<!-- doc-test: run it -->\n```sh\ngate x\n```\n",
            "unknown doc-test directive",
        ),
        (
            "<!-- doc-test: skip needs a network -->\n\ntext\n",
            "no block follows",
        ),
    ] {
        let mut run = doctest::DocRun::new("t.md");
        run.run(md);
        let all = run.failures.join("\n");
        assert!(
            all.contains("t.md: line 1: ") && all.contains(problem),
            "{md:?}: {all}"
        );
    }
    let b = doctest::blocks(
        "<!-- doc-test: exit 75; skip talks to Slack; not here -->\n\n```sh\ngate -- x\n```\n",
    )
    .unwrap();
    assert_eq!(
        b[0].directives,
        [
            Directive::Exit(75),
            Directive::Skip("talks to Slack; not here".into())
        ]
    );
}

#[test]
fn wildcards_match_as_trycmd_does() {
    let e = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(doctest::matches(&e("a\n...\nz"), &["a", "b", "c", "z"]));
    assert!(doctest::matches(&e("a\n...\nz"), &["a", "z"]));
    assert!(!doctest::matches(&e("a\n...\nz"), &["a", "b"]));
    assert!(doctest::matches(&e("id [..] ok"), &["id 0193 ok"]));
    assert!(!doctest::matches(&e("id [..] ok"), &["id 0193 no"]));
    assert!(!doctest::matches(&e("a"), &["a", "b"]));
}

#[test]
fn gate_commands_are_found_wherever_they_run() {
    for l in [
        "gate -- ls",
        "$ gate check -- x",
        "sudo gate setup local",
        "GATE_ENV=prod gate check -- x",
        "echo \"$T\" | gate login URL",
        "ALICE=$(gate serve token issue --principal alice)",
        "  - run: gate --policy .gate/ci.yaml -- terraform apply",
    ] {
        assert!(doctest::runs_gate(l.trim_start_matches("  - run: ")), "{l}");
    }
    for l in [
        "gate: listening on",
        "the gate server",
        "gate/vm+3d47",
        "# gate -- x",
    ] {
        assert!(!doctest::runs_gate(l), "{l}");
    }
}

/// The design notes the project grew from are not in the repository: a doc that points at them
/// points nowhere. README, docs/, the man pages and the help texts (`src/cli.rs`) say what a
/// reader needs themselves.
#[test]
fn docs_do_not_refer_to_a_design_document_outside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("src/cli.rs")];
    for dir in ["docs", "man"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    let mut found = Vec::new();
    for f in files.iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("DESIGN") {
                found.push(format!("{}:{}: {line}", f.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
