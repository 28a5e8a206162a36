//! The wire formats of AI coding agents' shell-tool hooks: what each agent sends on stdin and
//! exactly what it accepts back. One module per agent; this one holds what they share — the
//! call as gate reads it ([`Call`]), the answer it gives ([`Answer`]) and the bytes, stderr
//! text and exit status that carry it ([`Reply`]). Nothing here decides anything: it only
//! reads and writes the agents' JSON, and refuses (with the place) what it cannot read.
//!
//! Input is read tolerantly — every agent documents that it adds fields to its hook input over
//! time — but every field gate uses must be there with its type. Output is strict: each
//! agent's answer type carries only the fields its schema accepts.

pub mod claude;
pub mod codex;
pub mod cursor;
pub mod gemini;

use std::path::PathBuf;

/// The largest hook input gate reads: a shell command an agent wants to run fits many times
/// over; anything larger is refused rather than parsed.
pub const MAX_INPUT: usize = 1 << 20;

/// The longest session or tool-use id kept for the request; longer ones are cut.
const MAX_ID: usize = 128;

/// The agents gate answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    ClaudeCode,
    Codex,
    Gemini,
    Cursor,
}

impl Agent {
    /// The name gate records as the requester's agent (`gate hook NAME` spells it so).
    pub fn name(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
            Agent::Cursor => "cursor",
        }
    }

    /// Whether the agent has an "ask the person" answer (Codex and Gemini CLI hooks do not).
    pub fn can_ask(self) -> bool {
        matches!(self, Agent::ClaudeCode | Agent::Cursor)
    }

    /// Reads one hook input. `event` is what the command line said (`--event`), if anything;
    /// when the input names its event too, the two must agree.
    pub fn parse(self, input: &[u8], event: Option<Event>) -> Result<Call, HookError> {
        if input.len() > MAX_INPUT {
            return Err(HookError::TooLarge(input.len()));
        }
        let text = std::str::from_utf8(input).map_err(|e| HookError::NotUtf8(e.valid_up_to()))?;
        let call = match self {
            Agent::ClaudeCode => claude::parse(text)?,
            Agent::Codex => codex::parse(text)?,
            Agent::Gemini => gemini::parse(text)?,
            Agent::Cursor => cursor::parse(text)?,
        };
        match event {
            Some(e) if e != call.event => Err(HookError::EventMismatch {
                given: e,
                input: call.event,
            }),
            _ => Ok(call),
        }
    }

    /// The reply carrying `answer` to this agent for a call of `event`.
    pub fn reply(self, event: Event, answer: &Answer) -> Reply {
        match self {
            Agent::ClaudeCode => claude::reply(event, answer),
            Agent::Codex => codex::reply(event, answer),
            Agent::Gemini => gemini::reply(event, answer),
            Agent::Cursor => cursor::reply(event, answer),
        }
    }

    /// The reply that blocks, whatever went wrong: the agent's deny shape on stdout, the reason
    /// on stderr and exit status 2, which every one of these agents takes as "blocked" (for
    /// Claude Code any other non-zero status would let the command run).
    pub fn blocking(self, event: Event, reason: &str) -> Reply {
        let mut r = self.reply(
            event,
            &Answer::Deny {
                reason: reason.to_owned(),
            },
        );
        r.exit = BLOCK_EXIT;
        r.stderr = reason.to_owned();
        r
    }
}

/// The exit status that blocks in every supported agent.
pub const BLOCK_EXIT: i32 = 2;

/// Before or after the shell tool ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Pre,
    Post,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Pre => "pre",
            Event::Post => "post",
        }
    }
}

/// One hook call, as gate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub event: Event,
    /// The shell command string; `None` when the call is for another tool than the shell,
    /// which gate has no say about.
    pub command: Option<String>,
    /// Where the command runs, as the agent says (absolute paths only).
    pub cwd: Option<PathBuf>,
    /// The agent's session (conversation) id.
    pub session: Option<String>,
    /// The agent's id of this tool call.
    pub tool_use: Option<String>,
    /// The command's exit status, on a post-tool call whose agent reports it.
    pub exit_code: Option<i32>,
}

