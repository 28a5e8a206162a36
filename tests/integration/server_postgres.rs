//! `gate serve --db postgres://…` (issue 14 §1, §2): the real binary against a throw-away
//! PostgreSQL cluster per test (tests/integration/common/pg.rs), one or two replicas sharing its
//! database. Covered: the API and the client on PostgreSQL; a decision through one replica
//! waking a client that waits on the other; the server's log as one chain in the database,
//! exported and verified (and a tampered export refused); web sessions across replicas and
//! restarts; replicas racing to decide; the LISTEN connection killed; PostgreSQL stopped
//! mid-wait; a replica killed while clients wait on it; secrets set with a PostgreSQL --db and
//! released once across replicas (replayed or raced through the other: 409), never logged;
//! OIDC sign-ins started on one replica, finished on the other, and their callbacks refused when
//! replayed through either; and bad URLs, unreachable servers, wrong passwords and newer schemas
//! refused at start (78) without the password in any message.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Ran;
use common::pg::{Cluster, PASSWORD};
use common::process::{Watched, poll, spawn};
use serde_json::{Value, json};

const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  sre: [alice, bob, carol]
rules:
  - name: one-sre
    match: { program: echo, args: [one] }
    decision: approve
    approval: { approvers: [sre], timeout: 60s }
  - name: two-sre
    match: { program: echo, args: [two] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 2, timeout: 60s }
  - name: touch
    match: { program: touch }
    decision: approve
    approval: { approvers: [sre], timeout: 60s }
"#;

/// A `gate serve` replica on database `url`, its files (policy, signing key) in `home`.
struct Replica {
    serving: Option<common::Serving>,
    url: String,
}

impl Replica {
    fn start(home: &Path, db: &str) -> Replica {
        let serving = common::spawn_server(serve_command(home, db));
        Replica {
            url: format!("http://{}", serving.addr),
            serving: Some(serving),
        }
    }

    fn stderr(&self) -> String {
        self.serving
            .as_ref()
            .map(|s| s.stderr.lock().unwrap().clone())
            .unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.serving
            .as_mut()
            .is_some_and(|s| s.child.try_wait().unwrap().is_none())
    }

