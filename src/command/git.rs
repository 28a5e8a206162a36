//! git grammar.
//!
//! Before the subcommand only git's own options apply ([`GLOBAL_VALUED`]:
//! `-C PATH`, `-c name=value`, `--git-dir X`, ...; `--exec-path` takes a
//! value only as `--exec-path=X`). After it, git's parse-options rules:
//! clusters (`-am MSG`), attached (`-mMSG`), `--opt=v`, `--opt v`, options
//! anywhere. Options whose argument is optional take it only when attached
//! or after `=` (`--force-with-lease`, `-S`, `--signed`), so they are
//! booleans here; [`sub_valued`] lists per subcommand the options whose
//! argument is required. Unknown options are booleans. Aliases are not
//! expanded (we cannot see the user's config). No payload files.

use super::{Grammar, Parsed, scan};

/// Options before the subcommand that take a separate value.
pub const GLOBAL_VALUED: &[&str] = &[
    "-C",
    "-c",
    "--git-dir",
    "--work-tree",
    "--namespace",
    "--super-prefix",
    "--config-env",
    "--attr-source",
];

/// Diff/log revision options with a required argument, shared by several subcommands.
#[rustfmt::skip]
const LOG_VALUED: &[&str] = &[
    "-n", "--max-count", "--skip", "--since", "--after", "--until", "--before", "--author",
    "--committer", "--grep", "--min-age", "--max-age", "-L", "-G", "-S", "-O", "--output",
    "--src-prefix", "--dst-prefix",
];

/// Value-taking options of subcommand `sub` (options with a required argument).
/// A table, kept dense on purpose.
#[rustfmt::skip]
pub fn sub_valued(sub: &str) -> &'static [&'static str] {
    match sub {
        "add" => &["--chmod", "--pathspec-from-file"],
        "am" => &["-p", "-C", "--directory", "--exclude", "--include", "--whitespace", "--patch-format"],
        "apply" => &["-p", "-C", "--directory", "--exclude", "--include", "--whitespace"],
        "archive" => &["-o", "--output", "--format", "--prefix", "--remote", "--exec", "--add-file"],
        "blame" => &["-L", "-S", "--contents", "--date", "--ignore-rev", "--ignore-revs-file"],
        "branch" => &[
            "-u", "--set-upstream-to", "--contains", "--no-contains", "--merged", "--no-merged",
            "--points-at", "--sort", "--format",
        ],
        "checkout" => &["-b", "-B", "--orphan", "--pathspec-from-file"],
        "cherry-pick" | "revert" => &["-m", "--mainline", "-s", "--strategy", "-X", "--strategy-option"],
        "clean" => &["-e", "--exclude"],
        "clone" => &[
            "-o", "--origin", "-b", "--branch", "-u", "--upload-pack", "--reference",
            "--reference-if-able", "--separate-git-dir", "--depth", "--shallow-since",
            "--shallow-exclude", "-c", "--config", "--template", "-j", "--jobs", "--filter",
            "--bundle-uri", "--server-option", "--ref-format",
        ],
        "commit" => &[
            "-m", "--message", "-F", "--file", "-C", "--reuse-message", "-c", "--reedit-message",
            "--author", "--date", "-t", "--template", "--fixup", "--squash", "--cleanup",
            "--trailer", "--pathspec-from-file",
        ],
        "commit-tree" => &["-m", "-F", "-p"],
        "config" => &["-f", "--file", "--blob", "--type", "--default", "--comment", "--value"],
        "diff" | "log" | "show" | "whatchanged" | "shortlog" => LOG_VALUED,
        "fetch" | "pull" => &[
            "--depth", "--deepen", "--shallow-since", "--shallow-exclude", "--upload-pack", "-o",
            "--server-option", "-j", "--jobs", "--negotiation-tip", "--refmap", "-s", "--strategy",
            "-X", "--strategy-option", "--filter",
        ],
        "for-each-ref" => &[
            "--format", "--sort", "--count", "--points-at", "--contains", "--merged", "--exclude",
        ],
        "format-patch" => &[
            "-o", "--output-directory", "-v", "--reroll-count", "--subject-prefix", "--to", "--cc",
            "--in-reply-to", "--signature", "--base",
        ],
        "grep" => &["-e", "-f", "-A", "-B", "-C", "-m", "--max-count", "--max-depth", "--threads"],
        "merge" => &[
            "-m", "-F", "--file", "-s", "--strategy", "-X", "--strategy-option", "--into-name",
            "--cleanup",
        ],
        "notes" => &["-m", "--message", "-F", "--file", "-c", "-C", "--ref"],
        "push" => &["-o", "--push-option", "--repo", "--receive-pack", "--exec", "--recurse-submodules"],
        "rebase" => &[
            "--onto", "-s", "--strategy", "-X", "--strategy-option", "-x", "--exec", "-C",
            "--whitespace",
        ],
        "remote" => &["-t", "-m"],
        "reset" | "rm" => &["--pathspec-from-file"],
        "restore" => &["-s", "--source", "--pathspec-from-file"],
        "stash" => &["-m", "--message", "--pathspec-from-file"],
        "submodule" => &["-b", "--branch", "--name", "--reference", "--depth", "-j", "--jobs"],
        "switch" => &["-c", "--create", "-C", "--force-create", "--orphan"],
        "symbolic-ref" | "update-ref" => &["-m"],
        "tag" => &[
            "-m", "--message", "-F", "--file", "-u", "--local-user", "--cleanup", "--contains",
            "--no-contains", "--points-at", "--merged", "--no-merged", "--sort", "--format",
            "--trailer",
        ],
        "worktree" => &["-b", "-B", "--reason"],
        _ => &[],
    }
}

struct Git;

impl Grammar for Git {
    fn takes_value(&self, words: &[String], opt: &str) -> bool {
        match words.first() {
            None => GLOBAL_VALUED.contains(&opt),
            Some(sub) => sub_valued(sub).contains(&opt),
        }
    }
}

pub fn parse(args: &[String]) -> Parsed {
    scan(args, &Git)
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            ("push --force origin main", &["push", "origin", "main"]),
            (
                "-C /repo -c user.name=x --git-dir .git push -f origin main",
                &["push", "origin", "main"],
            ),
            (
                "--git-dir=.git --work-tree=. --exec-path status",
                &["status"],
            ),
            (
                "push -o ci.skip --repo r --force-with-lease origin HEAD:main",
                &["push", "origin", "HEAD:main"],
            ),
            (
                "push --push-option=x origin :old",
                &["push", "origin", ":old"],
            ),
            ("commit -am wip", &["commit"]),
            ("commit -m msg -- file", &["commit", "file"]),
            ("commit -mmsg --author A file", &["commit", "file"]),
            (
                "checkout -b feature origin/main",
                &["checkout", "origin/main"],
            ),
            ("checkout -- path", &["checkout", "path"]),
            (
                "switch -c new --track origin/new",
                &["switch", "origin/new"],
            ),
            ("reset --hard HEAD~1", &["reset", "HEAD~1"]),
            ("branch -D old -u origin/x", &["branch", "old"]),
            ("log -n 5 --author bob --oneline main", &["log", "main"]),
            ("clean -fdx -e keep", &["clean"]),
            ("-c", &[]),
            ("-C -- x", &["x"]),
        ];
        for (line, want) in cases {
            let got = parse(&argv(line));
            assert_eq!(got.words, *want, "{line}");
            assert!(got.payload_files.is_empty());
        }
    }
}
