//! kubectl (and `oc`) grammar: cobra/pflag options, see `scan` in mod.rs.
//!
//! Unknown options are assumed boolean (a wrongly assumed boolean leaves its
//! value as an extra word; a wrongly assumed value option would hide a real
//! positional), so [`VALUED`] lists the value-taking options broadly.
//! Flags with a pflag "NoOptDefVal" (`--dry-run`, `--cascade`, `--validate`)
//! take a value only as `--flag=value`, so they count as booleans here.
//! Subcommand-specific letters: `logs -f` is `--follow` and `logs -p` is
//! `--previous` (booleans), `proxy -w/-u/-P` take values.
//!
//! Payload: values of `-f` / `--filename` (a pflag string slice, so
//! `-f a.yaml,b.yaml` names two files), minus stdin `-` and http(s) URLs.

use super::{Grammar, Parsed, push_local_files, scan};

/// Options that take a value, global and per-command.
pub const VALUED: &[&str] = &[
    // global (kubectl options)
    "--as",
    "--as-group",
    "--as-uid",
    "--cache-dir",
    "--certificate-authority",
    "--client-certificate",
    "--client-key",
    "--cluster",
    "--context",
    "--kubeconfig",
    "--log-flush-frequency",
    "--namespace",
    "-n",
    "--password",
    "--profile",
    "--profile-output",
    "--request-timeout",
    "--server",
    "-s",
    "--tls-server-name",
    "--token",
    "--user",
    "--username",
    "--v",
    "-v",
    "--vmodule",
    // resource selection and output
    "--chunk-size",
    "--field-selector",
    "--filename",
    "-f",
    "--for",
    "--kustomize",
    "-k",
    "--label-columns",
    "-L",
    "--output",
    "-o",
    "--raw",
    "--selector",
    "-l",
    "--sort-by",
    "--subresource",
    "--template",
    // mutation
    "--field-manager",
    "--grace-period",
    "--image",
    "--overrides",
    "--patch",
    "-p",
    "--patch-file",
    "--prune-allowlist",
    "--prune-whitelist",
    "--replicas",
    "--current-replicas",
    "--resource-version",
    "--timeout",
    "--type",
    "--to-revision",
    "--revision",
    // containers, run/exec/logs/debug/cp
    "--container",
    "-c",
    "--containers",
    "--copy-to",
    "--env",
    "-e",
    "--image-pull-policy",
    "--labels",
    "--annotations",
    "--limit-bytes",
    "--max-log-requests",
    "--pod-running-timeout",
    "--port",
    "--restart",
    "--since",
    "--since-time",
    "--tail",
    "--target",
    "--address",
    // create/expose/autoscale/drain
    "--cert",
    "--class",
    "--clusterrole",
    "--cpu-percent",
    "--default-backend",
    "--docker-email",
    "--docker-password",
    "--docker-server",
    "--docker-username",
    "--external-ip",
    "--from",
    "--from-env-file",
    "--from-file",
    "--from-literal",
    "--group",
    "--key",
    "--load-balancer-ip",
    "--max",
    "--min",
    "--name",
    "--non-resource-url",
    "--pod-selector",
    "--protocol",
    "--resource",
    "--resource-name",
    "--role",
    "--rule",
    "--schedule",
    "--serviceaccount",
    "--session-affinity",
    "--skip-wait-for-delete-timeout",
    "--target-port",
    "--verb",
];

struct Kubectl;

impl Grammar for Kubectl {
    fn takes_value(&self, words: &[String], opt: &str) -> bool {
        match (words.first().map(String::as_str), opt) {
            (Some("logs"), "-f" | "-p") => false,
            (Some("proxy"), "-w" | "-u" | "-P" | "--www" | "--www-prefix" | "--unix-socket") => {
                true
            }
            _ => VALUED.contains(&opt),
        }
    }

    fn on_value(&self, _words: &[String], opt: &str, value: &str, payload: &mut Vec<String>) {
        if matches!(opt, "-f" | "--filename") {
            push_local_files(value, payload);
        }
    }
}

pub fn parse(args: &[String]) -> Parsed {
    scan(args, &Kubectl)
}

#[cfg(test)]
mod tests {
    use super::super::argv;
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            ("--context c -n ns delete pod x", &["delete", "pod", "x"]),
            ("-nkube-system get pods -owide", &["get", "pods"]),
            ("-n=kube-system get pods --selector=app=x", &["get", "pods"]),
            (
                "get pods -A -w --all-namespaces --show-labels",
                &["get", "pods"],
            ),
            (
                "delete pod x --force --grace-period 0 --now",
                &["delete", "pod", "x"],
            ),
            (
                "delete --all pods --dry-run=client -o yaml",
                &["delete", "pods"],
            ),
            ("apply --dry-run -f x.yaml --server-side", &["apply"]),
            (
                "exec -it pod -c main -- sh -c ls",
                &["exec", "pod", "sh", "-c", "ls"],
            ),
            ("logs -f pod -c main --tail 10", &["logs", "pod"]),
            ("logs -fp pod", &["logs", "pod"]),
            (
                "patch deploy d -p {\"a\":1} --type merge",
                &["patch", "deploy", "d"],
            ),
            (
                "scale deploy/d --replicas 0 --timeout=5s",
                &["scale", "deploy/d"],
            ),
            (
                "get pods -L app,tier --sort-by .metadata.name",
                &["get", "pods"],
            ),
            ("proxy -p 8001 -w ./static", &["proxy"]),
            (
                "-v 9 --kubeconfig /k config use-context prod",
                &["config", "use-context", "prod"],
            ),
            ("get - pods", &["get", "-", "pods"]),
            ("-n", &[]),
            ("-n -- get", &["get"]),
            ("get -n -- x", &["get", "x"]),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&argv(line)).words, *want, "{line}");
        }
    }

    #[test]
    fn payload_files() {
        let cases: &[(&str, &[&str])] = &[
            ("apply -f x.yaml", &["x.yaml"]),
            (
                "apply --filename x.yaml --filename=y.yaml -fz.yaml -f=w.yaml",
                &["x.yaml", "y.yaml", "z.yaml", "w.yaml"],
            ),
            ("apply -Rf dir/", &["dir/"]),
            ("apply -f a.yaml,b.yaml", &["a.yaml", "b.yaml"]),
            ("apply -f - -f https://x/y.yaml -f http://z", &[]),
            ("create -f ../rel/p.json --kustomize k/", &["../rel/p.json"]),
            ("logs -f pod", &[]),
            ("delete -f", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&argv(line)).payload_files, *want, "{line}");
        }
    }
}
