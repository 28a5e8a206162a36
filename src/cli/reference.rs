//! What `--help` and the man pages say beyond each option: the exit statuses of every command,
//! the environment gate reads, and the files it uses — one table each, so help and man pages
//! cannot disagree. A command with no row of its own in [`EXIT_STATUS`] shows [`GENERIC`].
//!
//! To document a new command's exit statuses, add a row to [`EXIT_STATUS`] under its path as
//! typed (`"log tail"`); [`COMMON`] is added to every row.

/// One exit status and what it means.
pub type Status = (&'static str, &'static str);

/// Statuses every command shares.
pub const COMMON: &[Status] = &[
    (
        "2",
        "usage error: unknown command or option, bad value (the message says which)",
    ),
    (
        "70",
        "internal error: a bug in gate; nothing ran, nothing was decided",
    ),
];

/// What a command without a row of its own can exit with.
pub const GENERIC: &[Status] = &[
    ("0", "success"),
    ("1", "the command ran and reports a failure"),
    (
        "78",
        "configuration error (the message names the file or setting)",
    ),
];

/// What a command group (`gate log`, `gate policy`, ...) exits with.
const GROUP: &[Status] = &[("N", "that of the subcommand; 2 (usage) without one")];

/// The exit statuses of each command other than the run form, by its path as typed.
pub const EXIT_STATUS: &[(&str, &[Status])] = &[
    (
        "check",
        &[
            (
                "0",
                "classified, whatever the decision (it is in the output; `--json` for scripts)",
            ),
            ("78", "a policy file is missing, unreadable or invalid"),
        ],
    ),
    (
        "policy lint",
        &[
            ("0", "every file is valid, and so is their merge"),
            (
                "78",
                "problems found (each as path:line:column), or no file to check",
            ),
        ],
    ),
    (
        "policy test",
        &[
            ("0", "every `tests:` case passed"),
            ("1", "a case failed"),
            ("78", "a file is invalid, or there is no file to test"),
        ],
    ),
    (
        "log show",
        &[
            (
                "0",
                "the records were shown (none matching a filter is not an error)",
            ),
            ("1", "--request names no request in the log"),
            ("78", "the log cannot be read"),
        ],
    ),
    (
        "log tail",
        &[
            ("0", "the records were shown; with -f, its reader went away"),
            ("1", "--request names no request in the log"),
            ("78", "the log cannot be read (with -f: it must exist)"),
            ("130", "-f was ended with Ctrl-C"),
        ],
    ),
    (
        "log export",
        &[
            ("0", "one row per request was written"),
            ("1", "--request names no request in the log"),
            (
                "78",
                "the log cannot be read, or -o names a file that exists (it is never overwritten)",
            ),
        ],
    ),
    (
        "setup local",
        &[
            (
                "0",
                "the spool and its policy are in place (or nothing needed changing)",
            ),
            ("77", "not run as root (`--dry-run` needs no root)"),
            (
                "78",
                "something is in the way: an unsafe parent directory, a non-spool directory, another local spool in the system policy",
            ),
        ],
    ),
    (
        "hook",
        &[
            (
                "0",
                "answered in the agent's schema on stdout: allow, deny (with the reason), ask, or nothing to say",
            ),
            (
                "2",
                "blocked: the hook input, the policy, the backend, the audit log, a signal or gate itself failed; the reason is on stderr (never any other status: Claude Code would run the command)",
            ),
        ],
    ),
    (
        "setup claude-code",
        &[
            (
                "0",
                "the hook is installed (or already was), or `--print` printed the file",
            ),
            (
                "78",
                "the settings file cannot be read, parsed or written; it is left as it was",
            ),
        ],
    ),
    (
        "setup codex",
        &[
            (
                "0",
                "the hook is installed (or already was), or `--print` printed the file",
            ),
            (
                "78",
                "the hooks file cannot be read, parsed or written; it is left as it was",
            ),
        ],
    ),
    (
        "setup gemini",
        &[
            (
                "0",
                "the hook is installed (or already was), or `--print` printed the file",
            ),
            (
                "78",
                "the settings file cannot be read, parsed or written; it is left as it was",
            ),
        ],
    ),
    (
        "setup cursor",
        &[
            (
                "0",
                "the hook is installed (or already was), or `--print` printed the file",
            ),
            (
                "78",
                "the hooks file cannot be read, parsed or written; it is left as it was",
            ),
        ],
    ),
    (
        "log verify",
        &[
            (
                "0",
                "intact: complete, unaltered, and every run approved as required",
            ),
            ("1", "tampered or non-compliant: the first bad seq and why"),
            (
                "2",
                "unusable input: no log, a bad key or checkpoint, an unreachable --remote",
            ),
        ],
    ),
    (
        "log push",
        &[
            ("0", "every sink holds every record"),
            (
                "1",
                "a sink refused records; retrying will not deliver them",
            ),
            (
                "75",
                "a sink is unreachable; its records stay pending for the next push",
            ),
            ("78", "no `audit.sinks` configured, or a policy error"),
        ],
    ),
    (
        "log key",
        &[
            ("0", "the key was printed"),
            ("78", "the key cannot be read or made"),
        ],
    ),
    (
        "requests",
        &[
            (
                "0",
                "the pending requests were listed (none is not an error), or the one asked for shown",
            ),
            (
                "1",
                "no pending request matches the id, or a part of it matches several (they are listed)",
            ),
            (
                "75",
                "the server cannot be reached, or its answer is not a request",
            ),
            (
                "78",
                "no token for the server, the token was refused, a policy that will not load, or the spool is unusable",
            ),
        ],
    ),
    (
        "approve",
        &[
            ("0", "the approval was recorded"),
            (
                "1",
                "no pending request matches the id (or a part of it matches several), or you answered no at the confirmation prompt; nothing was written",
            ),
            ("75", "the server cannot be reached"),
            (
                "77",
                "refused: your own request, not an eligible approver, expired or already decided, or a payload file you cannot read",
            ),
            (
                "78",
                "a configuration error: no token, a policy that will not load",
            ),
        ],
    ),
    (
        "deny",
        &[
            ("0", "the denial was recorded"),
            (
                "1",
                "no pending request matches the id (or a part of it matches several); nothing was written",
            ),
            ("75", "the server cannot be reached"),
            (
                "77",
                "refused: not an eligible approver, expired or already decided",
            ),
            (
                "78",
                "a configuration error: no token, a policy that will not load",
            ),
        ],
    ),
    (
        "login",
        &[
            ("0", "the token was checked and stored"),
            ("75", "the server cannot be reached"),
            ("77", "the server refused the token"),
            ("78", "the token cannot be stored"),
        ],
    ),
    (
        "serve",
        &[
            ("0", "stopped by SIGINT or SIGTERM"),
            (
                "78",
                "the database, log or key cannot be opened, or the address cannot be bound",
            ),
        ],
    ),
    (
        "serve token issue",
        &[
            ("0", "the token was printed (once)"),
            ("78", "the database cannot be opened"),
        ],
    ),
    (
        "serve token list",
        &[
            ("0", "the tokens were listed"),
            (
                "78",
                "no database at that path (see `--db`), or it cannot be read",
            ),
        ],
    ),
    (
        "serve token revoke",
        &[
            ("0", "the token was revoked"),
            ("1", "no active token has that id"),
            (
                "78",
                "no database at that path (see `--db`), or it cannot be read",
            ),
        ],
    ),
    (
        "serve key",
        &[
            ("0", "the key was printed"),
            (
                "78",
                "the key cannot be read or made, or names a host's key",
            ),
        ],
    ),
    (
        "shim install",
        &[
            (
                "0",
                "every shim is in place (one that was already there is kept)",
            ),
            (
                "1",
                "a file by a NAME is in the way and is not a gate shim: left alone",
            ),
            ("78", "the shim directory cannot be made or written"),
        ],
    ),
    (
        "shim list",
        &[
            ("0", "the shims were listed (none is not an error)"),
            ("78", "the shim directory cannot be read"),
        ],
    ),
    (
        "shim remove",
        &[
            ("0", "every shim named was removed"),
            (
                "1",
                "a NAME is no shim there, or not a link to gate (never removed)",
            ),
            ("78", "the shim directory cannot be read or written"),
        ],
    ),
    (
        "doctor",
        &[
            ("0", "every check is ok or warn"),
            ("1", "at least one check failed (each line says why)"),
        ],
    ),
    (
        "completions",
        &[
            ("0", "the script was printed (or written)"),
            ("78", "the --out-dir directory cannot be written"),
        ],
    ),
    (
        "man",
        &[
            ("0", "the page was printed (or the pages written)"),
            ("78", "the --out-dir directory cannot be written"),
        ],
    ),
];

