//! Sign-in to the web page through the identity provider (issue 14 §4), end to end:
//!
//! - a real OpenID provider — the npm package `oidc-provider` on Node.js
//!   (tests/integration/oidc_provider; `.ci/deps/oidc-provider.sh` installs it) — driven through
//!   headless Chromium (the WebDriver client of `server_web`): sign in, consent, land on the
//!   page as the mapped principal, approve, and the approval is that principal's;
//! - every tampered or foreign callback, by hand-crafted HTTP against a local issuer whose ID
//!   tokens the test signs (the keys of `ci_identity`), each test named after its attack, each
//!   refused with a page and no session.

use crate::ci_identity::{Signer, jwks, now, sign};
use crate::common;
use crate::server_web::{Browser, Proc, free_port};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::process::Server;
use serde_json::{Value, json};

pub(crate) const SECRET: &str = "s3cret client/secret+with:odd chars";
const CLIENT: &str = "gate-web";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/oidc_provider")
}

/// The server's policy: alice by email, bob by subject, mallory by an email her provider has
/// not verified; carol asks.
pub(crate) fn policy(issuer: &str, extra: &str) -> String {
    format!(
        r#"version: 1
server:
  oidc:
    issuer: "{issuer}"
    client_id: {CLIENT}
    client_secret: "env:TEST_OIDC_CLIENT_SECRET"
    scopes: [openid, email]
{extra}
identities:
  alice: {{ email: Alice@Example.com }}
  bob: {{ oidc_sub: bob-subject-1 }}
  mallory: {{ email: mallory@example.com }}
groups:
  sre: [alice, bob, mallory]
rules:
  - name: deploy
    match: {{ program: echo, args: [deploy] }}
    decision: approve
    approval: {{ approvers: [sre] }}
"#
    )
}

/// `gate serve` on a port chosen here (the redirect URI must be known before it starts).
fn start_server(home: &Path, policy_yaml: &str) -> Server {
    let port = free_port();
    std::fs::create_dir_all(home).unwrap();
    let policy = home.join("server-policy.yaml");
    std::fs::write(&policy, policy_yaml).unwrap();
    let (db, audit) = (home.join("server.db"), home.join("server-audit.jsonl"));
    let mut c = common::gate_in(home);
    c.env("TEST_OIDC_CLIENT_SECRET", SECRET)
        .arg("--policy")
        .arg(&policy)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &format!("http://127.0.0.1:{port}")])
        .arg("--db")
        .arg(&db)
        .arg("--audit-log")
        .arg(&audit)
        .stdin(Stdio::null());
    Server::adopt(common::spawn_server(c), home, db, audit)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A pending `echo deploy` request by carol; its id.
