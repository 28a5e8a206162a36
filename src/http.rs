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
