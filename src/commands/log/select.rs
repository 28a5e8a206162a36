//! Which records `gate log show`, `tail` and `export` take: times (RFC 3339, dates, durations
//! ago), request ids (full, the short id tables show, a unique prefix) and filters by user,
//! outcome and rule, judged per request so a result row goes with its decision.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use crate::audit::record::{Kind, Record};
use crate::error::Error;

/// The filters, resolved: times as instants, the request as one full id.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub request: Option<String>,
    pub user: Option<String>,
    /// A decision record's `outcome` spelling (`approved`, `timed_out`, ...).
    pub outcome: Option<&'static str>,
    pub rule: Option<String>,
}

impl Filter {
    /// Whether any filter beyond time is set: then records of no request (genesis, repairs)
    /// are left out.
    fn by_request(&self) -> bool {
        self.request.is_some()
            || self.user.is_some()
            || self.outcome.is_some()
            || self.rule.is_some()
    }

    pub fn is_set(&self) -> bool {
        self.by_request() || self.since.is_some() || self.until.is_some()
    }

    /// Whether `ts` (a record's RFC 3339 time) lies in `[since, until)`. A time that cannot be
    /// read is in no range.
    pub fn in_time(&self, ts: &str) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Ok(t) = humantime::parse_rfc3339_weak(ts) else {
            return false;
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// Whether the request `info` (what the log says of it so far) passes the filters other
    /// than time.
    pub fn takes_request(&self, id: &str, info: Option<&RequestInfo>) -> bool {
        if self.request.as_deref().is_some_and(|r| r != id) {
            return false;
        }
        if !(self.user.is_some() || self.outcome.is_some() || self.rule.is_some()) {
            return true;
        }
        let Some(info) = info else { return false };
        self.user
            .as_ref()
            .is_none_or(|u| info.user.as_deref() == Some(u.as_str()))
            && self
                .outcome
                .is_none_or(|o| info.outcome.as_deref() == Some(o))
            && self
                .rule
                .as_ref()
                .is_none_or(|r| info.rules.iter().any(|x| x == r))
    }

    /// Whether `r` is shown, given what `index` knows of its request.
    pub fn takes(&self, r: &Record, index: &Index) -> bool {
        if !self.in_time(&r.ts) {
            return false;
        }
        match r.request_id.as_deref() {
            Some(id) => self.takes_request(id, index.get(id)),
            None => !self.by_request(),
        }
    }
}

/// What the log says of one request, for filtering its rows.
#[derive(Debug, Default, Clone)]
pub struct RequestInfo {
    pub user: Option<String>,
    pub outcome: Option<String>,
    pub rules: Vec<String>,
}

/// Requests by id, learnt from the records as they are read.
#[derive(Debug, Default)]
pub struct Index {
    requests: HashMap<String, RequestInfo>,
}

impl Index {
    pub fn of(records: &[Record]) -> Self {
        let mut ix = Index::default();
        for r in records {
            ix.learn(r);
        }
        ix
    }

    pub fn get(&self, id: &str) -> Option<&RequestInfo> {
        self.requests.get(id)
    }

    /// Takes in what `r` says of its request: the requester, the outcome and the matched rules
    /// of a decision record, or of a gate server's events.
    pub fn learn(&mut self, r: &Record) {
        let Some(id) = r.request_id.as_deref() else {
            return;
        };
        let info = self.requests.entry(id.to_owned()).or_default();
        if let Some(q) = &r.request {
            info.user = Some(q.requester.user.clone());
        }
        match r.kind {
            Kind::Decision => {
                if let Some(d) = &r.decision {
                    info.outcome = Some(d.outcome.clone());
                    info.rules = rule_names(&d.rules);
                }
            }
            Kind::Event => {
                if let Some(e) = &r.event {
                    // A server's statuses, in the words of the decision records.
                    info.outcome = match e.status.as_str() {
                        "pending" => None,
                        "expired" => Some("timed_out".to_owned()),
                        other => Some(other.to_owned()),
                    };
                }
            }
            _ => {}
        }
    }
}

/// The names of a decision record's matched rules.
pub fn rule_names(rules: &[serde_json::Value]) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

/// Reads a `--since` / `--until` value: RFC 3339 (with `Z` or an offset such as `+01:00`), a
/// date (`2026-11-28`, that day's start in UTC, as the log's own times are), or a duration
/// meaning that long before `now` (`10m`, `2h`, `7d`).
pub fn parse_time(flag: &str, s: &str, now: SystemTime) -> Result<SystemTime, Error> {
    let t = s.trim();
    let bad = || {
        Error::Usage(format!(
            "bad `{flag}` value `{s}`: write a time (2026-11-28T10:00:00Z), a date (2026-11-28, \
             that day's start in UTC) or a duration ago (10m, 2h, 7d)"
        ))
    };
    if t.is_empty() {
        return Err(bad());
    }
    if t.starts_with(|c: char| c.is_ascii_digit())
        && let Ok(d) = humantime::parse_duration(t)
    {
        return now.checked_sub(d).ok_or_else(bad);
    }
    if t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-' {
        return humantime::parse_rfc3339(&format!("{t}T00:00:00Z")).map_err(|_| bad());
    }
    // An offset: the same wall-clock time read as UTC, moved by the offset.
    if let Some((local, sign, offset)) = split_offset(t) {
        let at = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
        return match sign {
            '+' => at.checked_sub(offset),
            _ => at.checked_add(offset),
        }
        .ok_or_else(bad);
    }
    humantime::parse_rfc3339_weak(t).map_err(|_| bad())
}

