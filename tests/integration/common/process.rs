//! The one harness for processes a test runs in the background: a `gate` that waits for an
//! approval, a client in a long-poll, `gate serve`. Output is collected on threads as it comes,
//! so a test waits for a *marker* gate prints (`waiting for approval`, `listening on`) instead
//! of sleeping and hoping; every wait has a generous limit that only turns a hang into a
//! failure with the output so far, never a claim about speed. A process still running when its
//! handle drops (a failed test) is killed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Ran;

/// How long a wait may take before the test calls it a hang.
pub const HANG: Duration = Duration::from_secs(60);

/// A background process whose stdout and stderr are collected on threads.
pub struct Watched {
    child: Child,
    rx: mpsc::Receiver<(bool, Vec<u8>)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Kept open while the process runs (an EOF on a pty can read as ^D); closed by `finish`.
    stdin: Option<ChildStdin>,
    done: bool,
}

/// Starts `c` with stdin from /dev/null.
pub fn spawn(c: Command) -> Watched {
    start(c, Stdio::null())
}

/// Starts `c` with a stdin pipe kept open until [`Watched::finish`] (see [`Watched::type_in`]).
pub fn spawn_with_stdin(c: Command) -> Watched {
    start(c, Stdio::piped())
}

/// Like [`spawn_with_stdin`], with `input` already typed.
pub fn spawn_with_input(c: Command, input: &str) -> Watched {
    let mut w = spawn_with_stdin(c);
    w.type_in(input);
    w
}

fn start(mut c: Command, stdin: Stdio) -> Watched {
    c.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", c.get_program()));
    let stdin = child.stdin.take();
    let rx = super::read_pipes(&mut child);
    Watched {
        child,
        rx,
        stdout: Vec::new(),
        stderr: Vec::new(),
        stdin,
        done: false,
    }
}

