//! Splitting shell strings (`sh -c '...'`) into the simple commands they run, so each is
//! classified on its own and the most restrictive decision wins (DESIGN §5). Without this,
//! `bash -c 'aws iam put-role-policy ...'` would be judged as "bash" and slip past every aws
//! rule. What a command in turn runs (`sudo ...`, a nested `bash -c`) is read by
//! [`super::wrap`].
//!
//! This is a static reading of POSIX shell syntax: quotes and escapes (ANSI-C `$'...'`
//! decoded), `;` `&&` `||` `|` `&` and newlines, `( )` and `{ }` groups, `if/while/until`
//! bodies, redirections, leading `NAME=value` assignments, and command substitutions (`$(...)`,
//! backticks), whose inner commands are split too. What cannot be resolved without running the
//! shell — `eval`, `source`, a command name that is an expansion, a glob or a brace expansion,
//! `for`/`case`/functions, here-documents, an assignment that changes what runs — makes the
//! script *opaque*. Arguments known only at run time (`"$X"`, `p*`) stay as literal text and are
//! listed in [`Script::dynamic`], for the policy to judge. Never panics.

mod args;
mod lexer;
#[cfg(test)]
mod tests;

pub use args::{ShellArgsError, ShellRuns, script_of, script_of_shell};
use lexer::{Lexer, Token};

/// The simple commands a shell string runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// Each simple command's words, in order of appearance.
    pub commands: Vec<Vec<String>>,
    /// Why the script cannot be fully resolved statically, if it can't.
    pub opaque: Option<String>,
    /// Why some words are read only as written, when every command is known: a loop's
    /// variable, a sourced file's code.
    pub unread: Option<String>,
    /// A `cd`/`pushd`/`popd` was seen (later relative program paths are not where gate looks).
    changed_dir: bool,
    /// The positional parameters (`$0`, `$1`, ...) when known: `sh -c SCRIPT NAME ARGS...`.
    params: Option<Vec<String>>,
    /// The commands (among `commands`) with an argument known only when the shell runs: an
    /// expansion, a glob, a brace expansion. A policy with rules for such a command's program
    /// cannot read it exactly.
    pub dynamic: Vec<Vec<String>>,
}

/// Splits a shell string.
pub fn parse(script: &str) -> Script {
    let mut out = Script::default();
    parse_into(script, &mut out, 0);
    out
}

/// Splits a shell string run as `sh -c SCRIPT ARGS...`: `$0`, `$1`, ... are the words of
/// `args`, known before it runs.
pub fn parse_with_args(script: &str, args: &[String]) -> Script {
    let mut out = Script {
        params: Some(args.to_vec()),
        ..Script::default()
    };
    parse_into(script, &mut out, 0);
    out
}

fn parse_into(script: &str, out: &mut Script, depth: usize) {
    if depth > 8 {
        out.opaque
            .get_or_insert_with(|| "command substitutions nested too deep".into());
        return;
    }
    let tokens = {
        let mut lx = Lexer {
            chars: script.chars().collect(),
            i: 0,
            script: out,
            depth,
            heredocs: Vec::new(),
        };
        lx.tokens()
    };
    let mut current: Vec<(String, bool)> = Vec::new();
    let mut skip_next_word = false;
    let flush = |current: &mut Vec<(String, bool)>, out: &mut Script| {
        let words = std::mem::take(current);
        simple_command(words, out);
    };
    for t in tokens {
        match t {
            Token::Separator => flush(&mut current, out),
            Token::Redirect => skip_next_word = true,
            Token::Word { text, dynamic } => {
                if skip_next_word {
                    skip_next_word = false;
                    continue;
                }
                current.push((text, dynamic));
            }
        }
    }
    flush(&mut current, out);
}

/// Reserved words that only introduce or close the commands around them.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}",
];

