//! Checking an OIDC ID token (a JWS-signed JWT) against its issuer's key set: the signature
//! with an allow-listed algorithm (RS256, ES256; never `none`, never an HMAC, whose "secret"
//! would be the public key), the key named by `kid` and of the algorithm's type, then `iss`,
//! `aud`, `exp`, `nbf` and `iat` with a small leeway. Only a token that passes every check
//! becomes a [`VerifiedCi`]. No network here: the caller brings the keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde_json::Value;

use super::VerifiedCi;

/// The longest token gate reads (real ones are 1–2 KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 60;

/// Why a token is refused. Each message is safe to show and record: none quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[must_use]
pub enum JwtError {
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    #[error("the ID token's algorithm `{0}` is not allowed (RS256, ES256)")]
    Algorithm(String),
    #[error("the ID token names key `{0}`, which its issuer does not publish")]
    UnknownKey(String),
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token's issuer is not one the server trusts")]
    Issuer,
    #[error("the ID token is not for this audience (expected `{0}`)")]
    Audience(String),
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is not valid yet")]
    NotYetValid,
    #[error("the ID token says it was issued in the future")]
    IssuedInFuture,
    #[error("the ID token lacks the `{0}` claim")]
    Missing(&'static str),
}

/// An algorithm gate accepts, each tied to one key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus (big-endian, no leading zeros) and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed SEC1 point `04 || x || y` on P-256.
    P256(Vec<u8>),
}

/// One usable key of an issuer's JWKS.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    key: PublicKey,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.key {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::P256(_) => "EC P-256",
        };
        write!(f, "Jwk({}, {kind})", self.kid)
    }
}

/// An issuer's signing keys: the entries of its JWKS gate can use (RSA, EC P-256, for signing,
/// with a `kid`); the rest are skipped, never guessed at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

/// The most keys read from one JWKS.
const MAX_KEYS: usize = 64;

impl KeySet {
    /// Reads a JWKS document (`{"keys": [...]}`).
    pub fn parse(body: &[u8]) -> Result<KeySet, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let keys = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no `keys` list")?;
        let mut out = Vec::new();
        for k in keys.iter().take(MAX_KEYS) {
            if let Some(j) = jwk(k) {
                out.push(j);
            }
        }
        Ok(KeySet { keys: out })
    }

    pub fn get(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

fn b64(v: &Value) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(v.as_str()?.trim_end_matches('='))
        .ok()
}

fn jwk(k: &Value) -> Option<Jwk> {
    let kid = k.get("kid")?.as_str()?.to_owned();
    if k.get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return None;
    }
    let alg = k.get("alg").and_then(Value::as_str);
    let key = match k.get("kty")?.as_str()? {
        "RSA" if alg.is_none_or(|a| a == "RS256") => {
            let n = b64(k.get("n")?)?;
            let first = n.iter().position(|&b| b != 0)?;
            PublicKey::Rsa {
                n: n[first..].to_vec(),
                e: b64(k.get("e")?)?,
            }
        }
        "EC" if alg.is_none_or(|a| a == "ES256") && k.get("crv")?.as_str()? == "P-256" => {
            let (x, y) = (b64(k.get("x")?)?, b64(k.get("y")?)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::P256(point)
        }
        _ => return None,
    };
    Some(Jwk { kid, key })
}

/// What the verifier expects of a token.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// The parts of a token, split and decoded but not yet trusted.
#[derive(Debug)]
pub struct Unverified {
    pub alg: Alg,
    pub kid: String,
    /// The `iss` the token claims: which issuer's keys to fetch.
    pub issuer: String,
    signed: String,
    signature: Vec<u8>,
    claims: serde_json::Map<String, Value>,
}

fn part(s: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Malformed(format!("its {what} is not base64url")))
}

