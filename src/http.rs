//! The one HTTP helper every client of gate shares (the server backend, the server and HTTP
//! audit sinks): how a failed request is told to a person. At the bottom of the layers, so
//! sinks need not reach up into `approval` for it.

/// A reqwest error's causes, without the URL (and its query string) that reqwest puts in its
/// own message: what gate shows users and writes to logs about a failed HTTP call.
pub fn error_chain(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = String::new();
    let mut src: Option<&dyn Error> = e.source();
    while let Some(x) = src {
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&x.to_string());
        src = x.source();
    }
    if !msg.is_empty() {
        msg
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        "request failed".into()
    }
}

use std::path::PathBuf;
use std::time::Duration;

/// Whom a client of a gate server trusts to vouch for the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trust {
    /// The web PKI roots built into gate (Mozilla's set, from `webpki-roots`).
    #[default]
    System,
    /// Only the CA certificates in this PEM file (`ca:` on a backend or sink, `--ca`,
    /// `GATE_CA`): the built-in roots are then not trusted for this server.
    Ca(PathBuf),
}

/// Why a `ca:` file cannot be used: a configuration error naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the CA file `{0}`: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the CA file `{0}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    Empty(PathBuf),
    #[error("the CA file `{0}` is not usable: {1}")]
    Bad(PathBuf, String),
}

/// `builder` trusting what `trust` says, and following no redirect: gate's servers never
/// redirect, and a redirect could only lead a client away from the address it was given (to
/// plain HTTP, or to another host).
pub fn trusting(
    builder: reqwest::blocking::ClientBuilder,
    trust: &Trust,
) -> Result<reqwest::blocking::ClientBuilder, TrustError> {
    let builder = builder.redirect(reqwest::redirect::Policy::none());
    let Trust::Ca(path) = trust else {
        return Ok(builder);
    };
    let pem = std::fs::read(path).map_err(|e| TrustError::Read(path.clone(), e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| TrustError::Bad(path.clone(), error_chain(&e)))?;
    if certs.is_empty() {
        return Err(TrustError::Empty(path.clone()));
    }
    Ok(certs
        .into_iter()
        .fold(builder.tls_built_in_root_certs(false), |b, c| {
            b.add_root_certificate(c)
        }))
}

/// What was wrong with a server's TLS, as far as a person can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// Signed by a certificate authority the client does not trust.
    UnknownIssuer,
    /// Valid, but for another host name.
    WrongName,
    /// Past its `notAfter`.
    Expired,
    /// Before its `notBefore`.
    NotYetValid,
    /// Any other certificate fault (revoked, bad signature, wrong usage...).
    BadCertificate,
    /// The handshake itself failed (not TLS at that address, no common protocol...).
    Handshake,
}

impl TlsProblem {
    pub fn describe(self) -> &'static str {
        match self {
            TlsProblem::UnknownIssuer => {
                "its certificate is issued by a certificate authority this client does not trust"
            }
            TlsProblem::WrongName => "its certificate is for another host name",
            TlsProblem::Expired => "its certificate has expired",
            TlsProblem::NotYetValid => "its certificate is not valid yet",
            TlsProblem::BadCertificate => "its certificate is not acceptable",
            TlsProblem::Handshake => "the TLS handshake failed",
        }
    }
}

/// The TLS fault behind a failed request, if that is what it was: the kind and rustls's words.
pub fn tls_problem(e: &reqwest::Error) -> Option<(TlsProblem, String)> {
    use rustls::CertificateError as C;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut x) = src {
        // An io::Error's `source` skips the error it wraps (the TLS stream's io::Error inside
        // the connector's), so look inside each one.
        while let Some(inner) = x
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            x = inner;
        }
        if let Some(r) = x.downcast_ref::<rustls::Error>() {
            let kind = match r {
                rustls::Error::InvalidCertificate(c) => match c {
                    C::UnknownIssuer => TlsProblem::UnknownIssuer,
                    C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::WrongName,
                    C::Expired | C::ExpiredContext { .. } => TlsProblem::Expired,
                    C::NotValidYet | C::NotValidYetContext { .. } => TlsProblem::NotYetValid,
                    _ => TlsProblem::BadCertificate,
                },
                _ => TlsProblem::Handshake,
            };
            return Some((kind, r.to_string()));
        }
        src = x.source();
    }
    None
}

/// The one retry schedule gate's HTTP clients share: a delay that doubles from `first` up to
/// `cap` after each failure, goes back to `first` after a success, and gives way to a
/// receiver's `Retry-After` when it sends one.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            next: first,
        }
    }

    /// How long to wait after a failure: the receiver's `Retry-After` when given, else the
    /// current step of the schedule. Either way the schedule moves one step on.
    pub fn after_failure(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.cap);
        retry_after.unwrap_or(step)
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Parses `Retry-After` (seconds, capped at five minutes; HTTP dates are rare for gate's
/// receivers and are ignored).
pub fn retry_after(h: Option<&str>) -> Option<Duration> {
    h?.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(250), ms(1000));
        let steps: Vec<_> = (0..4).map(|_| b.after_failure(None)).collect();
        assert_eq!(steps, [ms(250), ms(500), ms(1000), ms(1000)]);
        b.reset();
        assert_eq!(b.after_failure(None), ms(250));
        assert_eq!(b.after_failure(Some(ms(7000))), ms(7000));
        assert_eq!(b.after_failure(None), ms(1000));
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some("100000")), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