fn pending_request(server: &Server) -> String {
    let carol = server.token("carol", None);
    let argv: Vec<String> = ["echo", "deploy"].iter().map(|s| s.to_string()).collect();
    let env = std::collections::BTreeMap::<String, String>::new();
    let r = http()
        .post(format!("{}/v1/requests", server.url))
        .bearer_auth(&carol)
        .json(&json!({ "argv": argv, "cwd": "/srv", "env": env,
                       "digest": gate::request::digest(&argv, "/srv", &env, &[]) }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The value of the `Set-Cookie` for `name` in a response, if it sets one (empty: cleared).
pub(crate) fn set_cookie(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

// ---------------------------------------------------------------------------------------------
// The real provider, through the real browser.

struct RealProvider {
    _proc: Proc,
    issuer: String,
}

impl RealProvider {
    fn start(port: u16, redirect_uri: &str) -> RealProvider {
        let dir = provider_dir();
        if !dir
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            panic!(
                "this test needs the npm package oidc-provider in {}: run `bash .ci/deps/oidc-provider.sh`",
                dir.join("node_modules").display()
            );
        }
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("provider.mjs"))
            // `localhost`: another site than gate's `127.0.0.1`, as a real provider is, so the
            // way back from it is a cross-site navigation (SameSite cookies behave as deployed).
            .args([&port.to_string(), redirect_uri, SECRET, "localhost"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn(cmd);
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("ready ") {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        let issuer = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the OpenID provider (node provider.mjs) did not get ready");
        RealProvider {
            _proc: proc,
            issuer,
        }
    }
}

/// Signs in at the provider's development login and consent pages as `login`.
fn provider_login(browser: &Browser, login: &str) {
    browser.wait_for("Sign-in");
    browser.type_into("input[name=login]", login);
    browser.type_into("input[name=password]", "any password");
    browser.click("button[type=submit]");
    browser.wait_for("Authorize");
    browser.click("button[type=submit]");
}

/// Deletes the browser's cookies for gate's page and the provider's (WebDriver deletes those
/// of the current page only).
fn clear_cookies(browser: &Browser, gate: &str, issuer: &str) {
    for page in [
        format!("{gate}/"),
        format!("{issuer}/.well-known/openid-configuration"),
    ] {
        browser.goto(&page);
        browser.cmd("DELETE", "/cookie", None);
        assert!(
            browser.cookies().is_empty(),
            "cookies left at {page}: {:?}",
            browser.cookies()
        );
    }
}

#[test]
fn signing_in_through_a_real_identity_provider_approves_as_the_mapped_principal() {
    let dir = tempfile::tempdir().unwrap();
    let browser = Browser::start(&dir.path().join("chromium-profile"));
    let server_port = free_port();
    let provider_port = free_port();
    let base = format!("http://127.0.0.1:{server_port}");
    let provider = RealProvider::start(provider_port, &format!("{base}/auth/callback"));

    let home = dir.path().join("server");
    std::fs::create_dir_all(&home).unwrap();
    let policy_path = home.join("server-policy.yaml");
    std::fs::write(&policy_path, policy(&provider.issuer, "")).unwrap();
    let (db, audit) = (home.join("server.db"), home.join("server-audit.jsonl"));
    let mut c = common::gate_in(&home);
    c.env("TEST_OIDC_CLIENT_SECRET", SECRET)
        .arg("--policy")
        .arg(&policy_path)
        .args(["serve", "--listen", &format!("127.0.0.1:{server_port}")])
        .args(["--public-url", &base])
        .arg("--db")
        .arg(&db)
        .arg("--audit-log")
        .arg(&audit)
        .stdin(Stdio::null());
    let server = Server::adopt(common::spawn_server(c), &home, db, audit);
    let id = pending_request(&server);

    // The page offers the provider and still the token.
    browser.goto(&format!("{base}/"));
    let t = browser.wait_for("Sign in with localhost");
    assert!(t.contains("Sign in with your gate token"), "{t}");
    browser.click("#signin-oidc");
    provider_login(&browser, "alice");
    let t = browser.wait_for("Signed in as alice");
    assert!(t.contains("echo deploy"), "{t}");
    let c = browser.cookie("gate_session").expect("a session cookie");
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert!(
        browser.cookie("gate_oidc").is_none(),
        "the login cookie outlived the sign-in"
    );

    // alice approves; the server records the approval as hers.
    browser.click(&format!("article[data-id=\"{id}\"] button.approve"));
    browser.wait_for("You approved request");
    let alice = server.token("alice", None);
    let v: Value = http()
        .get(format!("{}/v1/requests/{id}", server.url))
        .bearer_auth(&alice)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["approvals"][0]["principal"], "alice", "{v}");
    let log = std::fs::read_to_string(&server.audit).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(r#""principal":"alice","status":"approved","type":"approval""#)),
        "no approval by alice in the server's log:\n{log}"
    );

    // A verified account no principal has: "not a known approver", and no session. The
    // browser's cookies go first, gate's and the provider's.
    clear_cookies(&browser, &base, &provider.issuer);
    browser.goto(&format!("{base}/"));
    browser.click("#signin-oidc");
    provider_login(&browser, "zed");
    let t = browser.wait_for("not a known approver");
    assert!(t.contains("zed@example.com"), "{t}");
    assert!(
        browser.cookie("gate_session").is_none(),
        "zed got a session"
    );

    // An address the provider has not verified matches nobody, even though it is mallory's.
    clear_cookies(&browser, &base, &provider.issuer);
    browser.goto(&format!("{base}/"));
    browser.click("#signin-oidc");
    provider_login(&browser, "mallory");
    let t = browser.wait_for("has not verified the address");
    assert!(t.contains("mallory@example.com"), "{t}");
    assert!(
        browser.cookie("gate_session").is_none(),
        "an unverified email got a session"
    );
}

// ---------------------------------------------------------------------------------------------
// A local issuer whose ID tokens the test writes.

pub(crate) struct IssuerState {
    base: Mutex<String>,
    /// What the token endpoint answers with (`id_token`), set per test.
    pub(crate) id_token: Mutex<String>,
    /// The form the token endpoint last got, and its Authorization header.
    last_form: Mutex<String>,
    last_auth: Mutex<String>,
}

pub(crate) struct Issuer {
    _served: common::sim_http::Served,
    pub(crate) base: String,
    pub(crate) state: Arc<IssuerState>,
    /// While true, every connection is dropped unanswered (the provider is down).
    down: Arc<std::sync::atomic::AtomicBool>,
}

async fn discovery(State(s): State<Arc<IssuerState>>) -> Response {
    let base = s.base.lock().unwrap().clone();
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
    }))
    .into_response()
}

async fn jwks_route() -> Response {
    axum::Json(jwks()).into_response()
}

/// Accepts only the code `good-code` from the client with its secret (Basic).
async fn token_route(
    State(s): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    *s.last_auth.lock().unwrap() = auth.clone();
    *s.last_form.lock().unwrap() = body.clone();
    let form = common::sim_http::form_pairs(&body);
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{CLIENT}:{}",
            common::sim_http::form_encode(&[("x", SECRET)]).trim_start_matches("x=")
        ))
    );
    if auth != expected {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if get("code") != "good-code" || get("code_verifier").len() < 43 {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let id_token = s.id_token.lock().unwrap().clone();
    axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

impl Issuer {
    pub(crate) fn start() -> Issuer {
        let state = Arc::new(IssuerState {
            base: Mutex::new(String::new()),
            id_token: Mutex::new(String::new()),
            last_form: Mutex::new(String::new()),
            last_auth: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_route))
            .route("/token", post(token_route))
            .with_state(Arc::clone(&state));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_down = Arc::clone(&down);
        let served = common::sim_http::serve(
            app,
            Arc::new(move || is_down.load(std::sync::atomic::Ordering::SeqCst)),
        );
        let base = format!("http://{}", served.addr);
        *state.base.lock().unwrap() = base.clone();
        Issuer {
            _served: served,
            base,
            state,
            down,
        }
    }

    pub(crate) fn claims(&self, nonce: &str) -> Value {
        let t = now();
        json!({ "iss": self.base, "aud": CLIENT, "sub": "alice-subject", "nonce": nonce,
                "email": "alice@example.com", "email_verified": true,
                "exp": t + 300, "iat": t - 5 })
    }
}

/// A server whose policy trusts the local issuer, and a started sign-in.
struct Fixture {
    _dir: tempfile::TempDir,
    issuer: Issuer,
    server: Server,
    http: reqwest::blocking::Client,
}

/// A sign-in started at `/auth/login`: what the browser would carry to the provider and back.
struct Started {
    state: String,
    nonce: String,
    /// The browser-binding cookie's value.
    binding: String,
    location: String,
}

impl Fixture {
    fn start() -> Fixture {
        Self::with_policy("")
    }

    fn with_policy(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let issuer = Issuer::start();
        let server = start_server(&dir.path().join("server"), &policy(&issuer.base, extra));
        Fixture {
            _dir: dir,
            issuer,
            server,
            http: http(),
        }
    }

    fn login(&self, return_to: Option<&str>) -> reqwest::blocking::Response {
        let mut url = reqwest::Url::parse(&format!("{}/auth/login", self.server.url)).unwrap();
        if let Some(r) = return_to {
            url.query_pairs_mut().append_pair("return_to", r);
        }
        self.http.get(url).send().unwrap()
    }

    #[track_caller]
    fn started(&self) -> Started {
        let r = self.login(None);
        assert_eq!(r.status().as_u16(), 303, "{}", r.text().unwrap_or_default());
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let binding = set_cookie(r.headers(), "gate_oidc").expect("a login cookie");
        let cookie_line = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("gate_oidc="))
            .unwrap();
        assert!(
            cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Lax"),
            "{cookie_line}"
        );
        let url = reqwest::Url::parse(&location).unwrap();
        assert!(
            location.starts_with(&format!("{}/authorize?", self.issuer.base)),
            "{location}"
        );
        let q: std::collections::BTreeMap<String, String> =
            url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["redirect_uri"],
            format!("{}/auth/callback", self.server.url)
        );
        assert!(q["scope"].split(' ').any(|s| s == "openid"), "{location}");
        Started {
            state: q["state"].clone(),
            nonce: q["nonce"].clone(),
            binding,
            location,
        }
    }

    /// The issuer's next ID token: `edit` changes the good header and claims.
    fn next_token(&self, signer: Signer, nonce: &str, edit: impl FnOnce(&mut Value, &mut Value)) {
        let (mut h, mut c) = match signer {
            Signer::Ec | Signer::Rogue => (
                json!({"alg": "ES256", "kid": "ec-1"}),
                self.issuer.claims(nonce),
            ),
            _ => (
                json!({"alg": "RS256", "kid": "rsa-1"}),
                self.issuer.claims(nonce),
            ),
        };
        edit(&mut h, &mut c);
        *self.issuer.state.id_token.lock().unwrap() = sign(signer, &h, &c);
    }

    /// The provider's redirect back to the server, with `query` and the browser's `cookie`.
    fn callback(
        &self,
        query: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut url = reqwest::Url::parse(&format!("{}/auth/callback", self.server.url)).unwrap();
        for (k, v) in query {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut req = self.http.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", format!("gate_oidc={c}"));
        }
        let r = req.send().unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().unwrap_or_default(), headers)
    }

    /// A callback for `s` with `code`, from the browser that started it.
    fn finish(&self, s: &Started, code: &str) -> (u16, String, reqwest::header::HeaderMap) {
        self.callback(&[("state", &s.state), ("code", code)], Some(&s.binding))
    }

    /// The callback is refused with `status`, a page saying `why`, and no session.
    #[track_caller]
    fn refused(&self, got: (u16, String, reqwest::header::HeaderMap), status: u16, why: &str) {
        let (code, body, headers) = got;
        assert_eq!(code, status, "{body}");
        assert!(body.contains(why), "the page should say {why:?}:\n{body}");
        assert!(
            set_cookie(&headers, "gate_session").is_none_or(|v| v.is_empty()),
            "a refused sign-in set a session cookie"
        );
        let stored: i64 = rusqlite::Connection::open(&self.server.db)
            .unwrap()
            .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 0, "a refused sign-in made a session");
    }
}

