//! Writing a command in a form gate cannot read is never an easier path than writing it plainly
//! (DESIGN §5). For every command the shipped policies do not simply allow (their `tests:`
//! cases), a generator rewrites it — wrappers with and without options, shells with every
//! quoting style, `$'...'`, substitutions, padding, interpreters, aliases, assignments,
//! symlinks, nested — and the rewrite must classify at least as strictly as the plain command.
//! A fixed corpus pins each attack that once got through, one test per attack.
//!
//! "At least as strict": a more restrictive decision, or the same with an approval requirement
//! that implies the plain one (`Classification::at_least_as_strict_as`). One exception is the
//! contract's own: a plain command the policy *denies* may, when rewritten into a form gate
//! cannot read, get `defaults.opaque_shell` (`approve` unless the policy says `deny`) with the
//! strictest requirement the policy can impose — a human decides it, nobody walks past.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use gate::command::link::Resolver;
use gate::policy::{Classification, Decision, Place, Policy};
use proptest::prelude::*;

struct Shipped {
    name: String,
    policy: Policy,
    /// Each non-`allow` test case: argv and its env.
    cases: Vec<(Vec<String>, BTreeMap<String, String>)>,
}

static SHIPPED: LazyLock<Vec<Shipped>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .into_iter()
        .map(|path| {
            let source = std::fs::read_to_string(&path).unwrap();
            let file = gate::policy::check_file(&path, &source).expect("shipped policy is valid");
            let policy = Policy::load(std::slice::from_ref(&path)).unwrap();
            let cases = file
                .tests
                .iter()
                .filter(|c| c.expect_decision != Decision::Allow)
                // The cases that are themselves rewrites are covered by the corpus below.
                .filter(|c| c.run.len() > 1 && PROGRAMS.contains(&c.run[0].as_str()))
                .map(|c| (c.run.clone(), c.env.clone()))
                .collect();
            Shipped {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                policy,
                cases,
            }
        })
        .collect()
});

/// Programs the shipped policies have rules for; the symlink fixture makes a link to each.
const PROGRAMS: &[&str] = &[
    "aws",
    "kubectl",
    "oc",
    "terraform",
    "tofu",
    "git",
    "rm",
    "find",
    "reboot",
    "shutdown",
];

/// A directory with a file for each program and links to them under other names:
/// `my-aws → aws`, `x-aws → my-aws` (a chain), `/abs/path/aws-link → .../aws`.
static LINKS: LazyLock<(tempfile::TempDir, Resolver)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    for p in PROGRAMS {
        let real = dir.path().join(p);
        std::fs::write(&real, "#!/bin/sh\n").unwrap();
        symlink(&real, dir.path().join(format!("my-{p}"))).unwrap();
        symlink(format!("my-{p}"), dir.path().join(format!("x-{p}"))).unwrap();
    }
    let resolver = Resolver::new(
        Some(dir.path().as_os_str().to_owned()),
        Some(dir.path().to_path_buf()),
        dir.path(),
    );
    (dir, resolver)
});

fn classify(policy: &Policy, argv: &[String], env: &BTreeMap<String, String>) -> Classification {
    policy.classify_argv(
        argv,
        &Place {
            env,
            cwd: "/srv",
            user: "mallory",
            host: "host",
            links: Some(&LINKS.1),
        },
    )
}

