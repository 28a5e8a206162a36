//! Runs the approved argv: PATH lookup (127 not found, 126 not executable, as shells do),
//! inherited stdio, signal forwarding, and the exit status passed through (death by signal N is
//! 128+N). gate outlives its child so the result is always recorded.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("`{0}`: command not found")]
    NotFound(String),
    #[error("`{0}`: permission denied (not executable)")]
    NotExecutable(PathBuf),
    #[error("cannot start `{0}`: {1}")]
    Spawn(PathBuf, std::io::Error),
}

impl ExecError {
    /// The shell's status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotFound(_) => 127,
            ExecError::NotExecutable(_) => 126,
            ExecError::Spawn(_, e) if e.kind() == std::io::ErrorKind::NotFound => 127,
            ExecError::Spawn(..) => 126,
        }
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
}

impl Finished {
    /// gate's own exit status: the child's, or 128+N for death by signal N.
    pub fn status(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 1,
        }
    }
}

/// Finds the program like `execvp` would: a name with `/` is taken as a path, others are
/// searched on `PATH`.
pub fn resolve(program: &str, path_env: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, ExecError> {
    if program.is_empty() {
        return Err(ExecError::NotFound(program.to_owned()));
    }
    if program.contains('/') {
        let p = cwd.join(program);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                Ok(PathBuf::from(program))
            }
            Ok(_) => Err(ExecError::NotExecutable(PathBuf::from(program))),
            Err(_) => Err(ExecError::NotFound(program.to_owned())),
        };
    }
    let mut not_executable = None;
    let path_env = path_env.unwrap_or_else(|| OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(path_env) {
        let dir = if dir.as_os_str().is_empty() {
            cwd.to_path_buf()
        } else {
            dir
        };
        let candidate = dir.join(program);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            if m.is_file() {
                not_executable.get_or_insert(candidate);
            }
        }
    }
    Err(match not_executable {
        Some(p) => ExecError::NotExecutable(p),
        None => ExecError::NotFound(program.to_owned()),
    })
}

/// Forwards termination signals to the child once it exists.
///
/// Signals that a process sent to gate (kill, a supervisor, a CI runner cancelling a job) are
/// passed on to the child. SIGINT and SIGQUIT typed at the terminal already reach the child,
/// which shares gate's process group, so those are not sent twice. A signal that arrives
/// before the child exists is kept and delivered right after it starts, never dropped.
pub struct Forwarder {
    state: Arc<Mutex<ForwardState>>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct ForwardState {
    child: i32,
    /// Signals that arrived before the child started.
    early: Vec<Signal>,
}

impl Forwarder {
    /// Starts catching the signals; from here on they no longer kill gate.
    pub fn start() -> std::io::Result<Self> {
        let mut signals = SignalsInfo::<WithOrigin>::new([SIGTERM, SIGHUP, SIGINT, SIGQUIT])?;
        let handle = signals.handle();
        let state = Arc::new(Mutex::new(ForwardState::default()));
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            for info in signals.forever() {
                let from_process = info.process.as_ref().map(|p| p.pid);
                let from_terminal = from_process.is_none();
                let Ok(sig) = Signal::try_from(info.signal) else {
                    continue;
                };
                let mut st = shared.lock().unwrap_or_else(|e| e.into_inner());
                if st.child <= 0 {
                    // Before the child exists every stop request counts, the terminal's too.
                    st.early.push(sig);
                } else if from_terminal && (info.signal == SIGINT || info.signal == SIGQUIT) {
                    // The child shares our process group: it got this one itself.
                } else if from_process != Some(st.child) {
                    let _ = kill(Pid::from_raw(st.child), sig);
                }
            }
        });
        Ok(Forwarder {
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// Whether a signal already asked gate to stop before anything started.
    pub fn stopped_early(&self) -> bool {
        !self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .early
            .is_empty()
    }

    /// Runs `executable` with `argv` (argv[0] kept as given) and waits for it.
    pub fn run(mut self, executable: &Path, argv: &[String]) -> Result<Finished, ExecError> {
        let start = Instant::now();
        let mut cmd = Command::new(executable);
        cmd.arg0(&argv[0]).args(&argv[1..]);
        let result = match cmd.spawn() {
            Ok(mut child) => {
                {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    let pid = child.id() as i32;
                    st.child = pid;
                    for sig in st.early.drain(..) {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                }
                let status = loop {
                    match child.wait() {
                        Ok(s) => break Ok(s),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => break Err(e),
                    }
                };
                status
                    .map(|s| Finished {
                        exit_code: s.code(),
                        signal: s.signal(),
                        duration: start.elapsed(),
                    })
                    .map_err(|e| ExecError::Spawn(executable.to_path_buf(), e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(ExecError::NotExecutable(executable.to_path_buf()))
            }
            Err(e) => Err(ExecError::Spawn(executable.to_path_buf(), e)),
        };
        self.close();
        result
    }

    fn close(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.close();
    }
}

/// Runs `executable` with `argv`, forwarding termination signals (see [`Forwarder`]).
pub fn run(executable: &Path, argv: &[String]) -> Result<Finished, ExecError> {
    let f = Forwarder::start().map_err(|e| ExecError::Spawn(executable.to_path_buf(), e))?;
    f.run(executable, argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_maps_signals_to_128_plus_n() {
        let f = |exit_code, signal| Finished {
            exit_code,
            signal,
            duration: Duration::ZERO,
        };
        assert_eq!(f(Some(0), None).status(), 0);
        assert_eq!(f(Some(42), None).status(), 42);
        assert_eq!(f(None, Some(9)).status(), 137);
        assert_eq!(f(None, Some(15)).status(), 143);
    }

    #[test]
    fn resolve_reports_127_and_126() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        let e = resolve("plain", Some(&path), dir.path()).unwrap_err();
        assert_eq!(e.exit_code(), 126);
        let e = resolve("no-such-program-xyz", Some(&path), dir.path()).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert!(resolve("sh", Some(OsStr::new("/bin:/usr/bin")), dir.path()).is_ok());
    }
}