#[test]
fn a_good_id_token_signs_in_as_the_principal_whose_email_it_verifies() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    let (status, body, headers) = f.finish(&s, "good-code");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Signed in as <b>alice</b>"), "{body}");
    assert!(
        body.contains(r#"http-equiv="refresh" content="0;url=/""#),
        "{body}"
    );
    let session = set_cookie(&headers, "gate_session").expect("a session cookie");
    assert_eq!(session.len(), 64);
    assert_eq!(set_cookie(&headers, "gate_oidc").as_deref(), Some(""));
    // The client authenticated with its secret (Basic, form-encoded) and sent the PKCE verifier
    // whose S256 is the challenge it started with.
    let form = common::sim_http::form_pairs(&f.issuer.state.last_form.lock().unwrap());
    let verifier = &form.iter().find(|(k, _)| k == "code_verifier").unwrap().1;
    use base64::Engine as _;
    use sha2::Digest as _;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    assert!(
        s.location.contains(&format!("code_challenge={challenge}")),
        "{}",
        s.location
    );
    assert!(
        !form.iter().any(|(k, _)| k == "client_secret"),
        "basic auth also put the secret in the body"
    );
    // The session works for the page.
    let page = f
        .http
        .get(format!("{}/", f.server.url))
        .header("cookie", format!("gate_session={session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("Signed in as"), "{page}");
    assert!(page.contains("alice"), "{page}");
    // Nothing secret reached the server's output.
    let err = f.server.stderr();
    for secret in [
        SECRET,
        s.nonce.as_str(),
        s.state.as_str(),
        verifier.as_str(),
    ] {
        assert!(!err.contains(secret), "the server logged a secret:\n{err}");
    }
}

#[test]
fn a_subject_listed_as_oidc_sub_signs_in_as_its_principal() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Ec, &s.nonce, |_, c| {
        c["sub"] = "bob-subject-1".into();
        c.as_object_mut().unwrap().remove("email");
    });
    let (status, body, _) = f.finish(&s, "good-code");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Signed in as <b>bob</b>"), "{body}");
}

