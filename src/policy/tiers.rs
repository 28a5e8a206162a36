//! Policy trust tiers (DESIGN §4 "Trust tiers"): the files of the system directory are the
//! system tier; every other file is *added*. When a system tier exists, an added file may add
//! rules and tighten, and nothing else — everything that routes, attributes or records an
//! approval belongs to the system tier, and no default may be loosened. Each attempt is a
//! policy error naming the key, never a silent ignore.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::DEFAULT_TIMEOUT;
use super::diag::Diagnostics;
use super::schema::{Decision, PolicyFile};

/// How far a policy file is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A file of the system directory: root's, checked like sshd's StrictModes.
    System,
    /// The user's file, `GATE_POLICY`, `--policy`: anyone running as the user can edit it.
    Added,
}

/// A policy file to load and the tier it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub tier: Tier,
}

impl Source {
    /// A file outside the system directory.
    pub fn added(path: PathBuf) -> Self {
        Source {
            path,
            tier: Tier::Added,
        }
    }
}

/// What the system tier says, implicit defaults included: the bounds an added file must keep.
struct SystemLimits {
    decision: Decision,
    opaque_shell: Decision,
    opaque_arguments: Decision,
    timeout: Duration,
    require_remote: bool,
}

impl SystemLimits {
    fn of<'a>(system: impl Iterator<Item = &'a PolicyFile> + Clone) -> Self {
        SystemLimits {
            // A file without `defaults.decision` lets unmatched commands through: `allow`.
            decision: system
                .clone()
                .filter_map(|f| f.defaults.decision.as_ref().map(|d| d.value))
                .max()
                .unwrap_or(Decision::Allow),
            // An unset `opaque_shell` means `approve`, and votes like a written one.
            opaque_shell: system
                .clone()
                .map(|f| {
                    f.defaults
                        .opaque_shell
                        .as_ref()
                        .map_or(Decision::Approve, |d| d.value)
                })
                .max()
                .unwrap_or(Decision::Approve),
            opaque_arguments: system
                .clone()
                .map(|f| {
                    f.defaults
                        .opaque_arguments
                        .as_ref()
                        .or(f.defaults.opaque_shell.as_ref())
                        .map_or(Decision::Approve, |d| d.value)
                })
                .max()
                .unwrap_or(Decision::Approve),
            timeout: system
                .clone()
                .filter_map(|f| f.defaults.timeout.as_ref().map(|t| t.value))
                .min()
                .unwrap_or(DEFAULT_TIMEOUT),
            require_remote: system.clone().any(|f| f.audit.require_remote == Some(true)),
        }
    }
}

const HINT: &str = "with a system policy, an added file (the user's file, `GATE_POLICY`, \
                    `--policy`) may only add rules and tighten; an administrator sets this in \
                    the system policy directory";

/// Every key of the added files that only the system tier may set, or that loosens what the
/// system tier says. Nothing to report when there is no system tier.
pub(super) fn check_added(files: &[PolicyFile], tiers: &[Tier]) -> Vec<super::diag::Diagnostic> {
    let tier = |i: usize| tiers.get(i).copied().unwrap_or(Tier::Added);
    if !(0..files.len()).any(|i| tier(i) == Tier::System) {
        return Vec::new();
    }
    let limits = SystemLimits::of(
        files
            .iter()
            .enumerate()
            .filter(move |(i, _)| tier(*i) == Tier::System)
            .map(|(_, f)| f),
    );
    let mut all = Vec::new();
    for (_, f) in files
        .iter()
        .enumerate()
        .filter(|(i, _)| tier(*i) == Tier::Added)
    {
        let mut d = Diagnostics::new(&f.path, &f.source);
        check_file(f, &limits, &mut d);
        all.extend(d.items);
    }
    all
}

