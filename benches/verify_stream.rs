//! `gate log verify` on a large log (issue 9 §7): the real binary, whole-process, on a log of
//! ~560-byte records (2 GB by default). Prints records/s, MB/s and gate's peak RSS (GNU time's
//! %M) against the targets (>= 250 MB/s, <= 64 MB RSS). The log is written with the library's
//! record writer (no fsync) into a temp directory that is removed afterwards.
//!
//! Run: `cargo bench --bench verify_stream`. `GATE_BENCH_VERIFY_MB` sets the log size in MB
//! (default 2000), `GATE_BENCH_DIR` where the temp directory goes (default /tmp), and
//! `GATE_BENCH_RUNS` how many timed runs (default 3; the median is reported), `GATE_BENCH_BIN`
//! another gate binary to measure (e.g. a copy of main's build, for a before/after),
//! `GATE_BENCH_LOG` a log path to reuse across runs (built there when missing, not removed),
//! `GATE_BENCH_RECORDS` the log's size as a record count instead (issue 9's throughput figure
//! is for 500,000 records), `GATE_BENCH_THREADS` gate's `--threads` (default: all cores; `1`
//! measures the single-thread path).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gate::audit::record::EventInfo;
use gate::audit::{AuditLog, Body};

/// A ~560-byte record: a server-style event carrying a comment.
fn body(i: u64) -> Body {
    Body::Event {
        request_id: format!("01a21800-0000-7000-8000-{i:012x}"),
        request: None,
        event: EventInfo {
            kind: "approval".into(),
            principal: Some(format!("approver{}", i % 17)),
            status: ["pending", "approved", "denied"][(i % 3) as usize].into(),
            comment: Some(format!(
                "{i:08} looked at the diff and the ticket; {}",
                "the change window is open and the rollback plan is attached. ".repeat(2)
            )),
            needed: None,
            voids: None,
        },
    }
}

/// Writes records until the log holds `target_bytes`, or `target_records` records if given.
fn build_log(path: &Path, key: &Path, target_bytes: u64, target_records: Option<u64>) -> u64 {
    let mut log = AuditLog::new(path).with_key(key);
    log.sync = false;
    let mut made = 1; // genesis
    loop {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let done = match target_records {
            Some(n) => made >= n,
            None => size >= target_bytes,
        };
        if done {
            return made;
        }
        let batch = target_records.map_or(20_000, |n| (n - made).min(20_000));
        log.append((0..batch).map(|i| body(made + i)).collect())
            .expect("append");
        made += batch;
    }
}

/// One run of `gate log verify --json LOG` under GNU time: its exit status, stdout, peak RSS
/// (KiB) and CPU time. GNU time forks a small process to exec gate, so the peak is gate's own
/// (a child spawned straight from this bench would inherit this process's peak at exec).
fn verify_once(
    bin: &str,
    log: &Path,
    home: &Path,
    threads: Option<&str>,
) -> (std::process::Output, u64, Duration) {
    let usage = home.join("usage");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o"])
        .arg(&usage)
        .arg(bin)
        .args(["log", "verify", "--json"])
        .args(threads.map(|n| ["--threads", n]).into_iter().flatten())
        .arg(log)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time gate log verify (GNU time is needed)");
    let text = std::fs::read_to_string(&usage).expect("GNU time's report");
    let f: Vec<&str> = text.split_whitespace().collect();
    let (Some(rss), Some(user), Some(sys)) = (f.first(), f.get(1), f.get(2)) else {
        panic!("unexpected GNU time output: {text}");
    };
    let secs = |s: &str| Duration::from_secs_f64(s.parse().expect("a time"));
    (
        out,
        rss.parse().expect("a peak RSS"),
        secs(user) + secs(sys),
    )
}

fn main() {
    let mb_target: u64 = std::env::var("GATE_BENCH_VERIFY_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let runs: usize = std::env::var("GATE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let records: Option<u64> = std::env::var("GATE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let threads = std::env::var("GATE_BENCH_THREADS")
        .ok()
        .filter(|s| !s.is_empty());
    let dir =
        tempfile::tempdir_in(std::env::var("GATE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    // GATE_BENCH_LOG: a log to keep between runs (built there if missing, never removed).
    let kept = std::env::var_os("GATE_BENCH_LOG").map(std::path::PathBuf::from);
    let log = kept
        .clone()
        .unwrap_or_else(|| dir.path().join("audit.jsonl"));
    let key = log.with_extension("key");
    let t = Instant::now();
    let n = if kept.is_some() && log.exists() {
        use std::io::BufRead;
        std::io::BufReader::new(std::fs::File::open(&log).unwrap())
            .split(b'\n')
            .count() as u64
    } else {
        build_log(&log, &key, mb_target * 1_000_000, records)
    };
    let bytes = std::fs::metadata(&log).unwrap().len();
    let mb = bytes as f64 / 1e6;
    println!(
        "built a {n}-record log ({mb:.1} MB, {:.0} bytes/record) in {:.1?}",
        bytes as f64 / n as f64,
        t.elapsed()
    );

    // GATE_BENCH_BIN: another build to measure (a copy of main's, for the "before" figure).
    let bin = std::env::var("GATE_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gate").into());
    println!(
        "binary: {bin}, threads: {}",
        threads.as_deref().unwrap_or("all cores")
    );
    let mut times: Vec<Duration> = Vec::new();
    let (mut peak_kib, mut cpu_total) = (0u64, Duration::ZERO);
    for _ in 0..runs {
        let t = Instant::now();
        let (out, rss, cpu) = verify_once(&bin, &log, dir.path(), threads.as_deref());
        peak_kib = peak_kib.max(rss);
        cpu_total += cpu;
        times.push(t.elapsed());
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        assert!(
            out.status.code() == Some(0) && report["status"] == "intact",
            "gate log verify did not report intact: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(report["records"], n, "record count");
    }
    times.sort();
    let m = times[times.len() / 2];
    let rss_mb = peak_kib as f64 / 1024.0;
    let cpu = cpu_total / runs as u32;
    let mbps = mb / m.as_secs_f64();
    let pass = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "gate log verify (whole process), median of {runs} = {m:.2?}: {:.0} records/s, {mbps:.0} MB/s [target >= 250 MB/s: {}]",
        n as f64 / m.as_secs_f64(),
        pass(mbps >= 250.0)
    );
    // Other work on the machine stretches the wall clock; the CPU time shows what verify needs.
    println!(
        "  CPU (user + sys) per run {cpu:.2?} = {:.0} MB per CPU-second; load average before: {}",
        mb / cpu.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "gate log verify peak RSS: {rss_mb:.1} MB [target <= 64 MB: {}]",
        pass(rss_mb <= 64.0)
    );
}
