//! The `http` sink: each batch of records in one POST, in one of three shapes (docs/sinks-http.md).
//!
//! - `ndjson` (default): the canonical lines as `application/x-ndjson`, `Authorization: Bearer`.
//! - `splunk-hec`: HEC event envelopes to `/services/collector/event`, `Authorization: Splunk`.
//! - `loki`: a push request to `/loki/api/v1/push`, one stream per low-cardinality label set,
//!   nanosecond timestamps as strings.
//!
//! Delivery is at-least-once: a batch whose acknowledgement is lost is sent again, so receivers
//! deduplicate by the record's `hash` (the same in every shape). Redirects are not followed (a
//! redirect would carry the token to another URL); the token never appears in a message.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use sha2::{Digest, Sha256};

use super::{DeliverCtx, Pending, Sink, SinkError};
use crate::http::retry_after;
use crate::secrets::Token;

const SPLUNK_PATH: &str = "/services/collector/event";
const LOKI_PATH: &str = "/loki/api/v1/push";

/// Labels that would give every record its own stream (Loki) and that gate therefore refuses.
const HIGH_CARDINALITY: &[&str] = &["request_id", "seq", "hash", "prev", "ts", "digest", "id"];

/// Envelope keys the Splunk preset takes from `labels`; any other label becomes an indexed field.
const SPLUNK_ENVELOPE: &[&str] = &["host", "index", "source", "sourcetype"];

/// Indexed fields gate sets on every Splunk event.
const SPLUNK_FIELDS: &[&str] = &["seq", "hash", "log_id", "kind"];

/// Loki labels gate sets from each record.
const LOKI_RECORD_LABELS: &[&str] = &["kind", "log_id"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preset {
    Ndjson,
    SplunkHec,
    Loki,
}

impl Preset {
    fn as_str(self) -> &'static str {
        match self {
            Preset::Ndjson => "ndjson",
            Preset::SplunkHec => "splunk-hec",
            Preset::Loki => "loki",
        }
    }
}

pub struct HttpSink {
    name: String,
    preset: Preset,
    /// The endpoint requests go to (the preset's path appended when the URL was a base).
    url: Url,
    /// The endpoint as messages show it: no user info, no query.
    shown: String,
    token: Option<Token>,
    labels: BTreeMap<String, String>,
    host: String,
    /// Built on first delivery, then reused (keeps connections alive across batches).
    client: Option<reqwest::blocking::Client>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("name", &self.name)
            .field("preset", &self.preset)
            .field("url", &self.shown)
            .field("token", &self.token)
            .field("labels", &self.labels)
            .finish()
    }
}

/// An http sink the policy describes wrongly. No variant holds the URL: it may carry
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum HttpConfigError {
    #[error("unknown http preset `{0}` (presets: ndjson, splunk-hec, loki)")]
    Preset(String),
    /// The parser's reason (`url::ParseError`, which reqwest does not re-export).
    #[error("`url` is not a valid URL: {0}")]
    Url(String),
    #[error("`url` must be an http:// or https:// URL with a host")]
    NotHttp,
    #[error("`labels` applies to the splunk-hec and loki presets only")]
    LabelsWithoutPreset,
    #[error("label `{0}` is set by gate on every event")]
    SplunkReserved(String),
    #[error("label `{0}`: Splunk field names must not be empty or start with `_`")]
    SplunkName(String),
    #[error("label `{0}`: Loki label names are [a-zA-Z_][a-zA-Z0-9_]* and do not start with `__`")]
    LokiName(String),
    #[error(
        "label `{0}` would make a stream per record (high cardinality); it is in each line instead"
    )]
    HighCardinality(String),
    #[error("label `{0}` is set by gate from each record")]
    LokiReserved(String),
    #[error("label `{0}` has an empty value (Loki drops it)")]
    EmptyValue(String),
    #[error("the token is empty or holds control characters")]
    BadToken,
}

