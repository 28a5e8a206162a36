//! docs/audit-log-format.md is a contract: gate verifies its test vectors, an independent
//! implementation of the written rules (this file, sharing no code with gate) reproduces every
//! hash and the checkpoint signature, and a log written by that independent writer verifies.
//! The same holds for the server's signed decision statement and its verifier key.

use crate::common;

use common::jcs::{jcs, record_hash};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, 0x01]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The fenced block whose info string is `<lang> <name>`.
fn block(doc: &str, name: &str) -> String {
    let start = doc
        .lines()
        .position(|l| l.starts_with("```") && l.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("docs/audit-log-format.md has no block `{name}`"));
    let lines: Vec<&str> = doc
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    format!("{}\n", lines.join("\n"))
}

fn doc() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/audit-log-format.md"
    ))
    .unwrap()
}

#[test]
fn independent_implementation_reproduces_the_vectors() {
    let doc = doc();
    let log = block(&doc, "audit.jsonl");
    let vkey = block(&doc, "vkey").trim().to_owned();
    let checkpoint = block(&doc, "audit.jsonl.checkpoint");
    let mut prev = "0".repeat(64);
    let mut count = 0;
    for (i, line) in log.lines().enumerate() {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert_eq!(jcs(&rec), line, "line {} is canonical", i + 1);
        assert_eq!(rec["seq"], json!(i));
        assert_eq!(
            rec["prev"],
            json!(prev),
            "line {} links to the previous hash",
            i + 1
        );
        let h = record_hash(&rec);
        assert_eq!(rec["hash"], json!(h), "line {} hash reproduces", i + 1);
        prev = h;
        count += 1;
    }
    assert!(count >= 5, "the vectors hold a few records of each kind");

    // The verifier key and the checkpoint signature, from the written rules alone.
    let (name, rest) = vkey.split_once('+').unwrap();
    let (id_hex, key_b64) = rest.split_once('+').unwrap();
    let raw = B64.decode(key_b64).unwrap();
    assert_eq!(raw[0], 0x01);
    assert_eq!(hex::encode(key_id(name, &raw[1..])), id_hex);
    let public = VerifyingKey::from_bytes(raw[1..].try_into().unwrap()).unwrap();
    let (text, sigs) = checkpoint.split_once("\n\n").unwrap();
    let text = format!("{text}\n");
    let lines: Vec<&str> = text.lines().collect();
    let genesis: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        lines[0],
        format!("gate/{}", genesis["log_id"].as_str().unwrap())
    );
    assert_eq!(lines[1], count.to_string());
    assert_eq!(
        hex::encode(B64.decode(lines[2]).unwrap()),
        prev,
        "checkpoint head is the last hash"
    );
    let sig_line = sigs.lines().next().unwrap();
    let body = sig_line.strip_prefix(&format!("\u{2014} {name} ")).unwrap();
    let sig = B64.decode(body).unwrap();
    assert_eq!(hex::encode(&sig[..4]), id_hex);
    let sig = ed25519_dalek::Signature::from_bytes(sig[4..].try_into().unwrap());
    public
        .verify(text.as_bytes(), &sig)
        .expect("checkpoint signature verifies");
    assert_eq!(genesis["genesis"]["key"], json!(vkey));
}

#[test]
fn gate_verifies_the_vectors_and_catches_an_edit() {
    let doc = doc();
    let g = common::Gate::new();
    let log = g.write("v/audit.jsonl", &block(&doc, "audit.jsonl"));
    g.write(
        "v/audit.jsonl.checkpoint",
        &block(&doc, "audit.jsonl.checkpoint"),
    );
    let vkey = block(&doc, "vkey").trim().to_owned();
    let path = log.to_str().unwrap();
    let g = g.args(&["log", "verify", path, "--key", &vkey]);
    g.run().status(0).stdout_has("INTACT: 6 records");
    // One changed byte in a record is caught at that record.
    let text = std::fs::read_to_string(&log)
        .unwrap()
        .replacen("\"web\"", "\"db\"", 1);
    std::fs::write(&log, text).unwrap();
    g.run()
        .status(1)
        .stdout_has("seq 4")
        .stdout_has("hash_mismatch");
}

