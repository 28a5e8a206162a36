//! `urls: [A, B]` on a `kind: server` backend (issue 14 §2, the client side).
//!
//! Two `gate serve` replicas share one database (here one SQLite file, which two processes can
//! share in WAL mode; in production PostgreSQL) and so one signing key (`<database>.key`). A
//! client that waits on A finishes through B when A is killed; with both down nothing runs
//! (75); and an address in the list that is not the real server — a `gate serve` of the
//! attacker's own, with its own key — can take the request and "approve" it, and still nothing
//! runs, because its decision is not signed by the key the policy pins.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Ran;
use common::process::{HANG, Server, Watched, spawn};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// No groups: any principal but the requester may approve.
const SERVER_POLICY: &str = "version: 1\n";

/// A replica: `gate serve` on `db` (and its key beside it), with an audit log of its own.
fn replica(home: &Path, db: &Path, name: &str) -> Server {
    let policy = home.join("server-policy.yaml");
    if !policy.exists() {
        std::fs::write(&policy, SERVER_POLICY).unwrap();
    }
    let audit = home.join(format!("{name}-audit.jsonl"));
    let mut c = common::gate_in(home);
    c.arg("--policy")
        .arg(&policy)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .arg("--audit-log")
        .arg(&audit);
    Server::adopt(common::spawn_server(c), home, db.to_owned(), audit)
}

/// A loopback address nobody listens on.
fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// A client home whose policy routes `touch` to the server at `urls`, pinning `key`.
fn client_home(urls: &[&str], key: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let list = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        d.path().join("client-policy.yaml"),
        format!(
            r#"version: 1
backends:
  team: {{ kind: server, urls: [{list}], key: "{key}" }}
rules:
  - name: touch-needs-approval
    match: {{ program: touch }}
    decision: approve
    approval: {{ backend: team, timeout: 60s }}
"#
        ),
    )
    .unwrap();
    d
}

fn marker(home: &Path) -> PathBuf {
    home.join("ran")
}

/// `gate -- touch <home>/ran` with `token`.
fn touch(home: &Path, token: &str, extra: &[&str]) -> Command {
    let mut c = common::gate_in(home);
    c.env("GATE_TOKEN", token)
        .arg("--policy")
        .arg(home.join("client-policy.yaml"))
        .args(extra)
        .arg("--")
        .arg("touch")
        .arg(marker(home));
    c
}

fn waiting_id(client: &mut Watched) -> String {
    client.stderr_until("waiting as request ", HANG);
    let text = client.stderr_text();
    let rest = text.split("waiting as request ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_owned()
}

fn approve(home: &Path, token: &str, url: &str, id: &str) -> Ran {
    let mut c = common::gate_in(home);
    c.env("GATE_TOKEN", token)
        .args(["approve", id, "--server", url]);
    Ran::of(c)
}

/// The key a server on `db` signs with (made beside it), without starting one.
fn key_of(home: &Path, db: &Path) -> String {
    let mut c = common::gate_in(home);
    c.args(["serve", "key", "--db"]).arg(db);
    let r = Ran::of(c);
    r.status(0);
    r.stdout.trim().to_owned()
}

fn sigkill(srv: &mut Server) {
    kill(Pid::from_raw(srv.pid() as i32), Signal::SIGKILL).unwrap();
}

#[test]
fn a_client_waiting_on_a_killed_replica_finishes_through_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    // A first: it makes the database and the key B then shares.
    let mut a = replica(dir.path(), &db, "a");
    let b = replica(dir.path(), &db, "b");
    let (alice, bob) = (a.token("alice", None), a.token("bob", None));
    let home = client_home(&[&a.url, &b.url], &a.vkey());
    let h = home.path();

    let mut client = spawn(touch(h, &alice, &[]));
    let id = waiting_id(&mut client);
    assert!(
        client.stderr_text().contains(&format!("on {}", a.url)),
        "the request was not made on the first replica:\n{}",
        client.stderr_text()
    );
    // A dies mid-wait, with the client's long-poll open on it.
    sigkill(&mut a);
    let r = approve(h, &bob, &b.url, &id);
    r.status(0);
    r.stderr_contains("it is now approved");
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    out.stderr_contains(&format!(
        "{} stopped answering; waiting on {}",
        a.url, b.url
    ));
    assert!(marker(h).exists(), "the approved command did not run");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(h.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decision = records
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("a decision record");
    assert_eq!(decision["decision"]["outcome"], "approved", "{decision}");
    assert_eq!(decision["decision"]["approvals"][0]["principal"], "bob");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "result" && r["request_id"] == id.as_str()),
        "no result record: {records:?}"
    );
}

