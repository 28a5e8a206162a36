//! What an approver is shown (issue 11 §2): `gate requests` (a row per request) and
//! `gate requests ID` (one in full) for the local spool and for a gate server, in one JSON
//! shape (`gate.request/v1`, docs/requests-json.md); who has approved so far; short ids that
//! round-trip through `gate approve` and never resolve to a request nobody meant; and the exit
//! status of an id that names nothing (1, not a configuration error).
//!
//! The local tests act as throw-away OS users through `setpriv` (needs root, as CI has); the
//! server tests run a real `gate serve` on 127.0.0.1.

use crate::common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{Server, Watched, spawn};
use common::users::{self, User};
use common::{Gate, Ran};
use serde_json::{Value, json};

const POLICY: &str = r#"version: 1
groups:
  sre: [gt-alice, gt-bob, gt-carol]
context: { env: [GATE_ENV] }
rules:
  - name: prod-apply
    match: { program: kubectl, args: [apply] }
    decision: approve
    risk: high
    category: deploy
    approval: { approvers: [sre], min_approvals: 2, timeout: 60s }
  - name: one
    match: { program: echo, args: [one] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 1, timeout: 60s }
"#;

const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  sre: [alice, bob, carol]
rules:
  - name: prod-apply
    match: { program: kubectl, args: [apply] }
    decision: approve
    risk: high
    category: deploy
    approval: { approvers: [sre], min_approvals: 2, timeout: 60s }
"#;

fn user(name: &str) -> User {
    users::ensure(&["gt-alice", "gt-bob", "gt-carol"], "requests_view")[name]
}

// ---------------------------------------------------------------------------------------------
// The local spool: root asks, throw-away users look and decide.

struct Local {
    g: Gate,
    bin: PathBuf,
    spool: PathBuf,
    /// The requester's working directory: a payload file and a `kubectl` on its PATH.
    work: PathBuf,
}

fn local() -> Local {
    user("gt-alice");
    let g = Gate::new().policy(POLICY);
    let dir = g.dir.path().to_path_buf();
    let open = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    open(&dir, 0o755).unwrap();
    let bin_dir = dir.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    open(&bin_dir, 0o755).unwrap();
    let bin = users::bin_for_others(&bin_dir);
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    open(&spool, 0o1777).unwrap();
    open(&g.path("policy.yaml"), 0o644).unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("bin")).unwrap();
    open(&work, 0o755).unwrap();
    std::fs::write(work.join("x.yaml"), "kind: ConfigMap\n").unwrap();
    open(&work.join("x.yaml"), 0o644).unwrap();
    // The program the requester's PATH finds first: what runs, and what approvers are shown.
    let kubectl = work.join("bin/kubectl");
    std::fs::write(&kubectl, "#!/bin/sh\necho \"applied $*\"\n").unwrap();
    open(&kubectl, 0o755).unwrap();
    let path = format!(
        "{}:{}",
        work.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let g = g
        .env("GATE_SPOOL", spool.to_str().unwrap())
        .env("PATH", &path)
        .env("GATE_ENV", "prod");
    Local {
        g,
        bin,
        spool,
        work,
    }
}

impl Local {
    fn approver(&self, name: &str, args: &[&str]) -> Command {
        let u = user(name);
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
            .env("NO_COLOR", "1")
            .env("GATE_SPOOL", &self.spool)
            .env("GATE_POLICY", self.g.path("policy.yaml"))
            .current_dir("/")
            .stdin(Stdio::null());
        c
    }

    /// `gate ARGS` as the OS user `name`, to its end.
    fn as_user(&self, name: &str, args: &[&str]) -> Ran {
        spawn(self.approver(name, args)).finish(Duration::from_secs(30))
    }

    /// The requester (this process, root) asks in the background, from the work directory.
    fn ask(&self, args: &[&str]) -> Watched {
        let mut c = self.g.command();
        c.args(args).current_dir(&self.work);
        spawn(c)
    }

