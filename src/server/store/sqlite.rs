//! The server's store in SQLite (WAL, synchronous FULL): migrations, queries, and the
//! transactions that make each change together with its audit event.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::approval::RequestStatus;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let message = e.to_string();
        match e.sqlite_error_code() {
            Some(C::DiskFull) => StoreError::Full(message),
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy(message),
            Some(C::CannotOpen | C::SystemIoFailure | C::ReadOnly | C::PermissionDenied) => {
                StoreError::Unavailable(message)
            }
            _ => StoreError::Db(message),
        }
    }
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
}

/// The write-ahead log is checkpointed every this many pages (4 KiB each) and cut back to
/// `WAL_LIMIT` bytes after, so it stays small on a small volume.
const WAL_PAGES: i64 = 256;
const WAL_LIMIT: i64 = 1 << 20;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        revoked_ms INTEGER
     );
     CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        status TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        decided_ms INTEGER,
        digest TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX requests_status ON requests(status, created_ms);
     CREATE TABLE decisions (
        request_id TEXT NOT NULL REFERENCES requests(id),
        principal TEXT NOT NULL,
        kind TEXT NOT NULL,
        comment TEXT,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (request_id, principal)
     );",
    // 2: hosts' audit logs, witnessed.
    "CREATE TABLE logs (
        log_id TEXT PRIMARY KEY,
        vkey TEXT,
        count INTEGER NOT NULL,
        head TEXT NOT NULL,
        cosigned TEXT,
        first_seen_ms INTEGER NOT NULL
     );
     CREATE TABLE log_records (
        log_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (log_id, seq)
     );
     CREATE TABLE log_conflicts (
        log_id TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        principal TEXT NOT NULL,
        detail TEXT NOT NULL
     );",
    // 3: a log belongs to the principal that shipped its genesis.
    "ALTER TABLE logs ADD COLUMN owner TEXT;",
    // 4: browser sessions, so a restart signs nobody out.
    "CREATE TABLE web_sessions (
        key TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        flash_ok INTEGER,
        flash_text TEXT
     );
     CREATE INDEX web_sessions_expiry ON web_sessions(expires_ms);",
    // 5: sign-ins through the identity provider between their start and their callback.
    "CREATE TABLE oidc_logins (
        key TEXT PRIMARY KEY,
        browser_hash TEXT NOT NULL,
        verifier TEXT NOT NULL,
        nonce TEXT NOT NULL,
        return_to TEXT NOT NULL,
        created_ms INTEGER NOT NULL
     );
     CREATE INDEX oidc_logins_created ON oidc_logins(created_ms);",
    // 6: secrets released to approved runs (sealed; the key is never here), and the one
    // release each approval allows.
    "CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        sealed BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
     );
     CREATE TABLE releases (
        request_id TEXT PRIMARY KEY REFERENCES requests(id),
        principal TEXT NOT NULL,
        at_ms INTEGER NOT NULL
     );",
];

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_LIMIT)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::Newer {
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            conn.execute_batch(&format!(
                "BEGIN; {m}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        principal: r.get(1)?,
        hash: r.get(2)?,
        created_ms: r.get(3)?,
        expires_ms: r.get(4)?,
        revoked_ms: r.get(5)?,
    })
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    let doc: String = r.get(7)?;
    Ok(RequestRow {
        id: r.get(0)?,
        requester: r.get(1)?,
        status: r.get(2)?,
        created_ms: r.get(3)?,
        expires_ms: r.get(4)?,
        decided_ms: r.get(5)?,
        digest: r.get(6)?,
        doc: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
    })
}

const REQUEST_COLS: &str = "id, requester, status, created_ms, expires_ms, decided_ms, digest, doc";

/// The `status` column holds the status's wire spelling.
/// Before one more row goes into `table` (keyed by `key`): drops the rows whose `by` is at or
/// before `cutoff`, then, past `max - 1` rows, the oldest by `by`. `table` and `by` are this
/// file's own names, never input.
fn make_room(
    tx: &rusqlite::Transaction<'_>,
    table: &'static str,
    by: &'static str,
    cutoff: i64,
    max: usize,
) -> Result<(), StoreError> {
    tx.execute(&format!("DELETE FROM {table} WHERE {by} <= ?1"), [cutoff])?;
    let keep = max.saturating_sub(1) as i64;
    tx.execute(
        &format!(
            "DELETE FROM {table} WHERE key IN (SELECT key FROM {table} \
             ORDER BY {by} DESC LIMIT -1 OFFSET ?1)"
        ),
        [keep],
    )?;
    Ok(())
}

