//! The mistakes clap cannot explain well, found in the raw arguments after clap refused them:
//! a misspelt subcommand (`gate requets`), and a command written without the `--` that the run
//! form and `gate check` need (`gate ls -la`, `gate check kubectl get pods`). clap would say
//! "unexpected argument"; these say what to type instead.
//!
//! `gate check PROGRAM ...` without `--` is refused, not guessed: gate's own options are
//! accepted after the subcommand's name, so in `gate check curl -v URL` the `-v` would be
//! taken as gate's `--verbose` and the command classified would not be the one written.

use std::ffi::OsString;

use crate::output::escape;
use crate::request::shell_join;

/// A usage mistake with a better explanation than clap's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misuse {
    /// A word where a subcommand goes that names none: a misspelling of `suggestion`, or a
    /// program meant to run through gate (`--` forgotten).
    UnknownCommand {
        word: String,
        suggestion: Option<String>,
        /// `word` is a program (found on PATH, or a path): running it is likely what was meant.
        is_program: bool,
        /// The arguments as given, with `--` put before `word`.
        fixed: Vec<String>,
    },
    /// `gate check PROGRAM ...`: the command to classify must follow `--`.
    CheckWithoutDashDash { fixed: Vec<String> },
    /// A dash that only looks like `--` (an en or em dash from a document, a single `-`): the
    /// run form's separator was meant.
    LookalikeDashes { word: String, fixed: Vec<String> },
    /// A gate subcommand that is also a program (`man`, `login`), given arguments it does not
    /// take: clap's message stands, and this says how to run the program instead.
    ProgramNamedLikeSubcommand { word: String, fixed: Vec<String> },
}

impl Misuse {
    /// The `error:` line.
    pub fn message(&self) -> String {
        match self {
            Misuse::UnknownCommand {
                word,
                suggestion: Some(s),
                ..
            } => format!("unknown command `{}`; did you mean `{s}`?", escape(word)),
            Misuse::UnknownCommand { word, .. } => {
                format!("unknown command `{}`", escape(word))
            }
            Misuse::CheckWithoutDashDash { .. } => {
                "`gate check` takes the command to classify after `--`".to_owned()
            }
            Misuse::ProgramNamedLikeSubcommand { word, .. } => {
                format!("`gate {}` is gate's own command", escape(word))
            }
            Misuse::LookalikeDashes { word, .. } => {
                format!("`{}` is not `--`", escape(word))
            }
        }
    }

    /// The `hint:` line, when there is an obvious next step beyond the suggestion.
    pub fn hint(&self) -> Option<String> {
        let line = |fixed: &[String]| escape(&format!("gate {}", shell_join(fixed))).into_owned();
        match self {
            Misuse::UnknownCommand {
                suggestion: Some(_),
                is_program: false,
                ..
            } => None,
            Misuse::UnknownCommand { fixed, .. } => Some(format!(
                "to run a command through gate, put `--` before it: {}",
                line(fixed)
            )),
            Misuse::CheckWithoutDashDash { fixed } => Some(format!(
                "to check a command, put `--` before it: {}",
                line(fixed)
            )),
            Misuse::LookalikeDashes { fixed, .. } => Some(format!(
                "write `--` with two ASCII hyphens: {}",
                line(fixed)
            )),
            Misuse::ProgramNamedLikeSubcommand { word, fixed } => Some(format!(
                "to run the program `{}` through gate, put `--` before it: {}",
                escape(word),
                line(fixed)
            )),
        }
    }
}

