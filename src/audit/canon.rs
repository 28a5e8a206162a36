//! A validating scanner for one log line: checks that the bytes are exactly RFC 8785 canonical
//! JSON of the kind gate writes (no white space, members sorted by UTF-16 code units, minimal
//! string escapes, integers only) and finds the top-level `hash` member, so the verifier can hash
//! "the record without `hash`" by cutting bytes instead of re-serializing. One pass, no allocation
//! per value, which is what lets `gate log verify` go at hashing speed.

/// Where the top-level `hash` member sits and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashMember {
    /// The byte range to cut (the member and one adjacent comma).
    pub cut: std::ops::Range<usize>,
    /// The hex string value.
    pub value: std::ops::Range<usize>,
}

/// One top-level member: the raw bytes of its key (without quotes) and of its value (a string
/// value without its quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: std::ops::Range<usize>,
    pub value: std::ops::Range<usize>,
    pub is_string: bool,
}

struct Scanner<'a, 'm> {
    b: &'a [u8],
    i: usize,
    hash: Option<HashMember>,
    members: Option<&'m mut Vec<Member>>,
}

type R<T> = Result<T, String>;

/// Checks a line (without its newline) and returns the `hash` member's place.
pub fn scan(line: &[u8]) -> R<Option<HashMember>> {
    scan_members(line, None)
}

/// Like [`scan`], also listing the top-level members into `members` (cleared first), so a
/// reader can take the few fields it needs without parsing the line again.
pub fn scan_members(line: &[u8], members: Option<&mut Vec<Member>>) -> R<Option<HashMember>> {
    let members = members.map(|m| {
        m.clear();
        &mut *m
    });
    let mut s = Scanner {
        b: line,
        i: 0,
        hash: None,
        members,
    };
    if s.peek() != Some(b'{') {
        return Err("a record is a JSON object".into());
    }
    s.value(0)?;
    if s.i != line.len() {
        return Err(format!(
            "unexpected bytes after the record at column {}",
            s.i + 1
        ));
    }
    Ok(s.hash)
}

