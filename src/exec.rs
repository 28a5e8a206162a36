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

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;

mod cancel;
pub use cancel::Cancel;

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
///
/// When gate is a single thread (the usual case), no thread is started: the signals and
/// SIGCHLD are blocked and read from a `signalfd` by gate itself while it waits for the child
/// (the child starts with an empty mask; `std::process` resets it). With other threads around,
/// any of which the kernel could hand a signal to, a thread of its own catches them instead.
pub struct Forwarder {
    how: How,
}

enum How {
    Masked {
        sfd: SignalFd,
        /// The mask before gate blocked the signals: the child starts with it.
        old: SigSet,
        /// Signals that arrived before the child started.
        early: Vec<Signal>,
    },
    Threaded {
        state: Arc<Mutex<ForwardState>>,
        handle: signal_hook::iterator::Handle,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

#[derive(Default)]
struct ForwardState {
    child: i32,
    /// Signals that arrived before the child started.
    early: Vec<Signal>,
}

const FORWARDED: [i32; 4] = [SIGTERM, SIGHUP, SIGINT, SIGQUIT];

/// What to do with `signal` from `sender` (None: the kernel, i.e. typed at the terminal) once
/// the child `child` runs: forward it unless the child got it itself or sent it.
fn forward_to(child: i32, signal: Signal, sender: Option<i32>) {
    let from_terminal = sender.is_none();
    if from_terminal && matches!(signal, Signal::SIGINT | Signal::SIGQUIT) {
        // The child shares our process group: it got this one itself.
    } else if sender != Some(child) {
        let _ = kill(Pid::from_raw(child), signal);
    }
}

/// Whether this process has no thread but the calling one (so a blocked signal can only wait
/// for it). Unknown counts as no.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

impl Forwarder {
    /// Starts catching the signals; from here on they no longer kill gate.
    pub fn start() -> std::io::Result<Self> {
        if single_threaded()
            && let Some(how) = Self::start_masked()
        {
            return Ok(Forwarder { how });
        }
        Self::start_threaded()
    }

    fn start_masked() -> Option<How> {
        // A signal whose disposition is "ignore" (inherited through exec: `nohup`, a shell's
        // background job) is discarded even while blocked, SIGCHLD included, which would leave
        // gate waiting forever. signal-hook's handler, installed for each and left in place,
        // replaces that disposition; blocked, it never runs.
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in FORWARDED.into_iter().chain([SIGCHLD]) {
            let id = signal_hook::flag::register(sig, Arc::clone(&flag)).ok()?;
            signal_hook::low_level::unregister(id);
        }
        let mut mask = SigSet::empty();
        for sig in [
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGCHLD,
        ] {
            mask.add(sig);
        }
        let mut old = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).ok()?;
        match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
            Ok(sfd) => Some(How::Masked {
                sfd,
                old,
                early: Vec::new(),
            }),
            Err(_) => {
                let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                None
            }
        }
    }

