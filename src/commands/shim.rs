//! `gate shim install|list|remove`, and gate started under a shim's name. A shim is a symlink
//! named after a program (`aws`) pointing at the gate binary, in a directory put before the
//! real program's on PATH; run under that name, gate finds the real program further down PATH
//! ([`crate::shim::find_real`]: never a shim, never gate itself) and runs it exactly as
//! `gate -- aws ARGS...` would, recording that a shim was used. Nothing in the environment
//! makes a shim run a program without the run form's decision and records.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::config::Env;
use crate::error::{Error, exit};
use crate::output::{Output, escape};
use crate::request::ShimUse;
use crate::run::{RunOptions, run_shim};
use crate::shim::{self, Entry, GateBinary, NotFound};

/// The default shim directory: `shims` in gate's state directory
/// (`$XDG_STATE_HOME/gate/shims`, else `~/.local/state/gate/shims`).
pub fn default_dir(env: &Env) -> PathBuf {
    env.state_dir().join("shims")
}

/// gate started as `argv0` (a name other than `gate`) with `args`: the run form for the real
/// program of that name. Gate's own options are not read: every argument is the program's.
pub fn invoked(env: &Env, out: &Output, argv0: &OsStr, args: Vec<OsString>) -> Result<i32, Error> {
    let name = shim::shim_name(Some(argv0)).unwrap_or(argv0);
    let Some(name) = name.to_str().filter(|n| shim::valid_name(n)) else {
        return Err(Error::Exec {
            message: format!(
                "gate was started as `{}`, which names no program it can stand for",
                escape(&argv0.to_string_lossy())
            ),
            code: exit::NOT_FOUND,
        });
    };
    let mut argv = vec![name.to_owned()];
    for a in args {
        match a.into_string() {
            Ok(a) => argv.push(a),
            Err(a) => {
                return Err(Error::Usage(format!(
                    "`{name}` (a gate shim): the argument `{}` is not valid UTF-8, which gate cannot record",
                    escape(&a.to_string_lossy())
                )));
            }
        }
    }
    // No real program: say so before anyone is asked to approve something that cannot run.
    let cwd = std::env::current_dir()
        .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?;
    let gate = GateBinary::current().ok();
    if let Err(e) = shim::find_real(name, env.path.as_deref(), &cwd, gate.as_ref()) {
        return Err(not_found(name, e));
    }
    let opts = RunOptions {
        argv,
        policy_files: Vec::new(),
        reason: None,
        timeout: None,
        no_wait: false,
        request: None,
        wait: false,
        json: false,
    };
    let shim = ShimUse {
        invoked_as: argv0.to_string_lossy().into_owned(),
    };
    run_shim(opts, shim, env, out)
}

fn not_found(name: &str, e: NotFound) -> Error {
    match e {
        NotFound::NotExecutable(p) => Error::Exec {
            message: format!(
                "`{name}` (a gate shim): `{}` is not executable",
                escape(&p.display().to_string())
            ),
            code: exit::NOT_EXECUTABLE,
        },
        NotFound::Missing { skipped } => {
            let passed = if skipped.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = skipped
                    .iter()
                    .map(|p| escape(&p.display().to_string()).into_owned())
                    .collect();
                format!(" (passed over, as shims of gate: {})", list.join(", "))
            };
            Error::Exec {
                message: format!(
                    "`{name}`: command not found: no real `{name}` on PATH after gate's shims{passed}"
                ),
                code: exit::NOT_FOUND,
            }
        }
    }
}

fn gate_binary() -> Result<GateBinary, Error> {
    GateBinary::current()
        .map_err(|e| Error::config(format!("cannot tell where the gate binary is: {e}")))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::config(format!(
        "cannot {what} `{}`: {e}",
        escape(&path.display().to_string())
    ))
}

/// The line to put in a shell's profile so the shims come first.
pub fn path_line(dir: &Path) -> String {
    let d = dir.display().to_string();
    let quoted = if d
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        d
    } else {
        format!("'{}'", d.replace('\'', r"'\''"))
    };
    format!("export PATH={quoted}:\"$PATH\"")
}

/// `gate shim install NAME... [--dir D]`: a symlink to this gate binary for each name. An
/// existing shim is left as it is; any other file by that name is never replaced.
pub fn install(
    env: &Env,
    out: &Output,
    names: &[String],
    dir: Option<PathBuf>,
) -> Result<i32, Error> {
    check_names(names)?;
    let gate = gate_binary()?;
    let dir = dir.unwrap_or_else(|| default_dir(env));
    // Absolute, so the PATH line it prints works from any directory.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    // Writable by you alone (less with a stricter umask): whoever can write here can swap a
    // shim for anything.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|e| io_err("create", &dir, e))?;
    let marker = dir.join(shim::MARKER);
    if std::fs::symlink_metadata(&marker).is_err() {
        std::fs::write(&marker, shim::MARKER_TEXT).map_err(|e| io_err("write", &marker, e))?;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut refused = Vec::new();
    for name in names {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(_) => match shim::entry(&link, &gate) {
                Entry::Shim { .. } => {
                    out.info(&format!("`{name}`: already a shim in {}", dir.display()));
                    continue;
                }
                Entry::Stale { .. } => {
                    std::fs::remove_file(&link).map_err(|e| io_err("replace", &link, e))?;
                }
                Entry::Foreign => {
                    out.error(&format!(
                        "`{}` exists and is not a gate shim: left alone",
                        link.display()
                    ));
                    refused.push(name.clone());
                    continue;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &link, e)),
        }
        std::os::unix::fs::symlink(&gate.path, &link).map_err(|e| io_err("make", &link, e))?;
        match shim::find_real(name, env.path.as_deref(), &cwd, Some(&gate)) {
            Ok(real) => out.info(&format!(
                "`{name}`: shim made; it runs {} through gate",
                real.display()
            )),
            Err(_) => out.warn(&format!(
                "`{name}`: shim made, but there is no real `{name}` on PATH yet (run under it, the shim exits 127)"
            )),
        }
    }
    if !on_path_first(env, &dir, &cwd) {
        out.info("put the shims first on PATH (in your shell's profile):");
        out.data(&path_line(&dir));
    }
    out.info(
        "shims are as strong as the policy behind them: without a root-owned system policy, \
         whatever runs as you can edit the policy (or PATH); `gate doctor` checks both",
    );
    if refused.is_empty() {
        Ok(0)
    } else {
        Err(Error::Failed(format!(
            "not installed: {} (a file by that name is in the way)",
            refused.join(", ")
        )))
    }
}

