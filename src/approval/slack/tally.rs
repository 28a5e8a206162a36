//! Counting reactions: which ✅ and ❌ on the approval message count, and why the others do
//! not. Only Slack user ids count — never names or message text — and an id counts only
//! through the policy's `identities` (principal → `slack: U…`), for a principal the
//! requirement allows, never the requester's (unless `allow_requester`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::policy::Requirement;

/// The reaction that approves.
pub const APPROVE: &str = "white_check_mark";
/// The reaction that denies.
pub const DENY: &str = "x";

/// Who is who, for one request.
#[derive(Debug)]
pub struct Roster<'a> {
    /// Slack user id → principal, from `identities`.
    pub principals: &'a BTreeMap<String, String>,
    /// The requester's principal (OS user name).
    pub requester: &'a str,
    pub requirement: &'a Requirement,
}

/// A counted vote: the principal and the Slack user who reacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub principal: String,
    pub slack_id: String,
}

/// What one look at the message's reactions found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Distinct eligible principals who reacted ✅, in Slack's order.
    pub approvals: Vec<Vote>,
    /// The first eligible ❌.
    pub denial: Option<Vote>,
    /// ✅ / ❌ reactions that do not count: Slack user id → why.
    pub ignored: BTreeMap<String, String>,
    /// The message was edited after gate posted it (only the bot token can, so: whoever
    /// holds it besides gate). What approvers saw may not be what runs.
    pub edited: bool,
}

/// A Slack user id as Slack writes them (`U…` or `W…`, upper-case letters and digits).
pub fn is_user_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('U' | 'W'))
        && s.len() >= 3
        && s.len() <= 32
        && c.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Reads `message` from a `reactions.get` answer. `Err` names the part that is malformed.
pub fn tally(message: &Value, who: &Roster<'_>) -> Result<Tally, String> {
    let mut t = Tally {
        edited: message.get("edited").is_some_and(|e| !e.is_null()),
        ..Tally::default()
    };
    let reactions = match message.get("reactions") {
        None | Some(Value::Null) => return Ok(t),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("`message.reactions` is not a list".to_owned()),
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (i, r) in reactions.iter().enumerate() {
        let name = r
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`message.reactions[{i}].name` is missing"))?;
        let approve = match name {
            APPROVE => true,
            DENY => false,
            _ => continue,
        };
        let users = r
            .get("users")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("`message.reactions[{i}].users` is not a list"))?;
        for (j, u) in users.iter().enumerate() {
            let id = u
                .as_str()
                .ok_or_else(|| format!("`message.reactions[{i}].users[{j}]` is not a string"))?;
            if !is_user_id(id) {
                // Not an id Slack would write: nobody `identities` can name. Kept short and
                // never used as a mention.
                let shown: String = id.chars().take(40).collect();
                t.ignored.entry(shown).or_insert_with(|| {
                    "this is not a Slack user id gate can map to a principal".to_owned()
                });
                continue;
            }
            let Some(principal) = who.principals.get(id) else {
                t.ignored.entry(id.to_owned()).or_insert_with(|| {
                    "this Slack account is not mapped to a gate principal (`identities: {NAME: {slack: ID}}` in the system policy)".to_owned()
                });
                continue;
            };
            if principal == who.requester && !who.requirement.allow_requester {
                t.ignored.entry(id.to_owned()).or_insert_with(|| {
                    format!("`{}` asked for this command; the requester never approves or denies their own request", shown(principal))
                });
                continue;
            }
            if !who.requirement.counts(principal) {
                t.ignored.entry(id.to_owned()).or_insert_with(|| {
                    format!(
                        "`{}` is not an eligible approver for this command",
                        shown(principal)
                    )
                });
                continue;
            }
            let vote = Vote {
                principal: principal.clone(),
                slack_id: id.to_owned(),
            };
            if approve {
                if seen.insert(principal.clone()) {
                    t.approvals.push(vote);
                }
            } else if t.denial.is_none() {
                t.denial = Some(vote);
            }
        }
    }
    Ok(t)
}

