//! The `http` audit sink (issue 5 item 4) against local receivers that implement the documented
//! shapes strictly and answer 400 to anything malformed: a generic NDJSON endpoint, Splunk HEC's
//! `/services/collector/event` and Loki's `/loki/api/v1/push`. Logs are written by the real
//! binary; delivery goes through `gate::audit::sinks::push`, which owns cursors and retries.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::Gate;
use gate::audit::sinks::{self, Report, Sink};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TOKEN: &str = "tok-7f3a9c1e-do-not-leak";
const WRONG: &str = "wrong-51d2b8e4-do-not-leak";

/// Token files for `file:` secret references (no process-wide environment changes needed).
fn token_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("token"), TOKEN).unwrap();
        std::fs::write(d.path().join("wrong"), WRONG).unwrap();
        d
    })
    .path()
}

fn token_ref() -> String {
    format!("file:{}", token_dir().join("token").display())
}

fn wrong_ref() -> String {
    format!("file:{}", token_dir().join("wrong").display())
}

/// Kept so every test still starts the same way.
fn init() {
    let _ = token_dir();
}

const POLICY: &str = r#"version: 1
rules:
  - name: no-rm
    match: { program: rm }
    decision: deny
"#;

/// A log written by the real binary: `runs` allowed commands (whose argv holds characters JSON
/// escapes: quotes, a backslash, a tab, a newline, non-ASCII) and one denied command.
fn make_log(runs: usize) -> Gate {
    let g = Gate::new().policy(POLICY);
    for i in 0..runs {
        let arg = format!("run {i}: \"quoted\" back\\slash\ttab\nnewline é ✓ /path");
        let out = g
            .command()
            .args(["--", "true", &arg])
            .output()
            .expect("spawn gate");
        assert!(
            out.status.success(),
            "gate -- true: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = g
        .command()
        .args(["--", "rm", "-rf", "/nonexistent-gate-test"])
        .output()
        .expect("spawn gate");
    assert!(!out.status.success(), "the denied command ran");
    g
}

fn log_lines(g: &Gate) -> Vec<String> {
    std::fs::read_to_string(g.path("audit.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn build(spec: Value) -> Result<Vec<Box<dyn Sink>>, String> {
    let spec: gate::policy::SinkSpec = serde_json::from_value(spec).map_err(|e| e.to_string())?;
    sinks::build(&|_| None, &[spec]).map_err(|e| e.to_string())
}

fn push(g: &Gate, sinks: &mut [Box<dyn Sink>], within: Duration) -> Report {
    let mut reports = sinks::push(&g.path("audit.jsonl"), sinks, Instant::now() + within);
    assert_eq!(reports.len(), 1);
    let r = reports.remove(0);
    no_secret(r.error.as_deref().unwrap_or_default());
    r
}

#[track_caller]
fn no_secret(s: &str) {
    assert!(
        !s.contains(TOKEN) && !s.contains(WRONG),
        "a token leaked into a message: {s}"
    );
}

/// Every record of the log arrived, in order, each exactly as its canonical line (duplicates,
/// which at-least-once delivery allows, are dropped by hash first). Returns the duplicates.
#[track_caller]
fn assert_delivered_in_order(received: &[String], log: &[String]) -> usize {
    let mut seen = BTreeSet::new();
    let mut unique = Vec::new();
    for line in received {
        let v: Value = serde_json::from_str(line).unwrap();
        if seen.insert(v["hash"].as_str().unwrap().to_owned()) {
            unique.push(line.clone());
        }
    }
    assert_eq!(unique.len(), log.len(), "records delivered vs in the log");
    for (i, (got, want)) in unique.iter().zip(log).enumerate() {
        assert_eq!(got, want, "record {i} differs from the log's line");
    }
    received.len() - unique.len()
}

// ---------------------------------------------------------------------------------------------
// Strict receivers.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ndjson,
    Splunk,
    Loki,
}

/// A response forced before validation.
enum Scripted {
    /// Answer this status (with `Retry-After` if given) and keep nothing.
    Status(u16, Option<&'static str>),
    /// Validate and keep the records, then answer this status (a lost acknowledgement).
    KeepThen(u16),
}

#[derive(Default)]
struct Book {
    script: VecDeque<Scripted>,
    /// Per kept request, its records' lines (as rebuilt from the payload) in payload order.
    kept: Vec<Vec<String>>,
    /// When each request came and what it was answered.
    hits: Vec<(Instant, u16)>,
    /// Why requests were refused (a malformed payload fails the test through these).
    refused: Vec<String>,
}

struct Expect {
    kind: Kind,
    token: Option<&'static str>,
    /// Splunk: the envelope's expected `index`.
    index: Option<&'static str>,
    /// Loki: extra labels every stream must carry.
    labels: BTreeMap<&'static str, &'static str>,
}

struct Receiver {
    addr: SocketAddr,
    book: Arc<Mutex<Book>>,
}

impl Receiver {
    fn start(expect: Expect, port: u16) -> Receiver {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let book = Arc::new(Mutex::new(Book::default()));
        let state = Arc::new((expect, book.clone()));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        Receiver { addr, book }
    }

    fn script(&self, s: Scripted) {
        self.book.lock().unwrap().script.push_back(s);
    }

    fn received(&self) -> Vec<String> {
        self.book.lock().unwrap().kept.concat()
    }

    fn statuses(&self) -> Vec<u16> {
        self.book.lock().unwrap().hits.iter().map(|h| h.1).collect()
    }

    #[track_caller]
    fn assert_nothing_refused(&self) {
        let b = self.book.lock().unwrap();
        assert!(
            b.refused.is_empty(),
            "the receiver refused payloads: {:#?}",
            b.refused
        );
    }
}

type Shared = Arc<(Expect, Arc<Mutex<Book>>)>;

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (expect, book) = &*state;
    let mut book = book.lock().unwrap();
    let now = Instant::now();
    let scripted = book.script.pop_front();
    if let Some(Scripted::Status(code, ra)) = scripted {
        book.hits.push((now, code));
        let mut r = (
            StatusCode::from_u16(code).unwrap(),
            r#"{"text":"scripted","code":9}"#,
        )
            .into_response();
        if let Some(ra) = ra {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static(ra));
        }
        return r;
    }
    let checked = if method != Method::POST {
        Err((405, format!("method {method}")))
    } else {
        match expect.kind {
            Kind::Ndjson => check_ndjson(expect, &uri, &headers, &body),
            Kind::Splunk => check_splunk(expect, &uri, &headers, &body),
            Kind::Loki => check_loki(expect, &uri, &headers, &body),
        }
    };
    match checked {
        Ok(lines) => {
            book.kept.push(lines);
            let code = match scripted {
                Some(Scripted::KeepThen(code)) => code,
                _ => 200,
            };
            book.hits.push((now, code));
            let body = if expect.kind == Kind::Splunk {
                r#"{"text":"Success","code":0}"#
            } else {
                ""
            };
            (StatusCode::from_u16(code).unwrap(), body).into_response()
        }
        Err((code, why)) => {
            book.hits.push((now, code));
            book.refused.push(format!("{code}: {why}"));
            (
                StatusCode::from_u16(code).unwrap(),
                json!({ "text": why, "code": 6 }).to_string(),
            )
                .into_response()
        }
    }
}

type Checked = Result<Vec<String>, (u16, String)>;

fn bad(why: impl Into<String>) -> (u16, String) {
    (400, why.into())
}

fn check_auth(headers: &HeaderMap, scheme: &str, token: Option<&str>) -> Result<(), (u16, String)> {
    let Some(token) = token else { return Ok(()) };
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Err((401, "Token is required".into())),
        Some(v) if v == format!("{scheme} {token}") => Ok(()),
        Some(_) => Err((403, "Invalid token".into())),
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The record's `ts` in milliseconds since the epoch.
fn ts_ms(record: &Value) -> Result<u128, (u16, String)> {
    let ts = record["ts"]
        .as_str()
        .ok_or_else(|| bad("a record without ts"))?;
    let t = humantime::parse_rfc3339(ts).map_err(|e| bad(format!("ts {ts}: {e}")))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
}

/// A record line: a JSON object with a 64-hex `hash`, serialized canonically (as it was read).
fn check_record_line(line: &str) -> Result<Value, (u16, String)> {
    let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("a line that is not a JSON object"));
    }
    let hash = v["hash"].as_str().unwrap_or_default();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("a record without a hash"));
    }
    Ok(v)
}

