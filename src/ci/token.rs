//! The requester's side: the OIDC ID token a CI job can present, sent with its request to the
//! server (never used locally). GitHub Actions hands one out over HTTP to a job granted
//! `permissions: id-token: write`; GitLab CI puts one in a variable named by `id_tokens:`
//! (gate reads `GATE_ID_TOKEN`). The token is a credential: [`IdToken`]'s `Debug` redacts it.

use std::time::Duration;

/// An ID token as the CI system issued it. Never printed, logged or recorded.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct IdToken(String);

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdToken(redacted)")
    }
}

impl IdToken {
    pub fn new(s: String) -> Self {
        IdToken(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The variable a GitLab job's `id_tokens:` entry (or anything else) puts the token in.
pub const TOKEN_VAR: &str = "GATE_ID_TOKEN";
/// The audience gate asks GitHub's token endpoint for (`gate` when unset).
pub const AUDIENCE_VAR: &str = "GATE_ID_TOKEN_AUDIENCE";
pub const DEFAULT_AUDIENCE: &str = "gate";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot get a GitHub Actions ID token: {0}")]
    GitHub(String),
    #[error("`{TOKEN_VAR}` is not an ID token (expected a JWT: three base64url parts)")]
    Malformed,
}

/// The ID token this job can present, if any: `GATE_ID_TOKEN` when set, else GitHub's when its
/// request variables are set. `Ok(None)`: this job has no token (its CI provenance stays
/// claims). A token that was offered but could not be had is an error: the requester asked for
/// a verified identity and must not silently go on without one.
pub fn from_env() -> Result<Option<IdToken>, TokenError> {
    if let Ok(t) = std::env::var(TOKEN_VAR)
        && !t.trim().is_empty()
    {
        let t = t.trim().to_owned();
        if t.split('.').count() != 3 || t.len() > super::jwt::MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        return Ok(Some(IdToken(t)));
    }
    let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default();
    let bearer = std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").unwrap_or_default();
    if url.is_empty() || bearer.is_empty() {
        return Ok(None);
    }
    let audience = std::env::var(AUDIENCE_VAR)
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    github(&url, &bearer, &audience).map(Some)
}

/// Asks GitHub's token endpoint: `GET $URL&audience=AUD` with the job's request token as a
/// bearer → `{"value": "<jwt>"}`.
fn github(url: &str, bearer: &str, audience: &str) -> Result<IdToken, TokenError> {
    let fail = |m: String| TokenError::GitHub(m);
    let mut u = reqwest::Url::parse(url)
        .map_err(|_| fail("`ACTIONS_ID_TOKEN_REQUEST_URL` is not a URL".into()))?;
    u.query_pairs_mut().append_pair("audience", audience);
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resp = http
        .get(u)
        .header(reqwest::header::AUTHORIZATION, format!("bearer {bearer}"))
        .send()
        .map_err(|e| fail(crate::http::error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fail(format!(
            "the token endpoint answered HTTP {}",
            status.as_u16()
        )));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        value: String,
    }
    let a: Answer = resp
        .json()
        .map_err(|_| fail("the token endpoint's answer has no `value`".into()))?;
    if a.value.split('.').count() != 3 || a.value.len() > super::jwt::MAX_TOKEN_LEN {
        return Err(fail("the token endpoint's `value` is not a JWT".into()));
    }
    Ok(IdToken(a.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_token_never_shows_in_debug_output() {
        let t = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".into());
        assert_eq!(format!("{t:?}"), "IdToken(redacted)");
    }
}
