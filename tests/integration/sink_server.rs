//! Records leave the machine (issue 5, DESIGN §6 and §8): the `server` sink against a real
//! `gate serve` on 127.0.0.1, and the server as witness of a host's log.
//!
//! Every test starts the real binary on an ephemeral (or reserved) loopback port with its own
//! database, audit log and XDG directories — the server's state directory, and so its signing
//! key, is not the client's — and a Drop guard stops it.
//!
//! 1. Ingest: a run ships its records; the server's copy is the local lines byte for byte; the
//!    `.cosigned` checkpoint carries the host's and the server's signatures; a resend is a no-op;
//!    a fork, a shorter history, a foreign signature and a gap are 409 (and recorded); another
//!    log's records are 400; no token is 401.
//! 2. Delivery: 50 runs with the server down all run and warn; one `gate log push` afterwards
//!    delivers everything in order with no duplicate; `require_remote` fails closed (75, nothing
//!    ran, a "not run" result); cursors move only on acknowledgement; concurrent pushes send each
//!    record once.
//! 3. `gate log verify --remote`: intact, local truncation, a re-signed rewrite, local ahead.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::process::Server;
use common::{Checked, Ran};
use gate::audit::note::{Note, NoteSigner, NoteVerifier};
use serde_json::Value;

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

#[track_caller]
fn status(r: &Checked, want: i32) -> &Checked {
    r.status(want)
}

/// The server the records go to: a policy of nothing but the version.
const SERVER_POLICY: &str = "version: 1\n";

/// `gate serve token issue` (works on the database with or without a running server).
fn issue_token(server_home: &Path, db: &Path, principal: &str) -> String {
    let mut c = gate(server_home);
    c.args(["serve", "token", "issue", "--db"])
        .arg(db)
        .args(["--principal", principal]);
    let r = run(c);
    status(&r, 0).stderr_contains(&format!(" for {principal}; it is shown only now"));
    let t = r.stdout.trim().to_owned();
    assert!(t.starts_with("gate_"), "not a token: {t:?}");
    t
}

/// A loopback port nothing listens on right now (for a server started later at a known URL).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A client home whose policy ships to `url`; `policy.yaml` has the sink, `local.yaml` none.
struct Client {
    dir: tempfile::TempDir,
    token: String,
}

