//! `<log>.checkpoint`: the signed note that fixes where the log ends, kept in two fixed slots
//! rewritten in place (the older one each time), the way LMDB keeps its two meta pages: a torn
//! slot fails its signature and the other one still holds the previous checkpoint.
//!
//! An append reads the checkpoint to compare it with the log and to find the slot to overwrite.
//! Both need the newest slot *signed by the host key*; a signature check is the costliest step of
//! an append after the syncs, so each note is checked at most once per process ([`Trusted`]: the
//! notes this process signed or already found signed), and only as far as needed (the slot with
//! the larger count first).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::replace_file;
use crate::audit::note::{Note, NoteSigner, NoteVerifier};

/// Bytes per slot of a checkpoint file: a signed note (a few hundred bytes) padded with NULs.
pub const CHECKPOINT_SLOT: usize = 1024;

/// How many checked notes a process remembers: an append meets at most the two slots and the
/// note it signs.
const TRUSTED_NOTES: usize = 4;

pub fn checkpoint_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.checkpoint", log.display()))
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

/// The notes a checkpoint file holds: two slots (a file of exactly two [`CHECKPOINT_SLOT`]s with
/// NUL padding, which no note contains), each up to its first NUL, empty ones left out; or, for
/// any other file, the whole file as one note.
pub fn checkpoint_notes(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.len() != 2 * CHECKPOINT_SLOT || !bytes.contains(&0) {
        return vec![bytes];
    }
    bytes
        .chunks(CHECKPOINT_SLOT)
        .map(slot_note)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A slot's note: the bytes before its NUL padding. A slot with anything but NULs after its
/// first NUL is returned whole, so that it reads as no note at all.
fn slot_note(slot: &[u8]) -> &[u8] {
    let end = slot.iter().position(|&b| b == 0).unwrap_or(slot.len());
    if slot[end..].iter().any(|&b| b != 0) {
        slot
    } else {
        &slot[..end]
    }
}

/// A note's parse and the record count its body names (0 when it names none).
fn parse_counted(bytes: &[u8]) -> Option<(Note, u64)> {
    let note = Note::parse(std::str::from_utf8(bytes).ok()?).ok()?;
    let count = note
        .text
        .lines()
        .nth(1)
        .and_then(|c| c.parse::<u64>().ok())
        .unwrap_or(0);
    Some((note, count))
}

/// Of `notes`, the index of the one that parses, passes `signed` and counts the most records
/// (the first of equals); failing that, of the one that parses and counts the most. `signed` is
/// asked in order of count, largest first, and no further than the first yes.
fn newest(notes: &[&[u8]], signed: &mut dyn FnMut(&[u8], &Note) -> bool) -> Option<usize> {
    let mut parsed: Vec<(usize, Note, u64)> = notes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| parse_counted(n).map(|(note, count)| (i, note, count)))
        .collect();
    // Stable: of equal counts, the earlier note comes first.
    parsed.sort_by_key(|(_, _, count)| std::cmp::Reverse(*count));
    parsed
        .iter()
        .find(|(i, note, _)| signed(notes[*i], note))
        .or(parsed.first())
        .map(|(i, _, _)| *i)
}

/// The checkpoint to read from a checkpoint file's bytes: of its notes ([`checkpoint_notes`]),
/// the one that parses, is signed by `key` (when given) and counts the most records. A torn or
/// forged slot loses to a good one; when no note is good, the first is returned so that its
/// reader reports what is wrong with it.
pub fn pick_checkpoint<'a>(bytes: &'a [u8], key: Option<&NoteVerifier>) -> &'a [u8] {
    let notes = checkpoint_notes(bytes);
    let mut signed = |_: &[u8], note: &Note| key.is_none_or(|k| note.verify(k).is_ok());
    match newest(&notes, &mut signed) {
        Some(i) => notes[i],
        None => notes.first().copied().unwrap_or(bytes),
    }
}

