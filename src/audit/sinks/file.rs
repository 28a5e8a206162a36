//! The `file` sink: appends each record's line to another file (another disk, a mounted share).
//! It is idempotent per (log id, seq): a record the file already holds is not appended again —
//! whatever the delivery cursor says, so a copy of a log (same log id, a cursor of its own
//! starting at 0) pushed to the same file adds nothing. A record whose (log id, seq) the file
//! holds with another hash is a fork of that log: refused, nothing appended.
//!
//! What the file holds of a log is found from its end: gate appends each log's records in seq
//! order, so the last line of a log id is its highest seq, and a file a single log ships to is
//! read one line deep.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use super::{DeliverCtx, Pending, Sink, SinkError};

pub struct FileSink {
    name: String,
    path: PathBuf,
}

impl FileSink {
    pub fn new(name: String, path: PathBuf) -> Self {
        FileSink { name, path }
    }
}

/// The last record of a log the sink file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    seq: u64,
    hash: String,
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Pending], _ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        let transient = |e: std::io::Error| SinkError::Transient {
            message: format!("{}: {e}", self.path.display()),
            retry_after: None,
        };
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(transient)?;
        // Two gates (two copies of a log, two hosts on one share) never read-then-append at once.
        f.lock().map_err(transient)?;
        let log_id = first.record["log_id"].as_str().unwrap_or_default();
        let skip = already_held(&f, log_id, batch).map_err(|e| match e {
            Skip::Io(e) => transient(e),
            Skip::Fork(m) => SinkError::Permanent(format!("{}: {m}", self.path.display())),
        })?;
        if skip == batch.len() {
            return Ok(());
        }
        let mut buf = String::new();
        // A torn last line (a crash mid-write) stays a line of its own, not glued to ours.
        let len = f.metadata().map_err(transient)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.read_exact_at(&mut last, len - 1).map_err(transient)?;
            if last[0] != b'\n' {
                buf.push('\n');
            }
        }
        for p in &batch[skip..] {
            buf.push_str(&p.line);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes()).map_err(transient)?;
        f.sync_data().map_err(transient)
    }
}

enum Skip {
    Io(std::io::Error),
    Fork(String),
}

/// How many records at the start of `batch` the file holds already (their hashes checked), or
/// the fork that makes appending wrong.
fn already_held(f: &File, log_id: &str, batch: &[Pending]) -> Result<usize, Skip> {
    let Some(held) = find_from_end(f, log_id, None).map_err(Skip::Io)? else {
        return Ok(0);
    };
    let first = batch[0].seq;
    let last = batch[batch.len() - 1].seq;
    let fork = |seq: u64, ours: &str, theirs: &str| {
        Skip::Fork(format!(
            "it holds seq {seq} of log {log_id} with hash {}…, this log has {}… there: the log \
             was rewritten or is a changed copy (a fork); nothing appended",
            theirs.get(..12).unwrap_or(theirs),
            ours.get(..12).unwrap_or(ours)
        ))
    };
    if first > held.seq {
        // The next record must link to the last one held; past a gap (records the file never
        // got, e.g. after it was rotated) there is nothing to link to.
        let prev = batch[0].record["prev"].as_str().unwrap_or_default();
        if first == held.seq + 1 && prev != held.hash {
            return Err(fork(held.seq, prev, &held.hash));
        }
        return Ok(0);
    }
    // The batch starts with records the file holds. One hash compared is enough: a record's
    // hash covers the whole chain before it.
    let probe = held.seq.min(last);
    let theirs = if probe == held.seq {
        Some(held)
    } else {
        find_from_end(f, log_id, Some(probe)).map_err(Skip::Io)?
    };
    let ours = &batch[(probe - first) as usize];
    match theirs {
        Some(t) if t.hash == ours.hash => Ok((probe - first + 1) as usize),
        Some(t) => Err(fork(probe, &ours.hash, &t.hash)),
        // The file holds later records of this log but not this one (cut by hand): it has
        // moved past it, and appending it now would put the log out of order.
        None => Ok((probe - first + 1) as usize),
    }
}

