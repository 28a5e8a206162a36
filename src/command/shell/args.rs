//! Reading a shell's own arguments exactly: a `-c` script and its positional parameters, a
//! script file, nothing at all — or why what it runs cannot be read (its input, rc files,
//! options that change how a script is read).

use crate::command::wrap;

/// The script of `sh -c SCRIPT ...` (any of the shells gate reads, flags clustered or not).
/// `None` when there is no `-c` script, or the shell's options are not read exactly.
pub fn script_of(argv: &[String]) -> Option<&str> {
    let program = argv.first()?.rsplit('/').next()?;
    if !wrap::SHELLS.contains(&program) {
        return None;
    }
    match script_of_shell(program, &argv[1..]) {
        Ok(ShellRuns::Script(s, _)) => Some(s),
        _ => None,
    }
}

/// What a shell's arguments make it run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellRuns<'a> {
    /// `-c SCRIPT` and the words after it (`$0`, `$1`, ...).
    Script(&'a str, &'a [String]),
    /// A script file and its arguments (the file, as written, first).
    File(&'a [String]),
    /// Nothing (`--version`, `-c` without a script).
    Nothing,
}

/// `set -o` options that change nothing about which commands a script runs.
const SET_OPTIONS: &[&str] = &[
    "allexport",
    "braceexpand",
    "emacs",
    "errexit",
    "errtrace",
    "functrace",
    "hashall",
    "histexpand",
    "history",
    "ignoreeof",
    "interactive-comments",
    "monitor",
    "noclobber",
    "noexec",
    "noglob",
    "nolog",
    "notify",
    "nounset",
    "onecmd",
    "physical",
    "pipefail",
    "posix",
    "privileged",
    "verbose",
    "vi",
    "xtrace",
];

/// `shopt` options (bash `-O`) that change nothing about which commands run.
const SHOPT_OPTIONS: &[&str] = &[
    "nullglob",
    "failglob",
    "dotglob",
    "globstar",
    "nocaseglob",
    "nocasematch",
    "lastpipe",
    "inherit_errexit",
    "huponexit",
    "checkwinsize",
    "cmdhist",
    "lithist",
    "globasciiranges",
];

/// Why a shell's arguments cannot be read exactly: the command is opaque, for this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellArgsError {
    #[error("`{program} --{option}` is an option gate does not read")]
    LongOption { program: String, option: String },
    #[error("`{program} {sign}{flag} {name}` changes how the script is read")]
    ReadingOption {
        program: String,
        sign: char,
        flag: char,
        name: String,
    },
    #[error("`{program} {sign}{flag}` is an option gate does not read")]
    Option {
        program: String,
        sign: char,
        flag: char,
    },
    #[error("`{program}` reads its script from its input")]
    FromInput { program: String },
}

/// Reads a shell's arguments exactly (DESIGN §5): a `-c` script, a script file (classified under
/// its own name, as running it directly would be), nothing (`--version`), `Err(why)` when what it runs cannot be read:
/// a script from its input (no operand, `-s`, `/dev/stdin`, a pipe or here-string into it),
/// rc files (`--rcfile`, `--init-file`), interactive mode, or options gate does not model.
pub fn script_of_shell<'a>(
    program: &str,
    args: &'a [String],
) -> Result<ShellRuns<'a>, ShellArgsError> {
    let mut saw_c = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if a == "--" || a == "-" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            match long {
                "version" | "help" if args.len() == 1 => return Ok(ShellRuns::Nothing),
                "norc" | "noprofile" | "login" | "posix" | "restricted" | "verbose"
                | "noediting" => continue,
                _ => {
                    return Err(ShellArgsError::LongOption {
                        program: program.to_owned(),
                        option: long.to_owned(),
                    });
                }
            }
        }
        let (sign, flags) = match a.chars().next() {
            Some(c @ ('-' | '+')) if a.len() > 1 => (c, &a[1..]),
            _ => {
                i -= 1;
                break;
            }
        };
        for (at, f) in flags.char_indices() {
            match f {
                'c' if sign == '-' => saw_c = true,
                'o' | 'O' => {
                    // The option name is the rest of the word or the next word.
                    let rest = &flags[at + 1..];
                    let name = if rest.is_empty() {
                        i += 1;
                        args.get(i - 1).map(String::as_str).unwrap_or("")
                    } else {
                        rest
                    };
                    let known = if f == 'o' {
                        SET_OPTIONS.contains(&name)
                    } else {
                        SHOPT_OPTIONS.contains(&name)
                    };
                    if sign == '-' && !known {
                        return Err(ShellArgsError::ReadingOption {
                            program: program.to_owned(),
                            sign,
                            flag: f,
                            name: name.to_owned(),
                        });
                    }
                    break;
                }
                'a' | 'b' | 'e' | 'f' | 'h' | 'm' | 'n' | 'p' | 't' | 'u' | 'v' | 'x' | 'B'
                | 'C' | 'E' | 'H' | 'P' | 'T' | 'l' | 'r' => {}
                _ => {
                    return Err(ShellArgsError::Option {
                        program: program.to_owned(),
                        sign,
                        flag: f,
                    });
                }
            }
        }
    }
    match (saw_c, args.get(i)) {
        (true, Some(script)) => Ok(ShellRuns::Script(script, &args[i + 1..])),
        (true, None) => Ok(ShellRuns::Nothing),
        (false, Some(file)) if !wrap::reads_stdin(file) => Ok(ShellRuns::File(&args[i..])),
        _ => Err(ShellArgsError::FromInput {
            program: program.to_owned(),
        }),
    }
}
