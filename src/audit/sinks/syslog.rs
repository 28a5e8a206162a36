//! The `syslog` sink: every record as one RFC 5424 message, over UDP (RFC 5426), TCP with
//! octet-counting framing (RFC 6587 §3.4.1) or TLS (RFC 5425). See docs/sinks-syslog.md.
//!
//! A message is
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [gate@32473 log_id=".." seq=".." hash=".." ...] MSG
//! ```
//!
//! with facility `authpriv` (or the URL's `?facility=`), a severity by kind (warning for a
//! decision that did not run the command and for a repair, notice for other decisions and for
//! results, info otherwise), TIMESTAMP the record's `ts`, HOSTNAME the requester's host (else the
//! genesis host, else this host), MSGID the record kind, and MSG the record's canonical line
//! byte for byte, without a BOM: MSG is a JSON text (RFC 8259 §8.1: no BOM), and a receiver can
//! re-check the record's hash on exactly the bytes it got.
//!
//! Delivery: UDP is fire-and-forget (sent = delivered). TCP and TLS keep one connection in the
//! sink (checked for a peer close before reuse, reopened after any error, a failed write on a
//! reused one retried once on a fresh one); a batch counts as delivered once all of it was
//! written to the socket. Syslog has no application-level acknowledgement (RELP would be), so
//! bytes in flight when a collector dies after the write are lost. Re-sent records carry the
//! same `hash`, the dedupe key.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{DeliverCtx, Pending, Sink, SinkError};

/// The structured-data ID (an enterprise number of the form `name@PEN`).
pub const SD_ID: &str = "gate@32473";

/// Largest UDP datagram sent; a longer message's MSG is cut (at a character boundary) and the
/// structured data says so (`truncated="<original MSG length>"`).
const UDP_MAX: usize = 65_000;

/// `authpriv`: records name users and commands, which belong with the security/authorization
/// messages that only privileged readers see.
const FACILITY_AUTHPRIV: u8 = 10;

const SEV_WARNING: u8 = 4;
const SEV_NOTICE: u8 = 5;
const SEV_INFO: u8 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
    Tls,
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn sock(&self) -> &TcpStream {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(buf),
            Conn::Tls(t) => {
                t.write_all(buf)?;
                t.flush()
            }
        }
    }

    /// False when the receiver closed or reset the connection since it was last used (a
    /// restarted collector): reusing it would lose the first writes. rsyslog sends nothing on a
    /// syslog connection, so readable data is only TLS housekeeping (session tickets), which
    /// rustls consumes here.
    fn alive(&mut self) -> bool {
        if self.sock().set_nonblocking(true).is_err() {
            return false;
        }
        let alive = match self {
            Conn::Tcp(s) => {
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break false,
                        Ok(_) => continue,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break false,
                    }
                }
            }
            Conn::Tls(t) => loop {
                match t.conn.read_tls(&mut t.sock) {
                    Ok(0) => break false,
                    Ok(_) => match t.conn.process_new_packets() {
                        Ok(st) if st.peer_has_closed() => break false,
                        Ok(_) => continue,
                        Err(_) => break false,
                    },
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                }
            },
        };
        alive && self.sock().set_nonblocking(false).is_ok()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::Tls(t) = self {
            // A polite close_notify; the bytes before it were acknowledged already.
            t.conn.send_close_notify();
            let _ = t.sock.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = t.conn.write_tls(&mut t.sock);
        }
        let _ = self.sock().shutdown(Shutdown::Write);
    }
}

pub struct SyslogSink {
    name: String,
    transport: Transport,
    host: String,
    port: u16,
    facility: u8,
    app_name: String,
    local_host: String,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    udp: Option<UdpSocket>,
}

/// A syslog sink the policy describes wrongly.
#[derive(Debug, thiserror::Error)]
pub enum SyslogConfigError {
    #[error(
        "syslog `url` {url:?}: {why} (expected udp://HOST:PORT, tcp://HOST:PORT or tcp+tls://HOST:PORT)"
    )]
    Url { url: String, why: String },
    #[error(
        "`app_name` {0:?} is not a syslog APP-NAME (1 to 48 printable ASCII characters, no spaces)"
    )]
    AppName(String),
    #[error("`ca` applies to `tcp+tls://` syslog only, not to `{0}`")]
    CaWithoutTls(String),
    #[error("syslog `url` {url:?}: {host:?} is not a valid TLS server name")]
    ServerName { url: String, host: String },
    #[error("`ca` {}: {problem}", .path.display())]
    Ca { path: PathBuf, problem: CaProblem },
    #[error("TLS: {0}")]
    Tls(rustls::Error),
}

