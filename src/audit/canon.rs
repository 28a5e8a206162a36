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
    /// A string value holding an escape (its raw bytes are not its text).
    pub escaped: bool,
}

/// A scanned string: its raw body, and whether that body is its text in plain ASCII.
struct Str {
    range: std::ops::Range<usize>,
    escaped: bool,
    ascii: bool,
}

/// Why a line is not canonical JSON of the kind gate writes. The texts are part of the
/// verify report (`not_canonical` reasons), so they stay as they read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    #[error("a record is a JSON object")]
    NotAnObject,
    #[error("unexpected bytes after the record at column {0}")]
    TrailingBytes(usize),
    /// A fault at a 1-based column.
    #[error("{fault} at column {column}")]
    At { fault: Fault, column: usize },
    #[error("truncated \\u escape")]
    TruncatedEscape,
    /// `column` is the byte offset of the key's first character (as reported since verify's
    /// first version).
    #[error("member `{key}` is out of canonical order or repeated at column {column}")]
    MemberOrder { key: String, column: usize },
    #[error("`hash` is not a string")]
    HashNotString,
}

/// What is wrong at a place in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("expected `{0}`")]
    Expected(char),
    #[error("nesting too deep")]
    TooDeep,
    #[error("white space is not canonical")]
    WhiteSpace,
    #[error("expected a JSON value")]
    NotAValue,
    #[error("bad literal")]
    BadLiteral,
    #[error("`-0` is not canonical")]
    NegativeZero,
    #[error("bad number")]
    BadNumber,
    #[error("records hold no floating-point numbers")]
    Float,
    #[error("unescaped control character")]
    ControlCharacter,
    #[error("unterminated string")]
    Unterminated,
    #[error("`\\u` escape is not canonical")]
    UnicodeEscape,
    #[error("escape is not canonical")]
    Escape,
    #[error("expected `,` or `]`")]
    ArrayEnd,
    #[error("expected `,` or `}}`")]
    ObjectEnd,
}

/// What a successful scan found besides the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scanned {
    /// The top-level `hash` member, if any.
    pub hash: Option<HashMember>,
    /// Whether a byte above 0x7f occurred (inside a string): only then can the line fail
    /// UTF-8 validation, which the scanner itself does not do.
    pub non_ascii: bool,
}

struct Scanner<'a, 'm> {
    b: &'a [u8],
    i: usize,
    hash: Option<HashMember>,
    non_ascii: bool,
    members: Option<&'m mut Vec<Member>>,
}

type R<T> = Result<T, CanonError>;

/// Checks a line (without its newline) and returns the `hash` member's place.
pub fn scan(line: &[u8]) -> R<Option<HashMember>> {
    scan_members(line, None).map(|s| s.hash)
}

/// Like [`scan`], also listing the top-level members into `members` (cleared first), so a
/// reader can take the few fields it needs without parsing the line again, and saying whether
/// the line holds any non-ASCII byte (a line of ASCII bytes is UTF-8 without a further look).
pub fn scan_members(line: &[u8], members: Option<&mut Vec<Member>>) -> R<Scanned> {
    let members = members.map(|m| {
        m.clear();
        &mut *m
    });
    let mut s = Scanner {
        b: line,
        i: 0,
        hash: None,
        non_ascii: false,
        members,
    };
    if s.peek() != Some(b'{') {
        return Err(CanonError::NotAnObject);
    }
    s.value(0)?;
    if s.i != line.len() {
        return Err(CanonError::TrailingBytes(s.i + 1));
    }
    Ok(Scanned {
        hash: s.hash,
        non_ascii: s.non_ascii,
    })
}

/// Eight copies of byte `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The high bit of each byte of `w` (little-endian: first byte lowest) that may need a look
/// inside a string: `"`, `\`, a control character, or a byte above 0x7f. The lowest flagged
/// byte is always a true hit (the borrow tricks only add false hits above a true one).
#[inline]
fn special_bytes(w: u64) -> u64 {
    const LOW: u64 = splat(0x01);
    const HIGH: u64 = splat(0x80);
    let zero_in = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
    let quote = zero_in(w ^ splat(b'"'));
    let backslash = zero_in(w ^ splat(b'\\'));
    let control = w.wrapping_sub(splat(0x20)) & !w & HIGH;
    quote | backslash | control | (w & HIGH)
}

