//! Splitting shell strings (`sh -c '...'`, and the wrappers `sudo`, `env`, `xargs`, ...) into the
//! simple commands they run, so each is classified on its own and the most restrictive decision
//! wins (DESIGN §5). Without this, `bash -c 'aws iam put-role-policy ...'` would be judged as
//! "bash" and slip past every aws rule.
//!
//! This is a static reading of POSIX shell syntax: quotes and escapes, `;` `&&` `||` `|` `&`
//! and newlines, `( )` and `{ }` groups, `if/while/until` bodies, redirections, leading
//! `NAME=value` assignments, and command substitutions (`$(...)`, backticks), whose inner
//! commands are split too. What cannot be resolved without running the shell — `eval`,
//! `source`, a command name that is an expansion, `for`/`case`/functions, here-documents — makes
//! the script *opaque*, and the policy's `defaults.opaque_shell` decides (DESIGN §5). Expansions
//! in arguments (`"$HOME"`) stay as literal text. Never panics.

/// The simple commands a shell string runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// Each simple command's words, in order of appearance.
    pub commands: Vec<Vec<String>>,
    /// Why the script cannot be fully resolved statically, if it can't.
    pub opaque: Option<String>,
}

const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"];

/// Programs that run another command given in their arguments.
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "command", "exec", "nohup", "nice", "time", "timeout", "xargs",
    "stdbuf", "setsid", "chroot", "runuser", "su", "flock", "ionice", "strace", "watch",
];

/// The script of `sh -c SCRIPT ...` (any of the usual shells, flags clustered or not).
pub fn script_of(argv: &[String]) -> Option<&str> {
    let program = argv.first()?.rsplit('/').next()?;
    if !SHELLS.contains(&program) {
        return None;
    }
    let mut args = argv[1..].iter();
    if program == "busybox" {
        // `busybox sh -c ...`
        if args.next().map(String::as_str) != Some("sh") {
            return None;
        }
    }
    let mut saw_c = false;
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "-o" || a == "+o" || a == "-O" || a == "+O" {
            args.next();
            continue;
        }
        if let Some(flags) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) {
            if !flags.is_empty() && !flags.starts_with('-') {
                saw_c |= flags.contains('c');
                continue;
            }
            if flags.starts_with('-') {
                continue; // long options like --norc, --login
            }
        }
        return saw_c.then_some(a.as_str());
    }
    if saw_c {
        args.next().map(String::as_str)
    } else {
        None
    }
}

/// The command a wrapper runs (`sudo -u x aws ...` → `aws ...`), or `None`.
pub fn unwrap(argv: &[String]) -> Option<Vec<String>> {
    let program = argv.first()?.rsplit('/').next()?;
    if !WRAPPERS.contains(&program) {
        return None;
    }
    // Options that take a value, by wrapper (a miss only leaves an extra word in front, which
    // then is classified as a program too: more restrictive, never less).
    let valued: &[&str] = match program {
        "sudo" => &[
            "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group",
        ],
        "doas" => &["-u", "-C"],
        "env" => &["-u", "-C", "-S", "--unset", "--chdir"],
        "nice" => &["-n", "--adjustment"],
        "timeout" => &["-s", "-k", "--signal", "--kill-after"],
        "xargs" => &[
            "-a",
            "-d",
            "-E",
            "-e",
            "-I",
            "-i",
            "-L",
            "-l",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
        ],
        "stdbuf" => &["-i", "-o", "-e"],
        "runuser" | "su" => &["-u", "-g", "-G", "-s", "--user", "--group", "--shell"],
        "flock" => &["-w", "-E", "--timeout", "--conflict-exit-code"],
        "ionice" => &["-c", "-n", "-p"],
        "strace" => &["-o", "-e", "-p", "-s", "-u"],
        "watch" => &["-n", "--interval", "-d"],
        _ => &[],
    };
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            i += if valued.contains(&a.as_str()) { 2 } else { 1 };
            continue;
        }
        // `env NAME=value ...` and `sudo NAME=value ...` set variables first.
        if (program == "env" || program == "sudo") && is_assignment(a) {
            i += 1;
            continue;
        }
        break;
    }
    // `timeout DURATION cmd`, `flock FILE cmd`, `chroot DIR cmd`: one positional first.
    if matches!(program, "timeout" | "flock" | "chroot") {
        i += 1;
    }
    let rest: Vec<String> = argv.get(i..).unwrap_or(&[]).to_vec();
    (!rest.is_empty()).then_some(rest)
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
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
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time",
];

