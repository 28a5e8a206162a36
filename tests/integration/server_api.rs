//! The HTTP API of `gate serve` against its contract, `docs/openapi.yaml` (issue 4, DESIGN §6).
//!
//! Every test starts the real binary on 127.0.0.1 with an ephemeral port, a throw-away
//! database, audit log and XDG directories, and a server policy with groups and approve rules;
//! a Drop guard stops it. Every API response a test sees is checked against the spec: its
//! status must be documented for the route and method, and its JSON body must validate
//! against the documented schema (a small JSON-schema subset validator below).
//!
//! Covered: the router ⇔ spec route list; eligibility decided by the server (401s, self-approval,
//! groups, N distinct approvers, expiry, re-decision, one deny, cancel, digest, a client that
//! claims less than the server demands, server-policy deny); bad input (400 naming the field,
//! 404, 413, 415); long-polls; the client side through the binary (approve/deny/no server/
//! restart/Ctrl-C/no token/login); the server's own audit log; tokens never leaking; and
//! schemathesis fuzzing the live server with the spec (`.ci/deps/schemathesis.sh` installs it).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::process::{HANG, Server, poll, spawn};
use common::{Checked, Ran};
use nix::sys::signal::Signal;
use serde_json::{Map, Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The server's policy: two of the SREs for `echo server-two`, the one ops person for
/// `echo server-one`, never `rm`; everything else allowed (a client asking for approval of it
/// gets "one approval from anyone but the requester").
const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 60s }
groups:
  sre: [alice, bob, carol]
  ops: [dave]
context: { redact: ['(?i)(password|token|secret)=\S+'] }
rules:
  - name: two-sre
    match: { program: echo, args: [server-two] }
    decision: approve
    approval: { approvers: [sre], min_approvals: 2, timeout: 60s }
  - name: one-ops
    match: { program: echo, args: [server-one] }
    decision: approve
    approval: { approvers: [ops], timeout: 60s }
  - name: no-rm
    match: { program: rm }
    decision: deny
    message: never on the server
"#;

/// The client's policy: `echo server-two` needs one approval through the `team` server, whose
/// decisions must be signed by `key`. The server demands more (two SREs), and the server's
/// demand wins.
fn client_policy(url: &str, key: &str) -> String {
    format!(
        r#"version: 1
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
rules:
  - name: two-sre
    match: {{ program: echo, args: [server-two] }}
    decision: approve
    approval: {{ backend: team, timeout: 60s }}
"#
    )
}

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
fn ok(r: &Checked) -> &Checked {
    r.status(0)
}

/// What the API tests add to the shared server harness.
impl Server {
    fn token_list(&self, json: bool) -> String {
        let mut c = gate(&self.home);
        c.args(["serve", "token", "list", "--db"]).arg(&self.db);
        if json {
            c.arg("--json");
        }
        let r = run(c);
        ok(&r);
        format!("{}{}", r.stdout, r.stderr)
    }

    fn api(&self) -> Api {
        Api::new(&self.url)
    }
}

// ---------------------------------------------------------------------------------------------
// The spec: YAML → serde_json, and a JSON-schema subset validator.

fn yaml_to_json(y: &saphyr::Yaml<'_>) -> Value {
    use saphyr::{Scalar, Yaml};
    match y {
        Yaml::Value(s) => match s {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(*b),
            Scalar::Integer(i) => json!(i),
            Scalar::FloatingPoint(f) => json!(f.into_inner()),
            Scalar::String(s) => Value::String(s.to_string()),
        },
        Yaml::Representation(s, _, _) => Value::String(s.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Yaml::Tagged(_, inner) => yaml_to_json(inner),
        other => panic!("docs/openapi.yaml: unsupported YAML node {other:?}"),
    }
}

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        use saphyr::LoadableYamlNode;
        let text = std::fs::read_to_string(Path::new(ROOT).join("docs/openapi.yaml"))
            .expect("read docs/openapi.yaml");
        let docs = saphyr::Yaml::load_from_str(&text).expect("docs/openapi.yaml is YAML");
        assert_eq!(docs.len(), 1, "docs/openapi.yaml holds one document");
        let v = yaml_to_json(&docs[0]);
        assert_eq!(v["openapi"], "3.0.3");
        v
    })
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve(v: &Value) -> &Value {
    let mut v = v;
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let ptr = r.strip_prefix('#').expect("only local $refs");
        v = spec()
            .pointer(ptr)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    v
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates `v` against `schema` (OpenAPI 3.0 flavour): `$ref`, `allOf`, `nullable`, `type`,
/// `enum`, `required`, `properties`, `additionalProperties` (false or a schema), `items`,
/// `minItems`, `minimum`, `maximum`. Appends what breaks to `errs`.
fn validate(schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let s = resolve(schema);
    if v.is_null() {
        if s["nullable"] == json!(true) {
            return;
        }
        if let Some(all) = s["allOf"].as_array()
            && all.iter().any(|x| resolve(x)["nullable"] == json!(true))
        {
            return;
        }
    }
    if let Some(all) = s["allOf"].as_array() {
        for sub in all {
            validate(sub, v, at, errs);
        }
    }
    if let Some(t) = s["type"].as_str() {
        let actual = type_name(v);
        let fits = actual == t || (t == "number" && actual == "integer");
        if !fits {
            errs.push(format!("{at}: expected {t}, got {actual} ({v})"));
            return;
        }
    }
    if let Some(allowed) = s["enum"].as_array()
        && !allowed.contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {allowed:?}"));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s["minimum"].as_f64()
            && n < min
        {
            errs.push(format!("{at}: {n} < minimum {min}"));
        }
        if let Some(max) = s["maximum"].as_f64()
            && n > max
        {
            errs.push(format!("{at}: {n} > maximum {max}"));
        }
    }
    if let Value::Object(obj) = v {
        for r in s["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                errs.push(format!("{at}: missing required `{r}`"));
            }
        }
        let props = s["properties"].as_object();
        for (k, val) in obj {
            let here = format!("{at}.{k}");
            if let Some(p) = props.and_then(|p| p.get(k)) {
                validate(p, val, &here, errs);
            } else {
                match &s["additionalProperties"] {
                    Value::Bool(false) => errs.push(format!("{at}: unexpected property `{k}`")),
                    extra @ Value::Object(_) => validate(extra, val, &here, errs),
                    _ => {}
                }
            }
        }
    }
    if let Value::Array(items) = v {
        if let Some(min) = s["minItems"].as_u64()
            && (items.len() as u64) < min
        {
            errs.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(item) = s.get("items") {
            for (i, x) in items.iter().enumerate() {
                validate(item, x, &format!("{at}[{i}]"), errs);
            }
        }
    }
}

