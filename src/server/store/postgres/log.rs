//! The server's own hash-chained log, kept in the database so every replica appends to one
//! chain. A change's events go into an outbox in the change's own transaction (no record, no
//! change); right after the commit they are chained — under the row lock on the chain's head,
//! in outbox order, many changes' events per commit — and the checkpoint is re-signed. The
//! export reads the records and the checkpoint together.

use super::*;

impl PgStore {
    /// Puts `bodies` in the server log's outbox inside `tx`: durable with the change they
    /// record, with their time, chained later by [`PgStore::chain_in`]. No lock is taken, so
    /// changes on every replica commit side by side (and share their disk flushes).
    pub(super) fn stage(
        &self,
        tx: &mut Transaction<'_>,
        bodies: Vec<Body>,
        notify: &str,
    ) -> Result<(), TxError> {
        let mut staged = Vec::with_capacity(bodies.len());
        for body in bodies {
            let r = AuditRecord::seal("", 0, now(), GENESIS_PREV, body).map_err(unrecorded)?;
            staged.push(
                serde_json::to_string(&r)
                    .map_err(|e| TxError::Store(StoreError::Db(e.to_string())))?,
            );
        }
        // One statement (one round trip) for the events and the announcement.
        tx.execute(
            "WITH staged AS (INSERT INTO server_log_pending (record) SELECT unnest($1::text[])) \
             SELECT pg_notify($2, $3)",
            &[&staged, &CHANNEL, &notify],
        )?;
        Ok(())
    }

    /// Moves everything in the outbox onto the chain, in outbox order, holding the row lock
    /// on the chain's head (one chainer at a time across replicas: never two heads), and
    /// re-signs the checkpoint. Each chaining takes what every replica staged meanwhile, so
    /// one commit serves many changes. Returns how many records it chained.
    pub(super) fn chain_in(&self, c: &mut Client) -> Result<u64, StoreError> {
        let Some(signer) = self.signer.get() else {
            return Ok(0);
        };
        let err = |e| self.url.error(e);
        let mut chained = 0u64;
        loop {
            let mut tx = c.transaction().map_err(err)?;
            let head = tx
                .query_opt(
                    "SELECT log_id, count, head FROM server_log_head WHERE one FOR UPDATE",
                    &[],
                )
                .map_err(err)?
                .ok_or(StoreError::Unrecorded(RecordError::WriterStopped))?;
            let (log_id, mut count, mut prev): (String, i64, String) =
                (head.get(0), head.get(1), head.get(2));
            let rows = tx
                .query(
                    "SELECT id, record FROM server_log_pending ORDER BY id LIMIT 5000",
                    &[],
                )
                .map_err(err)?;
            if rows.is_empty() {
                return Ok(chained);
            }
            let (mut seqs, mut hashes, mut lines) = (Vec::new(), Vec::new(), Vec::new());
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(row.get::<_, i64>(0));
                let staged: &str = row.get(1);
                let (hash, line) = rechain(staged, &log_id, count, &prev)?;
                seqs.push(count);
                hashes.push(hash.clone());
                lines.push(line);
                prev = hash;
                count += 1;
            }
            let note = signer.sign(&checkpoint_text(&log_id, count as u64, &prev));
            // One statement: the records, the outbox emptied of them, the new head.
            tx.execute(
                "WITH chained AS (INSERT INTO server_log (seq, hash, line) \
                   SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])), \
                 taken AS (DELETE FROM server_log_pending WHERE id = ANY($4)) \
                 UPDATE server_log_head SET count = $5, head = $6, checkpoint = $7 WHERE one",
                &[&seqs, &hashes, &lines, &ids, &count, &prev, &note],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
            chained += ids.len() as u64;
            if rows.len() < 5000 {
                return Ok(chained);
            }
        }
    }

    /// [`PgStore::chain_in`] on a pooled connection: at start and in housekeeping, so events
    /// whose chaining a crash or an outage interrupted join the chain.
    pub fn chain(&self) -> Result<u64, StoreError> {
        blocking(|| {
            let mut c = self.conn()?;
            self.chain_in(&mut c)
        })
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
            return self.chain().map(|_| ());
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
        // Events a stopped replica staged but never chained.
        self.chain().map(|_| ())
    }

    /// Appends events that go with no state change (a refused push, a refused CI token) in a
    /// transaction of their own.
    pub fn log_events(&self, bodies: Vec<Body>) -> Result<(), StoreError> {
        self.recorded("-", |_| {
            for b in bodies.clone() {
                // Inside `recorded`, the transaction takes it.
                let _ = capture(b);
            }
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

fn unrecorded(e: crate::jcs::FloatError) -> TxError {
    TxError::Store(StoreError::Unrecorded(RecordError::Append(Arc::new(
        crate::audit::AuditError::from(e),
    ))))
}

/// A staged record placed at `seq` after `prev` in log `log_id`: its hash and line.
fn rechain(
    staged: &str,
    log_id: &str,
    seq: i64,
    prev: &str,
) -> Result<(String, String), StoreError> {
    let damaged = |why: String| StoreError::Db(format!("a staged server-log record: {why}"));
    let mut r: AuditRecord = serde_json::from_str(staged).map_err(|e| damaged(e.to_string()))?;
    r.log_id = log_id.to_owned();
    r.seq = seq as u64;
    r.prev = prev.to_owned();
    let mut v = serde_json::to_value(&r).map_err(|e| damaged(e.to_string()))?;
    if let serde_json::Value::Object(m) = &mut v {
        m.remove("hash");
    }
    r.hash = crate::audit::record::hash_value(&v).map_err(|e| damaged(e.to_string()))?;
    let line = r.to_line().map_err(|e| damaged(e.to_string()))?;
    Ok((r.hash, line))
}
