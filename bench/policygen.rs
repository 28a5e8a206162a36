//! Deterministic generator of realistic `version: 1` policies for the benchmarks.
//!
//! Shared by `benches/classify.rs` and `benches/process.rs` through
//! `#[path = "../bench/policygen.rs"] mod policygen;` (cargo does not look in `bench/`, so this
//! is not a bench target of its own). No dependencies: a SplitMix64 generator with a fixed seed
//! makes every run benchmark the same file.
//!
//! The mix (fractions of the rule count):
//! - ~20% real tools: aws (service + `{put,attach,...}-*` verbs and literal verbs), kubectl
//!   (`args_any` writes, some with an `env` context such as `GATE_ENV: prod*`), terraform
//!   (apply/destroy, some with a `cwd` glob), gcloud, helm, git;
//! - ~60% synthetic tools `toolN` (N < n/5, so several rules share a program) with `args`
//!   prefixes of literal and glob words (`op-*`, `"{put,attach}-*"`, `sub?`);
//! - ~10% synthetic `args_any`;
//! - 5% `regex` rules on the command line (paired with a program, as in the design's examples);
//! - ~5% `env` / `user` / `host` conditions.
//!
//! Decisions: allow 40%, confirm 20%, approve 30% (some with `approval:`), deny 10%.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const AWS_SERVICES: &[&str] = &[
    "iam",
    "kms",
    "s3",
    "s3api",
    "ec2",
    "rds",
    "lambda",
    "sts",
    "secretsmanager",
    "ssm",
    "organizations",
    "route53",
    "cloudformation",
    "eks",
    "ecr",
    "dynamodb",
    "sns",
    "sqs",
    "cloudtrail",
    "logs",
    "guardduty",
    "config",
    "elbv2",
    "autoscaling",
    "backup",
];
const AWS_VERB_GLOBS: &[&str] = &[
    "{put,attach,create,delete,update}-*",
    "{put,attach}-*",
    "delete-*",
    "create-*",
    "update-*",
    "*-policy",
    "disable-*",
    "schedule-key-deletion",
    "cp",
    "rm",
    "sync",
];
const AWS_LITERAL_VERBS: &[&str] = &[
    "put-role-policy",
    "attach-role-policy",
    "create-access-key",
    "delete-user",
    "terminate-instances",
    "delete-bucket",
    "delete-db-instance",
    "put-secret-value",
    "assume-role",
    "disable-key",
    "stop-logging",
    "delete-trail",
];
const K8S_WRITES: &[&str] = &[
    "apply", "delete", "patch", "scale", "edit", "rollout", "drain", "cordon", "replace",
];
const K8S_KINDS: &[&str] = &[
    "pod",
    "deployment",
    "secret",
    "configmap",
    "namespace",
    "node",
    "service",
    "statefulset",
];
const DECISIONS: &[(&str, usize)] = &[
    ("allow", 40),
    ("confirm", 20),
    ("approve", 30),
    ("deny", 10),
];

fn decision(rng: &mut Rng) -> &'static str {
    let mut x = rng.below(100);
    for &(d, w) in DECISIONS {
        if x < w {
            return d;
        }
        x -= w;
    }
    "allow"
}

