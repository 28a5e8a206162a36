//! The [`Store`] trait's queries on PostgreSQL.

use super::*;

pub(super) const REQUEST_COLS: &str =
    "id, requester, status, created_ms, expires_ms, decided_ms, digest, doc";

pub(super) fn request_row(r: &::postgres::Row) -> Result<RequestRow, StoreError> {
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

pub(super) fn decision_row(r: &::postgres::Row) -> DecisionRow {
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

pub(super) const DECISIONS: &str = "SELECT request_id, principal, kind, comment, at_ms FROM decisions \
                         WHERE request_id = $1 ORDER BY at_ms, principal";

/// Requests with their decisions.
type Requests = Vec<(RequestRow, Vec<DecisionRow>)>;

/// Requests with their decisions, read on one connection.
fn with_decisions(
    c: &mut impl ::postgres::GenericClient,
    rows: Vec<::postgres::Row>,
) -> Result<Result<Requests, StoreError>, ::postgres::Error> {
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
        // PostgreSQL's autovacuum keeps its own files in shape; what is left is server-log
        // events whose chaining an outage or a crash interrupted.
        self.chain().map(|_| ())
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
            // One statement for the whole batch.
            let seqs: Vec<i64> = records.iter().map(|(seq, _, _)| *seq as i64).collect();
            let hashes: Vec<&str> = records.iter().map(|(_, h, _)| h.as_str()).collect();
            let lines: Vec<&str> = records.iter().map(|(_, _, l)| l.as_str()).collect();
            tx.execute(
                "INSERT INTO log_records (log_id, seq, hash, line) \
                 SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])",
                &[&log_id, &seqs, &hashes, &lines],
            )?;
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
        self.secret_upsert(name, sealed, now_ms)
    }

    fn secret_put_new(&self, name: &str, sealed: &[u8], now_ms: i64) -> Result<bool, StoreError> {
        self.secret_insert(name, sealed, now_ms)
    }

    fn secret_get(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        self.secret_one(name)
    }

    fn secret_list(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.secret_all()
    }

    fn secret_delete(&self, name: &str) -> Result<bool, StoreError> {
        self.secret_remove(name)
    }

    fn request_release(
        &self,
        id: &str,
        principal: &str,
        at_ms: i64,
        record: Record<'_>,
    ) -> Result<bool, StoreError> {
        self.release(id, principal, at_ms, record)
    }

    fn request_released(&self, id: &str) -> Result<Option<i64>, StoreError> {
        self.released_at(id)
    }
}
