//! Tool-aware command-line parsing: reduces a command's arguments to the
//! positional words policy rules match on (options and their values removed)
//! plus the payload files it names. Total: never panics, whatever the input.
//!
//! Shared conventions, for every tool:
//! - a bare `--` ends options; every later word is positional. A bare `--` is
//!   never taken as an option's value (being conservative: the words after it
//!   stay visible to the rules).
//! - a lone `-` is a positional word (conventionally "stdin"), never an option.
//! - `--opt=value` is one word and is skipped whole.

pub mod aws;
pub mod az;
pub mod gcloud;
mod getopt;
pub mod git;
pub mod helm;
pub mod kubectl;
pub mod link;
pub mod shell;
pub mod terraform;
pub mod wrap;

/// The result of parsing one command's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// Positional words in order (options and their values removed).
    pub words: Vec<String>,
    /// Files the command names as its payload, as written (relative paths stay relative):
    /// aws `file://X` / `fileb://X` argument values (also inside `--opt=file://X`),
    /// kubectl `-f X` / `--filename X` / `--filename=X` / `-fX` (not `-` = stdin, not URLs http(s)://),
    /// helm `-f X` / `--values X` / `--values=X`, terraform `apply PLANFILE` (a positional after `apply`).
    pub payload_files: Vec<String>,
}

/// `program` is the executable's basename (e.g. "aws", "kubectl"); `args` excludes `argv[0]`.
pub fn parse(program: &str, args: &[String]) -> Parsed {
    match program {
        "aws" => aws::parse(args),
        "az" => az::parse(args),
        "gcloud" => gcloud::parse(args),
        "git" => git::parse(args),
        "helm" => helm::parse(args),
        "kubectl" | "oc" => kubectl::parse(args),
        "terraform" | "tofu" => terraform::parse(args),
        _ => parse_unknown(args),
    }
}

/// Tools without a grammar: every word not starting with `-` is positional
/// (plus a lone `-`, see module doc). We cannot know which options take a
/// value, so a value written as a separate word shows up as a positional.
pub fn parse_unknown(args: &[String]) -> Parsed {
    let mut out = Parsed::default();
    for (i, arg) in args.iter().enumerate() {
        if arg == "--" {
            out.words.extend(args[i + 1..].iter().cloned());
            break;
        }
        if !is_option(arg) {
            out.words.push(arg.clone());
        }
    }
    out
}

/// True for words that look like options: start with `-` and are not a lone `-`.
pub(crate) fn is_option(arg: &str) -> bool {
    arg.len() > 1 && arg.starts_with('-')
}

/// What the shared getopt-style scanner ([`scan`]) needs to know about a tool.
/// `words` is always the positional words seen so far, so grammars can
/// depend on the subcommand (`words[0]`), e.g. `kubectl logs -f` vs `apply -f`.
pub(crate) trait Grammar {
    /// Does option `opt` (as written without value: `--namespace`, `-n`) take a value?
    fn takes_value(&self, words: &[String], opt: &str) -> bool;

    /// Called for every option value, whichever way it was written.
    fn on_value(&self, _words: &[String], _opt: &str, _value: &str, _payload: &mut Vec<String>) {}

    /// May `next` be consumed as the separated value of an option? pflag
    /// (kubectl, helm) and git take any word; argparse tools refuse `-x` words.
    fn accepts_value(&self, _next: &str) -> bool {
        true
    }
}

