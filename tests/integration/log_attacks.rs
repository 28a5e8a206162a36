//! Attacks on the local audit log's files (DESIGN §8, "No way around a human" §6), each pinned
//! against the real binary: links planted under the names gate writes beside the log, a log
//! reached through a link or kept where others can write, a log deleted or replaced while its
//! command runs, a checkpoint that cannot be written (a full disk), and a log that becomes
//! unwritable while the command runs. Disk-full faults come from a small tmpfs mounted in a
//! private mount namespace (the tests run as root, as CI does): injected, never waited for.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Checked, Gate, Ran};
use serde_json::Value;

const VICTIM: &str = "the victim's own private file\n";

fn ran(c: &mut Command) -> Ran {
    let out = c.output().expect("spawn");
    Ran {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `gate ARGS`, checked like [`Gate::run`]: exit 0 and a silent stderr unless the test says
/// otherwise.
fn run(g: &Gate, args: &[&str]) -> Checked {
    Checked::new(ran(g.command().args(args)))
}

/// A 0600 file outside the log's directory that the attacker wants gate to overwrite.
fn victim(g: &Gate) -> PathBuf {
    let p = g.write("victim/secret", VICTIM);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[track_caller]
fn victim_untouched(p: &Path) {
    assert_eq!(
        std::fs::read_to_string(p).unwrap(),
        VICTIM,
        "the victim's file was written through a planted link"
    );
    assert_eq!(std::fs::metadata(p).unwrap().mode() & 0o777, 0o600);
}

/// The pids the next processes are likely to get (the kernel hands them out in order).
fn next_pids(n: u32) -> std::ops::Range<u32> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    last + 1..last + 1 + n
}

/// Plants `<base>.<pid>` links to `target` for the coming pids (the old, predictable temp names).
fn plant(base: &Path, target: &Path, pids: std::ops::Range<u32>) {
    for pid in pids {
        let link = PathBuf::from(format!("{}.{pid}", base.display()));
        let _ = std::os::unix::fs::symlink(target, link);
    }
}

/// `gate log verify --json --key <host key>` on `log`.
fn verify(g: &Gate, log: &Path) -> (i32, Value) {
    let vkey = run(g, &["log", "key"]).status(0).stdout.trim().to_owned();
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
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    // The report says it all: nothing on stderr; the caller checks the status.
    r.stderr("");
    (r.take_status(), v)
}

fn codes(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Links planted beside the log.

#[test]
fn planted_checkpoint_temp_links_in_a_world_writable_log_directory_are_refused() {
    // Another user planted `audit.jsonl.checkpoint.tmp.<pid>` links in a shared 0777 (or
    // sticky 1777) log directory; the victim's next run must not write through them, and
    // gate refuses the directory (78) before anything runs.
    for mode in [0o777, 0o1777, 0o770] {
        let g = Gate::new();
        let target = victim(&g);
        let shared = g.path("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
        let log = shared.join("audit.jsonl");
        plant(
            &shared.join("audit.jsonl.checkpoint.tmp"),
            &target,
            next_pids(2000),
        );
        let g = g.env("GATE_LOG", log.to_str().unwrap());
        let r = run(&g, &["--", "touch", "marker"]);
        r.status(78)
            .stderr_contains("writable by other users")
            .stderr_contains(shared.to_str().unwrap())
            .stderr_contains("hint:")
            .stderr_contains("chmod go-w");
        assert!(!g.path("marker").exists(), "mode {mode:o}: the command ran");
        assert!(!log.exists(), "mode {mode:o}: a log was started there");
        victim_untouched(&target);
    }
}

#[test]
fn links_planted_at_the_predictable_side_file_names_are_never_written_through() {
    // Even where the directory is private (so no other user could plant them), nothing gate
    // writes beside the log goes through a name that can be guessed: links at the old
    // `<file>.tmp.<pid>` names for the checkpoint, the new signing key and the sink cursor,
    // and at the sink's lock and down marker, all stay untouched.
    let g = Gate::new();
    let target = victim(&g);
    // A file sink that cannot be written, so delivery fails and the down marker is touched.
    let sink_path = g.path("not-a-dir").join("sink.jsonl");
    g.write("not-a-dir", "a file, so the sink fails\n");
    let g = g.policy(&format!(
        "version: 1\naudit:\n  sinks:\n    - {{ kind: file, path: {} }}\n",
        sink_path.display()
    ));
    let spec = gate::audit::sinks::SinkSpec::File {
        path: sink_path.clone(),
    };
    let sinks = g.path("audit.jsonl.sinks");
    std::fs::create_dir(&sinks).unwrap();
    std::fs::set_permissions(&sinks, std::fs::Permissions::from_mode(0o700)).unwrap();
    let name = spec.name();
    let pids = next_pids(3000);
    plant(&g.path("audit.jsonl.checkpoint.tmp"), &target, pids.clone());
    std::fs::create_dir_all(g.path("state/gate")).unwrap();
    plant(&g.path("state/gate/signing.key.tmp"), &target, pids.clone());
    plant(&sinks.join(format!("{name}.tmp")), &target, pids);
    std::os::unix::fs::symlink(&target, sinks.join(format!("{name}.down"))).unwrap();
    // The checkpoint's own name as a link: replaced by rename, never followed.
    std::os::unix::fs::symlink(&target, g.path("audit.jsonl.checkpoint")).unwrap();

    for _ in 0..2 {
        let r = run(&g, &["--", "true"]);
        r.status(0).stderr_contains("not yet delivered");
    }
    victim_untouched(&target);
    let cp = std::fs::symlink_metadata(g.path("audit.jsonl.checkpoint")).unwrap();
    assert!(
        cp.file_type().is_file(),
        "the checkpoint is a file of its own"
    );
    let (status, report) = verify(&g, &g.path("audit.jsonl"));
    assert_eq!(status, 0, "{report:#}");
    assert_eq!(report["checkpoint"]["count"], 5);
}

#[test]
fn a_symlinked_log_is_refused_and_nothing_runs() {
    let g = Gate::new();
    let target = victim(&g);
    // A link to an existing file, and a dangling link (which O_CREAT would otherwise follow
    // to create its target).
    let dangling = g.path("victim/new-file");
    for (link, to) in [("link.jsonl", &target), ("dangling.jsonl", &dangling)] {
        let lp = g.path(link);
        std::os::unix::fs::symlink(to, &lp).unwrap();
        let g2 = Gate::new().env("GATE_LOG", lp.to_str().unwrap());
        let r = run(&g2, &["--", "touch", g2.path("marker").to_str().unwrap()]);
        r.status(78)
            .stderr_contains("symbolic link")
            .stderr_contains(lp.to_str().unwrap())
            .stderr_contains("hint:");
        assert!(!g2.path("marker").exists(), "{link}: the command ran");
    }
    victim_untouched(&target);
    assert!(
        !dangling.exists(),
        "a file was created through the dangling link"
    );
}

#[test]
fn a_log_directory_that_is_not_private_is_refused() {
    // Group-writable, owned by another user, or below a world-writable directory without the
    // sticky bit: each could swap the log under gate.
    /// Spoils (parent, log directory) one way.
    type Spoil = fn(&Path, &Path);
    let cases: [(&str, Spoil); 3] = [
        ("group-writable", |_, d| {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o770)).unwrap()
        }),
        ("owned by nobody", |_, d| {
            std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap()
        }),
        ("under an open parent", |parent, _| {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o777)).unwrap()
        }),
    ];
    for (what, spoil) in cases {
        let g = Gate::new();
        let parent = g.path("p");
        let dir = parent.join("logs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        spoil(&parent, &dir);
        let log = dir.join("audit.jsonl");
        let g = g.env("GATE_LOG", log.to_str().unwrap());
        let r = run(&g, &["--", "touch", "marker"]);
        r.status(78).stderr_contains("refusing the audit log");
        assert!(!g.path("marker").exists(), "{what}: the command ran");
        assert!(!log.exists(), "{what}: a log was started");
    }
    // The same layout, private, works: the refusal is about the permissions.
    let g = Gate::new();
    let dir = g.path("p/logs");
    std::fs::create_dir_all(&dir).unwrap();
    let g = g.env("GATE_LOG", dir.join("audit.jsonl").to_str().unwrap());
    run(&g, &["--", "true"]).status(0);
}

#[test]
fn a_fifo_in_place_of_the_checkpoint_does_not_hang_the_append() {
    // Read under the log's lock, a FIFO would block every gate on the host; it is not a
    // checkpoint, and the append replaces it with one.
    let g = Gate::new();
    run(&g, &["--", "true"]).status(0);
    let cp = g.path("audit.jsonl.checkpoint");
    std::fs::remove_file(&cp).unwrap();
    ran(Command::new("mkfifo").arg(&cp)).status(0);
    let mut child = g
        .command()
        .args(["--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("gate hung on a FIFO checkpoint");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(std::fs::symlink_metadata(&cp).unwrap().is_file());
}

#[test]
fn a_signing_key_directory_others_can_write_is_refused() {
    // Whoever can write there can plant the key gate is about to make, or swap it for theirs.
    let g = Gate::new();
    let keys = g.path("state/gate");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o1777)).unwrap();
    run(&g, &["--", "touch", "marker"])
        .status(78)
        .stderr_contains("signing key")
        .stderr_contains("writable by other users");
    assert!(!g.path("marker").exists());
    assert!(!keys.join("signing.key").exists());
}

#[test]
fn a_log_file_others_can_write_is_refused() {
    let g = Gate::new();
    run(&g, &["--", "true"]).status(0);
    let log = g.path("audit.jsonl");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = std::fs::read(&log).unwrap();
    run(&g, &["--", "touch", "marker"])
        .status(78)
        .stderr_contains("writable by other users");
    assert!(!g.path("marker").exists());
    assert_eq!(std::fs::read(&log).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// (c) The log deleted or replaced while its command runs.

#[test]
fn a_command_that_deletes_its_log_gets_no_new_chain_and_the_lost_result_is_reported() {
    let g = Gate::new();
    run(&g, &["--", "true"]).status(0);
    let log = g.path("audit.jsonl");
    let r = run(
        &g,
        &[
            "--",
            "sh",
            "-c",
            "rm -f \"$0\"; exit 4",
            log.to_str().unwrap(),
        ],
    );
    // The command's own status, and a loud error naming the log and what happened.
    r.status(4)
        .stderr_contains("the command ran and exited with status 4")
        .stderr_contains("its result could not be recorded")
        .stderr_contains(log.to_str().unwrap())
        .stderr_contains("deleted");
    assert!(
        !log.exists(),
        "a new log (genesis + orphan result) was started"
    );
    // The next run does not quietly start a new chain either: the checkpoint says a log with
    // records was here.
    run(&g, &["--", "touch", "marker"])
        .status(78)
        .stderr_contains("checkpoint")
        .stderr_contains("held 4 records")
        .stderr_contains("hint:");
    assert!(!g.path("marker").exists(), "ran after its log was deleted");
    assert!(
        std::fs::read(&log).map_or(true, |b| b.is_empty()),
        "a new chain was started"
    );
}

#[test]
fn a_log_rotated_with_its_checkpoint_starts_a_new_chain_and_both_verify() {
    // The way out the refusal's hint names: move the log and its checkpoint aside together.
    let g = Gate::new();
    run(&g, &["--", "true"]).status(0);
    std::fs::rename(g.path("audit.jsonl"), g.path("audit.jsonl.1")).unwrap();
    std::fs::rename(
        g.path("audit.jsonl.checkpoint"),
        g.path("audit.jsonl.1.checkpoint"),
    )
    .unwrap();
    run(&g, &["--", "touch", "marker"]).status(0);
    assert!(g.path("marker").exists());
    for log in ["audit.jsonl", "audit.jsonl.1"] {
        let (status, report) = verify(&g, &g.path(log));
        assert_eq!(status, 0, "{log}: {report:#}");
        assert_eq!(report["records"], 3, "{log}");
    }
}

#[test]
fn a_command_that_replaces_or_rewrites_its_log_gets_no_result_in_the_other_log() {
    // Replaced by a copy (another file at the path), and rewritten in place with its first
    // record only: in both the decision is no longer where it was written.
    let scripts = [
        (
            "replaced by a copy",
            "cp \"$0\" \"$0.x\" && mv \"$0.x\" \"$0\"; exit 5",
        ),
        (
            "cut in place",
            "head -n 1 \"$0\" > \"$0.x\" && cat \"$0.x\" > \"$0\"; exit 5",
        ),
    ];
    for (what, script) in scripts {
        let g = Gate::new();
        run(&g, &["--", "true"]).status(0);
        let log = g.path("audit.jsonl");
        let r = run(&g, &["--", "sh", "-c", script, log.to_str().unwrap()]);
        r.status(5)
            .stderr_contains("its result could not be recorded")
            .stderr_contains(log.to_str().unwrap());
        let recs = g.records();
        assert!(
            recs.iter().all(|r| r["kind"] != "result" || r["seq"] == 2),
            "{what}: a result went into the other log: {recs:#?}"
        );
    }
}

#[test]
fn a_fresh_genesis_followed_by_an_orphan_result_is_a_violation() {
    // What gate used to write after its log was deleted mid-run: a new chain, signed by the
    // host key, whose first record after the genesis is a result with no decision.
    let g = Gate::new();
    let log = g.path("fresh.jsonl");
    let key = g.path("state/gate/signing.key");
    gate::audit::AuditLog::new(&log)
        .with_key(&key)
        .append(vec![gate::audit::Body::Result {
            request_id: "01a21800-0000-7000-8000-000000000001".into(),
            result: gate::audit::ResultInfo {
                exit_code: Some(0),
                signal: None,
                duration_ms: 3,
                error: None,
            },
        }])
        .unwrap();
    let (status, report) = verify(&g, &log);
    assert_eq!(status, 1, "{report:#}");
    assert_eq!(codes(&report), ["orphan_result"], "{report:#}");
    assert_eq!(report["first_bad_seq"], 1);
    let vkey = run(&g, &["log", "key"]).stdout.trim().to_owned();
    run(
        &g,
        &["log", "verify", log.to_str().unwrap(), "--key", &vkey],
    )
    .status(1)
    .stdout_has("seq 1 (line 2): orphan_result");
}

// ---------------------------------------------------------------------------------------------
// (d) and (e): faults on a small tmpfs of its own.

/// A tmpfs mounted in a private mount namespace held open by a helper process; commands run
/// inside it through `nsenter`. Unmounted with the namespace when dropped.
struct Tmpfs {
    holder: Child,
}

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o \"$0\" gate-test \"$1\" && chmod 700 \"$1\" && echo ready && exec cat")
            .arg(options)
            .arg(at)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (the tests run as root, as CI does)");
        let mut line = String::new();
        BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "mounting a tmpfs at {}", at.display());
        Tmpfs { holder }
    }

    /// `c` run inside the namespace that has the tmpfs.
    fn inside(&self, c: &Command) -> Command {
        let mut w = Command::new("nsenter");
        w.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()));
        if let Some(d) = c.get_current_dir() {
            w.arg(format!("--wd={}", d.display()));
        }
        w.arg("--").arg(c.get_program()).args(c.get_args());
        w.env_clear();
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                w.env(k, v);
            }
        }
        w
    }

    fn gate(&self, g: &Gate, args: &[&str]) -> Ran {
        let mut c = g.command();
        c.args(args);
        ran(&mut self.inside(&c))
    }

    fn sh(&self, script: &str) -> Ran {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        ran(&mut self.inside(&c))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn a_decision_whose_checkpoint_cannot_be_written_is_taken_back_and_nothing_runs() {
    // The disk fills up between the decision line and its checkpoint: here, a tmpfs with no
    // inodes left, so the line fits but the checkpoint's new file cannot be made (ENOSPC).
    let g = Gate::new();
    let disk = g.path("disk");
    let fs = Tmpfs::mount(&disk, "size=1m,nr_inodes=64");
    let log = disk.join("audit.jsonl");
    let g = g.env("GATE_LOG", log.to_str().unwrap());
    fs.gate(&g, &["--", "true"]).status(0);
    let before = fs.sh(&format!("cat {}", log.display())).stdout;
    assert_eq!(before.lines().count(), 3);
    // The checkpoint's two slots are rewritten in place and need no new space; a checkpoint
    // left as one plain note (by an older gate) must be replaced by a new file. Put one there
    // (in place, before the inodes run out).
    let cp = disk.join("audit.jsonl.checkpoint");
    let slots = fs.sh(&format!("cat {}", cp.display())).stdout;
    let note = gate::audit::log::pick_checkpoint(slots.as_bytes(), None).to_vec();
    std::fs::write(g.path("note"), &note).unwrap();
    fs.sh(&format!("cp {} {}", g.path("note").display(), cp.display()));
    // Use up every inode left.
    fs.sh(&format!(
        "i=0; while touch {0}/f$i 2>/dev/null; do i=$((i+1)); done",
        disk.display()
    ));
    let marker = g.path("marker");
    let r = fs.gate(&g, &["--", "touch", marker.to_str().unwrap()]);
    r.status(78)
        .stderr_contains("cannot sign the checkpoint")
        .stderr_contains("taken back out");
    assert!(!marker.exists(), "the command ran");
    // The log is exactly what it was: no record claims `run: true` for the command.
    let after = fs.sh(&format!("cat {}", log.display())).stdout;
    assert_eq!(
        after, before,
        "the decision line stayed without its checkpoint"
    );
    // Room again: the log verifies intact under the host key, and appends go on.
    fs.sh(&format!("rm -f {}/f*", disk.display()));
    fs.gate(&g, &["--", "true"]).status(0);
    let vkey = run(&g, &["log", "key"]).stdout.trim().to_owned();
    let v = fs.gate(
        &g,
        &[
            "log",
            "verify",
            log.to_str().unwrap(),
            "--key",
            &vkey,
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(v.status, 0, "{report:#}");
    assert_eq!(report["records"], 5);
}

#[test]
fn a_decision_whose_checkpoint_rename_fails_is_taken_back() {
    // The same fault without a full disk: the checkpoint's name is taken by a directory.
    let g = Gate::new();
    run(&g, &["--", "true"]).status(0);
    let log = g.path("audit.jsonl");
    let before = std::fs::read(&log).unwrap();
    std::fs::remove_file(g.path("audit.jsonl.checkpoint")).unwrap();
    std::fs::create_dir(g.path("audit.jsonl.checkpoint")).unwrap();
    run(&g, &["--", "touch", "marker"])
        .status(78)
        .stderr_contains("taken back out");
    assert!(!g.path("marker").exists());
    assert_eq!(std::fs::read(&log).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(g.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn a_command_that_fills_the_disk_keeps_its_exit_status_and_the_lost_result_is_reported() {
    let g = Gate::new();
    let disk = g.path("disk");
    let fs = Tmpfs::mount(&disk, "size=1m");
    let log = disk.join("audit.jsonl");
    let g = g.env("GATE_LOG", log.to_str().unwrap());
    fs.gate(&g, &["--", "true"]).status(0);
    // The checkpoint is rewritten in place and needs no new space, so a result is lost only
    // when its line does not fit in the log's last page (tmpfs: 4096 bytes). The same command
    // run once without filling gives the decision's and the result's lengths; `true` runs then
    // move the end of the log until the next decision leaves less room than a result needs.
    let fill = disk.join("fill");
    let trigger = g.path("trigger");
    let script = format!(
        "if test -e {}; then cat /dev/zero > {} 2>/dev/null; fi; exit 3",
        trigger.display(),
        fill.display()
    );
    let text = || fs.sh(&format!("cat {}", log.display())).stdout;
    fs.gate(&g, &["--", "sh", "-c", &script]).status(3);
    let t = text();
    let lens: Vec<usize> = t.lines().map(|l| l.len() + 1).collect();
    let (decision, result) = (lens[lens.len() - 2], lens[lens.len() - 1]);
    let mut tries = 0;
    loop {
        let end = (text().len() + decision) % 4096;
        if end > 4096 - result + 8 {
            break;
        }
        tries += 1;
        assert!(
            tries < 300,
            "could not place the decision near a page's end"
        );
        fs.gate(&g, &["--", "true"]).status(0);
    }
    std::fs::write(&trigger, "").unwrap();
    let r = fs.gate(&g, &["--", "sh", "-c", &script]);
    r.status(3)
        .stderr_contains("the command ran and exited with status 3")
        .stderr_contains("its result could not be recorded")
        .stderr_contains(log.to_str().unwrap());
    let records = text().lines().count();
    // The decision stands without a result, which verify names; nothing else is wrong.
    fs.sh(&format!("rm -f {}", fill.display()));
    let vkey = run(&g, &["log", "key"]).stdout.trim().to_owned();
    let v = fs.gate(
        &g,
        &[
            "log",
            "verify",
            log.to_str().unwrap(),
            "--key",
            &vkey,
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(v.status, 0, "{report:#}");
    assert_eq!(report["records"], records, "{report:#}");
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no result record")),
        "{report:#}"
    );
}

#[test]
fn a_command_that_replaces_its_log_with_a_directory_keeps_its_exit_status() {
    let g = Gate::new();
    let log = g.path("audit.jsonl");
    let script = "rm -f \"$0\" && mkdir \"$0\"; exit 3";
    let r = run(&g, &["--", "sh", "-c", script, log.to_str().unwrap()]);
    r.status(3)
        .stderr_contains("the command ran and exited with status 3")
        .stderr_contains("its result could not be recorded")
        .stderr_contains(log.to_str().unwrap());
    assert!(log.is_dir());
}
