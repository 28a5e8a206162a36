//! `gate doctor`: one line per thing a working set-up needs — the policy files and their trust
//! tier, the system tier's ownership, the audit log and key, the keyring, every backend and
//! sink, agent hooks and shims — each `ok`, `warn` or `fail`, with a hint where there is an
//! obvious next step. It changes nothing (no log, key or directory is made) and exits 1 when
//! any check fails. Hooks and shims are only as strong as a root-owned system policy: without
//! one, whatever runs as the user (an agent included) can edit the policy that judges it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::{Env, SYSTEM_POLICY_DIR};
use crate::error::Error;
use crate::output::{Output, Tone};
use crate::policy::{BackendKind, Policy, PolicyError, SinkSpec, Source, Tier};
use crate::shim::{self, GateBinary};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    pub hint: Option<String>,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check {
        check: name.into(),
        status,
        detail: detail.into(),
        hint: None,
    }
}

impl Check {
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

/// What doctor says under every report, and in the JSON as `note`.
pub const NOTE: &str = "agent hooks and shims are only as strong as a root-owned system policy: \
without one, whatever runs as you (an agent included) can edit the policy, PATH and settings \
that route commands through gate";

/// Runs every check and reports them; exit 1 when one fails.
pub fn doctor(
    env: &Env,
    out: &Output,
    cli_policy: &[PathBuf],
    shim_dir: Option<PathBuf>,
    json: bool,
) -> Result<i32, Error> {
    let checks = run_checks(env, cli_policy, shim_dir);
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if json {
        let v = serde_json::json!({ "ok": !failed, "checks": checks, "note": NOTE });
        out.data(&v.to_string());
    } else {
        for c in &checks {
            let tone = match c.status {
                Status::Ok => Tone::Good,
                Status::Warn => Tone::Caution,
                Status::Fail => Tone::Bad,
            };
            let label = out.paint(tone, &format!("{:<4}", c.status.as_str()));
            out.text_toned(&[(None, &format!("{label}  {}: {}", c.check, c.detail))]);
            if let Some(h) = &c.hint {
                out.text(&format!("      hint: {h}"));
            }
        }
        out.text(&format!("note: {NOTE}"));
    }
    Ok(if failed { 1 } else { 0 })
}

/// Every check, in the order the report shows them.
pub fn run_checks(env: &Env, cli_policy: &[PathBuf], shim_dir: Option<PathBuf>) -> Vec<Check> {
    let mut checks = Vec::new();
    let policy = policy_checks(env, cli_policy, &mut checks);
    let policy = policy.as_ref();
    checks.push(log_check(env, policy));
    checks.push(key_check(env, policy));
    keyring_checks(env, policy, &mut checks);
    if let Some(p) = policy {
        backend_checks(env, p, &mut checks);
        sink_checks(p, &mut checks);
    }
    hook_checks(env, &mut checks);
    shim_checks(
        env,
        &shim_dir.unwrap_or_else(|| super::shim::default_dir(env)),
        &mut checks,
    );
    checks
}

/// Where an added file comes from: the user's, `GATE_POLICY` or `--policy`.
fn added_kind(env: &Env, cli: &[PathBuf], path: &Path) -> &'static str {
    if cli.iter().any(|c| c == path) {
        "--policy"
    } else if env.user_policy().as_deref() == Some(path) {
        "user"
    } else {
        "GATE_POLICY"
    }
}

