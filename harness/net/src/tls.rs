//! TLS for `wss://` and `https://` on loopback: a self-signed certificate generated at start, and
//! client configurations that trust it (or a CA bundle file, as `AWS_CA_BUNDLE` names one).

use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
    #[error("no certificate in the PEM bundle")]
    NoCertificate,
    #[error("cannot read the PEM bundle: {0}")]
    Pem(std::io::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate for `localhost`, `127.0.0.1` and `::1` with its key.
#[derive(Debug)]
pub struct SelfSigned {
    pub cert_pem: String,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl SelfSigned {
    pub fn generate() -> Result<Self, TlsError> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let ck = rcgen::generate_simple_self_signed(names)?;
        Ok(SelfSigned {
            cert_pem: ck.cert.pem(),
            cert: ck.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        })
    }

    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
    }
}

/// A client configuration trusting the certificates of a PEM bundle.
pub fn client_config_from_pem(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = pem;
    let mut n = 0;
    for cert in rustls_pemfile::certs(&mut reader) {
        let cert = cert.map_err(TlsError::Pem)?;
        roots.add(cert)?;
        n += 1;
    }
    if n == 0 {
        return Err(TlsError::NoCertificate);
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A client configuration trusting the platform's web PKI roots (for real AWS endpoints).
pub fn client_config_webpki() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
