//! gcloud grammar (argparse-based, long options).
//!
//! gcloud commands do have positionals (`gcloud compute instances delete
//! VM`), and most of their flags take a value, so an unknown `--flag` is
//! assumed to take one value, unless it is in [`BOOLEANS`] or is shaped like
//! a boolean (`--no-X`, `--enable-X`, `--disable-X`). As in argparse, a
//! following word that looks like an option (`-x`, but not `-5`) is never
//! taken as a value. Short options: only `-q` and `-h` exist (booleans).

use super::{Grammar, Parsed, scan};

/// Known value-taking options (documentation; unknown options take a value too).
pub const VALUED: &[&str] = &[
    "--access-token-file",
    "--account",
    "--billing-project",
    "--configuration",
    "--filter",
    "--flags-file",
    "--flatten",
    "--format",
    "--http-timeout",
    "--impersonate-service-account",
    "--limit",
    "--page-size",
    "--project",
    "--region",
    "--sort-by",
    "--trace-token",
    "--verbosity",
    "--zone",
];

/// Known boolean options (global and common command flags).
pub const BOOLEANS: &[&str] = &[
    "--help",
    "--quiet",
    "--log-http",
    "--user-output-enabled",
    "--uri",
    "--async",
    "--all",
    "--recursive",
    "--force",
    "--dry-run",
    "--allow-unauthenticated",
    "--internal-ip",
    "--tunnel-through-iap",
    "--preemptible",
    "--spot",
    "--update-adc",
    "--brief",
    "--activate",
    "--show-all",
];

struct Gcloud;

impl Grammar for Gcloud {
    fn takes_value(&self, _words: &[String], opt: &str) -> bool {
        if !opt.starts_with("--") {
            return false;
        }
        if VALUED.contains(&opt) {
            return true;
        }
        let boolean_shape = ["--no-", "--enable-", "--disable-"]
            .iter()
            .any(|p| opt.starts_with(p));
        !(boolean_shape || BOOLEANS.contains(&opt))
    }

    fn accepts_value(&self, next: &str) -> bool {
        // argparse: `-x` is an option, `-5` / `-1.5` a (negative number) value.
        !next.starts_with('-') || next == "-" || next[1..].starts_with(|c: char| c.is_ascii_digit())
    }
}

pub fn parse(args: &[String]) -> Parsed {
    scan(args, &Gcloud)
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            (
                "--project p compute instances delete vm1 --zone z -q",
                &["compute", "instances", "delete", "vm1"],
            ),
            (
                "compute ssh --zone=z vm --tunnel-through-iap -- -L 80:x:80",
                &["compute", "ssh", "vm", "-L", "80:x:80"],
            ),
            (
                "projects add-iam-policy-binding p --member user:a --role roles/owner",
                &["projects", "add-iam-policy-binding", "p"],
            ),
            (
                "--verbosity debug --quiet config set project p",
                &["config", "set", "project", "p"],
            ),
            (
                "container clusters create c --enable-autoscaling --num-nodes 3 --no-enable-ip-alias",
                &["container", "clusters", "create", "c"],
            ),
            (
                "run deploy svc --image i --allow-unauthenticated",
                &["run", "deploy", "svc"],
            ),
            ("--format -q projects list", &["projects", "list"]),
            ("x --offset -5 y --region - z", &["x", "y", "z"]),
            ("--project", &[]),
        ];
        for (line, want) in cases {
            let got = parse(&argv(line));
            assert_eq!(got.words, *want, "{line}");
            assert!(got.payload_files.is_empty());
        }
    }
}
