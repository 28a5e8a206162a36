//! `gate serve --tls-cert/--tls-key` and the clients that check it (issue 14 §3).
//!
//! Each test makes a throw-away certificate authority with the `openssl` CLI (installed by
//! `.ci/deps/tls.sh`) and serves a real `gate serve` over HTTPS on 127.0.0.1. A client that
//! names the CA with `ca:` (or `--ca`) gets a full request → approve → run; one that trusts only
//! the built-in roots, or meets a certificate for another host name or an expired one, stops
//! with 75 naming the certificate problem, and its request never reaches the server. SIGHUP
//! swaps the served certificate for new connections (checked by serial number, as `openssl
//! s_client` sees it) and a broken file on SIGHUP keeps the old one serving.

use crate::common;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{HANG, Server, Watched, poll, spawn};
use common::{Checked, Ran};
use nix::sys::signal::Signal;

const HOW: &str = "run `bash .ci/deps/tls.sh` as root (or apt-get install openssl curl)";

/// Runs a tool to success in `dir`; a tool that is not there fails saying how to get it.
#[track_caller]
fn sh(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW}", args[0]));
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throw-away certificate authority in a directory of its own, signing with `openssl ca`
/// (which, unlike `openssl x509 -req`, can back-date a certificate to make it expired).
struct Ca {
    dir: PathBuf,
}

impl Ca {
    /// A CA named after `dir` (two CAs of one test must not share a name: a client looks an
    /// issuer up by name).
    fn new(dir: &Path) -> Ca {
        let subj = format!(
            "/CN=gate test CA {}",
            dir.file_name().unwrap().to_string_lossy()
        );
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        sh(
            &dir,
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
                "ca.key",
                "-out",
                "ca.pem",
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
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ ca ]\ndefault_ca = test\n[ test ]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [ any ]\ncommonName = supplied\n",
        )
        .unwrap();
        Ca { dir }
    }

    fn pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate and key named `name`, for the host names in `dns` (and
    /// 127.0.0.1), valid from now for two days — or, `expired`, for one day in 2020.
    fn leaf(&self, name: &str, dns: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let d = &self.dir;
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut san: Vec<String> = dns.iter().map(|h| format!("DNS:{h}")).collect();
        if dns.contains(&"localhost") {
            san.push("IP:127.0.0.1".into());
        }
        std::fs::write(
            d.join(&ext),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
        .unwrap();
        let subj = format!("/CN={}", dns[0]);
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
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
        );
        let mut sign = vec![
            "openssl", "ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.pem",
            "-keyfile", "ca.key", "-in", &csr, "-out", &pem, "-extfile", &ext,
        ];
        if expired {
            sign.extend([
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
            ]);
        } else {
            sign.extend(["-days", "2"]);
        }
        sh(d, &sign);
        (d.join(pem), d.join(key))
    }
}

/// The serial number (hex, as openssl prints it) of the certificate in `pem`.
fn serial_of(pem: &Path) -> String {
    let out = sh(
        Path::new("/"),
        &[
            "openssl",
            "x509",
            "-noout",
            "-serial",
            "-in",
            pem.to_str().unwrap(),
        ],
    );
    out.trim().trim_start_matches("serial=").to_owned()
}

/// The serial number of the certificate a new TLS connection to `addr` is served.
fn served_serial(addr: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let hello = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}; {HOW}"));
    let got = dir.path().join("served.pem");
    std::fs::write(&got, &hello.stdout).unwrap();
    serial_of(&got)
}

const SERVER_POLICY: &str = r#"version: 1
groups:
  ops: [bob]
rules:
  - name: touch-needs-ops
    match: { program: touch }
    decision: approve
    approval: { approvers: [ops], timeout: 60s }
"#;