fn check_ndjson(expect: &Expect, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Checked {
    if uri.path() != "/ingest" {
        return Err((404, format!("no route {}", uri.path())));
    }
    if content_type(headers) != "application/x-ndjson" {
        return Err((415, format!("content type {:?}", content_type(headers))));
    }
    check_auth(headers, "Bearer", expect.token)?;
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
    if text.is_empty() || !text.ends_with('\n') {
        return Err(bad("NDJSON must be non-empty lines each ending in \\n"));
    }
    let mut lines = Vec::new();
    let mut key = Sha256::new();
    let mut seqs = Vec::new();
    for line in text.split_terminator('\n') {
        let v = check_record_line(line)?;
        if serde_json::to_string(&v).unwrap() != line {
            return Err(bad("a line is not in its canonical form"));
        }
        key.update(v["hash"].as_str().unwrap().as_bytes());
        key.update(b"\n");
        seqs.push(
            v["seq"]
                .as_u64()
                .ok_or_else(|| bad("a record without seq"))?,
        );
        lines.push(line.to_owned());
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("idempotency-key") != hex::encode(key.finalize()) {
        return Err(bad(
            "Idempotency-Key is not the SHA-256 of the batch's hashes",
        ));
    }
    if header("gate-seq") != format!("{}-{}", seqs[0], seqs[seqs.len() - 1]) {
        return Err(bad(format!(
            "Gate-Seq {:?} does not match the body",
            header("gate-seq")
        )));
    }
    let log_id: Value = serde_json::from_str(&lines[0]).unwrap();
    if header("gate-log-id") != log_id["log_id"].as_str().unwrap_or("-") {
        return Err(bad("Gate-Log-Id does not match the records"));
    }
    Ok(lines)
}

const HEC_KEYS: &[&str] = &[
    "time",
    "host",
    "source",
    "sourcetype",
    "index",
    "event",
    "fields",
];

fn check_splunk(expect: &Expect, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Checked {
    if uri.path() != "/services/collector/event" {
        return Err((404, format!("no route {}", uri.path())));
    }
    check_auth(headers, "Splunk", expect.token)?;
    let mut lines = Vec::new();
    for env in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        let env = env.map_err(|e| bad(format!("Invalid data format: {e}")))?;
        let obj = env
            .as_object()
            .ok_or_else(|| bad("an envelope that is not an object"))?;
        if let Some(k) = obj.keys().find(|k| !HEC_KEYS.contains(&k.as_str())) {
            return Err(bad(format!("unknown envelope key `{k}`")));
        }
        let event = obj
            .get("event")
            .ok_or_else(|| bad("Event field is required"))?;
        if !event.is_object() {
            return Err(bad("gate's events are objects"));
        }
        for k in ["host", "source", "sourcetype", "index"] {
            if obj.get(k).is_some_and(|v| !v.is_string()) {
                return Err(bad(format!("`{k}` must be a string")));
            }
        }
        let time_ms: u128 = match obj.get("time") {
            Some(Value::Number(n)) => (n.as_f64().unwrap() * 1000.0).round() as u128,
            Some(Value::String(s)) => {
                let f: f64 = s
                    .parse()
                    .map_err(|_| bad(format!("time {s:?} is not epoch seconds")))?;
                (f * 1000.0).round() as u128
            }
            _ => return Err(bad("`time` must be epoch seconds")),
        };
        let fields = obj
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("gate sends `fields`"))?;
        if let Some((k, _)) = fields.iter().find(|(_, v)| !v.is_string()) {
            return Err(bad(format!("indexed field `{k}` is not a string")));
        }
        let line = serde_json::to_string(event).unwrap();
        let record = check_record_line(&line)?;
        if time_ms != ts_ms(&record)? {
            return Err(bad("`time` is not the record's ts"));
        }
        let want_fields = [
            ("seq", Value::from(record["seq"].to_string())),
            ("hash", record["hash"].clone()),
            ("log_id", record["log_id"].clone()),
            ("kind", record["kind"].clone()),
        ];
        for (k, v) in want_fields {
            if fields.get(k) != Some(&v) {
                return Err(bad(format!("field `{k}` is {:?}, not {v}", fields.get(k))));
            }
        }
        if obj.get("source") != Some(&json!("gate"))
            || obj.get("sourcetype") != Some(&json!("gate:audit"))
        {
            return Err(bad("source/sourcetype are not gate's"));
        }
        if obj.get("index").and_then(Value::as_str) != expect.index {
            return Err(bad(format!("index {:?}", obj.get("index"))));
        }
        if obj
            .get("host")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad("no host"));
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(bad("No data"));
    }
    Ok(lines)
}