/// The property itself (see the module doc), with a message that says what went wrong.
fn never_easier(
    policy: &Policy,
    plain: &Classification,
    rewritten: &Classification,
) -> Result<(), String> {
    if rewritten.at_least_as_strict_as(plain) {
        return Ok(());
    }
    // What gate cannot read goes to the policy's setting for it, never below `approve`.
    let by_reading = (rewritten.opaque.is_some() && rewritten.decision >= policy.opaque_shell)
        || (rewritten.unread.is_some() && rewritten.decision >= policy.opaque_arguments);
    if plain.decision == Decision::Deny
        && by_reading
        && rewritten.decision >= Decision::Approve
        && rewritten
            .requirement
            .as_ref()
            .is_none_or(|r| r.at_least_as_strict_as(&policy.opaque_requirement(&rewritten.matched)))
    {
        return Ok(());
    }
    Err(format!(
        "plain: {:?} {:?}\nrewritten: {:?} {:?} (opaque: {:?}, commands: {:?})",
        plain.decision,
        plain.requirement,
        rewritten.decision,
        rewritten.requirement,
        rewritten.opaque,
        rewritten.commands
    ))
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// How a word is written inside a shell script.
#[derive(Debug, Clone, Copy)]
enum Quote {
    Bare,
    Single,
    Double,
    AnsiHex,
    AnsiOctal,
    Backslashes,
    EmptyGlued,
}

fn quote(w: &str, q: Quote) -> String {
    let safe = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    match q {
        Quote::Bare if safe => w.to_owned(),
        Quote::Bare | Quote::Single => format!("'{}'", w.replace('\'', r"'\''")),
        Quote::Double => {
            let mut s = String::from("\"");
            for c in w.chars() {
                if matches!(c, '"' | '\\' | '$' | '`') {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
            s
        }
        Quote::AnsiHex => {
            let body: String = w.bytes().map(|b| format!("\\x{b:02x}")).collect();
            format!("$'{body}'")
        }
        Quote::AnsiOctal => {
            let body: String = w.bytes().map(|b| format!("\\{b:03o}")).collect();
            format!("$'{body}'")
        }
        // A backslash before a newline would join lines, not quote the newline.
        Quote::Backslashes => w
            .chars()
            .map(|c| match c {
                '\n' => "'\n'".to_owned(),
                c => format!("\\{c}"),
            })
            .collect(),
        Quote::EmptyGlued => format!("''{}\"\"", quote(w, Quote::Single)),
    }
}

fn script(argv: &[String], q: Quote) -> String {
    argv.iter()
        .map(|w| quote(w, q))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One rewrite step: wraps the command built so far.
#[derive(Debug, Clone)]
enum Step {
    Symlink(bool),
    Wrapper(usize),
    Shell(usize, Quote),
    Padding(usize, usize),
    Substitution(Quote),
    Unreadable(usize),
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn cat(a: &[&str], b: &[String]) -> Vec<String> {
    let mut v = s(a);
    v.extend(b.iter().cloned());
    v
}

/// Wrappers read exactly: each prefix runs the command after it.
const WRAPPERS: &[&[&str]] = &[
    &["sudo"],
    &["sudo", "-u", "root"],
    &["sudo", "--chdir", "/tmp"],
    &["sudo", "--ch=/tmp", "-R", "/"],
    &["sudo", "-R", "/", "--prompt", "x", "-E"],
    &["sudo", "--user=root", "--preserve-env=A", "--", "A=1"],
    &["doas", "-u", "root"],
    &["env"],
    &["env", "-i", "A=1", "B=2"],
    &["env", "-u", "X", "--chdir=/tmp", "--"],
    &["nice"],
    &["nice", "-n", "5"],
    &["nice", "-10"],
    &["nohup"],
    &["time", "-p"],
    &["time", "-o", "/tmp/t", "-f", "%e"],
    &["timeout", "5"],
    &["timeout", "-s", "KILL", "-k", "1", "30s"],
    &["stdbuf", "-oL", "-e", "0"],
    &["setsid", "-w"],
    &["chroot", "/"],
    &["chroot", "--userspec", "root", "/"],
    &["strace", "-f", "-o", "/dev/null"],
    &["strace", "-P", "/x", "-e", "trace=execve"],
    &["taskset", "1"],
    &["taskset", "-c", "0"],
    &["ionice", "-c", "3"],
    &["chrt", "-o", "0"],
    &["command"],
    &["command", "-p"],
    &["exec", "-a", "foo"],
    &["busybox"],
    &["flock", "/tmp/lock"],
    &["runuser", "-u", "root", "--"],
    &["watch", "-x"],
    &["xargs", "-0"],
    &["find", ".", "-maxdepth", "0", "-exec"],
];

/// Shells and the like that take a script string: the command becomes their script.
const SHELL_FORMS: usize = 14;

fn shell_form(i: usize, script: String) -> Vec<String> {
    let forms: &[&[&str]] = &[
        &["bash", "-c"],
        &["sh", "-c"],
        &["dash", "-ec"],
        &["bash", "-euo", "pipefail", "-c"],
        &["bash", "--norc", "--noprofile", "-lc"],
        &["busybox", "sh", "-c"],
        &["su", "-c"],
        &["su", "-", "root", "-c"],
        &["runuser", "-l", "root", "-c"],
        &["flock", "/tmp/l", "-c"],
        &["script", "-qc"],
        &["watch", "-n", "1"],
        &["env", "-S"],
        &["git", "rebase", "-x"],
    ];
    assert_eq!(forms.len(), SHELL_FORMS);
    let f = forms[i % forms.len()];
    let mut v = s(f);
    v.push(script);
    if matches!(f[0], "su") && f.len() == 2 {
        v.push("root".into());
    }
    if f[0] == "script" {
        v.push("/dev/null".into());
    }
    v
}

/// Forms gate cannot read: each must make the command opaque.
fn unreadable(i: usize, argv: &[String]) -> Vec<String> {
    let sc = script(argv, Quote::Single);
    let py = format!("import os; os.system({:?})", sc);
    let single = |ws: &[String]| script(ws, Quote::Single);
    // `{a}` with no comma is not a brace expansion: only for two words or more.
    let braces = if argv.len() < 2 {
        format!("eval {}", quote(&single(argv), Quote::Single))
    } else {
        format!(
            "{{{}}}",
            argv.iter()
                .map(|w| quote(w, Quote::Single))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let substituted = format!(
        "{} \"$(printf %s {})\" {}",
        single(&argv[..1]),
        single(argv.get(1..2).unwrap_or(&[])),
        single(argv.get(2..).unwrap_or(&[]))
    );
    let variable = format!(
        "X={}; {} \"$X\" {}",
        single(argv.get(1..2).unwrap_or(&[])),
        single(&argv[..1]),
        single(argv.get(2..).unwrap_or(&[]))
    );
    let forms: Vec<Vec<String>> = vec![
        s(&["python3", "-c", &py]),
        s(&["perl", "-e", &format!("system {:?}", sc)]),
        s(&["ruby", "-e", &format!("system({:?})", sc)]),
        s(&[
            "node",
            "-e",
            &format!("require('child_process').execSync({:?})", sc),
        ]),
        s(&["php", "-r", &format!("system({:?});", sc)]),
        s(&["awk", &format!("BEGIN {{ system({:?}) }}", sc)]),
        s(&["bash", "-c", &format!("eval {}", quote(&sc, Quote::Single))]),
        s(&[
            "bash",
            "-c",
            &format!("echo {} | bash", quote(&sc, Quote::Single)),
        ]),
        s(&[
            "bash",
            "-c",
            &format!("bash <<< {}", quote(&sc, Quote::Single)),
        ]),
        s(&[
            "bash",
            "-O",
            "expand_aliases",
            "-c",
            &format!(
                "alias a={}\na {}",
                quote(&argv[0], Quote::Single),
                script(&argv[1..], Quote::Single)
            ),
        ]),
        s(&["bash", "-c", &format!("f() {{ {sc}; }}; f")]),
        s(&[
            "bash",
            "-c",
            &format!("X={}; $X {}", argv[0], script(&argv[1..], Quote::Single)),
        ]),
        s(&["bash", "--rcfile", "/dev/null", "-c", &sc]),
        s(&["bash", "--init-file", "/dev/null", "-c", &sc]),
        s(&["fish", "-c", &sc]),
        s(&["busybox", "ash", "-s"]),
        s(&["sh", "-c", &format!("cat <<EOF | sh\n{sc}\nEOF")]),
        s(&["git", "-c", &format!("alias.x=!{sc}"), "x"]),
        s(&["git", "-c", &format!("core.sshCommand={sc}"), "push"]),
        s(&["tclsh"]),
        s(&["osascript", "-e", &format!("do shell script {:?}", sc)]),
        cat(&["xargs"], &argv[..1]),
        s(&["find", ".", "-exec", &argv[0], "{}", ";"]),
        s(&[
            "bash",
            "-c",
            &format!("{}${{IFS}}{}", argv[0], argv[1..].join("${IFS}")),
        ]),
        // Brace expansion in command position, an argument from a substitution, a variable.
        s(&["bash", "-c", &braces]),
        s(&["bash", "-c", &substituted]),
        s(&["bash", "-c", &variable]),
    ];
    forms[i % forms.len()].clone()
}

fn apply(argv: Vec<String>, step: &Step) -> Vec<String> {
    match step {
        Step::Symlink(chain) => {
            let mut v = argv;
            if PROGRAMS.contains(&v[0].as_str()) {
                v[0] = if *chain {
                    format!("x-{}", v[0])
                } else {
                    LINKS
                        .0
                        .path()
                        .join(format!("my-{}", v[0]))
                        .display()
                        .to_string()
                };
            }
            v
        }
        Step::Wrapper(i) => {
            let w = WRAPPERS[i % WRAPPERS.len()];
            let mut v = cat(w, &argv);
            if w[0] == "find" {
                v.push(";".into());
            }
            v
        }
        Step::Shell(i, q) => {
            // `env -S` splits with its own rules: `\c` ends the string, other backslashes
            // are errors. Quote for it the ways it reads.
            let q = match (i % SHELL_FORMS, q) {
                (12, Quote::Bare | Quote::Single | Quote::Double) | (0..12 | 13.., _) => *q,
                _ => Quote::Single,
            };
            shell_form(*i, script(&argv, q))
        }
        Step::Padding(n, q) => {
            let harmless = ["true", "echo ok", "ls -l /tmp", ":", "cd /srv", "A=1"];
            let mut sc = String::new();
            for k in 0..*n {
                sc.push_str(harmless[(k + q) % harmless.len()]);
                sc.push_str(if k % 3 == 0 { "\n" } else { "; " });
            }
            sc.push_str(&script(&argv, Quote::Single));
            s(&["bash", "-c", &sc])
        }
        Step::Substitution(q) => {
            let sc = format!("echo \"$({})\" >/dev/null", script(&argv, *q));
            s(&["sh", "-c", &sc])
        }
        Step::Unreadable(i) => unreadable(*i, &argv),
    }
}

fn quote_strategy() -> impl Strategy<Value = Quote> {
    prop_oneof![
        Just(Quote::Bare),
        Just(Quote::Single),
        Just(Quote::Double),
        Just(Quote::AnsiHex),
        Just(Quote::AnsiOctal),
        Just(Quote::Backslashes),
        Just(Quote::EmptyGlued),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => any::<bool>().prop_map(Step::Symlink),
        4 => (0..WRAPPERS.len()).prop_map(Step::Wrapper),
        4 => (0..32usize, quote_strategy()).prop_map(|(i, q)| Step::Shell(i, q)),
        1 => (0..300usize, 0..6usize).prop_map(|(n, q)| Step::Padding(n, q)),
        1 => quote_strategy().prop_map(Step::Substitution),
        2 => (0..64usize).prop_map(Step::Unreadable),
    ]
}

fn all_cases() -> Vec<(usize, usize)> {
    SHIPPED
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| (0..f.cases.len()).map(move |ci| (fi, ci)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn no_rewrite_of_a_gated_command_is_an_easier_path(
        pick in 0..10_000usize,
        steps in prop::collection::vec(step_strategy(), 1..4),
    ) {
        let cases = all_cases();
        let (fi, ci) = cases[pick % cases.len()];
        let shipped = &SHIPPED[fi];
        let (plain_argv, env) = &shipped.cases[ci];
        let plain = classify(&shipped.policy, plain_argv, env);
        let mut argv = plain_argv.clone();
        for st in &steps {
            argv = apply(argv, st);
        }
        let rewritten = classify(&shipped.policy, &argv, env);
        if let Err(e) = never_easier(&shipped.policy, &plain, &rewritten) {
            prop_assert!(false, "{}: {:?}\n  rewritten as {:?}\n{}", shipped.name, plain_argv, argv, e);
        }
    }
}

/// Every generated form, for every case, once: the generator's table is exhausted, not sampled.
#[test]
fn every_single_step_rewrite_of_every_shipped_case() {
    let mut steps: Vec<Step> = vec![Step::Symlink(false), Step::Symlink(true)];
    steps.extend((0..WRAPPERS.len()).map(Step::Wrapper));
    for q in [
        Quote::Bare,
        Quote::Single,
        Quote::Double,
        Quote::AnsiHex,
        Quote::AnsiOctal,
        Quote::Backslashes,
        Quote::EmptyGlued,
    ] {
        steps.extend((0..14).map(|i| Step::Shell(i, q)));
        steps.push(Step::Substitution(q));
    }
    steps.extend((0..27).map(Step::Unreadable));
    steps.push(Step::Padding(260, 0));
    steps.push(Step::Padding(5000, 1));
    let mut checked = 0;
    for shipped in SHIPPED.iter() {
        assert!(
            !shipped.cases.is_empty(),
            "{} has gated cases",
            shipped.name
        );
        for (plain_argv, env) in &shipped.cases {
            let plain = classify(&shipped.policy, plain_argv, env);
            for st in &steps {
                let argv = apply(plain_argv.clone(), st);
                let rewritten = classify(&shipped.policy, &argv, env);
                if let Err(e) = never_easier(&shipped.policy, &plain, &rewritten) {
                    panic!(
                        "{}: {plain_argv:?}\n  rewritten ({st:?}) as {argv:?}\n{e}",
                        shipped.name
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

// ---------------------------------------------------------------------------------------------
// The fixed corpus: each form that once classified `allow` under cloud-admin.yaml where the
// plain command needs approval.

static CLOUD: LazyLock<Policy> = LazyLock::new(|| {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/cloud-admin.yaml");
    Policy::load(&[p]).unwrap()
});

const PUT: &str =
    "aws iam put-role-policy --role-name ci --policy-name admin --policy-document file://p.json";

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

static DEMO: LazyLock<Policy> = LazyLock::new(|| {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/demo.yaml");
    Policy::load(&[p]).unwrap()
});

fn assert_not_easier(plain: &str, rewritten: Vec<String>) {
    // git is free under cloud-admin.yaml; the demo policy gates `git push --force`.
    let policy: &Policy = if plain.starts_with("git ") {
        &DEMO
    } else {
        &CLOUD
    };
    let env = BTreeMap::new();
    let p = classify(policy, &words(plain), &env);
    assert_eq!(p.decision, Decision::Approve, "{plain}");
    let r = classify(policy, &rewritten, &env);
    if let Err(e) = never_easier(policy, &p, &r) {
        panic!("{rewritten:?}\n{e}");
    }
}

/// `attack!(test_name, argv![PLAIN,] ARGV)`: the rewrite ARGV (a `Vec<String>`) is not easier than
/// PLAIN (the IAM write when not given).
macro_rules! attack {
    ($name:ident, $plain:expr, $argv:expr) => {
        #[test]
        fn $name() {
            assert_not_easier($plain, $argv);
        }
    };
    ($name:ident, $argv:expr) => {
        attack!($name, PUT, $argv);
    };
}

/// An argv from words of any string type.
macro_rules! argv {
    ($($w:expr),+ $(,)?) => { vec![$(String::from($w)),+] };
}

fn put_args() -> String {
    PUT.split_once(' ').unwrap().1.to_owned()
}

attack!(
    symlink_to_aws_is_classified_as_aws,
    argv![
        LINKS.0.path().join("my-aws").display().to_string(),
        "iam",
        "put-role-policy",
        "--role-name",
        "x"
    ]
);
attack!(
    symlink_on_path_is_classified_as_aws,
    argv!["my-aws", "iam", "put-role-policy", "--role-name", "x"]
);
attack!(
    symlink_chain_is_classified_as_aws,
    argv!["x-aws", "iam", "put-role-policy", "--role-name", "x"]
);
attack!(env_split_string_runs_the_command, argv!["env", "-S", PUT]);
attack!(
    env_split_string_long_form_runs_the_command,
    argv!["env", format!("--split-string={PUT}")]
);
attack!(
    env_split_string_abbreviated_runs_the_command,
    argv!["env", "--split", PUT]
);
attack!(
    exec_dash_a_inside_bash_c_runs_the_command,
    argv!["bash", "-c", format!("exec -a foo {PUT}")]
);
attack!(
    time_dash_p_inside_bash_c_runs_the_command,
    argv!["bash", "-c", format!("time -p {PUT}")]
);
attack!(
    sudo_chdir_runs_the_command,
    cat(&["sudo", "--chdir", "/tmp"], &words(PUT))
);
attack!(
    sudo_chroot_short_runs_the_command,
    cat(&["sudo", "-R", "/"], &words(PUT))
);
attack!(
    sudo_prompt_runs_the_command,
    cat(&["sudo", "--prompt", "x"], &words(PUT))
);
attack!(
    sudo_unknown_option_is_opaque,
    cat(&["sudo", "--frobnicate", "x"], &words(PUT))
);
attack!(
    chroot_userspec_runs_the_command,
    cat(&["chroot", "--userspec", "root", "/"], &words(PUT))
);
attack!(
    strace_dash_p_runs_the_command,
    cat(&["strace", "-P", "/x"], &words(PUT))
);
attack!(
    time_dash_o_runs_the_command,
    cat(&["time", "-o", "f"], &words(PUT))
);
attack!(su_dash_c_runs_the_script, argv!["su", "-c", PUT, "root"]);
attack!(
    runuser_login_dash_c_runs_the_script,
    argv!["runuser", "-l", "root", "-c", PUT]
);
attack!(flock_dash_c_runs_the_script, argv!["flock", "f", "-c", PUT]);
attack!(watch_runs_its_words_as_a_script, argv!["watch", PUT]);
attack!(script_qc_runs_the_script, argv!["script", "-qc", PUT]);
attack!(
    busybox_ash_c_runs_the_script,
    argv!["busybox", "ash", "-c", PUT]
);
attack!(fish_c_is_opaque, argv!["fish", "-c", PUT]);
attack!(
    bash_rcfile_is_opaque,
    argv!["bash", "--rcfile", "/dev/null", "-c", PUT]
);
attack!(
    bash_init_file_is_opaque,
    argv!["bash", "--init-file", "/dev/null", "-c", PUT]
);
attack!(
    python_os_system_is_opaque,
    argv!["python3", "-c", format!("import os; os.system({PUT:?})")]
);
attack!(
    perl_system_is_opaque,
    argv!["perl", "-e", format!("system {PUT:?}")]
);
attack!(find_exec_runs_the_command, {
    let mut v = s(&["find", ".", "-exec"]);
    v.extend(words(PUT));
    v.push(";".into());
    v
});
attack!(
    find_exec_with_file_names_is_opaque,
    argv![
        "find",
        ".",
        "-name",
        "put-role-policy",
        "-exec",
        "aws",
        "iam",
        "{}",
        ";"
    ]
);
attack!(
    taskset_runs_the_command,
    cat(&["taskset", "1"], &words(PUT))
);
attack!(
    xargs_with_the_operation_on_stdin_is_opaque,
    argv!["xargs", "aws", "iam"]
);
attack!(
    ansi_c_quoted_operation_is_decoded,
    argv![
        "bash",
        "-c",
        format!(
            "aws iam $'put-role-policy' {}",
            put_args().split_once(' ').unwrap().1
        )
    ]
);
attack!(
    ansi_c_hex_quoted_operation_is_decoded,
    argv!["bash", "-c", "aws iam $'\\x70ut-role-policy' --role-name x"]
);
attack!(
    here_string_into_bash_is_opaque,
    argv!["bash", "-c", format!("bash <<< '{PUT}'")]
);
attack!(
    pipe_into_bash_is_opaque,
    argv!["bash", "-c", format!("echo '{PUT}' | bash")]
);
attack!(
    expand_aliases_is_opaque,
    argv![
        "bash",
        "-O",
        "expand_aliases",
        "-c",
        "alias a=aws\na iam put-role-policy --role-name x"
    ]
);
attack!(
    alias_in_a_script_is_opaque,
    argv![
        "bash",
        "-c",
        "shopt -s expand_aliases; alias a=aws; a iam put-role-policy"
    ]
);
attack!(
    padding_past_the_old_cap_still_reads_the_command,
    argv!["bash", "-c", format!("{}nice {PUT}", "true\n".repeat(260))]
);
attack!(
    padding_past_every_cap_is_opaque,
    argv![
        "bash",
        "-c",
        (0..5000).map(|i| format!("true {i}\n")).collect::<String>() + "nice " + PUT
    ]
);
attack!(
    eval_needs_the_strictest_requirement,
    argv!["bash", "-c", format!("eval '{PUT}'")]
);
attack!(
    ifs_expansion_needs_the_strictest_requirement,
    argv!["bash", "-c", "aws${IFS}iam${IFS}put-role-policy"]
);
attack!(
    function_needs_the_strictest_requirement,
    argv!["bash", "-c", format!("f() {{ {PUT}; }}; f")]
);
attack!(
    command_eval_is_opaque,
    argv!["bash", "-c", format!("command eval '{PUT}'")]
);
attack!(
    builtin_eval_is_opaque,
    argv!["bash", "-c", format!("builtin eval '{PUT}'")]
);
attack!(
    path_assignment_is_opaque,
    argv!["bash", "-c", "PATH=/tmp/evil:$PATH ls iam put-role-policy"]
);
attack!(
    bash_env_assignment_is_opaque,
    argv!["env", "BASH_ENV=/tmp/x", "bash", "-c", "true"]
);
attack!(
    interpreter_running_the_aws_script_is_classified_as_aws,
    cat(&["python3", "/usr/bin/aws"], &words(&put_args()))
);
attack!(
    printf_v_subscript_substitution_is_opaque,
    argv!["bash", "-c", format!("printf -v 'a[$({PUT})]' 1")]
);

attack!(
    brace_expansion_in_command_position_is_opaque,
    argv!["bash", "-c", "{aws,iam,put-role-policy}"]
);
attack!(
    glob_in_command_position_is_opaque,
    argv![
        "bash",
        "-c",
        "/usr/bin/aw? iam put-role-policy --role-name x"
    ]
);
attack!(
    substituted_operation_is_opaque,
    argv![
        "bash",
        "-c",
        "aws iam $(echo put-role-policy) --role-name x"
    ]
);
attack!(
    defaulted_variable_operation_is_opaque,
    argv!["bash", "-c", "aws iam ${X:-put-role-policy} --role-name x"]
);
attack!(
    globbed_operation_is_opaque,
    argv!["bash", "-c", "aws iam p* --role-name x"]
);
attack!(
    brace_expanded_operation_is_opaque,
    argv!["bash", "-c", "aws iam {put-role-policy,x} --role-name x"]
);
attack!(
    substitution_inside_a_default_value_is_opaque,
    argv![
        "bash",
        "-c",
        "echo \"${X:-$(aws iam put-role-policy --role-name x)}\""
    ]
);
attack!(
    substitution_inside_arithmetic_is_opaque,
    argv![
        "bash",
        "-c",
        "echo $((1 + $(aws iam put-role-policy --role-name x)))"
    ]
);
attack!(
    trap_double_dash_action_is_read,
    argv!["bash", "-c", format!("trap -- '{PUT}' EXIT")]
);
attack!(
    awk_program_from_a_variable_is_opaque,
    argv![
        "bash",
        "-c",
        format!("X='BEGIN {{ system(\"{PUT}\") }}'; awk \"$X\"")
    ]
);
attack!(
    git_option_from_a_variable_is_opaque,
    "git push --force origin main",
    argv!["bash", "-c", "X=--force; git push \"$X\" origin main"]
);
attack!(
    sed_e_command_is_opaque,
    argv![
        "sed",
        "-n",
        "1e aws iam put-role-policy --role-name x",
        "/etc/hostname"
    ]
);
attack!(
    credential_runner_is_opaque,
    argv![
        "aws-vault",
        "exec",
        "prod",
        "--",
        "aws",
        "iam",
        "put-role-policy"
    ]
);
attack!(
    relative_symlink_after_cd_is_opaque,
    argv!["bash", "-c", "cd /tmp/bin && ./myaws iam put-role-policy"]
);
attack!(
    git_alias_to_push_is_opaque,
    "git push --force origin main",
    argv![
        "git",
        "-c",
        "alias.p=push",
        "p",
        "--force",
        "origin",
        "main"
    ]
);
attack!(
    git_ssh_command_is_opaque,
    "git push --force origin main",
    argv![
        "git",
        "-c",
        format!("core.sshCommand={PUT}"),
        "push",
        "origin",
        "main"
    ]
);
attack!(
    git_bang_alias_is_opaque,
    argv!["git", "-c", format!("alias.x=!{PUT}"), "x"]
);
attack!(
    git_unknown_subcommand_may_be_an_alias,
    "git push --force origin main",
    argv!["git", "p", "--force", "origin", "main"]
);
attack!(
    git_config_env_is_opaque,
    "git push --force origin main",
    argv!["git", "--config-env=alias.p=X", "p", "--force"]
);
attack!(
    git_rebase_exec_runs_the_script,
    argv!["git", "rebase", "-x", PUT, "main"]
);

attack!(
    terraform_apply_double_dash_destroy_is_destroy,
    "terraform destroy",
    argv!["terraform", "apply", "--destroy"]
);
attack!(
    terraform_apply_destroy_true_is_destroy,
    "terraform destroy",
    argv!["terraform", "apply", "-destroy=true", "-auto-approve"]
);

/// Under the demo policy, where `git push --force` needs approval, and with `$'...'` hiding
/// the flag.
#[test]
fn git_rewrites_are_not_easier_under_the_demo_policy() {
    for argv in [
        s(&["git", "-c", "alias.x=!git push --force", "x"]),
        s(&["bash", "-c", "git push $'--force' origin main"]),
        s(&["git", "-c", "include.path=/tmp/x", "push", "origin", "main"]),
        s(&["git", "--exec-path=/tmp/x", "push", "origin", "main"]),
        s(&["git", "push", "--receive-pack=sh -c x", "origin", "main"]),
    ] {
        assert_not_easier("git push --force origin main", argv);
    }
}

/// An opaque command's approval needs at least what every approve rule of the policy needs:
/// two from security (IAM, KMS deletion), sre and security together (terraform destroy),
/// the shortest timeout.
#[test]
fn opaque_command_needs_what_every_approve_rule_needs() {
    let env = BTreeMap::new();
    let r = classify(&CLOUD, &s(&["bash", "-c", "eval \"$X\""]), &env);
    assert_eq!(r.decision, Decision::Approve);
    let req = r.requirement.as_ref().unwrap();
    for plain in [
        PUT,
        "terraform destroy",
        "aws kms schedule-key-deletion --key-id k",
        "aws s3 cp s3://b/k .",
        "kubectl --context prod delete pod x",
    ] {
        let p = classify(&CLOUD, &words(plain), &env);
        assert!(
            req.at_least_as_strict_as(p.requirement.as_ref().unwrap()),
            "{plain}: {req:?} vs {:?}",
            p.requirement
        );
    }
    assert_eq!(req.min_approvals, 2);
    assert_eq!(req.timeout, std::time::Duration::from_secs(600));
    assert!(!req.allow_requester);
    // And it is not the old default clause: one approval from anyone.
    assert!(req.clauses.iter().all(|c| c.eligible.is_some()));
}

/// Through the real binary: `gate check` finds a symlink on the requester's PATH.
#[test]
fn symlink_on_path_is_classified_under_its_target_by_gate_check() {
    let g = common::Gate::new().policy(include_str!("../../policies/cloud-admin.yaml"));
    let bin = g.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("aws"), "#!/bin/sh\n").unwrap();
    symlink(bin.join("aws"), bin.join("myaws")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let r = g
        .env("PATH", &path)
        .args(&[
            "check",
            "--json",
            "--",
            "myaws",
            "iam",
            "put-role-policy",
            "--role-name",
            "x",
        ])
        .run();
    r.status(0).stderr(common::NO_SYSTEM_TIER);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["decision"], "approve", "{v:#}");
    assert!(
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "iam-writes"),
        "{v:#}"
    );
}

/// An AWS CLI alias (`~/.aws/cli/alias`, which the requester can write) runs whatever the file
/// says: `aws p` for `iam put-role-policy` needs what the plain command needs.
#[test]
fn aws_cli_alias_is_not_an_easier_path() {
    let g = common::Gate::new().policy(include_str!("../../policies/cloud-admin.yaml"));
    let home = g.path("home");
    std::fs::create_dir_all(home.join(".aws/cli")).unwrap();
    std::fs::write(
        home.join(".aws/cli/alias"),
        "[toplevel]\np = iam put-role-policy\n",
    )
    .unwrap();
    let r = g
        .env("HOME", home.to_str().unwrap())
        .args(&["check", "--json", "--", "aws", "p", "--role-name", "x"])
        .run();
    r.status(0).stderr(common::NO_SYSTEM_TIER);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["decision"], "approve", "{v:#}");
    assert_eq!(v["requirement"]["min_approvals"], 2, "{v:#}");
    assert!(v["opaque"].as_str().unwrap().contains("alias"), "{v:#}");
}

/// Rules that read the environment (`GATE_ENV: prod`) are judged on gate's environment; a
/// command that sets the variable for what it runs cannot step out of them.
#[test]
fn setting_a_variable_the_rules_read_is_not_an_easier_path() {
    let mut env = BTreeMap::new();
    env.insert("GATE_ENV".to_owned(), "prod".to_owned());
    let plain = classify(
        &CLOUD,
        &words("kubectl -n web scale deploy/web --replicas 0"),
        &env,
    );
    assert_eq!(plain.decision, Decision::Approve);
    for argv in [
        s(&[
            "env",
            "GATE_ENV=dev",
            "kubectl",
            "-n",
            "web",
            "scale",
            "deploy/web",
        ]),
        s(&[
            "bash",
            "-c",
            "GATE_ENV=dev kubectl -n web scale deploy/web --replicas 0",
        ]),
        s(&[
            "bash",
            "-c",
            "export GATE_ENV=dev; kubectl -n web scale deploy/web",
        ]),
        s(&[
            "env",
            "-u",
            "GATE_ENV",
            "kubectl",
            "-n",
            "web",
            "scale",
            "deploy/web",
        ]),
    ] {
        let r = classify(&CLOUD, &argv, &env);
        never_easier(&CLOUD, &plain, &r).unwrap_or_else(|e| panic!("{argv:?}\n{e}"));
    }
    // Variables no rule reads change nothing.
    let r = classify(
        &CLOUD,
        &s(&["bash", "-c", "AWS_PROFILE=dev aws s3 ls"]),
        &BTreeMap::new(),
    );
    assert_eq!(r.decision, Decision::Allow, "{:?}", r.opaque);
}

attack!(
    docker_run_with_the_command_is_opaque,
    cat(
        &[
            "docker",
            "run",
            "-v",
            "/root/.aws:/root/.aws",
            "amazon/aws-cli"
        ],
        &words(&put_args())
    )
);
attack!(
    docker_exec_with_the_command_is_opaque,
    cat(&["docker", "--context", "prod", "exec", "box"], &words(PUT))
);
attack!(
    podman_container_run_is_opaque,
    cat(&["podman", "container", "run", "img"], &words(PUT))
);
attack!(
    kubectl_exec_runs_the_command_after_the_dashes,
    cat(&["kubectl", "exec", "-n", "x", "pod", "--"], &words(PUT))
);
