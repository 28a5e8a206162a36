//! The `local` backend: requests wait in a spool directory; `gate approve ID` writes a decision
//! file there as the approver's own OS user, and the waiting gate takes the approver's identity
//! from the file's owner as the kernel reports it. Another ordinary user cannot forge that
//! ownership, and the requester's own uid never counts unless the rule allows it.
//!
//! The requester is assumed hostile (an agent running as that OS user), so nothing it can
//! write is trusted:
//!
//! - Layout, in a spool root an admin made — root-owned mode 1777, or group-owned 1770/3770:
//!   `<root>/<id>/request.json` is the requester's (shown to approvers, never read back by the
//!   waiting gate, which keeps its request in memory); `<root>/<id>.<uid>.decision` is one
//!   approver's answer, created with `O_CREAT|O_EXCL|O_NOFOLLOW` in the sticky root, so the
//!   requester can neither delete nor replace it. The waiting gate refuses a root the requester
//!   owns, or one others can write that is not sticky.
//! - Approvers sign what they see: the decision carries the digest the approver recomputed from
//!   the request it was shown ([`crate::request::RequestView::recompute_shown_digest`]); the
//!   waiting gate counts an approval only when that equals the digest of the request it holds.
//!   A deny counts whatever it names, as long as it is for this request: it only tightens.
//! - Liveness is a lock, not a pid: the waiting gate holds an exclusive `flock` on
//!   `<root>/<id>/lock` (see `live`), so a request whose gate died — SIGKILL included — is
//!   hidden from everyone, refused by `gate approve`, and removed by its owner or root.
//! - Before waiting, the requester's gate asks whether any eligible approver can reach the
//!   spool at all (see `reach`), and fails at once when nobody can.
//! - Ids become paths only after [`valid_id`]; spool entries whose name is not an id, or whose
//!   `request.json` names another id or another owner, are skipped with a warning.
//! - Every file the requester could have planted is opened relative to a directory descriptor,
//!   with `O_NOFOLLOW` (and `O_NONBLOCK`, so a FIFO cannot stall an approver), then checked
//!   with `fstat` on what was actually opened.

mod dirfd;
mod live;
mod reach;
mod trust;
mod wait;

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde::{Deserialize, Serialize};

use crate::audit::record::now;
use crate::policy::Requirement;
use crate::request::{IdQuery, RequestView};
use dirfd::{errno, names, open_in, read_small};
use live::{LOCK, Liveness, liveness, sweep};
pub use reach::{Reach, ReachReport};
use trust::load_entry;
pub use trust::{DecisionProblem, EntryError};
pub use wait::{PendingRequest, Scan};