impl Watched {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to the process.
    #[track_caller]
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).unwrap_or_else(|e| panic!("send {sig}: {e}"));
    }

    /// Writes `input` to the process's stdin (which stays open).
    #[track_caller]
    pub fn type_in(&mut self, input: &str) {
        let stdin = self.stdin.as_mut().expect("spawned with a stdin pipe");
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Takes in output until both pipes close or `limit` passes.
    pub fn collect(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Ok((is_err, b)) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.take(is_err, b);
        }
    }

    fn take(&mut self, is_err: bool, b: Vec<u8>) {
        if is_err {
            &mut self.stderr
        } else {
            &mut self.stdout
        }
        .extend(b);
    }

    /// Waits until stderr contains `needle` (a line the process prints when it got somewhere),
    /// failing when the pipes close first or `limit` passes.
    #[track_caller]
    pub fn stderr_until(&mut self, needle: &str, limit: Duration) {
        self.until(true, needle, limit)
    }

    /// Like [`Watched::stderr_until`], on stdout.
    #[track_caller]
    pub fn stdout_until(&mut self, needle: &str, limit: Duration) {
        self.until(false, needle, limit)
    }

    #[track_caller]
    fn until(&mut self, on_stderr: bool, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let seen = |w: &Self| {
            let s = if on_stderr { &w.stderr } else { &w.stdout };
            String::from_utf8_lossy(s).contains(needle)
        };
        while !seen(self) {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((is_err, b)) => self.take(is_err, b),
                Err(e) => panic!(
                    "{needle:?} never appeared on {} ({e})\n--- stdout\n{}\n--- stderr\n{}",
                    if on_stderr { "stderr" } else { "stdout" },
                    self.stdout_text(),
                    self.stderr_text()
                ),
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the end (at most `limit`, else it is killed and the test fails) and returns
    /// the status (a death by signal N as -N) and the raw bytes of both streams.
    #[track_caller]
    pub fn finish_raw(mut self, limit: Duration) -> (i32, Vec<u8>, Vec<u8>) {
        let status = self.wait(limit);
        (
            status,
            std::mem::take(&mut self.stdout),
            std::mem::take(&mut self.stderr),
        )
    }

    /// [`Watched::finish_raw`] as text.
    #[track_caller]
    pub fn finish(self, limit: Duration) -> Ran {
        let (status, stdout, stderr) = self.finish_raw(limit);
        Ran::new(
            status,
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    #[track_caller]
    fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.done = true;
                self.collect(Duration::from_millis(300));
                panic!(
                    "still running after {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.stdout_text(),
                    self.stderr_text()
                );
            }
            // Woken by output as it comes; the timeout only bounds how late the exit is seen.
            if let Ok((is_err, b)) = self.rx.recv_timeout(Duration::from_millis(20)) {
                self.take(is_err, b);
            }
        };
        self.done = true;
        self.stdin.take();
        self.collect(Duration::from_secs(5));
        std::os::unix::process::ExitStatusExt::signal(&status)
            .map_or_else(|| status.code().unwrap_or(-1), |s| -s)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `gate serve` whose files live in `home` (kept across restarts): stopped with
/// SIGTERM (then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub home: PathBuf,
    pub addr: String,
    pub url: String,
    pub db: PathBuf,
    pub audit: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `gate serve` with `policy_yaml` (written once: a restart keeps the first) on an
    /// ephemeral loopback port, and waits until it says where it listens.
    pub fn start(home: &Path, policy_yaml: &str) -> Server {
        Self::start_in(home, policy_yaml, "127.0.0.1:0")
    }

    /// Like [`Server::start`], on `listen` (a restart at the address of an earlier server).
    pub fn start_in(home: &Path, policy_yaml: &str, listen: &str) -> Server {
        let (s, db, audit) = super::serve_in(super::gate_in(home), home, policy_yaml, listen);
        Server {
            child: Some(s.child),
            home: home.to_owned(),
            url: format!("http://{}", s.addr),
            addr: s.addr,
            db,
            audit,
            stderr: s.stderr,
        }
    }

    /// Takes charge of a server started some other way (in a mount namespace of its own, say).
    pub fn adopt(s: super::Serving, home: &Path, db: PathBuf, audit: PathBuf) -> Server {
        Server {
            child: Some(s.child),
            home: home.to_owned(),
            url: format!("http://{}", s.addr),
            addr: s.addr,
            db,
            audit,
            stderr: s.stderr,
        }
    }

    /// The server's process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `gate` with the server's environment (its home), for its admin commands.
    pub fn gate(&self) -> Command {
        super::gate_in(&self.home)
    }

    /// SIGTERM and wait for the graceful shutdown; its exit status.
    #[track_caller]
    pub fn stop(&mut self) -> i32 {
        let Some(mut child) = self.child.take() else {
            return 0;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gate serve ignored SIGTERM for {HANG:?}\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `gate serve token issue` for `principal` (optionally `--expires`): the secret.
    #[track_caller]
    pub fn token(&self, principal: &str, expires: Option<&str>) -> String {
        let mut c = self.gate();
        c.args(["serve", "token", "issue", "--db"])
            .arg(&self.db)
            .args(["--principal", principal]);
        if let Some(e) = expires {
            c.args(["--expires", e]);
        }
        let r = Ran::of(c);
        r.status(0);
        let t = r.stdout.trim().to_owned();
        assert!(t.starts_with("gate_"), "not a token: {t:?}");
        t
    }

    /// `gate serve key` with the server's own options: the key its decisions are signed with.
    #[track_caller]
    pub fn vkey(&self) -> String {
        let mut c = self.gate();
        c.arg("--policy")
            .arg(self.home.join("server-policy.yaml"))
            .args(["serve", "key", "--db"])
            .arg(&self.db);
        let r = Ran::of(c);
        r.status(0);
        r.stdout.trim().to_owned()
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `ready` until it gives a value, failing with `what` after [`HANG`] (a hang guard, not
/// a claim about speed).
#[track_caller]
pub fn poll<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not after {HANG:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
