//! `gate log verify`: proves a log is complete and unaltered, and that what ran had the
//! approvals its policy demanded. Each line's hash is checked independently (in parallel); the
//! links, sequence numbers and compliance are then walked in order. Every problem is reported
//! with the seq of the record it concerns; the summary names the first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::canon;
use super::note::{Note, NoteVerifier};
use super::record::GENESIS_PREV;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The input cannot be checked at all (exit 2).
    #[error("{0}")]
    Unusable(String),
}

/// One thing wrong with the log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The seq of the record concerned, when known.
    pub seq: Option<u64>,
    /// 1-based line number in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// A stable code: hash_mismatch, broken_link, seq_gap, duplicate_seq, out_of_order,
    /// not_canonical, bad_json, bad_utf8, second_genesis, no_genesis, foreign_log_id,
    /// bad_version, torn_line, checkpoint_malformed, bad_signature, unknown_key,
    /// checkpoint_beyond_end, checkpoint_mismatch, checkpoint_foreign, key_mismatch,
    /// compliance.
    pub code: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// intact or tampered.
    pub status: &'static str,
    pub path: String,
    pub log_id: Option<String>,
    pub records: u64,
    pub bytes: u64,
    pub first_bad_seq: Option<u64>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    /// Where trust in the signing key came from: `--key` or `genesis`.
    pub key_source: Option<&'static str>,
    pub checkpoint: Option<CheckpointSummary>,
    pub stats: Stats,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Stats {
    pub decisions: u64,
    pub results: u64,
    pub repairs: u64,
    /// Commands that ran after an `approve` decision, all checked for compliance.
    pub approved_runs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointSummary {
    pub path: String,
    pub count: u64,
    pub signed_by: String,
}

pub struct Options<'a> {
    pub key: Option<&'a str>,
    pub checkpoint: Option<&'a Path>,
    /// Threads for hashing; 0 = all cores.
    pub threads: usize,
}

