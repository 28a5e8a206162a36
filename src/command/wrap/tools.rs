//! Each wrapper's options, read exactly, and what it runs (see the parent module).

use super::{Run, assignment_name, env_runs_code, then_command, with};
use crate::command::getopt::Spec;
use crate::command::shell::{self, ShellRuns};

/// `export`/`declare`/... are read: they only set variables, unless they define or export
/// functions (`-f`), make a name refer to another variable (`-n`), or set a variable that
/// changes what later commands run (`export PATH=...`).
pub(super) fn declaration(program: &str, args: &[String]) -> Vec<Run> {
    for a in args {
        if let Some(flags) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) {
            if flags.contains(['f', 'F', 'n']) {
                return vec![Run::Opaque(format!(
                    "`{program} {a}` changes what later words mean"
                ))];
            }
            continue;
        }
        let name = assignment_name(a).unwrap_or(a.as_str());
        if name == "PATH" {
            // Which file a command name runs: the rules read the new value as written.
            return vec![Run::Unread(format!(
                "`{program} PATH` changes which files later command names run, read only as written"
            ))];
        }
        if env_runs_code(name) {
            return vec![Run::Opaque(format!(
                "`{program} {name}` changes what later commands run"
            ))];
        }
    }
    Vec::new()
}

pub(super) fn command(args: &[String]) -> Vec<Run> {
    const SPEC: Spec = Spec {
        flags: "pvV",
        ..Spec::NONE
    };
    // `command -v NAME` / `-V` only say what NAME is.
    with(args, &SPEC, |r, ops| {
        if r.has(&["v", "V"]) {
            Vec::new()
        } else {
            then_command(ops.to_vec())
        }
    })
}

pub(super) const EXEC: Spec = Spec {
    flags: "cl",
    valued: "a",
    ..Spec::NONE
};

pub(super) const NOHUP: Spec = Spec {
    long_flags: &["help", "version"],
    ..Spec::NONE
};

pub(super) fn nice(args: &[String]) -> Vec<Run> {
    const SPEC: Spec = Spec {
        valued: "n",
        long_flags: &["help", "version"],
        long_valued: &["adjustment"],
        ..Spec::NONE
    };
    // The old form `nice -10 cmd` / `nice --10 cmd`.
    let numeric = |w: &String| {
        let n = w.trim_start_matches('-');
        w.starts_with('-') && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
    };
    let rest = if args.first().is_some_and(numeric) {
        &args[1..]
    } else {
        args
    };
    with(rest, &SPEC, |_, ops| then_command(ops.to_vec()))
}

pub(super) const TIME: Spec = Spec {
    flags: "apqvV",
    valued: "fo",
    long_flags: &[
        "append",
        "portability",
        "quiet",
        "verbose",
        "version",
        "help",
    ],
    long_valued: &["format", "output"],
    ..Spec::NONE
};

pub(super) const TIMEOUT: Spec = Spec {
    flags: "fpv",
    valued: "ks",
    long_flags: &[
        "foreground",
        "preserve-status",
        "verbose",
        "help",
        "version",
    ],
    long_valued: &["kill-after", "signal"],
    ..Spec::NONE
};

pub(super) const STDBUF: Spec = Spec {
    valued: "ioe",
    long_flags: &["help", "version"],
    long_valued: &["input", "output", "error"],
    ..Spec::NONE
};

pub(super) const SETSID: Spec = Spec {
    flags: "cfwhV",
    long_flags: &["ctty", "fork", "wait", "help", "version"],
    ..Spec::NONE
};

pub(super) const CHROOT: Spec = Spec {
    long_flags: &["skip-chdir", "help", "version"],
    long_valued: &["userspec", "groups"],
    ..Spec::NONE
};

pub(super) const FLOCK: Spec = Spec {
    flags: "sexnoFuhV",
    valued: "wEc",
    long_flags: &[
        "shared",
        "exclusive",
        "unlock",
        "nonblock",
        "nb",
        "close",
        "no-fork",
        "verbose",
        "help",
        "version",
    ],
    long_valued: &["timeout", "wait", "conflict-exit-code", "command"],
    ..Spec::NONE
};