    /// SIGTERM, then SIGKILL after 20 s: the exit status (-1 when killed or never started).
    fn stop(&mut self) -> i32 {
        let Some(mut s) = self.serving.take() else {
            return -1;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = s.child.try_wait() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = s.child.kill();
        let _ = s.child.wait();
        -1
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn serve_command(home: &Path, db: &str) -> Command {
    let policy = home.join("server-policy.yaml");
    if !policy.exists() {
        std::fs::write(&policy, SERVER_POLICY).unwrap();
    }
    let mut c = common::gate_in(home);
    c.arg("--policy")
        .arg(&policy)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db, "--key"])
        .arg(key_path(home));
    c
}

fn key_path(home: &Path) -> PathBuf {
    home.join("server.key")
}

/// `gate serve token issue` on the shared database.
fn token(home: &Path, db: &str, principal: &str) -> String {
    let mut c = common::gate_in(home);
    c.args([
        "serve",
        "token",
        "issue",
        "--db",
        db,
        "--principal",
        principal,
    ]);
    let r = Ran::of(c);
    r.status(0);
    r.stdout.trim().to_owned()
}

fn vkey(home: &Path) -> String {
    let mut c = common::gate_in(home);
    c.args(["serve", "key", "--key"]).arg(key_path(home));
    let r = Ran::of(c);
    r.status(0);
    r.stdout.trim().to_owned()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Creates a request for `argv` through `base` as `token`; its id.
fn create(base: &str, token: &str, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let env: BTreeMap<String, String> = BTreeMap::new();
    let digest = gate::request::digest(&argv, "/srv", &env, &[]);
    let r = http()
        .post(format!("{base}/v1/requests"))
        .bearer_auth(token)
        .json(&json!({
            "argv": argv, "cwd": "/srv", "env": env, "digest": digest,
            "claims": { "user": "someone", "uid": 1000, "host": "laptop" },
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// POST /v1/requests/{id}/{what}: the status and body.
fn decide(base: &str, token: &str, id: &str, what: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/v1/requests/{id}/{what}"))
        .bearer_auth(token)
        .json(&if what == "deny" {
            json!({ "reason": "no" })
        } else {
            json!({ "comment": "ok" })
        })
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn get(base: &str, token: &str, id: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{base}/v1/requests/{id}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// A client home whose policy sends `argv[0] argv[1]` to the server at `url`, trusting `key`.
fn client_home(url: &str, key: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("client-policy.yaml"),
        format!(
            r#"version: 1
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
rules:
  - name: via-server
    match: {{ program: "{{echo,touch}}" }}
    decision: approve
    approval: {{ backend: team, timeout: 60s }}
"#
        ),
    )
    .unwrap();
    d
}

/// `gate -- ARGV` through the client policy in `home`, as `token`.
fn client(home: &Path, token: &str, extra: &[&str], argv: &[&str]) -> Watched {
    let mut c = common::gate_in(home);
    c.env("GATE_TOKEN", token)
        .arg("--policy")
        .arg(home.join("client-policy.yaml"))
        .args(extra)
        .arg("--")
        .args(argv);
    spawn(c)
}

/// The id of the one pending request `requester` has, as seen through `base`.
fn pending_of(base: &str, token: &str, requester: &str) -> String {
    poll(&format!("a pending request by {requester}"), || {
        let r = http()
            .get(format!("{base}/v1/requests?status=pending"))
            .bearer_auth(token)
            .send()
            .ok()?;
        let v: Value = r.json().ok()?;
        v["requests"]
            .as_array()?
            .iter()
            .find(|q| q["requester"] == requester)
            .map(|q| q["id"].as_str().unwrap().to_owned())
    })
}

/// `gate serve log export --db DB -o FILE`.
fn export(home: &Path, db: &str, file: &Path) -> Ran {
    let mut c = common::gate_in(home);
    c.args(["serve", "log", "export", "--db", db, "-o"])
        .arg(file);
    Ran::of(c)
}

fn verify(home: &Path, file: &Path, key: &str) -> Ran {
    let mut c = common::gate_in(home);
    c.args(["log", "verify"]).arg(file).args(["--key", key]);
    Ran::of(c)
}

#[test]
fn the_api_and_the_client_work_on_postgresql() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let a = Replica::start(h, &db);
    assert!(
        !a.stderr().contains(PASSWORD),
        "the password leaked into the server's output:\n{}",
        a.stderr()
    );
    let [alice, bob] = ["alice", "bob"].map(|p| token(h, &db, p));
    let c = client_home(&a.url, &vkey(h));
    let waiting = client(c.path(), &alice, &[], &["echo", "one"]);
    let id = pending_of(&a.url, &bob, "alice");
    // The requester never counts; another SRE does.
    assert_eq!(decide(&a.url, &alice, &id, "approve").0, 403);
    let (status, body) = decide(&a.url, &bob, &id, "approve");
    assert_eq!(status, 200, "{body}");
    let out = waiting.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "one\n");
    // Tokens: listed from the database, never shown again.
    let mut c = common::gate_in(h);
    c.args(["serve", "token", "list", "--db", &db]);
    let listed = Ran::of(c);
    listed.status(0);
    assert!(listed.stdout.contains("alice") && !listed.stdout.contains(&alice));
    let r = http().get(format!("{}/healthz", a.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    // A graceful stop: no panic dropping the database connections inside the runtime.
    let mut a = a;
    let stderr_before = a.stderr();
    assert_eq!(a.stop(), 0, "{stderr_before}");
}

#[test]
fn a_decision_on_one_replica_wakes_a_client_waiting_on_the_other_and_the_log_is_one_chain() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // The key is made once and shared, as a deployment copies it to every replica.
    let key = vkey(h);
    // Started together on an empty database: the migrations must not race.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Replica::start(h, &db));
        let b = s.spawn(|| Replica::start(h, &db));
        (a.join().unwrap(), b.join().unwrap())
    });
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|p| token(h, &db, p));
    let c = client_home(&a.url, &key);
    let waiting = client(c.path(), &alice, &[], &["echo", "two"]);
    let id = pending_of(&b.url, &bob, "alice");
    assert_eq!(decide(&b.url, &bob, &id, "approve").0, 200);
    assert_eq!(decide(&a.url, &carol, &id, "approve").0, 200);
    let out = waiting.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "two\n");

    // The server's log, exported twice, verifies against the server's key and is one chain
    // holding what each replica recorded.
    let (x, y) = (h.join("export-a.jsonl"), h.join("export-b.jsonl"));
    export(h, &db, &x).status(0);
    export(h, &db, &y).status(0);
    for f in [&x, &y] {
        let r = verify(h, f, &key);
        assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    }
    let lines: Vec<Value> = std::fs::read_to_string(&x)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let log_ids: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|r| r["log_id"].as_str().unwrap())
        .collect();
    assert_eq!(log_ids.len(), 1, "one chain");
    assert_eq!(lines[0]["genesis"]["key"], key.as_str());
    let kinds: Vec<(&str, &str)> = lines
        .iter()
        .filter(|r| r["request_id"] == id.as_str())
        .map(|r| {
            (
                r["event"]["type"].as_str().unwrap(),
                r["event"]["principal"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("request", "alice"),
            ("approval", "bob"),
            ("approval", "carol")
        ],
        "the request made on A, approvals through B and A"
    );
    // A tampered export is caught.
    let text = std::fs::read_to_string(&x).unwrap();
    std::fs::write(&x, text.replacen("\"carol\"", "\"mallory\"", 1)).unwrap();
    let r = verify(h, &x, &key);
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    // An export never overwrites a file.
    let again = export(h, &db, &y);
    again.status(78);
    drop((a, b));
}

/// Signs in on the web page at `base` with `token`; the session cookie.
fn sign_in(base: &str, token: &str) -> String {
    let page = http().get(format!("{base}/")).send().unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("gate_signin="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("a sign-in cookie");
    let r = http()
        .post(format!("{base}/signin"))
        .header("cookie", format!("gate_signin={cookie}"))
        .form(&[("token", token), ("csrf", cookie.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("gate_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
        .expect("a session cookie")
}

fn signed_in_as(base: &str, session: &str) -> Option<String> {
    let body = http()
        .get(format!("{base}/"))
        .header("cookie", format!("gate_session={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rest = body.split("<b id=\"principal\">").nth(1)?;
    Some(rest.split('<').next()?.to_owned())
}

#[test]
fn a_web_session_made_on_one_replica_holds_on_the_other_and_after_a_restart() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let a = Replica::start(h, &db);
    let mut b = Replica::start(h, &db);
    let bob = token(h, &db, "bob");
    let session = sign_in(&a.url, &bob);
    let on_b = signed_in_as(&b.url, &session).expect("signed in on B");
    assert_eq!(on_b, "bob");
    assert_eq!(b.stop(), 0, "a graceful stop");
    let b = Replica::start(h, &db);
    let again = signed_in_as(&b.url, &session).expect("still signed in after a restart");
    assert_eq!(again, "bob");
    // A made-up session is nobody's.
    assert!(signed_in_as(&b.url, &"0".repeat(64)).is_none());
    drop(a);
}

#[test]
fn replicas_racing_to_decide_never_both_finish_a_request_or_count_an_approver_twice() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let a = Replica::start(h, &db);
    let b = Replica::start(h, &db);
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|p| token(h, &db, p));
    for round in 0..10 {
        // One approval finishes it: bob through A and carol through B at once, one approves
        // and one deny race too. Exactly one decision wins.
        let id = create(&a.url, &alice, &["echo", "one"]);
        let barrier = std::sync::Barrier::new(3);
        let results: Vec<(u16, Value)> = std::thread::scope(|s| {
            let hs = [
                (&a.url, &bob, "approve"),
                (&b.url, &carol, "approve"),
                (&b.url, &bob, "deny"),
            ]
            .map(|(url, tok, what)| {
                let (barrier, id) = (&barrier, &id);
                s.spawn(move || {
                    barrier.wait();
                    decide(url, tok, id, what)
                })
            });
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        assert!(
            results.iter().all(|(s, _)| *s == 200 || *s == 409),
            "round {round}: {results:?}"
        );
        let (_, now) = get(&b.url, &alice, &id);
        let decided = now["approvals"].as_array().map_or(0, Vec::len)
            + usize::from(now["status"] == "denied");
        assert_eq!(decided, 1, "round {round}: {now}");

        // Two needed: the same approver through both replicas at once counts once.
        let id = create(&b.url, &alice, &["echo", "two"]);
        let barrier = std::sync::Barrier::new(2);
        let results: Vec<u16> = std::thread::scope(|s| {
            let hs = [&a.url, &b.url].map(|url| {
                let (barrier, id, bob) = (&barrier, &id, &bob);
                s.spawn(move || {
                    barrier.wait();
                    decide(url, bob, id, "approve").0
                })
            });
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = results.clone();
        sorted.sort();
        assert_eq!(sorted, [200, 409], "round {round}");
        let (_, now) = get(&a.url, &alice, &id);
        assert_eq!(now["status"], "pending", "round {round}: {now}");
        assert_eq!(now["approvals"].as_array().unwrap().len(), 1, "{now}");
    }
}

#[test]
fn waiters_still_wake_when_the_listen_connection_is_killed() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let a = Replica::start(h, &db);
    let b = Replica::start(h, &db);
    let [alice, bob] = ["alice", "bob"].map(|p| token(h, &db, p));
    let c = client_home(&a.url, &vkey(h));
    let waiting = client(c.path(), &alice, &[], &["echo", "one"]);
    let id = pending_of(&a.url, &bob, "alice");
    // Keep killing every replica's LISTEN connection while the decision goes through B: A
    // hears of it through its fallback poll or its next LISTEN.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut admin = pg.client("gate");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gate serve listen'",
                    &[],
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let (status, body) = decide(&b.url, &bob, &id, "approve");
        assert_eq!(status, 200, "{body}");
        let out = waiting.finish(Duration::from_secs(30));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out.status(0);
        assert_eq!(out.stdout, "one\n");
    });
    assert!(
        a.stderr()
            .contains("LISTEN connection to the database dropped"),
        "{}",
        a.stderr()
    );
}

#[test]
fn postgresql_stopped_mid_wait_approves_nothing_and_the_client_fails_closed() {
    let mut pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut a = Replica::start(h, &db);
    let [alice, bob] = ["alice", "bob"].map(|p| token(h, &db, p));
    let c = client_home(&a.url, &vkey(h));
    let marker = c.path().join("ran");
    let waiting = client(
        c.path(),
        &alice,
        &["--timeout", "4s"],
        &["touch", marker.to_str().unwrap()],
    );
    let id = pending_of(&a.url, &bob, "alice");
    pg.stop();
    // An approval while the database is gone is not taken: 503, never 500, never a panic.
    let (status, body) = decide(&a.url, &bob, &id, "approve");
    assert_eq!(status, 503, "{body}");
    assert_eq!(get(&a.url, &bob, &id).0, 503);
    let r = http().get(format!("{}/healthz", a.url)).send().unwrap();
    assert_eq!(r.status(), 503);
    let out = waiting.finish(Duration::from_secs(60));
    out.status(75);
    assert!(!marker.exists(), "the command ran without an approval");
    assert!(a.running(), "the server died:\n{}", a.stderr());
    assert!(!a.stderr().contains("panicked"), "{}", a.stderr());
    // Back up: the request is still pending, with no approval.
    pg.start_again();
    let a2 = Replica::start(h, &pg.url("gate"));
    let (status, now) = get(&a2.url, &bob, &id);
    assert_eq!(status, 200, "{now}");
    assert!(now["approvals"].as_array().unwrap().is_empty(), "{now}");
    assert_ne!(now["status"], "approved", "{now}");
    let _ = a.stop();
}

/// `gate serve --db DB` in a fresh home: it must stop with 78 saying `what`, never showing the
/// password.
#[track_caller]
fn refused(db: &str, what: &str, password: &str) {
    let home = tempfile::tempdir().unwrap();
    let mut c = serve_command(home.path(), db);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let r = Ran::of(c);
    assert_eq!(r.status, 78, "{db}: {}", r.stderr);
    assert!(r.stderr.contains(what), "{db}: {}", r.stderr);
    assert!(
        !r.stderr.contains(password),
        "the password leaked: {}",
        r.stderr
    );
}

#[test]
fn a_bad_database_url_an_unreachable_server_or_a_wrong_password_stops_the_server_at_start() {
    let pg = Cluster::start();
    pg.database("gate");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "hunter2-never-shown";
    refused(
        &format!("postgres://postgres:{secret}@127.0.0.1:{}/gate", pg.port),
        "password authentication failed",
        secret,
    );
    refused(
        &format!("postgres://postgres:{secret}@127.0.0.1:{dead}/gate"),
        "cannot connect to postgres://postgres:***@127.0.0.1",
        secret,
    );
    refused(
        &format!("postgresql://postgres:{secret}@127.0.0.1:notaport/gate"),
        "bad database URL",
        secret,
    );
    refused(
        &format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/nosuchdb",
            pg.port
        ),
        "nosuchdb",
        PASSWORD,
    );
    // Without `--key`: replicas must share one, so none is made beside a URL.
    let home = tempfile::tempdir().unwrap();
    let mut c = common::gate_in(home.path());
    c.args(["serve", "--listen", "127.0.0.1:0", "--db", &pg.url("gate")]);
    let r = Ran::of(c);
    assert_eq!(r.status, 78, "{}", r.stderr);
    assert!(r.stderr.contains("--key"), "{}", r.stderr);
    assert!(!r.stderr.contains(PASSWORD), "{}", r.stderr);
}

#[test]
fn a_database_made_by_a_newer_gate_is_refused() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    drop(Replica::start(home.path(), &db));
    pg.client("gate")
        .batch_execute("UPDATE gate_schema SET version = 99")
        .unwrap();
    refused(
        &db,
        "made by a newer gate (schema 99, this gate knows 2)",
        PASSWORD,
    );

    // SQLite too.
    let sqlite = home.path().join("new.db");
    rusqlite::Connection::open(&sqlite)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let mut c = serve_command(home.path(), sqlite.to_str().unwrap());
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let r = Ran::of(c);
    assert_eq!(r.status, 78, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("made by a newer gate (schema 99, this gate knows 6)"),
        "{}",
        r.stderr
    );
}

/// The store's queries that the HTTP tests above reach only in part, called through the library
/// on a real database: sessions and their one-time message, id lookups that read nothing as a
/// pattern, token revocation, a host log's compare-and-set append, and a damaged status refused.
#[test]
fn the_postgresql_store_keeps_the_store_contract() {
    use gate::approval::RequestStatus;
    use gate::server::store::{Database, DecisionRow, RequestRow, SessionRow, Store, TokenRow};
    let pg = Cluster::start();
    let db = pg.database("gate");
    let Database::Postgres(url) = Database::from_arg(PathBuf::from(&db)).unwrap() else {
        panic!("a postgres URL is PostgreSQL");
    };
    let store = gate::server::store::PgStore::open(&url).unwrap();
    assert!(!format!("{store:?}").contains(PASSWORD));

    let s = SessionRow {
        principal: "bob".into(),
        token_hash: "h".into(),
        csrf: "c".into(),
        expires_ms: 2_000,
    };
    store.session_insert("k1", &s, 1_000, 10).unwrap();
    assert_eq!(store.session_get("k1", 1_500).unwrap(), Some(s.clone()));
    store.session_set_flash("k1", true, "approved").unwrap();
    assert_eq!(
        store.session_take_flash("k1").unwrap(),
        Some((true, "approved".to_owned()))
    );
    assert_eq!(store.session_take_flash("k1").unwrap(), None, "shown once");
    assert_eq!(store.session_get("k1", 2_000).unwrap(), None, "expired");
    assert_eq!(store.session_get("k1", 1_500).unwrap(), None, "and deleted");
    // Past `max`, the sessions closest to expiry go.
    for (i, exp) in [5_000, 6_000, 7_000].iter().enumerate() {
        let row = SessionRow {
            expires_ms: *exp,
            ..s.clone()
        };
        store
            .session_insert(&format!("m{i}"), &row, 1_000, 2)
            .unwrap();
    }
    assert_eq!(store.session_get("m0", 1_000).unwrap(), None);
    assert!(store.session_get("m2", 1_000).unwrap().is_some());

    let row = |id: &str, status| RequestRow {
        id: id.into(),
        requester: "alice".into(),
        status,
        created_ms: 1,
        expires_ms: 10,
        decided_ms: None,
        digest: "d".into(),
        doc: json!({}),
    };
    for (id, st) in [
        (
            "0193a1b2-7c3d-7e4f-8a5b-1c2d3e4f5a6b",
            RequestStatus::Pending,
        ),
        (
            "0193a1b2-0000-7e4f-9a5b-bbbbbbbbbbbb",
            RequestStatus::Approved,
        ),
    ] {
        store.request_insert(&row(id, st), &|_, _| Ok(())).unwrap();
    }
    let find = |part: &str, st| store.request_ids_matching(part, st, 10).unwrap().len();
    assert_eq!(find("0193a1b2", None), 2);
    assert_eq!(find("0193a1b2", Some(RequestStatus::Pending)), 1);
    assert_eq!(find("1c2d3e4f5a6b", None), 1);
    assert_eq!(find("7c3d-7e4f", None), 0, "the middle names nothing");
    assert_eq!(find("%", None) + find("_", None), 0, "nothing is a pattern");
    assert_eq!(store.overdue(10).unwrap().len(), 1);

    // A refused decision changes nothing; an accepted one is there with its status.
    let d = DecisionRow {
        request_id: "0193a1b2-7c3d-7e4f-8a5b-1c2d3e4f5a6b".into(),
        principal: "bob".into(),
        kind: "approve".into(),
        comment: None,
        at_ms: 5,
    };
    let refused = store.decide(
        &d,
        &|_, _| {
            Err(gate::server::store::Refusal {
                status: 403,
                code: "no",
                message: "no".into(),
            })
        },
        &|_, _| Ok(()),
    );
    assert!(refused.is_err());
    assert!(
        store
            .request_get(&d.request_id)
            .unwrap()
            .unwrap()
            .1
            .is_empty()
    );
    let (r, all) = store
        .decide(
            &d,
            &|_, _| Ok(Some(RequestStatus::Approved)),
            &|_, _| Ok(()),
        )
        .unwrap();
    assert_eq!((r.status, all.len()), (RequestStatus::Approved, 1));
    assert_eq!(store.request_approved_of("alice", "d", 5).unwrap().len(), 2);
    assert!(
        !store
            .finish(&d.request_id, RequestStatus::Cancelled, 6, &|_, _| Ok(()))
            .unwrap(),
        "only a pending request finishes"
    );

    let t = TokenRow {
        id: "t1".into(),
        principal: "bob".into(),
        hash: "th".into(),
        created_ms: 1,
        expires_ms: None,
        revoked_ms: None,
    };
    store.token_insert(&t).unwrap();
    assert_eq!(store.token_by_hash("th").unwrap().unwrap().principal, "bob");
    assert!(store.token_revoke("t1", 3).unwrap());
    assert!(!store.token_revoke("t1", 4).unwrap(), "revoked once");

    // A host log: compare-and-set on its count.
    let recs = vec![
        (0, "h0".to_owned(), "l0".to_owned()),
        (1, "h1".into(), "l1".into()),
    ];
    assert!(
        store
            .log_append("L", 0, &recs, Some("vk"), "host", 1)
            .unwrap()
    );
    assert!(
        !store.log_append("L", 0, &recs, None, "host", 1).unwrap(),
        "moved on"
    );
    let held = store.log_get("L").unwrap().unwrap();
    assert_eq!((held.count, held.head.as_str()), (2, "h1"));
    assert_eq!(store.log_records("L", 1, 10).unwrap(), ["l1"]);
    assert_eq!(store.log_hash_at("L", 0).unwrap().as_deref(), Some("h0"));

    // A status that is none of the five is a damaged row, refused rather than guessed at.
    pg.client("gate")
        .batch_execute("UPDATE requests SET status = 'Approved'")
        .unwrap();
    let e = store.request_get(&d.request_id).unwrap_err().to_string();
    assert!(e.contains("unknown request status `Approved`"), "{e}");
}

#[test]
fn waiters_wake_through_the_fallback_poll_while_listen_cannot_reconnect() {
    let pg = Cluster::start();
    // An ordinary role (a superuser would pass any connection limit).
    let mut admin = pg.client("postgres");
    admin
        .batch_execute("CREATE ROLE gate LOGIN PASSWORD 'gate-pw'")
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE gatedb OWNER gate")
        .unwrap();
    let db = format!("postgres://gate:gate-pw@127.0.0.1:{}/gatedb", pg.port);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let a = Replica::start(h, &db);
    let b = Replica::start(h, &db);
    let [alice, bob] = ["alice", "bob"].map(|p| token(h, &db, p));
    // Each replica's pool holds connections from here on.
    let warm = create(&a.url, &alice, &["echo", "one"]);
    assert_eq!(decide(&b.url, &bob, &warm, "approve").0, 200);
    assert_eq!(get(&a.url, &bob, &warm).0, 200);
    let c = client_home(&a.url, &vkey(h));
    let waiting = client(c.path(), &alice, &[], &["echo", "one"]);
    let id = pending_of(&a.url, &bob, "alice");

    // No new connection for the role, then the LISTEN connections go: they cannot come back.
    let open: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'gate' AND application_name <> 'gate serve listen'",
            &[],
        )
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!("ALTER ROLE gate CONNECTION LIMIT {open}"))
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gate serve listen'",
            &[],
        )
        .unwrap();
    poll("replica A polling for changes", || {
        a.stderr()
            .contains("cannot LISTEN for other replicas' changes")
            .then_some(())
    });
    let (status, body) = decide(&b.url, &bob, &id, "approve");
    assert_eq!(status, 200, "{body}");
    let out = waiting.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "one\n");
    // Connections allowed again: LISTEN comes back.
    admin
        .batch_execute("ALTER ROLE gate CONNECTION LIMIT -1")
        .unwrap();
    poll("both replicas listening again", || {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gate serve listen'",
                &[],
            )
            .unwrap()
            .get(0);
        (n == 2).then_some(())
    });
    drop(b);
}

