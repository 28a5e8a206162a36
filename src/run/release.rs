//! Credential release on the client (issue 14 §5): after an approval from a gate server whose
//! policy releases secrets to the command, and after the decision is recorded, fetch them once
//! and hand them to the child's environment alone — never gate's own environment, argv, a file
//! or a record. A fetch that fails means nothing runs (75).

use std::time::{Duration, Instant};

use crate::approval::server::{Client, ClientError, retry};
use crate::config::Env;
use crate::policy::ReleaseVar;
use crate::secrets::vault::Released;

/// What the approving server said it releases to the run: names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The server backend that approved. Its answer to the release is not signed: the values
    /// go only to the run its signed statement approved, and only as the variables named here.
    pub url: String,
    /// The approved request whose release this is.
    pub request_id: String,
    pub vars: Vec<ReleaseVar>,
}

/// How long the fetch keeps retrying a server that does not answer.
const FETCH_DEADLINE: Duration = Duration::from_secs(30);

/// Whether gate sets `name` in a child's environment from a release: never a variable that
/// makes the command run other code or changes what gate does, whatever a server says.
pub fn settable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !crate::command::wrap::CODE_ENV.contains(&name)
        && !name.starts_with("LD_")
        && name.split('_').next() != Some("GATE")
        && name != "PATH"
}

/// Fetches the values `plan` names for the run of `digest`. The reason it failed otherwise
/// (never holding a value).
pub fn fetch(env: &Env, plan: &Plan, digest: &str) -> Result<Released, String> {
    let token = env
        .server_token(&plan.url)
        .ok_or_else(|| format!("no token for the gate server {}", plan.url))?;
    let client = Client::new(&plan.url, token).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + FETCH_DEADLINE;
    // A server that cannot open or find a secret says so with a 503 that waiting will not
    // cure: that ends the fetch at once; only an unreachable or busy server is retried.
    let released = retry(
        deadline,
        || match client.release(&plan.request_id, digest) {
            Err(ClientError::Rejected {
                status: 503,
                code,
                message,
            }) if matches!(
                code.as_str(),
                "secret_missing" | "secret_undecryptable" | "no_secret_key"
            ) =>
            {
                Ok(Err(ClientError::Rejected {
                    status: 503,
                    code,
                    message,
                }))
            }
            other => other.map(Ok),
        },
        |_| {},
        &|| false,
    )
    .and_then(|r| r)
    .map_err(|e| match e {
        ClientError::Rejected { message, .. } => {
            format!("{} refused to release the secrets: {message}", plan.url)
        }
        other => format!("cannot fetch the secrets from {}: {other}", plan.url),
    })?;
    // Exactly the variables the approvers were shown: no more, no fewer.
    let got: Vec<&str> = released.vars.iter().map(|(k, _)| k.as_str()).collect();
    let mut want: Vec<&str> = plan.vars.iter().map(|v| v.env.as_str()).collect();
    want.sort_unstable();
    want.dedup();
    // The names come from the server's answer: anything printed from it is redacted, so a
    // server that answers with a value where a name belongs still gets none printed.
    if got != want {
        return Err(released.redact(&format!(
            "{} released {} instead of the {} it showed",
            plan.url,
            if got.is_empty() {
                "nothing".to_owned()
            } else {
                got.join(", ")
            },
            want.join(", ")
        )));
    }
    if let Some(bad) = got.iter().find(|n| !settable(n)) {
        return Err(released.redact(&format!(
            "{} released `{bad}`, a variable gate never sets for a command",
            plan.url
        )));
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_that_change_what_runs_are_never_set() {
        for bad in [
            "LD_PRELOAD",
            "PATH",
            "BASH_ENV",
            "GATE_POLICY",
            "1X",
            "A-B",
            "",
        ] {
            assert!(!settable(bad), "{bad}");
        }
        for ok in ["AWS_SESSION_TOKEN", "DB_PASSWORD", "_X"] {
            assert!(settable(ok), "{ok}");
        }
    }
}