/// `gate serve` over TLS with `cert` and `key`, its files in `home`; the server's URL names
/// it `localhost`, as its certificate does.
fn serve_tls(home: &Path, cert: &Path, key: &Path, extra: &[&str]) -> Server {
    let policy = home.join("server-policy.yaml");
    std::fs::write(&policy, SERVER_POLICY).unwrap();
    let (db, audit) = (home.join("server.db"), home.join("server-audit.jsonl"));
    let mut c = common::gate_in(home);
    c.arg("--policy")
        .arg(&policy)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--audit-log")
        .arg(&audit)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(extra);
    let serving = common::spawn_server(c);
    let mut srv = Server::adopt(serving, home, db, audit);
    let said = format!("listening on https://{}", srv.addr);
    poll("the server to say it listens on https", || {
        srv.stderr().contains(&said).then_some(())
    });
    srv.url = format!("https://localhost:{}", port(&srv.addr));
    srv
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// A client's home whose policy routes `touch` to the server at `url`, pinning `key`, with
/// `ca` as the backend's `ca:` when given.
fn client_home(url: &str, key: &str, ca: Option<&Path>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let ca = ca.map_or(String::new(), |p| format!(", ca: \"{}\"", p.display()));
    std::fs::write(
        d.path().join("client-policy.yaml"),
        format!(
            r#"version: 1
backends:
  team: {{ kind: server, url: "{url}", key: "{key}"{ca} }}
rules:
  - name: touch-needs-ops
    match: {{ program: touch }}
    decision: approve
    approval: {{ backend: team, timeout: 60s }}
"#
        ),
    )
    .unwrap();
    d
}

/// `gate -- touch <home>/ran` as alice, through the client policy.
fn touch(home: &Path, token: &str, extra: &[&str]) -> Command {
    let mut c = common::gate_in(home);
    c.env("GATE_TOKEN", token)
        .arg("--policy")
        .arg(home.join("client-policy.yaml"))
        .args(extra)
        .arg("--")
        .arg("touch")
        .arg(home.join("ran"));
    c
}

/// The request id a waiting client announced.
fn waiting_id(client: &mut Watched) -> String {
    client.stderr_until("waiting as request ", HANG);
    let text = client.stderr_text();
    let rest = text.split("waiting as request ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_owned()
}

/// `gate ARGS --server URL --ca CA` as the holder of `token`.
fn cli(home: &Path, token: &str, url: &str, ca: &Path, args: &[&str]) -> Checked {
    let mut c = common::gate_in(home);
    c.env("GATE_TOKEN", token)
        .args(args)
        .args(["--server", url, "--ca"])
        .arg(ca);
    Checked::new(Ran::of(c))
}

/// What is pending on the server, as bob sees it through the CA-checked CLI.
fn pending(srv: &Server, bob: &str, ca: &Path) -> Vec<serde_json::Value> {
    let r = cli(&srv.home, bob, &srv.url, ca, &["requests", "--json"]);
    r.status(0).any_stderr();
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_client_with_the_servers_ca_gets_a_request_approved_and_run_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    let srv = serve_tls(dir.path(), &cert, &key, &[]);
    let (alice, bob) = (srv.token("alice", None), srv.token("bob", None));
    let home = client_home(&srv.url, &srv.vkey(), Some(&ca.pem()));
    let h = home.path();

    let mut client = spawn(touch(h, &alice, &[]));
    let id = waiting_id(&mut client);
    let r = cli(h, &bob, &srv.url, &ca.pem(), &["approve", &id]);
    r.status(0);
    r.stderr_contains("it is now approved");
    let out = client.finish(Duration::from_secs(30));
    out.status(0);
    assert!(h.join("ran").exists(), "the approved command did not run");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(h.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decision = records
        .iter()
        .find(|r| r["kind"] == "decision")
        .expect("a decision record");
    assert_eq!(decision["decision"]["outcome"], "approved", "{decision}");
    assert_eq!(decision["decision"]["approvals"][0]["principal"], "bob");
}

#[test]
fn a_client_trusting_only_the_built_in_roots_refuses_a_private_ca_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    let srv = serve_tls(dir.path(), &cert, &key, &[]);
    let (alice, bob) = (srv.token("alice", None), srv.token("bob", None));
    let home = client_home(&srv.url, &srv.vkey(), None);
    let h = home.path();

    let r = Ran::of(touch(h, &alice, &["--timeout", "20s"]));
    r.status(75);
    r.stderr_contains("certificate authority this client does not trust");
    r.stderr_contains("`ca: FILE`");
    assert!(
        !h.join("ran").exists(),
        "the command ran without an approval"
    );
    // Refused at once (not retried to the deadline), and no request reached the server.
    assert!(!r.stderr.contains("retrying"), "{}", r.stderr);
    assert_eq!(
        pending(&srv, &bob, &ca.pem()),
        Vec::<serde_json::Value>::new()
    );
    assert!(!r.stderr.contains(&alice), "the token leaked: {}", r.stderr);
}

/// A waiting command against a server presenting the CA's leaf `name` for `hosts` (expired
/// if `expired`) exits 75 with `problem`, and runs nothing.
fn refused_certificate(name: &str, hosts: &[&str], expired: bool, problem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf(name, hosts, expired);
    let srv = serve_tls(dir.path(), &cert, &key, &[]);
    let alice = srv.token("alice", None);
    let home = client_home(&srv.url, &srv.vkey(), Some(&ca.pem()));
    let h = home.path();
    let r = Ran::of(touch(h, &alice, &["--timeout", "20s"]));
    r.status(75);
    r.stderr_contains(problem);
    assert!(
        !h.join("ran").exists(),
        "the command ran without an approval"
    );
}

#[test]
fn a_certificate_for_another_host_name_is_refused() {
    refused_certificate(
        "other",
        &["other.example"],
        false,
        "its certificate is for another host name",
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    refused_certificate(
        "expired",
        &["localhost"],
        true,
        "its certificate has expired",
    );
}

#[test]
fn sighup_serves_a_new_certificate_and_a_broken_one_keeps_the_old_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (first, first_key) = ca.leaf("first", &["localhost"], false);
    let (second, second_key) = ca.leaf("second", &["localhost"], false);
    // The server reads the files at these paths; a renewal replaces their contents.
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(&first, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    // `-v`: a reload that works is said at info level.
    let srv = serve_tls(dir.path(), &cert, &key, &["-v"]);
    let pid = nix::unistd::Pid::from_raw(srv.pid() as i32);
    assert_eq!(served_serial(&srv.addr), serial_of(&first));
    // A connection opened before the reload (it has the first certificate)...
    let mut open = common::process::spawn_with_stdin({
        let mut c = Command::new("openssl");
        c.args([
            "s_client",
            "-connect",
            &srv.addr,
            "-servername",
            "localhost",
        ]);
        c
    });
    open.stdout_until("-----END CERTIFICATE-----", HANG);
    let shown = open.stdout_text();
    let pem = &shown[shown.find("-----BEGIN CERTIFICATE-----").unwrap()
        ..shown.find("-----END CERTIFICATE-----").unwrap() + 25];
    let old_pem = dir.path().join("open.pem");
    std::fs::write(&old_pem, pem).unwrap();
    assert_eq!(serial_of(&old_pem), serial_of(&first));

    std::fs::copy(&second, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    poll("the server to say it reloaded", || {
        srv.stderr()
            .contains("reloaded the TLS certificate")
            .then_some(())
    });
    assert_eq!(served_serial(&srv.addr), serial_of(&second));
    // ...still works after it.
    open.type_in("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    open.stdout_until("HTTP/1.1 200 OK", HANG);
    drop(open);

    // A renewal gone wrong: the certificate file is cut short. The server says which file and
    // keeps serving the certificate it has.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    poll("the server to say the reload failed", || {
        srv.stderr()
            .contains("still serving the certificate loaded before")
            .then_some(())
    });
    let said = srv.stderr();
    assert!(said.contains(&cert.display().to_string()), "{said}");
    assert_eq!(served_serial(&srv.addr), serial_of(&second));
    let health = sh(
        dir.path(),
        &[
            "curl",
            "-sS",
            "--cacert",
            ca.pem().to_str().unwrap(),
            &format!("{}/healthz", srv.url),
        ],
    );
    assert!(health.contains("ok"), "{health}");
}

#[test]
fn a_missing_unreadable_or_mismatched_certificate_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    let (_, other_key) = ca.leaf("other", &["localhost"], false);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let start = |c: &Path, k: &Path| {
        let mut g = common::gate_in(dir.path());
        g.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("server.db"))
            .arg("--tls-cert")
            .arg(c)
            .arg("--tls-key")
            .arg(k);
        Ran::of(g)
    };
    let r = start(&missing, &key);
    r.status(78);
    r.stderr_contains(&format!(
        "cannot read the TLS certificate `{}`",
        missing.display()
    ));
    let r = start(&garbage, &key);
    r.status(78);
    r.stderr_contains(&format!("`{}` holds no PEM certificate", garbage.display()));
    let r = start(&cert, &garbage);
    r.status(78);
    r.stderr_contains(&format!(
        "the TLS key `{}` holds no PEM private key",
        garbage.display()
    ));
    let r = start(&cert, &other_key);
    r.status(78);
    r.stderr_contains(&format!(
        "the TLS key `{}` does not belong to the certificate `{}`",
        other_key.display(),
        cert.display()
    ));
    // The certificate (a public file) where the key should be.
    let r = start(&cert, &cert);
    r.status(78);
    r.stderr_contains(&format!("`{}`", cert.display()));
    // One without the other is a usage error.
    let mut g = common::gate_in(dir.path());
    g.args(["serve", "--tls-cert"]).arg(&cert);
    let r = Ran::of(g);
    r.status(2);
    r.stderr_contains("--tls-key");
}

#[test]
fn gate_login_trusts_the_ca_given_with_ca_or_gate_ca_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    let srv = serve_tls(dir.path(), &cert, &key, &[]);
    let alice = srv.token("alice", None);
    let vkey = srv.vkey();
    let home = tempfile::tempdir().unwrap();
    let login = |extra: &[&str], env: Option<&Path>| {
        let mut c = common::gate_in(home.path());
        c.args(["login", &srv.url]).args(extra);
        if let Some(p) = env {
            c.env("GATE_CA", p);
        }
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(alice.as_bytes())
            .unwrap();
        Ran::from_output(child.wait_with_output().unwrap())
    };
    let r = login(&[], None);
    r.status(75);
    r.stderr_contains("certificate authority this client does not trust");
    r.stderr_contains("--ca FILE");
    let r = login(&["--ca", ca.pem().to_str().unwrap()], None);
    r.status(0);
    assert_eq!(r.stdout.trim(), vkey);
    r.stderr_contains(&format!("ca: \"{}\"", ca.pem().display()));
    let r = login(&[], Some(&ca.pem()));
    r.status(0);
    assert_eq!(r.stdout.trim(), vkey);
    // The CA of another server does not vouch for this one.
    let other = Ca::new(&dir.path().join("other"));
    let r = login(&["--ca", other.pem().to_str().unwrap()], None);
    r.status(75);
    r.stderr_contains("does not trust");
    let r = login(&["--ca", "/nonexistent/ca.pem"], None);
    r.status(78);
    r.stderr_contains("cannot read the CA file `/nonexistent/ca.pem`");
}