/// A host's log pushed as `records` to `base`, with the host's checkpoint over the last one
/// signed by `signer`: the status.
fn push(
    base: &str,
    token: &str,
    signer: &gate::audit::note::NoteSigner,
    records: &[&gate::audit::Record],
) -> u16 {
    use base64::Engine;
    let last = records.last().unwrap();
    let note = signer.sign(&gate::audit::log::checkpoint_text(
        &last.log_id,
        last.seq + 1,
        &last.hash,
    ));
    let lines: Vec<String> = records.iter().map(|r| r.to_line().unwrap()).collect();
    http()
        .post(format!("{base}/v1/logs/{}/records", last.log_id))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .header(
            "gate-checkpoint",
            base64::engine::general_purpose::STANDARD.encode(note),
        )
        .body(lines.join("\n") + "\n")
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn two_versions_of_a_host_log_pushed_through_two_replicas_at_once_never_make_two_heads() {
    use gate::audit::record::{Body, GenesisInfo, ResultInfo};
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let a = Replica::start(h, &db);
    let b = Replica::start(h, &db);
    let host = token(h, &db, "host1");
    let signer = gate::audit::note::NoteSigner::from_seed("gate/h", &[7; 32]).unwrap();
    for round in 0..5 {
        let log_id = format!("{round:032x}");
        let genesis = gate::audit::Record::seal(
            &log_id,
            0,
            "2026-11-28T12:00:00.000Z".into(),
            &"0".repeat(64),
            Body::Genesis(GenesisInfo {
                host: "h".into(),
                created_by: "test".into(),
                key: Some(signer.verifier().to_vkey()),
            }),
        )
        .unwrap();
        let next = |code: i32| {
            gate::audit::Record::seal(
                &log_id,
                1,
                "2026-11-28T12:00:01.000Z".into(),
                &genesis.hash,
                Body::Result {
                    request_id: "r".into(),
                    result: ResultInfo {
                        exit_code: Some(code),
                        signal: None,
                        duration_ms: 1,
                        error: None,
                    },
                },
            )
            .unwrap()
        };
        let (x, y) = (next(0), next(1));
        assert_eq!(push(&a.url, &host, &signer, &[&genesis]), 200);
        let barrier = std::sync::Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let hs = [(&a.url, &x), (&b.url, &y)].map(|(url, r)| {
                let (barrier, host, signer) = (&barrier, &host, &signer);
                s.spawn(move || {
                    barrier.wait();
                    push(url, host, signer, &[r])
                })
            });
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [200, 409],
            "round {round}: one version wins, the fork is refused"
        );
        let winner = if statuses[0] == 200 { &x } else { &y };
        for url in [&a.url, &b.url] {
            let head: Value = http()
                .get(format!("{url}/v1/logs/{log_id}/head"))
                .bearer_auth(&host)
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(head["count"], 2, "{head}");
            assert_eq!(head["head"], winner.hash.as_str(), "{head}");
        }
    }
}

