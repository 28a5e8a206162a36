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
        },
        command: CommandInfo {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: "/srv/app".into(),
            executable: None,
            payload: vec![],
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
