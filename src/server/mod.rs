//! `gate serve`: the approval and audit server (DESIGN §6). One process, async (tokio + axum),
//! an embedded SQLite store behind [`store::Store`], long-polls that answer as soon as a
//! request changes, and its own hash-chained, checkpointed audit log written with the same code
//! as a host's.

pub mod api;
pub mod auth;
pub mod logs;
pub mod store;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::sync::{broadcast, watch};

use crate::audit::{AuditLog, Body};
use crate::policy::Policy;
use crate::request::{CommandInfo, RequestView};
use store::{RequestRow, SqliteStore, Store};

/// Everything a handler needs.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub policy: Arc<Policy>,
    /// Ids of requests whose status changed, for long-polls.
    pub changes: broadcast::Sender<String>,
    /// Flips to true on shutdown, so long-polls answer at once.
    pub shutdown: watch::Receiver<bool>,
    /// The server's own log, written by one writer thread that appends whatever events are
    /// queued in one locked, fsynced append (one checkpoint for the lot); each handler still
    /// waits until its own event is on disk.
    pub audit: AuditWriter,
    pub events: AtomicU64,
    pub web: web::Sessions,
    /// The server's own key: signs its log's checkpoints and cosigns hosts' checkpoints.
    pub signer: crate::audit::note::NoteSigner,
}

impl AppState {
    /// Records something about a host's log (a refused push) in the server's own log.
    pub async fn record_log_event(&self, log_id: &str, kind: &str, principal: &str, detail: &str) {
        let body = Body::Event {
            request_id: format!("log:{log_id}"),
            request: None,
            event: api::event_info(
                kind,
                Some(principal.to_owned()),
                "refused",
                Some(detail.to_owned()),
            ),
        };
        match self.audit.append(body).await {
            Ok(()) => {
                self.events.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("cannot record a {kind} event for log {log_id}: {e}"),
        }
    }

    /// Appends an event to the server's audit log. A failure is logged loudly: the decision is
    /// already committed to the store, which stays the source of truth for clients.
    pub async fn record_event(
        &self,
        row: &RequestRow,
        kind: &str,
        principal: Option<String>,
        comment: Option<String>,
    ) {
        let request = (kind == "request").then(|| Box::new(request_view(row)));
        let body = Body::Event {
            request_id: row.id.clone(),
            request,
            event: api::event_info(kind, principal, &row.status, comment),
        };
        let who = match &body {
            Body::Event { event, .. } => event.principal.clone().unwrap_or_else(|| "-".into()),
            _ => "-".into(),
        };
        match self.audit.append(body).await {
            Ok(()) => {
                self.events.fetch_add(1, Ordering::Relaxed);
                tracing::info!("{kind} of request {} by {who}: now {}", row.id, row.status);
            }
            Err(e) => tracing::error!("cannot record a {kind} event for {}: {e}", row.id),
        }
    }
}

type AuditJob = (Body, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Group commit for the server's audit log.
pub struct AuditWriter {
    tx: std::sync::mpsc::Sender<AuditJob>,
}

impl AuditWriter {
    pub fn start(log: AuditLog) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<AuditJob>();
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < 256 {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let (bodies, replies): (Vec<Body>, Vec<_>) = jobs.into_iter().unzip();
                let result = log.append(bodies).map(|_| ()).map_err(|e| e.to_string());
                for r in replies {
                    let _ = r.send(result.clone());
                }
            }
        });
        AuditWriter { tx }
    }

    /// Appends one event; returns once it is on disk (with everything queued beside it).
    pub async fn append(&self, body: Body) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send((body, tx))
            .map_err(|_| "the audit writer has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the audit writer has stopped".to_owned())?
    }
}

/// The request part of a `request` event, in the same shape hosts record.
fn request_view(row: &RequestRow) -> RequestView {
    let doc: Option<api::RequestDoc> = serde_json::from_value(row.doc.clone()).ok();
    let claims = doc.as_ref().map(|d| d.claims.clone()).unwrap_or_default();
    RequestView {
        id: row.id.clone(),
        requester: crate::identity::Identity {
            user: row.requester.clone(),
            uid: claims.uid.unwrap_or(0),
            host: claims.host.clone().unwrap_or_default(),
            ci: claims.ci.clone(),
            agent: claims.agent.clone(),
        },
        command: CommandInfo {
            argv: doc.as_ref().map(|d| d.argv.clone()).unwrap_or_default(),
            cwd: doc.as_ref().map(|d| d.cwd.clone()).unwrap_or_default(),
            executable: None,
            payload: doc.as_ref().map(|d| d.payload.clone()).unwrap_or_default(),
        },
        context: doc.as_ref().map(|d| d.context.clone()).unwrap_or_default(),
        reason: doc.as_ref().and_then(|d| d.reason.clone()),
        digest: row.digest.clone(),
    }
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub policy: Policy,
    pub audit_log: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/requests", post(api::create).get(api::list))
        .route("/v1/requests/{id}", get(api::get))
        .route("/v1/requests/{id}/approve", post(api::approve))
        .route("/v1/requests/{id}/deny", post(api::deny))
        .route("/v1/requests/{id}/cancel", post(api::cancel))
        .route("/v1/me", get(api::me))
        .route(
            "/v1/logs/{log_id}/records",
            post(logs::ingest).get(logs::records),
        )
        .route("/v1/logs/{log_id}/head", get(logs::head))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// Runs the server until SIGTERM or SIGINT; `ready` gets the bound address.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&opts.db)?);
        let log = AuditLog::new(&opts.audit_log).with_key(&opts.key);
        log.check_writable()?;
        let audit = AuditWriter::start(log);
        let signer = crate::audit::key::load_or_create(&opts.key, &crate::identity::host_name())
            .map_err(|e| ServeError::Io(std::io::Error::other(e.to_string())))?;
        let (changes, _) = broadcast::channel(4096);
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            store,
            policy: Arc::new(opts.policy),
            changes,
            shutdown: stop_rx,
            audit,
            events: AtomicU64::new(0),
            web: web::Sessions::default(),
            signer,
        });
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| ServeError::Listen(opts.listen, e))?;
        let addr = listener.local_addr()?;
        ready(addr);
        tokio::spawn(sweep_expired(Arc::clone(&state)));
        let app = router(Arc::clone(&state));
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                wait_for_stop().await;
                let _ = stop_tx.send(true);
            })
            .await?;
        Ok(())
    })
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Marks overdue requests expired (and records it) twice a second.
async fn sweep_expired(st: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let ids = match st.store.overdue(auth::now_ms()) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!("expiry sweep: {e}");
                continue;
            }
        };
        for id in ids {
            if let Ok(true) = st.store.finish(&id, "expired", auth::now_ms()) {
                if let Ok(Some((row, _))) = st.store.request_get(&id) {
                    st.record_event(&row, "expiry", None, None).await;
                }
                let _ = st.changes.send(id);
            }
        }
    }
}