#[test]
fn a_callback_without_state_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    f.refused(
        f.callback(&[("code", "good-code")], Some(&s.binding)),
        400,
        "has no `state`",
    );
}

#[test]
fn a_tampered_oidc_state_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    let mut forged = s.state.clone();
    forged.replace_range(0..1, if forged.starts_with('0') { "1" } else { "0" });
    f.refused(
        f.callback(
            &[("state", &forged), ("code", "good-code")],
            Some(&s.binding),
        ),
        401,
        "unknown or was already used",
    );
}

#[test]
fn a_replayed_callback_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    let (status, body, _) = f.finish(&s, "good-code");
    assert_eq!(status, 200, "{body}");
    let (status, body, headers) = f.finish(&s, "good-code");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("already used"), "{body}");
    assert!(set_cookie(&headers, "gate_session").is_none_or(|v| v.is_empty()));
}

#[test]
fn an_expired_state_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    // Eleven minutes pass for this sign-in (the store is the server's only memory of it).
    rusqlite::Connection::open(&f.server.db)
        .unwrap()
        .execute(
            "UPDATE oidc_logins SET created_ms = created_ms - 660000",
            [],
        )
        .unwrap();
    f.refused(f.finish(&s, "good-code"), 401, "longer than ten minutes");
}

#[test]
fn a_callback_from_another_browser_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    // The victim's browser has its own sign-in cookie, or none.
    let other = f.started();
    f.refused(
        f.callback(
            &[("state", &s.state), ("code", "good-code")],
            Some(&other.binding),
        ),
        401,
        "started in another browser",
    );
    let s = f.started();
    f.refused(
        f.callback(&[("state", &s.state), ("code", "good-code")], None),
        401,
        "started in another browser",
    );
}

