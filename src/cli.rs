//! The command line, as clap derive types. These also generate the shell completions and man
//! pages. Nothing below `main` takes these types: they are resolved into plain settings first.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod misuse;
pub mod reference;

/// The examples after `gate --help`; [`command`] adds the exit statuses and the environment.
pub const AFTER_HELP: &str = "\
Examples:
  gate -- aws iam put-role-policy --role-name ci --policy-name admin --policy-document file://p.json
  gate check -- kubectl --context prod delete pod web-1
  gate requests                 # what is waiting for my decision
  gate approve 0193a1b2 --comment 'checked the diff'
  gate log show -n 20";

/// The command line as parsed and as `--help` shows it: the derive's, with the exit statuses
/// of every command and the environment gate reads in the help text.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    use reference::{COMMON, ENVIRONMENT, RUN_EXIT_STATUS, help_rows};
    let cmd = Cli::command();
    let after = format!(
        "{AFTER_HELP}\n\nExit status of the run form:\n{}\nEvery other command lists its own under `gate COMMAND --help`.\n\nEnvironment:\n{}",
        help_rows(RUN_EXIT_STATUS.iter().chain(COMMON).copied()),
        help_rows(ENVIRONMENT.iter().copied()),
    );
    reference::document(cmd.after_help(after))
}

/// Put a human decision in front of privileged commands.
///
/// gate classifies a command against YAML policy rules (allow, confirm, approve, deny), asks
/// for approval where the policy says so, runs exactly the approved argv and records every
/// decision and result in a hash-chained audit log.
#[derive(Debug, Parser)]
#[command(
    name = "gate",
    version,
    after_help = AFTER_HELP,
    override_usage = "gate [OPTIONS] -- PROGRAM [ARGS]...\n       gate <COMMAND>"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Commands>,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Add a policy file (repeatable). Adds to the system and user policy, never replaces it.
    #[arg(long = "policy", value_name = "FILE", global = true)]
    pub policy: Vec<PathBuf>,

    /// When to use colour. A non-empty NO_COLOR, or TERM=dumb, turns it off, whatever this says.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true, value_name = "WHEN")]
    pub color: Color,

    /// Say less: no progress lines, no spinner (a run with no policy at all still warns).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say more (repeat for more detail).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Options of the run form: `gate [OPTIONS] -- PROGRAM [ARGS...]`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Why you run this; shown to approvers and recorded [env: GATE_REASON].
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Give up waiting for approval after this long (e.g. `90s`, `10m`); never longer than the
    /// policy allows.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// File the approval request and exit 75 without waiting or running: its id goes to stdout,
    /// for a later `gate --request ID -- PROGRAM` (two-stage pipelines; server backend).
    #[arg(long, conflicts_with = "request")]
    pub no_wait: bool,

    /// Run the command on the approval of an earlier request ID (from `--no-wait`): only if it
    /// was approved, for this requester, and its digest is this command's as it is now;
    /// exits 75 while it is pending, 77 when it was denied or is for another command.
    #[arg(long, value_name = "ID", value_parser = parse_request_id)]
    pub request: Option<String>,

    /// With `--request`: wait for the request to be decided (up to `--timeout` or the
    /// policy's limit) instead of exiting 75 while it is pending.
    #[arg(long, requires = "request")]
    pub wait: bool,

    /// Print the decision as one JSON object on stderr.
    #[arg(long)]
    pub json: bool,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "PROGRAM [ARGS]")]
    pub command: Vec<String>,
}

/// A request id as gate makes them (a UUID, lower-case, hyphenated): anything else is a usage
/// error before any backend is asked.
fn parse_request_id(s: &str) -> Result<String, ArgError> {
    match uuid::Uuid::parse_str(s) {
        Ok(u) if u.hyphenated().to_string() == s => Ok(s.to_owned()),
        _ => Err(ArgError::Invalid(format!(
            "`{}` is not a request id (a UUID such as `0190b5a2-7c1e-7d3a-9f00-2b6c4e8a1d55`, as `gate --no-wait` prints it)",
            s.escape_debug()
        ))),
    }
}

