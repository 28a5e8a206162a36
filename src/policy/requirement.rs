//! What an approval requires: the clauses of the matched `approve` rules (who may approve,
//! how many, which groups must take part), combined so that more rules only ever ask for more,
//! and what approving a command gate cannot read asks for.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Decision, Policy, RuleApproval, RuleInfo};

/// A group named in `approvers`: at least one of its members must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRequirement {
    pub name: String,
    pub members: BTreeSet<String>,
}

/// One clause of an approval requirement: a matched `approve` rule's own demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    pub rule: String,
    pub approvers: Vec<String>,
    /// `None`: anyone but the requester.
    pub eligible: Option<BTreeSet<String>>,
    /// At least this many distinct eligible principals.
    pub min_approvals: u32,
    /// Every named group must contribute at least one of them.
    #[serde(default)]
    pub groups: Vec<GroupRequirement>,
}

impl Clause {
    /// Whether every set of approvers satisfying `self` satisfies `other`: no wider
    /// eligibility, at least as many approvals, each of `other`'s groups required too.
    pub fn implies(&self, other: &Clause) -> bool {
        let eligible = match (&self.eligible, &other.eligible) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x.is_subset(y),
        };
        eligible
            && self.min_approvals >= other.min_approvals
            && other.groups.iter().all(|g| {
                self.groups
                    .iter()
                    .any(|h| !h.members.is_empty() && h.members.is_subset(&g.members))
            })
    }

    fn satisfied_by(&self, approvers: &BTreeSet<String>) -> bool {
        let n = approvers
            .iter()
            .filter(|a| self.eligible.as_ref().is_none_or(|e| e.contains(*a)))
            .count();
        n >= self.min_approvals as usize
            && self
                .groups
                .iter()
                .all(|g| approvers.iter().any(|a| g.members.contains(a)))
    }
}

/// What approval a command needs, combined over every matching `approve` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub clauses: Vec<Clause>,
    /// The largest `min_approvals` of the clauses.
    pub min_approvals: u32,
    /// True only if every matched rule allows the requester to approve.
    pub allow_requester: bool,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub timeout: Duration,
    pub backend: Option<String>,
    /// How long an approval covers the same requester's identical digest (`approval.reuse`):
    /// set only when every matched `approve` rule sets it, then the shortest. A file that adds
    /// a longer window can therefore never stretch one a system-tier rule sets, nor create
    /// one where a system-tier rule sets none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration"
    )]
    pub reuse: Option<Duration>,
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// The reuse window of several `approve` rules: the shortest, and none when any rule sets
/// none (or there is no rule at all).
pub fn combined_reuse(windows: impl IntoIterator<Item = Option<Duration>>) -> Option<Duration> {
    let mut out: Option<Duration> = None;
    for w in windows {
        let w = w?;
        out = Some(out.map_or(w, |o| o.min(w)));
    }
    out
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(serde::de::Error::custom)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl Requirement {
    /// Every principal who counts for at least one clause (`None`: anyone but the requester).
    pub fn eligible(&self) -> Option<BTreeSet<String>> {
        let mut all = BTreeSet::new();
        for c in &self.clauses {
            all.extend(c.eligible.clone()?);
        }
        Some(all)
    }

    /// Whether the distinct approvers given satisfy every clause.
    pub fn satisfied_by(&self, approvers: &BTreeSet<String>) -> bool {
        self.clauses.iter().all(|c| c.satisfied_by(approvers))
            && approvers.len() >= self.min_approvals as usize
    }

    /// Whether every set of approvers that satisfies `self` also satisfies `other`: each of
    /// `other`'s clauses is implied by one of `self`'s (no wider eligibility, at least as many
    /// approvals, every group of it required too), at least as many approvals overall, the
    /// requester counting only if `other` lets them, and no longer a wait.
    pub fn at_least_as_strict_as(&self, other: &Requirement) -> bool {
        other
            .clauses
            .iter()
            .all(|b| self.clauses.iter().any(|a| a.implies(b)))
            && self.min_approvals >= other.min_approvals
            && (other.allow_requester || !self.allow_requester)
            && self.timeout <= other.timeout
            && match (self.reuse, other.reuse) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => a <= b,
            }
    }

    /// Whether a principal counts towards any clause.
    pub fn counts(&self, principal: &str) -> bool {
        self.clauses
            .iter()
            .any(|c| c.eligible.as_ref().is_none_or(|e| e.contains(principal)))
    }
}

