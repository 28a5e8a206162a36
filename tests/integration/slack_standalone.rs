//! The standalone Slack backend (issue 12 §1, §4) against the Slack Web API simulator: the
//! message gate posts, reactions → decisions, who counts, faults, and the attacks an agent
//! running as the requester (or anyone in the workspace) can try.

use std::collections::BTreeMap;

use gate::approval::chat::{self, ChatMessage, ChatState, Need, RuleLine};
use gate::identity::Identity;
use gate::request::{CommandInfo, RequestView};

use crate::common;
use common::{slack_blocks, teams_sim};

fn sample_view(argv: &[&str], reason: &str) -> RequestView {
    RequestView {
        id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        requester: Identity {
            user: "mallory".into(),
            uid: 1001,
            host: "build-7".into(),
            ci: Some(BTreeMap::from([(
                "GITHUB_REPOSITORY".to_owned(),
                "acme/app".to_owned(),
            )])),
            agent: Some("claude-code".into()),
            ci_verified: None,
        },
        command: CommandInfo {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: "/srv/app".into(),
            executable: None,
            payload: vec![],
            shim: None,
        },
        context: BTreeMap::from([("AWS_PROFILE".to_owned(), "prod".to_owned())]),
        reason: Some(reason.into()),
        digest: "ab".repeat(32),
    }
}

fn sample_message(view: &RequestView) -> ChatMessage<'_> {
    ChatMessage {
        request: view,
        rules: vec![RuleLine {
            name: "iam-writes".into(),
            risk: Some("high".into()),
            category: Some("privilege-escalation".into()),
        }],
        need: Need {
            min_approvals: 2,
            eligible: Some(3),
            from: vec!["security".into()],
        },
        approvals: vec!["alice".into()],
        expires_unix: 1_800_000_000,
        state: ChatState::Pending,
    }
}