impl ToSql for RequestStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A `status` that is none of the five is a damaged row, refused rather than guessed at.
impl FromSql for RequestStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        RequestStatus::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown request status `{s}`").into()))
    }
}

fn decisions(conn: &Connection, id: &str) -> rusqlite::Result<Vec<DecisionRow>> {
    let mut st = conn.prepare_cached(
        "SELECT request_id, principal, kind, comment, at_ms FROM decisions WHERE request_id = ?1 ORDER BY at_ms, principal",
    )?;
    let rows = st.query_map([id], |r| {
        Ok(DecisionRow {
            request_id: r.get(0)?,
            principal: r.get(1)?,
            kind: r.get(2)?,
            comment: r.get(3)?,
            at_ms: r.get(4)?,
        })
    })?;
    rows.collect()
}

impl Store for SqliteStore {
    fn log_get(&self, log_id: &str) -> Result<Option<LogRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT log_id, vkey, count, head, cosigned, owner FROM logs WHERE log_id = ?1",
            )?
            .query_row([log_id], |r| {
                Ok(LogRow {
                    log_id: r.get(0)?,
                    vkey: r.get(1)?,
                    count: r.get::<_, i64>(2)? as u64,
                    head: r.get(3)?,
                    cosigned: r.get(4)?,
                    owner: r.get(5)?,
                })
            })
            .optional()?)
    }

    fn log_hash_at(&self, log_id: &str, seq: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT hash FROM log_records WHERE log_id = ?1 AND seq = ?2")?
            .query_row(params![log_id, seq as i64], |r| r.get(0))
            .optional()?)
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
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let count: Option<i64> = tx
            .query_row("SELECT count FROM logs WHERE log_id = ?1", [log_id], |r| {
                r.get(0)
            })
            .optional()?;
        if count.unwrap_or(0) as u64 != expected_count {
            return Ok(false);
        }
        let Some((last_seq, last_hash, _)) = records.last() else {
            return Ok(true);
        };
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO log_records (log_id, seq, hash, line) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (seq, hash, line) in records {
                ins.execute(params![log_id, *seq as i64, hash, line])?;
            }
        }
        if count.is_none() {
            tx.execute(
                "INSERT INTO logs (log_id, vkey, count, head, cosigned, first_seen_ms, owner) VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)",
                params![log_id, vkey, (*last_seq + 1) as i64, last_hash, now_ms, owner],
            )?;
        } else {
            tx.execute(
                "UPDATE logs SET count = ?2, head = ?3, vkey = COALESCE(vkey, ?4), owner = COALESCE(owner, ?5) WHERE log_id = ?1",
                params![log_id, (*last_seq + 1) as i64, last_hash, vkey, owner],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn log_set_cosigned(&self, log_id: &str, note: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE logs SET cosigned = ?2 WHERE log_id = ?1",
            params![log_id, note],
        )?;
        Ok(())
    }

    fn log_records(&self, log_id: &str, from: u64, limit: u64) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT line FROM log_records WHERE log_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![log_id, from as i64, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    fn log_conflict(
        &self,
        log_id: &str,
        at_ms: i64,
        principal: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO log_conflicts (log_id, at_ms, principal, detail) VALUES (?1, ?2, ?3, ?4)",
            params![log_id, at_ms, principal, detail],
        )?;
        Ok(())
    }

    fn token_insert(&self, t: &TokenRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO tokens (id, principal, hash, created_ms, expires_ms, revoked_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.id, t.principal, t.hash, t.created_ms, t.expires_ms, t.revoked_ms],
        )?;
        Ok(())
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT id, principal, hash, created_ms, expires_ms, revoked_ms FROM tokens WHERE hash = ?1")?
            .query_row([hash], token_row)
            .optional()?)
    }

    fn token_list(&self) -> Result<Vec<TokenRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, principal, hash, created_ms, expires_ms, revoked_ms FROM tokens ORDER BY created_ms")?;
        let rows = st
            .query_map([], token_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn token_revoke(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, at_ms],
        )?;
        Ok(n == 1)
    }

    fn request_insert(&self, r: &RequestRow, record: Record<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            &format!(
                "INSERT INTO requests ({REQUEST_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                r.id,
                r.requester,
                r.status,
                r.created_ms,
                r.expires_ms,
                r.decided_ms,
                r.digest,
                r.doc.to_string()
            ],
        )?;
        record(r, &[]).map_err(StoreError::Unrecorded)?;
        tx.commit()?;
        Ok(())
    }

    fn request_get(&self, id: &str) -> Result<Option<(RequestRow, Vec<DecisionRow>)>, StoreError> {
        let conn = self.conn();
        let row = conn
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLS} FROM requests WHERE id = ?1"
            ))?
            .query_row([id], request_row)
            .optional()?;
        match row {
            Some(r) => {
                let d = decisions(&conn, id)?;
                Ok(Some((r, d)))
            }
            None => Ok(None),
        }
    }

    fn request_list(
        &self,
        status: Option<RequestStatus>,
    ) -> Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError> {
        let conn = self.conn();
        let rows: Vec<RequestRow> = match status {
            Some(s) => conn
                .prepare_cached(&format!("SELECT {REQUEST_COLS} FROM requests WHERE status = ?1 ORDER BY created_ms LIMIT 500"))?
                .query_map([s], request_row)?
                .collect::<rusqlite::Result<_>>()?,
            None => conn
                .prepare_cached(&format!("SELECT {REQUEST_COLS} FROM requests ORDER BY created_ms DESC LIMIT 500"))?
                .query_map([], request_row)?
                .collect::<rusqlite::Result<_>>()?,
        };
        rows.into_iter()
            .map(|r| {
                let d = decisions(&conn, &r.id)?;
                Ok((r, d))
            })
            .collect()
    }

    fn request_approved_of(
        &self,
        requester: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Vec<(RequestRow, Vec<DecisionRow>)>, StoreError> {
        let conn = self.conn();
        let rows: Vec<RequestRow> = conn
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLS} FROM requests WHERE status = 'approved' \
                 AND requester = ?1 AND digest = ?2 ORDER BY decided_ms DESC LIMIT ?3"
            ))?
            .query_map(
                rusqlite::params![requester, digest, limit as i64],
                request_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|r| {
                let d = decisions(&conn, &r.id)?;
                Ok((r, d))
            })
            .collect()
    }

    fn request_ids_matching(
        &self,
        part: &str,
        status: Option<RequestStatus>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        // substr, not LIKE: nothing in `part` is ever read as a pattern.
        let mut st = conn.prepare_cached(
            "SELECT id FROM requests WHERE (substr(id, 1, length(?1)) = ?1 \
             OR substr(id, -length(?1)) = ?1) AND (?2 IS NULL OR status = ?2) \
             ORDER BY created_ms, id LIMIT ?3",
        )?;
        let ids = st
            .query_map(rusqlite::params![part, status, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    fn decide(
        &self,
        d: &DecisionRow,
        evaluate: Evaluate<'_>,
        record: Record<'_>,
    ) -> Result<(RequestRow, Vec<DecisionRow>), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row = tx
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLS} FROM requests WHERE id = ?1"
            ))?
            .query_row([&d.request_id], request_row)
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let mut all = decisions(&tx, &d.request_id)?;
        all.push(d.clone());
        let new_status = evaluate(&row, &all).map_err(StoreError::Refused)?;
        tx.execute(
            "INSERT INTO decisions (request_id, principal, kind, comment, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.request_id, d.principal, d.kind, d.comment, d.at_ms],
        )?;
        if let Some(s) = &new_status {
            tx.execute(
                "UPDATE requests SET status = ?2, decided_ms = ?3 WHERE id = ?1",
                params![d.request_id, s, d.at_ms],
            )?;
        }
        let mut row = row;
        if let Some(s) = new_status {
            row.status = s;
            row.decided_ms = Some(d.at_ms);
        }
        record(&row, &all).map_err(StoreError::Unrecorded)?;
        tx.commit()?;
        Ok((row, all))
    }

    fn finish(
        &self,
        id: &str,
        status: RequestStatus,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE requests SET status = ?2, decided_ms = ?3 WHERE id = ?1 AND status = 'pending'",
            params![id, status, at_ms],
        )?;
        if n != 1 {
            return Ok(false);
        }
        let row = tx
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLS} FROM requests WHERE id = ?1"
            ))?
            .query_row([id], request_row)?;
        let all = decisions(&tx, id)?;
        record(&row, &all).map_err(StoreError::Unrecorded)?;
        tx.commit()?;
        Ok(true)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Ok(fs) = nix::sys::statvfs::statvfs(dir)
            && fs.blocks_available() == 0
        {
            return Err(StoreError::Full(format!(
                "no space left in {}",
                dir.display()
            )));
        }
        // Take the write lock and let it go: a writer holding it past the busy timeout shows.
        let conn = self.conn();
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
        Ok(())
    }

    fn maintain(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn overdue(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT id FROM requests WHERE status = 'pending' AND expires_ms <= ?1",
        )?;
        let ids = st
            .query_map([now_ms], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    fn session_insert(
        &self,
        key: &str,
        s: &SessionRow,
        now_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        make_room(&tx, "web_sessions", "expires_ms", now_ms, max)?;
        tx.execute(
            "INSERT OR REPLACE INTO web_sessions (key, principal, token_hash, csrf, expires_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, s.principal, s.token_hash, s.csrf, s.expires_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn session_get(&self, key: &str, now_ms: i64) -> Result<Option<SessionRow>, StoreError> {
        let conn = self.conn();
        let row = conn
            .prepare_cached(
                "SELECT principal, token_hash, csrf, expires_ms FROM web_sessions WHERE key = ?1",
            )?
            .query_row([key], |r| {
                Ok(SessionRow {
                    principal: r.get(0)?,
                    token_hash: r.get(1)?,
                    csrf: r.get(2)?,
                    expires_ms: r.get(3)?,
                })
            })
            .optional()?;
        match row {
            Some(s) if s.expires_ms > now_ms => Ok(Some(s)),
            Some(_) => {
                conn.execute("DELETE FROM web_sessions WHERE key = ?1", [key])?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn session_delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM web_sessions WHERE key = ?1", [key])?;
        Ok(())
    }

    fn session_set_flash(&self, key: &str, ok: bool, text: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE web_sessions SET flash_ok = ?2, flash_text = ?3 WHERE key = ?1",
            params![key, ok, text],
        )?;
        Ok(())
    }

    fn session_take_flash(&self, key: &str) -> Result<Option<(bool, String)>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let flash: Option<(Option<bool>, Option<String>)> = tx
            .query_row(
                "SELECT flash_ok, flash_text FROM web_sessions WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((Some(ok), Some(text))) = flash else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE web_sessions SET flash_ok = NULL, flash_text = NULL WHERE key = ?1",
            [key],
        )?;
        tx.commit()?;
        Ok(Some((ok, text)))
    }

    fn oidc_login_insert(
        &self,
        key: &str,
        row: &OidcLoginRow,
        stale_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        self.oidc_insert(key, row, stale_ms, max)
    }

    fn oidc_login_take(&self, key: &str) -> Result<Option<OidcLoginRow>, StoreError> {
        self.oidc_take(key)
    }

    fn secret_put(&self, name: &str, sealed: &[u8], now_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO secrets (name, sealed, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_ms = excluded.updated_ms",
            params![name, sealed, now_ms],
        )?;
        Ok(())
    }

    fn secret_put_new(&self, name: &str, sealed: &[u8], now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "INSERT INTO secrets (name, sealed, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![name, sealed, now_ms],
        )? == 1)
    }

    fn secret_get(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT name, sealed, created_ms, updated_ms FROM secrets WHERE name = ?1",
            )?
            .query_row([name], secret_row)
            .optional()?)
    }

    fn secret_list(&self) -> Result<Vec<SecretRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT name, sealed, created_ms, updated_ms FROM secrets ORDER BY name",
        )?;
        let rows = st.query_map([], secret_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn secret_delete(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM secrets WHERE name = ?1", [name])?
            == 1)
    }

    fn request_release(
        &self,
        id: &str,
        principal: &str,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT INTO releases (request_id, principal, at_ms)
             SELECT id, ?2, ?3 FROM requests WHERE id = ?1 AND status = 'approved'
             ON CONFLICT (request_id) DO NOTHING",
            params![id, principal, at_ms],
        )?;
        if n != 1 {
            return Ok(false);
        }
        let row = tx
            .prepare_cached(&format!(
                "SELECT {REQUEST_COLS} FROM requests WHERE id = ?1"
            ))?
            .query_row([id], request_row)?;
        let all = decisions(&tx, id)?;
        record(&row, &all).map_err(StoreError::Unrecorded)?;
        tx.commit()?;
        Ok(true)
    }

    fn request_released(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT at_ms FROM releases WHERE request_id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }
}

