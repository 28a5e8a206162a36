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
    let (tokens, mut bodies) = {
        let mut lx = Lexer {
            chars: script.chars().collect(),
            i: 0,
            script: out,
            depth,
            heredocs: Vec::new(),
            bodies: Vec::new(),
        };
        let tokens = lx.tokens();
        (tokens, lx.bodies)
    };
    let mut current: Vec<(String, bool)> = Vec::new();
    // The literal here-document on the current command's input, if any (`None` inside: one
    // whose body is not literal).
    let mut stdin: Option<Option<String>> = None;
    let mut skip_next_word = false;
    // Open `case … in` constructs, innermost last: whether a pattern is expected next.
    let mut cases: Vec<CasePart> = Vec::new();
    let mut last_separator: Option<char> = None;
    for t in tokens {
        match t {
            Token::Separator(sep) => {
                let words = std::mem::take(&mut current);
                let body = stdin.take().flatten();
                let was = last_separator.replace(sep);
                match case_step(&mut cases, &words, sep, was) {
                    CaseWords::Command => simple_command(words, body, out),
                    CaseWords::Syntax => {}
                }
            }
            Token::Redirect => skip_next_word = true,
            Token::HereDoc(i) => stdin = Some(bodies.get_mut(i).and_then(Option::take)),
            Token::Word { text, dynamic } => {
                last_separator = None;
                if skip_next_word {
                    skip_next_word = false;
                    continue;
                }
                current.push((text, dynamic));
            }
        }
    }
    let words = std::mem::take(&mut current);
    if let CaseWords::Command = case_step(&mut cases, &words, '\n', last_separator) {
        simple_command(words, stdin.take().flatten(), out);
    }
    if !cases.is_empty() {
        out.opaque
            .get_or_insert_with(|| "a `case` without its `esac`".into());
    }
}

/// Where a `case … in … esac` is: expecting a branch's pattern, or in its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CasePart {
    Pattern,
    Commands,
}

/// What the words before a separator are, given the `case` constructs around them.
enum CaseWords {
    /// A simple command, split as any other.
    Command,
    /// `case WORD in`, a pattern, `esac`: not a command. Every branch's commands are read;
    /// which one runs is known only when the shell runs, and the most restrictive counts.
    Syntax,
}

fn case_step(
    cases: &mut Vec<CasePart>,
    words: &[(String, bool)],
    sep: char,
    was: Option<char>,
) -> CaseWords {
    let first = words.first().filter(|(_, d)| !d).map(|(w, _)| w.as_str());
    // `case WORD in [PATTERN]`: a pattern may follow on the same line.
    if first == Some("case") && words.get(2).is_some_and(|(w, d)| !d && w == "in") {
        let rest = &words[3..];
        cases.push(if !rest.is_empty() && sep == ')' {
            CasePart::Commands
        } else {
            CasePart::Pattern
        });
        return CaseWords::Syntax;
    }
    let Some(top) = cases.last_mut() else {
        return CaseWords::Command;
    };
    if first == Some("esac") && words.len() == 1 {
        cases.pop();
        return CaseWords::Syntax;
    }
    match *top {
        CasePart::Pattern => {
            // `a|b)`, `(a)`: patterns until `)`; blank lines and `;` between branches.
            if sep == ')' && !words.is_empty() {
                *top = CasePart::Commands;
            }
            CaseWords::Syntax
        }
        CasePart::Commands => {
            // `;;` (also `;&`, `;;&`): the branch ends, a pattern comes next.
            if words.is_empty() && matches!(sep, ';' | '&') && was == Some(';') {
                *top = CasePart::Pattern;
            }
            CaseWords::Command
        }
    }
}

/// `bash <<'EOF' … EOF`, `python3 - <<'EOF' … EOF`: a shell or an interpreter that reads its
/// program from its input, given a literal here-document, runs that text — the same as its
/// `-c` (`-e`) form, which is how it is read.
fn program_from_input(words: &[(String, bool)], body: &str) -> Option<Vec<(String, bool)>> {
    let (program, dynamic) = words.first()?;
    if *dynamic || words.iter().any(|(_, d)| *d) {
        return None;
    }
    let name = program.rsplit('/').next().unwrap_or(program);
    let rest = &words[1..];
    let code = (body.to_owned(), false);
    if super::wrap::is_shell(name) {
        // Options that only change how the script runs, and `-s`/`-` (the script is the
        // input); any operand would be a script file instead.
        const OPTIONS: &[&str] = &["-s", "-", "-e", "-u", "-x", "-eu", "-ex", "-eux", "-euo"];
        let mut i = 0;
        let mut kept = vec![(program.clone(), false)];
        while let Some((w, _)) = rest.get(i) {
            if w == "-o" || w == "-euo" {
                if rest.get(i + 1).is_none_or(|(v, _)| v != "pipefail") {
                    return None;
                }
                kept.extend(rest[i..i + 2].iter().cloned());
                i += 2;
                continue;
            }
            if !OPTIONS.contains(&w.as_str()) {
                return None;
            }
            if w != "-s" && w != "-" {
                kept.push(rest[i].clone());
            }
            i += 1;
        }
        kept.push(("-c".to_owned(), false));
        kept.push(code);
        return Some(kept);
    }
    if !(rest.is_empty() || (rest.len() == 1 && rest[0].0 == "-")) {
        return None;
    }
    let option = match super::wrap::interpreter_base(name).as_str() {
        "python" | "pypy" => "-c",
        "node" | "ruby" | "perl" => "-e",
        _ => return None,
    };
    Some(vec![
        (program.clone(), false),
        (option.to_owned(), false),
        code,
    ])
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

fn simple_command(mut words: Vec<(String, bool)>, stdin: Option<String>, out: &mut Script) {
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
    if let Some(body) = stdin
        && let Some(read) = program_from_input(&words, &body)
    {
        words = read;
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
        "for" | "case" | "esac" | "select" | "function" | "((" | "coproc" => {
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
