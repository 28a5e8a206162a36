//! Checking rules (what they match, what they decide, what approving them takes) and the
//! file's own `tests:` cases.

use std::collections::BTreeMap;

use super::Checker;
use super::values::{at, similar};
use crate::policy::schema::*;
use crate::policy::yaml::{Node, Value};

impl Checker<'_> {
    pub(super) fn rule(&mut self, v: &Node) -> Option<Rule> {
        let map = self.map(v, "a rule")?;
        let mut name = None;
        let mut matcher = None;
        let mut decision = None;
        let mut decision_written = false;
        let (mut risk, mut category, mut message, mut approval) = (None, None, None, None);
        let mut release = Vec::new();
        for (key, kpos, val) in map {
            match key.as_str() {
                "name" => name = self.str(val, "a rule name").map(|s| at(&s, val.pos)),
                "match" => matcher = self.matcher(val),
                "decision" => {
                    decision_written = true;
                    decision = self.decision(val);
                }
                "risk" => risk = self.str(val, "a string"),
                "category" => category = self.str(val, "a string"),
                "message" => message = self.str(val, "a string"),
                "approval" => approval = self.approval(val),
                "release" => release = self.release(val),
                _ => {
                    // A misspelt `decision` is reported once, as the unknown key it is.
                    decision_written |= similar(key, "decision");
                    self.unknown_key(
                        key,
                        *kpos,
                        &[
                            "name", "match", "decision", "risk", "category", "message", "approval",
                            "release",
                        ],
                    )
                }
            }
        }
        let Some(name) = name else {
            self.d.error(v.pos, "rule without `name`");
            return None;
        };
        let Some(decision) = decision else {
            if decision_written {
                // Already reported where it was written.
                return None;
            }
            self.d.error_hint(
                v.pos,
                format!("rule `{}` has no `decision`", name.value),
                "one of: allow, confirm, approve, deny",
            );
            return None;
        };
        if approval.is_some() && decision != Decision::Approve {
            self.d.error(
                v.pos,
                format!(
                    "rule `{}` has `approval` but its decision is `{}`",
                    name.value,
                    decision.as_str()
                ),
            );
        }
        if !release.is_empty() && decision != Decision::Approve {
            // A secret goes only to a run a person approved.
            self.d.error_hint(
                v.pos,
                format!(
                    "rule `{}` has `release` but its decision is `{}`",
                    name.value,
                    decision.as_str()
                ),
                "secrets are released only to approved runs: make it `decision: approve`",
            );
        }
        let approval = match (decision, approval) {
            (Decision::Approve, None) => Some(Approval {
                approvers: Vec::new(),
                min_approvals: At {
                    value: 1,
                    pos: v.pos,
                },
                allow_requester: false,
                timeout: None,
                backend: None,
                reuse: None,
            }),
            (_, a) => a,
        };
        Some(Rule {
            name,
            matcher: matcher.unwrap_or_default(),
            decision,
            risk,
            category,
            message,
            approval,
            release,
        })
    }

    /// `release: { ENV_VAR: secret:NAME, ... }`: a valid environment variable name that does
    /// not make the command run other code, mapped to a well-formed `secret:` reference.
    pub(super) fn release(&mut self, v: &Node) -> Vec<Release> {
        let mut out: Vec<Release> = Vec::new();
        for (env, kpos, val) in self.map(v, "`release`").unwrap_or(&[]) {
            let valid_env = !env.is_empty()
                && !env.starts_with(|c: char| c.is_ascii_digit())
                && env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_env {
                self.d.error_hint(
                    *kpos,
                    format!("`{env}` is not an environment variable name"),
                    "letters, digits and `_`, not starting with a digit (e.g. `AWS_SESSION_TOKEN`)",
                );
                continue;
            }
            if crate::command::wrap::CODE_ENV.contains(&env.as_str())
                || env.starts_with("LD_")
                || env.split('_').next() == Some("GATE")
                || env == "PATH"
            {
                self.d.error_hint(
                    *kpos,
                    format!("`release` cannot set `{env}`: it changes what the command runs, or what gate does"),
                    "release secrets into the variables the command reads its credentials from",
                );
                continue;
            }
            let Some(reference) = self.str(val, "a `secret:NAME` reference") else {
                continue;
            };
            let name = match reference.strip_prefix("secret:") {
                Some(n) if crate::secrets::vault::valid_name(n) => n.to_owned(),
                _ => {
                    self.d.error_hint(
                        val.pos,
                        format!("`{reference}` is not a secret reference"),
                        "write `secret:NAME`, NAME as stored with `gate serve secret set NAME` (letters, digits, `.`, `_`, `-`)",
                    );
                    continue;
                }
            };
            out.push(Release {
                env: at(env, *kpos),
                secret: at(&name, val.pos),
            });
        }
        out
    }

    pub(super) fn matcher(&mut self, v: &Node) -> Option<Match> {
        let mut m = Match::default();
        for (key, kpos, val) in self.map(v, "`match`")? {
            match key.as_str() {
                "program" => m.program = self.glob(val),
                "args" => m.args = self.glob_list(val),
                "args_any" => m.args_any = self.glob_list(val),
                "regex" => {
                    if let Some(re) = self.str(val, "a regular expression")
                        && self.regex_ok(&re, val.pos)
                    {
                        m.regex = Some(at(&re, val.pos));
                    }
                }
                "env" => {
                    for (name, _, g) in self.map(val, "`env`").unwrap_or(&[]) {
                        if let Some(g) = self.glob(g) {
                            m.env.push((name.clone(), g));
                        }
                    }
                }
                "cwd" => m.cwd = self.glob(val),
                "user" => m.user = self.glob(val),
                "host" => m.host = self.glob(val),
                "ci" => m.ci = self.ci_condition(val, *kpos),
                _ => self.unknown_key(
                    key,
                    *kpos,
                    &[
                        "program", "args", "args_any", "regex", "env", "cwd", "user", "host", "ci",
                    ],
                ),
            }
        }
        Some(m)
    }

    pub(super) fn approval(&mut self, v: &Node) -> Option<Approval> {
        let mut a = Approval {
            approvers: Vec::new(),
            min_approvals: At {
                value: 1,
                pos: v.pos,
            },
            allow_requester: false,
            timeout: None,
            backend: None,
            reuse: None,
        };
        for (key, kpos, val) in self.map(v, "`approval`")? {
            match key.as_str() {
                "approvers" => {
                    for item in self.seq(val, "`approvers`").unwrap_or(&[]) {
                        if let Some(s) = self.str(item, "a group or principal name") {
                            a.approvers.push(at(&s, item.pos));
                        }
                    }
                }
                "min_approvals" => {
                    if let Some(n) = self.min_approvals(val) {
                        a.min_approvals = n;
                    }
                }
                "allow_requester" => a.allow_requester = self.bool(val).unwrap_or(false),
                "timeout" => a.timeout = self.duration(val),
                "backend" => a.backend = self.str(val, "a backend name").map(|s| at(&s, val.pos)),
                "reuse" => a.reuse = self.duration(val),
                _ => self.unknown_key(
                    key,
                    *kpos,
                    &[
                        "approvers",
                        "min_approvals",
                        "allow_requester",
                        "timeout",
                        "backend",
                        "reuse",
                    ],
                ),
            }
        }
        Some(a)
    }

    pub(super) fn test_case(&mut self, v: &Node) -> Option<TestCase> {
        let map = self.map(v, "a test case")?;
        let mut case = TestCase {
            pos: v.pos,
            run: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            user: None,
            host: None,
            expect_decision: Decision::Allow,
            expect_rules: Vec::new(),
            expect_min_approvals: None,
            ci: None,
        };
        let (mut run_seen, mut expect_seen) = (false, false);
        for (key, kpos, val) in map {
            match key.as_str() {
                "run" => {
                    run_seen = true;
                    case.run = self.str_list(val, "the command's argv");
                    if case.run.is_empty() {
                        self.d.error(val.pos, "`run` needs at least the program");
                    }
                }
                "env" => {
                    for (k, _, e) in self.map(val, "`env`").unwrap_or(&[]) {
                        if let Some(s) = self.str(e, "a string") {
                            case.env.insert(k.clone(), s);
                        }
                    }
                }
                "cwd" => case.cwd = self.str(val, "a directory"),
                "user" => case.user = self.str(val, "a user name"),
                "host" => case.host = self.str(val, "a host name"),
                "ci" => case.ci = self.ci_test(val),
                "expect" => {
                    expect_seen = true;
                    let mut decision_seen = false;
                    for (k, kp, e) in self.map(val, "`expect`").unwrap_or(&[]) {
                        match k.as_str() {
                            "decision" => {
                                decision_seen = true;
                                if let Some(d) = self.decision(e) {
                                    case.expect_decision = d;
                                }
                            }
                            "rule" => case.expect_rules.extend(self.str(e, "a rule name")),
                            "rules" => case.expect_rules = self.str_list(e, "rule names"),
                            "min_approvals" => match e.value {
                                Value::Int(n) if n >= 0 => {
                                    case.expect_min_approvals = Some(n as u32)
                                }
                                _ => self.wrong_type(e, "a non-negative integer"),
                            },
                            _ => self.unknown_key(
                                k,
                                *kp,
                                &["decision", "rule", "rules", "min_approvals"],
                            ),
                        }
                    }
                    if !decision_seen {
                        self.d.error(val.pos, "`expect` needs a `decision`");
                    }
                }
                _ => self.unknown_key(
                    key,
                    *kpos,
                    &["run", "env", "cwd", "user", "host", "ci", "expect"],
                ),
            }
        }
        if !run_seen || !expect_seen {
            self.d.error(v.pos, "a test case needs `run` and `expect`");
            return None;
        }
        Some(case)
    }
}
