//! Gemini CLI's `BeforeTool` / `AfterTool` command hooks for its `run_shell_command` tool
//! (<https://geminicli.com/docs/hooks/reference>). Input: `session_id`, `transcript_path`,
//! `cwd`, `hook_event_name`, `timestamp`, `tool_name`, `tool_input` (`command`, and
//! `dir_path` where it runs), `tool_response` after the run. Answer: `{"decision": "allow"}`
//! or `{"decision": "deny", "reason": "..."}`; the reason goes to the agent as the tool's
//! error. Gemini CLI has no "ask" answer, so what needs a person's confirmation is denied with
//! a reason saying how to run it. Exit 2 blocks with stderr as the reason; other statuses are
//! warnings and let the tool run.

use serde::{Deserialize, Serialize};

use super::{Answer, Call, Event, HookError, Reply, ToolHook};

const HOOK: ToolHook = ToolHook {
    agent: "Gemini CLI",
    pre: "BeforeTool",
    post: "AfterTool",
    shell_tool: "run_shell_command",
};

pub fn parse(text: &str) -> Result<Call, HookError> {
    HOOK.parse(text)
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

pub fn reply(event: Event, answer: &Answer) -> Reply {
    let answer_with = |decision: Option<&str>, reason: Option<String>| {
        Reply::json(&Decision {
            decision: decision.map(Into::into),
            reason,
        })
    };
    match (event, answer) {
        (_, Answer::Nothing) | (Event::Post, Answer::Allow) => answer_with(None, None),
        (Event::Pre, Answer::Allow) => answer_with(Some("allow"), None),
        (_, Answer::Deny { reason }) => answer_with(Some("deny"), Some(reason.clone())),
        (_, Answer::Ask { reason }) => answer_with(
            Some("deny"),
            Some(format!(
                "{reason}; Gemini CLI hooks cannot ask you to confirm, so gate refuses it here: \
                 run it yourself at a terminal with `gate -- COMMAND`"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dir_path_relative_to_cwd() {
        let c = parse(r#"{"session_id":"s","cwd":"/p","hook_event_name":"BeforeTool","timestamp":"t","tool_name":"run_shell_command","tool_input":{"command":"make","dir_path":"sub"}}"#).unwrap();
        assert_eq!(c.cwd.as_deref(), Some(std::path::Path::new("/p/sub")));
        assert_eq!(c.command.as_deref(), Some("make"));
    }

    #[test]
    fn answers() {
        let r = reply(Event::Pre, &Answer::Deny { reason: "r".into() });
        assert_eq!(r.stdout, b"{\"decision\":\"deny\",\"reason\":\"r\"}\n");
        let r = reply(Event::Pre, &Answer::Allow);
        assert_eq!(r.stdout, b"{\"decision\":\"allow\"}\n");
        let r = reply(Event::Post, &Answer::Nothing);
        assert_eq!(r.stdout, b"{}\n");
    }
}