/// The spec's operation for a path template and method.
fn operation(template: &str, method: &str) -> &'static Value {
    let op = &spec()["paths"][template][method.to_ascii_lowercase()];
    assert!(
        op.is_object(),
        "docs/openapi.yaml has no {method} {template}"
    );
    op
}

/// Asserts the response is documented for the operation and fits its schema.
#[track_caller]
fn conforms(template: &str, method: &str, r: &Resp) {
    let op = operation(template, method);
    let documented = resolve(&op["responses"][r.status.to_string()]);
    assert!(
        documented.is_object(),
        "{method} {template} answered {} which docs/openapi.yaml does not document: {}",
        r.status,
        r.text
    );
    let content = &documented["content"];
    let Some(types) = content.as_object() else {
        return;
    };
    let media = r.content_type.split(';').next().unwrap_or("").trim();
    assert!(
        types.contains_key(media),
        "{method} {template} {}: content type {:?} is not documented ({:?})",
        r.status,
        r.content_type,
        types.keys().collect::<Vec<_>>()
    );
    if media == "application/json" {
        let mut errs = Vec::new();
        validate(&types[media]["schema"], &r.json, "$", &mut errs);
        assert!(
            errs.is_empty(),
            "{method} {template} {}: the body breaks the spec:\n  {}\nbody: {}",
            r.status,
            errs.join("\n  "),
            r.text
        );
    }
    if r.status == 401 {
        // Slack's requests authenticate by their signature, not a token.
        let scheme = if template == "/slack/interactions" {
            "Slack-Signature"
        } else {
            "Bearer"
        };
        assert_eq!(r.www_authenticate.as_deref(), Some(scheme));
    }
}

// ---------------------------------------------------------------------------------------------
// The API client: every response is checked against the spec.

struct Resp {
    status: u16,
    json: Value,
    text: String,
    content_type: String,
    www_authenticate: Option<String>,
}

