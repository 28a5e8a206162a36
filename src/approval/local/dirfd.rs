//! Files in the spool, reached only through directory descriptors: a path the requester can
//! re-point is resolved once, links are never followed, and what was opened is what is checked.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::trust::EntryError;

/// Largest request or decision file gate reads.
pub(super) const MAX_FILE: u64 = 1024 * 1024;

pub(super) fn errno(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Opens `name` in `dir` without following a symlink there, for reading.
pub(super) fn open_in(dir: &OwnedFd, name: &str, directory: bool) -> Result<File, Errno> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    if directory {
        flags |= OFlag::O_DIRECTORY;
    }
    openat(dir, name, flags, Mode::empty()).map(File::from)
}

/// The names in a directory, read through its descriptor (not its path, which can change).
pub(super) fn names(dir: &OwnedFd) -> Result<Vec<String>, Errno> {
    let mut d = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = OsStr::from_bytes(e.file_name().to_bytes());
        if n == "." || n == ".." {
            continue;
        }
        // Names gate makes are ASCII; anything else is shown (escaped) but never used as a path.
        out.push(n.to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// Reads a whole small file through its descriptor; `what` names it in an error.
pub(super) fn read_small(f: &File, what: &str) -> Result<Vec<u8>, EntryError> {
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| EntryError::File {
            name: what.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(EntryError::TooLarge {
            name: what.to_owned(),
        });
    }
    Ok(bytes)
}
