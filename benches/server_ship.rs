//! Shipping figures (issue 5): (a) what delivering to a `gate serve` on loopback adds to a run
//! (median of `gate -- /bin/true` with and without a server sink, interleaved); (b) server
//! ingest throughput (a large log POSTed in batches of 500); (c) 50 runs with the server down,
//! then one `gate log push`: everything delivered, in order, no duplicate.
//!
//! Run: `cargo bench --bench server_ship` (GATE_BENCH_RUNS, GATE_BENCH_RECORDS to change sizes).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use gate::audit::{AuditLog, Body, ResultInfo};

const BIN: &str = env!("CARGO_BIN_EXE_gate");

fn gate(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home.join("home"))
        .env("GATE_LOG", home.join("audit.jsonl"))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .current_dir(home)
        .stdin(Stdio::null());
    c
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(home: &Path, listen: &str) -> Server {
        std::fs::write(home.join("server-policy.yaml"), "version: 1\n").unwrap();
        let mut child = gate(home)
            .arg("--policy")
            .arg(home.join("server-policy.yaml"))
            .args(["serve", "--listen", listen, "--db"])
            .arg(home.join("server.db"))
            .arg("--audit-log")
            .arg(home.join("server-audit.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gate serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("gate serve said nothing").unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(home: &Path) -> String {
    let out = gate(home)
        .args(["serve", "token", "issue", "--db"])
        .arg(home.join("server.db"))
        .args(["--principal", "bench"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn client(dir: &Path, url: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let sinks = match url {
        Some(u) => format!("audit:\n  sinks:\n    - {{ kind: server, url: \"{u}\" }}\n"),
        None => String::new(),
    };
    std::fs::write(dir.join("policy.yaml"), format!("version: 1\n{sinks}")).unwrap();
    dir.to_owned()
}

fn gate_run(home: &Path, tok: &str, args: &[&str]) -> (bool, String, Duration) {
    let t = Instant::now();
    let out = gate(home)
        .env("GATE_TOKEN", tok)
        .arg("--policy")
        .arg(home.join("policy.yaml"))
        .args(args)
        .output()
        .unwrap();
    let took = t.elapsed();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        took,
    )
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn server_lines(url: &str, tok: &str, log_id: &str) -> Vec<String> {
    reqwest::blocking::Client::new()
        .get(format!(
            "{url}/v1/logs/{log_id}/records?from=0&limit=100000"
        ))
        .bearer_auth(tok)
        .send()
        .unwrap()
        .text()
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn log_id(lines: &[String]) -> String {
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    v["log_id"].as_str().unwrap().to_owned()
}

fn main() {
    let n_runs: usize = std::env::var("GATE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let n_records: u64 = std::env::var("GATE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    std::fs::create_dir_all(&sdir).unwrap();
    let srv = Server::start(&sdir, "127.0.0.1:0");
    let tok = token(&sdir);

    // (a) What shipping adds to a run.
    let with = client(&dir.path().join("with"), Some(&srv.url));
    let without = client(&dir.path().join("without"), None);
    for h in [&with, &without] {
        for _ in 0..3 {
            assert!(gate_run(h, &tok, &["--", "/bin/true"]).0);
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..n_runs {
        let (ok, out, t) = gate_run(&with, &tok, &["--", "/bin/true"]);
        assert!(ok && !out.contains("not yet delivered"), "{out}");
        a.push(t);
        let (ok, out, t) = gate_run(&without, &tok, &["--", "/bin/true"]);
        assert!(ok, "{out}");
        b.push(t);
    }
    let (ma, mb) = (median(&mut a), median(&mut b));
    let added = ma.saturating_sub(mb);
    let shipped = lines(&with.join("audit.jsonl"));
    assert_eq!(
        server_lines(&srv.url, &tok, &log_id(&shipped)),
        shipped,
        "the server's copy"
    );
    println!(
        "(a) shipping adds {:.2} ms p50 to a run (with sink {:.2} ms, without {:.2} ms; p90 {:.2} vs {:.2} ms; N={n_runs} each)  target <= 5 ms  {}",
        added.as_secs_f64() * 1e3,
        ma.as_secs_f64() * 1e3,
        mb.as_secs_f64() * 1e3,
        a[a.len() * 9 / 10].as_secs_f64() * 1e3,
        b[b.len() * 9 / 10].as_secs_f64() * 1e3,
        verdict(added <= Duration::from_millis(5))
    );

    // (b) Ingest throughput: a large log built in-process, POSTed 500 records at a time with
    // its signed checkpoint, as the sink does.
    let big = dir.path().join("big.jsonl");
    let mut log = AuditLog::new(&big).with_key(dir.path().join("big.key"));
    log.sync = false;
    let mut made = 1;
    while made < n_records {
        let k = (n_records - made).min(5000);
        log.append(
            (0..k)
                .map(|i| Body::Result {
                    request_id: format!("01a21800-0000-7000-8000-{:012x}", made + i),
                    result: ResultInfo {
                        exit_code: Some(0),
                        signal: None,
                        duration_ms: (made + i) % 1000,
                        error: None,
                    },
                })
                .collect(),
        )
        .unwrap();
        made += k;
    }
    let big_lines = lines(&big);
    let id = log_id(&big_lines);
    let cp = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(format!("{}.checkpoint", big.display())).unwrap());
    let http = reqwest::blocking::Client::new();
    let t = Instant::now();
    for chunk in big_lines.chunks(500) {
        let mut body = String::with_capacity(chunk.len() * 400);
        for l in chunk {
            body.push_str(l);
            body.push('\n');
        }
        let r = http
            .post(format!("{}/v1/logs/{id}/records", srv.url))
            .bearer_auth(&tok)
            .header("content-type", "application/x-ndjson")
            .header("Gate-Checkpoint", &cp)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    }
    let took = t.elapsed();
    let rate = big_lines.len() as f64 / took.as_secs_f64();
    let held = server_lines(&srv.url, &tok, &id).len();
    assert_eq!(held, big_lines.len());
    println!(
        "(b) server ingest {rate:.0} records/s ({} records in batches of 500, {took:.2?})  target >= 5000/s  {}",
        big_lines.len(),
        verdict(rate >= 5000.0)
    );
    drop(srv);

    // (c) 50 runs with the server down, then one push.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let down = client(&dir.path().join("down"), Some(&format!("http://{listen}")));
    let t = Instant::now();
    let mut warned = 0;
    for _ in 0..50 {
        let (ok, out, _) = gate_run(&down, &tok, &["--", "/bin/true"]);
        assert!(ok, "{out}");
        warned += out.contains("gate log push") as usize;
    }
    let runs_took = t.elapsed();
    let srv = Server::start(&sdir, &listen);
    let t = Instant::now();
    let (ok, out, _) = gate_run(&down, &tok, &["log", "push", "--json"]);
    let push_took = t.elapsed();
    let rep: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or("")).unwrap();
    let local = lines(&down.join("audit.jsonl"));
    let copy = server_lines(&srv.url, &tok, &log_id(&local));
    let in_order = copy.iter().enumerate().all(|(i, l)| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"] == serde_json::json!(i)
    });
    let pass = ok && copy == local && in_order && rep["delivered"] == local.len();
    println!(
        "(c) 50 runs with the server down ({warned} warned; {runs_took:.1?}, {:.2} s per run), then one push: {} delivered of {} local, server holds {} (in order: {in_order}, equal to local: {}) in {push_took:.2?}  target all, in order, no duplicate  {}",
        runs_took.as_secs_f64() / 50.0,
        rep["delivered"],
        local.len(),
        copy.len(),
        copy == local,
        verdict(pass)
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
