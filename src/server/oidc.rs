//! The server's side of CI identity (issue 13 §6): a request may carry an OIDC ID token; the
//! server checks it against the issuers its own policy trusts (`ci.issuers`) and, only if every
//! check passes, makes the token's claims the requester's verified CI identity. The issuer's
//! keys come from its discovery document (`/.well-known/openid-configuration` → `jwks_uri`)
//! or the policy's `jwks_url`, cached for [`KEYS_TTL`]; a token naming a key the cache lacks
//! refetches, at most once per [`REFETCH_EVERY`] per issuer, so garbage `kid`s cannot turn
//! the server into a request pump.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ci::VerifiedCi;
use crate::ci::jwt::{self, Expect, JwtError, KeySet};
use crate::policy::ci::{CiIssuer, url_allowed};

/// How long fetched keys are used before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(10 * 60);
/// The least time between two fetches of one issuer's keys.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// The largest discovery document or JWKS read.
const MAX_BODY: usize = 256 * 1024;

/// What a request's ID token comes to.
#[derive(Debug)]
#[must_use]
pub enum TokenCheck {
    /// No token: the requester's CI provenance stays claims.
    Absent,
    /// Every check passed.
    Verified(VerifiedCi),
    /// A token was presented and is not acceptable: the request is refused.
    Refused(String),
}

struct Cached {
    keys: KeySet,
    /// When `keys` were fetched (`None`: never successfully).
    fetched: Option<Instant>,
    /// When a fetch was last tried, successful or not: failures are not retried sooner than
    /// [`REFETCH_EVERY`] either, so an issuer that is down is not hammered once per request.
    attempted: Instant,
}

/// The issuers the policy trusts and their cached keys.
pub struct Verifier {
    issuers: Vec<CiIssuer>,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<HashMap<String, Cached>>,
}

impl Verifier {
    pub fn new(issuers: Vec<CiIssuer>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Verifier {
            issuers,
            http,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Checks a request's token (if any) at `now` (seconds since the epoch).
    pub async fn check(&self, token: Option<&str>, now: i64) -> TokenCheck {
        let Some(token) = token else {
            return TokenCheck::Absent;
        };
        match self.verify(token, now).await {
            Ok(v) => TokenCheck::Verified(v),
            Err(why) => TokenCheck::Refused(why),
        }
    }

    async fn verify(&self, token: &str, now: i64) -> Result<VerifiedCi, String> {
        let unverified = jwt::open(token).map_err(|e| e.to_string())?;
        let Some(issuer) = self.issuers.iter().find(|i| i.issuer == unverified.issuer) else {
            return Err(JwtError::Issuer.to_string());
        };
        let keys = self.keys(issuer, &unverified.kid).await?;
        unverified
            .verify(
                &keys,
                Expect {
                    issuer: &issuer.issuer,
                    audience: &issuer.audience,
                    now,
                },
            )
            .map_err(|e| e.to_string())
    }

    /// The issuer's keys, fetched when the cache has none, they are older than the TTL, or
    /// they lack `kid` and the last fetch is old enough to try again.
    async fn keys(&self, issuer: &CiIssuer, kid: &str) -> Result<KeySet, String> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(c) = cache.get(&issuer.issuer) {
            let fresh = c.fetched.is_some_and(|f| f.elapsed() < KEYS_TTL);
            if fresh && c.keys.get(kid).is_some() {
                return Ok(c.keys.clone());
            }
            if c.attempted.elapsed() < REFETCH_EVERY {
                return if fresh {
                    Ok(c.keys.clone())
                } else {
                    Err(
                        "the server could not fetch the keys of the ID token's issuer just now; \
                         try again shortly"
                            .into(),
                    )
                };
            }
        }
        match self.fetch(issuer).await {
            Ok(keys) => {
                cache.insert(
                    issuer.issuer.clone(),
                    Cached {
                        keys: keys.clone(),
                        fetched: Some(now),
                        attempted: now,
                    },
                );
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!("cannot fetch the keys of CI issuer {}: {e}", issuer.issuer);
                let c = cache.entry(issuer.issuer.clone()).or_insert(Cached {
                    keys: KeySet::default(),
                    fetched: None,
                    attempted: now,
                });
                c.attempted = now;
                // Keys still within their TTL stay usable when a refetch fails.
                if c.fetched.is_some_and(|f| f.elapsed() < KEYS_TTL) {
                    return Ok(c.keys.clone());
                }
                Err(format!(
                    "the server cannot fetch the keys of the ID token's issuer: {e}"
                ))
            }
        }
    }

    async fn fetch(&self, issuer: &CiIssuer) -> Result<KeySet, String> {
        let jwks_url = match &issuer.jwks_url {
            Some(u) => u.clone(),
            None => {
                let doc = self
                    .get(&format!(
                        "{}/.well-known/openid-configuration",
                        issuer.issuer
                    ))
                    .await?;
                let v: serde_json::Value = serde_json::from_slice(&doc)
                    .map_err(|_| "its discovery document is not JSON".to_owned())?;
                // OpenID Connect Discovery §4.3: the document must name the issuer it was
                // fetched for, or its keys are another issuer's.
                if v.get("issuer")
                    .and_then(|i| i.as_str())
                    .map(|i| i.trim_end_matches('/'))
                    != Some(issuer.issuer.as_str())
                {
                    return Err("its discovery document names another issuer".into());
                }
                let uri = v
                    .get("jwks_uri")
                    .and_then(|u| u.as_str())
                    .ok_or("its discovery document has no `jwks_uri`")?;
                url_allowed(uri).map_err(|why| format!("its `jwks_uri` {why}"))?;
                uri.to_owned()
            }
        };
        KeySet::parse(&self.get(&jwks_url).await?)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| crate::http::error_chain(&e))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {} from {url}", resp.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| crate::http::error_chain(&e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("{url} answered more than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
