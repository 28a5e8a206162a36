//! `gate serve` figures of issue 4 ("Figures"), printed one line per figure with its target and
//! PASS/MISS. Plain `main` (harness = false); run with `cargo bench --bench server` (or
//! `bench/server.sh`). Every server is the real release binary on 127.0.0.1 with an ephemeral
//! port and a throw-away database, audit log and XDG directories; Drop guards stop every process
//! this bench starts.
//!
//! 1. Approval latency: `gate -- sh -c 'date +%s%N > MARKER'` waits on the server (long-poll);
//!    once its request is pending (and the client has had 150 ms to enter its long-poll),
//!    `gate approve --server URL ID` runs as a process. Latency = the marker's CLOCK_REALTIME
//!    timestamp − the wall-clock time at which `gate approve` returned. p50/p99/max over N.
//! 2. Long-pollers: N pending requests created through the API, then N concurrent
//!    `GET /v1/requests/{id}?wait=60s` on N connections; once all are sent and the server holds
//!    N connections, ~5 s later, the server's VmRSS and VmHWM. Then a few are approved one by one
//!    and their pollers must answer promptly while the rest stay pending.
//! 3. Throughput: create (alice) → approve (bob) → GET shows `approved` (alice), N sequences
//!    over keep-alive connections with W concurrent workers, on a fresh server. The figure is
//!    sequences per second (each is three HTTP calls). Also the server's CPU time per sequence,
//!    from /proc/PID/stat: a wall time far above it means the server waits on the disk (fsync).
//!
//! Knobs: GATE_BENCH_LAT_N (50), GATE_BENCH_POLLERS (1000), GATE_BENCH_SEQ (1500),
//! GATE_BENCH_WORKERS (32), GATE_BENCH_HOLD_SECS (5), GATE_BENCH_ONLY (a comma list of
//! `latency`, `pollers`, `throughput`; default all), GATE_BENCH_DIR (where the throw-away files
//! go; default the temp dir, `/dev/shm` shows what is left without fsync latency).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::net::TcpStream;

const GATE: &str = env!("CARGO_BIN_EXE_gate");

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// Nearest-rank percentile of a sorted slice.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The server's policy: `sh` (figure 1) and `deploy` (figures 2 and 3) need one approval from
/// the `sre` group; alice, the requester, is not in it.
const SERVER_POLICY: &str = r#"version: 1
defaults: { timeout: 10m }
groups:
  sre: [bob, carol]
rules:
  - name: bench-sh
    match: { program: sh }
    decision: approve
    approval: { approvers: [sre], timeout: 10m }
  - name: bench-deploy
    match: { program: deploy }
    decision: approve
    approval: { approvers: [sre], timeout: 10m }
"#;

fn client_policy(url: &str, key: &str) -> String {
    format!(
        r#"version: 1
backends:
  team: {{ kind: server, url: "{url}", key: "{key}" }}
defaults: {{ backend: team }}
rules:
  - name: bench-sh
    match: {{ program: sh }}
    decision: approve
    approval: {{ timeout: 120s }}
"#
    )
}

/// `gate` with a clean environment whose state, config and home live under `home`.
fn gate(home: &Path) -> Command {
    let mut c = Command::new(GATE);
    c.env_clear()
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home.join("home"))
        .env("GATE_LOG", home.join("audit.jsonl"))
        .env("GATE_SPOOL", home.join("spool"))
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("NO_COLOR", "1")
        .current_dir(home)
        .stdin(Stdio::null());
    c
}

/// A child killed (and reaped) on drop.
struct Proc(Option<Child>);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `gate serve`: SIGTERM on drop, SIGKILL after 5 s.
struct Server {
    child: Option<Child>,
    home: PathBuf,
    db: PathBuf,
    addr: String,
    url: String,
    pid: i32,
}