/// For an audit, the note of a checkpoint file to check: of a two-slot file, a slot that holds
/// something other than a note signed by `key`, if any (tampering: gate writes each slot whole,
/// and a torn write of its sub-sector note is not expected of a disk), else the newest
/// ([`pick_checkpoint`]).
pub fn checkpoint_to_audit<'a>(bytes: &'a [u8], key: Option<&NoteVerifier>) -> &'a [u8] {
    let bad = checkpoint_notes(bytes).into_iter().find(|n| {
        std::str::from_utf8(n)
            .ok()
            .and_then(|t| Note::parse(t).ok())
            .is_none_or(|note| key.is_some_and(|k| note.verify(k).is_err()))
    });
    bad.unwrap_or_else(|| pick_checkpoint(bytes, key))
}

/// Notes this process signed, or found signed by its host key: the same bytes need no second
/// signature check. One per log handle, and so for one key.
#[derive(Debug, Default)]
pub(super) struct Trusted {
    notes: Mutex<Vec<Vec<u8>>>,
    /// Signature checks made, for the tests that keep them few.
    checks: std::sync::atomic::AtomicUsize,
}

impl Trusted {
    /// Whether `bytes` (parsed as `note`) is signed by `key`, checking the signature only for
    /// bytes not seen before.
    fn signed(&self, bytes: &[u8], note: &Note, key: &NoteVerifier) -> bool {
        let mut known = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if known.iter().any(|k| k == bytes) {
            return true;
        }
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if note.verify(key).is_err() {
            return false;
        }
        if known.len() == TRUSTED_NOTES {
            known.remove(0);
        }
        known.push(bytes.to_vec());
        true
    }

    /// Remembers a note this process just signed.
    fn signed_here(&self, bytes: &[u8]) {
        let mut known = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() == TRUSTED_NOTES {
            known.remove(0);
        }
        known.push(bytes.to_vec());
    }
}

/// A checkpoint's body (origin, record count, head hash in hex), of the note [`pick_checkpoint`]
/// picks: only to compare with the log before appending to it.
pub(super) fn read_body(
    path: &Path,
    key: Option<&NoteVerifier>,
    trusted: &Trusted,
) -> Option<(String, u64, String)> {
    use base64::Engine;
    // Read without following a link or blocking on a FIFO (this runs under the log's lock);
    // a checkpoint is at most two slots, so one read holds it, and anything longer, or that
    // does not parse (a directory, a device), is not one.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf).ok()?;
    let notes = checkpoint_notes(&buf[..n]);
    let mut signed = |b: &[u8], note: &Note| key.is_none_or(|k| trusted.signed(b, note, k));
    let picked = match newest(&notes, &mut signed) {
        Some(i) => notes[i],
        None => notes.first().copied()?,
    };
    let text = std::str::from_utf8(picked).ok()?;
    let mut lines = text.lines();
    let origin = lines.next()?.to_owned();
    let count = lines.next()?.parse().ok()?;
    let head = base64::engine::general_purpose::STANDARD
        .decode(lines.next()?)
        .ok()?;
    Some((origin, count, hex::encode(head)))
}

/// Writes the signed checkpoint for `count` records ending at `head_hex` into the older of the
/// two slots of the checkpoint at `path`, in place, and `fdatasync`s it (the file's size does
/// not change, so no journal commit and no directory fsync). A missing checkpoint, a plain
/// single note (an older gate's, or an independent writer's) or anything that is not a private
/// slot file of ours is replaced atomically by a fresh slot file ([`replace_file`]: a link
/// planted there is replaced, not followed). With `sync` false, nothing is synced (benchmarks).
pub(super) fn write(
    path: &Path,
    signer: &NoteSigner,
    log_id: &str,
    count: u64,
    head_hex: &str,
    sync: bool,
    trusted: &Trusted,
) -> std::io::Result<()> {
    let note = signer.sign(&checkpoint_text(log_id, count, head_hex));
    if note.len() >= CHECKPOINT_SLOT {
        // Too long for a slot (a very long key name): one plain note, as before.
        return replace_file(path, note.as_bytes(), 0o644, sync);
    }
    trusted.signed_here(note.as_bytes());
    let mut slot = vec![0u8; CHECKPOINT_SLOT];
    slot[..note.len()].copy_from_slice(note.as_bytes());
    if let Some(f) = open_slot_file(path) {
        let mut both = vec![0u8; 2 * CHECKPOINT_SLOT];
        f.read_exact_at(&mut both, 0)?;
        let older = older_slot(&both, &signer.verifier(), trusted);
        f.write_all_at(&slot, (older * CHECKPOINT_SLOT) as u64)?;
        return if sync { f.sync_data() } else { Ok(()) };
    }
    slot.resize(2 * CHECKPOINT_SLOT, 0);
    replace_file(path, &slot, 0o644, sync)
}

