//! The one HTTP helper every client of gate shares (the server backend, the server and HTTP
//! audit sinks): how a failed request is told to a person. At the bottom of the layers, so
//! sinks need not reach up into `approval` for it.

/// A reqwest error's causes, without the URL (and its query string) that reqwest puts in its
/// own message: what gate shows users and writes to logs about a failed HTTP call.
pub fn error_chain(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = String::new();
    let mut src: Option<&dyn Error> = e.source();
    while let Some(x) = src {
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&x.to_string());
        src = x.source();
    }
    if !msg.is_empty() {
        msg
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        "request failed".into()
    }
}

use std::time::Duration;

/// The one retry schedule gate's HTTP clients share: a delay that doubles from `first` up to
/// `cap` after each failure, goes back to `first` after a success, and gives way to a
/// receiver's `Retry-After` when it sends one.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            next: first,
        }
    }

    /// How long to wait after a failure: the receiver's `Retry-After` when given, else the
    /// current step of the schedule. Either way the schedule moves one step on.
    pub fn after_failure(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.cap);
        retry_after.unwrap_or(step)
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Parses `Retry-After` (seconds, capped at five minutes; HTTP dates are rare for gate's
/// receivers and are ignored).
pub fn retry_after(h: Option<&str>) -> Option<Duration> {
    h?.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(250), ms(1000));
        let steps: Vec<_> = (0..4).map(|_| b.after_failure(None)).collect();
        assert_eq!(steps, [ms(250), ms(500), ms(1000), ms(1000)]);
        b.reset();
        assert_eq!(b.after_failure(None), ms(250));
        assert_eq!(b.after_failure(Some(ms(7000))), ms(7000));
        assert_eq!(b.after_failure(None), ms(1000));
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some("100000")), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