    /// `gate requests --json` as gt-carol: one object per line.
    fn listed(&self) -> Vec<Value> {
        let ran = self.as_user("gt-carol", &["requests", "--json"]);
        ran.status(0);
        ran.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    /// Waits until approvers see `n` pending requests (bounded).
    #[track_caller]
    fn wait_listed(&self, n: usize, waiter: &mut Watched) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let l = self.listed();
            if l.len() >= n {
                return l;
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

    /// A request entry written straight into the spool as root, waited on by this (live)
    /// process: for ids a test chooses.
    fn plant(&self, id: &str, argv: &[&str]) {
        self.plant_as(id, argv, "root", 0);
    }

    /// [`Local::plant`], with the request file claiming to come from `user` (uid `uid`).
    fn plant_as(&self, id: &str, argv: &[&str], user: &str, uid: u32) {
        let dir = self.spool.join(id);
        std::fs::create_dir(&dir).unwrap();
        let body = json!({
            "request": {
                "id": id,
                "requester": { "user": user, "uid": uid, "host": "planted" },
                "command": { "argv": argv, "cwd": "/" },
                "context": {},
                "digest": "0".repeat(64),
            },
            "decision": "approve",
            "rules": ["one"],
            "requirement": {
                "clauses": [{ "rule": "one", "approvers": ["sre"],
                              "eligible": ["gt-alice", "gt-bob", "gt-carol"],
                              "min_approvals": 1, "groups": [] }],
                "min_approvals": 1, "allow_requester": false, "timeout": "1m", "backend": null,
            },
            "created": "2026-11-28T10:00:00.000Z",
            "expires_unix": 4_000_000_000u64,
            "pid": std::process::id(),
        });
        std::fs::write(dir.join("request.json"), body.to_string()).unwrap();
        std::fs::set_permissions(
            dir.join("request.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A request is listed while a gate waits for it: the waiter holds its lock. This test
        // process stands in for that gate for as long as it runs.
        let lock = std::fs::File::create(dir.join("lock")).unwrap();
        std::fs::set_permissions(dir.join("lock"), std::fs::Permissions::from_mode(0o644)).unwrap();
        lock.lock().unwrap();
        std::mem::forget(lock);
    }

    /// Whether `name` has a decision file on request `id`.
    fn decided(&self, name: &str, id: &str) -> bool {
        self.spool
            .join(format!("{id}.{}.decision", user(name).uid))
            .exists()
    }
}

/// Two UUIDv7 ids made in the same millisecond: the same timestamp prefix, different tails.
fn same_millisecond_ids() -> (String, String) {
    let a = uuid::Uuid::now_v7().to_string();
    let tail = uuid::Uuid::now_v7().to_string();
    let b = format!("{}{}", &a[..15], &tail[15..]);
    assert_ne!(a, b);
    assert_eq!(a[..13], b[..13], "one timestamp");
    (a, b)
}

fn short(id: &str) -> &str {
    &id[id.len() - 12..]
}

/// Snapshot filters for what changes from run to run in these views.
fn settings(dir: &Path) -> insta::Settings {
    let mut s = common::snap::settings(dir);
    s.add_filter(
        r#""short_id": "[0-9a-f]{12}""#,
        r#""short_id": "[SHORT_ID]""#,
    );
    s.add_filter(r"\(short id [0-9a-f]{12}\)", "(short id [SHORT_ID])");
    s.add_filter(
        r#""expires_in_secs": -?\d+"#,
        r#""expires_in_secs": [SECS]"#,
    );
    s.add_filter(r"\(in [0-9hms ]+\)", "(in [DURATION])");
    s
}

#[test]
fn an_approver_sees_everything_that_will_run_and_who_has_approved_so_far() {
    let w = local();
    let mut waiter = w.ask(&[
        "--reason",
        "roll out \u{1b}[31mthe fix",
        "--",
        "kubectl",
        "apply",
        "-f",
        "x.yaml",
    ]);
    let id = w.wait_listed(1, &mut waiter)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // One of two approvals, by the short id the list shows.
    w.as_user(
        "gt-alice",
        &["approve", short(&id), "--comment", "diff read"],
    )
    .status(0)
    .stderr_has("1 of 2 approvals so far (gt-alice); 1 more approval needed");
    waiter.stderr_until("1/2", Duration::from_secs(10));

    // The list: a row, with approvals so far of those needed.
    let list = w.as_user("gt-bob", &["requests"]);
    list.status(0).stdout_has(short(&id)).stdout_has("1/2");
    assert!(
        list.stdout.contains("kubectl apply -f x.yaml"),
        "{}",
        list.stdout
    );

    // In full: argv, the program that runs, cwd, payload hash, requester, reason (escaped),
    // rules with risk and category, what is needed, who approved and when, the expiry.
    let full = w.as_user("gt-bob", &["requests", short(&id)]);
    full.status(0);
    let text = &full.stdout;
    let kubectl = w.work.join("bin/kubectl");
    for needle in [
        "kubectl apply -f x.yaml",
        &format!("executable:  {}", kubectl.display()),
        &format!("cwd:         {}", w.work.display()),
        "payload:     x.yaml sha256 ",
        "reason:      roll out \\e[31mthe fix",
        "prod-apply (approve, risk high, category deploy)",
        "needs:       2 approvals from sre",
        "approved by: gt-alice at ",
        "(\"diff read\") [1 of 2; 1 more needed]",
        "expires:     ",
    ] {
        assert!(text.contains(needle), "{needle:?} not shown:\n{text}");
    }
    assert!(
        !text.contains('\u{1b}'),
        "a raw escape reached the terminal"
    );
    settings(w.g.dir.path())
        .bind(|| insta::assert_snapshot!("one_request_in_full_after_one_of_two_approvals", text));

    // The same as JSON: the documented shape.
    let json = w.as_user("gt-bob", &["requests", &id, "--json"]);
    json.status(0);
    let v: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["format"], "gate.request/v1");
    assert_eq!(v["approvals"][0]["principal"], "gt-alice");
    assert_eq!(v["approvals"][0]["comment"], "diff read");
    assert_eq!(v["needed"], 1);
    assert_eq!(v["command"]["executable"], kubectl.to_str().unwrap());
    assert_eq!(v["rules"][0]["risk"], "high");
    settings(w.g.dir.path()).bind(|| {
        insta::assert_snapshot!(
            "one_request_as_json_after_one_of_two_approvals",
            serde_json::to_string_pretty(&v).unwrap()
        )
    });

    // The second approval by the id's timestamp prefix (unique here): it runs.
    w.as_user("gt-bob", &["approve", &id[..8]]).status(0);
    let ran = waiter.finish(Duration::from_secs(20));
    ran.status(0);
    assert_eq!(ran.stdout, "applied apply -f x.yaml\n");
}

#[test]
fn two_local_requests_in_the_same_millisecond_get_distinct_short_ids_that_each_round_trip() {
    let w = local();
    let (a, b) = same_millisecond_ids();
    w.plant(&a, &["echo", "one", "a"]);
    w.plant(&b, &["echo", "one", "b"]);
    let listed = w.as_user("gt-carol", &["requests"]);
    listed.status(0).stdout_has(short(&a)).stdout_has(short(&b));
    assert_ne!(short(&a), short(&b));

    // The shared prefix names both: refused (1), naming them, nothing written.
    let ran = w.as_user("gt-alice", &["approve", &a[..13]]);
    ran.status(1)
        .stderr_has("matches 2 pending requests")
        .stderr_has(&a)
        .stderr_has(&b)
        .stderr_has("hint: give more of the id");
    assert!(!w.decided("gt-alice", &a) && !w.decided("gt-alice", &b));

    // Each short id approves its own request, and only it.
    w.as_user("gt-alice", &["approve", short(&a)]).status(0);
    assert!(w.decided("gt-alice", &a) && !w.decided("gt-alice", &b));
    w.as_user("gt-bob", &["approve", short(&b)]).status(0);
    assert!(w.decided("gt-bob", &b) && !w.decided("gt-bob", &a));
    w.as_user("gt-carol", &["requests", short(&b)])
        .status(0)
        .stdout_has(&b)
        .stdout_has("echo one b")
        .stdout_has("approved by: gt-bob at ");
}

#[test]
fn an_id_that_names_no_request_exits_1_not_as_a_configuration_error() {
    let w = local();
    let (a, _) = same_millisecond_ids();
    w.plant(&a, &["echo", "one"]);
    for verb in [
        &["requests", "ffffffffffff"][..],
        &["approve", "ffffffffffff"],
        &["deny", "ffffffffffff", "--reason", "r"],
        &["requests", "00000000-0000-7000-8000-000000000000"],
    ] {
        w.as_user("gt-alice", verb)
            .status(1)
            .stderr_has("no pending request matches")
            .stderr_has("hint: `gate requests` lists what is pending");
    }
    // Too short to name anything, or not an id at all: a usage error (2).
    w.as_user("gt-alice", &["approve", &short(&a)[7..]])
        .status(2)
        .stderr_has("too short to name a request");
    w.as_user("gt-alice", &["requests", "../x"])
        .status(2)
        .stderr_has("is not a request id");
}

#[test]
fn a_spool_entry_claiming_another_requester_is_not_shown_and_no_id_resolves_to_it() {
    // root writes a request that says it comes from gt-carol: whoever reads it must not take
    // gt-carol for the requester (she could then not approve it; others would trust her name).
    let w = local();
    let (id, _) = same_millisecond_ids();
    w.plant_as(&id, &["echo", "one"], "gt-carol", user("gt-carol").uid);
    let listed = w.as_user("gt-alice", &["requests"]);
    listed.status(0).stderr_has("claims to come from gt-carol");
    assert!(!listed.stdout.contains(short(&id)), "{}", listed.stdout);
    w.as_user("gt-alice", &["approve", short(&id)])
        .status(1)
        .stderr_has("no pending request matches");
    w.as_user("gt-alice", &["approve", &id])
        .status(1)
        .stderr_has("claims to come from gt-carol");
    assert!(!w.decided("gt-alice", &id));
}

#[test]
fn a_requester_that_rewrites_its_executable_gets_no_approval_counted() {
    // The requester owns its request file: it can make approvers see `/usr/bin/kubectl`
    // while its gate runs the `kubectl` it found first on its PATH. The executable is part of
    // the digest an approver signs, so the approval is of another command and does not count.
    let w = local();
    let mut waiter = w.ask(&["--timeout", "4s", "--", "kubectl", "apply", "-f", "x.yaml"]);
    let id = w.wait_listed(1, &mut waiter)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = w.spool.join(&id).join("request.json");
    let mut forged: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        forged["request"]["command"]["executable"],
        w.work.join("bin/kubectl").to_str().unwrap()
    );
    forged["request"]["command"]["executable"] = "/usr/bin/kubectl".into();
    std::fs::write(&file, forged.to_string()).unwrap();
    w.as_user("gt-carol", &["requests", &id])
        .status(0)
        .stdout_has("executable:  /usr/bin/kubectl");
    w.as_user("gt-alice", &["approve", &id]).status(0);
    w.as_user("gt-bob", &["approve", &id]).status(0);
    waiter.stderr_until("approved a different command", Duration::from_secs(10));
    let ran = waiter.finish(Duration::from_secs(20));
    ran.status(75);
    assert_eq!(ran.stdout, "", "the requester's own kubectl ran");
}

#[test]
fn a_payload_that_is_a_symlink_is_shown_as_one() {
    let w = local();
    std::fs::write(w.work.join("real.yaml"), "kind: Secret\n").unwrap();
    std::fs::remove_file(w.work.join("x.yaml")).unwrap();
    std::os::unix::fs::symlink("real.yaml", w.work.join("x.yaml")).unwrap();
    let mut waiter = w.ask(&["--timeout", "30s", "--", "kubectl", "apply", "-f", "x.yaml"]);
    let v = &w.wait_listed(1, &mut waiter)[0];
    assert_eq!(v["command"]["payload"][0]["link"], "real.yaml", "{v}");
    let id = v["id"].as_str().unwrap();
    w.as_user("gt-carol", &["requests", id])
        .status(0)
        .stdout_has("payload:     x.yaml -> real.yaml sha256 ")
        .stdout_has("is a symbolic link to `real.yaml`");
    waiter.signal(nix::sys::signal::Signal::SIGINT);
    waiter.finish(Duration::from_secs(10)).status(75);
}

// ---------------------------------------------------------------------------------------------
// A gate server.

struct Remote {
    home: tempfile::TempDir,
    srv: Server,
    http: reqwest::blocking::Client,
}

fn remote() -> Remote {
    let home = tempfile::tempdir().unwrap();
    let srv = Server::start(home.path(), SERVER_POLICY);
    Remote {
        home,
        srv,
        http: reqwest::blocking::Client::new(),
    }
}

impl Remote {
    /// Creates a request as `token`'s principal, with id `id`, through the API.
    fn create(&self, token: &str, id: &str, argv: &[&str], claims: Value) -> Value {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let env = std::collections::BTreeMap::new();
        let payload = vec![gate::request::Payload {
            path: "x.yaml".into(),
            sha256: Some("ab".repeat(32)),
        }];
        let exe = "/usr/local/bin/kubectl";
        let digest = gate::request::command_digest(&argv, "/srv", &env, &payload, Some(exe));
        let r = self
            .http
            .post(format!("{}/v1/requests", self.srv.url))
            .bearer_auth(token)
            .json(&json!({
                "id": id, "argv": argv, "cwd": "/srv", "env": env, "payload": payload,
                "executable": exe, "digest": digest, "reason": "roll out the fix",
                "claims": claims,
            }))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.json().unwrap()
    }

    fn gate(&self, token: &str, args: &[&str]) -> Ran {
        let mut c = common::gate_in(self.home.path());
        c.env("GATE_TOKEN", token).env("GATE_SERVER", &self.srv.url);
        c.args(args);
        Ran::of(c)
    }
}

#[test]
fn server_requests_show_who_has_approved_so_far_and_short_ids_round_trip() {
    let r = remote();
    let (carol, alice, bob) = (
        r.srv.token("carol", None),
        r.srv.token("alice", None),
        r.srv.token("bob", None),
    );
    let (a, b) = same_millisecond_ids();
    let claims = json!({ "user": "carol", "uid": 1000, "host": "web1" });
    r.create(
        &carol,
        &a,
        &["kubectl", "apply", "-f", "x.yaml", "a"],
        claims.clone(),
    );
    r.create(
        &carol,
        &b,
        &["kubectl", "apply", "-f", "x.yaml", "b"],
        claims,
    );

    let listed = r.gate(&alice, &["requests"]);
    listed.status(0).stdout_has(short(&a)).stdout_has(short(&b));
    assert!(listed.stdout.contains("carol@web1"), "{}", listed.stdout);

    // The shared timestamp prefix is ambiguous on the server too: 1, naming both.
    r.gate(&alice, &["approve", &a[..13]])
        .status(1)
        .stderr_has("matches 2 pending requests")
        .stderr_has(&a)
        .stderr_has(&b);
    r.gate(&alice, &["requests", "ffffffffffff"])
        .status(1)
        .stderr_has("no pending request matches `ffffffffffff`");

    // Each short id approves its own request; the view then names the approver.
    r.gate(&alice, &["approve", short(&a)])
        .status(0)
        .stderr_has("1 of 2 approvals so far (alice); 1 more approval needed");
    let one = r.gate(&bob, &["requests", short(&a)]);
    one.status(0)
        .stdout_has(&a)
        .stdout_has("approved by: alice at ")
        .stdout_has("[1 of 2; 1 more needed]")
        .stdout_has("executable:  /usr/local/bin/kubectl")
        .stdout_has("prod-apply (approve, risk high, category deploy)")
        .stdout_has("carol (its server token)");
    let other = r.gate(&bob, &["requests", short(&b), "--json"]);
    other.status(0);
    let v: Value = serde_json::from_str(other.stdout.trim()).unwrap();
    assert_eq!(v["id"], b.as_str());
    assert_eq!(v["approvals"], json!([]), "approving a approved b: {v}");
    r.gate(&bob, &["approve", short(&b)]).status(0);

    // Decided, a request is named by its whole id only: a short id acts on what waits.
    r.gate(&bob, &["approve", short(&a)])
        .status(0)
        .stderr_has("it is now approved");
    r.gate(&alice, &["approve", short(&a)])
        .status(1)
        .stderr_has("no pending request matches");
    r.gate(&alice, &["requests", &a])
        .status(0)
        .stdout_has("status:      approved")
        .stdout_has("approved by: alice at ");
}

#[test]
fn a_server_request_claiming_another_user_is_shown_under_its_token_principal() {
    let r = remote();
    let (carol, alice) = (r.srv.token("carol", None), r.srv.token("alice", None));
    let (id, _) = same_millisecond_ids();
    r.create(
        &carol,
        &id,
        &["kubectl", "apply", "-f", "x.yaml"],
        json!({ "user": "alice", "uid": 0, "host": "bastion" }),
    );
    let v: Value = serde_json::from_str(
        r.gate(&alice, &["requests", &id, "--json"])
            .status(0)
            .stdout
            .trim(),
    )
    .unwrap();
    assert_eq!(v["requester"]["principal"], "carol");
    assert_eq!(v["requester"]["principal_from"], "server_token");
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("says it runs as the OS user `alice`"),
        "{v}"
    );
    // The claimed `alice` is not the requester: she may approve.
    r.gate(&alice, &["approve", short(&id)]).status(0);
}

#[test]
fn a_server_id_that_is_not_one_is_refused_before_it_is_sent() {
    let r = remote();
    let alice = r.srv.token("alice", None);
    for bad in ["../../v1/me", "abc?x=1", "#frag"] {
        r.gate(&alice, &["approve", bad])
            .status(2)
            .stderr_has("is not a request id");
    }
}

#[test]
fn a_client_cannot_show_one_executable_and_sign_another() {
    let r = remote();
    let carol = r.srv.token("carol", None);
    let argv = vec!["kubectl".to_string(), "apply".into()];
    let env = std::collections::BTreeMap::new();
    // The digest of the command without the executable, sent with one.
    let digest = gate::request::digest(&argv, "/srv", &env, &[]);
    let resp = r
        .http
        .post(format!("{}/v1/requests", r.srv.url))
        .bearer_auth(&carol)
        .json(
            &json!({ "argv": argv, "cwd": "/srv", "executable": "/usr/bin/kubectl",
                       "digest": digest }),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("executable"),
        "{body}"
    );
}

/// Every member name of `v`, with the path to it, recursing into objects and into the first
/// element of arrays of objects — the shape, not the values.
fn members(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}.{k}");
                out.insert(p.clone());
                // Free-form maps: their keys are data, not members.
                if !matches!(k.as_str(), "env" | "ci" | "requirement") {
                    members(x, &p, out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                members(first, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn local_and_server_json_have_the_same_members() {
    // An equivalent request on each side: a payload, one approval of two, pending.
    let w = local();
    let mut waiter = w.ask(&["--", "kubectl", "apply", "-f", "x.yaml"]);
    let id = w.wait_listed(1, &mut waiter)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.as_user("gt-alice", &["approve", &id]).status(0);
    waiter.stderr_until("1/2", Duration::from_secs(10));
    let l: Value = serde_json::from_str(
        w.as_user("gt-bob", &["requests", &id, "--json"])
            .status(0)
            .stdout
            .trim(),
    )
    .unwrap();

    let r = remote();
    let (carol, alice, bob) = (
        r.srv.token("carol", None),
        r.srv.token("alice", None),
        r.srv.token("bob", None),
    );
    let (sid, _) = same_millisecond_ids();
    r.create(
        &carol,
        &sid,
        &["kubectl", "apply", "-f", "x.yaml"],
        json!({ "user": "carol", "uid": 1000, "host": "web1" }),
    );
    r.gate(&alice, &["approve", &sid]).status(0);
    let s: Value = serde_json::from_str(
        r.gate(&bob, &["requests", &sid, "--json"])
            .status(0)
            .stdout
            .trim(),
    )
    .unwrap();

    let (mut lm, mut sm) = (BTreeSet::new(), BTreeSet::new());
    members(&l, "", &mut lm);
    members(&s, "", &mut sm);
    assert!(lm.contains(".approvals[].principal") && lm.contains(".command.payload[].sha256"));
    assert_eq!(lm, sm, "local:\n{l:#}\nserver:\n{s:#}");
    assert_eq!(
        (l["source"].as_str(), s["source"].as_str()),
        (Some("local"), Some("server"))
    );
    assert_eq!(l["format"], s["format"]);
    // The listing has the same shape as the one-request view.
    let listed = r.gate(&bob, &["requests", "--json"]);
    listed.status(0);
    let row: Value = serde_json::from_str(listed.stdout.lines().next().unwrap()).unwrap();
    let mut rm = BTreeSet::new();
    members(&row, "", &mut rm);
    assert_eq!(rm, sm);

    waiter.signal(nix::sys::signal::Signal::SIGINT);
    waiter.finish(Duration::from_secs(10)).status(75);
}
