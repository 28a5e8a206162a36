//! The web page at `/`: sign in with a token, see the pending requests with their whole context,
//! approve or deny them with a comment.
//!
//! - Sign-in takes an API token once and makes a browser session ([`session`]): a random
//!   256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept in the store (only its SHA-256)
//!   with the principal and the token's hash, so revoking the token ends the session at the
//!   next click and a restart signs nobody out. The token itself never goes into a cookie.
//! - Every POST carries a CSRF token in a hidden field (per session; before sign-in, a
//!   double-submit cookie) and is refused when its `Origin` names another host ([`csrf`]).
//! - Decisions go through [`api::decide_as`], the same eligibility check, audit event and
//!   long-poll wake-up as `POST /v1/requests/{id}/approve`.
//! - The HTML comes from templates that escape every value ([`render`]); control and bidi
//!   characters are shown as visible escapes.
//! - With `server.oidc` in the server's policy, people sign in through the organisation's
//!   identity provider instead ([`oidc`]); the token form stays unless `token_signin: false`.
//! - The page refreshes its list every 2.5 s with a small script served from `/page.js` (CSP
//!   `script-src 'self'`), pausing while a comment is being written. Approving needs no script.

mod csrf;
pub mod oidc;
mod render;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use self::csrf::{same_origin, same_secret};
use self::render::{Item, error_page, page};
use self::session::{
    Flash, SESSION_COOKIE, SESSION_TTL_MS, SIGNIN_COOKIE, SIGNIN_TTL_SECS, Session, cookie,
    set_cookie,
};
use super::AppState;
use super::api;
use super::auth;
use crate::approval::RequestStatus;
use crate::request::shell_join;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route("/fragment", get(fragment))
        .route("/signin", post(signin))
        .route("/signout", post(signout))
        .route("/auth/login", get(oidc::login))
        .route("/auth/callback", get(oidc::callback))
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

/// A request answered with an error page instead.
struct PageError(StatusCode, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0, &self.1)
    }
}