/// Every state, both Slack forms and the Teams card pass the simulators' shape checks (the
/// documented Block Kit and Adaptive Card 1.4 limits), even with hostile and huge values.
#[test]
fn rendered_messages_are_valid_block_kit_and_adaptive_cards() {
    let huge = format!("{}`<!channel>`", "x".repeat(20_000));
    for (argv, reason) in [
        (
            vec!["aws", "iam", "create-user", "--user-name", "ci"],
            "rotate",
        ),
        (vec!["echo", huge.as_str()], huge.as_str()),
    ] {
        let view = sample_view(&argv, reason);
        for state in [
            ChatState::Pending,
            ChatState::Approved,
            ChatState::Denied {
                by: "bob".into(),
                reason: Some(huge.clone()),
            },
            ChatState::TimedOut,
            ChatState::Cancelled,
        ] {
            let mut m = sample_message(&view);
            m.state = state;
            for buttons in [false, true] {
                let blocks = serde_json::Value::Array(chat::slack_blocks(&m, buttons));
                if let Err(e) = slack_blocks::validate(&blocks) {
                    panic!("{e:?}\n{blocks:#}");
                }
            }
            let card = chat::teams_card(&m, "https://gate.example/requests/x");
            teams_sim::card(&card).unwrap();
            let body = serde_json::to_vec(&chat::teams_message(card)).unwrap();
            assert!(body.len() <= 28 * 1024, "{} bytes", body.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The backend, end to end: a real `gate` against the simulator.

use std::time::{Duration, Instant};

use common::Gate;
use common::process::{self, HANG, Watched};
use common::slack_sim::{BOT_TOKEN, CHANNEL, Fault, SlackConfig, SlackSim};
use nix::sys::signal::Signal;

const TOKEN_VAR: &str = "GATE_TEST_SLACK_TOKEN";
const ALICE: &str = "U0ALICE01";
const BOB: &str = "U0BOB0001";
/// The requester's own Slack account (the tests run as root).
const ROOT_SLACK: &str = "U0MALLORY";
const CAROL: &str = "U0CAROL01";

/// The system policy: `echo` needs `min` approvals from `security` through Slack.
fn policy(sim: &SlackSim, channel: &str, min: u32) -> String {
    format!(
        r#"version: 1
defaults: {{ decision: allow, backend: sec, timeout: 30s }}
context: {{ env: [GATE_ENV] }}
groups:
  security: [alice, bob, root]
  ops: [carol]
identities:
  alice: {{ slack: {ALICE} }}
  bob: {{ slack: {BOB} }}
  root: {{ slack: {ROOT_SLACK} }}
  carol: {{ slack: {CAROL} }}
backends:
  sec: {{ kind: slack, channel: {channel}, token: "env:{TOKEN_VAR}", api_url: "{}", poll: 200ms }}
rules:
  - name: deploy
    match: {{ program: echo }}
    decision: approve
    risk: high
    category: change
    approval: {{ approvers: [security], min_approvals: {min} }}
"#,
        sim.api_url()
    )
}

fn gate(sim: &SlackSim, channel: &str, min: u32, args: &[&str]) -> Gate {
    Gate::new()
        .system_policy("slack.yaml", &policy(sim, channel, min))
        .env(TOKEN_VAR, BOT_TOKEN)
        .args(args)
}

/// Starts `gate -- echo ran-it` and waits until the approval message is posted; its ts.
fn start(g: &Gate) -> (Watched, String) {
    let mut w = process::spawn(g.command());
    w.stderr_until("waiting as request", HANG);
    (w, String::new())
}

fn posted(sim: &SlackSim) -> String {
    sim.messages(CHANNEL)
        .into_iter()
        .find(|m| m.thread_ts.is_none())
        .expect("the approval message")
        .ts
}

/// Waits until gate has polled `n` more times (so a reaction was seen, or not).
fn polls(sim: &SlackSim, n: usize) {
    let before = sim.calls_to("reactions.get").len();
    let until = Instant::now() + HANG;
    while sim.calls_to("reactions.get").len() < before + n {
        assert!(Instant::now() < until, "gate stopped polling");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn decision_record(g: &Gate) -> serde_json::Value {
    g.records()
        .into_iter()
        .find(|r| r["kind"] == "decision")
        .expect("a decision record")
}

fn shown(sim: &SlackSim, ts: &str) -> String {
    let m = sim.message(CHANNEL, ts).unwrap();
    format!(
        "{}\n{}",
        m.text.unwrap_or_default(),
        m.blocks.unwrap_or_default()
    )
}

#[test]
fn an_eligible_white_check_mark_approves_and_the_message_says_so() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    let ran = w.finish(HANG);
    ran.status(0).stdout_has("ran-it");
    let d = decision_record(&g);
    assert_eq!(d["decision"]["outcome"], "approved", "{d:#}");
    assert_eq!(d["decision"]["approvals"][0]["principal"], "alice");
    assert_eq!(
        d["decision"]["approvals"][0]["via"],
        format!("slack:{ALICE}")
    );
    let s = shown(&sim, &ts);
    assert!(s.contains("*Approved* by `alice`"), "{s}");
    // The log proves it: intact, and the approval meets the recorded requirement.
    let mut verify = common::gate_in(g.dir.path());
    verify.args(["log", "verify"]);
    let v = common::Ran::of(verify);
    v.status(0);
    let post = &sim.calls_to("chat.postMessage")[0];
    assert!(post.args["text"].as_str().unwrap().contains("echo ran-it"));
    assert!(
        sim.calls_to("reactions.get")
            .iter()
            .all(|c| c.args["full"] == "true"),
        "reactions.get always asks for the full user lists"
    );
}

#[test]
fn an_eligible_x_denies_with_77_and_nothing_runs() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 2, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    sim.react(CHANNEL, &ts, "x", BOB);
    let ran = w.finish(HANG);
    ran.status(77).stderr_has("denied by bob");
    assert!(!ran.stdout.contains("ran-it"));
    assert_eq!(
        decision_record(&g)["decision"]["denied_by"]["principal"],
        "bob"
    );
    assert!(shown(&sim, &ts).contains("*Denied* by `bob`"));
}

#[test]
fn requester_reacts_to_approve_their_own_request() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (mut w, _) = start(&g);
    let ts = posted(&sim);
    // The requester's own account, in the approver group, approves — and denies: neither counts.
    sim.react(CHANNEL, &ts, "white_check_mark", ROOT_SLACK);
    sim.react(CHANNEL, &ts, "x", ROOT_SLACK);
    polls(&sim, 3);
    assert!(w.running(), "the requester's reaction decided");
    let replies = sim.replies(CHANNEL, &ts);
    assert_eq!(replies.len(), 1, "one reply for the requester");
    let text = replies[0].text.clone().unwrap();
    assert!(
        text.contains(&format!("<@{ROOT_SLACK}>")) && text.contains("requester"),
        "{text}"
    );
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    w.finish(HANG).status(0);
    let d = decision_record(&g);
    let who: Vec<&str> = d["decision"]["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["alice"]);
}

#[test]
fn a_non_approver_reaction_is_ignored_with_exactly_one_thread_reply() {
    let sim = SlackSim::start(SlackConfig::default().user(CAROL, "carol"));
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (mut w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", CAROL);
    sim.react(CHANNEL, &ts, "x", CAROL);
    polls(&sim, 4);
    assert!(w.running(), "carol is not in `security`");
    let replies = sim.replies(CHANNEL, &ts);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0]
            .text
            .as_deref()
            .unwrap()
            .contains("`carol` is not an eligible approver")
    );
    sim.react(CHANNEL, &ts, "white_check_mark", BOB);
    w.finish(HANG).status(0);
    assert_eq!(sim.replies(CHANNEL, &ts).len(), 1);
}

#[test]
fn a_workspace_member_named_alice_is_not_alice() {
    // Anyone can join the workspace and call themselves alice: only the id in `identities` counts.
    let sim = SlackSim::start(SlackConfig::default().user("U0FAKEALI", "alice"));
    let g = gate(
        &sim,
        CHANNEL,
        1,
        &["--timeout", "2s", "--", "echo", "ran-it"],
    );
    let (mut w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", "U0FAKEALI");
    polls(&sim, 2);
    assert!(w.running());
    let replies = sim.replies(CHANNEL, &ts);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0]
            .text
            .as_deref()
            .unwrap()
            .contains("not mapped to a gate principal")
    );
    let ran = w.finish(HANG);
    ran.status(75);
    assert!(!ran.stdout.contains("ran-it"));
}

#[test]
fn two_of_n_needs_two_distinct_principals() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 2, &["--", "echo", "ran-it"]);
    let (mut w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    sim.react(CHANNEL, &ts, "heavy_check_mark", BOB); // not the approving emoji
    polls(&sim, 3);
    assert!(w.running(), "one approval of two ran the command");
    sim.react(CHANNEL, &ts, "white_check_mark", BOB);
    w.finish(HANG).status(0).stdout_has("ran-it");
    let d = decision_record(&g);
    assert_eq!(d["decision"]["approvals"].as_array().unwrap().len(), 2);
    assert!(shown(&sim, &ts).contains("*Approved* by `alice`, `bob`"));
}

#[test]
fn a_decision_is_frozen_once_reached() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    w.finish(HANG).status(0);
    let calls = sim.calls().len();
    // Taking the reaction back, or denying afterwards, changes nothing: gate no longer asks.
    sim.unreact(CHANNEL, &ts, "white_check_mark", ALICE);
    sim.react(CHANNEL, &ts, "x", BOB);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sim.calls().len(), calls);
    assert!(shown(&sim, &ts).contains("*Approved*"));
    assert_eq!(decision_record(&g)["decision"]["outcome"], "approved");
}

