//! Signed decision statements (DESIGN §6): what the gate server hands a client once a request
//! is decided, signed with the server's Ed25519 key as a C2SP signed note. The client runs a
//! command only on a statement that verifies under the key its policy pins, for its own request
//! id and digest; the statement is kept in the host's decision record, so `gate log verify` can
//! prove offline who approved. The format is written down in docs/audit-log-format.md.
//!
//! The text is one field per line, in a fixed order, every value a single token:
//!
//! ```text
//! gate-decision/v1
//! request <request id>
//! digest <64 lowercase hex>
//! requester <principal>
//! status approved|denied|expired|cancelled
//! approval <principal> <RFC 3339 time>      (zero or more, in the order they were given)
//! denial <principal> <RFC 3339 time>        (at most one)
//! time <RFC 3339 time the server signed>
//! ```
//!
//! Its first line can never be the origin line of a checkpoint (`gate/<log id>`), which the
//! same key cosigns, so neither kind of note can be passed off as the other.

use std::fmt;

use super::note::{Note, NoteError, NoteSigner, NoteVerifier};

/// The first line of every statement.
pub const HEADER: &str = "gate-decision/v1";

/// How a request ended, as the server states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "expired" => Status::Expired,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

/// One approval or denial: who, and when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub principal: String,
    pub at: String,
}

/// The signed facts about one decided request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub request_id: String,
    pub digest: String,
    pub requester: String,
    pub status: Status,
    pub approvals: Vec<Vote>,
    pub denial: Option<Vote>,
    /// When the server signed.
    pub time: String,
}

/// Why a statement is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the decision carries no signed statement")]
    Missing,
    #[error("the signed statement is malformed: {0}")]
    Malformed(String),
    #[error("the statement is not signed by the trusted server key {trusted} (signed by {found})")]
    ForeignKey { trusted: String, found: String },
    #[error("the statement's signature by {0} does not verify (altered after signing?)")]
    BadSignature(String),
    #[error("the statement is for request {found}, not {expected} (replayed from another request)")]
    OtherRequest { expected: String, found: String },
    #[error("the statement is for digest {found}, not {expected} (another command)")]
    OtherDigest { expected: String, found: String },
    #[error("the statement says `{found}`, not `{expected}`")]
    WrongStatus {
        expected: &'static str,
        found: &'static str,
    },
}

/// A single token: non-empty, no whitespace or control characters (so lines split cleanly).
fn token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn time(s: &str) -> bool {
    token(s) && humantime::parse_rfc3339(s).is_ok()
}

