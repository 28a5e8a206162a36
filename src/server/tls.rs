//! `gate serve --tls-cert FILE --tls-key FILE`: the server's certificate, read from PEM files at
//! start and again on SIGHUP. The rustls configuration is built once; what changes on a reload
//! is the certificate and key a [`Certificate`] resolver hands to each new handshake, so open
//! connections keep theirs and a reload that fails leaves the one in use serving.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The two files a TLS server is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate or its key cannot be used; every case names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate `{0}`: {1}")]
    ReadCert(PathBuf, std::io::Error),
    #[error("cannot read the TLS key `{0}`: {1}")]
    ReadKey(PathBuf, std::io::Error),
    #[error("the TLS certificate `{0}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCert(PathBuf),
    #[error("the TLS certificate `{0}` is not valid PEM: {1}")]
    BadCert(PathBuf, String),
    #[error(
        "the TLS key `{0}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1; an encrypted key is not supported)"
    )]
    NoKey(PathBuf),
    #[error("the TLS key `{0}` is not a key rustls can sign with: {1}")]
    BadKey(PathBuf, String),
    #[error("the TLS key `{key}` does not belong to the certificate `{cert}`: {why}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// Set once this process serves HTTPS: its cookies then carry `Secure`, so a browser never
/// sends a session over plain HTTP (to the same host on another port, say).
static SERVING_TLS: AtomicBool = AtomicBool::new(false);

/// Marks this process as serving HTTPS (before it accepts a connection).
pub fn mark_serving() {
    SERVING_TLS.store(true, Ordering::SeqCst);
}

/// Whether this process serves HTTPS.
pub fn serving() -> bool {
    SERVING_TLS.load(Ordering::SeqCst)
}

/// The server's provider: ring, as the rest of gate's TLS.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks both files: a certificate chain (leaf first) and the private key of its
/// leaf.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let (cert, key) = (&files.cert, &files.key);
    let pem = std::fs::read(cert).map_err(|e| TlsError::ReadCert(cert.clone(), e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCert(cert.clone(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.clone()));
    }
    let pem = std::fs::read(key).map_err(|e| TlsError::ReadKey(key.clone(), e))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(key.clone()),
        other => TlsError::BadKey(key.clone(), other.to_string()),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadKey(key.clone(), e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    // Also refuses a leaf that does not parse as a certificate.
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert.clone(),
        key: key.clone(),
        why: match e {
            rustls::Error::InconsistentKeys(_) => {
                "its public key is not the certificate's".to_owned()
            }
            other => other.to_string(),
        },
    })?;
    Ok(Arc::new(certified))
}

/// The certificate every new handshake gets; [`Certificate::reload`] swaps it.
#[derive(Debug)]
pub struct Certificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    /// Loads `files` (the start: an error here stops the server, exit 78).
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(load(&files)?);
        Ok(Arc::new(Certificate { files, current }))
    }

    /// Reads both files again. On success new handshakes get the new certificate; on failure
    /// the one in use stays and the error (naming the file) is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The rustls configuration of the listener: HTTP/1.1 only (the server speaks no h2), the
    /// certificate from `self`.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut c = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}