impl Resp {
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an error with this code whose message contains `needle`.
    #[track_caller]
    fn error(&self, status: u16, code: &str, needle: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.json["error"], code, "body: {}", self.text);
        let m = self.json["message"].as_str().unwrap_or("");
        assert!(m.contains(needle), "message lacks {needle:?}: {m}");
        self
    }
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(70))
                .build()
                .unwrap(),
        }
    }

    /// Sends `method template` (with `{id}` replaced by `id`) and checks the answer against
    /// the spec.
    #[track_caller]
    fn call(
        &self,
        method: &str,
        template: &str,
        id: &str,
        query: &str,
        token: Option<&str>,
        body: Body,
    ) -> Resp {
        let url = format!("{}{}{query}", self.base, template.replace("{id}", id));
        let mut rb = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb = match body {
            Body::None => rb,
            Body::Json(v) => rb.json(&v),
            Body::Raw(ct, bytes) => rb.header("content-type", ct).body(bytes),
        };
        let resp = rb
            .send()
            .unwrap_or_else(|e| panic!("{method} {template}: {e}"));
        let status = resp.status().as_u16();
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let www_authenticate = header("www-authenticate");
        let text = resp.text().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let r = Resp {
            status,
            json,
            text,
            content_type,
            www_authenticate,
        };
        conforms(template, method, &r);
        r
    }

    #[track_caller]
    fn create(&self, token: &str, body: Value) -> Resp {
        self.call(
            "POST",
            "/v1/requests",
            "",
            "",
            Some(token),
            Body::Json(body),
        )
    }

    #[track_caller]
    fn get(&self, token: &str, id: &str, query: &str) -> Resp {
        self.call(
            "GET",
            "/v1/requests/{id}",
            id,
            query,
            Some(token),
            Body::None,
        )
    }

    #[track_caller]
    fn status(&self, token: &str, id: &str) -> String {
        self.get(token, id, "").expect(200).json["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[track_caller]
    fn approve(&self, token: &str, id: &str) -> Resp {
        self.call(
            "POST",
            "/v1/requests/{id}/approve",
            id,
            "",
            Some(token),
            Body::Json(json!({ "comment": "ok by me" })),
        )
    }

    #[track_caller]
    fn deny(&self, token: &str, id: &str, reason: &str) -> Resp {
        self.call(
            "POST",
            "/v1/requests/{id}/deny",
            id,
            "",
            Some(token),
            Body::Json(json!({ "reason": reason })),
        )
    }

    #[track_caller]
    fn cancel(&self, token: &str, id: &str) -> Resp {
        self.call(
            "POST",
            "/v1/requests/{id}/cancel",
            id,
            "",
            Some(token),
            Body::None,
        )
    }

    #[track_caller]
    fn list(&self, token: &str, query: &str) -> Resp {
        self.call("GET", "/v1/requests", "", query, Some(token), Body::None)
    }

    /// Waits until a pending request for `argv` by `requester` shows up; its id.
    fn pending_for(&self, token: &str, requester: &str, argv: &[&str]) -> String {
        poll(
            &format!("a pending request for {argv:?} by {requester}"),
            || {
                let r = self.list(token, "?status=pending");
                let found = r.json["requests"].as_array().unwrap().iter().find(|q| {
                    q["requester"] == requester
                        && q["argv"] == json!(argv)
                        && q["status"] == "pending"
                });
                found.map(|q| q["id"].as_str().unwrap().to_owned())
            },
        )
    }
}

/// A create body for `argv` with the right digest.
fn request_body(argv: &[&str]) -> Value {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let env: BTreeMap<String, String> = BTreeMap::new();
    let digest = gate::request::digest(&argv, "/srv", &env, &[]);
    json!({
        "argv": argv,
        "cwd": "/srv",
        "env": env,
        "digest": digest,
        "reason": "testing",
        "claims": { "user": "someone", "uid": 1000, "host": "laptop" },
    })
}

fn with(mut body: Value, key: &str, v: Value) -> Value {
    body[key] = v;
    body
}

#[track_caller]
fn assert_absent(haystack: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!haystack.contains(s), "a token leaked into {what}");
    }
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("audit record is JSON"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The spec against the router and the live server.

/// The routes `src/server/mod.rs`'s router declares (the web page's are merged from web/mod.rs).
fn router_routes() -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(Path::new(ROOT).join("src/server/mod.rs")).unwrap();
    let body = src
        .split("pub fn router(")
        .nth(1)
        .expect("src/server/mod.rs has fn router")
        .split("\n}\n")
        .next()
        .unwrap();
    let mut out = BTreeSet::new();
    for chunk in body.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).expect("a route path").to_owned();
        // The method routers of this route: up to the next `.route(` (chunk ends there).
        for m in ["get", "post", "put", "patch", "delete"] {
            if chunk.contains(&format!("{m}(")) {
                out.insert((path.clone(), m.to_owned()));
            }
        }
    }
    assert!(
        out.len() >= 9,
        "could not read the router's routes: {out:?}"
    );
    out
}

#[test]
fn spec_routes_match_the_router_and_the_live_server() {
    let spec_routes: BTreeSet<(String, String)> = spec()["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    let router = router_routes();
    assert_eq!(
        spec_routes, router,
        "docs/openapi.yaml and the router in src/server/mod.rs list different routes"
    );
    // Every documented error status is the `{error, message}` schema.
    for (p, m) in &spec_routes {
        for (status, r) in operation(p, m)["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &resolve(r)["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{m} {p} {status} is not the Error schema"
                );
            }
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), SERVER_POLICY);
    let api = srv.api();
    let alice = srv.token("alice", None);
    let created = api.create(&alice, request_body(&["echo", "server-two"]));
    created.expect(201);
    let id = created.json["id"].as_str().unwrap().to_owned();
    // Each documented route and method answers on the live server (no 404/405), and the
    // answer conforms (checked by `call`).
    for (p, m) in &spec_routes {
        let method = m.to_ascii_uppercase();
        let body = match (m.as_str(), p.as_str()) {
            ("post", "/v1/requests") => Body::Json(request_body(&["echo", "server-two"])),
            ("post", "/v1/requests/{id}/deny") => Body::Json(json!({ "reason": "no" })),
            ("post", _) => Body::Json(json!({})),
            _ => Body::None,
        };
        let r = api.call(&method, p, &id, "", Some(&alice), body);
        // A route that exists answers 404 only as a JSON `not_found` about the resource (the
        // log routes are probed with a log id the server has never seen).
        let routed_404 = r.status == 404 && r.json["error"] == "not_found";
        assert!(
            (r.status != 404 || routed_404) && r.status != 405,
            "{method} {p} is documented but the server answers {}",
            r.status
        );
    }
    // And nothing undocumented under /v1 answers (beyond the web page).
    let r = api
        .http
        .get(format!("{}/v1/requests/{id}/frobnicate", srv.url))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = api
        .http
        .delete(format!("{}/v1/requests/{id}", srv.url))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // /healthz and /metrics need no token.
    let h = api.call("GET", "/healthz", "", "", None, Body::None);
    h.expect(200);
    assert_eq!(h.text, "ok\n");
    let m = api.call("GET", "/metrics", "", "", None, Body::None);
    m.expect(200);
    assert!(m.text.contains("gate_pending_requests "), "{}", m.text);
    assert!(m.text.contains("gate_events_total "), "{}", m.text);
}

// ---------------------------------------------------------------------------------------------
// 2 + 5. Eligibility, bad input, and the server's own audit log.

