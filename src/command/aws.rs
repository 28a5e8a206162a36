//! AWS CLI (v1/v2) grammar.
//!
//! The aws CLI has only `--long` options (argparse). Rule used here:
//! - Before the operation (`aws [globals] SERVICE [globals] OPERATION`), an
//!   option is a known boolean, an optional-value option (argparse `nargs='?'`,
//!   value taken only if it is one of the option's constants), or else takes
//!   exactly one value.
//! - Generated API commands (`aws iam put-role-policy ...`) have no positional
//!   arguments after the operation, but list parameters take several words
//!   (`--instance-ids i-1 i-2`, `--tags Key=a,Value=b Key=c,Value=d`). So once
//!   service and operation are known, every non-option word following a
//!   value-taking option is absorbed as one of its values. Only words directly
//!   after the operation or after a known boolean stay positional
//!   (`aws ec2 wait instance-running`, `aws iam list-users help`).
//! - Hand-written customizations that DO take positionals (`s3 cp SRC DST`,
//!   `configure set KEY VALUE`, `ddb put TABLE ITEM`, `logs tail GROUP`) use the
//!   one-value rule throughout, with their booleans listed in [`BOOLEANS`].
//!
//! A word whose value starts with `file://` or `fileb://` names a payload file
//! (aws itself only recognises the lowercase prefixes).

use super::{Parsed, is_option};

/// Global options that take a value (`aws help config-vars`, `aws help`).
pub const GLOBAL_VALUED: &[&str] = &[
    "--profile",
    "--region",
    "--output",
    "--endpoint-url",
    "--query",
    "--cli-input-json",
    "--cli-input-yaml",
    "--ca-bundle",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--color",
    "--cli-binary-format",
];

/// Options that never take a value: global booleans, the `--no-X` halves of
/// boolean parameters (also matched by prefix), and the s3/logs
/// customization booleans.
pub const BOOLEANS: &[&str] = &[
    // global
    "--debug",
    "--no-verify-ssl",
    "--no-paginate",
    "--no-sign-request",
    "--no-cli-pager",
    "--cli-auto-prompt",
    "--no-cli-auto-prompt",
    "--version",
    "--help",
    // common API booleans
    "--dry-run",
    "--force",
    // s3 high-level commands
    "--recursive",
    "--dryrun",
    "--quiet",
    "--follow-symlinks",
    "--only-show-errors",
    "--delete",
    "--exact-timestamps",
    "--size-only",
    "--ignore-glacier-warnings",
    "--force-glacier-transfer",
    "--human-readable",
    "--summarize",
    "--validate-same-s3-paths",
    // logs tail
    "--follow",
];

/// argparse `nargs='?'` options: the next word is their value only if it is
/// one of these constants (e.g. `--sse` alone means AES256).
const OPTIONAL: &[(&str, &[&str])] = &[
    (
        "--generate-cli-skeleton",
        &["input", "output", "yaml-input"],
    ),
    ("--sse", &["AES256", "aws:kms", "aws:kms:dsse"]),
    ("--sse-c", &["AES256"]),
    ("--sse-c-copy-source", &["AES256"]),
    ("--request-payer", &["requester"]),
];

/// Customizations with positional arguments: one value per option.
fn takes_positionals(words: &[String]) -> bool {
    match words.first().map(String::as_str) {
        Some("s3" | "configure" | "ddb" | "history") => true,
        Some("logs") => words.get(1).is_some_and(|op| op == "tail"),
        _ => false,
    }
}

fn is_boolean(opt: &str) -> bool {
    BOOLEANS.contains(&opt) || opt.starts_with("--no-")
}

/// Which following non-option words belong to the last option.
#[derive(Clone, Copy, PartialEq)]
enum Absorb {
    Nothing,
    /// An API-command list parameter: every word.
    All,
    /// s3 `--grants` (`nargs='+'`): words shaped `Permission=Grantee_Type=ID`.
    WithEq,
}

