//! Azure CLI (`az`) grammar.
//!
//! az commands are a path of group/command words (`az network vnet subnet
//! create`) followed only by options: there are (practically) no positional
//! arguments after the first option, and many options take several words
//! (`--tags a=b c=d`, `--ids X Y`). So, once the command path has started,
//! every non-option word after an option is treated as that option's value.
//! Before the first word only global options can appear; those come from
//! [`GLOBAL_VALUED`] / [`GLOBAL_BOOLEANS`] (anything else: one value).
//! Payload files (`@file` values, `--template-file`) are not extracted.

use super::{Parsed, is_option};

/// Global options that take a value.
pub const GLOBAL_VALUED: &[&str] = &["--subscription", "--output", "-o", "--query"];

/// Global options that take none.
pub const GLOBAL_BOOLEANS: &[&str] = &[
    "--debug",
    "--verbose",
    "--only-show-errors",
    "--help",
    "-h",
    "--version",
    "--yes",
    "-y",
];

pub fn parse(args: &[String]) -> Parsed {
    let mut out = Parsed::default();
    // Set once an option has been seen after the command path started.
    let mut in_options = false;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            out.words.extend(args[i..].iter().cloned());
            break;
        }
        if !is_option(arg) {
            if !in_options {
                out.words.push(arg.clone());
            }
            continue;
        }
        if !out.words.is_empty() {
            in_options = true;
            continue;
        }
        // Global option before the command path; unknown ones are assumed to
        // take a value, as most az options do. argparse refuses `-x` values.
        let opt = arg.as_str();
        let valued = GLOBAL_VALUED.contains(&opt) || !GLOBAL_BOOLEANS.contains(&opt);
        if valued && !opt.contains('=') && args.get(i).is_some_and(|next| !is_option(next)) {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            ("group delete -n rg --yes", &["group", "delete"]),
            (
                "--subscription s -o json vm delete -g rg -n vm1",
                &["vm", "delete"],
            ),
            (
                "--debug role assignment create --assignee a --role Owner --scope /s/x",
                &["role", "assignment", "create"],
            ),
            (
                "resource tag --ids a b --tags x=1 y=2",
                &["resource", "tag"],
            ),
            ("vm list -d --query=[].name", &["vm", "list"]),
            (
                "vm run-command invoke -n x --scripts -- a b",
                &["vm", "run-command", "invoke", "a", "b"],
            ),
            ("-o", &[]),
        ];
        for (line, want) in cases {
            let got = parse(&argv(line));
            assert_eq!(got.words, *want, "{line}");
            assert!(got.payload_files.is_empty());
        }
    }
}
