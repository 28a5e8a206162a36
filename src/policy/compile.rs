//! Compiles every rule's match conditions into a few shared indexes (one globset per field and
//! argument position, one RegexSet), so classifying a command costs a handful of set lookups
//! however many rules there are.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use regex::RegexSet;

use super::schema::Match;

/// Builds one glob the way every policy field uses it: `*` also crosses `/`, braces expand.
pub fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
}

/// What classification looks at: the command and who runs it where.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Basename of the program.
    pub program: &'a str,
    /// Positional words from the tool-aware parser.
    pub words: &'a [String],
    /// The shell-quoted command line, for `regex`.
    pub command_line: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a str,
    pub user: &'a str,
    pub host: &'a str,
}

/// A set of globs, each owned by a rule and a condition of it.
#[derive(Default)]
struct GlobIndex {
    builder_globs: Vec<Glob>,
    owners: Vec<u32>,
    set: Option<GlobSet>,
}

impl GlobIndex {
    fn add(&mut self, pattern: &str, rule: u32) {
        // Patterns were validated when the file was checked.
        if let Ok(g) = glob(pattern) {
            self.builder_globs.push(g);
            self.owners.push(rule);
        }
    }

    fn build(&mut self) -> Result<(), globset::Error> {
        let mut b = GlobSetBuilder::new();
        for g in self.builder_globs.drain(..) {
            b.add(g);
        }
        self.set = Some(b.build()?);
        Ok(())
    }

    /// Whether any of the globs matches `value`.
    fn any(&self, value: &str) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(value))
    }

    /// Adds one to `hits[rule]` for every rule this value satisfies (once per rule).
    fn hit(&self, value: &str, hits: &mut [u16], scratch: &mut Vec<usize>, seen: &mut Vec<u32>) {
        let Some(set) = &self.set else { return };
        set.matches_into(value, scratch);
        seen.clear();
        seen.extend(scratch.iter().map(|&i| self.owners[i]));
        seen.sort_unstable();
        seen.dedup();
        for &r in seen.iter() {
            hits[r as usize] += 1;
        }
    }
}

/// The compiled conditions of all rules.
pub struct Matcher {
    rules: usize,
    /// How many conditions each rule has; a rule matches when all of them hit.
    needed: Vec<u16>,
    program: GlobIndex,
    /// `args[k]` for each position k.
    args: Vec<GlobIndex>,
    /// `args_any`, indexed by the position it looks at (the word after the `args` prefix).
    args_any: Vec<GlobIndex>,
    env: HashMap<String, GlobIndex>,
    cwd: GlobIndex,
    user: GlobIndex,
    host: GlobIndex,
    regex: Option<(RegexSet, Vec<u32>)>,
    /// Some rule has no `program` condition (it may match any program).
    any_program: bool,
    /// The environment variables some rule's `env` condition reads.
    env_names: Vec<String>,
}

