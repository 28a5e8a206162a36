//! `gate log verify`: proves a log is complete and unaltered, and that what ran had the
//! approvals its policy demanded. The log is streamed in bounded batches: each batch's lines
//! are checked independently (their hashes in parallel) while the previous batch is walked in
//! order for links, sequence numbers and compliance. Every problem is reported
//! with the seq of the record it concerns; the summary names the first.

mod checkpoint;
mod line;
mod server_events;
mod state;
mod statement;
mod stream;
mod walk;

use std::path::Path;

use serde::Serialize;

use super::note::NoteVerifier;
use checkpoint::check_checkpoint;
pub use line::{CheckedRecord, check_record_line};
pub use statement::ServerTrust;
use walk::Walk;

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
    /// checkpoint_beyond_end, checkpoint_mismatch, checkpoint_foreign, checkpoint_missing,
    /// key_mismatch, compliance, orphan_result.
    pub code: &'static str,
    pub reason: String,
}

/// What a problem means for the log: it was altered, or it is intact and records something
/// that should not have happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The hash chain, a signature or a checkpoint does not hold: the log is not what gate
    /// wrote.
    Tampering,
    /// The records hold, and say a command ran without the approvals its policy demanded
    /// (too few distinct approvers, self-approval, a denied command that ran, a server approval
    /// without its signed statement) or ran with no decision before it.
    Compliance,
}

impl Problem {
    pub fn finding(&self) -> Finding {
        match self.code {
            "compliance" | "orphan_result" => Finding::Compliance,
            _ => Finding::Tampering,
        }
    }
}

/// The verdict on a whole log: tampering outranks a compliance violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Intact,
    Tampered,
    ComplianceViolation,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// intact, or tampered when there is any problem (kept for scripts written before
    /// `verdict`; read `verdict` to tell tampering from a compliance violation).
    pub status: &'static str,
    /// intact, tampered (the chain, a signature or a checkpoint does not hold), or
    /// compliance_violation (the log holds, and records a run without its approvals).
    pub verdict: Verdict,
    /// Whether any problem is tampering.
    pub tampered: bool,
    /// Whether any problem is a compliance violation (also when the log is tampered too).
    pub compliance_violation: bool,
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
    /// With `--remote`: what was compared with the server's copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteCheck>,
}

/// The comparison with a gate server's copy of the log (`gate log verify --remote`).
#[derive(Debug, Clone, Serialize)]
pub struct RemoteCheck {
    pub url: String,
    /// Records the server holds of this log.
    pub server_records: u64,
    /// Records compared hash by hash (those both copies hold).
    pub compared: u64,
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

/// Verifies the log at `path`, trusting no gate server key: server-approved runs' statements
/// are read and compared, and a warning says their signatures went unchecked.
pub fn verify(path: &Path, opts: &Options<'_>) -> Result<Report, VerifyError> {
    verify_with_servers(path, opts, &ServerTrust::default())
}

/// Verifies the log at `path`; server-approved runs must carry statements signed by one of
/// `servers.keys`.
pub fn verify_with_servers(
    path: &Path,
    opts: &Options<'_>,
    servers: &ServerTrust,
) -> Result<Report, VerifyError> {
    let key_override = match opts.key {
        Some(k) => Some(load_key(k)?),
        None => None,
    };
    let file = std::fs::File::open(path).map_err(|e| {
        VerifyError::Unusable(format!("cannot read the log `{}`: {e}", path.display()))
    })?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut st = Walk {
        server_trust: servers.clone(),
        ..Walk::default()
    };
    let streamed = stream::walk_file(file, opts.threads, &mut st, &mut problems).map_err(|e| {
        VerifyError::Unusable(format!("cannot read the log `{}`: {e}", path.display()))
    })?;
    if streamed.bytes == 0 {
        return Err(VerifyError::Unusable(format!(
            "the log `{}` is empty",
            path.display()
        )));
    }
    // A last line without its newline is a torn write; it stands where the next record would
    // have been.
    if streamed.torn > 0 {
        let reason = if streamed.complete_lines {
            format!(
                "the last {} bytes are a torn (incomplete) line: a crash mid-write, or a cut; the next append moves them aside",
                streamed.torn
            )
        } else {
            // Not one complete line: at best a genesis whose newline never reached the disk.
            format!(
                "the log holds {} bytes but no complete record (a torn first line, or not a log)",
                streamed.torn
            )
        };
        problems.insert(
            0,
            Problem {
                seq: Some(st.expected_seq),
                line: (!streamed.complete_lines).then_some(1),
                code: "torn_line",
                reason,
            },
        );
    }
    if st.statements_unchecked > 0 {
        warnings.push(format!(
            "{} server-approved run(s) carry a decision statement whose signature was not checked: \
             no trusted server key; pass `--server-key VKEY` (from `gate serve key` or `gate login URL`), \
             or verify with the policy whose server backends name their `key`",
            st.statements_unchecked
        ));
    }
    for (req, seq) in st.open_runs.sorted() {
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
        key_source == Some("--key"),
        verifier.as_ref(),
        &st,
        &mut problems,
        &mut warnings,
    )?;

    let mut report = Report {
        status: "intact",
        verdict: Verdict::Intact,
        tampered: false,
        compliance_violation: false,
        path: path.display().to_string(),
        log_id: st.log_id.clone(),
        records: st.count,
        bytes: streamed.bytes,
        first_bad_seq: None,
        problems,
        warnings,
        key_source,
        checkpoint,
        stats: st.stats,
        remote: None,
    };
    report.settle();
    Ok(report)
}

impl Report {
    /// Orders the problems and derives the summary fields from them; call it again after
    /// adding problems.
    pub fn settle(&mut self) {
        self.problems.sort_by_key(|p| (p.seq.is_none(), p.seq));
        self.first_bad_seq = self.problems.iter().find_map(|p| p.seq);
        self.tampered = self
            .problems
            .iter()
            .any(|p| p.finding() == Finding::Tampering);
        self.compliance_violation = self
            .problems
            .iter()
            .any(|p| p.finding() == Finding::Compliance);
        self.verdict = if self.tampered {
            Verdict::Tampered
        } else if self.compliance_violation {
            Verdict::ComplianceViolation
        } else {
            Verdict::Intact
        };
        self.status = if self.problems.is_empty() {
            "intact"
        } else {
            "tampered"
        };
    }
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