#[test]
fn rate_limits_are_honoured_with_retry_after() {
    let sim = SlackSim::start(SlackConfig::default());
    sim.rate_limit("reactions.get", 2, Duration::from_secs(2));
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    // Two windows' worth of polling, then an approval.
    let until = Instant::now() + HANG;
    while sim
        .calls_to("reactions.get")
        .iter()
        .filter(|c| c.status == 429)
        .count()
        < 2
    {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    w.finish(HANG).status(0);
    let calls = sim.calls_to("reactions.get");
    for pair in calls.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(950),
                "called again {gap:?} after a 429"
            );
            assert_eq!(
                pair[1].status, 200,
                "Retry-After was not long enough, or not waited"
            );
        }
    }
}

#[test]
fn slack_refusals_exit_75_with_slacks_code_and_a_hint() {
    for (case, channel, setup, want) in [
        ("missing_scope", CHANNEL, "scope", "`reactions:read` scope"),
        ("channel_not_found", "C0NOSUCH1", "", "invite the bot"),
        ("not_in_channel", "C0OUTSIDE", "", "/invite @gate"),
        ("invalid_auth", CHANNEL, "token", "not a valid bot token"),
        (
            "token_revoked",
            CHANNEL,
            "revoke",
            "reinstall the Slack app",
        ),
    ] {
        let sim = SlackSim::start(SlackConfig::default());
        let mut g = gate(&sim, channel, 1, &["--", "echo", "ran-it"]);
        match setup {
            "scope" => sim.set_scopes(&["chat:write"]),
            "token" => g = g.env(TOKEN_VAR, "xoxb-not-the-token"),
            "revoke" => sim.fail_method(
                "reactions.get",
                1,
                Fault::SlackError("token_revoked".into()),
            ),
            _ => {}
        }
        let ran = g.run();
        ran.status(75)
            .stderr_contains(&format!("`{case}`"))
            .stderr_contains(want);
        assert!(!ran.stdout.contains("ran-it"), "{case}");
        assert_eq!(decision_record(&g)["decision"]["run"], false, "{case}");
    }
}

