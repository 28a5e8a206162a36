//! A throw-away PostgreSQL cluster for one test: `initdb` into a temp dir (as the unprivileged
//! `postgres` user: PostgreSQL refuses to run as root), its own free port on 127.0.0.1,
//! password (SCRAM) authentication over TCP, and `pg_ctl stop` when dropped — also when the test
//! fails. `.ci/deps/postgresql.sh` installs Debian's `postgresql`; a missing one fails the test
//! with a message saying so, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The superuser's password in every throw-away cluster.
pub const PASSWORD: &str = "pg-test-secret-7f3a";

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    stopped: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with initdb and pg_ctl.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's initdb and pg_ctl are missing (looked in /usr/lib/postgresql/*/bin): \
             run `bash .ci/deps/postgresql.sh` as root (it installs Debian's postgresql)"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `program` run as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
        "--",
    ])
    .arg(program)
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .env("LC_ALL", "C")
    .stdin(Stdio::null());
    c
}

#[track_caller]
fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Makes and starts a cluster.
    pub fn start() -> Cluster {
        let bin = bin_dir();
        assert!(
            Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success()),
            "no `postgres` user: run `bash .ci/deps/postgresql.sh` as root (Debian's postgresql makes it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("gate-pg-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("pw"), PASSWORD).unwrap();
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(dir.path());
                c
            },
            "chown the cluster's directory",
        );
        let mut init = as_postgres(&bin.join("initdb"));
        init.arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()));
        run(init, "initdb");
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            stopped: true,
        };
        cluster.start_again();
        cluster
    }

    /// Starts the (stopped) cluster on a fresh port.
    pub fn start_again(&mut self) {
        // A port can be taken between finding it and binding it: try a few.
        for _ in 0..5 {
            self.port = free_port();
            let mut c = as_postgres(&self.bin.join("pg_ctl"));
            c.arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                    self.port,
                    self.dir.path().display()
                ))
                .args(["-w", "-t", "60", "start"]);
            if c.output().is_ok_and(|o| o.status.success()) {
                self.stopped = false;
                return;
            }
        }
        panic!(
            "pg_ctl start failed:\n{}",
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// Stops the cluster now (`-m immediate`: like a crash or a pulled cable).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        let mut c = as_postgres(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = c.output();
        self.stopped = true;
    }

    /// The URL of database `db` as the superuser, with the password.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// A client on database `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"))
    }

    /// Makes database `name`; its URL.
    pub fn database(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(name)
    }

    /// The server's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
