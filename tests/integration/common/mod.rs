//! A small builder for running the real `gate` binary in a throw-away directory, in the spirit
//! of `just`'s `Test::new().args(..).status(..)`. Every run gets its own state, config, log and
//! spool paths so tests never touch the machine's real gate state.
#![allow(dead_code)]

pub mod doctest;
pub mod jcs;
pub mod pg;
pub mod process;
pub mod sim_http;
pub mod slack_api;
pub mod slack_blocks;
pub mod slack_interaction;
pub mod slack_sim;
pub mod snap;
pub mod teams_sim;
pub mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Gate {
    pub dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    /// A directory that stands in for the system policy directory during this Gate's runs.
    system: Option<PathBuf>,
}

/// What `gate check` (and every other command reading policy) says on stderr when there is no
/// system tier, as in a test without [`Gate::system_policy`].
pub const NO_SYSTEM_TIER: &str = "warning: no system policy (no *.yaml in /etc/gate/policy.d): \
    your own policy files are the top of trust, and anything running as you can edit them; see \
    docs/threat-model.md\n";

/// A finished process: its exit status and output. Its checks assert and return `self`, so
/// they chain: `.status(78).stderr_contains("policy.yaml:3:3")`.
pub struct Ran {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn new(status: i32, stdout: String, stderr: String) -> Self {
        Ran {
            status,
            stdout,
            stderr,
        }
    }

    /// Runs `c` to the end (stdin from /dev/null unless `c` says otherwise).
    pub fn of(mut c: Command) -> Self {
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("run {:?}: {e}", c.get_program()));
        Self::from_output(out)
    }

    pub fn from_output(out: Output) -> Self {
        Ran::new(
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Asserts the exit status, showing both streams when it differs.
    #[track_caller]
    pub fn status(&self, expected: i32) -> &Self {
        assert_eq!(
            self.status, expected,
            "unexpected exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts stderr is exactly `expected`.
    #[track_caller]
    pub fn stderr(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stderr, expected,
            "unexpected stderr (status {})\n--- stdout\n{}",
            self.status, self.stdout
        );
        self
    }

    #[track_caller]
    pub fn stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// The name [`Ran::stderr_contains`] had before issue 9, kept so that branches written
    /// against it still merge; new code says `stderr_contains`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        self.stderr_contains(needle)
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

/// The start of what the run form says when no policy file applies at all (issue 11 §5).
pub const NO_POLICY_WARNING: &str =
    "warning: no policy file, so every command is allowed (looked for ";
/// The start of the hint that follows [`NO_POLICY_WARNING`].
pub const NO_POLICY_HINT: &str = "hint: copy an example from gate's `policies/` directory to ";

/// `stderr` without the no-policy warning and its hint, when it starts with them. Every run of
/// a [`Gate`] without a policy prints them, and most tests that run one are about something
/// else; the tests about the warning check it (tests/integration/cli_help.rs).
pub fn without_no_policy_warning(stderr: &str) -> &str {
    let Some(after) = stderr.strip_prefix(NO_POLICY_WARNING) else {
        return stderr;
    };
    let rest = after.split_once('\n').map_or("", |(_, r)| r);
    match rest.strip_prefix(NO_POLICY_HINT) {
        Some(h) => h.split_once('\n').map_or("", |(_, r)| r),
        None => rest,
    }
}

/// What [`Gate::run`] gives: a [`Ran`] that insists on being checked. Unless a test says
/// otherwise, the run must have exited 0 with nothing on stderr (but the no-policy warning of
/// a run without any policy: [`without_no_policy_warning`]), checked when this drops; a
/// test says otherwise with [`Checked::status`], an exact [`Checked::stderr`], or the explicit
/// opt-outs [`Checked::stderr_contains`] and [`Checked::any_stderr`]. A message gate should not
/// print, or a failure nobody looked at, then fails the test instead of passing unseen.
pub struct Checked {
    ran: Ran,
    status_checked: std::cell::Cell<bool>,
    stderr_checked: std::cell::Cell<bool>,
}

impl std::ops::Deref for Checked {
    type Target = Ran;
    fn deref(&self) -> &Ran {
        &self.ran
    }
}

impl Checked {
    pub fn new(ran: Ran) -> Self {
        Checked {
            ran,
            status_checked: Default::default(),
            stderr_checked: Default::default(),
        }
    }

    #[track_caller]
    pub fn status(&self, expected: i32) -> &Self {
        self.ran.status(expected);
        self.status_checked.set(true);
        self
    }

    #[track_caller]
    pub fn stderr(&self, expected: &str) -> &Self {
        self.ran.stderr(expected);
        self.stderr_checked.set(true);
        self
    }

    /// Opts out of the exact stderr check, asserting `needle` is in it.
    #[track_caller]
    pub fn stderr_contains(&self, needle: &str) -> &Self {
        self.ran.stderr_contains(needle);
        self.stderr_checked.set(true);
        self
    }

    /// The name [`Checked::stderr_contains`] had before issue 9 (see [`Ran::stderr_has`]).
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        self.stderr_contains(needle)
    }

    /// Hands the exit status to a caller that checks it itself (a helper that returns it).
    pub fn take_status(&self) -> i32 {
        self.status_checked.set(true);
        self.ran.status
    }

    /// Opts out of the stderr check: the test reads `stderr` itself, or it does not matter.
    pub fn any_stderr(&self) -> &Self {
        self.stderr_checked.set(true);
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        self.ran.stdout_has(needle);
        self
    }

    #[track_caller]
    fn verify(&self) {
        if !self.status_checked.get() {
            self.ran.status(0);
        }
        if !self.stderr_checked.get() {
            assert_eq!(
                without_no_policy_warning(&self.ran.stderr),
                "",
                "gate printed on stderr and the test neither expected it exactly nor opted \
                 out (`.stderr(..)`, `.stderr_contains(..)`, `.any_stderr()`); status {}\n\
                 --- stdout\n{}",
                self.ran.status,
                self.ran.stdout
            );
        }
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.verify();
        }
    }
}

/// `gate` with a clean environment whose state, config, home, log and spool live under `home`
/// (for tests that run several processes — a server and its clients — in one directory).
pub fn gate_in(home: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home.join("home"))
        .env("GATE_LOG", home.join("audit.jsonl"))
        .env("GATE_SPOOL", home.join("spool"))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .current_dir(home)
        .stdin(Stdio::null());
    c
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gate")
}

