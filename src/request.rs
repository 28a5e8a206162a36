//! The Request: one command someone wants to run, with who, where and why, and the digest an
//! approval is bound to. The digest covers the exact argv, the working directory, the context
//! environment and the contents of payload files, so approving one command never approves another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::identity::Identity;

/// A file the command reads as its payload, hashed into the digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payload {
    /// As the command names it.
    pub path: String,
    /// Lowercase hex SHA-256 of its contents, or `None` when it cannot be read.
    pub sha256: Option<String>,
}

/// The command as it will run. `argv` here is redacted; the raw argv lives only in memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandInfo {
    pub argv: Vec<String>,
    pub cwd: String,
    /// The program as resolved on PATH, when it was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<Payload>,
    /// Set when the command came in through a PATH shim (`gate shim`), not `gate -- ...`.
    /// Not part of the digest: the same command is the same request whichever way it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim: Option<ShimUse>,
}

/// How a shim started the command: gate was run under another program's name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimUse {
    /// argv[0] exactly as the caller passed it (the caller chooses it: `exec -a` can set any
    /// name, so this says how gate was called, not which file was run).
    pub invoked_as: String,
}

/// What gets written to records and shown to approvers: everything is redacted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestView {
    pub id: String,
    pub requester: Identity,
    pub command: CommandInfo,
    pub context: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub view: RequestView,
    /// The exact argv to run.
    pub argv: Vec<String>,
    /// The command's positional words (tool-aware).
    pub words: Vec<String>,
    /// Every environment value the policy reads, unredacted (for matching only).
    pub env: BTreeMap<String, String>,
}

pub struct NewRequest<'a> {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub executable: Option<PathBuf>,
    pub requester: Identity,
    pub env: BTreeMap<String, String>,
    pub context_env: &'a [String],
    pub reason: Option<String>,
    pub redact: &'a dyn Fn(&str) -> String,
}

impl Request {
    pub fn new(n: NewRequest<'_>) -> Self {
        let program = program_name(&n.argv[0]).to_owned();
        let parsed = crate::command::parse(&program, &n.argv[1..]);
        let cwd = n.cwd.to_string_lossy().into_owned();
        let payload: Vec<Payload> = parsed
            .payload_files
            .iter()
            .map(|p| Payload {
                path: p.clone(),
                sha256: hash_file(&n.cwd.join(p)),
            })
            .collect();
        let context: BTreeMap<String, String> = n
            .env
            .iter()
            .filter(|(k, _)| n.context_env.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let executable = n
            .executable
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let digest = command_digest(&n.argv, &cwd, &context, &payload, executable.as_deref());
        let view = RequestView {
            id: uuid::Uuid::now_v7().to_string(),
            requester: n.requester,
            command: CommandInfo {
                argv: n.argv.iter().map(|a| (n.redact)(a)).collect(),
                cwd,
                executable,
                payload: payload.clone(),
                shim: None,
            },
            context: context
                .iter()
                .map(|(k, v)| {
                    // Redact as `NAME=value`, so patterns like `token=\S+` see the name too.
                    let r = (n.redact)(&format!("{k}={v}"));
                    let value = r
                        .strip_prefix(&format!("{k}="))
                        .map_or_else(|| "[REDACTED]".to_owned(), str::to_owned);
                    (k.clone(), value)
                })
                .collect(),
            reason: n.reason,
            digest,
        };
        Request {
            view,
            argv: n.argv,
            words: parsed.words,
            env: n.env,
        }
    }

    pub fn id(&self) -> &str {
        &self.view.id
    }

    /// Re-hashes the payload files just before the run: an edit after approval voids it.
    pub fn payload_changed(&self) -> Option<&str> {
        let cwd = Path::new(&self.view.command.cwd);
        self.view
            .command
            .payload
            .iter()
            .find(|p| hash_file(&cwd.join(&p.path)) != p.sha256)
            .map(|p| p.path.as_str())
    }
}

impl RequestView {
    /// The digest an approver of a spooled request signs: [`digest`] over what the view
    /// shows — its (redacted) argv, cwd, (redacted) context env, payload hashes and the
    /// resolved executable. It equals
    /// `digest` when nothing was redacted. The process holding the request computes it from
    /// the view in its memory; an approver recomputes it from what it was shown
    /// ([`RequestView::recompute_shown_digest`]), so a rewritten request file matches nothing.
    pub fn shown_digest(&self) -> String {
        command_digest(
            &self.command.argv,
            &self.command.cwd,
            &self.context,
            &self.command.payload,
            self.command.executable.as_deref(),
        )
    }

