//! `gate log show`: the audit log as a readable table or as stored JSON lines.

use std::path::PathBuf;

use crate::audit::log::read_all;
use crate::audit::record::{Kind, Record};
use crate::config::Env;
use crate::error::Error;
use crate::output::{Output, Tone};

pub struct ShowOptions {
    pub json: bool,
    pub since: Option<String>,
    pub request: Option<String>,
    pub n: Option<usize>,
    pub path: Option<PathBuf>,
}

pub fn show(env: &Env, out: &Output, o: ShowOptions, cli_policy: &[PathBuf]) -> Result<i32, Error> {
    let path = match o.path {
        Some(p) => p,
        None => {
            // The policy may name the log; an unreadable policy should not hide the log.
            let policy = env.load_policy(cli_policy).ok();
            env.audit_path(policy.as_ref())
        }
    };
    let since = match &o.since {
        Some(s) => Some(humantime::parse_rfc3339_weak(s).map_err(|e| {
            Error::Usage(format!(
                "bad `--since` time `{s}`: {e} (write e.g. 2026-11-26T10:00:00Z)"
            ))
        })?),
        None => None,
    };
    let rows = read_all(&path).map_err(|e| {
        Error::config_hint(
            format!("cannot read the audit log `{}`: {e}", path.display()),
            "gate writes it on the first run; `GATE_LOG` or `audit.path` choose where",
        )
    })?;
    let mut records: Vec<Record> = Vec::new();
    for r in rows {
        match r {
            Ok(rec) => records.push(rec),
            Err(why) => out.warn(&format!("{}: unreadable record at {why}", path.display())),
        }
    }
    records.retain(|r| {
        let by_req = o.request.as_ref().is_none_or(|id| {
            r.request_id
                .as_deref()
                .is_some_and(|x| x.starts_with(id.as_str()))
        });
        let by_time =
            since.is_none_or(|t| humantime::parse_rfc3339_weak(&r.ts).is_ok_and(|ts| ts >= t));
        by_req && by_time
    });
    if let Some(n) = o.n {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    if o.json {
        for r in &records {
            out.data(&r.to_line().unwrap_or_default());
        }
        return Ok(0);
    }
    let mut lines = vec![format!(
        "{:>5}  {:<24} {:<8} {:<13} {:<10} {:<9} {}",
        "SEQ", "TIME", "KIND", "REQUEST", "USER", "OUTCOME", "COMMAND / RESULT"
    )];
    // Results name only the request; show its command beside them.
    for r in &records {
        let short = r
            .request_id
            .as_deref()
            .map(crate::request::short_id)
            .unwrap_or("-");
        let (user, outcome, what) = match r.kind {
            Kind::Genesis => (
                "-".to_owned(),
                "-".to_owned(),
                format!(
                    "log {} on {}",
                    r.log_id,
                    r.genesis.as_ref().map(|g| g.host.as_str()).unwrap_or("?")
                ),
            ),
            Kind::Decision => {
                let q = r.request.as_ref();
                let d = r.decision.as_ref();
                let approvers = d
                    .map(|d| {
                        d.approvals
                            .iter()
                            .map(|a| a.principal.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("  [approved by {s}]"))
                    .unwrap_or_default();
                (
                    q.map(|q| q.requester.user.clone()).unwrap_or_default(),
                    d.map(|d| d.outcome.clone()).unwrap_or_default(),
                    format!(
                        "{}{approvers}",
                        q.map(|q| crate::request::shell_join(&q.command.argv))
                            .unwrap_or_default()
                    ),
                )
            }
            Kind::Result => {
                let res = r.result.as_ref();
                let status = match res {
                    Some(x) if x.signal.is_some() => {
                        format!("killed by signal {}", x.signal.unwrap_or(0))
                    }
                    Some(x) => format!(
                        "exit {}",
                        x.exit_code.map(|c| c.to_string()).unwrap_or("?".into())
                    ),
                    None => "?".into(),
                };
                let took = res
                    .map(|x| format!(" after {} ms", x.duration_ms))
                    .unwrap_or_default();
                let err = res
                    .and_then(|x| x.error.clone())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                ("".into(), "".into(), format!("{status}{took}{err}"))
            }
            Kind::Repair => (
                "-".into(),
                "-".into(),
                format!(
                    "repaired a torn line: {} bytes moved to {}",
                    r.repair.as_ref().map(|x| x.torn_len).unwrap_or(0),
                    r.repair
                        .as_ref()
                        .map(|x| x.side_file.as_str())
                        .unwrap_or("?")
                ),
            ),
            Kind::Event => {
                let e = r.event.as_ref();
                let cmd = r
                    .request
                    .as_ref()
                    .map(|q| format!("  {}", crate::request::shell_join(&q.command.argv)))
                    .unwrap_or_default();
                (
                    e.and_then(|e| e.principal.clone())
                        .unwrap_or_else(|| "-".into()),
                    e.map(|e| e.status.clone()).unwrap_or_default(),
                    format!(
                        "{}{cmd}{}",
                        e.map(|e| e.kind.as_str()).unwrap_or("?"),
                        e.and_then(|e| e.comment.as_ref())
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    ),
                )
            }
        };
        let kind = match r.kind {
            Kind::Genesis => "genesis",
            Kind::Decision => "decision",
            Kind::Result => "result",
            Kind::Repair => "repair",
            Kind::Event => "event",
        };
        // Everything in a record but its kind and seq came from a request, a chat payload or
        // a file: shown with controls escaped, one line per record.
        lines.push(format!(
            "{:>5}  {:<24} {:<8} {:<13} {:<10} {:<9} {}",
            r.seq,
            crate::output::escape(&r.ts),
            kind,
            crate::output::escape(short),
            crate::output::escape(&user),
            crate::output::escape(&outcome),
            crate::output::escape(&what)
        ));
    }
    out.text(&lines.join("\n"));
    Ok(0)
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
        let anchor = match &report.checkpoint {
            Some(c) => format!(
                "; checkpoint at {} records signed by {}",
                c.count, c.signed_by
            ),
            None => String::new(),
        };
        let summary = match report.first_bad_seq {
            None if report.problems.is_empty() => format!(
                "INTACT: {} records in log {} ({} decisions, {} results, {} approved runs checked{}){anchor}",
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
            ),
            first => format!(
                "TAMPERED: {} problem{}{} in {} records of {}",
                report.problems.len(),
                if report.problems.len() == 1 { "" } else { "s" },
                first
                    .map(|s| format!(", first at seq {s}"))
                    .unwrap_or_default(),
                report.records,
                report.path
            ),
        };
        let tone = if report.problems.is_empty() {
            Tone::Good
        } else {
            Tone::Bad
        };
        lines.push(out.paint(tone, &summary));
        out.data(&lines.join("\n"));
    }
    Ok(if report.problems.is_empty() { 0 } else { 1 })
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
    report.problems.sort_by_key(|p| (p.seq.is_none(), p.seq));
    report.first_bad_seq = report.problems.iter().find_map(|p| p.seq);
    report.status = if report.problems.is_empty() {
        "intact"
    } else {
        "tampered"
    };
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
