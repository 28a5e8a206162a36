//! Merges checked files into one [`Policy`] and runs the checks that need every file at once:
//! duplicate names, unknown groups and backends, approvals no one could ever satisfy.
//!
//! Merge rules (each keeps "adding a file can only tighten"):
//! - rules: all of them count; the most restrictive decision wins at classification;
//! - `defaults.decision`: the most restrictive of the files that set one;
//! - `defaults.timeout`: the shortest; `defaults.backend`, `audit.path`: the first file that
//!   sets it (system files come first, so a user file can't redirect them);
//! - `defaults.opaque_shell`: the most restrictive over every file, a file that does not set it
//!   voting `approve` — so `allow` takes effect only when every file says so;
//! - `defaults.opaque_arguments`: likewise, a file that does not set it voting its own
//!   `opaque_shell` (so `approve` when it sets neither);
//! - groups, identities, backends, rule names and `defaults.opaque_approval`: defined once
//!   across all files — a later file redefining the security group could otherwise widen who
//!   may approve;
//! - trust tiers ([`super::tiers`]): with a system tier, an added file may only add rules and
//!   tighten, and the system tier's approvers resolve against its own groups and identities.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use regex::Regex;

use super::compile::{LazyMatcher, Matcher};
use super::diag::{Diagnostic, Diagnostics, Pos};
use super::schema::{At, Decision, PolicyFile};
use super::tiers::Tier;
use super::{
    Compiled, DEFAULT_TIMEOUT, GroupRequirement, Policy, Redactor, ReleaseVar, RuleApproval,
    RuleInfo, required_bytes,
};

/// Merges and compiles every rule now, all files as one tier (what `gate policy lint` and
/// `gate policy test` use).
pub fn merge(files: Vec<PolicyFile>) -> Result<Policy, Vec<Diagnostic>> {
    let tiers = vec![Tier::Added; files.len()];
    merge_with(files, tiers, false)
}

