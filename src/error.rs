//! gate's error classes and their exit codes (DESIGN §3). Modules have their own error enums;
//! this one sorts them into what the caller of `gate` needs to know: usage, configuration,
//! denied, no decision, or internal.

/// Exit statuses of the run form.
pub mod exit {
    pub const DENIED: i32 = 77;
    pub const NO_DECISION: i32 = 75;
    pub const CONFIG: i32 = 78;
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
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config { .. } => exit::CONFIG,
            Error::Denied { .. } => exit::DENIED,
            Error::NoDecision { .. } => exit::NO_DECISION,
            Error::Exec { code, .. } => *code,
            Error::Failed(_) => 1,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Config { hint, .. }
            | Error::Denied { hint, .. }
            | Error::NoDecision { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            hint: None,
        }
    }

    pub fn config_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl From<crate::policy::PolicyError> for Error {
    fn from(e: crate::policy::PolicyError) -> Self {
        Error::Config {
            hint: e.hint(),
            message: e.to_string(),
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
