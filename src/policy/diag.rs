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

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error: {}\n  --> {}:{}:{}",
            self.message,
            self.path.display(),
            self.pos.line,
            self.pos.col
        )?;
        if let Some(line) = &self.source_line {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = line
                .chars()
                .take(self.pos.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{gutter} | {line}\n{pad} | {caret_pad}^")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
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
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push_str("\n\n");
    }
    let n = diags.len();
    out.push_str(&format!(
        "error: {n} problem{} in policy",
        if n == 1 { "" } else { "s" }
    ));
    out
}
