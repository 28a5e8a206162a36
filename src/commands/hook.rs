//! `gate hook AGENT`: answers an AI agent's shell-tool hook. Reads the hook JSON on stdin
//! (at most [`MAX_INPUT`] bytes), decides on the command by the run path's rules
//! ([`crate::run::decide_for_agent`]) and answers in the agent's own schema ([`crate::hook`]).
//!
//! There is no path out of here that lets a command run without an `allow` decided and
//! recorded: bad input, a policy that cannot be read, an unreachable backend, an unwritable
//! log, a termination signal and a panic all end in the agent's blocking answer and exit 2 —
//! for Claude Code any other non-zero status would let the command run.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Env;
use crate::error::Error;
use crate::hook::{Agent, Answer, Call, Event, HookError, MAX_INPUT, Reply};
use crate::output::Output;
use crate::run::{AgentCommand, AgentVerdict, decide_for_agent, record_agent_result};

/// The wait for an approval `gate hook` allows by default: a bit under the timeout
/// `gate setup` gives the agent for the hook ([`SETUP_TIMEOUT`]), so that gate's own deny
/// reaches the agent before the agent gives up on the hook (which, in Claude Code, lets the
/// command run).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(280);
/// The hook timeout `gate setup` writes into the agent's settings.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Resolved options of `gate hook AGENT`.
#[derive(Debug, Clone)]
pub struct HookOptions {
    pub agent: Agent,
    pub event: Option<Event>,
    pub timeout: Duration,
    pub policy_files: Vec<PathBuf>,
}

/// Runs the hook; returns the exit status. Never an error: every failure is an answer.
pub fn hook(env: &Env, out: &Output, opts: HookOptions) -> i32 {
    // From the first instruction a termination signal means "block", not death by signal
    // (an exit status the agent would take for a broken hook, and let the command run).
    let stop = Arc::new(AtomicBool::new(false));
    let ids: Vec<_> = [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGQUIT,
        signal_hook::consts::SIGPIPE,
    ]
    .into_iter()
    .filter_map(|s| signal_hook::flag::register(s, Arc::clone(&stop)).ok())
    .collect();
    let event = Arc::new(Mutex::new(opts.event.unwrap_or(Event::Pre)));
    install_panic_answer(opts.agent, Arc::clone(&event));
    // A hang anywhere (stdin never closed, a policy path that is a FIFO, a stuck disk) would
    // end in the agent's own timeout, which lets the command run: answer first, and block.
    watchdog(
        opts.agent,
        Arc::clone(&event),
        opts.timeout.saturating_add(WATCHDOG_SLACK),
    );
    let reply = answer(env, out, &opts, &stop, &event);
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    deliver(out, &reply)
}

/// The blocking answer for an error that reached `main` (a panic before the hook's own guard,
/// an error it returned): written out, and the exit status to end with.
pub fn fail_closed(out: &Output, agent: Agent, event: Option<Event>, e: &Error) -> i32 {
    let reason = with_hint(e);
    deliver(
        out,
        &agent.blocking(event.unwrap_or(Event::Pre), &format!("gate: {reason}")),
    )
}

/// How long past the approval wait the watchdog lets the hook run before it blocks.
const WATCHDOG_SLACK: Duration = Duration::from_secs(10);
/// How long the agent may take to send its input and close stdin.
const INPUT_DEADLINE: Duration = Duration::from_secs(10);

/// Taken by whoever writes the answer, so the process writes exactly one.
static ANSWERED: Mutex<()> = Mutex::new(());

/// After `after`, writes the blocking answer and ends the process with exit 2 — unless the
/// answer is being written already (then that one stands).
fn watchdog(agent: Agent, event: Arc<Mutex<Event>>, after: Duration) {
    let _ = std::thread::Builder::new()
        .name("hook-watchdog".into())
        .spawn(move || {
            std::thread::sleep(after);
            let event = event.lock().map(|e| *e).unwrap_or(Event::Pre);
            let reply = agent.blocking(
                event,
                &format!(
                    "gate: no answer within {}; refusing",
                    humantime::format_duration(after)
                ),
            );
            write_and_exit(&reply);
        });
}