fn simple_command(mut words: Vec<(String, bool)>, out: &mut Script) {
    // Keywords in front (`if`, `then`, `do`, `!`, ...) and leading assignments.
    while let Some((w, dynamic)) = words.first() {
        if (!dynamic && KEYWORDS.contains(&w.as_str())) || is_assignment(w) {
            words.remove(0);
        } else {
            break;
        }
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
            // `trap ACTION SIGNAL...`: the action is a script of its own.
            if let Some((action, dynamic)) = words.get(1) {
                if *dynamic {
                    out.opaque
                        .get_or_insert_with(|| "a `trap` action that is an expansion".into());
                } else {
                    let action = action.clone();
                    let mut nested = Script::default();
                    parse_into(&action, &mut nested, 1);
                    out.commands.extend(nested.commands);
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
    let argv: Vec<String> = words.into_iter().map(|(w, _)| w).collect();
    // A nested `sh -c` is split too.
    if let Some(inner) = script_of(&argv) {
        let inner = inner.to_owned();
        out.commands.push(argv);
        let mut nested = Script::default();
        parse_into(&inner, &mut nested, 1);
        out.commands.extend(nested.commands);
        if let Some(o) = nested.opaque {
            out.opaque.get_or_insert(o);
        }
        return;
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
                '$' | '`' => {
                    in_word = true;
                    dynamic = true;
                    self.expansion(&mut word);
                }
                c => {
                    in_word = true;
                    word.push(c);
                    self.i += 1;
                }
            }
        }
        end_word!();
        out
    }

    /// Reads a `$...` or backtick expansion at the cursor into `word` (as text), splitting the
    /// commands of a command substitution.
    fn expansion(&mut self, word: &mut String) {
        match (self.peek(0), self.peek(1)) {
            (Some('$'), Some('(')) if self.peek(2) == Some('(') => {
                // Arithmetic `$((...))`: no command runs.
                self.i += 3;
                let inner = self.until_close_paren();
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
                word.push_str("${");
                while let Some(c) = self.peek(0) {
                    self.i += 1;
                    word.push(c);
                    if c == '}' {
                        break;
                    }
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
        assert_eq!(script_of(&argv(&["busybox", "sh", "-c", "ls"])), Some("ls"));
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
        let t = parse("trap 'rm -rf /tmp/x; exit 42' TERM; sleep 30");
        assert!(t.opaque.is_none());
        assert!(
            t.commands
                .contains(&vec!["rm".to_string(), "-rf".into(), "/tmp/x".into()])
        );
    }

    #[test]
    fn nested_shells_and_wrappers() {
        assert_eq!(
            cmds("bash -c 'aws iam list-roles'"),
            ["bash -c aws iam list-roles", "aws iam list-roles"]
        );
        assert_eq!(
            unwrap(&argv(&["sudo", "-u", "root", "aws", "iam", "x"])),
            Some(argv(&["aws", "iam", "x"]))
        );
        assert_eq!(
            unwrap(&argv(&["env", "A=1", "-u", "B", "kubectl", "apply"])),
            Some(argv(&["kubectl", "apply"]))
        );
        assert_eq!(
            unwrap(&argv(&[
                "timeout",
                "-s",
                "KILL",
                "30s",
                "terraform",
                "apply"
            ])),
            Some(argv(&["terraform", "apply"]))
        );
        assert_eq!(unwrap(&argv(&["ls", "-l"])), None);
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
