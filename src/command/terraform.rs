//! terraform / OpenTofu grammar (Go `flag` package).
//!
//! Go flags have no short clusters: `-name` and `--name` are the same flag,
//! a value is `-name=value` or `-name value`, and booleans take a value only
//! as `-name=false`. The global `-chdir=DIR` exists only in `=` form.
//! Go's parser stops at the first positional, but terraform would reject
//! options after positionals anyway, so options are recognised anywhere.
//!
//! Words: `apply` with `-destroy` (any Go spelling: `-destroy`, `--destroy`, `-destroy=true`,
//! `-destroy=1`; not `-destroy=false`) reads as `destroy`, the command terraform documents as
//! its alias, so a policy's `destroy` rule covers both spellings.
//!
//! Payload: positionals after `apply` (the saved plan file, `apply PLANFILE`) and
//! `-var-file` files, resolved against `-chdir` when one was given (terraform reads them
//! from there), so the digest covers the files terraform will actually read.

use super::{Parsed, is_option};

/// Flags (name without dashes) that take a value; every other flag is boolean.
pub const VALUED: &[&str] = &[
    "backend-config",
    "backup",
    "cloud-run",
    "config",
    "exclude",
    "filter",
    "from-module",
    "fs-mirror",
    "generate-config-out",
    "junit-xml",
    "lock-timeout",
    "lockfile",
    "module-depth",
    "net-mirror",
    "out",
    "parallelism",
    "plan",
    "platform",
    "plugin-dir",
    "provider",
    "replace",
    "state",
    "state-out",
    "target",
    "test-directory",
    "type",
    "var",
    "var-file",
];

pub fn parse(args: &[String]) -> Parsed {
    let mut out = Parsed::default();
    let mut chdir: Option<&str> = None;
    let mut destroy = false;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            for rest in &args[i..] {
                push_positional(&mut out, rest, chdir);
            }
            break;
        }
        if !is_option(arg) {
            push_positional(&mut out, arg, chdir);
            continue;
        }
        let name = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        if let Some(dir) = name.strip_prefix("chdir=") {
            chdir = Some(dir).filter(|d| !d.is_empty());
            continue;
        }
        if let Some(file) = name.strip_prefix("var-file=") {
            out.payload_files.push(under(chdir, file));
            continue;
        }
        let (flag, value) = match name.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (name, None),
        };
        if flag == "destroy" {
            destroy = value.is_none_or(go_bool);
            continue;
        }
        // `-name=value` is complete; `-name value` consumes the next word
        // (Go's flag package takes it whatever it looks like, except `--`).
        if !name.contains('=') && VALUED.contains(&name) && args.get(i).is_some_and(|v| v != "--") {
            if name == "var-file" {
                out.payload_files.push(under(chdir, &args[i]));
            }
            i += 1;
        }
    }
    if destroy && out.words.first().is_some_and(|w| w == "apply") {
        out.words[0] = "destroy".to_owned();
    }
    out
}

/// Go's `strconv.ParseBool`, where anything it would refuse counts as true (terraform then
/// refuses to run; gate never reads less than it might do).
fn go_bool(v: &str) -> bool {
    !matches!(v, "0" | "f" | "F" | "false" | "FALSE" | "False")
}

/// A path as terraform resolves it after `-chdir`.
fn under(chdir: Option<&str>, file: &str) -> String {
    match chdir {
        Some(dir) if !file.starts_with('/') => format!("{}/{file}", dir.trim_end_matches('/')),
        _ => file.to_string(),
    }
}

fn push_positional(out: &mut Parsed, word: &str, chdir: Option<&str>) {
    if out.words.first().is_some_and(|w| w == "apply") {
        out.payload_files.push(under(chdir, word));
    }
    out.words.push(word.to_string());
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words_and_payload() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "-chdir=infra apply -auto-approve plan.tfplan",
                &["apply", "plan.tfplan"],
                &["infra/plan.tfplan"],
            ),
            (
                "apply -var a=b -var-file x.tfvars -target=mod.x -lock-timeout 5s",
                &["apply"],
                &["x.tfvars"],
            ),
            (
                "apply --var-file=x.tfvars --parallelism 2 -input=false ./p.out",
                &["apply", "./p.out"],
                &["x.tfvars", "./p.out"],
            ),
            ("plan -out tf.plan -refresh=false -destroy", &["plan"], &[]),
            (
                "destroy -target aws_iam_role.r -auto-approve",
                &["destroy"],
                &[],
            ),
            (
                "state rm -state s.tfstate -backup=- module.x",
                &["state", "rm", "module.x"],
                &[],
            ),
            (
                "import -var-file v aws_s3_bucket.b name",
                &["import", "aws_s3_bucket.b", "name"],
                &["v"],
            ),
            (
                "workspace delete -force prod",
                &["workspace", "delete", "prod"],
                &[],
            ),
            ("init -backend-config key=v -upgrade", &["init"], &[]),
            ("-version", &[], &[]),
            ("apply -- -odd", &["apply", "-odd"], &["-odd"]),
            ("apply -var -- p", &["apply", "p"], &["p"]),
            ("-chdir= -var", &[], &[]),
        ];
        for (line, words, payload) in cases {
            let got = parse(&argv(line));
            assert_eq!(got.words, *words, "{line}");
            assert_eq!(got.payload_files, *payload, "{line}");
        }
    }

    #[test]
    fn apply_destroy_is_destroy_in_every_spelling() {
        for line in [
            "destroy",
            "apply -destroy",
            "apply --destroy",
            "apply -destroy=true",
            "apply --destroy=1",
            "apply -auto-approve -destroy=True",
            "-chdir=infra apply -destroy",
            "apply -destroy=bogus",
        ] {
            assert_eq!(parse(&argv(line)).words, ["destroy"], "{line}");
        }
        for line in [
            "apply -destroy=false",
            "apply --destroy=0 -destroy=F",
            "apply",
        ] {
            assert_eq!(parse(&argv(line)).words, ["apply"], "{line}");
        }
        assert_eq!(parse(&argv("plan -destroy")).words, ["plan"]);
        let p = parse(&argv("apply -destroy p.out"));
        assert_eq!(p.words, ["destroy", "p.out"]);
        assert_eq!(p.payload_files, ["p.out"]);
    }

    #[test]
    fn tofu_is_terraform() {
        let args = argv("apply plan.out");
        assert_eq!(super::super::parse("tofu", &args), parse(&args));
    }
}
