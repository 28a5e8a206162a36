//! The run path, in the order of the design: load policy → build the request → classify →
//! decide (confirm / approve) → record the decision → run → record the result. Any step that
//! cannot complete stops the command from running: no decision, no run; no record, no run.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Env;
use crate::error::Error;
use crate::exec::{self, Cancel, ExecError};
use crate::identity::{self, Identity};
use crate::output::Output;
use crate::policy::{Classification, Policy, Subject};
use crate::request::{NewRequest, Request, program_name, shell_join};

mod agent;
mod approve;
mod record;
mod release;
mod slack;
mod two_stage;
mod verdict;

pub use agent::{AgentCommand, AgentVerdict, agent_argv, decide_for_agent, record_agent_result};

use record::{Audit, NotRun, Recorder};
pub use verdict::Outcome;
use verdict::decide;

/// Resolved options of `gate [OPTIONS] -- PROGRAM [ARGS...]`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub argv: Vec<String>,
    pub policy_files: Vec<PathBuf>,
    pub reason: Option<String>,
    pub timeout: Option<Duration>,
    /// File the request and stop (75) without waiting (`--no-wait`).
    pub no_wait: bool,
    /// Run on the approval of this earlier request (`--request ID`).
    pub request: Option<String>,
    /// With `request`: wait for it to be decided.
    pub wait: bool,
    pub json: bool,
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
    let executable = resolve_program(&argv[0], env, &cwd);
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

/// The program `argv0` names, as the run form starts it: a path as given; a plain name on
/// PATH, passing over gate's own shims (and any link to this gate binary), so that
/// `gate -- aws` with a shim directory on PATH runs the real `aws` once, not gate again.
fn resolve_program(argv0: &str, env: &Env, cwd: &std::path::Path) -> Result<PathBuf, ExecError> {
    // `gate -- gate ...` means gate itself; only other names pass over links to it.
    if argv0.is_empty() || argv0.contains('/') || argv0 == "gate" {
        return exec::resolve(argv0, env.path.as_deref(), cwd);
    }
    let gate = crate::shim::GateBinary::current().ok();
    crate::shim::find_real(argv0, env.path.as_deref(), cwd, gate.as_ref()).map_err(|e| match e {
        crate::shim::NotFound::NotExecutable(p) => ExecError::NotExecutable(p),
        crate::shim::NotFound::Missing { .. } => ExecError::NotFound(argv0.to_owned()),
    })
}

/// Classifies a request.
pub fn classify(policy: &Policy, req: &Request) -> Classification {
    try_classify(policy, req).unwrap_or_else(|_| {
        let line = shell_join(&req.argv);
        policy.classify(&subject(req, &line))
    })
}

