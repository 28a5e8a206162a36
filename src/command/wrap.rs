//! What a command runs besides itself (DESIGN §5): the command a wrapper runs (`sudo -u x aws
//! ...` runs `aws ...`), the script a shell, `su -c` or `watch` runs, the commands of
//! `find -exec` — or that it runs code gate cannot read.
//!
//! The rule: a program that runs a command or code taken from its arguments or its input is
//! either read exactly — every one of its options known, with which take values, in every
//! spelling (`-u x`, `-ux`, `--user x`, `--user=x`, `--us x`) — or the command is *opaque*. An
//! option this table does not know makes it opaque, so a wrapper's new option can never hide
//! the command after it. Interpreters given code (`python -c`, `perl -e`, a script on stdin, a
//! module) are opaque; one given a script file is also classified under the script's name.

use super::getopt::{Read, Spec, read};
use super::shell::{self, ShellRuns};

/// One thing a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// This argv, classified in turn (and read again: it may be a wrapper too).
    Command(Vec<String>),
    /// A shell script (`sh -c`), split into its simple commands.
    Script(String),
    /// Code gate cannot read, and why.
    Opaque(String),
}

/// Shells whose `-c` scripts gate splits (POSIX syntax).
pub(crate) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "ash", "hush", "yash", "posh",
    "rbash", "lksh", "oksh", "loksh",
];

/// Shells (or shell-like languages) with other syntax or a grammar gate does not read.
const OTHER_SHELLS: &[&str] = &[
    "fish",
    "csh",
    "tcsh",
    "rc",
    "es",
    "xonsh",
    "elvish",
    "nu",
    "nushell",
    "ion",
    "oil",
    "osh",
    "ysh",
    "murex",
    "pwsh",
    "powershell",
    "cmd",
    "scsh",
];

/// Interpreters: any code they are given is unreadable.
const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "pypy",
    "pypy3",
    "perl",
    "perl5",
    "ruby",
    "irb",
    "node",
    "nodejs",
    "deno",
    "bun",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "expect",
    "osascript",
    "rscript",
    "r",
    "julia",
    "groovy",
    "jshell",
    "scala",
    "kotlin",
    "elixir",
    "iex",
    "erl",
    "escript",
    "guile",
    "racket",
    "ocaml",
    "ghci",
    "runghc",
    "runhaskell",
    "swift",
    "java",
    "jrunscript",
    "jjs",
    "zx",
    "tsx",
    "ts-node",
    "npx",
    "bunx",
    "pnpx",
];

/// Programs known to run a command given in their arguments whose options gate does not read
/// exactly: always opaque.
const UNMODELLED: &[&str] = &[
    "parallel",
    "setpriv",
    "unshare",
    "nsenter",
    "systemd-run",
    "firejail",
    "bwrap",
    "fakeroot",
    "fakechroot",
    "faketime",
    "proxychains",
    "proxychains4",
    "torsocks",
    "unbuffer",
    "ltrace",
    "valgrind",
    "catchsegv",
    "eatmydata",
    "nocache",
    "setarch",
    "linux32",
    "linux64",
    "numactl",
    "prlimit",
    "cgexec",
    "chpst",
    "daemonize",
    "start-stop-daemon",
    "run-one",
    "lckdo",
    "tini",
    "dumb-init",
    "caffeinate",
    "mpirun",
    "mpiexec",
    "srun",
    "ssh",
    "sshpass",
    "dbus-launch",
    "dbus-run-session",
    "xvfb-run",
    "ssh-agent",
    "machinectl",
    "toolbox",
    "distrobox",
    "schroot",
    "lxc-attach",
    "at",
    "batch",
    "crontab",
    "systemd-cat",
    "run-parts",
    "entr",
    "pkexec",
    "sg",
    "newgrp",
    "tmux",
    "screen",
    "byobu",
    "dtach",
    "abduco",
    "nq",
    "pueue",
    "direnv",
    "nix-shell",
    "nix",
    "s6-setuidgid",
    "su-exec",
    "gosu",
    "cpulimit",
    "trickle",
    "rlwrap",
    "socat",
    "ncat",
    "nc",
    "netcat",
    "ed",
    "vim",
    "vi",
    "nvim",
    "ex",
    "view",
    "rvim",
    "gvim",
    "emacs",
    "gdb",
    "lldb",
    "sudoedit",
    // Credential and environment runners, version managers and project runners: they run the
    // command after their own options (`aws-vault exec prod -- aws iam ...`).
    "aws-vault",
    "saml2aws",
    "aws-okta",
    "aws-sso-util",
    "awsume",
    "granted",
    "assume",
    "op",
    "doppler",
    "chamber",
    "envchain",
    "infisical",
    "teller",
    "summon",
    "berglas",
    "sops",
    "dotenv",
    "dotenvx",
    "mise",
    "rtx",
    "asdf",
    "pyenv",
    "rbenv",
    "nodenv",
    "goenv",
    "uv",
    "uvx",
    "poetry",
    "pipx",
    "pipenv",
    "hatch",
    "pdm",
    "rye",
    "conda",
    "mamba",
    "micromamba",
    "pixi",
    "bundle",
    "bundler",
];