#[test]
fn a_replica_killed_between_commit_and_chaining_loses_no_event() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = vkey(h);
    let alice = token(h, &db, "alice");
    // A debug build aborts (as `kill -9` would) right after the request's transaction commits.
    let mut c = serve_command(h, &db);
    c.env("GATE_SERVER_CRASH_AT", "server-log:before-chain");
    let mut a = common::spawn_server(c);
    let argv: Vec<String> = ["echo", "one"].map(String::from).to_vec();
    let env: BTreeMap<String, String> = BTreeMap::new();
    let sent = http()
        .post(format!("http://{}/v1/requests", a.addr))
        .bearer_auth(&alice)
        .json(&json!({
            "argv": argv, "cwd": "/srv", "env": env,
            "digest": gate::request::digest(&argv, "/srv", &env, &[]),
        }))
        .send();
    assert!(sent.is_err(), "the replica answered instead of crashing");
    let status = a.child.wait().unwrap();
    assert!(!status.success());
    // The change committed with its event staged; the next replica to start chains it.
    let b = Replica::start(h, &db);
    let file = h.join("export.jsonl");
    export(h, &db, &file).status(0);
    let r = verify(h, &file, &key);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "event")
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["event"]["type"], "request");
    let id = events[0]["request_id"].as_str().unwrap();
    let (status, now) = get(&b.url, &alice, id);
    assert_eq!((status, now["status"].as_str()), (200, Some("pending")));
}