impl Policy {
    /// What approving a command gate cannot read requires: at least what any rule of the
    /// policy can require — every clause of every `approve` rule (so each of their groups
    /// must contribute), the largest `min_approvals`, the shortest timeout, the requester never
    /// counting. With no `approve` rule, one approval from anyone but the requester.
    ///
    /// When the system tier names `defaults.opaque_approval`, that clause replaces the derived
    /// one, together with the clauses of the rules the readable part of the command matched.
    pub fn opaque_requirement(&self, matched: &[RuleInfo]) -> Requirement {
        if let Some(a) = &self.opaque_approval {
            let mut r = if matched.iter().any(|r| r.decision == Decision::Approve) {
                let mut r = self.requirement(matched);
                r.clauses.retain(|c| c.rule != "defaults");
                r
            } else {
                Requirement {
                    clauses: Vec::new(),
                    min_approvals: 1,
                    allow_requester: false,
                    timeout: self.default_timeout,
                    backend: self.default_backend.clone(),
                    reuse: None,
                }
            };
            r.clauses.push(Clause {
                rule: "opaque-approval".into(),
                approvers: a.approvers.clone(),
                eligible: a.eligible.clone(),
                min_approvals: a.min_approvals,
                groups: a.groups.clone(),
            });
            r.min_approvals = r.min_approvals.max(a.min_approvals);
            // The requester of a command nobody could read never approves it.
            r.allow_requester = false;
            // Nor is an approval of one reused for another run of it.
            r.reuse = None;
            return r;
        }
        let approving: Vec<&RuleInfo> = self
            .rules
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .collect();
        let mut clauses: Vec<Clause> = approving
            .iter()
            .map(|r| match &r.approval {
                Some(a) => Clause {
                    rule: r.name.clone(),
                    approvers: a.approvers.clone(),
                    eligible: a.eligible.clone(),
                    min_approvals: a.min_approvals,
                    groups: a.groups.clone(),
                },
                None => Clause {
                    rule: r.name.clone(),
                    approvers: Vec::new(),
                    eligible: None,
                    min_approvals: 1,
                    groups: Vec::new(),
                },
            })
            .collect();
        // A clause another one implies adds nothing (of two equivalent ones, keep the first).
        let keep: Vec<bool> = (0..clauses.len())
            .map(|i| {
                !(0..clauses.len()).any(|j| {
                    j != i
                        && clauses[j].implies(&clauses[i])
                        && (j < i || !clauses[i].implies(&clauses[j]))
                })
            })
            .collect();
        let mut keep = keep.into_iter();
        clauses.retain(|_| keep.next().unwrap_or(true));
        if clauses.is_empty() {
            clauses.push(Clause {
                rule: "opaque-shell".into(),
                approvers: Vec::new(),
                eligible: None,
                min_approvals: 1,
                groups: Vec::new(),
            });
        }
        let timeout = approving
            .iter()
            .map(|r| {
                r.approval
                    .as_ref()
                    .and_then(|a| a.timeout)
                    .unwrap_or(self.default_timeout)
            })
            .min()
            .unwrap_or(self.default_timeout);
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester: false,
            timeout,
            backend: approving
                .iter()
                .find_map(|r| r.approval.as_ref().and_then(|a| a.backend.clone()))
                .or_else(|| self.default_backend.clone()),
            clauses,
            // A command gate cannot read: every approval is for this run alone.
            reuse: None,
        }
    }

    pub(super) fn requirement(&self, matched: &[RuleInfo]) -> Requirement {
        let approving: Vec<&RuleApproval> = matched
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .filter_map(|r| r.approval.as_ref())
            .collect();
        let clauses: Vec<Clause> = matched
            .iter()
            .filter(|r| r.decision == Decision::Approve)
            .filter_map(|r| {
                let a = r.approval.as_ref()?;
                Some(Clause {
                    rule: r.name.clone(),
                    approvers: a.approvers.clone(),
                    eligible: a.eligible.clone(),
                    min_approvals: a.min_approvals,
                    groups: a.groups.clone(),
                })
            })
            .collect();
        // A command no `approve` rule matched but that defaults to `approve` still needs one
        // approval from anyone but the requester.
        let clauses = if clauses.is_empty() {
            vec![Clause {
                rule: "defaults".into(),
                approvers: Vec::new(),
                eligible: None,
                min_approvals: 1,
                groups: Vec::new(),
            }]
        } else {
            clauses
        };
        let timeout = approving
            .iter()
            .map(|a| a.timeout.unwrap_or(self.default_timeout))
            .min()
            .unwrap_or(self.default_timeout);
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester: !approving.is_empty() && approving.iter().all(|a| a.allow_requester),
            timeout,
            backend: approving
                .iter()
                .find_map(|a| a.backend.clone())
                .or_else(|| self.default_backend.clone()),
            clauses,
            // Every matched `approve` rule must allow reuse — one with no `approval:` block
            // allows none — and the shortest window wins.
            reuse: combined_reuse(
                matched
                    .iter()
                    .filter(|r| r.decision == Decision::Approve)
                    .map(|r| r.approval.as_ref().and_then(|a| a.reuse)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(eligible: Option<&[&str]>, min: u32, groups: &[(&str, &[&str])]) -> Clause {
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        Clause {
            rule: "r".into(),
            approvers: Vec::new(),
            eligible: eligible.map(set),
            min_approvals: min,
            groups: groups
                .iter()
                .map(|(n, m)| GroupRequirement {
                    name: n.to_string(),
                    members: set(m),
                })
                .collect(),
        }
    }

    fn req(clauses: Vec<Clause>, timeout: u64) -> Requirement {
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester: false,
            timeout: Duration::from_secs(timeout),
            backend: None,
            clauses,
            reuse: None,
        }
    }

    #[test]
    fn reuse_needs_every_rule_to_allow_it_and_the_shortest_window_wins() {
        let m = |s| Some(Duration::from_secs(s));
        assert_eq!(combined_reuse([m(600), m(60)]), m(60));
        // A rule without `reuse` (a system-tier rule, say) forbids it whatever another says.
        assert_eq!(combined_reuse([m(600), None]), None);
        assert_eq!(combined_reuse([None, m(31_536_000)]), None);
        assert_eq!(combined_reuse(std::iter::empty()), None);
    }

    #[test]
    fn a_reuse_window_is_less_strict_than_none() {
        let none = req(vec![clause(None, 1, &[])], 60);
        let mut ten = none.clone();
        ten.reuse = Some(Duration::from_secs(600));
        let mut one = none.clone();
        one.reuse = Some(Duration::from_secs(60));
        assert!(none.at_least_as_strict_as(&ten));
        assert!(!ten.at_least_as_strict_as(&none));
        assert!(one.at_least_as_strict_as(&ten));
        assert!(!ten.at_least_as_strict_as(&one));
    }

    #[test]
    fn strictness_of_requirements() {
        let sec: &[&str] = &["alice", "bob"];
        let sre: &[&str] = &["carol", "dave"];
        let two_sec = req(vec![clause(Some(sec), 2, &[("security", sec)])], 900);
        let anyone = req(vec![clause(None, 1, &[])], 900);
        let both = req(
            vec![
                clause(Some(sec), 2, &[("security", sec)]),
                clause(Some(sre), 1, &[("sre", sre)]),
            ],
            600,
        );
        assert!(two_sec.at_least_as_strict_as(&anyone));
        assert!(!anyone.at_least_as_strict_as(&two_sec));
        assert!(both.at_least_as_strict_as(&two_sec));
        assert!(!two_sec.at_least_as_strict_as(&both), "sre is not implied");
        assert!(both.at_least_as_strict_as(&both));
        // A longer wait, or letting the requester count, is looser.
        let longer = req(both.clauses.clone(), 1200);
        assert!(!longer.at_least_as_strict_as(&both));
        let mut lenient = both.clone();
        lenient.allow_requester = true;
        assert!(!lenient.at_least_as_strict_as(&both));
        assert!(both.at_least_as_strict_as(&lenient));
        // Fewer approvals from the same people is looser.
        let one_sec = req(vec![clause(Some(sec), 1, &[("security", sec)])], 900);
        assert!(!one_sec.at_least_as_strict_as(&two_sec));
    }
}
