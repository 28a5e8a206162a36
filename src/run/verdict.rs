//! The go / no-go for one command. Only [`decide`] builds a [`Verdict`], and only
//! [`Verdict::into_record`] turns one into the decision record, so what gate obeys and what the
//! log says cannot drift apart.

use serde_json::{Value, json};

use super::{RunOptions, approve};
use crate::approval::tty::{self, Confirmation};
use crate::audit::{Approver, DecisionInfo};
use crate::config::Env;
use crate::error::Error;
use crate::exec::Cancel;
use crate::output::Output;
use crate::policy::{Classification, Decision, Policy};
use crate::request::{Request, shell_join};

/// What came of the decision, as the decision record's `outcome` and `--json`'s `outcome`
/// spell it. The first three let the command run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The policy allows it.
    Allowed,
    /// The requester typed the confirmation at the terminal.
    Confirmed,
    /// Enough eligible approvers said yes.
    Approved,
    /// The policy or an approver said no.
    Denied,
    /// Not confirmed, or no terminal to confirm on.
    Refused,
    /// No decision before the deadline.
    TimedOut,
    /// A signal, or the server, ended the wait.
    Cancelled,
    /// No decision could be had: the backend is unusable, unreachable or gave an answer that
    /// does not count.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Confirmed => "confirmed",
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::Refused => "refused",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::Error => "error",
        }
    }
}

/// The go / no-go for one command.
#[must_use]
#[allow(clippy::large_enum_variant)]
pub enum Verdict {
    /// The command may run.
    Run {
        outcome: Outcome,
        approvals: Vec<Approver>,
        /// The server's signed decision statement, when the approvals came from a server.
        statement: Option<String>,
    },
    /// It may not: `error` is what gate exits with, and its message what the record says.
    Stop {
        outcome: Outcome,
        error: Error,
        denied_by: Option<Approver>,
        /// The approvals given before it stopped (a denial, a timeout).
        approvals: Vec<Approver>,
    },
}

impl Verdict {
    /// A stop with no approvals to record.
    pub fn stop(outcome: Outcome, error: Error) -> Self {
        Verdict::Stop {
            outcome,
            error,
            denied_by: None,
            approvals: Vec::new(),
        }
    }

    /// A stop for want of a decision (75).
    pub fn no_decision(message: String, hint: Option<String>) -> Self {
        Self::stop(Outcome::Error, Error::NoDecision { message, hint })
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Verdict::Run { outcome, .. } | Verdict::Stop { outcome, .. } => *outcome,
        }
    }

    pub fn runs(&self) -> bool {
        matches!(self, Verdict::Run { .. })
    }

    /// The `--json` decision line.
    pub fn json(&self, req: &Request, class: &Classification) -> Value {
        json!({
            "request_id": req.id(),
            "decision": class.decision,
            "outcome": self.outcome().as_str(),
            "run": self.runs(),
            "rules": class.matched.iter().map(|r| &r.name).collect::<Vec<_>>(),
            "digest": req.view.digest,
        })
    }

    /// The decision record of this verdict on `class`, and the error to stop with when the
    /// command may not run.
    pub fn into_record(
        self,
        policy: &Policy,
        class: &Classification,
    ) -> (DecisionInfo, Option<Error>) {
        let outcome = self.outcome();
        let run = self.runs();
        let (approvals, denied_by, statement, stop) = match self {
            Verdict::Run {
                approvals,
                statement,
                ..
            } => (approvals, None, statement, None),
            Verdict::Stop {
                error,
                denied_by,
                approvals,
                ..
            } => (approvals, denied_by, None, Some(error)),
        };
        let record = DecisionInfo {
            decision: class.decision.as_str().to_owned(),
            outcome: outcome.as_str().to_owned(),
            run,
            rules: class
                .matched
                .iter()
                .map(|r| {
                    let mut v = json!({ "name": r.name, "decision": r.decision });
                    if let Some(risk) = &r.risk {
                        v["risk"] = json!(risk);
                    }
                    if let Some(c) = &r.category {
                        v["category"] = json!(c);
                    }
                    v
                })
                .collect(),
            by_default: class.by_default,
            required: class.requirement.as_ref().map(|r| json!(r)),
            approvals,
            denied_by,
            message: stop.as_ref().map(|e| e.to_string()),
            commands: class
                .commands
                .iter()
                .map(|c| c.iter().map(|w| policy.redact(w)).collect())
                .collect(),
            opaque: class.opaque.clone(),
            statement,
        };
        (record, stop)
    }
}

/// Decides: `allow` and `deny` at once, `confirm` at the terminal, `approve` through the
/// backend the requirement names. An error here means no decision could even be asked for,
/// and nothing is recorded.
pub fn decide(
    opts: &RunOptions,
    env: &Env,
    out: &Output,
    policy: &Policy,
    req: &Request,
    class: &Classification,
    cancel: &Cancel,
) -> Result<Verdict, Error> {
    Ok(match class.decision {
        Decision::Allow => Verdict::Run {
            outcome: Outcome::Allowed,
            approvals: Vec::new(),
            statement: None,
        },
        Decision::Deny => denied(class),
        Decision::Confirm => confirm(req, class),
        Decision::Approve => approve::approve(opts, env, out, policy, req, class, cancel)?,
    })
}

fn denied(class: &Classification) -> Verdict {
    let message = match class.deciding().next() {
        Some(r) => format!(
            "denied by rule `{}`{}",
            r.name,
            r.message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        None => "denied by the policy default".to_owned(),
    };
    Verdict::stop(
        Outcome::Denied,
        Error::Denied {
            message,
            hint: Some("`gate check -- <command>` explains which rules match".into()),
        },
    )
}

fn confirm(req: &Request, class: &Classification) -> Verdict {
    let why = if class.by_default {
        "the policy default asks you to confirm".to_owned()
    } else {
        format!("rule {} asks you to confirm", deciding_names(class))
    };
    let refused = |message: String, hint: Option<&str>| {
        Verdict::stop(
            Outcome::Refused,
            Error::Denied {
                message,
                hint: hint.map(Into::into),
            },
        )
    };
    match tty::confirm(&shell_join(&req.view.command.argv), &why) {
        Confirmation::Confirmed => Verdict::Run {
            outcome: Outcome::Confirmed,
            approvals: vec![Approver {
                principal: req.view.requester.user.clone(),
                uid: Some(req.view.requester.uid),
                at: crate::audit::record::now(),
                via: "tty".into(),
                comment: None,
            }],
            statement: None,
        },
        Confirmation::Declined => refused("not confirmed".to_owned(), None),
        Confirmation::NoTerminal => refused(
            format!("{why}, but there is no terminal to confirm on"),
            Some(
                "confirmation must be typed by a person at a terminal; an agent or a pipe cannot confirm",
            ),
        ),
    }
}

/// Why a command needs an approval, for the waiting line: the rules, the policy default, or
/// that gate could not read it.
pub fn why_approval(class: &Classification) -> String {
    let rules = deciding_names(class);
    match (&class.opaque, rules.is_empty()) {
        (Some(why), true) => format!("gate cannot read all of it: {}", crate::output::escape(why)),
        (Some(why), false) => format!(
            "rule {rules}; and gate cannot read all of it: {}",
            crate::output::escape(why)
        ),
        (None, true) => "the policy default".to_owned(),
        (None, false) => format!("rule {rules}"),
    }
}

fn deciding_names(class: &Classification) -> String {
    class
        .deciding()
        .map(|r| format!("`{}`", r.name))
        .collect::<Vec<_>>()
        .join(", ")
}