#[test]
fn an_outage_mid_wait_is_retried_and_an_approval_still_lands() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.fail_method("reactions.get", 2, Fault::Status(503));
    sim.fail_next(1, Fault::Drop);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    let ran = w.finish(HANG);
    ran.status(0)
        .stdout_has("ran-it")
        .stderr_contains("retrying");
}

#[test]
fn an_outage_until_the_deadline_is_75_and_nothing_runs() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(
        &sim,
        CHANNEL,
        1,
        &["--timeout", "3s", "--", "echo", "ran-it"],
    );
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.fail_method("reactions.get", 1000, Fault::Status(502));
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    let ran = w.finish(HANG);
    ran.status(75);
    assert!(!ran.stdout.contains("ran-it"));
    let failed = sim
        .calls_to("reactions.get")
        .iter()
        .filter(|c| c.status == 502)
        .count();
    assert!(failed >= 2, "gate retried {failed} times");
}

#[test]
fn ctrl_c_cancels_updates_the_message_and_runs_nothing() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    polls(&sim, 1);
    w.signal(Signal::SIGINT);
    let ran = w.finish(HANG);
    ran.status(75);
    assert!(!ran.stdout.contains("ran-it"));
    assert!(
        shown(&sim, &ts).contains("*Cancelled*"),
        "{}",
        shown(&sim, &ts)
    );
    assert_eq!(decision_record(&g)["decision"]["outcome"], "cancelled");
}

#[test]
fn a_timeout_is_75_and_the_message_says_timed_out() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(
        &sim,
        CHANNEL,
        2,
        &["--timeout", "1s", "--", "echo", "ran-it"],
    );
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    let ran = w.finish(HANG);
    ran.status(75);
    let s = shown(&sim, &ts);
    assert!(s.contains("*Timed out* with 1 of 2 approvals"), "{s}");
}