#[test]
fn eligibility_is_decided_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path(), SERVER_POLICY);
    let api = srv.api();
    let [alice, bob, carol, dave, mallory] =
        ["alice", "bob", "carol", "dave", "mallory"].map(|p| srv.token(p, None));

    // --- 401: missing, unknown, revoked, expired.
    let me = |t: Option<&str>| api.call("GET", "/v1/me", "", "", t, Body::None);
    me(None).error(401, "unauthorized", "missing");
    me(Some("gate_00000000_nope")).error(401, "unauthorized", "unknown");
    let r = me(Some(&alice));
    r.expect(200);
    assert_eq!(r.json, json!({ "principal": "alice", "groups": ["sre"] }));
    let revoked = srv.token("revoked-user", None);
    me(Some(&revoked)).expect(200);
    let list = srv.token_list(true);
    let id = list
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["principal"] == "revoked-user")
        .expect("token list names the token")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = gate(&srv.home);
    c.args(["serve", "token", "revoke", "--db"])
        .arg(&srv.db)
        .arg(&id);
    ok(&run(c)).stderr(&format!("gate: revoked token {id}\n"));
    me(Some(&revoked)).error(401, "unauthorized", "revoked");
    let expiring = srv.token("expiring-user", Some("1s"));
    std::thread::sleep(Duration::from_millis(1100));
    me(Some(&expiring)).error(401, "unauthorized", "expired");
    // A create without a token is refused before anything is stored.
    api.call(
        "POST",
        "/v1/requests",
        "",
        "",
        None,
        Body::Json(request_body(&["echo", "server-two"])),
    )
    .error(401, "unauthorized", "missing");

    // --- Two distinct SREs; the requester (an SRE herself) doesn't count.
    let r = api.create(&alice, request_body(&["echo", "server-two"]));
    r.expect(201);
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["requester"], "alice");
    assert_eq!(r.json["needed"], 2);
    assert_eq!(r.json["rules"], json!(["two-sre"]));
    // The claims are recorded, not trusted.
    assert_eq!(r.json["claims"]["user"], "someone");
    let two = r.json["id"].as_str().unwrap().to_owned();
    api.approve(&alice, &two)
        .error(403, "self_approval", "alice");
    assert_eq!(api.status(&alice, &two), "pending");
    api.approve(&mallory, &two)
        .error(403, "not_eligible", "alice, bob, carol");
    api.deny(&mallory, &two, "no")
        .error(403, "not_eligible", "alice, bob, carol");
    let r = api.approve(&bob, &two);
    r.expect(200);
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["needed"], 1);
    api.approve(&bob, &two).error(409, "already_decided", "bob");
    assert_eq!(api.status(&alice, &two), "pending");
    let r = api.approve(&carol, &two);
    r.expect(200);
    assert_eq!(r.json["status"], "approved");
    assert_eq!(r.json["needed"], 0);
    let approvers: Vec<&str> = r.json["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["bob", "carol"]);
    assert_eq!(r.json["approvals"][0]["comment"], "ok by me");
    assert!(r.json["decided"].is_string());
    // Decided: can't be re-decided.
    api.approve(&alice, &two).expect(409);
    api.deny(&bob, &two, "too late")
        .error(409, "decided", "approved");

    // --- One eligible deny denies.
    let r = api.create(&alice, request_body(&["echo", "server-two"]));
    let denied = r.json["id"].as_str().unwrap().to_owned();
    let r = api.deny(&bob, &denied, "not today");
    r.expect(200);
    assert_eq!(r.json["status"], "denied");
    assert_eq!(r.json["denial"]["principal"], "bob");
    assert_eq!(r.json["denial"]["comment"], "not today");
    api.approve(&carol, &denied).error(409, "decided", "denied");

    // --- Expiry: approving after the deadline is a 409, and the sweeper marks it.
    let r = api.create(
        &dave,
        with(
            request_body(&["echo", "server-two"]),
            "timeout_secs",
            json!(1),
        ),
    );
    r.expect(201);
    let expiring_req = r.json["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1300));
    let r = api.approve(&bob, &expiring_req);
    r.expect(409);
    assert!(
        ["expired", "decided"].contains(&r.json["error"].as_str().unwrap()),
        "{}",
        r.text
    );
    poll("the request to show as expired", || {
        (api.status(&dave, &expiring_req) == "expired").then_some(())
    });

    // --- Cancel: the requester only, once.
    let r = api.create(&alice, request_body(&["echo", "server-one"]));
    let cancelled = r.json["id"].as_str().unwrap().to_owned();
    api.cancel(&bob, &cancelled)
        .error(403, "not_requester", "alice");
    let r = api.cancel(&alice, &cancelled);
    r.expect(200);
    assert_eq!(r.json["status"], "cancelled");
    api.cancel(&alice, &cancelled)
        .error(409, "decided", "cancelled");
    api.approve(&dave, &cancelled)
        .error(409, "decided", "cancelled");

    // --- A client claiming less than the server demands still gets the server's demand.
    let body = with(
        request_body(&["echo", "server-two"]),
        "client",
        json!({ "decision": "allow", "rules": [] }),
    );
    let r = api.create(&mallory, body);
    r.expect(201);
    assert_eq!(r.json["decision"], "approve");
    assert_eq!(r.json["needed"], 2);
    assert_eq!(r.json["requirement"]["min_approvals"], 2);
    assert_eq!(r.json["requirement"]["allow_requester"], false);
    // ... and a client requirement that allows the requester can't loosen it either.
    let weak = json!({
        "decision": "approve",
        "rules": ["mine"],
        "requirement": {
            "clauses": [{ "rule": "mine", "approvers": [], "eligible": null, "min_approvals": 1 }],
            "min_approvals": 1, "allow_requester": true, "timeout": "1h", "backend": null
        }
    });
    let r = api.create(
        &alice,
        with(request_body(&["echo", "server-two"]), "client", weak),
    );
    r.expect(201);
    assert_eq!(r.json["needed"], 2);
    assert_eq!(r.json["client_rules"], json!(["mine"]));
    let loose = r.json["id"].as_str().unwrap().to_owned();
    api.approve(&alice, &loose)
        .error(403, "self_approval", "alice");
    // The server's timeout (60 s) wins over the client's hour.
    assert_eq!(r.json["requirement"]["timeout"], "1m");

    // --- The server's policy denies: created already denied.
    let r = api.create(&alice, request_body(&["rm", "-rf", "/srv"]));
    r.expect(201);
    assert_eq!(r.json["status"], "denied");
    assert_eq!(r.json["decision"], "deny");
    assert_eq!(r.json["denial"]["principal"], "policy");
    let why = r.json["policy_denial"].as_str().unwrap();
    assert!(
        why.contains("no-rm") && why.contains("never on the server"),
        "{why}"
    );
    let rm = r.json["id"].as_str().unwrap().to_owned();
    api.approve(&bob, &rm).error(409, "decided", "denied");

    // --- Redaction of what the server stores and shows.
    let r = api.create(
        &alice,
        request_body(&["echo", "server-two", "password=hunter2"]),
    );
    r.expect(201);
    assert!(!r.text.contains("hunter2"), "{}", r.text);

    // --- Unknown ids.
    let nobody = "01234567-89ab-7def-8123-456789abcdef";
    api.get(&alice, nobody, "").error(404, "not_found", nobody);
    api.approve(&bob, nobody).error(404, "not_found", nobody);
    api.deny(&bob, nobody, "x").error(404, "not_found", nobody);
    api.cancel(&alice, nobody).error(404, "not_found", nobody);

    // --- Bad input: 400 naming the field.
    let mut bad = request_body(&["echo", "server-two"]);
    bad["digest"] = json!("0".repeat(64));
    api.create(&alice, bad).error(400, "bad_request", "digest");
    let raw = |ct: &'static str, s: &str| Body::Raw(ct, s.as_bytes().to_vec());
    let post = |t: &str, body: Body| api.call("POST", "/v1/requests", "", "", Some(t), body);
    post(&alice, raw("application/json", "{\"argv\": [")).error(400, "bad_request", "argv");
    post(&alice, raw("application/json", "not json")).error(400, "bad_request", "bad JSON");
    post(&alice, raw("application/json", "[1, 2]")).expect(400);
    let mut wrong = request_body(&["echo"]);
    wrong["argv"] = json!([1]);
    api.create(&alice, wrong)
        .error(400, "bad_request", "argv[0]");
    let mut wrong = request_body(&["echo"]);
    wrong["cwd"] = json!(5);
    api.create(&alice, wrong).error(400, "bad_request", "cwd");
    let mut wrong = request_body(&["echo"]);
    wrong["claims"]["uid"] = json!("root");
    api.create(&alice, wrong)
        .error(400, "bad_request", "claims.uid");
    let mut wrong = request_body(&["echo"]);
    wrong["argv"] = json!([]);
    api.create(&alice, wrong).error(400, "bad_request", "argv");
    let mut wrong = request_body(&["echo"]);
    wrong.as_object_mut().unwrap().remove("digest");
    api.create(&alice, wrong)
        .error(400, "bad_request", "digest");
    api.create(&alice, with(request_body(&["echo"]), "surprise", json!(1)))
        .error(400, "bad_request", "surprise");
    api.create(
        &alice,
        with(request_body(&["echo"]), "id", json!("not-a-uuid")),
    )
    .error(400, "bad_request", "id");
    api.create(
        &alice,
        with(
            request_body(&["echo"]),
            "client",
            json!({ "decision": "maybe" }),
        ),
    )
    .error(400, "bad_request", "client.decision");
    // The same id twice: 409.
    let fixed = with(
        request_body(&["echo", "hello"]),
        "id",
        json!("0190a0b0-0000-7000-8000-000000000001"),
    );
    api.create(&alice, fixed.clone()).expect(201);
    api.create(&alice, fixed)
        .error(409, "exists", "already exists");
    api.call(
        "POST",
        "/v1/requests/{id}/deny",
        &two,
        "",
        Some(&bob),
        Body::Json(json!({ "reason": 7 })),
    )
    .error(400, "bad_request", "reason");
    api.call(
        "POST",
        "/v1/requests/{id}/approve",
        &two,
        "",
        Some(&bob),
        Body::Json(json!({ "comment": ["x"] })),
    )
    .error(400, "bad_request", "comment");
    api.get(&alice, &two, "?wait=soon")
        .error(400, "bad_request", "wait");
    api.get(&alice, &two, "?whatever=1").expect(400);
    api.list(&alice, "?status=bogus")
        .error(400, "bad_request", "status");

    // --- 415 and 413, as `{error, message}`.
    post(&alice, raw("text/plain", "{}")).error(415, "unsupported_media_type", "application/json");
    for (template, id) in [
        ("/v1/requests/{id}/approve", two.as_str()),
        ("/v1/requests/{id}/deny", two.as_str()),
    ] {
        api.call(
            "POST",
            template,
            id,
            "",
            Some(&bob),
            raw("application/x-www-form-urlencoded", "reason=x"),
        )
        .error(415, "unsupported_media_type", "application/json");
    }
    let mut big = request_body(&["echo", "server-two"]);
    big["reason"] = json!("x".repeat(1024 * 1024 + 10));
    api.create(&alice, big).error(413, "too_large", "1 MiB");
    for template in ["/v1/requests/{id}/approve", "/v1/requests/{id}/deny"] {
        api.call(
            "POST",
            template,
            &two,
            "",
            Some(&bob),
            Body::Json(json!({ "reason": "x".repeat(1024 * 1024 + 10) })),
        )
        .error(413, "too_large", "1 MiB");
    }

    // --- Listing: pending only, with the spec's shape.
    let r = api.list(&alice, "?status=pending");
    let ids: Vec<&str> = r.json["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&loose.as_str()));
    assert!(!ids.contains(&two.as_str()) && !ids.contains(&rm.as_str()));
    api.list(&alice, "").expect(200);

    // --- 5. The server's own audit log, verified with the host's code.
    let all_tokens = [&alice, &bob, &carol, &dave, &mallory, &revoked, &expiring];
    let secrets: Vec<&str> = all_tokens.iter().map(|s| s.as_str()).collect();
    assert_eq!(srv.stop(), 0, "gate serve exits 0 on SIGTERM");
    let records = read_records(&srv.audit);
    let kinds: BTreeSet<&str> = records
        .iter()
        .filter(|r| r["kind"] == "event")
        .filter_map(|r| r["event"]["type"].as_str())
        .collect();
    for k in ["request", "approval", "denial", "expiry", "cancellation"] {
        assert!(
            kinds.contains(k),
            "no `{k}` event in the server's log: {kinds:?}"
        );
    }
    let approval = records
        .iter()
        .find(|r| r["request_id"] == two.as_str() && r["event"]["type"] == "approval")
        .expect("the approval of the two-SRE request is recorded");
    assert!(["bob", "carol"].contains(&approval["event"]["principal"].as_str().unwrap()));
    let mut c = gate(&srv.home);
    c.args(["log", "verify"]).arg(&srv.audit);
    let v = run(c);
    ok(&v);
    let log_text = std::fs::read_to_string(&srv.audit).unwrap();
    assert_absent(&log_text, &secrets, "the server's audit log");
    assert_absent(&srv.stderr(), &secrets, "the server's stderr");
    assert_absent(&srv.token_list(false), &secrets, "`gate serve token list`");
    assert_absent(
        &srv.token_list(true),
        &secrets,
        "`gate serve token list --json`",
    );
    assert!(
        !log_text.contains("hunter2"),
        "the server logged a redacted secret"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Long-poll.

#[test]
fn long_poll_answers_when_the_status_changes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), SERVER_POLICY);
    let api = srv.api();
    let alice = srv.token("alice", None);
    let dave = srv.token("dave", None);
    let r = api.create(&alice, request_body(&["echo", "server-one"]));
    let id = r.json["id"].as_str().unwrap().to_owned();

    let url = srv.url.clone();
    let (id2, dave2) = (id.clone(), dave.clone());
    let approver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        // The moment the approval is sent: the waiter may well be answered before the
        // approver has read its own response.
        let sent = Instant::now();
        Api::new(&url).approve(&dave2, &id2).expect(200);
        sent
    });
    let start = Instant::now();
    let r = api.get(&alice, &id, "?wait=30s");
    let answered = Instant::now();
    let approved_at = approver.join().unwrap();
    r.expect(200);
    assert_eq!(r.json["status"], "approved");
    // Woken by the change, not by its own end: the answer came after the approval and before
    // the 30 s it asked to wait (an order of events, not a claim about speed).
    assert!(
        answered >= approved_at,
        "answered before the approval was sent"
    );
    assert!(
        answered < start + Duration::from_secs(30),
        "the long-poll ran out its wait instead of answering the change"
    );

    // Nothing happens: the still-pending request after the wait.
    let r = api.create(&alice, request_body(&["echo", "server-one"]));
    let quiet = r.json["id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    let r = api.get(&alice, &quiet, "?wait=1s");
    let took = start.elapsed();
    assert_eq!(r.json["status"], "pending");
    assert!(took >= Duration::from_millis(900), "ended early: {took:?}");
    // A change to another request doesn't end the wait early.
    let r = api.create(&alice, request_body(&["echo", "server-one"]));
    let other = r.json["id"].as_str().unwrap().to_owned();
    let url = srv.url.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        Api::new(&url).approve(&dave, &other).expect(200);
    });
    let start = Instant::now();
    let r = api.get(&alice, &quiet, "?wait=1s");
    t.join().unwrap();
    assert_eq!(r.json["status"], "pending");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

