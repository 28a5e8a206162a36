//! The host's checkpoint signing key: Ed25519, made on first use, stored 0600 in Go's note
//! private-key format (`PRIVATE+KEY+gate/<host>+<id>+<base64>`). Publishing is atomic and never
//! overwrites: two gates starting at once end up with the same key. It is written to a fresh,
//! randomly named file first, so no link planted beside it can receive it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::note::NoteSigner;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot use the signing key `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signing key `{path}` is unreadable: {why}")]
    Bad { path: PathBuf, why: String },
}

/// The key name a host signs with.
pub fn key_name(host: &str) -> String {
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '+' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("gate/{clean}")
}

/// Loads the key at `path`, creating it if it does not exist yet.
pub fn load_or_create(path: &Path, host: &str) -> Result<NoteSigner, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A key kept where another user can write is theirs to replace (or to plant before it is
    // made): the same rule as for the log's directory.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && dir.exists()
    {
        super::log::check_dir(dir).map_err(|why| KeyError::Bad {
            path: path.to_path_buf(),
            why: format!("refusing it: {why}"),
        })?;
    }
    for _ in 0..50 {
        match fs::read_to_string(path) {
            Ok(s) if !s.trim().is_empty() => {
                return NoteSigner::parse_private(&s).map_err(|e| KeyError::Bad {
                    path: path.to_path_buf(),
                    why: e.to_string(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(path, host)?;
                continue;
            }
            Err(e) => return Err(io(e)),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(KeyError::Bad {
        path: path.to_path_buf(),
        why: "the file stays empty".into(),
    })
}

fn create(path: &Path, host: &str) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let signer = NoteSigner::from_seed(&key_name(host), &seed).map_err(|e| KeyError::Bad {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    // A fresh file under a random name (O_EXCL|O_NOFOLLOW): nothing planted beside the key
    // can receive it.
    let mut base = path.as_os_str().to_owned();
    base.push(".tmp");
    let (mut f, tmp) = super::log::create_unique(Path::new(&base), 0o600).map_err(io)?;
    f.write_all(format!("{}\n", signer.to_private_string()).as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    // A hard link publishes the complete file and fails if another process won the race.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}
