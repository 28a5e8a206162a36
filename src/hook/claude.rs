//! Claude Code's `PreToolUse` / `PostToolUse` command hooks for its `Bash` tool
//! (<https://code.claude.com/docs/en/hooks>). Input: `session_id`, `transcript_path`, `cwd`,
//! `hook_event_name`, `tool_name`, `tool_input.command`, `tool_use_id` (and `tool_response`
//! after the run). Answer before the run: exit 0 with
//! `{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow" |
//! "deny" | "ask", "permissionDecisionReason": "..."}}`; the reason of a deny is shown to
//! Claude, of an ask to the person. After the run: nothing, or `{"decision": "block",
//! "reason": "..."}`. Exit 2 blocks with stderr as the reason; any other non-zero status is a
//! "non-blocking error" and lets the command run — which is why gate never exits with one here.

use serde::{Deserialize, Serialize};

use super::{Answer, Call, Event, HookError, Reply, ToolHook};

const HOOK: ToolHook = ToolHook {
    agent: "Claude Code",
    pre: "PreToolUse",
    post: "PostToolUse",
    shell_tool: "Bash",
};

pub fn parse(text: &str) -> Result<Call, HookError> {
    HOOK.parse(text)
}

/// The whole of a `PreToolUse` answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PreAnswer {
    #[serde(rename = "hookSpecificOutput")]
    pub hook_specific_output: PreDecision,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PreDecision {
    #[serde(rename = "hookEventName")]
    pub hook_event_name: String,
    #[serde(rename = "permissionDecision")]
    pub permission_decision: String,
    #[serde(
        rename = "permissionDecisionReason",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub permission_decision_reason: Option<String>,
}

/// A `PostToolUse` answer that tells Claude something went wrong.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PostBlock {
    pub decision: String,
    pub reason: String,
}

pub fn reply(event: Event, answer: &Answer) -> Reply {
    let pre = |decision: &str, reason: Option<&String>| {
        Reply::json(&PreAnswer {
            hook_specific_output: PreDecision {
                hook_event_name: "PreToolUse".into(),
                permission_decision: decision.into(),
                permission_decision_reason: reason.cloned(),
            },
        })
    };
    match (event, answer) {
        (_, Answer::Nothing) => Reply::empty(),
        (Event::Pre, Answer::Allow) => pre("allow", None),
        (Event::Pre, Answer::Deny { reason }) => pre("deny", Some(reason)),
        (Event::Pre, Answer::Ask { reason }) => pre("ask", Some(reason)),
        (Event::Post, Answer::Allow) => Reply::empty(),
        (Event::Post, Answer::Deny { reason } | Answer::Ask { reason }) => {
            Reply::json(&PostBlock {
                decision: "block".into(),
                reason: reason.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASH: &str = r#"{"session_id":"s1","transcript_path":"/t","cwd":"/w","permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls -l","description":"list"},"tool_use_id":"toolu_1"}"#;

    #[test]
    fn reads_the_bash_call() {
        let c = parse(BASH).unwrap();
        assert_eq!(c.event, Event::Pre);
        assert_eq!(c.command.as_deref(), Some("ls -l"));
        assert_eq!(c.cwd.as_deref(), Some(std::path::Path::new("/w")));
        assert_eq!(c.session.as_deref(), Some("s1"));
        assert_eq!(c.tool_use.as_deref(), Some("toolu_1"));
    }

    #[test]
    fn another_tool_has_no_command() {
        let c = parse(&BASH.replace(r#""Bash""#, r#""Write""#)).unwrap();
        assert_eq!(c.command, None);
    }

    #[test]
    fn wrong_types_name_the_place() {
        let e = parse(&BASH.replace(r#""ls -l""#, "5")).unwrap_err();
        assert!(e.to_string().contains("tool_input.command"), "{e}");
        let e = parse(&BASH.replace(r#""Bash""#, "[]")).unwrap_err();
        assert!(e.to_string().contains("tool_name"), "{e}");
        assert!(parse(&BASH[..BASH.len() - 3]).is_err());
    }

    #[test]
    fn answers_are_exactly_the_documented_fields() {
        let r = reply(
            Event::Pre,
            &Answer::Deny {
                reason: "no \"x\"\n".into(),
            },
        );
        let back: PreAnswer = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(back.hook_specific_output.permission_decision, "deny");
        assert_eq!(
            back.hook_specific_output
                .permission_decision_reason
                .as_deref(),
            Some("no \"x\"\n")
        );
        let r = reply(Event::Pre, &Answer::Allow);
        assert_eq!(
            String::from_utf8(r.stdout).unwrap(),
            "{\"hookSpecificOutput\":{\"hookEventName\":\"PreToolUse\",\"permissionDecision\":\"allow\"}}\n"
        );
        assert!(reply(Event::Post, &Answer::Nothing).stdout.is_empty());
    }
}
