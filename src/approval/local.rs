//! The `local` backend: requests wait in a spool directory; `gate approve ID` writes a decision
//! file there as the approver's own OS user, and the waiting gate takes the approver's identity
//! from the file's owner as the kernel reports it. Another ordinary user cannot forge that
//! ownership, and the requester's own uid never counts unless the rule allows it.
//!
//! Layout: `<spool>/<id>/request.json` (the requester's), `<spool>/<id>/<uid>.decision` (one per
//! approver). The request directory is sticky and writable by all (mode 1733): anyone may add
//! a decision, nobody but its owner (and the requester, who owns the directory) may remove one,
//! and nobody else can list the others' files.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Outcome, Progress};
use crate::audit::Approver;
use crate::audit::record::now;
use crate::policy::Requirement;
use crate::request::RequestView;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot use the spool `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the spool `{0}` is writable by others but not sticky, so anyone could remove requests"
    )]
    Unsafe(PathBuf),
    #[error("no pending request `{0}` in the spool `{1}`")]
    NotFound(String, PathBuf),
    #[error("`{0}` matches several requests; give more of the id")]
    Ambiguous(String),
    #[error("the request file `{0}` is unreadable: {1}")]
    BadRequest(PathBuf, String),
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
    pub digest: String,
    /// `approve` or `deny`.
    pub decision: String,
    #[serde(default)]
    pub comment: Option<String>,
    pub at: String,
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

impl Spool {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Spool { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the spool if missing (private to this user) and refuses one anybody could tamper with.
    fn ensure(&self) -> Result<(), LocalError> {
        if !self.root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(io(&self.root))?;
        }
        let meta = fs::metadata(&self.root).map_err(io(&self.root))?;
        let mode = meta.permissions().mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(LocalError::Unsafe(self.root.clone()));
        }
        Ok(())
    }

    /// Puts a request in the spool; the returned guard removes it when dropped.
    pub fn submit(&self, req: &SpoolRequest) -> Result<PendingRequest, LocalError> {
        self.ensure()?;
        let dir = self.root.join(&req.request.id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        let guard = PendingRequest { dir: dir.clone() };
        let body = serde_json::to_vec_pretty(req).map_err(|e| io(&dir)(e.into()))?;
        let file = dir.join("request.json");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&file)
            .map_err(io(&file))?;
        f.write_all(&body).map_err(io(&file))?;
        f.sync_all().map_err(io(&file))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).map_err(io(&file))?;
        // Only now let others in: a request is never visible half-written.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1733)).map_err(io(&dir))?;
        Ok(guard)
    }

    /// Requests whose waiting gate is still alive.
    pub fn pending(&self) -> Result<Vec<SpoolRequest>, LocalError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.root)(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            if let Ok(r) = self.load_dir(&e.path())
                && process_alive(r.pid)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    fn load_dir(&self, dir: &Path) -> Result<SpoolRequest, LocalError> {
        let file = dir.join("request.json");
        let bytes = fs::read(&file).map_err(io(&file))?;
        serde_json::from_slice(&bytes).map_err(|e| LocalError::BadRequest(file, e.to_string()))
    }

    /// Finds a pending request by its id or a unique prefix or suffix of it.
    pub fn find(&self, id: &str) -> Result<SpoolRequest, LocalError> {
        let not_found = || LocalError::NotFound(id.to_owned(), self.root.clone());
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(not_found());
        }
        let exact = self.root.join(id);
        if exact.join("request.json").exists() {
            return self.load_dir(&exact);
        }
        let hits: Vec<SpoolRequest> = self
            .pending()?
            .into_iter()
            .filter(|r| r.request.id.starts_with(id) || r.request.id.ends_with(id))
            .collect();
        match hits.len() {
            0 => Err(not_found()),
            1 => Ok(hits.into_iter().next().expect("one")),
            _ => Err(LocalError::Ambiguous(id.to_owned())),
        }
    }

    /// Writes this user's decision on a request. Eligibility is checked here only to give the
    /// approver a clear answer; the waiting gate checks again from the file's owner.
    pub fn decide(
        &self,
        id: &str,
        approve: bool,
        comment: Option<String>,
        me_uid: u32,
        me: &str,
    ) -> Result<SpoolRequest, LocalError> {
        let req = self.find(id)?;
        if !process_alive(req.pid) {
            return Err(LocalError::Refused(format!(
                "request {} is no longer waiting (its gate process has ended)",
                req.request.id
            )));
        }
        if me_uid == req.request.requester.uid && !req.requirement.allow_requester {
            return Err(LocalError::Refused(format!(
                "you ({me}) asked for request {} yourself; self-approval is not allowed, \
                 and the request stays pending for another approver",
                req.request.id
            )));
        }
        if !req.requirement.counts(me) {
            let eligible = req
                .requirement
                .eligible()
                .map(|e| e.into_iter().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            return Err(LocalError::Refused(format!(
                "{me} is not an eligible approver of request {} (eligible: {eligible})",
                req.request.id
            )));
        }
        if now_unix() > req.expires_unix {
            return Err(LocalError::Refused(format!(
                "request {} has expired",
                req.request.id
            )));
        }
        let dir = self.root.join(&req.request.id);
        let d = DecisionFile {
            request_id: req.request.id.clone(),
            digest: req.request.digest.clone(),
            decision: if approve { "approve" } else { "deny" }.into(),
            comment,
            at: now(),
        };
        let final_path = dir.join(format!("{me_uid}.decision"));
        if final_path.exists() {
            return Err(LocalError::Refused(format!(
                "you have already decided request {}",
                req.request.id
            )));
        }
        let tmp = dir.join(format!(".{me_uid}.{}.tmp", std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let body = serde_json::to_vec(&d).map_err(|e| io(&tmp)(e.into()))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).map_err(io(&tmp))?;
        fs::rename(&tmp, &final_path).map_err(io(&final_path))?;
        Ok(req)
    }
}

/// Removes the request from the spool when the wait ends, however it ends.
#[derive(Debug)]
pub struct PendingRequest {
    dir: PathBuf,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl PendingRequest {
    /// Waits until the requirement is met, an eligible approver denies, the deadline passes
    /// or `cancel` is set. Polls the request directory every 100 ms.
    pub fn wait(
        &self,
        req: &SpoolRequest,
        timeout: Duration,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Outcome, LocalError> {
        let start = Instant::now();
        loop {
            let (approvals, denial, ignored) = self.scan(req)?;
            let names: BTreeSet<String> = approvals.iter().map(|a| a.principal.clone()).collect();
            if let Some((by, reason)) = denial {
                return Ok(Outcome::Denied {
                    by,
                    reason,
                    approvals,
                });
            }
            if req.requirement.satisfied_by(&names) {
                return Ok(Outcome::Approved(approvals));
            }
            progress(&Progress {
                request_id: req.request.id.clone(),
                elapsed: start.elapsed(),
                approvers: names,
                needed: req.requirement.min_approvals,
                ignored,
            });
            if cancel.load(Ordering::SeqCst) {
                return Ok(Outcome::Cancelled(approvals));
            }
            if start.elapsed() >= timeout {
                return Ok(Outcome::TimedOut(approvals));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reads every decision file and sorts it into counted approvals, a denial, or ignored.
    #[allow(clippy::type_complexity)]
    fn scan(
        &self,
        req: &SpoolRequest,
    ) -> Result<(Vec<Approver>, Option<(Approver, String)>, Vec<String>), LocalError> {
        let mut approvals: Vec<Approver> = Vec::new();
        let mut denial = None;
        let mut ignored = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io(&self.dir))?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "decision"))
            .collect();
        paths.sort();
        for path in paths {
            match read_decision(&path, req) {
                Ok((uid, principal, d)) => {
                    let approver = Approver {
                        principal: principal.clone(),
                        uid: Some(uid),
                        at: d.at.clone(),
                        via: "local".into(),
                        comment: d.comment.clone(),
                    };
                    if uid == req.request.requester.uid && !req.requirement.allow_requester {
                        ignored.push(format!("{principal}: the requester cannot approve"));
                    } else if !req.requirement.counts(&principal) {
                        ignored.push(format!("{principal}: not an eligible approver"));
                    } else if d.decision == "deny" {
                        let reason = d.comment.clone().unwrap_or_default();
                        denial.get_or_insert((approver, reason));
                    } else if !approvals.iter().any(|a| a.principal == principal) {
                        approvals.push(approver);
                    }
                }
                Err(why) => ignored.push(why),
            }
        }
        Ok((approvals, denial, ignored))
    }
}

/// Reads one decision file, trusting only what the kernel says about it: its owner.
fn read_decision(path: &Path, req: &SpoolRequest) -> Result<(u32, String, DecisionFile), String> {
    let name = path.display();
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{name}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{name}: not a regular file"));
    }
    // A hard link to someone else's file would borrow their ownership.
    if meta.nlink() != 1 {
        return Err(format!("{name}: has several links"));
    }
    if meta.len() > 64 * 1024 {
        return Err(format!("{name}: too large"));
    }
    let uid = meta.uid();
    let principal = crate::identity::user_name(uid)
        .ok_or_else(|| format!("{name}: uid {uid} has no user name"))?;
    let bytes = fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let d: DecisionFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("{name}: bad decision file: {e}"))?;
    if d.request_id != req.request.id || d.digest != req.request.digest {
        return Err(format!("{name}: decides another request or command"));
    }
    if d.decision != "approve" && d.decision != "deny" {
        return Err(format!("{name}: unknown decision `{}`", d.decision));
    }
    Ok((uid, principal, d))
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn process_alive(pid: u32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}