/// Classifies a request; a policy error (exit 78) when the rules for its program cannot be
/// compiled (a policy from [`Env::load_policy_lazy`]).
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
    // Shim directories are left out: through one, `aws` would also be classified as `gate`.
    let path = process.get("PATH").map(|p| {
        crate::shim::path_without_shims(
            std::ffi::OsStr::new(p),
            std::path::Path::new(&req.view.command.cwd),
        )
    });
    let links = crate::command::link::Resolver::new(
        path,
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

/// `gate [OPTIONS] -- PROGRAM [ARGS...]`: the whole run, one step after another, each taking
/// what the one before it returned. Returns the command's own exit status.
pub fn run(opts: RunOptions, env: &Env, out: &Output) -> Result<i32, Error> {
    run_as(opts, None, env, out)
}

/// The run form for a command that came in through a PATH shim: exactly `gate -- argv`, with
/// the shim recorded in the request (`command.shim`).
pub fn run_shim(
    opts: RunOptions,
    shim: crate::request::ShimUse,
    env: &Env,
    out: &Output,
) -> Result<i32, Error> {
    run_as(opts, Some(shim), env, out)
}

fn run_as(
    opts: RunOptions,
    shim: Option<crate::request::ShimUse>,
    env: &Env,
    out: &Output,
) -> Result<i32, Error> {
    // What is asked, and what the policy says of it.
    let policy = env.load_policy_lazy(&opts.policy_files)?;
    warn_without_policy(&opts, env, out, &policy);
    let reason = opts.reason.clone().or_else(|| env.reason.clone());
    let (mut req, executable) = build_request(env, &policy, opts.argv.clone(), reason)?;
    req.view.command.shim = shim;
    let class = try_classify(&policy, &req)?;
    explain(out, &policy, &class);

    // Where the records go, known before anyone is asked to decide.
    let audit = Audit::open(env, &policy, &class)?;

    // The decision. Until the command starts, a termination signal means "stop".
    let cancel = Cancel::register();
    let verdict = decide(&opts, env, out, &policy, &req, &class, &cancel)?;
    if opts.json {
        let mut v = verdict.json(&req, &class);
        if let Some(o) = v.as_object_mut().filter(|_| policy.files.is_empty()) {
            o.insert("warnings".into(), vec![no_policy_warning(env)].into());
        }
        out.json_stderr(&v);
    }

    // The decision is recorded before anything runs; every exit after this is the recorder's.
    let plan = verdict.release().cloned();
    if plan.is_none() {
        warn_client_release(out, &class);
    }
    let (decision, refused) = verdict.into_record(&policy, &class);
    let mut recorder = audit.record_decision(out, &req, decision)?;
    let mut ready = match clear_to_start(refused, &recorder, &req, executable, cancel) {
        Ok(ready) => ready,
        Err(why) => return Err(recorder.stop(why)),
    };

    // The secrets the approving server releases, fetched last: only a run that is otherwise
    // clear to start spends its one release.
    let released = match &plan {
        None => Default::default(),
        Some(p) => match release::fetch(env, p, &req.view.digest) {
            Ok(r) => r,
            Err(why) => return Err(recorder.stop(NotRun::Release(why))),
        },
    };
    if !released.vars.is_empty() {
        if ready.forwarder.stopped_early() {
            return Err(recorder.stop(NotRun::Cancelled));
        }
        let names: Vec<&str> = released.vars.iter().map(|(k, _)| k.as_str()).collect();
        out.detail(&format!("released to the command: {}", names.join(", ")));
    }

    // The run, and its result.
    match ready
        .forwarder
        .run_with_env(&ready.executable, &req.argv, &released.vars)
    {
        Ok(done) => Ok(recorder.finish(&done)),
        Err(e) => Err(recorder.stop(NotRun::StartFailed(e))),
    }
}

/// A `release:` in this gate's own policy is never acted on: only the gate server's policy
/// releases secrets, and only the server holds them. Said once when such a rule matched.
fn warn_client_release(out: &Output, class: &Classification) {
    if let Some(r) = class.matched.iter().find(|r| !r.release.is_empty()) {
        out.warn(&format!(
            "rule `{}` has `release:`, which only a gate server's policy acts on: nothing is released to this command by it",
            r.name
        ));
    }
}

/// No policy file at all: every command is allowed, which is never what installing gate was
/// for, so each run says so (once; `-q` does not hide it). With `--json` stderr carries the
/// one decision object and nothing else, so the warning is its `warnings` member instead.
fn warn_without_policy(opts: &RunOptions, env: &Env, out: &Output, policy: &Policy) {
    if !policy.files.is_empty() || opts.json {
        return;
    }
    out.warn_always(&no_policy_warning(env));
    let user = env
        .user_policy()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/gate/policy.yaml".to_owned());
    out.hint(&format!(
        "copy an example from gate's `policies/` directory to {user} (or into {} for every \
         user), then check it with `gate policy lint`",
        crate::config::SYSTEM_POLICY_DIR
    ));
}

fn no_policy_warning(env: &Env) -> String {
    format!(
        "no policy file, so every command is allowed (looked for {})",
        env.policy_places()
    )
}

/// A command cleared to start: the program to run and the signal forwarder to run it under.
struct Ready {
    executable: PathBuf,
    forwarder: exec::Forwarder,
}

/// The checks between a recorded decision and the start, in this order: the decision said
/// yes, it reached every sink it had to, the payload files are as approved, the program is
/// there, signals can be forwarded, and no signal asked to stop meanwhile. The forwarder takes
/// the signals over from `cancel`.
fn clear_to_start(
    refused: Option<Error>,
    recorder: &Recorder<'_>,
    req: &Request,
    executable: Result<PathBuf, ExecError>,
    cancel: Cancel,
) -> Result<Ready, NotRun> {
    if let Some(error) = refused {
        return Err(NotRun::Refused(error));
    }
    if !recorder.delivered_as_required {
        return Err(NotRun::Undelivered);
    }
    if let Some(changed) = req.payload_changed() {
        return Err(NotRun::PayloadChanged(changed.to_owned()));
    }
    let executable = executable.map_err(NotRun::Unresolved)?;
    // From here signals are forwarded to the child (or kept for it until it starts); one that
    // came after the decision but before this point means "stop", so nothing starts.
    let mut forwarder = exec::Forwarder::start().map_err(NotRun::NoForwarding)?;
    let cancel_requested = cancel.is_set();
    drop(cancel);
    if cancel_requested || forwarder.stopped_early() {
        return Err(NotRun::Cancelled);
    }
    Ok(Ready {
        executable,
        forwarder,
    })
}

/// `-v`: which policy files were read, and what they decided by which rules.
fn explain(out: &Output, policy: &Policy, class: &Classification) {
    let names = |items: Vec<String>, none: &str| {
        if items.is_empty() {
            none.to_owned()
        } else {
            items.join(", ")
        }
    };
    out.detail(&format!(
        "policy files: {}",
        names(
            policy
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            "none"
        )
    ));
    out.detail(&format!(
        "decision `{}`{}; matched: {}",
        class.decision.as_str(),
        if class.by_default {
            " (by default)"
        } else {
            ""
        },
        names(
            class.matched.iter().map(|r| r.name.clone()).collect(),
            "no rule"
        )
    ));
}
