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

mod env;
mod names;
mod privilege;
mod tools;

use super::getopt::{Read, Spec, read};
use env::env;
pub(crate) use names::SHELLS;
use names::{CODE_BUILTINS, OTHER_SHELLS, UNMODELLED, is_awk, is_interpreter};
pub use names::{CODE_ENV, env_affects, env_runs_code, interpreter_base};
use privilege::{doas, su, sudo};
use tools::*;
pub use tools::{reads_stdin, sources_input};

/// One thing a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// This argv, classified in turn (and read again: it may be a wrapper too).
    Command(Vec<String>),
    /// A shell script, split into its simple commands; its positional parameters unknown.
    Script(String),
    /// A shell script run as `sh -c SCRIPT ARGS...`: `$0`, `$1`, ... are these words.
    ScriptWithArgs(String, Vec<String>),
    /// Code gate cannot read, and why: what finally runs is not known.
    Opaque(String),
    /// What runs is known, but some of its words are not read exactly — code given in an
    /// argument, words read from its input, a container's command — and why: the rules judge
    /// them as written (`defaults.opaque_arguments`).
    Unread(String),
}

/// What words known only at run time (`$X`, `$(...)`, a glob) do to a command's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicWords {
    /// Such a word may choose what runs: an option of a wrapper, a shell's script, a program.
    ChooseWhatRuns,
    /// Such a word is part of code the command runs, after literal text that fixes its place
    /// (`s/v = .*/v = "$(git describe)"/`, `src/*.c` after `perl -pi -e CODE`).
    InCode,
    /// Such a word is an argument the rules read as written.
    Arguments,
}