/// Like [`merge`], with each file's tier (by index); with `lazy`, rules are compiled per
/// program on first use (see [`LazyMatcher`]) and the `context.redact` patterns when first
/// needed.
pub(super) fn merge_with(
    files: Vec<PolicyFile>,
    tiers: Vec<Tier>,
    lazy: bool,
) -> Result<Policy, Vec<Diagnostic>> {
    let mut all = super::tiers::check_added(&files, &tiers);
    let tier = |fi: usize| tiers.get(fi).copied().unwrap_or(Tier::Added);
    let tiered = tiers.contains(&Tier::System);
    let mut p = Policy {
        files: files.iter().map(|f| f.path.clone()).collect(),
        tiers: (0..files.len()).map(tier).collect(),
        default_decision: Decision::Allow,
        // Every file votes, an unset key as `approve`: one file's `allow` can't loosen another's
        // silence.
        opaque_shell: files
            .iter()
            .map(|f| {
                f.defaults
                    .opaque_shell
                    .as_ref()
                    .map_or(Decision::Approve, |d| d.value)
            })
            .max()
            .unwrap_or(Decision::Approve),
        opaque_arguments: files
            .iter()
            .map(|f| {
                f.defaults
                    .opaque_arguments
                    .as_ref()
                    .or(f.defaults.opaque_shell.as_ref())
                    .map_or(Decision::Approve, |d| d.value)
            })
            .max()
            .unwrap_or(Decision::Approve),
        opaque_approval: None,
        file_defaults: files
            .iter()
            .map(|f| f.defaults.decision.as_ref().map(|d| d.value))
            .collect(),
        default_backend: None,
        default_timeout: DEFAULT_TIMEOUT,
        context_env: Vec::new(),
        env_names: Vec::new(),
        redact: Vec::new(),
        groups: BTreeMap::new(),
        identities: BTreeMap::new(),
        backends: BTreeMap::new(),
        audit_path: None,
        audit_key: None,
        audit_sinks: Vec::new(),
        require_remote: false,
        ci_issuers: Vec::new(),
        server_oidc: None,
        rules: Vec::new(),
        matcher: Compiled::Eager(Matcher::build(std::iter::empty()).map_err(|_| Vec::new())?),
        compile_error_at: None,
    };
    // Where each name was first defined, for "already defined at" messages.
    let mut group_at: HashMap<String, (usize, Pos)> = HashMap::new();
    let mut ident_at: HashMap<String, (usize, Pos)> = HashMap::new();
    let mut backend_at: HashMap<String, (usize, Pos)> = HashMap::new();
    let mut rule_at: HashMap<String, (usize, Pos)> = HashMap::new();
    let mut opaque_at: HashMap<String, (usize, Pos)> = HashMap::new();
    let mut server_at: HashMap<String, (usize, Pos)> = HashMap::new();
    let mut timeouts = Vec::new();
    // What the system tier alone defines: its own approvers resolve against these, so an added
    // file can't define a group (or a group named like a principal) that a system rule names.
    let mut system_groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut system_idents: BTreeSet<String> = BTreeSet::new();

    // Pass 1: names and settings.
    for (fi, f) in files.iter().enumerate() {
        let mut d = Diagnostics::new(&f.path, &f.source);
        for i in &f.ci_issuers {
            if !p.ci_issuers.iter().any(|x| x.issuer == i.issuer) {
                p.ci_issuers.push(super::ci::CiIssuer {
                    issuer: i.issuer.clone(),
                    audience: i.audience.clone(),
                    jwks_url: i.jwks_url.clone(),
                });
            }
        }
        if let Some(o) = &f.server_oidc
            && once(
                &mut server_at,
                "server.oidc",
                fi,
                o.pos,
                "setting",
                &files,
                &mut d,
            )
        {
            p.server_oidc = Some(o.clone());
        }
        if let Some(dec) = &f.defaults.decision {
            p.default_decision = p.default_decision.max(dec.value);
        }
        if let Some(t) = &f.defaults.timeout {
            timeouts.push(t.value);
        }
        if p.default_backend.is_none() {
            p.default_backend = f.defaults.backend.as_ref().map(|b| b.value.clone());
        }
        if p.audit_path.is_none() {
            p.audit_path = f.audit.path.clone();
        }
        if p.audit_key.is_none() {
            p.audit_key = f.audit.key.clone();
        }
        p.audit_sinks.extend(f.audit.sinks.iter().cloned());
        p.require_remote |= f.audit.require_remote.unwrap_or(false);
        for name in &f.context.env {
            if !p.context_env.contains(name) {
                p.context_env.push(name.clone());
            }
        }
        for re in &f.context.redact {
            // Where a failure is reported, now or (lazily) at first use.
            let mut at = Diagnostics::new(&f.path, &f.source);
            at.error(re.pos, String::new());
            let at = at.items.remove(0);
            let compiled = OnceLock::new();
            if !lazy {
                match Regex::new(&re.value) {
                    Ok(r) => {
                        let _ = compiled.set(Ok(r));
                    }
                    Err(e) => {
                        d.error(re.pos, format!("bad regex: {e}"));
                        continue;
                    }
                }
            }
            p.redact.push(Redactor {
                pattern: re.value.clone(),
                required: required_bytes(&re.value),
                re: compiled,
                at,
            });
        }
        for (name, members) in &f.groups {
            if once(
                &mut group_at,
                &name.value,
                fi,
                name.pos,
                "group",
                &files,
                &mut d,
            ) {
                p.groups
                    .insert(name.value.clone(), members.iter().cloned().collect());
                if tier(fi) == Tier::System {
                    system_groups.insert(name.value.clone(), members.iter().cloned().collect());
                }
            }
        }
        for (name, accounts) in &f.identities {
            if once(
                &mut ident_at,
                &name.value,
                fi,
                name.pos,
                "identity",
                &files,
                &mut d,
            ) {
                p.identities.insert(name.value.clone(), accounts.clone());
                if tier(fi) == Tier::System {
                    system_idents.insert(name.value.clone());
                }
            }
        }
        // In the order written, with those left out for their own problems: a duplicate name
        // is reported in the same pass as those problems.
        let mut backends: Vec<(&At<String>, Option<&super::schema::BackendKind>)> = f
            .backends
            .iter()
            .map(|(name, kind)| (name, Some(kind)))
            .chain(f.dropped_backends.iter().map(|name| (name, None)))
            .collect();
        backends.sort_by_key(|(name, _)| (name.pos.line, name.pos.col));
        for (name, kind) in backends {
            if once(
                &mut backend_at,
                &name.value,
                fi,
                name.pos,
                "backend",
                &files,
                &mut d,
            ) && let Some(kind) = kind
            {
                p.backends.insert(name.value.clone(), kind.clone());
            }
        }
        if let Some(o) = &f.defaults.opaque_approval {
            once(
                &mut opaque_at,
                "defaults.opaque_approval",
                fi,
                o.pos,
                "key",
                &files,
                &mut d,
            );
        }
        let mut rule_names: Vec<&At<String>> = f
            .rules
            .iter()
            .map(|r| &r.name)
            .chain(&f.dropped_rules)
            .collect();
        rule_names.sort_by_key(|name| (name.pos.line, name.pos.col));
        for name in rule_names {
            once(
                &mut rule_at,
                &name.value,
                fi,
                name.pos,
                "rule",
                &files,
                &mut d,
            );
        }
        all.extend(d.items);
    }
    if let Some(t) = timeouts.into_iter().min() {
        p.default_timeout = t;
    }

    // Pass 2: references, now that every name is known.
    let known_principals: BTreeSet<String> = p
        .groups
        .values()
        .flatten()
        .cloned()
        .chain(p.identities.keys().cloned())
        .collect();
    let everyone = Principals {
        groups: &p.groups,
        known: &known_principals,
    };
    let system_known: BTreeSet<String> = system_groups
        .values()
        .flatten()
        .cloned()
        .chain(system_idents.iter().cloned())
        .collect();
    let system_only = Principals {
        groups: &system_groups,
        known: &system_known,
    };
    let mut rules = Vec::new();
    let mut opaque_approval = None;
    for (fi, f) in files.iter().enumerate() {
        let mut d = Diagnostics::new(&f.path, &f.source);
        let who = if tiered && tier(fi) == Tier::System {
            &system_only
        } else {
            &everyone
        };
        if let Some(b) = &f.defaults.backend {
            check_backend(&p, &b.value, b.pos, &mut d);
        }
        if let Some(o) = &f.defaults.opaque_approval
            && opaque_approval.is_none()
        {
            let (eligible, groups, min_approvals) = resolve(
                &o.approvers,
                &o.min_approvals,
                who,
                "`defaults.opaque_approval`",
                &mut d,
            );
            opaque_approval = Some(RuleApproval {
                approvers: o.approvers.iter().map(|x| x.value.clone()).collect(),
                eligible,
                groups,
                min_approvals,
                allow_requester: false,
                timeout: None,
                backend: None,
                reuse: None,
            });
        }
        for r in &f.rules {
            let approval = r.approval.as_ref().map(|a| {
                let (eligible, groups, min_approvals) = resolve(
                    &a.approvers,
                    &a.min_approvals,
                    who,
                    &format!("rule `{}`", r.name.value),
                    &mut d,
                );
                if let Some(b) = &a.backend {
                    check_backend(&p, &b.value, b.pos, &mut d);
                }
                RuleApproval {
                    approvers: a.approvers.iter().map(|x| x.value.clone()).collect(),
                    eligible,
                    groups,
                    min_approvals,
                    allow_requester: a.allow_requester,
                    timeout: a.timeout,
                    backend: a.backend.as_ref().map(|b| b.value.clone()),
                    reuse: a.reuse,
                }
            });
            for (name, _) in &r.matcher.env {
                if !p.env_names.contains(name) {
                    p.env_names.push(name.clone());
                }
            }
            rules.push(RuleInfo {
                name: r.name.value.clone(),
                decision: r.decision,
                risk: r.risk.clone(),
                category: r.category.clone(),
                message: r.message.clone(),
                file: f.path.clone(),
                line: r.name.pos.line,
                file_index: fi,
                approval,
                ci: r.matcher.ci.as_ref().and_then(super::ci::CiCondition::of),
                release: r
                    .release
                    .iter()
                    .map(|x| ReleaseVar {
                        env: x.env.value.clone(),
                        secret: x.secret.value.clone(),
                    })
                    .collect(),
            });
        }
        all.extend(d.items);
    }
    p.rules = rules;
    p.opaque_approval = opaque_approval;
    for name in &p.context_env {
        if !p.env_names.contains(name) {
            p.env_names.push(name.clone());
        }
    }
    if !all.is_empty() {
        return Err(all);
    }
    // Where a compile failure is reported: the first file, line 1 (as always).
    let first_line = |f: &PolicyFile| {
        let mut d = Diagnostics::new(&f.path, &f.source);
        d.error(Pos { line: 1, col: 1 }, String::new());
        d.items.remove(0)
    };
    let compile_error = |e: super::compile::CompileError, at: &Diagnostic| {
        vec![Diagnostic {
            message: format!("cannot compile the rules: {e}"),
            ..at.clone()
        }]
    };
    if lazy && !files.is_empty() {
        let at = first_line(&files[0]);
        let specs = files
            .into_iter()
            .flat_map(|f| f.rules.into_iter().map(|r| r.matcher))
            .collect();
        p.matcher = Compiled::Lazy(LazyMatcher::build(specs).map_err(|e| compile_error(e, &at))?);
        p.compile_error_at = Some(at);
    } else {
        p.matcher = Compiled::Eager(
            Matcher::build(
                files
                    .iter()
                    .flat_map(|f| f.rules.iter().map(|r| &r.matcher)),
            )
            .map_err(|e| compile_error(e, &first_line(&files[0])))?,
        );
    }
    Ok(p)
}

