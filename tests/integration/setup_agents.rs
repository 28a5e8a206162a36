//! `gate setup claude-code|codex|gemini|cursor` (issue 13 §2): the settings that install the
//! hook — this gate binary's absolute path, an explicit timeout — written idempotently, keeping
//! the user's other settings and hooks, atomically and with the file's mode; a file it cannot
//! parse is left alone with the error. And what it writes works: the command it installs,
//! run the way the agent runs it, answers.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{Checked, Gate, Ran};
use serde_json::Value;

fn run(g: &Gate, args: &[&str]) -> Checked {
    let mut c = g.command();
    c.args(args);
    Checked::new(Ran::of(c))
}

const AGENTS: [(&str, &str); 4] = [
    ("claude-code", ".claude/settings.json"),
    ("codex", ".codex/hooks.json"),
    ("gemini", ".gemini/settings.json"),
    ("cursor", ".cursor/hooks.json"),
];

#[test]
fn setup_keeps_other_settings_is_idempotent_and_keeps_the_mode() {
    for (agent, rel) in AGENTS {
        let g = Gate::new();
        let file = g.path("home").join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mine = r#"{"theme": "dark", "hooks": {"PreToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "my-formatter"}]}]}}"#;
        std::fs::write(&file, mine).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        run(&g, &["setup", agent]).stderr_contains("gate hook");
        let first = std::fs::read_to_string(&file).unwrap();
        let v: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(v["theme"], "dark", "{agent}: {first}");
        assert!(first.contains("my-formatter"), "{agent}: {first}");
        assert!(
            first.contains(common::bin()),
            "{agent}: the absolute path: {first}"
        );
        assert!(
            first.contains("\"timeout\""),
            "{agent}: an explicit timeout: {first}"
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{agent}");
        run(&g, &["setup", agent]).stderr_contains("nothing changed");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), first, "{agent}");
    }
}

#[test]
fn a_file_it_cannot_parse_is_left_alone_with_the_place() {
    for (agent, rel) in AGENTS {
        let g = Gate::new();
        let file = g.path("home").join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let broken = "{\n  \"theme\": \"dark\",\n  oops\n}\n";
        std::fs::write(&file, broken).unwrap();
        run(&g, &["setup", agent])
            .status(78)
            .stderr_contains(&format!("{}:3:", file.display()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), broken, "{agent}");
        std::fs::write(&file, "{\"hooks\": []}").unwrap();
        run(&g, &["setup", agent])
            .status(78)
            .stderr_contains("`hooks` is not a JSON object");
    }
}

#[test]
fn print_changes_nothing_and_project_writes_in_the_project() {
    let g = Gate::new();
    let r = run(&g, &["setup", "cursor", "--print"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["hooks"]["beforeShellExecution"][0]["failClosed"], true);
    assert!(!g.path("home/.cursor/hooks.json").exists());
    run(&g, &["setup", "claude-code", "--project"]).stderr_contains("gate hook");
    assert!(g.path(".claude/settings.json").exists());
    assert!(!g.path("home/.claude/settings.json").exists());
}

/// What setup writes is what the agent runs: the installed command, through `sh -c` as the
/// agents run it, answers the hook.
#[test]
fn the_installed_command_answers() {
    let g = Gate::new().policy(
        "version: 1\nrules:\n  - name: no-rm\n    match: { program: rm }\n    decision: deny\n",
    );
    run(&g, &["setup", "claude-code"]).any_stderr();
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(g.path("home/.claude/settings.json")).unwrap(),
    )
    .unwrap();
    let cmd = v["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = g.command();
    let mut c2 = std::process::Command::new("sh");
    c2.args(["-c", &cmd])
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))));
    c2.current_dir(g.path(""));
    let input = r#"{"session_id":"s","cwd":"/tmp","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"rm -rf /"},"tool_use_id":"t"}"#;
    c2.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c2.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"permissionDecision\":\"deny\""),
        "{stdout}"
    );
}
