//! Signed server decisions (DESIGN §6, §8; issue "No way around a human" §2 and §7).
//!
//! The attack: a policy routes approvals to a `kind: server` backend, and whatever answers at
//! that URL says "approved by alice and bob". Here a 60-line fake server on 127.0.0.1 answers
//! exactly that — with no statement, with a statement signed by its own key, with a real
//! statement replayed from another request, and (holding the pinned key, to reach the checks
//! behind the signature) for another digest, with too few approvers, counting the requester,
//! or saying something other than approved. Each time the command (a `touch` that would leave a
//! marker) must not run and gate exits 75 saying what was wrong. A positive control shows the
//! same fake with the pinned key and a valid statement does run, so the refusals are the checks.
//!
//! Then the real `gate serve`: its key pinned (`gate serve key` = `GET /v1/server-key` = what
//! `gate login` shows), an approval that runs, the statement in the decision record, and
//! `gate log verify` catching a stripped, forged, replayed, re-keyed or re-digested statement
//! in a log whose chain and checkpoint were rewritten to match. Last, the server side of §7:
//! a change whose audit event cannot be written is not made (503, state unchanged), and every
//! authenticated route answers 401 before it reads a body.
//!
//! Signing and checkpoint writing here use ed25519-dalek directly, not gate's code.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::jcs::{jcs, record_hash};
use common::process::Server;
use common::{Checked, Ran};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_gate");

// ---------------------------------------------------------------------------------------------
// Processes.

/// `gate` with a clean environment whose state, config and home live under `home`.
fn gate(home: &Path) -> Command {
    common::gate_in(home)
}

/// Runs `c` to the end, checked like [`common::Gate::run`]: exit 0 and a silent stderr unless
/// the test says otherwise.
fn run(c: Command) -> Checked {
    Checked::new(Ran::of(c))
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Keys and signed notes, from docs/audit-log-format.md alone.

struct Key {
    name: String,
    sk: SigningKey,
}

impl Key {
    fn new(name: &str, seed: u8) -> Key {
        Key {
            name: name.into(),
            sk: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// A `PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>` file.
    fn read(path: &Path) -> Key {
        let s = std::fs::read_to_string(path).unwrap();
        let rest = s.trim().strip_prefix("PRIVATE+KEY+").unwrap();
        let mut parts = rest.splitn(3, '+');
        let (name, _, b64) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let raw = B64.decode(b64).unwrap();
        Key {
            name: name.into(),
            sk: SigningKey::from_bytes(raw[1..].try_into().unwrap()),
        }
    }

    fn id(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0x0a, 0x01]);
        h.update(self.sk.verifying_key().as_bytes());
        let d = h.finalize();
        [d[0], d[1], d[2], d[3]]
    }

    fn vkey(&self) -> String {
        let mut b = vec![0x01];
        b.extend_from_slice(self.sk.verifying_key().as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.id()), B64.encode(b))
    }

    fn sign(&self, text: &str) -> String {
        let mut sig = self.id().to_vec();
        sig.extend_from_slice(&self.sk.sign(text.as_bytes()).to_bytes());
        format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(sig))
    }
}

/// A `gate-decision/v1` statement text.
fn statement(
    id: &str,
    digest: &str,
    requester: &str,
    status: &str,
    approvals: &[(&str, &str)],
) -> String {
    let mut s = format!(
        "gate-decision/v1\nrequest {id}\ndigest {digest}\nrequester {requester}\nstatus {status}\n"
    );
    for (p, at) in approvals {
        s.push_str(&format!("approval {p} {at}\n"));
    }
    s.push_str("time 2026-11-28T06:00:03.000Z\n");
    s
}

/// The signed text of a note (up to and including the newline before the blank line).
fn note_text(note: &str) -> String {
    let i = note.rfind("\n\n").unwrap();
    note[..=i].to_owned()
}

// ---------------------------------------------------------------------------------------------
// A fake approval server: answers every request with `approved by alice and bob`, its
// `statement` made by `sign` from the request id and digest the client sent.

type Answer = dyn Fn(&str, &str) -> Option<String> + Send + Sync;

struct Fake {
    url: String,
}

fn fake_server(sign: Box<Answer>) -> Fake {
    fake_server_saying("approved", sign)
}

/// A fake that answers with `status` (`approved`, or `denied` by alice).
fn fake_server_saying(status: &'static str, sign: Box<Answer>) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sign: Arc<Answer> = Arc::from(sign);
    let seen: Arc<Mutex<Option<(String, String)>>> = Arc::default();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (sign, seen) = (Arc::clone(&sign), Arc::clone(&seen));
            std::thread::spawn(move || fake_answer(conn, status, &*sign, &seen));
        }
    });
    Fake { url }
}

