//! TLS for hydrowatch's own listeners: a PEM certificate chain and key into a rustls server
//! configuration. On its own so that both the embedded broker, which serves with it, and the
//! configuration check, which tries the files before a start, can use it.

use std::path::Path;
use std::sync::Arc;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot use {0} as the broker's certificate: {1}")]
    Certificate(String, String),
    #[error("cannot use {0} as the broker's private key: {1}")]
    Key(String, String),
}

/// Reads a TLS listener's certificate chain and key (PEM) and builds its server
/// configuration; `check-config` calls it too, so that a bad file is found before a start.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_error = |m: String| TlsError::Certificate(cert.display().to_string(), m);
    let key_error = |m: String| TlsError::Key(key.display().to_string(), m);
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in the file".into()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| key_error(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| key_error(format!("does not go with the certificate: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
