//! How `gate serve` takes connections: a cap on how many are open, a deadline for a request's
//! headers, and a deadline for a connection that moves no bytes. Without them a few hundred idle
//! sockets hold every file descriptor, and then neither new clients nor the server's own audit
//! log can be opened (issue 10, finding 3).
//!
//! - **Header deadline** (hyper's `header_read_timeout`, at most 30 s): a request's head must
//!   arrive within it, and a kept-alive connection waiting for its next request is closed when
//!   it passes (hyper starts the deadline whenever it waits for a head).
//! - **Idle deadline**: a connection that moves no byte either way for this long is closed —
//!   a body that stalls, a reader that never reads its response. It must stay above the longest
//!   long-poll (`MAX_LONG_POLL`), during which no byte moves by design.
//! - **Connection cap**: past it, a new connection is answered `503` with a JSON error that says
//!   why and `Retry-After`, then closed; the descriptors kept in reserve make sure that answer,
//!   the database and the audit log can always still be opened.
//! - **TLS handshake deadline** (with `--tls-cert`): the handshake must finish within the header
//!   deadline, so a client that stalls in it holds its slot no longer than one that stalls in
//!   its headers. The idle deadline counts the encrypted bytes on the socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The longest a long-poll (`GET /v1/requests/{id}?wait=`) holds a response back.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(60);
/// The most the header deadline may be.
pub const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Descriptors kept free for the database, the audit log, its side files and the refusals.
const FD_RESERVE: u64 = 64;

/// The connection limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: MAX_LONG_POLL + Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Why limits asked for cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("the header timeout is {0:?}; it must be between 1 ms and 30 s")]
    HeaderTimeout(Duration),
    #[error("the idle timeout is {0:?}; it must be longer than the longest long-poll (60s)")]
    IdleTimeout(Duration),
    #[error("the connection cap must be at least 1")]
    NoConnections,
}

impl Limits {
    pub fn check(self) -> Result<Self, LimitsError> {
        if self.header_timeout.is_zero() || self.header_timeout > MAX_HEADER_TIMEOUT {
            return Err(LimitsError::HeaderTimeout(self.header_timeout));
        }
        if self.idle_timeout <= MAX_LONG_POLL {
            return Err(LimitsError::IdleTimeout(self.idle_timeout));
        }
        if self.max_connections == 0 {
            return Err(LimitsError::NoConnections);
        }
        Ok(self)
    }

    /// The cap lowered, if it must be, so that every connection it allows still leaves the
    /// reserve of descriptors free under `fd_limit`.
    pub fn fitted_to(mut self, fd_limit: u64) -> Self {
        let room = fd_limit.saturating_sub(FD_RESERVE).max(1);
        self.max_connections = self.max_connections.min(room as usize);
        self
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Serves `app` on `listener` within `limits` (over TLS with `tls`) until `stop` resolves,
/// then waits (at most `drain`) for the open connections to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let open = Arc::new(AtomicUsize::new(0));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors (or another passing failure): wait instead of spinning,
                    // and say so at most once a second.
                    if last_accept_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!("cannot accept a connection: {e}");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::SeqCst) >= limits.max_connections {
            tokio::spawn(refuse(stream, acceptor.clone(), limits.max_connections));
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let guard = Open(Arc::clone(&open));
        let (builder, app, closing) = (Arc::clone(&builder), app.clone(), closing_rx.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _guard = guard;
            connection(stream, acceptor, &builder, app, limits, closing).await;
        });
    }
    let _ = closing_tx.send(true);
    let until = Instant::now() + drain;
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts a connection as open until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The answer past the cap: a complete HTTP response (over TLS when the server speaks it), then
/// the connection is closed; all of it within 2 s.
async fn refuse(stream: TcpStream, tls: Option<TlsAcceptor>, cap: usize) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async move {
        match tls {
            None => busy(stream, cap).await,
            Some(a) => busy(a.accept(stream).await?, cap).await,
        }
    })
    .await;
}

async fn busy<S: AsyncWrite + Unpin>(mut stream: S, cap: usize) -> io::Result<()> {
    let body = format!(
        "{{\"error\":\"busy\",\"message\":\"the server has {cap} connections open, its limit; try again shortly\"}}"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    builder: &hyper::server::conn::http1::Builder,
    app: Router,
    limits: Limits,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let moved = Arc::new(AtomicU64::new(0));
    let watched = Watched {
        inner: stream,
        start,
        moved: Arc::clone(&moved),
    };
    let Some(acceptor) = tls else {
        let io = TokioIo::new(watched);
        return http(io, builder, app, limits.idle_timeout, start, moved, closing).await;
    };
    let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(watched));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(
                    "closing a connection whose TLS handshake took longer than {:?}",
                    limits.header_timeout
                );
                return;
            }
        },
        _ = closing.changed() => return,
    };
    let io = TokioIo::new(stream);
    http(io, builder, app, limits.idle_timeout, start, moved, closing).await
}

/// Serves HTTP/1 on one connection until it ends, goes idle for `idle`, or the server stops.
async fn http<I>(
    io: TokioIo<I>,
    builder: &hyper::server::conn::http1::Builder,
    app: Router,
    idle: Duration,
    start: Instant,
    moved: Arc<AtomicU64>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let tick = (idle / 4).max(Duration::from_millis(10));
    let mut shutting = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = closing.changed(), if !shutting => {
                shutting = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(tick) => {
                let last = Duration::from_millis(moved.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(last) >= idle {
                    tracing::debug!("closing a connection idle for {idle:?}");
                    return;
                }
            }
        }
    }
}

/// A socket that notes when a byte last moved through it (milliseconds since `start`).
struct Watched {
    inner: TcpStream,
    start: Instant,
    moved: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        self.moved
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        let ok = Limits::default();
        assert_eq!(ok.check(), Ok(ok));
        let s = Duration::from_secs;
        assert_eq!(
            Limits {
                header_timeout: s(31),
                ..ok
            }
            .check()
            .unwrap_err(),
            LimitsError::HeaderTimeout(s(31))
        );
        assert_eq!(
            Limits {
                header_timeout: s(0),
                ..ok
            }
            .check()
            .unwrap_err(),
            LimitsError::HeaderTimeout(s(0))
        );
        assert_eq!(
            Limits {
                idle_timeout: MAX_LONG_POLL,
                ..ok
            }
            .check()
            .unwrap_err(),
            LimitsError::IdleTimeout(MAX_LONG_POLL)
        );
        assert_eq!(
            Limits {
                max_connections: 0,
                ..ok
            }
            .check()
            .unwrap_err(),
            LimitsError::NoConnections
        );
    }

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        let l = Limits::default();
        assert_eq!(l.fitted_to(1024).max_connections, 1024 - 64);
        assert_eq!(l.fitted_to(1 << 20).max_connections, 4096);
        assert_eq!(l.fitted_to(10).max_connections, 1);
    }
}