#[test]
fn the_web_page_is_served_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    let srv = serve_tls(dir.path(), &cert, &key, &[]);
    let page = sh(
        dir.path(),
        &[
            "curl",
            "-sS",
            "--include",
            "--cacert",
            ca.pem().to_str().unwrap(),
            &format!("{}/", srv.url),
        ],
    );
    assert!(page.contains("<html"), "{page}");
    // Its cookies are never sent back over plain HTTP.
    let cookie = page
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie:\n{page}"));
    assert!(cookie.trim_end().ends_with("; Secure"), "{cookie}");
    // Plain HTTP to the TLS port gets no page.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{}/", srv.addr)])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("<html"));
}

#[test]
fn a_client_stalled_in_the_tls_handshake_loses_its_slot_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    // One connection at a time; a stall is cut at the 1 s header deadline, far before the
    // 120 s idle deadline.
    let srv = serve_tls(
        dir.path(),
        &cert,
        &key,
        &[
            "--max-connections",
            "1",
            "--header-timeout",
            "1s",
            "--idle-timeout",
            "120s",
        ],
    );
    let healthz = || {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(ca.pem())
            .arg(format!("{}/healthz", srv.url))
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl: {e}; {HOW}"))
    };
    let mut staller = TcpStream::connect(&srv.addr).unwrap();
    // While it holds the only slot, others are refused (over TLS, with a 503 that says why).
    let busy = healthz();
    assert!(
        String::from_utf8_lossy(&busy.stdout).contains("connections open"),
        "{busy:?}"
    );
    // The server closes the staller (EOF) once the handshake deadline passes...
    staller
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        staller.read(&mut buf).unwrap(),
        0,
        "the stalled handshake was not cut"
    );
    // ...and the slot is free again.
    poll("the slot to be free", || {
        let r = healthz();
        String::from_utf8_lossy(&r.stdout)
            .contains("ok")
            .then_some(())
    });
}

