//! In-process figures (divan): classification against a generated 10,000-rule policy after
//! load (target ≤ 1 ms), `Policy::load` (read + parse + check + merge + compile) of the 10k and
//! the 50-rule files, and one audit append with fsync on and off (the difference is the fsync
//! share of one append; the allow path does two appends: `decision` before the run, `result`
//! after).
//!
//! Run: `cargo bench --bench classify`. The policies come from `bench/policygen.rs`.

#[path = "../bench/policygen.rs"]
mod policygen;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use divan::{Bencher, black_box};
use gate::audit::{AuditLog, Body, ResultInfo};
use gate::policy::{Policy, Subject};

fn main() {
    divan::main();
}

struct Fixture {
    _dir: tempfile::TempDir,
    p10k: PathBuf,
    p50: PathBuf,
}

static FIX: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let p10k = policygen::write(dir.path(), "policy-10k.yaml", 10_000);
    let p50 = policygen::write(dir.path(), "policy-50.yaml", 50);
    Fixture {
        _dir: dir,
        p10k,
        p50,
    }
});

static POLICY_10K: LazyLock<Policy> = LazyLock::new(|| {
    Policy::load(std::slice::from_ref(&FIX.p10k)).unwrap_or_else(|e| panic!("10k policy: {e:?}"))
});

/// The commands classified: a cloud write several rules match, a kubectl write with a prod
/// context, a synthetic tool with rules of its own, and a command no rule matches.
const COMMANDS: &[&str] = &[
    "aws --profile prod iam put-role-policy --role-name x --policy-name y",
    "kubectl --context prod -n web delete pod x",
    "tool17 sub3 op-12 --danger-5",
    "/bin/true",
];

struct Cmd {
    program: String,
    args: Vec<String>,
    line: String,
    env: BTreeMap<String, String>,
}

fn cmd(line: &str) -> Cmd {
    let mut it = line.split_whitespace().map(str::to_owned);
    let argv0 = it.next().unwrap();
    let program = argv0.rsplit('/').next().unwrap().to_owned();
    let args: Vec<String> = it.collect();
    let env = BTreeMap::from([
        ("GATE_ENV".to_owned(), "prod".to_owned()),
        ("AWS_PROFILE".to_owned(), "prod".to_owned()),
        ("KUBECONFIG".to_owned(), "/home/u/.kube/prod".to_owned()),
    ]);
    Cmd {
        program,
        args,
        line: line.to_owned(),
        env,
    }
}

fn classify_one(policy: &Policy, c: &Cmd, words: &[String]) -> gate::policy::Classification {
    policy.classify(&Subject {
        program: &c.program,
        words,
        command_line: &c.line,
        env: &c.env,
        cwd: "/srv/infra/team7/prod",
        user: "alice",
        host: "bastion1",
    })
}

/// Classification alone, words already parsed (what the ≤ 1 ms target is about).
#[divan::bench(args = COMMANDS)]
fn classify_10k(bencher: Bencher, line: &str) {
    let policy = &*POLICY_10K;
    let c = cmd(line);
    let words = gate::command::parse(&c.program, &c.args).words;
    bencher.bench_local(|| black_box(classify_one(policy, black_box(&c), black_box(&words))));
}

/// Tool-aware parse + classification.
#[divan::bench(args = COMMANDS)]
fn parse_and_classify_10k(bencher: Bencher, line: &str) {
    let policy = &*POLICY_10K;
    let c = cmd(line);
    bencher.bench_local(|| {
        let words = gate::command::parse(&c.program, black_box(&c.args)).words;
        black_box(classify_one(policy, &c, &words))
    });
}

/// The whole argv path the run uses (`Policy::classify_argv`: wrappers and shell strings read,
/// then every simple command classified): the allow path must not get slower.
#[divan::bench(args = COMMANDS)]
fn classify_argv_10k(bencher: Bencher, line: &str) {
    let policy = &*POLICY_10K;
    let c = cmd(line);
    let argv: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    bencher.bench_local(|| {
        black_box(policy.classify_argv(
            black_box(&argv),
            &gate::policy::Place {
                env: &c.env,
                cwd: "/srv/infra/team7/prod",
                user: "alice",
                host: "bastion1",
                links: None,
            },
        ))
    });
}

/// Read + parse + check + merge + compile of the 10,000-rule file.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn load_10k(bencher: Bencher) {
    let paths = [FIX.p10k.clone()];
    bencher.bench_local(|| black_box(Policy::load(&paths).unwrap()));
}

#[divan::bench(sample_count = 50)]
fn load_50(bencher: Bencher) {
    let paths = [FIX.p50.clone()];
    bencher.bench_local(|| black_box(Policy::load(&paths).unwrap()));
}

fn append(bencher: Bencher, sync: bool) {
    // On /tmp (the disk, ext4 here), as a real log under $XDG_STATE_HOME would be.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = AuditLog::new(dir.path().join("audit.jsonl"));
    log.sync = sync;
    let body = || Body::Result {
        request_id: "0198a0c4-6c1e-7b4e-9d6e-1f2a3b4c5d6e".to_owned(),
        result: ResultInfo {
            exit_code: Some(0),
            signal: None,
            duration_ms: 1,
            error: None,
        },
    };
    log.append(vec![body()]).unwrap(); // genesis out of the way
    bencher.bench_local(|| black_box(log.append(vec![body()]).unwrap()));
}

/// One locked append (open, lock, read tail, hash, write) with fsync (`sync_data`).
#[divan::bench(sample_count = 60, sample_size = 1)]
fn audit_append_fsync(bencher: Bencher) {
    append(bencher, true);
}

/// The same append without fsync: the difference to `audit_append_fsync` is the fsync share.
#[divan::bench(sample_count = 60, sample_size = 1)]
fn audit_append_nosync(bencher: Bencher) {
    append(bencher, false);
}
