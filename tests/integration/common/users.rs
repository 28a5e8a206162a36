//! Throw-away OS users for the tests that act as other people (approvers, an agent running as
//! its own user), and a copy of the gate binary they can execute. Needs root, as CI has.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

pub fn lookup(name: &str) -> Option<User> {
    let u = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(User {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    })
}

/// The named users, made with `useradd` when missing (idempotent: existing users are reused).
/// `test` names the test module for the message when not run as root. Also makes the shared
/// binary copy (see [`bin_for_others`]).
pub fn ensure(names: &[&'static str], test: &str) -> BTreeMap<&'static str, User> {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "{test} needs root to create throw-away users (useradd) and act as them (setpriv); \
         run it as root, as CI does: sudo -E cargo test --test integration {test}::"
    );
    let users = names
        .iter()
        .map(|&name| {
            if lookup(name).is_none() {
                let out = Command::new("useradd")
                    .args(["-M", "-s", "/usr/sbin/nologin", name])
                    .output()
                    .expect("run useradd");
                // Another process may have made it meanwhile; only a still-missing user is fatal.
                assert!(
                    lookup(name).is_some(),
                    "useradd {name} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            (name, lookup(name).unwrap())
        })
        .collect();
    SHARED_BIN.get_or_init(shared_bin);
    users
}

/// A copy of gate other users can execute, made once. `cp` writes it, not this process: every
/// test shares this process and spawns children from its own thread, and a child forked while
/// this process held the copy's write descriptor would keep it open past the copy and make an
/// exec of the copy fail with ETXTBSY. `None` when hard links into the temp directory work, so
/// no copy is needed.
static SHARED_BIN: OnceLock<Option<PathBuf>> = OnceLock::new();

fn shared_bin() -> Option<PathBuf> {
    let tmp = std::env::temp_dir();
    let probe = tmp.join(format!(".gate-test-link-probe-{}", std::process::id()));
    if std::fs::hard_link(super::bin(), &probe).is_ok() {
        let _ = std::fs::remove_file(&probe);
        return None;
    }
    // Keyed by the build, so repeated runs reuse one copy.
    let meta = std::fs::metadata(super::bin()).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let dir = tmp.join(format!("gate-test-bin-{}-{}", meta.len(), mtime.as_nanos()));
    let bin = dir.join("gate");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let part = dir.join(format!(".gate.{}", std::process::id()));
        let copied = Command::new("cp")
            .arg(super::bin())
            .arg(&part)
            .status()
            .expect("run cp");
        assert!(
            copied.success(),
            "cp {} {}: {copied}",
            super::bin(),
            part.display()
        );
        std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&part, &bin).unwrap();
    }
    Some(bin)
}

/// The gate binary at a path other users can reach (they cannot necessarily read the cargo
/// target directory): the shared copy, else a hard link in `bin_dir`. Call [`ensure`] first.
pub fn bin_for_others(bin_dir: &Path) -> PathBuf {
    if let Some(Some(shared)) = SHARED_BIN.get() {
        return shared.clone();
    }
    let bin = bin_dir.join("gate");
    std::fs::hard_link(super::bin(), &bin).expect("hard link the gate binary");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}
