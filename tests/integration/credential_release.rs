//! Credential release (issue 14 §5), against a real `gate serve` and the real client.
//!
//! The server keeps named secrets sealed (AES-256-GCM under a key it never stores); a rule of
//! *its* policy says which environment variables an approved run of a command receives. The
//! attacker is an agent holding the requester's token and files: it may call the API directly,
//! before approval, with another digest, twice, or as another principal — and gets nothing. The
//! approved run gets the values in its child's environment and nowhere else: not gate's stderr,
//! not the client's audit log, not the server's log or its stderr, not the database file.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::jcs::jcs;
use common::process::{Server, poll};
use common::{Checked, Ran};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY: &str = "6a3f1c9e2b7d4058a1e6c3b9f0d2e7a45b8c1f3e6d9a2b5c8e1f4a7d0b3c6e90";
const OTHER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const TOKEN_VALUE: &str = "AKIA-very-secret-session-token-4e1f";
const DB_VALUE: &str = "correct horse battery staple 77";

const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  security: [alice, bob]
rules:
  - name: deploy
    match: { program: sh }
    decision: approve
    approval: { approvers: [security] }
    release: { AWS_SESSION_TOKEN: "secret:prod-deploy", DB_PASSWORD: "secret:db" }
"#;

/// The same server policy without any `release:`.
const PLAIN_SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  security: [alice, bob]
rules:
  - name: deploy
    match: { program: sh }
    decision: approve
    approval: { approvers: [security] }
"#;

fn run(c: Command) -> Checked {
    Checked::new(Ran::of(c))
}

/// `gate serve secret set NAME` with `value` on stdin and `key` in `GATE_SECRET_KEY`.
fn set_secret(home: &Path, db: &Path, key: &str, name: &str, value: &[u8]) -> Ran {
    let mut c = common::gate_in(home);
    c.env("GATE_SECRET_KEY", key)
        .args(["serve", "secret", "set", "--db"])
        .arg(db)
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(value).unwrap();
    }
    Ran::from_output(child.wait_with_output().unwrap())
}

/// `gate serve` in `home` with `key` as `GATE_SECRET_KEY`.
fn start_server(home: &Path, policy: &str, key: &str) -> Server {
    let mut c = common::gate_in(home);
    c.env("GATE_SECRET_KEY", key);
    let (s, db, audit) = common::serve_in(c, home, policy, "127.0.0.1:0");
    Server::adopt(s, home, db, audit)
}

/// A server holding both secrets, its policy releasing them, and tokens.
struct Setup {
    srv: Server,
    _srv_home: tempfile::TempDir,
    alice: String,
    erin: String,
    mallory: String,
}

