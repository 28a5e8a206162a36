//! Documentation that runs (trycmd-style, our own): reads a markdown file's code blocks and runs
//! the ones that show gate at work, so a documented command that stops working fails the suite
//! with the doc's `file:line`.
//!
//! What a block does depends on its fence's language:
//! - ```` ```console ````: `$ COMMAND` lines (a trailing `\` continues one), each followed by
//!   its expected output (stdout, then stderr). `...` alone on a line matches any number of
//!   lines; `[..]` matches any text within a line. The commands of a block run one after the
//!   other in one `bash`, so `X=$(...)` carries over to the next command; each must exit 0.
//! - ```` ```sh ````, ```` ```bash ````: a script, run with `bash -eu -o pipefail`; must exit 0.
//! - ```` ```yaml ````: a policy. With a top-level `version:` it is a whole file: `gate policy
//!   lint` must accept it, and `gate policy test` too when it has `tests:`. Without, it is a part
//!   of one and is linted with `version: 1` put in front.
//! - Any other block (indented ones included) with a line that runs gate (`gate ...`,
//!   `$ gate ...`, `sudo gate ...`, `... | gate ...`, `$(gate ...)`) fails the test unless it is
//!   marked as not run, with the reason.
//!
//! An info string's second word names a file: ```` ```yaml team.yaml ```` writes the block to
//! `team.yaml` in the document's directory when the block is reached (so a later command can use
//! it), whatever the block's language, also for a block that is otherwise not run.
//!
//! An HTML comment on the line before a fence or an indented block (blank lines between are
//! allowed) says more; several go in one comment, separated by `;`:
//! - `<!-- doc-test: skip REASON -->`: not run. The reason is required (at least a few words:
//!   what keeps the example from running here, and what runs it instead), and takes the rest of
//!   the comment. Nothing is skipped silently.
//! - `<!-- doc-test: exit N -->`: every command of the block, the script, or the lint must exit
//!   N instead of 0.
//! - `<!-- doc-test: server [FILE] -->`: before the block, start a real `gate serve` (with
//!   `--policy FILE`, a file an earlier block named) on 127.0.0.1 with an ephemeral port and its
//!   state in the document's directory, kept for the rest of the document. From then on the
//!   doc's `https://gate.example.com`, `127.0.0.1:8700` and `/var/lib/gate/server.db` name that
//!   server and its database in commands, expected output and named files, and `GATE_SERVER`
//!   is set.
//!
//! Each document runs in a directory of its own with a private state, config, home, audit log
//! (`GATE_LOG`) and spool (`GATE_SPOOL`), as [`super::Gate`] gives a test, with `gate` (the
//! binary under test) first on `PATH`, `NO_COLOR=1`, and a copy of the repository's `policies/`.
//! Blocks run in document order; what a block `export`s is there for the next one, as in one
//! terminal. Every block is bounded by a hang guard (a command that waits forever fails the
//! test instead of stalling the suite).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One fenced or indented code block of a markdown file.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence (or of an indented block's first line).
    pub line: usize,
    /// The fence's language (`console`, `sh`, `yaml`, ...); empty for indented blocks.
    pub lang: String,
    /// The file the block names after its language, if any.
    pub file: Option<String>,
    pub fenced: bool,
    /// The block's lines, without the fence (and without an indented block's indentation).
    pub lines: Vec<String>,
    /// What the comment before it says.
    pub directives: Vec<Directive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    Skip(String),
    Exit(i32),
    Server(String),
}

