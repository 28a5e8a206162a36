//! The go / no-go for one command. Only [`decide`] builds a [`Verdict`], and only
//! [`Verdict::into_record`] turns one into the decision record, so what gate obeys and what the
//! log says cannot drift apart.

use serde_json::{Value, json};

use super::{RunOptions, approve};
use crate::approval::tty::{self, Confirmation};
use crate::audit::{Approver, DecisionInfo, ReuseOf};
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
    /// Filed with `--no-wait`, or named by `--request` while still undecided: nothing runs yet.
    Pending,
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
            Outcome::Pending => "pending",
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
        /// The earlier request whose approval this run rests on (reuse, `--request`).
        reuse: Option<ReuseOf>,
        /// What the approving server releases to the run (fetched after the decision is
        /// recorded, just before the start).
        release: Option<super::release::Plan>,
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

    /// What the approving server releases to the run, if anything.
    pub fn release(&self) -> Option<&super::release::Plan> {
        match self {
            Verdict::Run { release, .. } => release.as_ref(),
            Verdict::Stop { .. } => None,
        }
    }

    pub fn runs(&self) -> bool {
        matches!(self, Verdict::Run { .. })
    }

    /// The `--json` decision line.
    pub fn json(&self, req: &Request, class: &Classification) -> Value {
        let mut v = self.json_base(req, class);
        if let Verdict::Run { reuse: Some(r), .. } = self {
            v["reuse"] = json!({ "request_id": r.request_id, "via": r.via });
        }
        v
    }

    fn json_base(&self, req: &Request, class: &Classification) -> Value {
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
        let (approvals, denied_by, statement, reuse, release, stop) = match self {
            Verdict::Run {
                approvals,
                statement,
                reuse,
                release,
                ..
            } => (approvals, None, statement, reuse, release, None),
            Verdict::Stop {
                error,
                denied_by,
                approvals,
                ..
            } => (approvals, denied_by, None, None, None, Some(error)),
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
            reuse,
            release: release.map(|p| p.vars).unwrap_or_default(),
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
            reuse: None,
            release: None,
        },
        Decision::Deny => denied(&opts.policy_files, req, class),
        Decision::Confirm => confirm(req, class),
        Decision::Approve => approve::approve(opts, env, out, policy, req, class, cancel)?,
    })
}

pub(super) fn denied(
    policy_files: &[std::path::PathBuf],
    req: &Request,
    class: &Classification,
) -> Verdict {
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
            hint: Some(check_hint(policy_files, &req.view.command.argv)),
        },
    )
}

/// The `gate check` line that explains a denial: the same `--policy` files and the command as
/// recorded (redacted), shell-quoted so it can be pasted, and escaped so that it shows as typed.
fn check_hint(policy_files: &[std::path::PathBuf], argv: &[String]) -> String {
    let mut words = vec!["gate".to_owned(), "check".to_owned()];
    for f in policy_files {
        words.push("--policy".to_owned());
        words.push(f.to_string_lossy().into_owned());
    }
    words.push("--".to_owned());
    words.extend(argv.iter().cloned());
    format!(
        "try `{}` to see why",
        crate::output::escape(&shell_join(&words))
    )
}

/// Why a command needs the requester's confirmation: the rules, or the policy default.
pub(super) fn why_confirm(class: &Classification) -> String {
    if class.by_default {
        "the policy default asks you to confirm".to_owned()
    } else {
        format!("rule {} asks you to confirm", deciding_names(class))
    }
}