const FORBIDDEN_LABELS: &[&str] = &["request_id", "seq", "hash", "prev", "ts"];

fn check_loki(expect: &Expect, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Checked {
    if uri.path() != "/loki/api/v1/push" {
        return Err((404, format!("no route {}", uri.path())));
    }
    if content_type(headers) != "application/json" {
        return Err((415, format!("content type {:?}", content_type(headers))));
    }
    check_auth(headers, "Bearer", expect.token)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
    if obj.len() != 1 {
        return Err(bad("a push request holds `streams` only"));
    }
    let streams = obj
        .get("streams")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no streams"))?;
    let mut seen_sets = BTreeSet::new();
    let mut kept: Vec<(u64, String)> = Vec::new();
    for s in streams {
        let s = s
            .as_object()
            .ok_or_else(|| bad("a stream that is not an object"))?;
        if s.len() != 2 || !s.contains_key("stream") || !s.contains_key("values") {
            return Err(bad("a stream holds `stream` and `values` only"));
        }
        let labels = s["stream"]
            .as_object()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("`stream` must be a non-empty object"))?;
        for (k, v) in labels {
            let valid = !k.is_empty()
                && k.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
            if !valid || k.starts_with("__") {
                return Err(bad(format!("invalid label name {k:?}")));
            }
            if FORBIDDEN_LABELS.contains(&k.as_str()) {
                return Err(bad(format!("high-cardinality label `{k}`")));
            }
            if v.as_str().is_none_or(str::is_empty) {
                return Err(bad(format!("label `{k}` is not a non-empty string")));
            }
        }
        if labels.get("job") != Some(&json!("gate")) || !labels.contains_key("host") {
            return Err(bad("streams carry job=gate and host"));
        }
        for (k, v) in &expect.labels {
            if labels.get(*k) != Some(&json!(v)) {
                return Err(bad(format!("label `{k}` missing")));
            }
        }
        if !seen_sets.insert(serde_json::to_string(labels).unwrap()) {
            return Err(bad("two streams with the same labels in one push"));
        }
        let values = s["values"]
            .as_array()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("`values` must be a non-empty array"))?;
        let mut last_ns = 0u128;
        for entry in values {
            let pair = entry
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| bad("a value is [ns, line]"))?;
            let (Some(ns), Some(line)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Err(bad("timestamp and line must both be strings"));
            };
            if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("timestamp {ns:?} is not an integer string")));
            }
            let ns: u128 = ns.parse().map_err(|_| bad("timestamp out of range"))?;
            if ns < last_ns {
                return Err(bad("values are not sorted by time"));
            }
            last_ns = ns;
            let record = check_record_line(line)?;
            if ns != ts_ms(&record)? * 1_000_000 {
                return Err(bad("the timestamp is not the record's ts in nanoseconds"));
            }
            if labels.get("kind") != Some(&record["kind"])
                || labels.get("log_id") != Some(&record["log_id"])
            {
                return Err(bad("a line in the wrong stream"));
            }
            kept.push((record["seq"].as_u64().unwrap(), line.to_owned()));
        }
    }
    // Streams lose the order across kinds; the records' seq restores it.
    kept.sort_by_key(|(seq, _)| *seq);
    Ok(kept.into_iter().map(|(_, l)| l).collect())
}

