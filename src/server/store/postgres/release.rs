//! Sign-ins in flight through the identity provider, sealed secrets and the one release each
//! approval allows, on PostgreSQL: the same rows and rules as the SQLite store's.

use super::queries::{DECISIONS, REQUEST_COLS, decision_row, request_row};
use super::*;

fn secret_row(r: &::postgres::Row) -> SecretRow {
    SecretRow {
        name: r.get(0),
        sealed: r.get(1),
        created_ms: r.get(2),
        updated_ms: r.get(3),
    }
}

impl PgStore {
    pub(super) fn oidc_insert(
        &self,
        key: &str,
        r: &OidcLoginRow,
        stale_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        let keep = max.saturating_sub(1) as i64;
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM oidc_logins WHERE created_ms <= $1", &[&stale_ms])?;
            tx.execute(
                "DELETE FROM oidc_logins WHERE key IN (SELECT key FROM oidc_logins \
                 ORDER BY created_ms DESC OFFSET $1)",
                &[&keep],
            )?;
            tx.execute(
                "INSERT INTO oidc_logins (key, browser_hash, verifier, nonce, return_to, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&key, &r.browser_hash, &r.verifier, &r.nonce, &r.return_to, &r.created_ms],
            )?;
            tx.commit()
        })
    }

    /// One statement: a `state` is good once, even when two replicas see the same callback.
    pub(super) fn oidc_take(&self, key: &str) -> Result<Option<OidcLoginRow>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "DELETE FROM oidc_logins WHERE key = $1 \
                 RETURNING browser_hash, verifier, nonce, return_to, created_ms",
                &[&key],
            )?
            .map(|r| OidcLoginRow {
                browser_hash: r.get(0),
                verifier: r.get(1),
                nonce: r.get(2),
                return_to: r.get(3),
                created_ms: r.get(4),
            }))
        })
    }

    pub(super) fn secret_upsert(
        &self,
        name: &str,
        sealed: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO secrets (name, sealed, created_ms, updated_ms) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (name) DO UPDATE SET sealed = EXCLUDED.sealed, updated_ms = EXCLUDED.updated_ms",
                &[&name, &sealed, &now_ms],
            )
        })
        .map(|_| ())
    }

    /// The primary key decides between writers racing for the same name.
    pub(super) fn secret_insert(
        &self,
        name: &str,
        sealed: &[u8],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.execute(
                "INSERT INTO secrets (name, sealed, created_ms, updated_ms) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &sealed, &now_ms],
            )
        })?;
        Ok(n == 1)
    }

    pub(super) fn secret_one(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT name, sealed, created_ms, updated_ms FROM secrets WHERE name = $1",
                &[&name],
            )?
            .as_ref()
            .map(secret_row))
        })
    }

    /// By name in byte order, as SQLite lists them, whatever the database's collation.
    pub(super) fn secret_all(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT name, sealed, created_ms, updated_ms FROM secrets ORDER BY name COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(secret_row)
            .collect())
        })
    }

    pub(super) fn secret_remove(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.with(|c| c.execute("DELETE FROM secrets WHERE name = $1", &[&name]))? == 1)
    }

    /// One release per approval, across replicas: the primary key on `request_id` decides.
    pub(super) fn release(
        &self,
        id: &str,
        principal: &str,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError> {
        let done = self.recorded(id, |tx| {
            let n = tx.execute(
                "INSERT INTO releases (request_id, principal, at_ms) \
                 SELECT id, $2, $3 FROM requests WHERE id = $1 AND status = 'approved' \
                 ON CONFLICT (request_id) DO NOTHING",
                &[&id, &principal, &at_ms],
            )?;
            if n != 1 {
                return Ok(None);
            }
            let row = tx.query_one(
                &format!("SELECT {REQUEST_COLS} FROM requests WHERE id = $1"),
                &[&id],
            )?;
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

    pub(super) fn released_at(&self, id: &str) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            Ok(
                c.query_opt("SELECT at_ms FROM releases WHERE request_id = $1", &[&id])?
                    .map(|r| r.get(0)),
            )
        })
    }
}
