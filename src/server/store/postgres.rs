//! The server's store in PostgreSQL, shared by any number of `gate serve` replicas.
//!
//! What the replicas must agree on is serialised by the database, never by a process:
//! migrations run under an advisory lock; a decision reads its request `FOR UPDATE`; the
//! server's own hash-chained log lives in the database, each append holding the row lock on the
//! chain's head inside the transaction of the change it records (so there is one chain, and no
//! record means no change); a host log's appends hold an advisory lock on its id. Every
//! committed change `NOTIFY`s `gate_changes` with the request id, which each replica's
//! [`follow_changes`] feeds into its long-polls.
//!
//! The driver is the synchronous `postgres` crate, matching the synchronous [`Store`] trait.
//! It runs its own small runtime per connection, which must not be entered from an async worker
//! thread: every call goes through [`blocking`], which steps off the worker first.

use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use ::postgres::{Client, NoTls, Transaction};

use super::*;
use crate::approval::RequestStatus;
use crate::audit::log::checkpoint_text;
use crate::audit::note::NoteSigner;
use crate::audit::record::{Body, GENESIS_PREV, GenesisInfo, Record as AuditRecord, now};

/// Connections each replica keeps at most (besides its LISTEN connection).
const POOL_MAX: usize = 16;
/// The channel every committed change is announced on.
pub const CHANNEL: &str = "gate_changes";
/// How often a replica whose LISTEN connection is down polls for changed requests.
pub const FALLBACK_POLL: Duration = Duration::from_millis(500);
/// The `application_name` of each replica's LISTEN connection (what an operator, or a test,
/// finds it by in `pg_stat_activity`).
pub const LISTEN_APP: &str = "gate serve listen";
/// Advisory lock keys (first half: gate's; second: what is locked).
const LOCK_NS: i32 = 0x6761_7465; // "gate"
const LOCK_MIGRATE: i32 = 1;
const LOCK_HOST_LOG: i32 = 2;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema: what the SQLite store holds, plus the server's own log (which lives
    // here, not in a file, so replicas write one chain) and a change counter for the poll that
    // stands in for LISTEN while it is down.
    "CREATE SEQUENCE gate_change_seq;
     CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT,
        revoked_ms BIGINT
     );
     CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        status TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        decided_ms BIGINT,
        digest TEXT NOT NULL,
        doc TEXT NOT NULL,
        change_seq BIGINT NOT NULL DEFAULT nextval('gate_change_seq'),
        changed_ms BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
     );
     CREATE INDEX requests_status ON requests(status, created_ms);
     CREATE INDEX requests_changed ON requests(changed_ms);
     CREATE INDEX requests_reuse ON requests(requester, digest, decided_ms);
     CREATE TABLE decisions (
        request_id TEXT NOT NULL REFERENCES requests(id),
        principal TEXT NOT NULL,
        kind TEXT NOT NULL,
        comment TEXT,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (request_id, principal)
     );
     CREATE TABLE logs (
        log_id TEXT PRIMARY KEY,
        vkey TEXT,
        count BIGINT NOT NULL,
        head TEXT NOT NULL,
        cosigned TEXT,
        first_seen_ms BIGINT NOT NULL,
        owner TEXT
     );
     CREATE TABLE log_records (
        log_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (log_id, seq)
     );
     CREATE TABLE log_conflicts (
        log_id TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        principal TEXT NOT NULL,
        detail TEXT NOT NULL
     );
     CREATE TABLE web_sessions (
        key TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        flash_ok BOOLEAN,
        flash_text TEXT
     );
     CREATE INDEX web_sessions_expiry ON web_sessions(expires_ms);
     CREATE TABLE server_log (
        seq BIGINT PRIMARY KEY,
        hash TEXT NOT NULL,
        line TEXT NOT NULL
     );
     CREATE TABLE server_log_pending (
        id BIGSERIAL PRIMARY KEY,
        record TEXT NOT NULL
     );
     CREATE TABLE server_log_head (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        log_id TEXT NOT NULL,
        count BIGINT NOT NULL,
        head TEXT NOT NULL,
        checkpoint TEXT NOT NULL
     );",
    // 2: sign-ins through the identity provider between their start and their callback;
    // secrets released to approved runs (sealed; the key is never here), and the one release
    // each approval allows.
    "CREATE TABLE oidc_logins (
        key TEXT PRIMARY KEY,
        browser_hash TEXT NOT NULL,
        verifier TEXT NOT NULL,
        nonce TEXT NOT NULL,
        return_to TEXT NOT NULL,
        created_ms BIGINT NOT NULL
     );
     CREATE INDEX oidc_logins_created ON oidc_logins(created_ms);
     CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        sealed BYTEA NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
     );
     CREATE TABLE releases (
        request_id TEXT PRIMARY KEY REFERENCES requests(id),
        principal TEXT NOT NULL,
        at_ms BIGINT NOT NULL
     );",
];

