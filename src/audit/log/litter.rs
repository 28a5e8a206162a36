//! What an interrupted writer leaves beside a log, and its removal.

use std::path::PathBuf;

use super::{AuditError, AuditLog};

impl AuditLog {
    /// Removes what an interrupted writer can leave beside the log: `<log>.tmp.*` and
    /// `<log>.checkpoint.tmp.*` files (a replacement killed before its rename) and empty
    /// `<log>.torn.*` files (a repair killed before it wrote the torn bytes). Side files that
    /// hold torn bytes are evidence a repair record names, and stay. Runs under the log's lock,
    /// so no writer is between creating such a file and renaming it. Returns what it removed.
    pub fn sweep_litter(&self) -> Result<Vec<PathBuf>, AuditError> {
        let f = match self.open(false) {
            Ok(f) => f,
            Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        f.lock().map_err(|e| self.io(e))?;
        let removed = self.sweep_locked();
        let _ = f.unlock();
        removed
    }

    fn sweep_locked(&self) -> Result<Vec<PathBuf>, AuditError> {
        let Some(name) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return Ok(Vec::new());
        };
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_owned(),
            None => PathBuf::from("."),
        };
        let temp = [format!("{name}.tmp."), format!("{name}.checkpoint.tmp.")];
        let torn = format!("{name}.torn.");
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| self.io(e))? {
            let Ok(entry) = entry else { continue };
            let file = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if !meta.file_type().is_file() {
                continue;
            }
            let stale = temp.iter().any(|p| file.starts_with(p.as_str()))
                || (file.starts_with(&torn) && meta.len() == 0);
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::body;
    use super::*;

    #[test]
    fn sweeping_removes_what_interrupted_writers_left_and_keeps_evidence() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("audit.jsonl");
        let log = AuditLog::new(&path).with_key(d.path().join("key"));
        log.append(vec![body(1)]).unwrap();
        let at = |n: &str| d.path().join(n);
        for n in [
            "audit.jsonl.tmp.1a2b",
            "audit.jsonl.checkpoint.tmp.77",
            "audit.jsonl.torn.20261128T0901Z.ab",
        ] {
            std::fs::write(at(n), b"").unwrap();
        }
        std::fs::write(at("audit.jsonl.checkpoint.tmp.full"), b"half a note").unwrap();
        // Torn bytes a repair record names, another log's files, and a link: all stay.
        std::fs::write(at("audit.jsonl.torn.20261128T0902Z.cd"), b"{\"torn").unwrap();
        std::fs::write(at("other.jsonl.tmp.1"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", at("audit.jsonl.tmp.link")).unwrap();
        let mut removed: Vec<String> = log
            .sweep_litter()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                "audit.jsonl.checkpoint.tmp.77",
                "audit.jsonl.checkpoint.tmp.full",
                "audit.jsonl.tmp.1a2b",
                "audit.jsonl.torn.20261128T0901Z.ab",
            ]
        );
        for kept in [
            "audit.jsonl.torn.20261128T0902Z.cd",
            "other.jsonl.tmp.1",
            "audit.jsonl.tmp.link",
            "audit.jsonl",
            "audit.jsonl.checkpoint",
        ] {
            assert!(at(kept).symlink_metadata().is_ok(), "{kept} was removed");
        }
        assert!(
            AuditLog::new(d.path().join("none.jsonl"))
                .sweep_litter()
                .unwrap()
                .is_empty()
        );
    }
}
