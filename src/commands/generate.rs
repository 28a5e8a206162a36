//! Shell completions and man pages, generated from the clap definitions. The checked-in copies
//! under `completions/` and `man/` are kept current by a test.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::Error;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::config(format!("cannot write `{}`: {e}", path.display()))
}

/// The completion script for one shell.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gate", &mut buf);
    buf
}

pub fn completions_to_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let name = match shell {
            Shell::Bash => "gate.bash",
            Shell::Zsh => "_gate",
            Shell::Fish => "gate.fish",
            Shell::Elvish => "gate.elv",
            _ => "_gate.ps1",
        };
        let path = dir.join(name);
        std::fs::write(&path, completion(shell)).map_err(io(&path))?;
    }
    Ok(())
}

/// The date every page carries, so that regenerating them changes nothing but what changed.
const DATE: &str = "2026-11-26";

/// Man pages: `gate.1`, one per subcommand (`gate-policy-lint.1`, ...), and `gate-policy.5`
/// (the policy file format), as (file, bytes).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>, Error> {
    let cmd = Cli::command();
    let mut pages = Vec::new();
    render(&cmd, "gate", "", &mut pages)?;
    pages.push(("gate-policy.5".to_owned(), policy_page()));
    Ok(pages)
}

/// `gate-policy(5)`: written by hand in `gate-policy.5` beside this file, with the system
/// directory this build reads.
fn policy_page() -> Vec<u8> {
    let body = include_str!("gate-policy.5").replace("@SYSTEM@", crate::config::SYSTEM_POLICY_DIR);
    format!(
        ".TH gate-policy 5 {DATE} \"gate {}\" \"File Formats\"\n{body}",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

fn render(
    cmd: &clap::Command,
    name: &str,
    path: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let cmd = cmd.clone().name(name.to_owned());
    // The help's `after_help` (the examples) gets a section of its own below, not "EXTRA".
    let after = cmd.get_after_help().map(|a| a.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().after_help(None::<&str>))
        .date(DATE)
        .render(&mut buf)
        // Rendering into memory cannot fail but for a bug.
        .map_err(|e| Error::internal(format!("cannot render the man page: {e}")))?;
    let is_group = cmd.has_subcommands() && !cmd.is_args_conflicts_with_subcommands_set();
    buf.extend(sections(path, is_group, after.as_deref()).into_bytes());
    pages.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = if path.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{path} {}", sub.get_name())
        };
        render(sub, &format!("{name}-{}", sub.get_name()), &sub_path, pages)?;
    }
    Ok(())
}

/// EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES and SEE ALSO for the page of the command at
/// `path` (`""` for gate itself), in roff.
fn sections(path: &str, is_group: bool, after_help: Option<&str>) -> String {
    use crate::cli::reference::{COMMON, ENVIRONMENT, RUN_EXIT_STATUS, exit_statuses, files};
    let mut out = String::new();
    let item = |out: &mut String, tag: &str, text: &str| {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(tag), roff(text)));
    };
    out.push_str(".SH \"EXIT STATUS\"\n");
    if path.is_empty() {
        out.push_str("Of the run form, \\fBgate\\fR [OPTIONS] \\-\\- PROGRAM [ARGS]...:\n");
        for (k, v) in RUN_EXIT_STATUS.iter().chain(COMMON) {
            item(&mut out, k, v);
        }
        out.push_str(".PP\nEvery other command's page lists its own.\n");
    } else {
        for (k, v) in exit_statuses(path, is_group) {
            item(&mut out, k, v);
        }
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (k, v) in ENVIRONMENT {
        item(&mut out, k, v);
    }
    out.push_str(".SH FILES\n");
    for (k, v) in files() {
        out.push_str(&format!(".TP\n\\fI{}\\fR\n{}\n", roff(&k), roff(v)));
    }
    if let Some(text) = after_help {
        out.push_str(if path.is_empty() {
            ".SH EXAMPLES\n.nf\n"
        } else {
            ".SH NOTES\n.nf\n"
        });
        for line in text.lines().filter(|l| *l != "Examples:") {
            out.push_str(&roff(line.strip_prefix("  ").unwrap_or(line)));
            out.push('\n');
        }
        out.push_str(".fi\n");
    }
    out.push_str(".SH \"SEE ALSO\"\n");
    if path.is_empty() {
        out.push_str(".BR gate\\-policy (5)\n");
    } else {
        out.push_str(".BR gate (1),\n.BR gate\\-policy (5)\n");
    }
    out
}

/// `text` as roff text: backslashes, hyphens and quotes escaped, no line read as a request.
fn roff(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\*(Aq");
    if escaped.starts_with('.') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

pub fn man_to_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, bytes) in man_pages()? {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(())
}