pub fn parse(args: &[String]) -> Parsed {
    let mut out = Parsed::default();
    let mut absorb = Absorb::Nothing;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            out.words.extend(args[i..].iter().cloned());
            break;
        }
        if !is_option(arg) {
            match absorb {
                Absorb::All => note_value(arg, &mut out.payload_files),
                Absorb::WithEq if arg.contains('=') => {}
                _ => {
                    absorb = Absorb::Nothing;
                    out.words.push(arg.clone());
                }
            }
            continue;
        }
        absorb = Absorb::Nothing;
        if !arg.starts_with("--") {
            continue; // aws has no short options; `-h` etc. are skipped alone
        }
        if let Some((_, value)) = arg.split_once('=') {
            note_value(value, &mut out.payload_files);
            continue;
        }
        let opt = arg.as_str();
        if is_boolean(opt) {
            continue;
        }
        if let Some((_, consts)) = OPTIONAL.iter().find(|(name, _)| *name == opt) {
            if args
                .get(i)
                .is_some_and(|next| consts.contains(&next.as_str()))
            {
                i += 1;
            }
            continue;
        }
        // Value-taking (known global or, by aws convention, any other option).
        // argparse refuses a following `--x` as the value.
        if let Some(value) = args.get(i).filter(|next| !next.starts_with("--")) {
            note_value(value, &mut out.payload_files);
            i += 1;
        }
        let api_command = out.words.len() >= 2 && !takes_positionals(&out.words);
        absorb = if api_command {
            Absorb::All
        } else if opt == "--grants" {
            Absorb::WithEq
        } else {
            Absorb::Nothing
        };
    }
    out
}

fn note_value(value: &str, payload: &mut Vec<String>) {
    let path = value
        .strip_prefix("file://")
        .or_else(|| value.strip_prefix("fileb://"));
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        payload.push(path.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            (
                "--profile prod iam put-role-policy --role-name x --policy-document file://p.json",
                &["iam", "put-role-policy"],
            ),
            (
                "--debug --region=eu-west-1 iam list-users",
                &["iam", "list-users"],
            ),
            (
                "iam --profile p --debug delete-role --role-name r",
                &["iam", "delete-role"],
            ),
            (
                "ec2 describe-instances --instance-ids i-1 i-2 --dry-run",
                &["ec2", "describe-instances"],
            ),
            (
                "ec2 create-tags --resources r --tags Key=a,Value=b Key=c,Value=d",
                &["ec2", "create-tags"],
            ),
            (
                "ec2 wait instance-running --instance-ids i-1",
                &["ec2", "wait", "instance-running"],
            ),
            ("iam list-users help", &["iam", "list-users", "help"]),
            (
                "s3 cp --recursive ./dir s3://b/k --exclude *.tmp",
                &["s3", "cp", "./dir", "s3://b/k"],
            ),
            (
                "s3 cp a s3://b/ --sse --acl private",
                &["s3", "cp", "a", "s3://b/"],
            ),
            (
                "s3 cp --sse aws:kms a s3://b/",
                &["s3", "cp", "a", "s3://b/"],
            ),
            (
                "s3 cp - s3://b/k --expected-size 5",
                &["s3", "cp", "-", "s3://b/k"],
            ),
            (
                "s3 cp a b --grants read=uri=x full=id=y c",
                &["s3", "cp", "a", "b", "c"],
            ),
            (
                "s3 rm s3://b --recursive --profile p",
                &["s3", "rm", "s3://b"],
            ),
            (
                "s3 sync . s3://b --delete --no-progress",
                &["s3", "sync", ".", "s3://b"],
            ),
            (
                "configure set region eu-west-1 --profile p",
                &["configure", "set", "region", "eu-west-1"],
            ),
            (
                "logs tail --follow grp --since 1h",
                &["logs", "tail", "grp"],
            ),
            (
                "sts get-caller-identity --generate-cli-skeleton output",
                &["sts", "get-caller-identity"],
            ),
            ("--output -- iam x", &["iam", "x"]),
            (
                "iam list-users -- --weird",
                &["iam", "list-users", "--weird"],
            ),
            ("--profile", &[]),
            ("--x= iam", &["iam"]),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&argv(line)).words, *want, "{line}");
        }
    }

    #[test]
    fn payload_files() {
        let cases: &[(&str, &[&str])] = &[
            (
                "iam put-role-policy --role-name x --policy-document file://p.json",
                &["p.json"],
            ),
            (
                "lambda update-function-code --zip-file=fileb://../f.zip",
                &["../f.zip"],
            ),
            (
                "iam create-role --cli-input-json file:///abs/in.json",
                &["/abs/in.json"],
            ),
            (
                "x y --a file://1 file://2 --b FILE://no --c file://",
                &["1", "2"],
            ),
            ("s3 cp file://not-a-payload s3://b", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&argv(line)).payload_files, *want, "{line}");
        }
    }
}
