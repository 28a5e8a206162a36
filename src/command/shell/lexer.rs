//! The lexer: quotes and escapes, ANSI-C `$'...'`, expansions and command substitutions (split
//! in turn), operators and redirections, read without running anything.

use super::{Script, parse_into};

/// A word as the lexer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Word {
        text: String,
        dynamic: bool,
    },
    /// `;` `&` `&&` `||` `|` `|&` newline `(` `)`: ends a simple command. The character is
    /// the operator's first (`case` patterns end at `)` and are joined by `|`; `;;` ends a
    /// `case` branch).
    Separator(char),
    /// A redirection operator: the next word is its target, not an argument.
    Redirect,
    /// A here-document on the command's standard input: its body, by index into
    /// [`Lexer::bodies`].
    HereDoc(usize),
}

pub(super) struct Lexer<'a> {
    pub(super) chars: Vec<char>,
    pub(super) i: usize,
    pub(super) script: &'a mut Script,
    pub(super) depth: usize,
    /// Here-documents opened on the current line, whose bodies start after it.
    pub(super) heredocs: Vec<HereDoc>,
    /// Each standard-input here-document's body, when it is literal text (a quoted delimiter,
    /// or no expansion, substitution or escape in it): what the command reads.
    pub(super) bodies: Vec<Option<String>>,
}

/// A here-document's delimiter, as `<<` or `<<-` gave it.
pub(super) struct HereDoc {
    delimiter: String,
    /// Any part of the delimiter was quoted: the body is literal text.
    quoted: bool,
    /// `<<-`: leading tabs are stripped from the body's lines and the delimiter line.
    strip_tabs: bool,
    /// Its place in [`Lexer::bodies`], when it is the command's standard input.
    body: Option<usize>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn opaque(&mut self, why: &str) {
        self.script.opaque.get_or_insert_with(|| why.to_owned());
    }

    #[allow(unused_assignments)] // the last `end_word!` resets state nobody reads
    pub(super) fn tokens(&mut self) -> Vec<Token> {
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
                    out.push(Token::Separator(c));
                    self.i += 1;
                    if c == '\n' {
                        self.heredoc_bodies();
                    }
                }
                '&' | '|' => {
                    end_word!();
                    // `&>` and `&>>` redirect; `&&`, `||`, `|&`, `|`, `&` separate.
                    if c == '&' && self.peek(1) == Some('>') {
                        self.i += if self.peek(2) == Some('>') { 3 } else { 2 };
                        out.push(Token::Redirect);
                    } else {
                        // `||` is not a `case` pattern's `|`: told apart as `&&` is.
                        let op = if c == '|' && self.peek(1) == Some('|') {
                            '&'
                        } else {
                            c
                        };
                        self.i += if matches!(self.peek(1), Some('&') | Some('|')) {
                            2
                        } else {
                            1
                        };
                        out.push(Token::Separator(op));
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
                    let mut descriptor = None;
                    if in_word && !dynamic && word.chars().all(|d| d.is_ascii_digit()) {
                        descriptor = Some(std::mem::take(&mut word));
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
                        // A here-document: its body is the command's input, read after this
                        // line; the delimiter is not a word of the command.
                        self.i += 2;
                        let mut doc = self.heredoc_delimiter();
                        if descriptor.is_none_or(|d| d.parse::<u32>() == Ok(0)) {
                            doc.body = Some(self.bodies.len());
                            out.push(Token::HereDoc(self.bodies.len()));
                            self.bodies.push(None);
                        }
                        self.heredocs.push(doc);
                        continue;
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

    /// After `<<` (and an optional `-`): reads the delimiter word.
    fn heredoc_delimiter(&mut self) -> HereDoc {
        let strip_tabs = self.peek(0) == Some('-');
        if strip_tabs {
            self.i += 1;
        }
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.i += 1;
        }
        let mut delimiter = String::new();
        let mut quoted = false;
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                '\'' | '"' => {
                    quoted = true;
                    self.i += 1;
                    while let Some(q) = self.peek(0) {
                        self.i += 1;
                        if q == c {
                            break;
                        }
                        delimiter.push(q);
                    }
                }
                '\\' => {
                    quoted = true;
                    if let Some(n) = self.peek(1) {
                        delimiter.push(n);
                    }
                    self.i += 2;
                }
                c => {
                    delimiter.push(c);
                    self.i += 1;
                }
            }
        }
        if delimiter.is_empty() {
            self.opaque("a here-document without a delimiter");
        }
        HereDoc {
            delimiter,
            quoted,
            strip_tabs,
            body: None,
        }
    }

    /// At the start of the line after `<<` operators: consumes each pending here-document's
    /// body, up to its delimiter line. A quoted delimiter's body is literal input; an unquoted
    /// one's command substitutions run, and are split like any other.
    fn heredoc_bodies(&mut self) {
        for doc in std::mem::take(&mut self.heredocs) {
            let mut body = String::new();
            let mut closed = false;
            while self.i < self.chars.len() {
                let end = self.chars[self.i..]
                    .iter()
                    .position(|c| *c == '\n')
                    .map_or(self.chars.len(), |p| self.i + p);
                let line: String = self.chars[self.i..end].iter().collect();
                self.i = (end + 1).min(self.chars.len());
                let text = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line.as_str()
                };
                if text == doc.delimiter {
                    closed = true;
                    break;
                }
                body.push_str(text);
                body.push('\n');
            }
            if !closed {
                self.opaque("a here-document without its closing delimiter");
            }
            if let Some(i) = doc.body
                && closed
                && (doc.quoted || !body.contains(['$', '`', '\\']))
            {
                self.bodies[i] = Some(body.clone());
            }
            if !doc.quoted && (body.contains('$') || body.contains('`')) {
                self.body_expansions(&body);
            }
        }
    }

    /// The expansions of an unquoted here-document's body: its command substitutions are
    /// split; what cannot be read is opaque as anywhere else.
    fn body_expansions(&mut self, body: &str) {
        let mut sub = Lexer {
            chars: body.chars().collect(),
            i: 0,
            script: &mut *self.script,
            depth: self.depth,
            heredocs: Vec::new(),
            bodies: Vec::new(),
        };
        let mut scratch = String::new();
        while let Some(c) = sub.peek(0) {
            match c {
                '\\' => sub.i += 2,
                '$' | '`' => sub.expansion(&mut scratch),
                _ => sub.i += 1,
            }
        }
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
        let mut pending: Vec<HereDoc> = Vec::new();
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
                (None, '<') if self.peek(0) == Some('<') && self.peek(1) != Some('<') => {
                    // A here-document inside: its body is copied as it is, quotes and
                    // parentheses in it (`It's`) are text, not syntax.
                    let start = self.i - 1;
                    self.i += 1;
                    let doc = self.heredoc_delimiter();
                    inner.extend(&self.chars[start..self.i]);
                    pending.push(doc);
                    continue;
                }
                (None, '\n') if !pending.is_empty() => {
                    inner.push('\n');
                    for doc in std::mem::take(&mut pending) {
                        while self.i < self.chars.len() {
                            let end = self.chars[self.i..]
                                .iter()
                                .position(|c| *c == '\n')
                                .map_or(self.chars.len(), |p| self.i + p);
                            let line: String = self.chars[self.i..end].iter().collect();
                            inner.push_str(&line);
                            inner.push('\n');
                            self.i = (end + 1).min(self.chars.len());
                            let text = if doc.strip_tabs {
                                line.trim_start_matches('\t')
                            } else {
                                line.as_str()
                            };
                            if text == doc.delimiter {
                                break;
                            }
                        }
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
