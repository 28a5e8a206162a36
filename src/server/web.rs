//! The web page at `/`: sign in with a token, see the pending requests with their whole context,
//! approve or deny them with a comment.
//!
//! - Sign-in takes an API token once and makes a browser session: a random 256-bit id in an
//!   `HttpOnly; SameSite=Strict` cookie, mapped server-side (only its SHA-256 is kept) to the
//!   principal and the token's hash, so revoking the token ends the session at the next click.
//!   The token itself never goes into a cookie.
//! - Every POST carries a CSRF token in a hidden field (per session; before sign-in, a
//!   double-submit cookie) and is refused when its `Origin` names another host.
//! - Decisions go through [`api::decide_as`], the same eligibility check, audit event and
//!   long-poll wake-up as `POST /v1/requests/{id}/approve`.
//! - Everything rendered goes through [`html_escape`] (argv, reasons and env are attacker
//!   controlled); control and bidi characters are shown as visible escapes.
//! - The page refreshes its list every 2.5 s with a small script served from `/page.js` (CSP
//!   `script-src 'self'`), pausing while a comment is being written. Approving needs no script.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::api::{self, RequestView};
use super::auth::{self, now_ms};
use crate::request::shell_join;

const SESSION_COOKIE: &str = "gate_session";
const SIGNIN_COOKIE: &str = "gate_signin";
/// How long a browser session lives.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a sign-in form stays usable.
const SIGNIN_TTL_SECS: i64 = 3600;
/// Sessions kept at most; past this, the ones closest to expiry are dropped.
const MAX_SESSIONS: usize = 10_000;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct Session {
    principal: String,
    /// The hash of the token signed in with: checked on every use, so a revoked or expired
    /// token ends the session.
    token_hash: String,
    csrf: String,
    expires_ms: i64,
    /// The outcome of the last decision, shown once after the redirect.
    flash: Option<Flash>,
}

#[derive(Clone)]
struct Flash {
    ok: bool,
    text: String,
}

/// Signed-in browser sessions, keyed by the SHA-256 of the session id (the id itself is only
/// in the browser's cookie). In memory: a restart signs everyone out.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns its id (for the cookie).
    fn create(&self, principal: String, token_hash: String) -> Option<String> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = now_ms();
        let mut map = self.lock();
        map.retain(|_, s| s.expires_ms > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| k.clone())?;
            map.remove(&oldest);
        }
        map.insert(
            key_of(&id),
            Session {
                principal,
                token_hash,
                csrf,
                expires_ms: now + SESSION_TTL_MS,
                flash: None,
            },
        );
        Some(id)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let k = key_of(id);
        match map.get(&k) {
            Some(s) if s.expires_ms > now_ms() => Some(s.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock()
            .get_mut(&key_of(id))
            .and_then(|s| s.flash.take())
    }

    fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&key_of(id)) {
            s.flash = Some(flash);
        }
    }

    fn remove(&self, id: &str) {
        self.lock().remove(&key_of(id));
    }
}

fn key_of(session_id: &str) -> String {
    hex::encode(Sha256::digest(session_id.as_bytes()))
}

fn random_hex(n: usize) -> Option<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

