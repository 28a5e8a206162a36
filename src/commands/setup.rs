//! `gate setup local`: makes, once and as root, what approvals on one machine need — a group,
//! a shared spool it owns (root-owned, sticky, setgid, mode 3770) and the system policy file
//! that names the spool. Running it again changes nothing and says so; with `--dry-run` it
//! only says what it would do.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::SYSTEM_POLICY_DIR;
use crate::error::Error;
use crate::output::{Output, escape};
use crate::policy::{BackendKind, Policy, Tier};

/// The spool's mode: sticky (nobody removes what another wrote), setgid (entries stay in the
/// group), read/write/search for root and the group, nothing for others.
const SPOOL_MODE: u32 = 0o3770;

/// What `gate setup local` was asked to do.
#[derive(Debug, Clone)]
pub struct LocalSetup {
    pub group: String,
    pub spool: PathBuf,
    pub policy_file: PathBuf,
    pub dry_run: bool,
    /// Print what was done as JSON on stdout too.
    pub json: bool,
}

impl LocalSetup {
    pub const DEFAULT_GROUP: &'static str = "gate";
    pub const DEFAULT_SPOOL: &'static str = "/var/lib/gate/spool";

    /// The policy file it writes unless told otherwise.
    pub fn default_policy_file() -> PathBuf {
        Path::new(SYSTEM_POLICY_DIR).join("local-spool.yaml")
    }
}

/// A POSIX-portable group name, as `groupadd` takes it.
fn valid_group(name: &str) -> bool {
    let mut b = name.bytes();
    name.len() <= 32
        && b.next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::config(format!("cannot {what} `{}`: {e}", path.display()))
}

/// The spool file's text: the backend `local`, and why it is there.
fn policy_text(spool: &str, group: &str) -> String {
    // JSON's double-quoted string is YAML's too: any path reads back as written.
    let quoted = serde_json::to_string(spool).unwrap_or_default();
    format!(
        "# Made by `gate setup local`: the shared spool for approvals on this machine.\n\
         # Requesters and approvers join the group `{group}`: sudo usermod -aG {group} NAME\n\
         version: 1\n\
         backends:\n  local: {{ kind: local, spool: {quoted} }}\n"
    )
}

pub fn local(out: &Output, s: LocalSetup) -> Result<i32, Error> {
    if !valid_group(&s.group) {
        return Err(Error::Usage(format!(
            "`{}` is not a group name (lower-case letters, digits, `_` and `-`, starting with a \
             letter or `_`, at most 32)",
            escape(&s.group)
        )));
    }
    let Some(spool_str) = s.spool.to_str().filter(|_| s.spool.is_absolute()) else {
        return Err(Error::Usage(format!(
            "`--spool {}`: give an absolute path in UTF-8 (every user must name the same place)",
            escape(&s.spool.to_string_lossy())
        )));
    };
    if !s.dry_run && !nix::unistd::Uid::effective().is_root() {
        return Err(Error::Denied {
            message: "`gate setup local` makes a group, a directory under /var/lib and a system \
                      policy file: it needs root"
                .into(),
            hint: Some(
                "run `sudo gate setup local` (or `gate setup local --dry-run` to see what it \
                 would do)"
                    .into(),
            ),
        });
    }
    let would = if s.dry_run { "would " } else { "" };
    let mut done: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // The system policy must not already route local approvals elsewhere.
    let text = policy_text(spool_str, &s.group);
    let named_elsewhere = named_by_system_policy(&s.policy_file, spool_str)?;

    check_place(&s.spool)?;

    // 1. The group.
    let gid = match nix::unistd::Group::from_name(&s.group).ok().flatten() {
        Some(g) => Some(g.gid.as_raw()),
        None if s.dry_run => {
            done.push(format!("{would}create the group `{}`", s.group));
            None
        }
        None => {
            let ran = std::process::Command::new("groupadd")
                .args(["--system", &s.group])
                .output()
                .map_err(|e| {
                    Error::config(format!("cannot run `groupadd --system {}`: {e}", s.group))
                })?;
            let g = nix::unistd::Group::from_name(&s.group)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Error::config(format!(
                        "`groupadd --system {}` did not make the group: {}",
                        s.group,
                        escape(String::from_utf8_lossy(&ran.stderr).trim())
                    ))
                })?;
            done.push(format!("created the group `{}`", s.group));
            Some(g.gid.as_raw())
        }
    };

    // 2. The spool and the directories above it.
    spool_dir(&s, gid, &mut done)?;

    // 3. The system policy file naming it.
    if let Some(other) = &named_elsewhere {
        out.info(&format!(
            "the system policy already names `{spool_str}` as the local spool (in `{}`); not \
             writing `{}`",
            other.display(),
            s.policy_file.display()
        ));
    } else if std::fs::read_to_string(&s.policy_file).ok().as_deref() != Some(text.as_str()) {
        let first = s.policy_file.parent() == Some(Path::new(SYSTEM_POLICY_DIR))
            && crate::policy::discover_sources(Path::new(SYSTEM_POLICY_DIR), None, None, &[])
                .map(|v| {
                    v.iter()
                        .all(|x| x.tier != Tier::System || x.path == s.policy_file)
                })
                .unwrap_or(false);
        if !s.dry_run {
            write_policy(&s.policy_file, &text)?;
        }
        done.push(format!(
            "{would}write `{}` (the backend `local` with this spool)",
            s.policy_file.display()
        ));
        if first {
            notes.push(format!(
                "note: it is the first system policy file: from now on policy files outside \
                 `{SYSTEM_POLICY_DIR}` (yours, `GATE_POLICY`, `--policy`) may only add rules and \
                 tighten; put shared rules in `{SYSTEM_POLICY_DIR}`"
            ));
        }
    }

    if done.is_empty() {
        out.info(&format!(
            "nothing to change: the group `{}`, the spool `{spool_str}` (root:{}, mode {:04o}) \
             and `{}` are set up already",
            s.group,
            s.group,
            SPOOL_MODE,
            named_elsewhere.as_ref().unwrap_or(&s.policy_file).display()
        ));
    } else {
        for d in &done {
            out.info(d);
        }
    }
    for n in &notes {
        out.info(n);
    }
    if s.json {
        out.data(
            &serde_json::json!({
                "group": s.group,
                "spool": spool_str,
                "policy_file": named_elsewhere.as_ref().unwrap_or(&s.policy_file),
                "dry_run": s.dry_run,
                "changed": !done.is_empty() && !s.dry_run,
                "actions": done,
            })
            .to_string(),
        );
    }
    out.info(&format!(
        "next: add each requester and approver to the group: `sudo usermod -aG {g} NAME`. A new \
         membership applies from that user's next login (or in a shell started with `newgrp \
         {g}`). Approvers answer with `gate requests` and `gate approve ID`.",
        g = s.group
    ));
    Ok(0)
}

