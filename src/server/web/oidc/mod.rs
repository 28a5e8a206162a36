//! Sign-in to the web page through the organisation's identity provider (issue 14 §4): the
//! OpenID Connect authorization code flow with PKCE (S256), `state` and `nonce`.
//!
//! - `GET /auth/login` makes a random `state`, `nonce`, PKCE verifier and a browser-binding
//!   value, keeps them in the store under the SHA-256 of the `state` (so any replica can take
//!   the callback), puts the binding value in an `HttpOnly` cookie, and sends the browser to
//!   the provider's authorization endpoint (from its discovery document, whose `issuer` must
//!   equal the configured one exactly).
//! - `GET /auth/callback` takes the pending sign-in (single use, ten minutes), checks the
//!   browser's cookie against it — a callback URL sent to someone else signs nobody in —
//!   exchanges the code at the token endpoint with the verifier and the client's secret, and
//!   checks the ID token: signature through the provider's JWKS ([`crate::ci::jwt`]: RS256 or
//!   ES256 only, by `kid`), `iss`, `aud` = the client id (and `azp`, when present), `exp`,
//!   `iat`, and `nonce` = the one kept for this sign-in. The principal is the identity whose
//!   `oidc_sub` is the token's `sub`, else whose `email` is its `email` with
//!   `email_verified: true`; no match is a 403 and no session.
//!
//! Every refusal is a [`Refused`], shown as a page with its status (400, 401, 403, 503) and
//! never a session. Nothing here logs a code, token, verifier or nonce. The provider's
//! discovery, keys and token endpoint are in `provider.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::csrf::same_secret;
use super::render::{error_page, page, signed_in};
use super::session::{self, SESSION_COOKIE, SESSION_TTL_MS, cookie, random_hex, set_cookie};
use crate::ci::jwt::{self, Expect, JwtError};
use crate::policy::ci::url_allowed;
use crate::policy::signin::{ClientAuth, IDENTITY_EMAIL, IDENTITY_SUB, OidcSignIn};
use crate::secrets::Token;
use crate::server::AppState;
use crate::server::store::OidcLoginRow;

mod provider;
mod refused;

use provider::Provider;
pub use refused::Refused;

/// The cookie that binds a started sign-in to the browser that started it.
pub const LOGIN_COOKIE: &str = "gate_oidc";
/// How long a started sign-in may take to come back.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Started sign-ins kept at most; past this, the oldest are dropped.
const MAX_PENDING: usize = 10_000;
/// What a session made here keeps in place of a token hash (a token hash is 64 hex digits, so
/// the two never meet).
pub const SESSION_MARK: &str = "oidc:";

/// The sign-in settings, resolved at start: the secret read, the identities indexed.
pub struct SignIn {
    issuer: String,
    client_id: String,
    secret: Option<Token>,
    auth: ClientAuth,
    scopes: String,
    redirect_uri: String,
    /// Whether cookies get `Secure` (the page is reached over https).
    secure: bool,
    /// Whether the page still offers sign-in with an API token.
    pub token_signin: bool,
    by_sub: HashMap<String, String>,
    /// Lower-cased email → principal.
    by_email: HashMap<String, String>,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Provider>>,
}

/// Why a configured sign-in cannot start (exit 78 at `gate serve`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "`server.oidc` needs `gate serve --public-url`: the provider sends people back to {{public-url}}/auth/callback"
    )]
    NoPublicUrl,
    #[error(
        "`--public-url {0}` must be https for the sign-in (plain http only on a loopback host)"
    )]
    InsecurePublicUrl(String),
    #[error("{0} `{1}` is listed under both `identities.{2}` and `identities.{3}`")]
    Ambiguous(&'static str, String, String, String),
}

