//! `gate serve` when its database's disk fills up (issue 10, findings 4 and 5): errors say what
//! failed, `/healthz` answers 503 naming the part, nothing is changed that could not be
//! written, the server carries on once space is freed — without a restart — and the SQLite
//! write-ahead log stays bounded.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const POLICY: &str = "version: 1
groups:
  ops: [ann, bob]
rules:
  - name: anything
    match: {program: echo}
    decision: approve
    approval: {approvers: [ops], min_approvals: 1}
";

struct Server {
    child: std::process::Child,
    url: String,
    home: PathBuf,
    /// The database's path as the server sees it.
    db: PathBuf,
    /// The same, seen from here (through `/proc/PID/root` when in a namespace of its own).
    db_here: PathBuf,
    /// The server's own mount namespace, when it has one.
    ns: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// A server whose database lives in `dir` (a tmpfs of `size` in a private mount namespace
    /// when given, else a plain directory).
    fn start(home: &Path, tmpfs: Option<&str>) -> Server {
        std::fs::write(home.join("server-policy.yaml"), POLICY).unwrap();
        let small = home.join("small");
        std::fs::create_dir_all(&small).unwrap();
        let db = small.join("server.db");
        let mut c = common::gate_in(home);
        c.arg("--policy")
            .arg(home.join("server-policy.yaml"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .arg("--audit-log")
            .arg(home.join("server-audit.jsonl"));
        let c = match tmpfs {
            None => c,
            Some(size) => {
                let mut w = Command::new("unshare");
                w.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount -t tmpfs -o size={size},mode=0755 gate-test \"$0\" && exec \"$@\""
                    ))
                    .arg(&small)
                    .arg(common::bin())
                    .args(c.get_args())
                    .env_clear()
                    .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
                    .current_dir(home);
                w
            }
        };
        let s = common::spawn_server(c);
        let inside = PathBuf::from(format!("/proc/{}/root{}", s.child.id(), db.display()));
        Server {
            url: format!("http://{}", s.addr),
            child: s.child,
            home: home.to_owned(),
            db_here: if tmpfs.is_some() { inside } else { db.clone() },
            db,
            ns: tmpfs.is_some(),
        }
    }

    fn token(&self, principal: &str) -> String {
        let mut c = common::gate_in(&self.home);
        c.args(["serve", "token", "issue", "--principal", principal, "--db"])
            .arg(&self.db);
        // SQLite resolves `/proc/PID/root` back to this namespace's view: issue the token
        // from inside the server's.
        if self.ns {
            let mut n = Command::new("nsenter");
            n.args(["-t", &self.child.id().to_string(), "-m", "--"])
                .arg(c.get_program())
                .args(c.get_args())
                .env_clear()
                .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .current_dir(&self.home);
            c = n;
        }
        let r = c.output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8(r.stdout).unwrap().trim().to_owned()
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let http = reqwest::blocking::Client::new();
        let mut r = http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn create(&self, token: &str, word: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/requests",
            token,
            Some(json!({"argv": ["echo", word], "cwd": "/", "digest": digest_of(&["echo", word])})),
        )
    }

    fn health(&self) -> (u16, String) {
        let r = reqwest::blocking::get(format!("{}/healthz", self.url)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }
}

/// SHA-256 of the canonical `{argv, cwd: "/", env: {}, payload: []}`.
fn digest_of(argv: &[&str]) -> String {
    use sha2::Digest;
    let doc = json!({"argv": argv, "cwd": "/", "env": {}, "payload": []});
    hex::encode(sha2::Sha256::digest(
        gate::jcs::canonicalize(&doc).unwrap().as_bytes(),
    ))
}

#[test]
fn a_full_database_disk_is_named_refuses_changes_and_is_survived_without_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let srv = Server::start(home.path(), Some("1m"));
    let [erin, ann] = ["erin", "ann"].map(|p| srv.token(p));
    let (st, v) = srv.create(&erin, "one");
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();

    // Fill the database's tmpfs to the last page.
    let filler = srv.db_here.with_file_name("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    let full = loop {
        if let Err(e) = f.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(28), "ENOSPC: {full}");
    drop(f);

    let (st, body) = srv.health();
    assert_eq!(st, 503, "{body}");
    assert!(
        body.contains("the database") && body.contains("disk full"),
        "/healthz must name the failing part: {body}"
    );
    // Changes that cannot be written are refused with what failed, and not made.
    let mut refused = None;
    for i in 0..50 {
        let (st, v) = srv.create(&erin, &format!("more-{i}"));
        if st != 201 {
            refused = Some((st, v));
            break;
        }
    }
    let (st, v) = refused.expect("a full disk refused no request");
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"], "disk_full", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("disk is full"),
        "{v}"
    );
    assert!(
        !v["message"].as_str().unwrap().contains("could not reach"),
        "{v}"
    );

    // Space again: the same server takes changes, and the request approved now is approved.
    std::fs::remove_file(&filler).unwrap();
    let mut approved = None;
    for _ in 0..100 {
        let (st, v) = srv.call("POST", &format!("/v1/requests/{id}/approve"), &ann, None);
        if st == 200 {
            approved = Some(v);
            break;
        }
        assert_eq!(st, 503, "{v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let v = approved.expect("the server never recovered from the full disk");
    assert_eq!(v["status"], "approved", "{v}");
    let (st, body) = srv.health();
    assert_eq!(st, 200, "{body}");
}

#[test]
fn the_write_ahead_log_stays_bounded_under_load() {
    let home = tempfile::tempdir().unwrap();
    let srv = Server::start(home.path(), None);
    let erin = srv.token("erin");
    let wal = PathBuf::from(format!("{}-wal", srv.db_here.display()));
    let mut largest = 0;
    for i in 0..400 {
        let (st, v) = srv.create(&erin, &format!("padding-{i}-{}", "x".repeat(2000)));
        assert_eq!(st, 201, "{v}");
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    // 256 pages of 4 KiB between checkpoints, cut back to 1 MiB after each: never near the
    // several MiB SQLite's defaults let it reach.
    assert!(largest > 0, "no write-ahead log seen at {}", wal.display());
    assert!(
        largest <= 2 << 20,
        "the write-ahead log reached {largest} bytes"
    );
}

#[test]
fn every_file_the_server_writes_is_for_its_user_only() {
    // SQLite makes `-wal` and `-shm` with the process umask: under the usual 022 they were
    // 0644 beside a 0600 database, and another user read principal names from the WAL.
    let home = tempfile::tempdir().unwrap();
    let srv = Server::start(home.path(), None);
    let erin = srv.token("erin");
    let (st, v) = srv.create(&erin, "one");
    assert_eq!(st, 201, "{v}");
    let dir = srv.db.parent().unwrap();
    let mut seen = Vec::new();
    for dir in [dir, home.path()] {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("server") || name.ends_with(".key")) {
                continue;
            }
            use std::os::unix::fs::PermissionsExt;
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if name == "server-policy.yaml" {
                continue; // written by this test
            }
            assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
            seen.push(name);
        }
    }
    seen.sort();
    for must in [
        "server.db",
        "server.db-wal",
        "server.db-shm",
        "server-audit.jsonl",
    ] {
        assert!(
            seen.iter().any(|s| s == must),
            "{must} not found in {seen:?}"
        );
    }
}