impl Scanner<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err<T>(&self, what: &str) -> R<T> {
        Err(format!("{what} at column {}", self.i + 1))
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected `{}`", c as char))
        }
    }

    fn value(&mut self, depth: usize) -> R<()> {
        if depth > 64 {
            return self.err("nesting too deep");
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b' ' | b'\t' | b'\r' | b'\n') => self.err("white space is not canonical"),
            _ => self.err("expected a JSON value"),
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("bad literal")
        }
    }

    fn integer(&mut self) -> R<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if self.i - start == 2 {
                    return self.err("`-0` is not canonical");
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return self.err("bad number"),
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return self.err("records hold no floating-point numbers");
        }
        Ok(())
    }

    /// Scans a string, checking canonical escapes; returns its raw byte range (without quotes).
    fn string(&mut self) -> R<std::ops::Range<usize>> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            // Skip plain bytes in one go: find the next quote or backslash, and make sure no
            // control character hides before it.
            if let Some(n) = memchr::memchr2(b'"', b'\\', &self.b[self.i..]) {
                let run = &self.b[self.i..self.i + n];
                match run.iter().position(|&c| c < 0x20) {
                    Some(bad) => {
                        self.i += bad;
                        return self.err("unescaped control character");
                    }
                    None => self.i += n,
                }
            }
            match self.peek() {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    let r = start..self.i;
                    self.i += 1;
                    return Ok(r);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self
                                .b
                                .get(self.i + 1..self.i + 5)
                                .ok_or("truncated \\u escape")?;
                            let ok = hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
                            let v = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            // Only control characters without a short form are written as \u00xx.
                            let canonical = ok
                                && v.is_some_and(|v| {
                                    v < 0x20 && ![0x08, 0x09, 0x0a, 0x0c, 0x0d].contains(&v)
                                });
                            if !canonical {
                                return self.err("`\\u` escape is not canonical");
                            }
                            self.i += 5;
                        }
                        _ => return self.err("escape is not canonical"),
                    }
                }
                Some(c) if c < 0x20 => return self.err("unescaped control character"),
                Some(_) => self.i += 1,
            }
        }
    }

    fn array(&mut self, depth: usize) -> R<()> {
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected `,` or `]`"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> R<()> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut prev_key: Option<std::ops::Range<usize>> = None;
        loop {
            let member_start = self.i;
            let key_range = self.string()?;
            if let Some(p) = &prev_key
                && !key_after(&self.b[p.clone()], &self.b[key_range.clone()])
            {
                let key = decode(&self.b[key_range.clone()]);
                return Err(format!(
                    "member `{key}` is out of canonical order or repeated at column {}",
                    key_range.start
                ));
            }
            prev_key = Some(key_range.clone());
            self.expect(b':')?;
            let value_start = self.i;
            self.value(depth + 1)?;
            if depth == 0
                && let Some(m) = self.members.as_deref_mut()
            {
                let is_string = self.b[value_start] == b'"';
                let value = if is_string {
                    value_start + 1..self.i - 1
                } else {
                    value_start..self.i
                };
                m.push(Member {
                    key: key_range.clone(),
                    value,
                    is_string,
                });
            }
            if depth == 0 && &self.b[key_range.clone()] == b"hash" {
                let value = value_start + 1..self.i.saturating_sub(1);
                if !self.b[value_start..].starts_with(b"\"") {
                    return Err("`hash` is not a string".into());
                }
                // Cut the member with the comma before it, or after it if it is first.
                let cut = if self.b[member_start - 1] == b',' {
                    member_start - 1..self.i
                } else if self.peek() == Some(b',') {
                    member_start..self.i + 1
                } else {
                    member_start..self.i
                };
                self.hash = Some(HashMember { cut, value });
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }
}

/// Whether raw key `b` sorts strictly after raw key `a` in UTF-16 code-unit order. For plain
/// ASCII keys (all gate writes) byte order is that order, so no decoding is needed.
fn key_after(a: &[u8], b: &[u8]) -> bool {
    let plain = |k: &[u8]| k.is_ascii() && !k.contains(&b'\\');
    if plain(a) && plain(b) {
        return b > a;
    }
    let (a, b) = (decode(a), decode(b));
    b.encode_utf16().cmp(a.encode_utf16()) == std::cmp::Ordering::Greater
}

/// Decodes a canonical JSON string body (its escapes were validated).
fn decode(raw: &[u8]) -> String {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let quoted = [b"\"", raw, b"\""].concat();
    serde_json::from_slice(&quoted).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_cuts_hash() {
        let line = br#"{"a":1,"hash":"ab","kind":"x"}"#;
        let h = scan(line).unwrap().unwrap();
        let mut cut = line.to_vec();
        cut.drain(h.cut.clone());
        assert_eq!(cut, br#"{"a":1,"kind":"x"}"#);
        assert_eq!(&line[h.value], b"ab");
        let first = br#"{"hash":"ab","z":[1,{"b":null,"c":true}]}"#;
        let h = scan(first).unwrap().unwrap();
        let mut cut = first.to_vec();
        cut.drain(h.cut);
        assert_eq!(cut, br#"{"z":[1,{"b":null,"c":true}]}"#);
    }

    #[test]
    fn rejects_non_canonical() {
        for bad in [
            &br#"{"b":1,"a":2}"#[..],
            br#"{"a":1, "b":2}"#,
            br#"{"a":1.5}"#,
            br#"{"a":"\/"}"#,
            br#"{"a":"\u0041"}"#,
            br#"{"a":"\u000a"}"#,
            br#"{"a":01}"#,
            br#"{"a":-0}"#,
            br#"{"a":1,"a":1}"#,
            br#"{"a":1}x"#,
            br#"[1]"#,
            br#"{"a":"x"#,
            b"{\"a\":\"\x01\"}",
        ] {
            assert!(scan(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(scan(br#"{"a":"\u001f\n","b":[],"c":{}}"#).is_ok());
    }

    #[test]
    fn agrees_with_the_canonicalizer() {
        let v = serde_json::json!({"é": "ü\u{1}", "e": [1, -2, {"y": false, "x": "\"\\"}], "\u{1f600}": null});
        let line = crate::jcs::canonicalize(&v).unwrap();
        assert!(scan(line.as_bytes()).is_ok());
    }
}
