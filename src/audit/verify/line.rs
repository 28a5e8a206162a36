//! One log line on its own: UTF-8, canonical form, its own hash, and the few fields the
//! in-order walk and the compliance check need. Lines are checked independently (in parallel),
//! and what they say points into the batch buffer instead of being copied out of it.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::audit::canon;

/// A string member's value: where it sits in the batch buffer (the common case, a string
/// without escapes), or decoded (a string with escapes, or a line the slow path read).
#[derive(Debug, Clone)]
pub(super) enum Text {
    Span(Range<usize>),
    Owned(Box<str>),
}

impl Default for Text {
    fn default() -> Self {
        Text::Span(0..0)
    }
}

impl Text {
    /// The bytes, given the buffer the line was checked in.
    pub(super) fn bytes<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match self {
            Text::Span(r) => &buf[r.clone()],
            Text::Owned(s) => s.as_bytes(),
        }
    }

    /// The text, for messages and the few places that keep it (a span of a checked line is
    /// UTF-8, so nothing is replaced).
    pub(super) fn text<'a>(&'a self, buf: &'a [u8]) -> Cow<'a, str> {
        String::from_utf8_lossy(self.bytes(buf))
    }
}

/// Why a line went to the slow path without being canonical.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotCanonical {
    #[error(transparent)]
    Scan(#[from] canon::CanonError),
    #[error("a required member is missing or has the wrong type")]
    MissingMember,
}