/// What gate answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Let it run.
    Allow,
    /// Do not run it; `reason` is what the agent (and the person) sees.
    Deny { reason: String },
    /// The agent asks its person; `reason` says why.
    Ask { reason: String },
    /// Gate has nothing to say: a post-tool record, or a tool other than the shell.
    Nothing,
}

/// The bytes for stdout, the text for stderr and the exit status of a hook process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub exit: i32,
}

impl Reply {
    fn json(v: &impl serde::Serialize) -> Self {
        // Serialising these plain structs of strings cannot fail; an empty object (which no
        // agent reads as allow) would be the answer if it ever did.
        let mut stdout = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
        stdout.push(b'\n');
        Reply {
            stdout,
            stderr: String::new(),
            exit: 0,
        }
    }

    fn empty() -> Self {
        Reply {
            stdout: Vec::new(),
            stderr: String::new(),
            exit: 0,
        }
    }
}

/// Why a hook input cannot be used. Every one of these ends in the blocking reply.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("the hook input is larger than {MAX_INPUT} bytes ({0} bytes); refusing to read it")]
    TooLarge(usize),
    #[error("the hook input is not UTF-8 (bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("the hook input is empty")]
    Empty,
    #[error("the hook input is not the {agent} hook JSON: at `{path}`: {message}")]
    Json {
        agent: &'static str,
        path: String,
        message: String,
    },
    #[error("the hook input is for the event `{0}`, which gate does not handle")]
    UnknownEvent(String),
    #[error("`--event {}` was given, but the hook input is a `{}` event", given.as_str(), input.as_str())]
    EventMismatch { given: Event, input: Event },
    #[error("the shell command holds a NUL byte, which no shell can be given")]
    Nul,
}

