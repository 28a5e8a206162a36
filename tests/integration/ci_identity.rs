//! CI identity you can trust (issue 13 §6): a local OIDC issuer on 127.0.0.1 (discovery, JWKS,
//! tokens signed with an RSA and an EC key made here) and a real `gate serve` whose policy
//! trusts it. A good token makes its claims the requester's verified identity, which a `ci:`
//! rule matches and the server records; every forged, stale or misdirected token is refused
//! (403, recorded) — each test is named after its attack; CI variables without a token never
//! match a `ci:` rule. The client side runs the real `gate` against a simulated GitHub token
//! endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`) and GitLab's `id_tokens:` variable.
//!
//! Tokens are built here from RFC 7515/7519 alone (base64url JSON, ring signatures), not with
//! gate's code; the web sign-in tests (`oidc_web`) sign their ID tokens with the same keys.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::process::Server;
use common::{Checked, Ran};
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Keys, made once per test process.

struct Keys {
    rsa: RsaKeyPair,
    rsa_n: Vec<u8>,
    rsa_e: Vec<u8>,
    ec: EcdsaKeyPair,
    /// An EC key the issuer does not publish.
    rogue: EcdsaKeyPair,
}

fn ec_key() -> EcdsaKeyPair {
    let rng = ring::rand::SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap()
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let sk = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let der = sk.to_pkcs1_der().unwrap();
        Keys {
            rsa: RsaKeyPair::from_der(der.as_bytes()).unwrap(),
            rsa_n: sk.n().to_bytes_be(),
            rsa_e: sk.e().to_bytes_be(),
            ec: ec_key(),
            rogue: ec_key(),
        }
    })
}

pub(crate) fn jwks() -> Value {
    let k = keys();
    let pt = k.ec.public_key().as_ref();
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
         "n": B64.encode(&k.rsa_n), "e": B64.encode(&k.rsa_e)},
        {"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
         "x": B64.encode(&pt[1..33]), "y": B64.encode(&pt[33..])},
    ]})
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn enc(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

#[derive(Clone, Copy)]
pub(crate) enum Signer {
    Rsa,
    Ec,
    Rogue,
    /// HMAC-SHA256 keyed with the issuer's published RSA modulus: the key-confusion attack.
    HmacWithPublicKey,
    /// No signature at all.
    Unsigned,
}

pub(crate) fn sign(signer: Signer, header: &Value, claims: &Value) -> String {
    let msg = format!("{}.{}", enc(header), enc(claims));
    let rng = ring::rand::SystemRandom::new();
    let k = keys();
    let sig: Vec<u8> = match signer {
        Signer::Rsa => {
            let mut s = vec![0; k.rsa.public().modulus_len()];
            k.rsa
                .sign(&signature::RSA_PKCS1_SHA256, &rng, msg.as_bytes(), &mut s)
                .unwrap();
            s
        }
        Signer::Ec => k.ec.sign(&rng, msg.as_bytes()).unwrap().as_ref().to_vec(),
        Signer::Rogue => k
            .rogue
            .sign(&rng, msg.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        Signer::HmacWithPublicKey => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k.rsa_n);
            ring::hmac::sign(&key, msg.as_bytes()).as_ref().to_vec()
        }
        Signer::Unsigned => Vec::new(),
    };
    format!("{msg}.{}", B64.encode(sig))
}

// ---------------------------------------------------------------------------------------------
// The issuer: discovery, JWKS, and GitHub's token endpoint.

struct IssuerState {
    base: Mutex<String>,
    jwks_fetches: AtomicUsize,
    /// The JWKS route answers 500 (an issuer having a bad day).
    jwks_down: std::sync::atomic::AtomicBool,
    /// What the GitHub-style endpoint hands out.
    github_token: Mutex<String>,
}

struct Issuer {
    _served: common::sim_http::Served,
    base: String,
    state: Arc<IssuerState>,
}