fn policy_checks(env: &Env, cli: &[PathBuf], checks: &mut Vec<Check>) -> Option<Policy> {
    let sources: Vec<Source> = match env.policy_sources(cli) {
        Ok(s) => s,
        Err(e @ PolicyError::Unsafe { .. }) => {
            checks.push(
                check("system tier", Status::Fail, e.to_string()).hint(format!(
                    "make {SYSTEM_POLICY_DIR}, the directories above it and its files root's, \
                     writable by nobody else: sudo chown root: FILE && sudo chmod go-w FILE"
                )),
            );
            return None;
        }
        Err(e) => {
            checks.push(check("policy", Status::Fail, e.to_string()));
            return None;
        }
    };
    for s in &sources {
        let tier = match s.tier {
            Tier::System => "system",
            Tier::Added => added_kind(env, cli, &s.path),
        };
        let c = match std::fs::read_to_string(&s.path) {
            Ok(_) => check(
                "policy file",
                Status::Ok,
                format!("{} ({tier} tier)", s.path.display()),
            ),
            Err(e) => check(
                "policy file",
                Status::Fail,
                format!("{} ({tier} tier): cannot read it: {e}", s.path.display()),
            ),
        };
        checks.push(c);
    }
    let system = sources.iter().filter(|s| s.tier == Tier::System).count();
    checks.push(if system > 0 {
        check(
            "system tier",
            Status::Ok,
            format!(
                "{system} file(s) in {SYSTEM_POLICY_DIR}, owned by root and writable by nobody else"
            ),
        )
    } else {
        check(
            "system tier",
            Status::Warn,
            format!(
                "none: no policy file in {SYSTEM_POLICY_DIR}, so your own files are the top of trust and anything running as you can change them"
            ),
        )
        .hint(format!(
            "put the policy that must hold into {SYSTEM_POLICY_DIR}/ as root (owner root, mode 0644)"
        ))
    });
    match Policy::load_sources(&sources) {
        Ok(p) if sources.is_empty() => {
            checks.push(
                check(
                    "policy",
                    Status::Warn,
                    format!(
                        "no policy file, so every command is allowed (looked for {})",
                        env.policy_places()
                    ),
                )
                .hint("copy an example from gate's `policies/` directory and check it with `gate policy lint`"),
            );
            Some(p)
        }
        Ok(p) => {
            checks.push(check(
                "policy",
                Status::Ok,
                format!(
                    "{} file(s) load; {} rule(s); default decision `{}`",
                    sources.len(),
                    p.rules.len(),
                    p.default_decision.as_str()
                ),
            ));
            Some(p)
        }
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_owned();
            checks.push(
                check("policy", Status::Fail, format!("does not load: {first}"))
                    .hint("`gate policy lint` shows every problem with its place"),
            );
            None
        }
    }
}

/// Permission bits others than the owner have.
fn mode_of(m: &std::fs::Metadata) -> u32 {
    m.permissions().mode() & 0o7777
}

/// Whether the calling user may access `path` as `how` (the kernel's answer, root included).
fn can(path: &Path, how: nix::unistd::AccessFlags) -> bool {
    nix::unistd::access(path, how).is_ok()
}

/// The nearest directory at or above `path` that exists.
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|a| std::fs::metadata(a).is_ok_and(|m| m.is_dir()))
        .map(Path::to_path_buf)
}