fn digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Statement {
    /// The note text (ends with a newline). Refuses values that would not be single tokens.
    pub fn text(&self) -> Result<String, StatementError> {
        let bad = |what: &str, v: &str| StatementError::Malformed(format!("bad {what} `{v}`"));
        if !token(&self.request_id) {
            return Err(bad("request id", &self.request_id));
        }
        if !digest(&self.digest) {
            return Err(bad("digest", &self.digest));
        }
        if !token(&self.requester) {
            return Err(bad("requester", &self.requester));
        }
        if !time(&self.time) {
            return Err(bad("time", &self.time));
        }
        let mut s = format!(
            "{HEADER}\nrequest {}\ndigest {}\nrequester {}\nstatus {}\n",
            self.request_id,
            self.digest,
            self.requester,
            self.status.as_str()
        );
        let votes = self
            .approvals
            .iter()
            .map(|v| ("approval", v))
            .chain(self.denial.iter().map(|v| ("denial", v)));
        for (kind, v) in votes {
            if !token(&v.principal) {
                return Err(bad("principal", &v.principal));
            }
            if !time(&v.at) {
                return Err(bad("time", &v.at));
            }
            s.push_str(&format!("{kind} {} {}\n", v.principal, v.at));
        }
        s.push_str(&format!("time {}\n", self.time));
        Ok(s)
    }

    /// The signed note.
    pub fn sign(&self, key: &NoteSigner) -> Result<String, StatementError> {
        Ok(key.sign(&self.text()?))
    }

    /// Reads the note text strictly: the fixed header, every field in its order, nothing else.
    pub fn parse_text(text: &str) -> Result<Self, StatementError> {
        let bad = |why: String| StatementError::Malformed(why);
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end with a newline".into()))?;
        let mut lines = body.split('\n').peekable();
        if lines.next() != Some(HEADER) {
            return Err(bad(format!("the first line is not `{HEADER}`")));
        }
        let mut field = |name: &str| -> Result<String, StatementError> {
            let line = lines
                .next()
                .ok_or_else(|| bad(format!("no `{name}` line")))?;
            match line.split_once(' ') {
                Some((n, v)) if n == name && token(v) => Ok(v.to_owned()),
                _ => Err(bad(format!("expected `{name} <value>`, found `{line}`"))),
            }
        };
        let request_id = field("request")?;
        let digest_v = field("digest")?;
        if !digest(&digest_v) {
            return Err(bad("the digest is not 64 lowercase hex digits".into()));
        }
        let requester = field("requester")?;
        let status_v = field("status")?;
        let status =
            Status::parse(&status_v).ok_or_else(|| bad(format!("unknown status `{status_v}`")))?;
        let vote = |line: &str, kind: &str| -> Result<Option<Vote>, StatementError> {
            let Some(rest) = line.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')) else {
                return Ok(None);
            };
            match rest.split(' ').collect::<Vec<_>>()[..] {
                [p, at] if token(p) && time(at) => Ok(Some(Vote {
                    principal: p.to_owned(),
                    at: at.to_owned(),
                })),
                _ => Err(bad(format!(
                    "expected `{kind} <principal> <time>`, found `{line}`"
                ))),
            }
        };
        let mut approvals = Vec::new();
        let mut denial = None;
        let mut time_v = None;
        for line in lines.by_ref() {
            if let Some(v) = vote(line, "approval")? {
                if denial.is_some() {
                    return Err(bad("an approval after the denial".into()));
                }
                approvals.push(v);
            } else if let Some(v) = vote(line, "denial")? {
                if denial.is_some() {
                    return Err(bad("two denials".into()));
                }
                denial = Some(v);
            } else if let Some(t) = line.strip_prefix("time ") {
                if !time(t) {
                    return Err(bad(format!("bad time `{t}`")));
                }
                time_v = Some(t.to_owned());
                break;
            } else {
                return Err(bad(format!("unexpected line `{line}`")));
            }
        }
        let time_v = time_v.ok_or_else(|| bad("no `time` line".into()))?;
        if let Some(extra) = lines.next() {
            return Err(bad(format!("unexpected line after `time`: `{extra}`")));
        }
        Ok(Statement {
            request_id,
            digest: digest_v,
            requester,
            status,
            approvals,
            denial,
            time: time_v,
        })
    }

    /// Parses a signed note and checks its signature by one of `keys`; returns the statement
    /// and the key that signed it.
    pub fn open<'k>(
        note: &str,
        keys: &'k [NoteVerifier],
    ) -> Result<(Self, &'k NoteVerifier), StatementError> {
        let parsed = Note::parse(note).map_err(|e| StatementError::Malformed(e.to_string()))?;
        let mut last = None;
        for k in keys {
            match parsed.verify(k) {
                Ok(()) => return Ok((Self::parse_text(&parsed.text)?, k)),
                Err(e) => last = Some((k, e)),
            }
        }
        let found = parsed
            .signatures
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.id))
            .collect::<Vec<_>>()
            .join(", ");
        Err(match last {
            Some((k, NoteError::BadSignature(_))) => {
                StatementError::BadSignature(format!("{}+{:08x}", k.name, k.id))
            }
            _ => StatementError::ForeignKey {
                trusted: keys
                    .iter()
                    .map(|k| format!("{}+{:08x}", k.name, k.id))
                    .collect::<Vec<_>>()
                    .join(", "),
                found,
            },
        })
    }

    /// Checks the statement is an approval of request `id` with `digest`.
    pub fn approves(&self, id: &str, digest: &str) -> Result<(), StatementError> {
        self.decides(id, digest, Status::Approved)
    }

    /// Checks the statement is about request `id` with `digest` and says `status`.
    pub fn decides(&self, id: &str, digest: &str, status: Status) -> Result<(), StatementError> {
        if self.request_id != id {
            return Err(StatementError::OtherRequest {
                expected: id.to_owned(),
                found: self.request_id.clone(),
            });
        }
        if self.digest != digest {
            return Err(StatementError::OtherDigest {
                expected: digest.to_owned(),
                found: self.digest.clone(),
            });
        }
        if self.status != status {
            return Err(StatementError::WrongStatus {
                expected: status.as_str(),
                found: self.status.as_str(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Statement {
        Statement {
            request_id: "0193a1b2-0000-7000-8000-000000000001".into(),
            digest: "ab".repeat(32),
            requester: "erin".into(),
            status: Status::Approved,
            approvals: vec![
                Vote {
                    principal: "alice".into(),
                    at: "2026-11-28T06:00:01.000Z".into(),
                },
                Vote {
                    principal: "bob".into(),
                    at: "2026-11-28T06:00:02.500Z".into(),
                },
            ],
            denial: None,
            time: "2026-11-28T06:00:02.510Z".into(),
        }
    }

    #[test]
    fn round_trips_and_checks_the_signer() {
        let key = NoteSigner::from_seed("gate/server", &[3; 32]).unwrap();
        let other = NoteSigner::from_seed("gate/server", &[4; 32]).unwrap();
        let note = sample().sign(&key).unwrap();
        let (s, _) = Statement::open(&note, &[other.verifier(), key.verifier()]).unwrap();
        assert_eq!(s, sample());
        s.approves(&sample().request_id, &sample().digest).unwrap();
        assert!(matches!(
            Statement::open(&note, &[other.verifier()]),
            Err(StatementError::ForeignKey { .. })
        ));
        let altered = note.replace("bob", "eve");
        assert!(matches!(
            Statement::open(&altered, &[key.verifier()]),
            Err(StatementError::BadSignature(_))
        ));
        assert!(matches!(
            s.approves("0193a1b2-0000-7000-8000-000000000002", &s.digest),
            Err(StatementError::OtherRequest { .. })
        ));
        assert!(matches!(
            s.approves(&s.request_id, &"cd".repeat(32)),
            Err(StatementError::OtherDigest { .. })
        ));
    }

    #[test]
    fn strict_reading() {
        let good = sample().text().unwrap();
        Statement::parse_text(&good).unwrap();
        let cases = [
            good.replace(HEADER, "gate-decision/v2"),
            good.replace("status approved", "status approvedish"),
            good.replace("approval alice", "approval  alice"),
            good.replace("requester erin\n", ""),
            good.replace("time 2026-11-28T06:00:02.510Z\n", ""),
            format!("{good}approval carol 2026-11-28T06:00:03.000Z\n"),
            good.replace(
                "approval bob 2026-11-28T06:00:02.500Z",
                "approval bob yesterday",
            ),
            good.replace("digest ", "digest A"),
            good.trim_end().to_owned(),
            format!("gate/0123\n{good}"),
        ];
        for c in cases {
            assert!(
                matches!(Statement::parse_text(&c), Err(StatementError::Malformed(_))),
                "accepted:\n{c}"
            );
        }
        let mut s = sample();
        s.approvals[0].principal = "al ice".into();
        assert!(s.text().is_err());
    }
}
