//! PATH shims: links named after a program (`aws`, `kubectl`) that point at the gate binary, so
//! a command typed plainly goes through gate. This module owns the two questions a shim raises:
//! *is this file gate?* (a link to this binary, by device and inode, or anything in a directory
//! `gate shim install` marked), and *which real program does a name stand for?* — the first
//! one on PATH that is not gate, so a shim never finds itself, another shim, or a second shim
//! directory, and can never loop back into gate by following PATH.
//!
//! It reads the file system only; the caller supplies PATH and the working directory.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file `gate shim install` leaves in every shim directory. A directory holding it is
/// skipped whole when a real program is looked for, whatever else is in it.
pub const MARKER: &str = ".gate-shims";

/// What the marker file says to a person who finds it.
pub const MARKER_TEXT: &str = "This directory holds gate shims: links named after programs that run them through \
gate.\nManage them with `gate shim list|install|remove --dir THIS_DIR`; gate never looks for \
real programs here.\n";

/// The running gate binary, known by device and inode: a symlink, a chain of symlinks or a
/// hard link to it is the same file; a path string is not compared at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateBinary {
    dev: u64,
    ino: u64,
    /// Where it is, for new links (`gate shim install`) and messages.
    pub path: PathBuf,
}

impl GateBinary {
    /// This process's own executable. `/proc/self/exe` names the very inode that runs, even
    /// when the file was replaced or deleted since (an upgrade); elsewhere the path it started from.
    pub fn current() -> std::io::Result<Self> {
        let path = std::env::current_exe()?;
        let m = std::fs::metadata("/proc/self/exe").or_else(|_| std::fs::metadata(&path))?;
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        Ok(GateBinary {
            dev: m.dev(),
            ino: m.ino(),
            path,
        })
    }

    /// Whether `file` is this binary, through any number of symlinks or as a hard link.
    pub fn is(&self, file: &Path) -> bool {
        std::fs::metadata(file).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

/// Whether `dir` is a shim directory (it holds the [`MARKER`] file).
pub fn is_shim_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(MARKER)).is_ok()
}

/// Why no real program was found for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFound {
    /// Nothing by that name on PATH but gate itself (shims, links to gate).
    Missing { skipped: Vec<PathBuf> },
    /// A file by that name that cannot be executed (the first one).
    NotExecutable(PathBuf),
}

/// The PATH entries in search order, as `execvp` reads them: an empty entry is the working
/// directory, a relative one is taken from it. Results are absolute.
pub fn path_dirs(path_env: Option<&OsStr>, cwd: &Path) -> Vec<PathBuf> {
    let path_env = path_env.unwrap_or_else(|| OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(path_env)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                cwd.to_path_buf()
            } else {
                cwd.join(dir)
            }
        })
        .collect()
}

/// The real program `name` stands for: the first executable file named `name` on PATH that
/// is not in a shim directory and is not this gate binary. `name` must be a plain name (no
/// `/`). Without `gate` (its executable cannot be read), only shim directories are skipped.
pub fn find_real(
    name: &str,
    path_env: Option<&OsStr>,
    cwd: &Path,
    gate: Option<&GateBinary>,
) -> Result<PathBuf, NotFound> {
    let mut skipped = Vec::new();
    let mut not_executable = None;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(NotFound::Missing { skipped });
    }
    for dir in path_dirs(path_env, cwd) {
        let candidate = dir.join(name);
        let Ok(m) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        if is_shim_dir(&dir) || gate.is_some_and(|g| g.is(&candidate)) {
            skipped.push(candidate);
            continue;
        }
        if m.permissions().mode() & 0o111 != 0 {
            return Ok(candidate);
        }
        not_executable.get_or_insert(candidate);
    }
    Err(match not_executable {
        Some(p) => NotFound::NotExecutable(p),
        None => NotFound::Missing { skipped },
    })
}

/// PATH without its shim directories: what the classifier follows symlinks on, so a program
/// reached through a shim is classified under its own names and never under `gate`.
pub fn path_without_shims(path_env: &OsStr, cwd: &Path) -> OsString {
    let kept: Vec<PathBuf> = std::env::split_paths(path_env)
        .filter(|dir| {
            let abs = if dir.as_os_str().is_empty() {
                cwd.to_path_buf()
            } else {
                cwd.join(dir)
            };
            !is_shim_dir(&abs)
        })
        .collect();
    std::env::join_paths(kept).unwrap_or_else(|_| path_env.to_owned())
}

/// The name gate was started under, when it is not `gate`: the program a shim stands for.
/// `None` for gate itself (and for a process started without an argv[0]). Only the basename
/// counts: `/any/dir/aws` and `aws` are both the shim `aws`.
pub fn shim_name(argv0: Option<&OsStr>) -> Option<&OsStr> {
    let argv0 = argv0?;
    let base = Path::new(argv0).file_name().unwrap_or(argv0);
    (base != "gate" && !argv0.is_empty()).then_some(base)
}

