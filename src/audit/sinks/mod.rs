//! Audit sinks: every record also leaves the machine (DESIGN §8). Each sink has its own
//! delivery cursor next to the log (`<log>.sinks/<name>.cursor`: the seq, hash and byte offset
//! of the last record it acknowledged), so an outage loses nothing and a record is sent again
//! only if the acknowledgement itself was lost (syslog and HTTP are at-least-once, deduplicated
//! by the record hash; the server's ingest is idempotent). A sink's delivery holds a lock, so
//! two gates never send the same backlog at once. Cursors are replaced through fresh, randomly
//! named files and nothing in `<log>.sinks/` is opened through a symbolic link.

pub mod file;
pub mod http;
pub mod server;
pub mod syslog;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A record waiting for a sink: its canonical line and what a sink may need to label it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub hash: String,
    pub line: String,
    pub record: serde_json::Value,
}

/// What a delivery needs besides the records.
pub struct DeliverCtx<'a> {
    pub log_path: &'a Path,
    pub log_id: &'a str,
    /// The current signed checkpoint (a signed note), when there is one.
    pub checkpoint: Option<&'a str>,
    pub deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Worth retrying (down, 5xx, 429), perhaps after the time the receiver asked for.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (refused: a fork, bad credentials, a malformed configuration).
    Permanent(String),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Transient { message, .. } | SinkError::Permanent(message) => {
                f.write_str(message)
            }
        }
    }
}

/// One place records are shipped to.
pub trait Sink {
    /// Stable, file-name-safe: names the cursor.
    fn name(&self) -> &str;
    /// Delivers `batch` (in seq order, contiguous) completely, or fails.
    fn deliver(&mut self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> Result<(), SinkError>;
}

pub use crate::policy::SinkSpec;

/// A malformed `audit.sinks` entry: a configuration error naming it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("`audit.sinks[{index}].token`: {source}")]
    Token {
        index: usize,
        source: crate::secrets::SecretError,
    },
    #[error("`audit.sinks[{index}]`: {source}")]
    Syslog {
        index: usize,
        source: syslog::SyslogConfigError,
    },
    #[error("`audit.sinks[{index}]`: {source}")]
    Http {
        index: usize,
        source: http::HttpConfigError,
    },
}

/// Builds the configured sinks; a malformed entry is a configuration error naming it.
/// `token_for` gives the token to present to a server sink's URL (the caller knows where
/// tokens live; the sinks only carry them).
pub fn build(
    token_for: &dyn Fn(&str) -> Option<crate::secrets::Token>,
    specs: &[SinkSpec],
) -> Result<Vec<Box<dyn Sink>>, BuildError> {
    let mut out: Vec<Box<dyn Sink>> = Vec::new();
    for (index, spec) in specs.iter().cloned().enumerate() {
        let name = spec.name();
        out.push(match spec {
            SinkSpec::Server { url, ca } => Box::new(server::ServerSink::new(
                token_for(&url),
                name,
                &url,
                ca.map_or(crate::http::Trust::System, crate::http::Trust::Ca),
            )),
            SinkSpec::File { path } => Box::new(file::FileSink::new(name, path)),
            SinkSpec::Syslog { url, ca, app_name } => Box::new(
                syslog::SyslogSink::new(name, &url, ca, app_name)
                    .map_err(|source| BuildError::Syslog { index, source })?,
            ),
            SinkSpec::Http {
                url,
                preset,
                token,
                labels,
            } => {
                let token = match token {
                    Some(r) => Some(
                        crate::secrets::resolve(&r)
                            .map_err(|source| BuildError::Token { index, source })?,
                    ),
                    None => None,
                };
                Box::new(
                    http::HttpSink::new(name, &url, preset.as_deref(), token, labels)
                        .map_err(|source| BuildError::Http { index, source })?,
                )
            }
        });
    }
    Ok(out)
}

/// A sink's position in the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    /// Records delivered (the next seq to send).
    pub next: u64,
    /// Hash of the last delivered record (64 zeros when none).
    pub hash: String,
    /// Byte offset just after the last delivered record's line.
    pub offset: u64,
}

pub fn sinks_dir(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sinks", log.display()))
}

fn cursor_path(log: &Path, name: &str) -> PathBuf {
    sinks_dir(log).join(format!("{name}.cursor"))
}

pub fn read_cursor(log: &Path, name: &str) -> Cursor {
    std::fs::read(cursor_path(log, name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| Cursor {
            next: 0,
            hash: super::record::GENESIS_PREV.to_owned(),
            offset: 0,
        })
}

/// Replaces the cursor through a fresh, randomly named temp file (O_EXCL|O_NOFOLLOW) renamed
/// into place: a link planted in `<log>.sinks/` is never written through.
fn write_cursor(log: &Path, name: &str, c: &Cursor) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(c).map_err(std::io::Error::other)?;
    super::log::replace_file(&cursor_path(log, name), &bytes, 0o600, true)
}

