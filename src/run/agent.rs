//! The run path for an agent hook: the same policy, request, classification, approval and
//! decision record as `gate -- COMMAND`, but nothing runs here — the agent runs the command
//! itself once gate's answer lets it. So the decision record is the promise: it is on disk
//! before the answer that lets the command run is given, and a result record follows when the
//! agent's post-tool hook reports the command's end.
//!
//! `allow` lets it run; `deny` refuses with the rule's message; `confirm` is handed to the
//! agent's own prompt to its person (recorded as confirmed through that prompt); `approve`
//! waits for the backend and lets it run only with the approval in hand — never through the
//! agent's prompt, where the person driving the agent would approve for the approvers.

use std::path::PathBuf;
use std::time::Duration;

use super::record::Audit;
use super::verdict::{Outcome, Verdict, denied};
use super::{RunOptions, approve, try_classify};
use crate::audit::record::now;
use crate::audit::{Approver, Body, ResultInfo};
use crate::config::Env;
use crate::error::Error;
use crate::exec::Cancel;
use crate::identity::{self, Identity};
use crate::output::Output;
use crate::policy::Decision;
use crate::request::{NewRequest, Request};

/// One shell command an agent is about to run.
#[derive(Debug, Clone)]
pub struct AgentCommand {
    /// The agent's name (`claude-code`, ...), recorded as the requester's agent.
    pub agent: &'static str,
    /// The command string as the agent's shell gets it.
    pub command: String,
    /// Where it runs; the hook's own directory when the agent does not say.
    pub cwd: Option<PathBuf>,
    pub session: Option<String>,
    pub tool_use: Option<String>,
    pub policy_files: Vec<PathBuf>,
    /// Whether the agent can ask its person (a `confirm` rule); without, it is refused.
    pub can_ask: bool,
    /// The longest wait for an approval (never longer than the policy allows).
    pub timeout: Option<Duration>,
}

/// What gate tells the agent; every variant is recorded before it is given.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentVerdict {
    /// Let the command run.
    Allow { request_id: String },
    /// Let the agent ask its person (a `confirm` rule).
    Ask { request_id: String, reason: String },
    /// Refuse it.
    Deny { request_id: String, reason: String },
}

/// The words the request holds for an agent's command string: the shell the agents run it with.
pub fn agent_argv(command: &str) -> Vec<String> {
    vec!["bash".to_owned(), "-c".to_owned(), command.to_owned()]
}

/// The requester's agent as recorded: the agent's name, its session and its tool-use id.
fn agent_label(c: &AgentCommand) -> String {
    let mut label = c.agent.to_owned();
    if let Some(s) = &c.session {
        label.push_str(&format!("; session {s}"));
    }
    if let Some(t) = &c.tool_use {
        label.push_str(&format!("; tool use {t}"));
    }
    label
}

