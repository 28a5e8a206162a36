//! The Slack simulator's wire side: how a Web API request is read (query string, JSON or
//! form body, bearer token), refused (auth, scopes, rate limits, injected faults) and answered
//! by each method, and what a `response_url` accepts. The state it reads and changes lives in
//! `slack_sim`; the documented behaviour each function follows is cited where it is decided.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::sim_http;
use super::slack_blocks;
use super::slack_sim::{BOT_USER, Book, Call, Fault, Message, TEAM_ID};

/// An API error: the code and any extra fields (`needed`/`provided`, `response_metadata`).
struct ApiError(String, Map<String, Value>);

fn err(code: &str) -> ApiError {
    ApiError(code.into(), Map::new())
}

type Answer = Result<Value, ApiError>;

pub(super) async fn web_api(
    State(book): State<Arc<Mutex<Book>>>,
    Path(method): Path<String>,
    http_method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let latency = book.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut b = book.lock().unwrap();
    let (status, response, extra_headers, args) =
        serve_call(&mut b, &method, &http_method, &uri, &headers, &body);
    b.calls.push(Call {
        method,
        http_method: http_method.to_string(),
        headers,
        args,
        raw_body: body.to_vec(),
        status: status.as_u16(),
        response: response.clone(),
        at,
    });
    let mut resp = if status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS {
        (status, axum::Json(response)).into_response()
    } else {
        let page = format!("<html><body><h1>{status}</h1></body></html>");
        (status, [("content-type", "text/html")], page).into_response()
    };
    for (k, v) in extra_headers {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

type Served4 = (
    StatusCode,
    Value,
    Vec<(&'static str, String)>,
    Map<String, Value>,
);

fn serve_call(
    b: &mut Book,
    method: &str,
    http_method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Served4 {
    let ok_false = |e: ApiError| {
        let mut o = Map::new();
        o.insert("ok".into(), false.into());
        o.insert("error".into(), e.0.into());
        o.extend(e.1);
        Value::Object(o)
    };
    let parsed = parse_args(http_method, uri, headers, body);
    // A faulted call is still recorded with its arguments, so a test can see what was retried.
    let seen = parsed.as_ref().map(|p| p.0.clone()).unwrap_or_default();
    let aimed = b
        .method_faults
        .get_mut(method)
        .and_then(VecDeque::pop_front);
    match aimed.or_else(|| b.faults.pop_front()) {
        Some(Fault::Status(code)) => {
            let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (s, Value::Null, vec![], seen);
        }
        Some(Fault::SlackError(code)) => {
            return (StatusCode::OK, ok_false(err(&code)), vec![], seen);
        }
        // Drops happen when a connection is accepted; one queued since is for a later request.
        Some(Fault::Drop) => b.faults.push_front(Fault::Drop),
        None => {}
    }
    let (args, warnings, form_token) = match parsed {
        Ok(a) => a,
        Err(e) => return (StatusCode::OK, ok_false(e), vec![], Map::new()),
    };
    let token = match bearer(headers, form_token) {
        Ok(t) => t,
        Err(e) => return (StatusCode::OK, ok_false(e), vec![], args),
    };
    if b.revoked.contains(&token) {
        return (StatusCode::OK, ok_false(err("token_revoked")), vec![], args);
    }
    if token != b.cfg().token {
        return (StatusCode::OK, ok_false(err("invalid_auth")), vec![], args);
    }
    if let Some(wait) = over_limit(b, method) {
        let v = json!({"ok": false, "error": "ratelimited"});
        let h = vec![("retry-after", wait.to_string())];
        return (StatusCode::TOO_MANY_REQUESTS, v, h, args);
    }
    let answer = match method {
        "auth.test" => Ok(auth_test(b)),
        "chat.postMessage" => scope(b, "chat:write").and_then(|_| post_message(b, &args)),
        "chat.update" => scope(b, "chat:write").and_then(|_| update(b, &args)),
        "reactions.get" => scope(b, "reactions:read").and_then(|_| reactions_get(b, &args)),
        "users.info" => scope(b, "users:read").and_then(|_| users_info(b, &args)),
        "usergroups.users.list" => {
            scope(b, "usergroups:read").and_then(|_| usergroup_users(b, &args))
        }
        _ => {
            let mut extra = Map::new();
            extra.insert("req_method".into(), method.into());
            Err(ApiError("unknown_method".into(), extra))
        }
    };
    let mut v = match answer {
        Ok(Value::Object(mut o)) => {
            let mut all = Map::new();
            all.insert("ok".into(), true.into());
            all.append(&mut o);
            Value::Object(all)
        }
        Ok(other) => other,
        Err(e) => ok_false(e),
    };
    if !warnings.is_empty() {
        v["warning"] = warnings.join(",").into();
        v["response_metadata"]["warnings"] = json!(warnings);
    }
    // Slack names the token's scopes on every authenticated answer.
    let scopes = vec![("x-oauth-scopes", b.cfg().scopes.join(","))];
    (StatusCode::OK, v, scopes, args)
}

/// What a request carries: its arguments, warnings for the answer, a `token` form field.
type Parsed = (Map<String, Value>, Vec<String>, Option<String>);

/// Arguments from the query string and the body. JSON bodies need `application/json`
/// (without `; charset=utf-8` Slack still answers, with a `missing_charset` warning); a token
/// counts only from a form body (JSON bodies must use the header).
fn parse_args(m: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, ApiError> {
    let mut args = Map::new();
    let mut warnings = Vec::new();
    let mut form_token = None;
    for (k, v) in sim_http::form_pairs(uri.query().unwrap_or("")) {
        args.insert(k, v.into());
    }
    if *m == Method::GET || (*m == Method::POST && body.is_empty()) {
        return Ok((args, warnings, None));
    }
    if *m != Method::POST {
        return Err(err("invalid_post_type"));
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_ascii_lowercase());
    let Some(ct) = ct else {
        return Err(err("missing_post_type"));
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let charset = ct
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_owned());
    if let Some(c) = &charset
        && c != "utf-8"
        && c != "iso-8859-1"
    {
        return Err(err("invalid_charset"));
    }
    let text = std::str::from_utf8(body).map_err(|_| err("invalid_form_data"))?;
    match mime {
        "application/json" => {
            if charset.is_none() {
                warnings.push("missing_charset".into());
            }
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(o)) => args.extend(o),
                Ok(_) => return Err(err("json_not_object")),
                Err(_) => return Err(err("invalid_json")),
            }
        }
        "application/x-www-form-urlencoded" => {
            for (k, v) in sim_http::form_pairs(text) {
                if k == "token" {
                    form_token = Some(v.clone());
                }
                args.insert(k, v.into());
            }
        }
        _ => return Err(err("invalid_post_type")),
    }
    Ok((args, warnings, form_token))
}

/// The token: `Authorization: Bearer …`, or a `token` field in a form body. A token in the
/// query string is not accepted (Slack stopped honouring those for new apps in 2021).
fn bearer(headers: &HeaderMap, form_token: Option<String>) -> Result<String, ApiError> {
    if let Some(h) = headers.get("authorization") {
        let h = h.to_str().unwrap_or("");
        return match h.strip_prefix("Bearer ") {
            Some(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
            _ => Err(err("not_authed")),
        };
    }
    form_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| err("not_authed"))
}

fn over_limit(b: &mut Book, method: &str) -> Option<u64> {
    let (n, per) = *b.cfg().rate_limits.get(method)?;
    let now = Instant::now();
    let hits = b.hits.entry(method.into()).or_default();
    while hits.front().is_some_and(|t| now.duration_since(*t) >= per) {
        hits.pop_front();
    }
    if hits.len() as u32 >= n {
        let oldest = *hits.front()?;
        let left = per.saturating_sub(now.duration_since(oldest));
        return Some(left.as_secs_f64().ceil().max(1.0) as u64);
    }
    hits.push_back(now);
    None
}

fn scope(b: &Book, needed: &str) -> Result<(), ApiError> {
    if b.cfg().scopes.iter().any(|s| s == needed) {
        return Ok(());
    }
    let mut extra = Map::new();
    extra.insert("needed".into(), needed.into());
    extra.insert("provided".into(), b.cfg().scopes.join(",").into());
    Err(ApiError("missing_scope".into(), extra))
}

fn arg<'a>(args: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    args.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn auth_test(_: &Book) -> Value {
    json!({
        "url": "https://gate-sim.slack.com/",
        "team": "gate simulator",
        "user": "gate",
        "team_id": TEAM_ID,
        "user_id": BOT_USER,
        "bot_id": "B0SIMBOT01",
        "is_enterprise_install": false,
    })
}

/// The channel must exist and, for posting, have the bot as a member.
/// `chat.postMessage` also takes a channel's name (`approvals` or `#approvals`); the other
/// methods want the id.
fn channel(
    b: &Book,
    args: &Map<String, Value>,
    need_member: bool,
    by_name: bool,
) -> Result<String, ApiError> {
    let given = arg(args, "channel").ok_or_else(|| err("channel_not_found"))?;
    let channels = &b.cfg().channels;
    let named = || {
        let name = given.strip_prefix('#').unwrap_or(given);
        channels.iter().find(|(_, (n, _))| n == name)
    };
    let found = match channels.get_key_value(given) {
        Some(hit) => Some(hit),
        None if by_name => named(),
        None => None,
    };
    match found {
        None => Err(err("channel_not_found")),
        Some((_, (_, false))) if need_member => Err(err("not_in_channel")),
        Some((id, _)) => Ok(id.clone()),
    }
}

/// `blocks`: a JSON array, or (form bodies) a string holding one.
fn blocks(args: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let v = match args.get("blocks") {
        None => return Ok(None),
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s).map_err(|_| err("invalid_blocks_format"))?
        }
        Some(v) => v.clone(),
    };
    if !v.is_array() {
        return Err(err("invalid_blocks_format"));
    }
    slack_blocks::validate(&v).map_err(|messages| {
        let mut extra = Map::new();
        extra.insert("response_metadata".into(), json!({ "messages": messages }));
        ApiError("invalid_blocks".into(), extra)
    })?;
    Ok(Some(v))
}

