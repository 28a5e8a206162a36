//! The local append-only log. One append = exclusive lock → find the tail (reading backwards
//! from the end, never the whole file) → write one canonical line → fsync. A torn last line left
//! by a crash is moved to a side file and a `repair` record names its hash and length, so nothing
//! is silently dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::record::{Body, GENESIS_PREV, GenesisInfo, Record, RepairInfo, now};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write the audit log `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the last record of the audit log `{path}` is unreadable ({why}); refusing to append to a chain that cannot be continued"
    )]
    BadTail { path: PathBuf, why: String },
    #[error(transparent)]
    Key(#[from] super::key::KeyError),
    #[error("cannot encode an audit record: {0}")]
    Encode(#[from] super::jcs::FloatError),
}

/// The chain position after the last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub log_id: String,
    /// The seq of the last record.
    pub seq: u64,
    pub hash: String,
}

/// A handle on the log file; each append opens, locks and syncs on its own so that any number
/// of gate processes can share one log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    /// The host signing key; with one, every append re-signs `<log>.checkpoint`.
    key_path: Option<PathBuf>,
    /// The key, once loaded: a run appends twice, a server many times.
    signer: std::sync::Arc<std::sync::OnceLock<super::note::NoteSigner>>,
    /// fsync after each write. Only benchmarks turn this off, to measure its share.
    pub sync: bool,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditLog {
            path: path.into(),
            key_path: None,
            signer: Default::default(),
            sync: true,
        }
    }

    /// Signs a checkpoint after every append with the key at `key_path` (made on first use).
    pub fn with_key(mut self, key_path: impl Into<PathBuf>) -> Self {
        self.key_path = Some(key_path.into());
        self
    }

    /// `<log>.checkpoint`: the latest signed checkpoint.
    pub fn checkpoint_path(&self) -> PathBuf {
        checkpoint_path(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the log can be opened for appending (its directory exists or can be made),
    /// without writing anything. Used before asking anyone for approval.
    pub fn check_writable(&self) -> Result<(), AuditError> {
        self.open().map(|_| ())
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn open(&self) -> Result<File, AuditError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| self.io(e))?;
        }
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        // `/dev/null` or a FIFO would swallow records while appearing to accept them.
        let meta = f.metadata().map_err(|e| self.io(e))?;
        if !meta.file_type().is_file() {
            return Err(self.io(std::io::Error::other("not a regular file")));
        }
        Ok(f)
    }

    /// Appends the records built by `bodies` in one locked section and returns them.
    pub fn append(&self, bodies: Vec<Body>) -> Result<Vec<Record>, AuditError> {
        let mut f = self.open()?;
        f.lock().map_err(|e| self.io(e))?;
        let result = self.append_locked(&mut f, bodies);
        // Dropping the file releases the lock; unlock explicitly to be plain about it.
        let _ = f.unlock();
        result
    }

    fn append_locked(&self, f: &mut File, bodies: Vec<Body>) -> Result<Vec<Record>, AuditError> {
        let host = crate::identity::host_name();
        // Loaded under the lock, so two first-time appenders agree on one new key.
        let signer = match &self.key_path {
            Some(p) => Some(match self.signer.get() {
                Some(s) => s,
                None => {
                    let s = super::key::load_or_create(p, &host)?;
                    self.signer.get_or_init(|| s)
                }
            }),
            None => None,
        };
        let mut pending = Vec::new();
        let mut tail = match read_tail(f).map_err(|e| self.io(e))? {
            TailScan::Empty => {
                let log_id = random_log_id().map_err(|e| self.io(e))?;
                let g = Record::seal(
                    &log_id,
                    0,
                    now(),
                    GENESIS_PREV,
                    Body::Genesis(GenesisInfo {
                        host: host.clone(),
                        created_by: format!("gate {}", env!("CARGO_PKG_VERSION")),
                        key: signer.as_ref().map(|s| s.verifier().to_vkey()),
                    }),
                )?;
                let t = Tail {
                    log_id,
                    seq: 0,
                    hash: g.hash.clone(),
                };
                pending.push(g);
                t
            }
            TailScan::Last { line, torn } => {
                let tail = parse_tail(&line).map_err(|why| AuditError::BadTail {
                    path: self.path.clone(),
                    why,
                })?;
                if let Some((offset, bytes)) = torn {
                    let info = self.move_torn(f, offset, &bytes)?;
                    let r = Record::seal(
                        &tail.log_id,
                        tail.seq + 1,
                        now(),
                        &tail.hash,
                        Body::Repair(info),
                    )?;
                    let t = Tail {
                        log_id: tail.log_id.clone(),
                        seq: r.seq,
                        hash: r.hash.clone(),
                    };
                    pending.push(r);
                    t
                } else {
                    tail
                }
            }
            TailScan::OnlyTorn(bytes) => {
                return Err(AuditError::BadTail {
                    path: self.path.clone(),
                    why: format!("{} bytes with no complete record", bytes.len()),
                });
            }
        };
        for body in bodies {
            let r = Record::seal(&tail.log_id, tail.seq + 1, now(), &tail.hash, body)?;
            tail.seq = r.seq;
            tail.hash = r.hash.clone();
            pending.push(r);
        }
        let mut buf = Vec::new();
        for r in &pending {
            buf.extend_from_slice(r.to_line()?.as_bytes());
            buf.push(b'\n');
        }
        f.write_all(&buf).map_err(|e| self.io(e))?;
        if self.sync {
            f.sync_data().map_err(|e| self.io(e))?;
        }
        if let Some(signer) = &signer {
            self.write_checkpoint(signer, &tail)?;
        }
        Ok(pending)
    }

    /// Replaces `<log>.checkpoint` atomically: temp file, fsync, rename, fsync the directory.
    fn write_checkpoint(
        &self,
        signer: &super::note::NoteSigner,
        tail: &Tail,
    ) -> Result<(), AuditError> {
        let note = signer.sign(&checkpoint_text(&tail.log_id, tail.seq + 1, &tail.hash));
        let dest = self.checkpoint_path();
        let tmp = PathBuf::from(format!("{}.tmp.{}", dest.display(), std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        f.write_all(note.as_bytes()).map_err(|e| self.io(e))?;
        if self.sync {
            f.sync_all().map_err(|e| self.io(e))?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| self.io(e))?;
        if self.sync
            && let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
        {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Moves bytes after the last newline to `<log>.torn.<ts>` and cuts them from the log.
    fn move_torn(&self, f: &mut File, offset: u64, bytes: &[u8]) -> Result<RepairInfo, AuditError> {
        let stamp = now().replace(':', "");
        let side = PathBuf::from(format!("{}.torn.{stamp}", self.path.display()));
        let mut s = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&side)
            .map_err(|e| self.io(e))?;
        s.write_all(bytes).map_err(|e| self.io(e))?;
        s.sync_all().map_err(|e| self.io(e))?;
        f.set_len(offset).map_err(|e| self.io(e))?;
        Ok(RepairInfo {
            torn_sha256: hex::encode(Sha256::digest(bytes)),
            torn_len: bytes.len() as u64,
            side_file: side
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }
}

enum TailScan {
    Empty,
    /// The last complete line (without its newline) and, if the file does not end in a
    /// newline, the offset and bytes of the torn remainder.
    Last {
        line: Vec<u8>,
        torn: Option<(u64, Vec<u8>)>,
    },
    OnlyTorn(Vec<u8>),
}

/// Reads backwards from the end in growing chunks until the last complete line is found.
fn read_tail(f: &mut File) -> std::io::Result<TailScan> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(TailScan::Empty);
    }
    let mut chunk = 4096u64;
    loop {
        let start = len.saturating_sub(chunk);
        let mut buf = vec![0u8; (len - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        // The end of the last complete line is the last newline.
        let last_nl = buf.iter().rposition(|&b| b == b'\n');
        let torn = |at: usize| {
            let rest = &buf[at..];
            (!rest.is_empty()).then(|| (start + at as u64, rest.to_vec()))
        };
        match last_nl {
            Some(end) => {
                if let Some(begin) = buf[..end].iter().rposition(|&b| b == b'\n') {
                    return Ok(TailScan::Last {
                        line: buf[begin + 1..end].to_vec(),
                        torn: torn(end + 1),
                    });
                }
                if start == 0 {
                    return Ok(TailScan::Last {
                        line: buf[..end].to_vec(),
                        torn: torn(end + 1),
                    });
                }
            }
            None if start == 0 => return Ok(TailScan::OnlyTorn(buf)),
            None => {}
        }
        chunk *= 4;
    }
}

/// The checkpoint body: origin, record count, base64 of the head hash (DESIGN §8).
pub fn checkpoint_text(log_id: &str, count: u64, head_hex: &str) -> String {
    use base64::Engine;
    let raw = hex::decode(head_hex).unwrap_or_default();
    format!(
        "gate/{log_id}\n{count}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

pub fn checkpoint_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.checkpoint", log.display()))
}

fn parse_tail(line: &[u8]) -> Result<Tail, String> {
    #[derive(serde::Deserialize)]
    struct Min {
        log_id: String,
        seq: u64,
        hash: String,
    }
    let m: Min = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(Tail {
        log_id: m.log_id,
        seq: m.seq,
        hash: m.hash,
    })
}

fn random_log_id() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(b))
}

/// Reads every record of a log for display (not verification: bad lines are reported as such).
pub fn read_all(path: &Path) -> std::io::Result<Vec<Result<Record, String>>> {
    let mut s = Vec::new();
    File::open(path)?.read_to_end(&mut s)?;
    Ok(s.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice::<Record>(l).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect())
}

/// Makes sure a freshly created log is private even under a lax umask.
pub fn ensure_private(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// How many records the log holds (the last complete record's seq + 1), found by reading
/// backwards from the end: a delivery runs this on every command, whatever the log's size.
pub fn record_count(path: &Path) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    match read_tail(&mut f) {
        Ok(TailScan::Last { line, .. }) => parse_tail(&line).map(|t| t.seq + 1).unwrap_or(0),
        _ => 0,
    }
}
