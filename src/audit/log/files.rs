//! Files beside the audit log: the rules for the directory they live in (private to this user
//! or root, no world-writable non-sticky parent) and how they are written (a fresh file under an
//! unguessable name, `O_CREAT|O_EXCL|O_NOFOLLOW`, renamed into place), so nobody else can plant
//! a link or a file where gate is about to write.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a directory is no place for the log, its key or their side files.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot inspect its directory `{dir}`: {source}")]
    Inspect {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("its directory `{dir}` is writable by other users (mode {mode:04o})")]
    Writable { dir: PathBuf, mode: u32 },
    #[error("its directory `{dir}` belongs to uid {owner}, not to you (uid {me}) or root")]
    Owner { dir: PathBuf, owner: u32, me: u32 },
    #[error(
        "`{above}` above it is writable by every user without the sticky bit (mode {mode:04o})"
    )]
    OpenAbove { above: PathBuf, mode: u32 },
    #[error("cannot read the current directory: {0}")]
    Cwd(std::io::Error),
}

/// The log's directory must be one no other user can write to (else they could plant links
/// and files under the names gate writes, or swap the log): not group- or other-writable,
/// sticky or not, and owned by this user or root. Directories above it may be writable by
/// others only with the sticky bit (like `/tmp`), which stops them renaming what is not theirs.
pub(crate) fn check_dir(dir: &Path) -> Result<(), DirError> {
    check_dir_itself(dir)?;
    check_dirs_above(dir)?;
    // It passed the stricter test, so it is fine as a directory above, too.
    fine_above()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dir.to_path_buf());
    Ok(())
}

/// Directories this process found fine as ones above a log, key or side file, together with
/// every directory above them: the log's directory, then the key's beside it, walk up to `/`
/// once, not once each.
fn fine_above() -> &'static std::sync::Mutex<std::collections::HashSet<PathBuf>> {
    static FINE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> =
        std::sync::OnceLock::new();
    FINE.get_or_init(Default::default)
}

/// The directory's own part of [`check_dir`]; returns its (device, inode).
pub(super) fn check_dir_itself(dir: &Path) -> Result<(u64, u64), DirError> {
    let meta = std::fs::metadata(dir).map_err(|source| DirError::Inspect {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        return Err(DirError::Writable {
            dir: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let me = *EUID.get_or_init(|| nix::unistd::geteuid().as_raw());
    if meta.uid() != me && meta.uid() != 0 {
        return Err(DirError::Owner {
            dir: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    Ok((meta.dev(), meta.ino()))
}

/// The part of [`check_dir`] about the directories above: none writable by everyone without
/// the sticky bit.
pub(super) fn check_dirs_above(dir: &Path) -> Result<(), DirError> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map_err(DirError::Cwd)?.join(dir)
    };
    let mut fine = fine_above().lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = Vec::new();
    for up in abs.ancestors().skip(1) {
        if fine.contains(up) {
            break;
        }
        if let Ok(m) = std::fs::metadata(up)
            && m.mode() & 0o002 != 0
            && m.mode() & 0o1000 == 0
        {
            return Err(DirError::OpenAbove {
                above: up.to_path_buf(),
                mode: m.mode() & 0o7777,
            });
        }
        checked.push(up.to_path_buf());
    }
    fine.extend(checked);
    Ok(())
}

/// Creates a new file named `<base>.<16 random hex digits>` that did not exist before
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`): nothing planted under a name gate would use can be opened
/// in its place, and nobody can guess the name in advance.
pub fn create_unique(base: &Path, mode: u32) -> std::io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..16 {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut name: OsString = base.as_os_str().to_owned();
        name.push(".");
        name.push(hex::encode(b));
        let path = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Replaces `dest` atomically with `bytes`: a fresh `<dest>.tmp.<random>` ([`create_unique`]),
/// fsync, rename over `dest` (which replaces a link there rather than following it), fsync the
/// directory. With `sync` false, the fsyncs are skipped (benchmarks only).
pub fn replace_file(dest: &Path, bytes: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let mut base = dest.as_os_str().to_owned();
    base.push(".tmp");
    let (mut f, tmp) = create_unique(Path::new(&base), mode)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| if sync { f.sync_all() } else { Ok(()) })
        .and_then(|()| std::fs::rename(&tmp, dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Once renamed, the new file is in place; the directory's fsync makes that durable.
    if sync && let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}
