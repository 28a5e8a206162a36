//! The API's wire types: what a client sends and what it gets back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::approval::RequestStatus;
use crate::audit::record::EventInfo;
use crate::policy::Requirement;
use crate::request::Payload;
use crate::server::AppState;
use crate::server::store::{DecisionRow, RequestRow};

use crate::server::error::ApiError;

/// What a requester may claim about itself: recorded as context, never trusted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub ci: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub agent: Option<String>,
}

/// What the client's own policy said (it can only add to what the server demands).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientView {
    /// allow, confirm, approve or deny.
    pub decision: String,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub requirement: Option<Requirement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The client's request id (a UUID), so host and server logs name the same request;
    /// the server makes one when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The exact argv (the server redacts it before storing).
    pub argv: Vec<String>,
    pub cwd: String,
    /// The context environment the client captured.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub payload: Vec<Payload>,
    /// The absolute path the requester's gate resolved `argv[0]` to: the program that runs.
    #[serde(default)]
    pub executable: Option<String>,
    /// SHA-256 of the canonical {argv, cwd, env, payload} (and `executable` when sent); checked.
    pub digest: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub claims: Claims,
    #[serde(default)]
    pub client: Option<ClientView>,
    /// Seconds the requester is willing to wait (the policy's timeout may be shorter).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// An OIDC ID token from the requester's CI system; verified against the issuers the
    /// server's policy trusts (`ci.issuers`). Never stored.
    #[serde(default)]
    pub ci_token: Option<crate::ci::token::IdToken>,
}

/// The stored request document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestDoc {
    pub argv: Vec<String>,
    pub cwd: String,
    /// The program the requester's gate will run, as it resolved it (bound to the digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    pub context: BTreeMap<String, String>,
    pub payload: Vec<Payload>,
    pub reason: Option<String>,
    pub claims: Claims,
    /// The CI identity the request's ID token proved (absent: no token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_verified: Option<crate::ci::VerifiedCi>,
    /// The stricter of the server's and the client's decision.
    pub decision: String,
    pub rules: Vec<String>,
    /// The server's matched rules with what an approver weighs: decision, risk, category.
    /// (Requests stored before it was kept have none.)
    #[serde(default)]
    pub matched: Vec<MatchedRule>,
    pub client_rules: Vec<String>,
    pub requirement: Requirement,
    /// Set when the server's policy denied the command outright.
    pub policy_denial: Option<String>,
    /// The variables an approved run of it receives from the server's secrets (names only),
    /// by the `release:` of the server's matched rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<crate::policy::ReleaseVar>,
}

/// One rule of the server's policy that matched a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MatchedRule {
    pub name: String,
    pub decision: String,
    #[serde(default)]
    pub risk: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ApprovalView {
    pub principal: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A request as the API shows it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: String,
    pub status: RequestStatus,
    pub requester: String,
    pub created: String,
    pub expires: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    pub digest: String,
    #[serde(flatten)]
    pub doc: RequestDoc,
    pub approvals: Vec<ApprovalView>,
    /// Approvals still needed (0 once approved).
    pub needed: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<ApprovalView>,
    /// The signed decision statement (`gate-decision/v1`), once decided; see
    /// docs/audit-log-format.md.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Where the request's chat post stands (Slack, Teams), while the server follows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<crate::server::chat::ChatNote>,
}

pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub(crate) fn doc_of(row: &RequestRow) -> Result<RequestDoc, ApiError> {
    serde_json::from_value(row.doc.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("stored request is unreadable: {e}"),
        )
    })
}

pub fn view(row: &RequestRow, decisions: &[DecisionRow]) -> Result<RequestView, ApiError> {
    let doc = doc_of(row)?;
    let approvals: Vec<ApprovalView> = decisions
        .iter()
        .filter(|d| d.kind == "approve")
        .map(|d| ApprovalView {
            principal: d.principal.clone(),
            at: rfc3339(d.at_ms),
            comment: d.comment.clone(),
        })
        .collect();
    let denial = decisions
        .iter()
        .find(|d| d.kind == "deny")
        .map(|d| ApprovalView {
            principal: d.principal.clone(),
            at: rfc3339(d.at_ms),
            comment: d.comment.clone(),
        })
        .or_else(|| {
            doc.policy_denial.as_ref().map(|m| ApprovalView {
                principal: "policy".into(),
                at: rfc3339(row.created_ms),
                comment: Some(m.clone()),
            })
        });
    let names: BTreeSet<String> = approvals.iter().map(|a| a.principal.clone()).collect();
    let needed = if row.status == RequestStatus::Approved {
        0
    } else {
        doc.requirement
            .min_approvals
            .saturating_sub(names.len() as u32)
            .max(u32::from(!doc.requirement.satisfied_by(&names)))
    };
    Ok(RequestView {
        id: row.id.clone(),
        status: row.status,
        requester: row.requester.clone(),
        created: rfc3339(row.created_ms),
        expires: rfc3339(row.expires_ms),
        decided: row.decided_ms.map(rfc3339),
        digest: row.digest.clone(),
        doc,
        approvals,
        needed,
        denial,
        statement: None,
        chat: None,
    })
}

/// The view a client decides on: with the signed statement once the request is decided.
pub fn signed_view(
    st: &AppState,
    row: &RequestRow,
    decisions: &[DecisionRow],
) -> Result<RequestView, ApiError> {
    let mut v = view(row, decisions)?;
    v.statement = st.statement(row, decisions);
    v.chat = st.chat.note(&row.id);
    Ok(v)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Option<String>,
    /// How many approvals the caller has seen: the long-poll answers once there are others.
    #[serde(default)]
    pub seen: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub status: Option<String>,
    /// Approval reuse: the caller's own approved requests of this digest whose approval its
    /// stored requirement's `reuse` window still covers, each with its signed statement.
    #[serde(default)]
    pub digest: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    pub reason: String,
}

/// The event a status change is recorded as.
pub fn event_info(
    kind: &str,
    principal: Option<String>,
    status: &str,
    comment: Option<String>,
) -> EventInfo {
    EventInfo {
        kind: kind.to_owned(),
        principal,
        status: status.to_owned(),
        comment,
        needed: None,
        voids: None,
    }
}
