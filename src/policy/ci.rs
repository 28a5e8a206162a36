//! The policy's CI identity parts (issue 13 §6): the top-level `ci: { issuers: [...] }` that
//! tells a server whose ID tokens to believe, and a rule's `match: { ci: {...} }` condition,
//! which reads only a *verified* identity ([`crate::ci::VerifiedCi`]) — claims a requester
//! merely states never match. On a requester's machine there is no verified identity, so a
//! rule with a `ci:` condition matches only on the server.

use super::diag::Pos;
use super::schema::At;
use crate::ci::VerifiedCi;

/// One trusted issuer, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSpec {
    pub pos: Pos,
    /// The `iss` its tokens carry (an https URL; http only on a loopback host, for tests).
    pub issuer: String,
    /// The `aud` a token must carry.
    pub audience: String,
    /// Where its keys are; `None`: from `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
}

/// A trusted issuer of the merged policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiIssuer {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<String>,
}

/// A rule's `ci:` condition, as written.
#[derive(Debug, Clone, Default)]
pub struct CiSpec {
    pub pos: Pos,
    /// `verified: true` (any verified identity) or `false` (none: the request carried no
    /// verified identity; then no claim may be named).
    pub verified: Option<bool>,
    /// Claim name → glob.
    pub claims: Vec<(String, At<String>)>,
}

/// A test case's `ci:`: the server's view of a request, for `gate policy test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiTest {
    /// `ci: { verified: false }`: a request that carried no (valid) ID token.
    Unverified,
    /// The identity a token proved (`issuer` and `sub` default to test values).
    Verified(VerifiedCi),
}

impl CiTest {
    pub fn context(&self) -> CiContext<'_> {
        match self {
            CiTest::Unverified => CiContext::Server(None),
            CiTest::Verified(v) => CiContext::Server(Some(v)),
        }
    }
}

/// Where a command is classified, for `ci:` conditions.
#[derive(Debug, Clone, Copy)]
pub enum CiContext<'a> {
    /// On the requester's machine (`gate`, `gate check`, hooks): there is no verified
    /// identity to read, so no rule with a `ci:` condition matches — not even
    /// `verified: false`, which would otherwise hold for every local run.
    Requester,
    /// On the server, with the identity the request's ID token proved (`None`: it had none).
    Server(Option<&'a VerifiedCi>),
}

/// A rule's `ci:` condition, compiled.
#[derive(Debug, Clone)]
pub struct CiCondition {
    verified: Option<bool>,
    claims: Vec<(String, globset::GlobMatcher)>,
}

impl CiCondition {
    /// Compiles a checked spec (its globs were validated when the file was checked).
    pub fn of(spec: &CiSpec) -> Option<Self> {
        let claims = spec
            .claims
            .iter()
            .map(|(k, g)| {
                super::compile::glob(&g.value)
                    .ok()
                    .map(|g| (k.clone(), g.compile_matcher()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(CiCondition {
            verified: spec.verified,
            claims,
        })
    }

    /// Whether the condition holds where the command is classified.
    pub fn holds(&self, at: CiContext<'_>) -> bool {
        match at {
            CiContext::Requester => false,
            CiContext::Server(ci) => self.matches(ci),
        }
    }

    /// Whether the condition holds for the request's verified identity (`None`: none).
    pub fn matches(&self, ci: Option<&VerifiedCi>) -> bool {
        match ci {
            None => self.verified == Some(false) && self.claims.is_empty(),
            Some(v) => {
                self.verified != Some(false)
                    && self
                        .claims
                        .iter()
                        .all(|(k, g)| v.get(k).is_some_and(|s| g.is_match(s)))
            }
        }
    }
}

/// Whether `url` may name an issuer or its keys: https, or http on a loopback host.
pub fn url_allowed(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL");
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let bare = if host.starts_with('[') {
        host.split(']').next().map(|h| &h[1..]).unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    if bare.is_empty() {
        return Err("has no host");
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(bare, "127.0.0.1" | "localhost" | "::1") => Ok(()),
        "http" => Err("must be https (plain http only on 127.0.0.1, ::1 or localhost)"),
        _ => Err("must be an https URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> VerifiedCi {
        VerifiedCi {
            issuer: "https://i".into(),
            sub: "repo:org/app:ref:refs/heads/main".into(),
            repository: Some("org/app".into()),
            git_ref: Some("refs/heads/main".into()),
            ref_protected: Some(true),
            environment: None,
            workflow: Some("deploy".into()),
            actor: Some("octo".into()),
        }
    }

    fn cond(verified: Option<bool>, claims: &[(&str, &str)]) -> CiCondition {
        CiCondition::of(&CiSpec {
            pos: Pos { line: 1, col: 1 },
            verified,
            claims: claims
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        At {
                            value: (*v).to_owned(),
                            pos: Pos { line: 1, col: 1 },
                        },
                    )
                })
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn ci_conditions_match_only_what_was_verified() {
        let v = verified();
        // (condition, verified identity?, matches?)
        let table: &[(CiCondition, bool, bool)] = &[
            (
                cond(
                    None,
                    &[("repository", "org/app"), ("ref_protected", "true")],
                ),
                true,
                true,
            ),
            (
                cond(
                    None,
                    &[("repository", "org/app"), ("ref_protected", "true")],
                ),
                false,
                false,
            ),
            (cond(None, &[("repository", "org/*")]), true, true),
            (cond(None, &[("repository", "org/other")]), true, false),
            (cond(None, &[("environment", "*")]), true, false),
            (cond(None, &[("ref_protected", "false")]), true, false),
            (cond(Some(true), &[]), true, true),
            (cond(Some(true), &[]), false, false),
            (cond(Some(false), &[]), false, true),
            (cond(Some(false), &[]), true, false),
            (cond(None, &[]), true, true),
            (cond(None, &[]), false, false),
        ];
        for (i, (c, has, want)) in table.iter().enumerate() {
            let got = c.matches(has.then_some(&v));
            assert_eq!(got, *want, "case {i}");
        }
    }

    #[test]
    fn issuer_urls_are_https_or_loopback_http() {
        assert!(url_allowed("https://token.actions.githubusercontent.com").is_ok());
        assert!(url_allowed("http://127.0.0.1:8080").is_ok());
        assert!(url_allowed("http://[::1]:1/x").is_ok());
        assert!(url_allowed("http://evil.example").is_err());
        assert!(url_allowed("http://127.0.0.1.evil.example").is_err());
        assert!(url_allowed("http://localhost@evil.example").is_err());
        assert!(url_allowed("file:///etc/passwd").is_err());
        assert!(url_allowed("gitlab.com").is_err());
    }
}
