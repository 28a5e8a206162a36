//! insta settings for snapshots of gate's output: what differs from run to run — temp paths,
//! times, request and log ids, hashes and signatures, this host and user, durations — is
//! replaced by a placeholder, so a snapshot holds exactly what a user reads and nothing that
//! changes by itself. Use as `common::snap::settings(dir).bind(|| insta::assert_snapshot!(..))`.

use std::path::Path;

/// The filters, with `dir` (the test's temp directory) shown as `[DIR]`.
pub fn settings(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(true);
    s.add_filter(&regex::escape(&dir.to_string_lossy()), "[DIR]");
    // Other temp directories (a second Gate, a server's home).
    s.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    s.add_filter(
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        "[ID]",
    );
    s.add_filter(r"\b[0-9a-f]{64}\b", "[HASH]");
    s.add_filter(r"\b[0-9a-f]{32}\b", "[LOG_ID]");
    s.add_filter(
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    );
    s.add_filter(
        r#""(duration_ms|ts_ms|elapsed_ms|expires_unix|pid)":( ?)\d+"#,
        r#""$1":$2[$1]"#,
    );
    // Signing keys are made per test: a verifier key whole, a key id after a key name.
    s.add_filter(r"gate/[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]{40,}", "[VKEY]");
    s.add_filter(r"(gate/[^+\s]+)\+[0-9a-f]{8}\b", "$1+[KEY_ID]");
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !host.is_empty() {
        s.add_filter(&format!(r"\b{}\b", regex::escape(&host)), "[HOST]");
    }
    s
}
