//! The TLS listener's certificate, swappable at run time.
//!
//! pingora 0.9.1 builds the listener's rustls `ServerConfig` once, at start, but lets the application
//! install a certificate resolver (`TlsSettings::set_cert_resolver`). [`CertStore`] is that resolver:
//! it answers every handshake with the certificate it holds now, and a reload stores a new one
//! ([`CertStore::store`]). Connections already established keep the certificate they were made with.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Source, Tls};

/// The certificate presented on new TLS handshakes.
pub struct CertStore(ArcSwap<CertifiedKey>);

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl CertStore {
    pub fn new(key: CertifiedKey) -> Arc<CertStore> {
        Arc::new(CertStore(ArcSwap::from_pointee(key)))
    }

    /// New handshakes present `key` from now on.
    pub fn store(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Why the certificate or key could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The config key to point at: `server.tls.cert` or `server.tls.key`.
    pub key: &'static str,
    /// Names the file.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const CERT: &str = "server.tls.cert";
const KEY: &str = "server.tls.key";

fn fail(key: &'static str, message: String) -> LoadError {
    LoadError { key, message }
}

/// Reads and checks `[server.tls]`'s certificate chain and key: both parse, the key is usable and
/// matches the certificate. The error names the file.
pub fn load(tls: &Tls, source: &dyn Source) -> Result<CertifiedKey, LoadError> {
    let cert_pem = read(&tls.cert, source, CERT)?;
    let key_pem = read(&tls.key, source, KEY)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(CERT, format!("[server.tls] cert {}: {e}", tls.cert.display())))?;
    if chain.is_empty() {
        return Err(fail(
            CERT,
            format!("[server.tls] cert {}: no certificate in the file", tls.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        fail(KEY, format!("[server.tls] key {}: no usable private key: {e}", tls.key.display()))
    })?;
    pingora::tls::install_default_crypto_provider();
    let provider =
        CryptoProvider::get_default().ok_or_else(|| fail(CERT, "no TLS crypto provider installed".into()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        fail(CERT, format!("[server.tls] cert {} / key {}: {e}", tls.cert.display(), tls.key.display()))
    })
}

fn read(path: &Path, source: &dyn Source, key: &'static str) -> Result<Vec<u8>, LoadError> {
    let what = if key == CERT { "cert" } else { "key" };
    source
        .read(path)
        .map_err(|e| fail(key, format!("[server.tls] cannot read {what} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapSource;

    fn tls() -> Tls {
        Tls { listen: "127.0.0.1:1".parse().unwrap(), cert: "/c.pem".into(), key: "/k.pem".into() }
    }

    #[test]
    fn garbage_is_refused_with_the_file_named() {
        let src = MapSource::new().with_file("/c.pem", "not pem").with_file("/k.pem", "nope");
        let e = load(&tls(), &src).unwrap_err();
        assert!(e.message.contains("/c.pem") && e.key == "server.tls.cert", "{e:?}");
        let e = load(&tls(), &MapSource::new()).unwrap_err();
        assert!(e.message.contains("cannot read cert /c.pem"), "{e}");
    }
}
