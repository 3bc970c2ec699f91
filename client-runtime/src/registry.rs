//! Registry trust: the [`TrustStore`] kept current from the host's `GET /v1/registry/<path>`.
//!
//! The trust store's operations ([`TrustStore::update`], [`TrustStore::check_ticket`]) pull
//! files through a synchronous [`Fetcher`](kasane_registry::trust::Fetcher). The runtime must not block on the network inside
//! them, so [`with_fetched`] runs one against a [`Prefetched`] map: a path the map lacks is
//! recorded and the operation fails; the path is then fetched asynchronously (404 → "no such
//! file") and the operation retried, a bounded number of times. Each role the TUF workflow
//! verified along the way is already stored, so a retry goes on from there.

use std::future::Future;

use kasane_registry::RegistryError;
use kasane_registry::prefetch::{self, Attempt};
use kasane_registry::trust::{Clock, TrustStore};

use crate::ClientError;
use crate::error::RegistryUpdateError;

pub use kasane_registry::prefetch::{MAX_UPDATE_ATTEMPTS, Prefetched};

/// Where [`update`] gets repository files, asynchronously.
pub trait Source {
    /// The file at `path` (at most `max_len + 1` bytes are needed), or `None` if the
    /// repository has no such file.
    fn fetch(
        &mut self,
        path: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ClientError>> + Send;
}

/// Runs `op` until it no longer stops at a file it has not seen yet, fetching each such file
/// from `source`. The outer error is the transport's (or too many rounds); the inner one is
/// `op`'s own answer.
pub async fn with_fetched<T>(
    source: &mut impl Source,
    mut op: impl FnMut(&Prefetched) -> Result<T, RegistryError>,
) -> Result<Result<T, RegistryError>, ClientError> {
    let mut files = Prefetched::new();
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let (path, max_len) = match prefetch::attempt(&files, &mut op) {
            Attempt::Done(result) => return Ok(result),
            Attempt::Need { path, max_len } => (path, max_len),
        };
        if !prefetch::safe_path(&path) {
            return Err(RegistryUpdateError::UnsafePath { path }.into());
        }
        let bytes = source.fetch(&path, max_len).await?;
        files.insert(path, bytes);
    }
    Err(RegistryUpdateError::TooManyFiles {
        attempts: MAX_UPDATE_ATTEMPTS,
    }
    .into())
}

/// Takes up what an earlier update left in `store` ([`TrustStore::resume`]: no download
/// unless Kasane's documents are missing): true if it holds (unexpired, verified), false if
/// the store must be updated.
pub async fn resume<C: Clock>(store: &mut TrustStore<C>, source: &mut impl Source) -> bool {
    let why = match with_fetched(source, |files| store.resume(files)).await {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::debug!(error = %why, "trusted registry metadata not taken up: updating");
    false
}

/// [`resume`] with nothing fetched, for a caller without a connection yet: true if what
/// `store` holds is enough (unexpired, verified, every document there).
pub fn resume_local<C: Clock>(store: &mut TrustStore<C>) -> bool {
    let attempt = prefetch::attempt(&Prefetched::new(), |files| store.resume(files));
    matches!(attempt, Attempt::Done(Ok(())))
}

/// Brings `store` up to date, fetching each file the update asks for from `source`.
pub async fn update<C: Clock>(
    store: &mut TrustStore<C>,
    source: &mut impl Source,
) -> Result<(), ClientError> {
    Ok(with_fetched(source, |files| store.update(files)).await??)
}
