//! Registry trust: the [`TrustStore`] kept current from the host's `GET /v1/registry/<path>`.
//!
//! [`TrustStore::update`] pulls files through a synchronous [`Fetcher`]. The runtime must not
//! block on the network inside it, so [`update`] runs it against a [`Prefetched`] map: a path
//! the map lacks is recorded and the update fails; the path is then fetched asynchronously
//! (404 → "no such file") and the update retried, a bounded number of times.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use kasane_registry::trust::{Clock, Fetcher, TrustStore};
use kasane_registry::{RegistryError, Result as RegResult};

use crate::ClientError;
use crate::error::RegistryUpdateError;

/// Most update attempts: the longest root chain, three top-level files and every author.
pub const MAX_UPDATE_ATTEMPTS: usize = 32 + 4 + 64 + 8;

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
    fn fetch(&self, path: &str, max_len: u64) -> RegResult<Option<Vec<u8>>> {
        match self.files.get(path) {
            Some(Some(bytes)) => {
                // One byte past the cap at most, as the trait asks.
                let keep = usize::try_from(max_len.saturating_add(1)).unwrap_or(usize::MAX);
                Ok(Some(bytes[..bytes.len().min(keep)].to_vec()))
            }
            Some(None) => Ok(None),
            None => {
                if let Ok(mut m) = self.missing.lock() {
                    *m = Some((path.to_owned(), max_len));
                }
                Err(RegistryError::Missing {
                    path: path.to_owned(),
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

/// Brings `store` up to date, fetching each file the update asks for from `source`.
pub async fn update<C: Clock>(
    store: &mut TrustStore<C>,
    source: &mut impl Source,
) -> Result<(), ClientError> {
    let mut files = Prefetched::new();
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let Err(e) = store.update(&files) else {
            return Ok(());
        };
        let Some((path, max_len)) = files.take_missing() else {
            return Err(e.into());
        };
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