#[test]
fn requester_text_cannot_forge_links_mentions_or_escape_the_code_block() {
    let sim = SlackSim::start(SlackConfig::default());
    let evil =
        "<!channel> <@U0ALICE01> <https://evil.example|approved by security> ``` *Approved* @here";
    let g = gate(
        &sim,
        CHANNEL,
        1,
        &["--reason", evil, "--timeout", "1s", "--", "echo", evil],
    )
    .env("GATE_ENV", evil);
    g.run().status(75).any_stderr();
    let post = &sim.calls_to("chat.postMessage")[0];
    let mut text = post.args["blocks"].to_string();
    text.push_str(post.args["text"].as_str().unwrap());
    // gate itself writes no `<…>` markup, so any `<` would be the requester's.
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    for bad in ["<!", "<@", "<http", "@here", "@channel"] {
        assert!(!text.contains(bad), "{bad} survived: {text}");
    }
    let blocks = post.args["blocks"].as_array().unwrap();
    let cmd = blocks
        .iter()
        .find_map(|b| {
            b["text"]["text"]
                .as_str()
                .filter(|t| t.starts_with("*Command*"))
        })
        .unwrap();
    assert_eq!(cmd.matches("```").count(), 2, "{cmd}");
    assert!(cmd.ends_with("```"));
    assert!(text.contains("&lt;!channel&gt;"), "shown, not parsed");
}

#[test]
fn the_bot_token_never_reaches_stderr_the_log_or_the_audit_record() {
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["-v", "--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    let ok = w.finish(HANG);
    let bad = gate(&sim, "C0OUTSIDE", 1, &["-v", "--", "echo", "x"]).run();
    bad.status(75).any_stderr();
    sim.fail_next(1, Fault::Drop);
    let log = std::fs::read_to_string(g.path("audit.jsonl")).unwrap();
    for (what, s) in [
        ("stderr", &ok.stderr),
        ("stdout", &ok.stdout),
        ("stderr", &bad.stderr),
        ("audit log", &log),
    ] {
        assert!(!s.contains(BOT_TOKEN), "the token is in the {what}");
        assert!(
            !s.contains("sim-bot-token"),
            "part of the token is in the {what}"
        );
    }
    // Only the Authorization header carries it.
    for c in sim.calls() {
        assert!(!c.args.values().any(|v| v.to_string().contains(BOT_TOKEN)));
    }
}

#[test]
fn requester_with_the_bot_token_edits_the_message_to_show_another_command() {
    // Standalone, the requester can read the bot token. Rewriting gate's message so approvers
    // see a harmless command voids the request instead of approving the real one.
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}chat.update", sim.api_url()))
        .bearer_auth(BOT_TOKEN)
        .json(
            &serde_json::json!({"channel": CHANNEL, "ts": ts, "text": "gate: approval needed: ls"}),
        )
        .send()
        .unwrap();
    assert!(r.status().is_success());
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    let ran = w.finish(HANG);
    ran.status(75)
        .stderr_contains("edited after gate posted it");
    assert!(!ran.stdout.contains("ran-it"));
}

#[test]
fn an_added_policy_file_cannot_point_slack_elsewhere() {
    // With a system tier, the requester's own policy cannot define a Slack backend (its own
    // api_url, token or channel) or map Slack ids to principals.
    let sim = SlackSim::start(SlackConfig::default());
    for added in [
        "version: 1\nbackends:\n  mine: { kind: slack, channel: C0APPROVAL, token: \"env:X\", api_url: \"http://127.0.0.1:9/\" }\n",
        "version: 1\nidentities:\n  alice: { slack: U0MALLORY }\n",
    ] {
        gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"])
            .policy(added)
            .run()
            .status(78)
            .stderr_contains("an added policy file cannot define");
    }
}

#[test]
fn gate_check_says_what_the_slack_backend_needs_and_who_can_answer() {
    let sim = SlackSim::start(SlackConfig::default());
    let ran = gate(&sim, CHANNEL, 1, &["check", "--", "echo", "hi"]).run();
    ran.status(0)
        .stderr("")
        .stdout_has("slack:    posts to channel C0APPROVAL")
        .stdout_has("needs the scopes chat:write, reactions:read")
        .stdout_has("can answer in Slack: alice (U0ALICE01), bob (U0BOB0001), root (U0MALLORY)");
    assert!(sim.calls().is_empty(), "`gate check` talks to nobody");
}