/// The exit statuses of the run form, `gate [OPTIONS] -- PROGRAM [ARGS]...`.
pub const RUN_EXIT_STATUS: &[Status] = &[
    (
        "N",
        "the command's own when it ran; 128+N when it was killed by signal N",
    ),
    (
        "77",
        "denied: by policy, by an approver, or self-approval refused; with --request, a request \
         that was denied, is another requester's, is for another command, or does not exist",
    ),
    (
        "75",
        "no decision: timed out, cancelled, or the backend unreachable (nothing ran); with \
         --no-wait, the request was filed (its id on stdout); with --request, it is still \
         pending, expired, or its approval is older than the policy lets it cover",
    ),
    (
        "78",
        "policy or configuration error (the message names file:line:column); --no-wait or \
         --request with a local backend",
    ),
    ("126", "the program is not executable"),
    ("127", "the program is not found"),
];

/// The environment variables gate reads, and what for.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GATE_POLICY",
        "colon-separated policy files, added after the user's own",
    ),
    (
        "GATE_LOG",
        "the audit log, when the policy sets no `audit.path`",
    ),
    (
        "GATE_SPOOL",
        "the local approval spool, over the local backend's `spool`",
    ),
    (
        "GATE_REASON",
        "the reason for approvers and the record, without --reason",
    ),
    (
        "GATE_SERVER",
        "the server for requests, approve and deny, without --server",
    ),
    (
        "GATE_TOKEN",
        "the server token, instead of the one `gate login` stored",
    ),
    (
        "GATE_CA",
        "CA file (PEM) trusted for the server's TLS by login, requests, approve and deny, without --ca",
    ),
    (
        "GATE_SECRET_KEY",
        "gate serve: the key its released secrets are sealed under (64 hex characters)",
    ),
    (
        "GATE_AGENT",
        "the AI agent asking (recorded, shown to approvers)",
    ),
    (
        "GATE_ID_TOKEN",
        "a CI job's OIDC ID token, sent to the server to verify (GitLab `id_tokens:`)",
    ),
    (
        "GATE_ID_TOKEN_AUDIENCE",
        "the audience asked of GitHub's ID-token endpoint (default `gate`)",
    ),
    (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "with ACTIONS_ID_TOKEN_REQUEST_TOKEN: GitHub Actions' ID-token endpoint",
    ),
    (
        "GATE_SYSTEM_POLICY_DIR",
        "read at build time only: the system policy directory",
    ),
    ("NO_COLOR", "not empty: no colour, whatever --color says"),
    ("TERM", "`dumb`: no colour, as with NO_COLOR"),
    (
        "XDG_CONFIG_HOME",
        "user policy and tokens in its gate/ (default ~/.config)",
    ),
    (
        "XDG_STATE_HOME",
        "log, key, spool, server db in its gate/ (default ~/.local/state)",
    ),
    ("HOME", "the base of the defaults above"),
    ("PATH", "where the program to run is found"),
    (
        "CI",
        "with GITHUB_ACTIONS, GITLAB_CI: CI provenance for the request",
    ),
];

