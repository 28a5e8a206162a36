//! The `local` approval backend across real OS users (DESIGN §7 `local`). The requester is the
//! test process (root); approvers are throw-away users made with `useradd` and run `gate approve`
//! / `gate deny` through `setpriv`, so the kernel — not gate — says who wrote each decision file.
//!
//! Needs root (CI runs as root). Without it every test fails with a message saying so.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::process::{Watched, spawn};
use common::users::{self, User};
use common::{Gate, Ran};
use serde_json::{Value, json};

const POLICY: &str = r#"version: 1
groups:
  sre: [gt-alice, gt-bob, gt-carol]
  with-root: [root, gt-alice]
context: { env: [GATE_ENV], redact: ['(?i)(password|token|secret)=\S+'] }
rules:
  - name: two
    match: { program: echo, args: [two] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 2, timeout: 60s }
  - name: one
    match: { program: echo, args: [one] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 1, timeout: 60s }
  - name: rootish
    match: { program: echo, args: [selfish] }
    decision: approve
    approval: { approvers: [with-root], min_approvals: 1, timeout: 60s }
"#;

const USERS: [&str; 4] = ["gt-alice", "gt-bob", "gt-carol", "gt-mallory"];

// ---------------------------------------------------------------------------------------------
// Users and the shared test setup.

/// The throw-away users, created once.
fn users() -> &'static BTreeMap<&'static str, User> {
    static USERS_MAP: OnceLock<BTreeMap<&'static str, User>> = OnceLock::new();
    USERS_MAP.get_or_init(|| users::ensure(&USERS, "local_approval"))
}

/// The gate binary at a path approvers can reach.
fn bin_for_approvers(bin_dir: &std::path::Path) -> PathBuf {
    users();
    users::bin_for_others(bin_dir)
}

fn uid(name: &str) -> u32 {
    users()[name].uid
}

/// One test's world: a Gate whose directory, spool, policy and binary other users can reach.
struct World {
    g: Gate,
    bin: PathBuf,
    spool: PathBuf,
}

fn world() -> World {
    users();
    let g = Gate::new().policy(POLICY);
    let dir = g.dir.path().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = dir.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_for_approvers(&bin_dir);
    let spool = dir.join("spool");
    // The harness may have made it already (a shared spool, 1777): made or not, set below.
    let _ = std::fs::create_dir(&spool);
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(
        g.path("policy.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let g = g.env("GATE_SPOOL", spool.to_str().unwrap());
    World { g, bin, spool }
}

impl World {
    /// `gate ARGS` as the OS user `name`, with only the environment an approver would have.
    fn as_user(&self, name: &str, args: &[&str]) -> Ran {
        let u = users()[name];
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/nonexistent")
            .env("GATE_SPOOL", &self.spool)
            .env("GATE_POLICY", self.g.path("policy.yaml"))
            .current_dir(self.g.dir.path());
        run_to_end(c)
    }

    /// `gate ARGS` as the requester (this process), to completion.
    fn as_requester(&self, args: &[&str]) -> Ran {
        let mut c = self.g.command();
        c.args(args);
        run_to_end(c)
    }

    /// Starts `gate ARGS` as the requester in the background.
    fn start(&self, args: &[&str]) -> Watched {
        let mut c = self.g.command();
        c.args(args);
        spawn(c)
    }

    /// `gate requests --json`, parsed.
    fn pending(&self) -> Vec<Value> {
        let ran = self.as_requester(&["requests", "--json"]);
        ran.status(0);
        ran.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
            .collect()
    }

    /// `gate requests --json` as an approver sees it. (root sees a request a moment earlier,
    /// before its directory is opened up to others, so tests wait on the approvers' view.)
    fn pending_for_approvers(&self) -> Vec<Value> {
        let ran = self.as_user("gt-carol", &["requests", "--json"]);
        ran.status(0);
        ran.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
            .collect()
    }

    /// Polls `gate requests --json` until the waiting gate's request shows (bounded).
    #[track_caller]
    fn wait_pending(&self, waiter: &mut Watched) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(r) = self.pending_for_approvers().into_iter().next() {
                return r;
            }
            if !waiter.running() {
                waiter.collect(Duration::from_secs(1));
                panic!(
                    "gate ended before its request showed\n--- stderr\n{}",
                    waiter.stderr_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the request never appeared in the spool"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn records(&self) -> Vec<Value> {
        self.g.records()
    }

    /// The decision record of `id`, and its result record if any.
    #[track_caller]
    fn recorded(&self, id: &str) -> (Value, Option<Value>) {
        let records = self.records();
        let of = |kind: &str| {
            records
                .iter()
                .filter(|r| r["kind"] == kind && r["request_id"] == id)
                .cloned()
                .collect::<Vec<_>>()
        };
        let d = of("decision");
        assert_eq!(d.len(), 1, "one decision record for {id}: {records:#?}");
        let r = of("result");
        assert!(r.len() <= 1);
        (d[0].clone(), r.into_iter().next())
    }

    fn spool_entry(&self, id: &str) -> PathBuf {
        self.spool.join(id)
    }

    /// The decision files in the spool (what a waiting gate would read as approvals).
    fn decision_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".decision"))
            .collect();
        names.sort();
        names
    }
}

