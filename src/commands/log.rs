//! `gate log`: show, tail and export the audit log, verify it, push it to the sinks, print the
//! host's key.

mod export;
mod select;
mod table;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::audit::record::Record;
use crate::config::Env;
use crate::error::Error;
use crate::output::{Output, Tone};
use select::{Filter, Index};

/// `--since`, `--until`, `--request`, `--user`, `--outcome`, `--rule` as given.
#[derive(Debug, Default, Clone)]
pub struct FilterOptions {
    pub since: Option<String>,
    pub until: Option<String>,
    pub request: Option<String>,
    pub user: Option<String>,
    /// A decision record's outcome spelling.
    pub outcome: Option<&'static str>,
    pub rule: Option<String>,
}

pub struct ShowOptions {
    pub json: bool,
    pub filter: FilterOptions,
    pub n: Option<usize>,
    pub path: Option<PathBuf>,
}

/// The log to read: PATH, else the configured one.
fn log_path(env: &Env, given: Option<PathBuf>, cli_policy: &[PathBuf]) -> PathBuf {
    match given {
        Some(p) => p,
        None => {
            // The policy may name the log; an unreadable policy should not hide the log.
            let policy = env.load_policy(cli_policy).ok();
            env.audit_path(policy.as_ref())
        }
    }
}

fn unreadable_log(path: &Path, e: std::io::Error) -> Error {
    Error::config_hint(
        format!("cannot read the audit log `{}`: {e}", path.display()),
        "gate writes it on the first run; `GATE_LOG` or `audit.path` choose where",
    )
}

/// The records of the log; a line that is not a record is reported and skipped.
fn read_records(out: &Output, path: &Path) -> Result<Vec<Record>, Error> {
    let rows = crate::audit::log::read_all(path).map_err(|e| unreadable_log(path, e))?;
    let mut records = Vec::new();
    for r in rows {
        match r {
            Ok(rec) => records.push(rec),
            Err(why) => out.warn(&format!("{}: unreadable record at {why}", path.display())),
        }
    }
    Ok(records)
}

/// Resolves the filters against the log: times to instants, `--request` to one full id.
fn resolve(o: &FilterOptions, records: &[Record], path: &Path) -> Result<Filter, Error> {
    let now = SystemTime::now();
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| select::parse_time(flag, s, now))
            .transpose()
    };
    Ok(Filter {
        since: time("--since", &o.since)?,
        until: time("--until", &o.until)?,
        request: o
            .request
            .as_deref()
            .map(|r| select::resolve_request(records, r, &path.display().to_string()))
            .transpose()?,
        user: o.user.clone(),
        outcome: o.outcome,
        rule: o.rule.clone(),
    })
}

/// The table of `records`, each row with what came before it as context.
fn print_rows(out: &Output, all: &[Record], shown: &[&Record]) {
    let mut ctx = table::Context::default();
    for r in all {
        ctx.learn(r);
    }
    let mut lines = vec![table::header()];
    lines.extend(shown.iter().map(|r| table::row(r, &ctx)));
    out.text(&lines.join("\n"));
}

fn print_json(out: &Output, shown: &[&Record]) {
    for r in shown {
        out.data(&r.to_line().unwrap_or_default());
    }
}

/// The records `filter` takes, the last `n` of them.
fn pick<'a>(records: &'a [Record], filter: &Filter, n: Option<usize>) -> Vec<&'a Record> {
    let index = Index::of(records);
    let mut shown: Vec<&Record> = records.iter().filter(|r| filter.takes(r, &index)).collect();
    if let Some(n) = n {
        let skip = shown.len().saturating_sub(n);
        shown.drain(..skip);
    }
    shown
}

/// `gate log show`: exit 0 (also when filters match nothing: the table is empty and stderr says
/// so); 1 when `--request` names no request of the log.
pub fn show(env: &Env, out: &Output, o: ShowOptions, cli_policy: &[PathBuf]) -> Result<i32, Error> {
    let path = log_path(env, o.path, cli_policy);
    let records = read_records(out, &path)?;
    let filter = resolve(&o.filter, &records, &path)?;
    let shown = pick(&records, &filter, o.n);
    if shown.is_empty() && filter.is_set() {
        out.info("no records match the filters");
    }
    if o.json {
        print_json(out, &shown);
    } else {
        print_rows(out, &records, &shown);
    }
    Ok(0)
}

