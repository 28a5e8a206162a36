//! Signed notes (C2SP `signed-note`, the format of golang.org/x/mod/sumdb/note) with Ed25519
//! keys: the text, a blank line, then one `— <name> <base64(key id ‖ signature)>` line per
//! signature. Key ids are the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
//! Verifier keys are written `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The algorithm byte for Ed25519 in note keys.
const ALG_ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed verifier key: {0}")]
    BadKey(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("the note is not signed by the expected key `{0}`")]
    UnknownKey(String),
    #[error("the signature by `{0}` does not verify")]
    BadSignature(String),
}

pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('+')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A private signing key with its name. `Debug` never shows the key.
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x}, key redacted)", self.name, self.id)
    }
}

impl NoteSigner {
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey(format!("bad key name `{name}`")));
        }
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_owned(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The private key in Go's note format: `PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>`.
    pub fn to_private_string(&self) -> String {
        let mut b = vec![ALG_ED25519];
        b.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(b)
        )
    }

    pub fn parse_private(s: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey(why.to_owned());
        let rest = s
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("missing PRIVATE+KEY+ prefix"))?;
        // Names never contain `+`; base64 may, so split from the left.
        let mut parts = rest.splitn(3, '+');
        let (name, id, b64) = (parts.next(), parts.next(), parts.next());
        let (Some(name), Some(id), Some(b64)) = (name, id, b64) else {
            return Err(bad("expected PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let seed: [u8; 32] = raw[1..].try_into().map_err(|_| bad("bad key length"))?;
        let signer = Self::from_seed(name, &seed)?;
        if format!("{:08x}", signer.id) != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(signer)
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line for `text` (which must end with a newline).
    pub fn signature_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut b = self.id.to_be_bytes().to_vec();
        b.extend_from_slice(&sig.to_bytes());
        format!("{DASH}{} {}\n", self.name, B64.encode(b))
    }

    /// A signed note: `text`, a blank line, the signature line.
    pub fn sign(&self, text: &str) -> String {
        format!("{text}\n{}", self.signature_line(text))
    }
}

/// A public verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    pub name: String,
    pub id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<8 hex id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey(why.to_owned());
        // Names never contain `+`; base64 may, so split from the left.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key id>+<base64 key>"));
        };
        if !valid_name(name) {
            return Err(bad("bad key name"));
        }
        let id = u32::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 8)
            .ok_or_else(|| bad("key id is not 8 hex digits"))?;
        let raw = B64.decode(b64).map_err(|_| bad("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 verifier key"));
        }
        let public: [u8; 32] = raw[1..].try_into().map_err(|_| bad("bad key length"))?;
        if key_id(name, &public) != id {
            return Err(bad("key id does not match the key"));
        }
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 point"))?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    pub fn to_vkey(&self) -> String {
        let mut b = vec![ALG_ED25519];
        b.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(b))
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: u32,
    pub sig: Vec<u8>,
}

/// A parsed note: its signed text and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::Malformed(why.to_owned());
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let text = &s[..split + 1];
        let sigs = &s[split + 2..];
        if !sigs.ends_with('\n') {
            return Err(bad("signature block does not end with a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(DASH)
                .ok_or_else(|| bad("signature line does not start with an em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("signature line has no signature"))?;
            let raw = B64
                .decode(b64)
                .map_err(|_| bad("signature is not base64"))?;
            if raw.len() < 5 {
                return Err(bad("signature too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                sig: raw[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(bad("no signatures"));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Checks the signature by `key`: it must be present (same name and id) and valid.
    pub fn verify(&self, key: &NoteVerifier) -> Result<(), NoteError> {
        let Some(s) = self
            .signatures
            .iter()
            .find(|s| s.name == key.name && s.id == key.id)
        else {
            let names: Vec<String> = self
                .signatures
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.id))
                .collect();
            return Err(NoteError::UnknownKey(format!(
                "{}+{:08x} (signed by {})",
                key.name,
                key.id,
                names.join(", ")
            )));
        };
        let sig: [u8; 64] = s
            .sig
            .as_slice()
            .try_into()
            .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
        key.key
            .verify(self.text.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| NoteError::BadSignature(key.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_note_test_vector_verifies() {
        // From golang.org/x/mod/sumdb/note's documentation and tests.
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let msg = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let v = NoteVerifier::parse(vkey).unwrap();
        let note = Note::parse(&msg).unwrap();
        assert_eq!(note.text, text);
        note.verify(&v).unwrap();
        let tampered = msg.replace("answer", "Answer");
        assert!(matches!(
            Note::parse(&tampered).unwrap().verify(&v),
            Err(NoteError::BadSignature(_))
        ));
    }

    #[test]
    fn sign_round_trip_and_private_format() {
        let s = NoteSigner::from_seed("gate/host1", &[7u8; 32]).unwrap();
        // Keys whose base64 holds `+` must round-trip too.
        for seed in 0u8..64 {
            let k = NoteSigner::from_seed("gate/h", &[seed; 32]).unwrap();
            assert_eq!(
                NoteVerifier::parse(&k.verifier().to_vkey()).unwrap(),
                k.verifier()
            );
            NoteSigner::parse_private(&k.to_private_string()).unwrap();
        }
        let note = s.sign("gate/abc\n3\nAAAA\n");
        Note::parse(&note).unwrap().verify(&s.verifier()).unwrap();
        let again = NoteSigner::parse_private(&s.to_private_string()).unwrap();
        assert_eq!(again.verifier(), s.verifier());
        let v = NoteVerifier::parse(&s.verifier().to_vkey()).unwrap();
        assert_eq!(v, s.verifier());
        let other = NoteSigner::from_seed("gate/host1", &[8u8; 32]).unwrap();
        assert!(matches!(
            Note::parse(&note).unwrap().verify(&other.verifier()),
            Err(NoteError::UnknownKey(_))
        ));
        assert!(!format!("{s:?}").contains(&s.to_private_string()[20..]));
    }
}
