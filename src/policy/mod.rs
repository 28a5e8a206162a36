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
mod sinks;
mod strict;
pub mod testing;
mod tiers;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use check::{check_file, check_file_partial};
pub use compile::Subject;
pub use diag::{Diagnostic, Pos};
pub use merge::merge;
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
    pub audit_sinks: Vec<serde_json::Value>,
    /// True if any file demands remote delivery before a run.
    pub require_remote: bool,
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

/// A group named in `approvers`: at least one of its members must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRequirement {
    pub name: String,
    pub members: BTreeSet<String>,
}

/// One clause of an approval requirement: a matched `approve` rule's own demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    pub rule: String,
    pub approvers: Vec<String>,
    /// `None`: anyone but the requester.
    pub eligible: Option<BTreeSet<String>>,
    /// At least this many distinct eligible principals.
    pub min_approvals: u32,
    /// Every named group must contribute at least one of them.
    #[serde(default)]
    pub groups: Vec<GroupRequirement>,
}

impl Clause {
    /// Whether every set of approvers satisfying `self` satisfies `other`: no wider
    /// eligibility, at least as many approvals, each of `other`'s groups required too.
    pub fn implies(&self, other: &Clause) -> bool {
        let eligible = match (&self.eligible, &other.eligible) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x.is_subset(y),
        };
        eligible
            && self.min_approvals >= other.min_approvals
            && other.groups.iter().all(|g| {
                self.groups
                    .iter()
                    .any(|h| !h.members.is_empty() && h.members.is_subset(&g.members))
            })
    }

    fn satisfied_by(&self, approvers: &BTreeSet<String>) -> bool {
        let n = approvers
            .iter()
            .filter(|a| self.eligible.as_ref().is_none_or(|e| e.contains(*a)))
            .count();
        n >= self.min_approvals as usize
            && self
                .groups
                .iter()
                .all(|g| approvers.iter().any(|a| g.members.contains(a)))
    }
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
        self.clauses.iter().all(|c| c.satisfied_by(approvers))
            && approvers.len() >= self.min_approvals as usize
    }

    /// Whether every set of approvers that satisfies `self` also satisfies `other`: each of
    /// `other`'s clauses is implied by one of `self`'s (no wider eligibility, at least as many
    /// approvals, every group of it required too), at least as many approvals overall, the
    /// requester counting only if `other` lets them, and no longer a wait.
    pub fn at_least_as_strict_as(&self, other: &Requirement) -> bool {
        other
            .clauses
            .iter()
            .all(|b| self.clauses.iter().any(|a| a.implies(b)))
            && self.min_approvals >= other.min_approvals
            && (other.allow_requester || !self.allow_requester)
            && self.timeout <= other.timeout
    }

    /// Whether a principal counts towards any clause.
    pub fn counts(&self, principal: &str) -> bool {
        self.clauses
            .iter()
            .any(|c| c.eligible.as_ref().is_none_or(|e| e.contains(principal)))
    }
}

/// Where, and by whom, a command runs: what rules' `env`, `cwd`, `user` and `host` match on.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    /// What the machine the command runs on says about it: the other names of a program
    /// reached through a symlink, AWS CLI aliases, code-running variables in gate's environment
    /// (`None` where they are not at hand, e.g. on the server).
    pub links: Option<&'a crate::command::link::Resolver>,
}

/// The policy's verdict on one command.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub decision: Decision,
    /// Every rule that matched, in policy order.
    pub matched: Vec<RuleInfo>,
    /// True when a file's `defaults.decision` decided (no rule of that file matched and no
    /// matched rule was as restrictive).
    pub by_default: bool,
    /// The file whose default decided, when `by_default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_from: Option<PathBuf>,
    pub requirement: Option<Requirement>,
    /// The simple commands classified, when the command runs others (`sh -c`, `sudo`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<String>>,
    /// Why part of a shell string could not be resolved (then `defaults.opaque_shell` counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