fn ndjson(token: Option<&'static str>) -> Expect {
    Expect {
        kind: Kind::Ndjson,
        token,
        index: None,
        labels: BTreeMap::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn ndjson_delivers_a_real_log_in_order_and_resumes_from_the_cursor() {
    init();
    // 2 records a run, a genesis and a denial: more than one batch of 200.
    let g = make_log(110);
    let rx = Receiver::start(ndjson(Some(TOKEN)), 0);
    // The first batch is kept but its acknowledgement lost: it is sent again.
    rx.script(Scripted::KeepThen(500));
    let url = format!("http://{}/ingest", rx.addr);
    let mut s = build(json!({ "kind": "http", "url": url, "token": token_ref() })).unwrap();
    let log = log_lines(&g);
    assert!(log.len() > 200);
    let r = push(&g, &mut s, Duration::from_secs(20));
    assert_eq!(
        (r.error.as_deref(), r.delivered, r.pending),
        (None, log.len() as u64, 0),
        "{r:?}"
    );
    rx.assert_nothing_refused();
    let dups = assert_delivered_in_order(&rx.received(), &log);
    assert_eq!(
        dups, 200,
        "the batch whose acknowledgement was lost came twice"
    );
    assert_eq!(rx.statuses(), [500, 200, 200]);

    // Two more records: only those go out.
    let out = g.command().args(["--", "true"]).output().unwrap();
    assert!(out.status.success());
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert_eq!(
        (r.error.as_deref(), r.delivered, r.pending),
        (None, 2, 0),
        "{r:?}"
    );
    let log = log_lines(&g);
    assert_eq!(
        rx.book.lock().unwrap().kept.last().unwrap(),
        &log[log.len() - 2..]
    );
    assert_delivered_in_order(&rx.received(), &log);
    let c = sinks::read_cursor(&g.path("audit.jsonl"), s[0].name());
    assert_eq!(c.next, log.len() as u64);
}

#[test]
fn splunk_hec_envelopes_400_is_permanent_and_503_is_retried() {
    init();
    let g = make_log(12);
    let log = log_lines(&g);
    let expect = Expect {
        kind: Kind::Splunk,
        token: Some(TOKEN),
        index: Some("audit"),
        labels: BTreeMap::new(),
    };
    let rx = Receiver::start(expect, 0);
    // A base URL: the sink appends /services/collector/event.
    let spec = json!({
        "kind": "http", "preset": "splunk-hec", "url": format!("http://{}/", rx.addr),
        "token": token_ref(), "labels": { "index": "audit" },
    });
    let mut s = build(spec.clone()).unwrap();
    let name = s[0].name().to_owned();
    let cursor = || sinks::read_cursor(&g.path("audit.jsonl"), &name);

    // 400: not retried, nothing counted as delivered, the cursor stays.
    rx.script(Scripted::Status(400, None));
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert!(r.permanent, "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("400"), "{r:?}");
    assert_eq!((r.delivered, r.pending), (0, log.len() as u64));
    assert_eq!(rx.statuses(), [400], "a 4xx is not retried");
    assert_eq!(cursor().next, 0);

    // 503 twice, then accepted: retried within the same push and delivered in order.
    rx.script(Scripted::Status(503, None));
    rx.script(Scripted::Status(503, Some("0")));
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert_eq!(
        (r.error.as_deref(), r.delivered, r.pending),
        (None, log.len() as u64, 0),
        "{r:?}"
    );
    assert_eq!(rx.statuses(), [400, 503, 503, 200]);
    rx.assert_nothing_refused();
    assert_delivered_in_order(&rx.received(), &log);
    assert_eq!(cursor().next, log.len() as u64);

    // A wrong token: 403, permanent, and neither token in the message.
    let g2 = make_log(1);
    let mut wrong = spec.clone();
    wrong["token"] = json!(wrong_ref());
    let mut s2 = build(wrong).unwrap();
    let r = push(&g2, &mut s2, Duration::from_secs(10));
    assert!(
        r.permanent && r.error.as_deref().unwrap().contains("403"),
        "{r:?}"
    );
    assert_eq!(r.delivered, 0);

    // The full endpoint URL is kept as it is.
    let mut full = spec;
    full["url"] = json!(format!("http://{}/services/collector/event", rx.addr));
    let mut s3 = build(full).unwrap();
    let r = push(&g2, &mut s3, Duration::from_secs(10));
    assert_eq!(
        (r.error.as_deref(), r.delivered),
        (None, log_lines(&g2).len() as u64),
        "{r:?}"
    );
}

#[test]
fn loki_streams_and_retry_after_is_honoured() {
    init();
    let g = make_log(10);
    let log = log_lines(&g);
    let expect = Expect {
        kind: Kind::Loki,
        token: Some(TOKEN),
        index: None,
        labels: BTreeMap::from([("env", "ci")]),
    };
    let rx = Receiver::start(expect, 0);
    rx.script(Scripted::Status(429, Some("1")));
    let spec = json!({
        "kind": "http", "preset": "loki", "url": format!("http://{}", rx.addr),
        "token": token_ref(), "labels": { "env": "ci" },
    });
    let mut s = build(spec).unwrap();
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert_eq!(
        (r.error.as_deref(), r.delivered, r.pending),
        (None, log.len() as u64, 0),
        "{r:?}"
    );
    rx.assert_nothing_refused();
    let hits = rx.book.lock().unwrap().hits.clone();
    assert_eq!(hits.iter().map(|h| h.1).collect::<Vec<_>>(), [429, 200]);
    let waited = hits[1].0 - hits[0].0;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, not after Retry-After: 1"
    );
    assert!(waited < Duration::from_secs(3), "retried after {waited:?}");
    assert_delivered_in_order(&rx.received(), &log);

    // A label that would make a stream per record is refused when the sink is built.
    for bad in ["request_id", "seq", "hash"] {
        let e = build(json!({ "kind": "http", "preset": "loki", "url": "http://127.0.0.1:9", "labels": { bad: "x" } }))
            .err()
            .unwrap();
        assert!(e.contains(bad) && e.contains("cardinality"), "{e}");
    }
}

#[test]
fn loki_server_errors_are_retried_and_client_errors_are_not() {
    init();
    let g = make_log(2);
    let log = log_lines(&g);
    let rx = Receiver::start(
        Expect {
            kind: Kind::Loki,
            token: None,
            index: None,
            labels: BTreeMap::new(),
        },
        0,
    );
    let mut s = build(json!({ "kind": "http", "preset": "loki", "url": format!("http://{}/loki/api/v1/push", rx.addr) })).unwrap();
    rx.script(Scripted::Status(400, None));
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert!(r.permanent && r.delivered == 0, "{r:?}");
    rx.script(Scripted::Status(502, Some("0")));
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert_eq!(
        (r.error.as_deref(), r.delivered),
        (None, log.len() as u64),
        "{r:?}"
    );
    assert_eq!(rx.statuses(), [400, 502, 200]);
    assert_delivered_in_order(&rx.received(), &log);
}

#[test]
fn receiver_down_keeps_the_backlog_and_delivers_it_in_order_once_up() {
    init();
    let g = make_log(8);
    let log = log_lines(&g);
    // A port nothing listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = json!({ "kind": "http", "url": format!("http://127.0.0.1:{port}/ingest"), "token": token_ref() });
    let mut s = build(spec).unwrap();
    // Nothing listens: the push ends with a transient error and keeps everything (that it
    // ends by its deadline is a_silent_receiver_times_out_at_the_deadline's to show).
    let r = push(&g, &mut s, Duration::from_millis(1500));
    assert!(!r.permanent && r.error.is_some(), "{r:?}");
    assert_eq!((r.delivered, r.pending), (0, log.len() as u64));
    assert_eq!(
        sinks::read_cursor(&g.path("audit.jsonl"), s[0].name()).next,
        0
    );

    // More records while it is down, then it comes up: the whole backlog goes, in order.
    let out = g.command().args(["--", "true"]).output().unwrap();
    assert!(out.status.success());
    let log = log_lines(&g);
    let rx = Receiver::start(ndjson(Some(TOKEN)), port);
    let r = push(&g, &mut s, Duration::from_secs(10));
    assert_eq!(
        (r.error.as_deref(), r.delivered, r.pending),
        (None, log.len() as u64, 0),
        "{r:?}"
    );
    rx.assert_nothing_refused();
    assert_eq!(assert_delivered_in_order(&rx.received(), &log), 0);
}

#[test]
fn configuration_errors_name_the_problem_and_never_the_token() {
    init();
    let token = token_ref();
    let cases = [
        (
            json!({ "kind": "http", "url": "http://127.0.0.1:9", "preset": "elastic", "token": token }),
            "unknown http preset",
        ),
        (
            json!({ "kind": "http", "url": "ftp://127.0.0.1/x", "token": token }),
            "http:// or https://",
        ),
        (
            json!({ "kind": "http", "url": "not a url", "token": token }),
            "not a valid URL",
        ),
        (
            json!({ "kind": "http", "url": "http://127.0.0.1:9", "labels": { "env": "ci" }, "token": token }),
            "`labels`",
        ),
        (
            json!({ "kind": "http", "preset": "loki", "url": "http://127.0.0.1:9", "labels": { "kind": "x" } }),
            "set by gate",
        ),
        (
            json!({ "kind": "http", "preset": "splunk-hec", "url": "http://127.0.0.1:9", "labels": { "hash": "x" } }),
            "set by gate",
        ),
        (
            json!({ "kind": "http", "url": "http://127.0.0.1:9", "token": "env:GATE_TEST_SINK_HTTP_UNSET" }),
            "not set",
        ),
    ];
    for (spec, needle) in cases {
        let e = build(spec.clone())
            .err()
            .unwrap_or_else(|| panic!("{spec} was accepted"));
        assert!(e.contains(needle), "{spec}: {e}");
        no_secret(&e);
    }
    // The sink's Debug shows no token either.
    let s = gate::audit::sinks::http::HttpSink::new(
        "n".into(),
        "https://user:pw@example.invalid/x?q=1",
        Some("splunk-hec"),
        Some(gate::server::auth::Token::new(TOKEN.into())),
        BTreeMap::new(),
    )
    .unwrap();
    let dbg = format!("{s:?}");
    no_secret(&dbg);
    assert!(
        dbg.contains("https://example.invalid/x/services/collector/event") && !dbg.contains("pw"),
        "{dbg}"
    );
}

/// An endpoint that never answers: the request gives up at its deadline (a transient error)
/// while the receiver still holds the connection open: an order of events, not a stopwatch.
#[test]
fn a_silent_receiver_times_out_at_the_deadline() {
    init();
    let g = make_log(1);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (returned, push_returned) = std::sync::mpsc::channel::<()>();
    // Holds the accepted connection until the push has returned (or, if the push never gives
    // up on its own, until the hang limit, after which the answer below is a failure).
    let hold = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).collect();
        let gave_up_first = push_returned.recv_timeout(common::process::HANG).is_ok();
        drop(conns);
        gave_up_first
    });
    let mut s = build(
        json!({ "kind": "http", "url": format!("http://{addr}/ingest"), "token": token_ref() }),
    )
    .unwrap();
    let r = push(&g, &mut s, Duration::from_millis(800));
    let _ = returned.send(());
    assert!(
        !r.permanent && r.error.is_some() && r.delivered == 0,
        "{r:?}"
    );
    assert!(
        hold.join().unwrap(),
        "the push waited for the receiver to hang up instead of giving up at its deadline"
    );
}