/// A whole policy file with `n` rules.
pub fn policy(n: usize, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut y = String::with_capacity(n * 120 + 512);
    y.push_str(
        "version: 1\n\
         defaults:\n  decision: allow\n  timeout: 15m\n\
         context:\n  env: [AWS_PROFILE, AWS_REGION, KUBECONFIG, GATE_ENV]\n  \
         redact: ['(?i)(password|token|secret)=\\S+']\n\
         groups:\n  security: [alice, bob]\n  sre: [carol, dave, erin]\n\
         rules:\n",
    );
    // One allow rule for trivial programs, so the allow path has a matched rule like real use.
    y.push_str("  - { name: trivial, match: { program: \"{true,false,echo,ls,cat}\" }, decision: allow }\n");
    let tools = (n / 5).max(10);
    for i in 1..n {
        let d = decision(&mut rng);
        let mut m = String::new();
        let kind = rng.below(100);
        match kind {
            // aws with a verb glob
            0..=7 => {
                let svc = rng.pick(AWS_SERVICES);
                let verb = rng.pick(AWS_VERB_GLOBS);
                write!(m, "program: aws, args: [{svc}, \"{verb}\"]").unwrap();
            }
            // aws with a literal verb
            8..=10 => {
                let svc = rng.pick(AWS_SERVICES);
                let verb = rng.pick(AWS_LITERAL_VERBS);
                write!(m, "program: aws, args: [{svc}, {verb}]").unwrap();
            }
            // kubectl writes, sometimes in a context
            11..=14 => {
                let a = rng.pick(K8S_WRITES);
                let b = rng.pick(K8S_WRITES);
                if rng.below(2) == 0 {
                    write!(m, "program: kubectl, args_any: [{a}, {b}], env: {{ GATE_ENV: \"prod*\" }}").unwrap();
                } else {
                    let k = rng.pick(K8S_KINDS);
                    write!(m, "program: \"{{kubectl,oc}}\", args: [{a}, {k}]").unwrap();
                }
            }
            // terraform, sometimes tied to a directory
            15..=16 => {
                if rng.below(2) == 0 {
                    write!(m, "program: \"{{terraform,tofu}}\", args: [\"{{apply,destroy}}\"], cwd: \"/srv/infra/team{}/*\"", rng.below(50)).unwrap();
                } else {
                    write!(m, "program: terraform, args_any: [apply, destroy, import, \"state\"]").unwrap();
                }
            }
            17 => write!(m, "program: gcloud, args: [{}, \"*\", \"{{delete,set-iam-policy,add-iam-policy-binding}}\"]",
                rng.pick(&["projects", "compute", "sql", "iam", "container", "storage"])).unwrap(),
            18 => write!(m, "program: helm, args_any: [install, upgrade, uninstall, rollback], env: {{ KUBECONFIG: \"*prod*\" }}").unwrap(),
            19 => write!(m, "program: git, args: [push], regex: '\\s(--force|-f|--force-with-lease)(\\s|$)'").unwrap(),
            // synthetic tools: args prefixes, literal and glob words
            20..=79 => {
                let t = rng.below(tools);
                let sub = rng.below(40);
                let second = match rng.below(5) {
                    0 => format!("op-{}", rng.below(30)),
                    1 => "op-*".to_owned(),
                    2 => "\"{put,attach}-*\"".to_owned(),
                    3 => format!("\"{{get,list,describe}}-thing{}\"", rng.below(20)),
                    _ => "\"*-danger\"".to_owned(),
                };
                let first = if rng.below(8) == 0 { "\"sub?\"".to_owned() } else { format!("sub{sub}") };
                if rng.below(4) == 0 {
                    write!(m, "program: tool{t}, args: [{first}]").unwrap();
                } else {
                    write!(m, "program: tool{t}, args: [{first}, {second}]").unwrap();
                }
            }
            // synthetic args_any
            80..=89 => {
                let t = rng.below(tools);
                write!(m, "program: tool{t}, args: [sub{}], args_any: [op-{}, op-{}, \"wipe-*\"]",
                    rng.below(40), rng.below(30), rng.below(30)).unwrap();
            }
            // 5% regex on the command line
            90..=94 => {
                let t = rng.below(tools);
                match rng.below(3) {
                    0 => write!(m, "program: tool{t}, regex: '\\s--danger-{}(\\s|$)'", rng.below(100)).unwrap(),
                    1 => write!(m, "program: tool{t}, regex: '(?i)\\s--(yes|force|no-preserve-root)-{}\\b'", rng.below(100)).unwrap(),
                    _ => write!(m, "program: tool{t}, regex: '\\s/(etc|boot|usr)/[a-z]+{}(\\s|$)'", rng.below(100)).unwrap(),
                }
            }
            // env / user / host conditions
            _ => {
                let t = rng.below(tools);
                match rng.below(3) {
                    0 => write!(m, "program: tool{t}, env: {{ GATE_ENV: \"{}\" }}", rng.pick(&["prod", "prod-*", "stag*", "*-eu"])).unwrap(),
                    1 => write!(m, "program: tool{t}, user: \"{}\"", rng.pick(&["root", "svc-*", "ci-*"])).unwrap(),
                    _ => write!(m, "program: tool{t}, host: \"{}\"", rng.pick(&["db-*", "*.prod.example.com", "bastion?"])).unwrap(),
                }
            }
        }
        write!(y, "  - {{ name: r{i}, match: {{ {m} }}, decision: {d}").unwrap();
        match d {
            "approve" if rng.below(2) == 0 => {
                let (g, k) = if rng.below(2) == 0 {
                    ("security", 2)
                } else {
                    ("sre", 1 + rng.below(3))
                };
                write!(
                    y,
                    ", risk: high, approval: {{ approvers: [{g}], min_approvals: {k} }}"
                )
                .unwrap();
            }
            "deny" => write!(y, ", message: \"rule {i} forbids this\"").unwrap(),
            _ => {}
        }
        y.push_str(" }\n");
    }
    y
}

/// Writes `policy(n, seed)` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, n: usize) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, policy(n, 0x6a7e_5eed ^ n as u64)).expect("write generated policy");
    p
}