/// Opens (making it if needed) a file in `<log>.sinks/` that gate only locks or touches, never
/// through a symbolic link.
fn open_side(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// Makes `<log>.sinks/` (0700) and checks it is a directory of this user's (or root's) that no
/// one else can write to: the cursors there decide what is sent.
fn ensure_sinks_dir(log: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = sinks_dir(log);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let meta = std::fs::symlink_metadata(&dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.mode() & 0o022 != 0 || (meta.uid() != me && meta.uid() != 0) {
        return Err(std::io::Error::other(format!(
            "`{}` is not a private directory of this user's (a link, or writable by others)",
            dir.display()
        )));
    }
    Ok(())
}

/// Why the records after a sink's cursor cannot be shipped: the log is unreadable, or is not
/// the log the sink was given so far. Nothing more goes to that sink until it is looked at.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{}`: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the log is shorter than what was delivered ({len} < {delivered} bytes): truncated or replaced"
    )]
    Shorter { len: u64, delivered: u64 },
    #[error("unreadable record after seq {after}: {source}")]
    Unreadable {
        after: u64,
        source: serde_json::Error,
    },
    #[error("a record without seq")]
    NoSeq,
    #[error(
        "record seq {seq} does not continue what was delivered (seq {delivered}): the log was rewritten"
    )]
    Rewritten { seq: u64, delivered: u64 },
}

/// Reads up to `max` records after the cursor. The first must link to the cursor's hash:
/// a log rewritten under a sink is not shipped on as if nothing happened.
fn read_after(log: &Path, c: &Cursor, max: usize) -> Result<Vec<(Pending, u64)>, ReadError> {
    let mut f = File::open(log).map_err(|source| ReadError::Open {
        path: log.to_path_buf(),
        source,
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if c.offset > len {
        return Err(ReadError::Shorter {
            len,
            delivered: c.offset,
        });
    }
    f.seek(SeekFrom::Start(c.offset))?;
    let mut r = BufReader::new(f);
    let mut out = Vec::new();
    let mut offset = c.offset;
    let mut prev = c.hash.clone();
    let mut line = String::new();
    while out.len() < max {
        line.clear();
        let n = r.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break; // the end, or a torn tail the next append repairs
        }
        offset += n as u64;
        let text = line.trim_end_matches('\n').to_owned();
        let record: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ReadError::Unreadable {
                after: c.next,
                source,
            })?;
        let seq = record["seq"].as_u64().ok_or(ReadError::NoSeq)?;
        let hash = record["hash"].as_str().unwrap_or_default().to_owned();
        if record["prev"].as_str() != Some(prev.as_str()) || seq != c.next + out.len() as u64 {
            return Err(ReadError::Rewritten {
                seq,
                delivered: c.next.saturating_sub(1),
            });
        }
        prev = hash.clone();
        out.push((
            Pending {
                seq,
                hash,
                line: text,
                record,
            },
            offset,
        ));
    }
    Ok(out)
}

/// How delivery to one sink went.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sink: String,
    pub delivered: u64,
    /// Records still waiting for this sink.
    pub pending: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when the error cannot be retried away.
    pub permanent: bool,
}

/// Delivers every pending record to every sink, retrying transient failures (honouring
/// `Retry-After`) until `deadline`.
pub fn push(log: &Path, sinks: &mut [Box<dyn Sink>], deadline: Instant) -> Vec<Report> {
    push_with(log, sinks, deadline, None)
}

