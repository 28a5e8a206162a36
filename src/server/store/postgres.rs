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
     CREATE TABLE server_log_head (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        log_id TEXT NOT NULL,
        count BIGINT NOT NULL,
        head TEXT NOT NULL,
        checkpoint TEXT NOT NULL
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
    /// server's log, announces `notify` (a request id) on commit, and commits — or, when `f`
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
                let attempt = (|| -> Result<Option<R>, TxError> {
                    let mut tx = c.transaction()?;
                    let Some(r) = f(&mut tx)? else {
                        return Ok(None);
                    };
                    let bodies = capturing.take();
                    if !bodies.is_empty() {
                        self.append_log(&mut tx, bodies)?;
                    }
                    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &notify])?;
                    tx.commit().map_err(TxError::Commit)?;
                    Ok(Some(r))
                })();
                drop(capturing);
                match attempt {
                    Ok(r) => return Ok(r),
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

    /// Appends `bodies` to the server's log inside `tx`, holding the chain head's row lock
    /// until `tx` ends, and re-signs the checkpoint.
    fn append_log(&self, tx: &mut Transaction<'_>, bodies: Vec<Body>) -> Result<(), TxError> {
        let signer = self
            .signer
            .get()
            .ok_or_else(|| TxError::Store(StoreError::Unrecorded(RecordError::WriterStopped)))?;
        let head = tx
            .query_opt(
                "SELECT log_id, count, head FROM server_log_head WHERE one FOR UPDATE",
                &[],
            )?
            .ok_or_else(|| TxError::Store(StoreError::Unrecorded(RecordError::WriterStopped)))?;
        let log_id: String = head.get(0);
        let mut count: i64 = head.get(1);
        let mut prev: String = head.get(2);
        let ins = tx.prepare("INSERT INTO server_log (seq, hash, line) VALUES ($1, $2, $3)")?;
        for body in bodies {
            let line = seal(&log_id, count, &prev, body)?;
            tx.execute(&ins, &[&count, &line.0, &line.1])?;
            prev = line.0;
            count += 1;
        }
        let note = signer.sign(&checkpoint_text(&log_id, count as u64, &prev));
        tx.execute(
            "UPDATE server_log_head SET count = $1, head = $2, checkpoint = $3 WHERE one",
            &[&count, &prev, &note],
        )?;
        Ok(())
    }

    /// Starts (or joins) the server's log: makes its genesis, naming `signer`'s key, when the
    /// database has none; refuses a database whose log was started with another key (every
    /// replica needs the same key file).
    pub fn start_log(&self, signer: &NoteSigner) -> Result<(), StoreError> {
        let copy = NoteSigner::parse_private(&signer.to_private_string())
            .map_err(|e| StoreError::Config(format!("the server's key: {e}")))?;
        let vkey = copy.verifier().to_vkey();
        let _ = self.signer.set(copy);
        let genesis = self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_NS, &LOCK_MIGRATE])?;
            if let Some(r) = tx.query_opt("SELECT line FROM server_log WHERE seq = 0", &[])? {
                return Ok(Err(r.get::<_, String>(0)));
            }
            let log_id = hex::encode(random16());
            let g = AuditRecord::seal(
                &log_id,
                0,
                now(),
                GENESIS_PREV,
                Body::Genesis(GenesisInfo {
                    host: crate::identity::host_name(),
                    created_by: format!("gate {}", env!("CARGO_PKG_VERSION")),
                    key: Some(vkey.clone()),
                }),
            )
            .ok();
            let Some(g) = g else {
                return Ok(Ok(()));
            };
            let line = g.to_line().unwrap_or_default();
            tx.execute(
                "INSERT INTO server_log (seq, hash, line) VALUES (0, $1, $2)",
                &[&g.hash, &line],
            )?;
            let note = self
                .signer
                .get()
                .map(|s| s.sign(&checkpoint_text(&log_id, 1, &g.hash)))
                .unwrap_or_default();
            tx.execute(
                "INSERT INTO server_log_head (one, log_id, count, head, checkpoint) VALUES (TRUE, $1, 1, $2, $3)",
                &[&log_id, &g.hash, &note],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })?;
        let Err(line) = genesis else {
            return Ok(());
        };
        let named = serde_json::from_str::<AuditRecord>(&line)
            .ok()
            .and_then(|r| r.genesis)
            .and_then(|g| g.key);
        if named.as_deref() != Some(vkey.as_str()) {
            return Err(StoreError::Config(format!(
                "the server log in this database was started with the key `{}`, not this server's `{vkey}`: every replica needs the same key file (`--key`)",
                named.unwrap_or_else(|| "none".into())
            )));
        }
        Ok(())
    }

    /// Appends events that go with no state change (a refused push, a refused CI token) in a
    /// transaction of their own.
    pub fn log_events(&self, bodies: Vec<Body>) -> Result<(), StoreError> {
        self.recorded("-", |tx| {
            self.append_log(tx, bodies.clone())?;
            Ok(Some(()))
        })
        .map(|_| ())
    }

    /// The server's log as JSON lines, up to the signed checkpoint read with it (so the lines
    /// and the checkpoint agree even while replicas append).
    pub fn export_log(
        &self,
        mut line: impl FnMut(&str) -> std::io::Result<()>,
    ) -> Result<Option<String>, StoreError> {
        let head = self.with(|c| {
            c.query_opt(
                "SELECT count, checkpoint FROM server_log_head WHERE one",
                &[],
            )
        })?;
        let Some(head) = head else {
            return Ok(None);
        };
        let (count, checkpoint): (i64, String) = (head.get(0), head.get(1));
        let mut from = 0i64;
        while from < count {
            let rows = self.with(|c| {
                c.query(
                    "SELECT seq, line FROM server_log WHERE seq >= $1 AND seq < $2 ORDER BY seq LIMIT 5000",
                    &[&from, &count],
                )
            })?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                from = r.get::<_, i64>(0) + 1;
                line(r.get(1)).map_err(|e| StoreError::Db(format!("writing the export: {e}")))?;
            }
        }
        Ok(Some(checkpoint))
    }

    /// The server log's checkpoint in the database (what `/healthz` and tests read).
    pub fn log_count(&self) -> Result<u64, StoreError> {
        let n: Option<i64> = self.with(|c| {
            Ok(
                c.query_opt("SELECT count FROM server_log_head WHERE one", &[])?
                    .map(|r| r.get(0)),
            )
        })?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// A dedicated connection that `LISTEN`s on [`CHANNEL`].
    fn listener(&self) -> Result<Client, StoreError> {
        let mut c = self.connect(LISTEN_APP)?;
        c.batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(|e| self.url.error(e))?;
        Ok(c)
    }

    /// Requests changed in the last ten seconds, with their change counters.
    fn recently_changed(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT id, change_seq FROM requests WHERE changed_ms >= \
                 (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 10000",
                &[],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
    }
}

/// Feeds every replica's committed changes into `changes` (this replica's long-polls): from a
/// LISTEN connection while it is up; while it is down, by polling every [`FALLBACK_POLL`] for
/// requests whose change counter moved, and reconnecting. Stops when `stop` turns true.
pub fn follow_changes(
    store: Arc<PgStore>,
    changes: tokio::sync::broadcast::Sender<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let spawned = std::thread::Builder::new()
        .name("gate-pg-listen".into())
        .spawn(move || {
            let mut seen: std::collections::HashMap<String, i64> = Default::default();
            let poll = |seen: &mut std::collections::HashMap<String, i64>| match store
                .recently_changed()
            {
                Ok(rows) => {
                    let mut now_seen = std::collections::HashMap::with_capacity(rows.len());
                    for (id, seq) in rows {
                        if seen.get(&id) != Some(&seq) {
                            let _ = changes.send(id.clone());
                        }
                        now_seen.insert(id, seq);
                    }
                    *seen = now_seen;
                }
                Err(e) => tracing::warn!("polling the database for changes: {e}"),
            };
            let mut was_down = false;
            while !*stop.borrow() {
                let mut client = match store.listener() {
                    Ok(c) => c,
                    Err(e) => {
                        if !was_down {
                            tracing::warn!(
                                "cannot LISTEN for other replicas' changes ({e}); polling every {} ms until it is back",
                                FALLBACK_POLL.as_millis()
                            );
                        }
                        was_down = true;
                        poll(&mut seen);
                        std::thread::sleep(FALLBACK_POLL);
                        continue;
                    }
                };
                if was_down {
                    tracing::info!("listening for other replicas' changes again");
                }
                // What changed while nobody listened.
                poll(&mut seen);
                was_down = false;
                while !*stop.borrow() {
                    let next = fallible_next(&mut client.notifications().timeout_iter(FALLBACK_POLL));
                    match next {
                        Ok(Some(id)) => {
                            let _ = changes.send(id);
                        }
                        Ok(None) if !client.is_closed() => {}
                        Ok(None) | Err(_) => {
                            tracing::warn!(
                                "the LISTEN connection to the database dropped; polling every {} ms until it is back",
                                FALLBACK_POLL.as_millis()
                            );
                            was_down = true;
                            break;
                        }
                    }
                }
                if was_down {
                    poll(&mut seen);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the database LISTEN thread: {e}");
    }
}

fn fallible_next(
    it: &mut ::postgres::notifications::TimeoutIter<'_>,
) -> Result<Option<String>, ::postgres::Error> {
    use ::postgres::fallible_iterator::FallibleIterator;
    Ok(it.next()?.map(|n| n.payload().to_owned()))
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // The log id need only be unique: the time will do when the kernel has no randomness.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = t.to_be_bytes();
    }
    b
}

/// A record of the server's log: (hash, line).
fn seal(log_id: &str, seq: i64, prev: &str, body: Body) -> Result<(String, String), TxError> {
    let bad = |e: crate::jcs::FloatError| {
        TxError::Store(StoreError::Unrecorded(RecordError::Append(Arc::new(
            crate::audit::AuditError::from(e),
        ))))
    };
    let r = AuditRecord::seal(log_id, seq as u64, now(), prev, body).map_err(bad)?;
    let line = r.to_line().map_err(bad)?;
    Ok((r.hash, line))
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

const REQUEST_COLS: &str = "id, requester, status, created_ms, expires_ms, decided_ms, digest, doc";

fn request_row(r: &::postgres::Row) -> Result<RequestRow, StoreError> {
    let status: String = r.get(2);
    let doc: String = r.get(7);
    Ok(RequestRow {
        id: r.get(0),
        requester: r.get(1),
        status: RequestStatus::parse(&status)
            .ok_or_else(|| StoreError::Db(format!("unknown request status `{status}`")))?,
        created_ms: r.get(3),
        expires_ms: r.get(4),
        decided_ms: r.get(5),
        digest: r.get(6),
        doc: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
    })
}

fn decision_row(r: &::postgres::Row) -> DecisionRow {
    DecisionRow {
        request_id: r.get(0),
        principal: r.get(1),
        kind: r.get(2),
        comment: r.get(3),
        at_ms: r.get(4),
    }
}

fn token_row(r: &::postgres::Row) -> TokenRow {
    TokenRow {
        id: r.get(0),
        principal: r.get(1),
        hash: r.get(2),
        created_ms: r.get(3),
        expires_ms: r.get(4),
        revoked_ms: r.get(5),
    }
}

const DECISIONS: &str = "SELECT request_id, principal, kind, comment, at_ms FROM decisions \
                         WHERE request_id = $1 ORDER BY at_ms, principal";

/// Requests with their decisions, read on one connection.
fn with_decisions(
    c: &mut impl ::postgres::GenericClient,
    rows: Vec<::postgres::Row>,
) -> Result<Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError>, ::postgres::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let row = match request_row(&r) {
            Ok(row) => row,
            Err(e) => return Ok(Err(e)),
        };
        let d = c.query(DECISIONS, &[&row.id])?;
        out.push((row, d.iter().map(decision_row).collect()));
    }
    Ok(Ok(out))
}

impl Store for PgStore {
    fn check_writable(&self) -> Result<(), StoreError> {
        let standby: bool =
            self.with(|c| Ok(c.query_one("SELECT pg_is_in_recovery()", &[])?.get(0)))?;
        if standby {
            return Err(StoreError::Unavailable(
                "the database is a read-only standby".into(),
            ));
        }
        Ok(())
    }

    fn maintain(&self) -> Result<(), StoreError> {
        // PostgreSQL's autovacuum keeps its own files in shape.
        Ok(())
    }

    fn log_get(&self, log_id: &str) -> Result<Option<LogRow>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT log_id, vkey, count, head, cosigned, owner FROM logs WHERE log_id = $1",
                &[&log_id],
            )?
            .map(|r| LogRow {
                log_id: r.get(0),
                vkey: r.get(1),
                count: r.get::<_, i64>(2) as u64,
                head: r.get(3),
                cosigned: r.get(4),
                owner: r.get(5),
            }))
        })
    }

    fn log_hash_at(&self, log_id: &str, seq: u64) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT hash FROM log_records WHERE log_id = $1 AND seq = $2",
                &[&log_id, &(seq as i64)],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn log_append(
        &self,
        log_id: &str,
        expected_count: u64,
        records: &[(u64, String, String)],
        vkey: Option<&str>,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // One appender per host log across every replica: the head cannot fork.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&LOCK_HOST_LOG, &log_id],
            )?;
            let count: Option<i64> = tx
                .query_opt("SELECT count FROM logs WHERE log_id = $1", &[&log_id])?
                .map(|r| r.get(0));
            if count.unwrap_or(0) as u64 != expected_count {
                return Ok(false);
            }
            let Some((last_seq, last_hash, _)) = records.last() else {
                return Ok(true);
            };
            let ins = tx.prepare(
                "INSERT INTO log_records (log_id, seq, hash, line) VALUES ($1, $2, $3, $4)",
            )?;
            for (seq, hash, line) in records {
                tx.execute(&ins, &[&log_id, &(*seq as i64), hash, line])?;
            }
            let new_count = (*last_seq + 1) as i64;
            if count.is_none() {
                tx.execute(
                    "INSERT INTO logs (log_id, vkey, count, head, cosigned, first_seen_ms, owner) VALUES ($1, $2, $3, $4, NULL, $5, $6)",
                    &[&log_id, &vkey, &new_count, last_hash, &now_ms, &owner],
                )?;
            } else {
                tx.execute(
                    "UPDATE logs SET count = $2, head = $3, vkey = COALESCE(vkey, $4), owner = COALESCE(owner, $5) WHERE log_id = $1",
                    &[&log_id, &new_count, last_hash, &vkey, &owner],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn log_set_cosigned(&self, log_id: &str, note: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE logs SET cosigned = $2 WHERE log_id = $1",
                &[&log_id, &note],
            )
        })
        .map(|_| ())
    }

    fn log_records(&self, log_id: &str, from: u64, limit: u64) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT line FROM log_records WHERE log_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                &[&log_id, &(from as i64), &(limit.min(i64::MAX as u64) as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn log_conflict(
        &self,
        log_id: &str,
        at_ms: i64,
        principal: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO log_conflicts (log_id, at_ms, principal, detail) VALUES ($1, $2, $3, $4)",
                &[&log_id, &at_ms, &principal, &detail],
            )
        })
        .map(|_| ())
    }

    fn token_insert(&self, t: &TokenRow) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (id, principal, hash, created_ms, expires_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&t.id, &t.principal, &t.hash, &t.created_ms, &t.expires_ms, &t.revoked_ms],
            )
        })
        .map(|_| ())
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT id, principal, hash, created_ms, expires_ms, revoked_ms FROM tokens WHERE hash = $1",
                &[&hash],
            )?
            .as_ref()
            .map(token_row))
        })
    }

    fn token_list(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT id, principal, hash, created_ms, expires_ms, revoked_ms FROM tokens ORDER BY created_ms",
                &[],
            )?
            .iter()
            .map(token_row)
            .collect())
        })
    }

    fn token_revoke(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &at_ms],
            )
        })?;
        Ok(n == 1)
    }

    fn request_insert(&self, r: &RequestRow, record: Record<'_>) -> Result<(), StoreError> {
        self.recorded(&r.id, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO requests ({REQUEST_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &r.id,
                    &r.requester,
                    &r.status.as_str(),
                    &r.created_ms,
                    &r.expires_ms,
                    &r.decided_ms,
                    &r.digest,
                    &r.doc.to_string(),
                ],
            )?;
            record(r, &[]).map_err(StoreError::Unrecorded)?;
            Ok(Some(()))
        })
        .map(|_| ())
    }

    fn request_get(&self, id: &str) -> Result<Option<(RequestRow, Vec<DecisionRow>)>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                &format!("SELECT {REQUEST_COLS} FROM requests WHERE id = $1"),
                &[&id],
            )?;
            with_decisions(c, rows)
        })?
        .map(|v| v.into_iter().next())
    }

    fn request_list(
        &self,
        status: Option<RequestStatus>,
    ) -> Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError> {
        self.with(|c| {
            let rows = match status {
                Some(s) => c.query(
                    &format!("SELECT {REQUEST_COLS} FROM requests WHERE status = $1 ORDER BY created_ms LIMIT 500"),
                    &[&s.as_str()],
                )?,
                None => c.query(
                    &format!("SELECT {REQUEST_COLS} FROM requests ORDER BY created_ms DESC LIMIT 500"),
                    &[],
                )?,
            };
            with_decisions(c, rows)
        })?
    }

    fn request_approved_of(
        &self,
        requester: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {REQUEST_COLS} FROM requests WHERE status = 'approved' \
                     AND requester = $1 AND digest = $2 ORDER BY decided_ms DESC LIMIT $3"
                ),
                &[&requester, &digest, &(limit as i64)],
            )?;
            with_decisions(c, rows)
        })?
    }

    fn request_ids_matching(
        &self,
        part: &str,
        status: Option<RequestStatus>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let status = status.map(|s| s.as_str());
        self.with(|c| {
            // left/right, not LIKE: nothing in `part` is ever read as a pattern.
            Ok(c.query(
                "SELECT id FROM requests WHERE (left(id, length($1)) = $1 \
                 OR right(id, length($1)) = $1) AND ($2::text IS NULL OR status = $2) \
                 ORDER BY created_ms, id LIMIT $3",
                &[&part, &status, &(limit as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn decide(
        &self,
        d: &DecisionRow,
        evaluate: Evaluate<'_>,
        record: Record<'_>,
    ) -> Result<(RequestRow, Vec<DecisionRow>), StoreError> {
        let done = self.recorded(&d.request_id, |tx| {
            // The row lock makes every replica's decision on this request wait for this one:
            // the callback sees every decision made so far, and no two finish it.
            let row = tx
                .query_opt(
                    &format!("SELECT {REQUEST_COLS} FROM requests WHERE id = $1 FOR UPDATE"),
                    &[&d.request_id],
                )?
                .ok_or(StoreError::NotFound)?;
            let mut row = request_row(&row)?;
            let mut all: Vec<DecisionRow> = tx
                .query(DECISIONS, &[&d.request_id])?
                .iter()
                .map(decision_row)
                .collect();
            all.push(d.clone());
            let new_status = evaluate(&row, &all).map_err(StoreError::Refused)?;
            tx.execute(
                "INSERT INTO decisions (request_id, principal, kind, comment, at_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&d.request_id, &d.principal, &d.kind, &d.comment, &d.at_ms],
            )?;
            match new_status {
                Some(s) => {
                    tx.execute(
                        "UPDATE requests SET status = $2, decided_ms = $3, \
                         change_seq = nextval('gate_change_seq'), \
                         changed_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint WHERE id = $1",
                        &[&d.request_id, &s.as_str(), &d.at_ms],
                    )?;
                    row.status = s;
                    row.decided_ms = Some(d.at_ms);
                }
                None => {
                    tx.execute(
                        "UPDATE requests SET change_seq = nextval('gate_change_seq'), \
                         changed_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint WHERE id = $1",
                        &[&d.request_id],
                    )?;
                }
            }
            record(&row, &all).map_err(StoreError::Unrecorded)?;
            Ok(Some((row, all)))
        })?;
        done.ok_or(StoreError::NotFound)
    }

    fn finish(
        &self,
        id: &str,
        status: RequestStatus,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError> {
        let done = self.recorded(id, |tx| {
            let Some(row) = tx.query_opt(
                &format!(
                    "UPDATE requests SET status = $2, decided_ms = $3, \
                     change_seq = nextval('gate_change_seq'), \
                     changed_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
                     WHERE id = $1 AND status = 'pending' RETURNING {REQUEST_COLS}"
                ),
                &[&id, &status.as_str(), &at_ms],
            )?
            else {
                return Ok(None);
            };
            let row = request_row(&row)?;
            let all: Vec<DecisionRow> = tx
                .query(DECISIONS, &[&id])?
                .iter()
                .map(decision_row)
                .collect();
            record(&row, &all).map_err(StoreError::Unrecorded)?;
            Ok(Some(()))
        })?;
        Ok(done.is_some())
    }

    fn overdue(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT id FROM requests WHERE status = 'pending' AND expires_ms <= $1",
                &[&now_ms],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn session_insert(
        &self,
        key: &str,
        s: &SessionRow,
        now_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        let keep = max.saturating_sub(1) as i64;
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "DELETE FROM web_sessions WHERE expires_ms <= $1",
                &[&now_ms],
            )?;
            tx.execute(
                "DELETE FROM web_sessions WHERE key IN (SELECT key FROM web_sessions \
                 ORDER BY expires_ms DESC OFFSET $1)",
                &[&keep],
            )?;
            tx.execute(
                "INSERT INTO web_sessions (key, principal, token_hash, csrf, expires_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET \
                 principal = EXCLUDED.principal, token_hash = EXCLUDED.token_hash, \
                 csrf = EXCLUDED.csrf, expires_ms = EXCLUDED.expires_ms, \
                 flash_ok = NULL, flash_text = NULL",
                &[&key, &s.principal, &s.token_hash, &s.csrf, &s.expires_ms],
            )?;
            tx.commit()
        })
    }

    fn session_get(&self, key: &str, now_ms: i64) -> Result<Option<SessionRow>, StoreError> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT principal, token_hash, csrf, expires_ms FROM web_sessions WHERE key = $1",
                    &[&key],
                )?
                .map(|r| SessionRow {
                    principal: r.get(0),
                    token_hash: r.get(1),
                    csrf: r.get(2),
                    expires_ms: r.get(3),
                });
            match row {
                Some(s) if s.expires_ms > now_ms => Ok(Some(s)),
                Some(_) => {
                    c.execute("DELETE FROM web_sessions WHERE key = $1", &[&key])?;
                    Ok(None)
                }
                None => Ok(None),
            }
        })
    }

    fn session_delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|c| c.execute("DELETE FROM web_sessions WHERE key = $1", &[&key]))
            .map(|_| ())
    }

    fn session_set_flash(&self, key: &str, ok: bool, text: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE web_sessions SET flash_ok = $2, flash_text = $3 WHERE key = $1",
                &[&key, &ok, &text],
            )
        })
        .map(|_| ())
    }

    fn session_take_flash(&self, key: &str) -> Result<Option<(bool, String)>, StoreError> {
        self.with(|c| {
            // One statement: two tabs of one session never both show the message.
            Ok(c.query_opt(
                "UPDATE web_sessions w SET flash_ok = NULL, flash_text = NULL \
                 FROM (SELECT key, flash_ok, flash_text FROM web_sessions WHERE key = $1 \
                 AND flash_ok IS NOT NULL AND flash_text IS NOT NULL FOR UPDATE) old \
                 WHERE w.key = old.key RETURNING old.flash_ok, old.flash_text",
                &[&key],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })
    }
}