#[test]
fn a_log_from_an_independent_writer_verifies() {
    let g = common::Gate::new();
    let signing = SigningKey::from_bytes(&[42u8; 32]);
    let public = signing.verifying_key();
    let name = "gate/indie";
    let mut kb = vec![0x01];
    kb.extend_from_slice(public.as_bytes());
    let vkey = format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, public.as_bytes())),
        B64.encode(&kb)
    );
    let log_id = "00112233445566778899aabbccddeeff";
    let mut lines = String::new();
    let mut prev = "0".repeat(64);
    let bodies = vec![
        json!({"kind": "genesis", "genesis": {"host": "indie", "created_by": "test writer", "key": vkey}}),
        json!({"kind": "decision", "request_id": "r1",
               "request": {"id": "r1", "requester": {"user": "carol", "uid": 1000, "host": "indie"},
                           "command": {"argv": ["deploy", "ünïcode\t\"q\""], "cwd": "/"}, "context": {}, "digest": "x"},
               "decision": {"decision": "approve", "outcome": "approved", "run": true, "rules": [], "by_default": false,
                            "required": {"clauses": [{"rule": "r", "approvers": ["sre"], "eligible": ["alice", "bob"], "min_approvals": 2}],
                                         "min_approvals": 2, "allow_requester": false, "timeout": "15m", "backend": null},
                            "approvals": [{"principal": "alice", "at": "2026-01-01T00:00:00.000Z", "via": "test"},
                                          {"principal": "bob", "at": "2026-01-01T00:00:01.000Z", "via": "test"}]}}),
        json!({"kind": "result", "request_id": "r1", "result": {"exit_code": 0, "duration_ms": 5}}),
    ];
    for (seq, mut body) in bodies.into_iter().enumerate() {
        let m = body.as_object_mut().unwrap();
        m.insert("v".into(), json!(1));
        m.insert("log_id".into(), json!(log_id));
        m.insert("seq".into(), json!(seq));
        m.insert("ts".into(), json!("2026-01-01T00:00:02.000Z"));
        m.insert("prev".into(), json!(prev));
        let h = record_hash(&body);
        body.as_object_mut()
            .unwrap()
            .insert("hash".into(), json!(h));
        lines.push_str(&jcs(&body));
        lines.push('\n');
        prev = h;
    }
    let text = format!(
        "gate/{log_id}\n3\n{}\n",
        B64.encode(hex::decode(&prev).unwrap())
    );
    let mut sig = key_id(name, public.as_bytes()).to_vec();
    sig.extend_from_slice(&signing.sign(text.as_bytes()).to_bytes());
    let note = format!("{text}\n\u{2014} {name} {}\n", B64.encode(sig));
    let log = g.write("indie.jsonl", &lines);
    g.write("indie.jsonl.checkpoint", &note);
    let g = g.args(&["log", "verify", log.to_str().unwrap(), "--key", &vkey]);
    g.run()
        .status(0)
        .stdout_has("INTACT: 3 records")
        .stdout_has("1 approved runs checked");
}

#[test]
fn independent_implementation_checks_the_decision_statement_vector() {
    let doc = doc();
    let vkey = block(&doc, "server-vkey").trim().to_owned();
    let note = block(&doc, "statement");
    // The verifier key, from the written rules alone.
    let (name, rest) = vkey.split_once('+').unwrap();
    let (id_hex, key_b64) = rest.split_once('+').unwrap();
    let raw = B64.decode(key_b64).unwrap();
    assert_eq!(raw[0], 0x01);
    assert_eq!(hex::encode(key_id(name, &raw[1..])), id_hex);
    let public = VerifyingKey::from_bytes(raw[1..].try_into().unwrap()).unwrap();
    // The note: text, blank line, one signature line by that key.
    let (text, sigs) = note.split_once("\n\n").unwrap();
    let text = format!("{text}\n");
    let sig_line = sigs.lines().next().unwrap();
    let body = sig_line.strip_prefix(&format!("\u{2014} {name} ")).unwrap();
    let sig = B64.decode(body).unwrap();
    assert_eq!(hex::encode(&sig[..4]), id_hex);
    let sig = ed25519_dalek::Signature::from_bytes(sig[4..].try_into().unwrap());
    public
        .verify(text.as_bytes(), &sig)
        .expect("the statement's signature verifies");
    let mut altered = text.replace("approval bob", "approval eve");
    assert!(public.verify(altered.as_bytes(), &sig).is_err());
    altered = text.replace("status approved", "status denied");
    assert!(public.verify(altered.as_bytes(), &sig).is_err());
    // The fields, in their order.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "gate-decision/v1");
    let field = |i: usize, name: &str| -> String {
        lines[i]
            .strip_prefix(&format!("{name} "))
            .unwrap_or_else(|| panic!("line {i} is not `{name}`: {}", lines[i]))
            .to_owned()
    };
    let digest = field(2, "digest");
    let canonical = jcs(
        &json!({"argv": ["systemctl", "restart", "web"], "cwd": "/srv", "env": {}, "payload": []}),
    );
    assert_eq!(digest, hex::encode(Sha256::digest(canonical.as_bytes())));
    assert_eq!(field(3, "requester"), "carol");
    assert_eq!(field(4, "status"), "approved");
    let approvers: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("approval "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(approvers, ["alice", "bob"]);
    assert!(lines.last().unwrap().starts_with("time "));
}

#[test]
fn gate_reads_the_decision_statement_vector() {
    use gate::audit::note::NoteVerifier;
    use gate::audit::statement::{Statement, Status};
    let doc = doc();
    let vkey = NoteVerifier::parse(block(&doc, "server-vkey").trim()).unwrap();
    let note = block(&doc, "statement");
    let (s, _) = Statement::open(&note, std::slice::from_ref(&vkey)).unwrap();
    assert_eq!(s.status, Status::Approved);
    assert_eq!(s.requester, "carol");
    s.approves(&s.request_id, &s.digest).unwrap();
    assert!(Statement::open(&note.replace("bob", "eve"), &[vkey]).is_err());
}
