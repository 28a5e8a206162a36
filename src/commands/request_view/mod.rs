//! One request as an approver is shown it, from the local spool or from a gate server, in one
//! shape: the `gate requests --json` contract (docs/requests-json.md, `format` =
//! [`FORMAT`]) and the text of `gate requests` (a row each) and `gate requests ID` (in full).
//! Everything a requester wrote is data here; the text renderers escape every piece of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::approval::RequestStatus;
use crate::approval::local::{Scan, SpoolRequest};
use crate::policy::{Classification, Place, Policy, Requirement};
use crate::request::{Payload, UnreadablePayload, short_id};

/// The version of the JSON shape; a change that removes or renames a member bumps it.
pub const FORMAT: &str = "gate.request/v1";

/// What redaction puts in place of what it hides (see `Policy::redact`).
pub const REDACTED: &str = "[REDACTED]";

/// Where a request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A spool directory on this machine.
    Local,
    /// A gate server.
    Server,
}

/// What vouches for `requester.principal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalFrom {
    /// The OS user that owns the request's files in the spool, as the kernel reports it.
    SpoolFileOwner,
    /// The principal of the API token the request was created with.
    ServerToken,
}

/// Whose policy named `rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesFrom {
    /// The approver's own policy, classifying the command shown (local spool).
    YourPolicy,
    /// The request file, because the approver's policy gave no reading (local spool).
    RequestFile,
    /// The server's policy.
    ServerPolicy,
}

