//! The harness's own promises, so a test that relies on them can trust them: a [`Gate::run`]
//! whose stderr or status nobody expected fails the test; the opt-outs are explicit; the
//! process harness sees a marker and ends what it started.

use crate::common;

use std::time::Duration;

use common::Gate;
use common::process::{Watched, spawn};

#[test]
#[should_panic(expected = "gate printed on stderr")]
fn an_unexpected_message_on_stderr_fails_the_test() {
    // `check` warns that there is no system tier; nobody said so.
    Gate::new().args(&["check", "--", "true"]).run().status(0);
}

#[test]
#[should_panic(expected = "unexpected exit status")]
fn an_unchecked_failure_fails_the_test() {
    // Denied (77), and the test looked only at stderr.
    Gate::new()
        .policy(
            "version: 1\nrules:\n  - name: no\n    match: { program: rm }\n    decision: deny\n",
        )
        .args(&["--", "rm", "x"])
        .run()
        .stderr_contains("denied");
}

#[test]
fn what_a_test_expects_is_all_it_must_say() {
    let g = Gate::new();
    let warning = g.tier_warning();
    g.args(&["check", "--", "true"])
        .run()
        .status(0)
        .stderr(warning);
    Gate::new().args(&["--", "true"]).run();
    Gate::new()
        .args(&["--", "sh", "-c", "echo oops >&2; exit 3"])
        .run()
        .status(3)
        .any_stderr();
}

#[test]
fn a_watched_process_is_seen_at_its_marker_and_killed_when_dropped() {
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "echo ready >&2; exec sleep 60"]);
    let mut w: Watched = spawn(c);
    w.stderr_until("ready", Duration::from_secs(30));
    assert!(w.running());
    let pid = nix::unistd::Pid::from_raw(w.pid());
    drop(w);
    // Reaped by the drop: the pid no longer names our child.
    assert!(nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).is_err());
}
