//! The standalone Slack backend (`kind: slack`, DESIGN §7): one `chat.postMessage` with the
//! request, approvers react ✅ (`white_check_mark`) or ❌ (`x`), gate polls `reactions.get`
//! (`full=true`) every `poll`, honouring 429 `Retry-After`, and counts only eligible principals
//! reached through `identities` — never the requester, never anything a message says. The
//! first decision is final: the wait ends there, and `chat.update` shows the outcome.
//!
//! What it promises: no decision, no run. A Slack refusal (`ok: false`) ends the wait at once
//! with Slack's code and a hint; an outage or a rate limit is retried until the deadline.
//! The bot token is held as a redacting [`Token`] and leaves the process only in the
//! `Authorization` header.

mod api;
pub mod tally;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use api::{Api, ApiError};
use tally::{Roster, Tally, Vote, approved, is_user_id, tally};

use super::chat::{self, ChatMessage, ChatState};
use super::{Outcome, Progress};
use crate::audit::Approver;
use crate::http::Backoff;
use crate::secrets::Token;

/// Slack's Web API, when the backend names no `api_url`.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";
/// How often `reactions.get` is asked, when the backend names no `poll`.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);
/// The scopes the bot token needs for the standalone backend.
pub const SCOPES: &str = "chat:write, reactions:read";

/// Why the Slack backend gave no decision. Every variant means: nothing runs (75).
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Slack refused a call (`ok: false`), or stayed unreachable until the deadline.
    #[error("{error}")]
    Api {
        error: ApiError,
        hint: Option<String>,
    },
    /// An answer gate cannot read.
    #[error("Slack's answer to `{method}` is malformed: {why}")]
    Malformed { method: &'static str, why: String },
    /// The approval message was edited after gate posted it.
    #[error(
        "the approval message in Slack was edited after gate posted it, so approvers may not have seen this command; the request is void"
    )]
    Edited,
    /// The backend's settings cannot be used (bad `api_url`, an identity conflict).
    #[error("{0}")]
    Config(String),
}

impl SlackError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            SlackError::Api { hint, .. } => hint.as_deref(),
            SlackError::Edited => Some(
                "only the bot token can edit gate's message: keep it where the requester cannot use it, and do not grant the app more scopes than docs/slack.md lists",
            ),
            _ => None,
        }
    }
}

/// The resolved `kind: slack` backend.
pub struct Slack {
    api: Api,
    channel: String,
    poll: Duration,
    /// Slack user id → principal, from `identities`.
    principals: BTreeMap<String, String>,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("api", &self.api)
            .field("channel", &self.channel)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// The posted approval message.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The channel id Slack answered with (the policy may name the channel another way;
    /// every later call needs the id).
    pub channel: String,
    pub ts: String,
}

/// Slack user id → principal from the policy's `identities` (`slack:` entries). An id claimed
/// by two principals is an error: nobody could say who reacted.
pub fn slack_principals(
    identities: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (principal, accounts) in identities {
        let Some(id) = accounts.get("slack") else {
            continue;
        };
        if !is_user_id(id) {
            return Err(format!(
                "`identities.{principal}.slack` is `{}`, not a Slack user id (U… or W…, as in the member's profile: ⋮ → Copy member ID)",
                crate::approval::chat::escape::visible(id)
            ));
        }
        if let Some(other) = out.insert(id.clone(), principal.clone()) {
            return Err(format!(
                "Slack user `{id}` is listed under both `identities.{other}` and `identities.{principal}`"
            ));
        }
    }
    Ok(out)
}

/// What `gate check` says about a `kind: slack` backend for a requirement: where it asks,
/// what the bot needs, and which approvers can answer in Slack (those with a `slack:` id).
pub fn describe(
    channel: &str,
    token: &str,
    requirement: &crate::policy::Requirement,
    identities: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let mut lines = vec![format!(
        "slack:    posts to channel {channel}; the bot token comes from `{token}` and needs the scopes {SCOPES}; approvers react ✅ (white_check_mark) or ❌ (x)"
    )];
    let slack_id = |p: &str| identities.get(p).and_then(|a| a.get("slack")).cloned();
    match requirement.eligible() {
        Some(eligible) => {
            let (with, without): (Vec<&String>, Vec<&String>) =
                eligible.iter().partition(|p| slack_id(p).is_some());
            let with: Vec<String> = with
                .iter()
                .map(|p| format!("{p} ({})", slack_id(p).unwrap_or_default()))
                .collect();
            lines.push(format!(
                "          can answer in Slack: {}",
                if with.is_empty() {
                    "nobody".to_owned()
                } else {
                    with.join(", ")
                }
            ));
            if !without.is_empty() {
                let names: Vec<&str> = without.iter().map(|s| s.as_str()).collect();
                lines.push(format!(
                    "          no `identities.NAME.slack`, so their reactions do not count: {}",
                    names.join(", ")
                ));
            }
        }
        None => lines.push(format!(
            "          anyone with a `slack:` id under `identities` ({}), except the requester",
            identities
                .values()
                .filter(|a| a.contains_key("slack"))
                .count()
        )),
    }
    lines
}

