//! Unit tests for the compiled matchers: the glob dialect every policy field uses, which
//! `program` patterns count as literal names, what a rule's conditions mean together, and that
//! the per-program [`LazyMatcher`] answers exactly what one [`Matcher`] over all rules answers.

use std::collections::BTreeMap;

use super::*;
use crate::policy::diag::Pos;
use crate::policy::schema::At;

fn at(s: &str) -> At<String> {
    At {
        value: s.to_owned(),
        pos: Pos::default(),
    }
}

/// A rule's `match:` written as (key, value) pairs: `args`, `args_any` repeat; `env` is
/// `NAME=GLOB`.
fn spec(conditions: &[(&str, &str)]) -> Match {
    let mut m = Match::default();
    for &(key, value) in conditions {
        match key {
            "program" => m.program = Some(at(value)),
            "args" => m.args.push(at(value)),
            "args_any" => m.args_any.push(at(value)),
            "regex" => m.regex = Some(at(value)),
            "env" => {
                let (name, glob) = value.split_once('=').expect("env is NAME=GLOB");
                m.env.push((name.to_owned(), at(glob)));
            }
            "cwd" => m.cwd = Some(at(value)),
            "user" => m.user = Some(at(value)),
            "host" => m.host = Some(at(value)),
            other => panic!("no condition `{other}`"),
        }
    }
    m
}

/// A command as classification sees it.
struct Cmd {
    program: &'static str,
    words: Vec<String>,
    line: String,
    env: BTreeMap<String, String>,
    cwd: &'static str,
    user: &'static str,
    host: &'static str,
}

fn cmd(program: &'static str, words: &[&str]) -> Cmd {
    let mut line = program.to_owned();
    for w in words {
        line.push(' ');
        line.push_str(w);
    }
    Cmd {
        program,
        words: words.iter().map(|w| w.to_string()).collect(),
        line,
        env: BTreeMap::new(),
        cwd: "/home/ann/src",
        user: "ann",
        host: "build-1",
    }
}

impl Cmd {
    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            program: self.program,
            words: &self.words,
            command_line: &self.line,
            env: &self.env,
            cwd: self.cwd,
            user: self.user,
            host: self.host,
        }
    }
}

fn eager(specs: &[Match]) -> Matcher {
    match Matcher::build(specs.iter()) {
        Ok(m) => m,
        Err(_) => panic!("the rules compile"),
    }
}

fn lazy(specs: &[Match]) -> LazyMatcher {
    match LazyMatcher::build(specs.to_vec()) {
        Ok(m) => m,
        Err(_) => panic!("the rules compile"),
    }
}

/// The rules both matchers find for `c`, checked to agree.
fn matching(specs: &[Match], c: &Cmd) -> Vec<usize> {
    let all = eager(specs).matching(&c.subject());
    let Ok(grouped) = lazy(specs).matching(&c.subject()) else {
        panic!("the lazy matcher failed on {:?}", c.line);
    };
    assert_eq!(
        all, grouped,
        "eager and lazy matchers disagree on {:?}",
        c.line
    );
    all
}

#[test]
fn policy_globs_cross_slashes_expand_braces_and_escape_with_backslash() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "a/b/c", true),
        ("/srv/*", "/srv/app/deep/dir", true),
        ("{put,attach}-*", "attach-role-policy", true),
        ("{put,attach}-*", "get-role", false),
        ("x{,-dev}", "x", true),
        ("x{,-dev}", "x-dev", true),
        (r"\*", "*", true),
        (r"\*", "anything", false),
        ("?", "ab", false),
        ("[ab]c", "bc", true),
    ];
    for &(pattern, value, want) in cases {
        let Ok(g) = glob(pattern) else {
            panic!("`{pattern}` should compile")
        };
        assert_eq!(
            g.compile_matcher().is_match(value),
            want,
            "`{pattern}` on {value:?}"
        );
        let m = matcher(pattern).expect("a valid pattern gives a matcher");
        assert_eq!(m.is_match(value), want, "matcher(`{pattern}`) on {value:?}");
    }
    assert!(glob("{unclosed").is_err());
    assert!(matcher("[z-a]").is_none());
}