pub struct TailOptions {
    pub json: bool,
    pub follow: bool,
    pub filter: FilterOptions,
    pub n: usize,
    pub path: Option<PathBuf>,
}

/// How often `--follow` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// `--follow`'s status after Ctrl-C: 128 + SIGINT, as a shell reports `tail -f` ended by it.
const INTERRUPTED: i32 = 130;

/// `gate log tail`: the last N records, and with `--follow` every record appended after them
/// (by any process), until Ctrl-C (exit 130) or until the reader of stdout goes away (exit 0).
pub fn tail(env: &Env, out: &Output, o: TailOptions, cli_policy: &[PathBuf]) -> Result<i32, Error> {
    let path = log_path(env, o.path, cli_policy);
    let mut follower = Follower::default();
    let mut records = follower
        .read_new(out, &path)
        .map_err(|e| unreadable_log(&path, e))?;
    let filter = resolve(&o.filter, &records, &path)?;
    let shown = pick(&records, &filter, Some(o.n));
    if shown.is_empty() && filter.is_set() && !o.follow {
        out.info("no records match the filters");
    }
    if o.json {
        print_json(out, &shown);
    } else {
        print_rows(out, &records, &shown);
    }
    if !o.follow {
        return Ok(0);
    }
    let mut index = Index::of(&records);
    let mut ctx = table::Context::default();
    for r in &records {
        ctx.learn(r);
    }
    records.clear();
    // Ctrl-C ends it with the status a shell reports for `tail -f` ended the same way (130); a
    // flag, so that a record being printed is printed whole.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGINT,
        std::sync::Arc::clone(&interrupted),
    );
    loop {
        for _ in 0..FOLLOW_EVERY.as_millis() / 20 {
            if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(INTERRUPTED);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let new = match follower.read_new(out, &path) {
            Ok(new) => new,
            // Moved away or not there for a moment (rotation): look again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unreadable_log(&path, e)),
        };
        for r in &new {
            index.learn(r);
            ctx.learn(r);
            if !filter.takes(r, &index) {
                continue;
            }
            let line = if o.json {
                r.to_line().unwrap_or_default()
            } else {
                crate::output::escape_text(&table::row(r, &ctx)).into_owned()
            };
            if !out.data_exact(&format!("{line}\n")) {
                return Ok(0);
            }
        }
    }
}

/// Reads the records appended to a log since the last look: complete lines only (a line being
/// written is read once its newline is there).
#[derive(Default)]
struct Follower {
    offset: u64,
    line: u64,
}

impl Follower {
    fn read_new(&mut self, out: &Output, path: &Path) -> std::io::Result<Vec<Record>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            out.warn(&format!(
                "`{}` is shorter than before (truncated or replaced): following it from its start",
                path.display()
            ));
            self.offset = 0;
            self.line = 0;
        }
        if len == self.offset {
            return Ok(Vec::new());
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(len - self.offset).read_to_end(&mut buf)?;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        self.offset += end as u64 + 1;
        let mut records = Vec::new();
        for line in buf[..end].split(|&b| b == b'\n') {
            self.line += 1;
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => records.push(r),
                Err(e) => out.warn(&format!(
                    "{}: unreadable record at line {}: {e}",
                    path.display(),
                    self.line
                )),
            }
        }
        Ok(records)
    }
}

pub struct ExportOptions {
    pub csv: bool,
    pub filter: FilterOptions,
    pub output: Option<PathBuf>,
    pub path: Option<PathBuf>,
}

/// `gate log export`: one row per request that passes the filters (its decision's time for
/// `--since`/`--until`), as CSV or a JSON array, on stdout or into a new file.
pub fn export(
    env: &Env,
    out: &Output,
    o: ExportOptions,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    let path = log_path(env, o.path, cli_policy);
    let records = read_records(out, &path)?;
    let filter = resolve(&o.filter, &records, &path)?;
    let index = Index::of(&records);
    let rows: Vec<export::RequestRow> = export::rows(&records)
        .into_iter()
        .filter(|row| {
            filter.in_time(&row.decided_at)
                && filter.takes_request(&row.request_id, index.get(&row.request_id))
        })
        .collect();
    if rows.is_empty() {
        out.info("no requests match the filters");
    }
    let text = if o.csv {
        export::csv(&rows)
    } else {
        let mut s = serde_json::to_string_pretty(&rows).map_err(Error::internal)?;
        s.push('\n');
        s
    };
    match &o.output {
        None => {
            // A closed pipe is not an error.
            let _ = out.data_exact(&text);
        }
        Some(file) => write_new(file, text.as_bytes())?,
    }
    Ok(0)
}

