//! One source of time, at the bottom of the layers. The server's handlers, expiry sweeper,
//! sign-in and store take the time from a [`Clock`] (or as an argument) instead of reading the
//! system clock themselves, so every time-dependent rule — expiry, token lifetime, session
//! lifetime — can be tested at a chosen instant.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, as the server's records and rows store them.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that stands still until moved: for tests of time-dependent rules.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        ManualClock(AtomicI64::new(ms))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