#[test]
fn the_server_audit_sink_checks_tls_against_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (cert, key) = ca.leaf("server", &["localhost"], false);
    let srv = serve_tls(dir.path(), &cert, &key, &[]);
    let host = srv.token("host1", None);
    let ship = |ca_line: &str| {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("policy.yaml"),
            format!(
                "version: 1\naudit:\n  sinks:\n    - {{ kind: server, url: \"{}\"{ca_line} }}\n  require_remote: true\n",
                srv.url
            ),
        )
        .unwrap();
        let mut c = common::gate_in(home.path());
        c.env("GATE_TOKEN", &host)
            .arg("--policy")
            .arg(home.path().join("policy.yaml"))
            .args(["--", "touch"])
            .arg(home.path().join("ran"));
        (Ran::of(c), home)
    };
    // With the CA: delivered, and the server's cosigned checkpoint comes back.
    let (r, home) = ship(&format!(", ca: \"{}\"", ca.pem().display()));
    r.status(0);
    assert!(home.path().join("ran").exists());
    assert!(
        home.path().join("audit.jsonl.cosigned").exists(),
        "no cosigned checkpoint: the records did not reach the server\n{}",
        r.stderr
    );
    // Without it the server's certificate is refused, and `require_remote` keeps the command
    // from running.
    let (r, home) = ship("");
    assert_ne!(r.status, 0, "{}", r.stderr);
    r.stderr_contains("refused the server's TLS");
    r.stderr_contains("certificate authority this client does not trust");
    assert!(
        !home.path().join("ran").exists(),
        "ran with its record undelivered"
    );
}

#[test]
fn a_redirect_from_the_server_address_is_not_followed() {
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Where a redirect would lead: it must never be reached.
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}/v1/requests", elsewhere.local_addr().unwrap());
    let reached = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached);
    std::thread::spawn(move || {
        if elsewhere.accept().is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    // The address the policy names answers everything with a redirect there.
    let redirector = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", redirector.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in redirector.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let home = client_home(
        &url,
        "gate/vm+bc4dc392+AUb5WZhhFe1FmZQ+75Y0RJYWvdgQGEq4rMA4RQCY4gST",
        None,
    );
    let h = home.path();
    let r = Ran::of(touch(h, "gate_00000000_whatever", &["--timeout", "5s"]));
    r.status(75);
    r.stderr_contains("307");
    assert!(
        !h.join("ran").exists(),
        "the command ran without an approval"
    );
    assert!(
        !reached.load(Ordering::SeqCst),
        "the client followed the redirect"
    );
}