    /// [`RequestView::shown_digest`] as the calling user sees the request: the payload files
    /// are hashed again by this process, never taken from the view. Fails when a payload the
    /// requester could read cannot be read here: an approver must not sign what it cannot see.
    pub fn recompute_shown_digest(&self) -> Result<(String, Vec<Payload>), UnreadablePayload> {
        let cwd = Path::new(&self.command.cwd);
        let mut seen = Vec::with_capacity(self.command.payload.len());
        for p in &self.command.payload {
            let sha256 = hash_file(&cwd.join(&p.path));
            if sha256.is_none() && p.sha256.is_some() {
                return Err(UnreadablePayload {
                    path: p.path.clone(),
                    cwd: self.command.cwd.clone(),
                });
            }
            seen.push(Payload {
                path: p.path.clone(),
                sha256,
            });
        }
        let d = command_digest(
            &self.command.argv,
            &self.command.cwd,
            &self.context,
            &seen,
            self.command.executable.as_deref(),
        );
        Ok((d, seen))
    }
}

/// A payload file the requester hashed but this user cannot read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the payload file `{path}` (in `{cwd}`) that the command would use")]
pub struct UnreadablePayload {
    pub path: String,
    pub cwd: String,
}

/// SHA-256 over the canonical JSON of {argv, cwd, env, payload}: the digest of a request that
/// names no resolved executable ([`command_digest`] with `None`).
pub fn digest(
    argv: &[String],
    cwd: &str,
    env: &BTreeMap<String, String>,
    payload: &[Payload],
) -> String {
    command_digest(argv, cwd, env, payload, None)
}

/// SHA-256 over the canonical JSON of {argv, cwd, env, payload} and, when the requester's gate
/// resolved it, `executable` — the program that will actually run. Without it an approver
/// would be shown one program while another, found earlier on the requester's PATH, runs
/// under the same approval. A request with no resolved executable (a client that does not send
/// one, a program not found) hashes exactly as before, so older clients' digests still hold.
pub fn command_digest(
    argv: &[String],
    cwd: &str,
    env: &BTreeMap<String, String>,
    payload: &[Payload],
    executable: Option<&str>,
) -> String {
    let mut v = json!({ "argv": argv, "cwd": cwd, "env": env, "payload": payload });
    if let Some(x) = executable {
        v["executable"] = json!(x);
    }
    // Only strings and nulls: canonicalization cannot meet a float here.
    let canon = crate::jcs::canonicalize(&v).unwrap_or_default();
    hex::encode(Sha256::digest(canon.as_bytes()))
}

/// SHA-256 of a payload: a file's bytes, or for a directory (`kubectl apply -f dir/`) every
/// file below it with its relative path, in sorted order. `None` when it cannot be read.
fn hash_file(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    // Only regular files and directories: a FIFO or a device would block or never end, and
    // the path is the requester's to choose while approvers hash it too.
    if !meta.is_dir() && !meta.is_file() {
        return None;
    }
    if meta.is_dir() {
        let mut entries = Vec::new();
        collect_files(path, Path::new(""), 0, &mut entries)?;
        entries.sort();
        let mut h = Sha256::new();
        for (rel, sha) in entries {
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(sha.as_bytes());
            h.update([b'\n']);
        }
        return Some(hex::encode(h.finalize()));
    }
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}

fn collect_files(
    dir: &Path,
    rel: &Path,
    depth: usize,
    out: &mut Vec<(String, String)>,
) -> Option<()> {
    // Bounded, so a payload of `/` can't stall a run: past the bounds it is unhashable.
    if depth > 16 || out.len() > 10_000 {
        return None;
    }
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let meta = std::fs::metadata(&path).ok()?;
        if meta.is_dir() {
            collect_files(&path, &rel, depth + 1, out)?;
        } else if !meta.is_file() {
            return None;
        } else {
            let bytes = std::fs::read(&path).ok()?;
            out.push((
                rel.to_string_lossy().into_owned(),
                hex::encode(Sha256::digest(&bytes)),
            ));
        }
    }
    Some(())
}

/// The basename a rule's `program` glob sees.
pub fn program_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// Joins argv into one line a POSIX shell would split back into the same words.
pub fn shell_join(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&shell_quote(a));
    }
    out
}

pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_shell_rules() {
        let argv: Vec<String> = ["rm", "-rf", "/", "it's", "", "a b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_join(&argv), r"rm -rf / 'it'\''s' '' 'a b'");
    }

    #[test]
    fn directory_payload_changes_with_any_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a.yaml"), "a").unwrap();
        std::fs::write(d.path().join("sub/b.yaml"), "b").unwrap();
        let before = hash_file(d.path()).unwrap();
        std::fs::write(d.path().join("sub/b.yaml"), "B").unwrap();
        assert_ne!(hash_file(d.path()).unwrap(), before);
    }

    #[test]
    fn a_fifo_payload_is_unhashable_instead_of_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("p.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(hash_file(&fifo), None);
        std::fs::write(d.path().join("real"), "x").unwrap();
        assert_eq!(hash_file(d.path()), None, "a directory holding a FIFO");
    }

    #[test]
    fn recomputed_digest_is_the_shown_digest_and_follows_the_payload() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.json"), "{}").unwrap();
        let argv: Vec<String> = ["aws", "iam", "put-role-policy", "file://p.json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cwd = d.path().to_string_lossy().into_owned();
        let payload = vec![Payload {
            path: "p.json".into(),
            sha256: hash_file(&d.path().join("p.json")),
        }];
        let view = RequestView {
            id: "x".into(),
            requester: Identity::current(),
            command: CommandInfo {
                argv: argv.clone(),
                cwd: cwd.clone(),
                executable: None,
                payload: payload.clone(),
                shim: None,
            },
            context: BTreeMap::new(),
            reason: None,
            digest: digest(&argv, &cwd, &BTreeMap::new(), &payload),
        };
        assert_eq!(view.shown_digest(), view.digest, "nothing redacted");
        assert_eq!(
            view.recompute_shown_digest().unwrap().0,
            view.shown_digest()
        );
        // What the approver reads now, not what the request claims, goes into the digest.
        std::fs::write(d.path().join("p.json"), r#"{"Effect":"Allow"}"#).unwrap();
        assert_ne!(
            view.recompute_shown_digest().unwrap().0,
            view.shown_digest()
        );
        std::fs::remove_file(d.path().join("p.json")).unwrap();
        let e = view.recompute_shown_digest().unwrap_err();
        assert_eq!(e.path, "p.json");
    }

    #[test]
    fn digest_changes_with_any_part() {
        let argv = vec!["aws".to_string(), "s3".to_string()];
        let env = BTreeMap::new();
        let d = digest(&argv, "/", &env, &[]);
        assert_eq!(d.len(), 64);
        assert_ne!(d, digest(&argv, "/tmp", &env, &[]));
        let env2 = BTreeMap::from([("GATE_ENV".to_string(), "prod".to_string())]);
        assert_ne!(d, digest(&argv, "/", &env2, &[]));
        // The program that runs is part of what is approved; without one, nothing changes.
        assert_eq!(d, command_digest(&argv, "/", &env, &[], None));
        let usr = command_digest(&argv, "/", &env, &[], Some("/usr/bin/aws"));
        assert_ne!(d, usr);
        assert_ne!(
            usr,
            command_digest(&argv, "/", &env, &[], Some("/home/agent/bin/aws"))
        );
    }
}

/// How many characters of a request id are shown where space is short.
pub const SHORT_ID_LEN: usize = 12;

/// The short form of a request id that tables, spinners and messages show: its last
/// [`SHORT_ID_LEN`] characters. Gate's ids are UUIDv7, whose leading digits are a millisecond
/// timestamp shared by requests made close together; the final group is random, so this part
/// tells them apart. Every command that takes an id takes this form back (a unique suffix, or a
/// unique prefix, of a pending or logged id). Counted in characters: an id read from a tampered
/// file need not be ASCII.
pub fn short_id(id: &str) -> &str {
    let start = id
        .char_indices()
        .rev()
        .nth(SHORT_ID_LEN - 1)
        .map_or(0, |(i, _)| i);
    &id[start..]
}

#[cfg(test)]
mod short_id_tests {
    use super::short_id;

    #[test]
    fn short_id_is_the_random_tail() {
        assert_eq!(
            short_id("0193a1b2-7c3d-7e4f-8a5b-1c2d3e4f5a6b"),
            "1c2d3e4f5a6b"
        );
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
    }
}

/// The fewest characters of an id that name a request: fewer would let a slip of the keyboard
/// name a request nobody meant.
pub const MIN_ID_PART: usize = 6;

