//! Where a request stands on the gate server: one type for the server that stores it and the
//! client that waits on it, spelt on the wire and in the database as it always was (lower-case
//! words), so neither side compares strings.

use serde::{Deserialize, Serialize};

/// The status of a request: `pending` until an approver, a cancel or the clock moves it to one
/// of the four final states, where it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// Waiting for approvers.
    Pending,
    /// Enough eligible approvers said yes.
    Approved,
    /// An eligible approver (or the server's policy) said no.
    Denied,
    /// Nobody decided before its deadline.
    Expired,
    /// The requester withdrew it.
    Cancelled,
}

impl RequestStatus {
    /// Every status, in the order the API documents them.
    pub const ALL: [RequestStatus; 5] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Denied,
        RequestStatus::Expired,
        RequestStatus::Cancelled,
    ];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    /// The status spelt `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the request still waits for a decision.
    pub fn is_pending(self) -> bool {
        self == RequestStatus::Pending
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_spells_each_status_as_the_wire_always_did() {
        for (status, word) in [
            (RequestStatus::Pending, "pending"),
            (RequestStatus::Approved, "approved"),
            (RequestStatus::Denied, "denied"),
            (RequestStatus::Expired, "expired"),
            (RequestStatus::Cancelled, "cancelled"),
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(
                serde_json::from_str::<RequestStatus>(&json).unwrap(),
                status
            );
            assert_eq!(status.as_str(), word);
            assert_eq!(status.to_string(), word);
            assert_eq!(RequestStatus::parse(word), Some(status));
        }
    }

    #[test]
    fn unknown_spellings_are_refused() {
        for word in ["Pending", "PENDING", "approve", "canceled", "", " pending"] {
            assert_eq!(RequestStatus::parse(word), None, "{word:?}");
            assert!(serde_json::from_str::<RequestStatus>(&format!("\"{word}\"")).is_err());
        }
    }

    #[test]
    fn only_pending_waits() {
        let waiting: Vec<_> = RequestStatus::ALL
            .into_iter()
            .filter(|s| s.is_pending())
            .collect();
        assert_eq!(waiting, [RequestStatus::Pending]);
    }
}