/// Splits and decodes a token, and refuses what no key could make acceptable: a wrong shape,
/// an algorithm off the list, a missing `kid` or `iss`, critical extensions.
pub fn open(token: &str) -> Result<Unverified, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("it is too long".into()));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed(
            "it is not three base64url parts".into(),
        ));
    };
    let header: Value = serde_json::from_slice(&part(h, "header")?)
        .map_err(|_| JwtError::Malformed("its header is not JSON".into()))?;
    let Value::Object(header) = header else {
        return Err(JwtError::Malformed(
            "its header is not a JSON object".into(),
        ));
    };
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("its header has no `alg`".into()))?;
    let alg = Alg::parse(alg).ok_or_else(|| JwtError::Algorithm(alg.chars().take(20).collect()))?;
    if header.contains_key("crit") {
        return Err(JwtError::Malformed(
            "its header has `crit` extensions".into(),
        ));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("its header has no `kid`".into()))?
        .to_owned();
    let claims: Value = serde_json::from_slice(&part(p, "payload")?)
        .map_err(|_| JwtError::Malformed("its payload is not JSON".into()))?;
    let Value::Object(claims) = claims else {
        return Err(JwtError::Malformed(
            "its payload is not a JSON object".into(),
        ));
    };
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(JwtError::Missing("iss"))?
        .to_owned();
    Ok(Unverified {
        alg,
        kid,
        issuer,
        signed: format!("{h}.{p}"),
        signature: part(s, "signature")?,
        claims,
    })
}

impl Unverified {
    /// Checks the signature with the key the token names, then the claims; the verified
    /// identity on success.
    pub fn verify(self, keys: &KeySet, expect: Expect<'_>) -> Result<VerifiedCi, JwtError> {
        let c = self.verify_claims(keys, expect)?;
        ci_identity(&c, expect)
    }

    /// Checks the signature with the key the token names, then `iss`, `aud`, `exp`, `nbf` and
    /// `iat`; the token's claims on success, for a caller with checks of its own to add (the
    /// web page's sign-in: `nonce`, `azp`, `email`).
    pub fn verify_claims(
        self,
        keys: &KeySet,
        expect: Expect<'_>,
    ) -> Result<serde_json::Map<String, Value>, JwtError> {
        let key = keys
            .get(&self.kid)
            .ok_or_else(|| JwtError::UnknownKey(self.kid.chars().take(64).collect()))?;
        let msg = self.signed.as_bytes();
        let ok = match (self.alg, &key.key) {
            (Alg::Rs256, PublicKey::Rsa { n, e }) => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, &self.signature)
                .is_ok(),
            (Alg::Es256, PublicKey::P256(point)) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, &self.signature)
                    .is_ok()
            }
            // The key is of another type than the algorithm: never verified with it.
            _ => false,
        };
        if !ok {
            return Err(JwtError::Signature);
        }
        standard_claims(&self.claims, expect)?;
        Ok(self.claims)
    }
}

/// `open` then `verify`.
pub fn verify(token: &str, keys: &KeySet, expect: Expect<'_>) -> Result<VerifiedCi, JwtError> {
    open(token)?.verify(keys, expect)
}

fn time(c: &serde_json::Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match c.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| JwtError::Malformed(format!("its `{name}` is not a number"))),
    }
}

fn text(
    c: &serde_json::Map<String, Value>,
    names: &[&'static str],
) -> Result<Option<String>, JwtError> {
    for name in names {
        match c.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(_) => return Err(JwtError::Malformed(format!("its `{name}` is not a string"))),
        }
    }
    Ok(None)
}

fn standard_claims(c: &serde_json::Map<String, Value>, expect: Expect<'_>) -> Result<(), JwtError> {
    if c.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == expect.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expect.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience(expect.audience.to_owned()));
    }
    let exp = time(c, "exp")?.ok_or(JwtError::Missing("exp"))?;
    if expect.now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = time(c, "nbf")?
        && expect.now < nbf.saturating_sub(LEEWAY_SECS)
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = time(c, "iat")?
        && expect.now < iat.saturating_sub(LEEWAY_SECS)
    {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(())
}