/// `2026-11-28T11:00:00+01:00` → (`2026-11-28T11:00:00`, '+', 1h).
fn split_offset(t: &str) -> Option<(&str, char, Duration)> {
    if t.len() < 6 || !t.is_char_boundary(t.len() - 6) {
        return None;
    }
    let (local, off) = t.split_at(t.len() - 6);
    let b = off.as_bytes();
    let sign = b[0] as char;
    let digits = |i: usize| b[i].is_ascii_digit() && b[i + 1].is_ascii_digit();
    if !matches!(sign, '+' | '-')
        || b[3] != b':'
        || !digits(1)
        || !digits(4)
        || !local.contains('T')
    {
        return None;
    }
    let hours: u64 = off[1..3].parse().ok()?;
    let minutes: u64 = off[4..6].parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((
        local,
        sign,
        Duration::from_secs(hours * 3600 + minutes * 60),
    ))
}

/// Finds the one request `typed` names among the log's: its full id, a unique suffix (the
/// 12-character short id tables show) or a unique prefix. None matching is exit 1 (the
/// question had an answer: not in this log); several is a usage error listing them.
pub fn resolve_request(records: &[Record], typed: &str, log: &str) -> Result<String, Error> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Err(Error::Usage(
            "`--request` is empty: give a request id, the short id `gate log show` prints, or a unique prefix".into(),
        ));
    }
    let ids: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.request_id.as_deref())
        .collect();
    if ids.contains(typed) {
        return Ok(typed.to_owned());
    }
    let lower = typed.to_ascii_lowercase();
    let found: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| id.ends_with(&lower) || id.starts_with(&lower))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(Error::Failed(format!(
            "no request in the log `{log}` matches `{}` (give the full id, the short id \
             `gate log show` prints, or a unique prefix)",
            crate::output::escape(typed)
        ))),
        many => {
            let shown: Vec<&str> = many
                .iter()
                .take(5)
                .map(|id| crate::request::short_id(id))
                .collect();
            Err(Error::Usage(format!(
                "`{}` matches {} requests in the log ({}{}): give more of the id",
                crate::output::escape(typed),
                many.len(),
                shown.join(", "),
                if many.len() > 5 { ", ..." } else { "" }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn times_read_as_rfc3339_dates_offsets_and_durations_ago() {
        let now = at("2026-11-28T12:00:00Z");
        let table = [
            ("2026-11-28T10:00:00Z", "2026-11-28T10:00:00Z"),
            ("2026-11-28T10:00:00.250Z", "2026-11-28T10:00:00.250Z"),
            ("2026-11-28", "2026-11-28T00:00:00Z"),
            ("2026-11-28T11:30:00+01:00", "2026-11-28T10:30:00Z"),
            ("2026-11-28T08:00:00-02:30", "2026-11-28T10:30:00Z"),
            ("10m", "2026-11-28T11:50:00Z"),
            ("2h", "2026-11-28T10:00:00Z"),
            ("1d", "2026-11-27T12:00:00Z"),
            ("90s", "2026-11-28T11:58:30Z"),
        ];
        for (given, want) in table {
            assert_eq!(
                parse_time("--since", given, now).unwrap(),
                at(want),
                "{given}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever is typed, a time or a usage error: never a panic.
        #[test]
        fn any_text_is_a_time_or_a_usage_error(s in "\\PC{0,40}", tail in "[+-][0-9+]{2}:[0-9]{2}") {
            let now = at("2026-11-28T12:00:00Z");
            for given in [s.clone(), format!("2026-11-28T10:00:00{tail}"), format!("{s}{tail}")] {
                if let Err(e) = parse_time("--since", &given, now) {
                    proptest::prop_assert_eq!(e.exit_code(), 2);
                }
            }
        }
    }

    #[test]
    fn an_offset_needs_two_digit_hours_and_minutes() {
        let now = at("2026-11-28T12:00:00Z");
        for bad in [
            "2026-11-28T10:00:00++1:00",
            "2026-11-28T10:00:00+1:000",
            "2026-11-28T10:00:00+24:00",
        ] {
            assert!(parse_time("--since", bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_time_is_a_usage_error_naming_the_flag_and_the_forms() {
        let now = at("2026-11-28T12:00:00Z");
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "10 parsecs",
            "2026-11-28T25:00:00Z",
            "-5m",
        ] {
            let e = parse_time("--until", bad, now).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            let m = e.to_string();
            assert!(m.contains("`--until`") && m.contains("10m"), "{m}");
        }
    }
}