impl SqliteStore {
    // The sign-in rows' queries, kept apart from the trait impl above so that a reader porting
    // the store sees the whole of them together.
    fn oidc_insert(
        &self,
        key: &str,
        r: &OidcLoginRow,
        stale_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        make_room(&tx, "oidc_logins", "created_ms", stale_ms, max)?;
        tx.execute(
            "INSERT INTO oidc_logins (key, browser_hash, verifier, nonce, return_to, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key,
                r.browser_hash,
                r.verifier,
                r.nonce,
                r.return_to,
                r.created_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn oidc_take(&self, key: &str) -> Result<Option<OidcLoginRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                "SELECT browser_hash, verifier, nonce, return_to, created_ms FROM oidc_logins \
                 WHERE key = ?1",
                [key],
                |r| {
                    Ok(OidcLoginRow {
                        browser_hash: r.get(0)?,
                        verifier: r.get(1)?,
                        nonce: r.get(2)?,
                        return_to: r.get(3)?,
                        created_ms: r.get(4)?,
                    })
                },
            )
            .optional()?;
        if row.is_some() {
            tx.execute("DELETE FROM oidc_logins WHERE key = ?1", [key])?;
        }
        tx.commit()?;
        Ok(row)
    }
}

fn secret_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        name: r.get(0)?,
        sealed: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: RequestStatus) -> RequestRow {
        RequestRow {
            id: "r1".into(),
            requester: "alice".into(),
            status,
            created_ms: 1,
            expires_ms: 2,
            decided_ms: None,
            digest: "d".into(),
            doc: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_status_column_keeps_its_words_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("gate.db")).unwrap();
        store
            .request_insert(&row(RequestStatus::Pending), &|_, _| Ok(()))
            .unwrap();
        let stored: String = store
            .conn()
            .query_row("SELECT status FROM requests WHERE id = 'r1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, "pending");
        assert!(
            store
                .finish("r1", RequestStatus::Cancelled, 3, &|_, _| Ok(()))
                .unwrap()
        );
        let (got, _) = store.request_get("r1").unwrap().unwrap();
        assert_eq!(got.status, RequestStatus::Cancelled);
        assert_eq!(
            store
                .request_list(Some(RequestStatus::Cancelled))
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .request_list(Some(RequestStatus::Pending))
                .unwrap()
                .is_empty()
        );
        store
            .conn()
            .execute(
                "UPDATE requests SET status = 'Approved' WHERE id = 'r1'",
                [],
            )
            .unwrap();
        let e = store.request_get("r1").unwrap_err();
        assert!(
            e.to_string().contains("unknown request status `Approved`"),
            "{e}"
        );
    }

    #[test]
    fn id_parts_match_a_start_or_an_end_among_one_status_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("gate.db")).unwrap();
        let put = |id: &str, status| {
            let r = RequestRow {
                id: id.into(),
                ..row(status)
            };
            store.request_insert(&r, &|_, _| Ok(())).unwrap();
        };
        put(
            "0193a1b2-7c3d-7e4f-8a5b-1c2d3e4f5a6b",
            RequestStatus::Pending,
        );
        put(
            "0193a1b2-7c3d-7e4f-9a5b-aaaaaaaaaaaa",
            RequestStatus::Pending,
        );
        put(
            "0193a1b2-0000-7e4f-9a5b-bbbbbbbbbbbb",
            RequestStatus::Approved,
        );
        let find = |part: &str, status| store.request_ids_matching(part, status, 10).unwrap();
        assert_eq!(find("1c2d3e4f5a6b", None).len(), 1, "a suffix");
        assert_eq!(find("0193a1b2", None).len(), 3, "a shared prefix");
        assert_eq!(find("0193a1b2", Some(RequestStatus::Pending)).len(), 2);
        assert!(
            find("7c3d-7e4f", None).is_empty(),
            "the middle names nothing"
        );
        assert!(find("bbbbbbbbbbbb", Some(RequestStatus::Pending)).is_empty());
        // Nothing in a part is a pattern, should one ever get past `IdQuery`.
        assert!(find("%", None).is_empty() && find("_", None).is_empty());
        assert_eq!(find("0193a1b2", None).len(), 3);
        assert_eq!(
            store
                .request_ids_matching("0193a1b2", None, 2)
                .unwrap()
                .len(),
            2
        );
    }
}
