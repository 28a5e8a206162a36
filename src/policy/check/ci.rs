//! Checking the policy's CI parts: the top-level `ci:` (trusted issuers) and a rule's
//! `match.ci` condition ([`crate::policy::ci`]).

use super::Checker;
use super::values::at;
use crate::ci::VerifiedCi;
use crate::policy::ci::{CiSpec, CiTest, IssuerSpec, url_allowed};
use crate::policy::diag::Pos;
use crate::policy::yaml::{Node, Value};

impl Checker<'_> {
    /// The top-level `ci: { issuers: [{ issuer, audience, jwks_url? }] }`.
    pub(super) fn ci_issuers(&mut self, v: &Node) -> Vec<IssuerSpec> {
        let mut out: Vec<IssuerSpec> = Vec::new();
        for (key, kpos, val) in self.map(v, "`ci`").unwrap_or(&[]) {
            if key != "issuers" {
                self.unknown_key(key, *kpos, &["issuers"]);
                continue;
            }
            for item in self.seq(val, "`ci.issuers`").unwrap_or(&[]) {
                if let Some(i) = self.issuer(item) {
                    if out.iter().any(|o| o.issuer == i.issuer) {
                        self.d
                            .error(i.pos, format!("issuer `{}` is listed twice", i.issuer));
                    } else {
                        out.push(i);
                    }
                }
            }
        }
        out
    }

    fn issuer(&mut self, v: &Node) -> Option<IssuerSpec> {
        let (mut issuer, mut audience, mut jwks_url) = (None, None, None);
        for (key, kpos, val) in self.map(v, "an issuer")? {
            let url = |c: &mut Self, what: &str| {
                let s = c.str(val, what)?;
                match url_allowed(&s) {
                    Ok(()) => Some(s),
                    Err(why) => {
                        c.d.error_hint(
                            val.pos,
                            format!("`{key}`: `{s}` {why}"),
                            "write the issuer exactly as its tokens' `iss` says, e.g. `https://token.actions.githubusercontent.com`",
                        );
                        None
                    }
                }
            };
            match key.as_str() {
                "issuer" => issuer = url(self, "the issuer's URL"),
                "jwks_url" => jwks_url = url(self, "the URL of the issuer's keys"),
                "audience" => {
                    audience = self.str(val, "the audience").filter(|a| {
                        let ok = !a.trim().is_empty();
                        if !ok {
                            self.d.error(val.pos, "`audience` must not be empty");
                        }
                        ok
                    })
                }
                _ => self.unknown_key(key, *kpos, &["issuer", "audience", "jwks_url"]),
            }
        }
        let missing = |c: &mut Self, what: &str| {
            c.d.error_hint(
                v.pos,
                format!("an issuer needs `{what}`"),
                "write `{ issuer: https://token.actions.githubusercontent.com, audience: gate }`",
            )
        };
        let Some(issuer) = issuer else {
            if !matches!(v.value, Value::Map(ref m) if m.iter().any(|(k, _, _)| k == "issuer")) {
                missing(self, "issuer");
            }
            return None;
        };
        let Some(audience) = audience else {
            if !matches!(v.value, Value::Map(ref m) if m.iter().any(|(k, _, _)| k == "audience")) {
                missing(self, "audience");
            }
            return None;
        };
        Some(IssuerSpec {
            pos: v.pos,
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience,
            jwks_url,
        })
    }

    /// A test case's `ci:`: the verified identity the case is classified with, as the server
    /// would (`verified: false` alone: a request without one).
    pub(super) fn ci_test(&mut self, v: &Node) -> Option<CiTest> {
        let mut id = VerifiedCi {
            issuer: "https://issuer.test".into(),
            sub: "test".into(),
            repository: None,
            git_ref: None,
            ref_protected: None,
            environment: None,
            workflow: None,
            actor: None,
        };
        let mut unverified = false;
        let mut named = false;
        let mut known: Vec<&str> = crate::ci::CLAIM_KEYS.to_vec();
        known.push("verified");
        for (key, kpos, val) in self.map(v, "`ci`")? {
            if key == "verified" {
                unverified = self.bool(val) == Some(false);
                continue;
            }
            if key == "ref_protected" {
                match &val.value {
                    Value::Bool(b) => id.ref_protected = Some(*b),
                    _ => self.wrong_type(val, "true or false"),
                }
                named = true;
                continue;
            }
            if !crate::ci::CLAIM_KEYS.contains(&key.as_str()) {
                self.unknown_key(key, *kpos, &known);
                continue;
            }
            named = true;
            let s = self.str(val, "a claim value");
            match key.as_str() {
                "issuer" => id.issuer = s.unwrap_or_default(),
                "sub" => id.sub = s.unwrap_or_default(),
                "repository" => id.repository = s,
                "ref" => id.git_ref = s,
                "environment" => id.environment = s,
                "workflow" => id.workflow = s,
                _ => id.actor = s,
            }
        }
        if unverified {
            if named {
                self.d.error(
                    v.pos,
                    "a test's `ci` with `verified: false` cannot also name claims",
                );
            }
            return Some(CiTest::Unverified);
        }
        Some(CiTest::Verified(id))
    }

    /// A rule's `match.ci`: claim globs and `verified`.
    pub(super) fn ci_condition(&mut self, v: &Node, kpos: Pos) -> Option<CiSpec> {
        let mut spec = CiSpec {
            pos: kpos,
            ..CiSpec::default()
        };
        let mut known: Vec<&str> = crate::ci::CLAIM_KEYS.to_vec();
        known.push("verified");
        for (key, kpos, val) in self.map(v, "`ci`")? {
            match key.as_str() {
                "verified" => spec.verified = self.bool(val),
                "ref_protected" => match &val.value {
                    Value::Bool(b) => spec.claims.push((key.clone(), at(&b.to_string(), val.pos))),
                    _ => self.wrong_type(val, "true or false"),
                },
                k if crate::ci::CLAIM_KEYS.contains(&k) => {
                    if let Some(g) = self.glob(val) {
                        spec.claims.push((key.clone(), g));
                    }
                }
                _ => self.unknown_key(key, *kpos, &known),
            }
        }
        if spec.verified == Some(false) && !spec.claims.is_empty() {
            self.d.error_hint(
                kpos,
                "`ci` with `verified: false` cannot also name claims: it matches requests with no verified identity",
                "split it into two rules",
            );
            return None;
        }
        Some(spec)
    }
}