/// Reads every code block of `text`, with the directives before each. A malformed directive,
/// or one that no block follows, is a problem reported with its line.
pub fn blocks(text: &str) -> Result<Vec<Block>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut pending: Option<(usize, Vec<Directive>)> = None;
    let mut i = 0;
    let mut prev_blank = true;
    while i < lines.len() {
        let l = lines[i];
        let trimmed = l.trim_start();
        if let Some(rest) = trimmed.strip_prefix("<!-- doc-test:") {
            match parse_directives(rest) {
                Ok(d) => {
                    if let Some((at, _)) = pending {
                        problems.push(format!("line {at}: a doc-test comment no block follows"));
                    }
                    pending = Some((i + 1, d));
                }
                Err(e) => problems.push(format!("line {}: {e}", i + 1)),
            }
            i += 1;
            prev_blank = false;
            continue;
        }
        let fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        let indented = !fence && prev_blank && l.starts_with("    ") && !trimmed.is_empty();
        if fence {
            let indent = l.len() - trimmed.len();
            let marker = &trimmed[..3];
            let info: Vec<&str> = trimmed[3..].split_whitespace().collect();
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with(marker) {
                let raw = lines[i];
                let cut = raw.len() - raw.trim_start().len();
                body.push(raw[cut.min(indent)..].to_owned());
                i += 1;
            }
            out.push(Block {
                line: start + 1,
                lang: info.first().unwrap_or(&"").to_string(),
                file: info.get(1).map(|s| s.to_string()),
                fenced: true,
                lines: body,
                directives: pending.take().map(|(_, d)| d).unwrap_or_default(),
            });
            i += 1;
            prev_blank = false;
            continue;
        }
        if indented {
            let start = i;
            let mut body = Vec::new();
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                body.push(lines[i].get(4..).unwrap_or("").to_owned());
                i += 1;
            }
            while body.last().is_some_and(|l| l.trim().is_empty()) {
                body.pop();
            }
            out.push(Block {
                line: start + 1,
                lang: String::new(),
                file: None,
                fenced: false,
                lines: body,
                directives: pending.take().map(|(_, d)| d).unwrap_or_default(),
            });
            prev_blank = true;
            continue;
        }
        if !trimmed.is_empty()
            && let Some((at, _)) = pending.take()
        {
            problems.push(format!("line {at}: a doc-test comment no block follows"));
        }
        prev_blank = trimmed.is_empty();
        i += 1;
    }
    if let Some((at, _)) = pending {
        problems.push(format!("line {at}: a doc-test comment no block follows"));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn parse_directives(rest: &str) -> Result<Vec<Directive>, String> {
    let Some(body) = rest.trim().strip_suffix("-->") else {
        return Err("a doc-test comment ends on its own line with `-->`".into());
    };
    let mut out = Vec::new();
    let parts: Vec<&str> = body.split(';').collect();
    for (k, part) in parts.iter().map(|p| p.trim()).enumerate() {
        if part.is_empty() {
            continue;
        }
        let (word, arg) = part.split_once(' ').unwrap_or((part, ""));
        // A reason is prose and may hold `;`: `skip` takes the rest of the comment.
        let rest = parts[k..].join(";");
        let arg = if word == "skip" {
            rest.trim().strip_prefix("skip").unwrap_or("").trim()
        } else {
            arg.trim()
        };
        out.push(match word {
            "skip" if arg.len() >= 8 => {
                out.push(Directive::Skip(arg.to_owned()));
                break;
            }
            "skip" => {
                return Err(format!(
                    "`skip` needs a reason (what keeps the example from running here), got {arg:?}"
                ));
            }
            "exit" => Directive::Exit(
                arg.parse()
                    .map_err(|_| format!("`exit` takes a status, got {arg:?}"))?,
            ),
            "server" => Directive::Server(arg.to_owned()),
            _ => {
                return Err(format!(
                    "unknown doc-test directive {part:?} (skip REASON, exit N, server [FILE])"
                ));
            }
        });
    }
    if out.is_empty() {
        return Err("an empty doc-test comment".into());
    }
    Ok(out)
}

/// Whether `line` runs gate: `gate` as a command word (at the start, after `$ `, `sudo`,
/// variable assignments, a pipe, `;`, `&&`, `$(`).
pub fn runs_gate(line: &str) -> bool {
    let l = line.trim_start();
    let l = l.strip_prefix("$ ").unwrap_or(l);
    let starts = |s: &str| {
        let mut words = s.split_whitespace().peekable();
        while let Some(w) = words.peek() {
            if *w == "sudo" || (w.contains('=') && !w.starts_with('-')) {
                words.next();
            } else {
                break;
            }
        }
        words.next() == Some("gate")
    };
    starts(l)
        || ["| ", "; ", "&& ", "|| ", "$("]
            .iter()
            .any(|sep| l.split(sep).skip(1).any(starts))
}

/// A `$ ` command of a console block and the output shown under it.
#[derive(Debug)]
pub struct Step {
    pub line: usize,
    pub command: String,
    pub expected: Vec<String>,
}

pub fn console_steps(b: &Block) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = b.lines.iter().enumerate().peekable();
    while let Some((k, l)) = lines.next() {
        if let Some(cmd) = l.strip_prefix("$ ") {
            let mut command = cmd.to_owned();
            while command.ends_with('\\') {
                let Some((_, next)) = lines.next() else { break };
                command.push('\n');
                command.push_str(next);
            }
            steps.push(Step {
                line: b.line + 1 + k,
                command,
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(l.clone());
        } else {
            return Err(format!(
                "line {}: a console block starts with a `$ ` command",
                b.line + 1 + k
            ));
        }
    }
    if steps.is_empty() {
        return Err(format!(
            "line {}: a console block without a `$ ` command",
            b.line
        ));
    }
    Ok(steps)
}

/// trycmd-style matching: `...` on a line of its own matches any number of lines, `[..]` any
/// text within a line.
pub fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e.trim() == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((e, rest)) => match actual.split_first() {
            Some((a, arest)) => line_matches(e, a) && matches(rest, arest),
            None => false,
        },
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.trim_end().split("[..]").collect();
    let actual = actual.trim_end();
    if parts.len() == 1 {
        return parts[0] == actual;
    }
    let Some(mut rest) = actual.strip_prefix(parts[0]) else {
        return false;
    };
    let last = parts[parts.len() - 1];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The directory, environment and server of one document's run.
pub struct DocRun {
    pub doc: String,
    pub dir: tempfile::TempDir,
    bin_dir: PathBuf,
    server: Option<super::process::Server>,
    /// Files written from named blocks, localized again when a server starts.
    written: Vec<PathBuf>,
    pub failures: Vec<String>,
    /// How many blocks ran (a document whose examples are all skipped is worth knowing).
    pub ran: usize,
}

impl DocRun {
    pub fn new(doc: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin_dir = dir.path().join(".bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::os::unix::fs::symlink(super::bin(), bin_dir.join("gate")).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        for e in std::fs::read_dir(repo.join("policies")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), policies.join(e.file_name())).unwrap();
        }
        DocRun {
            doc: doc.to_owned(),
            dir,
            bin_dir,
            server: None,
            written: Vec::new(),
            failures: Vec::new(),
            ran: 0,
        }
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    /// `bash` in the document's directory with its private environment.
    fn bash(&self) -> Command {
        let mut c = super::gate_in(self.home());
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path);
        if let Some(s) = &self.server {
            c.env("GATE_SERVER", &s.url);
        }
        // A hang guard, not a claim about speed.
        let mut b = Command::new("timeout");
        b.args(["--kill-after=10", "300", "bash"]).env_clear();
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                b.env(k, v);
            }
        }
        b.current_dir(self.home()).stdin(Stdio::null());
        b
    }

    /// The doc's URLs and port for the harness's server, once there is one.
    fn localize(&self, text: &str) -> String {
        match &self.server {
            Some(s) => text
                .replace("https://gate.example.com", &s.url)
                .replace("http://127.0.0.1:8700", &s.url)
                .replace("127.0.0.1:8700", &s.addr)
                .replace("/var/lib/gate/server.db", &s.db.to_string_lossy()),
            None => text.to_owned(),
        }
    }

    fn fail(&mut self, line: usize, what: String) {
        self.failures.push(format!("{}:{line}: {what}", self.doc));
    }

    /// Runs (or checks the reason for not running) every block of the document.
    pub fn run(&mut self, text: &str) {
        let blocks = match blocks(text) {
            Ok(b) => b,
            Err(problems) => {
                for p in problems {
                    self.failures.push(format!("{}: {p}", self.doc));
                }
                return;
            }
        };
        for b in blocks {
            if let Some(name) = &b.file {
                let body = b.lines.join("\n") + "\n";
                let p = self.home().join(name);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).unwrap();
                }
                std::fs::write(&p, self.localize(&body)).unwrap();
                self.written.push(p);
            }
            let skip = b.directives.iter().any(|d| matches!(d, Directive::Skip(_)));
            if skip {
                continue;
            }
            for d in &b.directives {
                if let Directive::Server(policy) = d
                    && self.server.is_none()
                {
                    self.start_server(b.line, policy);
                }
            }
            let exit = b
                .directives
                .iter()
                .find_map(|d| match d {
                    Directive::Exit(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0);
            match b.lang.as_str() {
                "console" => self.console(&b, exit),
                "sh" | "bash" | "shell" => self.script(&b, exit),
                "yaml" | "yml" => self.policy(&b, exit),
                _ => {
                    if let Some(l) = b.lines.iter().find(|l| runs_gate(l)) {
                        let what = if b.fenced {
                            "this block"
                        } else {
                            "this indented block"
                        };
                        self.fail(
                            b.line,
                            format!(
                                "{what} runs gate (`{}`) but is neither a ```console or ```sh \
                                 example nor marked `<!-- doc-test: skip REASON -->`",
                                l.trim()
                            ),
                        );
                    }
                    continue;
                }
            }
            self.ran += 1;
        }
    }

    fn start_server(&mut self, line: usize, policy: &str) {
        if !policy.is_empty() && !self.home().join(policy).is_file() {
            self.fail(
                line,
                format!("`server {policy}`: no block named `{policy}` came before it"),
            );
            return;
        }
        let mut c = super::gate_in(self.home());
        if !policy.is_empty() {
            c.args(["--policy", policy]);
        }
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        let s = super::spawn_server(c);
        let home = self.home().to_owned();
        let db = home.join("state/gate/server.db");
        let audit = home.join("state/gate/server-audit.jsonl");
        self.server = Some(super::process::Server::adopt(s, &home, db, audit));
        for p in self.written.clone() {
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(&p, self.localize(&text)).unwrap();
        }
    }

    fn console(&mut self, b: &Block, exit: i32) {
        let steps = match console_steps(b) {
            Ok(s) => s,
            Err(e) => return self.failures.push(format!("{}: {e}", self.doc)),
        };
        let mut script = String::from(LOAD_ENV);
        for (k, s) in steps.iter().enumerate() {
            writeln!(
                script,
                "{{ {}\n}} >.doc.{k}.out 2>.doc.{k}.err </dev/null; echo $? >.doc.{k}.status",
                self.localize(&s.command)
            )
            .unwrap();
        }
        script.push_str(SAVE_ENV);
        let r = super::Ran::of({
            let mut c = self.bash();
            c.arg("-c").arg(&script);
            c
        });
        if r.status != 0 {
            self.fail(b.line, format!("the block's shell failed: {}", r.stderr));
            return;
        }
        for (k, s) in steps.iter().enumerate() {
            let read = |ext: &str| {
                std::fs::read_to_string(self.home().join(format!(".doc.{k}.{ext}")))
                    .unwrap_or_default()
            };
            let (out, err) = (read("out"), read("err"));
            let status: i32 = read("status").trim().parse().unwrap_or(-1);
            let all = format!("{out}{err}");
            let actual: Vec<&str> = all.lines().collect();
            let expected: Vec<String> = s.expected.iter().map(|l| self.localize(l)).collect();
            let expected = trim_blank_tail(&expected);
            let what = if status != exit {
                format!("exited {status} (the doc expects {exit})")
            } else if !matches(expected, &actual) {
                "printed something else than the doc shows".to_owned()
            } else {
                continue;
            };
            self.fail(
                s.line,
                format!(
                    "`{}` {what}\n--- the doc shows\n{}\n--- it printed (stdout, then stderr)\n{all}",
                    s.command,
                    expected.join("\n")
                ),
            );
        }
    }

    fn script(&mut self, b: &Block, exit: i32) {
        let script = format!(
            "{LOAD_ENV}trap '{SAVE_ENV}' EXIT\n{}",
            self.localize(&b.lines.join("\n"))
        );
        let r = super::Ran::of({
            let mut c = self.bash();
            c.args(["-eu", "-o", "pipefail", "-c"]).arg(&script);
            c
        });
        if r.status != exit {
            self.fail(
                b.line,
                format!(
                    "the script exited {} (the doc expects {exit})\n--- stdout\n{}\n--- stderr\n{}",
                    r.status, r.stdout, r.stderr
                ),
            );
        }
    }

    fn policy(&mut self, b: &Block, exit: i32) {
        let whole = b.lines.iter().any(|l| l.starts_with("version:"));
        let name = b.file.clone().unwrap_or_else(|| ".doc-policy.yaml".into());
        let mut body = self.localize(&(b.lines.join("\n") + "\n"));
        if !whole {
            body = format!("version: 1\n{body}");
        }
        let path = self.home().join(&name);
        std::fs::write(&path, &body).unwrap();
        let mut checks = vec!["lint"];
        if whole && exit == 0 && b.lines.iter().any(|l| l.starts_with("tests:")) {
            checks.push("test");
        }
        for check in checks {
            let mut c = super::gate_in(self.home());
            c.args(["policy", check]).arg(&path);
            let r = super::Ran::of(c);
            if r.status != exit {
                let part = if whole {
                    ""
                } else {
                    " (as a part of a policy)"
                };
                self.fail(
                    b.line,
                    format!(
                        "`gate policy {check}` of this policy{part} exited {} (the doc expects \
                         {exit})\n{}{}",
                        r.status, r.stdout, r.stderr
                    ),
                );
            }
        }
    }

    /// Fails the test with every problem found, each at its `file:line`.
    #[track_caller]
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} documentation example(s) in {} no longer work as written:\n\n{}",
            self.failures.len(),
            self.doc,
            self.failures.join("\n\n")
        );
    }
}

/// What a block exports carries over to the next block of the document, as in one terminal.
const LOAD_ENV: &str = "if [ -e .doc.env ]; then . ./.doc.env; fi\n";
const SAVE_ENV: &str = "export -p > .doc.env\n";

fn trim_blank_tail(lines: &[String]) -> &[String] {
    let mut end = lines.len();
    while end > 0 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    &lines[..end]
}

/// Runs every example of the markdown file at `rel` (relative to the repository).
pub fn run_doc(rel: &str) -> DocRun {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"));
    let mut run = DocRun::new(rel);
    run.run(&text);
    run
}
