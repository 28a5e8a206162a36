//! `gate setup claude-code|codex|gemini|cursor`: installs `gate hook AGENT` into the agent's
//! settings file — the absolute path of this gate binary, an explicit timeout — keeping every
//! other setting and hook. Running it again changes nothing; a file it cannot parse is left
//! alone, with the error; the file is replaced atomically and keeps its mode.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::hook::{DEFAULT_WAIT, SETUP_TIMEOUT};
use crate::config::Env;
use crate::error::Error;
use crate::hook::Agent;
use crate::output::Output;
use crate::request::shell_quote;

/// Resolved options of `gate setup AGENT`.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    pub agent: Agent,
    /// The project's settings (the current directory) instead of the user's.
    pub project: bool,
    /// Print the file as it would be; change nothing.
    pub print: bool,
}

/// The settings file, relative to the project or the home directory.
fn settings_file(agent: Agent) -> &'static str {
    match agent {
        Agent::ClaudeCode => ".claude/settings.json",
        Agent::Codex => ".codex/hooks.json",
        Agent::Gemini => ".gemini/settings.json",
        Agent::Cursor => ".cursor/hooks.json",
    }
}

pub fn setup(env: &Env, out: &Output, s: AgentSetup) -> Result<i32, Error> {
    let gate = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Error::config(format!("cannot find this gate binary's path: {e}")))?;
    let base = if s.project {
        std::env::current_dir()
            .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?
    } else {
        env.home
            .clone()
            .ok_or_else(|| Error::config_hint("HOME is not set", "set HOME, or pass `--project`"))?
    };
    let path = base.join(settings_file(s.agent));
    let (before, mode) = read_settings(&path)?;
    let after = install(s.agent, &gate, before.clone()).map_err(|why| {
        Error::config_hint(
            format!("{}: {why}; leaving it as it is", path.display()),
            "fix the file by hand, then run this again",
        )
    })?;
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&after)
            .map_err(|e| Error::internal(format!("settings do not serialise: {e}")))?
    );
    if s.print {
        out.data(text.trim_end_matches('\n'));
        return Ok(0);
    }
    if before.as_ref() == Some(&after) {
        out.info(&format!(
            "{} already runs gate's hook; nothing changed",
            path.display()
        ));
        return Ok(0);
    }
    write_atomically(&path, text.as_bytes(), mode)
        .map_err(|e| Error::config(format!("cannot write {}: {e}", path.display())))?;
    out.info(&format!(
        "{}: {} runs `{}` (hook timeout {}s); the rest of the file is as it was",
        path.display(),
        s.agent.name(),
        hook_command(s.agent, &gate, "pre"),
        SETUP_TIMEOUT.as_secs()
    ));
    Ok(0)
}

/// The file's JSON and mode; `None` when there is no file (or an empty one).
fn read_settings(path: &Path) -> Result<(Option<Value>, Option<u32>), Error> {
    use std::os::unix::fs::PermissionsExt;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => {
            return Err(Error::config(format!(
                "cannot read {}: {e}; leaving it as it is",
                path.display()
            )));
        }
    };
    let mode = std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777);
    if text.trim().is_empty() {
        return Ok((None, mode));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Error::config_hint(
            format!(
                "{}:{}:{}: not valid JSON ({e}); leaving it as it is",
                path.display(),
                e.line(),
                e.column()
            ),
            "fix the file by hand, then run this again",
        )
    })?;
    Ok((Some(v), mode))
}

/// The command line the agent runs for one event.
fn hook_command(agent: Agent, gate: &Path, event: &str) -> String {
    format!(
        "{} hook {} --event {event} --timeout {}s",
        shell_quote(&gate.to_string_lossy()),
        agent.name(),
        DEFAULT_WAIT.as_secs()
    )
}

/// Whether a hook command is gate's hook for `agent` (any gate binary, any options).
fn is_gate_hook(agent: Agent, command: &str) -> bool {
    let script = crate::command::shell::parse(command);
    script.commands.first().is_some_and(|w| {
        w.len() >= 3
            && Path::new(&w[0]).file_name().is_some_and(|n| n == "gate")
            && w[1] == "hook"
            && w[2] == agent.name()
    })
}