/// The schema version this binary knows.
pub const SCHEMA: i64 = MIGRATIONS.len() as i64;

impl PgUrl {
    fn error(&self, e: ::postgres::Error) -> StoreError {
        let message = self.scrub(&e.to_string());
        let message = match e.as_db_error() {
            Some(db) => self.scrub(&format!("{message}: {}", db.message())),
            None => message,
        };
        use ::postgres::error::SqlState as S;
        match e.code() {
            Some(c) if *c == S::DISK_FULL || *c == S::OUT_OF_MEMORY => StoreError::Full(message),
            Some(c)
                if *c == S::LOCK_NOT_AVAILABLE
                    || *c == S::T_R_SERIALIZATION_FAILURE
                    || *c == S::T_R_DEADLOCK_DETECTED
                    || *c == S::QUERY_CANCELED =>
            {
                StoreError::Busy(message)
            }
            Some(c)
                if *c == S::ADMIN_SHUTDOWN
                    || *c == S::CRASH_SHUTDOWN
                    || *c == S::CANNOT_CONNECT_NOW
                    || *c == S::READ_ONLY_SQL_TRANSACTION =>
            {
                StoreError::Unavailable(message)
            }
            Some(_) => StoreError::Db(message),
            // No SQLSTATE: the connection itself failed.
            None => StoreError::Unavailable(message),
        }
    }
}

struct Pool {
    idle: Vec<Client>,
    open: usize,
}

pub struct PgStore {
    url: PgUrl,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// Signs the server log's checkpoint after every append (set by [`PgStore::start_log`]).
    signer: OnceLock<NoteSigner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.url)
    }
}

/// Runs blocking database work from wherever the caller is: on an async worker thread the
/// worker steps aside first (the driver's own runtime cannot start inside tokio's), elsewhere
/// it just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

thread_local! {
    /// Server-log bodies recorded by the `Record` callback of the transaction running on this
    /// thread, appended to the chain inside that transaction.
    static CAPTURE: RefCell<Option<Vec<Body>>> = const { RefCell::new(None) };
}

/// Hands `body` to the database transaction running on this thread; gives it back when there
/// is none (then the caller appends it in a transaction of its own).
pub(crate) fn capture(body: Body) -> Option<Body> {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(v) => {
            v.push(body);
            None
        }
        None => Some(body),
    })
}

/// Collects captured bodies while alive; clears the capture however the transaction ends.
struct Capturing;

impl Capturing {
    fn start() -> Self {
        CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
        Capturing
    }
    fn take(&self) -> Vec<Body> {
        CAPTURE.with(|c| {
            c.borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        })
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

/// A pooled connection, given back (or dropped, when broken) at the end of its use.
struct Conn<'a> {
    store: &'a PgStore,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a connection in use")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection in use")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.pool();
        match self.client.take() {
            Some(c) if !c.is_closed() => pool.idle.push(c),
            _ => pool.open -= 1,
        }
        drop(pool);
        self.store.freed.notify_one();
    }
}

