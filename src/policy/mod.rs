//! The policy: YAML files checked, merged and compiled into one [`Policy`] that classifies
//! commands. Never touches the network, never runs anything.
//!
//! Several files merge into one policy and every matching rule counts, the most restrictive
//! decision winning, so adding a file can only tighten what the others say.

mod check;
pub mod compile;
pub mod diag;
mod merge;
pub mod schema;
pub mod testing;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use check::check_file;
pub use compile::Subject;
pub use diag::{Diagnostic, Pos};
pub use merge::merge;
pub use schema::{BackendKind, Decision, PolicyFile};

/// The default approval timeout when no file names one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Errors while finding and reading policy files.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", diag::render(.0))]
    Invalid(Vec<Diagnostic>),
}

/// One rule after merging: what it says, where it came from, its approval resolved to principals.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub name: String,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub file: PathBuf,
    pub line: usize,
    #[serde(skip)]
    pub approval: Option<RuleApproval>,
}

#[derive(Debug, Clone)]
pub struct RuleApproval {
    /// The approver groups and principals as written.
    pub approvers: Vec<String>,
    /// Every principal who may approve; `None` when the rule names no approvers (anyone but
    /// the requester).
    pub eligible: Option<BTreeSet<String>>,
    pub min_approvals: u32,
    pub allow_requester: bool,
    pub timeout: Option<Duration>,
    pub backend: Option<String>,
    pub reuse: Option<Duration>,
}

/// The merged, compiled policy.
pub struct Policy {
    pub files: Vec<PathBuf>,
    pub default_decision: Decision,
    pub default_backend: Option<String>,
    pub default_timeout: Duration,
    /// Environment variables captured into requests and records.
    pub context_env: Vec<String>,
    /// Every environment variable the policy reads (context plus `match.env`).
    pub env_names: Vec<String>,
    pub redact: Vec<Regex>,
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub identities: BTreeMap<String, BTreeMap<String, String>>,
    pub backends: BTreeMap<String, BackendKind>,
    pub audit_path: Option<PathBuf>,
    pub audit_key: Option<PathBuf>,
    pub rules: Vec<RuleInfo>,
    matcher: compile::Matcher,
}

/// One clause of an approval requirement: a matched `approve` rule's own demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    pub rule: String,
    pub approvers: Vec<String>,
    /// `None`: anyone but the requester.
    pub eligible: Option<BTreeSet<String>>,
    pub min_approvals: u32,
}

/// What approval a command needs, combined over every matching `approve` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub clauses: Vec<Clause>,
    /// The largest `min_approvals` of the clauses.
    pub min_approvals: u32,
    /// True only if every matched rule allows the requester to approve.
    pub allow_requester: bool,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub timeout: Duration,
    pub backend: Option<String>,
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl Requirement {
    /// Every principal who counts for at least one clause (`None`: anyone but the requester).
    pub fn eligible(&self) -> Option<BTreeSet<String>> {
        let mut all = BTreeSet::new();
        for c in &self.clauses {
            all.extend(c.eligible.clone()?);
        }
        Some(all)
    }

    /// Whether the distinct approvers given satisfy every clause.
    pub fn satisfied_by(&self, approvers: &BTreeSet<String>) -> bool {
        self.clauses.iter().all(|c| {
            let n = approvers
                .iter()
                .filter(|a| c.eligible.as_ref().is_none_or(|e| e.contains(*a)))
                .count();
            n >= c.min_approvals as usize
        }) && approvers.len() >= self.min_approvals as usize
    }

    /// Whether a principal counts towards any clause.
    pub fn counts(&self, principal: &str) -> bool {
        self.clauses
            .iter()
            .any(|c| c.eligible.as_ref().is_none_or(|e| e.contains(principal)))
    }
}

/// The policy's verdict on one command.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub decision: Decision,
    /// Every rule that matched, in policy order.
    pub matched: Vec<RuleInfo>,
    /// True when no rule matched and `defaults.decision` decided.
    pub by_default: bool,
    pub requirement: Option<Requirement>,
}

