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

/// The simple commands a shell string runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// Each simple command's words, in order of appearance.
    pub commands: Vec<Vec<String>>,
    /// Why the script cannot be fully resolved statically, if it can't.
    pub opaque: Option<String>,
    /// A `cd`/`pushd`/`popd` was seen (later relative program paths are not where gate looks).
    changed_dir: bool,
    /// The positional parameters (`$0`, `$1`, ...) when known: `sh -c SCRIPT NAME ARGS...`.
    params: Option<Vec<String>>,
    /// The commands (among `commands`) with an argument known only when the shell runs: an
    /// expansion, a glob, a brace expansion. A policy with rules for such a command's program
    /// cannot read it exactly.
    pub dynamic: Vec<Vec<String>>,
}

/// The script of `sh -c SCRIPT ...` (any of the shells gate reads, flags clustered or not).
/// `None` when there is no `-c` script, or the shell's options are not read exactly.
pub fn script_of(argv: &[String]) -> Option<&str> {
    let program = argv.first()?.rsplit('/').next()?;
    if !super::wrap::SHELLS.contains(&program) {
        return None;
    }
    match script_of_shell(program, &argv[1..]) {
        Ok(ShellRuns::Script(s, _)) => Some(s),
        _ => None,
    }
}

/// What a shell's arguments make it run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellRuns<'a> {
    /// `-c SCRIPT` and the words after it (`$0`, `$1`, ...).
    Script(&'a str, &'a [String]),
    /// A script file and its arguments (the file, as written, first).
    File(&'a [String]),
    /// Nothing (`--version`, `-c` without a script).
    Nothing,
}

/// `set -o` options that change nothing about which commands a script runs.
const SET_OPTIONS: &[&str] = &[
    "allexport",
    "braceexpand",
    "emacs",
    "errexit",
    "errtrace",
    "functrace",
    "hashall",
    "histexpand",
    "history",
    "ignoreeof",
    "interactive-comments",
    "monitor",
    "noclobber",
    "noexec",
    "noglob",
    "nolog",
    "notify",
    "nounset",
    "onecmd",
    "physical",
    "pipefail",
    "posix",
    "privileged",
    "verbose",
    "vi",
    "xtrace",
];

/// `shopt` options (bash `-O`) that change nothing about which commands run.
const SHOPT_OPTIONS: &[&str] = &[
    "nullglob",
    "failglob",
    "dotglob",
    "globstar",
    "nocaseglob",
    "nocasematch",
    "lastpipe",
    "inherit_errexit",
    "huponexit",
    "checkwinsize",
    "cmdhist",
    "lithist",
    "globasciiranges",
];

/// Why a shell's arguments cannot be read exactly: the command is opaque, for this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellArgsError {
    #[error("`{program} --{option}` is an option gate does not read")]
    LongOption { program: String, option: String },
    #[error("`{program} {sign}{flag} {name}` changes how the script is read")]
    ReadingOption {
        program: String,
        sign: char,
        flag: char,
        name: String,
    },
    #[error("`{program} {sign}{flag}` is an option gate does not read")]
    Option {
        program: String,
        sign: char,
        flag: char,
    },
    #[error("`{program}` reads its script from its input")]
    FromInput { program: String },
}

