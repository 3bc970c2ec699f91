//! Reading and writing the registry's files, with I/O errors as [`RegistryError::Io`] naming
//! the path.
//!
//! Every write goes through [`kasane_os::fs`]: a temporary file created with mode 0600,
//! written, fsynced, renamed over the target, and the directory fsynced, so a crash leaves the
//! old file or the new one and a secret is never readable by others, even for an instant.
//! - secret keys: [`write_private_new`], which never replaces an existing file;
//! - the trust store's state: [`write_private`];
//! - files that are public by design (repository metadata, public key files, tickets, author
//!   files): [`write_public`], which opens the finished file to 0644 so whoever serves or
//!   reads the repository can.

use std::path::Path;

use crate::error::{RegistryError, Result};

/// Mode of a file that is public by design.
#[cfg(unix)]
const PUBLIC_MODE: u32 = 0o644;

/// Reads a whole file, refusing one larger than `max` bytes before reading it all.
pub fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| RegistryError::io(path, e))?;
    let mut buf = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| RegistryError::io(path, e))?;
    crate::json::check_len(buf.len(), max, what)?;
    Ok(buf)
}

/// Writes `bytes` to `path` atomically with mode 0600, replacing any existing file.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    kasane_os::fs::write_private(path, bytes).map_err(|e| RegistryError::io(path, e))
}

/// Like [`write_private`], but refuses to replace an existing file (an `AlreadyExists` I/O
/// error): for secret keys, so nothing ever destroys a key.
pub(crate) fn write_private_new(path: &Path, bytes: &[u8]) -> Result<()> {
    kasane_os::fs::write_private_new(path, bytes).map_err(|e| RegistryError::io(path, e))
}

/// Writes a file that is public by design (metadata, a public key, a ticket) atomically, then
/// gives it mode 0644. Widening a finished file of public bytes exposes nothing.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    write_private(path, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PUBLIC_MODE))
            .map_err(|e| RegistryError::io(path, e))?;
    }
    Ok(())
}

/// Who may read a repository's files: everyone (0644 files, 0755 folders: a repository a
/// web server publishes) or only the owner (0600, 0700: a repository inside a host's data
/// directory, which the host serves itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// 0644 files, 0755 folders.
    Public,
    /// 0600 files, 0700 folders.
    Private,
}

impl Visibility {
    /// The visibility a repository's files take from its root folder: private when the root
    /// is readable by its owner alone (a host's `registry/`, made 0700), else public. So a
    /// command publishing into a host's data directory never widens what is in it.
    #[must_use]
    pub fn of_root(root: &Path) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(root)
                && m.permissions().mode() & 0o077 == 0
            {
                return Self::Private;
            }
        }
        let _ = root;
        Self::Public
    }
}

/// Writes a repository file with `visibility` (atomically, as every write here).
pub fn write_repo_file(path: &Path, bytes: &[u8], visibility: Visibility) -> Result<()> {
    match visibility {
        Visibility::Public => write_public(path, bytes),
        Visibility::Private => write_private(path, bytes),
    }
}

/// Creates a repository folder and its missing parents with `visibility`.
pub fn create_repo_dir(dir: &Path, visibility: Visibility) -> Result<()> {
    match visibility {
        Visibility::Public => create_public_dir(dir),
        Visibility::Private => create_private_dir(dir),
    }
}

/// Creates `dir` and its missing parents with mode 0755 at most (a repository's public
/// folders): never writable by group or others, whatever the umask.
pub fn create_public_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(dir).map_err(|e| RegistryError::io(dir, e))
}

/// Creates `dir` and its missing parents with mode 0700 (keys directories, trust stores).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    kasane_os::fs::create_private_dir(dir).map_err(|e| RegistryError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_new_refuses_and_reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        write_private(&p, b"one").unwrap();
        write_private(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let q = dir.path().join("new.json");
        write_private_new(&q, b"key").unwrap();
        assert!(matches!(
            write_private_new(&q, b"other"),
            Err(RegistryError::Io { ref source, ref path })
                if source.kind() == std::io::ErrorKind::AlreadyExists && path.ends_with("new.json")
        ));
        assert_eq!(std::fs::read(&q).unwrap(), b"key");
        assert!(matches!(
            read_capped(&p, 2, "k"),
            Err(RegistryError::TooLarge { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_and_public_ones_0644() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = (dir.path().join("s"), dir.path().join("p"));
        write_private_new(&secret, b"s").unwrap();
        write_public(&public, b"p").unwrap();
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&public), 0o644);
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
    }
}
