//! The run path, in the order of the design: load policy → build the request → classify →
//! decide (confirm / approve) → record the decision → run → record the result. Any step that
//! cannot complete stops the command from running: no decision, no run; no record, no run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;

use crate::approval::tty::{self, Confirmation};
use crate::audit::{Approver, Body, DecisionInfo, ResultInfo};
use crate::config::Env;
use crate::error::Error;
use crate::exec::{self, ExecError};
use crate::identity::{self, Identity};
use crate::output::Output;
use crate::policy::{Classification, Decision, Policy, Subject};
use crate::request::{NewRequest, Request, program_name, shell_join};

/// Resolved options of `gate [OPTIONS] -- PROGRAM [ARGS...]`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub argv: Vec<String>,
    pub policy_files: Vec<PathBuf>,
    pub reason: Option<String>,
    pub timeout: Option<Duration>,
    pub no_wait: bool,
    pub json: bool,
}

/// Termination signals (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) turned into a flag from the start
/// of a run until the command is about to start: they cancel a wait for approval, and one
/// that arrives after the decision but before the start stops the command from starting.
pub struct Cancel {
    pub flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Cancel {
    pub fn register() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let ids = [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGQUIT,
        ]
        .into_iter()
        .filter_map(|sig| signal_hook::flag::register(sig, Arc::clone(&flag)).ok())
        .collect();
        Cancel { flag, ids }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The go / no-go for one command. Only [`decide`] builds it.
#[must_use]
#[allow(clippy::large_enum_variant)]
enum Verdict {
    Run {
        outcome: &'static str,
        approvals: Vec<Approver>,
        /// The server's signed decision statement, when the approvals came from a server.
        statement: Option<String>,
    },
    Stop {
        outcome: &'static str,
        message: String,
        denied_by: Option<Approver>,
        approvals: Vec<Approver>,
        error: Error,
    },
}

/// How long a run waits for its decision record to reach the sinks before it starts.
const DECISION_DELIVERY: Duration = Duration::from_secs(2);
/// After a sink fails, runs that need not deliver skip it for this long.
const SINK_QUIET: Duration = Duration::from_secs(30);
/// How long it waits for the result record after the command ended.
const RESULT_DELIVERY: Duration = Duration::from_secs(2);

/// Delivers pending records to every sink within `limit`; true when nothing is left pending.
/// What could not be delivered stays pending for the next run or `gate log push`.
fn ship(
    out: &Output,
    log: &crate::audit::AuditLog,
    sinks: &mut [Box<dyn crate::audit::sinks::Sink>],
    limit: Duration,
    quiet_after_failure: Option<Duration>,
) -> bool {
    if sinks.is_empty() {
        return true;
    }
    let reports = crate::audit::sinks::push_with(
        log.path(),
        sinks,
        std::time::Instant::now() + limit,
        quiet_after_failure,
    );
    let mut all = true;
    for r in reports.iter().filter(|r| r.pending > 0) {
        all = false;
        out.warn(&format!(
            "{} record{} not yet delivered to sink {}{}; `gate log push` delivers them",
            r.pending,
            if r.pending == 1 { "" } else { "s" },
            r.sink,
            r.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    all
}

/// Loads every policy file that applies.
pub fn load_policy(env: &Env, cli_files: &[PathBuf]) -> Result<Policy, Error> {
    let sources = env.policy_sources(cli_files)?;
    Ok(Policy::load_sources(&sources)?)
}

/// Like [`load_policy`], for one command: every file is read and checked the same way, but
/// rules are compiled per program when first classified (see [`Policy::load_lazy`]); classify
/// with [`try_classify`].
pub fn load_policy_lazy(env: &Env, cli_files: &[PathBuf]) -> Result<Policy, Error> {
    let sources = env.policy_sources(cli_files)?;
    Ok(Policy::load_sources_lazy(&sources)?)
}

/// Builds the request for argv as this process sees it.
pub fn build_request(
    env: &Env,
    policy: &Policy,
    argv: Vec<String>,
    reason: Option<String>,
) -> Result<(Request, Result<PathBuf, ExecError>), Error> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?;
    let executable = exec::resolve(&argv[0], env.path.as_deref(), &cwd);
    let req = Request::new(NewRequest {
        argv,
        cwd,
        executable: executable.as_ref().ok().cloned(),
        requester: Identity::current(),
        env: identity::env_snapshot(&policy.env_names),
        context_env: &policy.context_env,
        reason,
        redact: &|s| policy.redact(s),
    });
    Ok((req, executable))
}

/// Classifies a request.
pub fn classify(policy: &Policy, req: &Request) -> Classification {
    try_classify(policy, req).unwrap_or_else(|_| {
        let line = shell_join(&req.argv);
        policy.classify(&subject(req, &line))
    })
}

/// Classifies a request; a policy error (exit 78) when the rules for its program cannot be
/// compiled (a policy from [`load_policy_lazy`]).
pub fn try_classify(policy: &Policy, req: &Request) -> Result<Classification, Error> {
    // Programs reached through symlinks are classified under their targets' names too: find
    // them as the command will (PATH, the home directory for `~/`, the working directory).
    let process = identity::env_snapshot(&["PATH".to_owned(), "HOME".to_owned()]);
    // And variables in gate's own environment, which the command inherits, that make it run
    // other code (`GIT_SSH_COMMAND`, `BASH_ENV`, ...) make it unreadable.
    let code_env: Vec<String> = crate::command::wrap::CODE_ENV
        .iter()
        .map(|v| v.to_string())
        .collect();
    let links = crate::command::link::Resolver::new(
        process.get("PATH").map(Into::into),
        process.get("HOME").map(Into::into),
        &req.view.command.cwd,
    )
    .with_code_env(identity::env_snapshot(&code_env).into_iter().collect());
    Ok(policy.try_classify_argv(
        &req.argv,
        &crate::policy::Place {
            env: &req.env,
            cwd: &req.view.command.cwd,
            user: &req.view.requester.user,
            host: &req.view.requester.host,
            links: Some(&links),
        },
    )?)
}

fn subject<'a>(req: &'a Request, line: &'a str) -> Subject<'a> {
    Subject {
        program: program_name(&req.argv[0]),
        words: &req.words,
        command_line: line,
        env: &req.env,
        cwd: &req.view.command.cwd,
        user: &req.view.requester.user,
        host: &req.view.requester.host,
    }
}

mod approve;

pub fn run(opts: RunOptions, env: &Env, out: &Output) -> Result<i32, Error> {
    let policy = load_policy_lazy(env, &opts.policy_files)?;
    let reason = opts.reason.clone().or_else(|| env.reason.clone());
    let (req, executable) = build_request(env, &policy, opts.argv.clone(), reason)?;
    let class = try_classify(&policy, &req)?;
    out.detail(&format!(
        "policy files: {}",
        if policy.files.is_empty() {
            "none".to_owned()
        } else {
            policy
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    out.detail(&format!(
        "decision `{}`{}; matched: {}",
        class.decision.as_str(),
        if class.by_default {
            " (by default)"
        } else {
            ""
        },
        if class.matched.is_empty() {
            "no rule".to_owned()
        } else {
            class
                .matched
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let log = env.audit_log(Some(&policy));
    // Find out now, not after someone approved or confirmed, that the decision could not be
    // recorded. (An allowed or denied command is recorded right away: its append is the check.)
    if matches!(class.decision, Decision::Confirm | Decision::Approve) {
        log.check_writable()?;
    }
    let mut sinks = crate::audit::sinks::build(&|url| env.server_token(url), &policy.audit_sinks)
        .map_err(Error::config)?;
    if policy.require_remote && sinks.is_empty() {
        return Err(Error::config(
            "`audit.require_remote: true` but no `audit.sinks` are configured: nothing could ever run",
        ));
    }
    if opts.no_wait && class.decision == Decision::Approve {
        return Err(Error::config_hint(
            "`--no-wait` is not supported yet: approvals are given to a waiting gate",
            "run without `--no-wait`",
        ));
    }

    let cancel = Cancel::register();
    let verdict = decide(&opts, env, out, &policy, &req, &class, &cancel)?;
    let (run, outcome, approvals, denied_by, message) = match &verdict {
        Verdict::Run {
            outcome, approvals, ..
        } => (true, *outcome, approvals.clone(), None, None),
        Verdict::Stop {
            outcome,
            message,
            denied_by,
            approvals,
            ..
        } => (
            false,
            *outcome,
            approvals.clone(),
            denied_by.clone(),
            Some(message.clone()),
        ),
    };
    let decision = DecisionInfo {
        decision: class.decision.as_str().to_owned(),
        outcome: outcome.to_owned(),
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
        message,
        commands: class
            .commands
            .iter()
            .map(|c| c.iter().map(|w| policy.redact(w)).collect())
            .collect(),
        opaque: class.opaque.clone(),
        statement: match &verdict {
            Verdict::Run { statement, .. } => statement.clone(),
            Verdict::Stop { .. } => None,
        },
    };
    if opts.json {
        out.json_stderr(&json!({
            "request_id": req.id(),
            "decision": class.decision,
            "outcome": outcome,
            "run": run,
            "rules": class.matched.iter().map(|r| &r.name).collect::<Vec<_>>(),
            "digest": req.view.digest,
        }));
    }
    // The decision is on disk before anything runs. Its result goes to the same log, right
    // after a decision still in place, or nowhere: never into a new chain.
    let (_, decided) = log.append_placed(vec![Body::Decision {
        request: Box::new(req.view.clone()),
        decision: Box::new(decision),
    }])?;
    // ...and, within a bounded wait, off the machine too.
    // A run that must deliver always tries; others skip a sink that just failed, so a host
    // whose audit server is down is not slowed by it on every command.
    let quiet = (!policy.require_remote).then_some(SINK_QUIET);
    let shipped = ship(out, &log, &mut sinks, DECISION_DELIVERY, quiet);

    let stop_error = match verdict {
        Verdict::Run { .. } => None,
        Verdict::Stop { error, .. } => Some(error),
    };
    if let Some(e) = stop_error {
        return Err(e);
    }
    if policy.require_remote && !shipped {
        let recorded = log.append_after(
            &decided,
            vec![Body::Result {
                request_id: req.id().to_owned(),
                result: ResultInfo {
                    exit_code: None,
                    signal: None,
                    duration_ms: 0,
                    error: Some(
                        "not run: the decision could not be delivered to every audit sink".into(),
                    ),
                },
            }],
        );
        if let Err(e) = recorded {
            unrecorded(out, "nothing ran", &decided, &e);
        }
        return Err(Error::NoDecision {
            message: "the policy requires a remote copy of the decision before the command starts (`audit.require_remote`), and delivery failed".into(),
            hint: Some("nothing ran; `gate log push` delivers pending records once the sink is back".into()),
        });
    }

    // A result that cannot be recorded is reported, and never changes the exit status: before
    // the start it is the reason nothing ran, after it the command's own.
    let mut record_result = |result: ResultInfo, what: &str| match log.append_after(
        &decided,
        vec![Body::Result {
            request_id: req.id().to_owned(),
            result,
        }],
    ) {
        Ok(_) => {
            ship(out, &log, &mut sinks, RESULT_DELIVERY, Some(SINK_QUIET));
        }
        Err(e) => unrecorded(out, what, &decided, &e),
    };
    if let Some(changed) = req.payload_changed() {
        record_result(
            ResultInfo {
                exit_code: None,
                signal: None,
                duration_ms: 0,
                error: Some(format!(
                    "payload file `{changed}` changed after the decision"
                )),
            },
            "nothing ran",
        );
        return Err(Error::Denied {
            message: format!("`{changed}` changed after it was approved; the approval is void"),
            hint: Some("run the command again to ask for a new approval".into()),
        });
    }
    let executable = match executable {
        Ok(p) => p,
        Err(e) => {
            record_result(
                ResultInfo {
                    exit_code: Some(e.exit_code()),
                    signal: None,
                    duration_ms: 0,
                    error: Some(e.to_string()),
                },
                "nothing ran",
            );
            return Err(Error::Exec {
                message: e.to_string(),
                code: e.exit_code(),
            });
        }
    };
    // From here signals are forwarded to the child (or kept for it until it starts); one that
    // came after the decision but before this point means "stop", so nothing starts.
    let mut forwarder = exec::Forwarder::start()
        .map_err(|e| Error::config(format!("cannot set up signal forwarding: {e}")))?;
    let cancel_requested = cancel.is_set();
    drop(cancel);
    if cancel_requested || forwarder.stopped_early() {
        record_result(
            ResultInfo {
                exit_code: None,
                signal: None,
                duration_ms: 0,
                error: Some("cancelled by a signal before the command started".into()),
            },
            "nothing ran",
        );
        return Err(Error::NoDecision {
            message: "cancelled before the command started".into(),
            hint: None,
        });
    }
    match forwarder.run(&executable, &req.argv) {
        Ok(done) => {
            let what = match done.signal {
                Some(sig) => format!(
                    "the command ran and was killed by signal {sig} (status {})",
                    done.status()
                ),
                None => format!("the command ran and exited with status {}", done.status()),
            };
            record_result(
                ResultInfo {
                    exit_code: done.exit_code,
                    signal: done.signal,
                    duration_ms: done.duration.as_millis() as u64,
                    error: None,
                },
                &what,
            );
            Ok(done.status())
        }
        Err(e) => {
            record_result(
                ResultInfo {
                    exit_code: Some(e.exit_code()),
                    signal: None,
                    duration_ms: 0,
                    error: Some(e.to_string()),
                },
                "the command could not be started",
            );
            Err(Error::Exec {
                message: e.to_string(),
                code: e.exit_code(),
            })
        }
    }
}

/// Says, loudly, that a result record was lost: what happened to the command (`what`), why
/// the log would not take the record, and which decision stays without its result.
fn unrecorded(
    out: &Output,
    what: &str,
    decided: &crate::audit::log::Placed,
    e: &crate::audit::AuditError,
) {
    out.error(&format!(
        "{what}, but its result could not be recorded: {e}"
    ));
    out.hint(&format!(
        "its decision (seq {} of log {}) stands without a result; `gate log verify` on the log that holds it shows that",
        decided.seq, decided.log_id
    ));
}

fn stop(outcome: &'static str, message: String, error: Error) -> Verdict {
    Verdict::Stop {
        outcome,
        message,
        denied_by: None,
        approvals: Vec::new(),
        error,
    }
}

/// Why a command needs an approval, for the waiting line: the rules, the policy default, or
/// that gate could not read it.
fn why_approval(class: &Classification) -> String {
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

fn decide(
    opts: &RunOptions,
    env: &Env,
    out: &Output,
    policy: &Policy,
    req: &Request,
    class: &Classification,
    cancel: &Cancel,
) -> Result<Verdict, Error> {
    let line = shell_join(&req.view.command.argv);
    Ok(match class.decision {
        Decision::Allow => Verdict::Run {
            outcome: "allowed",
            approvals: Vec::new(),
            statement: None,
        },
        Decision::Deny => {
            let rule = class.deciding().next();
            let message = match rule {
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
            stop(
                "denied",
                message.clone(),
                Error::Denied {
                    message,
                    hint: Some("`gate check -- <command>` explains which rules match".into()),
                },
            )
        }
        Decision::Confirm => {
            let why = if class.by_default {
                "the policy default asks you to confirm".to_owned()
            } else {
                format!("rule {} asks you to confirm", deciding_names(class))
            };
            match tty::confirm(&line, &why) {
                Confirmation::Confirmed => Verdict::Run {
                    outcome: "confirmed",
                    approvals: vec![Approver {
                        principal: req.view.requester.user.clone(),
                        uid: Some(req.view.requester.uid),
                        at: crate::audit::record::now(),
                        via: "tty".into(),
                        comment: None,
                    }],
                    statement: None,
                },
                Confirmation::Declined => {
                    let m = "not confirmed".to_owned();
                    stop(
                        "refused",
                        m.clone(),
                        Error::Denied {
                            message: m,
                            hint: None,
                        },
                    )
                }
                Confirmation::NoTerminal => {
                    let m = format!("{why}, but there is no terminal to confirm on");
                    stop("refused", m.clone(), Error::Denied {
                        message: m,
                        hint: Some("confirmation must be typed by a person at a terminal; an agent or a pipe cannot confirm".into()),
                    })
                }
            }
        }
        Decision::Approve => approve::approve(opts, env, out, policy, req, class, cancel)?,
    })
}