pub(super) const IONICE: Spec = Spec {
    flags: "thV",
    valued: "cnpPu",
    long_flags: &["ignore", "help", "version"],
    long_valued: &["class", "classdata", "pid", "pgid", "uid"],
    ..Spec::NONE
};

pub(super) const TASKSET: Spec = Spec {
    flags: "acphV",
    long_flags: &["all-tasks", "cpu-list", "pid", "help", "version"],
    ..Spec::NONE
};

pub(super) const CHRT: Spec = Spec {
    flags: "abdefiomprRvhV",
    valued: "TPD",
    long_flags: &[
        "all-tasks",
        "batch",
        "deadline",
        "ext",
        "fifo",
        "idle",
        "max",
        "other",
        "pid",
        "rr",
        "reset-on-fork",
        "verbose",
        "help",
        "version",
    ],
    long_valued: &["sched-runtime", "sched-period", "sched-deadline"],
    ..Spec::NONE
};

pub(super) const STRACE: Spec = Spec {
    flags: "AcCdDfFhiknNqrtTvVwxyYzZ",
    valued: "abeEIoOpPsSuUX",
    long_flags: &[
        "summary-only",
        "summary",
        "debug",
        "daemonize",
        "follow-forks",
        "output-separately",
        "help",
        "instruction-pointer",
        "stack-trace",
        "syscall-number",
        "quiet",
        "relative-timestamps",
        "syscall-times",
        "no-abbrev",
        "version",
        "summary-wall-clock",
        "successful-only",
        "failed-only",
    ],
    long_valued: &[
        "columns",
        "trace",
        "signal",
        "abbrev",
        "verbose",
        "raw",
        "read",
        "write",
        "fault",
        "inject",
        "status",
        "quiet",
        "decode-fds",
        "env",
        "interruptible",
        "output",
        "attach",
        "trace-path",
        "string-limit",
        "summary-sort-by",
        "user",
        "const-print-style",
    ],
    long_optional: &[
        "absolute-timestamps",
        "timestamps",
        "seccomp-bpf",
        "kill-on-exit",
    ],
    ..Spec::NONE
};

pub(super) const WATCH: Spec = Spec {
    flags: "bcCegprtwxhv",
    valued: "nq",
    optional: "d",
    long_flags: &[
        "beep", "color", "no-color", "errexit", "chgexit", "precise", "no-rerun", "no-title",
        "no-wrap", "exec", "help", "version",
    ],
    long_valued: &["interval", "equexit"],
    long_optional: &["differences"],
};

pub(super) const SCRIPT: Spec = Spec {
    flags: "aefqhV",
    valued: "cEIOBTmo",
    optional: "t",
    long_flags: &[
        "append", "return", "flush", "force", "quiet", "help", "version",
    ],
    long_valued: &[
        "command",
        "echo",
        "log-in",
        "log-out",
        "log-io",
        "log-timing",
        "logging-format",
        "output-limit",
    ],
    long_optional: &["timing"],
};

pub(super) const XARGS: Spec = Spec {
    flags: "0oprtx",
    valued: "aEILnPsd",
    optional: "eil",
    long_flags: &[
        "null",
        "open-tty",
        "interactive",
        "no-run-if-empty",
        "verbose",
        "exit",
        "show-limits",
        "help",
        "version",
    ],
    long_valued: &[
        "arg-file",
        "delimiter",
        "max-args",
        "max-procs",
        "max-chars",
        "process-slot-var",
        "max-lines",
    ],
    long_optional: &["eof", "replace"],
};