/// Which slot (0 or 1) of a two-slot checkpoint to overwrite: the one that does not hold the
/// newest checkpoint signed by `key`, so that checkpoint survives a torn write; slot 0 when
/// neither holds one.
fn older_slot(both: &[u8], key: &NoteVerifier, trusted: &Trusted) -> usize {
    let (a, b) = both.split_at(CHECKPOINT_SLOT);
    let slots = [slot_note(a), slot_note(b)];
    // `newest` falls back to an unsigned note when no slot is signed: then slot 0 is rewritten.
    let mut any_signed = false;
    let mut signed = |bytes: &[u8], note: &Note| {
        let yes = trusted.signed(bytes, note, key);
        any_signed |= yes;
        yes
    };
    match newest(&slots, &mut signed) {
        Some(i) if any_signed => 1 - i,
        _ => 0,
    }
}

/// Opens an existing two-slot checkpoint for rewriting in place, only if it is exactly that: a
/// regular file (never through a link), with no other name (a hard link would carry the writes
/// elsewhere), owned by this user, written by nobody else, two slots long.
fn open_slot_file(path: &Path) -> Option<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    let fine = m.file_type().is_file()
        && m.nlink() == 1
        && m.uid() == nix::unistd::geteuid().as_raw()
        && m.mode() & 0o022 == 0
        && m.len() == 2 * CHECKPOINT_SLOT as u64;
    fine.then_some(f)
}

#[cfg(test)]
mod tests {
    use super::super::AuditLog;
    use super::super::tests::body;
    use super::*;

