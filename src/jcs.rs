//! RFC 8785 (JCS) canonical JSON for the values gate writes: objects with members sorted by
//! UTF-16 code units, no insignificant white space, ECMAScript string escaping. Records never
//! hold floating-point numbers (DESIGN §8), so a float is refused rather than formatted.

use std::fmt::Write as _;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("floating-point number `{0}` cannot be canonicalized (records hold integers only)")]
pub struct FloatError(pub String);

/// The canonical form of `v`.
pub fn canonicalize(v: &Value) -> Result<String, FloatError> {
    let mut out = String::with_capacity(256);
    write(v, &mut out)?;
    Ok(out)
}

fn write(v: &Value, out: &mut String) -> Result<(), FloatError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(FloatError(n.to_string()));
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                write(val, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Writes `s` as a JSON string. Runs of bytes that need no escape (all of a typical value)
/// are copied in one go; every byte that needs one is ASCII, so the runs end on char
/// boundaries.
fn string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if short.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(short);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_by_utf16_code_units() {
        // RFC 8785 §3.2.3's sorting example (without its float members).
        let v = json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{0080}": "Control",
            "\u{00f6}": "Latin Small Letter O With Diaeresis"
        });
        let keys: Vec<String> = {
            let c = canonicalize(&v).unwrap();
            let back: serde_json::Map<String, Value> = serde_json::from_str(&c).unwrap();
            back.keys().cloned().collect()
        };
        assert_eq!(
            keys,
            [
                "\r",
                "1",
                "\u{0080}",
                "\u{00f6}",
                "\u{20ac}",
                "\u{1f600}",
                "\u{fb33}"
            ]
        );
    }

    #[test]
    fn escapes_like_ecmascript() {
        let v = json!({"s": "\u{0}\u{1f}\u{7f}\"\\/\n\u{e9}"});
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"s\":\"\\u0000\\u001f\u{7f}\\\"\\\\/\\n\u{e9}\"}"
        );
    }

    #[test]
    fn escapes_between_multibyte_characters() {
        // Runs copied whole must still end on char boundaries around each escape.
        let v = json!("\u{e9}\n\u{20ac}\u{1}x\u{1f600}\"\u{7f}");
        assert_eq!(
            canonicalize(&v).unwrap(),
            "\"\u{e9}\\n\u{20ac}\\u0001x\u{1f600}\\\"\u{7f}\""
        );
        // Each character up to U+00FF on its own, against serde_json's escaping, which is
        // JCS's: the short forms, `\u00xx` for other control characters, nothing else.
        for c in (0u32..0x100).filter_map(char::from_u32) {
            let s = c.to_string();
            assert_eq!(
                canonicalize(&json!(s)).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn nested_without_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": -5});
        assert_eq!(
            canonicalize(&v).unwrap(),
            r#"{"a":-5,"b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn refuses_floats() {
        assert!(canonicalize(&json!({"x": 1.5})).is_err());
    }
}