#[test]
fn a_replica_killed_while_clients_wait_on_it_leaves_them_to_finish_through_the_other() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = vkey(h);
    let mut a = Replica::start(h, &db);
    let b = Replica::start(h, &db);
    let [alice, bob] = ["alice", "bob"].map(|p| token(h, &db, p));
    // The clients know both replicas, A first (`urls:`), and pin the one key they share.
    let c = tempfile::tempdir().unwrap();
    std::fs::write(
        c.path().join("client-policy.yaml"),
        format!(
            r#"version: 1
backends:
  team: {{ kind: server, urls: ["{}", "{}"], key: "{key}" }}
rules:
  - name: via-server
    match: {{ program: echo }}
    decision: approve
    approval: {{ backend: team, timeout: 60s }}
"#,
            a.url, b.url
        ),
    )
    .unwrap();
    let waiting: Vec<Watched> = (0..3)
        .map(|_| client(c.path(), &alice, &[], &["echo", "one"]))
        .collect();
    let ids = poll("three pending requests on A", || {
        let v: Value = http()
            .get(format!("{}/v1/requests?status=pending", a.url))
            .bearer_auth(&bob)
            .send()
            .ok()?
            .json()
            .ok()?;
        let ids: Vec<String> = v["requests"]
            .as_array()?
            .iter()
            .map(|q| q["id"].as_str().unwrap().to_owned())
            .collect();
        (ids.len() == 3).then_some(ids)
    });
    // A dies with its long-polls open.
    let serving = a.serving.as_mut().unwrap();
    serving.child.kill().unwrap();
    serving.child.wait().unwrap();
    for id in &ids {
        let (status, body) = decide(&b.url, &bob, id, "approve");
        assert_eq!(status, 200, "{body}");
    }
    for w in waiting {
        let out = w.finish(Duration::from_secs(60));
        out.status(0);
        assert_eq!(out.stdout, "one\n");
    }
}

