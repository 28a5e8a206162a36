//! Who is asking: the OS user (as the kernel reports it), the host, CI provenance and the agent
//! marker. One of the few modules that reads the environment. Everything here is what the
//! requester's side can *see*; the local backend and the server never trust it for eligibility.

use std::collections::BTreeMap;

use nix::unistd::{Uid, User};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The principal: the OS user name.
    pub user: String,
    pub uid: u32,
    pub host: String,
    /// CI provenance (GitHub Actions, GitLab CI), when running in CI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<BTreeMap<String, String>>,
    /// The CI identity an OIDC ID token proved to the server (issue 13 §6). Only the server
    /// sets it, in its own records; a requester's gate never does, and a request file's is
    /// never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_verified: Option<crate::ci::VerifiedCi>,
    /// The AI agent driving this command, when one says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl Identity {
    /// The identity of this process.
    pub fn current() -> Self {
        let uid = Uid::current().as_raw();
        Identity {
            user: user_name(uid).unwrap_or_else(|| uid.to_string()),
            uid,
            host: host_name(),
            ci: ci_provenance(),
            ci_verified: None,
            agent: agent_marker(),
        }
    }
}

/// The user name of a uid, from the password database.
pub fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Whether stdin, stdout and stderr say nothing about a terminal; used with CI detection.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

fn ci_provenance() -> Option<BTreeMap<String, String>> {
    let pick = |system: &str, vars: &[(&str, &str)]| {
        let mut m = BTreeMap::from([("system".to_owned(), system.to_owned())]);
        for (key, var) in vars {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                m.insert((*key).to_owned(), v);
            }
        }
        Some(m)
    };
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        return pick(
            "github-actions",
            &[
                ("repository", "GITHUB_REPOSITORY"),
                ("workflow", "GITHUB_WORKFLOW"),
                ("run_id", "GITHUB_RUN_ID"),
                ("run_attempt", "GITHUB_RUN_ATTEMPT"),
                ("actor", "GITHUB_ACTOR"),
                ("ref", "GITHUB_REF"),
                ("sha", "GITHUB_SHA"),
                ("event", "GITHUB_EVENT_NAME"),
            ],
        );
    }
    if std::env::var_os("GITLAB_CI").is_some() {
        return pick(
            "gitlab-ci",
            &[
                ("project", "CI_PROJECT_PATH"),
                ("pipeline_id", "CI_PIPELINE_ID"),
                ("pipeline_source", "CI_PIPELINE_SOURCE"),
                ("job_id", "CI_JOB_ID"),
                ("actor", "GITLAB_USER_LOGIN"),
                ("ref", "CI_COMMIT_REF_NAME"),
                ("ref_protected", "CI_COMMIT_REF_PROTECTED"),
                ("environment", "CI_ENVIRONMENT_NAME"),
                ("sha", "CI_COMMIT_SHA"),
            ],
        );
    }
    if in_ci() {
        return pick("ci", &[]);
    }
    None
}

fn agent_marker() -> Option<String> {
    if let Ok(a) = std::env::var("GATE_AGENT")
        && !a.is_empty()
    {
        return Some(a);
    }
    if std::env::var_os("CLAUDECODE").is_some() {
        return Some("claude-code".into());
    }
    if std::env::var_os("CODEX_SANDBOX").is_some() || std::env::var_os("CODEX_HOME").is_some() {
        return Some("codex".into());
    }
    if std::env::var_os("CURSOR_TRACE_ID").is_some() {
        return Some("cursor".into());
    }
    if std::env::var_os("GEMINI_CLI").is_some() {
        return Some("gemini-cli".into());
    }
    None
}

/// Environment values the policy names, read once for the request.
pub fn env_snapshot(names: &[String]) -> BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
        .collect()
}