/// Why the rules could not be compiled although every glob and regex in them was checked when
/// its file was (a size limit of the combined set).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CompileError {
    #[error("{0}")]
    Glob(#[from] globset::Error),
    #[error("{0}")]
    Regex(#[from] regex::Error),
}

impl Matcher {
    /// Whether some rule may match a command of `program` (its `program` condition holds, or it
    /// has none): what a command's other conditions could then depend on.
    pub fn concerns(&self, program: &str) -> bool {
        self.any_program || self.program.any(program)
    }

    /// The environment variables some rule's `env` condition reads.
    pub fn env_names(&self) -> &[String] {
        &self.env_names
    }

    pub fn build<'a>(matches: impl Iterator<Item = &'a Match>) -> Result<Self, CompileError> {
        Self::build_with(matches, false)
    }

    /// Like [`Matcher::build`]; with `skip_program`, the rules' `program` conditions are left
    /// out (the caller already knows they hold: see [`LazyMatcher`]).
    fn build_with<'a>(
        matches: impl Iterator<Item = &'a Match>,
        skip_program: bool,
    ) -> Result<Self, CompileError> {
        let mut m = Matcher {
            rules: 0,
            needed: Vec::new(),
            program: GlobIndex::default(),
            args: Vec::new(),
            args_any: Vec::new(),
            env: HashMap::new(),
            cwd: GlobIndex::default(),
            user: GlobIndex::default(),
            host: GlobIndex::default(),
            regex: None,
            any_program: false,
            env_names: Vec::new(),
        };
        let mut regexes = Vec::new();
        let mut regex_owner = Vec::new();
        for (i, spec) in matches.enumerate() {
            let r = i as u32;
            let mut needed = 0u16;
            let one = |index: &mut GlobIndex, p: &str| {
                index.add(p, r);
                1
            };
            match spec.program.as_ref() {
                Some(p) if !skip_program => needed += one(&mut m.program, &p.value),
                Some(_) => {}
                None => m.any_program = true,
            }
            for (k, a) in spec.args.iter().enumerate() {
                if m.args.len() <= k {
                    m.args.push(GlobIndex::default());
                }
                needed += one(&mut m.args[k], &a.value);
            }
            if !spec.args_any.is_empty() {
                let k = spec.args.len();
                while m.args_any.len() <= k {
                    m.args_any.push(GlobIndex::default());
                }
                for a in &spec.args_any {
                    m.args_any[k].add(&a.value, r);
                }
                needed += 1;
            }
            for (name, g) in &spec.env {
                needed += one(m.env.entry(name.clone()).or_default(), &g.value);
            }
            if let Some(p) = &spec.cwd {
                needed += one(&mut m.cwd, &p.value);
            }
            if let Some(p) = &spec.user {
                needed += one(&mut m.user, &p.value);
            }
            if let Some(p) = &spec.host {
                needed += one(&mut m.host, &p.value);
            }
            if let Some(re) = &spec.regex {
                regexes.push(re.value.clone());
                regex_owner.push(r);
                needed += 1;
            }
            m.needed.push(needed);
            m.rules += 1;
        }
        for index in [&mut m.program, &mut m.cwd, &mut m.user, &mut m.host] {
            index.build()?;
        }
        for index in m.args.iter_mut().chain(m.args_any.iter_mut()) {
            index.build()?;
        }
        m.env_names = m.env.keys().cloned().collect();
        m.env_names.sort();
        for index in m.env.values_mut() {
            index.build()?;
        }
        if !regexes.is_empty() {
            let set = RegexSet::new(&regexes)?;
            m.regex = Some((set, regex_owner));
        }
        Ok(m)
    }

    /// Indexes of the rules whose every condition holds, in rule order.
    pub fn matching(&self, s: &Subject<'_>) -> Vec<usize> {
        let mut hits = vec![0u16; self.rules];
        let mut scratch = Vec::new();
        let mut seen = Vec::new();
        self.program
            .hit(s.program, &mut hits, &mut scratch, &mut seen);
        for (k, index) in self.args.iter().enumerate() {
            if let Some(w) = s.words.get(k) {
                index.hit(w, &mut hits, &mut scratch, &mut seen);
            }
        }
        for (k, index) in self.args_any.iter().enumerate() {
            if let Some(w) = s.words.get(k) {
                index.hit(w, &mut hits, &mut scratch, &mut seen);
            }
        }
        for (name, index) in &self.env {
            if let Some(v) = s.env.get(name) {
                index.hit(v, &mut hits, &mut scratch, &mut seen);
            }
        }
        self.cwd.hit(s.cwd, &mut hits, &mut scratch, &mut seen);
        self.user.hit(s.user, &mut hits, &mut scratch, &mut seen);
        self.host.hit(s.host, &mut hits, &mut scratch, &mut seen);
        if let Some((set, owners)) = &self.regex {
            for i in set.matches(s.command_line).iter() {
                hits[owners[i] as usize] += 1;
            }
        }
        (0..self.rules)
            .filter(|&r| hits[r] == self.needed[r])
            .collect()
    }
}

