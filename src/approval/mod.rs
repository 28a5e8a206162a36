//! Approval backends: where a human decision is asked for and how it comes back. A backend
//! never runs the command; it returns an [`Outcome`] that the run path records and obeys.

pub mod chat;
pub mod local;
pub mod server;
pub mod slack;
mod status;
pub mod teams;
pub mod tty;

pub use status::RequestStatus;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::audit::Approver;

/// How waiting for approval ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Enough distinct eligible approvers said yes.
    Approved(Vec<Approver>),
    /// An eligible approver said no.
    Denied {
        by: Approver,
        reason: String,
        approvals: Vec<Approver>,
    },
    TimedOut(Vec<Approver>),
    Cancelled(Vec<Approver>),
}

/// What a waiting requester is shown.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub request_id: String,
    pub elapsed: Duration,
    pub approvers: BTreeSet<String>,
    pub needed: u32,
    /// Decisions that were seen but do not count, with why (self-approval, not eligible, ...).
    pub ignored: Vec<String>,
}