/// The system policy file (other than `ours`) that already names `spool` as a local spool, or
/// an error when the system policy names a different local spool: two would compete.
fn named_by_system_policy(ours: &Path, spool: &str) -> Result<Option<PathBuf>, Error> {
    let sources: Vec<_> =
        crate::policy::discover_sources(Path::new(SYSTEM_POLICY_DIR), None, None, &[])?
            .into_iter()
            .filter(|s| s.tier == Tier::System && s.path != ours)
            .collect();
    if sources.is_empty() {
        return Ok(None);
    }
    let policy = Policy::load_sources(&sources)?;
    for (name, b) in &policy.backends {
        let BackendKind::Local { spool: named } = b else {
            continue;
        };
        if named.as_deref() == Some(Path::new(spool)) {
            return Ok(Some(
                sources
                    .iter()
                    .map(|s| s.path.clone())
                    .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(spool)))
                    .unwrap_or_else(|| PathBuf::from(SYSTEM_POLICY_DIR)),
            ));
        }
        return Err(Error::config_hint(
            format!(
                "the system policy in `{SYSTEM_POLICY_DIR}` already defines the local backend \
                 `{name}` with {}; a second local spool would compete with it",
                match named {
                    Some(p) => format!("the spool `{}`", p.display()),
                    None => "the per-user spool".to_owned(),
                }
            ),
            format!("give that spool with `--spool`, or change the backend `{name}` there first"),
        ));
    }
    Ok(None)
}

/// Makes or corrects the spool: root-owned, in `gid`, mode 3770, under directories only root
/// can change and everyone can enter.
fn spool_dir(s: &LocalSetup, gid: Option<u32>, done: &mut Vec<String>) -> Result<(), Error> {
    let would = if s.dry_run { "would " } else { "" };
    // Directories above: made if missing (root, 0755); refused when someone else could swap
    // the spool out from under everyone, or other users cannot get through.
    let parents: Vec<&Path> = s.spool.ancestors().skip(1).collect();
    for dir in parents.into_iter().rev() {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !s.dry_run {
                    std::fs::create_dir(dir).map_err(|e| io_err("create", dir, e))?;
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| io_err("set the mode of", dir, e))?;
                }
                done.push(format!("{would}create `{}` (mode 0755)", dir.display()));
                continue;
            }
            Err(e) => return Err(io_err("inspect", dir, e)),
        };
        let meta = if meta.file_type().is_symlink() {
            std::fs::metadata(dir).map_err(|e| io_err("follow", dir, e))?
        } else {
            meta
        };
        parent_ok(dir, &meta)?;
    }
    existing_spool(s, gid, done)
}

