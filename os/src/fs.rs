//! Private files and directories.
//!
//! A file written here is never, at any moment, readable by group or others: the temporary
//! file is created with mode `0600` (`O_CREAT | O_EXCL`, so a planted file or symlink is not
//! followed), written, fsynced, renamed over the target, and the directory is fsynced so the
//! rename itself survives a crash. A crash leaves the old file or the new one, never half.
//! On non-Unix targets the mode bits do not exist; the write is still atomic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every private file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every private directory.
pub const DIR_MODE: u32 = 0o700;

/// Writes `bytes` to `path` atomically, replacing any existing file; the result has mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_via_temp(path, bytes, Replace::Yes)
}

/// Like [`write_private`] but fails with [`io::ErrorKind::AlreadyExists`] if `path` exists:
/// for secret keys, so nothing ever overwrites a key.
pub fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_via_temp(path, bytes, Replace::No)
}

/// Creates (exclusively) an empty file with mode 0600 and returns it; fails if it exists.
/// For files another library then fills in place (a SQLite database: SQLite gives its `-wal`
/// and `-shm` files the mode of the database file).
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    opts.open(path)
}

/// Creates `path` and any missing parents; each directory this call creates has mode 0700.
/// An existing directory is left as it is.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(path)
}

/// Sets mode 0600 on an existing file (no-op off Unix): for files a library created itself.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

fn write_via_temp(path: &Path, bytes: &[u8], replace: Replace) -> io::Result<()> {
    let dir = parent_dir(path);
    let (tmp, mut file) = create_temp(dir, path)?;
    let result = write_and_place(&mut file, &tmp, path, bytes, replace);
    drop(file);
    if result.is_err() || replace == Replace::No {
        // After a hard link the temporary name is a second link to the new file; after a
        // failure it is garbage. Either way it goes.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn write_and_place(
    file: &mut File,
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
    replace: Replace,
) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    match replace {
        Replace::Yes => fs::rename(tmp, path),
        // link(2) fails if `path` exists: there is no window in which a key is overwritten.
        Replace::No => fs::hard_link(tmp, path),
    }
}

/// Makes the renames and creations in the directory holding `path` durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    sync_dir(parent_dir(path))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A fresh temporary file beside `path`, created 0600 and exclusively.
fn create_temp(dir: &Path, path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match create_private_file(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // A leftover from a crashed process with the same pid: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename in `dir` durable. Directories cannot be opened for sync off Unix.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_atomically_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_private(&p, b"one").unwrap();
        write_private(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_private_new(&p, b"key").unwrap();
        let e = write_private_new(&p, b"other").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"key");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn files_and_directories_are_private_from_creation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c");
        create_private_dir(&p).unwrap();
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        assert_eq!(mode(&p), DIR_MODE);
        let f = p.join("f");
        write_private(&f, b"x").unwrap();
        assert_eq!(mode(&f), FILE_MODE);
        let g = p.join("g");
        write_private_new(&g, b"x").unwrap();
        assert_eq!(mode(&g), FILE_MODE);
        drop(create_private_file(&p.join("db")).unwrap());
        assert_eq!(mode(&p.join("db")), FILE_MODE);
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        assert_eq!(
            write_private(Path::new("/"), b"x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
