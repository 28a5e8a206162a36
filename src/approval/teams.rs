//! Teams on the client side. A Teams webhook card can only link somewhere — it cannot carry an
//! answer back — so approvals routed to Teams are decided on a gate server's page: the
//! `kind: teams` backend belongs in the *server's* policy, and clients reach it through their
//! `kind: server` backend. What a client says when its own policy routes to Teams.

use crate::policy::{BackendKind, Policy};

/// Why a client cannot wait on backend `name` (`kind: teams`) itself, and what to do instead.
pub fn needs_server(name: &str) -> (String, String) {
    (
        format!(
            "backend `{name}` is `kind: teams`: Teams requires a server backend for the decision (a Teams card cannot send an answer back; approvals are decided on a gate server's page)"
        ),
        "route this rule to a `kind: server` backend, and put the `kind: teams` backend (with `webhook:`) in the server's own policy (docs/teams.md)".to_owned(),
    )
}

/// Warnings for a policy that defines a `kind: teams` backend but no `kind: server` one: as a
/// client's policy it cannot get a decision (a gate server's own policy legitimately has one,
/// which is why this warns rather than refuses).
pub fn lint(policy: &Policy) -> Vec<String> {
    let has_server = policy
        .backends
        .values()
        .any(|b| matches!(b, BackendKind::Server { .. }));
    if has_server {
        return Vec::new();
    }
    policy
        .backends
        .iter()
        .filter(|(_, b)| matches!(b, BackendKind::Teams { .. }))
        .map(|(name, _)| {
            format!(
                "backend `{name}` is `kind: teams` and no `kind: server` backend is defined: Teams requires a server backend for the decision (in a client's policy nothing can approve through it; in `gate serve`'s own policy this is expected)"
            )
        })
        .collect()
}