fn message_json(m: &Message) -> Value {
    let mut v = json!({"type": "message", "user": m.user, "bot_id": "B0SIMBOT01", "ts": m.ts,
                       "team": TEAM_ID, "text": m.text.clone().unwrap_or_default()});
    if let Some(bl) = &m.blocks {
        v["blocks"] = bl.clone();
    }
    if let Some(t) = &m.thread_ts {
        v["thread_ts"] = t.clone().into();
    }
    // Slack marks a changed message with who edited it and when (the message object's
    // `edited`, https://docs.slack.dev/reference/objects/message-object): a reader can tell
    // that what it shows now is not what was first posted.
    if m.edits > 0 {
        v["edited"] = json!({"user": m.user, "ts": m.ts});
    }
    v
}

fn post_message(b: &mut Book, args: &Map<String, Value>) -> Answer {
    let channel = channel(b, args, true, true)?;
    let blocks = blocks(args)?;
    let text = arg(args, "text").map(str::to_owned);
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if text.is_none() && !has_blocks {
        return Err(err("no_text"));
    }
    // Slack truncates text past 40,000 characters rather than refusing it.
    let text = text.map(|t| t.chars().take(40_000).collect::<String>());
    let thread_ts = match arg(args, "thread_ts") {
        None => None,
        Some(t) => {
            let parent = b.find(&channel, t).ok_or_else(|| err("thread_not_found"))?;
            // A reply to a reply goes to the thread's parent, as in Slack.
            Some(parent.thread_ts.clone().unwrap_or_else(|| t.to_owned()))
        }
    };
    let ts = b.next_ts();
    let m = Message {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts,
        user: BOT_USER.into(),
        text,
        blocks,
        reactions: vec![],
        edits: 0,
    };
    let message = message_json(&m);
    b.messages.push(m);
    Ok(json!({"channel": channel, "ts": ts, "message": message}))
}

