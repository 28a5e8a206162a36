//! Everything gate itself says on the terminal goes through here: messages on stderr in the
//! uv style (`error:` / `warning:` / `hint:`), the approval spinner on a terminal, a plain
//! progress line every 30 s elsewhere, and colour decided in one place (`--color`, `NO_COLOR`).
//! stdout is left to the child and to `--json` data.
//!
//! Text that came from a requester (argv, `--reason`, cwd, env values, file names in a spool)
//! can carry terminal control sequences; [`escape`] makes every control and invisible
//! direction-changing character visible, and every line gate writes to the terminal passes
//! through it, so no requester can make gate draw something other than what it holds.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{ProgressBar, ProgressStyle};

use crate::approval::Progress;
use crate::error::Error;
use crate::policy::Diagnostic;
use crate::policy::diag::{self, Part};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// How a word of a report on stdout reads, for its colour: good news (an allowed command, an
/// intact log), bad news (a denial, tampering), a caution (needs approval, a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Caution,
}

#[derive(Debug, Clone)]
pub struct Output {
    /// Colour on stderr.
    pub color: bool,
    /// Colour on stdout: `--color always`, or `auto` with stdout a terminal; never with
    /// `NO_COLOR` or `TERM=dumb`.
    color_stdout: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// `--json`: machine output; no spinner.
    pub json: bool,
    stderr_tty: bool,
}