// ---------------------------------------------------------------------------------------------
// 4. The client side, through the binary.

/// A client home with its own policy pointing at `url`.
fn client_home(url: &str, key: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("client-policy.yaml"), client_policy(url, key)).unwrap();
    d
}

/// A well-formed server key that no server here signs with.
const SOME_KEY: &str = "gate/vm+bc4dc392+AUb5WZhhFe1FmZQ+75Y0RJYWvdgQGEq4rMA4RQCY4gST";

fn client_run(home: &Path, token: Option<&str>, extra: &[&str], argv: &[&str]) -> Command {
    let mut c = gate(home);
    if let Some(t) = token {
        c.env("GATE_TOKEN", t);
    }
    c.arg("--policy")
        .arg(home.join("client-policy.yaml"))
        .args(extra)
        .arg("--")
        .args(argv);
    c
}

fn decide_cli(home: &Path, url: &str, token: &str, args: &[&str]) -> Checked {
    let mut c = gate(home);
    c.env("GATE_TOKEN", token)
        .args(args)
        .args(["--server", url]);
    run(c)
}

#[test]
fn client_runs_after_server_approval_and_stops_on_denial() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), SERVER_POLICY);
    let api = srv.api();
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|p| srv.token(p, None));
    let home = client_home(&srv.url, &srv.vkey());
    let h = home.path();
    let argv = ["echo", "server-two"];

    // Approved by two other principals through `gate approve --server`: runs.
    let client = spawn(client_run(h, Some(&alice), &[], &argv));
    let id = api.pending_for(&alice, "alice", &argv);
    let r = decide_cli(h, &srv.url, &bob, &["approve", &id, "--comment", "lgtm"]);
    ok(&r);
    r.stderr_contains("1 more approval");
    // The requester can't approve her own request through the CLI either.
    let r = decide_cli(h, &srv.url, &alice, &["approve", &id]);
    r.status(77);
    r.stderr_contains("cannot decide");
    ok(&decide_cli(h, &srv.url, &carol, &["approve", &id])).stderr_contains("it is now approved");
    let out = client.finish(Duration::from_secs(20));
    out.status(0);
    assert_eq!(out.stdout, "server-two\n");
    let records = read_records(&h.join("audit.jsonl"));
    let decision = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["request"]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no decision record for {id}: {records:?}"));
    assert_eq!(decision["decision"]["outcome"], "approved");
    let approvals = decision["decision"]["approvals"].as_array().unwrap();
    let names: BTreeSet<&str> = approvals
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["bob", "carol"]));
    assert!(
        approvals.iter().all(|a| a["via"] == "server"),
        "{approvals:?}"
    );
    assert!(
        approvals.iter().any(|a| a["comment"] == "lgtm"),
        "{approvals:?}"
    );

    // `gate requests --server` lists what is pending; denied: exit 77, nothing ran.
    let client = spawn(client_run(h, Some(&alice), &[], &argv));
    let id = api.pending_for(&alice, "alice", &argv);
    let mut c = gate(h);
    c.env("GATE_TOKEN", &bob)
        .args(["requests", "--server", &srv.url]);
    let listed = run(c);
    ok(&listed);
    // A row per request, under its short id (the id's random tail).
    assert!(
        listed.stdout.contains(&id[id.len() - 12..]),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("echo server-two"),
        "{}",
        listed.stdout
    );
    ok(&decide_cli(
        h,
        &srv.url,
        &bob,
        &["deny", &id, "--reason", "not now"],
    ))
    .stderr_contains("it is now denied");
    let out = client.finish(Duration::from_secs(20));
    out.status(77);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    out.stderr_contains("not now");

    // No token: 78, with a hint naming `gate login`.
    let r = run(client_run(h, None, &[], &argv));
    r.status(78);
    r.stderr_contains("gate login");
    assert!(r.stdout.is_empty());

    // Tokens leak nowhere.
    let secrets = [alice.as_str(), bob.as_str(), carol.as_str()];
    let client_log = std::fs::read_to_string(h.join("audit.jsonl")).unwrap();
    assert_absent(&client_log, &secrets, "the client's audit log");
    assert_absent(&srv.stderr(), &secrets, "the server's stderr");
    assert_absent(
        &std::fs::read_to_string(&srv.audit).unwrap(),
        &secrets,
        "the server's audit log",
    );
    assert_absent(&srv.token_list(false), &secrets, "`gate serve token list`");
    assert_absent(&out.stderr, &secrets, "the client's stderr");
}