/// Finds the mistake in `args` (as the process got them, `args[0]` the program name), if it
/// is one of [`Misuse`]'s. `cmd` is the built command line; `is_program` says whether a word
/// names a program that could be run; `unexpected_argument` whether clap refused the line for
/// an argument it did not expect. `None` leaves the explanation to clap.
pub fn find(
    cmd: &clap::Command,
    args: &[OsString],
    is_program: &dyn Fn(&str) -> bool,
    unexpected_argument: bool,
) -> Option<Misuse> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut cmd = cmd.clone();
    cmd.build();
    let at = first_positional(&cmd, &words, 0)?;
    let word = &words[at];
    let with_dashes = || {
        let mut fixed = words[..at].to_vec();
        fixed.push("--".to_owned());
        fixed.extend_from_slice(&words[at..]);
        fixed
    };
    if is_lookalike_dashes(word) {
        let mut fixed = words[..at].to_vec();
        fixed.push("--".to_owned());
        fixed.extend_from_slice(&words[at + 1..]);
        return Some(Misuse::LookalikeDashes {
            word: word.clone(),
            fixed,
        });
    }
    let names: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name())
        .collect();
    if let Some(sub) = cmd.find_subcommand(word) {
        // `gate help requets`: the same suggestion as for `gate requets`.
        if sub.get_name() == "help" {
            let topic = words.get(at + 1)?;
            if cmd.find_subcommand(topic).is_some() {
                return None;
            }
            let suggestion = suggest(topic, &names)?;
            return Some(Misuse::UnknownCommand {
                word: topic.clone(),
                suggestion: Some(suggestion.to_owned()),
                is_program: false,
                fixed: Vec::new(),
            });
        }
        // A known subcommand: only `check` takes a command, and only after `--`.
        if sub.get_name() != "check" {
            let named_like_a_program = unexpected_argument
                && is_program(word)
                && first_positional(sub, &words, at + 1).is_some();
            return named_like_a_program.then(|| Misuse::ProgramNamedLikeSubcommand {
                word: word.clone(),
                fixed: with_dashes(),
            });
        }
        let inner = first_positional(sub, &words, at + 1)?;
        if is_lookalike_dashes(&words[inner]) {
            let mut fixed = words.clone();
            fixed[inner] = "--".to_owned();
            return Some(Misuse::LookalikeDashes {
                word: words[inner].clone(),
                fixed,
            });
        }
        let mut fixed = words[..inner].to_vec();
        fixed.push("--".to_owned());
        fixed.extend_from_slice(&words[inner..]);
        return Some(Misuse::CheckWithoutDashDash { fixed });
    }
    Some(Misuse::UnknownCommand {
        word: word.clone(),
        suggestion: suggest(word, &names).map(str::to_owned),
        is_program: is_program(word),
        fixed: with_dashes(),
    })
}