/// Writes an export into a file that did not exist (mode 0600, never through a link): evidence
/// is not written over something else.
fn write_new(file: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(file)
        .map_err(|e| {
            Error::config_hint(
                format!("cannot create `{}`: {e}", file.display()),
                "`-o` makes a new file: name one that does not exist yet",
            )
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::config(format!("cannot write `{}`: {e}", file.display())))
}

pub struct VerifyOptions {
    pub path: Option<PathBuf>,
    pub key: Option<String>,
    pub checkpoint: Option<PathBuf>,
    pub json: bool,
    pub threads: usize,
    pub remote: Option<String>,
    /// `--server-key`: gate server decision keys (vkeys or files holding them).
    pub server_keys: Vec<String>,
}

fn configured_log(env: &Env, cli_policy: &[PathBuf]) -> (PathBuf, Option<crate::policy::Policy>) {
    // The policy may name the log; an unreadable policy should not hide the log.
    let policy = env.load_policy(cli_policy).ok();
    (env.audit_path(policy.as_ref()), policy)
}

/// The gate servers whose decisions verify trusts: `--server-key` values (a vkey or a file
/// holding one) and the policy's server backends (their `key` and their names).
fn server_trust(
    policy: Option<&crate::policy::Policy>,
    given: &[String],
) -> Result<crate::audit::verify::ServerTrust, crate::audit::verify::VerifyError> {
    use crate::audit::note::NoteVerifier;
    use crate::audit::verify::{ServerTrust, VerifyError};
    let mut trust = ServerTrust::default();
    for k in given {
        let text = if std::path::Path::new(k).is_file() {
            std::fs::read_to_string(k).map_err(|e| {
                VerifyError::Unusable(format!("cannot read the key file `{k}`: {e}"))
            })?
        } else {
            k.clone()
        };
        let key = NoteVerifier::parse(text.trim())
            .map_err(|e| VerifyError::Unusable(format!("bad `--server-key` `{k}`: {e}")))?;
        trust.keys.push(key);
    }
    for (name, b) in policy.map(|p| &p.backends).into_iter().flatten() {
        if let crate::policy::BackendKind::Server { key, .. } = b {
            trust
                .backends
                .insert(name.clone(), NoteVerifier::parse(key).ok());
        }
    }
    Ok(trust)
}

/// `gate log verify`: exit 0 intact, 1 tampered, 2 unusable.
pub fn verify(
    env: &Env,
    out: &Output,
    o: VerifyOptions,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    use crate::audit::verify::{Options, VerifyError, verify_with_servers};
    let (configured, policy) = configured_log(env, cli_policy);
    let path = o.path.unwrap_or(configured);
    let report = match server_trust(policy.as_ref(), &o.server_keys)
        .and_then(|servers| {
            verify_with_servers(
                &path,
                &Options {
                    key: o.key.as_deref(),
                    checkpoint: o.checkpoint.as_deref(),
                    threads: o.threads,
                },
                &servers,
            )
        })
        .and_then(|r| match &o.remote {
            Some(url) => compare_remote(env, &path, url, r),
            None => Ok(r),
        }) {
        Ok(r) => r,
        Err(VerifyError::Unusable(m)) => {
            if o.json {
                out.data(
                    &serde_json::json!({ "status": "unusable", "path": path, "error": m })
                        .to_string(),
                );
            } else {
                out.error(&m);
            }
            return Ok(2);
        }
    };
    if o.json {
        out.data(&serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        let mut lines = Vec::new();
        for p in &report.problems {
            let at = match (p.seq, p.line) {
                (Some(s), Some(l)) => format!("seq {s} (line {l})"),
                (Some(s), None) => format!("seq {s}"),
                (None, Some(l)) => format!("line {l}"),
                (None, None) => "log".to_owned(),
            };
            lines.push(format!("{at}: {}: {}", p.code, p.reason));
        }
        for w in &report.warnings {
            lines.push(format!("{}: {w}", out.paint(Tone::Caution, "warning")));
        }
        let tone = match report.verdict {
            crate::audit::verify::Verdict::Intact => Tone::Good,
            _ => Tone::Bad,
        };
        lines.push(out.paint(tone, &summary(&report)));
        out.data(&lines.join("\n"));
    }
    Ok(if report.problems.is_empty() { 0 } else { 1 })
}

/// The last line of the human report: INTACT (and, with `--remote`, that the server's copy
/// matched), TAMPERED, or COMPLIANCE VIOLATION — a log that holds but records a run without
/// the approvals its policy demanded.
fn summary(report: &crate::audit::verify::Report) -> String {
    use crate::audit::verify::{Finding, Verdict};
    let count = |finding: Finding| {
        let n = report
            .problems
            .iter()
            .filter(|p| p.finding() == finding)
            .count();
        format!("{n} problem{}", if n == 1 { "" } else { "s" })
    };
    let first = report
        .first_bad_seq
        .map(|s| format!(", first at seq {s}"))
        .unwrap_or_default();
    match report.verdict {
        Verdict::Intact => {
            let anchor = match &report.checkpoint {
                Some(c) => format!(
                    "; checkpoint at {} records signed by {}",
                    c.count, c.signed_by
                ),
                None => String::new(),
            };
            let remote = match &report.remote {
                Some(r) if r.compared > 0 => format!(
                    "; the copy on {} matched ({} records compared)",
                    r.url, r.compared
                ),
                _ => String::new(),
            };
            format!(
                "INTACT: {} records in log {} ({} decisions, {} results, {} approved runs checked{}){anchor}{remote}",
                report.records,
                report.log_id.as_deref().unwrap_or("?"),
                report.stats.decisions,
                report.stats.results,
                report.stats.approved_runs,
                match report.stats.repairs {
                    0 => String::new(),
                    n => format!(
                        ", {n} crash repair{} recorded",
                        if n == 1 { "" } else { "s" }
                    ),
                }
            )
        }
        Verdict::Tampered => format!(
            "TAMPERED: {}{first} in {} records of {}{}",
            count(Finding::Tampering),
            report.records,
            report.path,
            if report.compliance_violation {
                format!("; COMPLIANCE VIOLATION too: {}", count(Finding::Compliance))
            } else {
                String::new()
            }
        ),
        Verdict::ComplianceViolation => format!(
            "COMPLIANCE VIOLATION: {}{first} in {} records of {}: the log is unaltered, \
             and records a run without the approvals its policy demands",
            count(Finding::Compliance),
            report.records,
            report.path
        ),
    }
}

/// `gate log key`: the verifier key of this host's signing key.
pub fn key(env: &Env, out: &Output, cli_policy: &[PathBuf]) -> Result<i32, Error> {
    let (_, policy) = configured_log(env, cli_policy);
    let path = env.key_path(policy.as_ref());
    let signer = crate::audit::key::load_or_create(&path, &crate::identity::host_name())
        .map_err(|e| Error::config(e.to_string()))?;
    out.data(&signer.verifier().to_vkey());
    Ok(0)
}

/// Compares the local log with the copy a gate server holds and adds what differs to `report`:
/// records missing on the server (a warning), records the server holds that the local log no
/// longer has (truncation or rollback), and any seq whose hash differs (divergence).
fn compare_remote(
    env: &Env,
    path: &std::path::Path,
    url: &str,
    mut report: crate::audit::verify::Report,
) -> Result<crate::audit::verify::Report, crate::audit::verify::VerifyError> {
    use crate::audit::verify::{Problem, VerifyError};
    let unusable = |m: String| VerifyError::Unusable(m);
    let url = url.trim_end_matches('/');
    let log_id = report
        .log_id
        .clone()
        .ok_or_else(|| unusable("the local log has no genesis to name it".into()))?;
    let token = env.server_token(url).ok_or_else(|| {
        unusable(format!(
            "no token for {url} (run `gate login {url}` or set `GATE_TOKEN`)"
        ))
    })?;
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| unusable(e.to_string()))?;
    let get = |u: String| -> Result<reqwest::blocking::Response, VerifyError> {
        let r = http
            .get(&u)
            .bearer_auth(token.expose())
            .send()
            .map_err(|e| unusable(format!("cannot reach {url}: {e}")))?;
        Ok(r)
    };
    let head = get(format!("{url}/v1/logs/{log_id}/head"))?;
    if head.status().as_u16() == 404 {
        report.warnings.push(format!(
            "the server {url} holds no copy of log {log_id}: none of its {} records were delivered",
            report.records
        ));
        report.remote = Some(crate::audit::verify::RemoteCheck {
            url: url.to_owned(),
            server_records: 0,
            compared: 0,
        });
        return Ok(report);
    }
    if !head.status().is_success() {
        return Err(unusable(format!(
            "{url} answered {} for the log head",
            head.status()
        )));
    }
    let head: serde_json::Value = head.json().map_err(|e| unusable(e.to_string()))?;
    let remote_count = head["count"].as_u64().unwrap_or(0);
    // The server's copy, page by page.
    let mut remote: Vec<String> = Vec::new();
    while (remote.len() as u64) < remote_count {
        let page = get(format!(
            "{url}/v1/logs/{log_id}/records?from={}&limit=50000",
            remote.len()
        ))?
        .text()
        .map_err(|e| unusable(e.to_string()))?;
        let before = remote.len();
        for line in page.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| unusable(format!("the server sent a bad record: {e}")))?;
            remote.push(v["hash"].as_str().unwrap_or_default().to_owned());
        }
        if remote.len() == before {
            break;
        }
    }
    let local: Vec<String> = std::fs::read(path)
        .map_err(|e| unusable(e.to_string()))?
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["hash"].as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    if let Some(seq) = local.iter().zip(&remote).position(|(a, b)| a != b) {
        report.problems.push(Problem {
            seq: Some(seq as u64),
            line: Some(seq as u64 + 1),
            code: "diverges_from_server",
            reason: format!(
                "seq {seq} differs from the copy {url} holds: the local log was rewritten from here"
            ),
        });
    }
    if (local.len() as u64) < remote_count {
        report.problems.push(Problem {
            seq: Some(local.len() as u64),
            line: None,
            code: "local_truncated",
            reason: format!(
                "{url} holds {remote_count} records but the local log has {}: records {}..{} were cut off or rolled back",
                local.len(),
                local.len(),
                remote_count - 1
            ),
        });
    } else if (local.len() as u64) > remote_count {
        report.warnings.push(format!(
            "records {remote_count}..{} are not on {url} yet (`gate log push` delivers them)",
            local.len() - 1
        ));
    }
    report.remote = Some(crate::audit::verify::RemoteCheck {
        url: url.to_owned(),
        server_records: remote_count,
        compared: local.len().min(remote.len()) as u64,
    });
    report.settle();
    Ok(report)
}

