//! Atomic file writes: a temporary file in the same directory, fsync, rename, fsync the directory.
//!
//! A crash leaves either the old file or the new one, never half of either. Used for the trust
//! store's state (a torn state file must not reset version floors) and for secret key files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{RegistryError, Result};

/// Writes `bytes` to `path` atomically; a new file gets permission bits `mode` (e.g. `0o600`).
///
/// The temporary file is created with `mode` from the start (never readable by others, even
/// for an instant) and exclusively (`O_EXCL`), so a planted symlink is not followed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_impl(path, bytes, mode, false)
}

/// Like [`write_atomic`], but refuses to replace an existing file (an `AlreadyExists` I/O
/// error): used for secret keys, so `keygen` never destroys a key.
pub fn write_atomic_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_impl(path, bytes, mode, true)
}

fn write_impl(path: &Path, bytes: &[u8], mode: u32, no_clobber: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or(RegistryError::Invalid {
            field: "path",
            reason: "no file name",
        })?
        .to_string_lossy()
        .into_owned();
    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(nonce)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| RegistryError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| RegistryError::io(&tmp, e))?;
        f.sync_all().map_err(|e| RegistryError::io(&tmp, e))?;
        if no_clobber {
            // link(2) fails if `path` exists: no window where a key could be overwritten.
            fs::hard_link(&tmp, path).map_err(|e| RegistryError::io(path, e))?;
            let _ = fs::remove_file(&tmp);
        } else {
            fs::rename(&tmp, path).map_err(|e| RegistryError::io(path, e))?;
        }
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, refusing one larger than `max` bytes before reading it all.
pub fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(|e| RegistryError::io(path, e))?;
    let mut buf = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| RegistryError::io(path, e))?;
    crate::json::check_len(buf.len(), max, what)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let q = dir.path().join("new.json");
        write_atomic_new(&q, b"key", 0o600).unwrap();
        assert!(matches!(
            write_atomic_new(&q, b"other", 0o600),
            Err(RegistryError::Io { ref source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists
        ));
        assert_eq!(fs::read(&q).unwrap(), b"key");
        fs::remove_file(&q).unwrap();
        assert!(matches!(
            read_capped(&p, 2, "k"),
            Err(RegistryError::TooLarge { .. })
        ));
    }
}
