//! Audit-log figures (issue 3): `gate log verify` throughput on a 1,000,000-record log with one
//! and with all cores, next to plain SHA-256 over the same bytes (the limit); append latency
//! (lock + write + fsync + checkpoint) p50/p99; and 8 concurrent appender processes.
//!
//! Run: `cargo bench --bench audit` (GATE_BENCH_RECORDS to change the log size).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gate::audit::record::EventInfo;
use gate::audit::verify::{Options, verify};
use gate::audit::{AuditLog, Body};
use sha2::{Digest, Sha256};

/// A filler record: a server-style event (a `result` needs its `decision` before it, or
/// verify reports it as an orphan).
fn result_body(i: u64) -> Body {
    Body::Event {
        request_id: format!("01a21800-0000-7000-8000-{i:012x}"),
        request: None,
        event: EventInfo {
            kind: "expiry".into(),
            principal: None,
            status: ["expired", "denied", "approved"][(i % 3) as usize].into(),
            comment: None,
            needed: None,
            voids: None,
        },
    }
}

fn build_log(path: &Path, key: &Path, n: u64) {
    let mut log = AuditLog::new(path).with_key(key);
    log.sync = false;
    let mut made = 1; // genesis
    while made < n {
        let batch = (n - made).min(5000);
        log.append((0..batch).map(|i| result_body(made + i)).collect())
            .expect("append");
        made += batch;
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::var("GATE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir =
        tempfile::tempdir_in(std::env::var("GATE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let log = dir.path().join("audit.jsonl");
    let key = dir.path().join("signing.key");
    let t = Instant::now();
    build_log(&log, &key, n);
    let bytes = std::fs::read(&log).unwrap();
    println!(
        "built a {n}-record log ({:.1} MB) in {:.1?}",
        bytes.len() as f64 / 1e6,
        t.elapsed()
    );

    // The limit: SHA-256 over the same bytes, one pass.
    let t = Instant::now();
    let mut h = Sha256::new();
    h.update(&bytes);
    let _ = h.finalize();
    let sha = t.elapsed();
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "plain SHA-256 over the file: {:.0} MB/s ({:.0} records/s equivalent)",
        mb / sha.as_secs_f64(),
        n as f64 / sha.as_secs_f64()
    );

    for threads in [1usize, 0] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let r = verify(
                &log,
                &Options {
                    key: None,
                    checkpoint: None,
                    threads,
                },
            )
            .expect("verify");
            times.push(t.elapsed());
            assert_eq!(r.status, "intact", "{:?}", r.problems.first());
            assert_eq!(r.records, n);
        }
        let m = median(&mut times);
        let rps = n as f64 / m.as_secs_f64();
        let label = if threads == 1 {
            "1 thread "
        } else {
            "all cores"
        };
        let verdict = if threads == 1 {
            if rps >= 400_000.0 { "PASS" } else { "MISS" }
        } else {
            "-"
        };
        println!(
            "verify ({label}): {:.0} records/s, {:.0} MB/s, median of 3 = {m:.2?}  [target >= 400,000 records/s single-threaded: {verdict}]",
            rps,
            mb / m.as_secs_f64()
        );
    }

    // Append latency: lock + read tail + write + fsync + checkpoint (sign, write, fsync, rename, fsync dir).
    let small = dir.path().join("small.jsonl");
    let log2 = AuditLog::new(&small).with_key(&key);
    log2.append(vec![result_body(0)]).unwrap();
    let mut lat = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        log2.append(vec![result_body(i)]).unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let p50 = lat[lat.len() / 2];
    let p99 = lat[lat.len() * 99 / 100];
    println!(
        "append (with fsync and signed checkpoint), 500 appends: p50 {p50:.2?} [target <= 2 ms: {}], p99 {p99:.2?} [target <= 10 ms: {}]",
        if p50 <= Duration::from_millis(2) {
            "PASS"
        } else {
            "MISS"
        },
        if p99 <= Duration::from_millis(10) {
            "PASS"
        } else {
            "MISS"
        }
    );

    // 8 concurrent appenders, each with its own open file description (so the exclusive lock
    // is contended exactly as between processes), each appending one record at a time.
    let conc = dir.path().join("concurrent.jsonl");
    AuditLog::new(&conc)
        .with_key(&key)
        .append(vec![result_body(0)])
        .unwrap();
    let per = 100;
    let t = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let conc = conc.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                let log = AuditLog::new(&conc).with_key(&key);
                for i in 0..per {
                    log.append(vec![result_body(w * 1000 + i)]).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let took = t.elapsed();
    let n_app = 8 * per;
    let r = verify(
        &conc,
        &Options {
            key: None,
            checkpoint: None,
            threads: 0,
        },
    )
    .unwrap();
    assert_eq!(r.status, "intact");
    assert_eq!(r.records, n_app + 2);
    let aps = n_app as f64 / took.as_secs_f64();
    println!(
        "8 concurrent appenders (lock + write + fsync + signed checkpoint each): {n_app} appends in {took:.2?} = {aps:.0} appends/s [target >= 300: {}], log verifies intact",
        if aps >= 300.0 { "PASS" } else { "MISS" }
    );

    // For comparison: 8 concurrent processes each running `gate -- true` (2 appends per run,
    // plus process start, policy load and the child).
    let bin = env!("CARGO_BIN_EXE_gate");
    let shared = dir.path().join("shared.jsonl");
    let runs_each = 40;
    let t = Instant::now();
    let children: Vec<_> = (0..8)
        .map(|_| {
            let shared = shared.clone();
            let state = dir.path().join("state");
            std::thread::spawn(move || {
                for _ in 0..runs_each {
                    let ok = Command::new(bin)
                        .args(["--", "true"])
                        .env_clear()
                        .env("PATH", "/usr/bin:/bin")
                        .env("GATE_LOG", &shared)
                        .env("XDG_STATE_HOME", &state)
                        .env("XDG_CONFIG_HOME", &state)
                        .status()
                        .unwrap()
                        .success();
                    assert!(ok);
                }
            })
        })
        .collect();
    for c in children {
        c.join().unwrap();
    }
    let took = t.elapsed();
    let appends = 8 * runs_each * 2;
    let r = verify(
        &shared,
        &Options {
            key: None,
            checkpoint: None,
            threads: 0,
        },
    )
    .unwrap();
    assert_eq!(r.status, "intact");
    assert_eq!(r.records, appends as u64 + 1);
    let aps = appends as f64 / took.as_secs_f64();
    println!(
        "8 concurrent `gate -- true` processes: {appends} appends in {took:.2?} = {aps:.0} appends/s (whole runs; for comparison)"
    );
}