/// `find`: each `-exec`/`-execdir`/`-ok`/`-okdir` command. `{}` stands for file names found at
/// run time: the command is classified with the starting points in their place (what find
/// itself visits first), and is opaque for the names beneath.
pub(super) fn find(args: &[String]) -> Vec<Run> {
    let mut i = 0;
    // Leading options: -H -L -P, -D debugopts, -Olevel.
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            a if a.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    let mut starts: Vec<&str> = Vec::new();
    while let Some(a) = args.get(i) {
        if a.starts_with('-') || a == "(" || a == "!" || a == "," {
            break;
        }
        starts.push(a);
        i += 1;
    }
    if starts.is_empty() {
        starts.push(".");
    }
    let mut out = Vec::new();
    while let Some(a) = args.get(i) {
        i += 1;
        if !matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            continue;
        }
        let mut cmd: Vec<String> = Vec::new();
        while let Some(w) = args.get(i) {
            i += 1;
            if w == ";" || (w == "+" && cmd.last().is_some_and(|l| l == "{}")) {
                break;
            }
            cmd.push(w.clone());
        }
        if cmd.is_empty() {
            continue;
        }
        if cmd.iter().any(|w| w.contains("{}")) {
            for s in &starts {
                out.push(Run::Command(
                    cmd.iter().map(|w| w.replace("{}", s)).collect(),
                ));
            }
            // A file's name given to a shell, an interpreter or a wrapper may be its code.
            // With `+` the names are many: a wrapper taking a value first (`timeout {} +`)
            // would run one of them.
            let mut fed = cmd.clone();
            fed.extend(std::iter::repeat_n("{}".to_owned(), 2));
            if super::dynamic_words_matter(&fed, |w| w.contains("{}"))
                == super::DynamicWords::ChooseWhatRuns
            {
                out.push(Run::Opaque(format!(
                    "`find {a}` gives the names of files it finds to `{}`, which may run them",
                    cmd[0]
                )));
            } else {
                out.push(Run::Unread(format!(
                    "`find {a}` passes the names of files it finds to `{}`",
                    cmd[0]
                )));
            }
        } else {
            out.push(Run::Command(cmd));
        }
    }
    out
}

/// A shell: `-c SCRIPT` is read; anything else — a script from stdin or a file gate cannot
/// see, rc files, options gate does not model — is opaque.
pub(super) fn shell_runs(program: &str, args: &[String]) -> Vec<Run> {
    match shell::script_of_shell(program, args) {
        // zsh reads more than POSIX syntax: glob qualifiers `*(e:...:)` and `=(...)` run code.
        Ok(ShellRuns::Script(s, _))
            if program == "zsh"
                && ["(e", "(+", "=(", "$~", "${~"]
                    .iter()
                    .any(|q| s.contains(q)) =>
        {
            vec![Run::Opaque("zsh syntax gate does not read".into())]
        }
        Ok(ShellRuns::Script(script, params)) => {
            vec![Run::ScriptWithArgs(script.to_owned(), params.to_vec())]
        }
        Ok(ShellRuns::File([file, rest @ ..])) => {
            let name = file.rsplit('/').next().unwrap_or(file);
            let mut cmd = vec![name.to_owned()];
            cmd.extend(rest.iter().cloned());
            vec![Run::Command(cmd)]
        }
        Ok(_) => Vec::new(),
        Err(why) => vec![Run::Opaque(why.to_string())],
    }
}

/// An interpreter: only `--version`/`--help`, or a script file with no options in front, are
/// read; the script file is also classified under its own name (`python3 /usr/bin/aws iam ...`
/// is `aws iam ...`).
pub(super) fn interpreter_runs(program: &str, args: &[String]) -> Vec<Run> {
    match args {
        [] => vec![Run::Opaque(format!(
            "`{program}` reads code from its input"
        ))],
        [only] if matches!(only.as_str(), "--version" | "-V" | "-v" | "--help" | "-h") => {
            Vec::new()
        }
        // `python -m MODULE ARGS`: the module runs as the program of that name would.
        [m, module, rest @ ..]
            if m == "-m" && runs_modules(program) && !module.starts_with('-') =>
        {
            let (name, known) = module_program(module);
            let mut cmd = vec![name.to_owned()];
            cmd.extend(rest.iter().cloned());
            let mut out = vec![Run::Command(cmd)];
            if !known {
                out.push(Run::Unread(format!(
                    "`{program} -m {module}` runs a module gate knows only by its name"
                )));
            }
            out
        }
        [script, rest @ ..] if !script.starts_with('-') && !reads_stdin(script) => {
            let name = script.rsplit('/').next().unwrap_or(script);
            let mut cmd = vec![name.to_owned()];
            cmd.extend(rest.iter().cloned());
            vec![Run::Command(cmd)]
        }
        _ if inline_code(program, args) => vec![Run::Unread(format!(
            "`{program}` runs code given in its arguments, read only as written"
        ))],
        _ => vec![Run::Opaque(format!(
            "`{program}` runs code given in its arguments or input"
        ))],
    }
}

