//! `gate log verify` streams the log (issue 9 §7): memory is bounded by batches of lines and a
//! window of recent record hashes, the older hashes spilled to a temporary file. These tests
//! pin that checks reaching across batches and past the in-memory window still see what they
//! did when the whole file was read: a record duplicated from long ago, the checkpoint's head
//! far back in the log, a torn tail after many batches, runs left without results.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::Gate;
use common::jcs::{jcs, record_hash};
use gate::audit::record::EventInfo;
use gate::audit::{AuditLog, Body};
use serde_json::Value;

/// More records than the verifier keeps hashes for in memory (65,536), over several batches.
const N: u64 = 70_000;

fn event(i: u64) -> Body {
    Body::Event {
        request_id: format!("01a21800-0000-7000-8000-{i:012x}"),
        request: None,
        event: EventInfo {
            kind: "approval".into(),
            principal: Some("ann".into()),
            status: "approved".into(),
            comment: Some(format!("{i:08} {}", "x".repeat(20))),
            needed: None,
            voids: None,
        },
    }
}

/// Writes a log of `N` records (genesis included) and returns its path and a copy of the
/// checkpoint as it stood after `early` records.
fn big_log(g: &Gate, early: u64) -> (PathBuf, PathBuf) {
    let path = g.path("audit.jsonl");
    let mut log = AuditLog::new(&path).with_key(g.path("signing.key"));
    log.sync = false;
    let early_cp = g.path("early.checkpoint");
    let mut made = 1;
    while made < N {
        let batch = (N - made)
            .min(10_000)
            .min(if made < early { early - made } else { u64::MAX });
        log.append((made..made + batch).map(event).collect())
            .expect("append");
        made += batch;
        if made == early {
            std::fs::copy(path.with_extension("jsonl.checkpoint"), &early_cp)
                .expect("copy the early checkpoint");
        }
    }
    (path, early_cp)
}

fn verify(g: &Gate, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["log", "verify", "--json"];
    all.extend_from_slice(args);
    let ran = g.command().args(&all).output().expect("run gate");
    let report = serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        )
    });
    (ran.status.code().unwrap_or(-1), report)
}

fn codes(report: &Value) -> Vec<(String, u64)> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap_or_default().to_owned(),
                p["seq"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("read the log");
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn a_long_log_streams_intact_and_its_early_checkpoint_head_is_still_checked() {
    let g = Gate::new();
    let (path, early_cp) = big_log(&g, 1_001);
    let p = path.to_str().unwrap();
    let (code, r) = verify(&g, &[p]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["status"], "intact");
    assert_eq!(r["records"], N);
    assert_eq!(r["bytes"], std::fs::metadata(&path).unwrap().len());

    // The checkpoint signed after 1,001 records names a head that is long out of the
    // in-memory window by the end of the walk: it is compared all the same.
    let (code, r) = verify(&g, &[p, "--checkpoint", early_cp.to_str().unwrap()]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["checkpoint"]["count"], 1_001);
    assert!(
        r["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("records 1001..69999 come after")),
        "{r}"
    );
}

#[test]
fn a_record_duplicated_from_long_ago_is_still_named_a_duplicate() {
    let g = Gate::new();
    let (path, _) = big_log(&g, 1);
    let mut l = lines(&path);
    // seq 10's line, replayed near the end: its hash was spilled out of memory long before.
    let replay = l[10].clone();
    l.insert(69_000, replay);
    std::fs::write(&path, l.concat()).unwrap();
    let (code, r) = verify(&g, &[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["status"], "tampered");
    assert!(
        codes(&r).contains(&("duplicate_seq".into(), 10)),
        "{:?}",
        codes(&r)
    );
}

#[test]
fn a_rewrite_rechained_from_long_ago_is_caught_by_the_early_checkpoint() {
    let g = Gate::new();
    let (path, early_cp) = big_log(&g, 1_001);
    // Record 500 edited, resealed, and every record after it re-chained: the chain is whole
    // again, and only the checkpoint signed after 1,001 records still knows the old head.
    let mut l: Vec<Value> = lines(&path)
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    l[500]["event"]["comment"] = Value::from("nothing to see");
    let mut out = Vec::new();
    for i in 0..l.len() {
        if i > 500 {
            l[i]["prev"] = l[i - 1]["hash"].clone();
        }
        if i >= 500 {
            let h = record_hash(&l[i]);
            l[i]["hash"] = Value::from(h);
        }
        out.extend_from_slice(jcs(&l[i]).as_bytes());
        out.push(b'\n');
    }
    std::fs::write(&path, out).unwrap();
    let (code, r) = verify(
        &g,
        &[
            path.to_str().unwrap(),
            "--checkpoint",
            early_cp.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{r}");
    assert_eq!(
        codes(&r),
        vec![("checkpoint_mismatch".to_owned(), 1000)],
        "{r}"
    );
}

#[test]
fn a_torn_tail_after_many_batches_stands_at_the_next_seq() {
    let g = Gate::new();
    let (path, _) = big_log(&g, 1);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"kind":"res"#).unwrap();
    drop(f);
    let (code, r) = verify(&g, &[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(codes(&r), vec![("torn_line".to_owned(), N)]);
    assert_eq!(r["records"], N);
    assert_eq!(r["bytes"], std::fs::metadata(&path).unwrap().len());
}

/// A log of `n` records (genesis included), in one append.
fn small_log(g: &Gate, n: u64) -> PathBuf {
    let path = g.path("audit.jsonl");
    let mut log = AuditLog::new(&path).with_key(g.path("signing.key"));
    log.sync = false;
    log.append((1..n).map(event).collect()).expect("append");
    path
}

#[test]
fn the_pipeline_reports_exactly_what_one_thread_does() {
    // Several problems spread over a log of many batches (128 KiB each), one of them a line
    // longer than two batches: every thread count must give the same report, and that
    // report must name each problem where it is.
    let g = Gate::new();
    let path = small_log(&g, 6_000);
    let mut l = lines(&path);
    let mut long: Value = serde_json::from_slice(&l[2_000]).unwrap();
    long["event"]["comment"] = Value::from("x".repeat(2_500_000));
    l[2_000] = format!("{}\n", jcs(&long)).into_bytes();
    l[3_000] = b"{\"seq\":\xff}\n".to_vec();
    l.remove(4_000);
    let replay = l[5].clone();
    l.insert(5_000, replay);
    let mut bytes = l.concat();
    bytes.extend_from_slice(br#"{"kind":"res"#);
    std::fs::write(&path, &bytes).unwrap();
    let p = path.to_str().unwrap();

    let (code, one) = verify(&g, &[p, "--threads", "1"]);
    assert_eq!(code, 1, "{one}");
    assert_eq!(
        codes(&one),
        [
            ("duplicate_seq", 5),
            ("hash_mismatch", 2_000),
            ("bad_utf8", 3_000),
            ("seq_gap", 4_000),
            // seq 5,001 follows the replayed seq 5, not seq 5,000.
            ("broken_link", 5_000),
            // The walk stopped recording heads at the gap.
            ("checkpoint_mismatch", 5_999),
            ("torn_line", 6_000),
        ]
        .map(|(c, s)| (c.to_owned(), s)),
        "{one}"
    );
    for threads in ["0", "2", "3"] {
        let (code, r) = verify(&g, &[p, "--threads", threads]);
        assert_eq!(code, 1);
        assert_eq!(r, one, "--threads {threads}");
    }
}