/// The files gate reads and writes. `{system}` stands for the system policy directory.
pub fn files() -> Vec<(String, &'static str)> {
    let system = crate::config::SYSTEM_POLICY_DIR;
    vec![
        (
            format!("{system}/*.yaml"),
            "the system policy: always applies; must be owned by root and not group- or world-writable",
        ),
        (
            "$XDG_CONFIG_HOME/gate/policy.yaml".into(),
            "the user's policy (~/.config/gate/policy.yaml)",
        ),
        (
            "$XDG_CONFIG_HOME/gate/tokens/".into(),
            "server tokens from `gate login`, where there is no OS keyring (mode 0600)",
        ),
        (
            "$XDG_STATE_HOME/gate/audit.jsonl".into(),
            "the audit log (GATE_LOG or the policy's `audit.path` move it)",
        ),
        (
            "LOG.checkpoint".into(),
            "the log's signed checkpoint, beside it; `gate log verify` checks it",
        ),
        (
            "$XDG_STATE_HOME/gate/signing.key".into(),
            "the host's checkpoint signing key (the policy's `audit.key` moves it; `gate log key` prints its verifier key)",
        ),
        (
            "$XDG_STATE_HOME/gate/spool/".into(),
            "the local approval spool (GATE_SPOOL or the local backend's `spool` move it)",
        ),
        (
            "$XDG_STATE_HOME/gate/server.db".into(),
            "`gate serve`'s database (--db), with its -wal and -shm files, all mode 0600",
        ),
        (
            "DB.key".into(),
            "`gate serve`'s decision signing key, beside the database (--key)",
        ),
        (
            "$XDG_STATE_HOME/gate/server-audit.jsonl".into(),
            "`gate serve`'s own audit log (--audit-log)",
        ),
    ]
}

/// The exit statuses of the command at `path` (`"log verify"`), [`COMMON`] included.
pub fn exit_statuses(path: &str, is_group: bool) -> Vec<Status> {
    let own = if is_group {
        GROUP
    } else {
        EXIT_STATUS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, s)| *s)
            .unwrap_or(GENERIC)
    };
    own.iter().chain(COMMON).copied().collect()
}

/// Rows as help text: `  STATUS  meaning`, aligned.
pub fn help_rows<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let rows: Vec<_> = rows.into_iter().collect();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("  {k:<width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cmd` with an `Exit status:` section after the help of every command below it.
pub fn document(cmd: clap::Command) -> clap::Command {
    document_at(cmd, "")
}

fn document_at(mut cmd: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |sub| {
            let is_group = sub.has_subcommands() && !sub.is_args_conflicts_with_subcommands_set();
            let statuses = exit_statuses(&sub_path, is_group);
            let section = format!(
                "Exit status:\n{}",
                help_rows(statuses.iter().map(|(k, v)| (*k, *v)))
            );
            let after = match sub.get_after_help() {
                Some(a) => format!("{a}\n\n{section}"),
                None => section,
            };
            document_at(sub.after_help(after), &sub_path)
        });
    }
    cmd
}