#[test]
fn only_plain_words_and_brace_lists_of_them_are_literal_programs() {
    let cases: &[(&str, Option<&[&str]>)] = &[
        ("aws", Some(&["aws"])),
        ("{kubectl,oc}", Some(&["kubectl", "oc"])),
        ("/usr/bin/rm", Some(&["/usr/bin/rm"])),
        ("terraform-1.5", Some(&["terraform-1.5"])),
        ("aws*", None),
        ("a?s", None),
        ("[ab]ws", None),
        ("{kubectl,oc*}", None),
        ("{kubectl,}", None),
        ("{kubectl}x", None),
        ("kubectl,oc", None),
        (r"a\ws", None),
        ("{a,{b,c}}", None),
        ("", None),
    ];
    for &(pattern, want) in cases {
        assert_eq!(
            literal_programs(pattern),
            want.map(<[&str]>::to_vec),
            "{pattern:?}"
        );
    }
}

#[test]
fn every_condition_of_a_rule_must_hold() {
    let specs = [spec(&[
        ("program", "kubectl"),
        ("args_any", "apply"),
        ("args_any", "delete"),
        ("env", "GATE_ENV=prod"),
        ("cwd", "/home/*"),
        ("user", "ann"),
        ("host", "build-*"),
    ])];
    let prod = |words: &[&str]| cmd("kubectl", words).env("GATE_ENV", "prod");
    assert_eq!(matching(&specs, &prod(&["apply", "-f", "x"])), [0]);
    assert_eq!(matching(&specs, &prod(&["delete", "pod"])), [0]);
    // Each condition failing alone is enough to miss.
    assert!(matching(&specs, &prod(&["get", "pods"])).is_empty());
    assert!(matching(&specs, &cmd("kubectl", &["apply"]).env("GATE_ENV", "dev")).is_empty());
    assert!(
        matching(&specs, &cmd("kubectl", &["apply"])).is_empty(),
        "no GATE_ENV at all"
    );
    assert!(matching(&specs, &cmd("oc", &["apply"]).env("GATE_ENV", "prod")).is_empty());
    let mut elsewhere = prod(&["apply"]);
    elsewhere.cwd = "/srv";
    assert!(matching(&specs, &elsewhere).is_empty());
    let mut bob = prod(&["apply"]);
    bob.user = "bob";
    assert!(matching(&specs, &bob).is_empty());
    let mut laptop = prod(&["apply"]);
    laptop.host = "laptop";
    assert!(matching(&specs, &laptop).is_empty());
}

#[test]
fn args_are_a_prefix_and_args_any_looks_at_the_next_word() {
    let specs = [
        spec(&[("program", "aws"), ("args", "iam"), ("args", "put-*")]),
        spec(&[
            ("program", "aws"),
            ("args", "s3"),
            ("args_any", "rm"),
            ("args_any", "rb"),
        ]),
        spec(&[("program", "aws"), ("args_any", "iam")]),
    ];
    let cases: &[(&[&str], &[usize])] = &[
        (&["iam", "put-role-policy", "--role-name", "x"], &[0, 2]),
        (&["iam", "put-role-policy"], &[0, 2]),
        (&["iam"], &[2]),
        (&["iam", "get-role"], &[2]),
        // A prefix, not a search: the words must be at their positions.
        (&["sts", "iam", "put-role-policy"], &[]),
        (&["s3", "rm", "s3://b/k"], &[1]),
        (&["s3", "rb"], &[1]),
        (&["s3", "ls", "rm"], &[]),
        (&["s3"], &[]),
        (&[], &[]),
    ];
    for &(words, want) in cases {
        assert_eq!(matching(&specs, &cmd("aws", words)), want, "aws {words:?}");
    }
}

#[test]
fn a_glob_matching_several_words_counts_once_per_rule() {
    // Two `env` globs of one rule, and a brace list that matches a word twice over, must not
    // add up to the count of another condition that did not hold.
    let specs = [spec(&[
        ("program", "{deploy,deploy}"),
        ("args_any", "{prod,prod*}"),
        ("args_any", "p*"),
        ("user", "root"),
    ])];
    assert!(matching(&specs, &cmd("deploy", &["prod"])).is_empty());
    let mut root = cmd("deploy", &["prod"]);
    root.user = "root";
    assert_eq!(matching(&specs, &root), [0]);
}