impl Classification {
    /// The rules that decided (those whose decision equals the outcome).
    pub fn deciding(&self) -> impl Iterator<Item = &RuleInfo> {
        self.matched.iter().filter(|r| r.decision == self.decision)
    }
}

impl Policy {
    /// Loads, checks, merges and compiles the given files in order.
    pub fn load(paths: &[PathBuf]) -> Result<Self, PolicyError> {
        let mut files = Vec::new();
        let mut diags = Vec::new();
        for path in paths {
            let source = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            match check_file(path, &source) {
                Ok(f) => files.push(f),
                Err(d) => diags.extend(d),
            }
        }
        if !diags.is_empty() {
            return Err(PolicyError::Invalid(diags));
        }
        merge(files).map_err(PolicyError::Invalid)
    }

    /// Classifies one command.
    pub fn classify(&self, s: &Subject<'_>) -> Classification {
        let matched: Vec<RuleInfo> = self
            .matcher
            .matching(s)
            .into_iter()
            .map(|i| self.rules[i].clone())
            .collect();
        let by_default = matched.is_empty();
        let decision = matched
            .iter()
            .map(|r| r.decision)
            .max()
            .unwrap_or(self.default_decision);
        let requirement = (decision == Decision::Approve).then(|| self.requirement(&matched));
        Classification {
            decision,
            matched,
            by_default,
            requirement,
        }
    }

    fn requirement(&self, matched: &[RuleInfo]) -> Requirement {
        let approving: Vec<&RuleApproval> = matched
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .filter_map(|r| r.approval.as_ref())
            .collect();
        let clauses: Vec<Clause> = matched
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .filter_map(|r| {
                let a = r.approval.as_ref()?;
                Some(Clause {
                    rule: r.name.clone(),
                    approvers: a.approvers.clone(),
                    eligible: a.eligible.clone(),
                    min_approvals: a.min_approvals,
                })
            })
            .collect();
        // A command no `approve` rule matched but that defaults to `approve` still needs one
        // approval from anyone but the requester.
        let clauses = if clauses.is_empty() {
            vec![Clause {
                rule: "defaults".into(),
                approvers: Vec::new(),
                eligible: None,
                min_approvals: 1,
            }]
        } else {
            clauses
        };
        let timeout = approving
            .iter()
            .map(|a| a.timeout.unwrap_or(self.default_timeout))
            .min()
            .unwrap_or(self.default_timeout);
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester: !approving.is_empty() && approving.iter().all(|a| a.allow_requester),
            timeout,
            backend: approving
                .iter()
                .find_map(|a| a.backend.clone())
                .or_else(|| self.default_backend.clone()),
            clauses,
        }
    }

    /// Replaces every match of the `context.redact` patterns. A match that contains `=` keeps
    /// its `name=` part, so `password=hunter2` reads `password=[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for re in &self.redact {
            out = re
                .replace_all(&out, |caps: &regex::Captures<'_>| {
                    let m = &caps[0];
                    match m.find('=') {
                        Some(i) => format!("{}[REDACTED]", &m[..=i]),
                        None => "[REDACTED]".to_owned(),
                    }
                })
                .into_owned();
        }
        out
    }
}

/// The policy files that apply, in merge order: the system directory (always), the user's
/// file, `GATE_POLICY` (colon-separated), then `--policy` files.
pub fn discover(
    system_dir: &Path,
    user_file: Option<PathBuf>,
    env_policy: Option<&str>,
    cli: &[PathBuf],
) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    match std::fs::read_dir(system_dir) {
        Ok(entries) => {
            let mut sys: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            sys.sort();
            out.extend(sys);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(PolicyError::Read {
                path: system_dir.to_path_buf(),
                source,
            });
        }
    }
    if let Some(f) = user_file.filter(|f| f.exists()) {
        out.push(f);
    }
    if let Some(list) = env_policy {
        out.extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    out.extend(cli.iter().cloned());
    Ok(out)
}
