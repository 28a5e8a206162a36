//! Policy diagnostics: every problem carries `path:line:column`, and all problems of a file are
//! collected before reporting, so an author fixes a file in one pass (the way `just` reports).

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a policy file: 1-based line, 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
    /// The offending source line, for the caret display.
    pub source_line: Option<String>,
}

/// The pieces of a rendered diagnostic, so that whoever prints one can style each (the
/// `output` module colours them; plain text is the same pieces unstyled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The `error` label of a problem or of the closing count.
    Error,
    /// The `-->` before the place.
    Arrow,
    /// The line-number gutter and its `|` bars.
    Gutter,
    /// The `^` under the column.
    Caret,
    /// The `hint` label.
    Hint,
    /// Everything else: messages, the place, the offending line.
    Text,
}

impl Diagnostic {
    /// The diagnostic as text, each piece passed through `paint` (which may style it; it must
    /// keep its text).
    pub fn render_with(&self, paint: &dyn Fn(Part, &str) -> String) -> String {
        let t = |s: &str| paint(Part::Text, s);
        let mut out = format!(
            "{}{}\n  {} {}",
            paint(Part::Error, "error"),
            t(&format!(": {}", self.message)),
            paint(Part::Arrow, "-->"),
            t(&format!(
                "{}:{}:{}",
                self.path.display(),
                self.pos.line,
                self.pos.col
            )),
        );
        if let Some(line) = &self.source_line {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = line
                .chars()
                .take(self.pos.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let bar = paint(Part::Gutter, "|");
            out.push_str(&format!(
                "\n{pad} {bar}\n{} {}\n{pad} {bar} {caret_pad}{}",
                paint(Part::Gutter, &format!("{gutter} |")),
                t(line),
                paint(Part::Caret, "^"),
            ));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!(
                "\n  = {}{}",
                paint(Part::Hint, "hint"),
                t(&format!(": {hint}"))
            ));
        }
        out
    }
}

/// No styling: the text as it reads without colour.
fn plain(_: Part, s: &str) -> String {
    s.to_owned()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_with(&plain))
    }
}

/// Collects the diagnostics of one file while it is checked.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    path: &'a Path,
    source: &'a str,
    pub items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(path: &'a Path, source: &'a str) -> Self {
        Self {
            path,
            source,
            items: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(pos, message.into(), None);
    }

    pub fn error_hint(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.push(pos, message.into(), Some(hint.into()));
    }

    fn push(&mut self, pos: Pos, message: String, hint: Option<String>) {
        let source_line = pos
            .line
            .checked_sub(1)
            .and_then(|i| self.source.lines().nth(i))
            .map(str::to_owned);
        self.items.push(Diagnostic {
            path: self.path.to_path_buf(),
            pos,
            message,
            hint,
            source_line,
        });
    }
}

/// Renders a list of diagnostics, one block per problem, with a closing count.
pub fn render(diags: &[Diagnostic]) -> String {
    render_with(diags, &plain)
}

/// [`render`], each piece passed through `paint` (see [`Diagnostic::render_with`]).
pub fn render_with(diags: &[Diagnostic], paint: &dyn Fn(Part, &str) -> String) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.render_with(paint));
        out.push_str("\n\n");
    }
    let n = diags.len();
    out.push_str(&paint(Part::Error, "error"));
    out.push_str(&paint(
        Part::Text,
        &format!(": {n} problem{} in policy", if n == 1 { "" } else { "s" }),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(hint: Option<&str>) -> Diagnostic {
        let source = "rules:\n  - name: x\n    decison: deny\n";
        let mut d = Diagnostics::new(Path::new("p.yaml"), source);
        let pos = Pos { line: 3, col: 5 };
        match hint {
            Some(h) => d.error_hint(pos, "unknown key `decison`", h),
            None => d.error(pos, "unknown key `decison`"),
        }
        d.items.remove(0)
    }

    #[test]
    fn a_diagnostic_reads_like_just_and_rustc() {
        assert_eq!(
            render(&[diag(Some("did you mean `decision`?"))]),
            "error: unknown key `decison`\n  --> p.yaml:3:5\n  |\n3 |     decison: deny\n  |     ^\n  \
             = hint: did you mean `decision`?\n\nerror: 1 problem in policy"
        );
        assert_eq!(
            render(&[diag(None), diag(None)]),
            "error: unknown key `decison`\n  --> p.yaml:3:5\n  |\n3 |     decison: deny\n  |     ^\n\n\
             error: unknown key `decison`\n  --> p.yaml:3:5\n  |\n3 |     decison: deny\n  |     ^\n\n\
             error: 2 problems in policy"
        );
    }

    #[test]
    fn painting_keeps_the_text_and_marks_each_part() {
        let d = [diag(Some("did you mean `decision`?"))];
        let marked = render_with(&d, &|part, s| match part {
            Part::Text => s.to_owned(),
            other => format!("<{other:?}>{s}</>"),
        });
        for piece in [
            "<Error>error</>: unknown key",
            "<Arrow>--></> p.yaml:3:5",
            "<Gutter>3 |</>     decison: deny",
            "<Gutter>|</>     <Caret>^</>",
            "= <Hint>hint</>: did you mean",
            "<Error>error</>: 1 problem in policy",
        ] {
            assert!(marked.contains(piece), "{piece:?} not in {marked}");
        }
        let unmarked = marked.replace("</>", "");
        let unmarked = ["Error", "Arrow", "Gutter", "Caret", "Hint"]
            .iter()
            .fold(unmarked, |s, p| s.replace(&format!("<{p}>"), ""));
        assert_eq!(unmarked, render(&d));
    }
}
