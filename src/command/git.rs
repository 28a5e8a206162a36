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

/// git's own commands (built in, or shipped with git). Anything else may be an alias from a
/// config file gate cannot see, or a `git-NAME` program on PATH: unreadable. Plumbing that
/// pushes (`send-pack`) is left out too: it is `push` under another name.
#[rustfmt::skip]
const SUBCOMMANDS: &[&str] = &[
    "add", "am", "annotate", "apply", "archive", "bisect", "blame", "branch", "bugreport",
    "bundle", "cat-file", "check-attr", "check-ignore", "check-mailmap", "check-ref-format",
    "checkout", "checkout-index", "cherry", "cherry-pick", "citool", "clean", "clone", "column",
    "commit", "commit-graph", "commit-tree", "config", "count-objects", "credential", "describe",
    "diagnose", "diff", "diff-files", "diff-index", "diff-tree", "fast-export", "fast-import",
    "fetch", "fetch-pack", "fmt-merge-msg", "for-each-ref", "for-each-repo", "format-patch",
    "fsck", "gc", "get-tar-commit-id", "grep", "gui", "hash-object", "help", "index-pack", "init",
    "interpret-trailers", "log", "ls-files", "ls-remote", "ls-tree", "mailinfo", "mailsplit",
    "maintenance", "merge", "merge-base", "merge-file", "merge-index", "merge-tree", "mktag",
    "mktree", "multi-pack-index", "mv", "name-rev", "notes", "pack-objects", "pack-refs",
    "patch-id", "prune", "prune-packed", "pull", "push", "range-diff", "read-tree", "rebase",
    "reflog", "refs", "remote", "repack", "replace", "replay", "request-pull", "rerere", "reset",
    "restore", "rev-list", "rev-parse", "revert", "rm", "shortlog", "show",
    "show-branch", "show-index", "show-ref", "sparse-checkout", "stash", "status", "stripspace",
    "submodule", "switch", "symbolic-ref", "tag", "unpack-file", "unpack-objects",
    "update-index", "update-ref", "update-server-info", "var", "verify-commit", "verify-pack",
    "verify-tag", "version", "whatchanged", "worktree", "write-tree",
];

