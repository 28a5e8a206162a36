//! `env`: the assignments and options before the command it runs, and GNU `env -S`, whose
//! string is split into the words that replace it.

use super::{Run, WrapError, skip_assignments, then_command};
use crate::command::getopt::{Spec, read};

pub(super) const ENV: Spec = Spec {
    flags: "0iv",
    valued: "aCPSu",
    optional: "",
    long_flags: &[
        "ignore-environment",
        "null",
        "debug",
        "list-signal-handling",
        "help",
        "version",
    ],
    long_valued: &["unset", "chdir", "split-string", "argv0"],
    long_optional: &["block-signal", "default-signal", "ignore-signal"],
};

pub(super) fn env(args: &[String]) -> Vec<Run> {
    // `env -S STRING`: the string is split into words that replace it, options included.
    let r = match read(args, &ENV) {
        Ok(r) => r,
        Err(why) => return vec![Run::Opaque(why.to_string())],
    };
    if r.has(&["P"]) {
        return vec![Run::Opaque(
            "`env -P` looks the command up in another path".into(),
        )];
    }
    if let Some(split) = r.value(&["S", "split-string"]) {
        return match split_string(split) {
            Ok(words) => {
                let mut argv = vec!["env".to_owned()];
                argv.extend(words);
                argv.extend(args[r.operands.min(args.len())..].iter().cloned());
                vec![Run::Command(argv)]
            }
            Err(why) => vec![Run::Opaque(why.to_string())],
        };
    }
    let mut ops = &args[r.operands.min(args.len())..];
    // A lone `-` is `-i`.
    while ops.first().is_some_and(|w| w == "-") {
        ops = &ops[1..];
    }
    match skip_assignments(ops) {
        Ok(cmd) => then_command(cmd.to_vec()),
        Err(why) => vec![Run::Opaque(why.to_string())],
    }
}

/// GNU `env -S` splitting: whitespace separates, `'...'` is literal, `"..."` and bare text take
/// backslash escapes, `\_` is a space, `\c` ends the string, `#` at a word's start begins a
/// comment. `${VAR}` expands at run time: unreadable.
pub(super) fn split_string(s: &str) -> Result<Vec<String>, WrapError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '$') => return Err(WrapError::SplitVariable),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('c') => break,
                    Some('_') if quote.is_none() => {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    Some('_') => word.push(' '),
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some('r') => word.push('\r'),
                    Some('f') => word.push('\x0c'),
                    Some('v') => word.push('\x0b'),
                    Some(c @ ('\\' | '\'' | '"' | '#' | '$' | ' ')) => word.push(c),
                    _ => return Err(WrapError::SplitEscape),
                }
            }
            (None, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '#') if !in_word => break,
            (_, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err(WrapError::SplitQuote);
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}
