//! The host's TLS certificate: the PEM chain and key of the configuration (`tls_cert`,
//! `tls_key`), held by a [`CertResolver`] that every new handshake asks, so that
//! [`CertResolver::reload`] (`SIGHUP` in `kasane-host serve`) changes the certificate of new
//! connections while established ones keep theirs. Housekeeping also reloads it when the
//! files change ([`CertResolver::reload_if_changed`]: a renewal by certbot or an ACME client
//! needs no signal), warns before the certificate expires, and `/metrics` and `/readyz` say
//! when it does ([`CertResolver::not_after`]).
//!
//! | the new files … | then |
//! |---|---|
//! | load, and the key is the certificate's | new handshakes present the new chain |
//! | are missing or unreadable, or hold no PEM item of the kind | [`HostError::Pem`] naming the file; the old certificate stays |
//! | hold a key that is not the certificate's, or one rustls cannot use | [`HostError::TlsKey`] naming both files; the old certificate stays |

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::HostError;
use crate::upkeep::{WARN_BEFORE, rfc3339};

/// The certificate chain and key new handshakes present, read from two PEM files and
/// swappable in place (lock-free: a handshake reads the current one, a reload stores a new
/// one; a connection keeps the key it negotiated with).
#[derive(Debug)]
pub struct CertResolver {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The two files as the last load or reload found them, whether it worked or not.
    tried: Mutex<Stamp>,
    /// The presented certificate's `notAfter` (unix seconds; 0: not known).
    not_after: AtomicU64,
    /// The day (unix seconds / 86400) the expiry was last warned about.
    warned: AtomicU64,
}

/// What identifies a version of the two files: each one's modification time, length and
/// inode (a file replaced by a rename, as ACME clients do, has a new inode), or `None` if it
/// could not be read.
type Stamp = [Option<(Option<SystemTime>, u64, u64)>; 2];

impl CertResolver {
    /// Reads the chain at `cert` and the key at `key` (ring provider) and checks that the
    /// key is the first certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, HostError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tried = stamp(cert, key);
        let current = certified_key(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            not_after: AtomicU64::new(not_after(&current)),
            current: ArcSwap::from_pointee(current),
            tried: Mutex::new(tried),
            warned: AtomicU64::new(0),
        })
    }

    /// Reads both files again; if they load and match, new handshakes present them, and the
    /// answer says whether that chain differs from the one presented before (`false`: the same
    /// certificate, for the reload's log line). On an error the certificate in use stays.
    pub fn reload(&self) -> Result<bool, HostError> {
        let tried = stamp(&self.cert, &self.key);
        if let Ok(mut t) = self.tried.lock() {
            *t = tried;
        }
        let next = certified_key(&self.cert, &self.key, &self.provider)?;
        let changed = self.current.load().cert != next.cert;
        self.not_after.store(not_after(&next), Ordering::Relaxed);
        self.current.store(Arc::new(next));
        Ok(changed)
    }

    /// [`reload`](Self::reload) if either file changed since the last load or reload was
    /// tried (`None`: neither did). Files that do not load are tried once per change, so a
    /// pair written one file at a time loads once both are in.
    pub fn reload_if_changed(&self) -> Option<Result<bool, HostError>> {
        let now = stamp(&self.cert, &self.key);
        let same = self.tried.lock().is_ok_and(|t| *t == now);
        (!same).then(|| self.reload())
    }

    /// The presented certificate's `notAfter`, unix seconds (`None` if it could not be read
    /// from the certificate: rustls took it, RustCrypto's stricter X.509 parser did not).
    #[must_use]
    pub fn not_after(&self) -> Option<u64> {
        Some(self.not_after.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    /// Logs, once a day, that the certificate expires within [`WARN_BEFORE`] (a warning) or
    /// has expired (an error).
    pub fn warn_expiring(&self, now: u64) {
        let Some(at) = self.not_after() else { return };
        let today = now / 86_400;
        if at > now.saturating_add(WARN_BEFORE)
            || self.warned.swap(today, Ordering::Relaxed) == today
        {
            return;
        }
        let (file, when) = (self.cert.display(), rfc3339(at));
        if at <= now {
            tracing::error!(file = %file, expired = %when,
                "TLS certificate has expired; clients refuse it until it is replaced (the host reloads changed files by itself)");
        } else {
            tracing::warn!(file = %file, expires = %when, seconds_left = at - now,
                "TLS certificate expires soon; replace it (the host reloads changed files by itself)");
        }
    }

    /// `kasane_tls_certificate_expiry_seconds` as Prometheus text, at `now` (nothing if the
    /// expiry is not known).
    #[must_use]
    pub fn render(&self, now: u64) -> String {
        let mut s = String::new();
        if let Some(at) = self.not_after() {
            let left = i128::from(at) - i128::from(now);
            let _ = writeln!(
                s,
                "# HELP kasane_tls_certificate_expiry_seconds Seconds until the presented TLS certificate expires (negative: expired).\n\
                 # TYPE kasane_tls_certificate_expiry_seconds gauge\n\
                 kasane_tls_certificate_expiry_seconds {left}"
            );
        }
        s
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

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|p| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len(), m.ino()))
    })
}

/// The end-entity certificate's `notAfter`, unix seconds; 0 if it does not parse.
fn not_after(key: &CertifiedKey) -> u64 {
    use x509_cert::der::Decode as _;
    let parsed = key
        .end_entity_cert()
        .ok()
        .and_then(|der| x509_cert::Certificate::from_der(der).ok());
    let Some(cert) = parsed else {
        tracing::warn!("the TLS certificate's expiry could not be read; it is not watched");
        return 0;
    };
    cert.tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs()
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

    /// A self-signed pair valid until `not_after` (unix seconds): PEM certificate and key.
    fn expiring(not_after: i64) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_after - 86_400).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    /// Written beside `path` and renamed over it, as ACME clients replace files.
    fn renamed_over(path: &Path, text: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, path).unwrap();
    }

    #[test]
    fn changed_files_are_read_again_once_per_change_and_the_expiry_follows() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let (c1, k1) = expiring(1_900_000_000);
        renamed_over(&cert, &c1);
        renamed_over(&key, &k1);
        let r = CertResolver::load(&cert, &key).unwrap();
        assert_eq!(r.not_after(), Some(1_900_000_000));
        assert!(r.reload_if_changed().is_none(), "nothing changed");
        let rendered = r.render(1_899_999_000);
        assert!(
            rendered.ends_with("\nkasane_tls_certificate_expiry_seconds 1000\n"),
            "{rendered}"
        );

        // A renewal written one file at a time: the certificate first does not load…
        let (c2, k2) = expiring(1_910_000_000);
        renamed_over(&cert, &c2);
        assert!(matches!(
            r.reload_if_changed(),
            Some(Err(HostError::TlsKey { .. }))
        ));
        assert!(
            r.reload_if_changed().is_none(),
            "the same broken files: not tried again"
        );
        assert_eq!(r.not_after(), Some(1_900_000_000));
        // … and loads once the key is in.
        renamed_over(&key, &k2);
        assert!(matches!(r.reload_if_changed(), Some(Ok(true))));
        assert_eq!(r.not_after(), Some(1_910_000_000));
        assert!(r.reload_if_changed().is_none());
        assert!(r.render(1_910_000_100).ends_with(" -100\n"));
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