/// How to make a spool approvers and requesters can share, for messages.
pub const SHARED_SPOOL_HINT: &str = "an admin runs `sudo gate setup local` once: it makes a \
    shared spool (/var/lib/gate/spool, group `gate`, mode 3770) and the system policy that names \
    it; requesters and approvers join the group. Or make one by hand, e.g. \
    `sudo install -d -m 1777 -o root /var/lib/gate/spool`, and point `GATE_SPOOL` or the `spool` \
    of a `kind: local` backend at it";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot use the spool `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The spool is a place where the requester (or anyone) could remove or replace decisions.
    #[error("the spool `{path}` is not safe for approvals: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("no pending request matches `{0}` in the spool `{1}`")]
    NotFound(String, PathBuf),
    /// A part of an id that names more than one pending request: none of them is chosen.
    #[error("`{typed}` matches {} pending requests; give more of the id", candidates.len())]
    Ambiguous {
        typed: String,
        candidates: Vec<SpoolRequest>,
    },
    #[error("{0}")]
    Query(#[from] crate::request::IdQueryError),
    #[error(
        "`{0}` is not a request id: ids are UUIDs like `0192e4a1-7c3b-7d2e-9f00-1234567890ab`, \
         or a unique part of one (hex digits and `-`)"
    )]
    BadId(String),
    #[error("the request `{0}` cannot be used: {1}")]
    BadRequest(String, EntryError),
    #[error("refused: {0}")]
    Refused(String),
}

/// What the spool holds for one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolRequest {
    pub request: RequestView,
    pub decision: String,
    pub rules: Vec<String>,
    pub requirement: Requirement,
    pub created: String,
    /// Unix time (seconds) after which nobody can approve.
    pub expires_unix: u64,
    pub pid: u32,
}

/// One approver's answer, as written by `gate approve` / `gate deny`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionFile {
    pub request_id: String,
    /// The digest the approver recomputed from what it was shown (`RequestView::shown_digest`).
    pub digest: String,
    /// `approve` or `deny`.
    pub decision: String,
    #[serde(default)]
    pub comment: Option<String>,
    pub at: String,
}

/// A request id as gate makes them: a UUID in its lower-case hyphenated form, nothing else —
/// so it can never be `..`, hold a `/` or a NUL, or name anything but one spool entry.
pub fn valid_id(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// `<id>.<uid>.decision`, and the `<id>.<uid>.<nonce>.decision` an approver falls back to when
/// somebody planted a file under its name: `(id, uid)`.
fn decision_name(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_suffix(".decision")?;
    let (id, rest) = rest.split_once('.')?;
    let uid = rest.split('.').next()?;
    (valid_id(id) && !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Some((id, uid.parse().ok()?)))
        .flatten()
}

impl LocalError {
    /// Whether the spool (or something in it) refused this user outright.
    pub fn permission_denied(&self) -> bool {
        matches!(self, LocalError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why a spool root is unsafe for `requester_uid`'s requests, or `None` when it is safe: its
/// owner must not be the requester (root excepted: root can remove anything anyway), and a
/// root others can write must be sticky, so nobody removes what somebody else wrote.
fn unsafe_root(meta: &std::fs::Metadata, requester_uid: u32) -> Option<String> {
    let mode = meta.permissions().mode();
    if !meta.is_dir() {
        return Some("it is not a directory".into());
    }
    if meta.uid() == requester_uid && requester_uid != 0 {
        let who = crate::identity::user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
        return Some(format!(
            "it is owned by you ({who}), so you could remove an approver's denial or replace \
             an approval; approvals need a spool the requester does not own"
        ));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "it is writable by {} but not sticky (mode {:04o}), so anyone could remove the \
             decisions in it",
            if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            mode & 0o7777
        ));
    }
    None
}

/// Why a directory above the spool lets the requester put another directory in the spool's
/// place — where approvers would then write their decisions, out of the waiting gate's sight
/// (a denial it never sees) — or `None`. Root is not asked: it can do that anyway.
fn unsafe_parent(spool: &Path, requester_uid: u32) -> Option<String> {
    if requester_uid == 0 {
        return None;
    }
    let real = std::fs::canonicalize(spool).ok()?;
    let groups: Vec<u32> = nix::unistd::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    let my_gid = nix::unistd::getegid().as_raw();
    for dir in real.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = m.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        let member = m.gid() == my_gid || groups.contains(&m.gid());
        let why = if m.uid() == requester_uid {
            "is yours"
        } else if !sticky && mode & 0o002 != 0 {
            "is writable by anyone"
        } else if !sticky && member && mode & 0o020 != 0 {
            "is writable by a group you are in"
        } else {
            continue;
        };
        return Some(format!(
            "`{}` above it {why}, so you could put another directory in its place where \
             approvers would write their decisions",
            dir.display()
        ));
    }
    None
}

impl Spool {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Spool { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The name of the spool directory's group (for saying whom to join).
    pub fn group(&self) -> Option<String> {
        let gid = std::fs::metadata(&self.root).ok()?.gid();
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
    }

    /// Opens the spool root. Its path is resolved once; from then on everything goes through
    /// the descriptor, so renaming or re-pointing the path changes nothing for this process.
    fn open_root(&self) -> Result<(OwnedFd, std::fs::Metadata), LocalError> {
        let f = File::open(&self.root).map_err(io(&self.root))?;
        let meta = f.metadata().map_err(io(&self.root))?;
        if !meta.is_dir() {
            return Err(LocalError::Io {
                path: self.root.clone(),
                source: std::io::Error::from_raw_os_error(Errno::ENOTDIR as i32),
            });
        }
        Ok((OwnedFd::from(f), meta))
    }

    /// Puts a request in the spool; the returned guard removes it when dropped. Refuses a
    /// spool that would let the requester remove or replace decisions.
    pub fn submit(&self, req: &SpoolRequest) -> Result<PendingRequest, LocalError> {
        let id = req.request.id.clone();
        if !valid_id(&id) {
            return Err(LocalError::BadId(id));
        }
        let requester = req.request.requester.uid;
        if !self.root.exists() && requester != 0 {
            // One the requester made itself would be one it could clear of decisions.
            return Err(LocalError::Unsafe {
                path: self.root.clone(),
                why: "it does not exist, and one you made yourself would be yours to clear of \
                      decisions"
                    .into(),
            });
        }
        if !self.root.exists() {
            // Root can: private, as before, for a root that asks on its own machine.
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(&self.root)
                .map_err(io(&self.root))?;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&self.root))?;
        }
        let (root, meta) = self.open_root()?;
        if let Some(why) =
            unsafe_root(&meta, requester).or_else(|| unsafe_parent(&self.root, requester))
        {
            return Err(LocalError::Unsafe {
                path: self.root.clone(),
                why,
            });
        }
        // The requester's own entries whose gate was killed: nobody else may remove them.
        self.sweep_dead(&root, requester);
        let dir_path = self.root.join(&id);
        nix::sys::stat::mkdirat(&root, id.as_str(), Mode::from_bits_truncate(0o700))
            .map_err(|e| io(&dir_path)(errno(e)))?;
        let dir = match openat(
            &root,
            id.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(d) => d,
            Err(e) => {
                let _ = unlinkat(&root, id.as_str(), UnlinkatFlags::RemoveDir);
                return Err(io(&dir_path)(errno(e)));
            }
        };
        // The lock says "a gate waits for this" for exactly as long as this process lives: it
        // is taken while the directory is still private (0700), so nobody else gets it first,
        // and before `request.json` exists, so a complete entry with a free lock is a dead one.
        let lock_path = dir_path.join(LOCK);
        let lock = openat(
            &dir,
            LOCK,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(File::from);
        let guard_lock = match lock {
            Ok(f) => f,
            Err(e) => {
                live::remove_entry(&root, &id);
                return Err(io(&lock_path)(errno(e)));
            }
        };
        let guard = PendingRequest {
            root,
            root_path: self.root.clone(),
            id: id.clone(),
            lock: guard_lock,
        };
        guard.lock.try_lock().map_err(|e| {
            io(&lock_path)(match e {
                std::fs::TryLockError::Error(e) => e,
                std::fs::TryLockError::WouldBlock => {
                    std::io::Error::from_raw_os_error(Errno::EWOULDBLOCK as i32)
                }
            })
        })?;
        guard
            .lock
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io(&lock_path))?;
        let file = dir_path.join("request.json");
        let body = serde_json::to_vec_pretty(req).map_err(|e| io(&file)(e.into()))?;
        let mut f = File::from(
            openat(
                &dir,
                "request.json",
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map_err(|e| io(&file)(errno(e)))?,
        );
        f.write_all(&body).map_err(io(&file))?;
        f.sync_all().map_err(io(&file))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io(&file))?;
        // Only now let others in: a request is never visible half-written. Nobody else writes
        // here: decisions go to the (sticky, not requester-owned) root.
        File::from(dir)
            .set_permissions(std::fs::Permissions::from_mode(0o755))
            .map_err(io(&dir_path))?;
        Ok(guard)
    }

    /// Whether anybody `requirement` lets approve can list this spool and write a decision into
    /// it (see [`reach::who_can_use`]). The spool must exist.
    pub fn reach(
        &self,
        requirement: &Requirement,
        requester_uid: u32,
    ) -> Result<ReachReport, LocalError> {
        reach::who_can_use(&self.root, requirement, requester_uid).map_err(io(&self.root))
    }

    /// Removes `me`'s entries (every entry, for root) whose waiting gate is gone.
    fn sweep_dead(&self, root: &OwnedFd, me: u32) {
        let Ok(entries) = names(root) else { return };
        for name in entries.iter().filter(|n| valid_id(n)) {
            sweep(root, name, me);
        }
    }

    /// Requests whose waiting gate is still alive, and a warning for each entry that is not a
    /// usable request (shown to the reader; never a reason to fail the whole listing).
    pub fn pending(&self) -> Result<(Vec<SpoolRequest>, Vec<String>), LocalError> {
        let (root, _) = match self.open_root() {
            Ok(r) => r,
            Err(LocalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(e) => return Err(e),
        };
        let entries = names(&root).map_err(|e| io(&self.root)(errno(e)))?;
        let me = nix::unistd::getuid().as_raw();
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for name in &entries {
            if name.starts_with('.') {
                continue;
            }
            if let Some((id, uid)) = decision_name(name) {
                // Our own approvals of requests that are gone: nobody else may remove them.
                let gone =
                    !entries.iter().any(|n| n == id) || liveness(&root, id) == Liveness::Gone;
                if uid == me && gone {
                    remove_own(&root, name, me);
                }
                continue;
            }
            if !valid_id(name) {
                warnings.push(format!(
                    "skipping `{name}` in the spool `{}`: not a request id",
                    self.root.display()
                ));
                continue;
            }
            // A request whose gate is gone is removed where this user may (its owner, root)
            // and hidden everywhere: nobody waits for a decision on it.
            match (load_entry(&root, name), liveness(&root, name)) {
                (Ok(r), Liveness::Waiting) => out.push(r),
                (_, Liveness::Gone) => {
                    sweep(&root, name, me);
                }
                (Ok(_), Liveness::NoLock) => {}
                (Err(why), _) => warnings.push(format!(
                    "skipping `{name}` in the spool `{}`: {why}",
                    self.root.display()
                )),
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok((out, warnings))
    }

    /// Finds a pending request (its waiting gate alive) by its whole id, or by a unique part of
    /// it ([`IdQuery`]: at least six characters from its start or end) among the pending
    /// requests this user can list. What the user typed becomes a path only once it is a whole
    /// valid id; a part is only ever compared with the names of listed entries.
    pub fn find(&self, typed: &str) -> Result<SpoolRequest, LocalError> {
        let query = IdQuery::parse(typed)?;
        if let IdQuery::Full(id) = &query {
            let (root, _) = self.open_root()?;
            return match load_entry(&root, id) {
                Ok(r) if matches!(liveness(&root, id), Liveness::Waiting) => Ok(r),
                Ok(_) => Err(LocalError::NotFound(id.clone(), self.root.clone())),
                Err(_) if matches!(open_in(&root, id, true), Err(Errno::ENOENT)) => {
                    Err(LocalError::NotFound(id.clone(), self.root.clone()))
                }
                Err(why) => Err(LocalError::BadRequest(id.clone(), why)),
            };
        }
        let mut hits: Vec<SpoolRequest> = self
            .pending()?
            .0
            .into_iter()
            .filter(|r| query.matches(&r.request.id))
            .collect();
        match hits.len() {
            0 => Err(LocalError::NotFound(
                query.as_str().to_owned(),
                self.root.clone(),
            )),
            1 => Ok(hits.remove(0)),
            _ => Err(LocalError::Ambiguous {
                typed: query.as_str().to_owned(),
                candidates: hits,
            }),
        }
    }

    /// The decisions written so far on `req`, sorted out exactly as its waiting gate sorts
    /// them, with approvals counted only when they sign `digest` (the digest the caller
    /// recomputed from what it shows).
    pub fn decisions(&self, req: &SpoolRequest, digest: &str) -> Result<Scan, LocalError> {
        let (root, _) = self.open_root()?;
        PendingRequest::scan(&root, &self.root, req, digest)
    }

    /// Writes this user's decision on `req`, signing `digest` — the digest the caller
    /// recomputed from what it showed. Eligibility is checked here only to give the approver a
    /// clear answer; the waiting gate checks again from the file's owner. Returns the path of
    /// the decision file.
    pub fn decide(
        &self,
        req: &SpoolRequest,
        approve: bool,
        comment: Option<String>,
        me_uid: u32,
        me: &str,
        digest: &str,
    ) -> Result<PathBuf, LocalError> {
        let id = &req.request.id;
        if !valid_id(id) {
            return Err(LocalError::BadId(id.clone()));
        }
        let (root, _) = self.open_root()?;
        if liveness(&root, id) != Liveness::Waiting {
            return Err(LocalError::Refused(format!(
                "request {id} is no longer waiting (its gate process has ended)"
            )));
        }
        if me_uid == req.request.requester.uid && !req.requirement.allow_requester {
            return Err(LocalError::Refused(format!(
                "you ({me}) asked for request {id} yourself; self-approval is not allowed, \
                 and the request stays pending for another approver"
            )));
        }
        if !req.requirement.counts(me) {
            let eligible = req
                .requirement
                .eligible()
                .map(|e| e.into_iter().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            return Err(LocalError::Refused(format!(
                "{me} is not an eligible approver of request {id} (eligible: {eligible})"
            )));
        }
        if now_unix() > req.expires_unix {
            return Err(LocalError::Refused(format!("request {id} has expired")));
        }
        let d = DecisionFile {
            request_id: id.clone(),
            digest: digest.to_owned(),
            decision: if approve { "approve" } else { "deny" }.into(),
            comment,
            at: now(),
        };
        let body = serde_json::to_vec(&d).map_err(|e| io(&self.root)(e.into()))?;
        let mine = format!("{id}.{me_uid}.decision");
        let mut name = mine.clone();
        for attempt in 0..4 {
            let path = self.root.join(&name);
            // O_EXCL: never through a symlink or into a file somebody planted under this name.
            let created = openat(
                &root,
                name.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            );
            match created {
                Ok(fd) => {
                    let mut f = File::from(fd);
                    f.set_permissions(std::fs::Permissions::from_mode(0o644))
                        .map_err(io(&path))?;
                    f.write_all(&body).map_err(io(&path))?;
                    f.sync_all().map_err(io(&path))?;
                    return Ok(path);
                }
                Err(Errno::EEXIST) if attempt == 0 => {
                    let st = nix::sys::stat::fstatat(
                        &root,
                        name.as_str(),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| io(&path)(errno(e)))?;
                    let regular = st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG;
                    if st.st_uid == me_uid && regular {
                        return Err(LocalError::Refused(format!(
                            "you have already decided request {id}"
                        )));
                    }
                    // Planted by someone else: its owner, not its name, is what counts, so
                    // answer under a name nobody can guess.
                    name = format!("{id}.{me_uid}.{}.decision", nonce());
                }
                Err(Errno::EEXIST) => name = format!("{id}.{me_uid}.{}.decision", nonce()),
                Err(e) => return Err(io(&path)(errno(e))),
            }
        }
        Err(LocalError::Io {
            path: self.root.join(mine),
            source: std::io::Error::from_raw_os_error(Errno::EEXIST as i32),
        })
    }
}

fn nonce() -> String {
    // v7 with 74 random bits: nobody plants a file under this name in advance.
    uuid::Uuid::now_v7().simple().to_string()
}

/// Removes an approval of ours whose request is gone or has nobody waiting. Never a denial: a
/// requester can make its request directory disappear for a moment (and stop its own waiting
/// gate meanwhile), and a denial an approver's own gate cleaned away would be a denial the
/// waiting gate never sees.
/// An approval only loosens, so losing one can only stop a command.
fn remove_own(root: &OwnedFd, name: &str, me: u32) {
    let Ok(f) = open_in(root, name, false) else {
        return;
    };
    let ours = f.metadata().is_ok_and(|m| m.is_file() && m.uid() == me);
    let approval = ours
        && read_small(&f, name)
            .ok()
            .and_then(|b| serde_json::from_slice::<DecisionFile>(&b).ok())
            .is_some_and(|d| d.decision == "approve");
    if approval {
        let _ = unlinkat(root, name, UnlinkatFlags::NoRemoveDir);
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gates_own_id_form_is_an_id() {
        let good = uuid::Uuid::now_v7().to_string();
        assert!(valid_id(&good));
        for bad in [
            "",
            "..",
            ".",
            "../../../x",
            "/etc/passwd",
            "a/b",
            "x\0y",
            &good.to_uppercase(),
            &good.replace('-', ""),
            &format!("{{{good}}}"),
            &format!("urn:uuid:{good}"),
            &format!("{good}/"),
            &format!("{good}/../x"),
            &format!(" {good}"),
        ] {
            assert!(!valid_id(bad), "{bad:?} passed as an id");
        }
    }

    #[test]
    fn decision_names_parse_only_in_gates_form() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(
            decision_name(&format!("{id}.1001.decision")),
            Some((id.as_str(), 1001))
        );
        assert_eq!(
            decision_name(&format!("{id}.1001.0af3.decision")),
            Some((id.as_str(), 1001))
        );
        for bad in [
            format!("{id}.decision"),
            format!("{id}.x.decision"),
            format!("../{id}.1.decision"),
            "x.1.decision".to_owned(),
            format!("{id}.1.json"),
        ] {
            assert_eq!(decision_name(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_spool_the_requester_owns_or_anyone_can_clear_is_unsafe() {
        let d = tempfile::tempdir().unwrap();
        let me = nix::unistd::getuid().as_raw();
        let set = |mode| {
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::metadata(d.path()).unwrap()
        };
        // Owned by someone else (here: a uid that is not the requester's).
        let other = me.wrapping_add(1);
        assert_eq!(unsafe_root(&set(0o1777), other), None);
        assert_eq!(unsafe_root(&set(0o3770), other), None);
        assert_eq!(unsafe_root(&set(0o755), other), None);
        assert!(
            unsafe_root(&set(0o777), other)
                .unwrap()
                .contains("not sticky")
        );
        assert!(unsafe_root(&set(0o770), other).unwrap().contains("group"));
        if me != 0 {
            assert!(
                unsafe_root(&set(0o1777), me)
                    .unwrap()
                    .contains("owned by you")
            );
        }
    }
}