impl Scanner<'_, '_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err<T>(&self, fault: Fault) -> R<T> {
        Err(CanonError::At {
            fault,
            column: self.i + 1,
        })
    }

    #[inline]
    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(Fault::Expected(c as char))
        }
    }

    fn value(&mut self, depth: usize) -> R<()> {
        if depth > 64 {
            return self.err(Fault::TooDeep);
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b' ' | b'\t' | b'\r' | b'\n') => self.err(Fault::WhiteSpace),
            _ => self.err(Fault::NotAValue),
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err(Fault::BadLiteral)
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
                    return self.err(Fault::NegativeZero);
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return self.err(Fault::BadNumber),
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return self.err(Fault::Float);
        }
        Ok(())
    }

    /// Moves to the next byte of a string body that needs a look (see [`special_bytes`]),
    /// eight bytes at a time: plain ASCII text, most of a log, costs a few operations a word.
    #[inline]
    fn skip_plain(&mut self) {
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let hits = special_bytes(u64::from_le_bytes(w));
            if hits != 0 {
                self.i += (hits.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b'"' | b'\\' | 0..0x20 | 0x80..) {
                return;
            }
            self.i += 1;
        }
    }

    /// Scans a string, checking canonical escapes; returns its raw byte range (without quotes).
    fn string(&mut self) -> R<Str> {
        self.expect(b'"')?;
        let start = self.i;
        let (mut escaped, mut ascii) = (false, true);
        loop {
            self.skip_plain();
            match self.peek() {
                None => return self.err(Fault::Unterminated),
                Some(b'"') => {
                    let range = start..self.i;
                    self.i += 1;
                    return Ok(Str {
                        range,
                        escaped,
                        ascii,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self
                                .b
                                .get(self.i + 1..self.i + 5)
                                .ok_or(CanonError::TruncatedEscape)?;
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
                                return self.err(Fault::UnicodeEscape);
                            }
                            self.i += 5;
                        }
                        _ => return self.err(Fault::Escape),
                    }
                }
                Some(c) if c < 0x20 => return self.err(Fault::ControlCharacter),
                Some(_) => {
                    // Above 0x7f: the caller validates UTF-8 when this is set.
                    self.non_ascii = true;
                    ascii = false;
                    self.i += 1;
                }
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
                _ => return self.err(Fault::ArrayEnd),
            }
        }
    }

    fn object(&mut self, depth: usize) -> R<()> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut prev_key: Option<(std::ops::Range<usize>, bool)> = None;
        loop {
            let member_start = self.i;
            let Str {
                range: key_range,
                escaped,
                ascii,
            } = self.string()?;
            let key = &self.b[key_range.clone()];
            let plain = ascii && !escaped;
            if let Some((p, p_plain)) = &prev_key
                && !key_after(&self.b[p.clone()], *p_plain, key, plain)
            {
                return Err(CanonError::MemberOrder {
                    key: decode(key),
                    column: key_range.start,
                });
            }
            prev_key = Some((key_range.clone(), plain));
            self.expect(b':')?;
            let value_start = self.i;
            // A string member's escapes are noted for the reader of top-level members.
            // (At the depth limit the value goes through `value`, which says so.)
            let escaped = if self.peek() == Some(b'"') && depth < 64 {
                self.string()?.escaped
            } else {
                self.value(depth + 1)?;
                false
            };
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
                    escaped,
                });
            }
            if depth == 0 && key == b"hash" {
                let value = value_start + 1..self.i.saturating_sub(1);
                if !self.b[value_start..].starts_with(b"\"") {
                    return Err(CanonError::HashNotString);
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
                _ => return self.err(Fault::ObjectEnd),
            }
        }
    }
}