#[test]
fn a_code_the_provider_rejects_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    f.refused(
        f.finish(&s, "forged-code"),
        401,
        "rejected the sign-in code (invalid_grant)",
    );
}

#[test]
fn an_error_callback_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.refused(
        f.callback(
            &[
                ("state", &s.state),
                ("error", "access_denied"),
                ("code", "good-code"),
            ],
            Some(&s.binding),
        ),
        401,
        "refused the sign-in: access_denied",
    );
}

#[test]
fn a_callback_naming_another_issuer_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    f.refused(
        f.callback(
            &[
                ("state", &s.state),
                ("code", "good-code"),
                ("iss", "https://evil.example"),
            ],
            Some(&s.binding),
        ),
        401,
        "names another identity provider",
    );
}

#[test]
fn an_id_token_signed_with_another_key_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rogue, &s.nonce, |_, _| {});
    f.refused(f.finish(&s, "good-code"), 401, "signature does not verify");
}

#[test]
fn an_unsigned_alg_none_id_token_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Unsigned, &s.nonce, |h, _| h["alg"] = "none".into());
    f.refused(
        f.finish(&s, "good-code"),
        401,
        "algorithm `none` is not allowed",
    );
}

#[test]
fn an_hs256_id_token_keyed_with_the_public_key_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::HmacWithPublicKey, &s.nonce, |h, _| {
        h["alg"] = "HS256".into()
    });
    f.refused(
        f.finish(&s, "good-code"),
        401,
        "algorithm `HS256` is not allowed",
    );
}

#[test]
fn an_id_token_from_another_issuer_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c["iss"] = "https://evil.example".into()
    });
    f.refused(
        f.finish(&s, "good-code"),
        401,
        "issuer is not one the server trusts",
    );
}

#[test]
fn an_id_token_for_another_client_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c["aud"] = "another-app".into()
    });
    f.refused(f.finish(&s, "good-code"), 401, "not for this audience");
}