/// What is wrong with a `ca` file.
#[derive(Debug, thiserror::Error)]
pub enum CaProblem {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("not a PEM certificate file: {0}")]
    NotPem(rustls::pki_types::pem::Error),
    #[error("unusable CA certificate: {0}")]
    Unusable(rustls::Error),
    #[error("no PEM certificate in it")]
    Empty,
}

impl SyslogSink {
    /// `url`: `udp://host[:514]`, `tcp://host[:514]` or `tcp+tls://host[:6514]`, optionally with
    /// `?facility=authpriv|auth|local0..local7`. `ca`: a PEM file of CA certificates that
    /// replaces the built-in web PKI roots for `tcp+tls`.
    pub fn new(
        name: String,
        url: &str,
        ca: Option<PathBuf>,
        app_name: Option<String>,
    ) -> Result<Self, SyslogConfigError> {
        let (transport, host, port, facility) = parse_url(url)?;
        let app_name = app_name.unwrap_or_else(|| "gate".to_owned());
        if app_name.is_empty()
            || app_name.len() > 48
            || !app_name.bytes().all(|b| (33..=126).contains(&b))
        {
            return Err(SyslogConfigError::AppName(app_name));
        }
        let tls = match (transport, ca) {
            (Transport::Tls, ca) => Some(Arc::new(tls_config(ca)?)),
            (_, Some(_)) => {
                return Err(SyslogConfigError::CaWithoutTls(url.to_owned()));
            }
            (_, None) => None,
        };
        if transport == Transport::Tls && ServerName::try_from(host.clone()).is_err() {
            return Err(SyslogConfigError::ServerName {
                url: url.to_owned(),
                host,
            });
        }
        Ok(SyslogSink {
            name,
            transport,
            host,
            port,
            facility,
            app_name,
            local_host: crate::identity::host_name(),
            tls,
            conn: None,
            udp: None,
        })
    }

    /// The RFC 5424 message for one record (without transport framing).
    pub fn message(&self, p: &Pending) -> Vec<u8> {
        self.message_limited(p, usize::MAX)
    }

