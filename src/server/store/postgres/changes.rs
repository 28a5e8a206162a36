//! Cross-replica wake-ups: each replica LISTENs on [`CHANNEL`] and feeds what it hears into its
//! long-polls; while that connection is down it polls for changed requests instead.

use super::*;

impl PgStore {
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
            // Said once per outage, not on every failed reconnect.
            let mut said_cannot = false;
            while !*stop.borrow() {
                let mut client = match store.listener() {
                    Ok(c) => c,
                    Err(e) => {
                        if !said_cannot {
                            said_cannot = true;
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
                said_cannot = false;
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
