//! OpenAI Codex CLI's `PreToolUse` / `PostToolUse` command hooks for its shell tool, which
//! its hooks name `Bash` (<https://developers.openai.com/codex/hooks>; the output schema is
//! `codex-rs/hooks/schema/generated/pre-tool-use.command.output.schema.json`, closed with
//! `additionalProperties: false`). The input is Claude Code's shape (plus `turn_id`, `model`).
//! Codex acts on exactly one `PreToolUse` decision: `permissionDecision: "deny"` with a
//! non-empty reason. It rejects `allow` without `updatedInput` and `ask` as unsupported (and
//! then goes on as if the hook had said nothing), so gate says nothing to let a command run —
//! Codex's own sandbox and approval settings still apply — and denies what would need a
//! person at the agent, which a Codex hook cannot ask for. Exit 2 blocks with stderr as the
//! reason.

use super::claude::{PostBlock, PreAnswer, PreDecision};
use super::{Answer, Call, Event, HookError, Reply, ToolHook};

const HOOK: ToolHook = ToolHook {
    agent: "Codex",
    pre: "PreToolUse",
    post: "PostToolUse",
    shell_tool: "Bash",
};

pub fn parse(text: &str) -> Result<Call, HookError> {
    HOOK.parse(text)
}

/// Codex's `PreToolUse` output: the same members as Claude Code's for a deny, and no others.
pub type PreDeny = PreAnswer;

pub fn reply(event: Event, answer: &Answer) -> Reply {
    let deny = |reason: String| {
        Reply::json(&PreDeny {
            hook_specific_output: PreDecision {
                hook_event_name: "PreToolUse".into(),
                permission_decision: "deny".into(),
                permission_decision_reason: Some(non_empty(reason)),
            },
        })
    };
    match (event, answer) {
        (_, Answer::Nothing) | (_, Answer::Allow) => Reply::empty(),
        (Event::Pre, Answer::Deny { reason }) => deny(reason.clone()),
        (Event::Pre, Answer::Ask { reason }) => deny(format!(
            "{reason}; a Codex hook cannot ask you to confirm, so gate refuses it here: run it \
             yourself at a terminal with `gate -- COMMAND`"
        )),
        (Event::Post, Answer::Deny { reason } | Answer::Ask { reason }) => {
            Reply::json(&PostBlock {
                decision: "block".into(),
                reason: non_empty(reason.clone()),
            })
        }
    }
}

/// Codex ignores a deny whose reason is blank: never send one.
fn non_empty(reason: String) -> String {
    if reason.trim().is_empty() {
        "denied by gate".to_owned()
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_says_nothing_and_ask_becomes_a_deny() {
        assert!(reply(Event::Pre, &Answer::Allow).stdout.is_empty());
        let r = reply(
            Event::Pre,
            &Answer::Ask {
                reason: "rule `x`".into(),
            },
        );
        let v: PreDeny = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v.hook_specific_output.permission_decision, "deny");
        let r = reply(Event::Pre, &Answer::Deny { reason: " ".into() });
        let v: PreDeny = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(
            v.hook_specific_output.permission_decision_reason.as_deref(),
            Some("denied by gate")
        );
    }
}