fn log_check(env: &Env, policy: Option<&Policy>) -> Check {
    use nix::unistd::AccessFlags;
    let path = env.audit_path(policy);
    let name = "audit log";
    let shown = path.display().to_string();
    let dir_problem = |dir: &Path| {
        std::fs::metadata(dir).ok().and_then(|m| {
            (m.uid() != nix::unistd::Uid::current().as_raw() && m.uid() != 0
                || mode_of(&m) & 0o022 != 0)
                .then(|| {
                    format!(
                        "its directory {} can be written by others (mode {:04o}): gate refuses such a log",
                        dir.display(),
                        mode_of(&m)
                    )
                })
        })
    };
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => check(
            name,
            Status::Fail,
            format!("{shown} is a symlink: gate never follows one to its log"),
        ),
        Ok(m) if !m.is_file() => check(name, Status::Fail, format!("{shown} is not a file")),
        Ok(m) => {
            if !can(&path, AccessFlags::R_OK | AccessFlags::W_OK) {
                return check(
                    name,
                    Status::Fail,
                    format!("{shown} cannot be read and written by you (mode {:04o})", mode_of(&m)),
                )
                .hint("every gated run appends to it: fix its owner or mode, or point `GATE_LOG` elsewhere");
            }
            if let Some(p) = path.parent().and_then(dir_problem) {
                return check(name, Status::Fail, format!("{shown}: {p}"));
            }
            if mode_of(&m) & 0o077 != 0 {
                return check(
                    name,
                    Status::Warn,
                    format!("{shown}: mode {:04o}, others can read it", mode_of(&m)),
                )
                .hint(format!("chmod 600 {shown}"));
            }
            check(
                name,
                Status::Ok,
                format!("{shown} (mode {:04o}, {} bytes)", mode_of(&m), m.len()),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing_ancestor(&path) {
            Some(dir)
                if std::fs::metadata(&dir).is_ok_and(|m| m.is_dir())
                    && can(&dir, AccessFlags::W_OK | AccessFlags::X_OK) =>
            {
                match path.parent().filter(|p| p.exists()).and_then(dir_problem) {
                    Some(p) => check(name, Status::Fail, format!("{shown}: {p}")),
                    None => check(
                        name,
                        Status::Ok,
                        format!(
                            "{shown} does not exist yet; the first gated run makes it (mode 0600)"
                        ),
                    ),
                }
            }
            Some(dir) => check(
                name,
                Status::Fail,
                format!(
                    "{shown} cannot be made: {} is not writable by you",
                    dir.display()
                ),
            )
            .hint("point `GATE_LOG` (or the policy's `audit.path`) at a place you can write"),
            None => check(name, Status::Fail, format!("{shown} cannot be made")),
        },
        Err(e) => check(name, Status::Fail, format!("{shown}: {e}"))
            .hint("point `GATE_LOG` (or the policy's `audit.path`) at a place you can write"),
    }
}

fn key_check(env: &Env, policy: Option<&Policy>) -> Check {
    use nix::unistd::AccessFlags;
    let path = env.key_path(policy);
    let shown = path.display().to_string();
    let name = "signing key";
    match std::fs::symlink_metadata(&path) {
        Ok(m) if !m.is_file() => check(name, Status::Fail, format!("{shown} is not a plain file")),
        Ok(m) if !can(&path, AccessFlags::R_OK) => check(
            name,
            Status::Fail,
            format!(
                "{shown} cannot be read by you (mode {:04o}): checkpoints cannot be signed",
                mode_of(&m)
            ),
        ),
        Ok(m) if mode_of(&m) & 0o077 != 0 => check(
            name,
            Status::Fail,
            format!(
                "{shown}: mode {:04o}, others can read the key that signs your checkpoints",
                mode_of(&m)
            ),
        )
        .hint(format!(
            "chmod 600 {shown}, then consider a new key: anyone who read it can sign"
        )),
        Ok(m) => check(
            name,
            Status::Ok,
            format!("{shown} (mode {:04o})", mode_of(&m)),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => check(
            name,
            Status::Ok,
            format!("{shown} does not exist yet; the first gated run (or `gate log key`) makes it"),
        ),
        Err(e) => check(name, Status::Fail, format!("{shown}: {e}")),
    }
}

/// The server URLs the set-up talks to: `GATE_SERVER`, server backends and server sinks.
fn servers(env: &Env, policy: Option<&Policy>) -> Vec<String> {
    let mut urls: Vec<String> = env.server.iter().cloned().collect();
    if let Some(p) = policy {
        for b in p.backends.values() {
            if let BackendKind::Server { url, .. } = b {
                urls.push(url.clone());
            }
        }
        for s in &p.audit_sinks {
            if let SinkSpec::Server { url, .. } = s {
                urls.push(url.clone());
            }
        }
    }
    let mut seen = Vec::new();
    for u in urls {
        let u = u.trim_end_matches('/').to_owned();
        if !seen.contains(&u) {
            seen.push(u);
        }
    }
    seen
}

fn keyring_checks(env: &Env, policy: Option<&Policy>, checks: &mut Vec<Check>) {
    checks.push(match crate::secrets::keyring_available() {
        Ok(()) => check("keyring", Status::Ok, "the OS keyring answers"),
        Err(why) => check(
            "keyring",
            Status::Warn,
            format!("no OS keyring ({why}); `gate login` stores tokens in a 0600 file instead"),
        ),
    });
    for url in servers(env, policy) {
        let name = format!("token {url}");
        checks.push(if env.token.is_some() {
            check(name, Status::Ok, "from `GATE_TOKEN`")
        } else if env.server_token(&url).is_some() {
            check(name, Status::Ok, "stored (`gate login`)")
        } else {
            check(name, Status::Warn, "no token stored for this server")
                .hint(format!("gate login {url}"))
        });
    }
}

fn client() -> Option<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .ok()
}

/// `GET URL/healthz`: ok on 200; its TLS checked against `ca` when given.
fn healthz(url: &str, ca: Option<&std::path::Path>) -> Result<String, String> {
    let c = match ca {
        None => client(),
        Some(ca) => {
            let trust = crate::http::Trust::Ca(ca.to_owned());
            let b = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(3))
                .connect_timeout(Duration::from_secs(3));
            Some(
                crate::http::trusting(b, &trust)
                    .map_err(|e| e.to_string())?
                    .build()
                    .map_err(|e| crate::http::error_chain(&e))?,
            )
        }
    };
    let Some(c) = c else {
        return Err("no HTTP client".into());
    };
    let target = format!("{}/healthz", url.trim_end_matches('/'));
    match c.get(&target).send() {
        Ok(r) if r.status().is_success() => Ok(format!("{target} answers {}", r.status().as_u16())),
        Ok(r) => Err(format!("{target} answers {}", r.status())),
        Err(e) => Err(format!("{target}: {}", crate::http::error_chain(&e))),
    }
}

