use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use crate::identity::Identity;
use crate::request::CommandInfo;

fn view(argv: &[&str], reason: &str, env: &[(&str, &str)]) -> RequestView {
    RequestView {
        id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        requester: Identity {
            user: "mallory".into(),
            uid: 1001,
            host: "build-7".into(),
            ci: None,
            ci_verified: None,
            agent: Some("claude-code".into()),
        },
        command: CommandInfo {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: "/srv/app".into(),
            executable: None,
            payload: vec![],
            shim: None,
        },
        context: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        reason: Some(reason.into()),
        digest: "ab".repeat(32),
    }
}

fn message(v: &RequestView) -> ChatMessage<'_> {
    ChatMessage {
        request: v,
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

/// Every string in the blocks (text objects), joined.
fn all_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| all_text(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_text(x, out)),
        _ => {}
    }
}

const ATTACKS: &[&str] = &[
    "<!channel>",
    "<!here|here>",
    "<@U0ALICE01>",
    "<https://evil.example|approved by security>",
    "```\n*Approved* by alice```",
    "@here @channel",
    "a\u{202e}b\x1b[31m",
];

#[test]
fn requester_text_cannot_link_mention_or_break_the_code_block() {
    for attack in ATTACKS {
        let v = view(&["echo", attack], attack, &[("GATE_ENV", attack)]);
        let m = message(&v);
        let blocks = Value::Array(slack_blocks(&m, false));
        let mut text = String::new();
        all_text(&blocks, &mut text);
        text.push_str(&slack_text(&m));
        for bad in ["<!", "<@", "<http", "@here", "@channel", "\u{202e}", "\x1b"] {
            assert!(!text.contains(bad), "{attack:?} left {bad:?} in {text}");
        }
        // Every code block opens and closes in pairs.
        let cmd = blocks[1]["text"]["text"].as_str().unwrap();
        assert_eq!(cmd.matches("```").count(), 2, "{cmd}");
        assert!(cmd.starts_with("*Command*\n```") && cmd.ends_with("```"));
    }
}

#[test]
fn card_text_cannot_link_or_format() {
    for attack in ATTACKS
        .iter()
        .chain(&["[approved](https://evil.example)", "**ok**"])
    {
        let v = view(&["echo", attack], attack, &[("GATE_ENV", attack)]);
        let card = teams_card(&message(&v), "https://gate.example/requests/x");
        let mut text = String::new();
        all_text(&card["body"], &mut text);
        for bad in ["](", "**", "\u{202e}"] {
            assert!(!text.contains(bad), "{attack:?} left {bad:?} in {text}");
        }
        for (i, _) in text.match_indices(['<', '[', '*', '`']) {
            assert_eq!(
                &text[i - 1..i],
                "\\",
                "{attack:?}: unescaped markup in {text}"
            );
        }
    }
}

#[test]
fn limits_hold_for_huge_values_and_cuts_are_noted() {
    let big = "x".repeat(50_000);
    let env: Vec<(String, String)> = (0..400).map(|i| (format!("V{i}"), big.clone())).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut v = view(&["echo", &big, &"<".repeat(5000)], &big, &env);
    v.requester.host = big.clone();
    let mut m = message(&v);
    m.rules = (0..500)
        .map(|i| RuleLine {
            name: format!("r{i}{big}"),
            risk: Some(big.clone()),
            category: None,
        })
        .collect();
    m.approvals = (0..100).map(|i| format!("a{i}")).collect();
    let blocks = slack_blocks(&m, true);
    assert!(blocks.len() <= 50);
    for b in &blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            let max = if b["type"] == "header" { 150 } else { 3000 };
            assert!(t.chars().count() <= max, "{} chars", t.chars().count());
        }
        for f in b["fields"].as_array().into_iter().flatten() {
            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
        }
    }
    let last = blocks.last().unwrap()["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(last.contains("cut"), "{last}");
    let card = teams_message(teams_card(&m, "https://gate.example/r"));
    assert!(serde_json::to_vec(&card).unwrap().len() < 28 * 1024 * 4);
}

#[test]
fn buttons_carry_the_request_id_only_and_deny_asks_first() {
    let v = view(&["aws", "iam", "create-user"], "why", &[]);
    let blocks = slack_blocks(&message(&v), true);
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    let [approve, deny] = actions["elements"].as_array().unwrap().as_slice() else {
        panic!("two buttons")
    };
    assert_eq!(approve["action_id"], ACTION_APPROVE);
    assert_eq!(approve["value"], v.id.as_str());
    assert_eq!(deny["value"], v.id.as_str());
    assert!(approve.get("confirm").is_none());
    assert_eq!(deny["confirm"]["confirm"]["text"], "Deny");
    // Standalone: no buttons, the reaction instructions instead.
    let plain = slack_blocks(&message(&v), false);
    assert!(plain.iter().all(|b| b["type"] != "actions"));
    assert!(
        plain
            .iter()
            .any(|b| b.to_string().contains(":white_check_mark:")),
        "{plain:?}"
    );
}

#[test]
fn decided_messages_say_the_outcome_and_drop_the_buttons() {
    let v = view(&["true"], "", &[]);
    for (state, words) in [
        (ChatState::Approved, "*Approved* by `alice`"),
        (
            ChatState::Denied {
                by: "bob".into(),
                reason: Some("not now".into()),
            },
            "*Denied* by `bob`: `not now`",
        ),
        (ChatState::TimedOut, "*Timed out* with 1 of 2"),
        (ChatState::Cancelled, "*Cancelled*"),
    ] {
        let mut m = message(&v);
        m.state = state;
        let blocks = slack_blocks(&m, true);
        assert!(blocks[1]["text"]["text"].as_str().unwrap().contains(words));
        assert!(blocks.iter().all(|b| b["type"] != "actions"));
    }
}

#[test]
fn the_card_links_to_the_server_page_and_needs_read_n_of_m() {
    let v = view(
        &["kubectl", "delete", "ns", "prod"],
        "cleanup",
        &[("GATE_ENV", "prod")],
    );
    let card = teams_card(&message(&v), "https://gate.example/requests/abc");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://gate.example/requests/abc"
    );
    let s = card.to_string();
    assert!(s.contains("2 of 3 from security"), "{s}");
    let blocks = Value::Array(slack_blocks(&message(&v), false)).to_string();
    assert!(blocks.contains("2 of 3 from `security`"), "{blocks}");
}