fn check_file(f: &PolicyFile, sys: &SystemLimits, d: &mut Diagnostics<'_>) {
    // Trusting an issuer decides whose tokens prove a CI identity (and so which requests a
    // `ci: { verified: false }` rule no longer catches): the system tier's call alone.
    if let Some(pos) = f.ci_pos
        && !f.ci_issuers.is_empty()
    {
        d.error_hint(
            pos,
            "`ci.issuers` in an added policy file: only the system policy may trust a CI token issuer",
            HINT,
        );
    }
    // Who may sign in to the server's page, and through which provider: the system tier's
    // call alone, as `identities` is.
    if let Some(o) = &f.server_oidc {
        d.error_hint(
            o.pos,
            "`server.oidc` in an added policy file: only the system policy may name the server's identity provider",
            HINT,
        );
    }
    let defaults = &f.defaults;
    if let Some(dec) = &defaults.decision
        && dec.value < sys.decision
    {
        d.error_hint(
            dec.pos,
            format!(
                "`defaults.decision: {}` in an added policy file is less restrictive than the system policy's `{}`",
                dec.value.as_str(),
                sys.decision.as_str()
            ),
            HINT,
        );
    }
    if let Some(b) = &defaults.backend {
        d.error_hint(
            b.pos,
            format!(
                "an added policy file cannot set `defaults.backend` (`{}`): the system policy chooses where approvals are asked",
                b.value
            ),
            HINT,
        );
    }
    if let Some(t) = &defaults.timeout
        && t.value > sys.timeout
    {
        d.error_hint(
            t.pos,
            format!(
                "`defaults.timeout: {}` in an added policy file is longer than the system policy's `{}`",
                humantime::format_duration(t.value),
                humantime::format_duration(sys.timeout)
            ),
            HINT,
        );
    }
    if let Some(o) = &defaults.opaque_shell
        && o.value < sys.opaque_shell
    {
        d.error_hint(
            o.pos,
            format!(
                "`defaults.opaque_shell: {}` in an added policy file is less restrictive than the system policy's `{}`",
                o.value.as_str(),
                sys.opaque_shell.as_str()
            ),
            HINT,
        );
    }
    // An added file that sets neither votes `approve`; one that sets only `opaque_shell` votes
    // that for arguments too.
    let shell_refused = defaults
        .opaque_shell
        .as_ref()
        .is_some_and(|o| o.value < sys.opaque_shell);
    if let Some(o) = defaults
        .opaque_arguments
        .as_ref()
        .or(defaults.opaque_shell.as_ref().filter(|_| !shell_refused))
        && o.value < sys.opaque_arguments
    {
        d.error_hint(
            o.pos,
            format!(
                "`defaults.opaque_arguments: {}` in an added policy file is less restrictive than the system policy's `{}`",
                o.value.as_str(),
                sys.opaque_arguments.as_str()
            ),
            HINT,
        );
    }
    if let Some(a) = &defaults.opaque_approval {
        d.error_hint(
            a.pos,
            "an added policy file cannot set `defaults.opaque_approval`: only the system policy says who may approve a command gate cannot read",
            HINT,
        );
    }
    for re in &f.context.redact {
        d.error_hint(
            re.pos,
            "an added policy file cannot add `context.redact` patterns: they would hide what runs from approvers and the audit log",
            HINT,
        );
    }
    for (name, _) in &f.identities {
        d.error_hint(
            name.pos,
            format!(
                "an added policy file cannot define `identities.{}`: identities map chat accounts to principals",
                name.value
            ),
            HINT,
        );
    }
    for (name, _) in &f.backends {
        d.error_hint(
            name.pos,
            format!(
                "an added policy file cannot define `backends.{}`: the system policy chooses where approvals are asked",
                name.value
            ),
            HINT,
        );
    }
    for r in &f.rules {
        if let Some(first) = r.release.first() {
            d.error_hint(
                first.env.pos,
                format!(
                    "rule `{}` in an added policy file cannot set `release`: only the system policy names the secrets a server releases",
                    r.name.value
                ),
                HINT,
            );
        }
        if let Some(b) = r.approval.as_ref().and_then(|a| a.backend.as_ref()) {
            d.error_hint(
                b.pos,
                format!(
                    "rule `{}` in an added policy file cannot set `approval.backend` (`{}`): the system policy chooses where approvals are asked",
                    r.name.value, b.value
                ),
                HINT,
            );
        }
    }
    if let Some(pos) = f.audit.path_pos {
        d.error_hint(
            pos,
            "an added policy file cannot set `audit.path`: the system policy says where the audit log lives",
            HINT,
        );
    }
    if let Some(pos) = f.audit.key_pos {
        d.error_hint(
            pos,
            "an added policy file cannot set `audit.key`: the system policy says which key signs the audit log",
            HINT,
        );
    }
    if sys.require_remote
        && f.audit.require_remote == Some(false)
        && let Some(pos) = f.audit.require_remote_pos
    {
        d.error_hint(
            pos,
            "`audit.require_remote: false` in an added policy file: the system policy requires remote delivery",
            HINT,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn file(name: &str, yaml: &str) -> PolicyFile {
        let (f, d) = super::super::check_file_partial(Path::new(name), yaml);
        assert!(d.is_empty(), "{d:?}");
        f.unwrap()
    }

    /// (system file, added file, problems expected): implicit defaults vote like written ones.
    #[test]
    fn added_files_are_bounded_by_the_system_tier() {
        let cases = [
            (
                "version: 1\n",
                "version: 1\ndefaults: { opaque_shell: approve }\n",
                0,
            ),
            (
                "version: 1\n",
                "version: 1\ndefaults: { opaque_shell: confirm }\n",
                1,
            ),
            (
                "version: 1\ndefaults: { opaque_shell: allow }\n",
                "version: 1\ndefaults: { opaque_shell: allow }\n",
                0,
            ),
            (
                "version: 1\n",
                "version: 1\ndefaults: { decision: allow }\n",
                0,
            ),
            (
                "version: 1\ndefaults: { decision: deny }\n",
                "version: 1\ndefaults: { decision: approve }\n",
                1,
            ),
            (
                "version: 1\n",
                "version: 1\ndefaults: { timeout: 15m }\n",
                0,
            ),
            (
                "version: 1\n",
                "version: 1\ndefaults: { timeout: 16m }\n",
                1,
            ),
            (
                "version: 1\ndefaults: { timeout: 1h }\n",
                "version: 1\ndefaults: { timeout: 30m }\n",
                0,
            ),
            (
                "version: 1\n",
                "version: 1\naudit: { require_remote: false }\n",
                0,
            ),
            (
                "version: 1\naudit: { require_remote: true }\n",
                "version: 1\naudit: { require_remote: false }\n",
                1,
            ),
            (
                "version: 1\n",
                "version: 1\ngroups: { g: [a] }\ncontext: { env: [X] }\n",
                0,
            ),
        ];
        for (sys, added, n) in cases {
            let files = [file("s.yaml", sys), file("a.yaml", added)];
            let got = check_added(&files, &[Tier::System, Tier::Added]);
            assert_eq!(got.len(), n, "{sys:?} + {added:?}: {got:#?}");
            // Without a system tier nothing is reserved.
            assert!(check_added(&files, &[Tier::Added, Tier::Added]).is_empty());
        }
    }
}