async fn discovery(State(s): State<Arc<IssuerState>>) -> Response {
    let base = s.base.lock().unwrap().clone();
    axum::Json(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")})).into_response()
}

async fn jwks_route(State(s): State<Arc<IssuerState>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if s.jwks_down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(jwks()).into_response()
}

/// GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`: the job's request token as a bearer, the audience
/// in the query, `{"value": jwt}` back.
async fn github_token(
    State(s): State<Arc<IssuerState>>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth.eq_ignore_ascii_case("bearer job-request-token") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if q.get("audience").map(String::as_str) != Some("gate") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    axum::Json(json!({"value": s.github_token.lock().unwrap().clone()})).into_response()
}

impl Issuer {
    fn start() -> Issuer {
        let state = Arc::new(IssuerState {
            base: Mutex::new(String::new()),
            jwks_fetches: AtomicUsize::new(0),
            jwks_down: std::sync::atomic::AtomicBool::new(false),
            github_token: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_route))
            .route("/gh-token", get(github_token))
            .with_state(Arc::clone(&state));
        let served = common::sim_http::serve(app, Arc::new(|| false));
        let base = format!("http://{}", served.addr);
        *state.base.lock().unwrap() = base.clone();
        Issuer {
            _served: served,
            base,
            state,
        }
    }

    fn claims(&self) -> Value {
        let t = now();
        json!({
            "iss": self.base, "aud": "gate",
            "sub": "repo:org/app:environment:prod",
            "repository": "org/app", "ref": "refs/heads/main", "ref_protected": "true",
            "environment": "prod", "workflow": "deploy", "actor": "octocat",
            "exp": t + 300, "nbf": t - 5, "iat": t - 5,
        })
    }

    fn token_with(&self, signer: Signer, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let (mut h, mut c) = match signer {
            Signer::Ec | Signer::Rogue => (
                json!({"alg": "ES256", "kid": "ec-1", "typ": "JWT"}),
                self.claims(),
            ),
            _ => (
                json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}),
                self.claims(),
            ),
        };
        edit(&mut h, &mut c);
        sign(signer, &h, &c)
    }

    fn good(&self) -> String {
        self.token_with(Signer::Rsa, |_, _| {})
    }
}

// ---------------------------------------------------------------------------------------------
// The server, and requests straight to its API.

