//! The HTTP API of `gate serve` (DESIGN §6, docs/openapi.yaml). Every route but `/healthz`,
//! `/metrics` and `/v1/server-key` authenticates, before it reads a body ([`Authed`]);
//! eligibility (groups, no self-approval, distinct approvers, expiry, the digest) is decided
//! here, in the store's transaction, by the pure [`super::eligibility`], never taken from the
//! client. A change is made only if its audit event is written in the same transaction (else
//! 503), and a decided request goes out with the server's signed statement.

/// The error type and the extractors whose rejections are errors.
/// The route handlers.
mod handlers;
/// What clients send and get back.
mod wire;

pub use super::error::*;
pub use handlers::*;
pub use wire::*;