/// The program names a `program` glob can match, when it is a plain word (`aws`) or a brace
/// list of plain words (`{kubectl,oc}`); `None` when it may match other names too. A plain word
/// has none of globset's special characters, so the glob matches exactly that string (`*` and
/// friends are absent, `/` is not special with `literal_separator(false)`). Commas, `]` and
/// empty alternatives are left to the general case to keep this obviously right.
fn literal_programs(pattern: &str) -> Option<Vec<&str>> {
    const SPECIAL: &[char] = &['?', '*', '[', ']', '{', '}', '\\', ','];
    let plain = |s: &str| !s.is_empty() && !s.contains(SPECIAL);
    if plain(pattern) {
        return Some(vec![pattern]);
    }
    let inner = pattern.strip_prefix('{')?.strip_suffix('}')?;
    let alts: Vec<&str> = inner.split(',').collect();
    alts.iter().all(|a| plain(a)).then_some(alts)
}

/// The compiled conditions of all rules, compiled per program on first use.
///
/// Rules whose `program` is a literal name (or a brace list of names) are grouped by that name;
/// a group's globsets and RegexSet are built the first time a command with that program is
/// classified (most runs touch one group of a large policy). Rules with any other `program`, or
/// none, form the general group, built at load. Every glob and regex was already validated when
/// its file was checked; a group that still fails to build (a size limit) reports the error at
/// that first use: [`LazyMatcher::matching`] returns it and the caller refuses the command.
pub struct LazyMatcher {
    /// The environment variables some rule's `env` condition reads.
    env_names: Vec<String>,
    specs: Vec<Match>,
    general: Matcher,
    general_rules: Vec<u32>,
    parts: HashMap<String, Part>,
}

struct Part {
    rules: Vec<u32>,
    compiled: OnceLock<Result<Matcher, CompileError>>,
}

impl LazyMatcher {
    pub fn build(specs: Vec<Match>) -> Result<Self, CompileError> {
        let mut general_rules = Vec::new();
        let mut parts: HashMap<String, Part> = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            let r = i as u32;
            match spec
                .program
                .as_ref()
                .and_then(|p| literal_programs(&p.value))
            {
                Some(names) => {
                    for name in names {
                        let part = parts.entry(name.to_owned()).or_insert_with(|| Part {
                            rules: Vec::new(),
                            compiled: OnceLock::new(),
                        });
                        // `{a,a}`: once per rule.
                        if part.rules.last() != Some(&r) {
                            part.rules.push(r);
                        }
                    }
                }
                None => general_rules.push(r),
            }
        }
        let general = Matcher::build(general_rules.iter().map(|&r| &specs[r as usize]))?;
        let mut env_names: Vec<String> = specs
            .iter()
            .flat_map(|s| s.env.iter().map(|(n, _)| n.clone()))
            .collect();
        env_names.sort();
        env_names.dedup();
        Ok(LazyMatcher {
            env_names,
            specs,
            general,
            general_rules,
            parts,
        })
    }

    /// Whether some rule may match a command of `program` ([`Matcher::concerns`]).
    pub fn concerns(&self, program: &str) -> bool {
        self.parts.contains_key(program) || self.general.concerns(program)
    }

    /// The environment variables some rule's `env` condition reads.
    pub fn env_names(&self) -> &[String] {
        &self.env_names
    }

    /// Indexes of the rules whose every condition holds, in rule order; an error when the
    /// program's group cannot be compiled.
    pub fn matching(&self, s: &Subject<'_>) -> Result<Vec<usize>, CompileError> {
        let mut out: Vec<usize> = self
            .general
            .matching(s)
            .into_iter()
            .map(|i| self.general_rules[i] as usize)
            .collect();
        if let Some(part) = self.parts.get(s.program) {
            let compiled = part.compiled.get_or_init(|| {
                Matcher::build_with(part.rules.iter().map(|&r| &self.specs[r as usize]), true)
            });
            let m = compiled.as_ref().map_err(Clone::clone)?;
            out.extend(m.matching(s).into_iter().map(|i| part.rules[i] as usize));
            out.sort_unstable();
        }
        Ok(out)
    }
}

/// A single compiled glob, for places that match one pattern (tests, explain).
pub fn matcher(pattern: &str) -> Option<GlobMatcher> {
    glob(pattern).ok().map(|g| g.compile_matcher())
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