/// A principal's name (from policy) as it may appear in a Slack message.
fn shown(principal: &str) -> String {
    crate::approval::chat::escape::mrkdwn(principal, 80).text
}

/// Whether the approvals so far meet the requirement (distinct principals).
pub fn approved(t: &Tally, requirement: &Requirement) -> bool {
    let names: BTreeSet<String> = t.approvals.iter().map(|v| v.principal.clone()).collect();
    requirement.satisfied_by(&names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Clause, GroupRequirement};
    use serde_json::json;

    fn requirement(min: u32) -> Requirement {
        let sec: BTreeSet<String> = ["alice", "bob", "mallory"].map(String::from).into();
        Requirement {
            clauses: vec![Clause {
                rule: "r".into(),
                approvers: vec!["security".into()],
                eligible: Some(sec.clone()),
                min_approvals: min,
                groups: vec![GroupRequirement {
                    name: "security".into(),
                    members: sec,
                }],
            }],
            min_approvals: min,
            allow_requester: false,
            timeout: std::time::Duration::from_secs(60),
            backend: Some("sec".into()),
            reuse: None,
        }
    }

    fn ids() -> BTreeMap<String, String> {
        [
            ("U0ALICE01", "alice"),
            ("U0BOB0001", "bob"),
            ("U0MALLORY", "mallory"),
            ("U0CAROL01", "carol"),
            ("U0ALICE02", "alice"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into()
    }

    #[test]
    fn counts_distinct_eligible_principals_only() {
        let (ids, req) = (ids(), requirement(2));
        let who = Roster {
            principals: &ids,
            requester: "mallory",
            requirement: &req,
        };
        let m = json!({"reactions": [
            {"name": "white_check_mark", "users": ["U0MALLORY", "U0ALICE01", "U0ALICE02", "U0CAROL01", "U0NOBODY1"], "count": 5},
            {"name": "eyes", "users": ["U0BOB0001"], "count": 1},
        ]});
        let t = tally(&m, &who).unwrap();
        assert_eq!(t.approvals.len(), 1, "alice twice is one approval: {t:?}");
        assert!(!approved(&t, &req));
        assert_eq!(
            t.ignored.keys().collect::<Vec<_>>(),
            ["U0CAROL01", "U0MALLORY", "U0NOBODY1"]
        );
        assert!(t.ignored["U0MALLORY"].contains("requester"));
    }

    #[test]
    fn an_eligible_deny_is_seen_and_a_requester_deny_is_not() {
        let (ids, req) = (ids(), requirement(1));
        let who = Roster {
            principals: &ids,
            requester: "mallory",
            requirement: &req,
        };
        let m =
            json!({"reactions": [{"name": "x", "users": ["U0MALLORY", "U0BOB0001"], "count": 2}]});
        let t = tally(&m, &who).unwrap();
        assert_eq!(t.denial.unwrap().principal, "bob");
    }

    #[test]
    fn malformed_answers_name_the_place() {
        let (ids, req) = (ids(), requirement(1));
        let who = Roster {
            principals: &ids,
            requester: "mallory",
            requirement: &req,
        };
        for (m, want) in [
            (json!({"reactions": 3}), "`message.reactions` is not a list"),
            (json!({"reactions": [{"users": []}]}), "reactions[0].name"),
            (
                json!({"reactions": [{"name": "x", "users": [7]}]}),
                "reactions[0].users[0]",
            ),
        ] {
            assert!(tally(&m, &who).unwrap_err().contains(want), "{m}");
        }
        assert!(
            tally(&json!({"edited": {"user": "U0SIMBOT01"}}), &who)
                .unwrap()
                .edited
        );
        let odd = json!({"reactions": [{"name": "x", "users": ["<!channel>"]}]});
        let t = tally(&odd, &who).unwrap();
        assert!(t.denial.is_none() && t.ignored.contains_key("<!channel>"));
    }
}