#[test]
fn an_id_token_authorized_for_another_party_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c["aud"] = json!([CLIENT, "another-app"]);
        c["azp"] = "another-app".into();
    });
    f.refused(
        f.finish(&s, "good-code"),
        401,
        "issued to another client (`azp`)",
    );
}

#[test]
fn an_expired_id_token_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c["exp"] = (now() - 3600).into();
        c["iat"] = (now() - 7200).into();
    });
    f.refused(f.finish(&s, "good-code"), 401, "has expired");
}

#[test]
fn an_id_token_with_another_sign_ins_nonce_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    let other = f.started();
    f.next_token(Signer::Rsa, &other.nonce, |_, _| {});
    f.refused(
        f.finish(&s, "good-code"),
        401,
        "`nonce` is not the one this sign-in sent",
    );
}

#[test]
fn an_id_token_without_a_nonce_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c.as_object_mut().unwrap().remove("nonce");
    });
    f.refused(f.finish(&s, "good-code"), 401, "carries no `nonce`");
}

#[test]
fn an_unverified_email_matches_no_principal() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c["email_verified"] = "true".into();
    });
    f.refused(
        f.finish(&s, "good-code"),
        403,
        "has not verified the address",
    );
}

#[test]
fn a_verified_stranger_is_not_a_known_approver() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c["email"] = "stranger@example.com".into();
    });
    f.refused(f.finish(&s, "good-code"), 403, "not a known approver");
}

#[test]
fn an_open_redirect_after_sign_in_is_refused() {
    let f = Fixture::start();
    for target in ["//evil.com", "https://evil.com/", "/\\evil.com", "evil.com"] {
        let r = f.login(Some(target));
        assert_eq!(r.status().as_u16(), 400, "{target}");
        assert!(r.headers().get("location").is_none(), "{target}");
        assert!(
            r.text()
                .unwrap()
                .contains("only go to a path on this server")
        );
    }
    // A local path is kept and used after sign-in.
    let r = f.login(Some("/?from=mail"));
    assert_eq!(r.status().as_u16(), 303);
}

#[test]
fn an_unreachable_issuer_is_a_503_page() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let server = start_server(&dir.path().join("server"), &policy(&dead, ""));
    let r = http()
        .get(format!("{}/auth/login", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().unwrap().contains("cannot be reached just now"));
}

#[test]
fn token_sign_in_can_be_turned_off_for_the_page() {
    let f = Fixture::with_policy("    token_signin: false");
    let page = f
        .http
        .get(format!("{}/", f.server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("id=\"signin-oidc\""), "{page}");
    assert!(!page.contains("name=\"token\""), "{page}");
    let alice = f.server.token("alice", None);
    let r = f
        .http
        .post(format!("{}/signin", f.server.url))
        .form(&[("token", alice.as_str()), ("csrf", "x")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(set_cookie(r.headers(), "gate_session").is_none());
    // Machines keep their tokens: the API still takes them.
    let r = f
        .http
        .get(format!("{}/v1/me", f.server.url))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn serve_refuses_an_oidc_setup_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let policy_path = home.join("p.yaml");
    std::fs::write(&policy_path, policy("https://idp.example.com", "")).unwrap();
    let run = |public_url: Option<&str>, secret: Option<&str>| {
        let mut c = common::gate_in(home);
        c.arg("--policy")
            .arg(&policy_path)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(home.join("s.db"));
        if let Some(u) = public_url {
            c.args(["--public-url", u]);
        }
        if let Some(s) = secret {
            c.env("TEST_OIDC_CLIENT_SECRET", s);
        }
        let out = c.stdin(Stdio::null()).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(None, Some(SECRET));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("needs `gate serve --public-url`"), "{err}");
    let (code, err) = run(Some("https://gate.example.com"), None);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("cannot read its `client_secret` (`env:TEST_OIDC_CLIENT_SECRET`)"),
        "{err}"
    );
    let (code, err) = run(Some("http://gate.example.com"), Some(SECRET));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("must be https"), "{err}");
    assert!(!err.contains(SECRET));

    // A plain-http issuer beyond loopback, an inline secret: policy errors at their place.
    std::fs::write(
        &policy_path,
        "version: 1\nserver:\n  oidc:\n    issuer: http://idp.example.com\n    client_id: gate\n    client_secret: hunter2-inline\n",
    )
    .unwrap();
    let out = common::gate_in(home)
        .args(["policy", "lint"])
        .arg(&policy_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("must be https"), "{err}");
    assert!(
        err.contains("secrets are never written into policy files"),
        "{err}"
    );
    assert!(!err.contains("hunter2-inline"), "{err}");
}

#[test]
fn two_principals_claiming_one_email_stop_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let policy_path = home.join("p.yaml");
    std::fs::write(
        &policy_path,
        policy("https://idp.example.com", "").replace(
            "mallory: { email: mallory@example.com }",
            "mallory: { email: alice@example.com }",
        ),
    )
    .unwrap();
    let out = common::gate_in(home)
        .env("TEST_OIDC_CLIENT_SECRET", SECRET)
        .arg("--policy")
        .arg(&policy_path)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "https://gate.example.com",
            "--db",
        ])
        .arg(home.join("s.db"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("is listed under both `identities.alice` and `identities.mallory`"),
        "{err}"
    );
}