impl Gate {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // A spool other users can reach, as `gate setup local` makes one: a waiting gate fails
        // at once when no eligible approver could see its request, so a test that waits for
        // approval (or a timeout) needs one. Tests of unusable spools point GATE_SPOOL elsewhere.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mut env = BTreeMap::new();
        let p = |s: &str| dir.path().join(s).to_string_lossy().into_owned();
        env.insert("XDG_STATE_HOME".into(), p("state"));
        env.insert("XDG_CONFIG_HOME".into(), p("config"));
        env.insert("HOME".into(), p("home"));
        env.insert("GATE_LOG".into(), p("audit.jsonl"));
        env.insert("GATE_SPOOL".into(), p("spool"));
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        Gate {
            dir,
            env,
            args: Vec::new(),
            stdin: None,
            system: None,
        }
    }

    /// Installs `yaml` as `/etc/gate/policy.d/<name>` — the system tier, root-owned and mode
    /// 0644 in a 0755 directory — for this Gate's runs only: each run gets its own mount
    /// namespace with the test's directory bind-mounted over the real one (see [`system_tier`]).
    pub fn system_policy(mut self, name: &str, yaml: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.path("system-policy.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, yaml).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        self.system = Some(dir);
        self
    }

    /// What a command that reads policy prints on stderr when all is well: the no-system-tier
    /// warning without [`Gate::system_policy`], nothing with it.
    pub fn tier_warning(&self) -> &'static str {
        if self.system.is_some() {
            ""
        } else {
            NO_SYSTEM_TIER
        }
    }

    /// The stand-in system policy directory, once [`Gate::system_policy`] made it.
    pub fn system_dir(&self) -> Option<&Path> {
        self.system.as_deref()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file under the test directory and returns its path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Writes `policy.yaml` and points `GATE_POLICY` at it.
    pub fn policy(mut self, yaml: &str) -> Self {
        let p = self.write("policy.yaml", yaml);
        self.env
            .insert("GATE_POLICY".into(), p.to_string_lossy().into_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// The command ready to spawn (for tests that need to signal or wait on it).
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(self.dir.path());
        match &self.system {
            Some(dir) => system_tier(&c, dir),
            None => c,
        }
    }

    /// Runs gate to the end. The result must exit 0 with an empty stderr unless the test
    /// checks otherwise (see [`Checked`]).
    pub fn run(&self) -> Checked {
        let mut c = self.command();
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn gate");
        if let Some(input) = &self.stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out: Output = child.wait_with_output().expect("wait gate");
        Checked::new(Ran::from_output(out))
    }

    /// The audit log's records as JSON values.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let log = Path::new(&self.env["GATE_LOG"]).to_path_buf();
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record is JSON"))
            .collect()
    }
}

