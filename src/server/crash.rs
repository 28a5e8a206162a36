//! Crash points for the fault-injection tests (issue 10): in debug builds only, a server started
//! with `GATE_SERVER_CRASH_AT=NAME[#N]` aborts — no unwinding, no flushing, as `kill -9` would
//! stop it — the Nth time (default the first) it reaches the point NAME. Release builds compile
//! the points away, so nothing in a shipped server can be crashed this way.
//!
//! Points on every change of a request (`KIND` is `request`, `approval`, `denial`, `expiry`,
//! `cancellation` or `released`): `KIND:before-log` (the database change is made but not committed, its event
//! not yet in the log), `KIND:after-log` (the event is on disk, the transaction not committed),
//! `KIND:committed` (committed, the caller not yet answered). With PostgreSQL,
//! `server-log:before-chain`: a change and its staged events committed, not yet chained.

#[cfg(debug_assertions)]
static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Aborts the process here when the test environment asks for it (debug builds only).
#[inline]
pub fn point(kind: &str, stage: &str) {
    #[cfg(debug_assertions)]
    {
        let Some(want) = std::env::var_os("GATE_SERVER_CRASH_AT") else {
            return;
        };
        let want = want.to_string_lossy();
        let (name, nth) = match want.split_once('#') {
            Some((n, k)) => (n, k.parse::<u64>().unwrap_or(1)),
            None => (&*want, 1),
        };
        if name.split_once(':') == Some((kind, stage)) {
            let hit = HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if hit == nth {
                eprintln!("gate: crash point {kind}:{stage} (hit {hit})");
                std::process::abort();
            }
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = (kind, stage);
}
