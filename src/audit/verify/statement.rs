//! Server-approved runs (DESIGN §6, §8): a decision that let a command run on approvals from a
//! gate server must carry the server's signed statement — verifying under a trusted server key,
//! for the record's own request id and digest, naming exactly the approvers (and times) the
//! record names. Without a trusted key the statement is still read and compared, and a warning
//! says its signature went unchecked.

use std::collections::{BTreeMap, BTreeSet};

use super::line::DecisionLite;
use crate::audit::note::{Note, NoteVerifier};
use crate::audit::statement::Statement;

/// Which server decisions `gate log verify` trusts: keys given on the command line
/// (`--server-key`, trusted for every record), and the policy's server backends by name with
/// their pinned `key`. A decision whose requirement was routed to one of those backends needs a
/// statement whatever its approvals claim, signed by *that* backend's key (or a given one).
#[derive(Debug, Clone, Default)]
pub struct ServerTrust {
    pub keys: Vec<NoteVerifier>,
    pub backends: BTreeMap<String, Option<NoteVerifier>>,
}

impl ServerTrust {
    /// The keys a statement of a decision routed to `backend` may be signed with.
    fn keys_for(&self, backend: Option<&String>) -> Vec<NoteVerifier> {
        let mut keys = self.keys.clone();
        match backend.and_then(|b| self.backends.get(b)) {
            Some(pinned) => keys.extend(pinned.iter().cloned()),
            // Not routed to a server backend of this policy: any server backend's key.
            None => keys.extend(self.backends.values().flatten().cloned()),
        }
        keys
    }
}

/// How a server-approved decision's statement came out.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(super) enum StatementCheck {
    /// Not approved through a server: nothing to check.
    NotServer,
    /// Signed by a trusted key and matching the record.
    Verified,
    /// Matching the record, but no trusted key to check the signature with.
    Unchecked,
    /// A compliance violation, with why.
    Violation(String),
}

/// Checks the statement of decision `d`, recorded for request `id` with request digest
/// `digest`.
pub(super) fn check(
    d: &DecisionLite,
    id: &str,
    digest: &str,
    trust: &ServerTrust,
) -> StatementCheck {
    let backend = d.required.as_ref().and_then(|r| r.backend.as_ref());
    let routed = backend.is_some_and(|b| trust.backends.contains_key(b));
    let from_server = d.approvals.iter().any(|a| a.via == "server");
    // A run on an earlier request's approval rests on nothing but that request's statement.
    if !routed && !from_server && d.reuse.is_none() {
        return StatementCheck::NotServer;
    }
    let note = match &d.statement {
        None | Some(serde_json::Value::Null) => {
            return StatementCheck::Violation(
                "approved through a gate server, but the record carries no signed decision statement"
                    .into(),
            );
        }
        Some(serde_json::Value::String(s)) => s,
        Some(_) => {
            return StatementCheck::Violation(
                "the decision statement is not a string (a signed note)".into(),
            );
        }
    };
    let keys = trust.keys_for(backend);
    let (statement, checked) = if keys.is_empty() {
        let text = match Note::parse(note) {
            Ok(n) => n.text,
            Err(e) => {
                return StatementCheck::Violation(format!("the decision statement: {e}"));
            }
        };
        match Statement::parse_text(&text) {
            Ok(s) => (s, false),
            Err(e) => return StatementCheck::Violation(e.to_string()),
        }
    } else {
        match Statement::open(note, &keys) {
            Ok((s, _)) => (s, true),
            Err(e) => return StatementCheck::Violation(e.to_string()),
        }
    };
    // A reuse proves itself with the earlier request's statement: for that id, for this
    // record's digest, asked by the principal the record names.
    let id = d.reuse.as_ref().map_or(id, |r| r.request_id.as_str());
    if let Err(e) = statement.approves(id, digest) {
        return StatementCheck::Violation(e.to_string());
    }
    if let Some(r) = &d.reuse
        && r.requester != statement.requester
    {
        return StatementCheck::Violation(format!(
            "the run reuses request {id}'s approval as {}, but that request was asked by {}",
            r.requester, statement.requester
        ));
    }
    let signed: BTreeSet<(&str, &str)> = statement
        .approvals
        .iter()
        .map(|v| (v.principal.as_str(), v.at.as_str()))
        .collect();
    let recorded: BTreeSet<(&str, &str)> = d
        .approvals
        .iter()
        .map(|a| (a.principal.as_str(), a.at.as_str()))
        .collect();
    if signed != recorded {
        let show = |s: &BTreeSet<(&str, &str)>| {
            s.iter()
                .map(|(p, at)| format!("{p} at {at}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return StatementCheck::Violation(format!(
            "the record names approvals [{}], but the server's signed statement names [{}]",
            show(&recorded),
            show(&signed)
        ));
    }
    if checked {
        StatementCheck::Verified
    } else {
        StatementCheck::Unchecked
    }
}