fn fake_answer(
    mut conn: TcpStream,
    status: &str,
    sign: &Answer,
    seen: &Mutex<Option<(String, String)>>,
) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if r.read_line(&mut request_line).is_err() {
        return;
    }
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    if request_line.starts_with("POST /v1/requests ") {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        *seen.lock().unwrap() = Some((
            v["id"].as_str().unwrap_or("").to_owned(),
            v["digest"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let (id, digest) = seen.lock().unwrap().clone().unwrap_or_default();
    let mut answer = json!({
        "id": id, "status": status, "requester": "erin", "digest": digest,
        "expires": "2099-01-01T00:00:00.000Z", "needed": 0,
        "approvals": [
            {"principal": "alice", "at": "2026-11-28T06:00:01.000Z"},
            {"principal": "bob", "at": "2026-11-28T06:00:02.000Z"},
        ],
    });
    if status == "denied" {
        answer["denial"] =
            json!({"principal": "alice", "at": "2026-11-28T06:00:01.000Z", "comment": "no"});
    }
    if let Some(s) = sign(&id, &digest) {
        answer["statement"] = json!(s);
    }
    let code = if request_line.starts_with("POST /v1/requests ") {
        "201 Created"
    } else {
        "200 OK"
    };
    let text = answer.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A client whose policy sends `touch` to the server at `url` (pinning `key`) and needs two of
/// alice, bob and erin.
fn client_policy(url: &str, key: &str) -> String {
    format!(
        r#"version: 1
groups:
  security: [alice, bob, erin]
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
rules:
  - name: touch-needs-two
    match: {{ program: touch }}
    decision: approve
    approval: {{ approvers: [security], min_approvals: 2, backend: team, timeout: 20s }}
"#
    )
}

/// Runs `touch MARKER` through gate against `url`; returns the run and whether it touched.
fn touch_through(url: &str, key: &str) -> (Checked, bool) {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(h.join("policy.yaml"), client_policy(url, key)).unwrap();
    let marker = h.join("ran");
    let mut c = gate(h);
    c.env("GATE_TOKEN", "gate_00000000_anything")
        .arg("--policy")
        .arg(h.join("policy.yaml"))
        .args(["--", "touch"])
        .arg(&marker);
    let r = run(c);
    let touched = marker.exists();
    if r.status != 0 {
        // Whatever was refused is on record, as not run.
        let recs = records(&h.join("audit.jsonl"));
        let d = recs.iter().find(|r| r["kind"] == "decision").unwrap();
        assert_eq!(d["decision"]["run"], false, "{d}");
        assert!(d["decision"].get("statement").is_none(), "{d}");
    }
    (r, touched)
}

#[track_caller]
fn refused(r: &Checked, touched: bool, why: &str) {
    r.status(75)
        .stderr_contains(why)
        .stderr_contains("refusing to run");
    assert!(!touched, "the command ran on an unproven approval");
}

const PINNED: u8 = 11;

fn pinned() -> Key {
    Key::new("gate/approvals", PINNED)
}

const TIMES: [(&str, &str); 2] = [
    ("alice", "2026-11-28T06:00:01.000Z"),
    ("bob", "2026-11-28T06:00:02.000Z"),
];

#[test]
fn fake_server_approval_without_a_statement_runs_nothing() {
    let fake = fake_server(Box::new(|_, _| None));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "carries no signed statement");
}

#[test]
fn fake_server_signing_with_its_own_key_runs_nothing() {
    // Same key name as the pinned one, another key: the id tells them apart.
    let own = Key::new("gate/approvals", 99);
    let fake = fake_server(Box::new(move |id, digest| {
        Some(own.sign(&statement(id, digest, "erin", "approved", &TIMES)))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "not signed by the trusted server key");
}

#[test]
fn statement_altered_after_signing_runs_nothing() {
    let key = pinned();
    let fake = fake_server(Box::new(move |id, digest| {
        let note = key.sign(&statement(id, digest, "erin", "approved", &TIMES[..1]));
        // One approval signed; a second one written in afterwards.
        Some(note.replace("time ", "approval bob 2026-11-28T06:00:02.000Z\ntime "))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "does not verify");
}

#[test]
fn fake_server_replaying_a_real_statement_for_another_request_runs_nothing() {
    // A genuine, decided request of the real server, and its genuine statement.
    let srv_home = tempfile::tempdir().unwrap();
    let srv = Server::start(srv_home.path(), SERVER_POLICY);
    let [alice, bob, erin] = ["alice", "bob", "erin"].map(|p| srv.token(p, None));
    let (s, v) = srv.create(&erin, &["touch", "/tmp/elsewhere"]);
    assert_eq!(s, 201, "{v}");
    let other = v["id"].as_str().unwrap().to_owned();
    for t in [&alice, &bob] {
        let (s, v) = srv.call(
            "POST",
            &format!("/v1/requests/{other}/approve"),
            Some(t),
            None,
        );
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = srv.call("GET", &format!("/v1/requests/{other}"), Some(&alice), None);
    let real = v["statement"].as_str().unwrap().to_owned();
    let fake = fake_server(Box::new(move |_, _| Some(real.clone())));
    let (r, touched) = touch_through(&fake.url, &srv.vkey());
    refused(&r, touched, "replayed from another request");
}

#[test]
fn signed_statement_for_another_digest_runs_nothing() {
    let key = pinned();
    let fake = fake_server(Box::new(move |id, _| {
        Some(key.sign(&statement(id, &"ab".repeat(32), "erin", "approved", &TIMES)))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "another command");
}

#[test]
fn signed_statement_with_too_few_approvals_runs_nothing() {
    let key = pinned();
    let fake = fake_server(Box::new(move |id, digest| {
        Some(key.sign(&statement(id, digest, "erin", "approved", &TIMES[..1])))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "do not satisfy");
}

#[test]
fn signed_statement_counting_the_requester_runs_nothing() {
    let key = pinned();
    let fake = fake_server(Box::new(move |id, digest| {
        Some(key.sign(&statement(
            id,
            digest,
            "erin",
            "approved",
            &[
                ("erin", "2026-11-28T06:00:01.000Z"),
                ("alice", "2026-11-28T06:00:02.000Z"),
            ],
        )))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "do not satisfy");
}

#[test]
fn signed_denial_answered_as_approved_runs_nothing() {
    let key = pinned();
    let fake = fake_server(Box::new(move |id, digest| {
        Some(key.sign(&statement(id, digest, "erin", "expired", &TIMES)))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    refused(&r, touched, "says `expired`, not `approved`");
}

#[test]
fn unsigned_denial_is_no_decision_rather_than_a_denial_by_someone() {
    // A fake saying "denied by alice" without a statement: nothing runs, as with any denial,
    // but the log does not pin a denial on alice, and the exit says no decision (75).
    let fake = fake_server_saying("denied", Box::new(|_, _| None));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    r.status(75);
    assert!(!touched);
    r.stderr_contains("answered `denied`");
    // Signed by the pinned key, the same denial is a denial by alice (77).
    let key = pinned();
    let fake = fake_server_saying(
        "denied",
        Box::new(move |id, digest| {
            let text = statement(id, digest, "erin", "denied", &[])
                .replace("time ", "denial alice 2026-11-28T06:00:01.000Z\ntime ");
            Some(key.sign(&text))
        }),
    );
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    r.status(77);
    assert!(!touched);
    r.stderr_contains("denied by alice");
}

#[test]
fn a_valid_statement_by_the_pinned_key_runs_and_is_recorded() {
    // The positive control for the refusals above: same fake, the pinned key, a valid statement.
    let key = pinned();
    let fake = fake_server(Box::new(move |id, digest| {
        Some(key.sign(&statement(id, digest, "erin", "approved", &TIMES)))
    }));
    let (r, touched) = touch_through(&fake.url, &pinned().vkey());
    r.status(0);
    assert!(touched);
    r.stderr_contains("approved by alice, bob");
}

// ---------------------------------------------------------------------------------------------
// Policy: `key` is required on a server backend, and checked.

#[test]
fn server_backend_without_a_usable_key_is_a_policy_error() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let good = pinned().vkey();
    let cases = [
        (
            "team: { kind: server, url: \"http://127.0.0.1:9\" }".to_owned(),
            "needs `key`",
        ),
        (
            "team: { kind: server, url: \"http://127.0.0.1:9\", key: \"not-a-key\" }".to_owned(),
            "not a server verifier key",
        ),
        (
            // A key id that does not belong to the key.
            format!(
                "team: {{ kind: server, url: \"http://127.0.0.1:9\", key: \"{}\" }}",
                good.replacen(good.split('+').nth(1).unwrap(), "00000000", 1)
            ),
            "not a server verifier key",
        ),
        (
            format!("team: {{ kind: local, key: \"{good}\" }}"),
            "does not apply",
        ),
    ];
    for (backend, why) in cases {
        let f = h.join("p.yaml");
        std::fs::write(&f, format!("version: 1\nbackends:\n  {backend}\n")).unwrap();
        let mut c = gate(h);
        c.args(["policy", "lint"]).arg(&f);
        let r = run(c);
        r.status(78);
        r.stderr_contains(why);
        r.stderr_contains("p.yaml:3:");
        // The run form refuses the policy too (78), and nothing runs.
        let mut c = gate(h);
        c.env("GATE_POLICY", &f).args(["--", "true"]);
        run(c).status(78).stderr_contains(why);
    }
    let f = h.join("ok.yaml");
    std::fs::write(
        &f,
        format!("version: 1\nbackends:\n  team: {{ kind: server, url: \"http://x\", key: \"{good}\" }}\n"),
    )
    .unwrap();
    let mut c = gate(h);
    c.args(["policy", "lint"]).arg(&f);
    run(c).status(0).stderr("gate: 1 file OK, 0 rules\n");
}

// ---------------------------------------------------------------------------------------------
// The real server.

const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  security: [alice, bob, erin]
rules:
  - name: touch-needs-two
    match: { program: touch }
    decision: approve
    approval: { approvers: [security], min_approvals: 2 }
  - name: echo-needs-two
    match: { program: echo }
    decision: approve
    approval: { approvers: [security], min_approvals: 2 }
"#;

/// What the signed-decision tests add to the shared server harness.
impl Server {
    /// The server's private key: `<database>.key`, beside its database.
    fn signing_key(&self) -> Key {
        Key::read(&self.db.with_extension("key"))
    }

    fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// `method path` with `token` and a JSON `body`: the status and the JSON answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let http = self.http();
        let mut rb = http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Creates a request for `argv` as `token`'s principal; its id.
    fn create(&self, token: &str, argv: &[&str]) -> (u16, Value) {
        let digest = digest_of(argv, "/srv");
        self.call(
            "POST",
            "/v1/requests",
            Some(token),
            Some(json!({"argv": argv, "cwd": "/srv", "digest": digest})),
        )
    }
}

/// SHA-256 of the canonical `{argv, cwd, env: {}, payload: []}`.
fn digest_of(argv: &[&str], cwd: &str) -> String {
    let doc = json!({"argv": argv, "cwd": cwd, "env": {}, "payload": []});
    hex::encode(Sha256::digest(jcs(&doc).as_bytes()))
}

/// A client home that pins the server's key and ran `touch MARKER`, approved by alice and bob.
struct Approved {
    srv: Server,
    _srv_home: tempfile::TempDir,
    home: tempfile::TempDir,
    key: String,
    id: String,
}

fn approved_run() -> Approved {
    let srv_home = tempfile::tempdir().unwrap();
    let srv = Server::start(srv_home.path(), SERVER_POLICY);
    let [alice, bob, erin] = ["alice", "bob", "erin"].map(|p| srv.token(p, None));
    let key = srv.vkey();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(h.join("policy.yaml"), client_policy(&srv.url, &key)).unwrap();
    let marker = h.join("ran");
    let mut c = gate(h);
    c.env("GATE_TOKEN", &erin)
        .arg("--policy")
        .arg(h.join("policy.yaml"))
        .args(["--", "touch"])
        .arg(&marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // Wait for the request to show up, then approve it twice.
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (s, v) = srv.call("GET", "/v1/requests?status=pending", Some(&alice), None);
        assert_eq!(s, 200, "{v}");
        if let Some(r) = v["requests"].as_array().and_then(|a| a.first()) {
            break r["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the client never asked");
        std::thread::sleep(Duration::from_millis(50));
    };
    for t in [&alice, &bob] {
        let (s, v) = srv.call("POST", &format!("/v1/requests/{id}/approve"), Some(t), None);
        assert_eq!(s, 200, "{v}");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(marker.exists(), "the approved command did not run");
    Approved {
        srv,
        _srv_home: srv_home,
        home,
        key,
        id,
    }
}

impl Approved {
    fn log(&self) -> PathBuf {
        self.home.path().join("audit.jsonl")
    }

    /// `gate log verify LOG --json [args]` in the client's home; exit status and report.
    fn verify(&self, args: &[&str]) -> (i32, Value) {
        let mut c = gate(self.home.path());
        c.args(["log", "verify"])
            .arg(self.log())
            .arg("--json")
            .args(args);
        let r = run(c);
        let v = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
        // The report says it all: nothing on stderr; the caller checks the status.
        r.stderr("");
        (r.take_status(), v)
    }

    fn policy(&self) -> String {
        self.home
            .path()
            .join("policy.yaml")
            .to_string_lossy()
            .into_owned()
    }

    /// Rewrites the decision record of the approved run with `edit`, then re-chains every
    /// record after it and re-signs the checkpoint with the host's own key: what someone who
    /// holds the host's files can do. Returns the decision's seq.
    fn tamper(&self, edit: impl FnOnce(&mut Value)) -> u64 {
        let log = self.log();
        let mut recs = records(&log);
        let i = recs
            .iter()
            .position(|r| r["kind"] == "decision" && r["request_id"] == self.id.as_str())
            .unwrap();
        edit(&mut recs[i]);
        let mut out = String::new();
        for j in 0..recs.len() {
            if j > 0 {
                let prev = recs[j - 1]["hash"].clone();
                recs[j]["prev"] = prev;
            }
            let h = record_hash(&recs[j]);
            recs[j]["hash"] = json!(h);
            out.push_str(&jcs(&recs[j]));
            out.push('\n');
        }
        std::fs::write(&log, out).unwrap();
        let host = Key::read(&self.home.path().join("state/gate/signing.key"));
        let last = recs.last().unwrap()["hash"].as_str().unwrap().to_owned();
        let text = format!(
            "gate/{}\n{}\n{}\n",
            recs[0]["log_id"].as_str().unwrap(),
            recs.len(),
            B64.encode(hex::decode(last).unwrap())
        );
        let cp = PathBuf::from(format!("{}.checkpoint", log.display()));
        std::fs::write(cp, host.sign(&text)).unwrap();
        recs[i]["seq"].as_u64().unwrap()
    }
}

fn problems(report: &Value) -> Vec<(u64, String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["seq"].as_u64().unwrap_or(u64::MAX),
                p["code"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn violation(res: (i32, Value), seq: u64, why: &str) {
    let (status, report) = res;
    assert_eq!(status, 1, "{report:#}");
    let p = problems(&report);
    assert!(
        p.iter()
            .any(|(s, code, reason)| *s == seq && code == "compliance" && reason.contains(why)),
        "no compliance problem at seq {seq} with {why:?}: {p:?}"
    );
    // Nothing else is wrong: the chain and checkpoint were rewritten to match.
    assert!(p.iter().all(|(_, code, _)| code == "compliance"), "{p:?}");
}

#[test]
fn the_real_server_with_its_key_pinned_runs_and_log_verify_proves_it() {
    let a = approved_run();
    // One key, however it is asked for.
    let (s, v) = a.srv.call("GET", "/v1/server-key", None, None);
    assert_eq!(s, 200);
    assert_eq!(v["key"], json!(a.key));
    assert_eq!(a.key, a.srv.signing_key().vkey());
    // `gate login` shows it, with how to pin it.
    let login_home = tempfile::tempdir().unwrap();
    let mut c = gate(login_home.path());
    c.args(["login", &a.srv.url]).stdin(Stdio::piped());
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let alice = a.srv.token("alice", None);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(alice.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), a.key);
    assert!(stderr.contains(&format!("key: \"{}\"", a.key)), "{stderr}");

    // The statement is in the decision record, and it is the server's, for this request.
    let recs = records(&a.log());
    let d = recs
        .iter()
        .find(|r| r["kind"] == "decision" && r["request_id"] == a.id.as_str())
        .unwrap();
    let note = d["decision"]["statement"].as_str().expect("a statement");
    assert!(note.starts_with(&format!("gate-decision/v1\nrequest {}\n", a.id)));
    let names: BTreeSet<&str> = d["decision"]["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["principal"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["alice", "bob"]));
    let text = note_text(note);
    assert_eq!(
        a.srv.signing_key().sign(&text),
        note,
        "signed by the server key"
    );

    // Verified with the policy (its backend pins the key): intact, nothing unchecked.
    let (status, report) = a.verify(&["--policy", &a.policy()]);
    assert_eq!(status, 0, "{report:#}");
    assert!(
        !report["warnings"].to_string().contains("--server-key"),
        "{report:#}"
    );
    // With `--server-key` and no policy: the same.
    let (status, report) = a.verify(&["--server-key", &a.key]);
    assert_eq!(status, 0, "{report:#}");
    assert!(!report["warnings"].to_string().contains("--server-key"));
    // With no trusted key at all: intact, but a warning says how to pass one.
    let (status, report) = a.verify(&[]);
    assert_eq!(status, 0, "{report:#}");
    assert!(
        report["warnings"].to_string().contains("--server-key"),
        "{report:#}"
    );
    // Against another server's key: the statement is not that server's.
    let seq = d["seq"].as_u64().unwrap();
    violation(
        a.verify(&["--server-key", &Key::new("gate/other", 5).vkey()]),
        seq,
        "not signed by the trusted server key",
    );
}

#[test]
fn log_verify_catches_a_stripped_statement() {
    let a = approved_run();
    let seq = a.tamper(|r| {
        r["decision"].as_object_mut().unwrap().remove("statement");
    });
    violation(
        a.verify(&["--server-key", &a.key]),
        seq,
        "no signed decision statement",
    );
    // Even with no key to check signatures with, a missing statement is a violation.
    violation(a.verify(&[]), seq, "no signed decision statement");
}

#[test]
fn log_verify_catches_a_stripped_statement_relabelled_as_local() {
    let a = approved_run();
    let seq = a.tamper(|r| {
        r["decision"].as_object_mut().unwrap().remove("statement");
        for x in r["decision"]["approvals"].as_array_mut().unwrap() {
            x["via"] = json!("local");
        }
    });
    // The requirement was routed to `team`, a server backend of the policy.
    violation(
        a.verify(&["--policy", &a.policy()]),
        seq,
        "no signed decision statement",
    );
}

#[test]
fn log_verify_catches_a_forged_statement() {
    let a = approved_run();
    let seq = a.tamper(|r| {
        let note = r["decision"]["statement"]
            .as_str()
            .unwrap()
            .replace("approval bob", "approval mallory");
        r["decision"]["statement"] = json!(note);
        for x in r["decision"]["approvals"].as_array_mut().unwrap() {
            if x["principal"] == "bob" {
                x["principal"] = json!("mallory");
            }
        }
    });
    violation(a.verify(&["--server-key", &a.key]), seq, "does not verify");
}

#[test]
fn log_verify_catches_approvers_that_differ_from_the_statement() {
    let a = approved_run();
    let seq = a.tamper(|r| {
        for x in r["decision"]["approvals"].as_array_mut().unwrap() {
            if x["principal"] == "bob" {
                x["principal"] = json!("erin-twin");
            }
        }
    });
    violation(
        a.verify(&["--policy", &a.policy()]),
        seq,
        "the server's signed statement names",
    );
}

#[test]
fn log_verify_catches_a_statement_for_another_request() {
    let a = approved_run();
    // A genuine statement of the same server, for a request of its own.
    let [alice, bob, erin] = ["alice", "bob", "erin"].map(|p| a.srv.token(p, None));
    let (s, v) = a.srv.create(&erin, &["echo", "other"]);
    assert_eq!(s, 201, "{v}");
    let other = v["id"].as_str().unwrap().to_owned();
    for t in [&alice, &bob] {
        let (s, v) = a.srv.call(
            "POST",
            &format!("/v1/requests/{other}/approve"),
            Some(t),
            None,
        );
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = a
        .srv
        .call("GET", &format!("/v1/requests/{other}"), Some(&alice), None);
    let replayed = v["statement"].as_str().unwrap().to_owned();
    let seq = a.tamper(|r| r["decision"]["statement"] = json!(replayed));
    violation(
        a.verify(&["--server-key", &a.key]),
        seq,
        "replayed from another request",
    );
}

#[test]
fn log_verify_catches_a_statement_for_another_digest() {
    let a = approved_run();
    let key = a.srv.signing_key();
    let seq = a.tamper(|r| {
        let note = r["decision"]["statement"].as_str().unwrap();
        let digest = r["request"]["digest"].as_str().unwrap();
        let text = note_text(note).replace(digest, &"0".repeat(64));
        r["decision"]["statement"] = json!(key.sign(&text));
    });
    violation(a.verify(&["--server-key", &a.key]), seq, "another command");
}

#[test]
fn log_verify_catches_a_statement_signed_by_another_key() {
    let a = approved_run();
    let seq = a.tamper(|r| {
        let text = note_text(r["decision"]["statement"].as_str().unwrap());
        r["decision"]["statement"] = json!(Key::new("gate/vm", 77).sign(&text));
    });
    violation(
        a.verify(&["--policy", &a.policy()]),
        seq,
        "not signed by the trusted server key",
    );
}

// ---------------------------------------------------------------------------------------------
// §7: a change that can't be recorded is not made; authentication before the body.

#[test]
fn unrecordable_decisions_are_not_taken() {
    let srv_home = tempfile::tempdir().unwrap();
    let srv = Server::start(srv_home.path(), SERVER_POLICY);
    let [alice, bob, erin] = ["alice", "bob", "erin"].map(|p| srv.token(p, None));
    let (s, v) = srv.create(&erin, &["echo", "one"]);
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = srv.create(&erin, &["echo", "two"]);
    assert_eq!(s, 201, "{v}");
    let id2 = v["id"].as_str().unwrap().to_owned();
    let (s, _) = srv.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 200);
    let events_before = records(&srv.audit).len();

    // The fault: the server's audit log path becomes a directory (no append can open it).
    let aside = srv.audit.with_extension("aside");
    std::fs::rename(&srv.audit, &aside).unwrap();
    std::fs::create_dir(&srv.audit).unwrap();

    let unrecorded = |(s, v): (u16, Value), what: &str| {
        assert_eq!(s, 503, "{what}: {v}");
        assert_eq!(v["error"], "unrecorded", "{what}: {v}");
        assert!(v["message"].as_str().unwrap().contains("audit log"), "{v}");
    };
    // The approval that would decide the request is refused, and the request is as it was.
    unrecorded(
        srv.call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            Some(&bob),
            None,
        ),
        "approve",
    );
    let (_, v) = srv.call("GET", &format!("/v1/requests/{id}"), Some(&alice), None);
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    assert!(v.get("statement").is_none(), "{v}");
    unrecorded(
        srv.call(
            "POST",
            &format!("/v1/requests/{id2}/deny"),
            Some(&bob),
            Some(json!({"reason": "no"})),
        ),
        "deny",
    );
    unrecorded(
        srv.call(
            "POST",
            &format!("/v1/requests/{id2}/cancel"),
            Some(&erin),
            None,
        ),
        "cancel",
    );
    let (_, v) = srv.call("GET", &format!("/v1/requests/{id2}"), Some(&alice), None);
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["approvals"], json!([]), "{v}");
    let digest = digest_of(&["echo", "three"], "/srv");
    let new_id = "01a2a000-0000-7000-8000-000000000003";
    unrecorded(
        srv.call(
            "POST",
            "/v1/requests",
            Some(&erin),
            Some(json!({"id": new_id, "argv": ["echo", "three"], "cwd": "/srv", "digest": digest})),
        ),
        "create",
    );
    let (s, _) = srv.call("GET", &format!("/v1/requests/{new_id}"), Some(&alice), None);
    assert_eq!(s, 404, "a request whose creation was not recorded exists");
    let health = srv
        .http()
        .get(format!("{}/healthz", srv.url))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert!(health.text().unwrap().contains("audit log"));

    // The log is back: the same approval now decides, and every event is on record.
    std::fs::remove_dir(&srv.audit).unwrap();
    std::fs::rename(&aside, &srv.audit).unwrap();
    let (s, v) = srv.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        Some(&bob),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "approved");
    assert!(v["statement"].as_str().is_some());
    let events = records(&srv.audit);
    assert_eq!(
        events.len(),
        events_before + 1,
        "only the taken decision was added"
    );
    assert_eq!(events.last().unwrap()["event"]["type"], "approval");
    let mut c = gate(&srv.home);
    c.args(["log", "verify"]).arg(&srv.audit);
    run(c).status(0);
}

#[test]
fn every_authenticated_route_answers_401_before_reading_the_body() {
    let srv_home = tempfile::tempdir().unwrap();
    let srv = Server::start(srv_home.path(), SERVER_POLICY);
    let erin = srv.token("erin", None);
    let (_, v) = srv.create(&erin, &["echo", "x"]);
    let id = v["id"].as_str().unwrap().to_owned();
    let log_id = "0123456789abcdef0123456789abcdef";
    let routes = [
        ("POST", "/v1/requests".to_owned()),
        ("POST", format!("/v1/requests/{id}/approve")),
        ("POST", format!("/v1/requests/{id}/deny")),
        ("POST", format!("/v1/requests/{id}/cancel")),
        ("POST", format!("/v1/logs/{log_id}/records")),
        ("GET", format!("/v1/requests/{id}")),
        ("GET", "/v1/requests".to_owned()),
        ("GET", "/v1/me".to_owned()),
    ];
    let bodies: [(&str, &[u8]); 3] = [
        ("application/json", b"{\"argv\": 5, "),
        ("text/plain", b"not json at all"),
        ("application/json", b"{\"unknown_field\": true}"),
    ];
    let http = srv.http();
    for (method, path) in &routes {
        for (ct, body) in bodies {
            for token in [None, Some("gate_00000000_not-a-token")] {
                let mut rb = http
                    .request(method.parse().unwrap(), format!("{}{path}", srv.url))
                    .header("Content-Type", ct)
                    .body(body.to_vec());
                if let Some(t) = token {
                    rb = rb.bearer_auth(t);
                }
                let r = rb.send().unwrap();
                assert_eq!(
                    r.status().as_u16(),
                    401,
                    "{method} {path} ({ct}, token {token:?})"
                );
                assert_eq!(
                    r.headers()
                        .get("www-authenticate")
                        .map(|v| v.to_str().unwrap()),
                    Some("Bearer")
                );
                let v: Value = r.json().unwrap();
                assert_eq!(v["error"], "unauthorized", "{method} {path}: {v}");
            }
        }
    }
    // The web page's POSTs: no session is a 403 before the form body is read.
    for path in [format!("/requests/{id}/decide"), "/signout".to_owned()] {
        for (ct, body) in bodies {
            let r = http
                .post(format!("{}{path}", srv.url))
                .header("Content-Type", ct)
                .body(body.to_vec())
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 403, "POST {path} ({ct})");
            assert!(r.text().unwrap().contains("not signed in"), "POST {path}");
        }
    }
    // The same bad body with a valid token is judged on its merits.
    let (s, v) = srv.call(
        "POST",
        "/v1/requests",
        Some(&erin),
        Some(json!({"argv": 5})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("argv"), "{v}");
}

#[test]
fn a_full_disk_under_the_server_log_takes_no_decision() {
    // The server's audit log on a 256 KiB tmpfs of its own (a private mount namespace), which
    // the test fills through /proc/<pid>/root: a real ENOSPC, injected, not waited for.
    let srv_home = tempfile::tempdir().unwrap();
    let home = srv_home.path();
    std::fs::write(home.join("server-policy.yaml"), SERVER_POLICY).unwrap();
    let small = home.join("small");
    std::fs::create_dir(&small).unwrap();
    let db = home.join("server.db");
    let mut c = gate(home);
    c.arg("--policy")
        .arg(home.join("server-policy.yaml"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--audit-log")
        .arg(small.join("server-audit.jsonl"));
    let mut w = Command::new("unshare");
    w.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=256k,mode=0755 gate-test \"$0\" && exec \"$@\"")
        .arg(&small)
        .arg(BIN)
        .args(c.get_args())
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(home);
    let s = common::spawn_server(w);
    let srv = Server::adopt(s, home, db, small.join("server-audit.jsonl"));
    let [alice, bob, erin] = ["alice", "bob", "erin"].map(|p| srv.token(p, None));
    let (st, v) = srv.create(&erin, &["echo", "one"]);
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (st, _) = srv.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200);

    // Fill the server's tmpfs (seen through its mount namespace) to the last page.
    let inside = PathBuf::from(format!("/proc/{}/root{}", srv.pid(), small.display()));
    // The checkpoint's two slots are rewritten in place and need no new page, and a record
    // may still fit in the log's last page: what needs space for sure is a checkpoint left as
    // one plain note (by an older gate), which the next append replaces by a new file.
    let cp = inside.join("server-audit.jsonl.checkpoint");
    let slots = std::fs::read(&cp).expect("the server's checkpoint");
    std::fs::write(&cp, gate::audit::log::pick_checkpoint(&slots, None)).unwrap();
    let filler = inside.join("filler");
    let mut f = std::fs::File::create(&filler).expect("the server's tmpfs");
    let chunk = vec![0u8; 4096];
    let full = loop {
        if let Err(e) = f.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(28), "ENOSPC: {full}");
    drop(f);

    let health = srv
        .http()
        .get(format!("{}/healthz", srv.url))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert!(health.text().unwrap().contains("no space left"));
    let (st, v) = srv.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"], "unrecorded", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("disk full writing the audit log"),
        "the refusal must say what failed: {v}"
    );
    let (_, v) = srv.call("GET", &format!("/v1/requests/{id}"), Some(&alice), None);
    assert_eq!(
        v["status"], "pending",
        "an unrecorded approval decided the request: {v}"
    );
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");

    // Space again: the same approval is taken.
    std::fs::remove_file(&filler).unwrap();
    let (st, v) = srv.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved");
    let health = srv
        .http()
        .get(format!("{}/healthz", srv.url))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn log_verify_wants_the_key_of_the_backend_the_approval_was_routed_to() {
    let a = approved_run();
    // The policy also pins a second server, whose key signs a copy of the statement.
    let other = Key::new("gate/other", 5);
    let policy = std::fs::read_to_string(a.policy()).unwrap().replace(
        "backends:\n",
        &format!(
            "backends:\n  other: {{ kind: server, url: \"http://127.0.0.1:9\", key: \"{}\" }}\n",
            other.vkey()
        ),
    );
    std::fs::write(a.policy(), policy).unwrap();
    let (status, report) = a.verify(&["--policy", &a.policy()]);
    assert_eq!(status, 0, "{report:#}");
    let seq = a.tamper(|r| {
        let text = note_text(r["decision"]["statement"].as_str().unwrap());
        r["decision"]["statement"] = json!(other.sign(&text));
    });
    violation(
        a.verify(&["--policy", &a.policy()]),
        seq,
        "not signed by the trusted server key",
    );
}

#[test]
fn serve_key_made_before_the_server_is_the_key_it_signs_with() {
    let srv_home = tempfile::tempdir().unwrap();
    let home = srv_home.path();
    let key_file = home.join("keys/server.key");
    std::fs::write(home.join("server-policy.yaml"), SERVER_POLICY).unwrap();
    // Asked first: the key is made, the way the server would make it.
    let mut c = gate(home);
    c.arg("--policy")
        .arg(home.join("server-policy.yaml"))
        .args(["serve", "key", "--db"])
        .arg(home.join("server.db"))
        .arg("--key")
        .arg(&key_file);
    let r = run(c);
    r.status(0);
    let printed = r.stdout.trim().to_owned();
    assert!(key_file.exists(), "`gate serve key` made no key");
    assert_eq!(Key::read(&key_file).vkey(), printed);
    // The server started with the same options signs with it.
    let mut c = common::gate_in(home);
    c.arg("--policy")
        .arg(home.join("server-policy.yaml"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(home.join("server.db"))
        .arg("--audit-log")
        .arg(home.join("server-audit.jsonl"))
        .arg("--key")
        .arg(&key_file);
    let srv = Server::adopt(
        common::spawn_server(c),
        home,
        home.join("server.db"),
        home.join("server-audit.jsonl"),
    );
    let (st, v) = srv.call("GET", "/v1/server-key", None, None);
    assert_eq!(st, 200);
    assert_eq!(v["key"], json!(printed));
}

#[test]
fn a_server_never_signs_with_the_host_key() {
    // The server run with the policy hosts use: its `audit.key` names the host signing key,
    // with which the server would cosign host checkpoints as if it were a witness. The server
    // takes its own key (`<database>.key`) instead, and `--key` naming the host key is refused.
    let srv_home = tempfile::tempdir().unwrap();
    let home = srv_home.path();
    let host_key = home.join("host/signing.key");
    let policy = format!("{SERVER_POLICY}audit:\n  key: {}\n", host_key.display());
    std::fs::write(home.join("server-policy.yaml"), &policy).unwrap();
    let serve_key = |extra: &[&std::path::Path]| {
        let mut c = gate(home);
        c.arg("--policy")
            .arg(home.join("server-policy.yaml"))
            .args(["serve", "key", "--db"])
            .arg(home.join("server.db"));
        for k in extra {
            c.arg("--key").arg(k);
        }
        run(c)
    };
    let r = serve_key(&[]);
    r.status(0);
    assert!(!host_key.exists(), "the server made the host's key");
    assert_eq!(
        Key::read(&home.join("server.key")).vkey(),
        r.stdout.trim(),
        "the server's key is <database>.key"
    );
    let r = serve_key(&[&host_key]);
    r.status(78)
        .stderr_contains("a server never signs with a host's key")
        .stderr_contains("gate serve --key FILE");
}

#[test]
fn log_verify_catches_a_mistyped_statement_or_decision() {
    let a = approved_run();
    let seq = a.tamper(|r| r["decision"]["statement"] = json!(5));
    violation(a.verify(&["--server-key", &a.key]), seq, "not a string");
    // A decision made unreadable (a mistyped field) hides nothing from the compliance check.
    let a = approved_run();
    let seq = a.tamper(|r| {
        r["decision"].as_object_mut().unwrap().remove("statement");
        r["decision"]["approvals"] = json!("alice and bob");
    });
    violation(a.verify(&["--server-key", &a.key]), seq, "cannot be read");
}

/// `gate serve key --db PATH` names the key of that database, whatever the state directory:
/// a server's identity travels with its database, and is not the user's host-log key.
#[test]
fn serve_key_is_located_by_the_database_not_the_state_directory() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let db = a.path().join("srv.db");
    let key = |home: &Path, db: &Path| {
        let mut c = gate(home);
        c.args(["serve", "key", "--db"]).arg(db);
        let r = run(c);
        r.status(0);
        r.stdout.trim().to_owned()
    };
    let first = key(a.path(), &db);
    assert_eq!(
        key(b.path(), &db),
        first,
        "another state directory, the same database"
    );
    assert!(
        db.with_extension("key").exists(),
        "the key lives beside the database"
    );
    assert_ne!(key(a.path(), &a.path().join("other.db")), first);
    let mut c = gate(a.path());
    c.args(["log", "key"]);
    let host = run(c);
    host.status(0);
    assert_ne!(
        host.stdout.trim(),
        first,
        "the server key is not the host-log key"
    );
}