/// Whether `dir` is the first entry on PATH (ignoring repeats of it).
fn on_path_first(env: &Env, dir: &Path, cwd: &Path) -> bool {
    let dirs = shim::path_dirs(env.path.as_deref(), cwd);
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    dirs.first().is_some_and(|d| canon(d) == canon(dir))
}

fn check_names(names: &[String]) -> Result<(), Error> {
    if let Some(bad) = names.iter().find(|n| !shim::valid_name(n)) {
        return Err(Error::Usage(format!(
            "`{}` cannot be a shim: give a program's plain name (no `/`, not starting with `-` or `.`, not `gate`)",
            escape(bad)
        )));
    }
    Ok(())
}

/// One file of a shim directory, as `list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    /// `shim`, `stale` (its gate binary is gone) or `foreign` (not gate's; left alone).
    pub kind: &'static str,
    pub target: Option<PathBuf>,
    /// The real program it stands for, as a shim would find it now.
    pub shadows: Option<PathBuf>,
}

/// The files of `dir` (the marker left out), sorted by name.
pub fn listing(env: &Env, dir: &Path, gate: &GateBinary) -> std::io::Result<Vec<Listed>> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut rows = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == shim::MARKER {
            continue;
        }
        let path = e.path();
        let (kind, target) = match shim::entry(&path, gate) {
            Entry::Shim { target } => ("shim", Some(target)),
            Entry::Stale { target } => ("stale", Some(target)),
            Entry::Foreign => ("foreign", std::fs::read_link(&path).ok()),
        };
        let shadows = (kind != "foreign")
            .then(|| shim::find_real(&name, env.path.as_deref(), &cwd, Some(gate)).ok())
            .flatten();
        rows.push(Listed {
            name,
            path,
            kind,
            target,
            shadows,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// `gate shim list [--dir D]`: each shim, where it points and the real program it shadows.
pub fn list(env: &Env, out: &Output, dir: Option<PathBuf>, json: bool) -> Result<i32, Error> {
    let gate = gate_binary()?;
    let dir = dir.unwrap_or_else(|| default_dir(env));
    let rows = match listing(env, &dir, &gate) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err("read", &dir, e)),
    };
    if json {
        out.data(
            &serde_json::to_string(&serde_json::json!({
                "dir": dir,
                "shims": rows,
            }))
            .unwrap_or_default(),
        );
        return Ok(0);
    }
    if rows.is_empty() {
        out.info(&format!("no shims in {}", dir.display()));
        return Ok(0);
    }
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
    };
    for r in &rows {
        let line = match r.kind {
            "shim" => format!(
                "{}\t-> {}\tshadows {}",
                r.name,
                show(&r.target),
                r.shadows.as_ref().map_or_else(
                    || "nothing (no real program on PATH)".to_owned(),
                    |p| p.display().to_string()
                )
            ),
            "stale" => format!(
                "{}\t-> {}\tstale: that gate binary is gone (`gate shim install {}` renews it)",
                r.name,
                show(&r.target),
                r.name
            ),
            _ => format!("{}\tnot a gate shim (left alone)", r.name),
        };
        out.text(&line);
    }
    Ok(0)
}

/// `gate shim remove NAME... [--dir D]`: deletes the shims named, and nothing that is not one.
pub fn remove(
    env: &Env,
    out: &Output,
    names: &[String],
    dir: Option<PathBuf>,
) -> Result<i32, Error> {
    check_names(names)?;
    let gate = gate_binary()?;
    let dir = dir.unwrap_or_else(|| default_dir(env));
    let mut failed = Vec::new();
    for name in names {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.error(&format!("no shim `{name}` in {}", dir.display()));
                failed.push(name.clone());
                continue;
            }
            Err(e) => return Err(io_err("read", &link, e)),
            Ok(_) => {}
        }
        match shim::entry(&link, &gate) {
            Entry::Shim { .. } | Entry::Stale { .. } => {
                std::fs::remove_file(&link).map_err(|e| io_err("remove", &link, e))?;
                out.info(&format!("`{name}`: shim removed"));
            }
            Entry::Foreign => {
                out.error(&format!(
                    "`{}` is not a gate shim (not a link to this gate): left alone",
                    link.display()
                ));
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(Error::Failed(format!("not removed: {}", failed.join(", "))))
    }
}