fn run_to_end(mut c: Command) -> Ran {
    c.stdin(Stdio::null());
    let w = spawn(c);
    w.finish(Duration::from_secs(30))
}

fn id_of(req: &Value) -> String {
    req["id"].as_str().expect("id").to_owned()
}

#[track_caller]
fn assert_approver(a: &Value, name: &str) {
    assert_eq!(a["principal"], name, "{a}");
    assert_eq!(a["uid"], uid(name), "{a}");
    assert_eq!(a["via"], "local", "{a}");
    assert!(a["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{a}");
}

/// A decision file written straight into the spool as `name`, bypassing `gate approve` and its
/// checks: what a user who reads the code could try. `file_name` is relative to the spool root
/// (decisions live there, as `<id>.<uid>.decision`).
fn forge(w: &World, as_name: &str, file_name: &str, req: &Value, decision: &str) {
    let body = json!({
        "request_id": id_of(req),
        "digest": req["digest"],
        "decision": decision,
        "comment": null,
        "at": "2026-01-01T00:00:00.000Z",
    })
    .to_string();
    let path = w.spool.join(file_name);
    let u = users()[as_name];
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--clear-groups")
        .args([
            "--",
            "sh",
            "-c",
            r#"umask 022; printf %s "$1" > "$2""#,
            "sh",
        ])
        .arg(&body)
        .arg(&path)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{as_name} could not write {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&path).unwrap());
    assert_eq!(owner, u.uid, "the forged file belongs to its writer");
}

