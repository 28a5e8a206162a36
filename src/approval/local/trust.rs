//! Believing what others wrote into the spool only as far as the kernel backs it: a request
//! directory and its `request.json` must belong to the requester they name, a decision file
//! counts for the user who owns it. Whatever fails is skipped or not counted, with the reason.

use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use nix::errno::Errno;

use super::dirfd::{MAX_FILE, errno, open_in, read_small};
use super::{DecisionFile, SpoolRequest};

/// Why a spool entry or a decision file is not believed: shown next to the entry skipped or
/// the decision not counted.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not a directory (a link or a file)")]
    NotADirectory,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{name}: {source}")]
    File {
        name: String,
        source: std::io::Error,
    },
    #[error("{name}: larger than {MAX_FILE} bytes")]
    TooLarge { name: String },
    #[error("its request.json is a symbolic link; not read")]
    RequestLink,
    #[error("its request.json is not a regular file")]
    RequestNotFile,
    #[error("its request.json belongs to uid {file}, the directory to uid {dir}")]
    RequestOwner { file: u32, dir: u32 },
    #[error("bad request.json: {0}")]
    BadRequest(serde_json::Error),
    #[error("its request.json names another request id")]
    OtherId,
    #[error("its request.json claims to come from {user} (uid {uid}), but uid {owner} wrote it")]
    Impostor { user: String, uid: u32, owner: u32 },
    #[error("{0}: a symbolic link, not followed")]
    DecisionLink(String),
    #[error("{0}: not a regular file")]
    NotRegular(String),
    #[error("{name}: uid {uid} has no user name")]
    NoUserName { name: String, uid: u32 },
    /// A decision file from a known user that does not count.
    #[error("{principal}: {}", problem.describe(name))]
    Decision {
        principal: String,
        name: String,
        problem: DecisionProblem,
    },
}

/// What is wrong with one user's decision file.
#[derive(Debug)]
pub enum DecisionProblem {
    Unreadable(serde_json::Error),
    OtherRequest,
    WritableByOthers,
    SeveralLinks,
    Unknown(String),
}

impl DecisionProblem {
    fn describe(&self, name: &str) -> String {
        match self {
            DecisionProblem::Unreadable(e) => format!("bad decision file {name}: {e}"),
            DecisionProblem::OtherRequest => format!("{name} decides another request"),
            DecisionProblem::WritableByOthers => format!("{name} is writable by others"),
            DecisionProblem::SeveralLinks => format!("{name} has several links"),
            DecisionProblem::Unknown(d) => format!("unknown decision `{d}` in {name}"),
        }
    }
}

/// Reads `<root>/<name>/request.json` without following links, and believes it only as far as
/// the kernel backs it: the file must be a regular file owned by the directory's owner, the
/// requester it names must be that owner, and the id it names must be the directory's.
pub(super) fn load_entry(root: &OwnedFd, name: &str) -> Result<SpoolRequest, EntryError> {
    let dir = open_in(root, name, true).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => EntryError::NotADirectory,
        e => EntryError::Io(errno(e)),
    })?;
    let dir_meta = dir.metadata().map_err(EntryError::Io)?;
    let dir = OwnedFd::from(dir);
    let f = open_in(&dir, "request.json", false).map_err(|e| match e {
        Errno::ELOOP => EntryError::RequestLink,
        e => EntryError::File {
            name: "request.json".into(),
            source: errno(e),
        },
    })?;
    let meta = f.metadata().map_err(EntryError::Io)?;
    if !meta.is_file() {
        return Err(EntryError::RequestNotFile);
    }
    if meta.uid() != dir_meta.uid() {
        return Err(EntryError::RequestOwner {
            file: meta.uid(),
            dir: dir_meta.uid(),
        });
    }
    let bytes = read_small(&f, "request.json")?;
    let r: SpoolRequest = serde_json::from_slice(&bytes).map_err(EntryError::BadRequest)?;
    if r.request.id != name {
        return Err(EntryError::OtherId);
    }
    let owner = meta.uid();
    let owner_name = crate::identity::user_name(owner).unwrap_or_else(|| owner.to_string());
    if r.request.requester.uid != owner || owner_name != r.request.requester.user {
        return Err(EntryError::Impostor {
            user: r.request.requester.user,
            uid: r.request.requester.uid,
            owner,
        });
    }
    Ok(r)
}

/// Reads one decision file, trusting only what the kernel says about it: its owner. `None`
/// for a file still being written (empty, or cut short, and only just made).
#[allow(clippy::type_complexity)]
pub(super) fn read_decision(
    root: &OwnedFd,
    name: &str,
    req: &SpoolRequest,
) -> Result<Option<(u32, String, DecisionFile)>, EntryError> {
    let file = |source| EntryError::File {
        name: name.to_owned(),
        source,
    };
    let f = open_in(root, name, false).map_err(|e| match e {
        Errno::ELOOP => EntryError::DecisionLink(name.to_owned()),
        e => file(errno(e)),
    })?;
    let meta = f.metadata().map_err(file)?;
    if !meta.is_file() {
        return Err(EntryError::NotRegular(name.to_owned()));
    }
    let uid = meta.uid();
    let principal = crate::identity::user_name(uid).ok_or_else(|| EntryError::NoUserName {
        name: name.to_owned(),
        uid,
    })?;
    let at = |problem| EntryError::Decision {
        principal: principal.clone(),
        name: name.to_owned(),
        problem,
    };
    let bytes = read_small(&f, name)?;
    let fresh = meta
        .modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(2));
    let d: DecisionFile = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(_) if fresh => return Ok(None),
        Err(e) => return Err(at(DecisionProblem::Unreadable(e))),
    };
    if d.request_id != req.request.id {
        return Err(at(DecisionProblem::OtherRequest));
    }
    match d.decision.as_str() {
        // A denial only tightens: it counts however it got here.
        "deny" => {}
        "approve" => {
            // A file others can write, or a hard link to one, would lend its owner's name to
            // whoever wrote into it.
            if meta.permissions().mode() & 0o022 != 0 {
                return Err(at(DecisionProblem::WritableByOthers));
            }
            if meta.nlink() != 1 {
                return Err(at(DecisionProblem::SeveralLinks));
            }
        }
        other => return Err(at(DecisionProblem::Unknown(other.to_owned()))),
    }
    Ok(Some((uid, principal, d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_reads_as_before() {
        let decision = |problem| EntryError::Decision {
            principal: "bob".into(),
            name: "x.1001.decision".into(),
            problem,
        };
        let cases: Vec<(EntryError, &str)> = vec![
            (
                EntryError::RequestOwner { file: 1001, dir: 0 },
                "its request.json belongs to uid 1001, the directory to uid 0",
            ),
            (
                EntryError::Impostor {
                    user: "alice".into(),
                    uid: 1000,
                    owner: 1001,
                },
                "its request.json claims to come from alice (uid 1000), but uid 1001 wrote it",
            ),
            (
                EntryError::TooLarge {
                    name: "request.json".into(),
                },
                "request.json: larger than 1048576 bytes",
            ),
            (
                decision(DecisionProblem::OtherRequest),
                "bob: x.1001.decision decides another request",
            ),
            (
                decision(DecisionProblem::Unknown("maybe".into())),
                "bob: unknown decision `maybe` in x.1001.decision",
            ),
            (
                decision(DecisionProblem::SeveralLinks),
                "bob: x.1001.decision has several links",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
