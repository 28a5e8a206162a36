//! Attacks on the `local` approval backend by the requester itself (DESIGN §7 `local`): an AI
//! agent running as its own OS user, with the gate binary, its environment and all of its own
//! files. The requester here is the throw-away user `gt-agent`; approvers are `gt-alice` and
//! `gt-bob`; all of them run the real binary through `setpriv`, so the kernel — not gate — says
//! who wrote which file. The spool is what an admin makes: root-owned, mode 1777.
//!
//! Needs root (CI runs as root), like local_approval.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::process::{Watched, spawn, spawn_with_input};
use common::users::{self, User};
use common::{Gate, Ran};
use serde_json::Value;

const POLICY: &str = r#"version: 1
groups:
  sre: [gt-alice, gt-bob]
rules:
  - name: danger
    match: { program: danger }
    decision: approve
    approval: { approvers: [sre], min_approvals: 2, timeout: 60s }
  - name: echo-one
    match: { program: echo }
    decision: approve
    approval: { approvers: [sre], min_approvals: 1, timeout: 60s }
  - name: kubectl-apply
    match: { program: kubectl, args: [apply] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 1, timeout: 60s }
"#;

const USERS: [&str; 3] = ["gt-agent", "gt-alice", "gt-bob"];

// ---------------------------------------------------------------------------------------------
// Users, the binary, and one test's world.

fn users() -> &'static BTreeMap<&'static str, User> {
    static MAP: OnceLock<BTreeMap<&'static str, User>> = OnceLock::new();
    MAP.get_or_init(|| users::ensure(&USERS, "local_attacks"))
}

fn user(name: &str) -> User {
    users()[name]
}

fn chown(path: &Path, name: &str) {
    let u = user(name);
    std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).unwrap();
}

fn mode(path: &Path, m: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
}

struct World {
    g: Gate,
    bin: PathBuf,
    spool: PathBuf,
    /// The requester's own directory: its cwd, state and audit log.
    agent: PathBuf,
    /// Created by the `danger` program when it runs.
    marker: PathBuf,
}

fn world() -> World {
    users();
    let g = Gate::new().policy(POLICY);
    let dir = g.dir.path().to_path_buf();
    mode(&dir, 0o755);
    mode(&g.path("policy.yaml"), 0o644);
    let bin_dir = dir.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    mode(&bin_dir, 0o755);
    let bin = users::bin_for_others(&bin_dir);
    // The privileged commands: each leaves a mark when it runs.
    let marker = dir.join("RAN");
    for prog in ["danger", "kubectl"] {
        let p = bin_dir.join(prog);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho \"$@\" >> '{}'\n", marker.display()),
        )
        .unwrap();
        mode(&p, 0o755);
    }
    // The marker must be writable by the agent: a file it may append to, created now.
    std::fs::write(&marker, "").unwrap();
    chown(&marker, "gt-agent");
    mode(&marker, 0o644);
    let spool = dir.join("spool");
    // The harness may have made it already (a shared spool, 1777): made or not, set below.
    let _ = std::fs::create_dir(&spool);
    mode(&spool, 0o1777);
    let agent = dir.join("agent");
    std::fs::create_dir(&agent).unwrap();
    chown(&agent, "gt-agent");
    mode(&agent, 0o700);
    World {
        g,
        bin,
        spool,
        agent,
        marker,
    }
}

impl World {
    fn bin_dir(&self) -> PathBuf {
        self.g.path("bin")
    }

    /// `gate ARGS` as `name`, with only the environment that user would have.
    fn command_as(&self, name: &str, args: &[&str]) -> Command {
        self.command_in(name, None, args)
    }