/// Compares two secrets without an early exit.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && !a.is_empty() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route("/fragment", get(fragment))
        .route("/signin", post(signin))
        .route("/signout", post(signout))
        .route("/requests/{id}/decide", post(decide))
        .route("/page.js", get(script))
        .route("/page.css", get(style))
        .layer(middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

// ---------------------------------------------------------------------------------------------
// Escaping

/// Escapes text for HTML content and (double- or single-quoted) attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Characters that hide or reorder text: shown as escapes so argv reads as it will run.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// Escapes attacker-controlled text and marks control, bidi and zero-width characters as
/// visible `\n`, `\u{202e}`, ... so nothing hides in what an approver reads.
fn show(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_deceptive(c) {
            let esc = match c {
                '\n' => "\\n".to_owned(),
                '\t' => "\\t".to_owned(),
                '\r' => "\\r".to_owned(),
                c => format!("\\u{{{:x}}}", c as u32),
            };
            let _ = write!(out, "<span class=\"ctl\">{esc}</span>");
        } else {
            out.push_str(&html_escape(&c.to_string()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Cookies, origin, sessions

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("gate_invalid=; Max-Age=0"))
}

/// False when the request's `Origin` (or `Sec-Fetch-Site`) says it came from another site.
/// A missing `Origin` passes (old clients, curl): the CSRF token still has to match.
fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| !matches!(s, "same-origin" | "none")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return headers.get(header::ORIGIN).is_none();
    };
    if origin == "null" {
        // With `Referrer-Policy: no-referrer`, browsers send `Origin: null` even on the page's
        // own form posts; then only the browser's `Sec-Fetch-Site` can vouch for it.
        return site == Some("same-origin");
    }
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    // Behind a reverse proxy that rewrites Host, the proxy's X-Forwarded-Host names the
    // public host (a cross-site form can't set that header).
    [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .any(|host| host.eq_ignore_ascii_case(authority))
}

/// The signed-in session behind the request's cookie, while its token is still good.
fn current(st: &AppState, headers: &HeaderMap) -> Result<Option<(String, Session)>, PageError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(s) = st.web.get(id) else {
        return Ok(None);
    };
    let row = st
        .store
        .token_by_hash(&s.token_hash)
        .map_err(|e| PageError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let live = row.is_some_and(|r| {
        r.principal == s.principal
            && r.revoked_ms.is_none()
            && r.expires_ms.is_none_or(|e| e > now_ms())
    });
    if !live {
        st.web.remove(id);
        return Ok(None);
    }
    Ok(Some((id.to_owned(), s)))
}

/// A live session, checked before a form body is read (an extractor that precedes `Form`), so
/// a POST without one is refused before its body is judged, as the API's 401 is.
struct SignedIn;

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &Arc<AppState>,
    ) -> Result<Self, PageError> {
        if !same_origin(&parts.headers) {
            return Err(PageError(
                StatusCode::FORBIDDEN,
                "This form was sent from another site.".into(),
            ));
        }
        match current(st, &parts.headers)? {
            Some(_) => Ok(SignedIn),
            None => Err(PageError(
                StatusCode::FORBIDDEN,
                "You are not signed in (or your session ended); sign in again.".into(),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn index(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match current(&st, &headers) {
        Err(e) => e.into_response(),
        Ok(None) => signin_page(StatusCode::OK, None),
        Ok(Some((id, s))) => {
            let flash = st.web.take_flash(&id);
            match list_html(&st, &s) {
                Ok(list) => html(StatusCode::OK, main_page(&s, flash.as_ref(), &list)),
                Err(m) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &m),
            }
        }
    }
}

/// The list alone, for the page's refresh script.
async fn fragment(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match current(&st, &headers) {
        Err(e) => e.into_response(),
        Ok(None) => (StatusCode::UNAUTHORIZED, "sign in again\n").into_response(),
        Ok(Some((_, s))) => match list_html(&st, &s) {
            Ok(list) => html(StatusCode::OK, list),
            Err(m) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &m),
        },
    }
}

/// No `Debug`: it holds a token.
#[derive(Default, Deserialize)]
struct SigninForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn signin(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<SigninForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden("This form was sent from another site.");
    }
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if !same_secret(expected, &f.csrf) {
        return forbidden(
            "This sign-in form is stale or came from another site; reload the page and sign in again.",
        );
    }
    let token = f.token.trim();
    if token.is_empty() {
        return signin_page(StatusCode::UNAUTHORIZED, Some("Enter a token."));
    }
    let principal = match auth::principal_of(st.store.as_ref(), Some(token)) {
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Ok(Err(failure)) => {
            let m = match failure {
                auth::AuthFailure::Missing => "Enter a token.",
                auth::AuthFailure::Unknown => "Unknown token: check it and try again.",
                auth::AuthFailure::Revoked => "This token was revoked.",
                auth::AuthFailure::Expired => "This token has expired.",
            };
            return signin_page(StatusCode::UNAUTHORIZED, Some(m));
        }
        Ok(Ok(p)) => p,
    };
    // A new id on every sign-in; a session this browser had before ends.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        st.web.remove(old);
    }
    let Some(id) = st.web.create(principal, auth::hash_token(token)) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session id",
        );
    };
    let mut r = see_other();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_TTL_MS / 1000),
    );
    h.append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", 0));
    r
}

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(st): State<Arc<AppState>>,
    _: SignedIn,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (id, _) = match checked_post(&st, &headers, &f.csrf) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    st.web.remove(&id);
    let mut r = see_other();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    r
}

