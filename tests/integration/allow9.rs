//! The allow path made cheaper (issue 9, section 6) without losing what it guarantees: the
//! checkpoint's two slots (rewritten in place, one `fdatasync`; both checked by an audit), and
//! signals handled without a thread (the child still starts with gate's own signal mask).

use crate::common;

use std::process::Command;

use common::{Gate, Ran};
use serde_json::Value;

const SLOT: usize = gate::audit::log::CHECKPOINT_SLOT;

fn run(g: &Gate, args: &[&str]) -> Ran {
    let out = g.command().args(args).output().expect("spawn gate");
    Ran {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify(g: &Gate) -> (i32, Value) {
    let vkey = run(g, &["log", "key"]).stdout.trim().to_owned();
    let log = g.path("audit.jsonl");
    let r = run(
        g,
        &[
            "log",
            "verify",
            log.to_str().unwrap(),
            "--key",
            &vkey,
            "--json",
        ],
    );
    (
        r.status,
        serde_json::from_str(&r.stdout).expect("verify --json"),
    )
}

/// The slot (0 or 1) holding the note with the larger count.
fn newest_slot(cp: &[u8]) -> usize {
    let count = |s: &[u8]| -> u64 {
        let n = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
        std::str::from_utf8(n)
            .ok()
            .and_then(|t| t.lines().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    usize::from(count(&cp[SLOT..]) > count(&cp[..SLOT]))
}

#[test]
fn a_forged_older_checkpoint_slot_is_reported_by_verify() {
    let g = Gate::new();
    for _ in 0..2 {
        run(&g, &["--", "true"]).status(0);
    }
    assert_eq!(verify(&g).0, 0, "intact first");
    let cp = g.path("audit.jsonl.checkpoint");
    let mut bytes = std::fs::read(&cp).unwrap();
    assert_eq!(bytes.len(), 2 * SLOT);
    // Change the older slot's count: its signature no longer holds.
    let older = 1 - newest_slot(&bytes);
    let slot = &mut bytes[older * SLOT..(older + 1) * SLOT];
    let nl = slot.iter().position(|&b| b == b'\n').unwrap();
    slot[nl + 1] = if slot[nl + 1] == b'9' { b'8' } else { b'9' };
    std::fs::write(&cp, &bytes).unwrap();
    let (status, report) = verify(&g);
    assert_eq!(status, 1, "{report:#}");
    assert!(report.to_string().contains("bad_signature"), "{report:#}");
}

#[test]
fn tearing_the_newest_slot_cannot_roll_the_checkpoint_back_over_a_cut_log() {
    let g = Gate::new();
    for _ in 0..3 {
        run(&g, &["--", "true"]).status(0);
    }
    let log = g.path("audit.jsonl");
    let cp = g.path("audit.jsonl.checkpoint");
    let mut bytes = std::fs::read(&cp).unwrap();
    // Cut the last record (the one only the newest slot covers) and spoil that slot, so the
    // older slot would match the cut log exactly.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&log, format!("{}\n", lines[..lines.len() - 1].join("\n"))).unwrap();
    let newest = newest_slot(&bytes);
    bytes[newest * SLOT + 60..newest * SLOT + 80].fill(b'A');
    std::fs::write(&cp, &bytes).unwrap();
    let (status, report) = verify(&g);
    assert_eq!(status, 1, "{report:#}");
}

#[test]
fn the_command_starts_with_gates_own_signal_mask() {
    let g = Gate::new();
    let r = run(&g, &["--", "grep", "SigBlk", "/proc/self/status"]);
    r.status(0);
    assert_eq!(
        r.stdout.split_whitespace().nth(1),
        Some("0000000000000000"),
        "{}",
        r.stdout
    );
    // And a command that signals itself dies of it (a blocked mask would let it live).
    run(&g, &["--", "sh", "-c", "kill -TERM $$"]).status(143);
}

#[test]
fn an_allowed_run_syncs_each_append_twice_and_starts_no_thread() {
    let g = Gate::new();
    run(&g, &["--", "true"]).status(0);
    let trace = g.path("trace");
    let c = g.command();
    let mut s = Command::new("strace");
    s.args([
        "-f",
        "-qq",
        "-e",
        "trace=fsync,fdatasync,rename,clone,clone3",
        "-o",
    ])
    .arg(&trace)
    .arg(c.get_program())
    .args(["--", "true"])
    .env_clear()
    .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
    .current_dir(g.path(""));
    let out = s.output().expect("strace (apt-get install -y strace)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(&trace).unwrap();
    let calls = |name: &str| {
        t.lines()
            .filter(|l| l.contains(&format!(" {name}(")))
            .count()
    };
    // Decision and result: the log's fdatasync and the slot's fdatasync each; no temp file
    // fsync, no rename, no directory fsync.
    assert_eq!(calls("fdatasync"), 4, "{t}");
    assert_eq!(calls("fsync"), 0, "{t}");
    assert_eq!(calls("rename"), 0, "{t}");
    // The only clone is the child's (vfork), not a thread.
    let threads = t
        .lines()
        .filter(|l| l.contains("clone") && l.contains("CLONE_THREAD"))
        .count();
    assert_eq!(threads, 0, "{t}");
    assert_eq!(g.records().len(), 5);
    assert_eq!(verify(&g).0, 0);
}

#[test]
fn a_log_directory_made_on_the_first_run_is_on_disk_before_the_command_starts() {
    let g = Gate::new();
    let log = g.path("new/deeper/audit.jsonl");
    let trace = g.path("trace");
    let c = g.command();
    let mut s = Command::new("strace");
    s.args(["-f", "-qq", "-y", "-e", "trace=fsync,execve", "-o"])
        .arg(&trace)
        .arg(c.get_program())
        .args(["--", "true"])
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("GATE_LOG", &log)
        .current_dir(g.path(""));
    let out = s.output().expect("strace (apt-get install -y strace)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    let child = lines
        .iter()
        .rposition(|l| l.contains("execve(") && l.contains("true"))
        .unwrap_or_else(|| panic!("no execve of the command in\n{t}"));
    // Each new directory's entry is synced in its parent: the temp dir for `new`, `new` for
    // `deeper`; and `deeper` itself, where the log and its checkpoint were created.
    for dir in [g.path(""), g.path("new"), g.path("new/deeper")] {
        let fd = format!("<{}>)", dir.canonicalize().unwrap().display());
        assert!(
            lines[..child]
                .iter()
                .any(|l| l.contains("fsync(") && l.contains(&fd)),
            "no fsync of {} before the command started:\n{t}",
            dir.display()
        );
    }
    assert!(log.exists());
}
