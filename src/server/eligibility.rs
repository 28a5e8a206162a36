//! Whether a principal may approve or deny a request now: a pure function of the request's
//! state, its requirement, the decisions made so far and the time (passed in), so every rule has
//! a table test and the API and the web page cannot disagree.

use std::collections::BTreeSet;

use crate::approval::RequestStatus;
use crate::policy::Requirement;

/// What the acting principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Approve,
    Deny,
}

/// The request as eligibility sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ballot<'a> {
    pub requester: &'a str,
    /// `pending`, or what it was decided as.
    pub status: RequestStatus,
    pub expires_ms: i64,
    pub requirement: &'a Requirement,
}

/// A decision already recorded on the request: who, and whether it approved.
#[derive(Debug, Clone, Copy)]
pub struct Cast<'a> {
    pub principal: &'a str,
    pub vote: Vote,
}

/// The outcome of [`eligibility`]. No `Default`: there is no outcome without a judgement.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    /// An approval that counts; more are still needed.
    Counts,
    /// An approval that satisfies the requirement: the request is approved.
    Completes,
    /// A denial from an eligible approver: the request is denied, whatever approvals it has.
    Denies,
    /// The request is no longer pending.
    AlreadyDecided,
    /// The request's deadline has passed.
    Expired,
    /// The requester may not decide their own request.
    SelfApproval,
    /// The principal counts for no clause of the requirement.
    NotEligible,
    /// The principal has already approved or denied this request.
    Repeat,
}

impl Eligibility {
    /// Whether the decision is recorded.
    pub fn accepted(self) -> bool {
        matches!(self, Self::Counts | Self::Completes | Self::Denies)
    }

    /// The HTTP status and error code of a refusal (`None` when accepted).
    pub fn refusal(self) -> Option<(u16, &'static str)> {
        match self {
            Self::Counts | Self::Completes | Self::Denies => None,
            Self::AlreadyDecided => Some((409, "decided")),
            Self::Expired => Some((409, "expired")),
            Self::SelfApproval => Some((403, "self_approval")),
            Self::NotEligible => Some((403, "not_eligible")),
            Self::Repeat => Some((409, "already_decided")),
        }
    }
}