impl HttpSink {
    pub fn new(
        name: String,
        url: &str,
        preset: Option<&str>,
        token: Option<Token>,
        labels: BTreeMap<String, String>,
    ) -> Result<Self, HttpConfigError> {
        let preset = match preset.unwrap_or("ndjson") {
            "ndjson" => Preset::Ndjson,
            "splunk-hec" => Preset::SplunkHec,
            "loki" => Preset::Loki,
            other => return Err(HttpConfigError::Preset(other.to_owned())),
        };
        // The URL is not echoed: it may carry credentials.
        let mut url = Url::parse(url).map_err(|e| HttpConfigError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(HttpConfigError::NotHttp);
        }
        match preset {
            Preset::Ndjson => {}
            Preset::SplunkHec => url.set_path(&endpoint_path(
                url.path(),
                SPLUNK_PATH,
                Some("/services/collector"),
            )),
            Preset::Loki => url.set_path(&endpoint_path(url.path(), LOKI_PATH, None)),
        }
        check_labels(preset, &labels)?;
        if token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty() || t.expose().chars().any(|c| c.is_control()))
        {
            return Err(HttpConfigError::BadToken);
        }
        let host = labels
            .get("host")
            .cloned()
            .unwrap_or_else(crate::identity::host_name);
        let shown = shown_url(&url);
        Ok(HttpSink {
            name,
            preset,
            url,
            shown,
            token,
            labels,
            host,
            client: None,
        })
    }

    /// Replaces the token wherever it might have been echoed back.
    fn scrub(&self, s: String) -> String {
        match &self.token {
            Some(t) if !t.expose().is_empty() && s.contains(t.expose()) => {
                s.replace(t.expose(), "<redacted>")
            }
            _ => s,
        }
    }

    fn client(&mut self) -> Result<reqwest::blocking::Client, SinkError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                SinkError::Permanent(format!(
                    "{}: cannot set up an HTTP client: {}",
                    self.shown,
                    chain(&e)
                ))
            })?;
        self.client = Some(c.clone());
        Ok(c)
    }

    fn ndjson_body(batch: &[Pending]) -> String {
        let mut body = String::with_capacity(batch.iter().map(|p| p.line.len() + 1).sum());
        for p in batch {
            body.push_str(&p.line);
            body.push('\n');
        }
        body
    }

    /// Concatenated HEC event envelopes. `event` is the canonical line itself (an object, no
    /// floats); `time` is written as a decimal literal `<secs>.<ms>`, never computed as a float.
    fn splunk_body(&self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> String {
        let label = |k: &str, default: &str| {
            self.labels
                .get(k)
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        let (source, sourcetype) = (label("source", "gate"), label("sourcetype", "gate:audit"));
        let index = self.labels.get("index");
        let mut body = String::new();
        let mut last = None;
        for p in batch {
            let ms = record_ms(p, last);
            last = Some(ms);
            let mut fields = serde_json::Map::new();
            fields.insert("seq".into(), p.seq.to_string().into());
            fields.insert("hash".into(), p.hash.clone().into());
            fields.insert(
                "log_id".into(),
                p.record["log_id"].as_str().unwrap_or(ctx.log_id).into(),
            );
            fields.insert(
                "kind".into(),
                p.record["kind"].as_str().unwrap_or_default().into(),
            );
            for (k, v) in &self.labels {
                if !SPLUNK_ENVELOPE.contains(&k.as_str()) {
                    fields.insert(k.clone(), v.clone().into());
                }
            }
            let _ = write!(
                body,
                "{{\"time\":{}.{:03},\"host\":{},\"source\":{},\"sourcetype\":{},",
                ms / 1000,
                ms % 1000,
                json_str(&self.host),
                json_str(&source),
                json_str(&sourcetype)
            );
            if let Some(index) = index {
                let _ = write!(body, "\"index\":{},", json_str(index));
            }
            let _ = writeln!(
                body,
                "\"event\":{},\"fields\":{}}}",
                p.line,
                serde_json::Value::Object(fields)
            );
        }
        body
    }

    /// One stream per label set, values sorted by time (stable: seq order among equal times).
    fn loki_body(&self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> String {
        let mut streams: BTreeMap<BTreeMap<&str, &str>, Vec<(u128, &str)>> = BTreeMap::new();
        let mut last = None;
        for p in batch {
            let ms = record_ms(p, last);
            last = Some(ms);
            let mut labels: BTreeMap<&str, &str> =
                BTreeMap::from([("job", "gate"), ("host", self.host.as_str())]);
            for (k, v) in &self.labels {
                labels.insert(k, v);
            }
            labels.insert("kind", p.record["kind"].as_str().unwrap_or("unknown"));
            labels.insert("log_id", p.record["log_id"].as_str().unwrap_or(ctx.log_id));
            streams
                .entry(labels)
                .or_default()
                .push((u128::from(ms) * 1_000_000, p.line.as_str()));
        }
        let streams: Vec<serde_json::Value> = streams
            .into_iter()
            .map(|(labels, mut values)| {
                values.sort_by_key(|&(ns, _)| ns);
                serde_json::json!({
                    "stream": labels,
                    "values": values.iter().map(|(ns, line)| serde_json::json!([ns.to_string(), line])).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({ "streams": streams }).to_string()
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let http = self.client()?;
        // At least a short attempt even when the deadline has passed; never longer than 30 s.
        let timeout = ctx
            .deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(250), Duration::from_secs(30));
        let mut rb = http.post(self.url.clone()).timeout(timeout);
        rb = match self.preset {
            Preset::Ndjson => {
                // Receivers deduplicate by each record's `hash`; the key names the exact batch.
                let mut key = Sha256::new();
                for p in batch {
                    key.update(p.hash.as_bytes());
                    key.update(b"\n");
                }
                let (first, last) = (batch[0].seq, batch[batch.len() - 1].seq);
                rb.header("Content-Type", "application/x-ndjson")
                    .header("Idempotency-Key", hex::encode(key.finalize()))
                    .header(
                        "Gate-Log-Id",
                        batch[0].record["log_id"].as_str().unwrap_or(ctx.log_id),
                    )
                    .header("Gate-Seq", format!("{first}-{last}"))
                    .body(Self::ndjson_body(batch))
            }
            Preset::SplunkHec => rb
                .header("Content-Type", "application/json")
                .body(self.splunk_body(batch, ctx)),
            Preset::Loki => rb
                .header("Content-Type", "application/json")
                .body(self.loki_body(batch, ctx)),
        };
        if let Some(t) = &self.token {
            let scheme = if self.preset == Preset::SplunkHec {
                "Splunk"
            } else {
                "Bearer"
            };
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("{scheme} {}", t.expose()))
                    .map_err(|_| {
                        SinkError::Permanent(format!(
                            "{}: the token cannot be sent in a header",
                            self.shown
                        ))
                    })?;
            value.set_sensitive(true);
            rb = rb.header(reqwest::header::AUTHORIZATION, value);
        }
        let resp = rb.send().map_err(|e| SinkError::Transient {
            message: self.scrub(format!(
                "{} ({}): {}",
                self.shown,
                self.preset.as_str(),
                chain(&e)
            )),
            retry_after: None,
        })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let ra = retry_after(
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let why = reason(resp);
        let message = self.scrub(format!(
            "{} ({}) answered {status}{why}",
            self.shown,
            self.preset.as_str()
        ));
        match status {
            408 | 429 | 500..=599 => Err(SinkError::Transient {
                message,
                retry_after: ra,
            }),
            300..=399 => Err(SinkError::Permanent(format!(
                "{message} (redirects are not followed: configure the final URL)"
            ))),
            401 | 403 => Err(SinkError::Permanent(format!(
                "{message} (the token was refused)"
            ))),
            _ => Err(SinkError::Permanent(message)),
        }
    }
}

/// The endpoint path: `base` + `suffix`, unless `base` already ends with it (or with `partial`,
/// to which the rest of `suffix` is added). A path prefix (a reverse proxy) is kept.
fn endpoint_path(base: &str, suffix: &str, partial: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(suffix) {
        return base.to_owned();
    }
    if let Some(p) = partial.filter(|p| base.ends_with(p)) {
        return format!("{base}{}", &suffix[p.len()..]);
    }
    format!("{base}{suffix}")
}

fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn check_labels(preset: Preset, labels: &BTreeMap<String, String>) -> Result<(), HttpConfigError> {
    if labels.is_empty() {
        return Ok(());
    }
    match preset {
        Preset::Ndjson => Err(HttpConfigError::LabelsWithoutPreset),
        Preset::SplunkHec => {
            for k in labels.keys() {
                if SPLUNK_FIELDS.contains(&k.as_str()) {
                    return Err(HttpConfigError::SplunkReserved(k.clone()));
                }
                if k.is_empty() || k.starts_with('_') {
                    return Err(HttpConfigError::SplunkName(k.clone()));
                }
            }
            Ok(())
        }
        Preset::Loki => {
            for (k, v) in labels {
                let valid = k.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
                if k.is_empty() || !valid || k.starts_with("__") {
                    return Err(HttpConfigError::LokiName(k.clone()));
                }
                if HIGH_CARDINALITY.contains(&k.as_str()) {
                    return Err(HttpConfigError::HighCardinality(k.clone()));
                }
                if LOKI_RECORD_LABELS.contains(&k.as_str()) {
                    return Err(HttpConfigError::LokiReserved(k.clone()));
                }
                if v.is_empty() {
                    return Err(HttpConfigError::EmptyValue(k.clone()));
                }
            }
            Ok(())
        }
    }
}

/// The record's `ts` in milliseconds since the epoch. A record whose `ts` does not parse (gate
/// never writes one) takes the previous record's time, or now, so it is still delivered.
fn record_ms(p: &Pending, previous: Option<u64>) -> u64 {
    let parsed = p.record["ts"]
        .as_str()
        .and_then(|ts| humantime::parse_rfc3339(ts).ok());
    let t = match (parsed, previous) {
        (Some(t), _) => t,
        (None, Some(ms)) => return ms,
        (None, None) => SystemTime::now(),
    };
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A short reason from an error response: HEC's `text`, a `message`/`error` member, or the
/// first line of the body (at most 200 characters).
fn reason(resp: reqwest::blocking::Response) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let _ = resp.take(8192).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let picked = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            ["text", "message", "error"]
                .iter()
                .find_map(|k| v[*k].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| text.lines().next().unwrap_or_default().trim().to_owned());
    if picked.is_empty() {
        return String::new();
    }
    let short: String = picked
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    format!(": {short}")
}

fn chain(e: &reqwest::Error) -> String {
    crate::http::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths() {
        assert_eq!(
            endpoint_path("/", SPLUNK_PATH, Some("/services/collector")),
            SPLUNK_PATH
        );
        assert_eq!(endpoint_path("", LOKI_PATH, None), LOKI_PATH);
        assert_eq!(
            endpoint_path(
                "/services/collector/event",
                SPLUNK_PATH,
                Some("/services/collector")
            ),
            SPLUNK_PATH
        );
        assert_eq!(
            endpoint_path(
                "/services/collector/",
                SPLUNK_PATH,
                Some("/services/collector")
            ),
            SPLUNK_PATH
        );
        assert_eq!(
            endpoint_path("/proxy/", LOKI_PATH, None),
            "/proxy/loki/api/v1/push"
        );
        assert_eq!(
            endpoint_path("/loki/api/v1/push", LOKI_PATH, None),
            LOKI_PATH
        );
    }

    #[test]
    fn shown_url_hides_credentials_and_query() {
        let u = Url::parse("https://user:pw@hec.example:8088/services/collector/event?channel=x")
            .unwrap();
        assert_eq!(
            shown_url(&u),
            "https://hec.example:8088/services/collector/event"
        );
    }

    #[test]
    fn labels_are_checked() {
        let l = |k: &str| BTreeMap::from([(k.to_owned(), "x".to_owned())]);
        assert!(check_labels(Preset::Loki, &l("env")).is_ok());
        for bad in ["request_id", "seq", "hash", "kind", "__name__", "9x", "a-b"] {
            assert!(check_labels(Preset::Loki, &l(bad)).is_err(), "{bad}");
        }
        assert!(check_labels(Preset::SplunkHec, &l("index")).is_ok());
        assert!(check_labels(Preset::SplunkHec, &l("seq")).is_err());
        assert!(check_labels(Preset::Ndjson, &l("env")).is_err());
    }
}