impl Server {
    fn start(home: &Path) -> Server {
        std::fs::create_dir_all(home).unwrap();
        let policy = home.join("server-policy.yaml");
        std::fs::write(&policy, SERVER_POLICY).unwrap();
        let db = home.join("server.db");
        let mut c = gate(home);
        c.arg("--policy")
            .arg(&policy)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .arg("--audit-log")
            .arg(home.join("server-audit.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn gate serve");
        let pid = child.id() as i32;
        let pipe = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = home.join("server-stderr.txt");
        std::thread::spawn(move || {
            let mut keep = String::new();
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                keep.push_str(&line);
                keep.push('\n');
                let _ = std::fs::write(&log, &keep);
            }
        });
        let mut server = Server {
            child: Some(child),
            home: home.to_owned(),
            db,
            addr: String::new(),
            url: String::new(),
            pid,
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("gate serve did not say where it listens");
        server.url = format!("http://{addr}");
        server.addr = addr;
        server
    }

    fn token(&self, principal: &str) -> String {
        let out = gate(&self.home)
            .args(["serve", "token", "issue", "--db"])
            .arg(&self.db)
            .args(["--principal", principal])
            .output()
            .expect("gate serve token issue");
        assert!(out.status.success(), "token issue failed: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The key the server signs its decisions with (`gate serve key`), for the client to pin.
    fn key(&self) -> String {
        let out = gate(&self.home)
            .arg("--policy")
            .arg(self.home.join("server-policy.yaml"))
            .args(["serve", "key", "--db"])
            .arg(&self.db)
            .output()
            .expect("gate serve key");
        assert!(out.status.success(), "gate serve key failed: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// (VmRSS, VmHWM) in kB.
    fn rss_kb(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// utime + stime of the server process (all threads), in seconds.
    fn cpu_secs(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        ticks / 100.0 // USER_HZ is 100 on Linux
    }

    /// Established TCP connections on the server's port, server side (/proc/net/tcp).
    fn established(&self) -> usize {
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        let local = format!(":{port:04X}");
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&local) && f[3] == "01"
            })
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
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

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client on tokio's TcpStream (readiness + try_read/try_write:
// the crate's tokio has no io-util feature). Light enough for 1,000 connections.

struct Http {
    s: TcpStream,
    buf: Vec<u8>,
    host: String,
}

struct Resp {
    status: u16,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Http {
    async fn connect(addr: &str) -> std::io::Result<Http> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Http {
            s,
            buf: Vec::with_capacity(4096),
            host: addr.to_owned(),
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> std::io::Result<()> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n",
            self.host
        );
        match body {
            Some(b) => req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => req.push_str("\r\n"),
        }
        let mut out = req.as_bytes();
        while !out.is_empty() {
            self.s.writable().await?;
            match self.s.try_write(out) {
                Ok(n) => out = &out[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut tmp = [0u8; 8192];
        loop {
            self.s.readable().await?;
            match self.s.try_read(&mut tmp) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    async fn recv(&mut self) -> std::io::Result<Resp> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok(Resp { status, body })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> std::io::Result<Resp> {
        self.send(method, path, token, body).await?;
        self.recv().await
    }
}

/// A create body for `argv` with the right digest.
fn create_body(argv: &[String]) -> String {
    let env: BTreeMap<String, String> = BTreeMap::new();
    let digest = gate::request::digest(argv, "/srv", &env, &[]);
    json!({ "argv": argv, "cwd": "/srv", "digest": digest, "reason": "bench", "timeout_secs": 600 })
        .to_string()
}

async fn create(c: &mut Http, token: &str, argv: &[String]) -> String {
    let r = c
        .call("POST", "/v1/requests", token, Some(&create_body(argv)))
        .await
        .expect("POST /v1/requests");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

// ---------------------------------------------------------------------------------------------
// Figure 1: approval latency through the binaries.

fn latency(rt: &tokio::runtime::Runtime, srv: &Server, alice: &str, bob: &str, n: usize) {
    let home = srv.home.join("client");
    std::fs::create_dir_all(&home).unwrap();
    let policy = home.join("client-policy.yaml");
    std::fs::write(&policy, client_policy(&srv.url, &srv.key())).unwrap();
    let mut conn = rt.block_on(Http::connect(&srv.addr)).unwrap();
    let mut lat_ms = Vec::with_capacity(n);
    let mut approve_ms = Vec::with_capacity(n);
    let warm = 2;
    for i in 0..n + warm {
        let marker = home.join(format!("marker-{i}"));
        let script = format!("date +%s%N > {}", marker.display());
        let stderr = std::fs::File::create(home.join("client-stderr.txt")).unwrap();
        let mut client = Proc(Some(
            gate(&home)
                .env("GATE_TOKEN", alice)
                .arg("--policy")
                .arg(&policy)
                .args(["--", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn gate -- sh"),
        ));
        // Its request, once pending.
        let start = Instant::now();
        let id = loop {
            let r = rt
                .block_on(conn.call("GET", "/v1/requests?status=pending", alice, None))
                .unwrap();
            let found = r.json()["requests"].as_array().and_then(|a| {
                a.iter()
                    .find(|q| q["argv"][2].as_str() == Some(script.as_str()))
                    .and_then(|q| q["id"].as_str().map(str::to_owned))
            });
            if let Some(id) = found {
                break id;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no pending request for {script}; client stderr:\n{}",
                std::fs::read_to_string(home.join("client-stderr.txt")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // An approver takes seconds; give the client time to be inside its long-poll.
        std::thread::sleep(Duration::from_millis(150));
        let t0 = Instant::now();
        let out = gate(&home)
            .env("GATE_TOKEN", bob)
            .args(["approve", "--server", &srv.url, &id])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("gate approve");
        let returned = now_ns();
        let took = t0.elapsed();
        assert!(out.status.success(), "gate approve failed: {out:?}");
        let child = client.0.as_mut().unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "client did not end");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            status.success(),
            "client failed: {status}; stderr:\n{}",
            std::fs::read_to_string(home.join("client-stderr.txt")).unwrap_or_default()
        );
        let stamp: i128 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if i >= warm {
            lat_ms.push((stamp - returned) as f64 / 1e6);
            approve_ms.push(took.as_secs_f64() * 1e3);
        }
    }
    lat_ms.sort_by(f64::total_cmp);
    approve_ms.sort_by(f64::total_cmp);
    let (p50, p99, max) = (pct(&lat_ms, 50.0), pct(&lat_ms, 99.0), lat_ms[n - 1]);
    println!(
        "  approval latency (gate approve returns -> wrapped command starts), N={n}: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms, min {:.1} ms   target p50 <= 50 ms, p99 <= 250 ms   {}",
        lat_ms[0],
        verdict(p50 <= 50.0 && p99 <= 250.0)
    );
    println!(
        "    (for reference: the `gate approve` process itself, spawn to exit: p50 {:.1} ms, p99 {:.1} ms)",
        pct(&approve_ms, 50.0),
        pct(&approve_ms, 99.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Figure 2: N long-pollers.

fn long_pollers(
    rt: &tokio::runtime::Runtime,
    srv: &Server,
    alice: &str,
    bob: &str,
    n: usize,
    hold: Duration,
) {
    let (rss0, _) = srv.rss_kb();
    // N pending requests, created by 8 connections in parallel.
    let t = Instant::now();
    let ids: Vec<String> = rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (addr, alice, next) = (srv.addr.clone(), alice.to_owned(), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                let mut c = Http::connect(&addr).await.unwrap();
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return out;
                    }
                    let argv = vec!["deploy".to_owned(), format!("poll-{i}")];
                    out.push((i, create(&mut c, &alice, &argv).await));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        all.into_iter().map(|(_, id)| id).collect()
    });
    let created_in = t.elapsed();
    let (rss1, _) = srv.rss_kb();

    // N connections, each with one long-poll in flight.
    let sent = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant, String)>();
    let pollers: Vec<tokio::task::JoinHandle<()>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (addr, alice, id, sent, tx) = (
                srv.addr.clone(),
                alice.to_owned(),
                id.clone(),
                Arc::clone(&sent),
                tx.clone(),
            );
            rt.spawn(async move {
                let mut c = Http::connect(&addr).await.expect("connect a long-poller");
                c.send("GET", &format!("/v1/requests/{id}?wait=60s"), &alice, None)
                    .await
                    .expect("send a long-poll");
                sent.fetch_add(1, Ordering::Relaxed);
                let r = c.recv().await;
                let status = match r {
                    Ok(r) => r.json()["status"].as_str().unwrap_or("?").to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                let _ = tx.send((i, Instant::now(), status));
            })
        })
        .collect();
    let t = Instant::now();
    while sent.load(Ordering::Relaxed) < n || srv.established() < n {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "only {} of {n} long-polls sent, server holds {} connections",
            sent.load(Ordering::Relaxed),
            srv.established()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let connected_in = t.elapsed();
    std::thread::sleep(hold);
    let held = srv.established();
    let (rss, hwm) = srv.rss_kb();
    let early = rx.try_recv().ok();
    assert!(early.is_none(), "a long-poll answered early: {early:?}");

    // Approve a few, one by one; their pollers must answer promptly, nobody else.
    let mut answer_ms = Vec::new();
    let cpu0 = srv.cpu_secs();
    rt.block_on(async {
        let mut c = Http::connect(&srv.addr).await.unwrap();
        for k in 0..5 {
            let i = k * (n / 5);
            let r = c
                .call(
                    "POST",
                    &format!("/v1/requests/{}/approve", ids[i]),
                    bob,
                    None,
                )
                .await
                .unwrap();
            let approved_at = Instant::now();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let (j, at, status) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the approved request's long-poll did not answer within 10 s")
                .unwrap();
            assert_eq!((j, status.as_str()), (i, "approved"));
            answer_ms.push(at.saturating_duration_since(approved_at).as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let cpu_per_approval = (srv.cpu_secs() - cpu0) / 5.0 * 1e3;
    let stray = rx.try_recv().ok();
    assert!(
        stray.is_none(),
        "an unapproved long-poll answered: {stray:?}"
    );
    for p in &pollers {
        p.abort();
    }
    answer_ms.sort_by(f64::total_cmp);
    println!(
        "  {n} concurrent long-polls (wait=60s) held {:.1} s ({held} connections): server VmRSS {:.1} MB, VmHWM {:.1} MB   target RSS <= 150 MB   {}",
        hold.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        verdict(held >= n && rss <= 150 * 1024 && hwm <= 150 * 1024)
    );
    println!(
        "    (RSS {:.1} MB idle, {:.1} MB after creating {n} requests in {:.1} s; all {n} sent and held within {:.2} s; 5 approvals answered by their pollers after {:.1}..{:.1} ms, server CPU {:.1} ms per approval with {n} pollers waiting)",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        created_in.as_secs_f64(),
        connected_in.as_secs_f64(),
        answer_ms[0],
        answer_ms[answer_ms.len() - 1],
        cpu_per_approval,
    );
}

// ---------------------------------------------------------------------------------------------
// Figure 3: create -> approve -> complete throughput.

fn throughput(
    rt: &tokio::runtime::Runtime,
    srv: &Server,
    alice: &str,
    bob: &str,
    n: usize,
    workers: usize,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = srv.cpu_secs();
    let t = Instant::now();
    let per_worker: Vec<usize> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (addr, alice, bob, next) = (
                srv.addr.clone(),
                alice.to_owned(),
                bob.to_owned(),
                Arc::clone(&next),
            );
            tasks.push(tokio::spawn(async move {
                let mut ca = Http::connect(&addr).await.unwrap();
                let mut cb = Http::connect(&addr).await.unwrap();
                let mut done = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return done;
                    }
                    let argv = vec!["deploy".to_owned(), format!("seq-{i}")];
                    let id = create(&mut ca, &alice, &argv).await;
                    let r = cb
                        .call("POST", &format!("/v1/requests/{id}/approve"), &bob, None)
                        .await
                        .unwrap();
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    let r = ca
                        .call("GET", &format!("/v1/requests/{id}"), &alice, None)
                        .await
                        .unwrap();
                    assert_eq!(r.json()["status"], "approved");
                    done += 1;
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let wall = t.elapsed().as_secs_f64();
    let cpu = srv.cpu_secs() - cpu0;
    let done: usize = per_worker.iter().sum();
    assert_eq!(done, n);
    let rate = n as f64 / wall;
    println!(
        "  create -> approve -> complete, N={n}, {workers} workers, SQLite: {rate:.0} sequences/s ({:.0} HTTP calls/s) in {wall:.2} s   target >= 300/s   {}",
        rate * 3.0,
        verdict(rate >= 300.0)
    );
    println!(
        "    (server CPU {:.2} ms per sequence, {:.0}% of one core; wall per sequence per worker {:.1} ms)",
        cpu / n as f64 * 1e3,
        cpu / wall * 100.0,
        wall / n as f64 * workers as f64 * 1e3
    );
}

fn main() {
    let lat_n = knob("GATE_BENCH_LAT_N", 50);
    let pollers = knob("GATE_BENCH_POLLERS", 1000);
    let seq = knob("GATE_BENCH_SEQ", 1500);
    let workers = knob("GATE_BENCH_WORKERS", 32);
    let hold = Duration::from_secs(knob("GATE_BENCH_HOLD_SECS", 5) as u64);
    let fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .unwrap_or(0);
    println!("gate serve figures (issue 4)");
    println!(
        "  {} CPUs, load average at start {}; open-file limit {fds}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    assert!(
        fds >= pollers + 64,
        "the open-file limit ({fds}) is too low for {pollers} long-pollers: run bench/server.sh (ulimit -n)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // GATE_BENCH_DIR=/dev/shm puts databases and audit logs on tmpfs (fsync returns at once):
    // a diagnostic of how much of a figure is waiting on the disk.
    let dir = match std::env::var_os("GATE_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!("  files under {}", dir.path().display());

    let only = std::env::var("GATE_BENCH_ONLY").unwrap_or_default();
    let run = |figure: &str| only.is_empty() || only.split(',').any(|f| f == figure);
    if run("latency") || run("pollers") {
        let srv = Server::start(&dir.path().join("one"));
        let (alice, bob) = (srv.token("alice"), srv.token("bob"));
        if run("latency") {
            latency(&rt, &srv, &alice, &bob, lat_n);
        }
        if run("pollers") {
            long_pollers(&rt, &srv, &alice, &bob, pollers, hold);
        }
    }
    if run("throughput") {
        let srv = Server::start(&dir.path().join("two"));
        let (alice, bob) = (srv.token("alice"), srv.token("bob"));
        eprintln!("  (throughput server pid {})", srv.pid);
        throughput(&rt, &srv, &alice, &bob, seq, workers);
    }
    println!("  load average at end {}", loadavg());
}