/// Decides whether `principal` may cast `vote` on `ballot` at `now_ms`, given the decisions
/// recorded before (`previous`, not including this one). The rules, in order: a decided request
/// stays decided; an expired one takes nothing; the requester decides only if every matched rule
/// lets them; the principal must count for some clause; one decision per principal; an eligible
/// denial wins; an approval completes the request when the distinct approvers, this one
/// included, satisfy every clause (counts and group coverage).
pub fn eligibility(
    ballot: &Ballot<'_>,
    principal: &str,
    vote: Vote,
    previous: &[Cast<'_>],
    now_ms: i64,
) -> Eligibility {
    let req = ballot.requirement;
    if !ballot.status.is_pending() {
        return Eligibility::AlreadyDecided;
    }
    if ballot.expires_ms <= now_ms {
        return Eligibility::Expired;
    }
    if principal == ballot.requester && !req.allow_requester {
        return Eligibility::SelfApproval;
    }
    if !req.counts(principal) {
        return Eligibility::NotEligible;
    }
    if previous.iter().any(|d| d.principal == principal) {
        return Eligibility::Repeat;
    }
    if vote == Vote::Deny {
        return Eligibility::Denies;
    }
    let approvers: BTreeSet<String> = previous
        .iter()
        .filter(|d| d.vote == Vote::Approve)
        .map(|d| d.principal.to_owned())
        .chain([principal.to_owned()])
        .collect();
    if req.satisfied_by(&approvers) {
        Eligibility::Completes
    } else {
        Eligibility::Counts
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::{Clause, GroupRequirement};

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn clause(eligible: Option<&[&str]>, min: u32, groups: &[(&str, &[&str])]) -> Clause {
        Clause {
            rule: "r".into(),
            approvers: Vec::new(),
            eligible: eligible.map(set),
            min_approvals: min,
            groups: groups
                .iter()
                .map(|(n, m)| GroupRequirement {
                    name: (*n).into(),
                    members: set(m),
                })
                .collect(),
        }
    }

    fn req(clauses: Vec<Clause>, allow_requester: bool) -> Requirement {
        Requirement {
            min_approvals: clauses.iter().map(|c| c.min_approvals).max().unwrap_or(1),
            allow_requester,
            timeout: Duration::from_secs(600),
            backend: None,
            clauses,
            reuse: None,
        }
    }

    const NOW: i64 = 1_000_000;
    const A: Vote = Vote::Approve;
    const D: Vote = Vote::Deny;

    #[test]
    fn every_rule_decides_as_the_table_says() {
        use Eligibility::*;
        let anyone = req(vec![clause(None, 1, &[])], false);
        let two_ops = req(vec![clause(Some(&["ann", "bob", "cy"]), 2, &[])], false);
        let self_ok = req(vec![clause(Some(&["alice", "bob"]), 1, &[])], true);
        let groups = req(
            vec![clause(
                Some(&["ann", "bob", "dba1"]),
                2,
                &[("dba", &["dba1"])],
            )],
            false,
        );
        let two_clauses = req(
            vec![
                clause(Some(&["ann"]), 1, &[]),
                clause(Some(&["bob"]), 1, &[]),
            ],
            false,
        );
        type Row<'a> = (
            &'a str,
            &'a Requirement,
            &'a str,
            i64,
            &'a str,
            Vote,
            &'a [(&'a str, Vote)],
            Eligibility,
        );
        #[rustfmt::skip]
        let table: &[Row<'_>] = &[
            // what,                              requirement, status,     expires,  who,     vote, previous,                 outcome
            ("anyone approves",                   &anyone,     "pending",  NOW + 1,  "bob",   A,    &[],                      Completes),
            ("anyone denies",                     &anyone,     "pending",  NOW + 1,  "bob",   D,    &[],                      Denies),
            ("self-approval refused",             &anyone,     "pending",  NOW + 1,  "alice", A,    &[],                      SelfApproval),
            ("self-denial refused too",           &anyone,     "pending",  NOW + 1,  "alice", D,    &[],                      SelfApproval),
            ("self-approval where rules allow",   &self_ok,    "pending",  NOW + 1,  "alice", A,    &[],                      Completes),
            ("non-member refused",                &two_ops,    "pending",  NOW + 1,  "mallory", A,  &[],                      NotEligible),
            ("non-member cannot deny",            &two_ops,    "pending",  NOW + 1,  "mallory", D,  &[],                      NotEligible),
            ("first of two counts",               &two_ops,    "pending",  NOW + 1,  "ann",   A,    &[],                      Counts),
            ("second of two completes",           &two_ops,    "pending",  NOW + 1,  "bob",   A,    &[("ann", A)],            Completes),
            ("repeat approval refused",           &two_ops,    "pending",  NOW + 1,  "ann",   A,    &[("ann", A)],            Repeat),
            ("deny after own approval refused",   &two_ops,    "pending",  NOW + 1,  "ann",   D,    &[("ann", A)],            Repeat),
            ("deny wins over approvals",          &two_ops,    "pending",  NOW + 1,  "cy",    D,    &[("ann", A)],            Denies),
            ("expired at the deadline",           &two_ops,    "pending",  NOW,      "ann",   A,    &[],                      Expired),
            ("expired past the deadline",         &two_ops,    "pending",  NOW - 1,  "ann",   D,    &[],                      Expired),
            ("approved stays approved",           &two_ops,    "approved", NOW + 1,  "cy",    D,    &[("ann", A), ("bob", A)], AlreadyDecided),
            ("denied stays denied",               &two_ops,    "denied",   NOW + 1,  "bob",   A,    &[("ann", D)],            AlreadyDecided),
            ("cancelled takes nothing",           &anyone,     "cancelled", NOW + 1, "bob",   A,    &[],                      AlreadyDecided),
            ("decided before expiry check",       &anyone,     "expired",  NOW - 1,  "bob",   A,    &[],                      AlreadyDecided),
            ("group uncovered: two not enough",   &groups,     "pending",  NOW + 1,  "bob",   A,    &[("ann", A)],            Counts),
            ("group member covers the group",     &groups,     "pending",  NOW + 1,  "dba1",  A,    &[("ann", A)],            Completes),
            ("group member alone is not two",     &groups,     "pending",  NOW + 1,  "dba1",  A,    &[],                      Counts),
            ("each clause needs its approver",    &two_clauses, "pending", NOW + 1,  "ann",   A,    &[],                      Counts),
            ("both clauses covered",              &two_clauses, "pending", NOW + 1,  "bob",   A,    &[("ann", A)],            Completes),
            ("a denial is no approval",           &two_clauses, "pending", NOW + 1,  "bob",   A,    &[("cy", D)],             Counts),
        ];
        for (what, r, status, expires, who, vote, previous, want) in table {
            let ballot = Ballot {
                requester: "alice",
                status: RequestStatus::parse(status).unwrap(),
                expires_ms: *expires,
                requirement: r,
            };
            let prev: Vec<Cast<'_>> = previous
                .iter()
                .map(|(p, v)| Cast {
                    principal: p,
                    vote: *v,
                })
                .collect();
            assert_eq!(
                eligibility(&ballot, who, *vote, &prev, NOW),
                *want,
                "{what}"
            );
        }
    }

    #[test]
    fn refusals_keep_their_statuses_and_codes() {
        use Eligibility::*;
        assert_eq!(AlreadyDecided.refusal(), Some((409, "decided")));
        assert_eq!(Expired.refusal(), Some((409, "expired")));
        assert_eq!(SelfApproval.refusal(), Some((403, "self_approval")));
        assert_eq!(NotEligible.refusal(), Some((403, "not_eligible")));
        assert_eq!(Repeat.refusal(), Some((409, "already_decided")));
        for ok in [Counts, Completes, Denies] {
            assert!(ok.accepted());
            assert_eq!(ok.refusal(), None);
        }
        for no in [AlreadyDecided, Expired, SelfApproval, NotEligible, Repeat] {
            assert!(!no.accepted());
        }
    }
}
