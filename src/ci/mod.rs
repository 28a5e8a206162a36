//! CI identity (issue 13 §6): what a pipeline says about itself (*claims*, from its
//! environment, never trusted) and what an OIDC ID token proves (*verified*, only ever built by
//! [`jwt::verify`] from a token whose signature, issuer, audience and times checked out).
//! Verifying a token needs its issuer's keys: fetching and caching them is the server's job
//! (`server::oidc`); this module holds the parts that touch no network on the server side.

pub mod jwt;
pub mod token;

use serde::{Deserialize, Serialize};

/// The CI identity an ID token proved: the claims policy `ci:` matchers read. GitHub's names
/// are kept; GitLab's are mapped (`project_path` → `repository`, `pipeline_source` →
/// `workflow`, `user_login` → `actor`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifiedCi {
    /// The issuer the token was verified against (from the server's policy).
    pub issuer: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_protected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl VerifiedCi {
    /// The string value of a matcher key (`ref_protected` as `true`/`false`).
    pub fn get(&self, key: &str) -> Option<String> {
        match key {
            "issuer" => Some(self.issuer.clone()),
            "sub" => Some(self.sub.clone()),
            "repository" => self.repository.clone(),
            "ref" => self.git_ref.clone(),
            "ref_protected" => self.ref_protected.map(|b| b.to_string()),
            "environment" => self.environment.clone(),
            "workflow" => self.workflow.clone(),
            "actor" => self.actor.clone(),
            _ => None,
        }
    }
}

/// The keys a policy's `ci:` matcher may name (besides `verified`).
pub const CLAIM_KEYS: &[&str] = &[
    "issuer",
    "sub",
    "repository",
    "ref",
    "ref_protected",
    "environment",
    "workflow",
    "actor",
];
