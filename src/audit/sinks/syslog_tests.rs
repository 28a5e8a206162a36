//! Unit tests for the syslog formatter: the RFC 5424 header fields, the structured data and its
//! escaping, MSG byte for byte, truncation for UDP, and the URL and option checks.

use serde_json::{Value, json};

use super::*;

fn sink(url: &str) -> SyslogSink {
    match SyslogSink::new("siem".into(), url, None, None) {
        Ok(s) => s,
        Err(e) => panic!("{url}: {e}"),
    }
}

/// A pending record whose `line` is the record's JSON, as the log writes it.
fn pending(seq: u64, record: Value) -> Pending {
    Pending {
        seq,
        hash: format!("{seq:064x}"),
        line: record.to_string(),
        record,
    }
}

fn decision(run: bool, outcome: &str) -> Value {
    json!({
        "v": 1, "log_id": "0123abcd", "seq": 7, "ts": "2026-11-28T08:00:00.123Z",
        "kind": "decision", "request_id": "01a2-req",
        "request": { "requester": { "host": "build-1" } },
        "decision": { "decision": "approve", "outcome": outcome, "run": run },
    })
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("a message is UTF-8")
}

#[test]
fn a_decision_is_one_rfc5424_message_with_the_record_as_msg() {
    let p = pending(7, decision(true, "approved"));
    let want = format!(
        "<85>1 2026-11-28T08:00:00.123Z build-1 gate - decision \
         [gate@32473 log_id=\"0123abcd\" seq=\"7\" hash=\"{}\" kind=\"decision\" \
         request_id=\"01a2-req\" decision=\"approve\" outcome=\"approved\"] {}",
        p.hash, p.line
    );
    assert_eq!(text(sink("udp://127.0.0.1").message(&p)), want);
}

#[test]
fn msg_is_the_log_line_byte_for_byte_without_a_bom() {
    let mut r = decision(true, "approved");
    r["reason"] = json!("naïve ] \" \\ 🚀");
    let p = pending(1, r);
    let m = sink("tcp://127.0.0.1").message(&p);
    assert!(m.ends_with(format!(" {}", p.line).as_bytes()));
    assert!(!m.windows(3).any(|w| w == [0xEF, 0xBB, 0xBF]), "a BOM");
}

#[test]
fn severity_follows_the_kind_and_facility_the_url() {
    let event = |t: &str| json!({ "kind": "event", "event": { "type": t } });
    let cases: &[(Value, u8)] = &[
        (decision(true, "allowed"), SEV_NOTICE),
        (decision(false, "denied"), SEV_WARNING),
        (json!({ "kind": "decision", "decision": {} }), SEV_WARNING),
        (json!({ "kind": "repair" }), SEV_WARNING),
        (json!({ "kind": "result" }), SEV_NOTICE),
        (event("denial"), SEV_WARNING),
        (event("approval"), SEV_INFO),
        (json!({ "kind": "genesis" }), SEV_INFO),
        (json!({}), SEV_INFO),
    ];
    for (facility_url, facility) in [
        ("udp://h", FACILITY_AUTHPRIV),
        ("udp://h?facility=auth", 4),
        ("udp://h?facility=local0", 16),
        ("udp://h?facility=local7", 23),
    ] {
        let s = sink(facility_url);
        for (record, sev) in cases {
            let m = text(s.message(&pending(0, record.clone())));
            let pri = format!("<{}>1 ", facility * 8 + sev);
            assert!(m.starts_with(&pri), "{facility_url} {record}: {m}");
        }
    }
}

#[test]
fn header_fields_fall_back_and_are_cleaned() {
    let s = sink("udp://h");
    let head = |r: Value| {
        let m = text(s.message(&pending(0, r)));
        let fields: Vec<String> = m.splitn(7, ' ').take(6).map(str::to_owned).collect();
        fields
    };
    // The genesis host when no requester; NILVALUE timestamp when `ts` is no RFC 5424 time.
    let h = head(json!({ "kind": "genesis", "ts": "yesterday", "genesis": { "host": "h2" } }));
    assert_eq!(h, ["<86>1", "-", "h2", "gate", "-", "genesis"]);
    // This host when the record names none, or names one that cleans to nothing.
    let here = header_field(&crate::identity::host_name(), 255);
    let h = head(json!({ "kind": "result", "request": { "requester": { "host": "" } } }));
    assert_eq!(h[2], here);
    // Spaces and non-ASCII become `_`; lengths are capped (HOSTNAME 255, MSGID 32).
    let long = "k".repeat(40);
    let h = head(json!({ "kind": long, "request": { "requester": { "host": "my host\u{e9}" } } }));
    assert_eq!(h[2], "my_host_");
    assert_eq!(h[5], "k".repeat(32));
    let h = head(json!({ "request": { "requester": { "host": "x".repeat(300) } } }));
    assert_eq!(h[2].len(), 255);
    assert_eq!(h[5], "-", "no kind: NILVALUE MSGID");
}