/// The index in `words` of the first word from `from` on that is neither one of `cmd`'s
/// options nor an option's value. `None` at `--`, at the end, or at an option `cmd` does not
/// know (clap's own message is the right one for that).
fn first_positional(cmd: &clap::Command, words: &[String], from: usize) -> Option<usize> {
    let mut i = from;
    while i < words.len() {
        let w = &words[i];
        if w == "--" {
            return None;
        }
        if let Some(long) = w.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let arg = cmd.get_arguments().find(|a| a.get_long() == Some(name))?;
            if takes_value(arg) && !inline {
                i += 1;
            }
        } else if let Some(shorts) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (k, c) in shorts.char_indices() {
                let arg = cmd.get_arguments().find(|a| a.get_short() == Some(c))?;
                if takes_value(arg) {
                    // `-nVALUE` carries its value; `-n VALUE` takes the next word.
                    if k + c.len_utf8() == shorts.len() {
                        i += 1;
                    }
                    break;
                }
            }
        } else {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `-`, or dashes of which some are typographic (en, em, minus sign, ...): what a document's
/// `--` becomes after a word processor has been at it.
fn is_lookalike_dashes(word: &str) -> bool {
    const DASHES: &[char] = &[
        '-', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
        '\u{fe63}', '\u{ff0d}',
    ];
    word == "-"
        || (word != "--"
            && !word.is_empty()
            && word.chars().all(|c| DASHES.contains(&c))
            && word.chars().any(|c| c != '-'))
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values()
}

/// The subcommand `word` most likely misspells: within a small edit distance (a transposition
/// counts as one edit), or the only name it is a prefix of.
pub fn suggest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    let close = names
        .iter()
        .map(|n| (distance(&word, n), *n))
        .filter(|(d, n)| *d <= (n.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n);
    if close.is_some() {
        return close;
    }
    let mut prefixed = names
        .iter()
        .filter(|n| word.chars().count() >= 3 && n.starts_with(&word));
    match (prefixed.next(), prefixed.next()) {
        (Some(n), None) => Some(n),
        _ => None,
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and transpositions
/// of neighbours, each one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_in(args: &[&str], programs: &[&str]) -> Option<Misuse> {
        let mut all = vec![OsString::from("gate")];
        all.extend(args.iter().map(OsString::from));
        find(
            &crate::cli::command(),
            &all,
            &|w| programs.contains(&w),
            true,
        )
    }

    #[test]
    fn suggestions_for_misspelt_subcommands() {
        let names = [
            "check", "policy", "log", "requests", "approve", "deny", "login", "serve",
        ];
        let cases: &[(&str, Option<&str>)] = &[
            ("requets", Some("requests")),
            ("reqeusts", Some("requests")),
            ("aprove", Some("approve")),
            ("apporve", Some("approve")),
            ("chekc", Some("check")),
            ("CHECK", Some("check")),
            ("lgo", Some("log")),
            ("sevre", Some("serve")),
            ("req", Some("requests")),
            ("polcy", Some("policy")),
            // Programs, not typos.
            ("ls", None),
            ("kubectl", None),
            ("deploy", None),
            ("terraform", None),
            ("rm", None),
            ("sh", None),
            ("cat", None),
            ("lo", Some("log")),
        ];
        for (word, want) in cases {
            assert_eq!(suggest(word, &names), *want, "suggest({word:?})");
        }
    }

    #[test]
    fn a_forgotten_dash_dash_is_found_past_gates_own_options() {
        let m = find_in(&["--policy", "x.yaml", "-q", "kubectl", "get", "pods"], &[]);
        assert_eq!(
            m,
            Some(Misuse::UnknownCommand {
                word: "kubectl".into(),
                suggestion: None,
                is_program: false,
                fixed: ["--policy", "x.yaml", "-q", "--", "kubectl", "get", "pods"]
                    .map(String::from)
                    .to_vec(),
            })
        );
        // `--reason=...` carries its value; `--timeout 5m` takes the next word.
        let m = find_in(&["--reason=x", "--timeout", "5m", "ls", "-la"], &["ls"]).unwrap();
        assert_eq!(
            m.hint().unwrap(),
            "to run a command through gate, put `--` before it: gate --reason=x --timeout 5m -- ls -la"
        );
    }

    #[test]
    fn check_without_dash_dash() {
        let m = find_in(&["check", "--json", "kubectl", "get", "pods"], &[]).unwrap();
        assert_eq!(
            m.hint().unwrap(),
            "to check a command, put `--` before it: gate check --json -- kubectl get pods"
        );
        // Written correctly, or another subcommand: nothing to say.
        assert_eq!(find_in(&["check", "--", "kubectl"], &[]), None);
        assert_eq!(find_in(&["approve", "abc", "extra"], &[]), None);
        // A subcommand that is also a program, given the program's arguments.
        let m = find_in(&["man", "ls"], &["man"]).unwrap();
        assert_eq!(
            m.hint().unwrap(),
            "to run the program `man` through gate, put `--` before it: gate -- man ls"
        );
        assert_eq!(find_in(&["man", "--out-dir", "x"], &["man"]), None);
        assert_eq!(find_in(&["--", "ls"], &[]), None);
        // An option gate does not know: clap's message is the right one.
        assert_eq!(find_in(&["--frobnicate", "ls"], &[]), None);
    }

    #[test]
    fn a_program_that_looks_like_a_subcommand_gets_both() {
        let m = find_in(&["logs", "-f"], &["logs"]).unwrap();
        assert_eq!(m.message(), "unknown command `logs`; did you mean `log`?");
        assert_eq!(
            m.hint().unwrap(),
            "to run a command through gate, put `--` before it: gate -- logs -f"
        );
        let typo = find_in(&["requets"], &[]).unwrap();
        assert_eq!(typo.hint(), None);
        let help = find_in(&["help", "requets"], &[]).unwrap();
        assert_eq!(help.message(), typo.message());
        assert_eq!(find_in(&["help", "check"], &[]), None);
    }

    #[test]
    fn typographic_dashes_are_taken_for_the_separator() {
        for dash in ["\u{2014}", "\u{2013}", "\u{2013}-", "\u{2212}\u{2212}", "-"] {
            let m = find_in(&[dash, "ls", "-la"], &["ls"]).unwrap();
            assert_eq!(m.message(), format!("`{dash}` is not `--`"));
            assert_eq!(
                m.hint().unwrap(),
                "write `--` with two ASCII hyphens: gate -- ls -la"
            );
        }
        let m = find_in(&["check", "\u{2014}", "ls"], &[]).unwrap();
        assert_eq!(
            m.hint().unwrap(),
            "write `--` with two ASCII hyphens: gate check -- ls"
        );
        assert_eq!(find_in(&["--", "ls"], &[]), None);
    }

    #[test]
    fn words_with_controls_are_shown_escaped() {
        let m = find_in(&["\u{1b}[2Jls", "a\nb"], &[]).unwrap();
        assert_eq!(m.message(), "unknown command `\\e[2Jls`");
        assert!(
            !m.hint().unwrap().chars().any(|c| c.is_control()),
            "{:?}",
            m.hint()
        );
    }
}