/// Reads the file backwards for the last line of `log_id` (with `seq`, when given): lines that
/// are not records (a torn line) are passed over.
fn find_from_end(f: &File, log_id: &str, seq: Option<u64>) -> std::io::Result<Option<Held>> {
    #[derive(serde::Deserialize)]
    struct Key {
        log_id: String,
        seq: u64,
        hash: String,
    }
    const CHUNK: u64 = 64 * 1024;
    let mut pos = f.metadata()?.len();
    // Bytes from `pos` up to the end of the lines not yet looked at.
    let mut carry: Vec<u8> = Vec::new();
    while pos > 0 || !carry.is_empty() {
        if pos > 0 {
            let start = pos.saturating_sub(CHUNK);
            let mut chunk = vec![0u8; (pos - start) as usize];
            f.read_exact_at(&mut chunk, start)?;
            chunk.extend_from_slice(&carry);
            carry = chunk;
            pos = start;
        }
        loop {
            let body = carry.strip_suffix(b"\n").unwrap_or(&carry);
            let (line, rest) = match body.iter().rposition(|&b| b == b'\n') {
                Some(i) => (&body[i + 1..], i + 1),
                // The first line of what was read: whole only at the start of the file.
                None if pos == 0 => (body, 0),
                None => break,
            };
            if let Ok(k) = serde_json::from_slice::<Key>(line)
                && k.log_id == log_id
            {
                match seq {
                    None => {
                        return Ok(Some(Held {
                            seq: k.seq,
                            hash: k.hash,
                        }));
                    }
                    Some(s) if k.seq == s => {
                        return Ok(Some(Held {
                            seq: k.seq,
                            hash: k.hash,
                        }));
                    }
                    // Each log's records are in seq order: it is not further back.
                    Some(s) if k.seq < s => return Ok(None),
                    Some(_) => {}
                }
            }
            carry.truncate(rest);
            if rest == 0 {
                break;
            }
        }
        if pos == 0 {
            break;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(log: &str, seq: u64, hash: &str) -> String {
        format!(r#"{{"hash":"{hash}","log_id":"{log}","prev":"p","seq":{seq}}}"#)
    }

    fn file_with(lines: &[String], tail: &str) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sink.jsonl");
        let mut text = lines.join("\n");
        text.push('\n');
        text.push_str(tail);
        std::fs::write(&p, text).unwrap();
        let f = File::open(&p).unwrap();
        (dir, f)
    }

    #[test]
    fn finds_the_last_record_of_a_log_among_others_and_past_a_torn_line() {
        let mut lines: Vec<String> = (0..3000).map(|i| line("a", i, &format!("h{i}"))).collect();
        lines.push(line("b", 0, "b0"));
        // Many records of another log after it: more than one chunk to read back through.
        lines.extend((0..3000).map(|i| line("c", i, &format!("c{i}"))));
        let (_d, f) = file_with(&lines, "{\"torn");
        let held = |log, seq| find_from_end(&f, log, seq).unwrap();
        assert_eq!(
            held("a", None),
            Some(Held {
                seq: 2999,
                hash: "h2999".into()
            })
        );
        assert_eq!(
            held("b", None),
            Some(Held {
                seq: 0,
                hash: "b0".into()
            })
        );
        assert_eq!(
            held("a", Some(7)),
            Some(Held {
                seq: 7,
                hash: "h7".into()
            })
        );
        assert_eq!(
            held("a", Some(0)),
            Some(Held {
                seq: 0,
                hash: "h0".into()
            })
        );
        assert_eq!(held("a", Some(5000)), None);
        assert_eq!(held("z", None), None);
    }

    #[test]
    fn an_empty_file_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "").unwrap();
        assert_eq!(
            find_from_end(&File::open(&p).unwrap(), "a", None).unwrap(),
            None
        );
    }
}