fn is_interpreter(program: &str) -> bool {
    let lower = program.to_ascii_lowercase();
    if INTERPRETERS.contains(&lower.as_str()) {
        return true;
    }
    // Versioned names: python3.12, perl5.36, ruby3.2, php8.2, lua5.4, tclsh8.6, pypy3.10, node20.
    let base = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    [
        "python", "pypy", "perl", "ruby", "php", "lua", "tclsh", "wish", "node", "pwsh",
    ]
    .contains(&base)
}

fn is_awk(program: &str) -> bool {
    matches!(
        program,
        "awk" | "gawk" | "mawk" | "nawk" | "busybox-awk" | "original-awk" | "bwk" | "goawk"
    )
}

/// Builtins that run code known only when they run, or change what later words mean.
const CODE_BUILTINS: &[&str] = &[
    "eval",
    "source",
    ".",
    "alias",
    "unalias",
    "enable",
    "hash",
    "fc",
    "bind",
    "complete",
    "compgen",
    "shopt",
    "let",
    "mapfile",
    "readarray",
    "coproc",
    "function",
    "autoload",
    "emulate",
    "setopt",
    "zmodload",
];

/// `export`/`declare`/... are read: they only set variables, unless they define or export
/// functions (`-f`), make a name refer to another variable (`-n`), or set a variable that
/// changes what later commands run (`export PATH=...`).
fn declaration(program: &str, args: &[String]) -> Vec<Run> {
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
        if env_runs_code(name) {
            return vec![Run::Opaque(format!(
                "`{program} {name}` changes what later commands run"
            ))];
        }
    }
    Vec::new()
}

/// Environment variables that make `program` run other code when set in the environment it
/// starts with (gate's own environment, which the command inherits).
pub fn env_affects(var: &str, program: &str) -> bool {
    match var {
        "BASH_ENV" | "SHELLOPTS" | "BASHOPTS" => program == "bash" || program == "sh",
        "ENV" => SHELLS.contains(&program),
        "PERL5OPT" | "PERL5LIB" | "PERLLIB" => program.starts_with("perl"),
        "RUBYOPT" | "RUBYLIB" => program.starts_with("ruby"),
        "NODE_OPTIONS" => program.starts_with("node"),
        "LD_PRELOAD" | "LD_AUDIT" => true,
        "TF_CLI_CONFIG_FILE" => program == "terraform" || program == "tofu",
        v if v.starts_with("TF_CLI_ARGS") => program == "terraform" || program == "tofu",
        v if v.starts_with("GIT_") => program == "git",
        v if v.starts_with("BASH_FUNC_") => program == "bash" || program == "sh",
        _ => false,
    }
}

/// The variables [`env_affects`] looks at, for the caller to snapshot (prefixes excluded).
pub const CODE_ENV: &[&str] = &[
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "ENV",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "LD_PRELOAD",
    "LD_AUDIT",
    "TF_CLI_CONFIG_FILE",
    "TF_CLI_ARGS",
    "TF_CLI_ARGS_apply",
    "TF_CLI_ARGS_destroy",
    "TF_CLI_ARGS_plan",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_ASKPASS",
    "GIT_EXEC_PATH",
    "GIT_PROXY_COMMAND",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG",
    "GIT_TEMPLATE_DIR",
];

