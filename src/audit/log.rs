//! The local append-only log. One append = exclusive lock → find the tail (reading backwards
//! from the end, never the whole file) → write one canonical line → fsync. A torn last line left
//! by a crash is moved to a side file and a `repair` record names its hash and length, so nothing
//! is silently dropped.
//!
//! One append is all or nothing: its lines count only together with the signed checkpoint that
//! covers them, so when the checkpoint cannot be written the lines are cut off again. Every file
//! gate writes beside the log is created fresh (`O_CREAT|O_EXCL|O_NOFOLLOW`) under a random name
//! and renamed into place; the log itself is never opened through a symbolic link, and a
//! directory that other users can write to is refused, since whoever can write there can swap
//! the files under gate.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::record::{Body, GENESIS_PREV, GenesisInfo, Record, RepairInfo, now};

mod checkpoint;
mod files;
mod litter;
use checkpoint::Trusted;
pub use checkpoint::{
    CHECKPOINT_SLOT, checkpoint_notes, checkpoint_path, checkpoint_text, checkpoint_to_audit,
    pick_checkpoint,
};
pub(crate) use files::check_dir;
use files::{check_dir_itself, check_dirs_above};
mod error;
pub use error::{AuditError, BadLine, TailError};
pub use files::{DirError, create_unique, replace_file};

/// The chain position after the last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub log_id: String,
    /// The seq of the last record.
    pub seq: u64,
    pub hash: String,
}