impl Client {
    fn new(url: &str, token: &str, require_remote: bool) -> Client {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            format!(
                "version: 1\naudit:\n  sinks:\n    - {{ kind: server, url: \"{url}\" }}\n  require_remote: {require_remote}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("local.yaml"), "version: 1\n").unwrap();
        Client {
            dir,
            token: token.to_owned(),
        }
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> PathBuf {
        self.home().join("audit.jsonl")
    }

    /// `gate --policy policy.yaml ARGS` with the token.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = gate(self.home());
        c.env("GATE_TOKEN", &self.token)
            .arg("--policy")
            .arg(self.home().join("policy.yaml"))
            .args(args);
        c
    }

    /// A run without sinks: the same log, nothing shipped.
    fn run_local(&self, argv: &[&str]) {
        let mut c = gate(self.home());
        c.arg("--policy")
            .arg(self.home().join("local.yaml"))
            .arg("--")
            .args(argv);
        status(&run(c), 0);
    }

    fn vkey(&self) -> String {
        let r = run(self.cmd(&["log", "key"]));
        status(&r, 0);
        r.stdout.trim().to_owned()
    }

    fn signer(&self) -> NoteSigner {
        let s = std::fs::read_to_string(self.home().join("state/gate/signing.key")).unwrap();
        NoteSigner::parse_private(&s).unwrap()
    }

    fn lines(&self) -> Vec<String> {
        read_lines(&self.log())
    }

    fn cursors(&self) -> Vec<Value> {
        let dir = PathBuf::from(format!("{}.sinks", self.log().display()));
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "cursor") {
                out.push(serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap());
            }
        }
        out
    }

    /// The one sink's cursor `next` (0 when it never acknowledged anything).
    fn cursor_next(&self) -> u64 {
        let c = self.cursors();
        assert!(c.len() <= 1, "one sink, one cursor: {c:?}");
        c.first().and_then(|c| c["next"].as_u64()).unwrap_or(0)
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn log_id(lines: &[String]) -> String {
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    v["log_id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

struct Resp {
    status: u16,
    text: String,
    json: Value,
}

impl Resp {
    /// Asserts the HTTP status, showing the body when it differs.
    #[track_caller]
    fn status(&self, want: u16) -> &Self {
        assert_eq!(self.status, want, "{}", self.text);
        self
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn post_records(url: &str, id: &str, token: Option<&str>, body: &str, cp: Option<&str>) -> Resp {
    let mut rb = http()
        .post(format!("{url}/v1/logs/{id}/records"))
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(cp) = cp {
        rb = rb.header(
            "Gate-Checkpoint",
            base64::engine::general_purpose::STANDARD.encode(cp),
        );
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    Resp {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn get(url: &str, token: &str) -> Resp {
    let r = http().get(url).bearer_auth(token).send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    Resp {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// The server's copy of a log, as lines.
fn server_lines(url: &str, id: &str, token: &str) -> Vec<String> {
    let r = get(
        &format!("{url}/v1/logs/{id}/records?from=0&limit=100000"),
        token,
    );
    r.status(200);
    r.text.lines().map(str::to_owned).collect()
}

#[track_caller]
fn refused(r: &Resp, status: u16, code: &str, needle: &str) {
    assert_eq!(r.status, status, "body: {}", r.text);
    assert_eq!(r.json["error"], code, "body: {}", r.text);
    let m = r.json["message"].as_str().unwrap_or("");
    assert!(m.contains(needle), "message lacks {needle:?}: {m}");
}

fn body(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// Rewriting a log the way an attacker with the host key would.

/// Re-hashes and re-chains `lines` from `from` on (after `edit` changed some of them).
fn rechain(lines: &mut [String], from: usize) {
    for i in from..lines.len() {
        let mut v: Value = serde_json::from_str(&lines[i]).unwrap();
        if i > 0 {
            let prev: Value = serde_json::from_str(&lines[i - 1]).unwrap();
            v["prev"] = prev["hash"].clone();
        }
        let m = v.as_object_mut().unwrap();
        m.remove("hash");
        let hash = gate::audit::record::hash_value(&v).unwrap();
        v["hash"] = Value::String(hash);
        lines[i] = gate::audit::jcs::canonicalize(&v).unwrap();
    }
}

/// Lines with the record at `seq` changed (its result's duration) and the chain recomputed.
fn rewritten(lines: &[String], seq: usize) -> Vec<String> {
    let mut out = lines.to_vec();
    let mut v: Value = serde_json::from_str(&out[seq]).unwrap();
    assert_eq!(v["kind"], "result", "rewrite a result record");
    v["result"]["duration_ms"] = Value::from(v["result"]["duration_ms"].as_u64().unwrap() + 1);
    out[seq] = gate::audit::jcs::canonicalize(&v).unwrap();
    rechain(&mut out, seq);
    out
}

/// A checkpoint note over `lines`, signed by `signer`.
fn checkpoint(signer: &NoteSigner, lines: &[String]) -> String {
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let text = gate::audit::log::checkpoint_text(
        last["log_id"].as_str().unwrap(),
        lines.len() as u64,
        last["hash"].as_str().unwrap(),
    );
    signer.sign(&text)
}

/// The newest signed note of a checkpoint file (gate writes two slots).
fn checkpoint_note(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8(gate::audit::log::pick_checkpoint(&bytes, None).to_vec()).unwrap()
}

/// Writes `lines` and a checkpoint signed by `signer` as a log at `path`.
fn write_log(path: &Path, lines: &[String], signer: &NoteSigner) {
    std::fs::write(path, body(lines)).unwrap();
    std::fs::write(
        format!("{}.checkpoint", path.display()),
        checkpoint(signer, lines),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. Ingest.

#[test]
fn server_ingest_witnesses_the_log_and_refuses_rewrites() {
    let sdir = tempfile::tempdir().unwrap();
    let srv = Server::start(sdir.path(), SERVER_POLICY);
    let token = issue_token(sdir.path(), &srv.db, "host1");
    let cl = Client::new(&srv.url, &token, true);

    // A run ships genesis, decision and result.
    let r = run(cl.cmd(&["--", "true"]));
    status(&r, 0);
    assert!(!r.stderr.contains("gate log push"), "{}", r.stderr);
    let local = cl.lines();
    assert_eq!(local.len(), 3, "genesis, decision, result");
    let id = log_id(&local);
    let first_checkpoint = checkpoint_note(&format!("{}.checkpoint", cl.log().display()));
    assert_eq!(
        cl.cursor_next(),
        3,
        "the cursor covers what was acknowledged"
    );

    // The server's copy is the local file, byte for byte.
    let copy = get(&format!("{}/v1/logs/{id}/records?from=0", srv.url), &token);
    copy.status(200);
    assert_eq!(copy.text, std::fs::read_to_string(cl.log()).unwrap());
    let page = get(
        &format!("{}/v1/logs/{id}/records?from=1&limit=1", srv.url),
        &token,
    );
    assert_eq!(page.text, format!("{}\n", local[1]));

    // The cosigned checkpoint: the host's signature and the server's (a different key).
    let cosigned = std::fs::read_to_string(format!("{}.cosigned", cl.log().display()))
        .expect("<log>.cosigned");
    let note = Note::parse(&cosigned).unwrap();
    let host = NoteVerifier::parse(&cl.vkey()).unwrap();
    let server = NoteVerifier::parse(&srv.vkey()).unwrap();
    assert_ne!(host, server, "the server signs with its own key");
    note.verify(&host).expect("host signature");
    note.verify(&server).expect("server cosignature");
    assert_eq!(note.signatures.len(), 2);
    assert_eq!(
        note.text,
        gate::audit::log::checkpoint_text(
            &id,
            3,
            serde_json::from_str::<Value>(&local[2]).unwrap()["hash"]
                .as_str()
                .unwrap()
        )
    );
    let head = get(&format!("{}/v1/logs/{id}/head", srv.url), &token);
    head.status(200);
    assert_eq!(head.json["count"], 3);
    assert_eq!(head.json["cosigned"].as_str(), Some(cosigned.as_str()));
    assert_eq!(head.json["vkey"].as_str(), Some(cl.vkey().as_str()));

    // A resend is a no-op.
    let all = body(&local);
    let r = post_records(&srv.url, &id, Some(&token), &all, Some(&first_checkpoint));
    r.status(200);
    assert_eq!(r.json["accepted"], 0);
    assert_eq!(r.json["duplicates"], 3);
    assert_eq!(r.json["count"], 3);

    // A different record at a seq the server holds: a fork, recorded.
    let forged = rewritten(&local, 2);
    let r = post_records(&srv.url, &id, Some(&token), &body(&forged), None);
    refused(&r, 409, "fork", "seq 2");
    let signer = cl.signer();
    let r = post_records(
        &srv.url,
        &id,
        Some(&token),
        &body(&forged[2..]),
        Some(&checkpoint(&signer, &forged)),
    );
    refused(&r, 409, "fork", "seq 2");

    // More records, then an old (shorter) signed checkpoint with them.
    status(&run(cl.cmd(&["--", "true"])), 0);
    let local = cl.lines();
    assert_eq!(local.len(), 5);
    assert_eq!(server_lines(&srv.url, &id, &token), local);
    let r = post_records(
        &srv.url,
        &id,
        Some(&token),
        &body(&local),
        Some(&first_checkpoint),
    );
    refused(&r, 409, "shorter_history", "covers 3 records");

    // A checkpoint signed by another key (even under the host's key name).
    for name in ["gate/intruder".to_owned(), signer.name().to_owned()] {
        let other = NoteSigner::from_seed(&name, &[7u8; 32]).unwrap();
        let r = post_records(
            &srv.url,
            &id,
            Some(&token),
            &body(&local),
            Some(&checkpoint(&other, &local)),
        );
        r.status(409);
        assert_eq!(r.json["error"], "bad_checkpoint", "{}", r.text);
    }

    // A gap: records after ones the server never got.
    cl.run_local(&["true"]);
    let local = cl.lines();
    assert_eq!(local.len(), 7);
    let r = post_records(&srv.url, &id, Some(&token), &body(&local[6..]), None);
    refused(&r, 409, "gap", "seq 6");

    // Another log's records in this log's body.
    let other_dir = tempfile::tempdir().unwrap();
    let other = gate::audit::AuditLog::new(other_dir.path().join("o.jsonl"))
        .with_key(other_dir.path().join("o.key"));
    other
        .append(vec![gate::audit::Body::Result {
            request_id: "x".into(),
            result: gate::audit::ResultInfo {
                exit_code: Some(0),
                signal: None,
                duration_ms: 1,
                error: None,
            },
        }])
        .unwrap();
    let other_lines = read_lines(&other_dir.path().join("o.jsonl"));
    let r = post_records(&srv.url, &id, Some(&token), &body(&other_lines), None);
    refused(&r, 400, "bad_request", "belongs to log");

    // New records without the host's signed checkpoint are not taken.
    let r = post_records(&srv.url, &id, Some(&token), &body(&local[5..6]), None);
    refused(&r, 400, "bad_request", "Gate-Checkpoint");

    // Another principal's token cannot add to this host's log (nor poison the copy).
    let intruder = issue_token(sdir.path(), &srv.db, "host2");
    let cp_now = checkpoint_note(&format!("{}.checkpoint", cl.log().display()));
    let r = post_records(
        &srv.url,
        &id,
        Some(&intruder),
        &body(&local[5..6]),
        Some(&cp_now),
    );
    refused(&r, 403, "not_owner", "host1");

    // No token, a bad token.
    let r = post_records(&srv.url, &id, None, &body(&local[5..]), None);
    r.status(401);
    let r = post_records(&srv.url, &id, Some("gate_nope"), &body(&local[5..]), None);
    r.status(401);
    let r = http()
        .get(format!("{}/v1/logs/{id}/head", srv.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Nothing refused reached the copy; the refusals are evidence in the server's own log.
    assert_eq!(server_lines(&srv.url, &id, &token), local[..5].to_vec());
    let events: Vec<Value> = read_lines(&srv.audit)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["kind"] == "event" && v.to_string().contains("log_conflict"))
        .collect();
    let text: String = events.iter().map(|v| v.to_string()).collect();
    assert!(
        events.len() >= 6,
        "fork ×2, shorter history, bad checkpoint ×2, gap: {text}\n{}",
        srv.stderr()
    );
    for needle in ["fork", "shorter_history", "bad_checkpoint", "gap", &id] {
        assert!(text.contains(needle), "no {needle} in {text}");
    }

    // The next shipping run picks up the two local-only records and continues.
    status(&run(cl.cmd(&["--", "true"])), 0);
    let local = cl.lines();
    assert_eq!(local.len(), 9);
    assert_eq!(server_lines(&srv.url, &id, &token), local);
}

// ---------------------------------------------------------------------------------------------
// 2. Delivery.

/// Runs `gate -- true` `n` times, `par` at a time; every run must succeed.
fn runs(cl: &Client, n: usize, par: usize) -> Vec<Checked> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(par);
        let kids: Vec<Child> = (0..k)
            .map(|_| {
                let mut c = cl.cmd(&["--", "true"]);
                c.stdout(Stdio::piped()).stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for kid in kids {
            let o = kid.wait_with_output().unwrap();
            out.push(Checked::new(Ran::from_output(o)));
        }
        left -= k;
    }
    out
}

fn push(cl: &Client, extra: &[&str]) -> (Checked, Vec<Value>) {
    let mut args = vec!["log", "push", "--json"];
    args.extend_from_slice(extra);
    let r = run(cl.cmd(&args));
    let reports = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (r, reports)
}

#[test]
fn nothing_is_lost_or_sent_twice_across_an_outage() {
    let sdir = tempfile::tempdir().unwrap();
    let db = sdir.path().join("server.db");
    let token = issue_token(sdir.path(), &db, "host1");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let cl = Client::new(&url, &token, false);

    // Every sink down for 50 runs: each run still runs, and says what to do. (How long they
    // take is a benchmark's business: `benches/server_ship.rs`.)
    for r in runs(&cl, 50, 10) {
        status(&r, 0)
            .stderr_contains("not yet delivered")
            .stderr_contains("gate log push");
    }
    // After the first failure, runs skip the sink for a while instead of each waiting out
    // the delivery limit; the records stay pending all the same.
    let last = runs(&cl, 1, 1).pop().unwrap();
    status(&last, 0);
    last.stderr_contains("not retried");
    let local = cl.lines();
    assert_eq!(local.len(), 103, "genesis + 51 decisions + 51 results");
    assert_eq!(
        cl.cursor_next(),
        0,
        "nothing acknowledged, nothing advanced"
    );

    // Nothing answers: push exits 75 and moves no cursor.
    let (r, reports) = push(&cl, &["--timeout", "300ms"]);
    status(&r, 75);
    assert_eq!(reports[0]["pending"], 103, "{}", r.stdout);
    assert_eq!(cl.cursor_next(), 0);

    // Recovery: one push delivers all of them, in order, once.
    let mut srv = Server::start_in(sdir.path(), SERVER_POLICY, &listen);
    assert_eq!(srv.url, url);
    let (r, reports) = push(&cl, &[]);
    status(&r, 0);
    assert_eq!(reports.len(), 1, "{}", r.stdout);
    assert_eq!(reports[0]["delivered"], 103, "{}", r.stdout);
    assert_eq!(reports[0]["pending"], 0);
    let id = log_id(&local);
    let copy = server_lines(&url, &id, &token);
    assert_eq!(copy.len(), local.len(), "no duplicate, nothing missing");
    assert_eq!(copy, local, "the same records in the same order");
    for (i, l) in copy.iter().enumerate() {
        assert_eq!(serde_json::from_str::<Value>(l).unwrap()["seq"], i as u64);
    }
    assert_eq!(cl.cursor_next(), 103);
    let head = get(&format!("{url}/v1/logs/{id}/head"), &token);
    assert_eq!(head.json["count"], 103);
    assert!(head.json["cosigned"].is_string(), "{}", head.text);

    // Again: nothing to do.
    let (r, reports) = push(&cl, &[]);
    status(&r, 0);
    assert_eq!(reports[0]["delivered"], 0);
    assert_eq!(server_lines(&url, &id, &token).len(), 103);

    // A refusal (a token the server does not know) moves no cursor, and push says 1.
    cl.run_local(&["true"]);
    let mut bad = cl.cmd(&["log", "push", "--json"]);
    bad.env("GATE_TOKEN", "gate_not_a_token");
    let r = run(bad);
    status(&r, 1);
    assert_eq!(cl.cursor_next(), 103);

    // Two pushes at once: each record is sent once between them.
    assert_eq!(srv.stop(), 0, "gate serve exits 0 on SIGTERM");
    for r in runs(&cl, 6, 6) {
        status(&r, 0).stderr_contains("not yet delivered");
    }
    let srv = Server::start_in(sdir.path(), SERVER_POLICY, &listen);
    let pending = cl.lines().len() as u64 - 103;
    assert_eq!(pending, 14);
    let kids: Vec<Child> = (0..2)
        .map(|_| {
            let mut c = cl.cmd(&["log", "push", "--json"]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut delivered = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        delivered += v["delivered"].as_u64().unwrap();
    }
    assert_eq!(
        delivered, pending,
        "each record delivered by exactly one push"
    );
    let local = cl.lines();
    assert_eq!(server_lines(&url, &id, &token), local);
    assert_eq!(cl.cursor_next(), local.len() as u64);
    drop(srv);
}

/// Runs of one host at once: each delivery takes the sink's lock and reads the checkpoint under
/// it, so none sends a checkpoint older than what the server holds (a false "rollback").
#[test]
fn concurrent_runs_ship_without_false_conflicts() {
    let sdir = tempfile::tempdir().unwrap();
    let srv = Server::start(sdir.path(), SERVER_POLICY);
    let token = issue_token(sdir.path(), &srv.db, "host1");
    let cl = Client::new(&srv.url, &token, true);
    for r in runs(&cl, 16, 16) {
        status(&r, 0);
        assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    }
    let local = cl.lines();
    assert_eq!(local.len(), 33);
    assert_eq!(server_lines(&srv.url, &log_id(&local), &token), local);
    assert_eq!(cl.cursor_next(), 33);
    let server_log = std::fs::read_to_string(&srv.audit).unwrap_or_default();
    assert!(!server_log.contains("log_conflict"), "{server_log}");
}

#[test]
fn require_remote_fails_closed_when_the_server_is_down() {
    let sdir = tempfile::tempdir().unwrap();
    let db = sdir.path().join("server.db");
    let token = issue_token(sdir.path(), &db, "host1");
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    let cl = Client::new(&url, &token, true);
    let marker = cl.home().join("marker");

    let r = run(cl.cmd(&["--", "touch", marker.to_str().unwrap()]));
    status(&r, 75);
    r.stderr_contains("require_remote");
    assert!(!marker.exists(), "the command ran without a remote copy");
    let recs: Vec<Value> = cl
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1]["kind"], "decision");
    assert_eq!(recs[2]["kind"], "result");
    assert_eq!(recs[2]["request_id"], recs[1]["request_id"]);
    assert!(
        recs[2]["result"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("not run"),
        "{}",
        recs[2]
    );
    assert_eq!(cl.cursor_next(), 0);

    // The server is back: the run ships the backlog first, then runs.
    let srv = Server::start_in(sdir.path(), SERVER_POLICY, &listen);
    let r = run(cl.cmd(&["--", "touch", marker.to_str().unwrap()]));
    status(&r, 0);
    assert!(marker.exists());
    let local = cl.lines();
    assert_eq!(local.len(), 5);
    assert_eq!(server_lines(&url, &log_id(&local), &token), local);
    assert_eq!(cl.cursor_next(), 5);
    drop(srv);
}

// ---------------------------------------------------------------------------------------------
// 3. verify --remote.

fn verify_remote(cl: &Client, url: &str, path: &Path) -> (Checked, Value) {
    let r = run(cl.cmd(&[
        "log",
        "verify",
        "--json",
        "--remote",
        url,
        path.to_str().unwrap(),
    ]));
    let v = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r, v)
}

fn codes(report: &Value) -> Vec<(String, u64)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_owned(),
                p["seq"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[test]
fn verify_remote_catches_truncation_and_rewrites() {
    let sdir = tempfile::tempdir().unwrap();
    let srv = Server::start(sdir.path(), SERVER_POLICY);
    let token = issue_token(sdir.path(), &srv.db, "host1");
    let cl = Client::new(&srv.url, &token, false);
    for _ in 0..2 {
        status(&run(cl.cmd(&["--", "true"])), 0);
    }
    let local = cl.lines();
    assert_eq!(local.len(), 5);

    // Intact.
    let (r, v) = verify_remote(&cl, &srv.url, &cl.log());
    status(&r, 0);
    assert_eq!(v["status"], "intact", "{}", r.stdout);
    assert_eq!(v["remote"]["compared"], 5, "{}", r.stdout);
    let human = run(cl.cmd(&["log", "verify", "--remote", &srv.url]));
    status(&human, 0);
    assert!(human.stdout.contains("INTACT"), "{}", human.stdout);
    // Issue 11 §4: a successful --remote says the server's copy matched, and how much of it.
    assert!(
        human.stdout.contains(&format!(
            "the copy on {} matched (5 records compared)",
            srv.url
        )),
        "{}",
        human.stdout
    );

    let signer = cl.signer();
    let work = tempfile::tempdir().unwrap();

    // Truncated below what the server holds (and re-signed, so the local check alone passes).
    let cut = work.path().join("cut.jsonl");
    write_log(&cut, &local[..3], &signer);
    let plain = run(cl.cmd(&["log", "verify", cut.to_str().unwrap()]));
    status(&plain, 0);
    let (r, v) = verify_remote(&cl, &srv.url, &cut);
    status(&r, 1);
    assert_eq!(codes(&v), vec![("local_truncated".to_owned(), 3)], "{v}");

    // A record rewritten, the chain recomputed and the checkpoint re-signed with the host key.
    let forged = work.path().join("forged.jsonl");
    write_log(&forged, &rewritten(&local, 2), &signer);
    let plain = run(cl.cmd(&["log", "verify", forged.to_str().unwrap()]));
    status(&plain, 0);
    let (r, v) = verify_remote(&cl, &srv.url, &forged);
    status(&r, 1);
    assert_eq!(
        codes(&v),
        vec![("diverges_from_server".to_owned(), 2)],
        "{v}"
    );
    assert_eq!(v["first_bad_seq"], 2);
    let human = run(cl.cmd(&[
        "log",
        "verify",
        "--remote",
        &srv.url,
        forged.to_str().unwrap(),
    ]));
    status(&human, 1);
    assert!(
        human.stdout.contains("seq 2") && human.stdout.contains("diverges_from_server"),
        "{}",
        human.stdout
    );

    // Rewritten and cut short at once: both are reported.
    let both = work.path().join("both.jsonl");
    write_log(&both, &rewritten(&local, 2)[..4], &signer);
    let (r, v) = verify_remote(&cl, &srv.url, &both);
    status(&r, 1);
    assert_eq!(
        codes(&v),
        vec![
            ("diverges_from_server".to_owned(), 2),
            ("local_truncated".to_owned(), 4)
        ],
        "{v}"
    );

    // Local ahead of the server: intact, with a warning.
    cl.run_local(&["true"]);
    let (r, v) = verify_remote(&cl, &srv.url, &cl.log());
    status(&r, 0);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("not on") && warnings.contains("yet"),
        "{}",
        r.stdout
    );
    let human = run(cl.cmd(&["log", "verify", "--remote", &srv.url]));
    status(&human, 0);
    assert!(
        human.stdout.contains("warning: records 5..6"),
        "{}",
        human.stdout
    );

    // No token: unusable (2), not "intact".
    let mut c = gate(cl.home());
    c.arg("--policy")
        .arg(cl.home().join("policy.yaml"))
        .args(["log", "verify", "--remote", &srv.url]);
    status(&run(c), 2).stderr_contains("no token for");
}
