//! The walk's per-record state, kept bounded however long the log is: every record's claimed
//! hash (for duplicates and the checkpoint head) with only the most recent in memory and the
//! rest spilled to an unlinked temporary file, and the runs still awaiting their result stored
//! compactly (a canonical UUID request id as 16 bytes).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Hashes kept in memory before the older ones go to the spill file (2 MiB).
const KEEP: usize = 1 << 16;

/// Every record's claimed hash, by position.
#[derive(Default)]
pub(super) struct Hashes {
    recent: Vec<[u8; 32]>,
    /// How many of the first hashes live in `file`.
    spilled: u64,
    file: Option<File>,
    /// No spill file could be made: everything stays in memory (correct, just unbounded).
    in_memory: bool,
}

impl Hashes {
    pub(super) fn len(&self) -> u64 {
        self.spilled + self.recent.len() as u64
    }

    pub(super) fn push(&mut self, h: [u8; 32]) {
        if self.recent.len() >= KEEP && !self.in_memory && !self.spill() {
            self.in_memory = true;
        }
        self.recent.push(h);
    }

    /// Moves the in-memory hashes to the end of the spill file; false if that cannot be done.
    fn spill(&mut self) -> bool {
        if self.file.is_none() {
            self.file = spill_file();
        }
        let Some(f) = &self.file else {
            return false;
        };
        let bytes: Vec<u8> = self.recent.iter().flatten().copied().collect();
        if f.write_all_at(&bytes, self.spilled * 32).is_err() {
            return false;
        }
        self.spilled += self.recent.len() as u64;
        self.recent.clear();
        true
    }

    pub(super) fn get(&self, i: u64) -> Option<[u8; 32]> {
        if i >= self.len() {
            return None;
        }
        if i >= self.spilled {
            return self.recent.get((i - self.spilled) as usize).copied();
        }
        let mut h = [0u8; 32];
        self.file.as_ref()?.read_exact_at(&mut h, i * 32).ok()?;
        Some(h)
    }
}

/// A private temporary file that is already unlinked: created exclusively (never through a
/// planted symlink), mode 0600, and removed from the directory at once.
fn spill_file() -> Option<File> {
    let dir = std::env::temp_dir();
    for attempt in 0..8u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            ".gate-verify-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                let _ = std::fs::remove_file(&path);
                return Some(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Request ids whose command ran and whose result has not been seen, with the decision's seq.
#[derive(Default)]
pub(super) struct OpenRuns {
    uuids: HashMap<u128, u64>,
    other: BTreeMap<String, u64>,
}

impl OpenRuns {
    /// Opens a run; `id` is the request id's UTF-8 text.
    pub(super) fn insert(&mut self, id: &[u8], seq: u64) {
        match uuid_bits(id) {
            Some(u) => {
                self.uuids.insert(u, seq);
            }
            None => {
                self.other
                    .insert(String::from_utf8_lossy(id).into_owned(), seq);
            }
        }
    }

    /// Closes the run; false if it was not open.
    pub(super) fn remove(&mut self, id: &[u8]) -> bool {
        match uuid_bits(id) {
            Some(u) => self.uuids.remove(&u).is_some(),
            None => self.other.remove(&*String::from_utf8_lossy(id)).is_some(),
        }
    }

    /// The runs still open, ordered by request id.
    pub(super) fn sorted(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .uuids
            .iter()
            .map(|(u, s)| (uuid_text(*u), *s))
            .chain(self.other.iter().map(|(k, s)| (k.clone(), *s)))
            .collect();
        all.sort();
        all
    }
}

/// A request id in canonical form (lowercase, hyphenated UUID text) as 128 bits; anything else
/// is kept as text, so the id reads back exactly as written.
fn uuid_bits(id: &[u8]) -> Option<u128> {
    let b = id;
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

fn uuid_text(v: u128) -> String {
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_read_back_exactly() {
        let mut o = OpenRuns::default();
        for id in [
            "01a21800-0000-7000-8000-00000000000a",
            "01A21800-0000-7000-8000-00000000000a",
            "not-a-uuid",
            "",
        ] {
            o.insert(id.as_bytes(), 1);
        }
        let ids: Vec<String> = o.sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            ids,
            [
                "",
                "01A21800-0000-7000-8000-00000000000a",
                "01a21800-0000-7000-8000-00000000000a",
                "not-a-uuid"
            ]
        );
        assert!(o.remove(b"01a21800-0000-7000-8000-00000000000a"));
        assert!(!o.remove(b"01a21800-0000-7000-8000-00000000000a"));
        assert!(o.remove(b"01A21800-0000-7000-8000-00000000000a"));
    }

    #[test]
    fn hashes_past_the_memory_window_read_back_from_the_spill_file() {
        let mut h = Hashes::default();
        let n = KEEP as u64 * 2 + 5;
        for i in 0..n {
            let mut x = [0u8; 32];
            x[..8].copy_from_slice(&i.to_le_bytes());
            h.push(x);
        }
        assert_eq!(h.len(), n);
        assert!(h.recent.len() <= KEEP);
        for i in [0, 1, KEEP as u64 - 1, KEEP as u64, n - 1] {
            let x = h.get(i).unwrap();
            assert_eq!(u64::from_le_bytes(x[..8].try_into().unwrap()), i);
        }
        assert_eq!(h.get(n), None);
    }
}