/// The receivers are strict: each documented rule, broken once, is refused.
#[test]
fn the_receivers_refuse_malformed_payloads() {
    init();
    let g = make_log(1);
    let line = log_lines(&g)[1].clone();
    let record: Value = serde_json::from_str(&line).unwrap();
    let ns = (ts_ms(&record).unwrap() * 1_000_000).to_string();
    let http = reqwest::blocking::Client::new();
    let send = |rx: &Receiver, path: &str, auth: &str, ctype: &str, body: String| {
        http.post(format!("http://{}{path}", rx.addr))
            .header("authorization", auth)
            .header("content-type", ctype)
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };

    let splunk = Receiver::start(
        Expect {
            kind: Kind::Splunk,
            token: Some(TOKEN),
            index: None,
            labels: BTreeMap::new(),
        },
        0,
    );
    let hec = format!("Splunk {TOKEN}");
    let path = "/services/collector/event";
    let fields = json!({ "seq": record["seq"].to_string(), "hash": record["hash"], "log_id": record["log_id"], "kind": record["kind"] });
    let t = format!(
        "{}.{:03}",
        ts_ms(&record).unwrap() / 1000,
        ts_ms(&record).unwrap() % 1000
    );
    let good = format!(
        r#"{{"time":{t},"host":"h","source":"gate","sourcetype":"gate:audit","event":{line},"fields":{fields}}}"#
    );
    assert_eq!(
        send(&splunk, path, &hec, "application/json", good.clone()),
        200
    );
    let string_time = good.replace(&format!(r#""time":{t}"#), &format!(r#""time":"{t}""#));
    assert_eq!(
        send(&splunk, path, &hec, "application/json", string_time),
        200
    );
    for (body, why) in [
        (
            good.replace(r#""host":"h""#, r#""host":"h","extra":1"#),
            "unknown key",
        ),
        (good.replace(&format!(r#","event":{line}"#), ""), "no event"),
        (
            good.replace(&format!(r#""time":{t}"#), r#""time":"soon""#),
            "time not numeric",
        ),
        (
            good.replace(r#""sourcetype":"gate:audit""#, r#""sourcetype":7"#),
            "non-string sourcetype",
        ),
        (format!("{good}{{"), "truncated"),
        (String::new(), "empty"),
    ] {
        assert_eq!(
            send(&splunk, path, &hec, "application/json", body),
            400,
            "{why}"
        );
    }
    assert_eq!(
        send(
            &splunk,
            path,
            &format!("Bearer {TOKEN}"),
            "application/json",
            good.clone()
        ),
        403
    );
    assert_eq!(
        send(
            &splunk,
            "/services/collector/raw",
            &hec,
            "application/json",
            good
        ),
        404
    );

    let loki = Receiver::start(
        Expect {
            kind: Kind::Loki,
            token: None,
            index: None,
            labels: BTreeMap::new(),
        },
        0,
    );
    let stream =
        json!({ "job": "gate", "host": "h", "kind": record["kind"], "log_id": record["log_id"] });
    let push = |stream: &Value, values: Value| {
        json!({ "streams": [{ "stream": stream, "values": values }] }).to_string()
    };
    let path = "/loki/api/v1/push";
    assert_eq!(
        send(
            &loki,
            path,
            "",
            "application/json",
            push(&stream, json!([[ns, line]]))
        ),
        200
    );
    let mut high = stream.clone();
    high["request_id"] = json!("r");
    let earlier = (ts_ms(&record).unwrap() * 1_000_000 - 1).to_string();
    for (body, why) in [
        (push(&high, json!([[ns, line]])), "high-cardinality label"),
        (
            push(&stream, json!([[ns.parse::<u64>().unwrap(), line]])),
            "ns as a number",
        ),
        (
            push(&stream, json!([[format!("{ns}.5"), line]])),
            "ns not an integer",
        ),
        (
            push(&stream, json!([[ns, line], [earlier, line]])),
            "unsorted",
        ),
        (push(&stream, json!([[ns, line, {}]])), "three elements"),
        (
            push(&json!({ "job": "gate", "host": 1 }), json!([[ns, line]])),
            "non-string label",
        ),
        (json!({ "streams": [], "x": 1 }).to_string(), "extra key"),
    ] {
        assert_eq!(
            send(&loki, path, "", "application/json", body),
            400,
            "{why}"
        );
    }
    assert_eq!(
        send(
            &loki,
            path,
            "",
            "text/plain",
            push(&stream, json!([[ns, line]]))
        ),
        415
    );

    let nd = Receiver::start(ndjson(None), 0);
    assert_eq!(
        send(&nd, "/ingest", "", "application/json", format!("{line}\n")),
        415
    );
    assert_eq!(
        send(&nd, "/ingest", "", "application/x-ndjson", "[1]\n".into()),
        400
    );
    assert_eq!(
        send(&nd, "/ingest", "", "application/x-ndjson", line.clone()),
        400,
        "no final newline"
    );
}
