//! Cursor's `beforeShellExecution` / `afterShellExecution` hooks
//! (<https://cursor.com/docs/agent/hooks>). Input: `hook_event_name`, `conversation_id`,
//! `generation_id`, `workspace_roots`, `command`, `cwd` (and after the run `output`,
//! `duration`). Answer before the run: `{"permission": "allow" | "deny" | "ask",
//! "user_message": "...", "agent_message": "..."}` — the first shown to the person, the
//! second to the agent; after the run an empty object. With `failClosed: true` in
//! hooks.json (which `gate setup cursor` writes) a hook that fails or times out blocks.

use serde::{Deserialize, Serialize};

use super::{
    Answer, Call, Event, HookError, Reply, absolute, checked_command, clean_id, from_json,
};

/// The fields gate reads; Cursor adds others (`model`, `cursor_version`, `user_email`, ...).
#[derive(Deserialize)]
struct Input {
    hook_event_name: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    generation_id: Option<String>,
    #[serde(default)]
    exit_code: Option<i64>,
}

pub fn parse(text: &str) -> Result<Call, HookError> {
    let input: Input = from_json("Cursor", text)?;
    let event = match input.hook_event_name.as_str() {
        "beforeShellExecution" => Event::Pre,
        "afterShellExecution" => Event::Post,
        other => return Err(HookError::UnknownEvent(other.chars().take(64).collect())),
    };
    let command = input.command.ok_or_else(|| HookError::Json {
        agent: "Cursor",
        path: "command".into(),
        message: "missing field `command`".into(),
    })?;
    Ok(Call {
        event,
        command: Some(checked_command(command)?),
        cwd: absolute(input.cwd),
        session: clean_id(input.conversation_id),
        tool_use: clean_id(input.generation_id),
        exit_code: input.exit_code.and_then(|n| i32::try_from(n).ok()),
    })
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub permission: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_message: Option<String>,
}

/// The empty answer to an after-execution call.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

pub fn reply(event: Event, answer: &Answer) -> Reply {
    let permission = |p: &str, reason: Option<&String>| {
        Reply::json(&Permission {
            permission: p.into(),
            user_message: reason.cloned(),
            agent_message: reason.cloned(),
        })
    };
    match (event, answer) {
        (Event::Post, _) | (Event::Pre, Answer::Nothing) => Reply::json(&Empty {}),
        (Event::Pre, Answer::Allow) => permission("allow", None),
        (Event::Pre, Answer::Deny { reason }) => permission("deny", Some(reason)),
        (Event::Pre, Answer::Ask { reason }) => permission("ask", Some(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_answers() {
        let c = parse(r#"{"hook_event_name":"beforeShellExecution","conversation_id":"c","generation_id":"g","workspace_roots":["/w"],"command":"git push","cwd":"/w"}"#).unwrap();
        assert_eq!(c.command.as_deref(), Some("git push"));
        assert_eq!(c.session.as_deref(), Some("c"));
        let r = reply(Event::Pre, &Answer::Ask { reason: "r".into() });
        let v: Permission = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v.permission, "ask");
        assert_eq!(v.agent_message.as_deref(), Some("r"));
        assert!(parse(r#"{"hook_event_name":"beforeShellExecution"}"#).is_err());
    }
}
