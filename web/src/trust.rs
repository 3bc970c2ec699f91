//! Registry trust in the page: a [`TrustStore`] kept in memory (nothing reaches the
//! browser's storage), pinned to the root whose SHA-256 the host wrote into the page, and
//! the operations that pull repository files through [`kasane_registry::prefetch`]: each
//! run either finishes or names the one file it needs, which the page fetches from
//! `/v1/registry/<path>` and hands back before running it again.

use kasane_registry::prefetch::{self, Attempt, MAX_UPDATE_ATTEMPTS, Prefetched};
use kasane_registry::trust::{Clock, Pin, TrustStore};
use kasane_registry::{RegistryError, Sha256Hash, TufError};

use crate::error::WebError;

/// The page's clock: `Date.now()` in the browser (natively, for tests, the system clock).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageClock;

impl Clock for PageClock {
    fn now(&self) -> u64 {
        #[cfg(target_arch = "wasm32")]
        {
            // Milliseconds since 1970 as an f64; a clock before 1970 reads as 0.
            let ms = js_sys::Date::now();
            if ms.is_finite() && ms > 0.0 {
                (ms / 1000.0) as u64
            } else {
                0
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            kasane_registry::trust::SystemClock.now()
        }
    }
}

/// The trust store and the files fetched for the operation under way.
pub(crate) struct Trust {
    pub(crate) store: TrustStore<PageClock>,
    files: Prefetched,
    rounds: usize,
}

impl Trust {
    /// A store pinned to `root` (the repository's `1.root.json`), which must hash to
    /// `pin_hex`.
    pub(crate) fn pinned(root: &[u8], pin_hex: &str) -> Result<Self, WebError> {
        let pin = Sha256Hash::from_hex(pin_hex).map_err(WebError::registry)?;
        let store = TrustStore::in_memory(root, Pin::Fingerprint(pin), PageClock)
            .map_err(WebError::registry)?;
        Ok(Self {
            store,
            files: Prefetched::new(),
            rounds: 0,
        })
    }

    /// Records a fetched file (`None`: the host answered 404).
    pub(crate) fn provide(&mut self, path: String, bytes: Option<Vec<u8>>) {
        self.files.insert(path, bytes);
    }

    /// Runs `op` once: `Ok(Err(path))` names the file it needs next, `Ok(Ok(value))` is its
    /// result. The files fetched for it are dropped once it finishes either way.
    pub(crate) fn run<T>(
        &mut self,
        op: impl FnOnce(&mut TrustStore<PageClock>, &Prefetched) -> Result<T, RegistryError>,
    ) -> Result<Result<T, String>, RegistryError> {
        let store = &mut self.store;
        match prefetch::attempt(&self.files, |files| op(store, files)) {
            Attempt::Done(result) => {
                self.files = Prefetched::new();
                self.rounds = 0;
                result.map(Ok)
            }
            Attempt::Need { path, .. } => {
                self.rounds += 1;
                if self.rounds > MAX_UPDATE_ATTEMPTS || !prefetch::safe_path(&path) {
                    self.files = Prefetched::new();
                    self.rounds = 0;
                    return Err(RegistryError::Tuf(TufError::Fetch {
                        what: path.chars().take(256).collect(),
                        reason: "too many files, or an unsafe path".to_owned(),
                    }));
                }
                Ok(Err(path))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_that_is_not_the_pinned_one_is_refused() {
        let pin = "00".repeat(32);
        assert!(Trust::pinned(b"{}", &pin).is_err());
        assert!(Trust::pinned(b"{}", "not hex").is_err());
    }

    #[test]
    fn the_page_clock_reads_now() {
        assert!(PageClock.now() > 1_700_000_000);
    }
}
