//! Where the client keeps trusted metadata between runs: the [`MetadataStore`] trait and a
//! directory of `<role>.json` files.

use std::io;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Result, TufError};

/// Keeps the latest trusted bytes of each role.
pub trait MetadataStore {
    /// The stored bytes of `role`, or None if there are none.
    fn load(&self, role: &str) -> Result<Option<Vec<u8>>>;
    /// Replaces the stored bytes of `role` (atomically).
    fn store(&self, role: &str, bytes: &[u8]) -> Result<()>;
    /// Forgets `role` (no error if it was not stored).
    fn delete(&self, role: &str) -> Result<()>;
}

impl<T: MetadataStore + ?Sized> MetadataStore for &T {
    fn load(&self, role: &str) -> Result<Option<Vec<u8>>> {
        (**self).load(role)
    }
    fn store(&self, role: &str, bytes: &[u8]) -> Result<()> {
        (**self).store(role, bytes)
    }
    fn delete(&self, role: &str) -> Result<()> {
        (**self).delete(role)
    }
}

/// What Python's `urllib.parse.quote(name, safe="")` leaves unescaped: ASCII letters,
/// digits and `_.-~`.
const ROLE_NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// A role name as it appears in file names and URLs (percent-encoded, as python-tuf does):
/// no `/`, so `../x` cannot leave the directory.
pub fn encode_role_name(role: &str) -> String {
    utf8_percent_encode(role, ROLE_NAME).to_string()
}

/// A [`MetadataStore`] writing `<encoded role>.json` files (mode 0600, atomic replace) in
/// one directory.
#[derive(Clone, Debug)]
pub struct DirectoryStore {
    dir: PathBuf,
}

impl DirectoryStore {
    /// A store in `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.json", encode_role_name(role)))
    }
}

impl MetadataStore for DirectoryStore {
    fn load(&self, role: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(role);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TufError::io(path.display().to_string(), e)),
        }
    }

    fn store(&self, role: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(role);
        kasane_os::fs::write_private(&path, bytes)
            .map_err(|e| TufError::io(path.display().to_string(), e))
    }

    fn delete(&self, role: &str) -> Result<()> {
        let path = self.path(role);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(TufError::io(path.display().to_string(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_quoted_like_python() {
        assert_eq!(encode_role_name("targets"), "targets");
        assert_eq!(encode_role_name("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_role_name("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(encode_role_name("?"), "%3F");
        assert_eq!(encode_role_name("#"), "%23");
        assert_eq!(encode_role_name("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn store_load_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path());
        assert!(store.load("/x").unwrap().is_none());
        store.store("/x", b"{}").unwrap();
        assert!(dir.path().join("%2Fx.json").exists());
        assert_eq!(store.load("/x").unwrap().unwrap(), b"{}");
        store.delete("/x").unwrap();
        store.delete("/x").unwrap();
        assert!(store.load("/x").unwrap().is_none());
    }
}
