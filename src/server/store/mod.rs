//! Storage for `gate serve` behind a trait, so a PostgreSQL store can follow without the server
//! knowing which one it talks to. Every method is one atomic step; the only read-modify-write,
//! recording a decision, is a single method that takes the eligibility check as a callback and
//! runs it inside the store's transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL would use
//! `SELECT ... FOR UPDATE`).

use serde::{Deserialize, Serialize};

use crate::approval::RequestStatus;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    /// The database's disk (or its quota) is full: nothing was written.
    #[error("disk full writing the database: {0}")]
    Full(String),
    /// Another writer held the database past the busy timeout.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database file cannot be opened or read (I/O error, permissions, out of descriptors).
    #[error("cannot open or read the database: {0}")]
    Unavailable(String),
    #[error("no such request")]
    NotFound,
    /// The database is not usable as configured (a bad URL, no server there, a refused
    /// password): what `gate serve` reports at start (exit 78).
    #[error("{0}")]
    Config(String),
    /// The database's schema is newer than this binary knows: never written to by it.
    #[error(
        "the database was made by a newer gate (schema {found}, this gate knows {known}); run that gate's version or newer"
    )]
    Newer { found: i64, known: i64 },
    /// The callback refused the change (not eligible, already decided, ...).
    #[error("{0}")]
    Refused(Refusal),
    /// The change could not be recorded in the audit log, so it was not made (fail closed).
    #[error("the change could not be recorded, so it was not made: {0}")]
    Unrecorded(RecordError),
}

/// Why a state change could not be recorded in the server's audit log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// The writer thread is gone (the server is shutting down, or it died).
    #[error("the audit writer has stopped")]
    WriterStopped,
    /// The log refused the append; shared by every change committed in the same batch.
    #[error("{0}")]
    Append(std::sync::Arc<crate::audit::AuditError>),
}

impl RecordError {
    /// Whether the log could not be written because its disk (or quota) is full.
    pub fn disk_full(&self) -> bool {
        let RecordError::Append(e) = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && matches!(io.raw_os_error(), Some(28 | 122))
            {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

/// Why a decision was refused, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An API token as stored: only its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub principal: String,
    #[serde(skip)]
    pub hash: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// A request as the server holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRow {
    pub id: String,
    pub requester: String,
    pub status: RequestStatus,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub decided_ms: Option<i64>,
    pub digest: String,
    /// The request document (argv redacted, context, reason, client claims, rules,
    /// requirement), as JSON.
    pub doc: serde_json::Value,
}

/// One approval or denial.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecisionRow {
    pub request_id: String,
    pub principal: String,
    /// `approve` or `deny`.
    pub kind: String,
    pub comment: Option<String>,
    pub at_ms: i64,
}

/// A signed-in browser session, keyed by the SHA-256 of its id (the id itself is only in the
/// browser's cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub principal: String,
    /// The hash of the token signed in with: checked on every use, so a revoked or expired
    /// token ends the session.
    pub token_hash: String,
    pub csrf: String,
    pub expires_ms: i64,
}

/// A sign-in through the identity provider that has started and not come back yet (issue 14
/// §4), keyed by the SHA-256 of its `state`. Single use: taking it deletes it.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcLoginRow {
    /// SHA-256 (hex) of the random value in the browser's login cookie: the callback must come
    /// from the browser that started the sign-in.
    pub browser_hash: String,
    /// The PKCE code verifier (sent to the token endpoint with the code).
    pub verifier: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The local path to go to once signed in.
    pub return_to: String,
    pub created_ms: i64,
}

/// No verifier or nonce in logs: only the path and the time.
impl std::fmt::Debug for OidcLoginRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLoginRow")
            .field("return_to", &self.return_to)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// A named secret as stored: its value sealed under the server's secret key (AES-256-GCM,
/// [`crate::secrets::vault`]); the key itself is never in the store. `Debug` shows no bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub name: String,
    /// Nonce, ciphertext and tag.
    pub sealed: Vec<u8>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretRow({}, {} sealed bytes, created {}, updated {})",
            self.name,
            self.sealed.len(),
            self.created_ms,
            self.updated_ms
        )
    }
}

