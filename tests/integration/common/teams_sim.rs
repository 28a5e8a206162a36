//! A Microsoft Teams Workflows (Power Automate "When a Teams webhook request is received")
//! webhook simulator: `TeamsSim::start(config)` serves one workflow URL on 127.0.0.1 with an
//! ephemeral port. It takes the documented envelope
//! (`{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//! "content":{AdaptiveCard}}]}`), answers 202 Accepted with an empty body on success, and
//! checks the card against the Adaptive Card schema as Teams renders it for webhooks: version
//! ≤ 1.4, body elements TextBlock / FactSet / Container / ColumnSet, actions Action.OpenUrl with
//! an absolute http(s) URL (Action.Submit and the other posting actions refused: a webhook card
//! has nobody to post back to). Sources are listed in docs/dev/chat-simulators.md.
//!
//! Real Workflows accept the request (202) before the flow runs and fail a bad card later,
//! silently for the caller; by default the simulator is stricter and answers 400 with the
//! reason, so a test sees the mistake. `TeamsConfig { async_failures: true }` mimics the real
//! service instead: 202, and the card is recorded as refused, not posted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::sim_http::{self, Served};

const FLOW: &str = "0b1e5f3c9a7d4e2f8c6b1a0d9e8f7c6b";
const SIG: &str = "sIm-Sig_0123456789abcdefghijklmnopqrstuvwx";
/// Teams refuses messages over about 28 KB.
const MAX_BYTES: usize = 28 * 1024;

#[derive(Clone, Debug, Default)]
pub struct TeamsConfig {
    /// Answer 202 to a bad card too (as the real service does) and record it as refused.
    pub async_failures: bool,
}

/// A failure the next request gets instead of being served.
#[derive(Clone, Debug)]
pub enum TeamsFault {
    /// 429 Too Many Requests with `Retry-After: secs` (Power Automate throttling).
    Throttled(u64),
    Status(u16),
    Drop,
}

/// One POST the webhook received.
#[derive(Clone, Debug)]
pub struct TeamsPost {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub status: u16,
    /// Why the card was not posted, or `None` when it was.
    pub refused: Option<String>,
}

#[derive(Default)]
struct Book {
    cfg: TeamsConfig,
    posts: Vec<TeamsPost>,
    faults: VecDeque<TeamsFault>,
}

pub struct TeamsSim {
    book: Arc<Mutex<Book>>,
    served: Served,
}

impl TeamsSim {
    pub fn start(cfg: TeamsConfig) -> TeamsSim {
        let book = Arc::new(Mutex::new(Book {
            cfg,
            ..Book::default()
        }));
        let path = format!("/workflows/{FLOW}/triggers/manual/paths/invoke");
        let app = Router::new()
            .route(&path, post(invoke))
            .with_state(Arc::clone(&book));
        let b = Arc::clone(&book);
        let drop_next = Arc::new(move || {
            let mut b = b.lock().unwrap();
            let drop = matches!(b.faults.front(), Some(TeamsFault::Drop));
            if drop {
                b.faults.pop_front();
            }
            drop
        });
        TeamsSim {
            book,
            served: sim_http::serve(app, drop_next),
        }
    }

    /// The workflow's URL, shaped like Power Automate's (the `sig` is its secret).
    pub fn webhook_url(&self) -> String {
        format!(
            "http://{}/workflows/{FLOW}/triggers/manual/paths/invoke?api-version=2016-06-01\
             &sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}",
            self.served.addr
        )
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.served.addr
    }

    /// Every POST received, oldest first.
    pub fn posts(&self) -> Vec<TeamsPost> {
        self.book.lock().unwrap().posts.clone()
    }

    /// The Adaptive Cards that were posted to the channel (every attachment), oldest first.
    pub fn cards(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .filter(|p| p.refused.is_none() && p.status == 202)
            .filter_map(|p| serde_json::from_slice::<Value>(&p.body).ok())
            .flat_map(|v| {
                let atts = v["attachments"].as_array().cloned().unwrap_or_default();
                atts.into_iter().map(|a| a["content"].clone())
            })
            .collect()
    }

    pub fn fail_next(&self, n: usize, fault: TeamsFault) {
        let mut b = self.book.lock().unwrap();
        for _ in 0..n {
            b.faults.push_back(fault.clone());
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

async fn invoke(
    State(book): State<Arc<Mutex<Book>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut b = book.lock().unwrap();
    let (status, refused, answer) = answer(&mut b, query.as_deref(), &headers, &body);
    b.posts.push(TeamsPost {
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
        refused,
    });
    answer
}

fn answer(
    b: &mut Book,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Option<String>, Response) {
    let sig = sim_http::form_pairs(query.unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v);
    let auth = match sig.as_deref() {
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "DirectApiAuthorizationRequired",
            "The request must be authenticated only by Shared Access scheme.",
        )),
        Some(s) if s != SIG => Some(error(
            StatusCode::UNAUTHORIZED,
            "DirectApiInvalidAuthorizationSignature",
            "The provided sig is not valid.",
        )),
        Some(_) => None,
    };
    if let Some((s, v)) = auth {
        return (
            s,
            Some("bad sig".into()),
            (s, axum::Json(v)).into_response(),
        );
    }
    match b.faults.pop_front() {
        Some(TeamsFault::Throttled(secs)) => {
            let (s, v) = error(
                StatusCode::TOO_MANY_REQUESTS,
                "WorkflowRequestsThrottled",
                "Number of requests exceeded the limit.",
            );
            let r = (s, [("retry-after", secs.to_string())], axum::Json(v)).into_response();
            return (s, Some("throttled".into()), r);
        }
        Some(TeamsFault::Status(code)) => {
            let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (s, v) = error(s, "ServiceUnavailable", "injected outage");
            return (
                s,
                Some(format!("injected {code}")),
                (s, axum::Json(v)).into_response(),
            );
        }
        // Dropped when the connection was accepted; a queued one here is for a later request.
        Some(TeamsFault::Drop) => b.faults.push_front(TeamsFault::Drop),
        None => {}
    }
    match check_request(headers, body) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            None,
            StatusCode::ACCEPTED.into_response(),
        ),
        Err((_, reason)) if b.cfg.async_failures => (
            StatusCode::ACCEPTED,
            Some(reason),
            StatusCode::ACCEPTED.into_response(),
        ),
        Err((status, reason)) => {
            let (s, v) = error(status, "InvalidRequestContent", &reason);
            (s, Some(reason), (s, axum::Json(v)).into_response())
        }
    }
}

