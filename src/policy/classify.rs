//! Classifying a command: every rule that matches counts and the most restrictive decision
//! wins, across every command the argv runs — the script of `sh -c`, what a wrapper such as
//! `sudo` or `env` runs — with what cannot be read made opaque.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::ci::CiContext;
use super::compile::Subject;
use super::{Compiled, Decision, Diagnostic, Policy, PolicyError, Pos, Requirement, RuleInfo};

/// Where, and by whom, a command runs: what rules' `env`, `cwd`, `user` and `host` match on.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    /// What the machine the command runs on says about it: the other names of a program
    /// reached through a symlink, AWS CLI aliases, code-running variables in gate's environment
    /// (`None` where they are not at hand, e.g. on the server).
    pub links: Option<&'a crate::command::link::Resolver>,
}

/// The policy's verdict on one command.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub decision: Decision,
    /// Every rule that matched, in policy order.
    pub matched: Vec<RuleInfo>,
    /// True when a file's `defaults.decision` decided (no rule of that file matched and no
    /// matched rule was as restrictive).
    pub by_default: bool,
    /// The file whose default decided, when `by_default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_from: Option<PathBuf>,
    pub requirement: Option<Requirement>,
    /// The simple commands classified, when the command runs others (`sh -c`, `sudo`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<String>>,
    /// Why part of a shell string could not be resolved (then `defaults.opaque_shell` counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
    /// Why some words of a command were judged only as written — every program it runs is
    /// known, but an argument is an expansion, a glob, inline code or words read from input
    /// (then `defaults.opaque_arguments` counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
}

