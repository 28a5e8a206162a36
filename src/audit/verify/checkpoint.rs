//! The signed checkpoint: its signature against the trusted key, and its head against the
//! records (a truncated tail, a rewrite, a rollback).

use std::path::Path;

use super::walk::Walk;
use super::{CheckpointSummary, Problem, VerifyError};
use crate::audit::note::{Note, NoteVerifier};

pub(super) fn check_checkpoint(
    path: &Path,
    explicit: bool,
    key_given: bool,
    verifier: Option<&NoteVerifier>,
    st: &Walk,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Result<Option<CheckpointSummary>, VerifyError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        // Given the host's key, the signed checkpoint is the only thing that fixes where the log
        // ends: without it a cut-off tail (`head -n 9`) would pass, so its absence is tampering.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit && key_given => {
            problems.push(Problem {
                seq: None,
                line: None,
                code: "checkpoint_missing",
                reason: format!(
                    "no signed checkpoint at `{}`: every append signs one, so it was deleted or the log was copied without it; records may have been cut off the end",
                    path.display()
                ),
            });
            return Ok(None);
        }
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
    // Two slots: both must be notes signed by the key; the newest one is the checkpoint.
    let text = crate::audit::log::checkpoint_to_audit(&text, verifier);
    let note = match std::str::from_utf8(text)
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
            crate::audit::note::NoteError::UnknownKey(_) => "unknown_key",
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
            .get(count - 1)
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
