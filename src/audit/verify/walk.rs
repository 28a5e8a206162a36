//! The in-order walk over checked lines: sequence, links, log id, genesis, and whether what
//! ran was allowed to (compliance with the requirement each decision recorded).

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::line::{DecisionLite, LineInfo};
use super::state::{Hashes, OpenRuns};
use super::statement::{ServerTrust, StatementCheck};
use super::{Problem, Stats};
use crate::audit::record::GENESIS_PREV;

/// The in-order walk: links, sequence, log id, genesis, compliance.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) count: u64,
    pub(super) expected_seq: u64,
    /// The previous record's claimed `hash` (its buffer reused from record to record).
    pub(super) prev_hash: Option<Vec<u8>>,
    pub(super) log_id: Option<String>,
    pub(super) genesis_key: Option<String>,
    /// Claimed hash of each record by seq, for duplicates and the checkpoint comparison.
    pub(super) hashes: Hashes,
    /// Runs whose result has not been seen yet, by request id.
    pub(super) open_runs: OpenRuns,
    pub(super) stats: Stats,
    /// The server keys and backends decisions' statements are checked against.
    pub(super) server_trust: ServerTrust,
    /// Server-approved runs whose statement matched but whose signature no trusted key checked.
    pub(super) statements_unchecked: u64,
    /// A gate server's own log: its requests, held to the approvals they needed.
    pub(super) server: super::server_events::ServerEvents,
}