#[test]
fn regex_runs_on_the_command_line_and_rules_without_conditions_match_everything() {
    let specs = [
        spec(&[("program", "rm"), ("regex", r"(^|\s)-\w*r\w*\s+/(\s|$)")]),
        spec(&[]),
        spec(&[("regex", "password=")]),
    ];
    assert_eq!(matching(&specs, &cmd("rm", &["-rf", "/"])), [0, 1]);
    assert_eq!(matching(&specs, &cmd("rm", &["-rf", "/tmp/x"])), [1]);
    assert_eq!(
        matching(&specs, &cmd("curl", &["-d", "password=x"])),
        [1, 2]
    );
    assert_eq!(matching(&specs, &cmd("ls", &[])), [1]);
}

#[test]
fn results_come_in_rule_order_across_literal_and_general_groups() {
    let specs = [
        spec(&[("program", "*")]),
        spec(&[("program", "aws")]),
        spec(&[("program", "aw?")]),
        spec(&[("program", "{aws,gcloud}")]),
        spec(&[("user", "ann")]),
        spec(&[("program", "gcloud")]),
    ];
    assert_eq!(matching(&specs, &cmd("aws", &[])), [0, 1, 2, 3, 4]);
    assert_eq!(matching(&specs, &cmd("gcloud", &[])), [0, 3, 4, 5]);
    assert_eq!(matching(&specs, &cmd("az", &[])), [0, 4]);
}

#[test]
fn concerns_says_which_programs_some_rule_can_match() {
    let concerns = |specs: &[Match], program: &str| {
        let (all, grouped) = (
            eager(specs).concerns(program),
            lazy(specs).concerns(program),
        );
        assert_eq!(
            all, grouped,
            "eager and lazy matchers disagree on {program}"
        );
        all
    };
    let literal = [spec(&[("program", "aws")]), spec(&[("program", "kube*")])];
    assert!(concerns(&literal, "aws"));
    assert!(concerns(&literal, "kubectl"));
    assert!(!concerns(&literal, "rm"));
    // A rule without `program` may match any program.
    let any = [spec(&[("program", "aws")]), spec(&[("user", "ann")])];
    assert!(concerns(&any, "rm"));
}

#[test]
fn env_names_are_every_variable_a_rule_reads_sorted_once() {
    let specs = [
        spec(&[("program", "kubectl"), ("env", "KUBECONFIG=*prod*")]),
        spec(&[("env", "GATE_ENV=prod"), ("env", "AWS_PROFILE=admin")]),
        spec(&[("program", "aws"), ("env", "GATE_ENV=prod")]),
    ];
    let want = ["AWS_PROFILE", "GATE_ENV", "KUBECONFIG"];
    assert_eq!(eager(&specs).env_names(), want);
    assert_eq!(lazy(&specs).env_names(), want);
}

#[test]
fn a_program_group_that_cannot_compile_fails_at_its_first_use_only() {
    // Validation normally catches a bad regex first; this pins what the matcher does if one
    // slips through: the rules of `aws` cannot be decided, so matching says so (and the caller
    // refuses the command) rather than answering "no rule matched".
    let specs = [
        spec(&[("program", "aws"), ("regex", "(")]),
        spec(&[("program", "ls")]),
    ];
    let m = lazy(&specs);
    assert!(m.matching(&cmd("aws", &["s3", "ls"]).subject()).is_err());
    let Ok(ls) = m.matching(&cmd("ls", &[]).subject()) else {
        panic!("another program's group is unaffected");
    };
    assert_eq!(ls, [1]);
    // Built eagerly, the same rules fail at once.
    assert!(Matcher::build(specs.iter()).is_err());
    // A general rule is compiled at load, so its error is a load error.
    assert!(LazyMatcher::build(vec![spec(&[("program", "a*"), ("regex", "(")])]).is_err());
}
