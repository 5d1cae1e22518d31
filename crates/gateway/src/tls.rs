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

/// Reads and checks `[server.tls]`'s certificate chain and key: both parse, the key is usable and
/// matches the certificate. The error names the file.
pub fn load(tls: &Tls, source: &dyn Source) -> Result<CertifiedKey, String> {
    let cert_pem = read(&tls.cert, source, "cert")?;
    let key_pem = read(&tls.key, source, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("[server.tls] cert {}: {e}", tls.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("[server.tls] cert {}: no certificate in the file", tls.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("[server.tls] key {}: no usable private key: {e}", tls.key.display()))?;
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider installed")?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("[server.tls] cert {} / key {}: {e}", tls.cert.display(), tls.key.display()))
}

fn read(path: &Path, source: &dyn Source, key: &str) -> Result<Vec<u8>, String> {
    source.read(path).map_err(|e| format!("[server.tls] cannot read {key} {}: {e}", path.display()))
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
        assert!(e.contains("/c.pem"), "{e}");
        let e = load(&tls(), &MapSource::new()).unwrap_err();
        assert!(e.contains("cannot read cert /c.pem"), "{e}");
    }
}