#[test]
fn client_fails_closed_when_the_server_is_down() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let home = client_home(&url, SOME_KEY);
    let h = home.path();
    let marker = h.join("ran");
    // The command would create `ran`; it must not run.
    std::fs::write(
        h.join("client-policy.yaml"),
        client_policy(&url, SOME_KEY)
            .replace("program: echo, args: [server-two]", "program: touch"),
    )
    .unwrap();
    let start = Instant::now();
    let mut c = client_run(
        h,
        Some("gate_00000000_whatever"),
        &["--timeout", "3s"],
        &["touch", marker.to_str().unwrap()],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let r = run(c);
    let took = start.elapsed();
    r.status(75);
    r.stderr_contains("retrying");
    assert!(!marker.exists(), "the command ran without an approval");
    assert!(
        took >= Duration::from_millis(1500),
        "gave up after {took:?}"
    );
    assert!(!r.stderr.contains("gate_00000000_whatever"));
}

#[test]
fn client_resumes_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path(), SERVER_POLICY);
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|p| srv.token(p, None));
    let home = client_home(&srv.url, &srv.vkey());
    let h = home.path();
    let argv = ["echo", "server-two"];
    let mut client = spawn(client_run(h, Some(&alice), &[], &argv));
    let id = srv.api().pending_for(&alice, "alice", &argv);
    // The client says when it waits; then the server goes away under it, and the client says
    // it noticed (it retries) before the server comes back at the same address.
    client.stderr_until("waiting as request", HANG);
    let addr = srv.addr.clone();
    assert_eq!(srv.stop(), 0);
    client.stderr_until("retrying", HANG);
    drop(srv);
    let srv = Server::start_in(dir.path(), SERVER_POLICY, &addr);
    let api = srv.api();
    // Same request, still pending, and the client still waits on it.
    assert_eq!(api.status(&alice, &id), "pending");
    api.approve(&bob, &id).expect(200);
    api.approve(&carol, &id).expect(200);
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    assert_eq!(out.stdout, "server-two\n");
    // Exactly one request: the client did not submit a second one.
    let all = api.list(&alice, "");
    let mine = all.json["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["requester"] == "alice")
        .count();
    assert_eq!(mine, 1, "{}", all.text);
}

