//! What a crash can leave between the server's log and its database, made right at start.
//!
//! Every change of a request is logged inside the database transaction that makes it, before
//! that transaction commits (docs/server.md, "What is recorded"): nothing is acted on that is
//! not in the log, and the database's write lock keeps log order equal to commit order. The one
//! gap a crash can leave is the other way round: an event on disk whose transaction never
//! committed — the change was not made and nobody was told it was. Only the last change can be
//! in that state (one transaction holds the write lock at a time), so at start the server
//! reads the end of its log, checks the last event against the database, and logs a `void`
//! event when it did not take effect, before it takes any connection. `gate log verify`
//! then leaves voided events out of its count of approvals.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::approval::RequestStatus;
use crate::audit::record::EventInfo;
use crate::audit::{Body, Record};

use super::store::{Store, StoreError};

/// How much of the log's end is read: far more than the few events a crash can leave.
const TAIL_BYTES: u64 = 4 << 20;

/// An event the log holds that the database does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncommitted {
    pub seq: u64,
    pub request_id: String,
    pub kind: String,
    pub principal: Option<String>,
    /// The request's status in the database now ("absent" when it has no row).
    pub status: String,
}

impl Uncommitted {
    /// The `void` event that says so.
    pub fn void(&self) -> Body {
        let who = self
            .principal
            .as_deref()
            .map(|p| format!(" by {p}"))
            .unwrap_or_default();
        Body::Event {
            request_id: self.request_id.clone(),
            request: None,
            event: EventInfo {
                kind: "void".into(),
                principal: None,
                status: self.status.clone(),
                needed: None,
                voids: Some(self.seq),
                comment: Some(format!(
                    "record {} ({}{who}) did not take effect: the server stopped after logging it and before its database committed it",
                    self.seq, self.kind
                )),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot read the end of the server's audit log {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The event at the log's end whose change the database does not hold, if there is one.
///
/// Only the last change can be in that state: every change holds the database's write lock
/// from before its event is appended until it commits, so when an event's change committed,
/// every change logged before it did too. The last request event (voids and log-ingest events
/// aside) is checked; an event already voided is done. Checking no further keeps a database
/// restored from an older backup from voiding changes that did take effect.
pub fn uncommitted(log: &Path, store: &dyn Store) -> Result<Option<Uncommitted>, ReconcileError> {
    let records = tail(log).map_err(|source| ReconcileError::Read {
        path: log.display().to_string(),
        source,
    })?;
    let events: Vec<(u64, String, EventInfo)> = records
        .into_iter()
        .filter_map(|r| Some((r.seq, r.request_id?, r.event?)))
        .collect();
    let voided: Vec<u64> = events.iter().filter_map(|(_, _, e)| e.voids).collect();
    let last = events
        .iter()
        .rev()
        .find(|(_, id, e)| e.kind != "void" && !id.starts_with("log:"));
    if let Some((seq, id, e)) = last.filter(|(seq, _, _)| !voided.contains(seq)) {
        let found = store.request_get(id)?;
        let status = found
            .as_ref()
            .map(|(row, _)| row.status.as_str().to_owned())
            .unwrap_or_else(|| "absent".into());
        let took_effect = match (e.kind.as_str(), &found) {
            (_, None) => false,
            ("request", Some(_)) => true,
            ("approval" | "denial", Some((_, decisions))) => {
                let kind = if e.kind == "approval" {
                    "approve"
                } else {
                    "deny"
                };
                decisions
                    .iter()
                    .any(|d| Some(&d.principal) == e.principal.as_ref() && d.kind == kind)
            }
            ("expiry", Some((row, _))) => row.status == RequestStatus::Expired,
            ("cancellation", Some((row, _))) => row.status == RequestStatus::Cancelled,
            ("released", Some(_)) => store.request_released(id)?.is_some(),
            // Kinds this server does not make: not its to judge.
            _ => true,
        };
        if !took_effect {
            return Ok(Some(Uncommitted {
                seq: *seq,
                request_id: id.clone(),
                kind: e.kind.clone(),
                principal: e.principal.clone(),
                status,
            }));
        }
    }
    Ok(None)
}

/// The complete records in the last `TAIL_BYTES` of the log (a torn last line is left out).
fn tail(log: &Path) -> std::io::Result<Vec<Record>> {
    let mut f = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let from = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity((len - from) as usize);
    f.read_to_end(&mut buf)?;
    let mut lines = buf.split(|b| *b == b'\n').collect::<Vec<_>>();
    if from > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    Ok(lines
        .into_iter()
        .filter_map(|l| serde_json::from_slice::<Record>(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_void_names_the_record_it_voids() {
        let u = Uncommitted {
            seq: 41,
            request_id: "r".into(),
            kind: "approval".into(),
            principal: Some("bob".into()),
            status: "pending".into(),
        };
        let Body::Event { event, .. } = u.void() else {
            panic!("not an event")
        };
        assert_eq!(event.kind, "void");
        assert_eq!(event.status, "pending");
        assert_eq!(event.voids, Some(41));
        let c = event.comment.unwrap();
        assert!(c.contains("record 41 (approval by bob)"), "{c}");
    }
}