fn ci_identity(
    c: &serde_json::Map<String, Value>,
    expect: Expect<'_>,
) -> Result<VerifiedCi, JwtError> {
    let sub = text(c, &["sub"])?.ok_or(JwtError::Missing("sub"))?;
    let ref_protected = match c.get("ref_protected") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" => Some(true),
        Some(Value::String(s)) if s == "false" => Some(false),
        Some(_) => {
            return Err(JwtError::Malformed(
                "its `ref_protected` is not true or false".into(),
            ));
        }
    };
    Ok(VerifiedCi {
        issuer: expect.issuer.to_owned(),
        sub,
        repository: text(c, &["repository", "project_path"])?,
        git_ref: text(c, &["ref"])?,
        ref_protected,
        environment: text(c, &["environment"])?,
        workflow: text(c, &["workflow", "pipeline_source"])?,
        actor: text(c, &["actor", "user_login"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn es256() -> (ring::signature::EcdsaKeyPair, KeySet) {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let pt = kp.public_key().as_ref().to_vec();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(&pt[1..33]), "y": URL_SAFE_NO_PAD.encode(&pt[33..])}]});
        (kp, KeySet::parse(jwks.to_string().as_bytes()).unwrap())
    }

    fn sign(kp: &ring::signature::EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let msg = format!("{}.{}", enc(header), enc(claims));
        let sig = kp
            .sign(&ring::rand::SystemRandom::new(), msg.as_bytes())
            .unwrap();
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expect<'static> {
        Expect {
            issuer: "https://issuer.example",
            audience: "gate",
            now: NOW,
        }
    }

    fn good_claims() -> Value {
        serde_json::json!({"iss": "https://issuer.example", "aud": ["x", "gate"], "sub": "repo:o/a:ref:refs/heads/main",
            "exp": NOW + 300, "nbf": NOW - 10, "iat": NOW - 10, "project_path": "o/a",
            "ref": "main", "ref_protected": "true", "user_login": "dev"})
    }

    #[test]
    fn gitlab_names_are_mapped_and_ref_protected_is_a_bool() {
        let (kp, keys) = es256();
        let t = sign(
            &kp,
            &serde_json::json!({"alg": "ES256", "kid": "k1"}),
            &good_claims(),
        );
        let v = verify(&t, &keys, expect()).unwrap();
        assert_eq!(v.repository.as_deref(), Some("o/a"));
        assert_eq!(v.actor.as_deref(), Some("dev"));
        assert_eq!(v.ref_protected, Some(true));
    }

    #[test]
    fn times_are_checked_with_a_small_leeway() {
        let (kp, keys) = es256();
        let h = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let with = |k: &str, v: i64| {
            let mut c = good_claims();
            c[k] = v.into();
            verify(&sign(&kp, &h, &c), &keys, expect())
        };
        assert_eq!(
            with("exp", NOW - LEEWAY_SECS).unwrap_err(),
            JwtError::Expired
        );
        assert!(with("exp", NOW - LEEWAY_SECS + 5).is_ok());
        assert_eq!(
            with("nbf", NOW + LEEWAY_SECS + 1).unwrap_err(),
            JwtError::NotYetValid
        );
        assert_eq!(
            with("iat", NOW + LEEWAY_SECS + 1).unwrap_err(),
            JwtError::IssuedInFuture
        );
    }

    #[test]
    fn an_es256_signature_under_an_rs256_header_is_refused() {
        let (kp, keys) = es256();
        let t = sign(
            &kp,
            &serde_json::json!({"alg": "RS256", "kid": "k1"}),
            &good_claims(),
        );
        assert_eq!(
            verify(&t, &keys, expect()).unwrap_err(),
            JwtError::Signature
        );
    }

    #[test]
    fn hostile_shapes_are_malformed_never_a_panic() {
        let (_, keys) = es256();
        for t in [
            "",
            ".",
            "..",
            "a.b.c.d",
            "e30.e30.",
            "bnVsbA.bnVsbA.AA",
            "\u{0}.\u{0}.\u{0}",
        ] {
            assert!(verify(t, &keys, expect()).is_err(), "{t:?}");
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(verify(&long, &keys, expect()).is_err());
    }

    #[test]
    fn jwks_entries_gate_cannot_use_are_skipped() {
        let keys = KeySet::parse(
            br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},{"kty":"RSA","kid":"r","alg":"RS512","n":"AQAB","e":"AQAB"},{"kty":"EC","kid":"e","crv":"P-384","x":"AA","y":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
        )
        .unwrap();
        assert!(keys.keys.is_empty());
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{").is_err());
    }
}
