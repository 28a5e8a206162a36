//! The syslog sink against a real rsyslogd (Debian's `rsyslog` + `rsyslog-gnutls`, installed by
//! `.ci/deps/rsyslog.sh`): each test runs its own rsyslogd on free loopback ports with a private
//! configuration in a temp dir, writing what it receives to files this test reads back and
//! parses. Logs are made by the real `gate` binary with `audit.sinks` naming the syslog URL.

use crate::common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Gate;
use gate::audit::sinks::syslog::SyslogSink;
use gate::audit::sinks::{self, DeliverCtx, Pending, Sink, SinkError, SinkSpec};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// A private rsyslogd.

struct Rsyslog {
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
    tls: u16,
    child: Option<Child>,
}

fn rsyslogd() -> PathBuf {
    for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/bin/rsyslogd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "rsyslogd is not installed: tests/integration/sink_syslog.rs needs Debian's rsyslog, rsyslog-gnutls \
         and openssl; run `bash .ci/deps/rsyslog.sh` as root (or apt-get install rsyslog \
         rsyslog-gnutls openssl)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sh(dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run `bash .ci/deps/rsyslog.sh` as root",
                args[0]
            )
        });
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>.key`) made with openssl.
fn make_ca(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let subj = format!("/CN=gate test {name}");
    sh(
        dir,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

impl Rsyslog {
    /// Configures (CA, server certificate, rsyslog.conf) and starts rsyslogd.
    fn start() -> Rsyslog {
        let mut r = Rsyslog::configure();
        r.up();
        r
    }

    /// Writes the configuration on free ports without starting rsyslogd.
    fn configure() -> Rsyslog {
        rsyslogd(); // fails clearly when it is not installed
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "ca");
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        sh(
            d,
            &[
                "openssl",
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        sh(
            d,
            &[
                "openssl",
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        std::fs::create_dir_all(d.join("work")).unwrap();
        let (udp, tcp, tls) = (free_port(), free_port(), free_port());
        let p = |s: &str| d.join(s).display().to_string();
        let mut conf = format!(
            r#"global(workDirectory="{work}" maxMessageSize="256k"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp" maxSessions="100")
template(name="fields" type="string"
         string="%PRI%|%TIMESTAMP:::date-rfc3339%|%HOSTNAME%|%APP-NAME%|%PROCID%|%MSGID%|%STRUCTURED-DATA%|%msg%\n")
template(name="raw" type="string" string="%rawmsg%\n")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#,
            work = p("work"),
            ca = p("ca.pem"),
            cert = p("server.pem"),
            key = p("server.key"),
        );
        for t in ["udp", "tcp", "tls"] {
            conf.push_str(&format!(
                "ruleset(name=\"{t}\") {{\n  action(type=\"omfile\" file=\"{}\" template=\"fields\")\n  \
                 action(type=\"omfile\" file=\"{}\" template=\"raw\")\n}}\n",
                p(&format!("{t}.log")),
                p(&format!("{t}.raw"))
            ));
        }
        std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
        Rsyslog {
            dir,
            udp,
            tcp,
            tls,
            child: None,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn up(&mut self) {
        assert!(self.child.is_none(), "rsyslogd already running");
        let err = std::fs::File::create(self.path("rsyslogd.stderr")).unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(self.path("rsyslog.conf"))
            .arg("-i")
            .arg(self.path("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        // Each listener answers when it is ready; under load the TLS one (its driver loads the
        // certificates first) can come up after the plain TCP one, so wait for both.
        let until = Instant::now() + Duration::from_secs(15);
        while [self.tcp, self.tls]
            .iter()
            .any(|&port| TcpStream::connect(("127.0.0.1", port)).is_err())
        {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited ({st}) at start:\n{}",
                    std::fs::read_to_string(self.path("rsyslogd.stderr")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < until, "rsyslogd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let until = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The messages received on input `t`, once at least `n` have been written out.
    fn received(&self, t: &str, n: usize) -> Vec<Msg> {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let text = std::fs::read_to_string(self.path(&format!("{t}.log"))).unwrap_or_default();
            let raw = std::fs::read_to_string(self.path(&format!("{t}.raw"))).unwrap_or_default();
            let msgs: Vec<Msg> = text
                .lines()
                .zip(raw.lines())
                .map(|(l, r)| Msg::parse(l, r))
                .collect();
            if msgs.len() >= n {
                return msgs;
            }
            assert!(
                Instant::now() < until,
                "rsyslog wrote {} of {n} messages on {t}:\n{text}\n--- rsyslogd stderr\n{}",
                msgs.len(),
                std::fs::read_to_string(self.path("rsyslogd.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, t: &str) -> String {
        match t {
            "udp" => format!("udp://127.0.0.1:{}", self.udp),
            "tcp" => format!("tcp://127.0.0.1:{}", self.tcp),
            "tls" => format!("tcp+tls://127.0.0.1:{}", self.tls),
            _ => unreachable!(),
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.down();
    }
}

/// One message as rsyslog parsed it.
#[derive(Debug)]
struct Msg {
    pri: u32,
    ts: String,
    host: String,
    app: String,
    procid: String,
    msgid: String,
    sd: String,
    msg: String,
    raw: String,
}

impl Msg {
    fn parse(line: &str, raw: &str) -> Msg {
        let f: Vec<&str> = line.splitn(8, '|').collect();
        assert_eq!(f.len(), 8, "unexpected output line {line:?}");
        Msg {
            pri: f[0].parse().unwrap(),
            ts: f[1].to_owned(),
            host: f[2].to_owned(),
            app: f[3].to_owned(),
            procid: f[4].to_owned(),
            msgid: f[5].to_owned(),
            sd: f[6].to_owned(),
            msg: f[7].to_owned(),
            raw: raw.to_owned(),
        }
    }

    /// A PARAM-VALUE of the gate SD element, unescaped.
    fn param(&self, name: &str) -> Option<String> {
        let start = self.sd.find(&format!(" {name}=\""))? + name.len() + 3;
        let mut out = String::new();
        let mut chars = self.sd[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Logs made by the real binary.

fn policy(sink: &str) -> String {
    format!(
        "version: 1\naudit:\n  sinks:\n{sink}\nrules:\n  - name: rm-root\n    match: {{ program: rm }}\n    decision: deny\n    message: refusing to remove\n"
    )
}

fn syslog_sink(url: &str, ca: Option<&Path>) -> String {
    let mut s = format!("    - kind: syslog\n      url: \"{url}\"\n");
    if let Some(ca) = ca {
        s.push_str(&format!("      ca: \"{}\"\n", ca.display()));
    }
    s
}

fn pending(log: &Path) -> Vec<Pending> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let record: Value = serde_json::from_str(l).unwrap();
            Pending {
                seq: record["seq"].as_u64().unwrap(),
                hash: record["hash"].as_str().unwrap().to_owned(),
                line: l.to_owned(),
                record,
            }
        })
        .collect()
}

fn sink_name(url: &str, ca: Option<&Path>) -> String {
    SinkSpec::Syslog {
        url: url.to_owned(),
        ca: ca.map(Path::to_path_buf),
        app_name: None,
    }
    .name()
}

/// Runs a few real commands through gate with the sink configured: allowed, with unicode and a
/// newline in argv, and denied.
fn real_runs(g: &Gate) {
    let bin = common::bin();
    let run = |args: &[&str], want: i32| {
        let out = g
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        assert_eq!(
            out.status.code(),
            Some(want),
            "gate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["--", "true"], 0);
    run(
        &[
            "--",
            "echo",
            "héllo ✓ \"quoted\" ] back\\slash",
            "two\nlines",
        ],
        0,
    );
    run(&["--", "rm", "-rf", "/nonexistent-gate-test"], 77);
}

/// Checks that `msgs` hold every record of `log` exactly once, in order, as the sink formats it.
fn check_all_delivered(msgs: &[Msg], log: &Path, sink: &SyslogSink) {
    let records = pending(log);
    let seqs: Vec<u64> = msgs
        .iter()
        .map(|m| m.param("seq").unwrap().parse().unwrap())
        .collect();
    let want: Vec<u64> = records.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, want, "records missing, duplicated or out of order");
    let local = gate::identity::host_name();
    for (m, p) in msgs.iter().zip(&records) {
        let r = &p.record;
        assert_eq!(m.param("hash").as_deref(), Some(p.hash.as_str()));
        assert_eq!(m.param("log_id").as_deref(), r["log_id"].as_str());
        assert_eq!(m.param("kind").as_deref(), r["kind"].as_str());
        assert_eq!(m.param("request_id").as_deref(), r["request_id"].as_str());
        assert_eq!(
            m.param("decision").as_deref(),
            r["decision"]["decision"].as_str()
        );
        assert_eq!(
            m.param("outcome").as_deref(),
            r["decision"]["outcome"].as_str()
        );
        assert!(m.sd.starts_with("[gate@32473 "), "{}", m.sd);
        // MSG is the record's canonical line, byte for byte, and parses back to the record.
        assert_eq!(m.msg, p.line, "MSG differs from the log line");
        let back: Value = serde_json::from_str(&m.msg).unwrap();
        assert_eq!(&back, r);
        // The exact bytes sent.
        assert_eq!(m.raw.as_bytes(), sink.message(p).as_slice());
        assert_eq!(m.msgid, r["kind"].as_str().unwrap());
        assert_eq!(m.app, "gate");
        assert_eq!(m.procid, "-");
        let host = r["request"]["requester"]["host"]
            .as_str()
            .or(r["genesis"]["host"].as_str())
            .unwrap_or(&local);
        assert_eq!(m.host, host);
        let ts = r["ts"].as_str().unwrap();
        assert_eq!(
            m.ts.replace("+00:00", "Z"),
            ts,
            "TIMESTAMP is not the record's ts"
        );
        let sev = match r["kind"].as_str().unwrap() {
            "decision" if r["decision"]["run"] == Value::Bool(true) => 5,
            "decision" => 4,
            "result" => 5,
            _ => 6,
        };
        assert_eq!(m.pri, 10 * 8 + sev, "PRI of a {} record", r["kind"]);
    }
    assert!(
        records
            .iter()
            .any(|p| p.line.contains("héllo ✓") && p.line.contains("two\\nlines")),
        "the unicode/newline run is not in the log"
    );
}

fn end_to_end(t: &str) {
    let rs = Rsyslog::start();
    let url = rs.url(t);
    let ca = (t == "tls").then(|| rs.path("ca.pem"));
    let g = Gate::new().policy(&policy(&syslog_sink(&url, ca.as_deref())));
    real_runs(&g);
    let log = g.path("audit.jsonl");
    // The run path ships each record; whatever it left pending goes out with `gate log push`.
    let out = g.command().args(["log", "push"]).output().unwrap();
    assert!(
        out.status.success(),
        "gate log push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = pending(&log).len();
    assert_eq!(n, 6, "genesis + 2 × (decision, result) + a denied decision");
    let msgs = rs.received(t, n);
    let sink = SyslogSink::new(sink_name(&url, ca.as_deref()), &url, ca.clone(), None).unwrap();
    check_all_delivered(&msgs, &log, &sink);
    let c = sinks::read_cursor(&log, &sink_name(&url, ca.as_deref()));
    assert_eq!(c.next, n as u64, "the cursor is not at the end: {c:?}");
}

#[test]
fn udp_delivers_every_record_of_real_runs() {
    end_to_end("udp");
}

#[test]
fn tcp_delivers_every_record_of_real_runs() {
    end_to_end("tcp");
}

#[test]
fn tls_delivers_every_record_of_real_runs() {
    end_to_end("tls");
}

// ---------------------------------------------------------------------------------------------
// Framing, escaping, failures.

fn ctx<'a>(log: &'a Path, secs: u64) -> DeliverCtx<'a> {
    DeliverCtx {
        log_path: log,
        log_id: "",
        checkpoint: None,
        deadline: Instant::now() + Duration::from_secs(secs),
    }
}

fn synthetic(seq: u64, line: &str, request_id: &str) -> Pending {
    let record = serde_json::json!({
        "kind": "decision", "seq": seq, "log_id": "00ff", "request_id": request_id,
        "ts": "2026-11-26T13:32:24.571Z",
        "decision": { "decision": "allow", "outcome": "allowed", "run": true },
        "request": { "requester": { "host": "h1" } },
    });
    Pending {
        seq,
        hash: format!("{seq:064x}"),
        line: line.to_owned(),
        record,
    }
}

#[test]
fn tcp_octet_counting_frames_raw_newlines_unicode_and_big_messages() {
    let rs = Rsyslog::start();
    let url = rs.url("tcp");
    let mut sink =
        SyslogSink::new("syslog-test".into(), &url, None, Some("gate-ci".into())).unwrap();
    let big = format!("{{\"big\":\"{}\"}}", "é✓x".repeat(20_000));
    let batch = vec![
        synthetic(0, "first line\nsecond line\r\nthird", "a\"b\\c]d"),
        synthetic(1, "ünïcödé ✓ 🚀 日本語", "plain"),
        synthetic(2, &big, "big"),
        synthetic(3, "after the big one", "last"),
    ];
    let log = rs.path("none.jsonl");
    sink.deliver(&batch, &ctx(&log, 10)).unwrap();
    let msgs = rs.received("tcp", 4);
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    // rsyslog escapes control characters on receipt (LF → #012, CR → #015): one message, whole.
    assert_eq!(msgs[0].msg, "first line#012second line#015#012third");
    assert_eq!(msgs[0].param("request_id").as_deref(), Some("a\"b\\c]d"));
    assert!(
        msgs[0].sd.contains(r#"request_id="a\"b\\c\]d""#),
        "{}",
        msgs[0].sd
    );
    assert_eq!(msgs[1].msg, batch[1].line);
    assert_eq!(msgs[2].msg, big);
    assert_eq!(msgs[3].msg, "after the big one");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.app, "gate-ci");
        assert_eq!(m.host, "h1");
        assert_eq!(m.param("seq"), Some(i.to_string()));
    }
}

#[test]
fn down_is_transient_and_the_backlog_goes_out_in_order_once_up() {
    let mut rs = Rsyslog::configure(); // not started: nothing listens on its ports
    let url = rs.url("tcp");
    let g = Gate::new().policy(&policy(&syslog_sink(&url, None)));
    // Real runs while the collector is down: they run (require_remote is off) and warn.
    for _ in 0..3 {
        let out = g.command().args(["--", "true"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not yet delivered"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = g.path("audit.jsonl");
    let name = sink_name(&url, None);
    let n = pending(&log).len();
    assert_eq!(n, 7);

    // Through the library: a transient error, and the cursor stays put.
    let mut sink = SyslogSink::new(name.clone(), &url, None, None).unwrap();
    let err = sink
        .deliver(&pending(&log)[..1], &ctx(&log, 2))
        .unwrap_err();
    assert!(matches!(err, SinkError::Transient { .. }), "{err:?}");
    let mut boxed: Vec<Box<dyn Sink>> = vec![Box::new(sink)];
    let reports = sinks::push(
        &log,
        &mut boxed,
        Instant::now() + Duration::from_millis(500),
    );
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].permanent, "{reports:?}");
    assert!(reports[0].error.is_some(), "{reports:?}");
    assert_eq!(reports[0].delivered, 0);
    assert_eq!(reports[0].pending, n as u64);
    assert_eq!(sinks::read_cursor(&log, &name).next, 0);

    // The collector comes up: `gate log push` delivers the whole backlog, in order, once.
    rs.up();
    let out = g.command().args(["log", "push"]).output().unwrap();
    assert!(
        out.status.success(),
        "gate log push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sinks::read_cursor(&log, &name).next, n as u64);
    let msgs = rs.received("tcp", n);
    std::thread::sleep(Duration::from_millis(300)); // nothing more arrives
    let msgs_after = rs.received("tcp", n);
    assert_eq!(msgs.len(), msgs_after.len(), "duplicates arrived");
    let sink = SyslogSink::new(name, &url, None, None).unwrap();
    check_all_delivered_plain(&msgs_after, &log, &sink);
}

/// As `check_all_delivered`, for logs without the unicode run.
fn check_all_delivered_plain(msgs: &[Msg], log: &Path, sink: &SyslogSink) {
    let records = pending(log);
    assert_eq!(msgs.len(), records.len());
    for (m, p) in msgs.iter().zip(&records) {
        assert_eq!(m.param("seq"), Some(p.seq.to_string()));
        assert_eq!(m.param("hash").as_deref(), Some(p.hash.as_str()));
        assert_eq!(m.msg, p.line);
        assert_eq!(m.raw.as_bytes(), sink.message(p).as_slice());
    }
}

/// A kept connection whose collector restarted is noticed and replaced: nothing is lost.
fn survives_restart(t: &str) {
    let mut rs = Rsyslog::start();
    let url = rs.url(t);
    let ca = (t == "tls").then(|| rs.path("ca.pem"));
    let mut sink = SyslogSink::new("syslog-restart".into(), &url, ca, None).unwrap();
    let log = rs.path("none.jsonl");
    sink.deliver(&[synthetic(0, "before", "r0")], &ctx(&log, 10))
        .unwrap();
    rs.received(t, 1);
    rs.down();
    rs.up();
    sink.deliver(&[synthetic(1, "after", "r1")], &ctx(&log, 10))
        .unwrap();
    let msgs = rs.received(t, 2);
    assert_eq!(
        msgs.iter().map(|m| m.msg.as_str()).collect::<Vec<_>>(),
        ["before", "after"]
    );
    rs.down();
    let err = sink
        .deliver(&[synthetic(2, "while down", "r2")], &ctx(&log, 1))
        .unwrap_err();
    assert!(matches!(err, SinkError::Transient { .. }), "{err:?}");
}

#[test]
fn tcp_reconnects_after_a_collector_restart() {
    survives_restart("tcp");
}

#[test]
fn tls_reconnects_after_a_collector_restart() {
    survives_restart("tls");
}

#[test]
fn tls_with_a_ca_that_did_not_sign_the_collector_is_refused_permanently() {
    let rs = Rsyslog::start();
    let url = rs.url("tls");
    make_ca(rs.dir.path(), "other");
    let mut sink =
        SyslogSink::new("syslog-x".into(), &url, Some(rs.path("other.pem")), None).unwrap();
    let log = rs.path("none.jsonl");
    let err = sink
        .deliver(&[synthetic(0, "x", "r")], &ctx(&log, 5))
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Permanent(m) if m.contains("certificate")),
        "{err:?}"
    );
    // Without `ca:` the built-in web PKI roots do not know the test CA either.
    let mut sink = SyslogSink::new("syslog-y".into(), &url, None, None).unwrap();
    let err = sink
        .deliver(&[synthetic(0, "x", "r")], &ctx(&log, 5))
        .unwrap_err();
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
    let mut raw = String::new();
    let _ = std::fs::File::open(rs.path("tls.log")).map(|mut f| f.read_to_string(&mut raw));
    assert!(raw.is_empty(), "a message got through: {raw}");
}

#[test]
fn bad_configuration_is_a_constructor_error_naming_it() {
    let new = |url: &str, ca: Option<&str>, app: Option<&str>| {
        SyslogSink::new(
            "s".into(),
            url,
            ca.map(PathBuf::from),
            app.map(str::to_owned),
        )
        .err()
        .map(|e| e.to_string())
    };
    for (url, needle) in [
        ("localhost:514", "no scheme"),
        ("http://localhost:514", "unknown transport"),
        ("tcp://localhost:0", "bad port"),
        ("tcp://localhost:99999", "bad port"),
        ("tcp://:514", "no host"),
        ("tcp://::1:514", "brackets"),
        ("tcp://localhost:514/x", "no path"),
        ("tcp://u@localhost:514", "user"),
        ("udp://localhost:514?facility=kern", "facility"),
        ("udp://localhost:514?x=1", "unknown parameter"),
    ] {
        let e = new(url, None, None).unwrap_or_else(|| panic!("{url} accepted"));
        assert!(e.contains(needle) && e.contains(url), "{url}: {e}");
    }
    for ok in [
        "udp://127.0.0.1:514",
        "tcp://[::1]:601",
        "tcp+tls://logs.example.com",
        "udp://localhost?facility=auth",
        "tcp://localhost:514?facility=local3",
    ] {
        assert!(new(ok, None, None).is_none(), "{ok} refused");
    }
    let e = new("tcp://localhost:514", Some("/x.pem"), None).unwrap();
    assert!(e.contains("`ca`"), "{e}");
    let e = new("tcp+tls://localhost", Some("/nonexistent/ca.pem"), None).unwrap();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    let e = new("tcp://localhost", None, Some("has space")).unwrap();
    assert!(e.contains("app_name"), "{e}");

    // And through the run path: a broken sink entry is a configuration error (exit 78).
    let ran = Gate::new()
        .policy(&policy(&syslog_sink("tcp://localhost:0", None)))
        .args(&["--", "true"])
        .run();
    ran.status(78).stderr_contains("bad port");
}

#[test]
fn facility_and_severities() {
    let rs = Rsyslog::start();
    let url = format!("{}?facility=auth", rs.url("udp"));
    let mut sink = SyslogSink::new("s".into(), &url, None, None).unwrap();
    let mut denied = synthetic(1, "{}", "r");
    denied.record["decision"] =
        serde_json::json!({"decision": "deny", "outcome": "denied", "run": false});
    let mut repair = synthetic(2, "{}", "r");
    repair.record = serde_json::json!({"kind": "repair", "ts": "not a time"});
    let log = rs.path("none.jsonl");
    sink.deliver(&[synthetic(0, "{}", "r"), denied, repair], &ctx(&log, 5))
        .unwrap();
    let msgs = rs.received("udp", 3);
    assert_eq!(
        msgs.iter().map(|m| m.pri).collect::<Vec<_>>(),
        [4 * 8 + 5, 4 * 8 + 4, 4 * 8 + 4]
    );
    assert_eq!(msgs[2].param("outcome"), None, "absent params are left out");
    // An invalid ts is sent as the NILVALUE (rsyslog then stamps its reception time).
    assert!(msgs[2].raw.starts_with("<36>1 - "), "{}", msgs[2].raw);
}