    fn message_limited(&self, p: &Pending, max: usize) -> Vec<u8> {
        let r = &p.record;
        let kind = r["kind"].as_str();
        let pri = self.facility * 8 + severity(r);
        let ts = r["ts"]
            .as_str()
            .filter(|t| valid_timestamp(t))
            .unwrap_or("-");
        let host = r["request"]["requester"]["host"]
            .as_str()
            .or_else(|| r["genesis"]["host"].as_str())
            .map(|h| header_field(h, 255))
            .filter(|h| h != "-")
            .unwrap_or_else(|| header_field(&self.local_host, 255));
        let msgid = kind
            .map(|k| header_field(k, 32))
            .unwrap_or_else(|| "-".to_owned());

        let mut sd = format!("[{SD_ID}");
        let seq = p.seq.to_string();
        sd_param(&mut sd, "log_id", r["log_id"].as_str());
        sd_param(&mut sd, "seq", Some(&seq));
        sd_param(&mut sd, "hash", Some(&p.hash));
        sd_param(&mut sd, "kind", kind);
        sd_param(&mut sd, "request_id", r["request_id"].as_str());
        sd_param(&mut sd, "decision", r["decision"]["decision"].as_str());
        sd_param(&mut sd, "outcome", r["decision"]["outcome"].as_str());

        let head = format!("<{pri}>1 {ts} {host} {} - {msgid} ", self.app_name);
        let mut msg = p.line.as_str();
        let room = max.saturating_sub(head.len() + sd.len() + 40);
        if msg.len() > room {
            sd_param(&mut sd, "truncated", Some(&msg.len().to_string()));
            let mut cut = room;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg = &msg[..cut];
        }
        sd.push(']');
        let mut out = Vec::with_capacity(head.len() + sd.len() + 1 + msg.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(sd.as_bytes());
        out.push(b' ');
        out.extend_from_slice(msg.as_bytes());
        out
    }

    fn addrs(&self) -> Result<Vec<SocketAddr>, SinkError> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| transient(format!("cannot resolve syslog host {}: {e}", self.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(transient(format!(
                "syslog host {} has no address",
                self.host
            )));
        }
        Ok(addrs)
    }

    fn deliver_udp(&mut self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        if self.udp.is_none() {
            let addr = self.addrs()?[0];
            let bind: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let sock =
                UdpSocket::bind(bind).map_err(|e| transient(format!("syslog udp socket: {e}")))?;
            sock.connect(addr)
                .map_err(|e| transient(format!("syslog udp://{addr}: {e}")))?;
            self.udp = Some(sock);
        }
        for p in batch {
            let msg = self.message_limited(p, UDP_MAX);
            let sock = self.udp.as_ref().expect("set above");
            let left = remaining(ctx)?;
            let _ = sock.set_write_timeout(Some(left));
            if let Err(e) = sock.send(&msg) {
                // ECONNREFUSED here is the ICMP answer to an earlier datagram: nobody listens.
                self.udp = None;
                return Err(transient(format!(
                    "syslog udp://{}:{}: {e}",
                    self.host, self.port
                )));
            }
        }
        Ok(())
    }

    fn connect(&self, ctx: &DeliverCtx<'_>) -> Result<Conn, SinkError> {
        let mut last = None;
        let mut sock = None;
        for addr in self.addrs()? {
            match TcpStream::connect_timeout(&addr, remaining(ctx)?) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let sock = sock.ok_or_else(|| {
            transient(format!(
                "cannot connect to syslog {}:{}: {}",
                self.host,
                self.port,
                last.unwrap_or_default()
            ))
        })?;
        let _ = sock.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Conn::Tcp(sock));
        };
        let server = ServerName::try_from(self.host.clone())
            .map_err(|e| SinkError::Permanent(e.to_string()))?;
        let conn = ClientConnection::new(config.clone(), server)
            .map_err(|e| SinkError::Permanent(format!("syslog TLS: {e}")))?;
        let mut tls = StreamOwned::new(conn, sock);
        let left = remaining(ctx)?;
        let _ = tls.sock.set_read_timeout(Some(left));
        let _ = tls.sock.set_write_timeout(Some(left));
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                return Err(tls_error(&self.host, self.port, e));
            }
        }
        Ok(Conn::Tls(Box::new(tls)))
    }

    fn deliver_stream(&mut self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        let mut buf = Vec::new();
        for p in batch {
            let msg = self.message(p);
            buf.extend_from_slice(msg.len().to_string().as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(&msg);
        }
        // A kept connection may have died since its last use (a collector restart): retry once on
        // a fresh one. The receiver dedupes a record sent twice by its hash.
        for attempt in 0..2 {
            let reused = match self.conn.take() {
                Some(mut c) => {
                    if c.alive() {
                        self.conn = Some(c);
                        true
                    } else {
                        drop(c);
                        self.conn = Some(self.connect(ctx)?);
                        false
                    }
                }
                None => {
                    self.conn = Some(self.connect(ctx)?);
                    false
                }
            };
            let conn = self.conn.as_mut().expect("set above");
            let left = remaining(ctx)?;
            let _ = conn.sock().set_write_timeout(Some(left));
            let result = conn
                .write_all(&buf)
                .map_err(|e| stream_error(&self.host, self.port, e));
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.conn = None;
                    if !(reused && attempt == 0) {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Pending], ctx: &DeliverCtx<'_>) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.transport {
            Transport::Udp => self.deliver_udp(batch, ctx),
            Transport::Tcp | Transport::Tls => self.deliver_stream(batch, ctx),
        }
    }
}

fn transient(message: String) -> SinkError {
    SinkError::Transient {
        message,
        retry_after: None,
    }
}

fn remaining(ctx: &DeliverCtx<'_>) -> Result<Duration, SinkError> {
    let left = ctx.deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(transient("syslog delivery ran out of time".into()));
    }
    Ok(left)
}

