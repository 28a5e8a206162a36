//! Whether a spooled request still has a gate waiting for it. The waiting gate holds an
//! exclusive `flock` on `<id>/lock` for as long as it waits; the kernel drops it when that
//! process ends, however it ends (SIGKILL included). So a free lock means nobody waits, and a
//! pid in `request.json` — the requester's word, and reused by the system — decides nothing.
//!
//! Who can change the answer: nobody can take a lock the waiter holds, so nobody can make a
//! live request look dead. Only the requester can write into its own entry directory (and,
//! in the sticky spool, rename or remove it), so a forged or replaced lock file can only make
//! the requester's own request disappear. A lock file that is a symbolic link, not a regular
//! file, or not the entry owner's reads as "nobody waits".

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::dirfd::{names, open_in};

/// The lock file in each request's directory.
pub(super) const LOCK: &str = "lock";

/// Whether a gate waits for a spooled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    /// Its waiting gate holds the lock (or what we found cannot be judged: kept, not removed).
    Waiting,
    /// The lock is free, or there is no lock gate would have made: nobody waits.
    Gone,
    /// No lock file at all: being created just now, or left by a gate killed before it made one.
    NoLock,
}

/// Looks at `<root>/<name>/lock`.
pub(super) fn liveness(root: &OwnedFd, name: &str) -> Liveness {
    let dir = match open_in(root, name, true) {
        Ok(d) => d,
        Err(Errno::ENOENT) => return Liveness::Gone,
        Err(_) => return Liveness::Waiting,
    };
    let Ok(dir_meta) = dir.metadata() else {
        return Liveness::Waiting;
    };
    let dir = OwnedFd::from(dir);
    let lock = match open_in(&dir, LOCK, false) {
        Ok(f) => f,
        Err(Errno::ENOENT) => return Liveness::NoLock,
        // A link planted as the lock: not one gate made.
        Err(Errno::ELOOP) => return Liveness::Gone,
        Err(_) => return Liveness::Waiting,
    };
    let Ok(meta) = lock.metadata() else {
        return Liveness::Waiting;
    };
    // A hard link to somebody else's held lock would lend this entry their waiter's life: it
    // is theirs, not this entry owner's. (The link count is no test: a link somebody else made
    // to a live waiter's lock must not make that request look dead.)
    if !meta.is_file() || meta.uid() != dir_meta.uid() {
        return Liveness::Gone;
    }
    match lock.try_lock_shared() {
        // Nobody holds it exclusively: the waiter is gone. Dropping `lock` releases ours.
        Ok(()) => Liveness::Gone,
        Err(std::fs::TryLockError::WouldBlock) => Liveness::Waiting,
        Err(std::fs::TryLockError::Error(_)) => Liveness::Waiting,
    }
}

/// Removes the entry `name` (its files, then the directory). Works only for its owner and
/// root — the sticky spool and the entry's own mode see to that — and is silent otherwise:
/// for everyone else a dead entry is only hidden.
pub(super) fn remove_entry(root: &OwnedFd, name: &str) {
    if let Ok(dir) = open_in(root, name, true) {
        let dir = OwnedFd::from(dir);
        if let Ok(entries) = names(&dir) {
            for n in entries {
                let _ = unlinkat(&dir, n.as_str(), UnlinkatFlags::NoRemoveDir);
            }
        }
    }
    let _ = unlinkat(root, name, UnlinkatFlags::RemoveDir);
}

/// Removes `name` if nobody waits for it and `me` may: the entry's owner, or root. Returns
/// whether it is gone now.
pub(super) fn sweep(root: &OwnedFd, name: &str, me: u32) -> bool {
    let owner = open_in(root, name, true)
        .ok()
        .and_then(|d| d.metadata().ok())
        .map(|m| m.uid());
    if owner.is_none_or(|o| o != me && me != 0) || liveness(root, name) != Liveness::Gone {
        return false;
    }
    remove_entry(root, name);
    matches!(open_in(root, name, true), Err(Errno::ENOENT))
}
