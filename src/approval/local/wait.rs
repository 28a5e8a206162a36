//! Waiting for the decisions on one spooled request, and removing it when the wait ends.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::dirfd::{errno, names};
use super::trust::read_decision;
use super::{LocalError, SpoolRequest, io};
use crate::approval::{Outcome, Progress};
use crate::audit::Approver;

/// Removes the request from the spool when the wait ends, however it ends.
#[derive(Debug)]
pub struct PendingRequest {
    /// The spool root as opened at submission: the path may change, this does not.
    pub(super) root: OwnedFd,
    pub(super) root_path: PathBuf,
    pub(super) id: String,
    /// `<id>/lock`, held exclusively while this process lives (see `live`).
    pub(super) lock: std::fs::File,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        super::live::remove_entry(&self.root, &self.id);
    }
}

/// Decision files sorted out by one scan: what the waiting gate counts, and what an
/// approver's `gate requests` shows as the approvals so far.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Eligible approvals of the digest scanned for, one per principal.
    pub approvals: Vec<Approver>,
    /// The first eligible denial, and its reason.
    pub denial: Option<(Approver, String)>,
    /// Decision files that do not count, each with why.
    pub ignored: Vec<String>,
}

impl PendingRequest {
    /// Waits until the requirement is met, an eligible approver denies, the deadline passes
    /// or `cancel` is set. Polls the spool every 100 ms. `req` is the request as this process
    /// holds it: decisions are checked against it, never against the file in the spool.
    pub fn wait(
        &self,
        req: &SpoolRequest,
        timeout: Duration,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Outcome, LocalError> {
        let start = Instant::now();
        let digest = req.request.shown_digest();
        loop {
            let scan = Self::scan(&self.root, &self.root_path, req, &digest)?;
            let names: BTreeSet<String> =
                scan.approvals.iter().map(|a| a.principal.clone()).collect();
            // Any eligible denial ends the wait at once: once seen, nothing can take it back.
            if let Some((by, reason)) = scan.denial {
                return Ok(Outcome::Denied {
                    by,
                    reason,
                    approvals: scan.approvals,
                });
            }
            if req.requirement.satisfied_by(&names) {
                return Ok(Outcome::Approved(scan.approvals));
            }
            progress(&Progress {
                request_id: req.request.id.clone(),
                elapsed: start.elapsed(),
                approvers: names,
                needed: req.requirement.min_approvals,
                ignored: scan.ignored,
            });
            if cancel.load(Ordering::SeqCst) {
                return Ok(Outcome::Cancelled(scan.approvals));
            }
            if start.elapsed() >= timeout {
                return Ok(Outcome::TimedOut(scan.approvals));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reads every decision file for `req` in the spool `root` and sorts it into counted
    /// approvals (of `digest`), a denial, or ignored (with why): the one place that decides
    /// what counts, for the waiting gate and for what `gate requests` shows.
    pub(super) fn scan(
        root: &OwnedFd,
        root_path: &Path,
        req: &SpoolRequest,
        digest: &str,
    ) -> Result<Scan, LocalError> {
        let mut s = Scan {
            approvals: Vec::new(),
            denial: None,
            ignored: Vec::new(),
        };
        let entries = names(root).map_err(|e| io(root_path)(errno(e)))?;
        let prefix = format!("{}.", req.request.id);
        for name in entries
            .iter()
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".decision"))
        {
            let (uid, principal, d) = match read_decision(root, name, req) {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(why) => {
                    s.ignored.push(why.to_string());
                    continue;
                }
            };
            let approver = Approver {
                principal: principal.clone(),
                uid: Some(uid),
                at: d.at.clone(),
                via: "local".into(),
                comment: d.comment.clone(),
            };
            if uid == req.request.requester.uid && !req.requirement.allow_requester {
                s.ignored
                    .push(format!("{principal}: the requester cannot approve"));
            } else if !req.requirement.counts(&principal) {
                s.ignored
                    .push(format!("{principal}: not an eligible approver"));
            } else if d.decision == "deny" {
                let reason = d.comment.clone().unwrap_or_default();
                s.denial.get_or_insert((approver, reason));
            } else if d.digest != digest {
                s.ignored.push(format!(
                    "{principal}: approved a different command than the one waiting \
                     (the request file was changed after it was submitted)"
                ));
            } else if !s.approvals.iter().any(|a| a.principal == principal) {
                s.approvals.push(approver);
            }
        }
        Ok(s)
    }
}