#[test]
fn with_every_replica_down_nothing_runs() {
    // Down from the start: the request is made nowhere.
    let dir = tempfile::tempdir().unwrap();
    let key = key_of(dir.path(), &dir.path().join("x.db"));
    let (n1, n2) = (nowhere(), nowhere());
    let home = client_home(&[&n1, &n2], &key);
    let h = home.path();
    let r = Ran::of(touch(h, "gate_00000000_whatever", &["--timeout", "3s"]));
    r.status(75);
    r.stderr_contains("cannot reach the gate server");
    assert!(!marker(h).exists(), "the command ran without an approval");

    // Both killed while the client waits.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut a = replica(dir.path(), &db, "a");
    let mut b = replica(dir.path(), &db, "b");
    let alice = a.token("alice", None);
    let home = client_home(&[&a.url, &b.url], &a.vkey());
    let h = home.path();
    let mut client = spawn(touch(h, &alice, &["--timeout", "4s"]));
    waiting_id(&mut client);
    sigkill(&mut a);
    sigkill(&mut b);
    let out = client.finish(HANG);
    out.status(75);
    assert!(!marker(h).exists(), "the command ran without an approval");
}

#[test]
fn an_address_that_is_not_the_real_server_cannot_approve() {
    let dir = tempfile::tempdir().unwrap();
    // The real server's key, pinned by the policy; the real server itself is down.
    let real_key = key_of(dir.path(), &dir.path().join("real.db"));
    // The attacker's own `gate serve`: its own database, so its own key.
    let evil = replica(dir.path(), &dir.path().join("evil.db"), "evil");
    assert_ne!(evil.vkey(), real_key);
    let (alice, mallory) = (evil.token("alice", None), evil.token("mallory", None));
    let home = client_home(&[&nowhere(), &evil.url], &real_key);
    let h = home.path();

    let mut client = spawn(touch(h, &alice, &[]));
    let id = waiting_id(&mut client);
    let r = approve(h, &mallory, &evil.url, &id);
    r.status(0);
    r.stderr_contains("it is now approved");
    let out = client.finish(Duration::from_secs(30));
    out.status(75);
    out.stderr_contains("answered `approved`, but");
    out.stderr_contains("refusing to run");
    assert!(
        !marker(h).exists(),
        "an approval signed by another key ran the command"
    );
}

#[test]
fn a_bad_urls_entry_is_a_policy_error_at_its_place() {
    const KEY: &str = "gate/vm+bc4dc392+AUb5WZhhFe1FmZQ+75Y0RJYWvdgQGEq4rMA4RQCY4gST";
    let g = common::Gate::new();
    let p = g.write(
        "p.yaml",
        &format!(
            r#"version: 1
backends:
  a: {{ kind: server, urls: ["https://a.example", "ftp://b.example", "https://a.example/", "no url"], key: "{KEY}" }}
  b: {{ kind: server, url: "https://x.example", urls: ["https://y.example"], key: "{KEY}" }}
  c: {{ kind: server, key: "{KEY}" }}
  d: {{ kind: local, urls: ["https://z.example"] }}
  e: {{ kind: server, urls: [], key: "{KEY}" }}
  f: {{ kind: server, urls: "https://one.example", key: "{KEY}" }}
  ok: {{ kind: server, urls: ["https://a.example", "https://b.example"], key: "{KEY}", ca: /etc/gate/ca.pem }}
"#
        ),
    );
    let g = g.args(&["policy", "lint", p.to_str().unwrap()]);
    let r = g.run();
    r.status(78);
    for (at, what) in [
        (
            "/p.yaml:3:50",
            "`ftp://b.example` is not an http(s) URL with a host",
        ),
        (
            "/p.yaml:3:69",
            "`https://a.example` is listed twice in `urls`",
        ),
        ("/p.yaml:3:91", "`no url` is not a URL"),
        (
            "/p.yaml:4:48",
            "a `server` backend takes `url` or `urls`, not both",
        ),
        ("/p.yaml:5:6", "a `server` backend needs `url` (or `urls`)"),
        ("/p.yaml:6:21", "`urls` does not apply to a `local` backend"),
        ("/p.yaml:7:28", "`urls` is empty"),
        (
            "/p.yaml:8:28",
            "expected a list of server URLs, found a string",
        ),
    ] {
        let i = r
            .stderr
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} in:\n{}", r.stderr));
        let place = r.stderr[i..].split("--> ").nth(1).unwrap_or("");
        let place = place.split_whitespace().next().unwrap_or("");
        assert!(place.ends_with(at), "{what:?} not at {at}:\n{}", r.stderr);
    }
    r.stderr_contains("error: 8 problems in policy");
}