/// A value clap cannot turn into a setting; clap shows it after the option's name.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("{0} (write durations like `90s` or `10m`)")]
    Duration(#[from] humantime::DurationError),
    #[error(
        "cannot resolve `{0}`: {1} (write HOST:PORT, e.g. `127.0.0.1:8700` or `localhost:8700`)"
    )]
    Listen(String, std::io::Error),
    #[error("`{0}` names no address (write HOST:PORT, e.g. `127.0.0.1:8700`)")]
    NoAddress(String),
    #[error("{0}")]
    Invalid(String),
}

fn parse_duration(s: &str) -> Result<std::time::Duration, ArgError> {
    Ok(humantime::parse_duration(s)?)
}

/// `HOST:PORT` for `--listen`: an address, or a name (`localhost:8700`) resolved here, its
/// first IPv4 address preferred.
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, ArgError> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let all: Vec<std::net::SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| ArgError::Listen(s.to_owned(), e))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| ArgError::NoAddress(s.to_owned()))
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Classify a command without running it: decision, matched rules, approvals needed, why.
    Check {
        /// Print the classification as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// The command to classify, after `--`.
        #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
        command: Vec<String>,
    },
    /// Validate and test policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Log(LogCommand),
    /// List pending approval requests you can see, or show one in full.
    ///
    /// Without ID: one row per pending request (short id, requester, approvals so far of
    /// those needed, expiry, command). With ID: everything that will run and who has approved
    /// it so far. ID is the whole id, or a unique part of it of at least 6 characters from its
    /// start or its end (the short id the list shows).
    Requests {
        /// The request to show in full.
        id: Option<String>,
        /// One JSON object per request on stdout (the `gate.request/v1` shape, the same for the
        /// local spool and a server).
        #[arg(long)]
        json: bool,
        /// Ask this gate server instead of the local spool [env: GATE_SERVER].
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Trust only the CA certificates in this PEM file for the server's TLS (default: the
        /// built-in web PKI roots) [env: GATE_CA].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Approve a pending request as the current user (or as your server token's principal).
    Approve {
        /// The request id, or a unique part of it: at least 6 characters from its start or end
        /// (the short id `gate requests` shows).
        id: String,
        /// A note recorded with your approval.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// Decide on this gate server instead of the local spool [env: GATE_SERVER].
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Trust only the CA certificates in this PEM file for the server's TLS (default: the
        /// built-in web PKI roots) [env: GATE_CA].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Deny a pending request as the current user (or as your server token's principal).
    Deny {
        /// The request id, or a unique part of it: at least 6 characters from its start or end
        /// (the short id `gate requests` shows).
        id: String,
        /// Why; shown to the requester and recorded.
        #[arg(long, value_name = "TEXT", required = true)]
        reason: String,
        /// Decide on this gate server instead of the local spool [env: GATE_SERVER].
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Trust only the CA certificates in this PEM file for the server's TLS (default: the
        /// built-in web PKI roots) [env: GATE_CA].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Store your token for a gate server in the OS keyring (or a 0600 file where there is none).
    ///
    /// The token is read from standard input (or a hidden prompt on a terminal) and checked
    /// against the server before it is stored. Prints the key the server signs its decisions
    /// with, to pin as `key:` on the policy's server backend.
    Login {
        /// The server, e.g. https://gate.example.com
        url: String,
        /// Trust only the CA certificates in this PEM file for the server's TLS (default: the
        /// built-in web PKI roots) [env: GATE_CA].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Run the approval and audit server.
    Serve(ServeArgs),
    /// One-time set-up of this machine, as root; or install gate's hook into an AI agent.
    #[command(subcommand)]
    Setup(SetupCommand),
    /// Answer an AI agent's shell-tool hook: read its hook JSON on stdin, decide, answer in
    /// its schema.
    ///
    /// `allow` lets the command run; `deny` refuses it with the rule's message; `confirm` is
    /// the agent's own "ask the person" answer (denied where the agent has none); `approve`
    /// waits for an approval (at most `--timeout`) and lets it run only with the approval in
    /// hand. Every decision is recorded before the answer; the post-tool call records the
    /// result. Any failure (bad input, no policy, no backend, an unwritable log, a signal, a
    /// crash) is the blocking answer with exit 2. `gate setup AGENT` installs it.
    Hook {
        /// The agent whose hook JSON comes on stdin.
        #[arg(value_enum)]
        agent: HookAgent,
        /// Which call this is; by default read from the input's event name (they must agree).
        #[arg(long, value_enum, value_name = "EVENT")]
        event: Option<HookEvent>,
        /// Wait at most this long for an approval (never longer than the policy allows); keep
        /// it under the hook timeout the agent is given, or the agent stops waiting first.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "280s")]
        timeout: std::time::Duration,
    },
    /// PATH shims: links named after programs that route them through gate.
    ///
    /// A shim is a symlink named NAME to this gate binary, in a shim directory (default:
    /// `$XDG_STATE_HOME/gate/shims`, i.e. ~/.local/state/gate/shims) that goes first on PATH.
    /// Run under that name, gate finds the real NAME further down PATH (never a shim, never
    /// gate itself) and runs it exactly as `gate -- NAME ARGS...` would.
    #[command(subcommand)]
    Shim(ShimCommand),
    /// Check this set-up: policy files and their tier, the log and key, the keyring, backends
    /// and sinks, agent hooks and shims. One line each: ok, warn or fail.
    Doctor {
        /// Print one JSON object on stdout: {"ok": bool, "checks": [{check, status, detail, hint}]}.
        #[arg(long)]
        json: bool,
        /// The shim directory to check (default: `shims` in gate's state directory).
        #[arg(long, value_name = "DIR")]
        shim_dir: Option<PathBuf>,
    },
    /// Print shell completions for SHELL.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
        /// Write completions for every shell into this directory instead.
        #[arg(long, value_name = "DIR", hide = true)]
        out_dir: Option<PathBuf>,
    },
    /// Print the man page (gate.1).
    Man {
        /// Write gate.1, one page per subcommand and gate-policy.5 (the policy file format)
        /// into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// Address to listen on (`HOST:PORT`; a name such as `localhost:8700` is resolved). Beyond
    /// loopback, serve TLS (`--tls-cert`) or put a TLS-terminating proxy in front: tokens
    /// travel as bearer headers.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8700", value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// The database: a SQLite file (default: server.db in the state directory), or a
    /// PostgreSQL URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`) that several replicas
    /// share; with PostgreSQL the server's log lives in the database and `--key` is required.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// The server's own audit log (default: server-audit.jsonl in the state directory; not
    /// with PostgreSQL, whose server log lives in the database).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// The server's signing key (default: `<database>.key` beside the database; made on first
    /// start, mode 0600). Never a host's `audit.key`.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may wait for its next request (at most 30s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Close a connection that moves no byte for this long (longer than the 60s long-poll).
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Connections open at once; past it a client is answered 503 with Retry-After. Lowered
    /// to fit the open-file limit (raised to its hard limit at start).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_connections: usize,
    /// The address people reach this server at (`https://gate.example.com`): the links in
    /// Slack messages and Teams cards point to its pages, and the identity provider sends
    /// people back to its `/auth/callback`. Required by a `kind: teams` backend and by
    /// `server.oidc`.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`. SIGHUP
    /// reads both files again: new connections get the new certificate.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1); needs `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The key the server's secrets are sealed under: a 0600 file of 64 hex characters or 32
    /// raw bytes. `GATE_SECRET_KEY` comes first; without either, the keyring entry
    /// `gate/server-secret-key`.
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Manage the API tokens of principals.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the key the server signs its decisions with (note vkey format), making it if needed.
    ///
    /// Pin it as `key:` on the server backend of every client's policy. The key is the one
    /// `gate serve` with the same `--db` and `--key` signs with: `--key`, else
    /// `<database>.key` beside the database (made on first use, mode 0600).
    Key {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory); its key lives beside it.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// The server's signing key, as given to `gate serve --key`.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// The server's own log, when it lives in a PostgreSQL database.
    #[command(subcommand)]
    Log(ServeLogCommand),
    /// Manage the secrets the server releases to approved runs (names and times only are ever
    /// shown; values are sealed with AES-256-GCM under the secret key).
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
pub enum ServeLogCommand {
    /// Write the server's log kept in a PostgreSQL database as JSON lines, for `gate log verify`.
    ///
    /// With `-o FILE`, its signed checkpoint goes to `FILE.checkpoint` beside it; verify with
    /// `gate log verify FILE --key "$(gate serve key --key KEYFILE)"`.
    Export {
        /// The server's PostgreSQL database, as given to `gate serve --db`.
        #[arg(long, value_name = "URL")]
        db: Option<PathBuf>,
        /// Write here (a new file) instead of stdout, and the checkpoint beside it.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret's value, read from standard input (a hidden prompt on a terminal); one
    /// trailing newline is dropped. Replaces a value stored under NAME.
    ///
    /// The key comes from `GATE_SECRET_KEY`, else `--secret-key-file`, else the keyring entry
    /// `gate/server-secret-key` (made on first use when no other source is given).
    Set {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// The secret key file, as given to `gate serve --secret-key-file`.
        #[arg(long, value_name = "FILE")]
        secret_key_file: Option<PathBuf>,
        /// The secret's name, as a policy's `release:` names it (`secret:NAME`).
        name: String,
    },
    /// List the stored secrets: names, created and updated times, never values.
    List {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory). It must exist: listing never makes one.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// One JSON object per secret on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored secret.
    Rm {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// The secret's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for a principal and print it once (only its hash is stored).
    Issue {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// The principal the token speaks for (an approver name from the policy's groups).
        #[arg(long, value_name = "NAME")]
        principal: String,
        /// Make the token stop working after this long (e.g. `90d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// List tokens (ids, principals, state; never the secrets).
    List {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory). It must exist: listing never makes one.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// One JSON object per token on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The server's database, as given to `gate serve` (default: server.db in the state
        /// directory).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// The token's id, as `gate serve token list` shows it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policy files for errors; each is reported as path:line:column.
    ///
    /// With no FILE, checks every file that applies (system, user, GATE_POLICY, --policy).
    Lint {
        /// The files to check (default: every file that applies).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run the `tests:` cases written in policy files; exit 1 when any fails.
    ///
    /// Each file's cases run against that file alone.
    Test {
        /// The files whose cases to run (default: every file that applies).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Show audit records as a table (or JSON lines): who asked, who decided and why, how it ended.
    ///
    /// Filters compose, and `-n` keeps the last N of what they let through. A filter that
    /// matches nothing prints an empty table and says so on stderr; a `--request` that names
    /// no request in the log is an error (exit 1).
    Show {
        /// One record per line, as stored.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: LogFilter,
        /// Only the last N records.
        #[arg(short = 'n', value_name = "N")]
        n: Option<usize>,
        /// The log file (default: the configured one).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Show the last records, and with `--follow` each new one as it is appended.
    ///
    /// Ctrl-C ends `--follow` with status 130 (what a shell reports for `tail -f`); a closed
    /// stdout ends it with 0.
    Tail {
        /// One record per line, as stored.
        #[arg(long)]
        json: bool,
        /// Keep watching the log and print records as they are appended.
        #[arg(short = 'f', long)]
        follow: bool,
        #[command(flatten)]
        filter: LogFilter,
        /// How many of the last records to show first.
        #[arg(short = 'n', value_name = "N", default_value_t = 10)]
        n: usize,
        /// The log file (default: the configured one).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Export one row per request (decision, requester, command, rules, approvers, denier and
    /// reason, result) as CSV or JSON, for an auditor's evidence request.
    ///
    /// CSV follows RFC 4180; a text field that starts with `=`, `+`, `-`, `@`, a tab, a carriage
    /// return or a line feed gets a leading `'`, so a spreadsheet shows it as text instead of
    /// running it as a formula. JSON is one array of objects, values exact.
    Export {
        /// The output format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: ExportFormat,
        #[command(flatten)]
        filter: LogFilter,
        /// Write to FILE (made with mode 0600, never replacing an existing file) instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// The log file (default: the configured one).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Prove the log is complete and unaltered, and that what ran was approved as required.
    ///
    /// Exit 0 intact; 1 tampered or a compliance violation (the summary says which; the first bad
    /// seq and why); 2 unusable input.
    Verify {
        /// The log file (default: the configured one).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
        /// The host's verifier key (`gate log key` output), or a file holding it. Without it,
        /// the key named in the log's own genesis is trusted.
        #[arg(long, value_name = "VKEY|FILE")]
        key: Option<String>,
        /// The signed checkpoint to check against (default: PATH.checkpoint).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Hashing threads (default: all cores).
        #[arg(long, value_name = "N", default_value_t = 0, hide = true)]
        threads: usize,
        /// Also compare with the copy a gate server holds: records missing there, local
        /// truncation or rollback below what it holds, and any divergence.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// A gate server's decision key (`gate serve key` output), or a file holding it:
        /// server-approved runs must carry a statement it signed. Repeatable; the keys of the
        /// policy's server backends are trusted too.
        #[arg(long, value_name = "VKEY|FILE")]
        server_key: Vec<String>,
    },
    /// Deliver records the remote sinks have not acknowledged yet.
    Push {
        /// The log file (default: the configured one).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
        /// Keep retrying unreachable sinks for this long.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
        timeout: std::time::Duration,
        /// One JSON object per sink on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print this host's checkpoint verifier key (note vkey format), making the key if needed.
    Key,
}

/// The agents `gate hook` and `gate setup` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookAgent {
    /// Claude Code (PreToolUse / PostToolUse, Bash tool).
    ClaudeCode,
    /// OpenAI Codex CLI (PreToolUse / PostToolUse, Bash tool).
    Codex,
    /// Gemini CLI (BeforeTool / AfterTool, run_shell_command tool).
    Gemini,
    /// Cursor (beforeShellExecution / afterShellExecution).
    Cursor,
}

/// Before or after the shell tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookEvent {
    Pre,
    Post,
}

/// Where `gate setup AGENT` installs the hook.
#[derive(Debug, Args, Clone)]
pub struct AgentSetupArgs {
    /// The agent's settings in this project (the current directory).
    #[arg(long, conflicts_with = "user")]
    pub project: bool,
    /// Your own settings for the agent, for every project (the default).
    #[arg(long)]
    pub user: bool,
    /// Print the settings file as it would be; change nothing.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Make a shim for each NAME (a symlink to this gate binary) and print the PATH line to add.
    ///
    /// An existing shim is kept; any other file by that name is never replaced.
    Install {
        /// The programs to route through gate, e.g. `aws kubectl terraform`.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// The shim directory (default: `$XDG_STATE_HOME/gate/shims`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// List the shims: where each points and which real program it shadows.
    List {
        /// The shim directory (default: `$XDG_STATE_HOME/gate/shims`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print one JSON object on stdout: {"dir", "shims": [{name, path, kind, target, shadows}]}.
        #[arg(long)]
        json: bool,
    },
    /// Remove the shims NAME...; a file that is not a link to gate is never removed.
    Remove {
        /// The shims to remove.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// The shim directory (default: `$XDG_STATE_HOME/gate/shims`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Install gate's hook into Claude Code's settings (.claude/settings.json).
    ///
    /// Adds PreToolUse and PostToolUse command hooks for the Bash tool that run this gate
    /// binary (its absolute path) with an explicit timeout, keeping every other setting and
    /// hook. Running it again changes nothing. A settings file that is not valid JSON is left
    /// alone, with the error.
    #[command(name = "claude-code")]
    ClaudeCode(AgentSetupArgs),
    /// Install gate's hook into Codex's hooks file (.codex/hooks.json).
    Codex(AgentSetupArgs),
    /// Install gate's hook into Gemini CLI's settings (.gemini/settings.json).
    Gemini(AgentSetupArgs),
    /// Install gate's hook into Cursor's hooks file (.cursor/hooks.json), failing closed.
    Cursor(AgentSetupArgs),
    /// Make the shared spool for approvals on this machine, and the system policy naming it.
    ///
    /// Run once as root (`sudo gate setup local`): creates the group (default `gate`) if
    /// missing, the spool directory (owner root, that group, mode 3770: sticky and setgid, no
    /// access for others) and a system policy file defining the backend `local` with that spool.
    /// Running it again changes nothing and says so. Then add requesters and approvers to the
    /// group (`sudo usermod -aG gate NAME`; it applies from their next login).
    Local {
        /// The group whose members may ask and answer (made with `groupadd --system` if missing).
        #[arg(long, value_name = "NAME", default_value = "gate")]
        group: String,
        /// The spool directory.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/gate/spool")]
        spool: PathBuf,
        /// The system policy file to write (default: local-spool.yaml in the system policy
        /// directory, /etc/gate/policy.d).
        #[arg(long, value_name = "FILE")]
        policy_file: Option<PathBuf>,
        /// Say what would be done; change nothing (needs no root).
        #[arg(long)]
        dry_run: bool,
        /// Also print what was done as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Which records `gate log show`, `tail` and `export` take. A time is RFC 3339
/// (`2026-11-28T10:00:00Z`, `2026-11-28T11:00:00+01:00`), a date (`2026-11-28`: that day's
/// start, UTC, as the log's times are) or a duration meaning that long ago (`10m`, `2h`, `7d`).
#[derive(Debug, Args, Clone, Default)]
pub struct LogFilter {
    /// Only records at or after TIME (RFC 3339, a UTC date such as 2026-11-28, or a duration
    /// ago such as 10m or 2h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records before TIME (same forms as `--since`; a date means that day's start).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only records of this request: its full id, the 12-character short id the table shows
    /// (any unique suffix), or a unique prefix.
    #[arg(long, value_name = "ID")]
    pub request: Option<String>,
    /// Only requests made by this user (the requester's user name as recorded).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only requests with this outcome, as the decision records spell it.
    #[arg(long, value_enum, value_name = "OUTCOME")]
    pub outcome: Option<OutcomeFilter>,
    /// Only requests a rule of this name matched.
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
}

/// A decision record's `outcome`, for `--outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutcomeFilter {
    Allowed,
    Confirmed,
    Approved,
    Denied,
    Refused,
    #[value(name = "timed_out", alias = "timed-out")]
    TimedOut,
    Cancelled,
    Error,
}

impl OutcomeFilter {
    /// The spelling of `decision.outcome` in the records.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeFilter::Allowed => "allowed",
            OutcomeFilter::Confirmed => "confirmed",
            OutcomeFilter::Approved => "approved",
            OutcomeFilter::Denied => "denied",
            OutcomeFilter::Refused => "refused",
            OutcomeFilter::TimedOut => "timed_out",
            OutcomeFilter::Cancelled => "cancelled",
            OutcomeFilter::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[cfg(test)]
mod tests {
    use super::OutcomeFilter;
    use crate::run::Outcome;

    /// `--outcome` takes exactly the words the decision records use, and every one of them.
    #[test]
    fn outcome_filter_spells_every_recorded_outcome() {
        use clap::ValueEnum;
        let recorded = [
            Outcome::Allowed,
            Outcome::Confirmed,
            Outcome::Approved,
            Outcome::Denied,
            Outcome::Refused,
            Outcome::TimedOut,
            Outcome::Cancelled,
            Outcome::Error,
        ]
        .map(|o| o.as_str());
        let mut ours: Vec<&str> = OutcomeFilter::value_variants()
            .iter()
            .map(|o| o.as_str())
            .collect();
        ours.sort();
        let mut want = recorded.to_vec();
        want.sort();
        assert_eq!(ours, want);
        for o in OutcomeFilter::value_variants() {
            let name = o.to_possible_value().unwrap();
            assert_eq!(name.get_name(), o.as_str(), "the value clap takes");
        }
    }
}