impl Walk {
    /// Walks one checked line; `buf` is the batch its spans point into.
    pub(super) fn step(
        &mut self,
        line: u64,
        info: &LineInfo,
        buf: &[u8],
        problems: &mut Vec<Problem>,
    ) {
        self.count += 1;
        let mut push = |seq: Option<u64>, code: &'static str, reason: String| {
            problems.push(Problem {
                seq,
                line: Some(line),
                code,
                reason,
            });
        };
        let Some(seq) = info.seq else {
            let (code, reason) = info
                .problem
                .clone()
                .unwrap_or(("bad_json", "unreadable".into()));
            // An unreadable line stands where the expected record should be.
            push(Some(self.expected_seq), code, reason);
            self.expected_seq = self.expected_seq.saturating_add(1);
            self.prev_hash = None;
            self.hashes.push([0; 32]);
            return;
        };
        if let Some((code, reason)) = info.problem.clone() {
            push(Some(seq), code, reason);
        }
        let kind = info.kind.bytes(buf);
        let log_id = info.log_id.bytes(buf);
        let prev = info.prev.bytes(buf);
        let hash = info.hash.bytes(buf);
        // Identity of the log.
        if seq == 0 || kind == b"genesis" {
            if kind != b"genesis" {
                push(
                    Some(seq),
                    "no_genesis",
                    "seq 0 is not a genesis record".into(),
                );
            } else if seq != 0 || self.log_id.is_some() {
                push(
                    Some(seq),
                    "second_genesis",
                    "a second genesis record inside the log".into(),
                );
            } else {
                if prev != GENESIS_PREV.as_bytes() {
                    push(
                        Some(0),
                        "broken_link",
                        "the genesis `prev` is not 64 zeros".into(),
                    );
                }
                self.log_id = Some(info.log_id.text(buf).into_owned());
                self.genesis_key = info.genesis_key.clone();
            }
        } else if self.log_id.is_none() && self.count == 1 {
            push(
                Some(seq),
                "no_genesis",
                "the log does not start with a genesis record".into(),
            );
            self.log_id = Some(info.log_id.text(buf).into_owned());
        }
        if let Some(id) = &self.log_id
            && id.as_bytes() != log_id
        {
            push(
                Some(seq),
                "foreign_log_id",
                format!(
                    "the record belongs to log {}, not {id}",
                    info.log_id.text(buf)
                ),
            );
        }
        // Sequence and link.
        if seq != self.expected_seq {
            let (code, reason) = if seq < self.expected_seq {
                if self.hashes.get(seq).is_some_and(|h| h == info.hash_bin) {
                    (
                        "duplicate_seq",
                        format!("seq {seq} appears again (a duplicated record)"),
                    )
                } else {
                    (
                        "out_of_order",
                        format!(
                            "expected seq {}, found {seq} (records swapped or inserted)",
                            self.expected_seq
                        ),
                    )
                }
            } else {
                (
                    "seq_gap",
                    format!(
                        "expected seq {}, found {seq}: records {}..{} are missing",
                        self.expected_seq,
                        self.expected_seq,
                        seq - 1
                    ),
                )
            };
            push(Some(self.expected_seq.min(seq)), code, reason);
        } else if let Some(last) = &self.prev_hash
            && prev != last.as_slice()
        {
            // A record that is itself bad (edited, foreign) is the one to blame for the break;
            // a sound record whose predecessor no longer matches blames the predecessor, which
            // was altered and re-hashed.
            let own_problem = info.problem.is_some()
                || self
                    .log_id
                    .as_ref()
                    .is_some_and(|id| id.as_bytes() != log_id);
            let (blame, reason) = if own_problem {
                (
                    seq,
                    format!(
                        "seq {seq} does not link to seq {} (its `prev` was altered, or it was inserted)",
                        seq - 1
                    ),
                )
            } else {
                let (prev, last) = (info.prev.text(buf), String::from_utf8_lossy(last));
                (
                    seq.saturating_sub(1),
                    format!(
                        "seq {seq} links to {}…, but seq {} has hash {}… (seq {} was altered and re-hashed, or a record was inserted or removed)",
                        prev.get(..12).unwrap_or(&prev),
                        seq - 1,
                        last.get(..12).unwrap_or(&last),
                        seq - 1
                    ),
                )
            };
            push(Some(blame), "broken_link", reason);
        }
        self.expected_seq = seq
            .max(self.expected_seq.saturating_sub(1))
            .saturating_add(1);
        if seq == self.hashes.len() {
            self.hashes.push(info.hash_bin);
        }
        match &mut self.prev_hash {
            Some(last) => {
                last.clear();
                last.extend_from_slice(hash);
            }
            None => self.prev_hash = Some(hash.to_vec()),
        }
        let request_id = info.request_id.as_ref().map(|r| r.bytes(buf));
        // What ran, and whether it was allowed to.
        match kind {
            b"decision" => {
                self.stats.decisions += 1;
                if info.decision.is_none() {
                    // Otherwise a mistyped field would hide a run from every compliance check.
                    push(
                        Some(seq),
                        "compliance",
                        "the decision cannot be read (a field is missing or has the wrong type): its compliance cannot be checked".into(),
                    );
                    // Reported once, here: its result is not an orphan on top of it.
                    if let Some(id) = request_id {
                        self.open_runs.insert(id, seq);
                    }
                }
                if let Some(d) = &info.decision
                    && d.run
                {
                    if let Some(id) = request_id {
                        self.open_runs.insert(id, seq);
                    }
                    if let Some(v) = compliance(d, info) {
                        push(Some(seq), "compliance", v);
                    }
                    if d.decision == "approve" {
                        let id = info.request_id.as_ref().map(|r| r.text(buf));
                        match super::statement::check(
                            d,
                            id.as_deref().unwrap_or(""),
                            info.digest.as_deref().unwrap_or(""),
                            &self.server_trust,
                        ) {
                            StatementCheck::Violation(v) => push(Some(seq), "compliance", v),
                            StatementCheck::Unchecked => self.statements_unchecked += 1,
                            StatementCheck::NotServer | StatementCheck::Verified => {}
                        }
                    }
                    if d.decision == "approve" {
                        self.stats.approved_runs += 1;
                    }
                }
            }
            b"result" => {
                self.stats.results += 1;
                // A result belongs after the decision that let its command run, in the same
                // log: one without it is a run whose decision was lost (the log deleted or
                // replaced mid-run, a new chain started) or a record made up.
                let decided = request_id.is_some_and(|id| self.open_runs.remove(id));
                if !decided {
                    push(
                        Some(seq),
                        "orphan_result",
                        format!(
                            "a result for request {} with no decision to run it before it in this log",
                            info.request_id
                                .as_ref()
                                .map_or(Cow::Borrowed("(none)"), |id| id.text(buf))
                        ),
                    );
                }
            }
            b"repair" => self.stats.repairs += 1,
            b"event" => {
                if let (Some(e), Some(id)) = (&info.event, &info.request_id) {
                    let id = id.text(buf);
                    let event = super::server_events::Event {
                        seq,
                        request_id: &id,
                        kind: &e.kind,
                        principal: e.principal.as_deref(),
                        status: &e.status,
                        needed: e.needed,
                        voids: e.voids,
                    };
                    if let Some(v) = self.server.step(&event) {
                        push(Some(seq), "compliance", v);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Checks that a decision which let a command run satisfied its own recorded requirement.
pub(super) fn compliance(d: &DecisionLite, info: &LineInfo) -> Option<String> {
    match d.decision.as_str() {
        "deny" => return Some("a command denied by policy ran".into()),
        "approve" => {}
        _ => return None,
    }
    let Some(req) = &d.required else {
        return Some("an approved command ran but its record names no approval requirement".into());
    };
    let requester = info.requester.clone().unwrap_or_default();
    let mut approvers = BTreeSet::new();
    for a in &d.approvals {
        if a.principal == requester && !req.allow_requester {
            return Some(format!(
                "approved by the requester {requester} itself (self-approval)"
            ));
        }
        let late = match (
            humantime::parse_rfc3339(&a.at),
            humantime::parse_rfc3339(&info.ts),
        ) {
            (Ok(at), Ok(ts)) => at > ts,
            _ => true,
        };
        if late {
            return Some(format!(
                "the approval by {} is dated {} — after the run started at {}",
                a.principal, a.at, info.ts
            ));
        }
        approvers.insert(a.principal.as_str());
    }
    for c in &req.clauses {
        let n = approvers
            .iter()
            .filter(|p| {
                c.eligible
                    .as_ref()
                    .is_none_or(|e| e.iter().any(|x| x == *p))
            })
            .count();
        if n < c.min_approvals as usize {
            return Some(format!(
                "rule `{}` needs {} distinct eligible approver(s); the record names {n}",
                c.rule, c.min_approvals
            ));
        }
        for g in &c.groups {
            if !approvers.iter().any(|p| g.members.iter().any(|m| m == p)) {
                return Some(format!(
                    "rule `{}` needs an approver from group `{}`; the record names none",
                    c.rule, g.name
                ));
            }
        }
    }
    if approvers.len() < req.min_approvals as usize {
        return Some(format!(
            "needs {} distinct approvers; the record names {}",
            req.min_approvals,
            approvers.len()
        ));
    }
    if let Some(r) = &d.reuse {
        return reuse_compliance(d, req, r, info);
    }
    None
}

/// A run on an earlier request's approval: allowed only within the window its requirement
/// recorded — `reuse` for a reuse, `reuse` or else `timeout` for `--request` — counted from
/// the last approval to the run. (Who approved, and for which digest and requester, the
/// statement check proves.)
fn reuse_compliance(
    d: &DecisionLite,
    req: &super::line::RequiredLite,
    r: &super::line::ReuseLite,
    info: &LineInfo,
) -> Option<String> {
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| humantime::parse_duration(s).ok());
    let window = match r.via.as_str() {
        "reuse" => parse(&req.reuse),
        "request" => parse(&req.reuse).or_else(|| parse(&req.timeout)),
        other => {
            return Some(format!(
                "the run reuses request {}'s approval by an unknown way `{other}`",
                r.request_id
            ));
        }
    };
    let Some(window) = window else {
        return Some(format!(
            "the run reuses request {}'s approval, but its requirement allows no reuse",
            r.request_id
        ));
    };
    let last = d
        .approvals
        .iter()
        .filter_map(|a| humantime::parse_rfc3339(&a.at).ok())
        .max();
    let ts = humantime::parse_rfc3339(&info.ts).ok();
    match (last, ts) {
        (Some(last), Some(ts)) if ts.duration_since(last).is_ok_and(|age| age <= window) => None,
        _ => Some(format!(
            "the run reuses request {}'s approval outside the {} it covers",
            r.request_id,
            humantime::format_duration(window)
        )),
    }
}
