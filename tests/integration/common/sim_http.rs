//! The HTTP plumbing the chat simulators share: an axum app served on 127.0.0.1 with an
//! ephemeral port, on a thread of its own, that can drop a connection without answering (an
//! outage a client must survive) and stops when its handle drops.
//!
//! Connections are not kept alive: every request arrives on a fresh connection, so "drop the
//! next request" is decided when the connection is accepted, before any byte is answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

/// A running simulator server; dropping it stops the accept loop.
pub struct Served {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `app` on 127.0.0.1:0. `drop_next` is asked once per accepted connection: `true`
/// reads the request head and closes the socket without a response.
pub fn serve(app: Router, drop_next: Arc<dyn Fn() -> bool + Send + Sync>) -> Served {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind simulator");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("simulator runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let stream = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                // No Nagle delay on small answers: latency figures measured against a
                // simulator must not include 40 ms of TCP batching.
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let drop_it = drop_next();
                tokio::spawn(async move {
                    if drop_it {
                        drop_after_head(stream).await;
                        return;
                    }
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    Served { addr, _stop: stop }
}

/// Reads until the end of the request head (or a second passes) and closes: the client has
/// sent its request and gets no answer, as when a load balancer in front of a service dies.
async fn drop_after_head(mut stream: tokio::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
    drop(stream);
}

/// Decodes an `application/x-www-form-urlencoded` string into its pairs, in order.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://form.invalid/").unwrap();
    url.set_query(Some(s));
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Encodes pairs as `application/x-www-form-urlencoded` (spaces as `+`, as browsers and Slack do).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").unwrap();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url.query().unwrap_or("").to_owned()
}