    /// Like [`World::command_as`], with `group` as the one supplementary group.
    fn command_in(&self, name: &str, group: Option<u32>, args: &[&str]) -> Command {
        let u = user(name);
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid));
        match group {
            Some(g) => c.arg(format!("--groups={g}")),
            None => c.arg("--clear-groups"),
        };
        c.arg("--")
            .arg(&self.bin)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir().display()),
            )
            .env("GATE_SPOOL", &self.spool)
            .env("GATE_POLICY", self.g.path("policy.yaml"));
        if name == "gt-agent" {
            c.env("HOME", &self.agent)
                .env("XDG_STATE_HOME", self.agent.join("state"))
                .env("XDG_CONFIG_HOME", self.agent.join("config"))
                .env("GATE_LOG", self.agent.join("audit.jsonl"))
                .current_dir(&self.agent);
        } else {
            c.env("HOME", "/nonexistent").current_dir(self.g.dir.path());
        }
        c
    }

    fn as_user(&self, name: &str, args: &[&str]) -> Ran {
        spawn(self.command_as(name, args)).finish(Duration::from_secs(30))
    }

    /// The requester starts `gate ARGS` and waits for a decision, in the background.
    fn request(&self, args: &[&str]) -> Watched {
        spawn(self.command_as("gt-agent", args))
    }

    /// A shell command run as `name` (the attacker's own tools), with `args` as `$1...`.
    fn sh_as(&self, name: &str, script: &str, args: &[&str]) -> std::process::Output {
        let u = user(name);
        Command::new("setpriv")
            .arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .args(["--clear-groups", "--", "sh", "-c", script, "sh"])
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    }

    /// Waits until approvers see the requester's request (bounded).
    #[track_caller]
    fn wait_pending(&self, waiter: &mut Watched) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ran = self.as_user("gt-alice", &["requests", "--json"]);
            ran.status(0);
            if let Some(l) = ran.stdout.lines().next() {
                return serde_json::from_str(l).expect("a JSON object per line");
            }
            if !waiter.running() {
                waiter.collect(Duration::from_secs(1));
                panic!(
                    "gate ended before its request showed\n{}",
                    waiter.stderr_text()
                );
            }
            assert!(Instant::now() < deadline, "the request never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ran(&self) -> String {
        std::fs::read_to_string(&self.marker).unwrap()
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.agent.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[track_caller]
    fn decision_record(&self, id: &str) -> Value {
        self.records()
            .into_iter()
            .find(|r| r["kind"] == "decision" && r["request_id"] == id)
            .expect("a decision record")
    }
}

fn id_of(req: &Value) -> String {
    req["id"].as_str().unwrap().to_owned()
}

/// Everything under `dir`, as paths, for "nothing was written outside" checks.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// (a) The requester rewrites its own request file.

