//! Running a [`TrustStore`](crate::trust::TrustStore) operation from a client that cannot
//! block on the network inside it (an async runtime, a browser).
//!
//! The trust store pulls files through a synchronous [`Fetcher`]. Such a client runs the
//! operation against a [`Prefetched`] map instead: a path the map lacks is recorded and the
//! operation fails; [`attempt`] reports that path, the client fetches it its own way (404 →
//! "no such file") and runs the operation again, at most [`MAX_UPDATE_ATTEMPTS`] times. Each
//! role the TUF workflow verified along the way is already stored, so a retry goes on from
//! there. The native client (`kasane-client`) and the browser client (`kasane-web`) both
//! drive their updates with it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::trust::Fetcher;
use crate::{RegistryError, TufError};

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

/// Whether `path` is a repository file name a client asks a host for: relative, no `..`,
/// a short plain name.
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && !path.starts_with('/')
        && !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

/// What one run of an operation against [`Prefetched`] came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// The operation's own answer.
    Done(Result<T, RegistryError>),
    /// It stopped at a file not fetched yet: fetch `path` (at most `max_len` bytes are
    /// accepted), [`Prefetched::insert`] it and run the operation again.
    Need {
        /// The repository path (checked with [`safe_path`] by the caller before fetching).
        path: String,
        /// Its size cap.
        max_len: u64,
    },
}

/// Runs `op` once against `files`.
pub fn attempt<T>(
    files: &Prefetched,
    op: impl FnOnce(&Prefetched) -> Result<T, RegistryError>,
) -> Attempt<T> {
    let result = op(files);
    match files.take_missing() {
        Some((path, max_len)) if result.is_err() => Attempt::Need { path, max_len },
        _ => Attempt::Done(result),
    }
}
