//! `gate serve`: the approval and audit server (DESIGN §6). One process, async (tokio + axum),
//! an embedded SQLite store behind [`store::Store`], long-polls that answer as soon as a
//! request changes, and its own hash-chained, checkpointed audit log written with the same code
//! as a host's.

pub mod api;
pub mod auth;
pub mod chat;
mod chat_render;
pub use crate::clock;
pub mod crash;
pub mod eligibility;
pub mod error;
pub mod listen;
pub mod logs;
pub mod oidc;
pub mod reconcile;
pub mod release;
pub mod slack;
pub mod store;
pub mod tls;
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

use crate::approval::RequestStatus;
use crate::audit::{AuditLog, Body};
use crate::policy::Policy;
use crate::request::{CommandInfo, RequestView};
pub use clock::{Clock, SystemClock};
use store::{RecordError, RequestRow, SqliteStore, Store};

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
    /// The server's own key: signs its log's checkpoints and cosigns hosts' checkpoints.
    pub signer: crate::audit::note::NoteSigner,
    /// Where the server's audit log is, for `/healthz`.
    pub audit_path: PathBuf,
    /// The time every rule of the server is decided at.
    pub clock: Arc<dyn Clock>,
    /// Slack and Teams: posting requests, keeping the posts current, verifying clicks.
    pub chat: chat::Chat,
    /// Checks requests' CI ID tokens against the issuers the policy trusts.
    pub oidc: oidc::Verifier,
    /// The web page's sign-in through the identity provider (`server.oidc`), if set up.
    pub signin: Option<web::oidc::SignIn>,
    /// The key the secrets are sealed under, checked against the database at start (none:
    /// nothing can be released, and a release is answered 503).
    pub vault: Option<Arc<crate::secrets::vault::VaultKey>>,
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

    /// Records a request refused for its CI ID token (issue 13 §6): who sent it and why, never
    /// the token.
    pub async fn record_ci_refusal(&self, request_id: Option<&str>, principal: &str, why: &str) {
        let body = Body::Event {
            request_id: request_id.unwrap_or("-").chars().take(64).collect(),
            request: None,
            event: api::event_info(
                "ci_token",
                Some(principal.to_owned()),
                "refused",
                Some(why.to_owned()),
            ),
        };
        match self.audit.append(body).await {
            Ok(()) => {
                self.events.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("cannot record a refused CI token from {principal}: {e}"),
        }
        tracing::warn!("refused a request from {principal}: its CI ID token: {why}");
    }

    /// Counts and logs a state change whose event [`record_blocking`] made durable.
    pub fn recorded(&self, row: &RequestRow, kind: &str, principal: Option<&str>) {
        crash::point(kind, "committed");
        self.events.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "{kind} of request {} by {}: now {}",
            row.id,
            principal.unwrap_or("-"),
            row.status
        );
    }

    /// The signed decision statement for a decided request (None while it is pending). A
    /// statement that cannot be made (a principal the format cannot carry) is left out, and
    /// the client then refuses the decision.
    pub fn statement(&self, row: &RequestRow, decisions: &[store::DecisionRow]) -> Option<String> {
        use crate::audit::statement::{Statement, Status, Vote};
        let status = match row.status {
            RequestStatus::Pending => return None,
            RequestStatus::Approved => Status::Approved,
            RequestStatus::Denied => Status::Denied,
            RequestStatus::Expired => Status::Expired,
            RequestStatus::Cancelled => Status::Cancelled,
        };
        let vote = |d: &store::DecisionRow| Vote {
            principal: d.principal.clone(),
            at: api::rfc3339(d.at_ms),
        };
        let policy_denial = || {
            let doc: api::RequestDoc = serde_json::from_value(row.doc.clone()).ok()?;
            doc.policy_denial.map(|_| Vote {
                principal: "policy".into(),
                at: api::rfc3339(row.created_ms),
            })
        };
        let s = Statement {
            request_id: row.id.clone(),
            digest: row.digest.clone(),
            requester: row.requester.clone(),
            status,
            approvals: decisions
                .iter()
                .filter(|d| d.kind == "approve")
                .map(vote)
                .collect(),
            denial: decisions
                .iter()
                .find(|d| d.kind == "deny")
                .map(vote)
                .or_else(policy_denial),
            time: api::rfc3339(self.clock.now_ms()),
        };
        match s.sign(&self.signer) {
            Ok(note) => Some(note),
            Err(e) => {
                tracing::error!("cannot sign the decision of request {}: {e}", row.id);
                None
            }
        }
    }
}

