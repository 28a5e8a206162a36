//! The web page of `gate serve`, end to end in headless Chromium: a real server, a real client
//! command waiting for approval, and a browser driven through chromedriver's W3C WebDriver HTTP
//! API (plain JSON over HTTP). Needs Debian's `chromium` and `chromium-driver`
//! (`.ci/deps/chromium.sh` installs them); without them the test fails, it never skips. Its
//! WebDriver client is shared with the identity-provider sign-in tests (`oidc_web`).

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{Server, spawn};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);

fn gate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gate")
}

/// A process started by this test, killed with its whole process group when dropped (so the
/// browser goes with chromedriver, and the wrapped command with gate).
pub(crate) struct Proc {
    pub(crate) child: Child,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command) -> Proc {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc { child }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The throw-away environment every gate process of this test runs in.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn gate(&self, who: &str) -> Command {
        let home = self.path(who);
        let mut c = Command::new(gate_bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.join("home"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("GATE_LOG", home.join("audit.jsonl"))
            .env("GATE_SPOOL", home.join("spool"))
            .current_dir(self.dir.path());
        c
    }

    fn issue(&self, principal: &str) -> String {
        let out = self
            .gate("server")
            .args(["serve", "token", "issue", "--db"])
            .arg(self.path("server.db"))
            .args(["--principal", principal])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "token issue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal WebDriver client

pub(crate) struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    session: String,
    // Dropped after `Drop::drop` has closed the session.
    _driver: Proc,
}

impl Browser {
    pub(crate) fn start(profile: &Path) -> Browser {
        let driver_bin = on_path("chromedriver");
        if !Path::new(CHROMIUM).is_file() || driver_bin.is_none() {
            panic!(
                "this test needs Debian's chromium ({CHROMIUM}) and chromedriver on PATH: \
                 run `sudo bash .ci/deps/chromium.sh` (or `apt-get install chromium chromium-driver`)"
            );
        }
        let port = free_port();
        let mut cmd = Command::new(driver_bin.unwrap());
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = Proc::spawn(cmd);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1200,1400",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .expect("create a WebDriver session");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver could not start chromium: {r}"))
            .to_owned();
        Browser {
            http,
            base,
            session,
            _driver: driver,
        }
    }

    /// One WebDriver command; `Err` is WebDriver's error (`stale element reference`, ...).
    pub(crate) fn try_cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let v: Value = req
            .send()
            .and_then(|r| r.json())
            .map_err(|e| format!("{method} {path}: {e}"))?;
        match v["value"].get("error").and_then(Value::as_str) {
            Some(err) => Err(format!(
                "{err}: {}",
                v["value"]["message"].as_str().unwrap_or("")
            )),
            None => Ok(v["value"].clone()),
        }
    }

    #[track_caller]
    pub(crate) fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    pub(crate) fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub(crate) fn try_find(&self, css: &str) -> Result<String, String> {
        let v = self.try_cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(v[ELEMENT].as_str().unwrap_or_default().to_owned())
    }

    /// Finds `css` and does `action` to it, again if the list was refreshed in between.
    #[track_caller]
    pub(crate) fn with(&self, css: &str, action: &str, body: Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.try_find(css).and_then(|el| {
                self.try_cmd(
                    "POST",
                    &format!("/element/{el}/{action}"),
                    Some(body.clone()),
                )
            });
            match r {
                Ok(_) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot {action} `{css}`: {e}\n--- page:\n{}", self.text()),
            }
        }
    }

    pub(crate) fn click(&self, css: &str) {
        self.with(css, "click", json!({}));
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        self.with(css, "value", json!({ "text": text }));
    }

    pub(crate) fn exec(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// What a reader sees (`innerText`: escaped markup shows as text).
    pub(crate) fn text(&self) -> String {
        self.try_cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] })),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    pub(crate) fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the visible text satisfies `ok`, without navigating (the page's own refresh
    /// or a redirect has to bring it).
    #[track_caller]
    pub(crate) fn wait_text(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.text();
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}; it shows:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    #[track_caller]
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        self.wait_text(&format!("{needle:?}"), |t| t.contains(needle))
    }

    pub(crate) fn cookies(&self) -> Vec<Value> {
        self.cmd("GET", "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<Value> {
        self.cookies().into_iter().find(|c| c["name"] == name)
    }

    pub(crate) fn screenshot(&self, to: &Path) {
        use base64::Engine as _;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }

    pub(crate) fn sign_in(&self, server: &str, token: &str) {
        self.goto(&format!("{server}/"));
        self.type_into("#token", token);
        self.click("#signin button[type=submit]");
    }

    pub(crate) fn sign_out(&self) {
        self.click("#signout");
        self.wait_for("Sign in with your gate token");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closes chromium cleanly; the process-group kill of chromedriver catches the rest.
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .timeout(Duration::from_secs(10))
            .send();
    }
}

