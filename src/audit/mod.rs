//! The audit log: record types, canonical hashing, the locked append path and reading back.

pub mod canon;
/// Canonical JSON (RFC 8785) lives at the bottom of the layers; `audit::jcs` stays as a path.
pub use crate::jcs;
pub mod key;
pub mod log;
pub mod note;
pub mod record;
pub mod sinks;
pub mod statement;
pub mod verify;

pub use log::{AuditError, AuditLog};
pub use record::{Approver, Body, DecisionInfo, Record, ResultInfo, ReuseOf};
