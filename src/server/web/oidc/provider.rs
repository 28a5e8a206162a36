//! The identity provider as the sign-in sees it: its discovery document (whose `issuer` must be
//! the configured one exactly) and keys, cached for [`PROVIDER_TTL`] and fetched again sooner
//! only for a `kid` the cache lacks (at most once per [`REFETCH_EVERY`]); and the code exchange
//! at its token endpoint, authenticated with the client's secret.

use std::time::{Duration, Instant};

use axum::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{Refused, SignIn, printable};
use crate::ci::jwt::KeySet;
use crate::policy::ci::url_allowed;
use crate::policy::signin::ClientAuth;

/// How long the discovery document and keys are used before they are fetched again.
const PROVIDER_TTL: Duration = Duration::from_secs(10 * 60);
/// The least time between two fetches prompted by an unknown `kid`.
const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// The largest discovery document, JWKS or token response read.
const MAX_BODY: usize = 256 * 1024;

/// The provider's endpoints and keys, as last fetched.
#[derive(Clone)]
pub(super) struct Provider {
    pub(super) authorization: String,
    token: String,
    pub(super) keys: KeySet,
    fetched: Instant,
}

impl SignIn {
    /// The provider's endpoints and keys: cached for [`PROVIDER_TTL`], fetched again after.
    pub(super) async fn provider(&self, want_kid: Option<&str>) -> Result<Provider, Refused> {
        let mut cache = self.cache.lock().await;
        if let Some(p) = cache.as_ref() {
            let fresh = p.fetched.elapsed() < PROVIDER_TTL;
            let has_kid = want_kid.is_none_or(|k| p.keys.get(k).is_some());
            if fresh && (has_kid || p.fetched.elapsed() < REFETCH_EVERY) {
                return Ok(p.clone());
            }
        }
        match self.fetch().await {
            Ok(p) => {
                *cache = Some(p.clone());
                Ok(p)
            }
            Err(why) => {
                tracing::warn!(
                    "sign-in: cannot reach the identity provider {}: {why}",
                    self.issuer
                );
                Err(Refused::Unreachable(why))
            }
        }
    }

    async fn fetch(&self) -> Result<Provider, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: Value = serde_json::from_slice(&self.get(&url).await?)
            .map_err(|_| "its discovery document is not JSON".to_owned())?;
        // OpenID Connect Discovery §4.3: exactly the issuer configured, or these are another
        // provider's endpoints and keys.
        if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(format!(
                "its discovery document names another issuer than `{}`",
                self.issuer
            ));
        }
        let endpoint = |name: &str| -> Result<String, String> {
            let u = doc
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("its discovery document has no `{name}`"))?;
            url_allowed(u).map_err(|why| format!("its `{name}` {why}"))?;
            Ok(u.to_owned())
        };
        let (authorization, token, jwks) = (
            endpoint("authorization_endpoint")?,
            endpoint("token_endpoint")?,
            endpoint("jwks_uri")?,
        );
        let keys = KeySet::parse(&self.get(&jwks).await?)?;
        Ok(Provider {
            authorization,
            token,
            keys,
            fetched: Instant::now(),
        })
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| crate::http::error_chain(&e))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {} from {url}", resp.status().as_u16()));
        }
        read_capped(resp).await
    }

    /// Sends the code, the PKCE verifier and the client's credentials to the token endpoint;
    /// the ID token it answers with.
    pub(super) async fn exchange(
        &self,
        p: &Provider,
        code: &str,
        verifier: &str,
    ) -> Result<String, Refused> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut req = self
            .http
            .post(&p.token)
            .header(header::ACCEPT, "application/json");
        match (&self.secret, self.auth) {
            (Some(secret), ClientAuth::Basic) => {
                // RFC 6749 §2.3.1: each part form-encoded, then Basic.
                let pair = format!(
                    "{}:{}",
                    form_encode(&self.client_id),
                    form_encode(secret.expose())
                );
                req = req.header(
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            (Some(secret), ClientAuth::Post) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret.expose()));
            }
            (None, _) => form.push(("client_id", &self.client_id)),
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let resp = req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| Refused::Unreachable(crate::http::error_chain(&e)))?;
        let status = resp.status();
        let body = read_capped(resp).await.map_err(Refused::Unreachable)?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let why = v
                .get("error")
                .and_then(Value::as_str)
                .map(printable)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            if status.is_server_error() {
                return Err(Refused::Unreachable(format!(
                    "its token endpoint answered {why}"
                )));
            }
            return Err(Refused::CodeRejected(why));
        }
        v.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(Refused::NoIdToken)
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| crate::http::error_chain(&e))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("an answer longer than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_what_basic_auth_must() {
        assert_eq!(form_encode("a b:c/d%e+f"), "a+b%3Ac%2Fd%25e%2Bf");
        assert_eq!(form_encode("gate-web_1.x"), "gate-web_1.x");
    }
}