/// Reads a shell's arguments exactly (DESIGN §5): a `-c` script, a script file (classified under
/// its own name, as running it directly would be), nothing (`--version`), `Err(why)` when what it runs cannot be read:
/// a script from its input (no operand, `-s`, `/dev/stdin`, a pipe or here-string into it),
/// rc files (`--rcfile`, `--init-file`), interactive mode, or options gate does not model.
pub fn script_of_shell<'a>(
    program: &str,
    args: &'a [String],
) -> Result<ShellRuns<'a>, ShellArgsError> {
    let mut saw_c = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if a == "--" || a == "-" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            match long {
                "version" | "help" if args.len() == 1 => return Ok(ShellRuns::Nothing),
                "norc" | "noprofile" | "login" | "posix" | "restricted" | "verbose"
                | "noediting" => continue,
                _ => {
                    return Err(ShellArgsError::LongOption {
                        program: program.to_owned(),
                        option: long.to_owned(),
                    });
                }
            }
        }
        let (sign, flags) = match a.chars().next() {
            Some(c @ ('-' | '+')) if a.len() > 1 => (c, &a[1..]),
            _ => {
                i -= 1;
                break;
            }
        };
        for (at, f) in flags.char_indices() {
            match f {
                'c' if sign == '-' => saw_c = true,
                'o' | 'O' => {
                    // The option name is the rest of the word or the next word.
                    let rest = &flags[at + 1..];
                    let name = if rest.is_empty() {
                        i += 1;
                        args.get(i - 1).map(String::as_str).unwrap_or("")
                    } else {
                        rest
                    };
                    let known = if f == 'o' {
                        SET_OPTIONS.contains(&name)
                    } else {
                        SHOPT_OPTIONS.contains(&name)
                    };
                    if sign == '-' && !known {
                        return Err(ShellArgsError::ReadingOption {
                            program: program.to_owned(),
                            sign,
                            flag: f,
                            name: name.to_owned(),
                        });
                    }
                    break;
                }
                'a' | 'b' | 'e' | 'f' | 'h' | 'm' | 'n' | 'p' | 't' | 'u' | 'v' | 'x' | 'B'
                | 'C' | 'E' | 'H' | 'P' | 'T' | 'l' | 'r' => {}
                _ => {
                    return Err(ShellArgsError::Option {
                        program: program.to_owned(),
                        sign,
                        flag: f,
                    });
                }
            }
        }
    }
    match (saw_c, args.get(i)) {
        (true, Some(script)) => Ok(ShellRuns::Script(script, &args[i + 1..])),
        (true, None) => Ok(ShellRuns::Nothing),
        (false, Some(file)) if !super::wrap::reads_stdin(file) => Ok(ShellRuns::File(&args[i..])),
        _ => Err(ShellArgsError::FromInput {
            program: program.to_owned(),
        }),
    }
}

/// A word as the lexer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word {
        text: String,
        dynamic: bool,
    },
    /// `;` `&` `&&` `||` `|` `|&` newline `(` `)`: ends a simple command.
    Separator,
    /// A redirection operator: the next word is its target, not an argument.
    Redirect,
}

struct Lexer<'a> {
    chars: Vec<char>,
    i: usize,
    script: &'a mut Script,
    depth: usize,
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