/// A TCP connection to `host:port` within 3 s.
fn connect(host_port: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = host_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host_port}: {e}"))?
        .collect();
    let mut last = format!("{host_port} names no address");
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    Err(last)
}

/// `host:port` of a URL, with the scheme's default port.
fn host_port(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let port = u.port_or_known_default()?;
    let host = u.host_str()?;
    Some(format!("{host}:{port}"))
}

fn backend_checks(env: &Env, policy: &Policy, checks: &mut Vec<Check>) {
    for (name, b) in &policy.backends {
        let label = format!("backend {name} ({})", b.kind());
        checks.push(match b {
            BackendKind::Server { urls, ca, .. } => {
                // Replicas: one that answers keeps approvals working, so the others warn.
                let (up, down): (Vec<_>, Vec<_>) = urls
                    .iter()
                    .map(|u| healthz(u, ca.as_deref()))
                    .partition(Result::is_ok);
                let said = |v: Vec<Result<String, String>>| {
                    v.into_iter()
                        .map(|r| r.unwrap_or_else(|e| e))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                match (up.is_empty(), down.is_empty()) {
                    (_, true) => check(label, Status::Ok, said(up)),
                    (false, false) => check(label, Status::Warn, said(down))
                        .hint("approvals continue on the replicas that answer"),
                    (true, false) => check(label, Status::Fail, said(down))
                        .hint("approvals routed here fail closed (75) until it answers"),
                }
            }
            BackendKind::Local { .. } => local_check(env, policy, name, label),
            BackendKind::Slack { api_url, .. } => {
                let url = api_url.as_deref().unwrap_or("https://slack.com/api/");
                match host_port(url).map(|h| connect(&h)) {
                    Some(Ok(())) => check(label, Status::Ok, format!("{url} reachable")),
                    Some(Err(e)) => check(label, Status::Fail, e),
                    None => check(label, Status::Fail, format!("`{url}` is not a URL")),
                }
            }
            BackendKind::Teams { .. } => check(
                label,
                Status::Ok,
                "configured (the webhook is a secret; it is not called by doctor)",
            ),
        });
    }
}

/// The local spool: there, and reachable by somebody other than you who may approve (the
/// check the waiting gate makes before it waits; see `gate setup local`).
fn local_check(env: &Env, policy: &Policy, name: &str, label: String) -> Check {
    use crate::approval::local::{Reach, Spool};
    use crate::policy::{Clause, Requirement};
    let spool = env.spool_path(Some(policy), Some(name));
    if !spool.is_dir() {
        return check(
            label,
            Status::Fail,
            format!("the spool {} does not exist", spool.display()),
        )
        .hint("sudo gate setup local");
    }
    let anyone = Requirement {
        clauses: vec![Clause {
            rule: "doctor".into(),
            approvers: Vec::new(),
            eligible: None,
            min_approvals: 1,
            groups: Vec::new(),
        }],
        min_approvals: 1,
        allow_requester: false,
        timeout: policy.default_timeout,
        backend: Some(name.to_owned()),
        reuse: None,
    };
    let uid = nix::unistd::Uid::current().as_raw();
    match Spool::new(&spool).reach(&anyone, uid) {
        Ok(r) => match r.reach {
            Reach::Reachable(who) => check(
                label,
                Status::Ok,
                format!(
                    "spool {}; approvers who can reach it: {}",
                    spool.display(),
                    who.join(", ")
                ),
            ),
            Reach::Nobody { .. } | Reach::TooFew { .. } => check(
                label,
                Status::Fail,
                format!(
                    "spool {}: no approver other than you can reach it (group `{}`)",
                    spool.display(),
                    r.group
                ),
            )
            .hint(format!(
                "add approvers to the group: sudo usermod -aG {} NAME",
                r.group
            )),
        },
        Err(e) => check(
            label,
            Status::Fail,
            format!("spool {}: {e}", spool.display()),
        ),
    }
}

fn sink_checks(policy: &Policy, checks: &mut Vec<Check>) {
    for s in &policy.audit_sinks {
        let label = format!("sink {}", s.name());
        checks.push(match s {
            SinkSpec::Server { url, ca } => match healthz(url, ca.as_deref()) {
                Ok(d) => check(label, Status::Ok, d),
                Err(d) => check(label, Status::Fail, d)
                    .hint("records stay pending until it answers (`gate log push` delivers them)"),
            },
            SinkSpec::Syslog { url, .. } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                match scheme {
                    "udp" => check(
                        label,
                        Status::Ok,
                        format!("{url} (UDP: nothing to connect to)"),
                    ),
                    "tcp" | "tcp+tls" => match connect(rest.trim_end_matches('/')) {
                        Ok(()) => check(label, Status::Ok, format!("{url} accepts connections")),
                        Err(e) => check(label, Status::Fail, format!("{url}: {e}")),
                    },
                    _ => check(label, Status::Fail, format!("{url}: unknown scheme")),
                }
            }
            SinkSpec::Http { url, .. } => match host_port(url).map(|h| connect(&h)) {
                Some(Ok(())) => check(label, Status::Ok, format!("{url} accepts connections")),
                Some(Err(e)) => check(label, Status::Fail, format!("{url}: {e}")),
                None => check(label, Status::Fail, format!("`{url}` is not a URL")),
            },
            SinkSpec::File { path } => match existing_ancestor(path) {
                Some(d) if can(&d, nix::unistd::AccessFlags::W_OK) => check(
                    label,
                    Status::Ok,
                    format!("{} can be written", path.display()),
                ),
                _ => check(
                    label,
                    Status::Fail,
                    format!("{} cannot be written by you", path.display()),
                ),
            },
        });
    }
}