/// Decides on an agent's command and records the decision. An error means no decision could
/// be had or recorded; the hook turns it into its blocking answer.
pub fn decide_for_agent(c: &AgentCommand, env: &Env, out: &Output) -> Result<AgentVerdict, Error> {
    let policy = env.load_policy_lazy(&c.policy_files)?;
    if policy.files.is_empty() {
        return Err(Error::config_hint(
            format!(
                "no policy file (looked for {}): a hook answers only by a policy",
                env.policy_places()
            ),
            "install a policy (see docs/agents.md); without one every agent command is refused",
        ));
    }
    let cwd = match &c.cwd {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?,
    };
    let argv = agent_argv(&c.command);
    let executable = crate::exec::resolve(&argv[0], env.path.as_deref(), &cwd).ok();
    let mut requester = Identity::current();
    requester.agent = Some(agent_label(c));
    let req = Request::new(NewRequest {
        argv,
        cwd,
        executable,
        requester,
        env: identity::env_snapshot(&policy.env_names),
        context_env: &policy.context_env,
        reason: env.reason.clone(),
        redact: &|s| policy.redact(s),
    });
    let mut req = req;
    let class = try_classify(&policy, &req)?;
    // A command that timed out waiting on a server is asked for again under the same request
    // id: the server answers with that request, and an approval given since lets it run.
    let server = class
        .requirement
        .as_ref()
        .and_then(|r| r.backend.as_deref())
        .and_then(|b| policy.backends.get(b))
        .and_then(|b| match b {
            crate::policy::BackendKind::Server { url, .. } => Some(url.clone()),
            _ => None,
        });
    let pending = Pending::new(env, &req);
    let lifetime = class.requirement.as_ref().map(|r| r.timeout);
    if class.decision == Decision::Approve
        && server.is_some()
        && let Some(id) = lifetime.and_then(|l| pending.load(l))
    {
        req.view.id = id;
    }
    let audit = Audit::open(env, &policy, &class)?;
    let opts = RunOptions {
        argv: req.argv.clone(),
        policy_files: c.policy_files.clone(),
        reason: None,
        timeout: c.timeout,
        no_wait: false,
        request: None,
        wait: false,
        json: false,
    };
    let cancel = Cancel::register();
    let mut ask = None;
    let verdict = match class.decision {
        Decision::Allow => Verdict::Run {
            outcome: Outcome::Allowed,
            approvals: Vec::new(),
            statement: None,
            reuse: None,
            release: None,
        },
        Decision::Deny => denied(&c.policy_files, &req, &class),
        // Never gate's own terminal prompt: the agent owns the terminal. Its person answers
        // in the agent, which gate records as the requester's confirmation through it.
        Decision::Confirm if !c.can_ask => Verdict::stop(
            Outcome::Refused,
            Error::Denied {
                message: format!(
                    "{}, but {} cannot ask you from a hook",
                    super::verdict::why_confirm(&class),
                    c.agent
                ),
                hint: Some(
                    "confirmation must be typed by a person: run it yourself at a terminal \
                     with `gate -- COMMAND`"
                        .into(),
                ),
            },
        ),
        Decision::Confirm => {
            ask = Some(super::verdict::why_confirm(&class));
            Verdict::Run {
                outcome: Outcome::Confirmed,
                approvals: vec![Approver {
                    principal: req.view.requester.user.clone(),
                    uid: Some(req.view.requester.uid),
                    at: now(),
                    via: format!("{} prompt", c.agent),
                    comment: None,
                }],
                statement: None,
                reuse: None,
                release: None,
            }
        }
        Decision::Approve => {
            approve::approve_outliving(&opts, env, out, &policy, &req, &class, &cancel, true)?
        }
    };
    let outcome = verdict.outcome();
    match outcome {
        Outcome::TimedOut if server.is_some() => pending.store(req.id()),
        Outcome::TimedOut | Outcome::Cancelled | Outcome::Error => {}
        _ => pending.clear(),
    }
    let (decision, refused) = verdict.into_record(&policy, &class);
    let recorder = audit.record_decision(out, &req, decision)?;
    let request_id = req.id().to_owned();
    if let Some(e) = refused {
        let reason = match (outcome, &server) {
            (Outcome::TimedOut, Some(url)) => format!(
                "{e}: request {request_id} is waiting for approval on {url}; an approver runs \
                 `gate approve --server {url} {request_id}`, and once it is approved the same \
                 command, run again, goes ahead"
            ),
            (Outcome::TimedOut, None) => format!(
                "{e}: request {request_id} was not approved in time; an approver answers with \
                 `gate approve ID` (the id `gate requests` shows) while it waits, so run the \
                 same command again when one is ready"
            ),
            _ => match e.hint() {
                Some(h) => format!("{e} ({h})"),
                None => e.to_string(),
            },
        };
        return Ok(AgentVerdict::Deny { request_id, reason });
    }
    if !recorder.delivered_as_required {
        return Ok(AgentVerdict::Deny {
            request_id,
            reason: "the policy requires a remote copy of the decision before the command \
                     starts (`audit.require_remote`), and delivery failed"
                .into(),
        });
    }
    // A signal that came while the decision was being recorded still means "stop".
    if cancel.is_set() {
        return Ok(AgentVerdict::Deny {
            request_id,
            reason: "cancelled by a signal before the answer was given".into(),
        });
    }
    Ok(match ask {
        Some(reason) => AgentVerdict::Ask { request_id, reason },
        None => AgentVerdict::Allow { request_id },
    })
}

/// Records how an agent's command ended (its post-tool hook): a result record for
/// `request_id` in the log its decision went to.
pub fn record_agent_result(
    env: &Env,
    policy_files: &[PathBuf],
    request_id: &str,
    exit_code: Option<i32>,
) -> Result<(), Error> {
    let policy = env.load_policy_lazy(policy_files)?;
    let log = env.audit_log(Some(&policy));
    log.append(vec![Body::Result {
        request_id: request_id.to_owned(),
        result: ResultInfo {
            exit_code,
            signal: None,
            duration_ms: 0,
            error: exit_code
                .is_none()
                .then(|| "run by the agent, which did not report its exit status".to_owned()),
        },
    }])?;
    Ok(())
}

/// The request id a command that timed out waiting on a server is asked for again under:
/// one small file per requester and digest in the state directory. What is in it is only a
/// hint — the server's signed statement must still name this command's digest and requester.
struct Pending {
    path: PathBuf,
}

impl Pending {
    fn new(env: &Env, req: &Request) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(req.view.requester.user.as_bytes());
        h.update([0]);
        h.update(req.view.digest.as_bytes());
        Pending {
            path: env
                .state_dir()
                .join("hook-pending")
                .join(hex::encode(h.finalize())),
        }
    }

    /// The id, while the request it names can still be open (younger than `lifetime`, the
    /// longest a request lives on the server); an older one is dropped.
    fn load(&self, lifetime: Duration) -> Option<String> {
        let age = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())?;
        if age > lifetime {
            self.clear();
            return None;
        }
        let text = std::fs::read_to_string(&self.path).ok()?;
        let id = text.trim();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        ok.then(|| id.to_owned())
    }

    /// Keeps `id` for a retry; an id kept already stays as it was, so the file's age is the
    /// request's.
    fn store(&self, id: &str) {
        use std::os::unix::fs::DirBuilderExt;
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == id) {
            return;
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let _ = std::fs::write(&self.path, id);
    }

    fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
