//! The figure of issue 13 §4: classification of the shipped agent policy
//! (`policies/agents.yaml`) over 10,000 generated agent command strings — throughput and p99.
//!
//! Each string is classified as an agent's shell tool runs it, `bash -c STRING`, through
//! `Policy::classify_argv` (the shell reading, every simple command, every rule): what
//! `gate check` and the hooks do after loading the policy. The strings are drawn
//! deterministically from the two corpora of `tests/integration/agent_policy.rs` (a quarter
//! attacks, the rest routine work) with varied paths, names and chaining, so no two repeat.
//!
//! Run: `cargo bench --bench agent_policy`. Prints commands/s, p50, p99 and max per command,
//! and the one-time `Policy::load` of the file.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gate::policy::{Place, Policy};

const N: usize = 10_000;

fn corpus(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut block, line) {
            (Some(b), "<<<") => {
                out.push(b.join("\n"));
                block = None;
            }
            (Some(b), _) => b.push(line),
            (None, ">>>") => block = Some(Vec::new()),
            (None, l) if l.trim().is_empty() || l.starts_with('#') => {}
            (None, l) => out.push(l.to_owned()),
        }
    }
    out
}

/// A small deterministic generator (xorshift), so every run classifies the same strings.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.next() % v.len()]
    }
}

fn generate(attacks: &[String], routine: &[String]) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dirs = ["src", "tests", "crates/core", "web/app", "pkg/api", "docs"];
    let joins = [" && ", "; ", " || ", " | "];
    (0..N)
        .map(|i| {
            let base = if i % 4 == 0 {
                rng.pick(attacks).clone()
            } else {
                rng.pick(routine).clone()
            };
            match rng.next() % 4 {
                // As written.
                0 => base,
                // Run from a subdirectory.
                1 => format!("cd {}/m{} && {base}", rng.pick(&dirs), i % 97),
                // Chained with another routine command.
                2 => format!("{base}{}{}", rng.pick(&joins), rng.pick(routine)),
                // Wrapped the way agents wrap: a subshell, a timeout, an env assignment.
                _ => match i % 3 {
                    0 => format!("({base})"),
                    1 => format!("timeout {} bash -c {}", 30 + i % 90, quote(&base)),
                    _ => format!("CI=1 RUN_{}=1 {base}", i % 13),
                },
            }
        })
        .collect()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("policies/agents.yaml");
    let attacks = corpus(include_str!(
        "../tests/integration/data/agent_policy/attacks.txt"
    ));
    let routine = corpus(include_str!(
        "../tests/integration/data/agent_policy/routine.txt"
    ));
    let lines = generate(&attacks, &routine);

    let t = Instant::now();
    let policy = Policy::load(std::slice::from_ref(&file)).expect("policies/agents.yaml loads");
    let load = t.elapsed();

    let env = BTreeMap::new();
    let place = Place {
        env: &env,
        cwd: "/home/dev/src/app",
        user: "dev",
        host: "laptop",
        links: None,
    };
    let argvs: Vec<[String; 3]> = lines
        .iter()
        .map(|l| ["bash".to_owned(), "-c".to_owned(), l.clone()])
        .collect();

    // One warm-up pass (lazily compiled rule groups, caches), then the measured pass.
    for a in &argvs {
        black_box(policy.classify_argv(a, &place));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(N);
    let mut not_allowed = 0usize;
    let start = Instant::now();
    for a in &argvs {
        let t = Instant::now();
        let c = black_box(policy.classify_argv(black_box(a), &place));
        times.push(t.elapsed());
        if c.decision != gate::policy::Decision::Allow {
            not_allowed += 1;
        }
    }
    let total = start.elapsed();
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "agent policy classification: {N} generated agent command strings (bash -c), policies/agents.yaml"
    );
    println!("  policy load:  {:>10.2?}", load);
    println!(
        "  throughput:   {:>10.0} commands/s ({:.2?} total)",
        N as f64 / total.as_secs_f64(),
        total
    );
    println!("  p50:          {:>10.2?}", pct(0.50));
    println!("  p99:          {:>10.2?}", pct(0.99));
    println!("  max:          {:>10.2?}", times[times.len() - 1]);
    println!("  not allowed:  {not_allowed} of {N}");
}