fn setup(policy: &str) -> Setup {
    let srv_home = tempfile::tempdir().unwrap();
    let db = srv_home.path().join("server.db");
    set_secret(
        srv_home.path(),
        &db,
        KEY,
        "prod-deploy",
        TOKEN_VALUE.as_bytes(),
    )
    .status(0);
    set_secret(
        srv_home.path(),
        &db,
        KEY,
        "db",
        format!("{DB_VALUE}\n").as_bytes(),
    )
    .status(0);
    let srv = start_server(srv_home.path(), policy, KEY);
    let [alice, erin, mallory] = ["alice", "erin", "mallory"].map(|p| srv.token(p, None));
    Setup {
        srv,
        _srv_home: srv_home,
        alice,
        erin,
        mallory,
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `method path` on the server at `url` with `token` and a JSON `body`: status and answer.
fn api(url: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = http()
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Files a request for `argv` as `token`'s principal, straight through the API (no gate
/// involved); its id and digest.
fn file_request(url: &str, token: &str, argv: &[&str], extra: Value) -> (String, String) {
    let digest = digest_of(argv, "/srv");
    let mut body = json!({"argv": argv, "cwd": "/srv", "digest": digest});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, v) = api(url, "POST", "/v1/requests", token, Some(body));
    assert_eq!(s, 201, "{v}");
    (v["id"].as_str().unwrap().to_owned(), digest)
}

fn release_of(url: &str, token: &str, id: &str, digest: &str) -> (u16, Value) {
    api(
        url,
        "POST",
        &format!("/v1/requests/{id}/release"),
        token,
        Some(json!({ "digest": digest })),
    )
}

impl Setup {
    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        api(&self.srv.url, method, path, token, body)
    }

    /// Files a request for `argv` as erin.
    fn create(&self, argv: &[&str], extra: Value) -> (String, String) {
        file_request(&self.srv.url, &self.erin, argv, extra)
    }

    fn release(&self, token: &str, id: &str, digest: &str) -> (u16, Value) {
        release_of(&self.srv.url, token, id, digest)
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(&self.srv.audit).unwrap_or_default()
    }

    /// A client home whose policy routes `sh` to this server (its key pinned); erin's token.
    fn client(&self, extra_rule: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let policy = format!(
            r#"version: 1
groups:
  security: [alice, bob]
backends:
  team: {{ kind: server, url: "{}", key: "{}" }}
rules:
  - name: deploy
    match: {{ program: sh }}
    decision: approve
    approval: {{ approvers: [security], backend: team, timeout: 30s }}
{extra_rule}"#,
            self.srv.url,
            self.srv.vkey()
        );
        std::fs::write(home.path().join("policy.yaml"), policy).unwrap();
        home
    }

    /// Runs `sh -c SCRIPT` through gate in `home` as erin; alice approves it on the server.
    /// The run, and the request id.
    fn approved_sh(&self, home: &Path, script: &str) -> (Ran, String) {
        let mut c = common::gate_in(home);
        c.env("GATE_TOKEN", &self.erin)
            .arg("--policy")
            .arg(home.join("policy.yaml"))
            .args(["--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let id = poll("the client's request", || {
            let (s, v) = self.call("GET", "/v1/requests?status=pending", &self.alice, None);
            assert_eq!(s, 200, "{v}");
            v["requests"]
                .as_array()
                .and_then(|a| a.first())
                .map(|r| r["id"].as_str().unwrap().to_owned())
        });
        let (s, v) = self.call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            &self.alice,
            None,
        );
        assert_eq!(s, 200, "{v}");
        (Ran::from_output(child.wait_with_output().unwrap()), id)
    }
}

/// SHA-256 of the canonical `{argv, cwd, env: {}, payload: []}`.
fn digest_of(argv: &[&str], cwd: &str) -> String {
    let doc = json!({"argv": argv, "cwd": cwd, "env": {}, "payload": []});
    hex::encode(Sha256::digest(jcs(&doc).as_bytes()))
}

fn sha_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn assert_no_value(what: &str, text: &str) {
    for v in [TOKEN_VALUE, DB_VALUE] {
        assert!(!text.contains(v), "{what} holds a secret value:\n{text}");
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn assert_no_value_in_files(dir: &Path) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for v in [TOKEN_VALUE, DB_VALUE] {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                "{} holds a secret value",
                f.display()
            );
        }
    }
}

/// The web page's HTML for `token`'s principal, signed in through the form as a browser would.
fn web_page(base: &str, token: &str) -> String {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cookie = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let page = http.get(format!("{base}/")).send().unwrap();
    let signin = cookie(&page, "gate_signin");
    let text = page.text().unwrap();
    let csrf = regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#)
        .unwrap()
        .captures(&text)
        .expect("a CSRF field")[1]
        .to_owned();
    let r = http
        .post(format!("{base}/signin"))
        .header("Cookie", format!("gate_signin={signin}"))
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let session = cookie(&r, "gate_session");
    http.get(format!("{base}/"))
        .header("Cookie", format!("gate_session={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn set_list_rm_round_trip_shows_names_and_never_values() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("server.db");
    set_secret(home.path(), &db, KEY, "prod-deploy", TOKEN_VALUE.as_bytes())
        .status(0)
        .stderr_has("stored secret `prod-deploy`");
    set_secret(home.path(), &db, KEY, "db", DB_VALUE.as_bytes()).status(0);
    // Replacing a value keeps one row.
    set_secret(home.path(), &db, KEY, "db", DB_VALUE.as_bytes()).status(0);

    let list = |json: bool| {
        let mut c = common::gate_in(home.path());
        c.args(["serve", "secret", "list", "--db"]).arg(&db);
        if json {
            c.arg("--json");
        }
        let r = run(c);
        r.status(0);
        r.stdout.clone()
    };
    let table = list(false);
    assert!(
        table.contains("prod-deploy") && table.contains("db"),
        "{table}"
    );
    assert!(!table.contains("#key-check"), "{table}");
    assert_no_value("the list", &table);
    let lines: Vec<Value> = list(true)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db", "prod-deploy"]);
    for l in &lines {
        let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "created", "updated"], "{l}");
    }

    // The database (and its WAL) hold no plaintext.
    assert_no_value_in_files(home.path());

    let rm = |name: &str| {
        let mut c = common::gate_in(home.path());
        c.args(["serve", "secret", "rm", "--db"]).arg(&db).arg(name);
        run(c)
    };
    rm("db").status(0).stderr_has("deleted secret `db`");
    rm("db")
        .status(1)
        .stderr_has("no secret `db`")
        .stderr_has("gate serve secret list");
    let names: Vec<String> = list(true)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["prod-deploy"]);
}

