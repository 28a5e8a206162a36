//! An RFC 8785 (JCS) written from docs/audit-log-format.md alone, sharing no code with gate, so
//! tests can check gate's hashes independently: object members sorted by UTF-16 code units, no
//! white space, minimal string escapes; records hold no floats.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn jcs(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", jcs_str(k), jcs(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(jcs).collect::<Vec<_>>().join(",")),
        Value::String(s) => jcs_str(s),
        Value::Number(n) => {
            assert!(n.is_i64() || n.is_u64(), "records hold no floats: {n}");
            n.to_string()
        }
        other => other.to_string(),
    }
}

pub fn jcs_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A record's hash: SHA-256 (hex) of the JCS form of the record without `hash`.
pub fn record_hash(record: &Value) -> String {
    let mut r = record.clone();
    if let Some(m) = r.as_object_mut() {
        m.remove("hash");
    }
    hex::encode(Sha256::digest(jcs(&r).as_bytes()))
}
