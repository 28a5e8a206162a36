//! Typed values with their positions: each accessor reports a wrong type, an unknown key, a
//! bad glob, regex, duration or secret reference where it stands, and goes on.

use std::collections::HashSet;
use std::time::Duration;

use super::Checker;
use crate::policy::diag::{Diagnostics, Pos};
use crate::policy::schema::*;
use crate::policy::yaml::{Node, Value};

impl Checker<'_> {
    pub(super) fn map<'n>(&mut self, v: &'n Node, what: &str) -> Option<&'n [(String, Pos, Node)]> {
        match &v.value {
            Value::Map(m) => {
                // Small mappings (nearly all of them) are checked without hashing.
                let mut seen = HashSet::new();
                for (i, (k, p, _)) in m.iter().enumerate() {
                    let dup = if m.len() <= 16 {
                        m[..i].iter().any(|(k2, _, _)| k2 == k)
                    } else {
                        !seen.insert(k.as_str())
                    };
                    if k.starts_with('\u{0}') {
                        self.d.error(*p, "mapping keys must be plain strings");
                    } else if dup {
                        self.d.error(*p, format!("duplicate key `{k}`"));
                    }
                }
                Some(m)
            }
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(v, &format!("a mapping for {what}"));
                None
            }
        }
    }

    pub(super) fn seq<'n>(&mut self, v: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &v.value {
            Value::Seq(s) => Some(s),
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(v, &format!("a list for {what}"));
                None
            }
        }
    }

    pub(super) fn str(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.value {
            Value::Str(s) => Some(s.clone()),
            // Plain scalars like `1` or `true` in a string position are almost always a
            // mistake in intent but harmless in meaning: accept their text.
            Value::Int(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.wrong_type(v, what);
                None
            }
        }
    }

    pub(super) fn str_list(&mut self, v: &Node, what: &str) -> Vec<String> {
        match &v.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.str(i, what)).collect(),
            _ => {
                self.wrong_type(v, &format!("a list of {what}"));
                Vec::new()
            }
        }
    }

    pub(super) fn bool(&mut self, v: &Node) -> Option<bool> {
        match v.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(v, "`true` or `false`");
                None
            }
        }
    }

    pub(super) fn decision(&mut self, v: &Node) -> Option<Decision> {
        let s = self.str(v, "a decision")?;
        let d = Decision::parse(&s);
        if d.is_none() {
            self.d.error_hint(
                v.pos,
                format!("unknown decision `{s}`"),
                "one of: allow, confirm, approve, deny",
            );
        }
        d
    }

    pub(super) fn duration(&mut self, v: &Node) -> Option<Duration> {
        let s = self.str(v, "a duration")?;
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.d.error(v.pos, "a duration must be longer than zero");
                None
            }
            Err(e) => {
                self.d.error_hint(
                    v.pos,
                    format!("bad duration `{s}`: {e}"),
                    "write durations like `90s`, `15m` or `1h 30m`",
                );
                None
            }
        }
    }

    pub(super) fn glob(&mut self, v: &Node) -> Option<At<String>> {
        let s = self.str(v, "a glob pattern")?;
        // A pattern without any of the characters globset's parser treats specially is a
        // literal, which always parses: skip building the `Glob` just to drop it. (Commas are
        // special only inside braces, which need `{`.)
        if !s.contains(['?', '*', '[', '{', '}', '\\']) {
            return Some(At {
                value: s,
                pos: v.pos,
            });
        }
        match crate::policy::compile::glob(&s) {
            Ok(_) => Some(at(&s, v.pos)),
            Err(e) => {
                self.d.error(v.pos, format!("bad glob `{s}`: {e}"));
                None
            }
        }
    }

    pub(super) fn glob_list(&mut self, v: &Node) -> Vec<At<String>> {
        match &v.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.glob(i)).collect(),
            _ => {
                self.wrong_type(v, "a list of glob patterns");
                Vec::new()
            }
        }
    }

    pub(super) fn regex_ok(&mut self, re: &str, pos: Pos) -> bool {
        match regex_syntax::Parser::new().parse(re) {
            Ok(_) => true,
            Err(e) => {
                let first = e.to_string();
                let detail = first.lines().last().unwrap_or("").trim();
                let detail = detail.strip_prefix("error: ").unwrap_or(detail).to_owned();
                self.d.error(pos, format!("bad regex `{re}`: {detail}"));
                false
            }
        }
    }

    pub(super) fn wrong_type(&mut self, v: &Node, expected: &str) {
        self.d.error(
            v.pos,
            format!("expected {expected}, found {}", v.value.type_name()),
        );
    }

    pub(super) fn unknown_key(&mut self, key: &str, pos: Pos, known: &[&str]) {
        let close = known.iter().find(|k| similar(key, k));
        let hint = match close {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("expected one of: {}", known.join(", ")),
        };
        self.d.error_hint(pos, format!("unknown key `{key}`"), hint);
    }
}