#[derive(Debug, Default, Deserialize)]
struct DecideForm {
    #[serde(default)]
    csrf: String,
    /// `approve` or `deny`: the button pressed.
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn decide(
    State(st): State<Arc<AppState>>,
    _: SignedIn,
    headers: HeaderMap,
    Path(req_id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    let (id, s) = match checked_post(&st, &headers, &f.csrf) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let approve = match f.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return error_page(StatusCode::BAD_REQUEST, "Choose Approve or Deny.");
        }
    };
    let comment = Some(f.comment.trim().to_owned()).filter(|c| !c.is_empty());
    let flash =
        match api::decide_as(&st, s.principal.clone(), req_id.clone(), approve, comment).await {
            Ok((row, all)) => {
                let (what, needed) = match api::view(&row, &all) {
                    Ok(v) => (
                        format!("request {} ({})", v.id, shell_join(&v.doc.argv)),
                        v.needed,
                    ),
                    Err(_) => (format!("request {}", row.id), 0),
                };
                let text = match (approve, row.status.as_str()) {
                    (true, "approved") => {
                        format!("You approved {what}. It is approved now: the command can run.")
                    }
                    (true, _) => format!(
                        "You approved {what}. {needed} more approval{} needed.",
                        if needed == 1 { " is" } else { "s are" }
                    ),
                    (false, _) => format!("You denied {what}. It is {} now.", row.status),
                };
                Flash { ok: true, text }
            }
            Err(e) => {
                let why = match e.code {
                    "self_approval" => "You cannot decide your own request",
                    "not_eligible" => "You are not an eligible approver",
                    "already_decided" => "You have already decided this request",
                    "decided" => "This request is already decided",
                    "expired" => "This request has expired",
                    "not_found" => "No such request",
                    _ => "Refused",
                };
                Flash {
                    ok: false,
                    text: format!("{why}: {}", e.message),
                }
            }
        };
    st.web.set_flash(&id, flash);
    see_other()
}

/// The checks every signed-in POST passes: same origin, a session, its CSRF token.
fn checked_post(
    st: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(String, Session), PageError> {
    let refuse = |m: &str| Err(PageError(StatusCode::FORBIDDEN, m.to_owned()));
    if !same_origin(headers) {
        return refuse("This form was sent from another site.");
    }
    let Some((id, s)) = current(st, headers)? else {
        return refuse("You are not signed in (or your session ended); sign in again.");
    };
    if !same_secret(&s.csrf, csrf) {
        return refuse(
            "This form is stale or came from another site; reload the page and try again.",
        );
    }
    Ok((id, s))
}

/// A request answered with an error page instead.
struct PageError(StatusCode, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0, &self.1)
    }
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        PAGE_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        PAGE_CSS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn see_other() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

fn forbidden(message: &str) -> Response {
    error_page(StatusCode::FORBIDDEN, message)
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        shell(
            "gate",
            &format!(
                "<main class=\"narrow\"><h1>gate</h1><p class=\"flash err\" role=\"alert\">{}</p>\
                 <p><a href=\"/\">Back to the page</a></p></main>",
                html_escape(message)
            ),
        ),
    )
}

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/page.css\">\n\
         <script src=\"/page.js\" defer></script>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        html_escape(title)
    )
}

fn signin_page(status: StatusCode, error: Option<&str>) -> Response {
    let Some(csrf) = random_hex(32) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for the sign-in form",
        );
    };
    let error = error
        .map(|m| {
            format!(
                "<p class=\"flash err\" role=\"alert\" id=\"signin-error\">{}</p>\n",
                html_escape(m)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<main class=\"narrow\">\n<h1>gate</h1>\n\
         <p>Sign in with your gate token (<code>gate serve token issue --principal NAME</code> \
         makes one). The token stays on the server: your browser gets a session cookie.</p>\n\
         {error}<form method=\"post\" action=\"/signin\" id=\"signin\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" \
         autofocus required></label>\n<button type=\"submit\">Sign in</button>\n</form>\n</main>",
        csrf = html_escape(&csrf),
    );
    let mut r = html(status, shell("gate — sign in", &body));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &csrf, SIGNIN_TTL_SECS),
    );
    r
}