/// Appends the `kind` event of `row` to the server's log and waits until it is on disk. It runs
/// inside the store's transaction (the store's `Record` callback): a change whose event cannot
/// be written is rolled back and the caller answers 503 — a decision that can't be recorded is
/// not taken.
pub fn record_blocking(
    audit: &AuditWriter,
    row: &RequestRow,
    kind: &str,
    principal: Option<&str>,
    comment: Option<&str>,
) -> Result<(), RecordError> {
    let request = (kind == "request").then(|| Box::new(request_view(row)));
    let mut event = api::event_info(
        kind,
        principal.map(str::to_owned),
        row.status.as_str(),
        comment.map(str::to_owned),
    );
    // What the request needs is logged with it, so the log alone shows whether what approved
    // it was enough.
    if kind == "request" && row.status.is_pending() {
        event.needed = serde_json::from_value::<api::RequestDoc>(row.doc.clone())
            .ok()
            .map(|d| d.requirement.min_approvals);
    }
    let body = Body::Event {
        request_id: row.id.clone(),
        request,
        event,
    };
    crash::point(kind, "before-log");
    let r = audit.append_blocking(body).inspect_err(|e| {
        tracing::error!(
            "cannot record the {kind} of request {}: {e}; the change is not made",
            row.id
        )
    });
    crash::point(kind, "after-log");
    r
}

type AuditJob = (Body, tokio::sync::oneshot::Sender<Result<(), RecordError>>);

/// Group commit for the server's audit log: a file written by one thread, or (with
/// PostgreSQL) the chain in the database that every replica appends to.
#[derive(Clone)]
pub struct AuditWriter {
    sink: AuditSink,
}