/// Where an appended record landed: its log (by file identity and log id) and its place in it,
/// so a later append can insist on going to the same log, right after a record still in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub log_id: String,
    pub seq: u64,
    pub hash: String,
    dev: u64,
    ino: u64,
    /// Byte offset of the record's line and its length with the newline.
    offset: u64,
    len: u64,
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
    /// The log directory (device, inode) whose parents were found safe: they are checked once
    /// per directory and process, the directory itself on every open.
    dir_checked: std::sync::Arc<std::sync::Mutex<Option<(u64, u64)>>>,
    /// The head this handle last wrote and signed. Finding the log still ending there, the
    /// checkpoint need not be read back: this process wrote both.
    last_signed: std::sync::Arc<std::sync::Mutex<Option<Tail>>>,
    /// Checkpoint notes known to be signed by the key: checked once, not on every append.
    trusted: std::sync::Arc<Trusted>,
    /// fsync after each write. Only benchmarks turn this off, to measure its share.
    pub sync: bool,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditLog {
            path: path.into(),
            key_path: None,
            signer: Default::default(),
            dir_checked: Default::default(),
            last_signed: Default::default(),
            trusted: Default::default(),
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
        self.open(true).map(|_| ())
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn unsafe_(&self, why: DirError) -> AuditError {
        AuditError::Unsafe {
            log: self.path.clone(),
            why,
        }
    }

    /// Opens the log for appending: never through a symbolic link, only a regular file, only in
    /// a directory no other user can write to. `create` makes the file (and its directory).
    fn open(&self, create: bool) -> Result<File, AuditError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if create && !dir.exists() {
            let new: Vec<&Path> = dir
                .ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
                .collect();
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| self.io(e))?;
            // The first record is durable only once the directories holding it are: each new
            // one's entry in its parent goes to disk before anything is written (the log's own
            // entry goes with the checkpoint's, created next to it, whose rename is followed by
            // a directory fsync). Only when a directory was made, so never on the allow path.
            if self.sync {
                for d in new {
                    let parent = d
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    File::open(parent)
                        .and_then(|p| p.sync_all())
                        .map_err(|e| self.io(e))?;
                }
            }
        }
        let id = check_dir_itself(dir).map_err(|why| self.unsafe_(why))?;
        let mut checked = self
            .dir_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *checked != Some(id) {
            check_dirs_above(dir).map_err(|why| self.unsafe_(why))?;
            *checked = Some(id);
        }
        drop(checked);
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(|e| {
                if e.raw_os_error() == Some(nix::libc::ELOOP) {
                    AuditError::Symlink {
                        path: self.path.clone(),
                    }
                } else {
                    self.io(e)
                }
            })?;
        // `/dev/null` or a FIFO would swallow records while appearing to accept them.
        let meta = f.metadata().map_err(|e| self.io(e))?;
        if !meta.file_type().is_file() {
            return Err(self.io(std::io::Error::other("not a regular file")));
        }
        // Whoever else can write the log can rewrite it under gate.
        if meta.mode() & 0o022 != 0 {
            return Err(AuditError::Writable {
                log: self.path.clone(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(f)
    }

    /// Appends the records built by `bodies` in one locked section and returns them.
    pub fn append(&self, bodies: Vec<Body>) -> Result<Vec<Record>, AuditError> {
        self.append_placed(bodies).map(|(records, _)| records)
    }

    /// Like [`AuditLog::append`], and says where the last record landed, for
    /// [`AuditLog::append_after`].
    pub fn append_placed(&self, bodies: Vec<Body>) -> Result<(Vec<Record>, Placed), AuditError> {
        let mut f = self.open(true)?;
        f.lock().map_err(|e| self.io(e))?;
        let result = self.append_locked(&mut f, bodies);
        // Dropping the file releases the lock; unlock explicitly to be plain about it.
        let _ = f.unlock();
        result
    }

    /// Appends to the log that holds `after`, and only to it: if the file at the log's path is
    /// gone, is another file, or no longer holds that record where it was written, nothing is
    /// written (least of all a new genesis) and the error says so.
    pub fn append_after(
        &self,
        after: &Placed,
        bodies: Vec<Body>,
    ) -> Result<Vec<Record>, AuditError> {
        let lost = |why: String| AuditError::Lost {
            path: self.path.clone(),
            seq: after.seq,
            why,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(lost("its directory was deleted or moved".into()));
        }
        let mut f = match self.open(false) {
            Ok(f) => f,
            Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(lost("the file was deleted or moved".into()));
            }
            Err(e) => return Err(e),
        };
        let meta = f.metadata().map_err(|e| self.io(e))?;
        if (meta.dev(), meta.ino()) != (after.dev, after.ino) {
            return Err(lost(
                "another file is at its path now (the log was moved, deleted or replaced)".into(),
            ));
        }
        f.lock().map_err(|e| self.io(e))?;
        let mut line = vec![0u8; after.len as usize];
        let in_place = f.read_exact_at(&mut line, after.offset).is_ok()
            && line.last() == Some(&b'\n')
            && parse_tail(&line[..line.len() - 1]).is_ok_and(|t| {
                t.log_id == after.log_id && t.seq == after.seq && t.hash == after.hash
            });
        let result = if in_place {
            self.append_locked(&mut f, bodies).map(|(r, _)| r)
        } else {
            Err(lost(format!(
                "seq {} is no longer where it was written (the log was cut or rewritten)",
                after.seq
            )))
        };
        let _ = f.unlock();
        result
    }

    fn append_locked(
        &self,
        f: &mut File,
        bodies: Vec<Body>,
    ) -> Result<(Vec<Record>, Placed), AuditError> {
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
        let mut torn_moved = None;
        let mut tail = match read_tail(f).map_err(|e| self.io(e))? {
            TailScan::Empty => {
                if signer.is_some() {
                    self.check_no_earlier_log()?;
                }
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
                let ours = self
                    .last_signed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    == Some(&tail);
                if signer.is_some() && !ours {
                    self.check_checkpoint_agrees(&tail)?;
                }
                if let Some((offset, bytes)) = torn {
                    let info = self.move_torn(f, offset, &bytes)?;
                    torn_moved = Some((bytes, info.side_file.clone()));
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
                    why: TailError::OnlyTorn { len: bytes.len() },
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
        let mut last_line = 0..0;
        for r in &pending {
            let at = buf.len();
            buf.extend_from_slice(r.to_line()?.as_bytes());
            buf.push(b'\n');
            last_line = at..buf.len();
        }
        // Where the lines go (`O_APPEND`: the end, after any torn tail was cut).
        let meta = f.metadata().map_err(|e| self.io(e))?;
        let start = meta.len();
        // The lines count only together with their signed checkpoint: if either cannot be
        // made durable, the file goes back to what it was, so no record claims a run that
        // never happened.
        let written = f
            .write_all(&buf)
            .and_then(|()| if self.sync { f.sync_data() } else { Ok(()) });
        let committed = match (written, &signer) {
            (Err(e), _) => Err(self.io(e)),
            (Ok(()), Some(signer)) => match checkpoint::write(
                &self.checkpoint_path(),
                signer,
                &tail.log_id,
                tail.seq + 1,
                &tail.hash,
                self.sync,
                &self.trusted,
            ) {
                Ok(()) => Ok(()),
                // Failing after the rename (the directory's fsync) leaves a checkpoint that
                // already covers the lines: then they stay.
                Err(_)
                    if checkpoint::read_body(
                        &self.checkpoint_path(),
                        Some(&signer.verifier()),
                        &self.trusted,
                    ) == Some((
                        format!("gate/{}", tail.log_id),
                        tail.seq + 1,
                        tail.hash.clone(),
                    )) =>
                {
                    Ok(())
                }
                Err(source) => Err(AuditError::Checkpoint {
                    path: self.path.clone(),
                    checkpoint: self.checkpoint_path(),
                    source,
                }),
            },
            (Ok(()), None) => Ok(()),
        };
        if let Err(e) = committed {
            return Err(self.take_back(f, start, torn_moved, e));
        }
        if signer.is_some() {
            *self
                .last_signed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tail.clone());
        }
        let placed = Placed {
            log_id: tail.log_id.clone(),
            seq: tail.seq,
            hash: tail.hash.clone(),
            dev: meta.dev(),
            ino: meta.ino(),
            offset: start + last_line.start as u64,
            len: last_line.len() as u64,
        };
        Ok((pending, placed))
    }

    /// Undoes a failed append: cuts the file back to `len` and puts a torn tail that was moved
    /// aside back where it was. If even that fails, the error says the record may remain.
    fn take_back(
        &self,
        f: &mut File,
        len: u64,
        torn: Option<(Vec<u8>, String)>,
        cause: AuditError,
    ) -> AuditError {
        let undone = f.set_len(len).and_then(|()| {
            if let Some((bytes, side)) = &torn {
                f.write_all(bytes)?;
                if let Some(dir) = self.path.parent() {
                    let _ = std::fs::remove_file(dir.join(side));
                }
            }
            f.sync_data()
        });
        match undone {
            Ok(()) => cause,
            Err(e) => self.io(std::io::Error::other(format!(
                "{cause}; and cutting the unsigned record back out failed too ({e}): the log may hold a record that has no checkpoint"
            ))),
        }
    }

    /// A new genesis is written only where no earlier log was: a checkpoint beside an empty or
    /// missing log says one was deleted or emptied, and a new chain would hide that.
    fn check_no_earlier_log(&self) -> Result<(), AuditError> {
        let cp = self.checkpoint_path();
        let key = self.signer.get().map(super::note::NoteSigner::verifier);
        let Some((origin, count, _)) = checkpoint::read_body(&cp, key.as_ref(), &self.trusted)
        else {
            return Ok(());
        };
        if count == 0 {
            return Ok(());
        }
        Err(AuditError::Diverged {
            path: self.path.clone(),
            why: format!(
                "the log is empty or missing, but its signed checkpoint `{}` says `{origin}` held {count} records: it was deleted, emptied or moved, and a new log would hide that",
                cp.display()
            ),
        })
    }

    /// Before signing a new head: the last checkpoint must not cover more records than the log
    /// holds, nor another head at the same length, nor another log. (Fewer is a crash between
    /// a write and its checkpoint, which this append then covers.)
    fn check_checkpoint_agrees(&self, tail: &Tail) -> Result<(), AuditError> {
        let cp = self.checkpoint_path();
        let key = self.signer.get().map(super::note::NoteSigner::verifier);
        let Some((origin, count, head)) = checkpoint::read_body(&cp, key.as_ref(), &self.trusted)
        else {
            return Ok(());
        };
        let diverged = |why: String| AuditError::Diverged {
            path: self.path.clone(),
            why,
        };
        let holds = tail.seq + 1;
        if origin != format!("gate/{}", tail.log_id) {
            return Err(diverged(format!(
                "its signed checkpoint `{}` is for `{origin}`, but the log is `gate/{}`: the log was replaced",
                cp.display(),
                tail.log_id
            )));
        }
        if count > holds {
            return Err(diverged(format!(
                "its signed checkpoint `{}` covers {count} records but the log holds {holds}: records were cut off",
                cp.display()
            )));
        }
        if count == holds && head != tail.hash {
            return Err(diverged(format!(
                "its signed checkpoint `{}` names another head for seq {}: the log was rewritten",
                cp.display(),
                tail.seq
            )));
        }
        Ok(())
    }

    /// Moves bytes after the last newline to a new `<log>.torn.<ts>.<random>` and cuts them
    /// from the log.
    fn move_torn(&self, f: &mut File, offset: u64, bytes: &[u8]) -> Result<RepairInfo, AuditError> {
        let stamp = now().replace(':', "");
        let mut base = self.path.as_os_str().to_owned();
        base.push(format!(".torn.{stamp}"));
        let (mut s, side) = create_unique(Path::new(&base), 0o600).map_err(|e| self.io(e))?;
        // A repair that fails leaves no file behind: the torn bytes stay in the log, and the
        // next append tries again (a full disk would otherwise leave an empty file per try).
        let moved = s
            .write_all(bytes)
            .and_then(|()| s.sync_all())
            .and_then(|()| f.set_len(offset));
        if let Err(e) = moved {
            drop(s);
            let _ = std::fs::remove_file(&side);
            return Err(self.io(e));
        }
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

fn parse_tail(line: &[u8]) -> Result<Tail, TailError> {
    #[derive(serde::Deserialize)]
    struct Min {
        log_id: String,
        seq: u64,
        hash: String,
    }
    let m: Min = serde_json::from_slice(line)?;
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
pub fn read_all(path: &Path) -> std::io::Result<Vec<Result<Record, BadLine>>> {
    let mut s = Vec::new();
    File::open(path)?.read_to_end(&mut s)?;
    Ok(s.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice::<Record>(l).map_err(|source| BadLine {
                line: i + 1,
                source,
            })
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::audit::record::ResultInfo;

    /// A small record to append in tests (shared by the log's submodules' tests).
    pub(in crate::audit::log) fn body(i: u64) -> Body {
        Body::Result {
            request_id: format!("r{i}"),
            result: ResultInfo {
                exit_code: Some(0),
                signal: None,
                duration_ms: i,
                error: None,
            },
        }
    }

    #[test]
    fn a_failed_checkpoint_puts_the_file_back_as_it_was_torn_tail_included() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let log = AuditLog::new(&path).with_key(d.path().join("key"));
        log.append(vec![body(1)]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"torn").unwrap();
        let before = std::fs::read(&path).unwrap();
        // The checkpoint's name taken by a directory: the rename fails after the write.
        std::fs::remove_file(log.checkpoint_path()).unwrap();
        std::fs::create_dir(log.checkpoint_path()).unwrap();
        let err = log.append(vec![body(2)]).unwrap_err();
        assert!(matches!(err, AuditError::Checkpoint { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.contains(".torn.") && !n.contains(".tmp.")),
            "{names:?}"
        );
        // With the checkpoint back, the next append repairs the torn tail as usual.
        std::fs::remove_dir(log.checkpoint_path()).unwrap();
        let recs = log.append(vec![body(3)]).unwrap();
        assert_eq!(recs.len(), 2, "repair + the record");
    }

    #[test]
    fn append_after_refuses_a_log_that_no_longer_holds_the_record() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let log = AuditLog::new(&path).with_key(d.path().join("key"));
        let (_, placed) = log.append_placed(vec![body(1)]).unwrap();
        log.append_after(&placed, vec![body(2)]).unwrap();
        // Cut in place back to the genesis: same file, but the record is gone.
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        std::fs::write(&path, format!("{first}\n")).unwrap();
        let err = log.append_after(&placed, vec![body(3)]).unwrap_err();
        assert!(matches!(err, AuditError::Lost { seq: 1, .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{first}\n")
        );
        // Deleted: no new genesis.
        std::fs::remove_file(&path).unwrap();
        let err = log.append_after(&placed, vec![body(3)]).unwrap_err();
        assert!(matches!(err, AuditError::Lost { .. }), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn side_files_get_fresh_unguessable_names() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("x.tmp");
        let (_, a) = create_unique(&base, 0o600).unwrap();
        let (_, b) = create_unique(&base, 0o600).unwrap();
        assert_ne!(a, b);
        let tail = a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(tail.len(), 16);
        assert!(tail.chars().all(|c| c.is_ascii_hexdigit()));
        // A link at the destination is replaced, not followed.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let dest = d.path().join("dest");
        std::os::unix::fs::symlink(&victim, &dest).unwrap();
        replace_file(&dest, b"new", 0o600, true).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&dest).unwrap().is_file());
    }
}