// ---------------------------------------------------------------------------------------------

fn api(
    http: &reqwest::blocking::Client,
    token: &str,
) -> impl Fn(&str, &str, Option<Value>) -> (u16, Value) {
    let http = http.clone();
    let token = token.to_owned();
    move |method, url, body| {
        let req = match method {
            "GET" => http.get(url),
            _ => http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let r = req.bearer_auth(&token).send().expect("API call");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }
}

fn csrf_of(source: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap();
    re.captures(source)
        .unwrap_or_else(|| panic!("no CSRF field in the page:\n{source}"))[1]
        .to_owned()
}

#[test]
fn sign_in_approve_in_chromium_and_the_waiting_command_runs() {
    let world = World {
        dir: tempfile::tempdir().unwrap(),
    };
    // Start the browser first: without chromium this fails at once, with the way to install it.
    let browser = Browser::start(&world.path("chromium-profile"));

    std::fs::write(
        world.path("server.yaml"),
        "version: 1\n\
         groups:\n  sre: [alice, bob]\n\
         rules:\n  - name: deploy\n    match: { program: echo, args: [deploy] }\n    decision: approve\n    \
         approval: { approvers: [sre], min_approvals: 2 }\n",
    )
    .unwrap();
    let alice = world.issue("alice");
    let bob = world.issue("bob");
    let carol = world.issue("carol");

    // The server, on an ephemeral port.
    let audit_log = world.path("server-audit.jsonl");
    let mut cmd = world.gate("server");
    cmd.arg("--policy")
        .arg(world.path("server.yaml"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(world.path("server.db"))
        .arg("--audit-log")
        .arg(&audit_log)
        .stdin(Stdio::null());
    let server = Server::adopt(
        common::spawn_server(cmd),
        &world.path("server"),
        world.path("server.db"),
        audit_log.clone(),
    );
    let base = server.url.clone();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let as_alice = api(&http, &alice);
    let as_carol = api(&http, &carol);

    // A bad token: an error, and no session.
    browser.sign_in(&base, "gate_00000000_not-a-real-token");
    browser.wait_for("Unknown token");
    assert!(
        browser.cookie("gate_session").is_none(),
        "a bad token made a session"
    );

    // carol's command waits for the server, whose decision key the policy pins.
    let key: serde_json::Value = http
        .get(format!("{base}/v1/server-key"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    std::fs::write(
        world.path("client.yaml"),
        format!(
            "version: 1\n\
             backends:\n  team: {{ kind: server, url: '{base}', key: '{key}' }}\n\
             defaults: {{ backend: team }}\n\
             context: {{ env: [GATE_ENV] }}\n\
             rules:\n  - name: client-deploy\n    match: {{ program: echo, args: [deploy] }}\n    decision: approve\n"
        ),
    )
    .unwrap();
    let mut cmd = world.gate("client");
    cmd.arg("--policy")
        .arg(world.path("client.yaml"))
        .args(["--reason", "ship build 42", "--", "echo", "deploy"])
        .env("GATE_TOKEN", &carol)
        .env("GATE_ENV", "prod")
        .stdin(Stdio::null());
    let mut client = spawn(cmd);
    let deadline = Instant::now() + WAIT;
    let id = loop {
        let (_, v) = as_alice("GET", &format!("{base}/v1/requests?status=pending"), None);
        if let Some(r) = v["requests"].as_array().and_then(|a| a.first()) {
            break r["id"].as_str().unwrap().to_owned();
        }
        if Instant::now() >= deadline {
            client.collect(Duration::from_secs(1));
            panic!(
                "the client's request never reached the server:\n{}",
                client.stderr_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let card = format!("article[data-id=\"{id}\"]");

    // carol sees her own request, and approving it is refused as self-approval.
    browser.sign_in(&base, &carol);
    let t = browser.wait_for("echo deploy");
    assert!(t.contains("Signed in as carol"), "{t}");
    assert!(
        t.contains("your request: someone else must approve it"),
        "{t}"
    );
    browser.click(&format!("{card} button.approve"));
    let t = browser.wait_for("You cannot decide your own request");
    assert!(t.contains("carol asked for request"), "{t}");
    browser.sign_out();
    assert!(
        browser.cookie("gate_session").is_none(),
        "sign-out left the cookie"
    );

    // alice signs in: an HttpOnly, SameSite=Strict session cookie that scripts can't read.
    browser.sign_in(&base, &alice);
    let t = browser.wait_for("Signed in as alice");
    let c = browser.cookie("gate_session").expect("a session cookie");
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert_eq!(c["path"], "/", "{c}");
    assert_ne!(
        c["value"].as_str(),
        Some(alice.as_str()),
        "the token is in the cookie"
    );
    assert_eq!(c["value"].as_str().unwrap().len(), 64, "{c}");
    assert!(
        !browser
            .exec("return document.cookie")
            .as_str()
            .unwrap_or("")
            .contains("gate_session"),
        "scripts can read the session cookie"
    );
    // The whole context of the request.
    for needle in [
        "echo deploy",
        "carol",
        "ship build 42",
        "GATE_ENV",
        "prod",
        "client-deploy",
        "2 more approvals are needed",
        "never the requester",
        "sre (alice, bob)",
        "Expires",
        id.as_str(),
        world.dir.path().to_str().unwrap(),
    ] {
        assert!(t.contains(needle), "the page lacks {needle:?}:\n{t}");
    }

    // A hostile request shows up by itself (the page refreshes), fully escaped.
    let argv: Vec<String> = [
        "echo",
        "deploy",
        "<script>window.__gateXss=1</script>",
        "<img src=x onerror=\"window.__gateXss=2\">",
        "invoice\u{202e}fdp.sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env: BTreeMap<String, String> = [("GATE_ENV".to_owned(), "<b>prod</b>".to_owned())].into();
    let cwd = "/tmp/<i>x</i>";
    let digest = gate::request::digest(&argv, cwd, &env, &[]);
    let (status, v) = as_carol(
        "POST",
        &format!("{base}/v1/requests"),
        Some(
            json!({ "argv": argv, "cwd": cwd, "env": env, "digest": digest,
                     "reason": "<script>window.__gateXss=3</script>",
                     "claims": { "host": "evil\"><b>host</b>" } }),
        ),
    );
    assert_eq!(status, 201, "{v}");
    let hostile = v["id"].as_str().unwrap().to_owned();
    let t = browser.wait_for("<script>window.__gateXss=1</script>");
    for needle in [
        "<img src=x onerror=\"window.__gateXss=2\">",
        "invoice\\u{202e}fdp.sh",
        "<b>prod</b>",
        "/tmp/<i>x</i>",
        "<script>window.__gateXss=3</script>",
        "evil\"><b>host</b>",
    ] {
        assert!(
            t.contains(needle),
            "the page lacks the literal {needle:?}:\n{t}"
        );
    }
    assert_eq!(browser.exec("return window.__gateXss === undefined"), true);
    assert!(
        !browser.source().contains("<script>window"),
        "unescaped markup in the page"
    );
    browser.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target/server-web.png"));
    let (status, v) = as_carol(
        "POST",
        &format!("{base}/v1/requests/{hostile}/cancel"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    browser.wait_text("the hostile request gone", |t| !t.contains("__gateXss"));

    // alice approves with a comment.
    browser.type_into(&format!("{card} textarea"), "looks fine to me");
    browser.click(&format!("{card} button.approve"));
    let t = browser.wait_for("You approved request");
    assert!(t.contains("1 more approval is needed"), "{t}");
    assert!(t.contains("alice at"), "{t}");
    assert!(t.contains("“looks fine to me”"), "{t}");

    // Headers, and POSTs that must be refused (with reqwest, alice's session cookie).
    let session = browser.cookie("gate_session").unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{base}/"))
        .header("Cookie", format!("gate_session={session}"))
        .send()
        .unwrap();
    let h = page.headers();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csrf = csrf_of(&page.text().unwrap());
    let post = |form: &[(&str, &str)], origin: Option<&str>| {
        let mut r = http
            .post(format!("{base}/requests/{id}/decide"))
            .header("Cookie", format!("gate_session={session}"))
            .form(form);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post(&[("decision", "approve")], None), 403, "no CSRF token");
    assert_eq!(
        post(&[("decision", "approve"), ("csrf", &"0".repeat(64))], None),
        403,
        "a wrong CSRF token"
    );
    assert_eq!(
        post(
            &[("decision", "approve"), ("csrf", &csrf)],
            Some("http://evil.example")
        ),
        403,
        "another site's Origin"
    );
    // The same form, properly sent, gets through (and is refused by eligibility: alice
    // already approved), so the 403s above are the CSRF checks.
    assert_eq!(
        post(&[("decision", "approve"), ("csrf", &csrf)], Some(&base)),
        303
    );
    let signin_without_csrf = http
        .post(format!("{base}/signin"))
        .form(&[("token", alice.as_str())])
        .send()
        .unwrap();
    assert_eq!(signin_without_csrf.status().as_u16(), 403);
    assert!(signin_without_csrf.headers().get("set-cookie").is_none());
    let (_, v) = as_alice("GET", &format!("{base}/v1/requests/{id}"), None);
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["status"], "pending", "{v}");

    // bob approves: the request is approved and the waiting command runs.
    browser.goto(&format!("{base}/"));
    browser.wait_for("You have already decided this request");
    browser.sign_out();
    browser.sign_in(&base, &bob);
    browser.wait_for("Signed in as bob");
    browser.type_into(&format!("{card} textarea"), "ship it");
    browser.click(&format!("{card} button.approve"));
    browser.wait_for("It is approved now");
    browser.wait_for("No pending requests");

    // The approval reaches the waiting client: it runs the command and ends.
    let ran = client.finish(WAIT);
    ran.status(0);
    assert_eq!(ran.stdout, "deploy\n", "{}", ran.stderr);

    // The server's audit log has both approvals, with the comments.
    let approvals: Vec<(String, String)> = std::fs::read_to_string(&audit_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["request_id"] == id.as_str() && r["event"]["type"] == "approval")
        .map(|r| {
            (
                r["event"]["principal"].as_str().unwrap_or("").to_owned(),
                r["event"]["comment"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        approvals,
        [
            ("alice".to_owned(), "looks fine to me".to_owned()),
            ("bob".to_owned(), "ship it".to_owned())
        ],
        "server audit log"
    );
    drop(browser);
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// Sessions and escaping over plain HTTP (no browser needed)

/// A `gate serve` on an ephemeral port over `world`'s database; its base URL.
fn serve(world: &World) -> (Server, String) {
    let mut cmd = world.gate("server");
    cmd.arg("--policy")
        .arg(world.path("server.yaml"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(world.path("server.db"))
        .arg("--audit-log")
        .arg(world.path("server-audit.jsonl"))
        .stdin(Stdio::null());
    let server = Server::adopt(
        common::spawn_server(cmd),
        &world.path("server"),
        world.path("server.db"),
        world.path("server-audit.jsonl"),
    );
    let base = server.url.clone();
    (server, base)
}

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The value of the `Set-Cookie` named `name` in a response.
fn set_cookie_of(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Signs in through the form, as a browser would; the session cookie's value.
fn sign_in_http(http: &reqwest::blocking::Client, base: &str, token: &str) -> String {
    let page = http.get(format!("{base}/")).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let signin = set_cookie_of(&page, "gate_signin").expect("a sign-in cookie");
    let csrf = csrf_of(&page.text().unwrap());
    let r = http
        .post(format!("{base}/signin"))
        .header("Cookie", format!("gate_signin={signin}"))
        .form(&[("token", token), ("csrf", &csrf)])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    set_cookie_of(&r, "gate_session").expect("a session cookie")
}

fn page_with(http: &reqwest::blocking::Client, url: &str, session: &str) -> (u16, String) {
    let r = http
        .get(url)
        .header("Cookie", format!("gate_session={session}"))
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

const TWO_SRE: &str = "version: 1\n\
     groups:\n  sre: [alice, bob]\n\
     rules:\n  - name: deploy\n    match: { program: echo }\n    decision: approve\n    \
     approval: { approvers: [sre], min_approvals: 2 }\n";

/// A request from carol for `argv`; its id.
fn carol_asks(
    http: &reqwest::blocking::Client,
    base: &str,
    carol: &str,
    argv: &[&str],
    env: &BTreeMap<String, String>,
    extra: Value,
) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let cwd = "/srv";
    let digest = gate::request::digest(&argv, cwd, env, &[]);
    let mut body = json!({ "argv": argv, "cwd": cwd, "env": env, "digest": digest });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, v) = api(http, carol)("POST", &format!("{base}/v1/requests"), Some(body));
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_browser_session_survives_a_server_restart_and_ends_at_sign_out() {
    let world = World {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(world.path("server.yaml"), TWO_SRE).unwrap();
    let alice = world.issue("alice");
    let carol = world.issue("carol");
    let http = http_client();

    let (server, base) = serve(&world);
    let session = sign_in_http(&http, &base, &alice);
    let id = carol_asks(
        &http,
        &base,
        &carol,
        &["echo", "hi"],
        &BTreeMap::new(),
        json!({}),
    );
    let (status, before) = page_with(&http, &format!("{base}/"), &session);
    assert_eq!(status, 200);
    assert!(before.contains("Signed in as"), "{before}");
    let csrf = csrf_of(&before);
    drop(server); // SIGKILL: no chance to save anything on the way out

    let (server, base) = serve(&world);
    let (status, after) = page_with(&http, &format!("{base}/"), &session);
    assert_eq!(status, 200);
    assert!(
        after.contains(r#"<b id="principal">alice</b>"#),
        "the restart signed alice out:\n{after}"
    );
    assert!(after.contains(&id), "{after}");
    // The session's CSRF token survived too: the form from before the restart still decides.
    let r = http
        .post(format!("{base}/requests/{id}/decide"))
        .header("Cookie", format!("gate_session={session}"))
        .form(&[("decision", "approve"), ("csrf", &csrf), ("comment", "ok")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (_, v) = api(&http, &alice)("GET", &format!("{base}/v1/requests/{id}"), None);
    assert_eq!(v["approvals"][0]["principal"], "alice", "{v}");
    let (_, flashed) = page_with(&http, &format!("{base}/"), &session);
    assert!(flashed.contains("You approved request"), "{flashed}");

    // Signing out deletes the session: the cookie is worth nothing afterwards, restart or not.
    let r = http
        .post(format!("{base}/signout"))
        .header("Cookie", format!("gate_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    drop(server);
    let (_server, base) = serve(&world);
    let (status, out) = page_with(&http, &format!("{base}/"), &session);
    assert_eq!(status, 200);
    assert!(
        out.contains("Sign in with your gate token") && !out.contains("Signed in as"),
        "a signed-out session still works:\n{out}"
    );
    let (status, _) = page_with(&http, &format!("{base}/fragment"), &session);
    assert_eq!(status, 401);
    // A made-up cookie is no session either.
    let (_, out) = page_with(&http, &format!("{base}/"), &"0".repeat(64));
    assert!(!out.contains("Signed in as"), "{out}");
}

#[test]
fn requester_text_with_markup_quotes_and_control_characters_renders_inert() {
    let world = World {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(world.path("server.yaml"), TWO_SRE).unwrap();
    let alice = world.issue("alice");
    let carol = world.issue("carol");
    let http = http_client();
    let (_server, base) = serve(&world);
    let session = sign_in_http(&http, &base, &alice);

    let env: BTreeMap<String, String> = [(
        "GATE_ENV\"><svg onload=alert(1)>".to_owned(),
        "'><img src=x onerror=alert(2)>".to_owned(),
    )]
    .into();
    let id = carol_asks(
        &http,
        &base,
        &carol,
        &[
            "echo",
            "<script>alert(3)</script>",
            "\"double\" 'single' `tick`",
            "\u{1b}[2J\u{1b}]0;title\u{7}cleared",
            "invoice\u{202e}fdp.sh",
            "a\u{0}b\u{85}c\u{2028}d",
        ],
        &env,
        json!({
            "reason": "</textarea><script>alert(4)</script>",
            "claims": { "user": "\"><script>alert(5)</script>", "host": "h\rost",
                        "agent": "<!-- -->", "ci": { "<k>": "</td></table>" } }
        }),
    );
    for url in [format!("{base}/"), format!("{base}/fragment")] {
        let (status, html) = page_with(&http, &url, &session);
        assert_eq!(status, 200, "{html}");
        assert!(html.contains(&id), "{html}");
        // No markup of the requester's survives as markup.
        for raw in [
            "<script>alert",
            "<svg",
            "<img",
            "</textarea><script",
            "<!-- -->",
            "<k>",
            "</td></table>",
        ] {
            assert!(!html.contains(raw), "{raw:?} is live in {url}:\n{html}");
        }
        assert_eq!(html.matches("<textarea").count(), 1, "{html}");
        assert_eq!(
            html.matches("<script").count(),
            usize::from(url.ends_with('/'))
        );
        // ... and none of its control characters reach the page raw.
        for c in [
            '\u{1b}', '\u{7}', '\u{0}', '\u{85}', '\u{2028}', '\u{202e}', '\r',
        ] {
            assert!(!html.contains(c), "raw {c:?} in {url}");
        }
        // It is all shown, as text.
        for shown in [
            "&lt;script&gt;alert(3)&lt;/script&gt;",
            "&quot;double&quot; 'single' `tick`",
            r#"<span class="ctl">\u{1b}</span>[2J<span class="ctl">\u{1b}</span>]0;title<span class="ctl">\u{7}</span>cleared"#,
            r#"invoice<span class="ctl">\u{202e}</span>fdp.sh"#,
            r#"a<span class="ctl">\u{0}</span>b<span class="ctl">\u{85}</span>c<span class="ctl">\u{2028}</span>d"#,
            "&lt;/textarea&gt;&lt;script&gt;alert(4)&lt;/script&gt;",
            "&quot;&gt;&lt;script&gt;alert(5)&lt;/script&gt;",
            r#"h<span class="ctl">\r</span>ost"#,
            "GATE_ENV&quot;&gt;&lt;svg onload=alert(1)&gt;",
            "'&gt;&lt;img src=x onerror=alert(2)&gt;",
        ] {
            assert!(html.contains(shown), "{url} lacks {shown:?}:\n{html}");
        }
    }
}