#[test]
fn a_message_saying_approved_is_not_an_approval() {
    // Anyone in the channel — or the requester holding the bot token — can write "approved"
    // in the thread or the channel, even as alice's words: only alice's reaction counts.
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(
        &sim,
        CHANNEL,
        1,
        &["--timeout", "2s", "--", "echo", "ran-it"],
    );
    let (mut w, _) = start(&g);
    let ts = posted(&sim);
    sim.post_as_user(CHANNEL, ALICE, ":white_check_mark: approved", Some(&ts));
    sim.post_as_user(CHANNEL, ALICE, ":white_check_mark: approved", None);
    polls(&sim, 2);
    assert!(w.running());
    let ran = w.finish(HANG);
    ran.status(75);
    assert!(!ran.stdout.contains("ran-it"));
}

#[test]
fn a_channel_given_by_name_is_followed_by_the_id_slack_answers() {
    // chat.postMessage takes a channel name; reactions.get and chat.update need the id.
    let sim = SlackSim::start(SlackConfig::default());
    let g = gate(&sim, "approvals", 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    w.finish(HANG).status(0).stdout_has("ran-it");
    assert!(
        sim.calls_to("reactions.get")
            .iter()
            .all(|c| c.args["channel"] == CHANNEL && c.status == 200)
    );
    assert!(shown(&sim, &ts).contains("*Approved*"));
}

#[test]
fn a_slack_identity_that_is_a_name_not_an_id_is_a_lint_error_at_its_place() {
    // `slack: alice` would match no reaction (and look like it should): refused where written.
    let g = Gate::new();
    let f = g.write(
        "p.yaml",
        "version: 1\nidentities:\n  alice: { slack: alice }\n  bob: { slack: U0BOB0001 }\n",
    );
    g.args(&["policy", "lint", f.to_str().unwrap()])
        .run()
        .status(78)
        .stderr_contains("p.yaml:3:19")
        .stderr_contains("`slack: alice` is not a Slack member id");
}

#[test]
fn a_rate_limited_thread_reply_waits_for_retry_after_and_is_sent_once() {
    let sim = SlackSim::start(SlackConfig::default().user(CAROL, "carol"));
    sim.rate_limit("chat.postMessage", 1, Duration::from_secs(2));
    let g = gate(&sim, CHANNEL, 1, &["--", "echo", "ran-it"]);
    let (w, _) = start(&g);
    let ts = posted(&sim);
    sim.react(CHANNEL, &ts, "x", CAROL);
    let until = Instant::now() + HANG;
    while sim.replies(CHANNEL, &ts).is_empty() {
        assert!(Instant::now() < until, "the reply never came");
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.react(CHANNEL, &ts, "white_check_mark", ALICE);
    w.finish(HANG).status(0);
    assert_eq!(sim.replies(CHANNEL, &ts).len(), 1);
    let posts = sim.calls_to("chat.postMessage");
    assert!(
        posts.iter().any(|c| c.status == 429),
        "the limit was never hit"
    );
    for pair in posts.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(950),
                "posted again {gap:?} after a 429"
            );
        }
    }
}

#[test]
fn an_unset_token_is_a_configuration_error_and_nothing_is_posted() {
    let sim = SlackSim::start(SlackConfig::default());
    let ran = Gate::new()
        .system_policy("slack.yaml", &policy(&sim, CHANNEL, 1))
        .args(&["--", "echo", "ran-it"])
        .run();
    ran.status(78)
        .stderr_contains(&format!(
            "the environment variable `{TOKEN_VAR}` is not set"
        ))
        .stderr_contains("hint: store the Bot User OAuth Token");
    assert!(!ran.stdout.contains("ran-it"));
    assert!(sim.calls().is_empty());
}