/// What someone typed to name a request (`gate requests ID`, `gate approve ID`, the server's
/// `{id}`): a whole id, or a part of one to look up among the requests the caller can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdQuery {
    /// A UUID, in gate's lower-case hyphenated form: only that request, never a lookup.
    Full(String),
    /// At least [`MIN_ID_PART`] characters of an id from its start or its end (hex digits and
    /// `-`, lower-cased), e.g. the [`short_id`] every table shows.
    Part(String),
}

/// Why what was typed cannot name a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdQueryError {
    #[error(
        "`{0}` is not a request id: ids are UUIDs like `0192e4a1-7c3b-7d2e-9f00-1234567890ab`, \
         or a unique part of one (hex digits and `-`)"
    )]
    NotAnId(String),
    #[error(
        "`{0}` is too short to name a request: give at least {MIN_ID_PART} characters of its \
         id (the short id `gate requests` shows is its last {SHORT_ID_LEN})"
    )]
    TooShort(String),
}

impl IdQuery {
    /// Reads what was typed. Nothing but hex digits and `-` gets through, so a part can never
    /// become a path, a glob or a SQL pattern. (The error holds what was typed as it was:
    /// `output` escapes every message it prints.)
    pub fn parse(typed: &str) -> Result<IdQuery, IdQueryError> {
        let t = typed.trim().to_ascii_lowercase();
        let shown = || typed.to_owned();
        // Any spelling of a whole UUID (hyphenated, 32 digits, braced, `urn:uuid:`) names that
        // request, in gate's one form.
        if let Ok(u) = uuid::Uuid::parse_str(&t) {
            return Ok(IdQuery::Full(u.hyphenated().to_string()));
        }
        let id_chars = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if t.is_empty() || t.len() > 36 || !id_chars(&t) {
            return Err(IdQueryError::NotAnId(shown()));
        }
        if t.chars().filter(|c| *c != '-').count() < MIN_ID_PART {
            return Err(IdQueryError::TooShort(shown()));
        }
        Ok(IdQuery::Part(t))
    }

    /// Whether the request `id` is the one meant (whole), or one of those meant (a part).
    pub fn matches(&self, id: &str) -> bool {
        match self {
            IdQuery::Full(f) => id == f,
            IdQuery::Part(p) => id.starts_with(p.as_str()) || id.ends_with(p.as_str()),
        }
    }

    /// What was asked for, for messages.
    pub fn as_str(&self) -> &str {
        match self {
            IdQuery::Full(s) | IdQuery::Part(s) => s,
        }
    }
}

#[cfg(test)]
mod id_query_tests {
    use super::{IdQuery, IdQueryError};

    const ID: &str = "0193a1b2-7c3d-7e4f-8a5b-1c2d3e4f5a6b";

    #[test]
    fn whole_ids_parts_and_junk() {
        assert_eq!(IdQuery::parse(ID), Ok(IdQuery::Full(ID.into())));
        for spelling in [
            ID.to_uppercase(),
            ID.replace('-', ""),
            format!("{{{ID}}}"),
            format!("urn:uuid:{ID}"),
            format!(" {ID}\n"),
        ] {
            assert_eq!(
                IdQuery::parse(&spelling),
                Ok(IdQuery::Full(ID.into())),
                "{spelling}"
            );
        }
        for part in [
            "1c2d3e4f5a6b",
            "0193a1b2",
            "3e4f5a6b",
            "8a5b-1c2d3e4f5a6b",
            "0193a1b2-7c3d",
        ] {
            let q = IdQuery::parse(part).unwrap();
            assert!(matches!(q, IdQuery::Part(_)), "{part}");
            assert!(q.matches(ID), "{part}");
        }
        assert!(!IdQuery::parse("7c3d-7e4f").unwrap().matches(ID), "middle");
        for bad in [
            "",
            "..",
            "../x",
            "x",
            "0193a1b2/..",
            "g193a1b2",
            &"a".repeat(37),
        ] {
            assert!(
                matches!(IdQuery::parse(bad), Err(IdQueryError::NotAnId(_))),
                "{bad:?}"
            );
        }
        for short in ["5a6b", "a6b", "--5a6b-", "3f5a6"] {
            assert!(
                matches!(IdQuery::parse(short), Err(IdQueryError::TooShort(_))),
                "{short:?}"
            );
        }
    }
}