#[test]
fn ctrl_c_cancels_the_request_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), SERVER_POLICY);
    let api = srv.api();
    let alice = srv.token("alice", None);
    let home = client_home(&srv.url, &srv.vkey());
    let h = home.path();
    let argv = ["echo", "server-two"];
    let mut client = spawn(client_run(h, Some(&alice), &[], &argv));
    let id = api.pending_for(&alice, "alice", &argv);
    client.stderr_until("waiting as request", HANG);
    client.signal(Signal::SIGINT);
    let out = client.finish(Duration::from_secs(15));
    out.status(75);
    assert!(out.stdout.is_empty());
    assert_eq!(api.status(&alice, &id), "cancelled");
}

#[test]
fn login_stores_the_token_for_later_commands() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), SERVER_POLICY);
    let alice = srv.token("alice", None);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let tokens = h.join("config/gate/tokens");

    let login = |secret: &str| {
        let mut c = gate(h);
        c.args(["login", &srv.url]).stdin(Stdio::piped());
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{secret}\n").as_bytes())
            .unwrap();
        Checked::new(Ran::from_output(child.wait_with_output().unwrap()))
    };
    let requests = || {
        let mut c = gate(h);
        c.args(["requests", "--server", &srv.url]);
        run(c)
    };
    // Before login: no token, a hint.
    let r = requests();
    r.status(78);
    r.stderr_contains("gate login");
    // A bad token: refused, nothing stored.
    let r = login("gate_deadbeef_not-a-real-token");
    r.status(77).stderr_contains("refused");
    assert!(!r.stderr.contains("not-a-real-token"), "{}", r.stderr);
    let stored = || -> Vec<PathBuf> {
        std::fs::read_dir(&tokens)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    assert!(stored().is_empty(), "a refused token was stored");
    requests().status(78).stderr_contains("gate login");
    // A good token: stored (keyring, or a 0600 file where there is none).
    let r = login(&alice);
    ok(&r);
    r.stderr_contains("as alice");
    assert!(!r.stderr.contains(&alice) && !r.stdout.contains(&alice));
    if r.stderr.contains("OS keyring;") || r.stderr.contains("the token is in the OS keyring") {
        // In the keyring, and so nowhere on disk (the requests below find it there).
        assert!(
            stored().is_empty(),
            "the token went to the keyring and to a file: {:?}",
            stored()
        );
    } else {
        let files = stored();
        assert_eq!(files.len(), 1, "{files:?}\n{}", r.stderr);
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "token file mode {mode:o}");
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap().trim(), alice);
    }
    // Later commands find it without GATE_TOKEN.
    let r = requests();
    ok(&r);
    r.stderr_contains("no pending requests");
    assert_absent(&srv.stderr(), &[&alice], "the server's stderr");
}

