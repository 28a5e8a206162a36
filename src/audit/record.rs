//! Audit record types (DESIGN §8). A record is written as its own RFC 8785 canonical JSON on one
//! line; `hash` is SHA-256 over the canonical JSON of the record without `hash`; `prev` links to
//! the record before. No floating-point numbers anywhere.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jcs;
use crate::request::RequestView;

pub const VERSION: u32 = 1;
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Genesis,
    Decision,
    Result,
    Repair,
    /// A server-side event: request, approval, denial, expiry, cancellation.
    Event,
}

/// Who approved or denied, as the recording side established it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// RFC 3339 time of the decision.
    pub at: String,
    /// How the decision arrived: `local` (spool file owner), `tty`, `server`, ...
    pub via: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The decision part of a `decision` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInfo {
    /// What the policy said: allow, confirm, approve, deny.
    pub decision: String,
    /// What happened: allowed, confirmed, approved (the command runs) or denied, refused,
    /// timed_out, cancelled, error (it does not).
    pub outcome: String,
    /// Whether the command is let run.
    pub run: bool,
    pub rules: Vec<Value>,
    pub by_default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approver>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<Approver>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The simple commands classified (redacted), when the command runs others (`sh -c`,
    /// `sudo`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<String>>,
    /// Why part of a shell string could not be read statically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
    /// The gate server's signed decision statement (`gate-decision/v1`, a signed note) when
    /// the approvals came from a server: proof, checkable offline, of who approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// When the run rests on an earlier request's approval (`approval.reuse`, or
    /// `gate --request ID`): which request, and whose approvals. `statement` is then that
    /// request's signed statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<ReuseOf>,
    /// The environment variables the gate server releases to this run from its secrets, and
    /// which secret each gets: names only, never a value (issue 14 §5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<crate::policy::ReleaseVar>,
}

/// The earlier approval a run used instead of asking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReuseOf {
    /// The earlier request's id.
    pub request_id: String,
    /// Its requester as the server signed it (the principal of the token that asked).
    pub requester: String,
    /// Its approvers, as its signed statement lists them.
    pub approvers: Vec<String>,
    /// `reuse` (found by digest within `approval.reuse`) or `request` (named by `--request`).
    pub via: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisInfo {
    pub host: String,
    pub created_by: String,
    /// The host's checkpoint verifier key (note `vkey` format), when signing is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairInfo {
    /// SHA-256 of the torn bytes that were moved aside.
    pub torn_sha256: String,
    pub torn_len: u64,
    pub side_file: String,
}

/// A server-side event (the gate server's own log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// `request`, `approval`, `denial`, `expiry`, `cancellation`, or `void`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused it (the authenticated principal), when someone did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The request's status after the event.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// On a `request` event: how many distinct approvals the request needs before it may be
    /// approved (what `gate log verify` holds its approvals to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<u32>,
    /// On a `void` event: the seq of the event that did not take effect (logged, never
    /// committed: the server stopped in between).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voids: Option<u64>,
}

/// The payload of a record: everything but the chain fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Genesis(GenesisInfo),
    Decision {
        request: Box<RequestView>,
        decision: Box<DecisionInfo>,
    },
    Result {
        request_id: String,
        result: ResultInfo,
    },
    Repair(RepairInfo),
    Event {
        request_id: String,
        /// The request itself, on its `request` event.
        request: Option<Box<RequestView>>,
        event: EventInfo,
    },
}

/// A whole record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub v: u32,
    pub log_id: String,
    pub seq: u64,
    pub ts: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<GenesisInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<RepairInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventInfo>,
    pub prev: String,
    pub hash: String,
}

impl Record {
    /// Builds a record, computing its hash.
    pub fn seal(
        log_id: &str,
        seq: u64,
        ts: String,
        prev: &str,
        body: Body,
    ) -> Result<Self, jcs::FloatError> {
        let mut r = Record {
            v: VERSION,
            log_id: log_id.to_owned(),
            seq,
            ts,
            kind: Kind::Genesis,
            request_id: None,
            request: None,
            decision: None,
            result: None,
            genesis: None,
            repair: None,
            event: None,
            prev: prev.to_owned(),
            hash: String::new(),
        };
        match body {
            Body::Genesis(g) => r.genesis = Some(g),
            Body::Decision { request, decision } => {
                r.kind = Kind::Decision;
                r.request_id = Some(request.id.clone());
                r.request = Some(*request);
                r.decision = Some(*decision);
            }
            Body::Result { request_id, result } => {
                r.kind = Kind::Result;
                r.request_id = Some(request_id);
                r.result = Some(result);
            }
            Body::Repair(info) => {
                r.kind = Kind::Repair;
                r.repair = Some(info);
            }
            Body::Event {
                request_id,
                request,
                event,
            } => {
                r.kind = Kind::Event;
                r.request_id = Some(request_id);
                r.request = request.map(|b| *b);
                r.event = Some(event);
            }
        }
        r.hash = hash_value(&r.to_value_without_hash())?;
        Ok(r)
    }

    fn to_value_without_hash(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("hash");
        }
        v
    }

    /// The line as written to the log (canonical JSON, no newline).
    pub fn to_line(&self) -> Result<String, jcs::FloatError> {
        jcs::canonicalize(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// Lowercase hex SHA-256 of the canonical form of a record value with `hash` removed.
pub fn hash_value(without_hash: &Value) -> Result<String, jcs::FloatError> {
    let canon = jcs::canonicalize(without_hash)?;
    Ok(hex::encode(Sha256::digest(canon.as_bytes())))
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
