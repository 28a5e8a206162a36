//! The addresses of one server backend (`urls:` — replicas that share one database): every
//! call goes to the replica that last answered, and moves on to the next when that one stops
//! answering (no connection, a reset, 502/503/504). Nothing else is trusted more for having
//! answered: a decision still counts only as a statement signed by the pinned key, so an
//! address that is not the real server can hold a request up, never approve it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Client, ClientError};

/// The clients of one server's replicas, in the policy's order, and which one answers now.
#[derive(Clone, Debug)]
pub struct Replicas {
    clients: Arc<[Client]>,
    current: Arc<AtomicUsize>,
}

/// Whether another replica may answer what this one could not.
fn fails_over(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(_) | ClientError::Tls { .. } => true,
        ClientError::Rejected { status, .. } => matches!(status, 502..=504),
        ClientError::Unauthorized(_) => false,
    }
}

impl Replicas {
    /// `clients` in the order they are tried; `None` when there is none.
    pub fn new(clients: Vec<Client>) -> Option<Self> {
        (!clients.is_empty()).then(|| Replicas {
            clients: clients.into(),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// One server at one address.
    pub fn one(client: Client) -> Self {
        Replicas {
            clients: Arc::from(vec![client]),
            current: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The replica calls go to now.
    pub fn current(&self) -> &Client {
        &self.clients[self.current.load(Ordering::SeqCst) % self.clients.len()]
    }

    /// Calls `f` on the current replica; when it does not answer, on each of the others once,
    /// in order, from there. The first to answer becomes the current one. An answer that is
    /// the server's own (a refused token, a 4xx) is returned as it is. When none answers, the
    /// error is the first that retrying cannot cure (a refused certificate), else the last.
    pub fn call<T>(
        &self,
        mut f: impl FnMut(&Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let n = self.clients.len();
        let start = self.current.load(Ordering::SeqCst) % n;
        let mut kept: Option<ClientError> = None;
        for i in 0..n {
            let at = (start + i) % n;
            match f(&self.clients[at]) {
                Ok(v) => {
                    self.current.store(at, Ordering::SeqCst);
                    return Ok(v);
                }
                Err(e) if n > 1 && fails_over(&e) => {
                    if kept.as_ref().is_none_or(ClientError::is_transient) {
                        kept = Some(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(kept.unwrap_or_else(|| ClientError::Transport("no server address".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Token;

    fn replicas(n: usize) -> Replicas {
        Replicas::new(
            (0..n)
                .map(|i| Client::new(&format!("http://r{i}"), Token::new("t".into())).unwrap())
                .collect(),
        )
        .unwrap()
    }

    fn down() -> ClientError {
        ClientError::Transport("connection refused".into())
    }

    #[test]
    fn a_replica_that_stops_answering_hands_over_to_the_next_and_it_stays() {
        let r = replicas(3);
        let mut asked = Vec::new();
        let got = r.call(|c| {
            asked.push(c.base().to_owned());
            if c.base() == "http://r0" {
                Err(down())
            } else {
                Ok(c.base().to_owned())
            }
        });
        assert_eq!(got.unwrap(), "http://r1");
        assert_eq!(asked, ["http://r0", "http://r1"]);
        assert_eq!(r.current().base(), "http://r1");
        // A clone shares where calls go.
        assert_eq!(r.clone().current().base(), "http://r1");
    }

    #[test]
    fn the_servers_own_refusal_is_not_asked_elsewhere() {
        let r = replicas(2);
        let mut calls = 0;
        let got: Result<(), _> = r.call(|_| {
            calls += 1;
            Err(ClientError::Unauthorized("revoked".into()))
        });
        assert!(matches!(got, Err(ClientError::Unauthorized(_))));
        assert_eq!(calls, 1);
        let mut calls = 0;
        let got: Result<(), _> = r.call(|_| {
            calls += 1;
            Err(ClientError::Rejected {
                status: 404,
                code: "not_found".into(),
                message: "no such request".into(),
            })
        });
        assert!(matches!(
            got,
            Err(ClientError::Rejected { status: 404, .. })
        ));
        assert_eq!(calls, 1);
    }

    #[test]
    fn when_none_answers_a_refused_certificate_is_what_is_said() {
        let r = replicas(2);
        let got: Result<(), _> = r.call(|c| {
            if c.base() == "http://r0" {
                Err(down())
            } else {
                Err(ClientError::Tls {
                    problem: crate::http::TlsProblem::UnknownIssuer,
                    detail: "invalid peer certificate: UnknownIssuer".into(),
                })
            }
        });
        assert!(matches!(got, Err(ClientError::Tls { .. })), "{got:?}");
        let got: Result<(), _> = r.call(|_| {
            Err(ClientError::Rejected {
                status: 503,
                code: "unavailable".into(),
                message: "database down".into(),
            })
        });
        assert!(matches!(
            got,
            Err(ClientError::Rejected { status: 503, .. })
        ));
    }
}
