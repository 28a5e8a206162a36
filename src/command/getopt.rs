//! An exact reading of a wrapper's options, getopt style: every option of the tool is listed
//! (short flags, short options with a value, long options with and without a value, values
//! that are optional and then only attached), long options may be abbreviated to any
//! unambiguous prefix (as `getopt_long` allows), and options end at the first operand (the `+`
//! mode every command-running wrapper uses). An option the table does not know is an error:
//! the caller then treats the command as unreadable, never guesses.

/// A tool's options.
pub(crate) struct Spec {
    /// Short options without a value.
    pub flags: &'static str,
    /// Short options that take a value (attached `-uX` or the next word).
    pub valued: &'static str,
    /// Short options whose value is optional: only attached (`-dX`), never the next word.
    pub optional: &'static str,
    /// Long options without a value.
    pub long_flags: &'static [&'static str],
    /// Long options that take a value (`--opt=v` or `--opt v`).
    pub long_valued: &'static [&'static str],
    /// Long options whose value is optional: only `--opt=v`.
    pub long_optional: &'static [&'static str],
}

impl Spec {
    pub const NONE: Spec = Spec {
        flags: "",
        valued: "",
        optional: "",
        long_flags: &[],
        long_valued: &[],
        long_optional: &[],
    };
}

/// One option as read: its name (a short letter as `"u"`, a long option by its full name, even
/// when abbreviated) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opt {
    pub name: String,
    pub value: Option<String>,
}

/// The options read and where the operands start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Read {
    pub opts: Vec<Opt>,
    /// Index (into the `args` given) of the first operand.
    pub operands: usize,
}

impl Read {
    pub fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|o| names.contains(&o.name.as_str()))
    }

    pub fn value(&self, names: &[&str]) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|o| names.contains(&o.name.as_str()))
            .and_then(|o| o.value.as_deref())
    }
}

/// An option gate cannot read: the command that carries it is opaque, for this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OptionError {
    #[error("`--{0}` without its value")]
    LongWithoutValue(&'static str),
    #[error("`--{0}` takes no value")]
    LongTakesNoValue(&'static str),
    #[error("`-{0}` without its value")]
    ShortWithoutValue(char),
    #[error("the option `-{0}`, which gate does not read")]
    UnknownShort(char),
    #[error("the ambiguous option `--{0}`")]
    Ambiguous(String),
    #[error("the option `--{0}`, which gate does not read")]
    UnknownLong(String),
}

/// Reads `args` (without the program) against `spec`. `Err` names the option gate cannot read.
pub(crate) fn read(args: &[String], spec: &Spec) -> Result<Read, OptionError> {
    let mut opts = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            i += 1;
            break;
        }
        if arg == "-" || !arg.starts_with('-') {
            break;
        }
        i += 1;
        if let Some(long) = arg.strip_prefix("--") {
            let (given, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let name = long_name(given, spec)?;
            let value = if spec.long_valued.contains(&name) {
                if attached.is_some() {
                    attached
                } else {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or(OptionError::LongWithoutValue(name))?;
                    i += 1;
                    Some(v)
                }
            } else if spec.long_optional.contains(&name) {
                attached
            } else if attached.is_some() {
                return Err(OptionError::LongTakesNoValue(name));
            } else {
                None
            };
            opts.push(Opt {
                name: name.to_owned(),
                value,
            });
            continue;
        }
        // A short cluster: flags until one that takes a value.
        let cluster = &arg[1..];
        for (at, c) in cluster.char_indices() {
            let rest = &cluster[at + c.len_utf8()..];
            if spec.valued.contains(c) {
                let value = if rest.is_empty() {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or(OptionError::ShortWithoutValue(c))?;
                    i += 1;
                    v
                } else {
                    rest.to_owned()
                };
                opts.push(Opt {
                    name: c.to_string(),
                    value: Some(value),
                });
                break;
            }
            if spec.optional.contains(c) {
                opts.push(Opt {
                    name: c.to_string(),
                    value: (!rest.is_empty()).then(|| rest.to_owned()),
                });
                break;
            }
            if !spec.flags.contains(c) || c == '-' {
                return Err(OptionError::UnknownShort(c));
            }
            opts.push(Opt {
                name: c.to_string(),
                value: None,
            });
        }
    }
    Ok(Read { opts, operands: i })
}

/// The full name of a long option written as `given` (exact, or an unambiguous prefix).
fn long_name(given: &str, spec: &Spec) -> Result<&'static str, OptionError> {
    let all = || {
        spec.long_flags
            .iter()
            .chain(spec.long_valued)
            .chain(spec.long_optional)
            .copied()
    };
    if let Some(exact) = all().find(|n| *n == given) {
        return Ok(exact);
    }
    let mut candidates = all().filter(|n| !given.is_empty() && n.starts_with(given));
    match (candidates.next(), candidates.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => Err(OptionError::Ambiguous(given.to_owned())),
        _ => Err(OptionError::UnknownLong(given.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUDO_LIKE: Spec = Spec {
        flags: "bEHns",
        valued: "uDp",
        optional: "h",
        long_flags: &["background", "login"],
        long_valued: &["user", "chdir", "prompt"],
        long_optional: &["preserve-env"],
    };

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn reads_every_form() {
        let r = read(
            &words("-bEu root --chdir /tmp --pro=x --us bob -hHOST --preserve-env=A aws iam"),
            &SUDO_LIKE,
        )
        .unwrap();
        let names: Vec<_> = r.opts.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "b",
                "E",
                "u",
                "chdir",
                "prompt",
                "user",
                "h",
                "preserve-env"
            ]
        );
        assert_eq!(r.value(&["u", "user"]), Some("bob"));
        assert_eq!(r.value(&["chdir"]), Some("/tmp"));
        assert_eq!(r.operands, 9);
        let r = read(&words("-- -x"), &SUDO_LIKE).unwrap();
        assert_eq!(r.operands, 1);
        let r = read(&words("-h aws"), &SUDO_LIKE).unwrap();
        assert_eq!(r.operands, 1, "an optional value is never the next word");
    }

    #[test]
    fn what_it_does_not_know_is_an_error() {
        for bad in [
            "-R /x aws",
            "--chroot /x aws",
            "--p aws",
            "-u",
            "--user",
            "--login=x aws",
            "-b-x",
        ] {
            assert!(read(&words(bad), &SUDO_LIKE).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_unreadable_option_is_named_as_written() {
        for (bad, want) in [
            ("-R /x aws", "the option `-R`, which gate does not read"),
            (
                "--chroot /x aws",
                "the option `--chroot`, which gate does not read",
            ),
            ("--p aws", "the ambiguous option `--p`"),
            ("-u", "`-u` without its value"),
            ("--user", "`--user` without its value"),
            ("--login=x aws", "`--login` takes no value"),
        ] {
            let e = read(&words(bad), &SUDO_LIKE).expect_err(bad);
            assert_eq!(e.to_string(), want, "{bad}");
        }
    }
}