/// Refuses a directory above the spool that someone other than root could change (and so swap
/// the spool), or that other users cannot enter.
fn parent_ok(dir: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    {
        let mode = meta.permissions().mode();
        let why = if !meta.is_dir() {
            Some("it is not a directory".to_owned())
        } else if meta.uid() != 0 {
            Some(format!(
                "it belongs to {}, who could replace the spool",
                crate::identity::user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string())
            ))
        } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            Some(format!(
                "others can write it (mode {:04o}) and could replace the spool",
                mode & 0o7777
            ))
        } else if mode & 0o001 == 0 {
            Some(format!(
                "other users cannot enter it (mode {:04o}), so they could not reach the spool",
                mode & 0o7777
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::config_hint(
                format!(
                    "cannot put the spool under `{}`: {why}",
                    escape(&dir.to_string_lossy())
                ),
                "choose another place with `--spool DIR` (the default is /var/lib/gate/spool)",
            ));
        }
    }
    Ok(())
}

/// Checks, before anything is made, the directories above the spool that exist already, and
/// the spool itself if it exists.
fn check_place(spool: &Path) -> Result<(), Error> {
    for dir in spool.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(dir) {
            parent_ok(dir, &meta)?;
        }
    }
    let path = spool;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        // Re-owning a directory that holds anything but spool entries (`--spool /etc`)
        // would hand it to the group: only an empty directory or an old spool is taken.
        let foreign = std::fs::read_dir(path)
            .map_err(|e| io_err("read", path, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| !spool_entry_name(n));
        if let Some(n) = foreign {
            return Err(Error::config_hint(
                format!(
                    "`{}` already exists and holds `{}`, which is not a spool entry; not \
                     changing its owner and mode",
                    path.display(),
                    escape(&n)
                ),
                "choose a new or empty directory with `--spool DIR`",
            ));
        }
    }
    Ok(())
}

/// The spool itself: made, or its owner, group and mode corrected.
fn existing_spool(s: &LocalSetup, gid: Option<u32>, done: &mut Vec<String>) -> Result<(), Error> {
    let would = if s.dry_run { "would " } else { "" };
    let path = &s.spool;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !s.dry_run {
                std::fs::create_dir(path).map_err(|e| io_err("create", path, e))?;
            }
        }
        Err(e) => return Err(io_err("inspect", path, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::config_hint(
                format!(
                    "`{}` exists and is not a directory{}",
                    path.display(),
                    if m.file_type().is_symlink() {
                        " (a symbolic link)"
                    } else {
                        ""
                    }
                ),
                "remove it, or choose another place with `--spool DIR`",
            ));
        }
        Ok(m) => {
            let right = m.uid() == 0
                && gid.is_some_and(|g| m.gid() == g)
                && m.permissions().mode() & 0o7777 == SPOOL_MODE;
            if right {
                return Ok(());
            }
        }
    }
    if !s.dry_run {
        let gid = gid.ok_or_else(|| Error::internal("group made but not found"))?;
        std::os::unix::fs::lchown(path, Some(0), Some(gid))
            .map_err(|e| io_err("change the owner of", path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SPOOL_MODE))
            .map_err(|e| io_err("set the mode of", path, e))?;
    }
    done.push(format!(
        "{would}make `{}` the shared spool: owner root, group `{}`, mode {:04o} (sticky: nobody \
         removes another's files; only the group may enter)",
        path.display(),
        s.group,
        SPOOL_MODE
    ));
    Ok(())
}

/// A name gate puts in a spool: a request id, or `<id>.<uid>[.<nonce>].decision`.
fn spool_entry_name(n: &str) -> bool {
    let id = n.split('.').next().unwrap_or("");
    crate::approval::local::valid_id(id) && (n == id || n.ends_with(".decision"))
}

/// Writes the policy file whole or not at all: a new file beside it, then a rename. Root's,
/// mode 0644, as the system tier requires.
fn write_policy(path: &Path, text: &str) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(|e| io_err("create", dir, e))?;
        for d in dir.ancestors() {
            if d == Path::new("/etc") || d == Path::new("/") {
                break;
            }
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        }
    }
    let tmp = dir.join(format!(
        ".{}.{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("policy"),
        uuid::Uuid::now_v7().simple()
    ));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_what_groupadd_takes() {
        for ok in ["gate", "_gate", "gate-approvers", "g1"] {
            assert!(valid_group(ok), "{ok}");
        }
        for bad in [
            "",
            "Gate",
            "1gate",
            "-gate",
            "ga te",
            "gate:x",
            &"g".repeat(33),
        ] {
            assert!(!valid_group(bad), "{bad:?}");
        }
    }

    #[test]
    fn any_spool_path_reads_back_from_the_policy_file() {
        for p in ["/var/lib/gate/spool", "/srv/a: b #c", "/x/\"q\"/\\"] {
            let text = policy_text(p, "gate");
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &text).unwrap();
            let policy = Policy::load(&[file.path().to_path_buf()]).unwrap();
            assert!(
                matches!(&policy.backends["local"], BackendKind::Local { spool: Some(s) } if s == Path::new(p)),
                "{text}"
            );
        }
    }
}
