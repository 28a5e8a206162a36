//! gate's error classes and their exit codes (DESIGN §3). Modules have their own error enums;
//! this one sorts them into what the caller of `gate` needs to know: usage, configuration,
//! denied, no decision, or internal.

/// Exit statuses of the run form.
pub mod exit {
    pub const DENIED: i32 = 77;
    pub const NO_DECISION: i32 = 75;
    pub const CONFIG: i32 = 78;
    /// A bug in gate (sysexits' EX_SOFTWARE); as with every error before the run, nothing runs.
    pub const INTERNAL: i32 = 70;
    pub const USAGE: i32 = 2;
    pub const NOT_EXECUTABLE: i32 = 126;
    pub const NOT_FOUND: i32 = 127;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments (clap reports its own).
    #[error("{0}")]
    Usage(String),
    /// Policy or configuration problems, an unwritable log or spool: nothing ran.
    #[error("{message}")]
    Config {
        message: String,
        hint: Option<String>,
    },
    /// Problems in policy files, each with its place: data that `output` renders (with colour
    /// when it is on); the text without colour is [`crate::policy::diag::render`]'s.
    #[error("{}", crate::policy::diag::render(.0))]
    Policy(Vec<crate::policy::Diagnostic>),
    /// Denied by policy or an approver, or refused (self-approval, no terminal to confirm).
    #[error("{message}")]
    Denied {
        message: String,
        hint: Option<String>,
    },
    /// No decision: timed out, cancelled, backend unreachable. Fail closed.
    #[error("{message}")]
    NoDecision {
        message: String,
        hint: Option<String>,
    },
    /// The program could not be started (126/127).
    #[error("{message}")]
    Exec { message: String, code: i32 },
    /// A finding in a check (`policy test` failures, ...): exit 1.
    #[error("{0}")]
    Failed(String),
    /// The id given (`gate requests ID`, `gate approve ID`, `gate deny ID`) names no request
    /// the caller can see, or several: exit 1, like `grep` finding nothing. Not a
    /// configuration error: nothing is wrong with the setup, only with the id.
    #[error("{message}")]
    NoSuchRequest {
        message: String,
        hint: Option<String>,
    },
    /// A bug in gate: something it holds to be impossible happened. Fails closed like every
    /// other error (no decision, no run), with its own exit status so that nobody mistakes it
    /// for a policy to fix.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config { .. } | Error::Policy(_) => exit::CONFIG,
            Error::Denied { .. } => exit::DENIED,
            Error::NoDecision { .. } => exit::NO_DECISION,
            Error::Exec { code, .. } => *code,
            Error::Failed(_) | Error::NoSuchRequest { .. } => 1,
            Error::Internal(_) => exit::INTERNAL,
        }
    }

    /// The obvious next step. A policy error's hints are inside its diagnostics.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Config { hint, .. }
            | Error::Denied { hint, .. }
            | Error::NoDecision { hint, .. }
            | Error::NoSuchRequest { hint, .. } => hint.as_deref(),
            Error::Internal(_) => Some(INTERNAL_HINT),
            _ => None,
        }
    }

    /// A configuration error; `message` is anything that displays (a string, a module's error).
    pub fn config(message: impl std::fmt::Display) -> Self {
        Error::Config {
            message: message.to_string(),
            hint: None,
        }
    }

    pub fn config_hint(message: impl std::fmt::Display, hint: impl Into<String>) -> Self {
        Error::Config {
            message: message.to_string(),
            hint: Some(hint.into()),
        }
    }

    /// A bug in gate (exit 70): see [`Error::Internal`].
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(message.to_string())
    }
}

/// What a user can do about a bug in gate.
pub const INTERNAL_HINT: &str = "this is a bug in gate, not in your policy or command; please report it with the command that showed it";

impl From<crate::policy::PolicyError> for Error {
    fn from(e: crate::policy::PolicyError) -> Self {
        match e {
            crate::policy::PolicyError::Invalid(diagnostics) => Error::Policy(diagnostics),
            e => Error::Config {
                hint: e.hint(),
                message: e.to_string(),
            },
        }
    }
}

impl From<crate::audit::AuditError> for Error {
    fn from(e: crate::audit::AuditError) -> Self {
        let hint = e.hint().map(|h| format!("nothing ran; {h}")).unwrap_or_else(|| {
            "nothing ran; fix the log (see `gate log show`) or point `GATE_LOG` / `audit.path` at a writable file".into()
        });
        Error::config_hint(e.to_string(), hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Diagnostic, PolicyError, Pos};

    fn diagnostic() -> Diagnostic {
        Diagnostic {
            path: "p.yaml".into(),
            pos: Pos { line: 2, col: 3 },
            message: "unknown key `rulez`".into(),
            hint: Some("did you mean `rules`?".into()),
            source_line: None,
        }
    }

    #[test]
    fn each_class_has_its_exit_status() {
        let cases: Vec<(Error, i32)> = vec![
            (Error::Usage("x".into()), 2),
            (Error::config("x"), 78),
            (Error::Policy(vec![diagnostic()]), 78),
            (
                Error::Denied {
                    message: "x".into(),
                    hint: None,
                },
                77,
            ),
            (
                Error::NoDecision {
                    message: "x".into(),
                    hint: None,
                },
                75,
            ),
            (
                Error::Exec {
                    message: "x".into(),
                    code: 127,
                },
                127,
            ),
            (Error::Failed("x".into()), 1),
            (
                Error::NoSuchRequest {
                    message: "x".into(),
                    hint: None,
                },
                1,
            ),
            (Error::internal("x"), 70),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }

    #[test]
    fn an_internal_error_says_it_is_a_bug_and_what_to_do() {
        let e = Error::internal("approve without requirement");
        assert_eq!(e.to_string(), "internal error: approve without requirement");
        assert_eq!(
            e.hint(),
            Some(
                "this is a bug in gate, not in your policy or command; please report it with \
                 the command that showed it"
            )
        );
    }

    #[test]
    fn policy_diagnostics_stay_data_with_their_hints_inside() {
        let e = Error::from(PolicyError::Invalid(vec![diagnostic()]));
        let Error::Policy(d) = &e else {
            panic!("not a policy error: {e:?}");
        };
        assert_eq!(d, &vec![diagnostic()]);
        // The hint is shown with its diagnostic, not again after the count.
        assert_eq!(e.hint(), None);
        assert_eq!(
            e.to_string(),
            "error: unknown key `rulez`\n  --> p.yaml:2:3\n  = hint: did you mean `rules`?\n\n\
             error: 1 problem in policy"
        );
        // Other policy errors stay configuration errors, hint and all.
        let unsafe_dir = Error::from(PolicyError::Unsafe {
            path: "/etc/gate/policy.d".into(),
            of: "/etc/gate/policy.d".into(),
            problem: crate::policy::Unsafe::OtherWritable,
        });
        assert!(matches!(unsafe_dir, Error::Config { .. }), "{unsafe_dir:?}");
        assert!(unsafe_dir.hint().is_some_and(|h| h.contains("chmod go-w")));
    }
}