impl Output {
    /// `no_color_env`: a non-empty `NO_COLOR`, or `TERM=dumb` (a terminal that would print
    /// escape sequences as text).
    pub fn new(
        choice: ColorChoice,
        no_color_env: bool,
        quiet: bool,
        verbose: u8,
        json: bool,
    ) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        // A non-empty NO_COLOR wins over everything, `--color always` included (STYLE.md;
        // https://no-color.org: the user's standing wish beats a flag a script passed).
        let wanted = |tty: bool| {
            !no_color_env
                && match choice {
                    ColorChoice::Always => true,
                    ColorChoice::Never => false,
                    ColorChoice::Auto => tty,
                }
        };
        let color = wanted(stderr_tty);
        let color_stdout = wanted(std::io::stdout().is_terminal());
        console::set_colors_enabled_stderr(color);
        console::set_colors_enabled(color_stdout);
        Output {
            color,
            color_stdout,
            quiet,
            verbose,
            json,
            stderr_tty,
        }
    }

    fn style(&self, s: Style) -> Style {
        if self.color {
            s.force_styling(true)
        } else {
            s.force_styling(false)
        }
    }

    fn line(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// A message gate composed, made safe for the terminal: its own line breaks stay.
    fn safe<'a>(&self, msg: &'a str) -> Cow<'a, str> {
        escape_text(msg)
    }

    pub fn error(&self, msg: &str) {
        let msg = self.safe(msg);
        let label = self.style(Style::new().red().bold()).apply_to("error");
        self.line(&format!("{label}: {msg}"));
    }

    pub fn hint(&self, msg: &str) {
        let msg = self.safe(msg);
        let label = self.style(Style::new().cyan().bold()).apply_to("hint");
        self.line(&format!("{label}: {msg}"));
    }

    pub fn warn(&self, msg: &str) {
        if !self.quiet {
            self.warn_always(msg);
        }
    }

    /// A warning `-q` does not silence: one about gate itself protecting nothing, which the
    /// person who asked for quiet is the one who must know (the fix, not `-q`, silences it).
    pub fn warn_always(&self, msg: &str) {
        let msg = self.safe(msg);
        let label = self.style(Style::new().yellow().bold()).apply_to("warning");
        self.line(&format!("{label}: {msg}"));
    }

    /// gate's own status lines (`gate: ...`), silenced by `-q`.
    pub fn info(&self, msg: &str) {
        let msg = self.safe(msg);
        if !self.quiet {
            let label = self.style(Style::new().bold()).apply_to("gate");
            self.line(&format!("{label}: {msg}"));
        }
    }

    /// The one status line `-q` keeps (the id of a request that waits, so an approver can be
    /// told it).
    pub fn notice(&self, msg: &str) {
        let label = self.style(Style::new().bold()).apply_to("gate");
        self.line(&format!("{label}: {}", self.safe(msg)));
    }

    /// Details shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 && !self.quiet {
            self.line(&format!("gate: {}", self.safe(msg)));
        }
    }

    /// Text an error message already formatted over several lines.
    pub fn raw_stderr(&self, text: &str) {
        self.line(&self.safe(text));
    }

    /// An error that ends gate: its message, or each policy diagnostic with its place, and the
    /// hint when there is one.
    pub fn report(&self, e: &Error) {
        match e {
            Error::Policy(diagnostics) => self.diagnostics(diagnostics),
            _ => self.error(&e.to_string()),
        }
        if let Some(h) = e.hint() {
            self.hint(h);
        }
    }

    /// Policy diagnostics as `just` and rustc show theirs: `path:line:column`, the offending
    /// line and a caret, a hint, then the count. Coloured when colour is on; without colour,
    /// exactly [`diag::render`]'s text.
    pub fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        let paint = |part: Part, text: &str| {
            let text = self.safe(text);
            let style = match part {
                Part::Error | Part::Caret => Style::new().red().bold(),
                Part::Arrow | Part::Gutter => Style::new().blue().bold(),
                Part::Hint => Style::new().cyan().bold(),
                Part::Text => return text.into_owned(),
            };
            self.style(style).apply_to(text).to_string()
        };
        self.line(&diag::render_with(diagnostics, &paint));
    }

    /// Data for machines or the reader: stdout. A closed pipe is not an error.
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// Human-readable data (tables, explanations) on stdout: like [`Output::data`], but any
    /// control character in it is shown escaped. Not for JSON: serde escapes that already.
    pub fn text(&self, text: &str) {
        self.data(&escape_text(text));
    }

    /// Data written exactly as given (no newline added), flushed: false once stdout is closed,
    /// so output that goes on until its reader leaves (`gate log tail --follow`) can stop.
    pub fn data_exact(&self, text: &str) -> bool {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_ok()
    }

    /// Like [`Output::text`], made of parts, each escaped on its own, then coloured by its
    /// tone when colour is on for stdout.
    pub fn text_toned(&self, parts: &[(Option<Tone>, &str)]) {
        let text: String = parts
            .iter()
            .map(|(tone, part)| {
                let part = escape_text(part);
                match tone {
                    Some(t) => self.paint(*t, &part),
                    None => part.into_owned(),
                }
            })
            .collect();
        self.data(&text);
    }

    /// `text` in the colour of `tone` when colour is on for stdout, else as it is. For text
    /// gate composed or already escaped: the colour codes are added after any escaping.
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.color_stdout {
            return text.to_owned();
        }
        let style = match tone {
            Tone::Good => Style::new().green().bold(),
            Tone::Bad => Style::new().red().bold(),
            Tone::Caution => Style::new().yellow().bold(),
        };
        style.force_styling(true).apply_to(text).to_string()
    }

    /// Whether a person is at the keyboard: stdin and stderr are both terminals.
    pub fn interactive(&self) -> bool {
        std::io::stdin().is_terminal() && self.stderr_tty
    }

    /// Asks `question` on stderr and reads the answer from stdin: true only for `y` or `yes`.
    pub fn ask(&self, question: &str) -> bool {
        use std::io::BufRead;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{} [y/N] ", self.safe(question));
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    /// `--json` on the run form: one object on stderr.
    pub fn json_stderr(&self, v: &serde_json::Value) {
        self.line(&v.to_string());
    }

    /// A waiting display: a spinner on a terminal stderr, else a plain line whenever the
    /// state changes (and every 30 s); nothing with `-q` or `--json`.
    pub fn waiter(&self, waiting: Waiting) -> Waiter {
        let spinner = (self.stderr_tty && !self.json && !self.quiet).then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        });
        // A terminal indicatif will not draw on (`TERM` unset or `dumb`) gets the plain lines,
        // not a spinner nobody sees.
        let spinner = spinner.filter(|pb| !pb.is_hidden());
        // The spinner's line never wraps (a wrapped line leaves its first half behind at each
        // redraw): at most 80 columns, fewer on a narrower terminal.
        let width = match &spinner {
            Some(_) => console::Term::stderr()
                .size_checked()
                .map_or(LINE_WIDTH, |(_, cols)| usize::from(cols).min(LINE_WIDTH)),
            None => LINE_WIDTH,
        };
        Waiter {
            spinner,
            quiet: self.quiet,
            waiting,
            width,
            last_line: None,
            every: Duration::from_secs(30),
            last_count: None,
            seen_ignored: std::collections::BTreeSet::new(),
        }
    }
}

