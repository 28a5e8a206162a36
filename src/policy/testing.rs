//! Runs the `tests:` cases written inside a policy file against that file alone, so a file's
//! tests mean the same on every machine whatever else is installed.

use std::path::PathBuf;

use serde::Serialize;

use super::{Classification, Place, Policy, PolicyFile};

#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    pub file: PathBuf,
    pub line: usize,
    pub run: Vec<String>,
    /// `None` when the case passed.
    pub failure: Option<String>,
}

/// Runs every case of `file` against `policy` (built from that file alone).
pub fn run_cases(file: &PolicyFile, policy: &Policy) -> Vec<CaseOutcome> {
    file.tests
        .iter()
        .map(|case| {
            let got = policy.classify_argv_in(
                &case.run,
                &Place {
                    env: &case.env,
                    cwd: case.cwd.as_deref().unwrap_or("/"),
                    user: case.user.as_deref().unwrap_or("user"),
                    host: case.host.as_deref().unwrap_or("host"),
                    links: None,
                },
                case.ci
                    .as_ref()
                    .map_or(super::ci::CiContext::Requester, super::ci::CiTest::context),
            );
            CaseOutcome {
                file: file.path.clone(),
                line: case.pos.line,
                run: case.run.clone(),
                failure: failure(case, &got),
            }
        })
        .collect()
}

fn failure(case: &super::schema::TestCase, got: &Classification) -> Option<String> {
    let mut problems = Vec::new();
    if got.decision != case.expect_decision {
        problems.push(format!(
            "expected decision `{}`, got `{}`",
            case.expect_decision.as_str(),
            got.decision.as_str()
        ));
    }
    let matched: Vec<&str> = got.matched.iter().map(|r| r.name.as_str()).collect();
    for rule in &case.expect_rules {
        if !matched.contains(&rule.as_str()) {
            problems.push(format!(
                "expected rule `{rule}` to match; matched: {}",
                if matched.is_empty() {
                    "none".to_owned()
                } else {
                    matched.join(", ")
                }
            ));
        }
    }
    if let Some(n) = case.expect_min_approvals {
        let got_n = got.requirement.as_ref().map_or(0, |r| r.min_approvals);
        if got_n != n {
            problems.push(format!("expected {n} approvals needed, got {got_n}"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}