/// What the eligibility callback decides about a new decision.
pub type Evaluate<'a> =
    &'a dyn Fn(&RequestRow, &[DecisionRow]) -> Result<Option<RequestStatus>, Refusal>;

/// Records a state change durably (the server's audit log) from inside the store's
/// transaction, with the request as it will be once committed. An error rolls the change back:
/// a change that cannot be recorded is not made.
pub type Record<'a> = &'a dyn Fn(&RequestRow, &[DecisionRow]) -> Result<(), RecordError>;

/// What the server holds of one host's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRow {
    pub log_id: String,
    /// The verifier key its genesis named (first seen, never replaced).
    pub vkey: Option<String>,
    pub count: u64,
    pub head: String,
    /// The latest host checkpoint, cosigned by the server.
    pub cosigned: Option<String>,
    /// The principal that shipped the genesis: only it may add records.
    pub owner: Option<String>,
}

pub trait Store: Send + Sync {
    /// Whether a change could be written now: a full disk or a held lock is an error naming
    /// it. What `/healthz` asks.
    fn check_writable(&self) -> Result<(), StoreError>;
    /// Housekeeping the server runs now and then and after a full disk: keeps the write-ahead
    /// log from growing without bound.
    fn maintain(&self) -> Result<(), StoreError>;
    fn log_get(&self, log_id: &str) -> Result<Option<LogRow>, StoreError>;
    /// The hash of the record at `seq`, if held.
    fn log_hash_at(&self, log_id: &str, seq: u64) -> Result<Option<String>, StoreError>;
    /// Appends records continuing from `expected_count` (compare-and-set: false if another
    /// writer moved the head first). `records` are (seq, hash, line).
    fn log_append(
        &self,
        log_id: &str,
        expected_count: u64,
        records: &[(u64, String, String)],
        vkey: Option<&str>,
        owner: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    fn log_set_cosigned(&self, log_id: &str, note: &str) -> Result<(), StoreError>;
    fn log_records(&self, log_id: &str, from: u64, limit: u64) -> Result<Vec<String>, StoreError>;
    fn log_conflict(
        &self,
        log_id: &str,
        at_ms: i64,
        principal: &str,
        detail: &str,
    ) -> Result<(), StoreError>;

    fn token_insert(&self, t: &TokenRow) -> Result<(), StoreError>;
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError>;
    fn token_list(&self) -> Result<Vec<TokenRow>, StoreError>;
    /// Revokes by id; false if there was no such live token.
    fn token_revoke(&self, id: &str, at_ms: i64) -> Result<bool, StoreError>;

    /// Inserts a request once `record` has recorded it.
    fn request_insert(&self, r: &RequestRow, record: Record<'_>) -> Result<(), StoreError>;
    fn request_get(&self, id: &str) -> Result<Option<(RequestRow, Vec<DecisionRow>)>, StoreError>;
    fn request_list(
        &self,
        status: Option<RequestStatus>,
    ) -> Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError>;
    /// `requester`'s approved requests of `digest`, newest first (at most `limit`): the
    /// candidates for an approval reuse.
    fn request_approved_of(
        &self,
        requester: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError>;
    /// The ids that start or end with `part` (at most `limit`, oldest first), among the
    /// requests with `status` (any status when `None`). `part` is hex digits and `-` only
    /// ([`crate::request::IdQuery`]).
    fn request_ids_matching(
        &self,
        part: &str,
        status: Option<RequestStatus>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Records `d` if `evaluate` (run inside the transaction, seeing the decisions so far plus
    /// `d`) accepts it and `record` has recorded it; its `Some(status)` moves the request to
    /// that status.
    fn decide(
        &self,
        d: &DecisionRow,
        evaluate: Evaluate<'_>,
        record: Record<'_>,
    ) -> Result<(RequestRow, Vec<DecisionRow>), StoreError>;
    /// Moves a request from `pending` to `status` (cancel, expire) once `record` has recorded
    /// it; false if it was not pending.
    fn finish(
        &self,
        id: &str,
        status: RequestStatus,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError>;
    /// Pending requests whose deadline has passed.
    fn overdue(&self, now_ms: i64) -> Result<Vec<String>, StoreError>;

    /// Stores a browser session under `key`, first dropping expired ones and then, past `max`,
    /// the ones closest to expiry.
    fn session_insert(
        &self,
        key: &str,
        s: &SessionRow,
        now_ms: i64,
        max: usize,
    ) -> Result<(), StoreError>;
    /// The session under `key` while it has not expired (an expired one is deleted).
    fn session_get(&self, key: &str, now_ms: i64) -> Result<Option<SessionRow>, StoreError>;
    fn session_delete(&self, key: &str) -> Result<(), StoreError>;
    /// Keeps a message to show once on the session's next page (ok or not, and its text).
    fn session_set_flash(&self, key: &str, ok: bool, text: &str) -> Result<(), StoreError>;
    /// Takes the message kept for the session, clearing it.
    fn session_take_flash(&self, key: &str) -> Result<Option<(bool, String)>, StoreError>;

    /// Keeps a started sign-in under `key` (the SHA-256 of its `state`), first dropping those
    /// created at or before `stale_ms` and then, past `max`, the oldest.
    fn oidc_login_insert(
        &self,
        key: &str,
        row: &OidcLoginRow,
        stale_ms: i64,
        max: usize,
    ) -> Result<(), StoreError>;
    /// Removes and returns the sign-in under `key`, in one step: a `state` is good once, even
    /// when two replicas see the same callback at the same time.
    fn oidc_login_take(&self, key: &str) -> Result<Option<OidcLoginRow>, StoreError>;
    /// Stores `sealed` as secret `name`, replacing any value there (its `created_ms` is kept).
    /// The key check value is a row too, under a name no secret can have
    /// ([`crate::secrets::vault::CHECK_NAME`]).
    fn secret_put(&self, name: &str, sealed: &[u8], now_ms: i64) -> Result<(), StoreError>;
    /// Stores `sealed` as `name` only when there is no row by that name; false (the row left as
    /// it was) when there is one. What makes the first key check value the database's, when
    /// replicas or `gate serve secret` with different keys start at once.
    fn secret_put_new(&self, name: &str, sealed: &[u8], now_ms: i64) -> Result<bool, StoreError>;
    fn secret_get(&self, name: &str) -> Result<Option<SecretRow>, StoreError>;
    /// Every row, by name (the key check value among them).
    fn secret_list(&self) -> Result<Vec<SecretRow>, StoreError>;
    /// Deletes secret `name`; false if there was none.
    fn secret_delete(&self, name: &str) -> Result<bool, StoreError>;
    /// Marks approved request `id` as released to `principal` once `record` has recorded it:
    /// one release per approval. False (nothing recorded) if it was released already or is
    /// not approved.
    fn request_release(
        &self,
        id: &str,
        principal: &str,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError>;
    /// When request `id`'s release was committed, if it was (what a restart checks a logged
    /// `released` event against).
    fn request_released(&self, id: &str) -> Result<Option<i64>, StoreError>;
}

/// Where `gate serve` keeps its state (`--db`): a SQLite file, or a PostgreSQL database that
/// several replicas share.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(std::path::PathBuf),
    Postgres(Box<PgUrl>),
}

impl Database {
    /// `postgres://` and `postgresql://` URLs name PostgreSQL; anything else is a SQLite file.
    pub fn from_arg(db: std::path::PathBuf) -> Result<Self, StoreError> {
        match db.to_str() {
            Some(s) if is_postgres_url(s) => {
                PgUrl::parse(s).map(|u| Database::Postgres(Box::new(u)))
            }
            _ => Ok(Database::Sqlite(db)),
        }
    }

    /// Opens it (creating and migrating as needed).
    pub fn open(&self) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(match self {
            Database::Sqlite(p) => std::sync::Arc::new(SqliteStore::open(p)?),
            Database::Postgres(u) => std::sync::Arc::new(PgStore::open(u)?),
        })
    }
}

/// The path, or the URL with its password hidden.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(u) => write!(f, "{u}"),
        }
    }
}

mod pg_url;
pub mod postgres;
mod sqlite;
pub use pg_url::{PgUrl, is_postgres_url, redact};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
