//! The `server` sink: ships records to `gate serve`, which checks each hash and its link to the
//! head it holds, refuses a fork or a shorter history, and answers with the host's checkpoint
//! cosigned by the server's key, kept as `<log>.cosigned`.

use std::time::{Duration, Instant};

use base64::Engine;

use super::{DeliverCtx, Pending, Sink, SinkError};
use crate::http::retry_after;
use crate::secrets::Token;

pub struct ServerSink {
    name: String,
    url: String,
    token: Option<Token>,
    /// Whom the server's certificate must be vouched for by.
    trust: crate::http::Trust,
    /// Built on first use and kept: a run delivers twice, and a blocking client is not free.
    http: Option<reqwest::blocking::Client>,
}

impl ServerSink {
    pub fn new(
        token: Option<crate::secrets::Token>,
        name: String,
        url: &str,
        trust: crate::http::Trust,
    ) -> Self {
        let url = url.trim_end_matches('/').to_owned();
        ServerSink {
            name,
            token,
            url,
            trust,
            http: None,
        }
    }
}

pub fn cosigned_path(log: &std::path::Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.cosigned", log.display()))
}

impl Sink for ServerSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        let http = match &self.http {
            Some(c) => c.clone(),
            None => {
                let b =
                    reqwest::blocking::Client::builder().connect_timeout(Duration::from_secs(3));
                let c = crate::http::trusting(b, &self.trust)
                    .map_err(|e| SinkError::Permanent(e.to_string()))?
                    .build()
                    .map_err(|e| SinkError::Permanent(e.to_string()))?;
                self.http = Some(c.clone());
                c
            }
        };
        let Some(token) = &self.token else {
            return Err(SinkError::Permanent(format!(
                "no token for {} (run `gate login {}` or set `GATE_TOKEN`)",
                self.url, self.url
            )));
        };
        let left = ctx
            .deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(200), Duration::from_secs(15));
        let mut body = String::new();
        for p in batch {
            body.push_str(&p.line);
            body.push('\n');
        }
        let mut rb = http
            .post(format!("{}/v1/logs/{}/records", self.url, ctx.log_id))
            .bearer_auth(token.expose())
            .timeout(left)
            .header("Content-Type", "application/x-ndjson")
            .body(body);
        if let Some(cp) = ctx.checkpoint {
            rb = rb.header(
                "Gate-Checkpoint",
                base64::engine::general_purpose::STANDARD.encode(cp),
            );
        }
        let resp = rb.send().map_err(|e| match crate::http::tls_problem(&e) {
            // Retrying cannot cure a certificate this client refuses.
            Some((problem, detail)) => SinkError::Permanent(format!(
                "{}: refused the server's TLS: {}: {detail} (name the server's CA with `ca:` on the sink)",
                self.url,
                problem.describe()
            )),
            None => SinkError::Transient {
                message: format!("{}: {}", self.url, short(&e)),
                retry_after: None,
            },
        })?;
        let status = resp.status().as_u16();
        let ra = retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let v: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
        let message = v["message"].as_str().unwrap_or("").to_owned();
        match status {
            200..=299 => {
                if let Some(note) = v["cosigned"].as_str() {
                    let path = cosigned_path(ctx.log_path);
                    // A fresh, randomly named file renamed into place: never through a link.
                    if crate::audit::log::replace_file(&path, note.as_bytes(), 0o644, true).is_err()
                    {
                        return Err(SinkError::Transient {
                            message: format!("cannot write `{}`", path.display()),
                            retry_after: None,
                        });
                    }
                }
                Ok(())
            }
            429 | 500..=599 => Err(SinkError::Transient {
                message: format!("{} answered {status}: {message}", self.url),
                retry_after: ra,
            }),
            401 => Err(SinkError::Permanent(format!(
                "{} refused the token: {message}",
                self.url
            ))),
            _ => Err(SinkError::Permanent(format!(
                "{} refused the records ({status}): {message}",
                self.url
            ))),
        }
    }
}

fn short(e: &reqwest::Error) -> String {
    crate::http::error_chain(e)
}