/// `settings` with gate's hook installed: every earlier gate hook for this agent removed,
/// then one entry per event added at the end. Errors say which part has a shape gate will not
/// touch.
fn install(agent: Agent, gate: &Path, settings: Option<Value>) -> Result<Value, String> {
    let mut root = match settings {
        None => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err("the top level is not a JSON object".into()),
    };
    let obj = root.as_object_mut().expect("checked above");
    if agent == Agent::Cursor && !obj.contains_key("version") {
        obj.insert("version".into(), json!(1));
    }
    let hooks = obj
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(hooks) = hooks.as_object_mut() else {
        return Err("`hooks` is not a JSON object".into());
    };
    let (pre, post) = match agent {
        Agent::ClaudeCode | Agent::Codex => ("PreToolUse", "PostToolUse"),
        Agent::Gemini => ("BeforeTool", "AfterTool"),
        Agent::Cursor => ("beforeShellExecution", "afterShellExecution"),
    };
    for (event, word) in [(pre, "pre"), (post, "post")] {
        let list = hooks
            .entry(event)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(list) = list.as_array_mut() else {
            return Err(format!("`hooks.{event}` is not a JSON array"));
        };
        remove_gate_hooks(agent, list);
        list.push(entry(agent, &hook_command(agent, gate, word)));
    }
    Ok(root)
}

/// One event's hook entry running `cmd`, with the timeout in the agent's unit.
fn entry(agent: Agent, cmd: &str) -> Value {
    let secs = SETUP_TIMEOUT.as_secs();
    match agent {
        Agent::ClaudeCode | Agent::Codex => {
            json!({"matcher": "Bash", "hooks": [{"type": "command", "command": cmd, "timeout": secs}]})
        }
        Agent::Gemini => json!({"matcher": "run_shell_command", "hooks": [
            {"type": "command", "name": "gate", "command": cmd, "timeout": secs * 1000}
        ]}),
        Agent::Cursor => json!({"command": cmd, "timeout": secs, "failClosed": true}),
    }
}

/// Takes gate's own hooks for `agent` out of one event's list: Cursor's flat entries, or the
/// entries inside the matcher groups of the others (a group left empty by that goes too).
fn remove_gate_hooks(agent: Agent, list: &mut Vec<Value>) {
    let ours = |h: &Value| {
        h.get("command")
            .and_then(Value::as_str)
            .is_some_and(|c| is_gate_hook(agent, c))
    };
    list.retain_mut(|item| {
        if ours(item) {
            return false;
        }
        let Some(inner) = item.get_mut("hooks").and_then(Value::as_array_mut) else {
            return true;
        };
        let had = inner.len();
        inner.retain(|h| !ours(h));
        !(inner.is_empty() && had > 0)
    });
}

/// Replaces `path` with `bytes`: a new file beside it (never an existing one, mode `mode` or
/// 0600), synced, renamed over it. A symlinked settings file is written where it points.
fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let target: PathBuf = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => path.canonicalize()?,
        _ => path.to_owned(),
    };
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let mut rand = [0u8; 8];
    getrandom::fill(&mut rand).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.gate-{}", hex::encode(rand)));
    let mode = mode.unwrap_or(0o600);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: &str = "/opt/gate bin/gate";

    #[test]
    fn installing_twice_is_installing_once_and_keeps_the_rest() {
        let mine = json!({
            "model": "x",
            "hooks": {"PreToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "fmt"}]}]}
        });
        for agent in [
            Agent::ClaudeCode,
            Agent::Codex,
            Agent::Gemini,
            Agent::Cursor,
        ] {
            let once = install(agent, Path::new(GATE), Some(mine.clone())).unwrap();
            let twice = install(agent, Path::new(GATE), Some(once.clone())).unwrap();
            assert_eq!(once, twice, "{agent:?}");
            assert_eq!(once["model"], "x");
            let text = once.to_string();
            assert!(text.contains("'/opt/gate bin/gate' hook"), "{text}");
            assert!(text.contains("\"fmt\""), "{text}");
        }
    }

    #[test]
    fn an_older_gate_hook_is_replaced_not_added_to() {
        let old = json!({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [
            {"type": "command", "command": "/usr/bin/gate hook claude-code --timeout 10s"},
            {"type": "command", "command": "other-check"}
        ]}]}});
        let new = install(Agent::ClaudeCode, Path::new(GATE), Some(old)).unwrap();
        let pre = new["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0]["hooks"][0]["command"], "other-check");
        assert!(!new.to_string().contains("/usr/bin/gate"));
    }

    #[test]
    fn shapes_it_will_not_touch_are_refused() {
        assert!(install(Agent::ClaudeCode, Path::new(GATE), Some(json!([]))).is_err());
        assert!(
            install(
                Agent::ClaudeCode,
                Path::new(GATE),
                Some(json!({"hooks": 1}))
            )
            .is_err()
        );
        assert!(
            install(
                Agent::Gemini,
                Path::new(GATE),
                Some(json!({"hooks": {"BeforeTool": {}}}))
            )
            .is_err()
        );
    }
}
