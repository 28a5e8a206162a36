//! The `tty` backend, for `confirm`: the person at the controlling terminal types a
//! confirmation. It reads /dev/tty, not stdin, so piped input cannot answer for a human, and with
//! no controlling terminal (an agent, a CI job) it refuses.

use std::fs::OpenOptions;

use console::Term;
use dialoguer::Input;

#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Confirmation {
    Confirmed,
    Declined,
    /// There is no controlling terminal to ask on.
    NoTerminal,
}

/// Asks on /dev/tty whether to run `command_line`; the person must type `yes`.
pub fn confirm(command_line: &str, why: &str) -> Confirmation {
    let (Ok(read), Ok(write)) = (
        OpenOptions::new().read(true).open("/dev/tty"),
        OpenOptions::new().write(true).open("/dev/tty"),
    ) else {
        return Confirmation::NoTerminal;
    };
    let term = Term::read_write_pair(read, write);
    let _ = term.write_line(&format!("gate: {why}\n  {command_line}"));
    let answer: Result<String, _> = Input::new()
        .with_prompt("type `yes` to run it")
        .allow_empty(true)
        .interact_text_on(&term);
    match answer {
        Ok(a) if a.trim() == "yes" => Confirmation::Confirmed,
        Ok(_) => Confirmation::Declined,
        Err(_) => Confirmation::NoTerminal,
    }
}