    fn start_threaded() -> std::io::Result<Self> {
        let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED)?;
        let handle = signals.handle();
        let state = Arc::new(Mutex::new(ForwardState::default()));
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            for info in signals.forever() {
                let from_process = info.process.as_ref().map(|p| p.pid);
                let Ok(sig) = Signal::try_from(info.signal) else {
                    continue;
                };
                let mut st = shared.lock().unwrap_or_else(|e| e.into_inner());
                if st.child <= 0 {
                    // Before the child exists every stop request counts, the terminal's too.
                    st.early.push(sig);
                } else {
                    forward_to(st.child, sig, from_process);
                }
            }
        });
        Ok(Forwarder {
            how: How::Threaded {
                state,
                handle,
                thread: Some(thread),
            },
        })
    }

    /// Whether a signal already asked gate to stop before anything started.
    pub fn stopped_early(&mut self) -> bool {
        match &mut self.how {
            How::Masked { sfd, early, .. } => {
                while let Ok(Some(info)) = sfd.read_signal() {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
                        && sig != Signal::SIGCHLD
                    {
                        early.push(sig);
                    }
                }
                !early.is_empty()
            }
            How::Threaded { state, .. } => !state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .early
                .is_empty(),
        }
    }

    /// Runs `executable` with `argv` (argv[0] kept as given) and waits for it.
    pub fn run(self, executable: &Path, argv: &[String]) -> Result<Finished, ExecError> {
        self.run_with_env(executable, argv, &[])
    }

    /// [`Forwarder::run`] with `env` added to the child's environment only (released
    /// secrets): gate's own environment never holds them.
    pub fn run_with_env(
        mut self,
        executable: &Path,
        argv: &[String],
        env: &[(String, crate::secrets::vault::SecretValue)],
    ) -> Result<Finished, ExecError> {
        let start = Instant::now();
        let mut cmd = Command::new(executable);
        cmd.arg0(&argv[0]).args(&argv[1..]);
        for (k, v) in env {
            cmd.env(k, v.expose());
        }
        let result = match self.spawn(&mut cmd) {
            Ok(mut child) => {
                let status = match &mut self.how {
                    How::Masked { sfd, early, .. } => Self::wait_masked(&mut child, sfd, early),
                    How::Threaded { state, .. } => {
                        {
                            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                            let pid = child.id() as i32;
                            st.child = pid;
                            for sig in st.early.drain(..) {
                                let _ = kill(Pid::from_raw(pid), sig);
                            }
                        }
                        wait(&mut child)
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

    /// Starts the child. A child inherits the signal mask (`std::process` does not reset it),
    /// so with the signals blocked, the mask goes back to what it was for the moment of the
    /// spawn; a signal arriving in that moment is caught by a flag, never dropped, and counts
    /// as early (delivered to the child once it runs).
    fn spawn(&mut self, cmd: &mut Command) -> std::io::Result<std::process::Child> {
        let How::Masked { sfd, old, early } = &mut self.how else {
            return cmd.spawn();
        };
        let caught: Vec<(Signal, Arc<std::sync::atomic::AtomicBool>)> = [
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGQUIT,
        ]
        .into_iter()
        .map(|s| (s, Arc::new(std::sync::atomic::AtomicBool::new(false))))
        .collect();
        let mut ids = Vec::new();
        for (sig, flag) in &caught {
            ids.push(signal_hook::flag::register(*sig as i32, Arc::clone(flag))?);
        }
        // What came while blocked, before the mask opens.
        while let Ok(Some(info)) = sfd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
                && sig != Signal::SIGCHLD
            {
                early.push(sig);
            }
        }
        let mut blocked = SigSet::empty();
        let restored = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old), Some(&mut blocked));
        let child = cmd.spawn();
        if restored.is_ok() {
            // Blocked again before the flags go: nothing can slip between the two.
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&blocked), None);
        }
        for id in ids {
            signal_hook::low_level::unregister(id);
        }
        for (sig, flag) in caught {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                early.push(sig);
            }
        }
        child
    }

    /// Waits for the child, reading the blocked signals from `sfd`: SIGCHLD means look again,
    /// the others are forwarded. The signals stay blocked afterwards: gate only records the
    /// result and exits, and a late signal must not cut that short.
    fn wait_masked(
        child: &mut std::process::Child,
        sfd: &mut SignalFd,
        early: &mut Vec<Signal>,
    ) -> std::io::Result<std::process::ExitStatus> {
        let pid = child.id() as i32;
        for sig in early.drain(..) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        // From here reads block until a signal (SIGCHLD at the latest) is pending.
        if nix::fcntl::fcntl(
            &*sfd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .is_err()
        {
            return wait(child);
        }
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s);
            }
            match sfd.read_signal() {
                Ok(Some(info)) => {
                    let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                        continue;
                    };
                    if sig == Signal::SIGCHLD {
                        continue;
                    }
                    // SI_USER, SI_QUEUE, SI_TKILL (<= 0): sent by a process; the kernel's
                    // (the terminal's) codes are positive.
                    let sender = (info.ssi_code <= 0).then_some(info.ssi_pid as i32);
                    forward_to(pid, sig, sender);
                }
                Ok(None) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return wait(child),
            }
        }
    }

    fn close(&mut self) {
        if let How::Threaded { handle, thread, .. } = &mut self.how {
            handle.close();
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Waits for the child however long it takes.
fn wait(child: &mut std::process::Child) -> std::io::Result<std::process::ExitStatus> {
    loop {
        match child.wait() {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
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