/// The agents whose hook settings doctor reads: name, the `gate setup` word, and the settings
/// files (relative to the home directory, or to the working directory when `project`).
/// A settings file: its path, and whether it is relative to the working directory (a
/// project's) rather than the home directory.
type SettingsFile = (&'static str, bool);

const AGENTS: &[(&str, &str, &[SettingsFile])] = &[
    (
        "Claude Code",
        "claude-code",
        &[
            (".claude/settings.json", false),
            (".claude/settings.json", true),
            (".claude/settings.local.json", true),
        ],
    ),
    (
        "Codex",
        "codex",
        &[(".codex/config.toml", false), (".codex/hooks.json", false)],
    ),
    (
        "Gemini CLI",
        "gemini",
        &[
            (".gemini/settings.json", false),
            (".gemini/settings.json", true),
        ],
    ),
    (
        "Cursor",
        "cursor",
        &[(".cursor/hooks.json", false), (".cursor/hooks.json", true)],
    ),
];

/// Whether `text` holds a command that runs `gate hook` (`gate hook ...`, `/usr/bin/gate hook`).
fn runs_gate_hook(text: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(['#', '/']))
        .any(line_runs_gate_hook)
}

fn line_runs_gate_hook(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "\"'`,;[]{}=".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .any(|w| w[0].rsplit('/').next() == Some("gate") && w[1] == "hook")
}

