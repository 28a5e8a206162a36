//! `context.redact`: the patterns whose matches never reach a record or a message, compiled
//! only when some text could match them.

use std::sync::OnceLock;

use regex::Regex;

use super::{Diagnostic, Policy, PolicyError};

impl Policy {
    /// Replaces every match of the `context.redact` patterns. A match that contains `=` keeps
    /// its `name=` part, so `password=hunter2` reads `password=[REDACTED]`. If a pattern of a
    /// lazily loaded policy cannot be compiled, the whole text is redacted (nothing leaks) and
    /// [`Policy::try_classify`] reports the policy error.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for r in &self.redact {
            // Text without a byte every match contains cannot match: it stays as it is, which
            // is what `replace_all` would return, without compiling the pattern.
            if !r.required.iter().all(|b| out.as_bytes().contains(b)) {
                continue;
            }
            let Ok(re) = r.regex() else {
                return "[REDACTED]".to_owned();
            };
            out = re
                .replace_all(&out, |caps: &regex::Captures<'_>| {
                    let m = &caps[0];
                    match m.find('=') {
                        Some(i) => format!("{}[REDACTED]", &m[..=i]),
                        None => "[REDACTED]".to_owned(),
                    }
                })
                .into_owned();
        }
        out
    }

    /// A `context.redact` pattern that failed to compile when first used.
    pub(super) fn redact_error(&self) -> Option<PolicyError> {
        self.redact.iter().find_map(|r| match r.re.get() {
            Some(Err(e)) => Some(PolicyError::Invalid(vec![Diagnostic {
                message: format!("bad regex: {e}"),
                ..r.at.clone()
            }])),
            _ => None,
        })
    }
}

/// One `context.redact` pattern, compiled at load ([`Policy::load`]) or when first needed
/// ([`Policy::load_lazy`]; it was validated with `regex_syntax` when its file was checked).
pub(super) struct Redactor {
    pub(super) pattern: String,
    /// Bytes that every match contains (see [`required_bytes`]).
    pub(super) required: Vec<u8>,
    pub(super) re: OnceLock<Result<Regex, regex::Error>>,
    /// Where a compile failure is reported.
    pub(super) at: Diagnostic,
}

impl Redactor {
    fn regex(&self) -> Result<&Regex, &regex::Error> {
        self.re.get_or_init(|| Regex::new(&self.pattern)).as_ref()
    }
}

/// Bytes that every match of `pattern` contains: a literal's bytes, the union over a
/// concatenation, the intersection over an alternation, nothing from what may match empty.
/// Empty when the pattern does not parse (it then never skips compiling).
pub(super) fn required_bytes(pattern: &str) -> Vec<u8> {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn req(h: &Hir) -> Vec<u8> {
        match h.kind() {
            HirKind::Literal(l) => {
                let mut v = l.0.to_vec();
                v.sort_unstable();
                v.dedup();
                v
            }
            HirKind::Class(Class::Unicode(c)) => match c.ranges() {
                [r] if r.start() == r.end() => {
                    let mut v = r.start().to_string().into_bytes();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
                _ => Vec::new(),
            },
            HirKind::Class(Class::Bytes(c)) => match c.ranges() {
                [r] if r.start() == r.end() => vec![r.start()],
                _ => Vec::new(),
            },
            HirKind::Empty | HirKind::Look(_) => Vec::new(),
            HirKind::Repetition(r) if r.min == 0 => Vec::new(),
            HirKind::Repetition(r) => req(&r.sub),
            HirKind::Capture(c) => req(&c.sub),
            HirKind::Concat(xs) => {
                let mut v: Vec<u8> = xs.iter().flat_map(req).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            HirKind::Alternation(xs) => {
                let mut it = xs.iter().map(req);
                let first = it.next().unwrap_or_default();
                it.fold(first, |acc, v| {
                    acc.into_iter().filter(|b| v.contains(b)).collect()
                })
            }
        }
    }
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|h| req(&h))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_bytes_are_in_every_match() {
        assert_eq!(
            required_bytes(r"(?i)(password|token|secret)=\S+"),
            b"=".to_vec()
        );
        assert_eq!(required_bytes("ab(cd|ce)"), b"abc".to_vec());
        assert_eq!(required_bytes("a*|b"), Vec::<u8>::new());
        assert_eq!(required_bytes("x(y)+z?"), b"xy".to_vec());
        assert_eq!(required_bytes("(unclosed"), Vec::<u8>::new());
    }

    /// Skipping the compile never changes the result.
    #[test]
    fn redact_skip_is_exact() {
        for pat in [
            r"(?i)(password|token|secret)=\S+",
            "ab(cd|ce)",
            "é+x",
            r"\d{3}",
        ] {
            let re = Regex::new(pat).unwrap();
            let req = required_bytes(pat);
            for text in [
                "",
                "password=1",
                "PASSWORD=x y",
                "abce",
                "abc",
                "éx",
                "x",
                "123",
                "a=b",
            ] {
                if !req.iter().all(|b| text.as_bytes().contains(b)) {
                    assert!(!re.is_match(text), "{pat} {text}");
                }
            }
        }
    }
}
