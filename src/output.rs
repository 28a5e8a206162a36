//! Everything gate itself says on the terminal goes through here: messages on stderr in the
//! uv style (`error:` / `warning:` / `hint:`), the approval spinner on a terminal, a plain
//! progress line every 30 s elsewhere, and colour decided in one place (`--color`, `NO_COLOR`).
//! stdout is left to the child and to `--json` data.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{ProgressBar, ProgressStyle};

use crate::approval::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub color: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// `--json`: machine output; no spinner.
    pub json: bool,
    stderr_tty: bool,
}

impl Output {
    pub fn new(
        choice: ColorChoice,
        no_color_env: bool,
        quiet: bool,
        verbose: u8,
        json: bool,
    ) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_tty && !no_color_env,
        } && !(no_color_env && choice != ColorChoice::Always);
        console::set_colors_enabled_stderr(color);
        console::set_colors_enabled(color && std::io::stdout().is_terminal());
        Output {
            color,
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

    pub fn error(&self, msg: &str) {
        let label = self.style(Style::new().red().bold()).apply_to("error");
        self.line(&format!("{label}: {msg}"));
    }

    pub fn hint(&self, msg: &str) {
        let label = self.style(Style::new().cyan().bold()).apply_to("hint");
        self.line(&format!("{label}: {msg}"));
    }

    pub fn warn(&self, msg: &str) {
        if !self.quiet {
            let label = self.style(Style::new().yellow().bold()).apply_to("warning");
            self.line(&format!("{label}: {msg}"));
        }
    }

    /// gate's own status lines (`gate: ...`), silenced by `-q`.
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            let label = self.style(Style::new().bold()).apply_to("gate");
            self.line(&format!("{label}: {msg}"));
        }
    }

    /// Details shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 && !self.quiet {
            self.line(&format!("gate: {msg}"));
        }
    }

    /// Text an error message already formatted over several lines (policy diagnostics).
    pub fn raw_stderr(&self, text: &str) {
        self.line(text);
    }

    /// Data for machines or the reader: stdout. A closed pipe is not an error.
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// `--json` on the run form: one object on stderr.
    pub fn json_stderr(&self, v: &serde_json::Value) {
        self.line(&v.to_string());
    }

    /// A waiting display: a spinner on a terminal, else a plain line every 30 s.
    pub fn waiter(&self, what: &str) -> Waiter {
        let spinner = (self.stderr_tty && !self.json && !self.quiet).then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        });
        Waiter {
            spinner,
            quiet: self.quiet,
            what: what.to_owned(),
            last_line: None,
            every: Duration::from_secs(30),
            seen_ignored: 0,
        }
    }
}

pub struct Waiter {
    spinner: Option<ProgressBar>,
    quiet: bool,
    what: String,
    last_line: Option<Instant>,
    every: Duration,
    seen_ignored: usize,
}

impl Waiter {
    pub fn update(&mut self, p: &Progress) {
        let elapsed = humantime::format_duration(Duration::from_secs(p.elapsed.as_secs()));
        let who = if p.approvers.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                p.approvers.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        let msg = format!(
            "{} {} · {}/{} approvals{who} · {elapsed} · Ctrl-C to cancel",
            self.what,
            p.request_id,
            p.approvers.len(),
            p.needed
        );
        for why in p.ignored.iter().skip(self.seen_ignored) {
            let line = format!("gate: not counted: {why}");
            match &self.spinner {
                Some(pb) => pb.println(line),
                None if !self.quiet => eprintln!("{line}"),
                None => {}
            }
        }
        self.seen_ignored = self.seen_ignored.max(p.ignored.len());
        match &self.spinner {
            Some(pb) => pb.set_message(msg),
            None => {
                if self.quiet {
                    return;
                }
                let due = self.last_line.is_none_or(|t| t.elapsed() >= self.every);
                if due {
                    eprintln!("gate: {msg}");
                    self.last_line = Some(Instant::now());
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
