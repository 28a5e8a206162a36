//! Ownership checks on the system tier, like sshd's StrictModes: the system policy directory,
//! every directory above it, and every system file (a symlink's target and the directories
//! above that too) must be owned by root and writable by nobody else. Otherwise whoever can
//! write there writes the system tier, so gate refuses to run (exit 78) rather than trust it.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::PolicyError;

/// What makes a system policy path untrustworthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    /// Owned by someone other than root.
    NotRoot { uid: u32 },
    /// Writable by its group.
    GroupWritable,
    /// Writable by everyone.
    OtherWritable,
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsafe::NotRoot { uid } => write!(f, "is owned by uid {uid}, not root"),
            Unsafe::GroupWritable => f.write_str("is writable by its group"),
            Unsafe::OtherWritable => f.write_str("is writable by others"),
        }
    }
}

/// Checks `path`, each directory above it, and the same for the path a symlink resolves to.
/// `checked` remembers paths already found safe, so siblings share their parents' checks.
pub(super) fn check_chain(path: &Path, checked: &mut BTreeSet<PathBuf>) -> Result<(), PolicyError> {
    let real = std::fs::canonicalize(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // A symlink itself is judged by its target, named by its real path (the second walk).
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    for start in [path, real.as_path()] {
        for p in start.ancestors().filter(|p| !p.as_os_str().is_empty()) {
            if checked.contains(p) || (link && p == path) {
                continue;
            }
            check_one(p, path)?;
            checked.insert(p.to_path_buf());
        }
    }
    Ok(())
}

/// One path, after following symlinks.
fn check_one(p: &Path, of: &Path) -> Result<(), PolicyError> {
    let meta = std::fs::metadata(p).map_err(|source| PolicyError::Read {
        path: p.to_path_buf(),
        source,
    })?;
    let problem = if meta.uid() != 0 {
        Some(Unsafe::NotRoot { uid: meta.uid() })
    } else if meta.mode() & 0o002 != 0 {
        Some(Unsafe::OtherWritable)
    } else if meta.mode() & 0o020 != 0 {
        Some(Unsafe::GroupWritable)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PolicyError::Unsafe {
            path: p.to_path_buf(),
            of: of.to_path_buf(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_owned_system_paths_pass() {
        // `/` and `/etc` are root's and not writable by others on any machine gate runs on.
        let mut seen = BTreeSet::new();
        check_chain(Path::new("/etc"), &mut seen).unwrap();
        assert!(seen.contains(Path::new("/")));
    }

    #[test]
    fn world_writable_tmp_is_refused() {
        let err = check_chain(Path::new("/tmp"), &mut BTreeSet::new()).unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::Unsafe {
                    problem: Unsafe::OtherWritable,
                    ..
                }
            ),
            "{err}"
        );
    }
}