/// Like [`push`]; with `quiet_after_failure`, a sink that failed less than that long ago is not
/// tried again (its records stay pending), so every command on a host whose audit server is
/// down does not wait out the delivery limit. Runs that must deliver pass `None`.
pub fn push_with(
    log: &Path,
    sinks: &mut [Box<dyn Sink>],
    deadline: Instant,
    quiet_after_failure: Option<Duration>,
) -> Vec<Report> {
    let dir_error = ensure_sinks_dir(log).err().map(|e| e.to_string());
    let log_id = read_log_id(log).unwrap_or_default();
    let mut reports = Vec::new();
    for sink in sinks.iter_mut() {
        let name = sink.name().to_owned();
        if let Some(e) = &dir_error {
            reports.push(Report {
                sink: name,
                delivered: 0,
                pending: count_records(log),
                error: Some(e.clone()),
                permanent: true,
            });
            continue;
        }
        let down_marker = sinks_dir(log).join(format!("{name}.down"));
        if let Some(window) = quiet_after_failure
            && let Ok(age) = std::fs::metadata(&down_marker)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default())
            && age < window
        {
            let c = read_cursor(log, &name);
            reports.push(Report {
                sink: name,
                delivered: 0,
                pending: count_records(log).saturating_sub(c.next),
                error: Some(format!(
                    "not retried: it failed {}s ago (retried after {}s, or now by `gate log push`)",
                    age.as_secs(),
                    window.as_secs()
                )),
                permanent: false,
            });
            continue;
        }
        // One deliverer per sink at a time; another gate holding the lock is delivering.
        let lock = open_side(&sinks_dir(log).join(format!("{name}.lock")));
        let _guard = match lock {
            Ok(f) => match lock_until(&f, deadline) {
                true => Some(f),
                false => {
                    let c = read_cursor(log, &name);
                    reports.push(Report {
                        sink: name,
                        delivered: 0,
                        pending: count_records(log).saturating_sub(c.next),
                        error: Some("another gate is delivering to this sink".into()),
                        permanent: false,
                    });
                    continue;
                }
            },
            Err(e) => {
                reports.push(Report {
                    sink: name,
                    delivered: 0,
                    pending: count_records(log),
                    error: Some(e.to_string()),
                    permanent: true,
                });
                continue;
            }
        };
        // Read under the lock: another gate may have delivered (and appended) while this one
        // waited, and a checkpoint read before that would be older than what the sink holds.
        let total = count_records(log);
        let checkpoint = std::fs::read(super::log::checkpoint_path(log))
            .ok()
            .and_then(|b| String::from_utf8(super::log::pick_checkpoint(&b, None).to_vec()).ok());
        let mut cursor = read_cursor(log, &name);
        // A record reaches the file just before the checkpoint covering it is signed, so the
        // checkpoint can still lag behind what was delivered: a receiver holding more would take
        // it for a rollback. Such a checkpoint is left out; the next delivery carries a newer one.
        let covers = checkpoint.as_deref().and_then(checkpoint_count);
        let mut delivered = 0;
        let mut error = None;
        let mut permanent = false;
        let mut backoff =
            crate::http::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let batch = match read_after(log, &cursor, 200) {
                Ok(b) => b,
                Err(e) => {
                    error = Some(e.to_string());
                    permanent = true;
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let records: Vec<Pending> = batch.iter().map(|(p, _)| p.clone()).collect();
            let ctx = DeliverCtx {
                log_path: log,
                log_id: &log_id,
                checkpoint: checkpoint
                    .as_deref()
                    .filter(|_| covers >= Some(cursor.next)),
                deadline,
            };
            match sink.deliver(&records, &ctx) {
                Ok(()) => {
                    let (last, offset) = batch.last().map(|(p, o)| (p, *o)).expect("non-empty");
                    cursor = Cursor {
                        next: last.seq + 1,
                        hash: last.hash.clone(),
                        offset,
                    };
                    if let Err(e) = write_cursor(log, &name, &cursor) {
                        error = Some(format!("cannot save the delivery cursor: {e}"));
                        break;
                    }
                    delivered += records.len() as u64;
                    backoff.reset();
                    error = None;
                }
                Err(SinkError::Permanent(m)) => {
                    error = Some(m);
                    permanent = true;
                    break;
                }
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => {
                    let wait = backoff.after_failure(retry_after);
                    error = Some(message);
                    if Instant::now() + wait >= deadline {
                        break;
                    }
                    std::thread::sleep(wait);
                }
            }
        }
        let pending = total.saturating_sub(cursor.next);
        if pending > 0 && error.is_some() {
            // Only its time counts: touched, never truncated, never followed.
            let _ =
                open_side(&down_marker).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        } else {
            let _ = std::fs::remove_file(&down_marker);
        }
        reports.push(Report {
            sink: name,
            delivered,
            pending,
            error,
            permanent,
        });
    }
    reports
}

/// Takes the sink's lock, waiting for another deliverer until `deadline`.
fn lock_until(f: &File, deadline: Instant) -> bool {
    loop {
        if f.try_lock().is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The record count a checkpoint note covers (its second line).
fn checkpoint_count(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

fn count_records(log: &Path) -> u64 {
    super::log::record_count(log)
}

fn read_log_id(log: &Path) -> Option<String> {
    let f = File::open(log).ok()?;
    let mut first = String::new();
    BufReader::new(f).read_line(&mut first).ok()?;
    let v: serde_json::Value = serde_json::from_str(first.trim_end()).ok()?;
    v["log_id"].as_str().map(str::to_owned)
}