#[derive(Clone)]
enum AuditSink {
    File(std::sync::mpsc::Sender<AuditJob>),
    Database(Arc<store::PgStore>),
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
                let result = log
                    .append(bodies)
                    .map(|_| ())
                    .map_err(|e| RecordError::Append(Arc::new(e)));
                for r in replies {
                    let _ = r.send(result.clone());
                }
            }
        });
        AuditWriter {
            sink: AuditSink::File(tx),
        }
    }

    /// The server's log in the PostgreSQL database: an event recorded from inside a store
    /// transaction is appended in that transaction (committed with the change, or not at all).
    pub fn database(store: Arc<store::PgStore>) -> Self {
        AuditWriter {
            sink: AuditSink::Database(store),
        }
    }

    /// Whether the log lives in the database rather than in a file.
    pub fn in_database(&self) -> bool {
        matches!(self.sink, AuditSink::Database(_))
    }

    /// Appends one event; returns once it is on disk (with everything queued beside it).
    pub async fn append(&self, body: Body) -> Result<(), RecordError> {
        let tx = match &self.sink {
            AuditSink::File(tx) => tx,
            AuditSink::Database(pg) => {
                let pg = Arc::clone(pg);
                return tokio::task::spawn_blocking(move || pg.log_events(vec![body]))
                    .await
                    .map_err(|_| RecordError::WriterStopped)?
                    .map_err(db_record_error);
            }
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        tx.send((body, reply))
            .map_err(|_| RecordError::WriterStopped)?;
        rx.await.map_err(|_| RecordError::WriterStopped)?
    }

    /// [`AuditWriter::append`] for blocking code (never on an async worker thread).
    pub fn append_blocking(&self, body: Body) -> Result<(), RecordError> {
        let tx = match &self.sink {
            AuditSink::File(tx) => tx,
            AuditSink::Database(pg) => {
                // Inside a store transaction (a `Record` callback), the transaction takes it.
                return match store::postgres::capture(body) {
                    None => Ok(()),
                    Some(body) => pg.log_events(vec![body]).map_err(db_record_error),
                };
            }
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        tx.send((body, reply))
            .map_err(|_| RecordError::WriterStopped)?;
        rx.blocking_recv().map_err(|_| RecordError::WriterStopped)?
    }
}

/// A database error met while appending to the log in the database, as a [`RecordError`].
fn db_record_error(e: store::StoreError) -> RecordError {
    match e {
        store::StoreError::Unrecorded(r) => r,
        other => RecordError::Append(Arc::new(crate::audit::AuditError::Io {
            path: "the server log in the database".into(),
            source: std::io::Error::other(other.to_string()),
        })),
    }
}

/// The request part of a `request` event, in the same shape hosts record.
pub(crate) fn request_view(row: &RequestRow) -> RequestView {
    let doc: Option<api::RequestDoc> = serde_json::from_value(row.doc.clone()).ok();
    let claims = doc.as_ref().map(|d| d.claims.clone()).unwrap_or_default();
    RequestView {
        id: row.id.clone(),
        requester: crate::identity::Identity {
            user: row.requester.clone(),
            uid: claims.uid.unwrap_or(0),
            host: claims.host.clone().unwrap_or_default(),
            ci: claims.ci.clone(),
            ci_verified: doc.as_ref().and_then(|d| d.ci_verified.clone()),
            agent: claims.agent.clone(),
        },
        command: CommandInfo {
            argv: doc.as_ref().map(|d| d.argv.clone()).unwrap_or_default(),
            cwd: doc.as_ref().map(|d| d.cwd.clone()).unwrap_or_default(),
            executable: None,
            payload: doc.as_ref().map(|d| d.payload.clone()).unwrap_or_default(),
            shim: None,
        },
        context: doc.as_ref().map(|d| d.context.clone()).unwrap_or_default(),
        reason: doc.as_ref().and_then(|d| d.reason.clone()),
        digest: row.digest.clone(),
    }
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub db: store::Database,
    pub policy: Policy,
    pub audit_log: PathBuf,
    pub key: PathBuf,
    pub limits: listen::Limits,
    /// The chat backends of the server's policy (secrets resolved) and `--public-url`.
    pub chat: chat::ChatConfig,
    /// `--tls-cert` and `--tls-key`: serve HTTPS, reloading both files on SIGHUP.
    pub tls: Option<tls::TlsFiles>,
    /// The web page's sign-in through the identity provider, resolved (secret read).
    pub signin: Option<web::oidc::SignIn>,
    /// The secret key, already checked against the database ([`release::check_key`]).
    pub vault: Option<crate::secrets::vault::VaultKey>,
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
    #[error("{0}")]
    Reconcile(#[from] reconcile::ReconcileError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/requests", post(api::create).get(api::list))
        .route("/v1/requests/{id}", get(api::get))
        .route("/v1/requests/{id}/approve", post(api::approve))
        .route("/v1/requests/{id}/deny", post(api::deny))
        .route("/v1/requests/{id}/cancel", post(api::cancel))
        .route("/v1/requests/{id}/release", post(release::release))
        .route("/v1/me", get(api::me))
        .route("/v1/server-key", get(api::server_key))
        .route(
            "/v1/logs/{log_id}/records",
            post(logs::ingest).get(logs::records),
        )
        .route("/v1/logs/{log_id}/head", get(logs::head))
        .route("/slack/interactions", post(slack::interactions))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// Runs the server until SIGTERM or SIGINT; `ready` gets the bound address. SIGHUP re-reads
/// the TLS certificate and key.
pub fn serve(opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    // Before anything else: a certificate that cannot be used is a configuration error at start.
    let certificate = opts.tls.clone().map(tls::Certificate::open).transpose()?;
    // Idle clients must never take the descriptors the database and the audit log need: take
    // all the system allows, and keep the connection cap below it.
    let fd_limit = listen::raise_fd_limit();
    let limits = opts.limits.fitted_to(fd_limit);
    if limits.max_connections < opts.limits.max_connections {
        tracing::warn!(
            "at most {} connections: the open-file limit is {fd_limit}",
            limits.max_connections
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let signer = load_key(&opts.key)
            .map_err(|e| ServeError::Io(std::io::Error::other(e.to_string())))?;
        let (store, audit, pg): (Arc<dyn Store>, AuditWriter, _) = match &opts.db {
            store::Database::Sqlite(path) => {
                let store = Arc::new(SqliteStore::open(path)?);
                (store.clone(), open_file_log(&opts, store.as_ref())?, None)
            }
            store::Database::Postgres(url) => {
                let pg = Arc::new(store::PgStore::open(url)?);
                pg.start_log(&signer)?;
                (pg.clone(), AuditWriter::database(Arc::clone(&pg)), Some(pg))
            }
        };
        let (changes, _) = broadcast::channel(4096);
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(pg) = pg {
            store::postgres::follow_changes(pg, changes.clone(), stop_rx.clone());
        }
        let oidc = oidc::Verifier::new(opts.policy.ci_issuers.clone());
        let state = Arc::new(AppState {
            oidc,
            signin: opts.signin,
            store,
            policy: Arc::new(opts.policy),
            changes,
            shutdown: stop_rx,
            audit,
            events: AtomicU64::new(0),
            signer,
            audit_path: opts.audit_log.clone(),
            clock: Arc::new(SystemClock),
            chat: chat::Chat::new(opts.chat),
            vault: opts.vault.map(Arc::new),
        });
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| ServeError::Listen(opts.listen, e))?;
        let addr = listener.local_addr()?;
        // Before `ready`: a supervisor may stop the server the moment it says it listens, and
        // a SIGTERM that arrives before the handler exists would kill it ungracefully (143).
        let signals = stop_signals();
        let hangups = hangup_signal();
        ready(addr);
        tokio::spawn(reload_on_hangup(hangups, certificate.clone()));
        tokio::spawn(sweep_expired(Arc::clone(&state)));
        tokio::spawn(chat::follow_changes(Arc::clone(&state)));
        let app = router(Arc::clone(&state));
        let stop = async move {
            wait_for_stop(signals).await;
            let _ = stop_tx.send(true);
        };
        let tls = certificate.as_ref().map(tls::Certificate::server_config);
        if tls.is_some() {
            tls::mark_serving();
        }
        listen::serve(listener, app, limits, tls, stop, Duration::from_secs(10)).await;
        Ok(())
    })
}

/// The server's log in a file beside the SQLite database: checked, tidied and reconciled with
/// the database before anyone connects.
fn open_file_log(opts: &ServeOptions, store: &dyn Store) -> Result<AuditWriter, ServeError> {
    let log = AuditLog::new(&opts.audit_log).with_key(&opts.key);
    log.check_writable()?;
    // What a killed writer left beside the log goes before the first append.
    match log.sweep_litter() {
        Ok(removed) if !removed.is_empty() => tracing::info!(
            "removed {} file(s) an interrupted write left beside the audit log",
            removed.len()
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot tidy the audit log's directory: {e}"),
    }
    // Events a crash left logged but uncommitted are voided before anyone connects.
    if let Some(u) = reconcile::uncommitted(&opts.audit_log, store)? {
        tracing::warn!(
            "record {} ({} of request {}) was logged but never committed: voiding it",
            u.seq,
            u.kind,
            u.request_id
        );
        log.append(vec![u.void()])?;
    }
    Ok(AuditWriter::start(log))
}

/// The server's signing key at `path` (made on first use, named after this host): what
/// `gate serve` signs statements and checkpoints with, and what `gate serve key` prints.
pub fn load_key(
    path: &std::path::Path,
) -> Result<crate::audit::note::NoteSigner, crate::audit::key::KeyError> {
    crate::audit::key::load_or_create(path, &crate::identity::host_name())
}

type StopSignals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;

/// SIGTERM and SIGINT handlers, installed at once (None when the runtime cannot install them:
/// then only SIGKILL stops the server, which is the default anyway).
fn stop_signals() -> StopSignals {
    use tokio::signal::unix::{SignalKind, signal};
    Some((
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::interrupt()).ok()?,
    ))
}

async fn wait_for_stop(signals: StopSignals) {
    let Some((mut term, mut int)) = signals else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The SIGHUP handler, installed before the server says it listens: SIGHUP's default action
/// would end the server, and a supervisor's reload must never do that.
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).ok()
}

/// On each SIGHUP, reads the TLS certificate and key again: new handshakes get the new pair,
/// open connections keep theirs, and a pair that cannot be used leaves the old one serving.
async fn reload_on_hangup(
    signal: Option<tokio::signal::unix::Signal>,
    certificate: Option<Arc<tls::Certificate>>,
) {
    let Some(mut signal) = signal else { return };
    while signal.recv().await.is_some() {
        let Some(c) = &certificate else {
            tracing::info!("SIGHUP: nothing to reload (the server runs without TLS)");
            continue;
        };
        let c = Arc::clone(c);
        match tokio::task::spawn_blocking(move || c.reload().map(|()| c)).await {
            Ok(Ok(c)) => tracing::info!(
                "SIGHUP: reloaded the TLS certificate `{}` and key `{}`; new connections use them",
                c.files().cert.display(),
                c.files().key.display()
            ),
            Ok(Err(e)) => {
                tracing::error!("SIGHUP: {e}; still serving the certificate loaded before")
            }
            Err(e) => tracing::error!("SIGHUP: the reload failed: {e}"),
        }
    }
}

/// Marks overdue requests expired (and records it) twice a second; every 30 s, and after the
/// database reported a full disk, checkpoints its write-ahead log so it cannot grow unbounded
/// and space freed on the disk is used again without a restart.
async fn sweep_expired(st: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ticks: u64 = 0;
    let mut full = false;
    loop {
        tick.tick().await;
        ticks += 1;
        if full || ticks.is_multiple_of(60) {
            let store = Arc::clone(&st.store);
            match tokio::task::spawn_blocking(move || store.maintain()).await {
                Ok(Ok(())) => full = false,
                Ok(Err(e)) => tracing::warn!("database maintenance: {e}"),
                Err(e) => tracing::warn!("database maintenance: {e}"),
            }
        }
        let ids = match st.store.overdue(st.clock.now_ms()) {
            Ok(ids) => ids,
            Err(e) => {
                full |= matches!(e, store::StoreError::Full(_));
                tracing::error!("expiry sweep: {e}");
                continue;
            }
        };
        for id in ids {
            let (store, audit, id2) = (Arc::clone(&st.store), st.audit.clone(), id.clone());
            let now = st.clock.now_ms();
            let expired = tokio::task::spawn_blocking(move || {
                store.finish(&id2, RequestStatus::Expired, now, &|row, _| {
                    record_blocking(&audit, row, "expiry", None, None)
                })
            })
            .await;
            match expired {
                Ok(Ok(true)) => {
                    crash::point("expiry", "committed");
                    st.events.fetch_add(1, Ordering::Relaxed);
                    let _ = st.changes.send(id);
                }
                Ok(Ok(false)) => {}
                // Not recorded, so not expired: the next sweep tries again.
                Ok(Err(e)) => tracing::error!("expiry of request {id}: {e}"),
                Err(e) => tracing::error!("expiry of request {id}: {e}"),
            }
        }
    }
}