/// Writes `reply` as the one answer and exits with its status; used off the main path.
fn write_and_exit(reply: &Reply) -> ! {
    // Someone is writing the answer already (or crashed doing it): exit 2 blocks either way.
    let Ok(_held) = ANSWERED.try_lock() else {
        std::process::exit(crate::hook::BLOCK_EXIT)
    };
    let _ = std::io::stderr().write_all(format!("error: {}\n", reply.stderr).as_bytes());
    let _ = std::io::stdout().write_all(&reply.stdout);
    let _ = std::io::stdout().flush();
    std::process::exit(reply.exit)
}

/// Writes a reply; a reply that cannot be written blocks (exit 2).
fn deliver(out: &Output, reply: &Reply) -> i32 {
    // Held to the end of the process: a late watchdog must not write a second answer.
    let held = ANSWERED.lock();
    std::mem::forget(held);
    if !reply.stderr.is_empty() {
        out.raw_stderr(&format!("error: {}", reply.stderr));
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(&reply.stdout)
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => reply.exit,
        Err(_) => crate::hook::BLOCK_EXIT,
    }
}

/// A panic anywhere (any thread) writes the blocking answer and ends the process with exit 2
/// before anything else can happen.
fn install_panic_answer(agent: Agent, event: Arc<Mutex<Event>>) {
    std::panic::set_hook(Box::new(move |info| {
        let event = event.lock().map(|e| *e).unwrap_or(Event::Pre);
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let reply = agent.blocking(event, &format!("gate: internal error{at}; refusing"));
        write_and_exit(&reply);
    }));
}

fn answer(
    env: &Env,
    out: &Output,
    opts: &HookOptions,
    stop: &AtomicBool,
    event: &Mutex<Event>,
) -> Reply {
    let agent = opts.agent;
    let guessed = opts.event.unwrap_or(Event::Pre);
    let block = |e: Event, why: String| agent.blocking(e, &format!("gate: {why}"));
    let read = Arc::new(AtomicBool::new(false));
    {
        let read = Arc::clone(&read);
        let _ = std::thread::Builder::new()
            .name("hook-input".into())
            .spawn(move || {
                std::thread::sleep(INPUT_DEADLINE);
                if !read.load(Ordering::SeqCst) {
                    write_and_exit(&agent.blocking(
                        guessed,
                        &format!(
                            "gate: the hook input did not end within {}s; refusing",
                            INPUT_DEADLINE.as_secs()
                        ),
                    ));
                }
            });
    }
    let input = read_input(std::io::stdin().lock());
    read.store(true, Ordering::SeqCst);
    let input = match input {
        Ok(i) => i,
        Err(e) => return block(guessed, e.to_string()),
    };
    let call = match agent.parse(&input, opts.event) {
        Ok(c) => c,
        Err(e) => return block(guessed, e.to_string()),
    };
    if let Ok(mut e) = event.lock() {
        *e = call.event;
    }
    #[cfg(debug_assertions)]
    if std::env::var_os("GATE_TEST_PANIC").is_some_and(|v| v == "hook") {
        panic!("crash point `hook` (GATE_TEST_PANIC)");
    }
    let Some(command) = call.command.clone() else {
        // Not the shell tool: nothing of gate's to decide.
        return agent.reply(call.event, &Answer::Nothing);
    };
    let reply = match call.event {
        Event::Pre => pre(env, out, opts, &call, command),
        Event::Post => post(env, opts, &call, &command),
    };
    if stop.load(Ordering::SeqCst) && reply.exit == 0 && call.event == Event::Pre {
        return block(call.event, "stopped by a signal before answering".into());
    }
    reply
}

