//! The host's TLS certificate: the PEM chain and key of the configuration (`tls_cert`,
//! `tls_key`), held by a [`CertResolver`] that every new handshake asks, so that
//! [`CertResolver::reload`] (`SIGHUP` in `kasane-host serve`) changes the certificate of new
//! connections while established ones keep theirs.
//!
//! | the new files … | then |
//! |---|---|
//! | load, and the key is the certificate's | new handshakes present the new chain |
//! | are missing or unreadable, or hold no PEM item of the kind | [`HostError::Pem`] naming the file; the old certificate stays |
//! | hold a key that is not the certificate's, or one rustls cannot use | [`HostError::TlsKey`] naming both files; the old certificate stays |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::HostError;

/// The certificate chain and key new handshakes present, read from two PEM files and
/// swappable in place (lock-free: a handshake reads the current one, a reload stores a new
/// one; a connection keeps the key it negotiated with).
#[derive(Debug)]
pub struct CertResolver {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// Reads the chain at `cert` and the key at `key` (ring provider) and checks that the
    /// key is the first certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, HostError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = certified_key(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: ArcSwap::from_pointee(current),
        })
    }

    /// Reads both files again; if they load and match, new handshakes present them, and the
    /// answer says whether that chain differs from the one presented before (`false`: the same
    /// certificate, for the reload's log line). On an error the certificate in use stays.
    pub fn reload(&self) -> Result<bool, HostError> {
        let next = certified_key(&self.cert, &self.key, &self.provider)?;
        let changed = self.current.load().cert != next.cert;
        self.current.store(Arc::new(next));
        Ok(changed)
    }

    /// The chain and key new handshakes present now.
    #[must_use]
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The crypto provider the key was loaded with (the server configuration uses it too).
    #[must_use]
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The chain at `cert` (at least one certificate) with the key at `key`, checked to match.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, HostError> {
    let pem_error = |path: &Path| {
        let path = path.to_owned();
        move |source| HostError::Pem { path, source }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(pem_error(cert))?;
    if chain.is_empty() {
        // rustls would take an empty chain and fail every handshake.
        return Err(pem_error(cert)(pem::Error::NoItemsFound));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| HostError::TlsKey {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// A fresh self-signed pair written to `dir`; returns the paths and the certificate's DER.
    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let (cert, key, der) = crate::setup::self_signed_cert().unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key.as_bytes()).unwrap();
        (c, k, der)
    }

    fn presented(r: &CertResolver) -> Vec<u8> {
        r.current().end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn reload_takes_a_matching_pair_and_refuses_a_foreign_key_keeping_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, first) = pair(dir.path(), "a");
        let r = CertResolver::load(&cert, &key).unwrap();
        assert_eq!(presented(&r), first);

        let (other_cert, other_key, second) = pair(dir.path(), "b");
        std::fs::copy(&other_cert, &cert).unwrap();
        let err = r.reload().unwrap_err();
        assert!(
            matches!(&err, HostError::TlsKey { cert: c, key: k, .. } if *c == cert && *k == key),
            "{err:?}"
        );
        assert_eq!(presented(&r), first);

        std::fs::copy(&other_key, &key).unwrap();
        assert!(r.reload().unwrap(), "a new certificate");
        assert_eq!(presented(&r), second);
        assert!(!r.reload().unwrap(), "the same files again");
        assert_eq!(presented(&r), second);
    }

    #[test]
    fn a_file_without_a_certificate_or_a_missing_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, first) = pair(dir.path(), "a");
        let good = std::fs::read(&cert).unwrap();
        let r = CertResolver::load(&cert, &key).unwrap();

        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = r.reload().unwrap_err();
        assert!(
            matches!(&err, HostError::Pem { path, source: pem::Error::NoItemsFound } if *path == cert),
            "{err:?}"
        );
        assert_eq!(presented(&r), first);

        std::fs::write(&cert, good).unwrap();
        std::fs::remove_file(&key).unwrap();
        let err = r.reload().unwrap_err();
        assert!(
            matches!(&err, HostError::Pem { path, .. } if *path == key),
            "{err:?}"
        );
        assert_eq!(presented(&r), first);
    }
}