/// Records the first definition of a name; a second one is an error pointing at both.
fn once(
    seen: &mut HashMap<String, (usize, Pos)>,
    name: &str,
    file: usize,
    pos: Pos,
    what: &str,
    files: &[PolicyFile],
    d: &mut Diagnostics<'_>,
) -> bool {
    match seen.get(name) {
        Some((fi, first)) => {
            d.error_hint(
                pos,
                format!("duplicate {what} `{name}`"),
                format!(
                    "first defined at {}:{}:{}; each {what} is defined once across all policy files",
                    files[*fi].path.display(),
                    first.line,
                    first.col
                ),
            );
            false
        }
        None => {
            seen.insert(name.to_owned(), (file, pos));
            true
        }
    }
}

fn check_backend(p: &Policy, name: &str, pos: Pos, d: &mut Diagnostics<'_>) {
    // `local` needs no configuration: it exists without a `backends:` entry.
    if !p.backends.contains_key(name) && name != "local" {
        d.error_hint(
            pos,
            format!("unknown backend `{name}`"),
            "define it under `backends:`, or use `local`",
        );
    }
}

/// Who an `approvers` list can name: groups, and principals known from groups or identities.
struct Principals<'a> {
    groups: &'a BTreeMap<String, BTreeSet<String>>,
    known: &'a BTreeSet<String>,
}