/// The program a Python module run with `-m` is (`awscli` is `aws`), and whether gate knows
/// the module to be that program or a tool of the standard library.
fn module_program(module: &str) -> (&str, bool) {
    const SAME: &[&str] = &[
        "pytest",
        "pip",
        "venv",
        "black",
        "mypy",
        "ruff",
        "flake8",
        "pylint",
        "isort",
        "coverage",
        "unittest",
        "doctest",
        "json.tool",
        "http.server",
        "pydoc",
        "timeit",
        "cProfile",
        "profile",
        "compileall",
        "py_compile",
        "ensurepip",
        "tox",
        "nox",
        "build",
        "twine",
        "sphinx",
        "mkdocs",
        "pre_commit",
        "pip_audit",
        "bandit",
        "pyright",
        "zipfile",
        "tarfile",
        "gzip",
        "base64",
        "uuid",
        "calendar",
        "tabnanny",
        "pyclbr",
        "trace",
        "site",
        "sysconfig",
        "platform",
        "webbrowser",
        "pdb",
        "poetry",
        "uv",
        "hatch",
        "pdm",
        "pipx",
        "virtualenv",
        "django",
        "flask",
        "uvicorn",
        "gunicorn",
        "alembic",
        "celery",
        "jupyter",
        "notebook",
        "ipykernel",
        "IPython",
        "nltk",
        "spacy",
        "streamlit",
    ];
    match module {
        "awscli" => ("aws", true),
        "azure.cli" => ("az", true),
        m if SAME.contains(&m) => (m, true),
        m => (m, false),
    }
}

/// Interpreters whose `-m MODULE` runs a module by name.
fn runs_modules(program: &str) -> bool {
    matches!(
        super::names::interpreter_base(program).as_str(),
        "python" | "pypy"
    )
}

/// Whether the interpreter's code is given in an argument (`-c CODE`, `-e CODE`, `-p CODE`,
/// `perl -ne CODE`, `php -r CODE`) and nothing of it comes from input: the code is there to be
/// read as written. Any option other than a few known ones, or a program read from standard
/// input, is not.
fn inline_code(program: &str, args: &[String]) -> bool {
    let base = super::names::interpreter_base(program);
    let base = base.as_str();
    // Flags (no value) each interpreter takes before or with its code option.
    let (code_opts, flags): (&[&str], &str) = match base {
        "python" | "pypy" => (&["-c"], "BbEIiOqsSuvWx"),
        "node" => (&["-e", "-p", "--eval", "--print"], ""),
        "ruby" => (&["-e"], "nplawcsdv"),
        "perl" => (&["-e", "-E"], "nplawsTtUWX"),
        "php" => (&["-r"], ""),
        _ => return false,
    };
    let mut saw_code = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if code_opts.contains(&a.as_str()) {
            saw_code = true;
            i += 2;
            continue;
        }
        if saw_code && !a.starts_with('-') {
            // Operands after the code: files or arguments, never more code.
            i += 1;
            continue;
        }
        // Bundled flags ending in the code option: `perl -ne CODE`, `perl -pi -e CODE`.
        if let Some(b) = a.strip_prefix('-')
            && !b.starts_with('-')
            && !b.is_empty()
        {
            let (bundle, code_last) = match b.strip_suffix(['e', 'E']) {
                Some(rest) if matches!(base, "perl" | "ruby") => (rest, true),
                _ => (b, false),
            };
            // `perl -i.bak`, `-i` with a backup suffix, is in-place editing.
            let bundle = bundle.split_once(".").map_or(bundle, |(f, _)| f);
            if bundle
                .chars()
                .all(|c| flags.contains(c) || (c == 'i' && base == "perl"))
            {
                if code_last {
                    saw_code = true;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
        }
        return false;
    }
    saw_code
}

/// Paths that are the command's input or another process's output, not a file gate could name.
/// Whether `source FILE` may read its code from input or from a command's output: a device
/// or process path, or a command substitution. A variable (`$HOME/.cargo/env`) is read as
/// written.
pub fn sources_input(path: &str) -> bool {
    path == "-"
        || path.starts_with("/dev/")
        || path.starts_with("/proc/")
        || path.contains("$(")
        || path.contains('`')
        || path.contains("<(")
}

pub fn reads_stdin(path: &str) -> bool {
    path == "-"
        || path.starts_with("/dev/")
        || path.starts_with("/proc/")
        || path.contains("$")
        || path.contains('`')
}

/// GNU sed runs commands with its `e` command and the `e` flag of `s`: a script that may use
/// either (or comes from a file) is opaque; the check errs towards opaque.
pub(super) fn sed(args: &[String]) -> Vec<Run> {
    let from_file = || vec![Run::Opaque("`sed -f` runs a script file".into())];
    let mut scripts: Vec<&str> = Vec::new();
    let mut operands: Vec<&str> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        match a.as_str() {
            "-e" | "--expression" => {
                if let Some(s) = args.get(i) {
                    scripts.push(s);
                }
                i += 1;
            }
            "--" => {
                operands.extend(args[i..].iter().map(String::as_str));
                break;
            }
            _ if a.starts_with("--expression=") => scripts.push(&a["--expression=".len()..]),
            _ if a.starts_with("--file") => return from_file(),
            _ if a.starts_with("-e") => scripts.push(&a[2..]),
            _ if a.starts_with('-') && !a.starts_with("--") && a.contains('f') => {
                return from_file();
            }
            _ if a.starts_with('-') && a.len() > 1 => {}
            _ => operands.push(a),
        }
    }
    if scripts.is_empty()
        && let Some(first) = operands.first()
    {
        scripts.push(first);
    }
    if scripts.iter().any(|s| sed_may_execute(s)) {
        return vec![Run::Opaque("`sed` may run a command (`e`)".into())];
    }
    Vec::new()
}