/// A request, as an approver sees it. Every member is always present (`null` or empty when
/// there is nothing to say), for both sources.
#[derive(Debug, Clone, Serialize)]
pub struct RequestShown {
    pub format: &'static str,
    pub id: String,
    /// [`short_id`]: what every table shows and every command takes back.
    pub short_id: String,
    pub source: Source,
    /// The spool directory or the server's URL.
    pub location: String,
    pub status: RequestStatus,
    pub requester: Requester,
    pub command: CommandShown,
    pub reason: Option<String>,
    /// What the request needs: `approve`, or `deny` when a policy denied it outright.
    pub decision: String,
    pub rules: Vec<RuleShown>,
    pub rules_from: RulesFrom,
    /// The rule names the requester's own gate said matched (its word, for comparison).
    pub claimed_rules: Vec<String>,
    pub requirement: Requirement,
    /// Approvals that count so far, oldest first.
    pub approvals: Vec<Vote>,
    pub denials: Vec<Vote>,
    /// Approvals still needed (0 once approved).
    pub needed: u32,
    pub created: String,
    pub expires: String,
    /// Seconds from now to `expires`; negative once it has passed.
    pub expires_in_secs: i64,
    /// The digest an approval signs: for the spool, recomputed by you from what is shown
    /// (`null` when a payload file cannot be read); for a server, the server's.
    pub digest: Option<String>,
    /// What an approver should know before deciding: differences, claims nobody checked,
    /// decisions that do not count.
    pub notes: Vec<String>,
    /// The environment variables the server releases from its secrets to the approved run,
    /// and which secret each gets (names only; empty for the spool, which holds no secrets).
    pub release: Vec<crate::policy::ReleaseVar>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requester {
    /// Who asked, as something other than the requester vouches for it ([`PrincipalFrom`]).
    pub principal: String,
    pub principal_from: PrincipalFrom,
    /// The rest is what the requester's gate says about itself.
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub host: Option<String>,
    pub agent: Option<String>,
    /// CI provenance as the requester's gate states it: claims, `verified: false` always.
    pub ci: Option<CiClaims>,
    /// The CI identity the server verified from the request's OIDC ID token (server requests
    /// only; `null` when it had none). The only CI fact a policy's `ci:` rule reads.
    pub ci_verified: Option<crate::ci::VerifiedCi>,
}

/// CI provenance the requester states about itself (its environment's variables).
#[derive(Debug, Clone, Serialize)]
pub struct CiClaims {
    /// Always false: nothing checked these.
    pub verified: bool,
    #[serde(flatten)]
    pub claims: BTreeMap<String, String>,
}

impl CiClaims {
    /// Claims as shown; a claim that calls itself `verified` is dropped, so no requester can
    /// make the marker say anything else.
    pub fn of(claims: Option<BTreeMap<String, String>>) -> Option<Self> {
        claims.map(|mut claims| {
            claims.remove("verified");
            CiClaims {
                verified: false,
                claims,
            }
        })
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.claims.get(key)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandShown {
    /// The exact argv that will run (redacted where the policy says so).
    pub argv: Vec<String>,
    /// The program the requester's gate resolved and will run (part of the digest).
    pub executable: Option<String>,
    pub cwd: String,
    /// The context environment (redacted).
    pub env: BTreeMap<String, String>,
    pub payload: Vec<PayloadShown>,
    /// Whether redaction hid part of the argv or env: approving signs what you cannot see.
    pub redacted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayloadShown {
    pub path: String,
    /// The hash the approval binds: as you read the file now (spool), or as the requester
    /// hashed it (server). `null`: unreadable.
    pub sha256: Option<String>,
    /// What the requester's gate hashed when it asked.
    pub requester_sha256: Option<String>,
    /// Where the path leads when it is a symbolic link (spool only; read as you).
    pub link: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleShown {
    pub name: String,
    pub decision: Option<String>,
    pub risk: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Vote {
    pub principal: String,
    pub at: String,
    #[serde(default)]
    pub comment: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The local spool.

/// What an approver makes of a spooled request, by itself: the digest recomputed from what it
/// is shown (payload files hashed again, as this user), and its own policy's classification of
/// the shown command. The request file's own `digest`, `rules` and payload hashes are the
/// requester's word and decide nothing.
pub struct Seen {
    pub digest: Result<(String, Vec<Payload>), UnreadablePayload>,
    pub mine: Result<Classification, Unclassified>,
}

/// Why the approver's own policy gives no reading of a spooled request.
#[derive(Debug, thiserror::Error)]
pub enum Unclassified {
    #[error("your policy could not be loaded")]
    NoPolicy,
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
}

pub fn see(policy: Option<&Policy>, r: &SpoolRequest) -> Seen {
    let q = &r.request;
    let mine = match policy {
        None => Err(Unclassified::NoPolicy),
        Some(p) => p
            .try_classify_argv(
                &q.command.argv,
                &Place {
                    env: &q.context,
                    cwd: &q.command.cwd,
                    user: &q.requester.user,
                    host: &q.requester.host,
                    // The requester's PATH is not at hand here: its own gate classifies the
                    // symlinked names; this reading is what the approver is shown.
                    links: None,
                },
            )
            .map_err(Unclassified::from),
    };
    Seen {
        digest: q.recompute_shown_digest(),
        mine,
    }
}

impl Seen {
    /// The names of the rules the approver's policy matched, when it gave a reading.
    pub fn rule_names(&self) -> Option<Vec<String>> {
        self.mine
            .as_ref()
            .ok()
            .map(|c| c.matched.iter().map(|m| m.name.clone()).collect())
    }
}

/// Approvals still needed for `req` after `approvals`: at least one while it is unsatisfied.
fn still_needed(req: &Requirement, approvals: &[Vote]) -> u32 {
    let names: BTreeSet<String> = approvals.iter().map(|a| a.principal.clone()).collect();
    req.min_approvals
        .saturating_sub(names.len() as u32)
        .max(u32::from(!req.satisfied_by(&names)))
}

fn rfc3339_secs(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

fn secs_until(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A spooled request as this user sees it: `seen` from [`see`], `scan` the decision files
/// sorted against the digest this user would sign (or why they could not be read).
pub fn local(
    r: &SpoolRequest,
    seen: &Seen,
    scan: Result<Scan, String>,
    location: &str,
) -> RequestShown {
    let q = &r.request;
    let mut notes = Vec::new();
    let cwd = std::path::Path::new(&q.command.cwd);
    let payload: Vec<PayloadShown> = q
        .command
        .payload
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let now = match &seen.digest {
                Ok((_, read)) => read.get(i).and_then(|x| x.sha256.clone()),
                Err(_) => None,
            };
            let path = cwd.join(&p.path);
            let link = std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.file_type().is_symlink())
                .and_then(|_| std::fs::read_link(&path).ok())
                .map(|t| t.to_string_lossy().into_owned());
            if let Some(t) = &link {
                notes.push(format!(
                    "the payload file `{}` is a symbolic link to `{t}`: its hash is of what the \
                     link leads to now",
                    p.path
                ));
            }
            if seen.digest.is_ok() && now != p.sha256 {
                notes.push(format!(
                    "the payload file `{}` is not what the requester hashed: you see it as it \
                     is now, and an approval of it counts only if the waiting gate read the same",
                    p.path
                ));
            }
            PayloadShown {
                path: p.path.clone(),
                sha256: now,
                requester_sha256: p.sha256.clone(),
                link,
            }
        })
        .collect();
    if let Err(e) = &seen.digest {
        notes.push(format!("{e}: you cannot approve what you cannot read"));
    }
    let redacted = q.command.argv.iter().any(|a| a.contains(REDACTED))
        || q.context.values().any(|v| v.contains(REDACTED));
    if redacted {
        notes.push("parts of this command are redacted: you approve them unseen".into());
    }
    let here = crate::identity::host_name();
    if q.requester.host != here {
        notes.push(format!(
            "the request says it comes from host `{}`, and this spool is read on `{here}` \
             (the host is the requester's word)",
            q.requester.host
        ));
    }
    let (rules, rules_from) = match &seen.mine {
        Ok(c) => {
            let mine: Vec<String> = c.matched.iter().map(|m| m.name.clone()).collect();
            if mine != r.rules {
                notes.push(format!(
                    "the request file says rules `{}` ({}); your policy differs",
                    r.rules.join(", "),
                    r.decision
                ));
            }
            (
                c.matched
                    .iter()
                    .map(|m| RuleShown {
                        name: m.name.clone(),
                        decision: Some(m.decision.as_str().to_owned()),
                        risk: m.risk.clone(),
                        category: m.category.clone(),
                    })
                    .collect(),
                RulesFrom::YourPolicy,
            )
        }
        Err(why) => {
            notes.push(format!("rules as the request file says them: {why}"));
            (
                r.rules
                    .iter()
                    .map(|n| RuleShown {
                        name: n.clone(),
                        decision: None,
                        risk: None,
                        category: None,
                    })
                    .collect(),
                RulesFrom::RequestFile,
            )
        }
    };
    let vote = |a: &crate::audit::Approver| Vote {
        principal: a.principal.clone(),
        at: a.at.clone(),
        comment: a.comment.clone(),
    };
    let (approvals, denials) = match scan {
        Ok(s) => {
            for why in &s.ignored {
                notes.push(format!("not counted: {why}"));
            }
            (
                s.approvals.iter().map(vote).collect::<Vec<_>>(),
                s.denial
                    .iter()
                    .map(|(a, reason)| Vote {
                        comment: Some(reason.clone()),
                        ..vote(a)
                    })
                    .collect(),
            )
        }
        Err(why) => {
            notes.push(format!("the decisions so far cannot be read: {why}"));
            (Vec::new(), Vec::new())
        }
    };
    let expires_in_secs = secs_until(UNIX_EPOCH + Duration::from_secs(r.expires_unix));
    // Its gate may still be winding down; nobody can approve it any more either way.
    let status = if !denials.is_empty() {
        RequestStatus::Denied
    } else if expires_in_secs < 0 {
        RequestStatus::Expired
    } else {
        RequestStatus::Pending
    };
    RequestShown {
        format: FORMAT,
        id: q.id.clone(),
        short_id: short_id(&q.id).to_owned(),
        source: Source::Local,
        location: location.to_owned(),
        status,
        requester: Requester {
            principal: q.requester.user.clone(),
            principal_from: PrincipalFrom::SpoolFileOwner,
            user: Some(q.requester.user.clone()),
            uid: Some(q.requester.uid),
            host: Some(q.requester.host.clone()),
            agent: q.requester.agent.clone(),
            ci: CiClaims::of(q.requester.ci.clone()),
            // A request file is the requester's own word: never a verified identity.
            ci_verified: None,
        },
        command: CommandShown {
            argv: q.command.argv.clone(),
            executable: q.command.executable.clone(),
            cwd: q.command.cwd.clone(),
            env: q.context.clone(),
            payload,
            redacted,
        },
        reason: q.reason.clone(),
        decision: r.decision.clone(),
        rules,
        rules_from,
        claimed_rules: r.rules.clone(),
        needed: if status == RequestStatus::Pending {
            still_needed(&r.requirement, &approvals)
        } else {
            0
        },
        requirement: r.requirement.clone(),
        approvals,
        denials,
        created: r.created.clone(),
        expires: rfc3339_secs(r.expires_unix),
        expires_in_secs,
        digest: seen.digest.as_ref().ok().map(|d| d.0.clone()),
        notes,
        release: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// A gate server.

/// What the server's API says about a request (docs/openapi.yaml `Request`): the members
/// shown here. A member an older server does not send reads as empty.
#[derive(Debug, Deserialize)]
struct ServerRequest {
    id: String,
    status: RequestStatus,
    requester: String,
    created: String,
    expires: String,
    digest: String,
    argv: Vec<String>,
    cwd: String,
    #[serde(default)]
    executable: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default)]
    payload: Vec<Payload>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    claims: ServerClaims,
    #[serde(default)]
    ci_verified: Option<crate::ci::VerifiedCi>,
    decision: String,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    matched: Vec<ServerRule>,
    #[serde(default)]
    client_rules: Vec<String>,
    requirement: Requirement,
    #[serde(default)]
    policy_denial: Option<String>,
    #[serde(default)]
    release: Vec<crate::policy::ReleaseVar>,
    #[serde(default)]
    approvals: Vec<Vote>,
    #[serde(default)]
    needed: u32,
    #[serde(default)]
    denial: Option<Vote>,
}

#[derive(Debug, Default, Deserialize)]
struct ServerClaims {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    ci: Option<BTreeMap<String, String>>,
    #[serde(default)]
    agent: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ServerRule {
    name: String,
    decision: String,
    #[serde(default)]
    risk: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

/// A request as the server at `location` reports it; an answer that is not one is an error
/// naming what is wrong.
pub fn server(v: &serde_json::Value, location: &str) -> Result<RequestShown, String> {
    let r: ServerRequest = serde_json::from_value(v.clone())
        .map_err(|e| format!("unexpected answer from the server: {e}"))?;
    let mut notes = Vec::new();
    if let Some(user) = &r.claims.user
        && *user != r.requester
    {
        notes.push(format!(
            "the requester's gate says it runs as the OS user `{user}`; the server knows its \
             token's principal `{}`",
            r.requester
        ));
    }
    if let Some(d) = &r.policy_denial {
        notes.push(d.clone());
    }
    let redacted = r.argv.iter().any(|a| a.contains(REDACTED))
        || r.context.values().any(|v| v.contains(REDACTED));
    if redacted {
        notes.push("parts of this command are redacted: you approve them unseen".into());
    }
    if !r.client_rules.is_empty() && r.client_rules != r.rules {
        notes.push(format!(
            "the requester's policy matched `{}`; the server's policy `{}`",
            r.client_rules.join(", "),
            r.rules.join(", ")
        ));
    }
    let rules = if r.matched.is_empty() {
        r.rules
            .iter()
            .map(|n| RuleShown {
                name: n.clone(),
                decision: None,
                risk: None,
                category: None,
            })
            .collect()
    } else {
        r.matched
            .into_iter()
            .map(|m| RuleShown {
                name: m.name,
                decision: Some(m.decision),
                risk: m.risk,
                category: m.category,
            })
            .collect()
    };
    let expires_in_secs = humantime::parse_rfc3339_weak(&r.expires)
        .map(secs_until)
        .unwrap_or(0);
    Ok(RequestShown {
        format: FORMAT,
        short_id: short_id(&r.id).to_owned(),
        id: r.id,
        source: Source::Server,
        location: location.to_owned(),
        status: r.status,
        requester: Requester {
            principal: r.requester,
            principal_from: PrincipalFrom::ServerToken,
            user: r.claims.user,
            uid: r.claims.uid,
            host: r.claims.host,
            agent: r.claims.agent,
            ci: CiClaims::of(r.claims.ci),
            ci_verified: r.ci_verified,
        },
        command: CommandShown {
            argv: r.argv,
            executable: r.executable,
            cwd: r.cwd,
            env: r.context,
            payload: r
                .payload
                .into_iter()
                .map(|p| PayloadShown {
                    path: p.path,
                    sha256: p.sha256.clone(),
                    requester_sha256: p.sha256,
                    link: None,
                })
                .collect(),
            redacted,
        },
        reason: r.reason,
        decision: r.decision,
        rules,
        rules_from: RulesFrom::ServerPolicy,
        claimed_rules: r.client_rules,
        requirement: r.requirement,
        approvals: r.approvals,
        denials: r.denial.into_iter().collect(),
        needed: r.needed,
        created: r.created,
        expires: r.expires,
        expires_in_secs,
        digest: Some(r.digest),
        notes,
        release: r.release,
    })
}

mod text;
pub use text::{detail, needs, relative, table};