fn internal(e: impl std::fmt::Display) -> PageError {
    PageError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The signed-in session behind the request's cookie, while its token is still good.
fn current(st: &AppState, headers: &HeaderMap) -> Result<Option<Session>, PageError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let store = st.store.as_ref();
    let now = st.clock.now_ms();
    let Some(s) = session::get(store, id, now).map_err(internal)? else {
        return Ok(None);
    };
    // A session the identity provider made has no token behind it: it lasts while this
    // server still signs people in through that provider and still names the principal.
    if s.token_hash.starts_with(oidc::SESSION_MARK) {
        if st
            .signin
            .as_ref()
            .is_some_and(|si| si.keeps(&s.token_hash, &s.principal))
        {
            return Ok(Some(s));
        }
        session::remove(store, id).map_err(internal)?;
        return Ok(None);
    }
    let row = store.token_by_hash(&s.token_hash).map_err(internal)?;
    let live = row.is_some_and(|r| {
        r.principal == s.principal && r.revoked_ms.is_none() && r.expires_ms.is_none_or(|e| e > now)
    });
    if !live {
        session::remove(store, id).map_err(internal)?;
        return Ok(None);
    }
    Ok(Some(s))
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

/// The checks every signed-in POST passes: same origin, a session, its CSRF token.
fn checked_post(st: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Session, PageError> {
    let refuse = |m: &str| Err(PageError(StatusCode::FORBIDDEN, m.to_owned()));
    if !same_origin(headers) {
        return refuse("This form was sent from another site.");
    }
    let Some(s) = current(st, headers)? else {
        return refuse("You are not signed in (or your session ended); sign in again.");
    };
    if !same_secret(&s.csrf, csrf) {
        return refuse(
            "This form is stale or came from another site; reload the page and try again.",
        );
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn index(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match current(&st, &headers) {
        Err(e) => return e.into_response(),
        Ok(None) => return signin_page(&st, StatusCode::OK, None),
        Ok(Some(s)) => s,
    };
    let flash = match session::take_flash(st.store.as_ref(), &s.id) {
        Ok(f) => f,
        Err(e) => return internal(e).into_response(),
    };
    match list(&st, &s) {
        Ok(list) => page(StatusCode::OK, render::main_page(&s, flash.as_ref(), list)),
        Err(e) => e.into_response(),
    }
}

/// The list alone, for the page's refresh script.
async fn fragment(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match current(&st, &headers) {
        Err(e) => e.into_response(),
        Ok(None) => (StatusCode::UNAUTHORIZED, "sign in again\n").into_response(),
        Ok(Some(s)) => match list(&st, &s) {
            Ok(list) => page(StatusCode::OK, list),
            Err(e) => e.into_response(),
        },
    }
}

/// The pending requests that have not expired, rendered.
fn list(st: &AppState, s: &Session) -> Result<maud::Markup, PageError> {
    let rows = st
        .store
        .request_list(Some(RequestStatus::Pending))
        .map_err(internal)?;
    let now = st.clock.now_ms();
    let items: Vec<Item> = rows
        .iter()
        .filter(|(r, _)| r.expires_ms > now)
        .map(|(row, decisions)| match api::view(row, decisions) {
            Ok(v) => Item::Request(Box::new(v), row.expires_ms - now),
            Err(e) => Item::Unreadable(row.id.clone(), e.message),
        })
        .collect();
    Ok(render::list(&items, s))
}

fn signin_page(st: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Some(csrf) = session::random_hex(32) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for the sign-in form",
        );
    };
    let choices = render::SigninChoices {
        provider: st.signin.as_ref().map(|si| si.label()),
        token: st.signin.as_ref().is_none_or(|si| si.token_signin),
    };
    let mut r = page(status, render::signin(&csrf, error, &choices));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &csrf, SIGNIN_TTL_SECS),
    );
    r
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
        return error_page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site.",
        );
    }
    if st.signin.as_ref().is_some_and(|si| !si.token_signin) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Signing in to this page with a token is turned off: sign in through the identity provider.",
        );
    }
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if !same_secret(expected, &f.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This sign-in form is stale or came from another site; reload the page and sign in again.",
        );
    }
    let token = f.token.trim();
    if token.is_empty() {
        return signin_page(&st, StatusCode::UNAUTHORIZED, Some("Enter a token."));
    }
    let principal = match auth::principal_of(st.store.as_ref(), Some(token), st.clock.now_ms()) {
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Ok(Err(failure)) => {
            let m = match failure {
                auth::AuthFailure::Missing => "Enter a token.",
                auth::AuthFailure::Unknown => "Unknown token: check it and try again.",
                auth::AuthFailure::Revoked => "This token was revoked.",
                auth::AuthFailure::Expired => "This token has expired.",
            };
            return signin_page(&st, StatusCode::UNAUTHORIZED, Some(m));
        }
        Ok(Ok(p)) => p,
    };
    let store = st.store.as_ref();
    // A new id on every sign-in; a session this browser had before ends.
    if let Some(old) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = session::remove(store, old)
    {
        return internal(e).into_response();
    }
    let id = match session::create(store, principal, auth::hash_token(token), st.clock.now_ms()) {
        Ok(id) => id,
        Err(e) => return internal(e).into_response(),
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
    let s = match checked_post(&st, &headers, &f.csrf) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = session::remove(st.store.as_ref(), &s.id) {
        return internal(e).into_response();
    }
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
    let s = match checked_post(&st, &headers, &f.csrf) {
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
                let text = match (approve, row.status) {
                    (true, RequestStatus::Approved) => {
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
    if let Err(e) = session::set_flash(st.store.as_ref(), &s.id, &flash) {
        return internal(e).into_response();
    }
    see_other()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        render::PAGE_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        render::PAGE_CSS,
    )
        .into_response()
}

fn see_other() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}