    /// A signed log of two appends: both checkpoint slots hold a note (counts 2 and 3).
    fn both_slots_filled() -> (tempfile::TempDir, AuditLog, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path().join("audit.jsonl")).with_key(d.path().join("key"));
        log.append(vec![body(1)]).unwrap();
        log.append(vec![body(2)]).unwrap();
        let cp = log.checkpoint_path();
        assert_eq!(slot_counts(&cp), vec![Some(2), Some(3)]);
        (d, log, cp)
    }

    /// Overwrites 20 bytes of the second slot's signature (same length, bad signature), as a
    /// torn write or a forger would leave it.
    fn spoil_second_slot_signature(cp: &std::path::Path) {
        let mut bytes = std::fs::read(cp).unwrap();
        let sig_at = CHECKPOINT_SLOT
            + bytes[CHECKPOINT_SLOT..]
                .windows(2)
                .position(|w| w == b"\n\n")
                .unwrap()
            + 30;
        bytes[sig_at..sig_at + 20].copy_from_slice(&[b'A'; 20]);
        std::fs::write(cp, &bytes).unwrap();
    }

    /// The count of each slot's note, if it is one.
    fn slot_counts(cp: &Path) -> Vec<Option<u64>> {
        let bytes = std::fs::read(cp).unwrap();
        assert_eq!(bytes.len(), 2 * CHECKPOINT_SLOT, "two slots");
        bytes
            .chunks(CHECKPOINT_SLOT)
            .map(|s| {
                let n = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
                std::str::from_utf8(n).ok()?.lines().nth(1)?.parse().ok()
            })
            .collect()
    }

    #[test]
    fn checkpoint_slots_alternate_in_place_and_keep_the_previous_one() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let log = AuditLog::new(&path).with_key(d.path().join("key"));
        log.append(vec![body(1)]).unwrap();
        let cp = log.checkpoint_path();
        assert_eq!(slot_counts(&cp), vec![Some(2), None]);
        let ino = std::fs::metadata(&cp).unwrap().ino();
        log.append(vec![body(2)]).unwrap();
        assert_eq!(slot_counts(&cp), vec![Some(2), Some(3)]);
        log.append(vec![body(3)]).unwrap();
        assert_eq!(slot_counts(&cp), vec![Some(4), Some(3)]);
        // Rewritten in place: the same file, no rename.
        assert_eq!(std::fs::metadata(&cp).unwrap().ino(), ino);
        let key = log.signer.get().unwrap().verifier();
        let bytes = std::fs::read(&cp).unwrap();
        let newest = std::str::from_utf8(pick_checkpoint(&bytes, Some(&key))).unwrap();
        assert_eq!(newest.lines().nth(1), Some("4"));
    }

    #[test]
    fn a_torn_checkpoint_slot_falls_back_to_the_other_and_is_rewritten_next() {
        let (d, log, cp) = both_slots_filled();
        // A crash tore the newest slot: its body is there, its signature half written.
        spoil_second_slot_signature(&cp);
        let key = log.signer.get().unwrap().verifier();
        assert_eq!(
            read_body(&cp, Some(&key), &Trusted::default()).map(|b| b.1),
            Some(2),
            "the torn slot is passed over"
        );
        // A fresh process (no memory of what it signed) appends: the torn slot is the one rewritten.
        let again = AuditLog::new(log.path()).with_key(d.path().join("key"));
        again.append(vec![body(3)]).unwrap();
        assert_eq!(slot_counts(&cp), vec![Some(2), Some(4)]);
        assert_eq!(
            read_body(&cp, Some(&key), &Trusted::default()).map(|b| b.1),
            Some(4)
        );
    }

    #[test]
    fn a_plain_note_checkpoint_is_read_and_replaced_by_slots() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let log = AuditLog::new(&path).with_key(d.path().join("key"));
        log.append(vec![body(1)]).unwrap();
        let cp = log.checkpoint_path();
        let key = log.signer.get().unwrap().verifier();
        let bytes = std::fs::read(&cp).unwrap();
        // What an older gate or an independent writer leaves: the note alone.
        let plain = pick_checkpoint(&bytes, Some(&key)).to_vec();
        std::fs::write(&cp, &plain).unwrap();
        assert_eq!(checkpoint_notes(&plain), vec![&plain[..]]);
        assert_eq!(
            read_body(&cp, Some(&key), &Trusted::default()).map(|b| b.1),
            Some(2)
        );
        AuditLog::new(&path)
            .with_key(d.path().join("key"))
            .append(vec![body(2)])
            .unwrap();
        assert_eq!(slot_counts(&cp), vec![Some(3), None]);
    }

    #[test]
    fn a_hard_linked_checkpoint_is_replaced_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let log = AuditLog::new(&path).with_key(d.path().join("key"));
        log.append(vec![body(1)]).unwrap();
        let cp = log.checkpoint_path();
        let other = d.path().join("other");
        std::fs::hard_link(&cp, &other).unwrap();
        let before = std::fs::read(&other).unwrap();
        log.append(vec![body(2)]).unwrap();
        assert_eq!(
            std::fs::read(&other).unwrap(),
            before,
            "the other name is untouched"
        );
        assert_eq!(std::fs::metadata(&cp).unwrap().nlink(), 1);
        let counts = slot_counts(&cp);
        assert!(counts.contains(&Some(3)), "{counts:?}");
    }

    #[test]
    fn a_process_checks_each_checkpoint_note_once_and_not_the_ones_it_signed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let key = d.path().join("key");
        let first = AuditLog::new(&path).with_key(&key);
        first.append(vec![body(1)]).unwrap();
        first.append(vec![body(2)]).unwrap();
        // A run: a fresh process appends its decision and its result.
        let run = AuditLog::new(&path).with_key(&key);
        run.append(vec![body(3)]).unwrap();
        run.append(vec![body(4)]).unwrap();
        // The newest slot's note, once (comparing with the log and finding the slot to write
        // both need it); the older slot is never needed; the notes it signed, never.
        assert_eq!(
            run.trusted
                .checks
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(slot_counts(&run.checkpoint_path()), vec![Some(4), Some(5)]);
    }

    #[test]
    fn a_slot_changed_after_this_process_wrote_it_is_checked_again() {
        let (_d, log, cp) = both_slots_filled();
        // The slot this handle wrote last is spoiled behind its back (same length, bad
        // signature): the same handle must not take it for the note it signed.
        spoil_second_slot_signature(&cp);
        log.append(vec![body(3)]).unwrap();
        // The good older slot (count 2) is kept; the spoiled one is rewritten.
        assert_eq!(slot_counts(&cp), vec![Some(2), Some(4)]);
    }
}
