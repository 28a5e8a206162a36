//! The `audit.sinks:` entries of the policy schema, typed once: where records go (the sinks
//! themselves, in `audit::sinks`, are built from these).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `audit.sinks:` entries.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkSpec {
    Server {
        url: String,
        /// A PEM file of the CA certificates trusted for the server's TLS (default: the
        /// built-in web PKI roots).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca: Option<PathBuf>,
    },
    Syslog {
        /// `udp://host:port`, `tcp://host:port`, `tcp+tls://host:port`.
        url: String,
        /// A PEM file of CA certificates for `tcp+tls` (default: the webpki root set).
        #[serde(default)]
        ca: Option<PathBuf>,
        #[serde(default)]
        app_name: Option<String>,
    },
    Http {
        url: String,
        /// `ndjson` (default), `splunk-hec`, `loki`.
        #[serde(default)]
        preset: Option<String>,
        /// A secret reference (`env:VAR`, `file:PATH`, `keyring:SERVICE/NAME`).
        #[serde(default)]
        token: Option<String>,
        /// Extra low-cardinality labels (Loki) or fields (Splunk `source`, `sourcetype`, `index`).
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
    },
    File {
        path: PathBuf,
    },
}

impl SinkSpec {
    /// `<kind>-<12 hex of SHA-256 of its address>`.
    pub fn name(&self) -> String {
        let (kind, addr) = match self {
            SinkSpec::Server { url, .. } => ("server", url.trim_end_matches('/').to_owned()),
            SinkSpec::Syslog { url, .. } => ("syslog", url.clone()),
            SinkSpec::Http { url, preset, .. } => (
                "http",
                format!("{}|{url}", preset.as_deref().unwrap_or("ndjson")),
            ),
            SinkSpec::File { path } => ("file", path.display().to_string()),
        };
        format!(
            "{kind}-{}",
            &hex::encode(Sha256::digest(addr.as_bytes()))[..12]
        )
    }
}