fn pre(env: &Env, out: &Output, opts: &HookOptions, call: &Call, command: String) -> Reply {
    let agent = opts.agent;
    let c = AgentCommand {
        agent: agent.name(),
        command,
        cwd: call.cwd.clone(),
        session: call.session.clone(),
        tool_use: call.tool_use.clone(),
        policy_files: opts.policy_files.clone(),
        can_ask: agent.can_ask(),
        timeout: Some(opts.timeout),
    };
    match decide_for_agent(&c, env, out) {
        Ok(AgentVerdict::Allow { request_id }) => {
            Calls::new(env, agent, call, &c.command).store(&request_id);
            agent.reply(Event::Pre, &Answer::Allow)
        }
        Ok(AgentVerdict::Ask { request_id, reason }) => {
            Calls::new(env, agent, call, &c.command).store(&request_id);
            agent.reply(
                Event::Pre,
                &Answer::Ask {
                    reason: format!("gate: {reason} (request {request_id})"),
                },
            )
        }
        Ok(AgentVerdict::Deny { request_id, reason }) => agent.reply(
            Event::Pre,
            &Answer::Deny {
                reason: format!("gate: {reason} (request {request_id})"),
            },
        ),
        Err(e) => agent.blocking(Event::Pre, &format!("gate: {}", with_hint(&e))),
    }
}

/// After the run: the result record for the request the pre-tool call decided.
fn post(env: &Env, opts: &HookOptions, call: &Call, command: &str) -> Reply {
    let agent = opts.agent;
    let calls = Calls::new(env, agent, call, command);
    let Some(request_id) = calls.take() else {
        // No decision of gate's for this call (the pre-tool hook was not installed, or saw
        // another command): nothing to attach a result to.
        return agent.reply(Event::Post, &Answer::Nothing);
    };
    match record_agent_result(env, &opts.policy_files, &request_id, call.exit_code) {
        Ok(()) => agent.reply(Event::Post, &Answer::Nothing),
        Err(e) => agent.blocking(
            Event::Post,
            &format!(
                "gate: the result of request {request_id} could not be recorded: {}",
                with_hint(&e)
            ),
        ),
    }
}

fn with_hint(e: &Error) -> String {
    match e.hint() {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    }
}

/// Reads at most [`MAX_INPUT`] bytes, and fails on more.
fn read_input(mut r: impl Read) -> Result<Vec<u8>, HookError> {
    let mut buf = Vec::new();
    let n = (&mut r)
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| HookError::Json {
            agent: "stdin",
            path: ".".into(),
            message: e.to_string(),
        })?;
    if n > MAX_INPUT {
        return Err(HookError::TooLarge(n));
    }
    Ok(buf)
}

/// Which request a tool call's post-tool hook reports the result of: a small file per call
/// (agent, session, tool-use id and command) in the state directory, written when the
/// pre-tool call lets it run and taken by the post-tool call.
struct Calls {
    path: PathBuf,
}

impl Calls {
    fn new(env: &Env, agent: Agent, call: &Call, command: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            agent.name(),
            call.session.as_deref().unwrap_or(""),
            call.tool_use.as_deref().unwrap_or(""),
            command,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Calls {
            path: env
                .state_dir()
                .join("hook-calls")
                .join(hex::encode(h.finalize())),
        }
    }

    fn store(&self, request_id: &str) {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let _ = std::fs::write(&self.path, request_id);
    }

    fn take(&self) -> Option<String> {
        let id = std::fs::read_to_string(&self.path).ok()?;
        let _ = std::fs::remove_file(&self.path);
        let id = id.trim();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        ok.then(|| id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_past_the_limit_is_refused() {
        let big = vec![b'x'; MAX_INPUT + 10];
        assert!(matches!(read_input(&big[..]), Err(HookError::TooLarge(_))));
        let ok = vec![b'x'; MAX_INPUT];
        assert_eq!(read_input(&ok[..]).unwrap().len(), MAX_INPUT);
    }

    #[test]
    fn the_wait_ends_before_the_agent_gives_up() {
        assert!(DEFAULT_WAIT + Duration::from_secs(10) < SETUP_TIMEOUT);
    }
}
