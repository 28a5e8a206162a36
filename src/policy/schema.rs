//! The policy as written in one file, after its YAML has been checked: plain typed values that
//! still carry their positions, so later checks (unknown groups, duplicates across files) can
//! point at the place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::diag::Pos;

/// What the policy says about a command. Ordered from least to most restrictive, so that
/// "the most restrictive decision wins" is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Confirm,
    Approve,
    Deny,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allow" => Self::Allow,
            "confirm" => Self::Confirm,
            "approve" => Self::Approve,
            "deny" => Self::Deny,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Confirm => "confirm",
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
}

#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub decision: Option<At<Decision>>,
    pub backend: Option<At<String>>,
    pub timeout: Option<At<Duration>>,
    pub opaque_shell: Option<At<Decision>>,
    /// What a command gets when every program it runs is known but some of its words are not
    /// read exactly (expansions, globs, inline code, words from input): the rules judged them as
    /// written. Unset: `opaque_shell`'s value.
    pub opaque_arguments: Option<At<Decision>>,
    /// Who approves a command gate cannot read (an opaque one), instead of the strictest
    /// requirement any rule can impose.
    pub opaque_approval: Option<OpaqueApproval>,
}

/// `defaults.opaque_approval`: the approvers and count of a rule's `approval`, nothing else.
#[derive(Debug, Clone)]
pub struct OpaqueApproval {
    /// Where the key was written.
    pub pos: Pos,
    pub approvers: Vec<At<String>>,
    pub min_approvals: At<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Context {
    pub env: Vec<String>,
    pub redact: Vec<At<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    Local {
        spool: Option<PathBuf>,
    },
    Server {
        /// The first of `urls`: where requests go while it answers.
        url: String,
        /// Every address of the server (`url:`, or `urls:` for replicas sharing one database),
        /// in the order they are tried; never empty.
        urls: Vec<String>,
        /// The verifier key (note `vkey` form) the server's decision statements must verify
        /// under; checked for form when the policy is read.
        key: String,
        /// `ca:`: a PEM file of the CA certificates that alone are trusted for the server's TLS
        /// (default: the built-in web PKI roots).
        ca: Option<PathBuf>,
    },
    Slack {
        channel: String,
        token: String,
        api_url: Option<String>,
        /// The Slack app's signing secret (a secret reference): only a gate server's policy
        /// needs it, to verify the Approve / Deny clicks Slack posts to `/slack/interactions`.
        signing_secret: Option<String>,
        /// How often `reactions.get` is asked (default 2 s).
        poll: Option<std::time::Duration>,
    },
    Teams {
        webhook: String,
    },
}

impl BackendKind {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Server { .. } => "server",
            Self::Slack { .. } => "slack",
            Self::Teams { .. } => "teams",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub path: Option<PathBuf>,
    /// The host's checkpoint signing key.
    pub key: Option<PathBuf>,
    /// Typed when the file is checked (a bad entry is a diagnostic at its place).
    pub sinks: Vec<super::SinkSpec>,
    pub require_remote: Option<bool>,
    /// Where `path`, `key` and `require_remote` were written (for trust-tier errors).
    pub path_pos: Option<Pos>,
    pub key_pos: Option<Pos>,
    pub require_remote_pos: Option<Pos>,
}

#[derive(Debug, Clone, Default)]
pub struct Match {
    pub program: Option<At<String>>,
    pub args: Vec<At<String>>,
    pub args_any: Vec<At<String>>,
    pub regex: Option<At<String>>,
    pub env: Vec<(String, At<String>)>,
    pub cwd: Option<At<String>>,
    pub user: Option<At<String>>,
    pub host: Option<At<String>>,
    /// `ci:`: conditions on the verified CI identity (server only; [`super::ci`]).
    pub ci: Option<super::ci::CiSpec>,
}

#[derive(Debug, Clone)]
pub struct Approval {
    pub approvers: Vec<At<String>>,
    pub min_approvals: At<u32>,
    pub allow_requester: bool,
    pub timeout: Option<Duration>,
    pub backend: Option<At<String>>,
    pub reuse: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: At<String>,
    pub matcher: Match,
    pub decision: Decision,
    pub risk: Option<String>,
    pub category: Option<String>,
    pub message: Option<String>,
    pub approval: Option<Approval>,
    /// `release:`: environment variables the gate server fills from its secrets for an
    /// approved run (issue 14 §5); honoured only in the policy of `gate serve`.
    pub release: Vec<Release>,
}

/// One `release:` entry: environment variable `env` gets the server's secret `secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub env: At<String>,
    pub secret: At<String>,
}

/// One `tests:` case: a command and what the policy must say about it.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub pos: Pos,
    pub run: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub expect_decision: Decision,
    /// Rules that must all be among the matched ones (empty: not checked).
    pub expect_rules: Vec<String>,
    pub expect_min_approvals: Option<u32>,
    /// `ci:`: classify as the server does, with this verified CI identity (or none).
    pub ci: Option<super::ci::CiTest>,
}

/// One policy file, checked.
#[derive(Debug, Clone, Default)]
pub struct PolicyFile {
    pub path: PathBuf,
    pub source: String,
    pub defaults: Defaults,
    pub context: Context,
    pub groups: Vec<(At<String>, Vec<String>)>,
    pub identities: Vec<(At<String>, BTreeMap<String, String>)>,
    pub backends: Vec<(At<String>, BackendKind)>,
    pub audit: Audit,
    /// `ci.issuers`: whose OIDC ID tokens a server believes, and where `ci:` was written.
    pub ci_issuers: Vec<super::ci::IssuerSpec>,
    pub ci_pos: Option<Pos>,
    /// `server.oidc`: the identity provider of the web page's sign-in.
    pub server_oidc: Option<super::signin::OidcSignIn>,
    pub rules: Vec<Rule>,
    pub tests: Vec<TestCase>,
    /// Names of rules and backends the file writes but that are left out of `rules` and
    /// `backends` for problems of their own. The cross-file checks still count them, so that
    /// a duplicate name is reported in the same pass as those problems, not after they are fixed.
    pub dropped_rules: Vec<At<String>>,
    pub dropped_backends: Vec<At<String>>,
}