impl PgStore {
    /// Connects, checks the schema and applies what is missing (under an advisory lock, so
    /// replicas starting together do not race). Errors are [`StoreError::Config`] or
    /// [`StoreError::Newer`], naming what is wrong, never the password.
    pub fn open(url: &PgUrl) -> Result<Self, StoreError> {
        let store = PgStore {
            url: url.clone(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            signer: OnceLock::new(),
        };
        blocking(|| {
            let mut c = store
                .connect("gate serve")
                .map_err(|e| StoreError::Config(format!("cannot connect to {url}: {e}")))?;
            store.migrate(&mut c)?;
            store.pool().idle.push(c);
            store.pool().open += 1;
            Ok(store)
        })
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connect(&self, app: &str) -> Result<Client, StoreError> {
        let mut config = self.url.config().clone();
        config.application_name(app);
        let mut c = config.connect(NoTls).map_err(|e| self.url.error(e))?;
        // A lock held by a stuck replica answers 503 after a while instead of hanging a request.
        c.batch_execute("SET lock_timeout = '10s'; SET statement_timeout = '30s'")
            .map_err(|e| self.url.error(e))?;
        Ok(c)
    }

    fn migrate(&self, c: &mut Client) -> Result<(), StoreError> {
        let err = |e| self.url.error(e);
        let mut tx = c.transaction().map_err(err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&LOCK_NS, &LOCK_MIGRATE],
        )
        .map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS gate_schema (
                one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                version BIGINT NOT NULL
             )",
        )
        .map_err(err)?;
        let version: i64 = tx
            .query_opt("SELECT version FROM gate_schema", &[])
            .map_err(err)?
            .map(|r| r.get(0))
            .unwrap_or(0);
        if version > SCHEMA {
            return Err(StoreError::Newer {
                found: version,
                known: SCHEMA,
            });
        }
        for m in MIGRATIONS.iter().skip(version as usize) {
            tx.batch_execute(m).map_err(err)?;
        }
        tx.execute(
            "INSERT INTO gate_schema (one, version) VALUES (TRUE, $1)
             ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
            &[&SCHEMA],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// A connection from the pool, or a new one while fewer than [`POOL_MAX`] are open.
    fn conn(&self) -> Result<Conn<'_>, StoreError> {
        let mut pool = self.pool();
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(Conn {
                    store: self,
                    client: Some(c),
                });
            }
            if pool.open < POOL_MAX {
                pool.open += 1;
                drop(pool);
                return match self.connect("gate serve") {
                    Ok(c) => Ok(Conn {
                        store: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        self.pool().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (p, timeout) = self
                .freed
                .wait_timeout(pool, Duration::from_secs(10))
                .unwrap_or_else(|e| e.into_inner());
            pool = p;
            if timeout.timed_out() && pool.idle.is_empty() && pool.open >= POOL_MAX {
                return Err(StoreError::Busy(
                    "every database connection stayed in use for 10s".into(),
                ));
            }
        }
    }

    /// Runs `f` on a pooled connection. A connection that turns out to be dead (the database
    /// restarted, a proxy dropped it) is replaced and `f` runs once more: `f` is one read or a
    /// transaction that did not commit, so running it again is safe.
    fn with<R>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<R, ::postgres::Error>,
    ) -> Result<R, StoreError> {
        blocking(|| {
            let mut retried = false;
            loop {
                let mut c = self.conn()?;
                match f(&mut c) {
                    Ok(r) => return Ok(r),
                    Err(e) if c.is_closed() && !retried => {
                        tracing::warn!(
                            "database connection lost ({}); reconnecting",
                            self.url.scrub(&e.to_string())
                        );
                        retried = true;
                    }
                    Err(e) => return Err(self.url.error(e)),
                }
            }
        })
    }

    /// Runs `f` in a transaction that records what `f`'s `Record` callbacks captured in the
    /// server's log (its outbox, in the same transaction: no record, no change), announces
    /// `notify` (a request id) on commit, commits, and then chains the outbox — or, when `f`
    /// says `None`, changes nothing. A refusal or a failure to record rolls everything back.
    fn recorded<R>(
        &self,
        notify: &str,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<Option<R>, TxError>,
    ) -> Result<Option<R>, StoreError> {
        blocking(|| {
            let mut retried = false;
            loop {
                let mut c = self.conn()?;
                let capturing = Capturing::start();
                let attempt = (|| -> Result<Option<(R, bool)>, TxError> {
                    let mut tx = c.transaction()?;
                    let Some(r) = f(&mut tx)? else {
                        return Ok(None);
                    };
                    let bodies = capturing.take();
                    let staged = !bodies.is_empty();
                    if staged {
                        self.stage(&mut tx, bodies, notify)?;
                    } else {
                        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &notify])?;
                    }
                    tx.commit().map_err(TxError::Commit)?;
                    Ok(Some((r, staged)))
                })();
                drop(capturing);
                match attempt {
                    Ok(None) => return Ok(None),
                    Ok(Some((r, staged))) => {
                        if staged {
                            crate::server::crash::point("server-log", "before-chain");
                        }
                        // The events are durable with the change; chaining them now keeps the
                        // chain current. Should it fail, they wait in the outbox for the next
                        // chaining (any replica's next change or its housekeeping).
                        if staged && let Err(e) = self.chain_in(&mut c) {
                            tracing::warn!(
                                "the server log's chain is behind (its events are kept and chained later): {e}"
                            );
                        }
                        return Ok(Some(r));
                    }
                    Err(TxError::Pg(e)) if c.is_closed() && !retried => {
                        tracing::warn!(
                            "database connection lost ({}); reconnecting",
                            self.url.scrub(&e.to_string())
                        );
                        retried = true;
                    }
                    Err(TxError::Pg(e) | TxError::Commit(e)) => return Err(self.url.error(e)),
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
        })
    }
}

/// What can end a transaction early.
enum TxError {
    Pg(::postgres::Error),
    /// `COMMIT` itself failed: whether it took effect is unknown, so it is never retried.
    Commit(::postgres::Error),
    Store(StoreError),
}

impl From<::postgres::Error> for TxError {
    fn from(e: ::postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

mod changes;
mod log;
mod queries;
mod release;
pub use changes::follow_changes;