#[test]
fn secrets_kept_in_postgresql_are_sealed_and_a_foreign_key_is_refused() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = "11".repeat(32);
    let secret = |k: &str, args: &[&str], stdin: &[u8]| {
        let mut c = common::gate_in(h);
        c.env("GATE_SECRET_KEY", k)
            .args(["serve", "secret"])
            .args(args)
            .args(["--db", &db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        Ran::from_output(child.wait_with_output().unwrap())
    };
    secret(&key, &["set", "deploy-token"], b"s3cr3t-value\n").status(0);
    let listed = secret(&key, &["list"], b"");
    listed.status(0);
    assert!(listed.stdout.contains("deploy-token"), "{}", listed.stdout);
    // Sealed at rest: the value is nowhere in the database's rows.
    let sealed: Vec<u8> = pg
        .client("gate")
        .query_one(
            "SELECT sealed FROM secrets WHERE name = 'deploy-token'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
    // Another key does not decrypt what is there: refused, nothing stored.
    let r = secret(&"22".repeat(32), &["set", "other"], b"x\n");
    assert_eq!(r.status, 78, "{}", r.stderr);
    secret(&key, &["rm", "deploy-token"], b"").status(0);
    let listed = secret(&key, &["list"], b"");
    assert!(!listed.stdout.contains("deploy-token"), "{}", listed.stdout);
}

#[test]
fn a_replica_with_another_signing_key_is_refused_at_start() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Replica::start(one.path(), &db);
    // Its own key file, made on first use: not the key the server log's genesis names.
    refused_in(two.path(), &db, "every replica needs the same key file");
    drop(first);
}

#[track_caller]
fn refused_in(home: &Path, db: &str, what: &str) {
    let mut c = serve_command(home, db);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let r = Ran::of(c);
    assert_eq!(r.status, 78, "{}", r.stderr);
    assert!(r.stderr.contains(what), "{}", r.stderr);
    assert!(!r.stderr.contains(PASSWORD), "{}", r.stderr);
}

/// A server policy whose `sh` rule releases a secret to the approved run.
const RELEASE_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  sre: [alice, bob]
rules:
  - name: deploy
    match: { program: sh }
    decision: approve
    approval: { approvers: [sre], timeout: 60s }
    release: { DEPLOY_TOKEN: "secret:deploy-token" }
"#;

const SECRET_VALUE: &str = "pg-released-value-9c1e4b";

/// POST /v1/requests/{id}/release through `base` as `token`, for the digest of `argv`.
fn release(base: &str, token: &str, id: &str, argv: &[&str]) -> (u16, Value) {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let digest = gate::request::digest(&argv, "/srv", &BTreeMap::new(), &[]);
    let r = http()
        .post(format!("{base}/v1/requests/{id}/release"))
        .bearer_auth(token)
        .json(&json!({ "digest": digest }))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn a_release_replayed_or_raced_through_the_other_replica_is_refused_and_no_value_is_logged() {
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(h.join("server-policy.yaml"), RELEASE_POLICY).unwrap();
    let key = "3c".repeat(32);
    // The secret goes in through the same --db the replicas use.
    let mut c = common::gate_in(h);
    c.env("GATE_SECRET_KEY", &key)
        .args(["serve", "secret", "set", "deploy-token", "--db", &db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(SECRET_VALUE.as_bytes()).unwrap();
    }
    Ran::from_output(child.wait_with_output().unwrap()).status(0);
    let vk = vkey(h);
    let replica = || {
        let mut c = serve_command(h, &db);
        c.env("GATE_SECRET_KEY", &key);
        let serving = common::spawn_server(c);
        Replica {
            url: format!("http://{}", serving.addr),
            serving: Some(serving),
        }
    };
    let (a, b) = (replica(), replica());
    // A replica given another key would answer 503 to every release: it does not start.
    let mut c = serve_command(h, &db);
    c.env("GATE_SECRET_KEY", "4d".repeat(32));
    let other = spawn(c).finish(Duration::from_secs(30));
    assert_eq!(other.status, 78, "{}", other.stderr);
    assert!(
        other.stderr.contains("does not decrypt the secrets"),
        "{}",
        other.stderr
    );
    let [bob, erin] = ["bob", "erin"].map(|p| token(h, &db, p));
    let argv = ["sh", "-c", "deploy"];

    // Approved through A, released through B: the value, once.
    let id = create(&a.url, &erin, &argv);
    assert_eq!(
        release(&b.url, &erin, &id, &argv).0,
        409,
        "not approved yet"
    );
    let (status, body) = decide(&a.url, &bob, &id, "approve");
    assert_eq!(status, 200, "{body}");
    let (status, body) = release(&b.url, &erin, &id, &argv);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["variables"], json!({ "DEPLOY_TOKEN": SECRET_VALUE }));
    // Replayed through A: the one release is spent in the shared database.
    let (status, body) = release(&a.url, &erin, &id, &argv);
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("already_released")),
        "{body}"
    );

    // Two releases of another approval sent to both replicas at the same moment: one wins.
    let id2 = create(&b.url, &erin, &argv);
    assert_eq!(decide(&b.url, &bob, &id2, "approve").0, 200);
    let barrier = std::sync::Barrier::new(2);
    let raced: Vec<(u16, Value)> = std::thread::scope(|s| {
        let both = [&a.url, &b.url].map(|base| {
            let (barrier, erin, id2) = (&barrier, &erin, &id2);
            s.spawn(move || {
                barrier.wait();
                release(base, erin, id2, &argv)
            })
        });
        both.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let won: Vec<_> = raced.iter().filter(|(s, _)| *s == 200).collect();
    let lost: Vec<_> = raced
        .iter()
        .filter(|(s, v)| *s == 409 && v["error"] == "already_released")
        .collect();
    assert_eq!((won.len(), lost.len()), (1, 1), "{raced:?}");
    assert_eq!(won[0].1["variables"]["DEPLOY_TOKEN"], SECRET_VALUE);

    // The server log, exported from the database: one `released` event per approval, naming
    // the secret and never its value, and the chain verifies.
    let file = h.join("server-log.jsonl");
    export(h, &db, &file).status(0);
    let log = std::fs::read_to_string(&file).unwrap();
    assert!(
        !log.contains(SECRET_VALUE),
        "the value is in the server log"
    );
    let released: Vec<&str> = log.lines().filter(|l| l.contains("\"released\"")).collect();
    assert_eq!(released.len(), 2, "{log}");
    assert!(
        released.iter().all(|l| l.contains("deploy-token")),
        "{released:?}"
    );
    verify(h, &file, &vk).status(0);
    for r in [&a, &b] {
        assert!(!r.stderr().contains(SECRET_VALUE), "{}", r.stderr());
    }
    // Nor is it anywhere in the database's log tables in the clear.
    let rows: String = pg
        .client("gate")
        .query(
            "SELECT line FROM server_log UNION ALL SELECT record FROM server_log_pending",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(!rows.is_empty() && !rows.contains(SECRET_VALUE));
}

/// Two stores on one database, as two replicas hold them: a started sign-in is taken once,
/// also when both take it at the same moment; a release whose record fails is not spent.
#[test]
fn an_oidc_state_replayed_through_another_replica_is_taken_only_once() {
    use gate::approval::RequestStatus;
    use gate::server::store::{
        Database, OidcLoginRow, PgStore, RecordError, RequestRow, Store, StoreError,
    };
    let pg = Cluster::start();
    let db = pg.database("gate");
    let Database::Postgres(url) = Database::from_arg(PathBuf::from(&db)).unwrap() else {
        panic!("a postgres URL is PostgreSQL");
    };
    let (a, b) = (PgStore::open(&url).unwrap(), PgStore::open(&url).unwrap());
    let login = |created_ms| OidcLoginRow {
        browser_hash: "bh".into(),
        verifier: "verifier-secret".into(),
        nonce: "nonce-secret".into(),
        return_to: "/requests".into(),
        created_ms,
    };
    a.oidc_login_insert("s1", &login(1_000), 0, 10).unwrap();
    assert_eq!(b.oidc_login_take("s1").unwrap(), Some(login(1_000)));
    assert_eq!(a.oidc_login_take("s1").unwrap(), None, "taken once");
    assert_eq!(b.oidc_login_take("s1").unwrap(), None);
    // Raced: for each state, exactly one of the two replicas gets it.
    for i in 0..20 {
        let key = format!("race{i}");
        a.oidc_login_insert(&key, &login(2_000 + i), 0, 100)
            .unwrap();
        let barrier = std::sync::Barrier::new(2);
        let got = std::thread::scope(|s| {
            let x = s.spawn(|| {
                barrier.wait();
                a.oidc_login_take(&key).unwrap()
            });
            let y = s.spawn(|| {
                barrier.wait();
                b.oidc_login_take(&key).unwrap()
            });
            [x.join().unwrap(), y.join().unwrap()]
        });
        assert_eq!(got.iter().flatten().count(), 1, "state {key}: {got:?}");
    }
    // Stale ones go, then the oldest past `max`, as on SQLite.
    a.oidc_login_insert("old", &login(10), 0, 100).unwrap();
    a.oidc_login_insert("new1", &login(5_000), 10, 100).unwrap();
    assert_eq!(b.oidc_login_take("old").unwrap(), None, "stale");
    a.oidc_login_insert("new2", &login(5_001), 10, 2).unwrap();
    a.oidc_login_insert("new3", &login(5_002), 10, 2).unwrap();
    assert_eq!(b.oidc_login_take("new1").unwrap(), None, "trimmed");
    assert!(b.oidc_login_take("new2").unwrap().is_some());
    assert!(b.oidc_login_take("new3").unwrap().is_some());
    assert!(!format!("{:?}", login(1)).contains("secret"));

    // Secrets: a replacement keeps its creation time; a delete says whether there was one.
    a.secret_put("s", b"sealed-1", 100).unwrap();
    b.secret_put("s", b"sealed-2", 200).unwrap();
    let got = a.secret_get("s").unwrap().unwrap();
    assert_eq!(
        (got.sealed.as_slice(), got.created_ms, got.updated_ms),
        (&b"sealed-2"[..], 100, 200)
    );
    assert_eq!(b.secret_list().unwrap().len(), 1);
    assert!(a.secret_delete("s").unwrap());
    assert!(!b.secret_delete("s").unwrap());
    // Listed in byte order as on SQLite, also in a database whose collation sorts otherwise.
    pg.client("postgres")
        .batch_execute(
            "CREATE DATABASE icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' \
             LOCALE 'C.UTF-8'",
        )
        .unwrap();
    let Database::Postgres(icu) = Database::from_arg(PathBuf::from(pg.url("icu"))).unwrap() else {
        panic!("a postgres URL is PostgreSQL");
    };
    let icu = PgStore::open(&icu).unwrap();
    for name in ["a", "B", "_x"] {
        icu.secret_put(name, b"v", 1).unwrap();
    }
    let names: Vec<String> = icu
        .secret_list()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["B", "_x", "a"]);

    // A release: only of an approved request, and not spent when it cannot be recorded.
    let row = |id: &str, status| RequestRow {
        id: id.into(),
        requester: "erin".into(),
        status,
        created_ms: 1,
        expires_ms: 10,
        decided_ms: None,
        digest: "d".into(),
        doc: json!({}),
    };
    a.request_insert(&row("p", RequestStatus::Pending), &|_, _| Ok(()))
        .unwrap();
    a.request_insert(&row("ok", RequestStatus::Approved), &|_, _| Ok(()))
        .unwrap();
    assert!(!b.request_release("p", "erin", 5, &|_, _| Ok(())).unwrap());
    assert!(
        !b.request_release("none", "erin", 5, &|_, _| Ok(()))
            .unwrap()
    );
    let unrecorded = b.request_release("ok", "erin", 5, &|_, _| Err(RecordError::WriterStopped));
    assert!(
        matches!(unrecorded, Err(StoreError::Unrecorded(_))),
        "{unrecorded:?}"
    );
    assert_eq!(a.request_released("ok").unwrap(), None, "not spent");
    assert!(a.request_release("ok", "erin", 6, &|_, _| Ok(())).unwrap());
    assert!(!b.request_release("ok", "erin", 7, &|_, _| Ok(())).unwrap());
    assert_eq!(b.request_released("ok").unwrap(), Some(6));
}

/// The web sign-in through the identity provider across replicas behind one public URL (a
/// loopback address standing in for the load balancer): started on A, its callback answered by
/// B, and the same callback replayed through A (or B) finds no sign-in to finish — the `state`
/// lives in the shared database and is taken once.
#[test]
fn an_oidc_callback_replayed_through_the_other_replica_is_refused() {
    use crate::ci_identity::{Signer, sign};
    use crate::oidc_web::{Issuer, SECRET, policy, set_cookie};
    let pg = Cluster::start();
    let db = pg.database("gate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let issuer = Issuer::start();
    std::fs::write(h.join("server-policy.yaml"), policy(&issuer.base, "")).unwrap();
    let replica = || {
        let mut c = serve_command(h, &db);
        c.env("TEST_OIDC_CLIENT_SECRET", SECRET)
            .args(["--public-url", "http://127.0.0.1:1"]);
        let serving = common::spawn_server(c);
        Replica {
            url: format!("http://{}", serving.addr),
            serving: Some(serving),
        }
    };
    let (a, b) = (replica(), replica());
    let r = http().get(format!("{}/auth/login", a.url)).send().unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    let binding = set_cookie(r.headers(), "gate_oidc").expect("a login cookie");
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    *issuer.state.id_token.lock().unwrap() = sign(
        Signer::Rsa,
        &json!({"alg": "RS256", "kid": "rsa-1"}),
        &issuer.claims(&q["nonce"]),
    );
    let callback = |base: &str| {
        let mut url = reqwest::Url::parse(&format!("{base}/auth/callback")).unwrap();
        url.query_pairs_mut()
            .append_pair("state", &q["state"])
            .append_pair("code", "good-code");
        let r = http()
            .get(url)
            .header("cookie", format!("gate_oidc={binding}"))
            .send()
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().unwrap_or_default(), headers)
    };
    let (status, body, headers) = callback(&b.url);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Signed in as <b>alice</b>"), "{body}");
    let session = set_cookie(&headers, "gate_session").expect("a session cookie");
    assert_eq!(signed_in_as(&a.url, &session).as_deref(), Some("alice"));
    for base in [&a.url, &b.url] {
        let (status, body, headers) = callback(base);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("already used"), "{body}");
        assert!(set_cookie(&headers, "gate_session").is_none_or(|v| v.is_empty()));
    }
    let sessions: i64 = pg
        .client("gate")
        .query_one("SELECT count(*) FROM web_sessions", &[])
        .unwrap()
        .get(0);
    assert_eq!(sessions, 1, "a replayed callback made a session");
}

/// Two replicas with different secret keys starting together on a database that has no key
/// check value yet: one key becomes the database's and the other replica is refused — never two
/// replicas serving with two keys (one of them would answer 503 to every release).
#[test]
fn replicas_started_together_with_different_secret_keys_never_both_start() {
    use gate::secrets::vault::{CHECK_NAME, VaultKey};
    use gate::server::release::{KeyCheckError, check_key};
    use gate::server::store::{Database, PgStore, Store};
    let pg = Cluster::start();
    let db = pg.database("gate");
    let Database::Postgres(url) = Database::from_arg(PathBuf::from(&db)).unwrap() else {
        panic!("a postgres URL is PostgreSQL");
    };
    let (a, b) = (PgStore::open(&url).unwrap(), PgStore::open(&url).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "version: 1\nrules: []\n").unwrap();
    let policy = gate::policy::Policy::load(&[file]).unwrap();
    let (ka, kb) = (
        VaultKey::from_bytes(&[0xa1; 32]),
        VaultKey::from_bytes(&[0xb2; 32]),
    );
    for round in 0..20 {
        let barrier = std::sync::Barrier::new(2);
        let [x, y] = std::thread::scope(|s| {
            [(&a, &ka), (&b, &kb)]
                .map(|(store, key)| {
                    let (barrier, policy) = (&barrier, &policy);
                    s.spawn(move || {
                        barrier.wait();
                        check_key(store, Some((key, "a test key")), policy, 1)
                    })
                })
                .map(|t| t.join().unwrap())
        });
        let started = [&x, &y].iter().filter(|r| r.is_ok()).count();
        let refused = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Err(KeyCheckError::WrongKey(_))))
            .count();
        assert_eq!((started, refused), (1, 1), "round {round}: {x:?} {y:?}");
        assert!(a.secret_delete(CHECK_NAME).unwrap());
    }
}