#[test]
fn timestamps_are_passed_only_when_rfc5424_allows_them() {
    let cases = [
        ("2026-11-28T08:00:00Z", true),
        ("2026-11-28T08:00:00.1Z", true),
        ("2026-11-28T08:00:00.123456Z", true),
        ("2026-11-28T08:00:00.1234567Z", false),
        ("2026-11-28T08:00:00.Z", false),
        ("2026-11-28T08:00:00+01:00", true),
        ("2026-11-28T08:00:00-0100", false),
        ("2026-11-28 08:00:00Z", false),
        ("2026-11-28T08:00:00", false),
        ("2026-11-28T08:00:00ZZ", false),
        ("", false),
    ];
    for (t, want) in cases {
        assert_eq!(valid_timestamp(t), want, "{t:?}");
    }
}

#[test]
fn structured_data_values_escape_quote_backslash_and_bracket() {
    assert_eq!(sd_escape(r#"a"b\c]d[e"#), r#"a\"b\\c\]d[e"#);
    let mut r = decision(true, "allowed");
    r["request_id"] = json!(r#"x"] [evil@1 a="b"#);
    let m = text(sink("udp://h").message(&pending(0, r)));
    assert!(
        m.contains(r#" request_id="x\"\] [evil@1 a=\"b" "#),
        "the value stays inside its parameter: {m}"
    );
}

#[test]
fn a_message_too_long_for_udp_is_cut_at_a_character_and_says_so() {
    let s = sink("udp://h");
    let mut r = decision(true, "allowed");
    r["reason"] = json!("é".repeat(200));
    let p = pending(3, r);
    let full = text(s.message(&p));
    let max = full.len() - 101;
    let cut = text(s.message_limited(&p, max));
    assert!(cut.len() <= max, "{} > {max}", cut.len());
    assert!(
        cut.contains(&format!(" truncated=\"{}\"]", p.line.len())),
        "{cut}"
    );
    let msg = cut.split_once("\"] ").expect("sd then MSG").1;
    assert!(p.line.starts_with(msg) && msg.len() < p.line.len());
    // Short enough: untouched, no `truncated`.
    assert_eq!(text(s.message_limited(&p, full.len() + 100)), full);
}

#[test]
fn urls_give_transport_host_port_and_facility() {
    let ok: &[(&str, Transport, &str, u16, u8)] = &[
        ("udp://logs", Transport::Udp, "logs", 514, 10),
        ("tcp://logs:1514", Transport::Tcp, "logs", 1514, 10),
        (
            "TCP+TLS://logs.example.com",
            Transport::Tls,
            "logs.example.com",
            6514,
            10,
        ),
        ("tcp://logs/", Transport::Tcp, "logs", 514, 10),
        ("udp://[::1]:5514", Transport::Udp, "::1", 5514, 10),
        ("udp://[::1]", Transport::Udp, "::1", 514, 10),
        (
            "tcp://10.0.0.1:514?facility=local3",
            Transport::Tcp,
            "10.0.0.1",
            514,
            19,
        ),
        (
            "tcp://h?facility=auth&facility=authpriv",
            Transport::Tcp,
            "h",
            514,
            10,
        ),
    ];
    for &(url, transport, host, port, facility) in ok {
        let Ok(got) = parse_url(url) else {
            panic!("{url} should parse")
        };
        assert_eq!(got, (transport, host.to_owned(), port, facility), "{url}");
    }
    let bad: &[(&str, &str)] = &[
        ("logs:514", "no scheme"),
        ("http://logs", "unknown transport `http`"),
        ("tcp://logs/path", "no path"),
        ("tcp://user@logs", "no user part"),
        ("udp://::1:514", "in brackets"),
        ("udp://[::1", "unclosed"),
        ("udp://[::1]x", "junk after"),
        ("udp://:514", "no host"),
        ("udp://h:0", "bad port `0`"),
        ("udp://h:65536", "bad port `65536`"),
        ("udp://h?facility=local8", "unknown facility `local8`"),
        ("udp://h?facility=kern", "unknown facility `kern`"),
        ("udp://h?level=3", "unknown parameter `level=3`"),
    ];
    for &(url, why) in bad {
        match parse_url(url) {
            Ok(got) => panic!("{url} parsed as {got:?}"),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(why) && e.contains(url), "{url}: {e}");
            }
        }
    }
}

#[test]
fn options_that_do_not_fit_the_transport_or_syslog_are_refused() {
    let refused =
        |url: &str, ca: Option<PathBuf>, app: Option<&str>, why: &str| match SyslogSink::new(
            "siem".into(),
            url,
            ca,
            app.map(str::to_owned),
        ) {
            Ok(_) => panic!("{url} {app:?} was accepted"),
            Err(e) => assert!(e.to_string().contains(why), "{url}: {e}"),
        };
    refused(
        "udp://h",
        Some("/dev/null".into()),
        None,
        "`ca` applies to `tcp+tls://`",
    );
    refused("tcp://h", None, Some(""), "APP-NAME");
    refused("tcp://h", None, Some("my app"), "APP-NAME");
    let long = "a".repeat(49);
    refused("tcp://h", None, Some(&long), "APP-NAME");
    refused("tcp+tls://h_x!", None, None, "not a valid TLS server name");
    refused(
        "tcp+tls://h",
        Some("/nonexistent/ca.pem".into()),
        None,
        "/nonexistent/ca.pem",
    );
    let Ok(s) = SyslogSink::new("siem".into(), "udp://h", None, Some("a".repeat(48))) else {
        panic!("a 48-character APP-NAME is allowed");
    };
    let m = text(s.message(&pending(0, json!({}))));
    assert!(m.contains(&format!(" {} - ", "a".repeat(48))), "{m}");
}