/// Whether `name` may be a shim: a program's plain name (no `/`, not `.`/`..`, not starting
/// with `-` or `.`, no control characters) and not `gate` itself.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.contains('/')
        && !name.starts_with(['-', '.'])
        && !name.chars().any(char::is_control)
        && name != "gate"
}

/// What a file in a shim directory is, for `list` and `remove`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A symlink to this gate binary: a shim gate made, safe to remove.
    Shim { target: PathBuf },
    /// A symlink whose target is gone but was named `gate`: a shim of a gate binary that has
    /// moved or been removed since. Also safe to remove.
    Stale { target: PathBuf },
    /// Anything else (a real program, a link elsewhere, a directory): gate leaves it alone.
    Foreign,
}

/// What the file at `path` is (see [`Entry`]).
pub fn entry(path: &Path, gate: &GateBinary) -> Entry {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Entry::Foreign;
    };
    if !m.file_type().is_symlink() {
        return Entry::Foreign;
    }
    let Ok(target) = std::fs::read_link(path) else {
        return Entry::Foreign;
    };
    if gate.is(path) {
        return Entry::Shim { target };
    }
    let dangling = std::fs::metadata(path).is_err();
    if dangling && target.file_name().is_some_and(|n| n == "gate") {
        return Entry::Stale { target };
    }
    Entry::Foreign
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn exe(p: &Path) {
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn shim_names_come_from_the_basename() {
        let n = |s: &str| shim_name(Some(OsStr::new(s))).map(|o| o.to_owned());
        assert_eq!(n("gate"), None);
        assert_eq!(n("/usr/bin/gate"), None);
        assert_eq!(n("aws"), Some("aws".into()));
        assert_eq!(n("/x/shims/aws"), Some("aws".into()));
        assert_eq!(shim_name(None), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn names_that_are_no_program() {
        for bad in ["", "a/b", ".", "..", "-rf", ".hidden", "gate", "a\nb"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for good in ["aws", "kubectl", "terraform", "python3.12", "g++"] {
            assert!(valid_name(good), "{good}");
        }
    }

    #[test]
    fn the_real_program_skips_shim_dirs_and_empty_entries_are_the_cwd() {
        let d = tempfile::tempdir().unwrap();
        let shims = d.path().join("shims");
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&shims).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(shims.join(MARKER), MARKER_TEXT).unwrap();
        exe(&shims.join("tool"));
        exe(&bin.join("tool"));
        let path = std::env::join_paths([&shims, &shims, &bin]).unwrap();
        assert_eq!(
            find_real("tool", Some(&path), d.path(), None),
            Ok(bin.join("tool"))
        );
        // An empty entry and a relative one are read from the working directory.
        assert_eq!(
            find_real("tool", Some(OsStr::new(":")), &bin, None),
            Ok(bin.join("tool"))
        );
        assert_eq!(
            find_real("tool", Some(OsStr::new("bin")), d.path(), None),
            Ok(bin.join("tool"))
        );
        let only = std::env::join_paths([&shims]).unwrap();
        assert!(matches!(
            find_real("tool", Some(&only), d.path(), None),
            Err(NotFound::Missing { skipped }) if skipped.len() == 1
        ));
        assert_eq!(
            path_without_shims(&path, d.path()),
            std::env::join_paths([&bin]).unwrap()
        );
    }

    #[test]
    fn a_link_to_gate_is_gate_by_inode() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("gate");
        exe(&real);
        let m = std::fs::metadata(&real).unwrap();
        let g = GateBinary {
            dev: m.dev(),
            ino: m.ino(),
            path: real.clone(),
        };
        symlink(&real, d.path().join("a")).unwrap();
        symlink(d.path().join("a"), d.path().join("b")).unwrap();
        std::fs::hard_link(&real, d.path().join("c")).unwrap();
        for n in ["a", "b", "c"] {
            assert!(g.is(&d.path().join(n)), "{n}");
        }
        assert_eq!(
            entry(&d.path().join("a"), &g),
            Entry::Shim {
                target: real.clone()
            }
        );
        assert_eq!(entry(&d.path().join("c"), &g), Entry::Foreign, "hard link");
        symlink(d.path().join("gone/gate"), d.path().join("stale")).unwrap();
        assert!(matches!(
            entry(&d.path().join("stale"), &g),
            Entry::Stale { .. }
        ));
        symlink("/bin/sh", d.path().join("sh")).unwrap();
        assert_eq!(entry(&d.path().join("sh"), &g), Entry::Foreign);
    }
}
