//! The example in docs/dev/chat-simulators.md, run as a test so the doc cannot drift: the
//! block between the `// doc:begin` and `// doc:end` lines is quoted there verbatim.

use super::{call, get};
use crate::common;
use common::slack_sim::{CHANNEL, Fault, SlackConfig, SlackSim};
use serde_json::json;

#[test]
fn the_documented_example_runs() {
    // doc:begin
    let sim = SlackSim::start(SlackConfig::default()); // a backend's `api_url`: sim.api_url()
    // What the backend does when a request needs approval:
    let posted = call(
        &sim,
        "chat.postMessage",
        json!({"channel": CHANNEL, "text": "approve?"}),
    );
    let ts = posted["ts"].as_str().unwrap();
    // An approver reacts in Slack, and Slack has a hiccup on the next call:
    sim.react(CHANNEL, ts, "white_check_mark", "U0ALICE01");
    sim.fail_method("reactions.get", 1, Fault::Status(503));
    let q = [("channel", CHANNEL), ("timestamp", ts), ("full", "true")];
    get(&sim, "reactions.get", &q); // 503: the backend retries
    let seen = get(&sim, "reactions.get", &q);
    assert_eq!(
        seen["message"]["reactions"][0]["users"],
        json!(["U0ALICE01"])
    );
    // What the test then checks: every call (and its status), the message as people see it.
    let statuses: Vec<u16> = sim
        .calls_to("reactions.get")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [503, 200]);
    assert_eq!(
        sim.message(CHANNEL, ts).unwrap().text.as_deref(),
        Some("approve?")
    );
    // doc:end
}

#[test]
fn the_doc_quotes_the_example_verbatim() {
    let doc = include_str!("../../../docs/dev/chat-simulators.md");
    let src = include_str!("usage.rs");
    let start = src.find("    // doc:begin\n").unwrap() + "    // doc:begin\n".len();
    let end = src.find("    // doc:end").unwrap();
    let example: String = src[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(
        doc.contains(&example),
        "docs/dev/chat-simulators.md must quote this example verbatim:\n{example}"
    );
}
