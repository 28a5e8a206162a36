//! The policy: YAML files checked, merged and compiled into one [`Policy`] that classifies
//! commands. Never touches the network, never runs anything.
//!
//! Several files merge into one policy and every matching rule counts, the most restrictive
//! decision winning, so adding a file can only tighten what the others say.

mod check;
pub mod ci;
mod classify;
pub mod compile;
pub mod diag;
mod merge;
mod redact;
mod requirement;
pub mod schema;
pub mod signin;
mod sinks;
mod strict;
pub mod testing;
mod tiers;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use check::{check_file, check_file_partial};
pub use classify::{Classification, Place};
pub use compile::Subject;
pub use diag::{Diagnostic, Pos};
pub use merge::merge;
use redact::{Redactor, required_bytes};
pub use requirement::{Clause, GroupRequirement, Requirement, combined_reuse};
pub use schema::{BackendKind, Decision, PolicyFile};
pub use sinks::SinkSpec;
pub use strict::Unsafe;
pub use tiers::{Source, Tier};

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
    /// A system-tier path that someone other than root could have written.
    #[error("refusing the system policy: `{}` {problem}{}", .path.display(), describe_of(.path, .of))]
    Unsafe {
        /// The path that failed the check.
        path: PathBuf,
        /// The system directory or file whose check reached it.
        of: PathBuf,
        problem: Unsafe,
    },
}

fn describe_of(path: &Path, of: &Path) -> String {
    if path == of {
        String::new()
    } else if of.starts_with(path) {
        format!(" (it holds `{}`)", of.display())
    } else {
        format!(" (`{}` leads to it)", of.display())
    }
}

impl PolicyError {
    /// The obvious next step, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            PolicyError::Unsafe { path, problem, .. } => Some(match problem {
                Unsafe::NotRoot { .. } => format!(
                    "the system policy must be root's alone (like sshd's StrictModes): `chown root {}`",
                    path.display()
                ),
                Unsafe::GroupWritable | Unsafe::OtherWritable => format!(
                    "the system policy must be writable by root alone (like sshd's StrictModes): `chmod go-w {}`",
                    path.display()
                ),
            }),
            _ => None,
        }
    }
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
    /// Index of the file in merge order.
    #[serde(skip)]
    pub file_index: usize,
    #[serde(skip)]
    pub approval: Option<RuleApproval>,
    /// The rule's `ci:` condition: it matches only when this holds for the request's
    /// verified CI identity (never on a requester's machine, which has none).
    #[serde(skip)]
    pub ci: Option<ci::CiCondition>,
    /// The rule's `release:` (environment variable → secret name). Only the gate server acts
    /// on it, for the rules of its own policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<ReleaseVar>,
}

/// One variable a gate server fills from one of its secrets for an approved run. Names
/// only: the value never leaves the server but in the release answer to the run itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ReleaseVar {
    pub env: String,
    pub secret: String,
}