/// Environment variables whose value is code, a program or a file of code that the command
/// (or a shell it starts) runs: setting one makes the command opaque.
pub fn env_runs_code(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "PS0",
        "PS1",
        "PS2",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "PATH",
        "CDPATH",
        "IFS",
        "LD_PRELOAD",
        "LD_AUDIT",
        "LD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "MANPAGER",
        "BROWSER",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "SUDO_EDITOR",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "ZDOTDIR",
        "HISTFILE",
        "TERMINFO",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "KUBECONFIG",
        "HOME",
        "XDG_CONFIG_HOME",
        "TF_CLI_CONFIG_FILE",
        "TF_CLI_ARGS",
        "HELM_PLUGINS",
        "CLOUDSDK_CONFIG",
        "AZURE_CONFIG_DIR",
    ];
    NAMES.contains(&name)
        || name.starts_with("BASH_FUNC_")
        || name.starts_with("GIT_")
        || name.starts_with("TF_CLI_ARGS")
        || name.starts_with("LD_")
}

/// `NAME=value` (a valid shell variable name before the `=`).
pub fn assignment_name(w: &str) -> Option<&str> {
    let (name, _) = w.split_once('=')?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// What `argv` runs besides itself; empty when it runs nothing gate must read.
pub fn runs(argv: &[String]) -> Vec<Run> {
    let Some(first) = argv.first() else {
        return Vec::new();
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    let args = &argv[1..];
    let opaque = |why: String| vec![Run::Opaque(why)];
    if SHELLS.contains(&program) {
        return shell_runs(program, args);
    }
    if OTHER_SHELLS.contains(&program.to_ascii_lowercase().as_str()) {
        return opaque(format!(
            "`{program}` runs code in a language gate does not read"
        ));
    }
    if is_awk(program) {
        return awk_runs(program, args);
    }
    if is_interpreter(program) {
        return interpreter_runs(program, args);
    }
    if CODE_BUILTINS.contains(&program) {
        return opaque(format!("`{program}` runs code known only when it runs"));
    }
    if matches!(
        program,
        "export" | "declare" | "typeset" | "local" | "readonly"
    ) {
        return declaration(program, args);
    }
    if UNMODELLED.contains(&program) {
        return opaque(format!(
            "`{program}` runs commands in a way gate does not read exactly"
        ));
    }
    match program {
        "sudo" => sudo(args),
        "doas" => doas(args),
        "env" => env(args),
        "command" => command(args),
        "builtin" => then_command(args.to_vec()),
        "exec" => with(args, &EXEC, |_, ops| then_command(ops.to_vec())),
        "nohup" => with(args, &NOHUP, |_, ops| then_command(ops.to_vec())),
        "nice" => nice(args),
        "time" => with(args, &TIME, |_, ops| then_command(ops.to_vec())),
        "timeout" => with(args, &TIMEOUT, |_, ops| {
            then_command(ops.get(1..).unwrap_or(&[]).to_vec())
        }),
        "stdbuf" => with(args, &STDBUF, |_, ops| then_command(ops.to_vec())),
        "setsid" => with(args, &SETSID, |_, ops| then_command(ops.to_vec())),
        "chroot" => with(args, &CHROOT, |_, ops| match ops.get(1..) {
            Some(cmd) if !cmd.is_empty() => then_command(cmd.to_vec()),
            _ => opaque("`chroot` without a command runs an interactive shell".into()),
        }),
        "su" | "runuser" => su(program, args),
        "flock" => with(args, &FLOCK, |r, ops| {
            if let Some(script) = r.value(&["c", "command"]) {
                return vec![Run::Script(script.to_owned())];
            }
            // `flock FILE -c COMMAND`: the one option flock reads after the file.
            match ops {
                [_, c, script] if c == "-c" || c == "--command" => {
                    vec![Run::Script(script.clone())]
                }
                [_, c, ..] if c.starts_with('-') => vec![Run::Opaque(format!(
                    "`flock FILE {c}`: gate does not read what follows"
                ))],
                _ => then_command(ops.get(1..).unwrap_or(&[]).to_vec()),
            }
        }),
        "ionice" => with(args, &IONICE, |r, ops| {
            if r.has(&["p", "P", "u", "pid", "pgid", "uid"]) {
                return Vec::new();
            }
            then_command(ops.to_vec())
        }),
        "taskset" => with(args, &TASKSET, |r, ops| {
            if r.has(&["p", "pid"]) {
                return Vec::new();
            }
            then_command(ops.get(1..).unwrap_or(&[]).to_vec())
        }),
        "chrt" => with(args, &CHRT, |r, ops| {
            if r.has(&["p", "pid", "m", "max"]) {
                return Vec::new();
            }
            then_command(ops.get(1..).unwrap_or(&[]).to_vec())
        }),
        "strace" => with(args, &STRACE, |_, ops| then_command(ops.to_vec())),
        "watch" => with(args, &WATCH, |r, ops| {
            if ops.is_empty() {
                return Vec::new();
            }
            if r.has(&["x", "exec"]) {
                then_command(ops.to_vec())
            } else {
                // watch hands its words, joined by spaces, to `sh -c`.
                vec![Run::Script(ops.join(" "))]
            }
        }),
        "script" => with(args, &SCRIPT, |r, _| match r.value(&["c", "command"]) {
            Some(s) => vec![Run::Script(s.to_owned())],
            None => opaque("`script` without `-c` runs an interactive shell".into()),
        }),
        "xargs" => with(args, &XARGS, |_, ops| {
            let cmd = if ops.is_empty() {
                vec!["echo".to_owned()]
            } else {
                ops.to_vec()
            };
            vec![
                Run::Command(cmd),
                Run::Opaque("`xargs` adds words read from its input to the command".into()),
            ]
        }),
        "find" => find(args),
        "sed" | "gsed" => sed(args),
        "busybox" | "toybox" => match args.first() {
            Some(applet) if !applet.starts_with('-') => then_command(args.to_vec()),
            _ => Vec::new(),
        },
        "git" => super::git::runs(args),
        _ => Vec::new(),
    }
}

fn then_command(cmd: Vec<String>) -> Vec<Run> {
    if cmd.is_empty() {
        Vec::new()
    } else {
        vec![Run::Command(cmd)]
    }
}

/// Reads the options of a wrapper; an unreadable option makes it opaque, otherwise `then`
/// gets the options and the operands.
fn with(args: &[String], spec: &Spec, then: impl FnOnce(&Read, &[String]) -> Vec<Run>) -> Vec<Run> {
    match read(args, spec) {
        Ok(r) => {
            let ops = &args[r.operands.min(args.len())..];
            then(&r, ops)
        }
        Err(why) => vec![Run::Opaque(why)],
    }
}

/// Leading `NAME=value` words (sudo, env): skipped, unless the variable makes code run.
fn skip_assignments(ops: &[String]) -> Result<&[String], String> {
    let mut i = 0;
    while let Some(w) = ops.get(i) {
        let Some(name) = assignment_name(w) else {
            break;
        };
        if env_runs_code(name) {
            return Err(format!("setting `{name}` changes what the command runs"));
        }
        i += 1;
    }
    Ok(&ops[i..])
}

const SUDO: Spec = Spec {
    flags: "AbBEeHiKklNnPSsVv",
    valued: "aCcDgpRrtTUu",
    optional: "h",
    long_flags: &[
        "askpass",
        "background",
        "bell",
        "edit",
        "set-home",
        "help",
        "login",
        "remove-timestamp",
        "reset-timestamp",
        "list",
        "no-update",
        "non-interactive",
        "preserve-groups",
        "stdin",
        "shell",
        "version",
        "validate",
    ],
    long_valued: &[
        "auth-type",
        "close-from",
        "login-class",
        "chdir",
        "group",
        "host",
        "prompt",
        "role",
        "type",
        "command-timeout",
        "other-user",
        "user",
    ],
    long_optional: &["preserve-env"],
};

fn sudo(args: &[String]) -> Vec<Run> {
    with(args, &SUDO, |r, ops| {
        if r.has(&["e", "edit"]) {
            return Vec::new(); // sudoedit: the operands are files
        }
        let cmd = match skip_assignments(ops) {
            Ok(c) => c,
            Err(why) => return vec![Run::Opaque(why)],
        };
        if cmd.is_empty() && r.has(&["s", "shell", "i", "login"]) {
            return vec![Run::Opaque(
                "`sudo` without a command runs an interactive shell".into(),
            )];
        }
        then_command(cmd.to_vec())
    })
}

const DOAS: Spec = Spec {
    flags: "Lns",
    valued: "Cu",
    ..Spec::NONE
};

fn doas(args: &[String]) -> Vec<Run> {
    with(args, &DOAS, |r, ops| {
        if r.has(&["C"]) {
            return Vec::new();
        }
        if ops.is_empty() && r.has(&["s"]) {
            return vec![Run::Opaque("`doas -s` runs an interactive shell".into())];
        }
        then_command(ops.to_vec())
    })
}

const ENV: Spec = Spec {
    flags: "0iv",
    valued: "aCPSu",
    optional: "",
    long_flags: &[
        "ignore-environment",
        "null",
        "debug",
        "list-signal-handling",
        "help",
        "version",
    ],
    long_valued: &["unset", "chdir", "split-string", "argv0"],
    long_optional: &["block-signal", "default-signal", "ignore-signal"],
};

fn env(args: &[String]) -> Vec<Run> {
    // `env -S STRING`: the string is split into words that replace it, options included.
    let r = match read(args, &ENV) {
        Ok(r) => r,
        Err(why) => return vec![Run::Opaque(why)],
    };
    if r.has(&["P"]) {
        return vec![Run::Opaque(
            "`env -P` looks the command up in another path".into(),
        )];
    }
    if let Some(split) = r.value(&["S", "split-string"]) {
        return match split_string(split) {
            Ok(words) => {
                let mut argv = vec!["env".to_owned()];
                argv.extend(words);
                argv.extend(args[r.operands.min(args.len())..].iter().cloned());
                vec![Run::Command(argv)]
            }
            Err(why) => vec![Run::Opaque(why)],
        };
    }
    let mut ops = &args[r.operands.min(args.len())..];
    // A lone `-` is `-i`.
    while ops.first().is_some_and(|w| w == "-") {
        ops = &ops[1..];
    }
    match skip_assignments(ops) {
        Ok(cmd) => then_command(cmd.to_vec()),
        Err(why) => vec![Run::Opaque(why)],
    }
}

/// GNU `env -S` splitting: whitespace separates, `'...'` is literal, `"..."` and bare text take
/// backslash escapes, `\_` is a space, `\c` ends the string, `#` at a word's start begins a
/// comment. `${VAR}` expands at run time: unreadable.
fn split_string(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '$') => return Err("`env -S` expands a variable, known only when it runs".into()),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('c') => break,
                    Some('_') if quote.is_none() => {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    Some('_') => word.push(' '),
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some('r') => word.push('\r'),
                    Some('f') => word.push('\x0c'),
                    Some('v') => word.push('\x0b'),
                    Some(c @ ('\\' | '\'' | '"' | '#' | '$' | ' ')) => word.push(c),
                    _ => return Err("`env -S` with an escape gate does not read".into()),
                }
            }
            (None, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '#') if !in_word => break,
            (_, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("`env -S` with an unclosed quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn command(args: &[String]) -> Vec<Run> {
    const SPEC: Spec = Spec {
        flags: "pvV",
        ..Spec::NONE
    };
    with(args, &SPEC, |_, ops| then_command(ops.to_vec()))
}

const EXEC: Spec = Spec {
    flags: "cl",
    valued: "a",
    ..Spec::NONE
};

const NOHUP: Spec = Spec {
    long_flags: &["help", "version"],
    ..Spec::NONE
};

fn nice(args: &[String]) -> Vec<Run> {
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

const TIME: Spec = Spec {
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

const TIMEOUT: Spec = Spec {
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

const STDBUF: Spec = Spec {
    valued: "ioe",
    long_flags: &["help", "version"],
    long_valued: &["input", "output", "error"],
    ..Spec::NONE
};

const SETSID: Spec = Spec {
    flags: "cfwhV",
    long_flags: &["ctty", "fork", "wait", "help", "version"],
    ..Spec::NONE
};

const CHROOT: Spec = Spec {
    long_flags: &["skip-chdir", "help", "version"],
    long_valued: &["userspec", "groups"],
    ..Spec::NONE
};

const FLOCK: Spec = Spec {
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

const IONICE: Spec = Spec {
    flags: "thV",
    valued: "cnpPu",
    long_flags: &["ignore", "help", "version"],
    long_valued: &["class", "classdata", "pid", "pgid", "uid"],
    ..Spec::NONE
};

const TASKSET: Spec = Spec {
    flags: "acphV",
    long_flags: &["all-tasks", "cpu-list", "pid", "help", "version"],
    ..Spec::NONE
};

const CHRT: Spec = Spec {
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

const STRACE: Spec = Spec {
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

const WATCH: Spec = Spec {
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

const SCRIPT: Spec = Spec {
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

const XARGS: Spec = Spec {
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

const SU: Spec = Spec {
    flags: "flmpPhV",
    valued: "cgGsw",
    long_flags: &[
        "fast",
        "login",
        "preserve-environment",
        "pty",
        "help",
        "version",
    ],
    long_valued: &[
        "command",
        "session-command",
        "group",
        "supp-group",
        "shell",
        "whitelist-environment",
    ],
    ..Spec::NONE
};

const RUNUSER: Spec = Spec {
    flags: "flmpPhV",
    valued: "cgGswu",
    long_flags: &[
        "fast",
        "login",
        "preserve-environment",
        "pty",
        "help",
        "version",
    ],
    long_valued: &[
        "command",
        "session-command",
        "group",
        "supp-group",
        "shell",
        "whitelist-environment",
        "user",
    ],
    ..Spec::NONE
};

/// `su [options] [-] [user [args]]`, `runuser -u user [--] command`. Both permute: options
/// may follow the user name (`su - root -c CMD`).
fn su(program: &str, args: &[String]) -> Vec<Run> {
    let spec = if program == "runuser" { &RUNUSER } else { &SU };
    let mut opts = Vec::new();
    let mut ops: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let r = match read(&args[i..], spec) {
            Ok(r) => r,
            Err(why) => return vec![Run::Opaque(why)],
        };
        let ended = r.operands > 0 && args[i + r.operands - 1] == "--";
        opts.extend(r.opts);
        i += r.operands;
        if ended {
            ops.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(w) = args.get(i) {
            ops.push(w.clone());
            i += 1;
        }
    }
    let r = Read { opts, operands: 0 };
    su_runs(program, &r, &ops)
}

fn su_runs(program: &str, r: &Read, ops: &[String]) -> Vec<Run> {
    {
        if r.has(&["u", "user"]) {
            return then_command(ops.to_vec());
        }
        if let Some(shell) = r.value(&["s", "shell"]) {
            let name = shell.rsplit('/').next().unwrap_or(shell);
            if !SHELLS.contains(&name) {
                return vec![Run::Opaque(format!(
                    "`{program} --shell {shell}` runs a shell gate does not read"
                ))];
            }
        }
        let ops = match ops.first() {
            Some(d) if d == "-" => &ops[1..],
            _ => ops,
        };
        if ops.len() > 1 {
            return vec![Run::Opaque(format!(
                "`{program}` passes the words after the user name to the shell"
            ))];
        }
        match r.value(&["c", "command", "session-command"]) {
            Some(script) => vec![Run::Script(script.to_owned())],
            None => vec![Run::Opaque(format!(
                "`{program}` without `-c` runs an interactive shell"
            ))],
        }
    }
}

/// `find`: each `-exec`/`-execdir`/`-ok`/`-okdir` command. `{}` stands for file names found at
/// run time: the command is classified with the starting points in their place (what find
/// itself visits first), and is opaque for the names beneath.
fn find(args: &[String]) -> Vec<Run> {
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
            out.push(Run::Opaque(format!(
                "`find {a}` passes the names of files it finds to `{}`",
                cmd[0]
            )));
        } else {
            out.push(Run::Command(cmd));
        }
    }
    out
}

/// A shell: `-c SCRIPT` is read; anything else — a script from stdin or a file gate cannot
/// see, rc files, options gate does not model — is opaque.
fn shell_runs(program: &str, args: &[String]) -> Vec<Run> {
    match shell::script_of_shell(program, args) {
        // zsh reads more than POSIX syntax: glob qualifiers `*(e:...:)` and `=(...)` run code.
        Ok(ShellRuns::Script(s))
            if program == "zsh"
                && ["(e", "(+", "=(", "$~", "${~"]
                    .iter()
                    .any(|q| s.contains(q)) =>
        {
            vec![Run::Opaque("zsh syntax gate does not read".into())]
        }
        Ok(ShellRuns::Script(script)) => vec![Run::Script(script.to_owned())],
        Ok(ShellRuns::File([file, rest @ ..])) => {
            let name = file.rsplit('/').next().unwrap_or(file);
            let mut cmd = vec![name.to_owned()];
            cmd.extend(rest.iter().cloned());
            vec![Run::Command(cmd)]
        }
        Ok(_) => Vec::new(),
        Err(why) => vec![Run::Opaque(why)],
    }
}

/// An interpreter: only `--version`/`--help`, or a script file with no options in front, are
/// read; the script file is also classified under its own name (`python3 /usr/bin/aws iam ...`
/// is `aws iam ...`).
fn interpreter_runs(program: &str, args: &[String]) -> Vec<Run> {
    match args {
        [] => vec![Run::Opaque(format!(
            "`{program}` reads code from its input"
        ))],
        [only] if matches!(only.as_str(), "--version" | "-V" | "-v" | "--help" | "-h") => {
            Vec::new()
        }
        [script, rest @ ..] if !script.starts_with('-') && !reads_stdin(script) => {
            let name = script.rsplit('/').next().unwrap_or(script);
            let mut cmd = vec![name.to_owned()];
            cmd.extend(rest.iter().cloned());
            vec![Run::Command(cmd)]
        }
        _ => vec![Run::Opaque(format!(
            "`{program}` runs code given in its arguments or input"
        ))],
    }
}

/// Paths that are the command's input or another process's output, not a file gate could name.
pub fn reads_stdin(path: &str) -> bool {
    path == "-"
        || path.starts_with("/dev/")
        || path.starts_with("/proc/")
        || path.contains("$")
        || path.contains('`')
}

/// GNU sed runs commands with its `e` command and the `e` flag of `s`: a script that may use
/// either (or comes from a file) is opaque; the check errs towards opaque.
fn sed(args: &[String]) -> Vec<Run> {
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
fn sed_may_execute(script: &str) -> bool {
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
fn awk_runs(program: &str, args: &[String]) -> Vec<Run> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn cmd(s: &str) -> Vec<Run> {
        vec![Run::Command(argv(s))]
    }

    fn is_opaque(r: &[Run]) -> bool {
        r.iter().any(|r| matches!(r, Run::Opaque(_)))
    }

    #[test]
    fn wrappers_are_read_exactly() {
        let cases: &[(&str, &str)] = &[
            ("sudo -u root aws iam x", "aws iam x"),
            ("sudo --chdir /tmp aws iam x", "aws iam x"),
            ("sudo --ch=/tmp -R/x aws", "aws"),
            ("sudo -R /x aws iam x", "aws iam x"),
            ("sudo --prompt x aws iam x", "aws iam x"),
            ("sudo -h aws iam", "aws iam"),
            ("sudo -- A=1 aws", "aws"),
            ("env -i - A=1 aws x", "aws x"),
            ("env -u A -C /tmp aws x", "aws x"),
            ("exec -a foo aws iam x", "aws iam x"),
            ("exec -cla foo aws", "aws"),
            ("time -p aws iam x", "aws iam x"),
            ("time -o f aws iam x", "aws iam x"),
            ("time --output=f -- aws", "aws"),
            ("nice -10 aws", "aws"),
            ("nice -n 5 aws", "aws"),
            ("timeout -s KILL 5 aws x", "aws x"),
            ("timeout --kill-after 1 5 aws x", "aws x"),
            ("chroot --userspec root / aws iam x", "aws iam x"),
            ("chroot --userspec=root:root / aws", "aws"),
            ("strace -P /x aws iam", "aws iam"),
            ("strace -f -o /tmp/o -e trace=all aws", "aws"),
            ("taskset 1 aws iam", "aws iam"),
            ("taskset -c 0-3 aws iam", "aws iam"),
            ("chrt -f 10 aws", "aws"),
            ("ionice -c 3 aws", "aws"),
            ("stdbuf -oL aws", "aws"),
            ("setsid -w aws", "aws"),
            ("nohup aws", "aws"),
            ("command -p aws", "aws"),
            ("busybox rm -rf /", "rm -rf /"),
            ("flock /tmp/l aws iam", "aws iam"),
            ("runuser -u root -- aws iam", "aws iam"),
            ("doas -u root aws", "aws"),
            ("watch -x aws iam", "aws iam"),
        ];
        for (line, want) in cases {
            assert_eq!(runs(&argv(line)), cmd(want), "{line}");
        }
    }

    #[test]
    fn command_strings_are_scripts() {
        let s = |x: &str| vec![Run::Script(x.to_owned())];
        assert_eq!(runs(&argv("su -c x root")), s("x"));
        assert_eq!(runs(&argv("su - root -c x")), s("x"));
        assert!(is_opaque(&runs(&argv("su root x -c y"))));
        assert_eq!(runs(&argv("runuser -l root -c x")), s("x"));
        assert_eq!(runs(&argv("flock f -c x")), s("x"));
        assert_eq!(runs(&argv("watch -n 1 aws iam")), s("aws iam"));
        assert_eq!(runs(&argv("script -qc x")), s("x"));
        assert_eq!(runs(&argv("script -q -c x /dev/null")), s("x"));
        assert_eq!(runs(&argv("bash -c x")), s("x"));
        assert_eq!(runs(&argv("busybox ash -c x")), cmd("ash -c x"));
        assert_eq!(
            runs(&[
                "env".into(),
                "-S".into(),
                "aws iam 'put-role-policy'".into(),
                "x".into()
            ]),
            cmd("env aws iam put-role-policy x")
        );
        assert_eq!(
            runs(&argv("env --split-string=aws\\_iam")),
            cmd("env aws iam")
        );
        assert_eq!(runs(&argv("env -iSaws")), cmd("env aws"));
    }

    #[test]
    fn unreadable_is_opaque() {
        for line in [
            "sudo --bogus aws",
            "sudo -s",
            "env -S ${X}",
            "env --frobnicate aws",
            "env BASH_ENV=/tmp/x bash -c ls",
            "sudo PATH=/tmp aws",
            "su root",
            "su -s /usr/bin/python3 -c x root",
            "script -q",
            "xargs aws iam",
            "xargs",
            "find . -exec aws iam {} ;",
            "python3 -c x",
            "python3",
            "python3 -",
            "python3 /dev/stdin",
            "python3 -m awscli",
            "perl -e x",
            "ruby -e x",
            "node -e x",
            "php -r x",
            "lua -e x",
            "tclsh",
            "osascript -e x",
            "awk BEGIN{system(x)}",
            "sed e",
            "sed -n 1e",
            "sed s/a/b/e",
            "sed -e s|a|b|ge f",
            "sed --expression=$e",
            "sed -f prog.sed",
            "sed -nf prog.sed",
            "aws-vault exec prod -- aws iam x",
            "gawk -f prog",
            "fish -c x",
            "eval x",
            "source x",
            "alias a=aws",
            "export -f f",
            "declare -n x=PATH",
            "export PATH=/tmp",
            "export GIT_SSH_COMMAND=x",
            "chroot /",
            "ssh host aws",
            "parallel aws ::: iam",
            "timeout --bogus 5 aws",
            "watch --bogus aws",
            "strace --bogus aws",
        ] {
            assert!(is_opaque(&runs(&argv(line))), "{line}");
        }
    }

    #[test]
    fn find_exec_commands() {
        assert_eq!(
            runs(&argv(
                "find . -name x -exec aws iam put-role-policy ; -print"
            )),
            cmd("aws iam put-role-policy")
        );
        let r = runs(&argv("find / /tmp -execdir rm -rf {} +"));
        assert_eq!(r[0], Run::Command(argv("rm -rf /")));
        assert_eq!(r[1], Run::Command(argv("rm -rf /tmp")));
        assert!(is_opaque(&r));
    }

    #[test]
    fn harmless_is_nothing() {
        for line in [
            "ls -l",
            "python3 --version",
            "awk -F: {print} /etc/passwd",
            "sudo -v",
            "sudo -e /etc/hosts",
            "ionice -p 1",
            "export AWS_PROFILE=prod",
            "declare -a arr",
            "local x=1",
            "sed s/error/warn/g f",
            "sed -i s/a/b/ f",
            "sed -n /x/p",
            "sed 1d",
        ] {
            assert_eq!(runs(&argv(line)), vec![], "{line}");
        }
        assert_eq!(runs(&argv("python3 /usr/bin/aws iam x")), cmd("aws iam x"));
    }
}