#[test]
fn bad_values_and_keys_are_refused_without_showing_them() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("server.db");
    set_secret(home.path(), &db, KEY, "x", b"\n")
        .status(2)
        .stderr_has("the value is empty");
    set_secret(home.path(), &db, KEY, "../x", b"v")
        .status(2)
        .stderr_has("is not a secret name");
    let bad = "not-hex-at-all-hunter2";
    let r = set_secret(home.path(), &db, bad, "x", b"v");
    r.status(78)
        .stderr_has("`GATE_SECRET_KEY` must be exactly 64 hexadecimal characters");
    assert!(!r.stderr.contains(bad), "{}", r.stderr);
    let r = set_secret(home.path(), &db, &"zz".repeat(32), "x", b"v");
    r.status(78).stderr_has("it is not hexadecimal");

    // A key file others can read is refused; 0600 is taken, 32 raw bytes too.
    let file = home.path().join("key");
    std::fs::write(&file, KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with_file = |name: &str| {
        let mut c = common::gate_in(home.path());
        c.args(["serve", "secret", "set", "--db"])
            .arg(&db)
            .arg("--secret-key-file")
            .arg(&file)
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"value").unwrap();
        }
        Ran::from_output(child.wait_with_output().unwrap())
    };
    with_file("x")
        .status(78)
        .stderr_has("is readable by group or others (mode 0644)");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    with_file("x").status(0);
    // The same key as raw bytes opens what the hex form sealed.
    std::fs::write(&file, hex::decode(KEY).unwrap()).unwrap();
    with_file("y").status(0);
    // Another key is not the key of this database.
    set_secret(home.path(), &db, OTHER_KEY, "z", b"v")
        .status(78)
        .stderr_has("is not the key this database's secrets are stored with");
}

#[test]
fn a_server_started_with_the_wrong_key_exits_78() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("server.db");
    set_secret(home.path(), &db, KEY, "prod-deploy", TOKEN_VALUE.as_bytes()).status(0);
    std::fs::write(home.path().join("server-policy.yaml"), SERVER_POLICY).unwrap();
    let serve = |key: Option<&str>| {
        let mut c = common::gate_in(home.path());
        if let Some(k) = key {
            c.env("GATE_SECRET_KEY", k);
        }
        c.arg("--policy")
            .arg(home.path().join("server-policy.yaml"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db);
        run(c)
    };
    serve(Some(OTHER_KEY))
        .status(78)
        .stderr_has("does not decrypt the secrets in the database");
    serve(Some("abc"))
        .status(78)
        .stderr_has("`GATE_SECRET_KEY` must be exactly 64 hexadecimal characters");
    // No key at all, with secrets stored: no server that would answer 503 to every release.
    serve(None)
        .status(78)
        .stderr_has("no secret key is configured");
    // A key file with another key: the same refusal, naming the file.
    use std::os::unix::fs::PermissionsExt;
    let other = home.path().join("other.key");
    std::fs::write(&other, OTHER_KEY).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = common::gate_in(home.path());
    c.arg("--policy")
        .arg(home.path().join("server-policy.yaml"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--secret-key-file")
        .arg(&other);
    run(c)
        .status(78)
        .stderr_has("does not decrypt the secrets in the database")
        .stderr_has("other.key");
    // `GATE_SECRET_KEY` comes before the file: with the right key there, the file is not read.
    let mut c = common::gate_in(home.path());
    c.env("GATE_SECRET_KEY", KEY)
        .args(["serve", "secret", "set", "--db"])
        .arg(&db)
        .arg("--secret-key-file")
        .arg(&other)
        .arg("db")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"v").unwrap();
    }
    Ran::from_output(child.wait_with_output().unwrap())
        .status(0)
        .stderr_has("sealed with the key from `GATE_SECRET_KEY`");
}

