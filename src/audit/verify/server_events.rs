//! Compliance of a gate server's own log (its `event` records): a request the log shows
//! `approved` must have, before that event, at least as many distinct approvals as its
//! `request` event says it `needed` — so a log that lost approval events is never "intact".
//! Events a later `void` names did not take effect and do not count (docs/server.md, "The log
//! stays the truth through crashes").
//!
//! Memory stays bounded: a request is followed from its `request` event until it is decided,
//! then kept among the last [`KEEP_DECIDED`] decided ones (a `void` comes right after a
//! restart, so only recent events can be voided).

use std::collections::{BTreeMap, VecDeque};

/// Decided requests kept for voids that may still come.
const KEEP_DECIDED: usize = 4096;

/// One server event, as the walk reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub seq: u64,
    pub request_id: &'a str,
    pub kind: &'a str,
    pub principal: Option<&'a str>,
    pub status: &'a str,
    pub needed: Option<u32>,
    pub voids: Option<u64>,
}

#[derive(Debug, Default)]
struct Followed {
    needed: u32,
    /// Approvals so far: (seq, principal).
    approvals: Vec<(u64, String)>,
    /// The seq of the event that made it `approved`, once one did.
    approved_at: Option<u64>,
}

/// The requests of one server log being followed.
#[derive(Debug, Default)]
pub struct ServerEvents {
    open: BTreeMap<String, Followed>,
    decided: BTreeMap<String, Followed>,
    order: VecDeque<String>,
}

impl ServerEvents {
    /// Takes one event; a compliance violation, when the event approved a request with too
    /// few approvals.
    pub fn step(&mut self, e: &Event<'_>) -> Option<String> {
        if e.kind == "void" {
            if let Some(v) = e.voids {
                self.void(e.request_id, v, e.status);
            }
            return None;
        }
        if e.kind == "request" {
            // Only requests whose needs were logged are held to them.
            if let Some(needed) = e.needed {
                self.open.insert(
                    e.request_id.to_owned(),
                    Followed {
                        needed,
                        ..Followed::default()
                    },
                );
            }
            return None;
        }
        let f = self.open.get_mut(e.request_id)?;
        if e.kind == "approval"
            && let Some(p) = e.principal
        {
            f.approvals.push((e.seq, p.to_owned()));
        }
        if e.status == "pending" {
            return None;
        }
        let mut violation = None;
        if e.status == "approved" {
            f.approved_at = Some(e.seq);
            let distinct = distinct(&f.approvals);
            if distinct < f.needed as usize {
                violation = Some(format!(
                    "request {} is approved with {distinct} of the {} approvals it needs in this log (approval events are missing)",
                    e.request_id, f.needed
                ));
            }
        }
        self.decide(e.request_id);
        violation
    }

    fn decide(&mut self, id: &str) {
        if let Some(f) = self.open.remove(id) {
            self.decided.insert(id.to_owned(), f);
            self.order.push_back(id.to_owned());
            while self.order.len() > KEEP_DECIDED {
                if let Some(old) = self.order.pop_front() {
                    self.decided.remove(&old);
                }
            }
        }
    }

    /// The event at `seq` did not take effect; the request's status is `status` again.
    fn void(&mut self, id: &str, seq: u64, status: &str) {
        let reopened = match self.decided.get_mut(id) {
            Some(f) if f.approved_at == Some(seq) || status == "pending" => {
                f.approved_at = None;
                true
            }
            _ => false,
        };
        if reopened && let Some(f) = self.decided.remove(id) {
            self.order.retain(|x| x != id);
            self.open.insert(id.to_owned(), f);
        }
        for f in self.open.values_mut().chain(self.decided.values_mut()) {
            f.approvals.retain(|(s, _)| *s != seq);
        }
    }
}

fn distinct(approvals: &[(u64, String)]) -> usize {
    let mut names: Vec<&str> = approvals.iter().map(|(_, p)| p.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(seq: u64, kind: &'a str, who: Option<&'a str>, status: &'a str) -> Event<'a> {
        Event {
            seq,
            request_id: "r1",
            kind,
            principal: who,
            status,
            needed: None,
            voids: None,
        }
    }

    fn request(seq: u64, needed: u32) -> Event<'static> {
        Event {
            needed: Some(needed),
            ..ev(seq, "request", Some("erin"), "pending")
        }
    }

    fn run(events: &[Event<'_>]) -> Vec<String> {
        let mut s = ServerEvents::default();
        events.iter().filter_map(|e| s.step(e)).collect()
    }

    #[test]
    fn two_approvals_for_two_needed_comply() {
        let v = run(&[
            request(1, 2),
            ev(2, "approval", Some("ann"), "pending"),
            ev(3, "approval", Some("bob"), "approved"),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_lost_approval_event_is_a_violation() {
        let v = run(&[request(1, 2), ev(3, "approval", Some("bob"), "approved")]);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("approved with 1 of the 2 approvals"), "{v:?}");
    }

    #[test]
    fn the_same_approver_twice_counts_once() {
        let v = run(&[
            request(1, 2),
            ev(2, "approval", Some("ann"), "pending"),
            ev(3, "approval", Some("ann"), "approved"),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn a_voided_approval_does_not_count() {
        let void = |seq, of| Event {
            voids: Some(of),
            ..ev(seq, "void", None, "pending")
        };
        // bob's approval was logged, never committed, and voided at restart; cy's then
        // approved it — with ann that is two.
        let ok = run(&[
            request(1, 2),
            ev(2, "approval", Some("ann"), "pending"),
            ev(3, "approval", Some("bob"), "approved"),
            void(4, 3),
            ev(5, "approval", Some("cy"), "approved"),
        ]);
        assert!(ok.is_empty(), "{ok:?}");
        // ann's approval was voided: bob's alone does not approve it.
        let bad = run(&[
            request(1, 2),
            ev(2, "approval", Some("ann"), "pending"),
            void(3, 2),
            ev(4, "approval", Some("bob"), "approved"),
        ]);
        assert_eq!(bad.len(), 1, "{bad:?}");
    }

    #[test]
    fn requests_without_logged_needs_and_denials_are_not_judged() {
        let v = run(&[
            ev(1, "request", Some("erin"), "pending"),
            ev(2, "approval", Some("bob"), "approved"),
        ]);
        assert!(v.is_empty(), "{v:?}");
        let v = run(&[request(1, 2), ev(2, "denial", Some("bob"), "denied")]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn memory_is_bounded_by_the_decided_window() {
        let mut s = ServerEvents::default();
        for i in 0..(KEEP_DECIDED as u64 + 100) {
            let id = format!("r{i}");
            for e in [
                Event {
                    request_id: &id,
                    needed: Some(1),
                    ..ev(3 * i, "request", Some("erin"), "pending")
                },
                Event {
                    request_id: &id,
                    ..ev(3 * i + 1, "approval", Some("ann"), "approved")
                },
            ] {
                assert_eq!(s.step(&e), None);
            }
        }
        assert!(s.open.is_empty());
        assert_eq!(s.decided.len(), KEEP_DECIDED);
    }
}