/// Whether raw key `b` sorts strictly after raw key `a` in UTF-16 code-unit order. For plain
/// ASCII keys (all gate writes) byte order is that order, so no decoding is needed.
fn key_after(a: &[u8], a_plain: bool, b: &[u8], b_plain: bool) -> bool {
    if a_plain && b_plain {
        // Keys are short: a loop here beats a call to `memcmp`.
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return y > x;
            }
        }
        return b.len() > a.len();
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

    /// The word-at-a-time skip must stop at the first byte that needs a look, wherever it
    /// falls in a word, exactly as a byte-by-byte scan would.
    #[test]
    fn plain_runs_stop_at_the_first_special_byte() {
        for len in 0..24 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x01, 0x1f, 0x80, 0xff] {
                    let mut body = vec![b'x'; len];
                    body[at] = special;
                    // A second special byte later must not hide the first.
                    if at + 3 < len {
                        body[at + 3] = 0x02;
                    }
                    let line = [br#"{"a":""#.as_slice(), &body, br#""}"#].concat();
                    let got = scan_members(&line, None);
                    let column = 7 + at; // 1-based: `{"a":"` is six bytes
                    match special {
                        // The string ends early; what follows is not `,` or `}`.
                        b'"' => assert_eq!(
                            got,
                            Err(CanonError::At {
                                fault: Fault::ObjectEnd,
                                column: column + 1
                            }),
                            "{len} {at}"
                        ),
                        // Last in the body, it escapes the closing quote.
                        b'\\' if at + 1 == len => assert_eq!(
                            got,
                            Err(CanonError::At {
                                fault: Fault::Unterminated,
                                column: line.len() + 1
                            }),
                            "{len} {at}"
                        ),
                        b'\\' => assert_eq!(
                            got,
                            Err(CanonError::At {
                                fault: Fault::Escape,
                                column: column + 1
                            }),
                            "{len} {at}"
                        ),
                        0x80.. => {
                            let want = if at + 3 < len {
                                Err(CanonError::At {
                                    fault: Fault::ControlCharacter,
                                    column: column + 3,
                                })
                            } else {
                                Ok(Scanned {
                                    hash: None,
                                    non_ascii: true,
                                })
                            };
                            assert_eq!(got, want, "{len} {at}");
                        }
                        _ => assert_eq!(
                            got,
                            Err(CanonError::At {
                                fault: Fault::ControlCharacter,
                                column
                            }),
                            "{len} {at}"
                        ),
                    }
                }
            }
            let plain = [br#"{"a":""#.as_slice(), &vec![b'x'; len], br#""}"#].concat();
            assert_eq!(scan_members(&plain, None), Ok(Scanned::default()));
        }
    }

    /// The reasons are part of `gate log verify`'s report (`not_canonical`): their text stays.
    #[test]
    fn reasons_read_as_before() {
        for (line, want) in [
            (&b"[1]"[..], "a record is a JSON object"),
            (
                br#"{"a":1}x"#,
                "unexpected bytes after the record at column 8",
            ),
            (br#"{"a":1, "b":2}"#, "expected `\"` at column 8"),
            (br#"{"a": 1}"#, "white space is not canonical at column 6"),
            (
                br#"{"a":1.5}"#,
                "records hold no floating-point numbers at column 7",
            ),
            (br#"{"a":-0}"#, "`-0` is not canonical at column 8"),
            (br#"{"a":tru}"#, "bad literal at column 6"),
            (br#"{"a":-x}"#, "bad number at column 7"),
            (br#"{"a":"x"#, "unterminated string at column 8"),
            (br#"{"a":"\u00"#, "truncated \\u escape"),
            (
                br#"{"a":"\u00"}"#,
                "`\\u` escape is not canonical at column 8",
            ),
            (
                br#"{"a":"\u0041"}"#,
                "`\\u` escape is not canonical at column 8",
            ),
            (br#"{"a":"\/"}"#, "escape is not canonical at column 8"),
            (br#"{"a":[1 ]}"#, "expected `,` or `]` at column 8"),
            (br#"{"a":1 }"#, "expected `,` or `}` at column 7"),
            (br#"{"a":x}"#, "expected a JSON value at column 6"),
            (
                br#"{"b":1,"a":2}"#,
                "member `a` is out of canonical order or repeated at column 8",
            ),
            (br#"{"hash":1}"#, "`hash` is not a string"),
        ] {
            let got = scan(line).expect_err(&String::from_utf8_lossy(line));
            assert_eq!(got.to_string(), want, "{}", String::from_utf8_lossy(line));
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(
            scan(deep.as_bytes()).unwrap_err().to_string(),
            "nesting too deep at column 70"
        );
        // A string as the innermost member's value counts as deep as any other value.
        let nested = |n: usize| format!("{}\"x\"{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(scan(nested(64).as_bytes()).is_ok());
        assert_eq!(
            scan(nested(65).as_bytes()).unwrap_err().to_string(),
            format!("nesting too deep at column {}", 65 * 5 + 1)
        );
    }

    #[test]
    fn agrees_with_the_canonicalizer() {
        let v = serde_json::json!({"é": "ü\u{1}", "e": [1, -2, {"y": false, "x": "\"\\"}], "\u{1f600}": null});
        let line = crate::jcs::canonicalize(&v).unwrap();
        assert!(scan(line.as_bytes()).is_ok());
    }
}