impl Classification {
    /// Whether this verdict is at least as strict as `other`: a more restrictive decision, or
    /// the same one and, for `approve`, a requirement at least as strict
    /// ([`Requirement::at_least_as_strict_as`]).
    pub fn at_least_as_strict_as(&self, other: &Classification) -> bool {
        if self.decision != other.decision {
            return self.decision > other.decision;
        }
        match (&self.requirement, &other.requirement) {
            (Some(a), Some(b)) => a.at_least_as_strict_as(b),
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// The rules that decided (those whose decision equals the outcome).
    pub fn deciding(&self) -> impl Iterator<Item = &RuleInfo> {
        self.matched.iter().filter(|r| r.decision == self.decision)
    }
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

    /// Classifies one command. For a policy from [`Policy::load_lazy`], prefer
    /// [`Policy::try_classify`]: if the command's rules cannot be compiled, this fails closed
    /// with a `deny` that no rule explains.
    pub fn classify(&self, s: &Subject<'_>) -> Classification {
        self.try_classify(s).unwrap_or(Classification {
            decision: Decision::Deny,
            matched: Vec::new(),
            by_default: false,
            default_from: None,
            requirement: None,
            commands: Vec::new(),
            opaque: None,
        })
    }

    /// Classifies one command; an error when the rules for its program cannot be compiled
    /// (only possible for a policy from [`Policy::load_lazy`], at the first use of a program).
    pub fn try_classify(&self, s: &Subject<'_>) -> Result<Classification, PolicyError> {
        if let Some(e) = self.redact_error() {
            return Err(e);
        }
        let indexes = match &self.matcher {
            Compiled::Eager(m) => m.matching(s),
            Compiled::Lazy(m) => m.matching(s).map_err(|e| {
                let mut d = self.compile_error_at.clone().unwrap_or_else(|| Diagnostic {
                    path: self.files.first().cloned().unwrap_or_default(),
                    pos: Pos { line: 1, col: 1 },
                    message: String::new(),
                    hint: None,
                    source_line: None,
                });
                d.message = format!("cannot compile the rules: {e}");
                PolicyError::Invalid(vec![d])
            })?,
        };
        let matched: Vec<RuleInfo> = indexes.into_iter().map(|i| self.rules[i].clone()).collect();
        let by_rules = matched.iter().map(|r| r.decision).max();
        // Each file whose rules say nothing about the command votes its own default.
        let default_vote = self
            .file_defaults
            .iter()
            .enumerate()
            .filter(|(fi, _)| !matched.iter().any(|r| r.file_index == *fi))
            .filter_map(|(fi, d)| d.map(|d| (d, fi)))
            .max_by_key(|(d, _)| *d);
        let (decision, by_default, default_from) = match (by_rules, default_vote) {
            (Some(r), Some((d, fi))) if d > r => (d, true, Some(self.files[fi].clone())),
            (Some(r), _) => (r, false, None),
            (None, Some((d, fi))) => (d, true, Some(self.files[fi].clone())),
            (None, None) => (Decision::Allow, true, None),
        };
        let requirement = (decision == Decision::Approve).then(|| self.requirement(&matched));
        Ok(Classification {
            decision,
            matched,
            by_default,
            default_from,
            requirement,
            commands: Vec::new(),
            opaque: None,
        })
    }

    /// [`Policy::try_classify_argv`] for policies compiled at load (which cannot fail); a
    /// failure is a `deny`, never an allow.
    pub fn classify_argv(&self, argv: &[String], at: &Place<'_>) -> Classification {
        self.try_classify_argv(argv, at).unwrap_or(Classification {
            decision: Decision::Deny,
            matched: Vec::new(),
            by_default: false,
            default_from: None,
            requirement: None,
            commands: Vec::new(),
            opaque: None,
        })
    }

    /// Classifies a whole argv the way it will run: the command itself, every other name it
    /// answers to (a symlink's target), and every command it runs in turn — the script of
    /// `sh -c` (split, DESIGN §5), the command a wrapper such as `sudo`, `env` or `find -exec`
    /// runs — read exactly or not at all ([`crate::command::wrap`]). The most restrictive
    /// decision of them all wins; what cannot be read makes the command opaque, which adds
    /// `defaults.opaque_shell` and, for `approve`, [`Policy::opaque_requirement`].
    pub fn try_classify_argv(
        &self,
        argv: &[String],
        at: &Place<'_>,
    ) -> Result<Classification, PolicyError> {
        let (commands, dynamic, mut opaque) = read_commands(argv, at);
        // An argument known only when the shell runs (`$(...)`, `$X`, a glob) in a command some
        // rule may concern: the rule's conditions cannot be read.
        if opaque.is_none()
            && let Some(cmd) = dynamic.iter().find(|c| {
                self.concerns(crate::request::program_name(&c[0]))
                    || at
                        .links
                        .is_some_and(|l| l.other_names(&c[0]).iter().any(|n| self.concerns(n)))
            })
        {
            opaque = Some(format!(
                "an argument of `{}` is known only when it runs",
                crate::request::program_name(&cmd[0])
            ));
        }
        // A command run by another may be run with variables the policy's `env` conditions read
        // set differently (`env GATE_ENV=dev kubectl ...`, `GATE_ENV=dev kubectl` in a script):
        // the rules would be judged on values the command never sees.
        if opaque.is_none() && commands.len() > 1 {
            let names = match &self.matcher {
                Compiled::Eager(m) => m.env_names(),
                Compiled::Lazy(m) => m.env_names(),
            };
            if let Some(name) = names.iter().find(|n| {
                commands.iter().flatten().any(|w| {
                    w == *n
                        || w.match_indices(n.as_str())
                            .any(|(i, _)| w[i + n.len()..].starts_with('='))
                })
            }) {
                opaque = Some(format!(
                    "a command sets `{name}`, which the policy's rules read"
                ));
            }
        }
        let mut parts = Vec::with_capacity(commands.len());
        for cmd in &commands {
            let Some(first) = cmd.first() else { continue };
            let program = crate::request::program_name(first);
            let words = crate::command::parse(program, &cmd[1..]).words;
            let line = crate::request::shell_join(cmd);
            parts.push(self.try_classify(&Subject {
                program,
                words: &words,
                command_line: &line,
                env: at.env,
                cwd: at.cwd,
                user: at.user,
                host: at.host,
            })?);
        }
        if commands.len() == 1 && opaque.is_none() {
            return Ok(parts.pop().expect("one part"));
        }
        let mut matched: Vec<RuleInfo> = Vec::new();
        for p in &parts {
            for r in &p.matched {
                if !matched.iter().any(|m| m.name == r.name) {
                    matched.push(r.clone());
                }
            }
        }
        let by_parts = parts
            .iter()
            .map(|p| p.decision)
            .max()
            .unwrap_or(Decision::Allow);
        let decision = match &opaque {
            Some(_) => by_parts.max(self.opaque_shell),
            None => by_parts,
        };
        let by_default = decision == by_parts && parts.iter().all(|p| p.by_default);
        let requirement = (decision == Decision::Approve).then(|| match &opaque {
            // What gate cannot read may be any command the policy names.
            Some(_) => self.opaque_requirement(&matched),
            None => self.requirement(&matched),
        });
        Ok(Classification {
            decision,
            matched,
            by_default,
            default_from: if by_default {
                parts.iter().find_map(|p| p.default_from.clone())
            } else {
                None
            },
            requirement,
            commands,
            opaque,
        })
    }

    /// Whether some rule may match a command of `program` (a program the policy has rules for,
    /// or a rule with no `program` condition).
    fn concerns(&self, program: &str) -> bool {
        match &self.matcher {
            Compiled::Eager(m) => m.concerns(program),
            Compiled::Lazy(m) => m.concerns(program),
        }
    }

    /// What approving a command gate cannot read requires: at least what any rule of the
    /// policy can require — every clause of every `approve` rule (so each of their groups
    /// must contribute), the largest `min_approvals`, the shortest timeout, the requester never
    /// counting. With no `approve` rule, one approval from anyone but the requester.
    ///
    /// When the system tier names `defaults.opaque_approval`, that clause replaces the derived
    /// one, together with the clauses of the rules the readable part of the command matched.
    pub fn opaque_requirement(&self, matched: &[RuleInfo]) -> Requirement {
        if let Some(a) = &self.opaque_approval {
            let mut r = if matched.iter().any(|r| r.decision == Decision::Approve) {
                let mut r = self.requirement(matched);
                r.clauses.retain(|c| c.rule != "defaults");
                r
            } else {
                Requirement {
                    clauses: Vec::new(),
                    min_approvals: 1,
                    allow_requester: false,
                    timeout: self.default_timeout,
                    backend: self.default_backend.clone(),
                }
            };
            r.clauses.push(Clause {
                rule: "opaque-approval".into(),
                approvers: a.approvers.clone(),
                eligible: a.eligible.clone(),
                min_approvals: a.min_approvals,
                groups: a.groups.clone(),
            });
            r.min_approvals = r.min_approvals.max(a.min_approvals);
            // The requester of a command nobody could read never approves it.
            r.allow_requester = false;
            return r;
        }
        let approving: Vec<&RuleInfo> = self
            .rules
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .collect();
        let mut clauses: Vec<Clause> = approving
            .iter()
            .map(|r| match &r.approval {
                Some(a) => Clause {
                    rule: r.name.clone(),
                    approvers: a.approvers.clone(),
                    eligible: a.eligible.clone(),
                    min_approvals: a.min_approvals,
                    groups: a.groups.clone(),
                },
                None => Clause {
                    rule: r.name.clone(),
                    approvers: Vec::new(),
                    eligible: None,
                    min_approvals: 1,
                    groups: Vec::new(),
                },
            })
            .collect();
        // A clause another one implies adds nothing (of two equivalent ones, keep the first).
        let keep: Vec<bool> = (0..clauses.len())
            .map(|i| {
                !(0..clauses.len()).any(|j| {
                    j != i
                        && clauses[j].implies(&clauses[i])
                        && (j < i || !clauses[i].implies(&clauses[j]))
                })
            })
            .collect();
        let mut keep = keep.into_iter();
        clauses.retain(|_| keep.next().unwrap_or(true));
        if clauses.is_empty() {
            clauses.push(Clause {
                rule: "opaque-shell".into(),
                approvers: Vec::new(),
                eligible: None,
                min_approvals: 1,
                groups: Vec::new(),
            });
        }
        let timeout = approving
            .iter()
            .map(|r| {
                r.approval
                    .as_ref()
                    .and_then(|a| a.timeout)
                    .unwrap_or(self.default_timeout)
            })
            .min()
            .unwrap_or(self.default_timeout);
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester: false,
            timeout,
            backend: approving
                .iter()
                .find_map(|r| r.approval.as_ref().and_then(|a| a.backend.clone()))
                .or_else(|| self.default_backend.clone()),
            clauses,
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
                    groups: a.groups.clone(),
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
                groups: Vec::new(),
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
    /// its `name=` part, so `password=hunter2` reads `password=[REDACTED]`. If a pattern of a
    /// lazily loaded policy cannot be compiled, the whole text is redacted (nothing leaks) and
    /// [`Policy::try_classify`] reports the policy error.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for r in &self.redact {
            // Text without a byte every match contains cannot match: it stays as it is, which
            // is what `replace_all` would return, without compiling the pattern.
            if !r.required.iter().all(|b| out.as_bytes().contains(b)) {
                continue;
            }
            let Ok(re) = r.regex() else {
                return "[REDACTED]".to_owned();
            };
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

    /// A `context.redact` pattern that failed to compile when first used.
    fn redact_error(&self) -> Option<PolicyError> {
        self.redact.iter().find_map(|r| match r.re.get() {
            Some(Err(e)) => Some(PolicyError::Invalid(vec![Diagnostic {
                message: format!("bad regex: {e}"),
                ..r.at.clone()
            }])),
            _ => None,
        })
    }
}

/// One `context.redact` pattern, compiled at load ([`Policy::load`]) or when first needed
/// ([`Policy::load_lazy`]; it was validated with `regex_syntax` when its file was checked).
struct Redactor {
    pattern: String,
    /// Bytes that every match contains (see [`required_bytes`]).
    required: Vec<u8>,
    re: OnceLock<Result<Regex, regex::Error>>,
    /// Where a compile failure is reported.
    at: Diagnostic,
}

impl Redactor {
    fn regex(&self) -> Result<&Regex, &regex::Error> {
        self.re.get_or_init(|| Regex::new(&self.pattern)).as_ref()
    }
}

/// Bytes that every match of `pattern` contains: a literal's bytes, the union over a
/// concatenation, the intersection over an alternation, nothing from what may match empty.
/// Empty when the pattern does not parse (it then never skips compiling).
fn required_bytes(pattern: &str) -> Vec<u8> {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn req(h: &Hir) -> Vec<u8> {
        match h.kind() {
            HirKind::Literal(l) => {
                let mut v = l.0.to_vec();
                v.sort_unstable();
                v.dedup();
                v
            }
            HirKind::Class(Class::Unicode(c)) => match c.ranges() {
                [r] if r.start() == r.end() => {
                    let mut v = r.start().to_string().into_bytes();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
                _ => Vec::new(),
            },
            HirKind::Class(Class::Bytes(c)) => match c.ranges() {
                [r] if r.start() == r.end() => vec![r.start()],
                _ => Vec::new(),
            },
            HirKind::Empty | HirKind::Look(_) => Vec::new(),
            HirKind::Repetition(r) if r.min == 0 => Vec::new(),
            HirKind::Repetition(r) => req(&r.sub),
            HirKind::Capture(c) => req(&c.sub),
            HirKind::Concat(xs) => {
                let mut v: Vec<u8> = xs.iter().flat_map(req).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            HirKind::Alternation(xs) => {
                let mut it = xs.iter().map(req);
                let first = it.next().unwrap_or_default();
                it.fold(first, |acc, v| {
                    acc.into_iter().filter(|b| v.contains(b)).collect()
                })
            }
        }
    }
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|h| req(&h))
        .unwrap_or_default()
}

fn added(paths: &[PathBuf]) -> Vec<Source> {
    paths.iter().cloned().map(Source::added).collect()
}

/// How many commands one argv may expand to before the rest is treated as unreadable.
const MAX_COMMANDS: usize = 4096;

/// Every command `argv` runs, itself first; those of them with arguments known only when they
/// run (and every command those run); and why part of it cannot be read, if it can't.
type Commands = (Vec<Vec<String>>, Vec<Vec<String>>, Option<String>);

fn read_commands(argv: &[String], at: &Place<'_>) -> Commands {
    use crate::command::{shell, wrap};
    use std::collections::HashSet;
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut dynamic: HashSet<Vec<String>> = HashSet::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    let mut opaque: Option<String> = None;
    let mut push = |c: Vec<String>, commands: &mut Vec<Vec<String>>| {
        if !c.is_empty() && seen.insert(c.clone()) {
            commands.push(c);
        }
    };
    push(argv.to_vec(), &mut commands);
    let mut i = 0;
    while i < commands.len() {
        if commands.len() > MAX_COMMANDS {
            opaque.get_or_insert_with(|| {
                format!("more than {MAX_COMMANDS} commands: the rest is not read")
            });
            break;
        }
        let cmd = commands[i].clone();
        i += 1;
        let is_dynamic = dynamic.contains(&cmd);
        if let Some(var) = at
            .links
            .and_then(|l| l.code_env_for(crate::request::program_name(&cmd[0])))
        {
            opaque.get_or_insert_with(|| {
                format!(
                    "`{var}` is set in the environment `{}` starts with",
                    crate::request::program_name(&cmd[0])
                )
            });
        }
        if let Some(links) = at.links
            && crate::request::program_name(&cmd[0]) == "aws"
            && let Some(alias) = links.aws_alias(&crate::command::parse("aws", &cmd[1..]).words)
        {
            opaque.get_or_insert_with(|| {
                format!("`aws {alias}` is an alias from the AWS CLI's alias file")
            });
        }
        if let Some(links) = at.links {
            for name in links.other_names(&cmd[0]) {
                let mut other = vec![name];
                other.extend(cmd[1..].iter().cloned());
                if is_dynamic {
                    dynamic.insert(other.clone());
                }
                push(other, &mut commands);
            }
        }
        let runs = wrap::runs(&cmd);
        if is_dynamic && wrap::dynamic_words_matter(&cmd, wrap::looks_dynamic) {
            // `taskset "$(printf -- -c)" 0 aws ...`, `awk "$PROG"`, `git "$X" p`: a word known
            // only at run time may be an option or the code, and then what runs is elsewhere.
            opaque.get_or_insert_with(|| {
                format!(
                    "an argument of `{}`, which runs code, is known only when it runs",
                    crate::request::program_name(&cmd[0])
                )
            });
        }
        for run in runs {
            let script = match run {
                wrap::Run::Command(c) => {
                    if is_dynamic {
                        // `sudo "$(printf aws)" iam ...`: the program itself may be an expansion.
                        if c.first()
                            .is_some_and(|p| p.contains(['$', '`', '*', '?', '[', '{']))
                        {
                            opaque.get_or_insert_with(|| {
                                format!("the command name `{}` is known only when it runs", c[0])
                            });
                        }
                        dynamic.insert(c.clone());
                    }
                    push(c, &mut commands);
                    continue;
                }
                wrap::Run::Opaque(why) => {
                    opaque.get_or_insert(why);
                    continue;
                }
                wrap::Run::Script(s) => shell::parse(&s),
                wrap::Run::ScriptWithArgs(s, args) => shell::parse_with_args(&s, &args),
            };
            dynamic.extend(script.dynamic);
            for c in script.commands {
                push(c, &mut commands);
            }
            if let Some(o) = script.opaque {
                opaque.get_or_insert(o);
            }
        }
    }
    let dynamic = commands
        .iter()
        .filter(|c| dynamic.contains(*c))
        .cloned()
        .collect();
    (commands, dynamic, opaque)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(eligible: Option<&[&str]>, min: u32, groups: &[(&str, &[&str])]) -> Clause {
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        Clause {
            rule: "r".into(),
            approvers: Vec::new(),
            eligible: eligible.map(set),
            min_approvals: min,
            groups: groups
                .iter()
                .map(|(n, m)| GroupRequirement {
                    name: n.to_string(),
                    members: set(m),
                })
                .collect(),
        }
    }

    fn req(clauses: Vec<Clause>, timeout: u64) -> Requirement {
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester: false,
            timeout: Duration::from_secs(timeout),
            backend: None,
            clauses,
        }
    }

    #[test]
    fn strictness_of_requirements() {
        let sec: &[&str] = &["alice", "bob"];
        let sre: &[&str] = &["carol", "dave"];
        let two_sec = req(vec![clause(Some(sec), 2, &[("security", sec)])], 900);
        let anyone = req(vec![clause(None, 1, &[])], 900);
        let both = req(
            vec![
                clause(Some(sec), 2, &[("security", sec)]),
                clause(Some(sre), 1, &[("sre", sre)]),
            ],
            600,
        );
        assert!(two_sec.at_least_as_strict_as(&anyone));
        assert!(!anyone.at_least_as_strict_as(&two_sec));
        assert!(both.at_least_as_strict_as(&two_sec));
        assert!(!two_sec.at_least_as_strict_as(&both), "sre is not implied");
        assert!(both.at_least_as_strict_as(&both));
        // A longer wait, or letting the requester count, is looser.
        let longer = req(both.clauses.clone(), 1200);
        assert!(!longer.at_least_as_strict_as(&both));
        let mut lenient = both.clone();
        lenient.allow_requester = true;
        assert!(!lenient.at_least_as_strict_as(&both));
        assert!(both.at_least_as_strict_as(&lenient));
        // Fewer approvals from the same people is looser.
        let one_sec = req(vec![clause(Some(sec), 1, &[("security", sec)])], 900);
        assert!(!one_sec.at_least_as_strict_as(&two_sec));
    }

    #[test]
    fn required_bytes_are_in_every_match() {
        assert_eq!(
            required_bytes(r"(?i)(password|token|secret)=\S+"),
            b"=".to_vec()
        );
        assert_eq!(required_bytes("ab(cd|ce)"), b"abc".to_vec());
        assert_eq!(required_bytes("a*|b"), Vec::<u8>::new());
        assert_eq!(required_bytes("x(y)+z?"), b"xy".to_vec());
        assert_eq!(required_bytes("(unclosed"), Vec::<u8>::new());
    }

    /// Skipping the compile never changes the result.
    #[test]
    fn redact_skip_is_exact() {
        for pat in [
            r"(?i)(password|token|secret)=\S+",
            "ab(cd|ce)",
            "é+x",
            r"\d{3}",
        ] {
            let re = Regex::new(pat).unwrap();
            let req = required_bytes(pat);
            for text in [
                "",
                "password=1",
                "PASSWORD=x y",
                "abce",
                "abc",
                "éx",
                "x",
                "123",
                "a=b",
            ] {
                if !req.iter().all(|b| text.as_bytes().contains(b)) {
                    assert!(!re.is_match(text), "{pat} {text}");
                }
            }
        }
    }
}