impl Classification {
    /// Whether this verdict is at least as strict as `other`: a more restrictive decision, or
    /// the same one and, for `approve`, a requirement at least as strict
    /// ([`Requirement::at_least_as_strict_as`]).
    pub fn at_least_as_strict_as(&self, other: &Classification) -> bool {
        if self.decision != other.decision {
            return self.decision > other.decision;
        }
        match (&self.requirement, &other.requirement) {
            (Some(a), Some(b)) => a.at_least_as_strict_as(b),
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// The rules that decided (those whose decision equals the outcome).
    pub fn deciding(&self) -> impl Iterator<Item = &RuleInfo> {
        self.matched.iter().filter(|r| r.decision == self.decision)
    }
}

impl Policy {
    /// Classifies one command. For a policy from [`Policy::load_lazy`], prefer
    /// [`Policy::try_classify`]: if the command's rules cannot be compiled, this fails closed
    /// with a `deny` that no rule explains.
    pub fn classify(&self, s: &Subject<'_>) -> Classification {
        self.try_classify(s).unwrap_or(Classification {
            decision: Decision::Deny,
            matched: Vec::new(),
            by_default: false,
            default_from: None,
            requirement: None,
            commands: Vec::new(),
            opaque: None,
            unread: None,
        })
    }

    /// Classifies one command; an error when the rules for its program cannot be compiled
    /// (only possible for a policy from [`Policy::load_lazy`], at the first use of a program).
    pub fn try_classify(&self, s: &Subject<'_>) -> Result<Classification, PolicyError> {
        self.try_classify_in(s, CiContext::Requester)
    }

    /// [`Policy::try_classify`] where rules' `ci:` conditions read `ci`.
    pub fn try_classify_in(
        &self,
        s: &Subject<'_>,
        ci: CiContext<'_>,
    ) -> Result<Classification, PolicyError> {
        if let Some(e) = self.redact_error() {
            return Err(e);
        }
        let indexes = match &self.matcher {
            Compiled::Eager(m) => m.matching(s),
            Compiled::Lazy(m) => m.matching(s).map_err(|e| {
                let mut d = self.compile_error_at.clone().unwrap_or_else(|| Diagnostic {
                    path: self.files.first().cloned().unwrap_or_default(),
                    pos: Pos { line: 1, col: 1 },
                    message: String::new(),
                    hint: None,
                    source_line: None,
                });
                d.message = format!("cannot compile the rules: {e}");
                PolicyError::Invalid(vec![d])
            })?,
        };
        let matched: Vec<RuleInfo> = indexes
            .into_iter()
            .map(|i| &self.rules[i])
            .filter(|r| r.ci.as_ref().is_none_or(|c| c.holds(ci)))
            .cloned()
            .collect();
        let by_rules = matched.iter().map(|r| r.decision).max();
        // Each file whose rules say nothing about the command votes its own default.
        let default_vote = self
            .file_defaults
            .iter()
            .enumerate()
            .filter(|(fi, _)| !matched.iter().any(|r| r.file_index == *fi))
            .filter_map(|(fi, d)| d.map(|d| (d, fi)))
            .max_by_key(|(d, _)| *d);
        let (decision, by_default, default_from) = match (by_rules, default_vote) {
            (Some(r), Some((d, fi))) if d > r => (d, true, Some(self.files[fi].clone())),
            (Some(r), _) => (r, false, None),
            (None, Some((d, fi))) => (d, true, Some(self.files[fi].clone())),
            (None, None) => (Decision::Allow, true, None),
        };
        let requirement = (decision == Decision::Approve).then(|| self.requirement(&matched));
        Ok(Classification {
            decision,
            matched,
            by_default,
            default_from,
            requirement,
            commands: Vec::new(),
            opaque: None,
            unread: None,
        })
    }

    /// [`Policy::try_classify_argv`] for policies compiled at load (which cannot fail); a
    /// failure is a `deny`, never an allow.
    pub fn classify_argv(&self, argv: &[String], at: &Place<'_>) -> Classification {
        self.classify_argv_in(argv, at, CiContext::Requester)
    }

    /// [`Policy::classify_argv`] where rules' `ci:` conditions read `ci` (the server, with
    /// the request's verified CI identity).
    pub fn classify_argv_in(
        &self,
        argv: &[String],
        at: &Place<'_>,
        ci: CiContext<'_>,
    ) -> Classification {
        self.try_classify_argv_in(argv, at, ci)
            .unwrap_or(Classification {
                decision: Decision::Deny,
                matched: Vec::new(),
                by_default: false,
                default_from: None,
                requirement: None,
                commands: Vec::new(),
                opaque: None,
                unread: None,
            })
    }

    /// Classifies a whole argv the way it will run: the command itself, every other name it
    /// answers to (a symlink's target), and every command it runs in turn — the script of
    /// `sh -c` (split, DESIGN §5), the command a wrapper such as `sudo`, `env` or `find -exec`
    /// runs — read exactly or not at all ([`crate::command::wrap`]). The most restrictive
    /// decision of them all wins; what cannot be read makes the command opaque, which adds
    /// `defaults.opaque_shell` and, for `approve`, [`Policy::opaque_requirement`].
    pub fn try_classify_argv(
        &self,
        argv: &[String],
        at: &Place<'_>,
    ) -> Result<Classification, PolicyError> {
        self.try_classify_argv_in(argv, at, CiContext::Requester)
    }

    /// [`Policy::try_classify_argv`] where rules' `ci:` conditions read `ci`.
    pub fn try_classify_argv_in(
        &self,
        argv: &[String],
        at: &Place<'_>,
        ci: CiContext<'_>,
    ) -> Result<Classification, PolicyError> {
        let Read {
            commands,
            dynamic,
            mut opaque,
            mut unread,
        } = read_commands(argv, at);
        // An argument known only when the shell runs (`$(...)`, `$X`, a glob) in a command some
        // rule may concern: the rule's conditions are read on the words as written.
        if unread.is_none()
            && let Some(cmd) = dynamic.iter().find(|c| {
                self.concerns(crate::request::program_name(&c[0]))
                    || at
                        .links
                        .is_some_and(|l| l.other_names(&c[0]).iter().any(|n| self.concerns(n)))
            })
        {
            unread = Some(format!(
                "an argument of `{}` is known only when it runs",
                crate::request::program_name(&cmd[0])
            ));
        }
        // A command run by another may be run with variables the policy's `env` conditions read
        // set differently (`env GATE_ENV=dev kubectl ...`, `GATE_ENV=dev kubectl` in a script):
        // the rules would be judged on values the command never sees.
        if opaque.is_none() && commands.len() > 1 {
            let names = match &self.matcher {
                Compiled::Eager(m) => m.env_names(),
                Compiled::Lazy(m) => m.env_names(),
            };
            if let Some(name) = names.iter().find(|n| {
                commands.iter().flatten().any(|w| {
                    w == *n
                        || w.match_indices(n.as_str())
                            .any(|(i, _)| w[i + n.len()..].starts_with('='))
                })
            }) {
                opaque = Some(format!(
                    "a command sets `{name}`, which the policy's rules read"
                ));
            }
        }
        let mut parts = Vec::with_capacity(commands.len());
        for cmd in &commands {
            let Some(first) = cmd.first() else { continue };
            let program = crate::request::program_name(first);
            let words = crate::command::parse(program, &cmd[1..]).words;
            let line = crate::request::shell_join(cmd);
            parts.push(self.try_classify_in(
                &Subject {
                    program,
                    words: &words,
                    command_line: &line,
                    env: at.env,
                    cwd: at.cwd,
                    user: at.user,
                    host: at.host,
                },
                ci,
            )?);
        }
        if commands.len() == 1 && opaque.is_none() && unread.is_none() {
            return Ok(parts.pop().expect("one part"));
        }
        let mut matched: Vec<RuleInfo> = Vec::new();
        for p in &parts {
            for r in &p.matched {
                if !matched.iter().any(|m| m.name == r.name) {
                    matched.push(r.clone());
                }
            }
        }
        let by_parts = parts
            .iter()
            .map(|p| p.decision)
            .max()
            .unwrap_or(Decision::Allow);
        let mut decision = by_parts;
        if opaque.is_some() {
            decision = decision.max(self.opaque_shell);
        }
        if unread.is_some() {
            decision = decision.max(self.opaque_arguments);
        }
        let by_default = decision == by_parts && parts.iter().all(|p| p.by_default);
        // What gate cannot read may be any command the policy names: when that is what asks
        // for the approval, the approval is the one for any command.
        let by_reading = (opaque.is_some() && self.opaque_shell == Decision::Approve)
            || (unread.is_some() && self.opaque_arguments == Decision::Approve);
        let requirement = (decision == Decision::Approve).then(|| {
            if by_reading {
                self.opaque_requirement(&matched)
            } else {
                self.requirement(&matched)
            }
        });
        Ok(Classification {
            decision,
            matched,
            by_default,
            default_from: if by_default {
                parts.iter().find_map(|p| p.default_from.clone())
            } else {
                None
            },
            requirement,
            commands,
            opaque,
            unread,
        })
    }

    /// Whether some rule may match a command of `program` (a program the policy has rules for,
    /// or a rule with no `program` condition).
    fn concerns(&self, program: &str) -> bool {
        match &self.matcher {
            Compiled::Eager(m) => m.concerns(program),
            Compiled::Lazy(m) => m.concerns(program),
        }
    }
}

/// How many commands one argv may expand to before the rest is treated as unreadable.
const MAX_COMMANDS: usize = 4096;

/// What reading an argv found.
struct Read {
    /// Every command `argv` runs, itself first.
    commands: Vec<Vec<String>>,
    /// Those of them with arguments known only when they run (and every command those run).
    dynamic: Vec<Vec<String>>,
    /// Why what runs cannot be known, if it can't.
    opaque: Option<String>,
    /// Why some words are judged only as written, if they are.
    unread: Option<String>,
}

fn read_commands(argv: &[String], at: &Place<'_>) -> Read {
    use crate::command::{shell, wrap};
    use std::collections::HashSet;
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut dynamic: HashSet<Vec<String>> = HashSet::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    let mut opaque: Option<String> = None;
    let mut unread: Option<String> = None;
    let mut push = |c: Vec<String>, commands: &mut Vec<Vec<String>>| {
        if !c.is_empty() && seen.insert(c.clone()) {
            commands.push(c);
        }
    };
    push(argv.to_vec(), &mut commands);
    let mut i = 0;
    while i < commands.len() {
        if commands.len() > MAX_COMMANDS {
            opaque.get_or_insert_with(|| {
                format!("more than {MAX_COMMANDS} commands: the rest is not read")
            });
            break;
        }
        let cmd = commands[i].clone();
        i += 1;
        let is_dynamic = dynamic.contains(&cmd);
        if let Some(var) = at
            .links
            .and_then(|l| l.code_env_for(crate::request::program_name(&cmd[0])))
        {
            opaque.get_or_insert_with(|| {
                format!(
                    "`{var}` is set in the environment `{}` starts with",
                    crate::request::program_name(&cmd[0])
                )
            });
        }
        if let Some(links) = at.links
            && crate::request::program_name(&cmd[0]) == "aws"
            && let Some(alias) = links.aws_alias(&crate::command::parse("aws", &cmd[1..]).words)
        {
            opaque.get_or_insert_with(|| {
                format!("`aws {alias}` is an alias from the AWS CLI's alias file")
            });
        }
        if let Some(links) = at.links {
            for name in links.other_names(&cmd[0]) {
                let mut other = vec![name];
                other.extend(cmd[1..].iter().cloned());
                if is_dynamic {
                    dynamic.insert(other.clone());
                }
                push(other, &mut commands);
            }
        }
        let runs = wrap::runs(&cmd);
        if is_dynamic {
            match wrap::dynamic_words_matter(&cmd, wrap::looks_dynamic) {
                // `taskset "$(printf -- -c)" 0 aws ...`, `awk "$PROG"`, `git "$X" p`: a word
                // known only at run time may be an option or the code, and then what runs is
                // elsewhere.
                wrap::DynamicWords::ChooseWhatRuns => {
                    opaque.get_or_insert_with(|| {
                        format!(
                            "an argument of `{}`, which runs code, is known only when it runs",
                            crate::request::program_name(&cmd[0])
                        )
                    });
                }
                // `perl -pi -e 's/a/b/' src/*.c`: the code is read as written, with the
                // expansion in it.
                wrap::DynamicWords::InCode => {
                    unread.get_or_insert_with(|| {
                        format!(
                            "code given to `{}` has a part known only when it runs",
                            crate::request::program_name(&cmd[0])
                        )
                    });
                }
                wrap::DynamicWords::Arguments => {}
            }
        }
        for run in runs {
            let script = match run {
                wrap::Run::Command(c) => {
                    if is_dynamic {
                        // `sudo "$(printf aws)" iam ...`: the program itself may be an expansion.
                        if c.first()
                            .is_some_and(|p| p.contains(['$', '`', '*', '?', '[', '{']))
                        {
                            opaque.get_or_insert_with(|| {
                                format!("the command name `{}` is known only when it runs", c[0])
                            });
                        }
                        dynamic.insert(c.clone());
                    }
                    push(c, &mut commands);
                    continue;
                }
                wrap::Run::Opaque(why) => {
                    opaque.get_or_insert(why);
                    continue;
                }
                wrap::Run::Unread(why) => {
                    unread.get_or_insert(why);
                    continue;
                }
                wrap::Run::Script(s) => shell::parse(&s),
                wrap::Run::ScriptWithArgs(s, args) => shell::parse_with_args(&s, &args),
            };
            dynamic.extend(script.dynamic);
            for c in script.commands {
                push(c, &mut commands);
            }
            if let Some(o) = script.opaque {
                opaque.get_or_insert(o);
            }
            if let Some(u) = script.unread {
                unread.get_or_insert(u);
            }
        }
    }
    let dynamic = commands
        .iter()
        .filter(|c| dynamic.contains(*c))
        .cloned()
        .collect();
    Read {
        commands,
        dynamic,
        opaque,
        unread,
    }
}