impl SignIn {
    /// Resolves the policy's `server.oidc` against `--public-url` and `identities`; the
    /// client secret comes already read from its reference.
    pub fn new(
        spec: &OidcSignIn,
        secret: Option<Token>,
        public_url: Option<&str>,
        identities: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    ) -> Result<SignIn, ConfigError> {
        let base = public_url.ok_or(ConfigError::NoPublicUrl)?;
        url_allowed(base).map_err(|_| ConfigError::InsecurePublicUrl(base.to_owned()))?;
        let (mut by_sub, mut by_email) = (HashMap::new(), HashMap::<String, String>::new());
        for (principal, accounts) in identities {
            if let Some(sub) = accounts.get(IDENTITY_SUB)
                && let Some(other) = by_sub.insert(sub.clone(), principal.clone())
            {
                return Err(ConfigError::Ambiguous(
                    "`oidc_sub`",
                    sub.clone(),
                    other,
                    principal.clone(),
                ));
            }
            if let Some(email) = accounts.get(IDENTITY_EMAIL)
                && let Some(other) = by_email.insert(email.to_lowercase(), principal.clone())
            {
                return Err(ConfigError::Ambiguous(
                    "email",
                    email.clone(),
                    other,
                    principal.clone(),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Ok(SignIn {
            issuer: spec.issuer.clone(),
            client_id: spec.client_id.clone(),
            secret,
            auth: spec.client_auth,
            scopes: spec.scopes.join(" "),
            redirect_uri: format!("{}/auth/callback", base.trim_end_matches('/')),
            secure: base.starts_with("https://"),
            token_signin: spec.token_signin,
            by_sub,
            by_email,
            http,
            cache: tokio::sync::Mutex::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the provider sends people back: `{public-url}/auth/callback`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The provider's name as the sign-in button shows it: the issuer's host.
    pub fn label(&self) -> &str {
        let rest = self.issuer.split_once("://").map_or("", |(_, r)| r);
        rest.split(['/', '?', '#']).next().unwrap_or(rest)
    }

    /// Whether a session with this mark and principal is still good: made through this
    /// provider (a session from one the policy no longer names ends), for a principal the
    /// identities still name (someone taken out of `identities` is signed out at the next
    /// click after the server restarts).
    pub fn keeps(&self, mark: &str, principal: &str) -> bool {
        mark == self.session_mark()
            && self
                .by_sub
                .values()
                .chain(self.by_email.values())
                .any(|p| p == principal)
    }

    /// What a session made here keeps in place of a token hash.
    fn session_mark(&self) -> String {
        format!("{SESSION_MARK}{}", sha256_hex(&self.issuer))
    }

    /// The authorization URL for a new sign-in, after keeping it in the store; with the
    /// browser-binding value for the cookie.
    async fn start(&self, st: &AppState, return_to: String) -> Result<(String, String), Refused> {
        let p = self.provider(None).await?;
        let (Some(state), Some(nonce), Some(binding), Some(verifier)) = (
            random_hex(32),
            random_hex(32),
            random_hex(32),
            random_hex(32),
        ) else {
            return Err(Refused::Internal("no randomness for a sign-in".into()));
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let now = st.clock.now_ms();
        let row = OidcLoginRow {
            browser_hash: sha256_hex(&binding),
            verifier,
            nonce: nonce.clone(),
            return_to,
            created_ms: now,
        };
        st.store
            .oidc_login_insert(&sha256_hex(&state), &row, now - LOGIN_TTL_MS, MAX_PENDING)
            .map_err(|e| Refused::Internal(e.to_string()))?;
        let mut url = reqwest::Url::parse(&p.authorization).map_err(|_| {
            Refused::Unreachable("its `authorization_endpoint` is not a URL".into())
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.into(), binding))
    }

    /// Checks a callback from start to end; the principal it signs in.
    async fn finish(
        &self,
        st: &AppState,
        headers: &HeaderMap,
        q: &[(String, String)],
    ) -> Result<SignedIn, Refused> {
        let param = |name: &str| -> Result<Option<&str>, Refused> {
            let mut it = q.iter().filter(|(k, _)| k == name);
            match (it.next(), it.next()) {
                (_, Some(_)) => Err(Refused::Repeated(name.to_owned())),
                (v, None) => Ok(v.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())),
            }
        };
        let state = param("state")?.ok_or(Refused::MissingState)?;
        let login = st
            .store
            .oidc_login_take(&sha256_hex(state))
            .map_err(|e| Refused::Internal(e.to_string()))?
            .ok_or(Refused::UnknownState)?;
        if st.clock.now_ms() - login.created_ms >= LOGIN_TTL_MS {
            return Err(Refused::Expired);
        }
        let binding = cookie(headers, LOGIN_COOKIE)
            .map(sha256_hex)
            .unwrap_or_default();
        if !same_secret(&binding, &login.browser_hash) {
            return Err(Refused::OtherBrowser);
        }
        // RFC 9207: a provider that names itself in the answer must be the one asked, or the
        // answer (and its code) came from another provider the browser also uses.
        if param("iss")?.is_some_and(|iss| iss != self.issuer) {
            return Err(Refused::MixUp);
        }
        if let Some(error) = param("error")? {
            return Err(Refused::Provider(printable(error)));
        }
        let code = param("code")?.ok_or(Refused::MissingCode)?;
        let p = self.provider(None).await?;
        let id_token = self.exchange(&p, code, &login.verifier).await?;
        let unverified = jwt::open(&id_token).map_err(Refused::IdToken)?;
        if unverified.issuer != self.issuer {
            return Err(Refused::IdToken(JwtError::Issuer));
        }
        let keys = self.provider(Some(&unverified.kid)).await?.keys;
        let now = st.clock.now_ms().div_euclid(1000);
        let claims = unverified
            .verify_claims(
                &keys,
                Expect {
                    issuer: &self.issuer,
                    audience: &self.client_id,
                    now,
                },
            )
            .map_err(Refused::IdToken)?;
        self.check_claims(&claims, &login.nonce)?;
        let principal = self.principal_of(&claims)?;
        Ok(SignedIn {
            principal,
            return_to: login.return_to,
        })
    }

    /// The checks the ID token's signature and standard claims don't cover: `iat` present,
    /// `azp`, `nonce`.
    fn check_claims(&self, c: &serde_json::Map<String, Value>, nonce: &str) -> Result<(), Refused> {
        for claim in ["iat", "sub"] {
            if !c.contains_key(claim) {
                return Err(Refused::IdToken(JwtError::Missing(claim)));
            }
        }
        let several_audiences = c
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match c.get("azp") {
            Some(Value::String(azp)) if azp == &self.client_id => {}
            None if !several_audiences => {}
            _ => return Err(Refused::Azp),
        }
        match c.get("nonce").and_then(Value::as_str) {
            None => Err(Refused::NonceMissing),
            Some(n) if same_secret(n, nonce) => Ok(()),
            Some(_) => Err(Refused::NonceMismatch),
        }
    }

    /// The principal a verified ID token names: by `sub` first, then by a verified `email`.
    fn principal_of(&self, c: &serde_json::Map<String, Value>) -> Result<String, Refused> {
        let sub = c.get("sub").and_then(Value::as_str).unwrap_or("");
        if let Some(p) = self.by_sub.get(sub) {
            return Ok(p.clone());
        }
        let email = c.get("email").and_then(Value::as_str);
        let Some(email) = email else {
            return Err(Refused::NotKnown(format!("subject {}", printable(sub))));
        };
        let Some(p) = self.by_email.get(&email.to_lowercase()) else {
            return Err(Refused::NotKnown(printable(email)));
        };
        // Only a provider's `true` counts: an address the provider has not verified could be
        // anyone's, and matching it would hand them the principal.
        if c.get("email_verified") != Some(&Value::Bool(true)) {
            return Err(Refused::EmailUnverified(printable(email)));
        }
        Ok(p.clone())
    }
}

/// A successful sign-in.
#[must_use]
struct SignedIn {
    principal: String,
    return_to: String,
}

fn refused_page(r: &Refused) -> Response {
    tracing::warn!("sign-in refused: {}", r.message());
    let mut resp = error_page(r.status(), &r.message());
    resp.headers_mut()
        .append(header::SET_COOKIE, login_cookie("", 0, false));
    resp
}

fn login_cookie(value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    // `SameSite=Lax`, not `Strict`: the callback is a navigation from the provider's site, on
    // which a strict cookie is not sent. Only `/auth` sees it.
    HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("gate_invalid=; Max-Age=0"))
}

/// A path on this server to go to after sign-in, or `None`: no scheme, no host (`//x`, `/\x`),
/// no control characters.
pub fn local_path(p: &str) -> Option<&str> {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && !p.chars().any(|c| c.is_control() || c == '\\')
        && p.len() <= 512;
    ok.then_some(p)
}

// ---------------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Default, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    return_to: Option<String>,
}

pub async fn login(State(st): State<Arc<AppState>>, Query(q): Query<LoginQuery>) -> Response {
    let Some(si) = st.signin.as_ref() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Sign-in through an identity provider is not set up on this server (`server.oidc` in its policy).",
        );
    };
    let Some(return_to) = local_path(q.return_to.as_deref().unwrap_or("/")) else {
        return refused_page(&Refused::BadReturnTo);
    };
    match si.start(&st, return_to.to_owned()).await {
        Ok((url, binding)) => {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                login_cookie(&binding, LOGIN_TTL_MS / 1000, si.secure),
            );
            r
        }
        Err(e) => refused_page(&e),
    }
}

pub async fn callback(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let Some(si) = st.signin.as_ref() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "Sign-in through an identity provider is not set up on this server.",
        );
    };
    let done = match si.finish(&st, &headers, &q).await {
        Ok(d) => d,
        Err(e) => return refused_page(&e),
    };
    let store = st.store.as_ref();
    if let Some(old) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = session::remove(store, old)
    {
        return refused_page(&Refused::Internal(e.to_string()));
    }
    let id = match session::create(
        store,
        done.principal.clone(),
        si.session_mark(),
        st.clock.now_ms(),
    ) {
        Ok(id) => id,
        Err(e) => return refused_page(&Refused::Internal(e.to_string())),
    };
    tracing::info!(
        "{} signed in to the web page through {}",
        done.principal,
        si.issuer
    );
    // A page that moves on by itself, not a redirect: the browser arrived from the provider's
    // site, and a redirect would still count as that navigation, on which the `SameSite=Strict`
    // session cookie is not sent. The page's own refresh is a same-site navigation.
    let mut r = page(StatusCode::OK, signed_in(&done.principal, &done.return_to));
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_TTL_MS / 1000),
    );
    h.append(header::SET_COOKIE, login_cookie("", 0, si.secure));
    r
}