/// A settings file's text, at most its first 4 MiB (a settings file is small; a huge one is
/// not read to the end).
fn read_capped(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(4 << 20)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn hook_checks(env: &Env, checks: &mut Vec<Check>) {
    let cwd = std::env::current_dir().ok();
    for (agent, word, files) in AGENTS {
        let label = format!("hooks {word}");
        let mut found = Vec::new();
        let mut without = Vec::new();
        for (rel, project) in *files {
            let base = if *project {
                cwd.as_ref()
            } else {
                env.home.as_ref()
            };
            let Some(path) = base.map(|b| b.join(rel)) else {
                continue;
            };
            if let Some(text) = read_capped(&path) {
                if runs_gate_hook(&text) {
                    found.push(path.display().to_string());
                } else {
                    without.push(path.display().to_string());
                }
            }
        }
        let home_dir = env
            .home
            .as_ref()
            .map(|h| h.join(files[0].0.split('/').next().unwrap_or_default()));
        checks.push(if !found.is_empty() {
            check(
                label,
                Status::Ok,
                format!("{agent}: `gate hook` in {}", found.join(", ")),
            )
        } else if !without.is_empty() || home_dir.is_some_and(|d| d.is_dir()) {
            let where_ = if without.is_empty() {
                "no settings file names it".to_owned()
            } else {
                format!("not in {}", without.join(", "))
            };
            check(
                label,
                Status::Warn,
                format!("{agent} is set up here but its commands do not go through gate: {where_}"),
            )
            .hint(format!("gate setup {word}"))
        } else {
            check(
                label,
                Status::Ok,
                format!("{agent}: not used here (no settings found)"),
            )
        });
    }
}

fn shim_checks(env: &Env, dir: &Path, checks: &mut Vec<Check>) {
    let shown = dir.display().to_string();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(_) => {
            checks.push(check(
                "shims",
                Status::Ok,
                format!("none ({shown} does not exist)"),
            ));
            return;
        }
    };
    if mode_of(&meta) & 0o022 != 0 {
        checks.push(
            check(
                "shims",
                Status::Fail,
                format!(
                    "{shown} can be written by others (mode {:04o}): they could replace a shim",
                    mode_of(&meta)
                ),
            )
            .hint(format!("chmod go-w {shown}")),
        );
    }
    let Ok(gate) = GateBinary::current() else {
        checks.push(check(
            "shims",
            Status::Fail,
            "cannot tell where the gate binary is",
        ));
        return;
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let dirs = shim::path_dirs(env.path.as_deref(), &cwd);
    let at = dirs.iter().position(|d| canon(d) == canon(dir));
    let rows = match super::shim::listing(env, dir, &gate) {
        Ok(r) => r,
        Err(e) => {
            checks.push(check(
                "shims",
                Status::Fail,
                format!("cannot read {shown}: {e}"),
            ));
            return;
        }
    };
    if rows.is_empty() {
        checks.push(check("shims", Status::Ok, format!("none in {shown}")));
        return;
    }
    if at.is_none() {
        checks.push(
            check(
                "shims",
                Status::Warn,
                format!("{shown} is not on PATH: its shims are never run"),
            )
            .hint(super::shim::path_line(dir)),
        );
    }
    for r in rows {
        let label = format!("shim {}", r.name);
        let c = match (r.kind, &r.shadows) {
            ("foreign", _) => check(
                label,
                Status::Warn,
                format!("{} is not a gate shim", r.path.display()),
            ),
            ("stale", _) => check(label, Status::Warn, "points at a gate binary that is gone")
                .hint(format!("gate shim install {} --dir {shown}", r.name)),
            (_, None) => check(
                label,
                Status::Warn,
                format!("no real `{}` on PATH: it exits 127", r.name),
            ),
            (_, Some(real)) => {
                let real_at = real
                    .parent()
                    .and_then(|p| dirs.iter().position(|d| canon(d) == canon(p)));
                match (at, real_at) {
                    (Some(s), Some(r_at)) if r_at < s => check(
                        label,
                        Status::Warn,
                        format!(
                            "PATH finds {} before the shim: the command is not gated",
                            real.display()
                        ),
                    )
                    .hint(super::shim::path_line(dir)),
                    (Some(_), _) => check(label, Status::Ok, format!("shadows {}", real.display())),
                    (None, _) => check(
                        label,
                        Status::Warn,
                        format!(
                            "would shadow {}, but its directory is not on PATH",
                            real.display()
                        ),
                    ),
                }
            }
        };
        checks.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_a_hook_that_runs_gate() {
        for yes in [
            r#"{"command":"gate hook claude-code"}"#,
            r#"{"command": "/usr/local/bin/gate hook codex", "timeout": 600}"#,
            "command = [\"gate\", \"hook\", \"codex\"]",
            "command = 'gate hook gemini'",
        ] {
            assert!(runs_gate_hook(yes), "{yes}");
        }
        for no in [
            r#"{"command":"./lint.sh"}"#,
            "# gate hook codex, someday",
            "// gate hook cursor",
            r#"{"command":"gatekeeper hook"}"#,
            r#"{"command":"gate check -- hook"}"#,
            "",
        ] {
            assert!(!runs_gate_hook(no), "{no}");
        }
    }
}