fn stream_error(host: &str, port: u16, e: std::io::Error) -> SinkError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            transient(format!("syslog {host}:{port}: timed out writing"))
        }
        _ => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(_) => tls_error(host, port, e),
            None => transient(format!("syslog {host}:{port}: {e}")),
        },
    }
}

/// A certificate the configured roots do not accept is permanent (retrying cannot help until
/// the configuration or the collector's certificate changes); anything else may pass.
fn tls_error(host: &str, port: u16, e: std::io::Error) -> SinkError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => SinkError::Permanent(format!(
            "syslog TLS to {host}:{port}: the collector's certificate is not accepted: {c:?}"
        )),
        _ if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            transient(format!("syslog TLS to {host}:{port}: handshake timed out"))
        }
        _ => transient(format!("syslog TLS to {host}:{port}: {e}")),
    }
}

fn parse_url(url: &str) -> Result<(Transport, String, u16, u8), SyslogConfigError> {
    let bad = |why: &str| SyslogConfigError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let transport = match scheme.to_ascii_lowercase().as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tcp+tls" => Transport::Tls,
        other => return Err(bad(&format!("unknown transport `{other}`"))),
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('/') {
        return Err(bad("a syslog address has no path"));
    }
    if authority.contains('@') {
        return Err(bad("a syslog address has no user part"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(bad("write an IPv6 address in brackets, as [::1]:514"));
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => {
            if transport == Transport::Tls {
                6514
            } else {
                514
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(&format!("bad port `{p}`")))?,
    };
    let mut facility = FACILITY_AUTHPRIV;
    for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        match pair.split_once('=') {
            Some(("facility", f)) => {
                facility = match f {
                    "auth" => 4,
                    "authpriv" => FACILITY_AUTHPRIV,
                    _ => match f.strip_prefix("local").and_then(|n| n.parse::<u8>().ok()) {
                        Some(n) if n <= 7 => 16 + n,
                        _ => {
                            return Err(bad(&format!(
                                "unknown facility `{f}` (authpriv, auth, local0..local7)"
                            )));
                        }
                    },
                }
            }
            _ => return Err(bad(&format!("unknown parameter `{pair}` (only facility=)"))),
        }
    }
    Ok((transport, host.to_owned(), port, facility))
}

fn tls_config(ca: Option<PathBuf>) -> Result<ClientConfig, SyslogConfigError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |problem| SyslogConfigError::Ca {
                path: path.clone(),
                problem,
            };
            let pem = std::fs::read(&path).map_err(|e| bad(CaProblem::Read(e)))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| bad(CaProblem::NotPem(e)))?;
                roots.add(cert).map_err(|e| bad(CaProblem::Unusable(e)))?;
            }
            if roots.is_empty() {
                return Err(bad(CaProblem::Empty));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(SyslogConfigError::Tls)
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

fn severity(r: &serde_json::Value) -> u8 {
    match r["kind"].as_str() {
        Some("decision") if r["decision"]["run"].as_bool() == Some(true) => SEV_NOTICE,
        Some("decision") | Some("repair") => SEV_WARNING,
        Some("result") => SEV_NOTICE,
        Some("event") if r["event"]["type"].as_str() == Some("denial") => SEV_WARNING,
        _ => SEV_INFO,
    }
}

/// A header field: printable US-ASCII without spaces, at most `max` characters; anything else
/// is replaced by `_`; empty is the NILVALUE.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .take(max)
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect();
    if out.is_empty() { "-".to_owned() } else { out }
}

fn sd_param(sd: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        sd.push(' ');
        sd.push_str(name);
        sd.push_str("=\"");
        sd.push_str(&sd_escape(v));
        sd.push('"');
    }
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` are escaped with a backslash in a PARAM-VALUE.
pub fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 5424 TIMESTAMP: `YYYY-MM-DDTHH:MM:SS[.1-6 digits](Z|+HH:MM|-HH:MM)`.
fn valid_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if !(b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=6).contains(&n) {
            return false;
        }
        i += 1 + n;
    }
    match &b[i..] {
        b"Z" => true,
        [s, h1, h2, b':', m1, m2] => {
            matches!(s, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "syslog_tests.rs"]
mod tests;
