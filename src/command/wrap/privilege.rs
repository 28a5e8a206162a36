//! Running a command as another user: `sudo`, `doas`, `su` and `runuser`, each read with all
//! of its options, so the command after them is classified as what it is.

use super::names::SHELLS;
use super::{Run, skip_assignments, then_command, with};
use crate::command::getopt::{Read, Spec, read};

pub(super) const SUDO: Spec = Spec {
    flags: "AbBEeHiKklNnPSsVv",
    valued: "aCcDgpRrtTUu",
    optional: "h",
    long_flags: &[
        "askpass",
        "background",
        "bell",
        "edit",
        "set-home",
        "help",
        "login",
        "remove-timestamp",
        "reset-timestamp",
        "list",
        "no-update",
        "non-interactive",
        "preserve-groups",
        "stdin",
        "shell",
        "version",
        "validate",
    ],
    long_valued: &[
        "auth-type",
        "close-from",
        "login-class",
        "chdir",
        "group",
        "host",
        "prompt",
        "role",
        "type",
        "command-timeout",
        "other-user",
        "user",
    ],
    long_optional: &["preserve-env"],
};

pub(super) fn sudo(args: &[String]) -> Vec<Run> {
    with(args, &SUDO, |r, ops| {
        if r.has(&["e", "edit"]) {
            return Vec::new(); // sudoedit: the operands are files
        }
        let cmd = match skip_assignments(ops) {
            Ok(c) => c,
            Err(why) => return vec![Run::Opaque(why.to_string())],
        };
        if cmd.is_empty() && r.has(&["s", "shell", "i", "login"]) {
            return vec![Run::Opaque(
                "`sudo` without a command runs an interactive shell".into(),
            )];
        }
        then_command(cmd.to_vec())
    })
}

pub(super) const DOAS: Spec = Spec {
    flags: "Lns",
    valued: "Cu",
    ..Spec::NONE
};

pub(super) fn doas(args: &[String]) -> Vec<Run> {
    with(args, &DOAS, |r, ops| {
        if r.has(&["C"]) {
            return Vec::new();
        }
        if ops.is_empty() && r.has(&["s"]) {
            return vec![Run::Opaque("`doas -s` runs an interactive shell".into())];
        }
        then_command(ops.to_vec())
    })
}

pub(super) const SU: Spec = Spec {
    flags: "flmpPhV",
    valued: "cgGsw",
    long_flags: &[
        "fast",
        "login",
        "preserve-environment",
        "pty",
        "help",
        "version",
    ],
    long_valued: &[
        "command",
        "session-command",
        "group",
        "supp-group",
        "shell",
        "whitelist-environment",
    ],
    ..Spec::NONE
};

pub(super) const RUNUSER: Spec = Spec {
    flags: "flmpPhV",
    valued: "cgGswu",
    long_flags: &[
        "fast",
        "login",
        "preserve-environment",
        "pty",
        "help",
        "version",
    ],
    long_valued: &[
        "command",
        "session-command",
        "group",
        "supp-group",
        "shell",
        "whitelist-environment",
        "user",
    ],
    ..Spec::NONE
};

/// `su [options] [-] [user [args]]`, `runuser -u user [--] command`. Both permute: options
/// may follow the user name (`su - root -c CMD`).
pub(super) fn su(program: &str, args: &[String]) -> Vec<Run> {
    let spec = if program == "runuser" { &RUNUSER } else { &SU };
    let mut opts = Vec::new();
    let mut ops: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let r = match read(&args[i..], spec) {
            Ok(r) => r,
            Err(why) => return vec![Run::Opaque(why.to_string())],
        };
        let ended = r.operands > 0 && args[i + r.operands - 1] == "--";
        opts.extend(r.opts);
        i += r.operands;
        if ended {
            ops.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(w) = args.get(i) {
            ops.push(w.clone());
            i += 1;
        }
    }
    let r = Read { opts, operands: 0 };
    su_runs(program, &r, &ops)
}

pub(super) fn su_runs(program: &str, r: &Read, ops: &[String]) -> Vec<Run> {
    {
        if r.has(&["u", "user"]) {
            return then_command(ops.to_vec());
        }
        if let Some(shell) = r.value(&["s", "shell"]) {
            let name = shell.rsplit('/').next().unwrap_or(shell);
            if !SHELLS.contains(&name) {
                return vec![Run::Opaque(format!(
                    "`{program} --shell {shell}` runs a shell gate does not read"
                ))];
            }
        }
        let ops = match ops.first() {
            Some(d) if d == "-" => &ops[1..],
            _ => ops,
        };
        if ops.len() > 1 {
            return vec![Run::Opaque(format!(
                "`{program}` passes the words after the user name to the shell"
            ))];
        }
        match r.value(&["c", "command", "session-command"]) {
            Some(script) => vec![Run::Script(script.to_owned())],
            None => vec![Run::Opaque(format!(
                "`{program}` without `-c` runs an interactive shell"
            ))],
        }
    }
}