#[test]
fn an_approved_run_gets_the_secrets_in_its_environment_and_nowhere_else() {
    let s = setup(SERVER_POLICY);
    let home = s.client("");
    // The child prints only hashes of what it got.
    let (r, id) = s.approved_sh(
        home.path(),
        r#"printf %s "$AWS_SESSION_TOKEN" | sha256sum; printf %s "$DB_PASSWORD" | sha256sum"#,
    );
    r.status(0);
    let want = format!("{}  -\n{}  -\n", sha_hex(TOKEN_VALUE), sha_hex(DB_VALUE));
    assert_eq!(r.stdout, want, "{}", r.stderr);
    assert_no_value("gate's stderr", &r.stderr);

    // The client's decision record names the variables and secrets, never a value.
    let log = std::fs::read_to_string(home.path().join("audit.jsonl")).unwrap();
    assert_no_value("the client's log", &log);
    let d: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["kind"] == "decision" && r["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(
        d["decision"]["release"],
        json!([
            {"env": "AWS_SESSION_TOKEN", "secret": "prod-deploy"},
            {"env": "DB_PASSWORD", "secret": "db"}
        ])
    );
    // The server recorded one `released` event naming them, and no value anywhere.
    let srv_log = s.server_log();
    assert_no_value("the server's log", &srv_log);
    assert_no_value("the server's stderr", &s.srv.stderr());
    let released: Vec<Value> = srv_log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"]["type"] == "released")
        .collect();
    assert_eq!(released.len(), 1, "{srv_log}");
    assert_eq!(released[0]["request_id"], json!(id));
    assert_eq!(released[0]["event"]["principal"], "erin");
    assert_eq!(
        released[0]["event"]["comment"],
        "AWS_SESSION_TOKEN=secret:prod-deploy, DB_PASSWORD=secret:db"
    );
    assert_no_value_in_files(&s.srv.home);
    assert_no_value_in_files(home.path());
    // Both logs, with their release records and events, verify intact.
    for log in [home.path().join("audit.jsonl"), s.srv.audit.clone()] {
        let mut c = common::gate_in(home.path());
        c.args(["log", "verify"]).arg(&log);
        let r = run(c);
        r.status(0).any_stderr();
        assert_no_value("gate log verify", &r.stdout);
    }

    // `gate requests ID --json` (and the API) show approvers the names, never the values.
    let (st, v) = s.call("GET", &format!("/v1/requests/{id}"), &s.alice, None);
    assert_eq!(st, 200);
    assert_eq!(v["release"], d["decision"]["release"]);
    assert_no_value("the request view", &v.to_string());
    // The one release is spent: a replay by the agent gets nothing.
    let (st, v) = s.release(&s.erin, &id, v["digest"].as_str().unwrap());
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"], "already_released");
}