impl Slack {
    pub fn new(
        api_url: Option<&str>,
        token: Token,
        channel: &str,
        poll: Option<Duration>,
        identities: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Slack, SlackError> {
        let api =
            Api::new(api_url.unwrap_or(DEFAULT_API_URL), token).map_err(SlackError::Config)?;
        Ok(Slack {
            api,
            channel: channel.to_owned(),
            poll: poll.unwrap_or(DEFAULT_POLL).max(Duration::from_millis(100)),
            principals: slack_principals(identities).map_err(SlackError::Config)?,
        })
    }

    fn refused(&self, error: ApiError) -> SlackError {
        let hint = error.hint(&self.channel);
        SlackError::Api { error, hint }
    }

    /// Posts the message, retrying a limit or an outage until `deadline`.
    pub fn post(
        &self,
        m: &ChatMessage<'_>,
        deadline: Instant,
        cancel: &AtomicBool,
        warn: &mut dyn FnMut(&str),
    ) -> Result<Posted, SlackError> {
        let body = json!({
            "channel": self.channel,
            "text": chat::slack_text(m),
            "blocks": chat::slack_blocks(m, false),
            "unfurl_links": false,
            "unfurl_media": false,
        });
        let v = self.retrying(deadline, cancel, warn, || {
            self.api.post("chat.postMessage", &body)
        })?;
        let ts = v
            .get("ts")
            .and_then(Value::as_str)
            .filter(|t| t.len() <= 32 && t.chars().all(|c| c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| SlackError::Malformed {
                method: "chat.postMessage",
                why: "`ts` is missing or not a Slack timestamp".to_owned(),
            })?;
        let channel = v
            .get("channel")
            .and_then(Value::as_str)
            .filter(|c| {
                !c.is_empty() && c.len() <= 32 && c.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .unwrap_or(&self.channel);
        Ok(Posted {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
        })
    }

    /// A call, retried on a limit or an outage (with `Retry-After` or the backoff) until
    /// `deadline` or `cancel`; a refusal is returned at once.
    fn retrying(
        &self,
        deadline: Instant,
        cancel: &AtomicBool,
        warn: &mut dyn FnMut(&str),
        mut call: impl FnMut() -> Result<Value, ApiError>,
    ) -> Result<Value, SlackError> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        let mut warned = false;
        loop {
            match call() {
                Ok(v) => return Ok(v),
                Err(e) if e.transient() => {
                    let retry_after = match &e {
                        ApiError::RateLimited { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let wait = backoff.after_failure(retry_after);
                    if !warned {
                        warn(&format!("{e}; retrying until the request expires"));
                        warned = true;
                    }
                    if !sleep_until(Instant::now() + wait, deadline, cancel) {
                        return Err(SlackError::Api {
                            hint: Some("nothing ran; try again when Slack answers".into()),
                            error: e,
                        });
                    }
                }
                Err(e) => return Err(self.refused(e)),
            }
        }
    }

    /// Waits for the decision on the posted message. `m` is the message as posted; it is
    /// updated with the outcome (and the approvals) when the wait ends, however it ends.
    #[allow(clippy::too_many_arguments)]
    pub fn wait(
        &self,
        posted: &Posted,
        m: &ChatMessage<'_>,
        requirement: &crate::policy::Requirement,
        requester: &str,
        deadline: Instant,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
        warn: &mut dyn FnMut(&str),
    ) -> Result<Outcome, SlackError> {
        let roster = Roster {
            principals: &self.principals,
            requester,
            requirement,
        };
        let result = self.poll_until_decided(posted, m, &roster, deadline, cancel, progress, warn);
        let (state, approvals) = match &result {
            Ok(Outcome::Approved(a)) => (ChatState::Approved, a.clone()),
            Ok(Outcome::Denied {
                by,
                reason,
                approvals,
            }) => (
                ChatState::Denied {
                    by: by.principal.clone(),
                    reason: Some(reason.clone()).filter(|r| !r.is_empty()),
                },
                approvals.clone(),
            ),
            Ok(Outcome::TimedOut(a)) => (ChatState::TimedOut, a.clone()),
            Ok(Outcome::Cancelled(a)) => (ChatState::Cancelled, a.clone()),
            Err(SlackError::Edited) => {
                self.reply_best_effort(
                    posted,
                    "This request is void: its message was edited after gate posted it, so it may not show the command that would run. Nothing ran.",
                );
                (ChatState::Cancelled, Vec::new())
            }
            // Slack refused or stayed away: an update would most likely fail the same way.
            Err(_) => return result,
        };
        let mut shown = m.clone();
        shown.state = state;
        shown.approvals = approvals.iter().map(|a| a.principal.clone()).collect();
        // An approved command is not held back for Slack: one try. Otherwise a few.
        let budget = if shown.state == ChatState::Approved {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        };
        if let Err(e) = self.update(posted, &shown, budget) {
            warn(&format!("could not show the outcome in Slack: {e}"));
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn poll_until_decided(
        &self,
        posted: &Posted,
        m: &ChatMessage<'_>,
        roster: &Roster<'_>,
        deadline: Instant,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
        warn: &mut dyn FnMut(&str),
    ) -> Result<Outcome, SlackError> {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        // The poll interval in use: doubled by each 429 (up to a minute), eased back towards
        // `poll` by each answer. Every waiting gate polls on its own with the same token, so
        // Slack's per-method limit is shared; taking only `Retry-After` would have them all
        // come back in the same second and be refused again.
        let mut interval = self.poll;
        let mut outage_warned = false;
        let mut replied: BTreeSet<String> = BTreeSet::new();
        // After a 429 on a reply, no reply is tried before Slack's `Retry-After`.
        let mut replies_after = Instant::now();
        let mut last = Tally::default();
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Ok(Outcome::Cancelled(approvers(&last.approvals)));
            }
            if Instant::now() >= deadline {
                return Ok(Outcome::TimedOut(approvers(&last.approvals)));
            }
            let asked = Instant::now();
            let q = [
                ("channel", posted.channel.as_str()),
                ("timestamp", posted.ts.as_str()),
                ("full", "true"),
            ];
            let next = match self.api.get("reactions.get", &q) {
                Ok(v) => {
                    backoff.reset();
                    outage_warned = false;
                    let message = v.get("message").ok_or_else(|| SlackError::Malformed {
                        method: "reactions.get",
                        why: "no `message`".to_owned(),
                    })?;
                    let t = tally(message, roster).map_err(|why| SlackError::Malformed {
                        method: "reactions.get",
                        why,
                    })?;
                    if t.edited {
                        return Err(SlackError::Edited);
                    }
                    if let Some(by) = &t.denial {
                        return Ok(Outcome::Denied {
                            by: approver(by),
                            reason: String::new(),
                            approvals: approvers(&t.approvals),
                        });
                    }
                    if approved(&t, roster.requirement) {
                        return Ok(Outcome::Approved(approvers(&t.approvals)));
                    }
                    for (user, why) in &t.ignored {
                        if replied.contains(user) || Instant::now() < replies_after {
                            continue;
                        }
                        match self.reply_ignored(posted, user, why) {
                            Ok(()) => {
                                replied.insert(user.clone());
                            }
                            Err(e) if e.transient() => {
                                if let ApiError::RateLimited { retry_after, .. } = e {
                                    replies_after = Instant::now()
                                        + retry_after.unwrap_or(Duration::from_secs(1));
                                }
                                break;
                            }
                            // A reply Slack refuses will not be accepted later either.
                            Err(_) => {
                                replied.insert(user.clone());
                            }
                        }
                    }
                    last = t;
                    let next = asked + interval;
                    interval = (interval * 3 / 4).max(self.poll);
                    next
                }
                Err(e) if e.transient() => {
                    let retry_after = match &e {
                        ApiError::RateLimited { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    if !outage_warned && !matches!(e, ApiError::RateLimited { .. }) {
                        warn(&format!("{e}; still waiting, retrying"));
                        outage_warned = true;
                    }
                    // A limit: no sooner than Slack's `Retry-After`, and slower each time
                    // (with jitter, so waiters spread out); an outage: the backoff, never
                    // faster than the poll interval.
                    let wait = if let ApiError::RateLimited { .. } = e {
                        interval = (interval * 2).min(Duration::from_secs(60));
                        retry_after.unwrap_or_default().max(jitter(interval))
                    } else {
                        backoff.after_failure(None).max(self.poll)
                    };
                    Instant::now() + wait
                }
                Err(e) => return Err(self.refused(e)),
            };
            progress(&Progress {
                request_id: m.request.id.clone(),
                elapsed: start.elapsed(),
                approvers: last.approvals.iter().map(|v| v.principal.clone()).collect(),
                needed: m.need.min_approvals,
                ignored: last
                    .ignored
                    .iter()
                    .map(|(u, why)| format!("Slack user {u}: {why}"))
                    .collect(),
            });
            sleep_until(next, deadline, cancel);
        }
    }

    /// One thread reply to a reaction that does not count.
    fn reply_ignored(&self, posted: &Posted, user: &str, why: &str) -> Result<(), ApiError> {
        let who = if is_user_id(user) {
            format!("<@{user}>")
        } else {
            "A reaction".to_owned()
        };
        let text = format!("{who} your reaction does not count for this request: {why}");
        self.api
            .post(
                "chat.postMessage",
                &json!({"channel": posted.channel, "thread_ts": posted.ts, "text": text}),
            )
            .map(drop)
    }

    fn reply_best_effort(&self, posted: &Posted, text: &str) {
        let _ = self.api.post(
            "chat.postMessage",
            &json!({"channel": posted.channel, "thread_ts": posted.ts, "text": text}),
        );
    }

    /// `chat.update` with the outcome: tries within `budget`, honouring `Retry-After`; the
    /// decision stands either way.
    fn update(
        &self,
        posted: &Posted,
        m: &ChatMessage<'_>,
        budget: Duration,
    ) -> Result<(), ApiError> {
        let body = json!({
            "channel": posted.channel,
            "ts": posted.ts,
            "text": chat::slack_text(m),
            "blocks": chat::slack_blocks(m, false),
        });
        let until = Instant::now() + budget;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            match self.api.post("chat.update", &body) {
                Ok(_) => return Ok(()),
                Err(e) if e.transient() => {
                    let retry_after = match &e {
                        ApiError::RateLimited { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let next = Instant::now() + backoff.after_failure(retry_after);
                    if next > until {
                        return Err(e);
                    }
                    std::thread::sleep(next - Instant::now());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn approver(v: &Vote) -> Approver {
    Approver {
        principal: v.principal.clone(),
        uid: None,
        at: crate::audit::record::now(),
        via: format!("slack:{}", v.slack_id),
        comment: None,
    }
}

fn approvers(votes: &[Vote]) -> Vec<Approver> {
    votes.iter().map(approver).collect()
}

/// `d` scaled by a random factor in 0.75..1.25.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0x8000, |()| u16::from_le_bytes(b));
    d.mul_f64(0.75 + f64::from(r) / f64::from(u16::MAX) / 2.0)
}

/// Sleeps until `until` (or `deadline`, whichever is first) in short steps, so Ctrl-C is
/// seen at once. `false` when the deadline or a cancel cut the sleep short.
fn sleep_until(until: Instant, deadline: Instant, cancel: &AtomicBool) -> bool {
    let end = until.min(deadline);
    loop {
        if cancel.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return end == until && until < deadline;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let ids = BTreeMap::from([(
            "alice".to_owned(),
            BTreeMap::from([("slack".to_owned(), "U024BE7LH".to_owned())]),
        )]);
        let s = Slack::new(
            Some("http://127.0.0.1:9/api"),
            Token::new("xoxb-secret-123".into()),
            "C0123ABCD",
            None,
            &ids,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("xoxb-secret-123"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn identities_must_be_slack_ids_and_unambiguous() {
        let one = |p: &str, id: &str| {
            (
                p.to_owned(),
                BTreeMap::from([("slack".to_owned(), id.to_owned())]),
            )
        };
        let bad = BTreeMap::from([one("alice", "<!channel>")]);
        assert!(
            slack_principals(&bad)
                .unwrap_err()
                .contains("not a Slack user id")
        );
        let twice = BTreeMap::from([one("alice", "U024BE7LH"), one("bob", "U024BE7LH")]);
        assert!(
            slack_principals(&twice)
                .unwrap_err()
                .contains("listed under both")
        );
    }
}