/// `NAME=value` (a valid shell variable name before the `=`).
pub fn assignment_name(w: &str) -> Option<&str> {
    let (name, _) = w.split_once('=')?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// Whether `argv`, some of whose words are known only at run time (`dynamic`), may run code
/// those words choose: a wrapper (the word may be one of its options), a shell, an interpreter,
/// `awk`/`sed` (the word may be the program), git (unless each such word is an option's value).
pub fn dynamic_words_matter(argv: &[String], dynamic: impl Fn(&str) -> bool) -> DynamicWords {
    let Some(first) = argv.first() else {
        return DynamicWords::Arguments;
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    if program == "git" {
        return if super::git::dynamic_words_are_values(&argv[1..], &dynamic) {
            DynamicWords::Arguments
        } else {
            DynamicWords::ChooseWhatRuns
        };
    }
    // `python -m MODULE ARGS`: words after a literal module are that program's arguments.
    if is_interpreter(program)
        && argv.get(1).is_some_and(|m| m == "-m")
        && argv
            .get(2)
            .is_some_and(|m| !dynamic(m) && !m.starts_with('-'))
    {
        return DynamicWords::Arguments;
    }
    // An interpreter or sed whose every such word starts with literal text that is not an
    // option: the expansion sits inside code or a file name, it cannot become the program,
    // the script file or an option.
    if (is_interpreter(program) || matches!(program, "sed" | "gsed"))
        && argv[1..]
            .iter()
            .filter(|w| dynamic(w))
            .all(|w| literal_prefix(w).is_some_and(|p| !p.starts_with('-')))
        && !argv[1..]
            .iter()
            .position(|w| !w.starts_with('-'))
            .is_some_and(|i| dynamic(&argv[1 + i]) && is_interpreter(program))
    {
        return DynamicWords::InCode;
    }
    // `export PATH="$HOME/bin:$PATH"`: the name is fixed, the value is read as written.
    if matches!(
        program,
        "export" | "declare" | "typeset" | "local" | "readonly"
    ) && argv[1..]
        .iter()
        .filter(|w| dynamic(w))
        .all(|w| literal_prefix(w).and_then(assignment_name).is_some())
    {
        return DynamicWords::Arguments;
    }
    // The file `source` runs, the words of a container's command: read as written, like the
    // rest of them (`source "$HOME/.cargo/env"`, `docker run -v "$PWD":/app ...`).
    if matches!(program, "source" | "." | "docker" | "podman" | "nerdctl") {
        return DynamicWords::InCode;
    }
    let matters = SHELLS.contains(&program)
        || OTHER_SHELLS.contains(&program.to_ascii_lowercase().as_str())
        || is_awk(program)
        || is_interpreter(program)
        || CODE_BUILTINS.contains(&program)
        || UNMODELLED.contains(&program)
        || matches!(program, "sed" | "gsed" | "find")
        || !runs(argv).is_empty();
    if matters {
        DynamicWords::ChooseWhatRuns
    } else {
        DynamicWords::Arguments
    }
}

/// The text of `w` before its first expansion, glob or brace, if there is any.
fn literal_prefix(w: &str) -> Option<&str> {
    let end = w.find(['$', '`', '*', '?', '[', '{']).unwrap_or(w.len());
    (end > 0).then(|| &w[..end])
}

/// Whether a word as gate read it may be one the shell only knows when it runs: an expansion,
/// a glob, a brace expansion (text that merely contains those characters counts too).
pub fn looks_dynamic(w: &str) -> bool {
    w.contains(['$', '`', '*', '?', '['])
        || (w.contains('{') && (w.contains(',') || w.contains("..")))
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
    if matches!(program, "source" | ".")
        && let Some(file) = args.first()
        && !tools::sources_input(file)
    {
        return vec![Run::Unread(format!(
            "`{program} {file}` runs the file's code, read only as written"
        ))];
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
    if EDITORS.contains(&program) {
        return editor(program, args);
    }
    if is_project_runner(program) {
        return project_tool(program, args);
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
            // Words from input given to a shell, an interpreter or a wrapper may be the code
            // or the command itself.
            // A wrapper may take a value before the command it runs (`timeout 5 CMD`): fed
            // three words, does it run one of them?
            let mut fed = cmd.clone();
            fed.extend(std::iter::repeat_n("$INPUT".to_owned(), 3));
            let why =
                if dynamic_words_matter(&fed, |w| w == "$INPUT") == DynamicWords::ChooseWhatRuns {
                    Run::Opaque(format!(
                        "`xargs` gives words read from its input to `{}`, which runs them",
                        cmd[0]
                    ))
                } else {
                    Run::Unread("`xargs` adds words read from its input to the command".into())
                };
            vec![Run::Command(cmd), why]
        }),
        "find" => find(args),
        "sed" | "gsed" => sed(args),
        "busybox" | "toybox" => match args.first() {
            Some(applet) if !applet.starts_with('-') => then_command(args.to_vec()),
            _ => Vec::new(),
        },
        "git" => super::git::runs(args),
        "docker" | "podman" | "nerdctl" => container(program, args),
        "kubectl" | "oc" => pod(program, args),
        _ => Vec::new(),
    }
}

/// `docker run IMAGE CMD`, `docker exec CTR CMD` (and `container run|exec|create`, `compose
/// run|exec`): the command runs in a container, after options gate does not read exactly, with
/// whatever the container is given (mounted credentials included) — opaque.
fn container(program: &str, args: &[String]) -> Vec<Run> {
    // Global options that take a value (docker's and podman's common ones).
    const VALUED: &[&str] = &[
        "-c",
        "--context",
        "-H",
        "--host",
        "--config",
        "-l",
        "--log-level",
        "--tlscacert",
        "--tlscert",
        "--tlskey",
        "--url",
        "--connection",
        "--root",
        "--runroot",
    ];
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() && words.len() < 3 {
        let a = &args[i];
        if VALUED.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            words.push(a.as_str());
        }
        i += 1;
    }
    let runs = |w: &str| matches!(w, "run" | "exec" | "create");
    let hit = match words.as_slice() {
        [w, ..] if runs(w) => Some(*w),
        ["container" | "compose", w, ..] if runs(w) => Some(*w),
        _ => None,
    };
    match hit {
        Some(w) => vec![Run::Unread(format!(
            "`{program} {w}` runs a command in a container, read only as written"
        ))],
        None => Vec::new(),
    }
}

