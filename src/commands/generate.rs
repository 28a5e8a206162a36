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

/// Man pages: `gate.1` and one per subcommand (`gate-policy-lint.1`, ...), as (file, bytes).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>, Error> {
    let cmd = Cli::command();
    let mut pages = Vec::new();
    render(&cmd, "gate", &mut pages)?;
    Ok(pages)
}

fn render(
    cmd: &clap::Command,
    name: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let cmd = cmd.clone().name(name.to_owned());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .date("2026-11-26")
        .render(&mut buf)
        // Rendering into memory cannot fail but for a bug.
        .map_err(|e| Error::internal(format!("cannot render the man page: {e}")))?;
    pages.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        render(sub, &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}

pub fn man_to_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, bytes) in man_pages()? {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(())
}