fn root_forge(w: &World, file_name: &str, req: &Value) {
    let body = json!({
        "request_id": id_of(req),
        "digest": req["digest"],
        "decision": "approve",
        "at": "2026-01-01T00:00:00.000Z",
    });
    let path = w.spool.join(file_name);
    std::fs::write(&path, body.to_string()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn two_of_n_runs_with_two_distinct_approvers_and_records_both() {
    let w = world();
    let mut waiter = w.start(&["--timeout", "30s", "--", "echo", "two"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    w.as_user(
        "gt-alice",
        &["approve", &id, "--comment", "diff looks fine"],
    )
    .status(0)
    .stderr_contains(&id);
    // One of two: the waiting gate says it counted it (its readiness marker), and waits on.
    waiter.stderr_until("1/2 approvals (gt-alice)", Duration::from_secs(10));
    assert!(waiter.running(), "ran with one of two approvals");
    assert_eq!(w.pending().len(), 1);

    // A unique suffix of the id is enough.
    let suffix = &id[id.len() - 8..];
    w.as_user("gt-bob", &["approve", suffix]).status(0);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(0);
    assert_eq!(ran.stdout, "two\n", "the approved command ran");
    ran.stderr_contains("gt-alice").stderr_contains("gt-bob");

    let (d, r) = w.recorded(&id);
    assert_eq!(d["decision"]["decision"], "approve");
    assert_eq!(d["decision"]["outcome"], "approved");
    assert_eq!(d["decision"]["run"], true);
    let approvals = d["decision"]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 2, "{approvals:#?}");
    let alice = approvals
        .iter()
        .find(|a| a["principal"] == "gt-alice")
        .expect("alice recorded");
    let bob = approvals
        .iter()
        .find(|a| a["principal"] == "gt-bob")
        .expect("bob recorded");
    assert_approver(alice, "gt-alice");
    assert_approver(bob, "gt-bob");
    assert_eq!(alice["comment"], "diff looks fine");
    assert_eq!(d["decision"]["required"]["min_approvals"], 2);
    assert_eq!(r.expect("a result record")["result"]["exit_code"], 0);
    assert!(
        !w.spool_entry(&id).exists(),
        "the spool entry outlived the wait"
    );
    assert!(w.pending().is_empty());
}

#[test]
fn same_approver_twice_counts_once() {
    let w = world();
    let mut waiter = w.start(&["--timeout", "4s", "--", "echo", "two"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    w.as_user("gt-alice", &["approve", &id]).status(0);
    w.as_user("gt-alice", &["approve", &id])
        .status(77)
        .stderr_contains("already decided");
    // Nobody else can take alice's approval away or rewrite it (sticky directory, 0644 file).
    let alice_file = w.spool.join(format!("{id}.{}.decision", uid("gt-alice")));
    let u = users()["gt-mallory"];
    for attack in [r#"rm -f "$1""#, r#"printf x > "$1""#, r#"mv "$1" "$1.x""#] {
        let out = Command::new("setpriv")
            .arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .args(["--clear-groups", "--", "sh", "-c", attack, "sh"])
            .arg(&alice_file)
            .current_dir("/")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "mallory could `{attack}` alice's approval"
        );
    }
    assert!(alice_file.exists());
    // Still pending for someone else.
    assert_eq!(
        w.pending().iter().map(id_of).collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );

    let ran = waiter.finish(Duration::from_secs(20));
    ran.status(75).stderr_contains("1 of 2");
    assert!(!ran.stdout.contains("two"), "ran on one approver twice");
    let (d, r) = w.recorded(&id);
    assert_eq!(d["decision"]["outcome"], "timed_out");
    assert_eq!(d["decision"]["run"], false);
    let approvals = d["decision"]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{approvals:#?}");
    assert_approver(&approvals[0], "gt-alice");
    assert!(r.is_none());
}

#[test]
fn self_approval_is_refused_and_the_request_stays_pending() {
    let w = world();
    let mut waiter = w.start(&["--timeout", "30s", "--", "echo", "one"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    let ran = w.as_requester(&["approve", &id]);
    ran.status(77).stderr_contains("self-approval");
    // Refused before anything is written: there is nothing the waiting gate could count (a
    // bare "still running" right after would pass whatever happened, gate polls every 100 ms).
    assert_eq!(
        w.decision_files(),
        Vec::<String>::new(),
        "a refused self-approval left a file"
    );
    assert!(waiter.running(), "the requester approved their own request");
    assert_eq!(
        w.pending().iter().map(id_of).collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );
    // Denying one's own request the same way is refused too (cancel is Ctrl-C).
    w.as_requester(&["deny", &id, "--reason", "x"])
        .status(77)
        .stderr_contains("self-approval");
    assert_eq!(
        w.decision_files(),
        Vec::<String>::new(),
        "a refused self-denial left a file"
    );
    assert!(waiter.running());

    w.as_user("gt-carol", &["approve", &id]).status(0);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(0);
    assert_eq!(ran.stdout, "one\n");
    let (d, _) = w.recorded(&id);
    let approvals = d["decision"]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{approvals:#?}");
    assert_approver(&approvals[0], "gt-carol");
}

#[test]
fn the_requesters_own_decision_file_never_counts_even_when_eligible() {
    // root is in the `with-root` group, so only the no-self-approval rule keeps it out.
    let w = world();
    let mut waiter = w.start(&["--timeout", "30s", "--", "echo", "selfish"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    w.as_requester(&["approve", &id])
        .status(77)
        .stderr_contains("self-approval");

    // Bypass the CLI: write the decision file by hand, as the requester.
    root_forge(&w, &format!("{id}.0.decision"), &req);
    waiter.stderr_until("not counted: root", Duration::from_secs(10));
    assert!(
        waiter.running(),
        "the requester's own file approved the request"
    );

    // An eligible approver's denial ends it.
    w.as_user("gt-alice", &["deny", &id, "--reason", "no"])
        .status(0);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(77);
    assert_eq!(ran.stdout, "");
    let (d, _) = w.recorded(&id);
    assert!(
        d["decision"]["approvals"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{d}"
    );
    assert_approver(&d["decision"]["denied_by"], "gt-alice");
}

#[test]
fn non_member_is_not_counted_and_cannot_pass_as_someone_else() {
    let w = world();
    let mut waiter = w.start(&["--timeout", "30s", "--", "echo", "one"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    // Through the CLI: refused with a reason.
    w.as_user("gt-mallory", &["approve", &id])
        .status(77)
        .stderr_contains("not an eligible approver");
    w.as_user("gt-mallory", &["deny", &id, "--reason", "spite"])
        .status(77)
        .stderr_contains("not an eligible approver");
    assert_eq!(
        w.decision_files(),
        Vec::<String>::new(),
        "a refused non-member left a file"
    );
    assert!(waiter.running());

    // By hand, under alice's file name: the kernel says mallory wrote it.
    forge(
        &w,
        "gt-mallory",
        &format!("{id}.{}.decision", uid("gt-alice")),
        &req,
        "approve",
    );
    waiter.stderr_until("not counted: gt-mallory", Duration::from_secs(10));
    assert!(
        waiter.running(),
        "mallory's forged file approved the request"
    );
    // ...and a forged denial does not stop it either.
    forge(&w, "gt-mallory", &format!("{id}.x.decision"), &req, "deny");
    w.as_user("gt-bob", &["approve", &id]).status(0);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(0);
    assert_eq!(ran.stdout, "one\n");
    let (d, _) = w.recorded(&id);
    let approvals = d["decision"]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{approvals:#?}");
    assert_approver(&approvals[0], "gt-bob");
    assert!(d["decision"]["denied_by"].is_null(), "{d}");
    assert!(
        !d.to_string().contains("gt-mallory"),
        "mallory made it into the record: {d}"
    );
}

#[test]
fn deny_by_an_eligible_approver_exits_77_and_records_who() {
    let w = world();
    let mut waiter = w.start(&["--timeout", "30s", "--", "echo", "two"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    w.as_user("gt-alice", &["approve", &id]).status(0);
    w.as_user(
        "gt-carol",
        &["deny", &id, "--reason", "not during the freeze"],
    )
    .status(0);
    let ran = waiter.finish(Duration::from_secs(15));
    ran.status(77)
        .stderr_contains("gt-carol")
        .stderr_contains("not during the freeze");
    assert_eq!(ran.stdout, "", "the denied command ran");

    let (d, r) = w.recorded(&id);
    assert_eq!(d["decision"]["outcome"], "denied");
    assert_eq!(d["decision"]["run"], false);
    let by = &d["decision"]["denied_by"];
    assert_approver(by, "gt-carol");
    assert_eq!(by["comment"], "not during the freeze");
    assert!(
        d["decision"]["message"]
            .as_str()
            .unwrap()
            .contains("not during the freeze")
    );
    assert!(r.is_none(), "a denied command has no result");
    assert!(!w.spool_entry(&id).exists());
    // Too late to approve now.
    assert_ne!(w.as_user("gt-bob", &["approve", &id]).status, 0);
}

#[test]
fn timeout_exits_75_and_records_timed_out() {
    let w = world();
    let started = Instant::now();
    let mut waiter = w.start(&["--timeout", "1s", "--", "echo", "one"]);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);
    let ran = waiter.finish(Duration::from_secs(20));
    ran.status(75).stderr_contains("no decision within 1s");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(ran.stdout, "");
    let (d, r) = w.recorded(&id);
    assert_eq!(d["decision"]["outcome"], "timed_out");
    assert_eq!(d["decision"]["run"], false);
    assert!(r.is_none());
    assert!(
        !w.spool_entry(&id).exists(),
        "the spool entry outlived the wait"
    );
    assert!(w.pending().is_empty());
    // An approval after the timeout is refused and runs nothing.
    assert_ne!(w.as_user("gt-alice", &["approve", &id]).status, 0);
}

#[test]
fn ctrl_c_cancels_the_request_exits_75_and_records_it() {
    // Ctrl-C, and the other ways a terminal or supervisor stops a process (Ctrl-\, hang-up).
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGQUIT,
    ] {
        let w = world();
        let mut waiter = w.start(&["--timeout", "30s", "--", "echo", "two"]);
        let req = w.wait_pending(&mut waiter);
        let id = id_of(&req);
        assert!(w.spool_entry(&id).join("request.json").exists());
        w.as_user("gt-bob", &["approve", &id]).status(0);

        waiter.signal(sig);
        let ran = waiter.finish(Duration::from_secs(10));
        ran.status(75).stderr_contains("cancelled");
        assert_eq!(ran.stdout, "");
        let (d, r) = w.recorded(&id);
        assert_eq!(d["decision"]["outcome"], "cancelled", "{sig}");
        assert_eq!(d["decision"]["run"], false);
        // What had been granted so far is kept in the record.
        let approvals = d["decision"]["approvals"].as_array().unwrap();
        assert_eq!(approvals.len(), 1, "{approvals:#?}");
        assert_approver(&approvals[0], "gt-bob");
        assert!(r.is_none());
        assert!(
            !w.spool_entry(&id).exists(),
            "{sig}: spool entry left behind"
        );
        assert!(w.pending().is_empty());
    }
}

#[test]
fn requests_json_lists_the_pending_request_with_its_context() {
    let w = world();
    let mut c = w.g.command();
    c.env("GATE_ENV", "prod")
        .args(["--reason", "rotate keys", "--timeout", "30s", "--"])
        .args(["echo", "two", "password=hunter2"]);
    let mut waiter = spawn(c);
    let req = w.wait_pending(&mut waiter);
    let id = id_of(&req);

    // The `gate.request/v1` shape (docs/requests-json.md).
    assert_eq!(req["requester"]["principal"], "root");
    assert_eq!(req["requester"]["user"], "root");
    assert_eq!(req["requester"]["uid"], 0);
    assert_eq!(
        req["command"]["argv"],
        json!(["echo", "two", "password=[REDACTED]"])
    );
    assert_eq!(req["command"]["env"], json!({ "GATE_ENV": "prod" }));
    assert_eq!(req["reason"], "rotate keys");
    assert_eq!(req["digest"].as_str().unwrap().len(), 64);
    assert_eq!(req["requirement"]["min_approvals"], 2);
    assert_eq!(req["rules"][0]["name"], "two");
    assert_eq!(req["claimed_rules"], json!(["two"]));
    let all = w.pending();
    assert_eq!(all.len(), 1);
    assert!(!serde_json::to_string(&all).unwrap().contains("hunter2"));

    // An approver sees the same request, and the human-readable listing names what matters.
    let seen = w.as_user("gt-alice", &["requests", "--json"]);
    seen.status(0);
    let theirs: Vec<Value> = seen
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shown = serde_json::to_string_pretty(&theirs).unwrap();
    let mut settings = common::snap::settings(w.g.dir.path());
    settings.add_filter(
        r#""short_id": "[0-9a-f]{12}""#,
        r#""short_id": "[SHORT_ID]""#,
    );
    settings.add_filter(
        r#""expires_in_secs": -?\d+"#,
        r#""expires_in_secs": [SECS]"#,
    );
    settings.bind(|| insta::assert_snapshot!("requests_json_as_an_approver_sees_it", shown));
    assert_eq!(
        theirs.iter().map(id_of).collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );
    // The list shows each request's short id; `gate requests ID` shows it in full.
    let short = &id[id.len() - 12..];
    w.as_user("gt-alice", &["requests"])
        .status(0)
        .stdout_has(short)
        .stdout_has("root");
    w.as_user("gt-alice", &["requests", short])
        .status(0)
        .stdout_has(&id)
        .stdout_has("rotate keys")
        .stdout_has("root");

    waiter.signal(nix::sys::signal::Signal::SIGINT);
    waiter.finish(Duration::from_secs(10)).status(75);
    assert!(
        w.pending().is_empty(),
        "a cancelled request is no longer listed"
    );
}

#[test]
fn an_approval_is_for_one_request_only() {
    // Two requests wait at once; approving one leaves the other waiting.
    let w = world();
    let mut first = w.start(&["--timeout", "30s", "--", "echo", "one"]);
    let r1 = w.wait_pending(&mut first);
    let second = w.start(&["--timeout", "30s", "--", "echo", "one"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let r2 = loop {
        if let Some(r) = w
            .pending_for_approvers()
            .into_iter()
            .find(|r| id_of(r) != id_of(&r1))
        {
            break r;
        }
        assert!(Instant::now() < deadline, "second request never appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(id_of(&r1), id_of(&r2));
    w.as_user("gt-alice", &["approve", &id_of(&r2)]).status(0);
    second.finish(Duration::from_secs(15)).status(0);
    assert_eq!(
        w.pending().iter().map(id_of).collect::<Vec<_>>(),
        [id_of(&r1)]
    );
    // No sleep hoping to catch a wrong run: end the first request with a denial and read what
    // it recorded. Alice's approval of the other request must not be among its approvals.
    w.as_user("gt-bob", &["deny", &id_of(&r1), "--reason", "not this one"])
        .status(0);
    first.finish(Duration::from_secs(15)).status(77);
    let (decision, _) = w.recorded(&id_of(&r1));
    assert_eq!(decision["decision"]["outcome"], "denied", "{decision:#}");
    assert_eq!(
        decision["decision"]["approvals"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "an approval of another request counted: {decision:#}"
    );
}