/// A POSIX-family shell gate reads the scripts of.
pub fn is_shell(program: &str) -> bool {
    SHELLS.contains(&program)
}

/// Editors: with file operands only they edit; with options they may run editor commands
/// (`vim -c CMD`, `emacs --batch -l FILE`), read as written.
const EDITORS: &[&str] = &["vim", "vi", "nvim", "ex", "view", "rvim", "gvim", "emacs"];

fn editor(program: &str, args: &[String]) -> Vec<Run> {
    if args.iter().all(|a| !a.starts_with(['-', '+'])) {
        return Vec::new();
    }
    vec![Run::Unread(format!(
        "`{program}` runs editor commands given in its options, read only as written"
    ))]
}

/// Project and environment tools that run a command with `run`/`exec` (`uv run pytest`,
/// `bundle exec rspec`, `poetry run black .`) and otherwise only manage packages.
fn is_project_runner(program: &str) -> bool {
    matches!(
        program,
        "uv" | "uvx"
            | "poetry"
            | "pipenv"
            | "hatch"
            | "pdm"
            | "rye"
            | "conda"
            | "mamba"
            | "micromamba"
            | "pixi"
            | "bundle"
            | "bundler"
            | "pipx"
    )
}

fn project_tool(program: &str, args: &[String]) -> Vec<Run> {
    /// Subcommands that manage packages or the project and run no command of the caller's.
    const PLAIN: &[&str] = &[
        "install",
        "sync",
        "lock",
        "add",
        "remove",
        "uninstall",
        "update",
        "upgrade",
        "build",
        "check",
        "show",
        "list",
        "init",
        "new",
        "version",
        "config",
        "cache",
        "pip",
        "venv",
        "python",
        "tree",
        "export",
        "outdated",
        "help",
        "info",
        "search",
        "publish",
        "clean",
        "doctor",
        "audit",
        "fmt",
        "format",
    ];
    let opaque = |why: String| vec![Run::Opaque(why)];
    let Some(pos) = args.iter().position(|a| !a.starts_with('-')) else {
        // Only options: `uv --version`, `poetry --help`.
        return Vec::new();
    };
    if pos > 0 {
        return opaque(format!(
            "`{program} {}`: options gate does not read before the subcommand",
            args[0]
        ));
    }
    let (sub, rest) = (&args[0], &args[1..]);
    if matches!(program, "uvx") {
        return then_command(args.to_vec());
    }
    match sub.as_str() {
        "run" | "exec" | "x" => match rest.first() {
            None => Vec::new(),
            Some(first) if first.starts_with('-') => opaque(format!(
                "`{program} {sub} {first}`: options gate does not read before the command"
            )),
            Some(_) => then_command(rest.to_vec()),
        },
        s if PLAIN.contains(&s) => Vec::new(),
        s => opaque(format!(
            "`{program} {s}` runs commands in a way gate does not read exactly"
        )),
    }
}

/// `kubectl exec|run|debug ... -- CMD`: the words after `--` are the command the pod runs.
fn pod(program: &str, args: &[String]) -> Vec<Run> {
    let Some(dash) = args.iter().position(|a| a == "--") else {
        return Vec::new();
    };
    let before = &args[..dash];
    let verb = before
        .iter()
        .find(|a| matches!(a.as_str(), "exec" | "run" | "debug" | "attach"));
    match (verb, args.get(dash + 1..)) {
        (Some(_), Some(cmd)) if !cmd.is_empty() => then_command(cmd.to_vec()),
        (Some(v), _) => vec![Run::Opaque(format!(
            "`{program} {v}` runs a command gate does not read"
        ))],
        _ => Vec::new(),
    }
}

pub(super) fn then_command(cmd: Vec<String>) -> Vec<Run> {
    if cmd.is_empty() {
        Vec::new()
    } else {
        vec![Run::Command(cmd)]
    }
}