/// Resolves `approvers` to the eligible principals (`None`: anyone but the requester) and the
/// groups that must each contribute, and the effective `min_approvals`; reports unknown names
/// and a count no one could reach.
fn resolve(
    approvers: &[At<String>],
    min: &At<u32>,
    who: &Principals<'_>,
    what: &str,
    d: &mut Diagnostics<'_>,
) -> (Option<BTreeSet<String>>, Vec<GroupRequirement>, u32) {
    let mut eligible = BTreeSet::new();
    let mut groups = Vec::new();
    let mut unknown = false;
    for name in approvers {
        if let Some(members) = who.groups.get(&name.value) {
            eligible.extend(members.iter().cloned());
            groups.push(GroupRequirement {
                name: name.value.clone(),
                members: members.clone(),
            });
        } else if who.known.contains(&name.value) {
            eligible.insert(name.value.clone());
        } else {
            unknown = true;
            let close = who
                .groups
                .keys()
                .find(|g| super::check::similar(&name.value, g));
            d.error_hint(
                name.pos,
                format!("unknown group `{}`", name.value),
                match close {
                    Some(g) => format!("did you mean `{g}`?"),
                    None => "define it under `groups:`, or name a principal listed in a group or under `identities:`".to_owned(),
                },
            );
        }
    }
    let named = !approvers.is_empty();
    // Each named group must contribute an approver, so two groups need two people.
    let min_approvals = min.value.max(groups.len() as u32);
    if named && !unknown && (min_approvals as usize) > eligible.len() {
        d.error_hint(
            min.pos,
            format!(
                "{what} needs {min_approvals} approval{} but only {} principal{} can approve",
                if min_approvals == 1 { "" } else { "s" },
                eligible.len(),
                if eligible.len() == 1 { "" } else { "s" }
            ),
            "lower `min_approvals` or add members to the approver groups",
        );
    }
    (named.then_some(eligible), groups, min_approvals)
}
