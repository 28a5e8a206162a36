//! Where things live: policy files, the audit log, the spool. Reads the environment once
//! (`GATE_*`, XDG) into [`Env`], so the rest of gate takes resolved paths.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::policy::{BackendKind, Policy};

/// The system policy directory. It always applies; it is fixed at build time (set
/// `GATE_SYSTEM_POLICY_DIR` when compiling to move it) and never taken from the runtime
/// environment, so nobody can switch it off for one command.
pub const SYSTEM_POLICY_DIR: &str = match option_env!("GATE_SYSTEM_POLICY_DIR") {
    Some(d) => d,
    None => "/etc/gate/policy.d",
};

/// The environment gate reads, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub policy: Option<String>,
    pub log: Option<PathBuf>,
    pub spool: Option<PathBuf>,
    pub reason: Option<String>,
    pub config_home: Option<PathBuf>,
    pub state_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub path: Option<OsString>,
    pub no_color: bool,
    /// `TERM=dumb`: a terminal that shows escape sequences as text, so no colour.
    pub dumb_term: bool,
    /// `GATE_SERVER`: the server for `requests`, `approve`, `deny`.
    pub server: Option<String>,
    /// `GATE_TOKEN`: a server token, for CI and containers without a keyring.
    pub token: Option<crate::secrets::Token>,
    /// `GATE_CA` (or `--ca`): the CA file `login`, `requests`, `approve` and `deny` trust for a
    /// server's TLS. Never for a policy's backend: the policy's `ca:` says that.
    pub ca: Option<PathBuf>,
}