/// The server's policy: trusts the issuer; `deploy` from a protected ref of org/app needs the
/// release group, a request with no verified identity is denied outright.
fn server_policy(issuer: &str) -> String {
    format!(
        r#"version: 1
ci:
  issuers:
    - {{ issuer: "{issuer}", audience: gate }}
groups:
  release: [rita]
rules:
  - name: protected-deploys
    match: {{ program: echo, args: [deploy], ci: {{ repository: org/app, ref_protected: true }} }}
    decision: approve
    approval: {{ approvers: [release], timeout: 60s }}
  - name: unverified-deploys
    match: {{ program: echo, args: [deploy], ci: {{ verified: false }} }}
    decision: deny
    message: deploys need a verified CI identity
"#
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    issuer: Issuer,
    server: Server,
    token: String,
    http: reqwest::blocking::Client,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let issuer = Issuer::start();
        let server = Server::start(dir.path(), &server_policy(&issuer.base));
        let token = server.token("ci-bot", None);
        Fixture {
            _dir: dir,
            issuer,
            server,
            token,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// POST /v1/requests for `echo deploy` with `ci_token` (if any) and CI claims.
    fn create(&self, ci_token: Option<&str>) -> (u16, Value) {
        let argv: Vec<String> = ["echo", "deploy"].iter().map(|s| s.to_string()).collect();
        let env: BTreeMap<String, String> = BTreeMap::new();
        let mut body = json!({
            "argv": argv, "cwd": "/srv", "env": env,
            "digest": gate::request::digest(&argv, "/srv", &env, &[]),
            "claims": { "user": "runner", "ci": {
                "system": "github-actions", "repository": "org/app", "ref_protected": "true" } },
        });
        if let Some(t) = ci_token {
            body["ci_token"] = t.into();
        }
        let resp = self
            .http
            .post(format!("{}/v1/requests", self.server.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.server.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The token is refused: 403 `ci_token_refused` naming `why`, the refusal in the server's
    /// log, and no request made.
    #[track_caller]
    fn refused(&self, token: &str, why: &str) {
        let (status, body) = self.create(Some(token));
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"], "ci_token_refused", "{body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(why), "{msg:?} should say {why:?}");
        assert!(
            token.len() < 8 || !msg.contains(token),
            "the token is echoed: {msg}"
        );
        let log = self.audit();
        let text = serde_json::to_string(&log).unwrap();
        assert!(
            text.contains("\"ci_token\"") && text.contains("refused"),
            "{text}"
        );
        assert!(
            token.len() < 8 || !text.contains(token),
            "the token reached the audit log"
        );
        assert!(
            !text.contains("\"request\":{"),
            "a request was made: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The server verifies.

#[test]
fn a_good_rs256_token_becomes_the_verified_identity_and_matches_the_ci_rule() {
    let f = Fixture::start();
    let (status, body) = f.create(Some(&f.issuer.good()));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rules"], json!(["protected-deploys"]), "{body}");
    assert_eq!(body["status"], "pending");
    let v = &body["ci_verified"];
    assert_eq!(v["issuer"], f.issuer.base.as_str());
    assert_eq!(v["repository"], "org/app");
    assert_eq!(v["ref"], "refs/heads/main");
    assert_eq!(v["ref_protected"], true);
    assert_eq!(v["environment"], "prod");
    assert_eq!(v["workflow"], "deploy");
    assert_eq!(v["actor"], "octocat");
    // Recorded as the requester's verified CI identity in the server's log.
    let log = f.audit();
    let req = log
        .iter()
        .find_map(|r| {
            r["body"]["request"]["requester"]["ci_verified"]
                .as_object()
                .cloned()
        })
        .or_else(|| {
            log.iter().find_map(|r| {
                r["request"]["requester"]["ci_verified"]
                    .as_object()
                    .cloned()
            })
        })
        .unwrap_or_else(|| panic!("no verified identity in the log: {log:?}"));
    assert_eq!(req["repository"], "org/app");
    // And an approver reading the request sees it as verified, the claims as claims.
    let mut c = f.server.gate();
    c.env("GATE_TOKEN", &f.token).args([
        "requests",
        "--server",
        &f.server.url,
        "--json",
        body["id"].as_str().unwrap(),
    ]);
    let r = Checked::new(Ran::of(c));
    r.status(0).any_stderr();
    let shown: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(shown["requester"]["ci"]["verified"], false, "{shown}");
    assert_eq!(shown["requester"]["ci"]["repository"], "org/app", "{shown}");
    assert_eq!(
        shown["requester"]["ci_verified"]["repository"], "org/app",
        "{shown}"
    );
    let mut c = f.server.gate();
    c.env("GATE_TOKEN", &f.token).args([
        "requests",
        "--server",
        &f.server.url,
        body["id"].as_str().unwrap(),
    ]);
    let r = Checked::new(Ran::of(c));
    r.status(0).any_stderr();
    assert!(r.stdout.contains("verified by the server"), "{}", r.stdout);
    assert!(
        r.stdout.contains("unverified: the requester's own word"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_claim_named_verified_cannot_flip_the_marker() {
    let f = Fixture::start();
    let argv: Vec<String> = ["echo", "x"].iter().map(|s| s.to_string()).collect();
    let env: BTreeMap<String, String> = BTreeMap::new();
    let body = json!({
        "argv": argv, "cwd": "/srv", "env": env,
        "digest": gate::request::digest(&argv, "/srv", &env, &[]),
        "claims": { "ci": { "verified": "true", "repository": "org/app" } },
    });
    let resp: Value = f
        .http
        .post(format!("{}/v1/requests", f.server.url))
        .bearer_auth(&f.token)
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut c = f.server.gate();
    c.env("GATE_TOKEN", &f.token).args([
        "requests",
        "--server",
        &f.server.url,
        "--json",
        resp["id"].as_str().unwrap(),
    ]);
    let r = Checked::new(Ran::of(c));
    r.status(0).any_stderr();
    let shown: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(shown["requester"]["ci"]["verified"], false, "{shown}");
    assert!(shown["requester"]["ci_verified"].is_null(), "{shown}");
}

#[test]
fn a_good_es256_token_is_verified_too() {
    let f = Fixture::start();
    let (status, body) = f.create(Some(&f.issuer.token_with(Signer::Ec, |_, _| {})));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rules"], json!(["protected-deploys"]));
    assert_eq!(body["ci_verified"]["repository"], "org/app");
}

#[test]
fn ci_variables_without_a_token_never_match_a_ci_rule() {
    let f = Fixture::start();
    // The claims say org/app on a protected ref; nothing proves it.
    let (status, body) = f.create(None);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rules"], json!(["unverified-deploys"]), "{body}");
    assert_eq!(body["status"], "denied");
    assert!(body.get("ci_verified").is_none_or(Value::is_null), "{body}");
}

#[test]
fn a_token_from_another_repository_does_not_match_the_rule() {
    let f = Fixture::start();
    let t = f
        .issuer
        .token_with(Signer::Rsa, |_, c| c["repository"] = "org/fork".into());
    let (status, body) = f.create(Some(&t));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rules"], json!([]), "{body}");
    assert_eq!(body["ci_verified"]["repository"], "org/fork");
}

#[test]
fn expired_token_is_refused() {
    let f = Fixture::start();
    let t = f.issuer.token_with(Signer::Rsa, |_, c| {
        c["exp"] = (now() - 3600).into();
        c["iat"] = (now() - 7200).into();
        c["nbf"] = (now() - 7200).into();
    });
    f.refused(&t, "expired");
}

#[test]
fn not_yet_valid_token_is_refused() {
    let f = Fixture::start();
    let t = f
        .issuer
        .token_with(Signer::Rsa, |_, c| c["nbf"] = (now() + 3600).into());
    f.refused(&t, "not valid yet");
}

#[test]
fn token_for_another_audience_is_refused() {
    let f = Fixture::start();
    let t = f
        .issuer
        .token_with(Signer::Rsa, |_, c| c["aud"] = "sigstore".into());
    f.refused(&t, "audience");
}

#[test]
fn token_from_an_untrusted_issuer_is_refused() {
    let f = Fixture::start();
    // Correctly signed, but claiming an issuer the server's policy does not list.
    let t = f
        .issuer
        .token_with(Signer::Rsa, |_, c| c["iss"] = "https://evil.example".into());
    f.refused(&t, "issuer");
    // A token whose `iss` merely starts like the trusted one.
    let t = f.issuer.token_with(Signer::Rsa, |_, c| {
        c["iss"] = format!("{}/../other", f.issuer.base).into()
    });
    f.refused(&t, "issuer");
}

#[test]
fn alg_none_token_is_refused() {
    let f = Fixture::start();
    for alg in ["none", "None", "NONE"] {
        let t = f
            .issuer
            .token_with(Signer::Unsigned, |h, _| h["alg"] = alg.into());
        f.refused(&t, "algorithm");
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let f = Fixture::start();
    let t = f
        .issuer
        .token_with(Signer::HmacWithPublicKey, |h, _| h["alg"] = "HS256".into());
    f.refused(&t, "algorithm");
}

#[test]
fn token_signed_with_a_key_the_issuer_does_not_publish_is_refused() {
    let f = Fixture::start();
    f.refused(&f.issuer.token_with(Signer::Rogue, |_, _| {}), "signature");
    // An RSA-signed token that names the EC key: never checked with a key of another type.
    let t = f
        .issuer
        .token_with(Signer::Rsa, |h, _| h["kid"] = "ec-1".into());
    f.refused(&t, "signature");
}

#[test]
fn token_naming_an_unknown_kid_is_refused_and_refetches_boundedly() {
    let f = Fixture::start();
    for i in 0..6 {
        let t = f
            .issuer
            .token_with(Signer::Rsa, |h, _| h["kid"] = format!("nope-{i}").into());
        f.refused(&t, "does not publish");
    }
    // One fetch, then at most one more per refetch interval: garbage kids pump nothing.
    let fetches = f.issuer.state.jwks_fetches.load(Ordering::SeqCst);
    assert!((1..=2).contains(&fetches), "{fetches} JWKS fetches");
}

#[test]
fn tampered_payload_is_refused() {
    let f = Fixture::start();
    let good = f
        .issuer
        .token_with(Signer::Rsa, |_, c| c["repository"] = "org/fork".into());
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims = f.issuer.claims();
    claims["repository"] = "org/app".into();
    let forged = format!("{}.{}.{}", parts[0], enc(&claims), parts[2]);
    f.refused(&forged, "signature");
}

#[test]
fn garbage_tokens_are_refused_never_a_crash() {
    let f = Fixture::start();
    let long = "A".repeat(40_000);
    let hostile = [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "...",
        "e30.e30.e30",
        "W10.W10.",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
        "\u{0}\u{1}.\u{ff}.x",
        long.as_str(),
    ];
    for t in hostile {
        f.refused(t, "malformed");
    }
    // The server still serves.
    let (status, _) = f.create(Some(&f.issuer.good()));
    assert_eq!(status, 201);
}

// ---------------------------------------------------------------------------------------------
// The requester's side: the real `gate`, sending its job's token.

fn client_policy(url: &str, key: &str) -> String {
    format!(
        r#"version: 1
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
rules:
  - name: deploys
    match: {{ program: echo, args: [deploy] }}
    decision: approve
    approval: {{ backend: team, timeout: 60s }}
"#
    )
}

fn gate_job(f: &Fixture, home: &Path) -> std::process::Command {
    let policy = home.join("client.yaml");
    std::fs::write(&policy, client_policy(&f.server.url, &f.server.vkey())).unwrap();
    let mut c = common::gate_in(home);
    c.env("GATE_TOKEN", &f.token)
        .env("GATE_POLICY", &policy)
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "org/app")
        .args(["--timeout", "1s", "--", "echo", "deploy"]);
    c
}

/// The request the server made last.
fn last_request(f: &Fixture) -> Value {
    let resp = f
        .http
        .get(format!("{}/v1/requests", f.server.url))
        .bearer_auth(&f.token)
        .send()
        .unwrap();
    let list: Value = resp.json().unwrap();
    let items = list
        .as_array()
        .cloned()
        .or_else(|| list["requests"].as_array().cloned());
    items.unwrap().last().cloned().unwrap()
}

#[test]
fn a_github_actions_job_fetches_its_token_and_the_server_verifies_it() {
    let f = Fixture::start();
    *f.issuer.state.github_token.lock().unwrap() = f.issuer.good();
    let home = tempfile::tempdir().unwrap();
    let mut c = gate_job(&f, home.path());
    c.env(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        format!("{}/gh-token?api-version=2.0", f.issuer.base),
    )
    .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-request-token");
    let r = Checked::new(Ran::of(c));
    r.any_stderr();
    r.stderr_has("release");
    // The request waited for the release group (it matched the ci rule) and timed out.
    assert_ne!(r.take_status(), 0);
    let q = last_request(&f);
    assert_eq!(q["rules"], json!(["protected-deploys"]), "{q}");
    assert_eq!(q["ci_verified"]["actor"], "octocat", "{q}");
}

#[test]
fn a_gitlab_job_sends_its_id_tokens_variable() {
    let f = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let mut c = gate_job(&f, home.path());
    c.env("GATE_ID_TOKEN", f.issuer.token_with(Signer::Ec, |_, _| {}));
    let r = Checked::new(Ran::of(c));
    r.any_stderr();
    // Matched the ci rule, so it waits for the release group (and times out: 75).
    assert_eq!(r.take_status(), 75);
    let q = last_request(&f);
    assert_eq!(q["rules"], json!(["protected-deploys"]), "{q}");
    assert_eq!(q["ci_verified"]["repository"], "org/app", "{q}");
}

#[test]
fn a_job_without_a_token_is_denied_by_the_unverified_rule() {
    let f = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let r = Checked::new(Ran::of(gate_job(&f, home.path())));
    r.stderr_has("deploys need a verified CI identity");
    assert_ne!(r.take_status(), 0);
}

#[test]
fn a_job_presenting_a_forged_token_runs_nothing_and_says_why() {
    let f = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let mut c = gate_job(&f, home.path());
    c.env(
        "GATE_ID_TOKEN",
        f.issuer.token_with(Signer::Rogue, |_, _| {}),
    );
    let r = Checked::new(Ran::of(c));
    r.stderr_has("CI ID token is refused");
    assert_eq!(r.take_status(), 75);
    assert!(
        !r.stdout.contains("deploy"),
        "the command ran: {}",
        r.stdout
    );
}

#[test]
fn a_github_token_endpoint_that_fails_runs_nothing() {
    let f = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let mut c = gate_job(&f, home.path());
    c.env(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        format!("{}/gh-token?api-version=2.0", f.issuer.base),
    )
    .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "stolen-or-wrong");
    let r = Checked::new(Ran::of(c));
    r.stderr_has("cannot get a GitHub Actions ID token");
    assert_eq!(r.take_status(), 75);
    assert!(!r.stdout.contains("deploy"));
}

// ---------------------------------------------------------------------------------------------
// Policy: ci rules on the requester's machine, lint, tiers.

#[test]
fn ci_rules_never_match_on_the_requesters_machine() {
    let g = common::Gate::new().policy(
        "version: 1\nrules:\n  - name: ci-only\n    match: { program: echo, ci: { verified: false } }\n    decision: deny\n  - name: ci-repo\n    match: { program: echo, ci: { repository: '*' } }\n    decision: deny\n",
    );
    let r = g
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "org/app")
        .args(&["check", "--json", "--", "echo", "hi"])
        .run();
    r.status(0).any_stderr();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["decision"], "allow", "{v}");
}

#[test]
fn a_bad_ci_section_is_reported_where_it_is_written() {
    let g = common::Gate::new();
    let bad = g.write(
        "bad.yaml",
        "version: 1\nci:\n  issuers:\n    - { issuer: \"http://evil.example\", audience: gate }\n    - { issuer: \"https://ok.example\" }\n    - { issuer: \"https://x.example\", audience: gate, jkws_url: \"https://x\" }\nrules:\n  - name: r\n    match: { ci: { repo: org/app, verified: false } }\n    decision: deny\n  - name: s\n    match: { ci: { ref_protected: maybe } }\n    decision: deny\ntests:\n  - run: [x]\n    ci: { verified: false, repository: org/app }\n    expect: { decision: deny }\n",
    );
    let r = g.args(&["policy", "lint", bad.to_str().unwrap()]).run();
    r.any_stderr();
    assert_ne!(r.take_status(), 0);
    let e = &r.stderr;
    assert!(e.contains("bad.yaml:4:"), "{e}");
    assert!(e.contains("must be https"), "{e}");
    assert!(e.contains("needs `audience`"), "{e}");
    assert!(e.contains("unknown key `jkws_url`"), "{e}");
    assert!(e.contains("unknown key `repo`"), "{e}");
    assert!(e.contains("true or false"), "{e}");
    assert!(
        e.contains("a test's `ci` with `verified: false` cannot also name claims"),
        "{e}"
    );
}

#[test]
fn an_added_file_cannot_trust_an_issuer() {
    let g = common::Gate::new()
        .system_policy("00-base.yaml", "version: 1\n")
        .policy("version: 1\nci:\n  issuers: [{ issuer: \"https://attacker.example\", audience: gate }]\n");
    let r = g.args(&["check", "--", "echo", "hi"]).run();
    r.any_stderr();
    assert_eq!(r.take_status(), 78);
    assert!(
        r.stderr.contains("only the system policy may trust"),
        "{}",
        r.stderr
    );
}

#[test]
fn gitlab_variables_go_into_the_request_as_claims_never_as_verified() {
    let g = common::Gate::new()
        .env("GITLAB_CI", "true")
        .env("CI_PROJECT_PATH", "org/app")
        .env("CI_COMMIT_REF_NAME", "main")
        .env("CI_COMMIT_REF_PROTECTED", "true")
        .env("CI_ENVIRONMENT_NAME", "prod")
        .env("CI_PIPELINE_ID", "4242")
        .env("CI_PIPELINE_SOURCE", "push")
        .env("GITLAB_USER_LOGIN", "dev")
        .args(&["--", "true"]);
    g.run().status(0).any_stderr();
    let records = g.records();
    let requester = records
        .iter()
        .find_map(|r| r["request"]["requester"].as_object().cloned())
        .expect("a request record");
    let ci = &requester["ci"];
    assert_eq!(ci["system"], "gitlab-ci");
    assert_eq!(ci["project"], "org/app");
    assert_eq!(ci["ref"], "main");
    assert_eq!(ci["ref_protected"], "true");
    assert_eq!(ci["environment"], "prod");
    assert_eq!(ci["pipeline_id"], "4242");
    assert_eq!(ci["actor"], "dev");
    assert!(!requester.contains_key("ci_verified"), "{requester:?}");
}

#[test]
fn an_unreachable_issuer_refuses_the_token_rather_than_trusting_it() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the keys cannot be had.
    let server = Server::start(dir.path(), &server_policy("http://127.0.0.1:1"));
    let token = server.token("ci-bot", None);
    let issuer = Issuer::start();
    // Signed by a real key, claiming the unreachable issuer.
    let t = issuer.token_with(Signer::Rsa, |_, c| c["iss"] = "http://127.0.0.1:1".into());
    let argv = vec!["echo".to_owned(), "deploy".to_owned()];
    let env: BTreeMap<String, String> = BTreeMap::new();
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/v1/requests", server.url))
        .bearer_auth(&token)
        .json(&json!({
            "argv": argv, "cwd": "/srv", "env": env,
            "digest": gate::request::digest(&argv, "/srv", &env, &[]),
            "ci_token": t,
        }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], "ci_token_refused");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot fetch the keys"),
        "{body}"
    );
}

#[test]
fn an_issuer_that_fails_is_not_asked_again_on_every_request() {
    let f = Fixture::start();
    f.issuer.state.jwks_down.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        f.refused(&f.issuer.good(), "keys");
    }
    let fetches = f.issuer.state.jwks_fetches.load(Ordering::SeqCst);
    assert_eq!(fetches, 1, "the failing issuer was asked {fetches} times");
}