/// Getopt/pflag-style scan: `--long`, `--long=v`, `--long v`, short clusters
/// `-abc`, attached values `-nVALUE` / `-n=VALUE` (pflag accepts the `=`),
/// separated `-n VALUE`. Options may appear anywhere (interspersed).
pub(crate) fn scan(args: &[String], g: &impl Grammar) -> Parsed {
    let mut out = Parsed::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            out.words.extend(args[i..].iter().cloned());
            break;
        }
        if !is_option(arg) {
            out.words.push(arg.clone());
            continue;
        }
        if arg.starts_with("--") {
            if let Some((opt, value)) = arg.split_once('=') {
                g.on_value(&out.words, opt, value, &mut out.payload_files);
            } else if g.takes_value(&out.words, arg)
                && let Some(value) = take_next(args, &mut i, g)
            {
                g.on_value(&out.words, arg, value, &mut out.payload_files);
            }
            continue;
        }
        // Short cluster: flags until the first value-taking letter, whose
        // value is the rest of the word or, if that is empty, the next word.
        let cluster = &arg[1..];
        for (at, c) in cluster.char_indices() {
            let opt = format!("-{c}");
            if !g.takes_value(&out.words, &opt) {
                continue;
            }
            let rest = &cluster[at + c.len_utf8()..];
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            let value = if rest.is_empty() {
                take_next(args, &mut i, g)
            } else {
                Some(rest)
            };
            if let Some(value) = value {
                g.on_value(&out.words, &opt, value, &mut out.payload_files);
            }
            break;
        }
    }
    out
}

/// Consume `args[*i]` as a separated option value if the grammar allows it.
fn take_next<'a>(args: &'a [String], i: &mut usize, g: &impl Grammar) -> Option<&'a str> {
    let next = args.get(*i)?;
    if next == "--" || !g.accepts_value(next) {
        return None;
    }
    *i += 1;
    Some(next)
}

/// Record the local files in a pflag string-slice value (`a.yaml,b.yaml`),
/// skipping stdin (`-`) and http(s) URLs, which are not files we can read.
pub(crate) fn push_local_files(value: &str, payload: &mut Vec<String>) {
    for part in value.split(',') {
        if part.is_empty() || part == "-" || is_url(part) {
            continue;
        }
        payload.push(part.to_string());
    }
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Test helper: build an argument vector from a whitespace-separated line.
#[cfg(test)]
pub(crate) fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tool() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("-la /tmp", &["/tmp"]),
            ("-rf --no-preserve-root / x", &["/", "x"]),
            ("- --x= -", &["-", "-"]),
            ("--opt=v a -- -b --c d", &["a", "-b", "--c", "d"]),
            ("-- --", &["--"]),
            ("héllo -ü ünï", &["héllo", "ünï"]),
        ];
        for (line, want) in cases {
            let got = parse("mytool", &argv(line));
            assert_eq!(got.words, *want, "{line}");
            assert!(got.payload_files.is_empty());
        }
    }

    #[test]
    fn dispatch_by_basename() {
        let args = argv("--context c -n ns delete pod x");
        assert_eq!(parse("oc", &args), parse("kubectl", &args));
        assert_eq!(parse("kubectl", &args).words, ["delete", "pod", "x"]);
        // Unknown tool: option values stay positional.
        assert_eq!(
            parse("kubectl.exe", &args).words,
            ["c", "ns", "delete", "pod", "x"]
        );
    }

    #[test]
    fn local_files() {
        let mut p = Vec::new();
        push_local_files("a.yaml,,-,HTTPS://x/y,http://z,b/c.yml", &mut p);
        assert_eq!(p, ["a.yaml", "b/c.yml"]);
    }

    /// Every parser on awkward inputs: must not panic.
    #[test]
    fn never_panics() {
        let odd = [
            "",
            "-",
            "--",
            "---",
            "--=",
            "-=",
            "--x=",
            "-=x",
            "=",
            "-ü",
            "-nü",
            "--ü=ü",
            "ü",
            "-f",
            "--filename",
            "file://",
            "fileb://",
            "-f=",
            "-chdir=",
            "-var",
            "apply",
            "-C",
            "-c",
        ];
        let tools = [
            "aws",
            "az",
            "gcloud",
            "git",
            "helm",
            "kubectl",
            "terraform",
            "x",
        ];
        for tool in tools {
            for a in odd {
                for b in odd {
                    for c in ["", "-n", "apply", "--"] {
                        let args: Vec<String> = [a, b, c].iter().map(|s| s.to_string()).collect();
                        let _ = parse(tool, &args);
                        let _ = parse(tool, &args[..1]);
                    }
                }
            }
            let _ = parse(tool, &[]);
        }
    }
}