/// The widest a progress line gets, in terminal columns.
const LINE_WIDTH: usize = 80;

/// What the waiting display says besides the progress: the command and who can approve it.
#[derive(Debug, Clone, Default)]
pub struct Waiting {
    /// The command line as the requester wrote it (escaped and shortened when shown).
    pub command: String,
    /// Who can approve: the groups or principals the policy names; empty for anyone.
    pub approvers: Vec<String>,
    /// Whether the requester's own approval counts (only then is "anyone" anyone).
    pub requester_counts: bool,
    /// How long gate waits at most.
    pub timeout: Duration,
}

pub struct Waiter {
    spinner: Option<ProgressBar>,
    quiet: bool,
    waiting: Waiting,
    /// Columns the line may take, spinner or `gate: ` included.
    width: usize,
    last_line: Option<Instant>,
    every: Duration,
    /// How many approvals the last progress line showed: a new one gets its line at once.
    last_count: Option<usize>,
    /// Reasons already shown: each is said once, whatever order later scans list them in.
    seen_ignored: std::collections::BTreeSet<String>,
}

impl Waiter {
    pub fn update(&mut self, p: &Progress) {
        for why in &p.ignored {
            if !self.seen_ignored.insert(why.clone()) {
                continue;
            }
            let line = format!("gate: not counted: {}", escape(why));
            match &self.spinner {
                Some(pb) => pb.println(line),
                None if !self.quiet => eprintln!("{line}"),
                None => {}
            }
        }
        match &self.spinner {
            // "⠋ " takes two columns.
            Some(pb) => pb.set_message(progress_line(
                &self.waiting,
                p,
                self.width.saturating_sub(2),
            )),
            None => {
                if self.quiet {
                    return;
                }
                // A line when the state changes — the first, each new approval — and every
                // 30 s, so a CI log or an agent reading stderr sees who approved when.
                let due = self.last_count != Some(p.approvers.len())
                    || self.last_line.is_none_or(|t| t.elapsed() >= self.every);
                if due {
                    let prefix = "gate: waiting: ";
                    let line =
                        progress_line(&self.waiting, p, self.width.saturating_sub(prefix.len()));
                    eprintln!("{prefix}{line}");
                    self.last_line = Some(Instant::now());
                    self.last_count = Some(p.approvers.len());
                }
            }
        }
    }

    pub fn finish(self) {
        if let Some(pb) = self.spinner {
            pb.finish_and_clear();
        }
    }
}

/// One line, at most `width` columns, every requester-supplied part escaped:
/// `1/2 approvals (alice) from sre · 12s of 30m · kubectl delete pod web-1`. The command
/// gets what room is left and is cut with `…`; it is left out when less than a word fits.
fn progress_line(w: &Waiting, p: &Progress, width: usize) -> String {
    let approved = if p.approvers.is_empty() {
        String::new()
    } else {
        format!(" ({})", names(p.approvers.iter().map(String::as_str), 24))
    };
    let from = if w.approvers.is_empty() {
        if w.requester_counts {
            "anyone".to_owned()
        } else {
            "anyone but you".to_owned()
        }
    } else {
        names(w.approvers.iter().map(String::as_str), 20)
    };
    let whole_secs = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    let head = escape(&format!(
        "{}/{} approvals{approved} from {from} · {} of {}",
        p.approvers.len(),
        p.needed,
        whole_secs(p.elapsed),
        whole_secs(w.timeout),
    ))
    .into_owned();
    let command = escape(&w.command);
    let room = width.saturating_sub(text_width(&head) + " · ".len());
    if room >= 12 {
        format!("{head} · {}", fit(&command, room))
    } else {
        fit(&head, width).into_owned()
    }
}

/// `names` joined with `, `, those past `width` columns counted as `+N`.
fn names<'a>(names: impl Iterator<Item = &'a str>, width: usize) -> String {
    let all: Vec<&str> = names.collect();
    let mut out = String::new();
    for (i, n) in all.iter().enumerate() {
        let next = if out.is_empty() {
            n.to_string()
        } else {
            format!("{out}, {n}")
        };
        let rest = all.len() - i - 1;
        let tail = if rest > 0 { 4 } else { 0 };
        if i > 0 && text_width(&next) + tail > width {
            return format!("{out} +{}", all.len() - i);
        }
        out = next;
    }
    out
}

