//! The server's own hash-chained log, kept in the database so every replica appends to one
//! chain: each append holds the row lock on the chain's head inside the transaction of the
//! change it records, and re-signs the checkpoint; the export reads the records and the
//! checkpoint together.

use super::*;

impl PgStore {
    /// Appends `bodies` to the server's log inside `tx`, holding the chain head's row lock
    /// until `tx` ends, and re-signs the checkpoint.
    pub(super) fn append_log(
        &self,
        tx: &mut Transaction<'_>,
        bodies: Vec<Body>,
    ) -> Result<(), TxError> {
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