#[test]
fn a_command_that_prints_its_environment_through_gate_output_is_still_recorded_without_the_value() {
    let s = setup(SERVER_POLICY);
    let home = s.client("");
    let (r, _) = s.approved_sh(
        home.path(),
        r#"echo "token=$AWS_SESSION_TOKEN"; env >&2; exit 3"#,
    );
    // The approved command may print it (its own business) and its status passes through...
    r.status(3);
    assert!(r.stdout.contains(TOKEN_VALUE), "{}", r.stdout);
    // ...but nothing gate wrote or recorded holds it: its own lines on stderr, its log, the
    // server's log and stderr.
    let gate_lines: String = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("gate:") || l.starts_with("error:") || l.starts_with("warning:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!gate_lines.is_empty(), "{}", r.stderr);
    assert_no_value("gate's own lines", &gate_lines);
    let log = std::fs::read_to_string(home.path().join("audit.jsonl")).unwrap();
    assert_no_value("the client's log", &log);
    assert!(log.contains("\"exit_code\":3"), "{log}");
    assert_no_value("the server's log", &s.server_log());
    assert_no_value("the server's stderr", &s.srv.stderr());
}

#[test]
fn an_agent_without_gate_never_sees_the_secret() {
    let s = setup(SERVER_POLICY);
    let (id, digest) = s.create(&["sh", "-c", "deploy"], json!({}));
    // The request shows what it would release, by name.
    let (_, v) = s.call("GET", &format!("/v1/requests/{id}"), &s.erin, None);
    assert_eq!(v["release"][0]["env"], "AWS_SESSION_TOKEN");
    assert_no_value("the pending request", &v.to_string());
    // So does `gate requests ID` for an approver, in words and in `--json`.
    let approver_home = tempfile::tempdir().unwrap();
    let show = |json: bool| {
        let mut c = common::gate_in(approver_home.path());
        c.env("GATE_TOKEN", &s.alice)
            .args(["requests", "--server", &s.srv.url, &id]);
        if json {
            c.arg("--json");
        }
        let r = run(c);
        r.status(0).any_stderr();
        r.stdout.clone()
    };
    let text = show(false);
    assert!(
        text.contains("AWS_SESSION_TOKEN from secret `prod-deploy`, DB_PASSWORD from secret `db`"),
        "{text}"
    );
    // And the web page, signed in as the approver.
    let page = web_page(&s.srv.url, &s.alice);
    assert!(
        page.contains("Releases")
            && page.contains("<code>AWS_SESSION_TOKEN</code> ← <code>secret:prod-deploy</code>"),
        "{page}"
    );
    assert_no_value("the web page", &page);
    let shown: Value = serde_json::from_str(show(true).trim()).unwrap();
    assert_eq!(
        shown["release"],
        json!([
            {"env": "AWS_SESSION_TOKEN", "secret": "prod-deploy"},
            {"env": "DB_PASSWORD", "secret": "db"}
        ])
    );

    // Before approval: nothing.
    let (st, v) = s.release(&s.erin, &id, &digest);
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("not_approved")),
        "{v}"
    );
    // Not a whole id: nothing.
    let (st, _) = s.release(&s.erin, &id[..8], &digest);
    assert_eq!(st, 404);
    let (st, _) = s.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        &s.alice,
        None,
    );
    assert_eq!(st, 200);
    // Another principal's token: nothing.
    let (st, v) = s.release(&s.mallory, &id, &digest);
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("not_requester")),
        "{v}"
    );
    let (st, v) = s.release(&s.alice, &id, &digest);
    assert_eq!(st, 403, "{v}");
    // Another command's digest: nothing.
    let other = digest_of(&["sh", "-c", "exfiltrate"], "/srv");
    let (st, v) = s.release(&s.erin, &id, &other);
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("digest_mismatch")),
        "{v}"
    );
    // No token, a bad body: nothing.
    let r = http()
        .post(format!("{}/v1/requests/{id}/release", s.srv.url))
        .json(&json!({ "digest": digest }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (st, _) = s.call(
        "POST",
        &format!("/v1/requests/{id}/release"),
        &s.erin,
        Some(json!({ "digest": digest, "env": ["LD_PRELOAD"] })),
    );
    assert_eq!(st, 400);
    assert!(!s.server_log().contains("\"released\""));

    // The refusals spent nothing: the requester, for this digest, gets the values once...
    let (st, v) = s.release(&s.erin, &id, &digest);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["variables"],
        json!({"AWS_SESSION_TOKEN": TOKEN_VALUE, "DB_PASSWORD": DB_VALUE})
    );
    // ...and never twice.
    let (st, v) = s.release(&s.erin, &id, &digest);
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("already_released")),
        "{v}"
    );
    let released = s
        .server_log()
        .lines()
        .filter(|l| l.contains("\"released\""))
        .count();
    assert_eq!(released, 1);
}