/// `-c` settings that run no program and change no command: anything else (`alias.*`,
/// `core.sshCommand`, `core.pager`, `core.hooksPath`, `credential.helper`, `*.command`,
/// `include.path`, `protocol.*.allow`, `url.*.insteadOf`, ...) makes the command unreadable.
fn harmless_config(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    const PREFIXES: &[&str] = &["user.", "color.", "advice.", "i18n.", "column."];
    const KEYS: &[&str] = &[
        "init.defaultbranch",
        "core.quotepath",
        "core.autocrlf",
        "core.safecrlf",
        "core.abbrev",
        "core.filemode",
        "core.ignorecase",
        "core.longpaths",
        "core.precomposeunicode",
        "push.default",
        "push.autosetupremote",
        "pull.rebase",
        "pull.ff",
        "merge.ff",
        "fetch.prune",
        "rebase.autostash",
        "rebase.autosquash",
        "safe.directory",
        "protocol.version",
        "log.date",
        "log.decorate",
        "log.showsignature",
        "format.pretty",
        "diff.noprefix",
        "diff.renames",
        "diff.algorithm",
        "commit.gpgsign",
        "tag.gpgsign",
        "gc.auto",
        "maintenance.auto",
        "http.sslverify",
        "checkout.defaultremote",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || KEYS.contains(&key.as_str())
}

/// Whether git reads the same way whatever the words known only at run time turn out to be
/// (`dynamic` tells which those are): each must be the value of an option that takes one
/// (`commit -m "$MSG"`, `--message="$MSG"`) or come after `--`. Any other word may turn out
/// to be an option that runs a program (`-c alias.x=!...`, `--receive-pack=...`).
pub fn dynamic_words_are_values(args: &[String], dynamic: impl Fn(&str) -> bool) -> bool {
    let parsed_sub = args.iter().position(|w| !w.starts_with('-'));
    let mut i = 0;
    // Before the subcommand: only values of git's own options may be dynamic.
    let mut sub_at = None;
    while let Some(w) = args.get(i) {
        if w == "--" {
            return args[i + 1..].iter().all(|w| !dynamic(w)) || parsed_sub.is_none();
        }
        if !w.starts_with('-') {
            if dynamic(w) {
                return false;
            }
            sub_at = Some(i);
            break;
        }
        if dynamic(w) {
            return false;
        }
        i += if GLOBAL_VALUED.contains(&w.as_str()) {
            2
        } else {
            1
        };
    }
    let Some(sub_at) = sub_at else {
        return true;
    };
    let valued = sub_valued(&args[sub_at]);
    let mut after_dashes = false;
    for (j, w) in args.iter().enumerate().skip(sub_at + 1) {
        if w == "--" {
            after_dashes = true;
            continue;
        }
        if after_dashes || !dynamic(w) {
            continue;
        }
        let value_of_previous = valued.contains(&args[j - 1].as_str());
        let attached = valued.iter().any(|o| {
            (o.len() == 2 && w.starts_with(o) && w.len() > 2)
                || (o.starts_with("--") && w.starts_with(&format!("{o}=")))
        });
        if !value_of_previous && !attached {
            return false;
        }
    }
    true
}

/// What `git ARGS` runs besides git itself (see [`super::wrap`]).
pub fn runs(args: &[String]) -> Vec<super::wrap::Run> {
    use super::wrap::Run;
    let opaque = |why: String| vec![Run::Opaque(why)];
    let mut i = 0;
    // git's own options, before the subcommand.
    while let Some(a) = args.get(i) {
        i += 1;
        if !a.starts_with('-') {
            i -= 1;
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (a.as_str(), None),
        };
        match name {
            "-c" => {
                let setting = args.get(i).map(String::as_str).unwrap_or("");
                i += 1;
                let key = setting.split_once('=').map_or(setting, |(k, _)| k);
                if !harmless_config(key) {
                    return opaque(format!("`git -c {key}` can make git run other programs"));
                }
            }
            _ if name.starts_with("-c") && name.len() > 2 => {
                let setting = &name[2..];
                let key = setting.split_once('=').map_or(setting, |(k, _)| k);
                if !harmless_config(key) {
                    return opaque(format!("`git -c {key}` can make git run other programs"));
                }
            }
            "-C" | "--git-dir" | "--work-tree" | "--namespace" | "--super-prefix"
            | "--attr-source" => {
                if inline.is_none() {
                    i += 1;
                }
            }
            "--exec-path" if inline.is_some() => {
                return opaque("`git --exec-path=DIR` runs git commands from DIR".into());
            }
            "--config-env" => {
                return opaque("`git --config-env` takes a setting from the environment".into());
            }
            "-p"
            | "--paginate"
            | "-P"
            | "--no-pager"
            | "--bare"
            | "--no-replace-objects"
            | "--literal-pathspecs"
            | "--glob-pathspecs"
            | "--noglob-pathspecs"
            | "--icase-pathspecs"
            | "--no-optional-locks"
            | "--no-advice"
            | "--no-lazy-fetch"
            | "--exec-path"
            | "--html-path"
            | "--man-path"
            | "--info-path"
            | "--version"
            | "-v"
            | "--help"
            | "-h"
            | "--list-cmds" => {}
            "--" => break,
            _ => return opaque(format!("`git {name}` is an option gate does not read")),
        }
    }
    let Some(sub) = args.get(i) else {
        return Vec::new();
    };
    if !SUBCOMMANDS.contains(&sub.as_str()) {
        return opaque(format!(
            "`git {sub}` may be an alias or a program gate cannot see"
        ));
    }
    let rest = &args[i + 1..];
    let has = |opts: &[&str]| {
        rest.iter().any(|w| {
            opts.iter()
                .any(|o| w == o || (o.starts_with("--") && w.starts_with(&format!("{o}="))))
        })
    };
    match sub.as_str() {
        "push" | "send-pack" if has(&["--receive-pack", "--exec"]) => {
            opaque(format!("`git {sub} --receive-pack` runs a program"))
        }
        "fetch" | "pull" | "ls-remote" | "fetch-pack" | "archive"
            if has(&["--upload-pack", "--exec"]) =>
        {
            opaque(format!("`git {sub} --upload-pack` runs a program"))
        }
        "clone" if has(&["-u", "--upload-pack", "--template", "-c", "--config"]) => {
            opaque("`git clone` with settings or templates that can run programs".into())
        }
        "rebase" => {
            let mut out = Vec::new();
            let mut j = 0;
            while let Some(w) = rest.get(j) {
                j += 1;
                if w == "-x" || w == "--exec" {
                    if let Some(s) = rest.get(j) {
                        out.push(Run::Script(s.clone()));
                    }
                    j += 1;
                } else if let Some(s) = w.strip_prefix("--exec=") {
                    out.push(Run::Script(s.to_owned()));
                } else if let Some(s) = w.strip_prefix("-x").filter(|s| !s.is_empty()) {
                    out.push(Run::Script(s.to_owned()));
                }
            }
            out
        }
        "bisect" if rest.first().is_some_and(|w| w == "run") => match rest.get(1..) {
            Some(cmd) if !cmd.is_empty() => vec![Run::Command(cmd.to_vec())],
            _ => Vec::new(),
        },
        "submodule" if rest.iter().any(|w| w == "foreach") => {
            opaque("`git submodule foreach` runs a command in every submodule".into())
        }
        "difftool" | "mergetool" | "filter-branch" | "gui" | "citool" => {
            opaque(format!("`git {sub}` runs programs gate does not read"))
        }
        "config" if rest.iter().any(|w| w == "-e" || w == "--edit") => {
            opaque("`git config --edit` runs an editor".into())
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn dynamic_words_only_as_values() {
        let d = |w: &str| w.contains('$');
        let ok = |line: &str| dynamic_words_are_values(&argv(line), d);
        assert!(ok("commit -m $MSG"));
        assert!(ok("commit --message=$MSG -a"));
        assert!(ok("commit -m$MSG"));
        assert!(ok("checkout -- $FILE"));
        assert!(ok("-C $DIR status"), "the value of -C");
        assert!(!ok("$X p --force"));
        assert!(!ok("push $X origin"));
        assert!(!ok("$SUB origin"));
        assert!(!ok("log $ARGS"));
    }

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