/// A shell variable name.
fn is_name(w: &str) -> bool {
    !w.is_empty()
        && !w.starts_with(|c: char| c.is_ascii_digit())
        && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn simple_command(mut words: Vec<(String, bool)>, out: &mut Script) {
    // Keywords in front (`if`, `then`, `do`, `!`, ...) and leading assignments.
    while let Some((w, dynamic)) = words.first() {
        if !dynamic && KEYWORDS.contains(&w.as_str()) {
            words.remove(0);
        } else if let Some(name) = super::wrap::assignment_name(w) {
            if name == "PATH" {
                out.unread.get_or_insert_with(|| {
                    "setting `PATH` changes which files later command names run, read only as written".into()
                });
            } else if super::wrap::env_runs_code(name) {
                out.opaque.get_or_insert_with(|| {
                    format!("setting `{name}` changes what later commands run")
                });
            }
            words.remove(0);
        } else {
            break;
        }
    }
    // Arithmetic in array subscripts (`printf -v 'a[$(cmd)]'`, `declare 'a[`cmd`]=1'`) and
    // prompt expansion (`${x@P}`) run command substitutions hidden in quoted text.
    if words.iter().any(|(w, _)| {
        (w.contains('[') && (w.contains("$(") || w.contains('`'))) || w.contains("@P}")
    }) {
        out.opaque.get_or_insert_with(|| {
            "a command substitution inside quoted text that the shell evaluates".into()
        });
    }
    let Some((program, dynamic)) = words.first() else {
        return;
    };
    if *dynamic {
        out.opaque.get_or_insert_with(|| {
            format!("the command name `{program}` is an expansion, known only when it runs")
        });
        return;
    }
    match program.as_str() {
        "trap" => {
            // `trap [--] ACTION SIGNAL...`: the action is a script of its own. `-p`/`-l` only
            // print; any other option is not read.
            let action_at = match words.get(1).map(|(w, _)| w.as_str()) {
                Some("--") => Some(2),
                Some("-p" | "-l" | "-P") => None,
                Some(w) if w.starts_with('-') && w.len() > 1 => {
                    out.opaque.get_or_insert_with(|| {
                        format!("`trap {w}` is an option gate does not read")
                    });
                    None
                }
                _ => Some(1),
            };
            if let Some((action, dynamic)) = action_at.and_then(|i| words.get(i)) {
                if *dynamic {
                    out.opaque
                        .get_or_insert_with(|| "a `trap` action that is an expansion".into());
                } else {
                    let action = action.clone();
                    let mut nested = Script::default();
                    parse_into(&action, &mut nested, 1);
                    out.commands.extend(nested.commands);
                    out.dynamic.extend(nested.dynamic);
                    if let Some(o) = nested.opaque {
                        out.opaque.get_or_insert(o);
                    }
                    if let Some(u) = nested.unread {
                        out.unread.get_or_insert(u);
                    }
                }
            }
        }
        "eval" => {
            out.opaque
                .get_or_insert_with(|| format!("`{program}` runs code known only when it runs"));
        }
        // `source FILE`: the file's code runs here, as `sh FILE` would run it — known by its
        // name (an expansion in it included), read as written.
        "source" | "." => match words.get(1) {
            Some((file, _)) if !super::wrap::sources_input(file) => {
                out.unread.get_or_insert_with(|| {
                    format!("`{program} {file}` runs the file's code, read only as written")
                });
            }
            _ => {
                out.opaque.get_or_insert_with(|| {
                    format!("`{program}` runs code known only when it runs")
                });
            }
        },
        // `for NAME in WORDS`: the body's commands are split like any other; the loop's
        // variable is an expansion in them.
        "for"
            if words.get(1).is_some_and(|(w, d)| !d && is_name(w))
                && words.get(2).is_none_or(|(w, _)| w == "in") =>
        {
            out.unread
                .get_or_insert_with(|| "a `for` loop's variable is known only when it runs".into());
            return;
        }
        "for" | "case" | "select" | "function" | "((" | "coproc" => {
            out.opaque.get_or_insert_with(|| {
                format!("`{program}` constructs are not resolved statically")
            });
        }
        _ => {}
    }
    if program.ends_with("()") || words.get(1).is_some_and(|(w, _)| w == "()") {
        out.opaque
            .get_or_insert_with(|| "function definitions are not resolved statically".into());
    }
    // After `cd`, a relative program path names a file gate cannot find from where it runs,
    // so a symlink there would not be seen.
    if matches!(program.as_str(), "cd" | "pushd" | "popd") {
        out.changed_dir = true;
    } else if out.changed_dir && program.contains('/') && !program.starts_with('/') {
        out.opaque.get_or_insert_with(|| {
            format!("`{program}` is a relative path after a change of directory")
        });
    }
    let dynamic_args = words.iter().skip(1).any(|(_, d)| *d);
    let argv: Vec<String> = words.into_iter().map(|(w, _)| w).collect();
    if dynamic_args {
        out.dynamic.push(argv.clone());
    }
    out.commands.push(argv);
}