impl Env {
    pub fn capture() -> Self {
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let string = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            policy: string("GATE_POLICY"),
            log: path("GATE_LOG"),
            spool: path("GATE_SPOOL"),
            reason: string("GATE_REASON"),
            config_home: path("XDG_CONFIG_HOME"),
            state_home: path("XDG_STATE_HOME"),
            home: path("HOME"),
            path: std::env::var_os("PATH"),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            dumb_term: std::env::var_os("TERM").is_some_and(|v| v == "dumb"),
            server: string("GATE_SERVER"),
            token: string("GATE_TOKEN").map(crate::secrets::Token::new),
            ca: path("GATE_CA"),
        }
    }

    /// This environment with `--ca` in place of `GATE_CA` when given.
    pub fn with_ca(&self, ca: Option<PathBuf>) -> Env {
        Env {
            ca: ca.or_else(|| self.ca.clone()),
            ..self.clone()
        }
    }

    /// Whom a command-line client of a gate server trusts: `--ca` / `GATE_CA`, else the
    /// built-in roots.
    pub fn trust(&self) -> crate::http::Trust {
        self.ca
            .clone()
            .map_or(crate::http::Trust::System, crate::http::Trust::Ca)
    }

    /// The token to present to `server` (`GATE_TOKEN`, the keyring, or the token file).
    pub fn server_token(&self, server: &str) -> Option<crate::secrets::Token> {
        crate::secrets::load(self.token.as_ref(), &self.config_dir(), server)
    }

    /// `$XDG_STATE_HOME/gate`, else `~/.local/state/gate`.
    pub fn state_dir(&self) -> PathBuf {
        match (&self.state_home, &self.home) {
            (Some(s), _) => s.join("gate"),
            (None, Some(h)) => h.join(".local/state/gate"),
            (None, None) => PathBuf::from("/var/lib/gate"),
        }
    }

    /// `$XDG_CONFIG_HOME/gate`, else `~/.config/gate`.
    pub fn config_dir(&self) -> PathBuf {
        match (&self.config_home, &self.home) {
            (Some(c), _) => c.join("gate"),
            (None, Some(h)) => h.join(".config/gate"),
            (None, None) => PathBuf::from("/etc/gate"),
        }
    }

    /// `$XDG_CONFIG_HOME/gate/policy.yaml`, else `~/.config/gate/policy.yaml`.
    pub fn user_policy(&self) -> Option<PathBuf> {
        match (&self.config_home, &self.home) {
            (Some(c), _) => Some(c.join("gate/policy.yaml")),
            (None, Some(h)) => Some(h.join(".config/gate/policy.yaml")),
            (None, None) => None,
        }
    }

    /// Where policy files are looked for, in merge order, for a message that found none.
    pub fn policy_places(&self) -> String {
        let user = self
            .user_policy()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/gate/policy.yaml".to_owned());
        format!("{SYSTEM_POLICY_DIR}/*.yaml, {user}, `GATE_POLICY`, `--policy`")
    }

    /// Every policy file that applies, in merge order.
    pub fn policy_files(
        &self,
        cli: &[PathBuf],
    ) -> Result<Vec<PathBuf>, crate::policy::PolicyError> {
        Ok(self
            .policy_sources(cli)?
            .into_iter()
            .map(|s| s.path)
            .collect())
    }
    /// Loads every policy file that applies (the system tier, the user's, `GATE_POLICY` and
    /// the command line's `--policy` files).
    pub fn load_policy(&self, cli: &[PathBuf]) -> Result<Policy, crate::policy::PolicyError> {
        Policy::load_sources(&self.policy_sources(cli)?)
    }

    /// Like [`Env::load_policy`], for one command: every file is read and checked the same
    /// way, but rules are compiled per program when first classified (see
    /// [`Policy::load_lazy`]).
    pub fn load_policy_lazy(&self, cli: &[PathBuf]) -> Result<Policy, crate::policy::PolicyError> {
        Policy::load_sources_lazy(&self.policy_sources(cli)?)
    }

    /// Every policy file that applies, in merge order, each with its trust tier: the files of
    /// [`SYSTEM_POLICY_DIR`] (checked for root ownership) are the system tier.
    pub fn policy_sources(
        &self,
        cli: &[PathBuf],
    ) -> Result<Vec<crate::policy::Source>, crate::policy::PolicyError> {
        crate::policy::discover_sources(
            Path::new(SYSTEM_POLICY_DIR),
            self.user_policy(),
            self.policy.as_deref(),
            cli,
        )
    }

    /// The policy's `audit.path`, else `GATE_LOG`, else the state directory. A path the
    /// (system) policy sets is not moved by the environment of the command being gated.
    pub fn audit_path(&self, policy: Option<&Policy>) -> PathBuf {
        policy
            .and_then(|p| p.audit_path.clone())
            .or_else(|| self.log.clone())
            .unwrap_or_else(|| self.state_dir().join("audit.jsonl"))
    }

    /// The policy's `audit.key`, else `signing.key` in the state directory.
    pub fn key_path(&self, policy: Option<&Policy>) -> PathBuf {
        policy
            .and_then(|p| p.audit_key.clone())
            .unwrap_or_else(|| self.state_dir().join("signing.key"))
    }

    /// The audit log as configured, signing checkpoints with the host key.
    pub fn audit_log(&self, policy: Option<&Policy>) -> crate::audit::AuditLog {
        crate::audit::AuditLog::new(self.audit_path(policy)).with_key(self.key_path(policy))
    }

    /// `GATE_SPOOL`, else the named local backend's `spool`, else the state directory.
    pub fn spool_path(&self, policy: Option<&Policy>, backend: Option<&str>) -> PathBuf {
        if let Some(s) = &self.spool {
            return s.clone();
        }
        let configured = policy.and_then(|p| {
            let named = backend.and_then(|b| p.backends.get(b));
            let any_local = || {
                p.backends
                    .values()
                    .find(|b| matches!(b, BackendKind::Local { .. }))
            };
            match named.or_else(any_local) {
                Some(BackendKind::Local { spool: Some(s) }) => Some(s.clone()),
                _ => None,
            }
        });
        configured.unwrap_or_else(|| self.state_dir().join("spool"))
    }
}
