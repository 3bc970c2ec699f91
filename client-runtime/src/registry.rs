//! Registry trust: the [`TrustStore`] kept current from the host's `GET /v1/registry/<path>`.
//!
//! The trust store's operations ([`TrustStore::update`], [`TrustStore::check_ticket`]) pull
//! files through a synchronous [`Fetcher`]. The runtime must not block on the network inside
//! them, so [`with_fetched`] runs one against a [`Prefetched`] map: a path the map lacks is
//! recorded and the operation fails; the path is then fetched asynchronously (404 → "no such
//! file") and the operation retried, a bounded number of times. Each role the TUF workflow
//! verified along the way is already stored, so a retry goes on from there.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use kasane_registry::RegistryError;
use kasane_registry::TufError;
use kasane_registry::trust::{Clock, Fetcher, TrustStore};

use crate::ClientError;
use crate::error::RegistryUpdateError;

/// Most fetch-and-retry rounds of one operation: a long root chain, the top-level files,
/// Kasane's two documents and a delegation search.
pub const MAX_UPDATE_ATTEMPTS: usize = 64 + 4 + 2 + 34;

/// A [`Fetcher`] over files fetched beforehand: `Some(bytes)`, or `None` for a 404.
#[derive(Debug, Default)]
pub struct Prefetched {
    files: HashMap<String, Option<Vec<u8>>>,
    missing: Mutex<Option<(String, u64)>>,
}

impl Prefetched {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what the repository has at `path` (`None`: no such file).
    pub fn insert(&mut self, path: String, bytes: Option<Vec<u8>>) {
        self.files.insert(path, bytes);
    }

    /// The path (and its size cap) the last fetch asked for and did not find in the map.
    pub fn take_missing(&self) -> Option<(String, u64)> {
        self.missing.lock().ok().and_then(|mut m| m.take())
    }
}

impl Fetcher for Prefetched {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        match self.files.get(path) {
            Some(Some(bytes)) if bytes.len() as u64 > max_len => Err(TufError::TooLarge {
                what: path.to_owned(),
                max: max_len,
            }),
            Some(Some(bytes)) => Ok(Some(bytes.clone())),
            Some(None) => Ok(None),
            None => {
                if let Ok(mut m) = self.missing.lock() {
                    *m = Some((path.to_owned(), max_len));
                }
                Err(TufError::Fetch {
                    what: path.to_owned(),
                    reason: "not fetched yet".to_owned(),
                })
            }
        }
    }
}

/// Whether `path` is a repository file name this client asks a host for.
pub(crate) fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && !path.starts_with('/')
        && !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

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
        let result = op(&files);
        let Some((path, max_len)) = files.take_missing() else {
            return Ok(result);
        };
        if result.is_ok() {
            return Ok(result);
        }
        if !safe_path(&path) {
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

/// Brings `store` up to date, fetching each file the update asks for from `source`.
pub async fn update<C: Clock>(
    store: &mut TrustStore<C>,
    source: &mut impl Source,
) -> Result<(), ClientError> {
    Ok(with_fetched(source, |files| store.update(files)).await??)
}