#[test]
fn a_denied_or_expired_request_releases_nothing() {
    let s = setup(SERVER_POLICY);
    let (denied, digest) = s.create(&["sh", "-c", "deploy"], json!({}));
    let (st, _) = s.call(
        "POST",
        &format!("/v1/requests/{denied}/deny"),
        &s.alice,
        Some(json!({"reason": "no"})),
    );
    assert_eq!(st, 200);
    let (st, v) = s.release(&s.erin, &denied, &digest);
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("not_approved")),
        "{v}"
    );

    let (expiring, digest) = s.create(&["sh", "-c", "deploy2"], json!({"timeout_secs": 1}));
    poll("the expiry", || {
        let (_, v) = s.call("GET", &format!("/v1/requests/{expiring}"), &s.erin, None);
        (v["status"] == "expired").then_some(())
    });
    let (st, v) = s.release(&s.erin, &expiring, &digest);
    assert_eq!((st, v["error"].as_str()), (410, Some("expired")), "{v}");
    // An approval for a rule with nothing to release: nothing.
    assert!(!s.server_log().contains("\"released\""));
}

#[test]
fn a_secret_row_copied_under_another_name_does_not_decrypt() {
    let s = setup(SERVER_POLICY);
    // Someone with the database file copies the sealed `prod-deploy` over `db`, hoping a run
    // that releases `db` opens it.
    let conn = rusqlite::Connection::open(&s.srv.db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let n = conn
        .execute(
            "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE name = 'prod-deploy') WHERE name = 'db'",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    // Through the API: 503, nothing released, the release not spent.
    let (id, digest) = s.create(&["sh", "-c", "deploy"], json!({}));
    let (st, _) = s.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        &s.alice,
        None,
    );
    assert_eq!(st, 200);
    let (st, v) = s.release(&s.erin, &id, &digest);
    assert_eq!(
        (st, v["error"].as_str()),
        (503, Some("secret_undecryptable")),
        "{v}"
    );
    assert_no_value("the refusal", &v.to_string());
    assert!(!s.server_log().contains("\"released\""));

    // Through gate: the command does not run (75) and says why.
    let home = s.client("");
    let marker = home.path().join("ran");
    let (r, _) = s.approved_sh(home.path(), &format!("touch {}", marker.display()));
    r.status(75);
    assert!(
        r.stderr.contains("refused to release the secrets")
            && r.stderr.contains("cannot be decrypted"),
        "{}",
        r.stderr
    );
    assert!(!marker.exists(), "the command ran without its secrets");
    let log = std::fs::read_to_string(home.path().join("audit.jsonl")).unwrap();
    assert!(log.contains("not run: "), "{log}");
}

#[test]
fn a_client_policy_cannot_release_secrets() {
    // The server holds the secrets but its policy releases none; the requester's own policy
    // asks for one.
    let s = setup(PLAIN_SERVER_POLICY);
    let home = s.client("    release: { AWS_SESSION_TOKEN: \"secret:prod-deploy\" }\n");
    let (r, id) = s.approved_sh(home.path(), r#"printf %s "${AWS_SESSION_TOKEN-unset}""#);
    r.status(0);
    assert_eq!(r.stdout, "unset");
    assert!(
        r.stderr
            .contains("rule `deploy` has `release:`, which only a gate server's policy acts on"),
        "{}",
        r.stderr
    );
    assert!(!s.server_log().contains("\"released\""));
    // And the API will not release what the server's policy does not name.
    let (_, v) = s.call("GET", &format!("/v1/requests/{id}"), &s.alice, None);
    assert!(v.get("release").is_none(), "{v}");
    let (st, v) = s.release(&s.erin, &id, v["digest"].as_str().unwrap());
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("nothing_to_release")),
        "{v}"
    );
    // A request cannot ask for a release itself: unknown fields are refused.
    let digest = digest_of(&["sh", "-c", "x"], "/srv");
    let (st, _) = s.call(
        "POST",
        "/v1/requests",
        &s.erin,
        Some(
            json!({"argv": ["sh", "-c", "x"], "cwd": "/srv", "digest": digest,
                    "release": [{"env": "AWS_SESSION_TOKEN", "secret": "prod-deploy"}]}),
        ),
    );
    assert_eq!(st, 400);
}

