//! helm (v3/v4) grammar: cobra/pflag options, see `scan` in mod.rs.
//!
//! Unknown options are assumed boolean (see kubectl.rs for why). Some letters
//! mean different things per subcommand (`words[0]`):
//! `-a` is `--api-versions` (value) for install/upgrade/template but `--all`
//! elsewhere; `-l` is `--selector` (value) for list but `--versions` for
//! search; `-d` is `--date` for list but `--destination` (value) for
//! pull/package; `-f` is `--filter` (value, not a file) for list.
//! `--dry-run` and `--wait` have a NoOptDefVal in recent
//! versions (value only with `=`), so they count as booleans.
//!
//! Payload: values of `-f` / `--values` (a string slice: `-f a.yaml,b.yaml`
//! names two files), minus stdin `-` and http(s) URLs, which helm also accepts.

use super::{Grammar, Parsed, push_local_files, scan};

/// Options that take a value, whatever the subcommand.
pub const VALUED: &[&str] = &[
    // global
    "--burst-limit",
    "--content-cache",
    "--kube-apiserver",
    "--kube-as-group",
    "--kube-as-user",
    "--kube-ca-file",
    "--kube-context",
    "--kube-tls-server-name",
    "--kube-token",
    "--kubeconfig",
    "--namespace",
    "-n",
    "--qps",
    "--registry-config",
    "--repository-cache",
    "--repository-config",
    // values
    "--values",
    "-f",
    "--set",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--set-string",
    // chart source and auth
    "--ca-file",
    "--cert-file",
    "--key-file",
    "--keyring",
    "--password",
    "--repo",
    "--username",
    "--version",
    // install/upgrade/template/rollback/uninstall
    "--api-versions",
    "--cascade",
    "--description",
    "--history-max",
    "--kube-version",
    "--labels",
    "--name-template",
    "--output-dir",
    "--post-renderer",
    "--post-renderer-args",
    "--show-only",
    "-s",
    "--timeout",
    // list/history/get/status/show
    "--filter",
    "--jsonpath",
    "--max",
    "-m",
    "--offset",
    "--output",
    "-o",
    "--revision",
    "--selector",
    "--template",
    "--time-format",
    // pull/package/repo
    "--app-version",
    "--destination",
    "--key",
    "--untardir",
];

struct Helm;

impl Grammar for Helm {
    fn takes_value(&self, words: &[String], opt: &str) -> bool {
        let sub = words.first().map(String::as_str).unwrap_or("");
        match opt {
            "-a" => matches!(sub, "install" | "upgrade" | "template"),
            "-l" => matches!(sub, "list" | "ls"),
            "-d" => matches!(sub, "pull" | "fetch" | "package"),
            _ => VALUED.contains(&opt),
        }
    }

    fn on_value(&self, words: &[String], opt: &str, value: &str, payload: &mut Vec<String>) {
        // `helm list -f` is `--filter` (a regex), not a values file.
        let listing = words.first().is_some_and(|w| w == "list" || w == "ls");
        if opt == "--values" || (opt == "-f" && !listing) {
            push_local_files(value, payload);
        }
    }
}

pub fn parse(args: &[String]) -> Parsed {
    scan(args, &Helm)
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            (
                "upgrade --install rel ./chart -n prod -f v.yaml --set a=b --wait",
                &["upgrade", "rel", "./chart"],
            ),
            (
                "-nkube-system --kube-context=c uninstall rel --keep-history",
                &["uninstall", "rel"],
            ),
            (
                "install rel repo/chart --version 1.2.3 --repo https://r --create-namespace",
                &["install", "rel", "repo/chart"],
            ),
            (
                "template rel . -a v1 -s templates/x.yaml",
                &["template", "rel", "."],
            ),
            ("list -a -A -l owner=helm -o json", &["list"]),
            ("ls -ad", &["ls"]),
            ("search repo -l nginx", &["search", "repo", "nginx"]),
            ("pull repo/c -d out --untar", &["pull", "repo/c"]),
            (
                "rollback rel 3 --dry-run=server --timeout 5m",
                &["rollback", "rel", "3"],
            ),
            (
                "upgrade -i rel c -- --weird",
                &["upgrade", "rel", "c", "--weird"],
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&argv(line)).words, *want, "{line}");
        }
    }

    #[test]
    fn payload_files() {
        let cases: &[(&str, &[&str])] = &[
            (
                "install r c -f v.yaml --values=w.yaml --values x.yaml -fy.yaml",
                &["v.yaml", "w.yaml", "x.yaml", "y.yaml"],
            ),
            (
                "upgrade r c -f a.yaml,b.yaml -f - -f https://x/v.yaml",
                &["a.yaml", "b.yaml"],
            ),
            ("install r c --set-file k=secret.txt", &[]),
            ("list -f ^web --all", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&argv(line)).payload_files, *want, "{line}");
        }
    }
}