#[test]
fn rewritten_request_file_approves_nothing() {
    let w = world();
    let mut waiter = w.request(&[
        "--timeout",
        "6s",
        "--reason",
        "cleanup",
        "--",
        "danger",
        "--drop-production-database",
    ]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    // The agent owns its request file: it rewrites it to look harmless, with a new reason,
    // new rules and the digest that goes with the harmless command.
    let file = w.spool.join(&id).join("request.json");
    let mut forged: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    forged["request"]["command"]["argv"] = serde_json::json!(["benign", "hello"]);
    forged["request"]["reason"] = "say hello".into();
    forged["rules"] = serde_json::json!(["benign"]);
    forged["decision"] = "allow".into();
    let out = w.sh_as(
        "gt-agent",
        r#"printf %s "$1" > "$2""#,
        &[&forged.to_string(), file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Approvers see the rewritten request — and their own policy's disagreement with it...
    let shown = w.as_user("gt-alice", &["requests"]);
    shown
        .status(0)
        .stdout_has("benign hello")
        .stdout_has("your policy differs");
    // ...and approve what they see; `gate approve` shows what it signs as it signs it.
    w.as_user("gt-alice", &["approve", &id])
        .status(0)
        .stderr_contains("approving this request")
        .stderr_contains("benign hello");
    w.as_user("gt-bob", &["approve", &id]).status(0);

    waiter.stderr_until("approved a different command", Duration::from_secs(10));
    let ran = waiter.finish(Duration::from_secs(20));
    ran.status(75);
    assert_eq!(w.ran(), "", "the dangerous command ran");
    let d = w.decision_record(&id);
    assert_eq!(d["decision"]["outcome"], "timed_out");
    assert_eq!(d["decision"]["run"], false);
    assert!(
        d["decision"]["approvals"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "approvals of another command were recorded: {d}"
    );
    assert_eq!(
        d["request"]["command"]["argv"],
        serde_json::json!(["danger", "--drop-production-database"]),
        "the record holds what would have run"
    );
}

#[test]
fn payload_changed_after_submission_approves_nothing() {
    let w = world();
    // A payload the approvers can read, in a directory the agent controls.
    let work = w.g.path("work");
    std::fs::create_dir(&work).unwrap();
    chown(&work, "gt-agent");
    mode(&work, 0o755);
    let manifest = work.join("x.yaml");
    std::fs::write(&manifest, "kind: ConfigMap\n").unwrap();
    chown(&manifest, "gt-agent");
    mode(&manifest, 0o644);
    let mut c = w.command_as(
        "gt-agent",
        &["--timeout", "5s", "--", "kubectl", "apply", "-f", "x.yaml"],
    );
    c.current_dir(&work);
    let mut waiter = spawn(c);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    let claimed = req["command"]["payload"][0]["requester_sha256"].clone();
    assert!(claimed.is_string(), "{req}");

    // The agent swaps the manifest; its request file still claims the old hash.
    let out = w.sh_as(
        "gt-agent",
        r#"printf 'kind: ClusterRoleBinding\n' > "$1""#,
        &[manifest.to_str().unwrap()],
    );
    assert!(out.status.success());
    let seen = w.as_user("gt-alice", &["requests", "--json"]);
    let v: Value = serde_json::from_str(seen.stdout.lines().next().unwrap()).unwrap();
    assert_ne!(v["command"]["payload"][0]["sha256"], claimed, "{v}");
    w.as_user("gt-alice", &["approve", &id]).status(0);
    waiter.stderr_until("approved a different command", Duration::from_secs(10));
    waiter.finish(Duration::from_secs(20)).status(75);
    assert_eq!(w.ran(), "");
}

#[test]
fn a_payload_the_approver_cannot_read_is_not_approved() {
    let w = world();
    // The agent's own 0700 directory: approvers cannot see the manifest.
    let manifest = w.agent.join("x.yaml");
    std::fs::write(&manifest, "kind: ClusterRoleBinding\n").unwrap();
    chown(&manifest, "gt-agent");
    let mut waiter = w.request(&["--timeout", "30s", "--", "kubectl", "apply", "-f", "x.yaml"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    w.as_user("gt-alice", &["requests"])
        .status(0)
        .stdout_has("cannot read the payload file `x.yaml`");
    w.as_user("gt-alice", &["approve", &id])
        .status(77)
        .stderr_contains("cannot read the payload file `x.yaml`")
        .stderr_contains("cannot see what you would approve");
    assert!(waiter.running());
    // A denial needs no digest: it still ends the wait.
    w.as_user("gt-bob", &["deny", &id, "--reason", "show me the manifest"])
        .status(0);
    waiter
        .finish(Duration::from_secs(15))
        .status(77)
        .stderr_contains("show me the manifest");
    assert_eq!(w.ran(), "");
}

#[test]
fn an_approver_at_a_terminal_sees_what_it_signs_and_can_say_no() {
    // The request file can change between `gate requests` and `gate approve`: at a terminal,
    // `gate approve` shows what it is about to sign and signs only on `y`.
    let w = world();
    let mut waiter = w.request(&["--timeout", "30s", "--", "echo", "hi"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    let gate_cmd = w.command_as("gt-alice", &["approve", &id]);
    let line = std::iter::once(gate_cmd.get_program())
        .chain(gate_cmd.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect::<Vec<_>>()
        .join(" ");
    let mine = w
        .spool
        .join(format!("{id}.{}.decision", user("gt-alice").uid));
    for (answer, signed) in [("n\n", false), ("y\n", true)] {
        // `script` gives gate a terminal; what it reads there is `answer`.
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .env_clear()
            .envs(gate_cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(w.g.dir.path());
        let watched = spawn_with_input(c, answer);
        let ran = watched.finish(Duration::from_secs(30));
        ran.stdout_has("exactly as shown above?")
            .stdout_has("echo hi");
        assert_eq!(mine.exists(), signed, "answer {answer:?}:\n{}", ran.stdout);
    }
    waiter.finish(Duration::from_secs(15)).status(0);
}

#[test]
fn a_program_hidden_by_the_requesters_own_redaction_is_not_approved_unseen() {
    let w = world();
    // The agent adds a policy file of its own whose `redact` pattern hides the program.
    let mine = w.agent.join("mine.yaml");
    std::fs::write(&mine, "version: 1\ncontext: { redact: ['danger'] }\n").unwrap();
    chown(&mine, "gt-agent");
    let mut c = w.command_as("gt-agent", &["--timeout", "30s", "--", "danger", "--now"]);
    c.env(
        "GATE_POLICY",
        format!("{}:{}", w.g.path("policy.yaml").display(), mine.display()),
    );
    let mut waiter = spawn(c);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    assert_eq!(req["command"]["argv"][0], "[REDACTED]", "{req}");
    w.as_user("gt-alice", &["requests"])
        .status(0)
        .stdout_has("you approve them unseen");
    w.as_user("gt-alice", &["approve", &id])
        .status(77)
        .stderr_contains("hidden by redaction");
    w.as_user("gt-bob", &["approve", &id]).status(77);
    assert!(waiter.running());
    w.as_user("gt-bob", &["deny", &id, "--reason", "show me"])
        .status(0);
    waiter.finish(Duration::from_secs(15)).status(77);
    assert_eq!(w.ran(), "");
}

// ---------------------------------------------------------------------------------------------
// (b) The requester removes a denial before the waiting gate reads it.

#[test]
fn requester_cannot_delete_a_denial_before_the_next_poll() {
    let w = world();
    let mut waiter = w.request(&["--timeout", "30s", "--", "echo", "hi"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    // Freeze the waiting gate between two polls: the window the attack needs, held open.
    waiter.signal(nix::sys::signal::Signal::SIGSTOP);
    w.as_user("gt-bob", &["deny", &id, "--reason", "not today"])
        .status(0);
    let bobs = w
        .spool
        .join(format!("{id}.{}.decision", user("gt-bob").uid));
    assert_eq!(std::fs::metadata(&bobs).unwrap().uid(), user("gt-bob").uid);
    for attack in [
        r#"rm -f "$1""#,
        r#"mv -f "$1" "$1.gone""#,
        r#"printf '{"decision":"approve"}' > "$1""#,
        r#"ln -sf /dev/null "$1""#,
    ] {
        let out = w.sh_as("gt-agent", attack, &[bobs.to_str().unwrap()]);
        assert!(
            bobs.is_file(),
            "the requester could `{attack}` bob's denial: {out:?}"
        );
    }
    assert!(
        std::fs::read_to_string(&bobs).unwrap().contains("\"deny\""),
        "bob's denial was rewritten"
    );
    w.as_user("gt-alice", &["approve", &id]).status(0);
    waiter.signal(nix::sys::signal::Signal::SIGCONT);

    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(77).stderr_contains("denied by gt-bob");
    assert_eq!(ran.stdout, "", "the denied command ran");
    let d = w.decision_record(&id);
    assert_eq!(d["decision"]["outcome"], "denied");
    assert_eq!(d["decision"]["denied_by"]["principal"], "gt-bob");
}

#[test]
fn a_denial_survives_the_requester_hiding_its_request_from_the_approvers_cleanup() {
    // Approvers' gates tidy away their own answers to requests that are gone. The requester
    // can make its request look gone (and freeze its own waiting gate meanwhile): that must
    // never take a denial with it.
    let w = world();
    let mut waiter = w.request(&["--timeout", "30s", "--", "echo", "hi"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    waiter.signal(nix::sys::signal::Signal::SIGSTOP);
    w.as_user("gt-bob", &["deny", &id, "--reason", "no"])
        .status(0);
    let entry = w.spool.join(&id);
    let hidden = w.spool.join(".hidden");
    let mv = |from: &Path, to: &Path| {
        let out = w.sh_as(
            "gt-agent",
            r#"mv "$1" "$2""#,
            &[from.to_str().unwrap(), to.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    mv(&entry, &hidden);
    w.as_user("gt-bob", &["requests"]).status(0);
    mv(&hidden, &entry);
    w.as_user("gt-alice", &["approve", &id]).status(0);
    waiter.signal(nix::sys::signal::Signal::SIGCONT);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(77).stderr_contains("denied by gt-bob");
    assert_eq!(ran.stdout, "");
}

#[test]
fn a_spool_the_requester_controls_fails_at_once_with_how_to_make_a_shared_one() {
    let w = world();
    for case in [
        "owned-by-the-requester",
        "world-writable-not-sticky",
        "group-writable-not-sticky",
        "missing",
    ] {
        let own = w.agent.join(case);
        if case != "missing" {
            std::fs::create_dir(&own).unwrap();
        }
        match case {
            // The per-user default is this: gate would make it, and the requester would own it.
            "missing" => {}
            "owned-by-the-requester" => {
                chown(&own, "gt-agent");
                mode(&own, 0o1777);
            }
            "world-writable-not-sticky" => mode(&own, 0o777),
            _ => {
                std::os::unix::fs::chown(&own, Some(0), Some(user("gt-agent").gid)).unwrap();
                mode(&own, 0o770);
            }
        }
        let mut c = w.command_as("gt-agent", &["--timeout", "30s", "--", "echo", "hi"]);
        c.env("GATE_SPOOL", &own);
        let ran = spawn(c).finish(Duration::from_secs(20));
        ran.status(75)
            .stderr_contains("not safe for approvals")
            .stderr_contains("hint:")
            .stderr_contains("install -d -m 1777 -o root")
            .stderr_contains("GATE_SPOOL");
        // Not "waited anyway": a wait would end in `no decision within 30s`.
        assert!(!ran.stderr.contains("no decision"), "{case}: waited anyway");
        assert_eq!(ran.stdout, "", "{case}: ran");
        assert_eq!(
            std::fs::read_dir(&own).map_or(0, |d| d.count()),
            0,
            "{case}: a request was left in an unsafe spool"
        );
        assert_eq!(
            own.exists(),
            case != "missing",
            "{case}: made a spool of its own"
        );
    }
}

#[test]
fn a_group_owned_spool_works_for_its_members_only() {
    // The documented second form: `install -d -m 3770 -o root -g GROUP`.
    let group = "gt-gate";
    if nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .is_none()
    {
        let _ = Command::new("groupadd").arg(group).output();
    }
    let gid = nix::unistd::Group::from_name(group)
        .unwrap()
        .expect("groupadd gt-gate")
        .gid
        .as_raw();
    let w = world();
    // Membership as the group database has it (what a login gives): the waiting gate asks
    // whether an eligible approver is in the spool's group before it waits. bob stays out.
    for member in ["gt-agent", "gt-alice"] {
        let added = Command::new("gpasswd")
            .args(["-a", member, group])
            .output()
            .unwrap();
        assert!(
            added.status.success(),
            "gpasswd -a {member} {group}: {added:?}"
        );
    }
    let _ = Command::new("gpasswd")
        .args(["-d", "gt-bob", group])
        .output();
    let spool = w.g.path("group-spool");
    std::fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(0), Some(gid)).unwrap();
    mode(&spool, 0o3770);
    let with = |mut c: Command| {
        c.env("GATE_SPOOL", &spool);
        c
    };
    let mut waiter = spawn(with(w.command_in(
        "gt-agent",
        Some(gid),
        &["--timeout", "30s", "--", "echo", "grouped"],
    )));
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let listed = spawn(with(w.command_in(
            "gt-alice",
            Some(gid),
            &["requests", "--json"],
        )))
        .finish(Duration::from_secs(30));
        listed.status(0);
        if let Some(l) = listed.stdout.lines().next() {
            break id_of(&serde_json::from_str(l).unwrap());
        }
        assert!(waiter.running(), "{}", waiter.stderr_text());
        assert!(Instant::now() < deadline, "the request never appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    // bob is not in the group: he cannot even see it.
    let bob =
        spawn(with(w.command_as("gt-bob", &["approve", &id]))).finish(Duration::from_secs(30));
    assert_ne!(bob.status, 0, "{}", bob.stderr);
    spawn(with(w.command_in("gt-alice", Some(gid), &["approve", &id])))
        .finish(Duration::from_secs(30))
        .status(0);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(0);
    assert_eq!(ran.stdout, "grouped\n");
}

// ---------------------------------------------------------------------------------------------
// (c) Ids that are paths; files that are links.

/// A request directory as the agent would plant it by hand: a valid-looking directory name,
/// and a request.json saying whatever the agent likes (claiming a live process, its own pid).
fn plant(w: &World, dir_name: &str, file_id: &str) -> PathBuf {
    let dir = w.spool.join(dir_name);
    let agent = user("gt-agent");
    let body = serde_json::json!({
        "request": {
            "id": file_id,
            "requester": { "user": "gt-agent", "uid": agent.uid, "host": "h" },
            "command": { "argv": ["echo", "hi"], "cwd": "/" },
            "context": {},
            "digest": "0".repeat(64),
        },
        "decision": "approve",
        "rules": ["echo-one"],
        "requirement": { "clauses": [], "min_approvals": 1, "allow_requester": false,
                         "timeout": "60s", "backend": null },
        "created": "2026-01-01T00:00:00.000Z",
        "expires_unix": 4_000_000_000u64,
        "pid": std::process::id(),
    });
    let out = w.sh_as(
        "gt-agent",
        r#"mkdir "$1" && printf %s "$2" > "$1/request.json""#,
        &[dir.to_str().unwrap(), &body.to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn traversal_id_in_a_request_file_writes_nothing_outside_the_spool() {
    let w = world();
    let dir_id = "0192e4a1-7c3b-7d2e-9f00-1234567890ab";
    plant(&w, dir_id, "../../../x");
    let before = tree(w.g.dir.path());

    let listed = w.as_user("gt-alice", &["requests"]);
    listed.status(0).stderr_contains("names another request id");
    assert!(!listed.stdout.contains(dir_id), "{}", listed.stdout);
    for id in [dir_id, &dir_id[..8]] {
        let ran = w.as_user("gt-alice", &["approve", id]);
        assert_ne!(ran.status, 0, "approved a request naming `../../../x`");
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    }
    assert_eq!(tree(w.g.dir.path()), before, "gate approve wrote a file");
    assert!(!Path::new("/x").exists() && !w.g.path("x").exists());
}

#[test]
fn ids_that_are_paths_are_refused_before_they_touch_the_disk() {
    let w = world();
    let before = tree(w.g.dir.path());
    for bad in [
        "../../../x",
        "..",
        "/etc/passwd",
        "spool/../x",
        "0192e4a1-7c3b-7d2e-9f00-1234567890ab/../../x",
        ".hidden",
        "x\u{1b}[2J",
    ] {
        for verb in [&["approve", bad][..], &["deny", bad, "--reason", "r"][..]] {
            let ran = w.as_user("gt-alice", verb);
            ran.status(2).stderr_contains("is not a request id");
            assert!(
                !ran.stderr.contains('\u{1b}'),
                "the bad id was echoed raw: {:?}",
                ran.stderr
            );
        }
    }
    // A directory in the spool whose name is not an id is skipped, with a word about it.
    std::fs::create_dir(w.spool.join("not-an-id")).unwrap();
    w.as_user("gt-alice", &["requests"])
        .status(0)
        .stderr_contains("skipping `not-an-id`");
    let mut after = tree(w.g.dir.path());
    after.retain(|p| !p.ends_with("not-an-id"));
    assert_eq!(after, before);
}

#[test]
fn request_file_symlinked_to_an_approvers_secret_is_not_shown() {
    let w = world();
    // Alice's secret, in a place only she can read.
    let home = w.g.path("alice-home");
    std::fs::create_dir(&home).unwrap();
    chown(&home, "gt-alice");
    mode(&home, 0o700);
    let secret = home.join("request.json");
    std::fs::write(&secret, r#"{"request":"SECRET-TOKEN-4242"}"#).unwrap();
    chown(&secret, "gt-alice");
    mode(&secret, 0o600);

    let id = "0192e4a1-7c3b-7d2e-9f00-1234567890ab";
    let dir = w.spool.join(id);
    let out = w.sh_as(
        "gt-agent",
        r#"mkdir "$1" && ln -s "$2" "$1/request.json""#,
        &[dir.to_str().unwrap(), secret.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and the whole entry as a link to her home.
    let id2 = "0192e4a1-7c3b-7d2e-9f00-1234567890ac";
    let out = w.sh_as(
        "gt-agent",
        r#"ln -s "$2" "$1""#,
        &[w.spool.join(id2).to_str().unwrap(), home.to_str().unwrap()],
    );
    assert!(out.status.success());

    for args in [
        &["requests"][..],
        &["requests", "--json"],
        &["approve", id],
        &["approve", id2],
    ] {
        let ran = w.as_user("gt-alice", args);
        assert!(
            !ran.stdout.contains("SECRET-TOKEN") && !ran.stderr.contains("SECRET-TOKEN"),
            "`gate {}` showed alice's secret:\n{}\n{}",
            args.join(" "),
            ran.stdout,
            ran.stderr
        );
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    }
    w.as_user("gt-alice", &["requests"])
        .status(0)
        .stderr_contains("symbolic link");
    // Not a request anyone may act on: no request by that id (1), not a configuration error.
    w.as_user("gt-alice", &["approve", id])
        .status(1)
        .stderr_contains("symbolic link");
}

#[test]
fn planted_decision_symlink_is_not_followed_by_the_approvers_write() {
    let w = world();
    let mut waiter = w.request(&["--timeout", "30s", "--", "echo", "hi"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    // A file alice owns and can write, and the agent's link to it under her decision's name.
    let home = w.g.path("alice-home");
    std::fs::create_dir(&home).unwrap();
    chown(&home, "gt-alice");
    mode(&home, 0o755);
    let target = home.join("notes");
    std::fs::write(&target, "alice's notes\n").unwrap();
    chown(&target, "gt-alice");
    mode(&target, 0o644);
    let planted = w
        .spool
        .join(format!("{id}.{}.decision", user("gt-alice").uid));
    let out = w.sh_as(
        "gt-agent",
        r#"ln -s "$2" "$1""#,
        &[planted.to_str().unwrap(), target.to_str().unwrap()],
    );
    assert!(out.status.success());

    w.as_user("gt-alice", &["approve", &id]).status(0);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "alice's notes\n",
        "alice's write followed the planted link"
    );
    // Her answer went under a name nobody could guess, and it counts: it is hers.
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(0);
    assert_eq!(ran.stdout, "hi\n");
    let d = w.decision_record(&id);
    assert_eq!(d["decision"]["approvals"][0]["principal"], "gt-alice");
}

// ---------------------------------------------------------------------------------------------
// (d) Terminal control sequences in what the requester writes.

/// Requester text that redraws a terminal: erase the line, go back, overwrite; a title
/// change; C1 CSI; a right-to-left override; a line separator.
const TRICKS: [&str; 5] = [
    "\u{1b}[2K\rbenign",
    "\u{1b}]0;owned\u{7}",
    "\u{9b}1A",
    "\u{202e}txt.exe",
    "x\u{2028}y\u{8}z",
];

fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for (i, c) in text.chars().enumerate() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what}: raw {c:?} at char {i}:\n{text:?}");
    }
}

#[test]
fn control_sequences_in_argv_and_reason_are_escaped_in_gate_requests() {
    let w = world();
    let mut args = vec![
        "--timeout",
        "30s",
        "--reason",
        "\u{1b}[1A\rroutine\u{202e}",
        "--",
        "echo",
    ];
    args.extend(TRICKS);
    let mut waiter = w.request(&args);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    // The list (a row each) and `gate requests ID` (in full, with the reason).
    let listed = spawn(w.command_as("gt-alice", &["requests"])).finish_raw(Duration::from_secs(30));
    assert_eq!(listed.0, 0, "{}", String::from_utf8_lossy(&listed.2));
    assert_no_raw_controls("gate requests (stdout)", &listed.1);
    assert_no_raw_controls("gate requests (stderr)", &listed.2);
    assert!(String::from_utf8_lossy(&listed.1).contains("\\e[2K\\rbenign"));
    let shown =
        spawn(w.command_as("gt-alice", &["requests", &id])).finish_raw(Duration::from_secs(30));
    assert_eq!(shown.0, 0, "{}", String::from_utf8_lossy(&shown.2));
    assert_no_raw_controls("gate requests ID (stdout)", &shown.1);
    assert_no_raw_controls("gate requests ID (stderr)", &shown.2);
    let text = String::from_utf8_lossy(&shown.1);
    for visible in [
        "\\e[2K\\rbenign",
        "\\e]0;owned\\x07",
        "\\u{9b}1A",
        "\\u{202e}txt.exe",
        "\\u{2028}",
        "\\x08",
        "\\e[1A\\rroutine",
    ] {
        assert!(text.contains(visible), "{visible:?} not shown:\n{text}");
    }
    // --json stays JSON, with the argv exactly as the requester gave it.
    let json = w.as_user("gt-alice", &["requests", "--json"]);
    let v: Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["command"]["argv"][1], TRICKS[0]);

    let approved =
        spawn(w.command_as("gt-alice", &["approve", &id])).finish_raw(Duration::from_secs(30));
    assert_eq!(approved.0, 0);
    assert_no_raw_controls("gate approve (stderr)", &approved.2);
    let (status, _stdout, stderr) = waiter.finish_raw(Duration::from_secs(15));
    assert_eq!(status, 0);
    // The requester's own progress and status lines are escaped too.
    assert_no_raw_controls("the waiting gate's stderr", &stderr);
}

#[test]
fn control_sequences_never_reach_the_requesters_terminal_raw() {
    // On a terminal the waiting gate draws a spinner (its own escape sequences); what the
    // requester wrote must still arrive escaped. Nobody approves, so the status lines, the
    // spinner and the final error all get drawn.
    let w = world();
    let mut args = vec![
        "--timeout",
        "2s",
        "--reason",
        "\u{1b}]0;owned-reason\u{7}",
        "--",
        "echo",
    ];
    args.extend(TRICKS);
    let gate_cmd = w.command_as("gt-agent", &args);
    let line = std::iter::once(gate_cmd.get_program())
        .chain(gate_cmd.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .env_clear()
        .envs(gate_cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("TERM", "xterm")
        .current_dir(&w.agent);
    let (status, stdout, _) = spawn_with_input(c, "").finish_raw(Duration::from_secs(30));
    let text = String::from_utf8_lossy(&stdout);
    assert_eq!(status, 75, "{text}");
    assert!(text.contains("waiting as request"), "{text:?}");
    for raw in [
        "\u{1b}[2K\rbenign",
        "\u{1b}]0;owned",
        "\u{9b}1A",
        "\u{202e}",
    ] {
        assert!(
            !text.contains(raw),
            "{raw:?} reached the terminal raw:\n{text:?}"
        );
    }
    assert!(text.contains("\\e]0;owned\\x07"), "{text:?}");
}

#[test]
fn check_and_log_show_escape_control_sequences() {
    let g = Gate::new().policy("version: 1\ndefaults: { decision: allow }\n");
    let mut argv = vec!["--", "true"];
    argv.extend(TRICKS);
    g.command().args(&argv).output().unwrap();

    let mut check = g.command();
    check.arg("check").args(&argv);
    let out = check.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_raw_controls("gate check", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\e[2K\\rbenign"));

    let mut show = g.command();
    show.args(["log", "show"]);
    let out = show.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_raw_controls("gate log show", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\u{202e}txt.exe"));
    // --json stays exact.
    let mut json = g.command();
    json.args(["log", "show", "--json"]);
    let out = json.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rec: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["kind"] == "decision")
        .unwrap();
    assert_eq!(rec["request"]["command"]["argv"][4], TRICKS[3]);
}