pub(super) fn at(s: &str, pos: Pos) -> At<String> {
    At {
        value: s.to_owned(),
        pos,
    }
}

/// Secrets live outside policy files: only references are accepted.
pub(super) fn secret_ref(s: String, d: &mut Diagnostics, pos: Pos) -> Option<String> {
    if ["keyring:", "env:", "file:"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        Some(s)
    } else {
        d.error_hint(
            pos,
            "secrets are never written into policy files",
            "refer to it as `keyring:SERVICE/NAME`, `env:VAR` or `file:PATH`",
        );
        // The offending line is shown under the error; the secret written on it is not (a CI
        // log of a failed lint must not become where the token leaked).
        if !s.is_empty()
            && let Some(line) = d.items.last_mut().and_then(|i| i.source_line.as_mut())
        {
            *line = line.replace(&s, "<redacted>");
        }
        None
    }
}

/// Checks a note verifier key's form, `<name>+<8 hex key id>+<base64(0x01 ‖ Ed25519 key)>`,
/// and that its id belongs to its name and key (DESIGN §8). Written out here rather than taken
/// from `audit::note`, which sits above the policy layer; the client parses it again there.
pub(super) fn check_vkey(vkey: &str) -> Result<(), &'static str> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    if vkey.starts_with("PRIVATE+KEY+") {
        return Err(
            "this is a private signing key — pin the verifier key `gate serve key` prints, and treat this one as leaked",
        );
    }
    let mut parts = vkey.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected `<name>+<key id>+<base64 key>`");
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("bad key name");
    }
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the key id is not 8 hex digits");
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the key is not base64")?;
    if raw.len() != 33 || raw[0] != 0x01 {
        return Err("not an Ed25519 verifier key");
    }
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', 0x01]);
    h.update(&raw[1..]);
    if !hex::encode(&h.finalize()[..4]).eq_ignore_ascii_case(id) {
        return Err("the key id does not match the name and key");
    }
    Ok(())
}

/// Edit distance ≤ 2, for "did you mean" hints.
pub(in crate::policy) fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

pub(super) fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &n.value {
        Value::Null | Value::Unsupported(_) | Value::Float => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, _, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod vkey_tests {
    use super::check_vkey;

    #[test]
    fn server_keys_are_checked_for_form_and_id() {
        // `gate serve key` output for a host named gate.example.com.
        let good = "gate/gate.example.com+569121fc+AYP8Fo7gNUPHxesDjW460kNOSlklOnqf4i3sX9/gay7X";
        assert_eq!(check_vkey(good), Ok(()));
        let cases = [
            ("", "expected"),
            ("gate/x", "expected"),
            ("gate/x+569121fc", "expected"),
            (&good.replace("+569121fc+", "+569121fd+"), "does not match"),
            (&good.replace("+569121fc+", "+56912+"), "8 hex"),
            (&good.replace("+AYP8", "+AoP8"), "Ed25519"),
            (&good.replace("AYP8Fo7", "AYP8Fo!"), "base64"),
            (
                &good.replace("gate/gate.example.com", "gate/other"),
                "does not match",
            ),
            (&good.replace("gate/gate.example.com", "gate /x"), "name"),
            (&good[..good.len() - 4], "Ed25519"),
            (
                "PRIVATE+KEY+gate/x+569121fc+AYP8Fo7gNUPHxesDjW460kNOSlklOnqf4i3sX9/gay7X",
                "private",
            ),
        ];
        for (k, why) in cases {
            let err = check_vkey(k).expect_err(k);
            assert!(err.contains(why), "{k}: {err}");
        }
    }
}