#[test]
fn an_added_policy_file_cannot_name_the_identity_provider() {
    // An agent's own policy file naming a provider it runs would decide who signs in as whom.
    common::Gate::new()
        .system_policy("base.yaml", "version: 1\n")
        .policy(
            "version: 1\nserver:\n  oidc: { issuer: \"https://idp.evil.example\", client_id: x }\n",
        )
        .args(&["check", "--", "echo", "hi"])
        .run()
        .status(78)
        .stderr_contains("`server.oidc` in an added policy file");
}

/// A sign-in through `f`'s issuer as alice; the session cookie's value.
fn signed_in_session(f: &Fixture) -> String {
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    let (status, body, headers) = f.finish(&s, "good-code");
    assert_eq!(status, 200, "{body}");
    set_cookie(&headers, "gate_session").unwrap()
}

#[test]
fn a_session_survives_a_restart_and_ends_when_its_provider_or_identity_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("server");
    let issuer = Issuer::start();
    let f = Fixture {
        _dir: tempfile::tempdir().unwrap(),
        server: start_server(&home, &policy(&issuer.base, "")),
        issuer,
        http: http(),
    };
    let (a, b) = (signed_in_session(&f), signed_in_session(&f));
    let Fixture {
        issuer,
        server: mut first,
        ..
    } = f;
    assert_eq!(first.stop(), 0);
    let signed_in_as_alice = |server: &Server, session: &str| {
        let page = http()
            .get(format!("{}/", server.url))
            .header("cookie", format!("gate_session={session}"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        page.contains("Signed in as") && page.contains(">alice<")
    };
    // The same database and policy: still signed in.
    let mut again = start_server(&home, &policy(&issuer.base, ""));
    assert!(signed_in_as_alice(&again, &a), "a restart signed alice out");
    assert!(signed_in_as_alice(&again, &b), "a restart signed alice out");
    assert_eq!(again.stop(), 0);
    // The policy names another provider: sessions the old one made end.
    let other = Issuer::start();
    let mut moved = start_server(&home, &policy(&other.base, ""));
    assert!(
        !signed_in_as_alice(&moved, &a),
        "a session outlived its provider"
    );
    assert_eq!(moved.stop(), 0);
    // alice taken out of `identities`: her session ends.
    let without_alice =
        policy(&issuer.base, "").replace("  alice: { email: Alice@Example.com }\n", "");
    let third = start_server(&home, &without_alice);
    assert!(
        !signed_in_as_alice(&third, &b),
        "a session outlived its identity"
    );
}

#[test]
fn an_id_token_without_a_subject_is_refused() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    f.refused(f.finish(&s, "good-code"), 401, "lacks the `sub` claim");
}

#[test]
fn a_provider_that_goes_down_mid_sign_in_is_a_503_page() {
    let f = Fixture::start();
    let s = f.started();
    f.next_token(Signer::Rsa, &s.nonce, |_, _| {});
    f.issuer
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    f.refused(f.finish(&s, "good-code"), 503, "cannot be reached just now");
}