/// `gate log push`: deliver what the sinks have not acknowledged. Exit 0 when every sink is
/// current, 75 when a sink stays unreachable, 1 when a sink refused records (a fork).
pub fn push(
    env: &Env,
    out: &Output,
    path: Option<PathBuf>,
    timeout: std::time::Duration,
    json: bool,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    let policy = env.load_policy(cli_policy)?;
    let path = path.unwrap_or_else(|| env.audit_path(Some(&policy)));
    let mut sinks = crate::audit::sinks::build(&|url| env.server_token(url), &policy.audit_sinks)
        .map_err(Error::config)?;
    if sinks.is_empty() {
        return Err(Error::config_hint(
            "no `audit.sinks` configured",
            "add sinks to the policy's `audit:` section",
        ));
    }
    let reports = crate::audit::sinks::push(&path, &mut sinks, std::time::Instant::now() + timeout);
    let mut code = 0;
    for r in &reports {
        if json {
            out.data(&serde_json::to_string(r).unwrap_or_default());
        } else {
            out.info(&format!(
                "{}: {} delivered, {} pending{}",
                r.sink,
                r.delivered,
                r.pending,
                r.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
        // A refusal (1) outranks an outage (75): retrying will not deliver it.
        if r.pending > 0 {
            code = if r.permanent || code == 1 { 1 } else { 75 };
        }
    }
    Ok(code)
}