#[test]
fn an_added_policy_file_cannot_name_secrets_under_a_system_tier() {
    let g = common::Gate::new()
        .system_policy(
            "00-base.yaml",
            "version: 1\nrules:\n  - name: base\n    match: { program: sh }\n    decision: approve\n",
        )
        .policy(
            "version: 1\nrules:\n  - name: mine\n    match: { program: sh }\n    decision: approve\n    release: { TOKEN: \"secret:prod-deploy\" }\n",
        )
        .args(&["check", "--", "sh", "-c", "x"]);
    g.run().status(78).stderr_contains(
        "cannot set `release`: only the system policy names the secrets a server releases",
    );
}

#[test]
fn bad_release_rules_are_reported_at_their_place() {
    let g = common::Gate::new();
    let f = g.write(
        "p.yaml",
        r#"version: 1
rules:
  - name: a
    match: { program: sh }
    decision: approve
    release: { "1BAD": "secret:x", LD_PRELOAD: "secret:x", OK: "vault:x", ALSO_OK: "secret:../x" }
  - name: b
    match: { program: ls }
    decision: allow
    release: { TOKEN: "secret:x" }
"#,
    );
    let r = g.args(&["policy", "lint", f.to_str().unwrap()]).run();
    r.status(78)
        .stderr_has("error: `1BAD` is not an environment variable name")
        .stderr_has("p.yaml:6:16")
        .stderr_has("p.yaml:6:36")
        .stderr_has("`release` cannot set `LD_PRELOAD`")
        .stderr_has("`vault:x` is not a secret reference")
        .stderr_has("`secret:../x` is not a secret reference")
        .stderr_has("rule `b` has `release` but its decision is `allow`")
        .any_stderr();
}

#[test]
fn a_secret_deleted_before_the_release_runs_nothing() {
    // The approval arrives, but the server cannot release what its policy names (the secret
    // was deleted): the command must not run without it, and gate says so at once.
    let s = setup(SERVER_POLICY);
    let mut c = common::gate_in(&s.srv.home);
    c.args(["serve", "secret", "rm", "--db"])
        .arg(&s.srv.db)
        .arg("db");
    run(c).status(0).any_stderr();
    let home = s.client("");
    let marker = home.path().join("ran");
    let started = Instant::now();
    let (r, _) = s.approved_sh(home.path(), &format!("touch {}", marker.display()));
    r.status(75).stderr_has("holds no secret `db`");
    assert!(!marker.exists());
    assert!(started.elapsed() < common::process::HANG);
}

#[test]
fn a_release_logged_but_never_committed_is_voided_and_not_spent() {
    // The server dies after the `released` event is on disk and before its database commits
    // (debug builds' crash point): the client got nothing. At restart the event is voided, and
    // the requester can still fetch the secrets once.
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("server.db");
    set_secret(h, &db, KEY, "prod-deploy", TOKEN_VALUE.as_bytes()).status(0);
    set_secret(h, &db, KEY, "db", DB_VALUE.as_bytes()).status(0);
    let mut c = common::gate_in(h);
    c.env("GATE_SECRET_KEY", KEY)
        .env("GATE_SERVER_CRASH_AT", "released:after-log");
    let (serving, db, audit) = common::serve_in(c, h, SERVER_POLICY, "127.0.0.1:0");
    let mut srv = Server::adopt(serving, h, db, audit);
    let (alice, erin) = (srv.token("alice", None), srv.token("erin", None));
    let url = srv.url.clone();
    let (id, digest) = file_request(&url, &erin, &["sh", "-c", "deploy"], json!({}));
    let (st, _) = api(
        &url,
        "POST",
        &format!("/v1/requests/{id}/approve"),
        &alice,
        None,
    );
    assert_eq!(st, 200);
    let r = http()
        .post(format!("{url}/v1/requests/{id}/release"))
        .bearer_auth(&erin)
        .json(&json!({ "digest": digest }))
        .send();
    assert!(r.is_err(), "the server answered before its crash point");
    poll("the crash", || {
        srv.stderr()
            .contains("crash point released:after-log")
            .then_some(())
    });
    let _ = srv.stop();
    let log = std::fs::read_to_string(&srv.audit).unwrap();
    assert!(log.contains("\"released\""), "{log}");

    // Restarted (same address, no crash point): the logged release is voided...
    let mut c = common::gate_in(h);
    c.env("GATE_SECRET_KEY", KEY);
    let (serving, db, audit) = common::serve_in(c, h, SERVER_POLICY, &srv.addr);
    let _srv2 = Server::adopt(serving, h, db, audit);
    let events: Vec<Value> = std::fs::read_to_string(&srv.audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let released_seq = events
        .iter()
        .find(|e| e["event"]["type"] == "released")
        .and_then(|e| e["seq"].as_u64())
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"]["type"] == "void" && e["event"]["voids"] == released_seq),
        "no void for the uncommitted release"
    );
    // ...and the release was not spent: the requester gets the values, once.
    let (st, v) = release_of(&url, &erin, &id, &digest);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["variables"]["AWS_SESSION_TOKEN"], TOKEN_VALUE);
    let (st, _) = release_of(&url, &erin, &id, &digest);
    assert_eq!(st, 409);
    let mut c = common::gate_in(h);
    c.args(["log", "verify"]).arg(&srv.audit);
    run(c).status(0).any_stderr();
    assert_no_value(
        "the server's log",
        &std::fs::read_to_string(&srv.audit).unwrap(),
    );
}

