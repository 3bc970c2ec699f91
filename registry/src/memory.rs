//! In-memory TUF plumbing: a [`Fetcher`] over a map of repository files and a
//! [`MetadataStore`] in a map. The publisher checks its own repository through them, exactly
//! as a client would ([`crate::repo::Repository::resolver`]), and tests use them as a
//! repository that needs no disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kasane_tuf::TufError;
use kasane_tuf::updater::{Fetcher, MetadataStore};

/// Repository files by path (`metadata/3.root.json`, `targets/kasane/<hash>.host-keys.json`),
/// served under a prefix (`metadata/` for the updater, `targets/` for downloads).
#[derive(Clone, Debug, Default)]
pub struct MemoryFetcher<'a> {
    files: Option<&'a BTreeMap<String, Vec<u8>>>,
    prefix: &'static str,
}

impl<'a> MemoryFetcher<'a> {
    /// Serves `files[prefix + path]` for `path`.
    pub fn new(files: &'a BTreeMap<String, Vec<u8>>, prefix: &'static str) -> Self {
        Self {
            files: Some(files),
            prefix,
        }
    }
}

impl Fetcher for MemoryFetcher<'_> {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        let Some(bytes) = self
            .files
            .and_then(|f| f.get(&format!("{}{path}", self.prefix)))
        else {
            return Ok(None);
        };
        if bytes.len() as u64 > max_len {
            return Err(TufError::TooLarge {
                what: path.to_owned(),
                max: max_len,
            });
        }
        Ok(Some(bytes.clone()))
    }
}

/// Trusted metadata kept in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    roles: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MetadataStore for MemoryStore {
    fn load(&self, role: &str) -> Result<Option<Vec<u8>>, TufError> {
        Ok(self.roles.lock().ok().and_then(|m| m.get(role).cloned()))
    }

    fn store(&self, role: &str, bytes: &[u8]) -> Result<(), TufError> {
        if let Ok(mut m) = self.roles.lock() {
            m.insert(role.to_owned(), bytes.to_vec());
        }
        Ok(())
    }

    fn delete(&self, role: &str) -> Result<(), TufError> {
        if let Ok(mut m) = self.roles.lock() {
            m.remove(role);
        }
        Ok(())
    }
}
