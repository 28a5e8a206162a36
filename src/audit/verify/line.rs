//! One log line on its own: UTF-8, canonical form, its own hash, and the few fields the
//! in-order walk and the compliance check need. Lines are checked independently (in parallel).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::audit::canon;

/// What one line says, after its own checks.
#[derive(Debug, Default)]
pub(super) struct LineInfo {
    pub(super) problem: Option<(&'static str, String)>,
    pub(super) seq: Option<u64>,
    pub(super) hash: String,
    pub(super) prev: String,
    pub(super) log_id: String,
    pub(super) kind: String,
    pub(super) ts: String,
    pub(super) request_id: Option<String>,
    pub(super) genesis_key: Option<String>,
    /// Boxed: most records are not decisions, and lines move through batches by value.
    pub(super) decision: Option<Box<DecisionLite>>,
    pub(super) requester: Option<String>,
    /// The request's digest (decision records), for the server statement check.
    pub(super) digest: Option<String>,
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
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct RequiredLite {
    pub(super) clauses: Vec<ClauseLite>,
    pub(super) min_approvals: u32,
    pub(super) allow_requester: bool,
    /// The backend the approval was asked of.
    #[serde(default)]
    pub(super) backend: Option<String>,
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

// Slots of the top-level members `check_line` reads, in the order of its `NAMES`.
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

pub(super) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks one line on its own: UTF-8, canonical form, its own hash, the fields verify needs.
///
/// The common case — a canonical line — is read with the scanner's list of top-level members,
/// parsing with serde only the nested objects that compliance needs (`decision`, `request`,
/// `genesis`). Lines the scanner rejects take the slow path, which tells bad JSON from
/// non-canonical JSON and still reads the seq for the report.
pub(super) fn check_line(line: &[u8], members: &mut Vec<canon::Member>) -> LineInfo {
    let mut info = LineInfo::default();
    if let Err(e) = std::str::from_utf8(line) {
        info.problem = Some(("bad_utf8", format!("not UTF-8 ({e})")));
        return info;
    }
    let member = match canon::scan_members(line, Some(members)) {
        Ok(m) => m,
        Err(why) => return check_line_slow(line, why),
    };
    // One pass over the members to find the few this reads, instead of a search per field.
    const NAMES: [&[u8]; 11] = [
        b"v",
        b"seq",
        b"log_id",
        b"ts",
        b"kind",
        b"prev",
        b"hash",
        b"request_id",
        b"decision",
        b"request",
        b"genesis",
    ];
    let mut slots: [Option<usize>; 11] = [None; 11];
    for (i, m) in members.iter().enumerate() {
        let key = &line[m.key.clone()];
        // The first member of a name, as a search would find (the scanner refuses repeats).
        if let Some(k) = NAMES.iter().position(|n| *n == key)
            && slots[k].is_none()
        {
            slots[k] = Some(i);
        }
    }
    let raw = |k: usize| {
        let m = &members[slots[k]?];
        Some((&line[m.value.clone()], m.is_string))
    };
    // Strings gate writes in these fields never need escapes; one that has them is read by serde.
    let string = |k: usize| -> Option<String> {
        let (v, is_string) = raw(k)?;
        if !is_string {
            return None;
        }
        if v.contains(&b'\\') {
            serde_json::from_slice(&[b"\"", v, b"\""].concat()).ok()
        } else {
            std::str::from_utf8(v).ok().map(str::to_owned)
        }
    };
    let integer = |k: usize| -> Option<u64> {
        let (v, is_string) = raw(k)?;
        if is_string {
            return None;
        }
        std::str::from_utf8(v).ok()?.parse().ok()
    };
    let object = |k: usize| raw(k).filter(|(_, s)| !s).map(|(v, _)| v);
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
        return check_line_slow(
            line,
            "a required member is missing or has the wrong type".into(),
        );
    };
    info.seq = Some(seq);
    info.prev = prev;
    info.hash = hash;
    info.log_id = log_id;
    info.request_id = string(F_REQUEST_ID);
    if v != 1 {
        info.kind = kind;
        info.problem = Some(("bad_version", format!("unknown record version {v}")));
        return info;
    }
    match kind.as_str() {
        "decision" => {
            info.ts = string(F_TS).unwrap_or_default();
            info.decision = object(F_DECISION).and_then(|d| serde_json::from_slice(d).ok());
            let request =
                object(F_REQUEST).and_then(|r| serde_json::from_slice::<RequestLite>(r).ok());
            info.digest = request.as_ref().and_then(|r| r.digest.clone());
            info.requester = request.map(|r| r.requester.user);
        }
        "genesis" => {
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
    if !is_hex64(&info.hash) || !is_hex64(&info.prev) {
        info.problem = Some((
            "bad_json",
            "`hash` and `prev` must be 64 lowercase hex digits".into(),
        ));
        return info;
    }
    let mut h = Sha256::new();
    h.update(&line[..member.cut.start]);
    h.update(&line[member.cut.end..]);
    let computed = lower_hex(&h.finalize().into());
    if computed[..] != *info.hash.as_bytes() {
        info.problem = Some((
            "hash_mismatch",
            format!(
                "the record's content does not match its hash (modified; hash is {})",
                String::from_utf8_lossy(&computed)
            ),
        ));
    }
    info
}

/// A record's claimed hash as bytes (all zeros when it is not 64 hex digits: such a record is
/// reported on its own, and zeros match no real hash).
pub(super) fn hash_bytes(hex_hash: &str) -> [u8; 32] {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = hex_hash.as_bytes();
    let mut out = [0u8; 32];
    if b.len() != 64 {
        return out;
    }
    for (i, pair) in b.chunks_exact(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => return [0; 32],
        }
    }
    out
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
pub(super) fn check_line_slow(line: &[u8], why: String) -> LineInfo {
    let mut info = LineInfo::default();
    let fields: Fields = match serde_json::from_slice(line) {
        Ok(f) => f,
        Err(e) => {
            info.problem = Some(("bad_json", format!("not a record: {e}")));
            return info;
        }
    };
    info.seq = Some(fields.seq);
    info.prev = fields.prev;
    info.hash = fields.hash;
    info.log_id = fields.log_id;
    info.kind = fields.kind;
    info.ts = fields.ts;
    info.request_id = fields.request_id;
    info.genesis_key = fields.genesis.and_then(|g| g.key);
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

/// Checks `lines` on `threads` threads (0 = all cores): the results in order, one part per
/// thread (not joined into one vector, which would copy every result again).
pub(super) fn check_all(lines: &[&[u8]], threads: usize) -> Vec<Vec<LineInfo>> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    if threads <= 1 || lines.len() < 1024 {
        let mut m = Vec::new();
        return vec![lines.iter().map(|l| check_line(l, &mut m)).collect()];
    }
    let chunk = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut m = Vec::new();
                    part.iter()
                        .map(|l| check_line(l, &mut m))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
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

/// Checks one record line (canonical form, its own hash, required fields), or says why not.
pub fn check_record_line(line: &[u8]) -> Result<CheckedRecord, String> {
    let info = check_line(line, &mut Vec::new());
    if let Some((code, reason)) = info.problem {
        return Err(format!("{code}: {reason}"));
    }
    let seq = info.seq.ok_or("a record without seq")?;
    Ok(CheckedRecord {
        seq,
        prev: info.prev,
        hash: info.hash,
        log_id: info.log_id,
        kind: info.kind,
        genesis_key: info.genesis_key,
    })
}