fn simple_command(mut words: Vec<(String, bool)>, out: &mut Script) {
    // Keywords in front (`if`, `then`, `do`, `!`, ...) and leading assignments.
    while let Some((w, dynamic)) = words.first() {
        if !dynamic && KEYWORDS.contains(&w.as_str()) {
            words.remove(0);
        } else if let Some(name) = super::wrap::assignment_name(w) {
            if super::wrap::env_runs_code(name) {
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
                }
            }
        }
        "eval" | "source" | "." => {
            out.opaque
                .get_or_insert_with(|| format!("`{program}` runs code known only when it runs"));
        }
        "for" | "case" | "select" | "function" | "[[" | "((" | "coproc" => {
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

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn opaque(&mut self, why: &str) {
        self.script.opaque.get_or_insert_with(|| why.to_owned());
    }

    #[allow(unused_assignments)] // the last `end_word!` resets state nobody reads
    fn tokens(&mut self) -> Vec<Token> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut dynamic = false;
        macro_rules! end_word {
            () => {
                if in_word {
                    out.push(Token::Word {
                        text: std::mem::take(&mut word),
                        dynamic: std::mem::take(&mut dynamic),
                    });
                }
                in_word = false;
            };
        }
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' => {
                    end_word!();
                    self.i += 1;
                }
                '(' if self.peek(1) == Some(')') => {
                    // `name()`: a function definition.
                    end_word!();
                    out.push(Token::Word {
                        text: "()".into(),
                        dynamic: false,
                    });
                    self.i += 2;
                }
                '\n' | ';' | '(' | ')' => {
                    end_word!();
                    out.push(Token::Separator);
                    self.i += 1;
                }
                '&' | '|' => {
                    end_word!();
                    // `&>` and `&>>` redirect; `&&`, `||`, `|&`, `|`, `&` separate.
                    if c == '&' && self.peek(1) == Some('>') {
                        self.i += if self.peek(2) == Some('>') { 3 } else { 2 };
                        out.push(Token::Redirect);
                    } else {
                        self.i += if matches!(self.peek(1), Some('&') | Some('|')) {
                            2
                        } else {
                            1
                        };
                        out.push(Token::Separator);
                    }
                }
                '#' if !in_word => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                '<' | '>' => {
                    // A number right before is the descriptor (`2>`), not a word.
                    if in_word && !dynamic && word.chars().all(|d| d.is_ascii_digit()) {
                        word.clear();
                        in_word = false;
                    }
                    end_word!();
                    if c == '<' && self.peek(1) == Some('(')
                        || c == '>' && self.peek(1) == Some('(')
                    {
                        // Process substitution: its inner command runs.
                        self.i += 2;
                        let inner = self.until_close_paren();
                        parse_into(&inner, self.script, self.depth + 1);
                        continue;
                    }
                    if c == '<' && self.peek(1) == Some('<') && self.peek(2) != Some('<') {
                        self.opaque("here-documents are not resolved statically");
                    }
                    self.i += 1;
                    while matches!(self.peek(0), Some('<' | '>' | '&' | '|')) {
                        self.i += 1;
                    }
                    // `2>&1`: the target is a descriptor, glued to the operator.
                    if self.chars.get(self.i - 1) == Some(&'&') {
                        while matches!(self.peek(0), Some(d) if d.is_ascii_digit() || d == '-') {
                            self.i += 1;
                        }
                        continue;
                    }
                    out.push(Token::Redirect);
                }
                '\\' => {
                    in_word = true;
                    match self.peek(1) {
                        Some('\n') => {}
                        Some(n) => word.push(n),
                        None => word.push('\\'),
                    }
                    self.i += 2;
                }
                '\'' => {
                    in_word = true;
                    self.i += 1;
                    while let Some(c) = self.peek(0) {
                        self.i += 1;
                        if c == '\'' {
                            break;
                        }
                        word.push(c);
                    }
                }
                '"' => {
                    in_word = true;
                    self.i += 1;
                    while let Some(c) = self.peek(0) {
                        match c {
                            '"' => {
                                self.i += 1;
                                break;
                            }
                            '\\' => {
                                match self.peek(1) {
                                    Some(n @ ('"' | '\\' | '$' | '`')) => word.push(n),
                                    Some('\n') => {}
                                    Some(n) => {
                                        word.push('\\');
                                        word.push(n);
                                    }
                                    None => word.push('\\'),
                                }
                                self.i += 2;
                            }
                            '$' if self.positional().is_some_and(|v| {
                                word.push_str(&v);
                                true
                            }) => {}
                            '$' | '`' => {
                                dynamic = true;
                                self.expansion(&mut word);
                            }
                            c => {
                                word.push(c);
                                self.i += 1;
                            }
                        }
                    }
                }
                '$' if self.peek(1) == Some('\'') => {
                    // ANSI-C quoting `$'...'`: decoded exactly as bash does.
                    in_word = true;
                    self.i += 2;
                    self.ansi_c(&mut word);
                }
                '$' if self.peek(1) == Some('"') => {
                    // `$"..."` (locale translation) reads like `"..."`.
                    self.i += 1;
                }
                '$' if self.positional().is_some_and(|v| {
                    // Unquoted, the value is split and globbed: exact only when plain.
                    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || "*?[{".contains(c))
                    {
                        dynamic = true;
                    }
                    word.push_str(&v);
                    true
                }) =>
                {
                    in_word = true;
                }
                '$' | '`' => {
                    in_word = true;
                    dynamic = true;
                    self.expansion(&mut word);
                }
                c => {
                    in_word = true;
                    // Unquoted glob characters and brace expansions make the word known only
                    // when the shell runs: `aw?`, `p*`, `{aws,iam,put-role-policy}`.
                    match c {
                        '*' | '?' => dynamic = true,
                        '[' if self.chars[self.i..]
                            .iter()
                            .skip(1)
                            .take_while(|c| !c.is_whitespace())
                            .any(|c| *c == ']') =>
                        {
                            dynamic = true
                        }
                        ',' if word.contains('{') => dynamic = true,
                        '.' if word.contains('{') && self.peek(1) == Some('.') => dynamic = true,
                        _ => {}
                    }
                    word.push(c);
                    self.i += 1;
                }
            }
        }
        end_word!();
        out
    }

    /// `$N` or `${N}` at the cursor when the positional parameters are known: consumes it and
    /// returns its value (empty when there is no such parameter).
    fn positional(&mut self) -> Option<String> {
        let params = self.script.params.as_ref()?;
        let (digits_at, close) = match self.peek(1)? {
            '{' => (2, true),
            c if c.is_ascii_digit() => (1, false),
            _ => return None,
        };
        let mut n = String::new();
        while let Some(d) = self.peek(digits_at + n.len()).filter(char::is_ascii_digit) {
            n.push(d);
            if !close {
                break; // `$12` is `${1}2`
            }
        }
        if n.is_empty() {
            return None;
        }
        let mut len = digits_at + n.len();
        if close {
            if self.peek(len) != Some('}') {
                return None;
            }
            len += 1;
        }
        let value = params
            .get(n.parse::<usize>().ok()?)
            .cloned()
            .unwrap_or_default();
        self.i += len;
        Some(value)
    }

    /// The body of `$'...'` after the opening quote, with its escapes decoded (bash's
    /// `ansicstr`): `\n` `\t` `\xHH` `\NNN` `\uHHHH` `\UHHHHHHHH` `\cX` `\e` and the rest.
    fn ansi_c(&mut self, word: &mut String) {
        let digits = |lx: &mut Self, radix: u32, max: usize| {
            let mut v: u32 = 0;
            let mut n = 0;
            while n < max {
                match lx.peek(0).and_then(|c| c.to_digit(radix)) {
                    Some(d) => {
                        v = v * radix + d;
                        lx.i += 1;
                        n += 1;
                    }
                    None => break,
                }
            }
            (v, n)
        };
        while let Some(c) = self.peek(0) {
            self.i += 1;
            match c {
                '\'' => return,
                '\\' => {
                    let Some(e) = self.peek(0) else {
                        word.push('\\');
                        return;
                    };
                    self.i += 1;
                    let decoded = match e {
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'e' | 'E' => Some('\x1b'),
                        'f' => Some('\x0c'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'v' => Some('\x0b'),
                        '\\' | '\'' | '"' | '?' => Some(e),
                        '0'..='7' => {
                            self.i -= 1;
                            let (v, _) = digits(self, 8, 3);
                            // Bytes above 0x7f are not valid UTF-8 alone; bash emits the byte.
                            char::from_u32(v & 0xff)
                        }
                        'x' => match digits(self, 16, 2) {
                            (_, 0) => {
                                word.push_str("\\x");
                                None
                            }
                            (v, _) => char::from_u32(v),
                        },
                        'u' | 'U' => {
                            let max = if e == 'u' { 4 } else { 8 };
                            match digits(self, 16, max) {
                                (_, 0) => {
                                    word.push('\\');
                                    word.push(e);
                                    None
                                }
                                (v, _) => char::from_u32(v),
                            }
                        }
                        'c' => match self.peek(0) {
                            Some(x) => {
                                self.i += 1;
                                char::from_u32((x.to_ascii_uppercase() as u32) ^ 0x40)
                            }
                            None => None,
                        },
                        other => {
                            word.push('\\');
                            Some(other)
                        }
                    };
                    if let Some(d) = decoded {
                        word.push(d);
                    }
                }
                c => word.push(c),
            }
        }
        self.opaque("an unclosed `$'`");
    }

    /// Reads a `$...` or backtick expansion at the cursor into `word` (as text), splitting the
    /// commands of a command substitution.
    fn expansion(&mut self, word: &mut String) {
        match (self.peek(0), self.peek(1)) {
            (Some('$'), Some('(')) if self.peek(2) == Some('(') => {
                // Arithmetic `$((...))`: no command runs, unless a substitution hides inside.
                self.i += 3;
                let inner = self.until_close_paren();
                if inner.contains("$(") || inner.contains('`') {
                    self.opaque("a command substitution inside `$((...))`");
                }
                word.push_str(&format!("$(({inner}"));
            }
            (Some('$'), Some('(')) => {
                self.i += 2;
                let inner = self.until_close_paren();
                parse_into(&inner, self.script, self.depth + 1);
                word.push_str(&format!("$({inner})"));
            }
            (Some('`'), _) => {
                self.i += 1;
                let mut inner = String::new();
                while let Some(c) = self.peek(0) {
                    self.i += 1;
                    match c {
                        '`' => break,
                        '\\' => {
                            if let Some(n) = self.peek(0) {
                                inner.push(n);
                                self.i += 1;
                            }
                        }
                        c => inner.push(c),
                    }
                }
                parse_into(&inner, self.script, self.depth + 1);
                word.push_str(&format!("`{inner}`"));
            }
            (Some('$'), Some('{')) => {
                self.i += 2;
                let start = word.len();
                word.push_str("${");
                while let Some(c) = self.peek(0) {
                    self.i += 1;
                    word.push(c);
                    if c == '}' {
                        break;
                    }
                }
                // `${X:-$(cmd)}` runs cmd; so can `${x@P}`, `${!ref}` names a variable at run time.
                let body = &word[start..];
                if body.contains("$(") || body.contains('`') || body.contains("@P") {
                    self.opaque("a command substitution inside `${...}`");
                }
            }
            _ => {
                word.push('$');
                self.i += 1;
            }
        }
    }

    /// The text up to the `)` that closes one already opened, minding nesting and quotes.
    fn until_close_paren(&mut self) -> String {
        let mut depth = 1;
        let mut inner = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek(0) {
            self.i += 1;
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some('"'), '\\') => {
                    inner.push(c);
                    if let Some(n) = self.peek(0) {
                        inner.push(n);
                        self.i += 1;
                    }
                    continue;
                }
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '\\') => {
                    inner.push(c);
                    if let Some(n) = self.peek(0) {
                        inner.push(n);
                        self.i += 1;
                    }
                    continue;
                }
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        return inner;
                    }
                }
                _ => {}
            }
            inner.push(c);
        }
        self.opaque("an unclosed `(`");
        inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn cmds(script: &str) -> Vec<String> {
        parse(script).commands.iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn finds_the_script() {
        assert_eq!(script_of(&argv(&["bash", "-c", "ls"])), Some("ls"));
        assert_eq!(script_of(&argv(&["/bin/sh", "-ec", "ls", "x"])), Some("ls"));
        assert_eq!(script_of(&argv(&["bash", "-l", "-c", "ls"])), Some("ls"));
        assert_eq!(
            script_of(&argv(&["bash", "-o", "pipefail", "-c", "ls"])),
            Some("ls")
        );
        assert_eq!(script_of(&argv(&["bash", "script.sh"])), None);
        assert_eq!(script_of(&argv(&["aws", "-c", "x"])), None);
    }

    #[test]
    fn splits_lists_pipes_and_groups() {
        assert_eq!(
            cmds("cd /srv && aws iam put-role-policy --role-name x; echo done | tee log"),
            [
                "cd /srv",
                "aws iam put-role-policy --role-name x",
                "echo done",
                "tee log"
            ]
        );
        assert_eq!(
            cmds("(rm -rf /tmp/x) || { kubectl delete pod a; }"),
            ["rm -rf /tmp/x", "kubectl delete pod a"]
        );
        assert_eq!(
            cmds("if test -f x; then terraform apply; else echo no; fi"),
            ["test -f x", "terraform apply", "echo no"]
        );
        assert_eq!(cmds("a &\nb"), ["a", "b"]);
    }

    #[test]
    fn quotes_escapes_and_redirections() {
        assert_eq!(cmds(r#"echo 'a b' "c d" e\ f"#), ["echo a b c d e f"]);
        assert_eq!(
            cmds("aws s3 cp s3://b/k - > out.txt 2>&1"),
            ["aws s3 cp s3://b/k -"]
        );
        assert_eq!(cmds("FOO=1 BAR=2 terraform destroy"), ["terraform destroy"]);
        assert_eq!(cmds("cat < in &> /dev/null"), ["cat"]);
        assert_eq!(cmds("ls # rm -rf /"), ["ls"]);
    }

    #[test]
    fn substitutions_are_split_too() {
        assert_eq!(
            cmds("echo $(aws iam delete-user --user-name x)"),
            [
                "aws iam delete-user --user-name x",
                "echo $(aws iam delete-user --user-name x)"
            ]
        );
        assert_eq!(cmds("echo `rm -rf /`"), ["rm -rf /", "echo `rm -rf /`"]);
        assert_eq!(cmds("diff <(kubectl get a) b"), ["kubectl get a", "diff b"]);
        assert!(parse("echo $((1 + 2))").opaque.is_none());
        assert!(parse("echo $((1 + $(rm -rf /)))").opaque.is_some());
        assert!(parse("echo \"${X:-$(rm -rf /)}\"").opaque.is_some());
        assert!(parse("echo ${X:-`rm -rf /`}").opaque.is_some());
        assert!(parse("echo ${X:-default}").opaque.is_none());
    }

    #[test]
    fn what_cannot_be_resolved_is_opaque() {
        for s in [
            "eval \"$X\"",
            "$CMD --force",
            "source ./x.sh",
            "for i in a; do rm $i; done",
            "cat <<EOF\nhi\nEOF",
            "f() { rm -rf /; }; f",
        ] {
            assert!(parse(s).opaque.is_some(), "{s}");
        }
        assert!(parse("echo \"$HOME\" && ls ~").opaque.is_none());
        // A trap's action is read as a script of its own.
        let t = parse("trap -- 'rm -rf /' EXIT");
        assert!(
            t.commands
                .contains(&vec!["rm".to_string(), "-rf".into(), "/".into()])
        );
        assert!(parse("trap -x 'rm -rf /' EXIT").opaque.is_some());
        let t = parse("trap 'rm -rf /tmp/x; exit 42' TERM; sleep 30");
        assert!(t.opaque.is_none());
        assert!(
            t.commands
                .contains(&vec!["rm".to_string(), "-rf".into(), "/tmp/x".into()])
        );
    }

    #[test]
    fn nested_shells_are_commands_read_in_turn() {
        // The script is split here; the nested `bash -c` is read by the caller, like any
        // command that runs another (`command::wrap`).
        assert_eq!(
            cmds("bash -c 'aws iam list-roles'"),
            ["bash -c aws iam list-roles"]
        );
    }

    #[test]
    fn ansi_c_quoting_is_decoded() {
        assert_eq!(
            cmds(r"aws iam $'put-role-policy' $'\x70ut' $'\160' $'a\tb' $'\u0041' $'\cA'"),
            ["aws iam put-role-policy put p a\tb A \u{1}"]
        );
        assert_eq!(cmds(r#"echo $"x y""#), ["echo x y"]);
        assert!(parse("echo $'x").opaque.is_some());
    }

    #[test]
    fn shell_options_are_read_exactly() {
        let a = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let ok = |line: &str| {
            let v = a(line);
            matches!(script_of_shell("bash", &v), Ok(ShellRuns::Script(..)))
        };
        assert!(ok("-c ls"));
        assert!(ok("-euo pipefail -c ls"));
        assert!(ok("-l -c ls"));
        assert!(ok("--norc --noprofile -c ls"));
        assert!(ok("+O expand_aliases -c ls"));
        for bad in [
            "-O expand_aliases -c ls",
            "-O expand_aliases -c ls",
            "--rcfile /dev/null -c ls",
            "--init-file x -c ls",
            "-i -c ls",
            "-s",
            "",
            "-",
            "/dev/stdin",
            "-o vi-mode-bogus -c ls",
            "-k -c ls",
        ] {
            assert!(script_of_shell("bash", &a(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            script_of_shell("bash", &a("deploy.sh x")),
            Ok(ShellRuns::File(&a("deploy.sh x")))
        );
    }

    #[test]
    fn words_known_only_at_run_time() {
        let dynamic = |s: &str| {
            parse(s)
                .dynamic
                .iter()
                .map(|c| c.join(" "))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            dynamic("aws iam $(echo put-role-policy); aws iam p*; aws s3 ls; ls a[0]"),
            ["aws iam $(echo put-role-policy)", "aws iam p*", "ls a[0]"]
        );
        assert_eq!(dynamic("echo {a,b}"), ["echo {a,b}"]);
        assert_eq!(dynamic("echo x{1..3}"), ["echo x{1..3}"]);
        assert!(dynamic("echo '*' \\? \"{x,y}\" '[a]'").is_empty());
        assert!(dynamic("[ -f x ] && find . -exec rm {} ;").is_empty());
        // In command position they are opaque.
        for s in [
            "{aws,iam,put-role-policy}",
            "/usr/bin/aw? iam x",
            "aws${IFS}iam",
        ] {
            assert!(parse(s).opaque.is_some(), "{s}");
        }
    }

    #[test]
    fn positional_parameters_of_sh_c_are_known() {
        let args: Vec<String> = ["sh", "/tmp/started", "a b"].map(String::from).to_vec();
        let s = parse_with_args(r#"touch "$1"; echo ${1} $0; rm $2 "$2" $3"#, &args);
        let cmds: Vec<String> = s.commands.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            cmds,
            ["touch /tmp/started", "echo /tmp/started sh", "rm a b a b "]
        );
        // Unquoted `$2` splits, and `$3` is missing: both only known when it runs.
        assert_eq!(s.dynamic.len(), 1);
        assert!(
            parse(r#"touch "$1""#).dynamic.len() == 1,
            "unknown without the arguments"
        );
    }

    #[test]
    fn relative_programs_after_cd_are_opaque() {
        assert!(
            parse("cd ~/bin && ./myaws iam put-role-policy")
                .opaque
                .is_some()
        );
        assert!(parse("./build.sh && cd out").opaque.is_none());
        assert!(parse("cd /srv && /usr/bin/aws s3 ls").opaque.is_none());
    }

    #[test]
    fn assignments_that_change_what_runs_are_opaque() {
        assert!(parse("PATH=/tmp/bin ls").opaque.is_some());
        assert!(parse("BASH_ENV=/tmp/x bash -c ls").opaque.is_some());
        assert!(parse("GIT_SSH_COMMAND=x git push").opaque.is_some());
        assert!(parse("AWS_PROFILE=prod aws s3 ls").opaque.is_none());
        assert!(parse("printf -v 'a[$(aws iam x)]' 1").opaque.is_some());
    }

    #[test]
    fn never_panics() {
        for s in [
            "",
            "'",
            "\"",
            "\\",
            "$(",
            "`",
            "$((",
            "${",
            "<(",
            ">",
            "2>&",
            "&&&",
            "((((",
            "é$é`é'é",
            "a <<",
            "\\\n",
        ] {
            let _ = parse(s);
        }
    }
}