/// Parses `text` as `T`, naming the place of the first problem.
fn from_json<T: serde::de::DeserializeOwned>(
    agent: &'static str,
    text: &str,
) -> Result<T, HookError> {
    if text.trim().is_empty() {
        return Err(HookError::Empty);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| HookError::Json {
        agent,
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    // One JSON document and nothing after it: a second one would be read by nobody the same.
    de.end().map_err(|e| HookError::Json {
        agent,
        path: ".".into(),
        message: format!("more after the JSON object: {e}"),
    })?;
    Ok(v)
}

/// An id from the agent, fit to be shown and recorded: control characters dropped, at most
/// [`MAX_ID`] characters.
fn clean_id(id: Option<String>) -> Option<String> {
    let id: String = id?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ID)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// A command string gate can classify: no NUL (which would cut the command short where the
/// shell is given it, so the words gate reads would not be the words that run).
fn checked_command(command: String) -> Result<String, HookError> {
    if command.contains('\0') {
        return Err(HookError::Nul);
    }
    Ok(command)
}

/// The working directory the agent names, if it is absolute.
fn absolute(dir: Option<String>) -> Option<PathBuf> {
    dir.map(PathBuf::from).filter(|p| p.is_absolute())
}

/// The names one agent of the Claude Code family (Claude Code, Codex, Gemini CLI) gives its
/// events and its shell tool; their hook inputs share one shape.
struct ToolHook {
    agent: &'static str,
    pre: &'static str,
    post: &'static str,
    shell_tool: &'static str,
}

/// The hook input shared by Claude Code, Codex and Gemini CLI: the fields gate reads. Others
/// (`transcript_path`, `permission_mode`, `model`, `turn_id`, `timestamp`, ...) are documented
/// and grow over time, so they are not refused.
#[derive(serde::Deserialize)]
struct ToolInput {
    hook_event_name: String,
    tool_name: String,
    #[serde(default)]
    tool_input: Option<serde_json::Value>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    tool_response: Option<serde_json::Value>,
}

/// The shell tool's arguments: the command, and (Gemini CLI) the directory it runs in.
#[derive(serde::Deserialize)]
struct ShellArgs {
    command: String,
    #[serde(default)]
    dir_path: Option<String>,
}

impl ToolHook {
    fn parse(&self, text: &str) -> Result<Call, HookError> {
        let input: ToolInput = from_json(self.agent, text)?;
        let event = if input.hook_event_name == self.pre {
            Event::Pre
        } else if input.hook_event_name == self.post {
            Event::Post
        } else {
            return Err(HookError::UnknownEvent(
                input.hook_event_name.chars().take(64).collect(),
            ));
        };
        let cwd = absolute(input.cwd);
        let mut call = Call {
            event,
            command: None,
            cwd: cwd.clone(),
            session: clean_id(input.session_id),
            tool_use: clean_id(input.tool_use_id),
            exit_code: exit_code_in(input.tool_response.as_ref()),
        };
        if input.tool_name != self.shell_tool {
            return Ok(call);
        }
        let args = input.tool_input.ok_or_else(|| HookError::Json {
            agent: self.agent,
            path: "tool_input".into(),
            message: format!("missing: the `{}` tool's input", self.shell_tool),
        })?;
        let args: ShellArgs =
            serde_path_to_error::deserialize(args).map_err(|e| HookError::Json {
                agent: self.agent,
                path: format!("tool_input.{}", e.path()),
                message: e.inner().to_string(),
            })?;
        call.command = Some(checked_command(args.command)?);
        if let Some(dir) = args.dir_path.filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            call.cwd = match (dir.is_absolute(), cwd) {
                (true, _) => Some(dir),
                (false, Some(base)) => Some(base.join(dir)),
                (false, None) => None,
            };
        }
        Ok(call)
    }
}

/// An exit status an agent reports in a tool result, under any of the names agents use.
fn exit_code_in(v: Option<&serde_json::Value>) -> Option<i32> {
    let v = v?;
    ["exit_code", "exitCode", "code"]
        .iter()
        .find_map(|k| v.get(k)?.as_i64())
        .and_then(|n| i32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![b' '; MAX_INPUT + 1];
        for a in [
            Agent::ClaudeCode,
            Agent::Codex,
            Agent::Gemini,
            Agent::Cursor,
        ] {
            assert!(matches!(a.parse(&big, None), Err(HookError::TooLarge(_))));
        }
    }

    #[test]
    fn a_second_document_after_the_first_is_refused() {
        let one =
            r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}"#;
        assert!(Agent::ClaudeCode.parse(one.as_bytes(), None).is_ok());
        let two = format!("{one}\n{}", one.replace("ls", "rm -rf /"));
        assert!(Agent::ClaudeCode.parse(two.as_bytes(), None).is_err());
        assert!(
            Agent::ClaudeCode
                .parse(format!("{one} x").as_bytes(), None)
                .is_err()
        );
        assert!(
            Agent::ClaudeCode
                .parse(format!("{one}\n").as_bytes(), None)
                .is_ok()
        );
    }

    #[test]
    fn ids_lose_control_characters_and_length() {
        assert_eq!(
            clean_id(Some("a\u{1b}[31mb\n".into())).as_deref(),
            Some("a[31mb")
        );
        assert_eq!(clean_id(Some("x".repeat(1000))).unwrap().len(), MAX_ID);
        assert_eq!(clean_id(Some("\n".into())), None);
    }

    #[test]
    fn every_blocking_reply_exits_2_with_the_reason() {
        for a in [
            Agent::ClaudeCode,
            Agent::Codex,
            Agent::Gemini,
            Agent::Cursor,
        ] {
            for e in [Event::Pre, Event::Post] {
                let r = a.blocking(e, "why");
                assert_eq!(r.exit, 2);
                assert_eq!(r.stderr, "why");
            }
        }
    }
}