/// The columns a terminal gives `s` (after [`escape`]: no controls left).
fn text_width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` cut to at most `width` columns, ending in `…` when cut; a wide character is never
/// split.
fn fit(s: &str, width: usize) -> Cow<'_, str> {
    if text_width(s) <= width {
        return Cow::Borrowed(s);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    Cow::Owned(out)
}

/// `s` with every character that could change what a terminal shows made visible: ESC as
/// `\e`, CR as `\r`, LF as `\n`, TAB as `\t`, other C0 controls and DEL as `\xNN`, C1
/// controls as `\u{9b}`, and invisible formatting characters — bidi overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069), marks (U+200E, U+200F, U+061C), zero-width and other
/// format characters, line and paragraph separators, tag characters — as `\u{202e}` etc.
/// For one field of requester text (an argument, a reason, a path): the result is one line.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, false)
}

/// Like [`escape`] for text gate composed over several lines: LF and TAB are kept, every
/// other control is escaped.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    escape_with(s, true)
}

fn escape_with(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && (c == '\n' || c == '\t');
    if !s.chars().any(|c| needs_escape(c) && !kept(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) || kept(c) {
            out.push(c);
            continue;
        }
        match c {
            '\x1b' => out.push_str("\\e"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Controls (Unicode Cc), and the characters that are invisible yet change how text around
/// them is laid out or read: format characters (Cf) and the line/paragraph separators.
fn needs_escape(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    matches!(
        c as u32,
        0x00AD                      // soft hyphen
        | 0x0600..=0x0605           // Arabic number signs
        | 0x061C                    // Arabic letter mark
        | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x115F | 0x1160 | 0x3164 | 0xFFA0 // Hangul fillers (render as nothing)
        | 0x180E                    // Mongolian vowel separator
        | 0x200B..=0x200F           // zero-width space/joiners, LRM, RLM
        | 0x2028 | 0x2029           // line and paragraph separators
        | 0x202A..=0x202E           // bidi embeddings and overrides
        | 0x2060..=0x206F           // word joiner, invisible operators, bidi isolates, ...
        | 0xFEFF                    // zero-width no-break space (BOM)
        | 0xFFF9..=0xFFFB           // interlinear annotation
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0001 | 0xE0020..=0xE007F // tag characters
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_every_terminal_control_visible() {
        let cases: &[(&str, &str)] = &[
            ("aws s3 ls", "aws s3 ls"),
            ("héllo wörld ✓ 日本", "héllo wörld ✓ 日本"),
            ("\x1b[2K\rbenign", "\\e[2K\\rbenign"),
            ("a\nb\tc", "a\\nb\\tc"),
            ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),
            ("\u{9b}31m\u{85}", "\\u{9b}31m\\u{85}"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("a\u{200b}b\u{feff}", "a\\u{200b}b\\u{feff}"),
            ("x\u{2028}y\u{2029}", "x\\u{2028}y\\u{2029}"),
            ("\u{e0041}\u{e007f}", "\\u{e0041}\\u{e007f}"),
            ("back\\slash \\e stays", "back\\slash \\e stays"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), *want, "escape({input:?})");
            assert!(
                !escape(input).chars().any(needs_escape),
                "escape({input:?}) left a control"
            );
        }
    }

    #[test]
    fn escape_text_keeps_line_breaks_and_nothing_else() {
        let cases: &[(&str, &str)] = &[
            ("one\ntwo\n", "one\ntwo\n"),
            ("col\tcol", "col\tcol"),
            ("ok\r\n", "ok\\r\n"),
            ("\x1b]0;title\x07", "\\e]0;title\\x07"),
            ("\u{202e}\n", "\\u{202e}\n"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_text(input), *want, "escape_text({input:?})");
        }
    }

    #[test]
    fn no_character_survives_escape_as_a_control() {
        // Every Unicode scalar value: what comes out is printable, and only ASCII was added.
        for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
            let s = c.to_string();
            let e = escape(&s);
            assert!(
                !e.chars().any(needs_escape),
                "U+{:04X} escaped to {e:?}",
                c as u32
            );
            if needs_escape(c) {
                assert!(
                    e.starts_with('\\') && e.is_ascii(),
                    "U+{:04X}: {e:?}",
                    c as u32
                );
            } else {
                assert_eq!(e, s);
            }
        }
    }

    fn progress(approvers: &[&str], needed: u32, elapsed: u64) -> Progress {
        Progress {
            request_id: "0190aaaa-0000-7000-8000-1c2d3e4f5a6b".into(),
            elapsed: Duration::from_secs(elapsed),
            approvers: approvers.iter().map(|a| a.to_string()).collect(),
            needed,
            ignored: Vec::new(),
        }
    }

    fn waiting(command: &str, approvers: &[&str]) -> Waiting {
        Waiting {
            command: command.into(),
            approvers: approvers.iter().map(|a| a.to_string()).collect(),
            requester_counts: false,
            timeout: Duration::from_secs(30 * 60),
        }
    }

    #[test]
    fn the_waiting_line_names_who_approved_and_who_can() {
        let line = progress_line(
            &waiting("kubectl delete pod web-1", &["sre"]),
            &progress(&["alice"], 2, 75),
            78,
        );
        assert_eq!(
            line,
            "1/2 approvals (alice) from sre · 1m 15s of 30m · kubectl delete pod web-1"
        );
        let anyone = progress_line(&waiting("ls", &[]), &progress(&[], 1, 0), 78);
        assert_eq!(anyone, "0/1 approvals from anyone but you · 0s of 30m · ls");
    }

    #[test]
    fn the_waiting_line_fits_80_columns_whatever_the_command() {
        let long = format!(
            "aws iam put-role-policy --policy-document {}",
            "x".repeat(300)
        );
        let wide = "kubectl annotate pod 日本語日本語日本語日本語日本語日本語日本語日本語日本語"
            .to_owned();
        let controls = format!("echo \x1b[2J{}\u{202e}", "\x1b[31m".repeat(20));
        let many: Vec<String> = (0..40).map(|i| format!("approver-number-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for command in [long.as_str(), wide.as_str(), controls.as_str(), "ls"] {
            for (who, approved) in [(&["security"][..], &["alice"][..]), (&many[..], &many[..])] {
                for width in [78, 74, 40, 10] {
                    let line = progress_line(
                        &waiting(command, who),
                        &progress(approved, 50, 100_000),
                        width,
                    );
                    assert!(
                        text_width(&line) <= width,
                        "{width} columns, got {}: {line}",
                        text_width(&line)
                    );
                    assert!(!line.chars().any(needs_escape), "{line:?}");
                }
            }
        }
        let cut = progress_line(&waiting(&long, &["security"]), &progress(&[], 2, 1), 78);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(cut.contains("aws iam put-role-policy"), "{cut}");
    }

    #[test]
    fn requester_text_in_the_waiting_line_is_escaped() {
        let line = progress_line(
            &waiting("echo \x1b]0;pwned\x07 \u{202e}gnp.exe", &["sec\x1bops"]),
            &progress(&["mal\rlory"], 2, 1),
            200,
        );
        assert!(!line.chars().any(needs_escape), "{line:?}");
        assert!(
            line.contains("echo \\e]0;pwned\\x07 \\u{202e}gnp.exe"),
            "{line}"
        );
        assert!(line.contains("(mal\\rlory) from sec\\eops"), "{line}");
    }

    #[test]
    fn fit_cuts_by_display_width_and_never_splits_a_wide_character() {
        assert_eq!(fit("abcdef", 6), "abcdef");
        assert_eq!(fit("abcdefg", 6), "abcde…");
        assert_eq!(fit("日本語日本語", 7), "日本語…");
        assert_eq!(fit("日本語日本語", 6), "日本…");
        assert_eq!(fit("abc", 0), "");
    }

    #[test]
    fn long_lists_of_names_end_in_a_count() {
        assert_eq!(names(["sre"].into_iter(), 20), "sre");
        assert_eq!(names(["sre", "security"].into_iter(), 20), "sre, security");
        assert_eq!(
            names(["platform-oncall", "security", "dba"].into_iter(), 20),
            "platform-oncall +2"
        );
    }

    #[test]
    fn plain_text_is_not_copied() {
        assert!(matches!(escape("gate approve 0192"), Cow::Borrowed(_)));
    }
}