// ---------------------------------------------------------------------------------------------
// 6. schemathesis against the live server.

/// How to run schemathesis here: the `schemathesis` script, else its module.
fn schemathesis() -> Option<Command> {
    let works = |mut c: Command| {
        c.arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(Command::new("schemathesis")) {
        return Some(Command::new("schemathesis"));
    }
    let module = || {
        let mut c = Command::new("python3");
        c.args(["-m", "schemathesis.cli"]);
        c
    };
    works(module()).then(module)
}

#[test]
fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let Some(mut st) = schemathesis() else {
        panic!(
            "schemathesis is not installed; run `bash .ci/deps/schemathesis.sh` \
             (python3 -m pip install 'schemathesis>=3.39,<4' 'hypothesis<=6.131.14')"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), SERVER_POLICY);
    let api = srv.api();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(|p| srv.token(p, None));
    // Requests in every status, so the list and its schema are exercised on real data.
    api.create(&alice, request_body(&["echo", "server-two"]))
        .expect(201);
    let r = api.create(&alice, request_body(&["echo", "server-two"]));
    let id = r.json["id"].as_str().unwrap().to_owned();
    api.approve(&bob, &id).expect(200);
    api.approve(&carol, &id).expect(200);
    let r = api.create(&alice, request_body(&["echo", "server-one"]));
    api.deny(&dave, r.json["id"].as_str().unwrap(), "no")
        .expect(200);
    api.create(&alice, request_body(&["rm", "-rf", "/"]))
        .expect(201);
    let r = api.create(&alice, request_body(&["echo", "server-one"]));
    api.cancel(&alice, r.json["id"].as_str().unwrap())
        .expect(200);

    let work = tempfile::tempdir().unwrap();
    st.current_dir(work.path())
        .arg("run")
        .arg(Path::new(ROOT).join("docs/openapi.yaml"))
        .args(["--base-url", &srv.url])
        .args(["-H", &format!("Authorization: Bearer {alice}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--hypothesis-max-examples",
            "30",
            // Health checks judge the generator, not the server: a free-text NDJSON body makes
            // Hypothesis filter many examples, which is not a finding about gate.
            "--hypothesis-suppress-health-check",
            "all",
            "--data-generation-method",
            "all",
            "--request-timeout",
            "15000",
            "--validate-schema",
            "true",
            "--no-color",
        ])
        .stdin(Stdio::null());
    let child = spawn(st);
    let out = child.finish(Duration::from_secs(110));
    assert_eq!(
        out.status, 0,
        "schemathesis found problems:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("passed"), "{}", out.stdout);
    assert!(
        !srv.stderr().contains("panicked"),
        "the server panicked:\n{}",
        srv.stderr()
    );
    assert_absent(&srv.stderr(), &[&alice], "the server's stderr");
}