fn confirm(req: &Request, class: &Classification) -> Verdict {
    let why = why_confirm(class);
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
            reuse: None,
            release: None,
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
    match (
        class.opaque.as_ref().or(class.unread.as_ref()),
        rules.is_empty(),
    ) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::request::NewRequest;

    const POLICY: &str = r#"version: 1
defaults: { decision: allow }
rules:
  - name: no-rm
    match: { program: rm }
    decision: deny
    risk: high
    category: destruction
    message: not here
"#;

    fn setup(argv: &[&str]) -> (tempfile::TempDir, Policy, Request, Classification) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, POLICY).unwrap();
        let policy = Policy::load(&[file]).unwrap();
        let req = Request::new(NewRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: dir.path().to_owned(),
            executable: None,
            requester: Identity::current(),
            env: Default::default(),
            context_env: &[],
            reason: None,
            redact: &|s| s.to_owned(),
        });
        let class = super::super::classify(&policy, &req);
        (dir, policy, req, class)
    }

    fn approver(name: &str) -> Approver {
        Approver {
            principal: name.into(),
            uid: None,
            at: "2026-01-01T00:00:00.000Z".into(),
            via: "server".into(),
            comment: None,
        }
    }

    #[test]
    fn each_outcome_keeps_its_record_spelling() {
        let table = [
            (Outcome::Allowed, "allowed"),
            (Outcome::Confirmed, "confirmed"),
            (Outcome::Approved, "approved"),
            (Outcome::Denied, "denied"),
            (Outcome::Refused, "refused"),
            (Outcome::TimedOut, "timed_out"),
            (Outcome::Cancelled, "cancelled"),
            (Outcome::Error, "error"),
        ];
        let (_dir, policy, req, class) = setup(&["ls"]);
        for (outcome, word) in table {
            assert_eq!(outcome.as_str(), word);
            let verdict = Verdict::stop(outcome, Error::config("x"));
            assert_eq!(verdict.json(&req, &class)["outcome"], word);
            let (record, _) = verdict.into_record(&policy, &class);
            assert_eq!(record.outcome, word);
        }
    }

    #[test]
    fn a_denial_records_its_message_rules_and_stops_with_77() {
        let (_dir, policy, req, class) = setup(&["rm", "-rf", "x"]);
        let verdict = denied(&["extra policy.yaml".into()], &req, &class);
        assert!(!verdict.runs());
        let Verdict::Stop { error, .. } = &verdict else {
            panic!("a denial stops")
        };
        assert_eq!(
            error.hint(),
            Some("try `gate check --policy 'extra policy.yaml' -- rm -rf x` to see why")
        );
        let json = verdict.json(&req, &class);
        assert_eq!(json["outcome"], "denied");
        assert_eq!(json["run"], false);
        assert_eq!(json["decision"], "deny");
        assert_eq!(json["rules"], serde_json::json!(["no-rm"]));
        let (record, stop) = verdict.into_record(&policy, &class);
        let stop = stop.expect("a denial stops");
        assert_eq!(stop.exit_code(), 77);
        assert_eq!(record.decision, "deny");
        assert_eq!(record.outcome, "denied");
        assert!(!record.run);
        assert_eq!(
            record.message.as_deref(),
            Some("denied by rule `no-rm`: not here")
        );
        assert_eq!(record.message.as_deref(), Some(stop.to_string().as_str()));
        assert_eq!(
            record.rules,
            [
                serde_json::json!({"name": "no-rm", "decision": "deny", "risk": "high", "category": "destruction"})
            ]
        );
        assert!(record.statement.is_none());
    }

    #[test]
    fn a_stop_keeps_who_denied_and_the_approvals_before_it() {
        let (_dir, policy, _req, class) = setup(&["ls"]);
        let verdict = Verdict::Stop {
            outcome: Outcome::Denied,
            error: Error::Denied {
                message: "denied by bob: no".into(),
                hint: None,
            },
            denied_by: Some(approver("bob")),
            approvals: vec![approver("ann")],
        };
        let (record, stop) = verdict.into_record(&policy, &class);
        assert_eq!(stop.unwrap().exit_code(), 77);
        assert_eq!(record.denied_by, Some(approver("bob")));
        assert_eq!(record.approvals, [approver("ann")]);
        assert_eq!(record.message.as_deref(), Some("denied by bob: no"));
    }

    #[test]
    fn a_run_records_approvals_and_statement_and_no_message() {
        let (_dir, policy, req, class) = setup(&["ls"]);
        assert_eq!(class.decision, Decision::Allow);
        let verdict = Verdict::Run {
            outcome: Outcome::Approved,
            approvals: vec![approver("ann")],
            statement: Some("signed note".into()),
            reuse: None,
            release: None,
        };
        assert_eq!(verdict.json(&req, &class)["run"], true);
        let (record, stop) = verdict.into_record(&policy, &class);
        assert!(stop.is_none());
        assert!(record.run);
        assert_eq!(record.outcome, "approved");
        assert_eq!(record.approvals, [approver("ann")]);
        assert_eq!(record.statement.as_deref(), Some("signed note"));
        assert!(record.message.is_none() && record.denied_by.is_none());
        assert!(record.by_default);
    }

    #[test]
    fn no_decision_stops_with_75_and_outcome_error() {
        let v = Verdict::no_decision("cannot reach it".into(), Some("later".into()));
        assert_eq!(v.outcome(), Outcome::Error);
        let Verdict::Stop { error, .. } = v else {
            panic!("no decision must stop");
        };
        assert_eq!(error.exit_code(), 75);
        assert_eq!(error.hint(), Some("later"));
    }
}