/// What one line says, after its own checks.
#[derive(Debug, Default)]
pub(super) struct LineInfo {
    pub(super) problem: Option<(&'static str, String)>,
    pub(super) seq: Option<u64>,
    pub(super) hash: Text,
    /// `hash` as bytes: all zeros when it is not 64 lowercase hex digits (such a record is
    /// reported on its own, and zeros match no real hash).
    pub(super) hash_bin: [u8; 32],
    pub(super) prev: Text,
    pub(super) log_id: Text,
    pub(super) kind: Text,
    pub(super) ts: String,
    pub(super) request_id: Option<Text>,
    pub(super) genesis_key: Option<String>,
    /// Boxed: most records are not decisions.
    pub(super) decision: Option<Box<DecisionLite>>,
    pub(super) requester: Option<String>,
    /// The request's digest (decision records), for the server statement check.
    pub(super) digest: Option<String>,
    /// A gate server's event (event records), for its compliance check.
    pub(super) event: Option<Box<EventLite>>,
}

/// The parts of a server `event` its compliance check reads.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct EventLite {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) principal: Option<String>,
    pub(super) status: String,
    #[serde(default)]
    pub(super) needed: Option<u32>,
    #[serde(default)]
    pub(super) voids: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Fields {
    pub(super) v: u64,
    pub(super) log_id: String,
    pub(super) seq: u64,
    pub(super) ts: String,
    pub(super) kind: String,
    #[serde(default)]
    pub(super) request_id: Option<String>,
    pub(super) prev: String,
    pub(super) hash: String,
    #[serde(default)]
    pub(super) decision: Option<DecisionLite>,
    #[serde(default)]
    pub(super) request: Option<RequestLite>,
    #[serde(default)]
    pub(super) genesis: Option<GenesisLite>,
    #[serde(default)]
    pub(super) event: Option<EventLite>,
}

#[derive(Debug, Deserialize)]
pub(super) struct GenesisLite {
    #[serde(default)]
    pub(super) key: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RequestLite {
    pub(super) requester: RequesterLite,
    #[serde(default)]
    pub(super) digest: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RequesterLite {
    pub(super) user: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct DecisionLite {
    pub(super) decision: String,
    pub(super) run: bool,
    #[serde(default)]
    pub(super) required: Option<RequiredLite>,
    #[serde(default)]
    pub(super) approvals: Vec<ApprovalLite>,
    /// The gate server's signed decision statement, when the approvals came from one. Read
    /// as any JSON value, so a mistyped one is reported by the statement check instead of
    /// making the whole decision unreadable.
    #[serde(default)]
    pub(super) statement: Option<serde_json::Value>,
    /// The earlier request whose approval the run used (`approval.reuse`, `--request`).
    #[serde(default)]
    pub(super) reuse: Option<ReuseLite>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ReuseLite {
    pub(super) request_id: String,
    pub(super) requester: String,
    #[serde(default)]
    pub(super) via: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct RequiredLite {
    pub(super) clauses: Vec<ClauseLite>,
    pub(super) min_approvals: u32,
    pub(super) allow_requester: bool,
    /// The backend the approval was asked of.
    #[serde(default)]
    pub(super) backend: Option<String>,
    /// `approval.reuse` as recorded (a humantime duration), when the rules allowed reuse.
    #[serde(default)]
    pub(super) reuse: Option<String>,
    /// The wait the requirement allowed (a humantime duration).
    #[serde(default)]
    pub(super) timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ClauseLite {
    pub(super) rule: String,
    pub(super) eligible: Option<Vec<String>>,
    pub(super) min_approvals: u32,
    #[serde(default)]
    pub(super) groups: Vec<GroupLite>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct GroupLite {
    pub(super) name: String,
    pub(super) members: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ApprovalLite {
    pub(super) principal: String,
    pub(super) at: String,
    #[serde(default)]
    pub(super) via: String,
}

// Slots of the top-level members `check_line` reads.
const F_V: usize = 0;
const F_SEQ: usize = 1;
const F_LOG_ID: usize = 2;
const F_TS: usize = 3;
const F_KIND: usize = 4;
const F_PREV: usize = 5;
const F_HASH: usize = 6;
const F_REQUEST_ID: usize = 7;
const F_DECISION: usize = 8;
const F_REQUEST: usize = 9;
const F_GENESIS: usize = 10;
const F_EVENT: usize = 11;

fn slot_of(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"v" => F_V,
        b"seq" => F_SEQ,
        b"log_id" => F_LOG_ID,
        b"ts" => F_TS,
        b"kind" => F_KIND,
        b"prev" => F_PREV,
        b"hash" => F_HASH,
        b"request_id" => F_REQUEST_ID,
        b"decision" => F_DECISION,
        b"request" => F_REQUEST,
        b"genesis" => F_GENESIS,
        b"event" => F_EVENT,
        _ => return None,
    })
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// 64 lowercase hex digits as the 32 bytes they spell, or None. No branch per digit: this
/// runs for every record.
fn decode_hex64(s: &[u8]) -> Option<[u8; 32]> {
    let s: &[u8; 64] = s.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (h, l) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= h | l;
        *o = (h << 4) | l;
    }
    (bad & 0xf0 == 0).then_some(out)
}

pub(super) fn is_hex64(s: &[u8]) -> bool {
    s.len() == 64 && s.iter().fold(0, |bad, &c| bad | HEX_VALUE[usize::from(c)]) & 0xf0 == 0
}

/// Checks the line at `range` of `buf` on its own: UTF-8, canonical form, its own hash, the
/// fields verify needs (as spans of `buf`). `members` is scratch space, reused across lines.
///
/// The common case — a canonical line — is read with the scanner's list of top-level members,
/// parsing with serde only the nested objects that compliance needs (`decision`, `request`,
/// `genesis`). Lines the scanner rejects take the slow path, which tells bad JSON from
/// non-canonical JSON and still reads the seq for the report.
pub(super) fn check_line(
    buf: &[u8],
    range: Range<usize>,
    members: &mut Vec<canon::Member>,
) -> LineInfo {
    let line = &buf[range.clone()];
    let base = range.start;
    let not_utf8 = |e: std::str::Utf8Error| LineInfo {
        problem: Some(("bad_utf8", format!("not UTF-8 ({e})"))),
        ..LineInfo::default()
    };
    // The scanner reads bytes; UTF-8 is checked only where a byte above 0x7f occurred, and
    // before any other verdict, so a line that is not UTF-8 is reported as such first.
    let member = match canon::scan_members(line, Some(members)) {
        Ok(scanned) => {
            if scanned.non_ascii
                && let Err(e) = std::str::from_utf8(line)
            {
                return not_utf8(e);
            }
            scanned.hash
        }
        Err(why) => {
            if let Err(e) = std::str::from_utf8(line) {
                return not_utf8(e);
            }
            return check_line_slow(line, &NotCanonical::Scan(why));
        }
    };
    let mut info = LineInfo::default();
    let mut slots: [Option<usize>; 12] = [None; 12];
    for (i, m) in members.iter().enumerate() {
        // The first member of a name, as a search would find (the scanner refuses repeats).
        if let Some(k) = slot_of(&line[m.key.clone()])
            && slots[k].is_none()
        {
            slots[k] = Some(i);
        }
    }
    let raw = |k: usize| {
        let m = &members[slots[k]?];
        Some((m.value.clone(), m.is_string))
    };
    // Strings gate writes in these fields never need escapes; one that has them is read by serde.
    let string = |k: usize| -> Option<Text> {
        let m = &members[slots[k]?];
        if !m.is_string {
            return None;
        }
        let v = m.value.clone();
        if m.escaped {
            serde_json::from_slice::<String>(&[b"\"", &line[v], b"\""].concat())
                .ok()
                .map(|s| Text::Owned(s.into()))
        } else {
            Some(Text::Span(base + v.start..base + v.end))
        }
    };
    let integer = |k: usize| -> Option<u64> {
        let (v, is_string) = raw(k)?;
        if is_string {
            return None;
        }
        std::str::from_utf8(&line[v]).ok()?.parse().ok()
    };
    let object = |k: usize| raw(k).filter(|(_, s)| !s).map(|(v, _)| &line[v]);
    // `ts` must be there; it is only read (allocated) where compliance needs it.
    let ts_present = raw(F_TS).is_some_and(|(_, is_string)| is_string);
    let (Some(v), Some(seq), Some(log_id), true, Some(kind), Some(prev), Some(hash)) = (
        integer(F_V),
        integer(F_SEQ),
        string(F_LOG_ID),
        ts_present,
        string(F_KIND),
        string(F_PREV),
        string(F_HASH),
    ) else {
        return check_line_slow(line, &NotCanonical::MissingMember);
    };
    info.seq = Some(seq);
    let hash_bin = decode_hex64(hash.bytes(buf));
    info.hash_bin = hash_bin.unwrap_or([0; 32]);
    info.prev = prev;
    info.hash = hash;
    info.log_id = log_id;
    info.request_id = string(F_REQUEST_ID);
    if v != 1 {
        info.kind = kind;
        info.problem = Some(("bad_version", format!("unknown record version {v}")));
        return info;
    }
    match kind.bytes(buf) {
        b"decision" => {
            info.ts = string(F_TS)
                .map(|t| t.text(buf).into_owned())
                .unwrap_or_default();
            info.decision = object(F_DECISION).and_then(|d| serde_json::from_slice(d).ok());
            let request =
                object(F_REQUEST).and_then(|r| serde_json::from_slice::<RequestLite>(r).ok());
            info.digest = request.as_ref().and_then(|r| r.digest.clone());
            info.requester = request.map(|r| r.requester.user);
        }
        b"event" => {
            info.event = object(F_EVENT).and_then(|e| serde_json::from_slice(e).ok());
        }
        b"genesis" => {
            info.genesis_key = object(F_GENESIS)
                .and_then(|g| serde_json::from_slice::<GenesisLite>(g).ok())
                .and_then(|g| g.key);
        }
        _ => {}
    }
    info.kind = kind;
    let Some(member) = member else {
        info.problem = Some(("bad_json", "the record has no `hash`".into()));
        return info;
    };
    if hash_bin.is_none() || !is_hex64(info.prev.bytes(buf)) {
        info.problem = Some((
            "bad_json",
            "`hash` and `prev` must be 64 lowercase hex digits".into(),
        ));
        return info;
    }
    let mut h = Sha256::new();
    h.update(&line[..member.cut.start]);
    h.update(&line[member.cut.end..]);
    let computed: [u8; 32] = h.finalize().into();
    // `hash` is 64 lowercase hex digits here, so comparing bytes is comparing the hex.
    if computed != info.hash_bin {
        info.problem = Some((
            "hash_mismatch",
            format!(
                "the record's content does not match its hash (modified; hash is {})",
                String::from_utf8_lossy(&lower_hex(&computed))
            ),
        ));
    }
    info
}

/// A record's claimed hash as bytes (all zeros when it is not 64 hex digits: such a record is
/// reported on its own, and zeros match no real hash).
pub(super) fn hash_bytes(hex_hash: &[u8]) -> [u8; 32] {
    decode_hex64(hex_hash).unwrap_or([0; 32])
}

/// Lowercase hex of a SHA-256, on the stack (this runs once per record).
pub(super) fn lower_hex(d: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in d.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

/// A line the scanner refused: bad JSON, or JSON that is not canonical (read for its seq).
fn check_line_slow(line: &[u8], why: &NotCanonical) -> LineInfo {
    let mut info = LineInfo::default();
    let fields: Fields = match serde_json::from_slice(line) {
        Ok(f) => f,
        Err(e) => {
            info.problem = Some(("bad_json", format!("not a record: {e}")));
            return info;
        }
    };
    let owned = |s: String| Text::Owned(s.into());
    info.seq = Some(fields.seq);
    info.hash_bin = hash_bytes(fields.hash.as_bytes());
    info.prev = owned(fields.prev);
    info.hash = owned(fields.hash);
    info.log_id = owned(fields.log_id);
    info.kind = owned(fields.kind);
    info.ts = fields.ts;
    info.request_id = fields.request_id.map(owned);
    info.genesis_key = fields.genesis.and_then(|g| g.key);
    info.event = fields.event.map(Box::new);
    info.decision = fields.decision.map(Box::new);
    info.digest = fields.request.as_ref().and_then(|r| r.digest.clone());
    info.requester = fields.request.map(|r| r.requester.user);
    info.problem = Some(if fields.v != 1 {
        (
            "bad_version",
            format!("unknown record version {}", fields.v),
        )
    } else {
        (
            "not_canonical",
            format!("the line is not canonical JSON: {why}"),
        )
    });
    info
}

/// Checks every line of `buf` (complete lines, each ending in a newline) into `out`, in order.
pub(super) fn check_batch(buf: &[u8], out: &mut Vec<LineInfo>, members: &mut Vec<canon::Member>) {
    out.clear();
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', buf) {
        out.push(check_line(buf, start..nl, members));
        start = nl + 1;
    }
}

/// One record line checked on its own, as the server's ingest needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRecord {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    pub log_id: String,
    pub kind: String,
    /// The verifier key a genesis names.
    pub genesis_key: Option<String>,
}

/// Why a record line was refused: the verify problem code and its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct LineError {
    /// A problem code of `gate log verify` (`hash_mismatch`, `not_canonical`, ...).
    pub code: &'static str,
    pub reason: String,
}

/// Checks one record line (canonical form, its own hash, required fields), or says why not.
pub fn check_record_line(line: &[u8]) -> Result<CheckedRecord, LineError> {
    let info = check_line(line, 0..line.len(), &mut Vec::new());
    if let Some((code, reason)) = info.problem {
        return Err(LineError { code, reason });
    }
    let Some(seq) = info.seq else {
        // Every line without a problem has its seq; kept as an error rather than a panic.
        return Err(LineError {
            code: "bad_json",
            reason: "a record without seq".into(),
        });
    };
    let text = |t: &Text| t.text(line).into_owned();
    Ok(CheckedRecord {
        seq,
        prev: text(&info.prev),
        hash: text(&info.hash),
        log_id: text(&info.log_id),
        kind: text(&info.kind),
        genesis_key: info.genesis_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex64_is_lowercase_hex_only() {
        let good = "0123456789abcdef".repeat(4);
        let want: Vec<u8> = (0..32)
            .map(|i| [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef][i % 8])
            .collect();
        assert_eq!(decode_hex64(good.as_bytes()).map(Vec::from), Some(want));
        assert!(is_hex64(good.as_bytes()));
        assert_eq!(hash_bytes(&[b'0'; 64]), [0; 32]);
        for bad in [
            good.to_uppercase(),
            good[..63].to_owned(),
            format!("{good}0"),
            format!("g{}", &good[1..]),
            format!("{}\u{e9}", &good[..62]),
            format!("{} ", &good[..63]),
            String::new(),
        ] {
            assert_eq!(decode_hex64(bad.as_bytes()), None, "{bad}");
            assert!(!is_hex64(bad.as_bytes()), "{bad}");
            assert_eq!(hash_bytes(bad.as_bytes()), [0; 32], "{bad}");
        }
    }
}