/// What one line says, after its own checks.
#[derive(Debug, Default)]
struct LineInfo {
    problem: Option<(&'static str, String)>,
    seq: Option<u64>,
    hash: String,
    prev: String,
    log_id: String,
    kind: String,
    ts: String,
    request_id: Option<String>,
    genesis_key: Option<String>,
    decision: Option<DecisionLite>,
    requester: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Fields {
    v: u64,
    log_id: String,
    seq: u64,
    ts: String,
    kind: String,
    #[serde(default)]
    request_id: Option<String>,
    prev: String,
    hash: String,
    #[serde(default)]
    decision: Option<DecisionLite>,
    #[serde(default)]
    request: Option<RequestLite>,
    #[serde(default)]
    genesis: Option<GenesisLite>,
}

#[derive(Debug, Deserialize)]
struct GenesisLite {
    #[serde(default)]
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RequestLite {
    requester: RequesterLite,
}

#[derive(Debug, Deserialize)]
struct RequesterLite {
    user: String,
}

#[derive(Debug, Clone, Deserialize)]
struct DecisionLite {
    decision: String,
    run: bool,
    #[serde(default)]
    required: Option<RequiredLite>,
    #[serde(default)]
    approvals: Vec<ApprovalLite>,
}

#[derive(Debug, Clone, Deserialize)]
struct RequiredLite {
    clauses: Vec<ClauseLite>,
    min_approvals: u32,
    allow_requester: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct ClauseLite {
    rule: String,
    eligible: Option<Vec<String>>,
    min_approvals: u32,
    #[serde(default)]
    groups: Vec<GroupLite>,
}

#[derive(Debug, Clone, Deserialize)]
struct GroupLite {
    name: String,
    members: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ApprovalLite {
    principal: String,
    at: String,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks one line on its own: UTF-8, canonical form, its own hash, the fields verify needs.
///
/// The common case — a canonical line — is read with the scanner's list of top-level members,
/// parsing with serde only the nested objects that compliance needs (`decision`, `request`,
/// `genesis`). Lines the scanner rejects take the slow path, which tells bad JSON from
/// non-canonical JSON and still reads the seq for the report.
fn check_line(line: &[u8], members: &mut Vec<canon::Member>) -> LineInfo {
    let mut info = LineInfo::default();
    if let Err(e) = std::str::from_utf8(line) {
        info.problem = Some(("bad_utf8", format!("not UTF-8 ({e})")));
        return info;
    }
    let member = match canon::scan_members(line, Some(members)) {
        Ok(m) => m,
        Err(why) => return check_line_slow(line, why),
    };
    let raw = |name: &str| {
        members
            .iter()
            .find(|m| &line[m.key.clone()] == name.as_bytes())
            .map(|m| (&line[m.value.clone()], m.is_string))
    };
    // Strings gate writes in these fields never need escapes; one that has them is read by serde.
    let string = |name: &str| -> Option<String> {
        let (v, is_string) = raw(name)?;
        if !is_string {
            return None;
        }
        if v.contains(&b'\\') {
            serde_json::from_slice(&[b"\"", v, b"\""].concat()).ok()
        } else {
            std::str::from_utf8(v).ok().map(str::to_owned)
        }
    };
    let integer = |name: &str| -> Option<u64> {
        let (v, is_string) = raw(name)?;
        if is_string {
            return None;
        }
        std::str::from_utf8(v).ok()?.parse().ok()
    };
    let object = |name: &str| raw(name).filter(|(_, s)| !s).map(|(v, _)| v);
    // `ts` must be there; it is only read (allocated) where compliance needs it.
    let ts_present = raw("ts").is_some_and(|(_, is_string)| is_string);
    let (Some(v), Some(seq), Some(log_id), true, Some(kind), Some(prev), Some(hash)) = (
        integer("v"),
        integer("seq"),
        string("log_id"),
        ts_present,
        string("kind"),
        string("prev"),
        string("hash"),
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
    info.request_id = string("request_id");
    if v != 1 {
        info.kind = kind;
        info.problem = Some(("bad_version", format!("unknown record version {v}")));
        return info;
    }
    match kind.as_str() {
        "decision" => {
            info.ts = string("ts").unwrap_or_default();
            info.decision = object("decision").and_then(|d| serde_json::from_slice(d).ok());
            info.requester = object("request")
                .and_then(|r| serde_json::from_slice::<RequestLite>(r).ok())
                .map(|r| r.requester.user);
        }
        "genesis" => {
            info.genesis_key = object("genesis")
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
fn hash_bytes(hex_hash: &str) -> [u8; 32] {
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
fn lower_hex(d: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in d.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

/// A line the scanner refused: bad JSON, or JSON that is not canonical (read for its seq).
fn check_line_slow(line: &[u8], why: String) -> LineInfo {
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
    info.decision = fields.decision;
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

/// Verifies the log at `path`.
pub fn verify(path: &Path, opts: &Options<'_>) -> Result<Report, VerifyError> {
    let key_override = match opts.key {
        Some(k) => Some(load_key(k)?),
        None => None,
    };
    let mut file = std::fs::File::open(path).map_err(|e| {
        VerifyError::Unusable(format!("cannot read the log `{}`: {e}", path.display()))
    })?;
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size + 1);
    file.read_to_end(&mut bytes).map_err(|e| {
        VerifyError::Unusable(format!("cannot read the log `{}`: {e}", path.display()))
    })?;
    if bytes.is_empty() {
        return Err(VerifyError::Unusable(format!(
            "the log `{}` is empty",
            path.display()
        )));
    }
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    // A last line without its newline is a torn write.
    let body_end = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) if i + 1 == bytes.len() => bytes.len(),
        Some(i) => {
            problems.push(Problem {
                seq: None,
                line: None,
                code: "torn_line",
                reason: format!(
                    "the last {} bytes are a torn (incomplete) line: a crash mid-write, or a cut; the next append moves them aside",
                    bytes.len() - i - 1
                ),
            });
            i + 1
        }
        None => {
            // Not one complete line: at best a genesis whose newline never reached the disk.
            problems.push(Problem {
                seq: Some(0),
                line: Some(1),
                code: "torn_line",
                reason: format!(
                    "the log holds {} bytes but no complete record (a torn first line, or not a log)",
                    bytes.len()
                ),
            });
            0
        }
    };
    let lines: Vec<&[u8]> = bytes[..body_end].split(|&b| b == b'\n').collect();
    let lines = &lines[..lines.len().saturating_sub(1)];
    // In slices, so memory stays bounded however long the log is: each slice's lines are
    // checked (in parallel), then walked in order.
    let mut st = Walk::default();
    let mut line_no = 0u64;
    for chunk in lines.chunks(1 << 16) {
        for info in check_all(chunk, opts.threads) {
            line_no += 1;
            st.step(line_no, info, &mut problems);
        }
    }
    // A torn tail stands where the next record would have been.
    for p in problems.iter_mut().filter(|p| p.code == "torn_line") {
        p.seq = Some(st.expected_seq);
    }
    for (req, seq) in &st.open_runs {
        warnings.push(format!(
            "seq {seq}: request {req} ran but has no result record (crashed or still running)"
        ));
    }

    // Trust: the key given on the command line, else the one the genesis names.
    let genesis_key = st.genesis_key.clone();
    let (verifier, key_source) = match (key_override, &genesis_key) {
        (Some(k), g) => {
            if let Some(g) = g
                && *g != k.to_vkey()
            {
                problems.push(Problem {
                    seq: Some(0),
                    line: Some(1),
                    code: "key_mismatch",
                    reason: format!(
                        "the genesis names key `{g}`, not the given `{}`",
                        k.to_vkey()
                    ),
                });
            }
            (Some(k), Some("--key"))
        }
        (None, Some(g)) => match NoteVerifier::parse(g) {
            Ok(k) => {
                warnings.push(
                    "trusting the key named in the log's own genesis: this proves the log matches its checkpoint, \
                     but cannot exclude a rewrite of the whole log with a new key; pass `--key` (from `gate log key` \
                     on the host, kept elsewhere) to exclude that"
                        .into(),
                );
                (Some(k), Some("genesis"))
            }
            Err(e) => {
                problems.push(Problem {
                    seq: Some(0),
                    line: Some(1),
                    code: "bad_json",
                    reason: format!("the genesis key is malformed: {e}"),
                });
                (None, None)
            }
        },
        (None, None) => (None, None),
    };

    let cp_path = opts
        .checkpoint
        .map(Path::to_path_buf)
        .unwrap_or_else(|| super::log::checkpoint_path(path));
    let checkpoint = check_checkpoint(
        &cp_path,
        opts.checkpoint.is_some(),
        verifier.as_ref(),
        &st,
        &mut problems,
        &mut warnings,
    )?;

    problems.sort_by_key(|p| (p.seq.is_none(), p.seq));
    let first_bad_seq = problems.iter().find_map(|p| p.seq);
    Ok(Report {
        status: if problems.is_empty() {
            "intact"
        } else {
            "tampered"
        },
        path: path.display().to_string(),
        log_id: st.log_id.clone(),
        records: st.count,
        bytes: bytes.len() as u64,
        first_bad_seq,
        problems,
        warnings,
        key_source,
        checkpoint,
        stats: st.stats,
    })
}

fn load_key(k: &str) -> Result<NoteVerifier, VerifyError> {
    let text = if Path::new(k).exists() {
        std::fs::read_to_string(k)
            .map_err(|e| VerifyError::Unusable(format!("cannot read the key file `{k}`: {e}")))?
    } else {
        k.to_owned()
    };
    NoteVerifier::parse(text.trim()).map_err(|e| VerifyError::Unusable(format!("bad `--key`: {e}")))
}

fn check_all(lines: &[&[u8]], threads: usize) -> Vec<LineInfo> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    if threads <= 1 || lines.len() < 1024 {
        let mut m = Vec::new();
        return lines.iter().map(|l| check_line(l, &mut m)).collect();
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
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The in-order walk: links, sequence, log id, genesis, compliance.
#[derive(Default)]
struct Walk {
    count: u64,
    expected_seq: u64,
    prev_hash: Option<String>,
    log_id: Option<String>,
    genesis_key: Option<String>,
    /// Claimed hash of each record by seq, for checkpoint comparison.
    hashes: Vec<[u8; 32]>,
    open_runs: BTreeMap<String, u64>,
    stats: Stats,
}

impl Walk {
    fn step(&mut self, line: u64, mut info: LineInfo, problems: &mut Vec<Problem>) {
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
            let (code, reason) = info.problem.unwrap_or(("bad_json", "unreadable".into()));
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
        // Identity of the log.
        if seq == 0 || info.kind == "genesis" {
            if info.kind != "genesis" {
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
                if info.prev != GENESIS_PREV {
                    push(
                        Some(0),
                        "broken_link",
                        "the genesis `prev` is not 64 zeros".into(),
                    );
                }
                self.log_id = Some(info.log_id.clone());
                self.genesis_key = info.genesis_key.clone();
            }
        } else if self.log_id.is_none() && self.count == 1 {
            push(
                Some(seq),
                "no_genesis",
                "the log does not start with a genesis record".into(),
            );
            self.log_id = Some(info.log_id.clone());
        }
        if let Some(id) = &self.log_id
            && *id != info.log_id
        {
            push(
                Some(seq),
                "foreign_log_id",
                format!("the record belongs to log {}, not {id}", info.log_id),
            );
        }
        // Sequence and link.
        if seq != self.expected_seq {
            let (code, reason) = if seq < self.expected_seq {
                if self
                    .hashes
                    .get(seq as usize)
                    .is_some_and(|h| *h == hash_bytes(&info.hash))
                {
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
        } else if let Some(prev) = &self.prev_hash
            && info.prev != *prev
        {
            // A record that is itself bad (edited, foreign) is the one to blame for the break;
            // a sound record whose predecessor no longer matches blames the predecessor, which
            // was altered and re-hashed.
            let own_problem =
                info.problem.is_some() || self.log_id.as_ref().is_some_and(|id| *id != info.log_id);
            let (blame, reason) = if own_problem {
                (
                    seq,
                    format!(
                        "seq {seq} does not link to seq {} (its `prev` was altered, or it was inserted)",
                        seq - 1
                    ),
                )
            } else {
                (
                    seq.saturating_sub(1),
                    format!(
                        "seq {seq} links to {}…, but seq {} has hash {}… (seq {} was altered and re-hashed, or a record was inserted or removed)",
                        info.prev.get(..12).unwrap_or(&info.prev),
                        seq - 1,
                        prev.get(..12).unwrap_or(prev),
                        seq - 1
                    ),
                )
            };
            push(Some(blame), "broken_link", reason);
        }
        self.expected_seq = seq
            .max(self.expected_seq.saturating_sub(1))
            .saturating_add(1);
        if (seq as usize) == self.hashes.len() {
            self.hashes.push(hash_bytes(&info.hash));
        }
        self.prev_hash = Some(std::mem::take(&mut info.hash));
        // What ran, and whether it was allowed to.
        match info.kind.as_str() {
            "decision" => {
                self.stats.decisions += 1;
                if let Some(d) = &info.decision
                    && d.run
                {
                    if let Some(id) = &info.request_id {
                        self.open_runs.insert(id.clone(), seq);
                    }
                    if let Some(v) = compliance(d, &info) {
                        push(Some(seq), "compliance", v);
                    }
                    if d.decision == "approve" {
                        self.stats.approved_runs += 1;
                    }
                }
            }
            "result" => {
                self.stats.results += 1;
                if let Some(id) = &info.request_id {
                    self.open_runs.remove(id);
                }
            }
            "repair" => self.stats.repairs += 1,
            _ => {}
        }
    }
}

/// Checks that a decision which let a command run satisfied its own recorded requirement.
fn compliance(d: &DecisionLite, info: &LineInfo) -> Option<String> {
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
    None
}

fn check_checkpoint(
    path: &Path,
    explicit: bool,
    verifier: Option<&NoteVerifier>,
    st: &Walk,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Result<Option<CheckpointSummary>, VerifyError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            warnings.push(format!(
                "no checkpoint at `{}`: the chain is verified, but its tail is unanchored (a cut-off end would not show)",
                path.display()
            ));
            return Ok(None);
        }
        Err(e) => {
            return Err(VerifyError::Unusable(format!(
                "cannot read the checkpoint `{}`: {e}",
                path.display()
            )));
        }
    };
    let mut bad = |code: &'static str, seq: Option<u64>, reason: String| {
        problems.push(Problem {
            seq,
            line: None,
            code,
            reason,
        });
    };
    let note = match std::str::from_utf8(&text)
        .map_err(|e| e.to_string())
        .and_then(|t| Note::parse(t).map_err(|e| e.to_string()))
    {
        Ok(n) => n,
        Err(e) => {
            bad(
                "checkpoint_malformed",
                None,
                format!("the checkpoint is not a signed note: {e}"),
            );
            return Ok(None);
        }
    };
    let Some(key) = verifier else {
        bad(
            "unknown_key",
            None,
            "no key to check the checkpoint with (the genesis names none; pass `--key`)".into(),
        );
        return Ok(None);
    };
    if let Err(e) = note.verify(key) {
        let code = match e {
            super::note::NoteError::UnknownKey(_) => "unknown_key",
            _ => "bad_signature",
        };
        bad(code, None, format!("checkpoint: {e}"));
        return Ok(None);
    }
    let mut lines = note.text.lines();
    let (origin, count, head) = (lines.next(), lines.next(), lines.next());
    let (Some(origin), Some(count), Some(head)) = (origin, count, head) else {
        bad(
            "checkpoint_malformed",
            None,
            "the checkpoint body needs origin, count and head lines".into(),
        );
        return Ok(None);
    };
    let Ok(count) = count.parse::<u64>() else {
        bad(
            "checkpoint_malformed",
            None,
            format!("bad record count `{count}`"),
        );
        return Ok(None);
    };
    use base64::Engine;
    let head_hex = base64::engine::general_purpose::STANDARD
        .decode(head)
        .map(hex::encode)
        .unwrap_or_default();
    if let Some(id) = &st.log_id
        && origin != format!("gate/{id}")
    {
        bad(
            "checkpoint_foreign",
            None,
            format!("the checkpoint is for `{origin}`, not `gate/{id}`"),
        );
    }
    if count > st.count {
        bad(
            "checkpoint_beyond_end",
            Some(st.count),
            format!(
                "the signed checkpoint covers {count} records but the log holds {}: records {}..{} were cut off",
                st.count,
                st.count,
                count - 1
            ),
        );
    } else if count > 0 {
        let at = st
            .hashes
            .get(count as usize - 1)
            .map(hex::encode)
            .unwrap_or_default();
        if at != head_hex {
            bad(
                "checkpoint_mismatch",
                Some(count - 1),
                format!(
                    "the signed checkpoint's head for {count} records differs from record seq {} (rewritten, or rolled back to another copy)",
                    count - 1
                ),
            );
        }
        if count < st.count {
            warnings.push(format!(
                "records {}..{} come after the last signed checkpoint (appended without one: a crash, or added by hand)",
                count,
                st.count - 1
            ));
        }
    }
    Ok(Some(CheckpointSummary {
        path: path.display().to_string(),
        count,
        signed_by: format!("{}+{:08x}", key.name, key.id),
    }))
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