/// True when a sed script may hold an `e` command (at a command position) or an `s` command
/// with the `e` flag. Over-approximates: text that merely looks like either counts.
pub(super) fn sed_may_execute(script: &str) -> bool {
    let b = script.as_bytes();
    let ends = |j: usize| j >= b.len() || matches!(b[j], b' ' | b'\t' | b'\n' | b';' | b'}');
    for (j, &c) in b.iter().enumerate() {
        if c != b'e' {
            continue;
        }
        // What precedes, spaces skipped: a command position (start, `;`, newline, a brace,
        // `!`, or the end of an address).
        let mut k = j;
        while k > 0 && matches!(b[k - 1], b' ' | b'\t') {
            k -= 1;
        }
        let command_position = k == 0
            || matches!(
                b[k - 1],
                b';' | b'\n' | b'{' | b'}' | b'!' | b'$' | b'/' | b'0'..=b'9'
            );
        if command_position && (ends(j + 1) || k < j || k == 0) {
            return true;
        }
        // `s/a/b/ge`, `s|a|b|we`: flags after the closing delimiter.
        let mut f = j;
        while f > 0
            && matches!(
                b[f - 1],
                b'g' | b'p' | b'i' | b'I' | b'm' | b'M' | b'0'..=b'9'
            )
        {
            f -= 1;
        }
        if f > 0 && b[f - 1].is_ascii_punctuation() && ends(j + 1) {
            return true;
        }
    }
    false
}

/// awk: read when its program calls nothing (`system`, pipes to or from commands, gawk's
/// indirect calls and extensions make it opaque), with only `-F` and `-v` in front.
pub(super) fn awk_runs(program: &str, args: &[String]) -> Vec<Run> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        if a == "-F" || a == "-v" {
            i += 2;
        } else if a.starts_with("-F") || a.starts_with("-v") {
            i += 1;
        } else {
            return vec![Run::Opaque(format!(
                "`{program} {a}`: an option gate does not read"
            ))];
        }
    }
    match args.get(i) {
        None => vec![Run::Opaque(format!("`{program}` without a program"))],
        Some(prog) if prog.contains("system") || prog.contains('|') || prog.contains('@') => {
            vec![Run::Opaque(format!("`{program}` runs commands"))]
        }
        Some(_) => Vec::new(),
    }
}