fn check_request(headers: &HeaderMap, body: &[u8]) -> Result<(), (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(bad(format!("content type `{ct}` is not application/json")));
    }
    if body.len() > MAX_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "message is {} bytes; Teams takes at most {MAX_BYTES}",
                body.len()
            ),
        ));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
    if v["type"] != "message" {
        return Err(bad("`type` must be \"message\"".into()));
    }
    let Some(atts) = v["attachments"].as_array().filter(|a| !a.is_empty()) else {
        return Err(bad("`attachments` must be a non-empty array".into()));
    };
    for (i, a) in atts.iter().enumerate() {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            return Err(bad(format!(
                "attachments[{i}].contentType must be application/vnd.microsoft.card.adaptive"
            )));
        }
        card(&a["content"]).map_err(|m| bad(format!("attachments[{i}].content: {m}")))?;
    }
    Ok(())
}

/// The Adaptive Card itself (https://adaptivecards.io/explorer/, schema 1.4).
pub fn card(c: &Value) -> Result<(), String> {
    if !c.is_object() {
        return Err("must be an AdaptiveCard object".into());
    }
    match c["$schema"].as_str() {
        Some(
            "http://adaptivecards.io/schemas/adaptive-card.json"
            | "https://adaptivecards.io/schemas/adaptive-card.json",
        ) => {}
        other => {
            return Err(format!(
                "$schema must be the Adaptive Card schema, not {other:?}"
            ));
        }
    }
    if c["type"] != "AdaptiveCard" {
        return Err("type must be \"AdaptiveCard\"".into());
    }
    let version = c["version"].as_str().ok_or("version is required")?;
    let parsed = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match parsed {
        Some((1, minor)) if minor <= 4 => {}
        Some(_) => {
            return Err(format!(
                "version {version}: Teams webhooks render up to 1.4"
            ));
        }
        None => return Err(format!("version `{version}` is not MAJOR.MINOR")),
    }
    if let Some(body) = c.get("body") {
        elements(body, "body")?;
    }
    if let Some(actions) = c.get("actions") {
        let list = actions.as_array().ok_or("actions must be an array")?;
        for (i, a) in list.iter().enumerate() {
            action(a, &format!("actions[{i}]"))?;
        }
    }
    Ok(())
}

fn elements(v: &Value, at: &str) -> Result<(), String> {
    let list = v.as_array().ok_or(format!("{at} must be an array"))?;
    for (i, e) in list.iter().enumerate() {
        element(e, &format!("{at}[{i}]"))?;
    }
    Ok(())
}

fn element(e: &Value, at: &str) -> Result<(), String> {
    match e["type"].as_str() {
        Some("TextBlock") => {
            e["text"]
                .as_str()
                .ok_or(format!("{at}: TextBlock needs text"))?;
        }
        Some("FactSet") => {
            let facts = e["facts"]
                .as_array()
                .ok_or(format!("{at}: FactSet needs facts"))?;
            for (j, f) in facts.iter().enumerate() {
                if !f["title"].is_string() || !f["value"].is_string() {
                    return Err(format!("{at}.facts[{j}]: title and value must be strings"));
                }
            }
        }
        Some("Container") => elements(&e["items"], &format!("{at}.items"))?,
        Some("ColumnSet") => {
            let cols = e["columns"]
                .as_array()
                .ok_or(format!("{at}: ColumnSet needs columns"))?;
            for (j, col) in cols.iter().enumerate() {
                if !matches!(col["type"].as_str(), None | Some("Column")) {
                    return Err(format!("{at}.columns[{j}]: type must be Column"));
                }
                if let Some(items) = col.get("items") {
                    elements(items, &format!("{at}.columns[{j}].items"))?;
                }
            }
        }
        Some(other) => return Err(format!("{at}: element type {other} is not one gate uses")),
        None => return Err(format!("{at}: element has no type")),
    }
    if let Some(a) = e.get("selectAction") {
        action(a, &format!("{at}.selectAction"))?;
    }
    Ok(())
}

fn action(a: &Value, at: &str) -> Result<(), String> {
    match a["type"].as_str() {
        Some("Action.OpenUrl") => {
            let url = a["url"]
                .as_str()
                .ok_or(format!("{at}: Action.OpenUrl needs url"))?;
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
                _ => Err(format!("{at}: url `{url}` is not an absolute http(s) URL")),
            }
        }
        Some(t @ ("Action.Submit" | "Action.Execute" | "Action.Http")) => Err(format!(
            "{at}: {t} posts back to a bot; a webhook card has none (use Action.OpenUrl)"
        )),
        Some(other) => Err(format!("{at}: action type {other} is not one gate uses")),
        None => Err(format!("{at}: action has no type")),
    }
}