/// Reads a spawned child's piped stdout and stderr on two threads: each chunk arrives as
/// `(is_stderr, bytes)`, so a test can wait for a line without blocking on either pipe.
pub fn read_pipes(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<(bool, Vec<u8>)> {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::channel();
    let pipes: [(bool, Box<dyn Read + Send>); 2] = [
        (false, Box::new(child.stdout.take().expect("stdout piped"))),
        (true, Box::new(child.stderr.take().expect("stderr piped"))),
    ];
    for (is_err, mut pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 || tx.send((is_err, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// The real system policy directory gate was built with (tests use the default build).
pub const SYSTEM_POLICY_DIR: &str = "/etc/gate/policy.d";

/// `c`, run with `dir` bind-mounted over `/etc/gate/policy.d` in a mount namespace of its own
/// (`unshare --mount`; the tests run as root, as CI does), so a test can install a system tier
/// without touching the machine's. The process keeps its pid (unshare, sh and gate each exec
/// the next), so signal tests work through it. Any user the command drops to (setpriv) sees
/// the same mount.
pub fn system_tier(c: &Command, dir: &Path) -> Command {
    use std::os::unix::fs::PermissionsExt;
    let target = Path::new(SYSTEM_POLICY_DIR);
    if !target.is_dir() {
        std::fs::create_dir_all(target).expect(
            "create /etc/gate/policy.d (the system-tier tests run as root: run the tests as CI does)",
        );
        for d in [target, target.parent().unwrap()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut w = Command::new("unshare");
    w.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/gate/policy.d && exec \"$@\"")
        .arg(dir)
        .arg(c.get_program())
        .args(c.get_args());
    w.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            w.env(k, v);
        }
    }
    if let Some(d) = c.get_current_dir() {
        w.current_dir(d);
    }
    w
}

/// A started `gate serve`: the child, the address it said it listens on, and everything it has
/// written to stderr so far (collected by a thread).
pub struct Serving {
    pub child: std::process::Child,
    pub addr: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Spawns `c` (a `gate ... serve ...` command) and waits until it says where it listens.
pub fn spawn_server(mut c: Command) -> Serving {
    use std::io::{BufRead, BufReader};
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn gate serve");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().expect("piped stderr");
    let sink = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            // `https://` when the server was started with `--tls-cert`.
            if let Some(rest) = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1))
            {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(addr) => Serving {
            child,
            addr,
            stderr,
        },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gate serve did not say where it listens:\n{}",
                stderr.lock().unwrap()
            );
        }
    }
}

/// Starts `gate serve` with its files in `home` (policy, `server.db`, `server-audit.jsonl`,
/// kept across restarts) on `listen`; `c` is a `gate` command with the test's environment.
/// Returns the running server and the paths of its database and audit log.
pub fn serve_in(
    mut c: Command,
    home: &Path,
    policy_yaml: &str,
    listen: &str,
) -> (Serving, PathBuf, PathBuf) {
    let policy = home.join("server-policy.yaml");
    if !policy.exists() {
        std::fs::write(&policy, policy_yaml).unwrap();
    }
    let db = home.join("server.db");
    let audit = home.join("server-audit.jsonl");
    c.arg("--policy")
        .arg(&policy)
        .args(["serve", "--listen", listen, "--db"])
        .arg(&db)
        .arg("--audit-log")
        .arg(&audit);
    (spawn_server(c), db, audit)
}