#[test]
fn a_two_stage_run_gets_the_secrets_when_it_redeems_the_approval_and_only_then() {
    let s = setup(SERVER_POLICY);
    let home = s.client("");
    let script = r#"printf %s "${AWS_SESSION_TOKEN-unset}" | sha256sum"#;
    let gate = |args: &[&str]| {
        let mut c = common::gate_in(home.path());
        c.env("GATE_TOKEN", &s.erin)
            .arg("--policy")
            .arg(home.path().join("policy.yaml"))
            .args(args)
            .args(["--", "sh", "-c", script]);
        Ran::of(c)
    };
    // Stage 1 files the request and runs nothing.
    let filed = gate(&["--no-wait"]);
    filed.status(75);
    let id = filed.stdout.trim().to_owned();
    assert!(filed.stdout.len() < 64, "{}", filed.stdout);
    let (st, _) = s.call(
        "POST",
        &format!("/v1/requests/{id}/approve"),
        &s.alice,
        None,
    );
    assert_eq!(st, 200);
    // Stage 2 redeems the approval: the child gets the secret.
    let ran = gate(&["--request", &id]);
    ran.status(0);
    assert_eq!(
        ran.stdout,
        format!("{}  -\n", sha_hex(TOKEN_VALUE)),
        "{}",
        ran.stderr
    );
    assert_no_value("gate's stderr", &ran.stderr);
    // A second redemption of the same approval gets nothing, and so runs nothing.
    let again = gate(&["--request", &id]);
    again.status(75);
    assert!(again.stdout.is_empty(), "{}", again.stdout);
    assert!(
        again.stderr.contains("one release per approval"),
        "{}",
        again.stderr
    );
}

#[test]
fn an_approval_that_released_secrets_is_not_reused_for_a_second_run() {
    // `approval.reuse` on both sides would let the identical command run again on the first
    // approval; its one release is spent, so the second run asks again (and gets its own).
    let reusing = SERVER_POLICY.replace(
        "approval: { approvers: [security] }",
        "approval: { approvers: [security], reuse: 10m }",
    );
    let s = setup(&reusing);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("policy.yaml"),
        format!(
            r#"version: 1
groups:
  security: [alice, bob]
backends:
  team: {{ kind: server, url: "{}", key: "{}" }}
rules:
  - name: deploy
    match: {{ program: sh }}
    decision: approve
    approval: {{ approvers: [security], backend: team, timeout: 30s, reuse: 10m }}
"#,
            s.srv.url,
            s.srv.vkey()
        ),
    )
    .unwrap();
    let script = r#"printf %s "$DB_PASSWORD" | sha256sum"#;
    let want = format!("{}  -\n", sha_hex(DB_VALUE));
    let (first, id1) = s.approved_sh(home.path(), script);
    first.status(0);
    assert_eq!(first.stdout, want, "{}", first.stderr);
    // approved_sh waits for a new pending request: a reuse would never file one.
    let (second, id2) = s.approved_sh(home.path(), script);
    second.status(0);
    assert_eq!(second.stdout, want, "{}", second.stderr);
    assert_ne!(id1, id2);
    let released = s
        .server_log()
        .lines()
        .filter(|l| l.contains("\"released\""))
        .count();
    assert_eq!(released, 2);
}