fn main_page(s: &Session, flash: Option<&Flash>, list: &str) -> String {
    let flash = flash
        .map(|f| {
            format!(
                "<p class=\"flash {}\" role=\"status\" id=\"flash\">{}</p>\n",
                if f.ok { "ok" } else { "err" },
                show(&f.text)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<header>\n<h1>gate</h1>\n<div class=\"who\">Signed in as <b id=\"principal\">{who}</b>\n\
         <form method=\"post\" action=\"/signout\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"signout\">Sign out</button></form></div>\n</header>\n\
         <main>\n{flash}<section id=\"requests\" aria-live=\"polite\">\n{list}</section>\n\
         <p class=\"note\">This list refreshes by itself (pausing while you write a comment). \
         <a href=\"/\">Reload</a></p>\n</main>",
        who = html_escape(&s.principal),
        csrf = html_escape(&s.csrf),
    );
    shell("gate — pending requests", &body)
}

/// The pending requests, as the section's contents.
fn list_html(st: &AppState, s: &Session) -> Result<String, String> {
    let rows = st
        .store
        .request_list(Some("pending"))
        .map_err(|e| e.to_string())?;
    let now = now_ms();
    let mut out = String::new();
    let live: Vec<_> = rows.iter().filter(|(r, _)| r.expires_ms > now).collect();
    let _ = writeln!(out, "<h2>Pending requests ({})</h2>", live.len());
    if live.is_empty() {
        out.push_str("<p class=\"empty\" id=\"none-pending\">No pending requests.</p>\n");
    }
    for (row, decisions) in live {
        match api::view(row, decisions) {
            Ok(v) => request_html(&mut out, &v, row.expires_ms - now, s),
            Err(e) => {
                let _ = writeln!(
                    out,
                    "<article class=\"request\"><p class=\"flash err\">request {}: {}</p></article>",
                    html_escape(&row.id),
                    html_escape(&e.message)
                );
            }
        }
    }
    Ok(out)
}

fn request_html(out: &mut String, v: &RequestView, left_ms: i64, s: &Session) {
    let d = &v.doc;
    let id = html_escape(&v.id);
    let _ = writeln!(
        out,
        "<article class=\"request\" id=\"r-{id}\" data-id=\"{id}\">\n\
         <h3><code class=\"cmd\">{}</code></h3>\n<dl>",
        show(&shell_join(&d.argv))
    );
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    let mut who = format!("<b class=\"requester\">{}</b>", html_escape(&v.requester));
    if let Some(u) = &d.claims.user {
        let _ = write!(who, " (says: user {}", show(u));
        if let Some(uid) = d.claims.uid {
            let _ = write!(who, ", uid {uid}");
        }
        who.push(')');
    }
    if v.requester == s.principal && !d.requirement.allow_requester {
        who.push_str(" — <em>your request: someone else must approve it</em>");
    }
    row(out, "Requester", &who);
    row(
        out,
        "Host",
        &d.claims
            .host
            .as_deref()
            .map(show)
            .unwrap_or_else(|| "<i>not given</i>".into()),
    );
    if let Some(agent) = &d.claims.agent {
        row(out, "Agent", &show(agent));
    }
    if let Some(ci) = d.claims.ci.as_ref().filter(|c| !c.is_empty()) {
        row(out, "CI", &kv_table(ci.iter()));
    }
    row(out, "Directory", &format!("<code>{}</code>", show(&d.cwd)));
    let argv: String = d
        .argv
        .iter()
        .map(|a| format!("<li><code>{}</code></li>", show(a)))
        .collect();
    row(
        out,
        "Arguments",
        &format!("<ol class=\"argv\" start=\"0\">{argv}</ol>"),
    );
    row(
        out,
        "Reason",
        &d.reason
            .as_deref()
            .map(show)
            .unwrap_or_else(|| "<i>none given</i>".into()),
    );
    row(
        out,
        "Context",
        &if d.context.is_empty() {
            "<i>none</i>".into()
        } else {
            kv_table(d.context.iter())
        },
    );
    if !d.payload.is_empty() {
        let p: String = d
            .payload
            .iter()
            .map(|p| {
                format!(
                    "<li><code>{}</code> sha256 {}</li>",
                    show(&p.path),
                    p.sha256
                        .as_deref()
                        .map(html_escape)
                        .unwrap_or_else(|| "<i>unreadable</i>".into())
                )
            })
            .collect();
        row(out, "Payload", &format!("<ul>{p}</ul>"));
    }
    let mut rules = names(&d.rules, "<i>none (server default)</i>");
    if !d.client_rules.is_empty() {
        let _ = write!(rules, "; the client's: {}", names(&d.client_rules, ""));
    }
    row(out, "Matched rules", &rules);
    row(out, "Needs", &requirement_html(d));
    let mut approvals = String::new();
    if v.approvals.is_empty() {
        approvals.push_str("<i>none yet</i>");
    } else {
        approvals.push_str("<ul class=\"approvals\">");
        for a in &v.approvals {
            let _ = write!(
                approvals,
                "<li><b>{}</b> at {}{}</li>",
                html_escape(&a.principal),
                html_escape(&a.at),
                a.comment
                    .as_deref()
                    .map(|c| format!(": “{}”", show(c)))
                    .unwrap_or_default()
            );
        }
        approvals.push_str("</ul>");
    }
    let _ = write!(
        approvals,
        " <span class=\"needed\">{} more approval{} needed</span>",
        v.needed,
        if v.needed == 1 { " is" } else { "s are" }
    );
    row(out, "Approvals", &approvals);
    row(
        out,
        "Expires",
        &format!("{} ({})", html_escape(&v.expires), left(left_ms)),
    );
    row(
        out,
        "Request",
        &format!(
            "<code>{id}</code>, digest <code class=\"digest\">{}</code>",
            html_escape(&v.digest)
        ),
    );
    let _ = writeln!(
        out,
        "</dl>\n<form method=\"post\" action=\"/requests/{id}/decide\" class=\"decide\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <label for=\"c-{id}\">Comment</label>\n\
         <textarea name=\"comment\" id=\"c-{id}\" rows=\"2\" maxlength=\"2000\"></textarea>\n\
         <div class=\"buttons\"><button type=\"submit\" name=\"decision\" value=\"approve\" \
         class=\"approve\">Approve</button> <button type=\"submit\" name=\"decision\" \
         value=\"deny\" class=\"deny\">Deny</button></div>\n</form>\n</article>",
        csrf = html_escape(&s.csrf),
    );
}

fn kv_table<'a>(kv: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut t = String::from("<table class=\"kv\">");
    for (k, v) in kv {
        let _ = write!(
            t,
            "<tr><th><code>{}</code></th><td><code>{}</code></td></tr>",
            show(k),
            show(v)
        );
    }
    t.push_str("</table>");
    t
}

fn names(list: &[String], empty: &str) -> String {
    if list.is_empty() {
        return empty.to_owned();
    }
    list.iter()
        .map(|r| format!("<code>{}</code>", show(r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who may approve, in words.
fn requirement_html(d: &api::RequestDoc) -> String {
    let r = &d.requirement;
    let mut parts = Vec::new();
    for c in &r.clauses {
        let from = match &c.eligible {
            None => "anyone".to_owned(),
            Some(e) => {
                let who: Vec<String> = e.iter().map(|p| html_escape(p)).collect();
                if c.approvers.is_empty() {
                    who.join(", ")
                } else {
                    format!(
                        "{} ({})",
                        c.approvers
                            .iter()
                            .map(|a| html_escape(a))
                            .collect::<Vec<_>>()
                            .join(", "),
                        who.join(", ")
                    )
                }
            }
        };
        parts.push(format!(
            "{} from {from} (rule <code>{}</code>)",
            c.min_approvals,
            html_escape(&c.rule)
        ));
    }
    format!(
        "{} distinct approval{}: {}{}",
        r.min_approvals,
        if r.min_approvals == 1 { "" } else { "s" },
        parts.join("; "),
        if r.allow_requester {
            ""
        } else {
            "; never the requester"
        }
    )
}

/// "in 12 min", coarse on purpose so the refreshed list only changes when something does.
fn left(ms: i64) -> String {
    let min = ms / 60_000;
    match min {
        i64::MIN..=0 => "in under a minute".into(),
        1..=119 => format!("in {min} min"),
        _ => format!("in {} h {} min", min / 60, min % 60),
    }
}

const PAGE_JS: &str = r#"// gate: refreshes the list of pending requests every 2.5 s. Approving and denying are plain
// form posts and need none of this.
(function () {
  "use strict";
  var list = document.getElementById("requests");
  if (!list || !window.fetch) return;
  var last = null;
  // Never replace the list under someone writing a comment.
  function busy() {
    var boxes = list.querySelectorAll("textarea");
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].value !== "" || boxes[i] === document.activeElement) return true;
    }
    return false;
  }
  function tick() {
    if (busy()) return;
    fetch("/fragment", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === last || busy()) return;
        last = html;
        list.innerHTML = html;
      })
      .catch(function () {});
  }
  window.setInterval(tick, 2500);
})();
"#;