/// The variables the matched rules release, each once, in name order. When two rules fill one
/// variable from different secrets, the first matched rule (policy order) decides; approvers
/// see the result either way, since it is what the request shows.
pub fn release_of(matched: &[RuleInfo]) -> Vec<ReleaseVar> {
    let mut out: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for r in matched {
        for v in &r.release {
            out.entry(&v.env).or_insert(&v.secret);
        }
    }
    out.into_iter()
        .map(|(env, secret)| ReleaseVar {
            env: env.to_owned(),
            secret: secret.to_owned(),
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct RuleApproval {
    /// The approver groups and principals as written.
    pub approvers: Vec<String>,
    /// Every principal who may approve; `None` when the rule names no approvers (anyone but
    /// the requester).
    pub eligible: Option<BTreeSet<String>>,
    /// Named groups, each of which must contribute at least one approver.
    pub groups: Vec<GroupRequirement>,
    pub min_approvals: u32,
    pub allow_requester: bool,
    pub timeout: Option<Duration>,
    pub backend: Option<String>,
    pub reuse: Option<Duration>,
}

/// The merged, compiled policy.
pub struct Policy {
    pub files: Vec<PathBuf>,
    /// Each file's trust tier, by file index.
    pub tiers: Vec<Tier>,
    /// The most restrictive `defaults.decision` of all files (for display).
    pub default_decision: Decision,
    /// What a shell string that cannot be resolved statically gets (`defaults.opaque_shell`):
    /// the most restrictive over every file, a file that does not set it voting `approve`.
    pub opaque_shell: Decision,
    /// What a command whose programs are all known, but some of whose words are read only as
    /// written, gets (`defaults.opaque_arguments`, each file voting its `opaque_shell` when it
    /// does not set it): the most restrictive over every file.
    pub opaque_arguments: Decision,
    /// `defaults.opaque_approval`: who approves a command gate cannot read, set by the system
    /// tier (or by any file when there is none).
    pub opaque_approval: Option<RuleApproval>,
    /// Each file's own `defaults.decision`, by file index: a file whose rules don't match a
    /// command votes its default, so a later file's `allow` rule can't undo an earlier file's
    /// restrictive default.
    pub file_defaults: Vec<Option<Decision>>,
    pub default_backend: Option<String>,
    pub default_timeout: Duration,
    /// Environment variables captured into requests and records.
    pub context_env: Vec<String>,
    /// Every environment variable the policy reads (context plus `match.env`).
    pub env_names: Vec<String>,
    /// The `context.redact` patterns, in order.
    redact: Vec<Redactor>,
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub identities: BTreeMap<String, BTreeMap<String, String>>,
    pub backends: BTreeMap<String, BackendKind>,
    pub audit_path: Option<PathBuf>,
    pub audit_key: Option<PathBuf>,
    /// Remote sinks as written (delivered by a later part of gate).
    pub audit_sinks: Vec<SinkSpec>,
    /// True if any file demands remote delivery before a run.
    pub require_remote: bool,
    /// `ci.issuers`: whose OIDC ID tokens the server believes (first file to list an issuer
    /// wins; with a system tier only it may list any).
    pub ci_issuers: Vec<ci::CiIssuer>,
    /// `server.oidc`: the web page's sign-in through an identity provider (one file may set
    /// it; with a system tier, only the system tier).
    pub server_oidc: Option<signin::OidcSignIn>,
    pub rules: Vec<RuleInfo>,
    matcher: Compiled,
    /// Where a rule group that fails to compile on first use is reported (lazy policies).
    compile_error_at: Option<Diagnostic>,
}

/// The rules' match conditions: all compiled at load, or per program on first use.
enum Compiled {
    Eager(compile::Matcher),
    Lazy(compile::LazyMatcher),
}

impl Policy {
    /// Loads, checks, merges and compiles the given files in order, all as one tier (what
    /// `gate policy lint FILE...` uses). Every problem of every file is reported at once,
    /// cross-file ones included.
    pub fn load(paths: &[PathBuf]) -> Result<Self, PolicyError> {
        Self::load_with(&added(paths), false)
    }

    /// Like [`Policy::load`], each file in its trust tier: when a system tier exists, an added
    /// file that sets what only the system tier may set is a policy error.
    pub fn load_sources(sources: &[Source]) -> Result<Self, PolicyError> {
        Self::load_with(sources, false)
    }

    /// [`Policy::load_lazy`] with each file in its trust tier (the run path, `gate check`).
    pub fn load_sources_lazy(sources: &[Source]) -> Result<Self, PolicyError> {
        Self::load_with(sources, true)
    }

    /// Whether a system tier exists: at least one file from the system directory applies.
    /// Without one, the user's own files are the top of trust, and whatever runs as the user
    /// can edit them.
    pub fn has_system_tier(&self) -> bool {
        self.tiers.contains(&Tier::System)
    }

    /// Like [`Policy::load`], with every file read, checked (every glob and regex validated
    /// with its position) and merged the same way, but the rules compiled per program the first
    /// time a command of that program is classified: what the run path and `gate check` use,
    /// since one command needs only its program's rules. Classify such a policy with
    /// [`Policy::try_classify`], which reports a group that fails to compile as a policy error.
    pub fn load_lazy(paths: &[PathBuf]) -> Result<Self, PolicyError> {
        Self::load_with(&added(paths), true)
    }

    fn load_with(sources: &[Source], lazy: bool) -> Result<Self, PolicyError> {
        let mut files = Vec::new();
        let mut tiers = Vec::new();
        let mut diags = Vec::new();
        for Source { path, tier } in sources {
            let source = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            let (file, d) = check_file_partial(path, &source);
            if let Some(file) = file {
                files.push(file);
                tiers.push(*tier);
            } else if *tier == Tier::System {
                // An unreadable system file must not let added files act as if it were
                // absent: they are still held to the tier's rules.
                files.push(PolicyFile {
                    path: path.clone(),
                    ..PolicyFile::default()
                });
                tiers.push(*tier);
            }
            diags.extend(d);
        }
        let paths: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
        let paths = &paths;
        match merge::merge_with(files, tiers, lazy) {
            Ok(p) if diags.is_empty() => Ok(p),
            Ok(_) => Err(PolicyError::Invalid(sorted(paths, diags))),
            Err(more) => {
                diags.extend(more);
                Err(PolicyError::Invalid(sorted(paths, diags)))
            }
        }
    }
}

fn added(paths: &[PathBuf]) -> Vec<Source> {
    paths.iter().cloned().map(Source::added).collect()
}

/// Orders problems by file (in merge order), then position.
fn sorted(paths: &[PathBuf], mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by_key(|d| {
        let fi = paths
            .iter()
            .position(|p| *p == d.path)
            .unwrap_or(usize::MAX);
        (fi, d.pos.line, d.pos.col)
    });
    diags.dedup();
    diags
}

/// The policy files that apply, in merge order: the system directory (always), the user's
/// file, `GATE_POLICY` (colon-separated), then `--policy` files.
pub fn discover(
    system_dir: &Path,
    user_file: Option<PathBuf>,
    env_policy: Option<&str>,
    cli: &[PathBuf],
) -> Result<Vec<PathBuf>, PolicyError> {
    Ok(discover_sources(system_dir, user_file, env_policy, cli)?
        .into_iter()
        .map(|s| s.path)
        .collect())
}

/// [`discover`], each file with its tier: the `*.yaml` / `*.yml` files of `system_dir` are the
/// system tier, every other file is added. The system directory, the directories above it and
/// each system file must be root's and writable by no one else (see [`Unsafe`]); one that
/// exists but cannot be read is an error, never skipped.
pub fn discover_sources(
    system_dir: &Path,
    user_file: Option<PathBuf>,
    env_policy: Option<&str>,
    cli: &[PathBuf],
) -> Result<Vec<Source>, PolicyError> {
    let mut out = Vec::new();
    for path in system_files(system_dir)? {
        out.push(Source {
            path,
            tier: Tier::System,
        });
    }
    if let Some(f) = user_file.filter(|f| f.exists()) {
        out.push(Source::added(f));
    }
    if let Some(list) = env_policy {
        out.extend(
            list.split(':')
                .filter(|s| !s.is_empty())
                .map(|s| Source::added(PathBuf::from(s))),
        );
    }
    out.extend(cli.iter().cloned().map(Source::added));
    Ok(out)
}

/// The system directory's policy files, sorted, each checked for ownership. A directory that
/// does not exist (nor a symlink by its name) means no system tier.
fn system_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PolicyError::Read { path, source }
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(dir)(e)),
        Ok(_) => {}
    }
    let mut sys = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let path = entry.map_err(read_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            sys.push(path);
        }
    }
    // No policy file, no tier: nothing to trust, so nothing to check (the allow path of a
    // machine without a system policy pays no walk up to `/`).
    if sys.is_empty() {
        return Ok(sys);
    }
    let mut checked = std::collections::BTreeSet::new();
    strict::check_chain(dir, &mut checked)?;
    sys.sort();
    for f in &sys {
        strict::check_chain(f, &mut checked)?;
    }
    Ok(sys)
}