/// Reads the options of a wrapper; an unreadable option makes it opaque, otherwise `then`
/// gets the options and the operands.
pub(super) fn with(
    args: &[String],
    spec: &Spec,
    then: impl FnOnce(&Read, &[String]) -> Vec<Run>,
) -> Vec<Run> {
    match read(args, spec) {
        Ok(r) => {
            let ops = &args[r.operands.min(args.len())..];
            then(&r, ops)
        }
        Err(why) => vec![Run::Opaque(why.to_string())],
    }
}

/// Why a wrapper's command cannot be read exactly: it is opaque, for this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WrapError {
    #[error("setting `{0}` changes what the command runs")]
    CodeEnv(String),
    #[error("`env -S` expands a variable, known only when it runs")]
    SplitVariable,
    #[error("`env -S` with an escape gate does not read")]
    SplitEscape,
    #[error("`env -S` with an unclosed quote")]
    SplitQuote,
}

/// Leading `NAME=value` words (sudo, env): skipped, unless the variable makes code run.
pub(super) fn skip_assignments(ops: &[String]) -> Result<&[String], WrapError> {
    let mut i = 0;
    while let Some(w) = ops.get(i) {
        let Some(name) = assignment_name(w) else {
            break;
        };
        if env_runs_code(name) {
            return Err(WrapError::CodeEnv(name.to_owned()));
        }
        i += 1;
    }
    Ok(&ops[i..])
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
        assert_eq!(
            runs(&argv("bash -c x a b")),
            vec![Run::ScriptWithArgs("x".into(), argv("a b"))]
        );
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
            "xargs sh -c",
            "xargs -I{} bash -c {}",
            "xargs sudo",
            "xargs timeout",
            "find . -exec timeout {} +",
            "xargs nice -n",
            "find . -exec sh {} ;",
            "python3",
            "python3 -",
            "python3 /dev/stdin",
            "python3 -X dev -c x",
            "perl -x",
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
            "source /dev/stdin",
            "source <(curl x)",
            "alias a=aws",
            "export -f f",
            "declare -n x=PATH",
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

    fn is_unread(r: &[Run]) -> bool {
        !is_opaque(r) && r.iter().any(|r| matches!(r, Run::Unread(_)))
    }

    /// What runs is known; words of it are read as written (`defaults.opaque_arguments`).
    #[test]
    fn words_read_as_written_are_unread_not_opaque() {
        for line in [
            "xargs aws iam",
            "xargs",
            "find . -name x -exec rm {} +",
            "find . -exec aws iam {} ;",
            "python3 -c x",
            "python3 -u -c x",
            "perl -e x",
            "perl -ne x f",
            "perl -pi -e x f",
            "ruby -e x",
            "node -e x",
            "node -p x",
            "php -r x",
            "source x",
            ". .venv/bin/activate",
            "export PATH=/tmp",
            "docker run --rm img",
            "vim -c wq f",
            "python3 -m some_module",
        ] {
            assert!(is_unread(&runs(&argv(line))), "{line}");
        }
        // A module gate knows runs as the program it is.
        assert_eq!(runs(&argv("python3 -m awscli iam x")), cmd("aws iam x"));
        assert_eq!(runs(&argv("python -m pytest -q")), cmd("pytest -q"));
        // Project runners run the command after `run`/`exec`; their other subcommands run none.
        assert_eq!(runs(&argv("uv run pytest -q")), cmd("pytest -q"));
        assert_eq!(runs(&argv("bundle exec rake test")), cmd("rake test"));
        assert_eq!(runs(&argv("uvx ruff check")), cmd("ruff check"));
        assert!(runs(&argv("poetry install")).is_empty());
        assert!(is_opaque(&runs(&argv("uv tool run aws"))));
        assert!(is_opaque(&runs(&argv("poetry run --directory x aws"))));
        assert!(is_opaque(&runs(&argv("pipenv shell"))));
        // `command -v` only says what a name is.
        assert!(runs(&argv("command -v node")).is_empty());
        assert_eq!(runs(&argv("command node x")), cmd("node x"));
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
        assert!(is_unread(&r));
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
