//! The standalone Slack backend in the run path: resolve the bot token, post the request,
//! wait for reactions, and turn Slack's failures into "no decision" (75) with Slack's code and
//! a hint. The backend itself (what counts, retries, the message) is `crate::approval::slack`.

use std::time::{Duration, Instant};

use super::approve::{needs_line, waiting};
use super::verdict::{Outcome, Verdict};
use crate::approval::Outcome as Waited;
use crate::approval::chat::{ChatMessage, ChatState, Need, RuleLine};
use crate::approval::slack::{SCOPES, Slack, SlackError};
use crate::error::Error;
use crate::exec::Cancel;
use crate::output::Output;
use crate::policy::{Classification, Decision, Policy, Requirement};
use crate::request::Request;

/// The `kind: slack` backend's settings as the policy gives them.
pub(super) struct SlackBackend<'a> {
    pub name: &'a str,
    pub channel: &'a str,
    pub token: &'a str,
    pub api_url: Option<&'a str>,
    pub poll: Option<Duration>,
}

#[allow(clippy::too_many_arguments, clippy::result_large_err)]
pub(super) fn wait_slack(
    out: &Output,
    policy: &Policy,
    b: &SlackBackend<'_>,
    req: &Request,
    class: &Classification,
    requirement: &Requirement,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Waited, Verdict> {
    let config = |message: String, hint: Option<String>| {
        Verdict::stop(Outcome::Error, Error::Config { message, hint })
    };
    let token = crate::secrets::resolve(b.token).map_err(|e| {
        config(
            format!(
                "the Slack bot token of backend `{}` (`{}`): {e}",
                b.name, b.token
            ),
            Some(
                "store the Bot User OAuth Token (xoxb-…) where `token` points; see docs/slack.md"
                    .into(),
            ),
        )
    })?;
    let slack = Slack::new(b.api_url, token, b.channel, b.poll, &policy.identities)
        .map_err(|e| config(format!("backend `{}`: {e}", b.name), None))?;
    let started = Instant::now();
    let deadline = started
        .checked_add(timeout)
        .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600));
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let message = ChatMessage {
        request: &req.view,
        rules: class
            .matched
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .map(|r| RuleLine {
                name: r.name.clone(),
                risk: r.risk.clone(),
                category: r.category.clone(),
            })
            .collect(),
        need: Need::of(requirement),
        approvals: Vec::new(),
        expires_unix: now_unix.saturating_add(timeout.as_secs()),
        state: ChatState::Pending,
    };
    let no_decision = |e: SlackError| {
        let hint = e.hint().map(str::to_owned).or_else(|| {
            Some(format!(
                "nothing ran; the Slack app needs the scopes {SCOPES} and the bot must be in the channel"
            ))
        });
        Verdict::no_decision(format!("Slack: {e}"), hint)
    };
    let posted = slack
        .post(&message, deadline, &cancel.flag, &mut |w| {
            out.warn(&format!("Slack: {w}"))
        })
        .map_err(no_decision)?;
    if out.quiet {
        out.notice(&format!("request {}", req.id()));
    } else {
        out.info(&format!(
            "{} in Slack channel {}",
            needs_line(req, class, requirement.min_approvals, req.id()),
            crate::output::escape(b.channel),
        ));
        out.info("approvers react ✅ (white_check_mark) to approve or ❌ (x) to deny (Ctrl-C here cancels)");
    }
    let mut waiter = out.waiter(waiting(req, requirement, timeout));
    let result = slack.wait(
        &posted,
        &message,
        requirement,
        &req.view.requester.user,
        deadline,
        &cancel.flag,
        &mut |p| waiter.update(p),
        &mut |w| out.warn(&format!("Slack: {w}")),
    );
    waiter.finish();
    result.map_err(no_decision)
}
