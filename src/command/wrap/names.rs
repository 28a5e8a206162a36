//! The programs and variables gate knows run other code: shells, interpreters, wrappers whose
//! options it does not model, builtins, and environment variables that change what runs.

/// Shells whose `-c` scripts gate splits (POSIX syntax).
pub(crate) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "ash", "hush", "yash", "posh",
    "rbash", "lksh", "oksh", "loksh",
];

/// Shells (or shell-like languages) with other syntax or a grammar gate does not read.
pub(super) const OTHER_SHELLS: &[&str] = &[
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
pub(super) const INTERPRETERS: &[&str] = &[
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
pub(super) const UNMODELLED: &[&str] = &[
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

/// An interpreter's name without its version (`python3.12` → `python`, `node20` → `node`),
/// lowercased.
pub fn interpreter_base(program: &str) -> String {
    let lower = program.to_ascii_lowercase();
    lower
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
        .to_owned()
}

pub(super) fn is_interpreter(program: &str) -> bool {
    if INTERPRETERS.contains(&program.to_ascii_lowercase().as_str()) {
        return true;
    }
    // Versioned names: python3.12, perl5.36, ruby3.2, php8.2, lua5.4, tclsh8.6, pypy3.10, node20.
    let base = interpreter_base(program);
    [
        "python", "pypy", "perl", "ruby", "php", "lua", "tclsh", "wish", "node", "pwsh",
    ]
    .contains(&base.as_str())
}

pub(super) fn is_awk(program: &str) -> bool {
    matches!(
        program,
        "awk" | "gawk" | "mawk" | "nawk" | "busybox-awk" | "original-awk" | "bwk" | "goawk"
    )
}

/// Builtins that run code known only when they run, or change what later words mean.
pub(super) const CODE_BUILTINS: &[&str] = &[
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

/// Whether `var=value`, set in the environment `program` starts with (gate's own, which the
/// command inherits), makes it run code given there: a command line (`GIT_SSH_COMMAND`), code
/// loaded into every process (`LD_PRELOAD`), extra arguments (`TF_CLI_ARGS_apply=-destroy`).
/// Variables that only move a configuration file (`GIT_CONFIG_GLOBAL`, `TF_CLI_CONFIG_FILE`)
/// are out of scope, as the default files are; so are the usual harmless values of pager and
/// editor variables (`GIT_PAGER=cat`) and memory options in `NODE_OPTIONS`.
pub fn env_affects(var: &str, value: &str, program: &str) -> bool {
    let git = program == "git";
    match var {
        "BASH_ENV" | "SHELLOPTS" | "BASHOPTS" => program == "bash" || program == "sh",
        "PERL5OPT" => program.starts_with("perl"),
        "RUBYOPT" => program.starts_with("ruby"),
        "NODE_OPTIONS" => program.starts_with("node") && !harmless_node_options(value),
        "LD_PRELOAD" | "LD_AUDIT" => !value.is_empty(),
        v if v.starts_with("TF_CLI_ARGS") => program == "terraform" || program == "tofu",
        "GIT_PAGER" | "GIT_EDITOR" | "GIT_SEQUENCE_EDITOR" => git && !harmless_program(value),
        v if v.starts_with("GIT_") => git,
        _ => false,
    }
}

/// Pager and editor values that run nothing but themselves.
fn harmless_program(value: &str) -> bool {
    matches!(
        value.trim(),
        "" | "cat"
            | "less"
            | "less -R"
            | "less -FRX"
            | "more"
            | "true"
            | ":"
            | "vi"
            | "vim"
            | "nvim"
            | "nano"
            | "emacs"
            | "code --wait"
    )
}

/// `NODE_OPTIONS` with only options that load no code.
fn harmless_node_options(value: &str) -> bool {
    const SAFE: &[&str] = &[
        "--max-old-space-size",
        "--max-semi-space-size",
        "--stack-size",
        "--enable-source-maps",
        "--no-warnings",
        "--trace-warnings",
        "--no-deprecation",
        "--openssl-legacy-provider",
        "--use-openssl-ca",
        "--use-system-ca",
        "--dns-result-order",
        "--unhandled-rejections",
    ];
    value.split_whitespace().all(|o| {
        let name = o.split_once('=').map_or(o, |(n, _)| n);
        SAFE.contains(&name)
    })
}

/// The variables [`env_affects`] looks at, for the caller to snapshot.
pub const CODE_ENV: &[&str] = &[
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PERL5OPT",
    "RUBYOPT",
    "NODE_OPTIONS",
    "LD_PRELOAD",
    "LD_AUDIT",
    "TF_CLI_ARGS",
    "TF_CLI_ARGS_init",
    "TF_CLI_ARGS_plan",
    "TF_CLI_ARGS_apply",
    "TF_CLI_ARGS_destroy",
    "TF_CLI_ARGS_import",
    "TF_CLI_ARGS_state",
    "TF_CLI_ARGS_workspace",
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