// ---------------------------------------------------------------------------------------------

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// At most 200 characters of `s`, with control characters left out: a provider's words on a
/// page and in the server's log.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_return_targets() {
        for ok in ["/", "/requests/abc", "/?x=1"] {
            assert_eq!(local_path(ok), Some(ok), "{ok}");
        }
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "evil.com",
            "",
            "/\u{0}x",
            "/a\\b",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_pending_sign_in_is_taken_once_and_dropped_when_stale_or_too_many() {
        use crate::server::store::{SqliteStore, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("server.db")).unwrap();
        let row = |at: i64| OidcLoginRow {
            browser_hash: "b".into(),
            verifier: "v".into(),
            nonce: "n".into(),
            return_to: "/".into(),
            created_ms: at,
        };
        store.oidc_login_insert("k1", &row(1_000), 0, 10).unwrap();
        assert_eq!(store.oidc_login_take("k1").unwrap(), Some(row(1_000)));
        assert_eq!(store.oidc_login_take("k1").unwrap(), None, "taken twice");
        // Stale ones go when the next sign-in starts.
        store.oidc_login_insert("old", &row(1_000), 0, 10).unwrap();
        store
            .oidc_login_insert("new", &row(1_000 + LOGIN_TTL_MS), 1_000, 10)
            .unwrap();
        assert_eq!(store.oidc_login_take("old").unwrap(), None);
        // Past the cap, the oldest go first.
        for i in 0..5 {
            store
                .oidc_login_insert(&format!("c{i}"), &row(2_000_000 + i), 0, 3)
                .unwrap();
        }
        assert_eq!(store.oidc_login_take("c1").unwrap(), None);
        assert!(store.oidc_login_take("c4").unwrap().is_some());
        // Debug shows neither the verifier nor the nonce.
        let shown = format!("{:?}", row(1));
        assert!(
            !shown.contains("\"v\"") && !shown.contains("\"n\""),
            "{shown}"
        );
    }
}