const PAGE_CSS: &str = r#"body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #f5f5f7; }
header { display: flex; align-items: center; justify-content: space-between; padding: .6em 1.2em; background: #1d1d1f; color: #fff; }
header h1 { margin: 0; font-size: 1.3em; }
.who form.inline { display: inline; margin-left: .8em; }
main { max-width: 60em; margin: 0 auto; padding: 1em 1.2em; }
main.narrow { max-width: 34em; margin-top: 3em; }
h2 { font-size: 1.15em; }
.request { background: #fff; border: 1px solid #d2d2d7; border-radius: 8px; padding: .8em 1.2em; margin: 1em 0; }
.request h3 { margin: .2em 0 .6em; font-size: 1.05em; }
code, .cmd { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.cmd { white-space: pre-wrap; word-break: break-all; background: #f0f0f3; padding: .15em .4em; border-radius: 4px; }
dl { display: grid; grid-template-columns: 9em 1fr; gap: .25em 1em; margin: 0; }
dt { font-weight: 600; color: #515154; }
dd { margin: 0; word-break: break-word; }
ol.argv { margin: 0; padding-left: 2em; }
ul { margin: 0; padding-left: 1.2em; }
table.kv { border-collapse: collapse; }
table.kv th, table.kv td { text-align: left; padding: 0 .8em 0 0; font-weight: normal; }
.ctl { color: #b00020; background: #fde7ea; border-radius: 3px; padding: 0 .15em; }
.needed { color: #8a5a00; }
.digest { font-size: .85em; color: #6e6e73; word-break: break-all; }
form.decide { margin-top: .8em; border-top: 1px solid #e5e5ea; padding-top: .6em; }
form.decide label { display: block; font-weight: 600; }
textarea { width: 100%; box-sizing: border-box; font: inherit; }
.buttons { margin-top: .4em; }
button { font: inherit; padding: .3em 1em; border-radius: 6px; border: 1px solid #86868b; background: #fff; cursor: pointer; }
button.approve { background: #1a7f37; border-color: #1a7f37; color: #fff; }
button.deny { background: #cf222e; border-color: #cf222e; color: #fff; }
.flash { padding: .6em .9em; border-radius: 6px; }
.flash.ok { background: #dafbe1; border: 1px solid #1a7f37; }
.flash.err { background: #ffebe9; border: 1px solid #cf222e; }
.note, .empty { color: #6e6e73; }
input[type=password] { font: inherit; width: 100%; box-sizing: border-box; margin: .3em 0 .6em; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_shows_hidden_characters() {
        assert_eq!(
            html_escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(
            show("a\u{202e}b\n<"),
            "a<span class=\"ctl\">\\u{202e}</span>b<span class=\"ctl\">\\n</span>&lt;"
        );
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8700"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8700"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8700"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn cookies_parse_and_secrets_compare() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gate_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, SIGNIN_COOKIE), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", ""));
    }
}