fn update(b: &mut Book, args: &Map<String, Value>) -> Answer {
    let channel = channel(b, args, true, false)?;
    let ts = arg(args, "ts")
        .ok_or_else(|| err("message_not_found"))?
        .to_owned();
    let blocks = blocks(args)?;
    let text = arg(args, "text").map(str::to_owned);
    if text.is_none() && blocks.is_none() {
        return Err(err("no_text"));
    }
    let m = b
        .find(&channel, &ts)
        .ok_or_else(|| err("message_not_found"))?;
    if m.user != BOT_USER {
        return Err(err("cant_update_message"));
    }
    if let Some(t) = text {
        m.text = Some(t);
    }
    // Without `blocks` the previous blocks stay; an empty array removes them.
    if let Some(bl) = blocks {
        m.blocks = Some(bl).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    }
    m.edits += 1;
    let message = message_json(m);
    let text = m.text.clone().unwrap_or_default();
    Ok(json!({"channel": channel, "ts": ts, "text": text, "message": message}))
}

fn reactions_get(b: &mut Book, args: &Map<String, Value>) -> Answer {
    let (Some(_), Some(ts)) = (arg(args, "channel"), arg(args, "timestamp")) else {
        return Err(err("no_item_specified"));
    };
    let ts = ts.to_owned();
    let channel = channel(b, args, false, false)?;
    if !is_ts(&ts) {
        return Err(err("bad_timestamp"));
    }
    let full = matches!(args.get("full"), Some(Value::Bool(true)))
        || matches!(arg(args, "full"), Some("true" | "1"));
    let cap = if full {
        usize::MAX
    } else {
        b.cfg().partial_users
    };
    let m = b
        .find(&channel, &ts)
        .ok_or_else(|| err("message_not_found"))?;
    let mut message = message_json(m);
    if !m.reactions.is_empty() {
        let rs: Vec<Value> = m
            .reactions
            .iter()
            .map(|r| {
                let users: Vec<&String> = r.users.iter().take(cap).collect();
                json!({"name": r.name, "users": users, "count": r.users.len()})
            })
            .collect();
        message["reactions"] = rs.into();
    }
    message["permalink"] = format!(
        "https://gate-sim.slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    )
    .into();
    Ok(json!({"type": "message", "channel": channel, "message": message}))
}

fn is_ts(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(a), Some(c), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !a.is_empty() && !c.is_empty() && a.bytes().chain(c.bytes()).all(|b| b.is_ascii_digit())
}

fn users_info(b: &Book, args: &Map<String, Value>) -> Answer {
    let id = arg(args, "user").ok_or_else(|| err("user_not_found"))?;
    let u = b.cfg().users.get(id).ok_or_else(|| err("user_not_found"))?;
    Ok(json!({"user": {
        "id": u.id, "team_id": TEAM_ID, "name": u.name, "deleted": u.deleted,
        "real_name": u.real_name, "is_bot": u.is_bot, "is_app_user": false,
        "profile": {"real_name": u.real_name, "display_name": u.name, "team": TEAM_ID},
    }}))
}

fn usergroup_users(b: &Book, args: &Map<String, Value>) -> Answer {
    let id = arg(args, "usergroup").ok_or_else(|| err("invalid_arguments"))?;
    let users = b
        .cfg()
        .usergroups
        .get(id)
        .ok_or_else(|| err("no_such_subteam"))?;
    Ok(json!({ "users": users }))
}

/// What a `response_url` accepts (https://docs.slack.dev/interactivity/handling-user-interaction):
/// a JSON message (`text` and/or `blocks`), optionally `replace_original` or
/// `delete_original`; it answers like an incoming webhook: 200 `ok`, or 400 with a reason.
pub(super) async fn response_url(
    State(book): State<Arc<Mutex<Book>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut b = book.lock().unwrap();
    match b.faults.pop_front() {
        Some(Fault::Drop) => b.faults.push_front(Fault::Drop),
        Some(Fault::Status(c)) => {
            return StatusCode::from_u16(c)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        Some(Fault::SlackError(_)) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        None => {}
    }
    let parsed = serde_json::from_slice::<Value>(&body);
    let (status, answer) = apply_response(&mut b, &id, &headers, parsed);
    let args = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    b.calls.push(Call {
        method: "response_url".into(),
        http_method: "POST".into(),
        headers,
        args,
        raw_body: body.to_vec(),
        status: status.as_u16(),
        response: Value::String(answer.into()),
        at: Instant::now(),
    });
    (status, answer).into_response()
}

fn apply_response(
    b: &mut Book,
    id: &str,
    headers: &HeaderMap,
    parsed: Result<Value, serde_json::Error>,
) -> (StatusCode, &'static str) {
    let Some((channel, ts)) = b.response_urls.get(id).cloned() else {
        return (StatusCode::NOT_FOUND, "no_service");
    };
    let json_ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let Ok(Value::Object(o)) = parsed.map_err(|_| ()) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload");
    };
    if !json_ct {
        return (StatusCode::BAD_REQUEST, "invalid_payload");
    }
    let blocks = match blocks(&o) {
        Ok(bl) => bl,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid_blocks"),
    };
    let text = arg(&o, "text").map(str::to_owned);
    let delete = o.get("delete_original") == Some(&Value::Bool(true));
    if delete {
        b.messages.retain(|m| !(m.channel == channel && m.ts == ts));
        return (StatusCode::OK, "ok");
    }
    if text.is_none() && blocks.is_none() {
        return (StatusCode::BAD_REQUEST, "no_text");
    }
    if o.get("replace_original") == Some(&Value::Bool(true)) {
        let Some(m) = b.find(&channel, &ts) else {
            return (StatusCode::NOT_FOUND, "message_not_found");
        };
        m.text = text;
        m.blocks = blocks;
        m.edits += 1;
    }
    (StatusCode::OK, "ok")
}
