//! The few Slack Web API calls the standalone backend makes, and how their failures read.
//! Slack answers API errors as HTTP 200 with `{"ok": false, "error": CODE}`; rate limits as 429
//! with `Retry-After`. The bot token travels only in the `Authorization` header: it is never in
//! a URL, an error message or `Debug` output ([`Token`] redacts).

use std::time::Duration;

use serde_json::Value;

use crate::secrets::Token;

/// Why a call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 429: come back after `Retry-After` (when Slack said).
    #[error("Slack rate-limited `{method}`")]
    RateLimited {
        method: &'static str,
        retry_after: Option<Duration>,
    },
    /// Connection refused, reset, timed out; or a non-Slack answer (a proxy's 5xx page).
    #[error("Slack is unreachable (`{method}`): {why}")]
    Unreachable { method: &'static str, why: String },
    /// `ok: false`, with Slack's code and, for `missing_scope`, the scope it needs.
    #[error("Slack refused `{method}`: `{code}`")]
    Refused {
        method: &'static str,
        code: String,
        needed: Option<String>,
    },
}

impl ApiError {
    /// Worth retrying until the deadline: a limit or an outage, not a refusal. Slack's own
    /// transient codes (`ratelimited` as a 200, `internal_error`, `fatal_error`,
    /// `service_unavailable`, `request_timeout`) count as outages.
    pub fn transient(&self) -> bool {
        match self {
            ApiError::RateLimited { .. } | ApiError::Unreachable { .. } => true,
            ApiError::Refused { code, .. } => matches!(
                code.as_str(),
                "ratelimited"
                    | "rate_limited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ),
        }
    }

    /// What the person who set gate up can do about a refusal.
    pub fn hint(&self, channel: &str) -> Option<String> {
        let ApiError::Refused { code, needed, .. } = self else {
            return None;
        };
        Some(match code.as_str() {
            "missing_scope" => format!(
                "add the `{}` scope to the Slack app (OAuth & Permissions), reinstall it, and use the new bot token",
                needed.as_deref().unwrap_or("chat:write, reactions:read")
            ),
            "channel_not_found" => format!(
                "check the backend's `channel` (`{channel}` must be a channel id such as C0123ABCD), and invite the bot to it: `/invite @gate` in the channel"
            ),
            "not_in_channel" => {
                format!("invite the bot to the channel: `/invite @gate` in `{channel}`")
            }
            "invalid_auth" | "not_authed" | "account_inactive" => {
                "the backend's `token` is not a valid bot token: copy the Bot User OAuth Token (xoxb-…) into the secret it names".to_owned()
            }
            "token_revoked" | "token_expired" => {
                "the bot token was revoked: reinstall the Slack app and store the new token in the secret the backend's `token` names".to_owned()
            }
            "message_not_found" | "cant_update_message" => {
                "the approval message was deleted or cannot be edited by this bot".to_owned()
            }
            _ => return None,
        })
    }
}

/// A Slack Web API client for one bot token.
pub struct Api {
    base: String,
    token: Token,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

impl Api {
    /// `base` is the API root (`https://slack.com/api/`); a missing trailing slash is added.
    pub fn new(base: &str, token: Token) -> Result<Api, String> {
        let mut base = base.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let url = reqwest::Url::parse(&base).map_err(|e| format!("`api_url` `{base}`: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!("`api_url` `{base}` is not an http(s) URL"));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| crate::http::error_chain(&e))?;
        Ok(Api { base, token, http })
    }

    /// POST a JSON body (Slack's write methods).
    pub fn post(&self, method: &'static str, body: &Value) -> Result<Value, ApiError> {
        let r = self
            .http
            .post(format!("{}{method}", self.base))
            .bearer_auth(self.token.expose())
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send();
        answer(method, r)
    }

    /// GET with a query string (Slack's read methods).
    pub fn get(&self, method: &'static str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        let r = self
            .http
            .get(format!("{}{method}", self.base))
            .bearer_auth(self.token.expose())
            .query(query)
            .send();
        answer(method, r)
    }
}

fn answer(
    method: &'static str,
    r: reqwest::Result<reqwest::blocking::Response>,
) -> Result<Value, ApiError> {
    let unreachable = |why: String| ApiError::Unreachable { method, why };
    let r = r.map_err(|e| unreachable(crate::http::error_chain(&e)))?;
    let status = r.status();
    if status.as_u16() == 429 {
        let retry_after =
            crate::http::retry_after(r.headers().get("retry-after").and_then(|v| v.to_str().ok()));
        return Err(ApiError::RateLimited {
            method,
            retry_after,
        });
    }
    if !status.is_success() {
        return Err(unreachable(format!("HTTP {status}")));
    }
    let v: Value = r.json().map_err(|_| {
        unreachable(format!(
            "HTTP {status} with a body that is not Slack's JSON"
        ))
    })?;
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(v),
        Some(false) => Err(ApiError::Refused {
            method,
            code: v
                .get("error")
                .and_then(Value::as_str)
                .map(|c| sane(c, 80))
                .unwrap_or_else(|| "unknown_error".to_owned()),
            needed: v
                .get("needed")
                .and_then(Value::as_str)
                .map(|c| sane(c, 200)),
        }),
        None => Err(unreachable("an answer without `ok`".to_owned())),
    }
}

/// Slack's codes are `snake_case` words and scope lists; anything else is dropped, so an
/// answer cannot put arbitrary text into gate's messages.
fn sane(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_:,.-".contains(*c))
        .take(max)
        .collect()
}
