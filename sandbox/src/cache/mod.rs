//! [`CompileCache`]: compiled modules on disk, keyed by module hash and engine compatibility,
//! with an integrity check before anything is deserialized.
//!
//! # File format (`<dir>/<hex key>.cwasm`)
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KSNCWASM` |
//! | 8 | 4 | format version (u32 LE, 2) |
//! | 12 | 32 | the cache key (see below) |
//! | 44 | 32 | HMAC-SHA256 under the cache secret over bytes 0..44 and bytes 76.. |
//! | 76 | 4 | `n`, length of the module info (u32 LE) |
//! | 80 | n | the [`ModuleInfo`] validation produced (see `encode_info`) |
//! | 80 + n | … | `Module::serialize` output |
//!
//! Key = SHA-256(`"kasane/compile-cache/v2"` ‖ module SHA-256 ‖ profile name ‖ wasmtime
//! version ‖ the validation rules (their version, the allowed wasm features, the WASI
//! functions) ‖ the prefix and version of the exports added for warm instances before
//! compilation (`expose`) ‖ wasmtime's `precompile_compatibility_hash` (target, compiler
//! flags, tunables, features, wasmtime's own version)). A changed engine configuration or rule set is a
//! different key, so a stale entry is a miss, not an error. Format-1 entries have other keys
//! (the domain string changed), so they are never read: those modules are compiled again.
//!
//! # A hit skips validation
//! An entry is written only after [`validate`](crate::validate) accepted the bytes, and it
//! stores what validation learned. On a hit the loader hashes the given bytes itself, derives
//! the key from that hash, and takes the entry only if its HMAC verifies and the stored info
//! names the same hash: so these bytes are the ones validated when the entry was written,
//! under the same rules (they are in the key). Only the checks that depend on the caller's
//! limits (module size, declared memory and tables) run again, by the same code as in
//! validation. This saves the wasmparser pass (before format 2, 37–48 % of a hit).
//!
//! # What the integrity check defends against (and what not)
//! `Module::deserialize` trusts its input completely: bytes that are not exactly what
//! wasmtime produced can run arbitrary native code. So a file is only deserialized when its
//! HMAC verifies under a 32-byte secret kept in `<dir>/cache.key` (mode 0600, created on first
//! use from the OS RNG) and its key matches the module being loaded. That refuses:
//! corruption (a flipped byte, truncation), a file copied from another module's entry or
//! another cache, and a file planted by anyone who can write the directory but cannot read
//! the key. A refused file is never deserialized: the module is compiled again from its
//! bytes, after they are validated, the entry is rewritten and the outcome is
//! [`CacheOutcome::Recompiled`].
//!
//! It does not defend against someone who can read or write `cache.key`: that person can
//! make the embedder run anything, exactly like someone who can replace its binary. Keep the
//! cache directory as private as the binary (it is created with mode 0700).

mod load;

use crate::error::SandboxError;
use crate::validate::{self, ModuleInfo};
use hmac::{Hmac, Mac as _};
use kasane_abi::Profile;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};
use zeroize::Zeroizing;

/// The wasmtime version the workspace pins (also part of the compatibility hash).
const WASMTIME_VERSION: &str = "48.0.8";
const MAGIC: [u8; 8] = *b"KSNCWASM";
const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = 8 + 4 + 32 + 32;
/// Longest module info read back (the imports of a 1 MiB module fit easily).
const MAX_INFO_LEN: usize = 4 << 20;
const KEY_FILE: &str = "cache.key";
const SECRET_LEN: usize = 32;
/// Largest entry read back: compiled code of a module within the 1 MiB module cap is far
/// smaller.
const MAX_ENTRY_LEN: usize = 256 << 20;

type HmacSha256 = Hmac<Sha256>;

/// What [`Sandbox::load_cached`](crate::Sandbox::load_cached) did with the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// A verified entry was deserialized; nothing was compiled.
    Hit,
    /// No entry: compiled and stored.
    Miss,
    /// The cache is disabled: compiled, nothing written.
    Disabled,
    /// An entry existed but failed its integrity check (corrupt, truncated, foreign or
    /// planted): it was not deserialized; the module was compiled from its bytes and the entry
    /// replaced.
    Recompiled,
    /// The cache directory could not be read or written (a full disk, a directory made
    /// read-only or removed): the module was compiled from its bytes and used; nothing was
    /// kept. A cache is an optimisation, so its failure never fails the load; the kind of
    /// I/O error is here for the embedder's log.
    Unusable(io::ErrorKind),
}

/// A directory of compiled modules, or nothing ([`CompileCache::disabled`]).
#[derive(Debug)]
pub struct CompileCache {
    dir: Option<CacheDir>,
}

struct CacheDir {
    path: PathBuf,
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl std::fmt::Debug for CacheDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CompileCache {
    /// Opens (creating if needed) a cache in `dir`, and its secret key file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SandboxError> {
        let path = dir.as_ref().to_path_buf();
        kasane_os::fs::create_private_dir(&path).map_err(SandboxError::Cache)?;
        let secret = load_or_create_secret(&path)?;
        Ok(Self {
            dir: Some(CacheDir { path, secret }),
        })
    }

    /// No cache: every load compiles, and nothing ever touches the filesystem (`--no-cache`).
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// The cache directory, if enabled.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path.as_path())
    }

    /// Looks for a verified entry for the module whose SHA-256 is `module_hash` (computed by
    /// the caller from the bytes being loaded). A hit returns the compiled module and the
    /// [`ModuleInfo`] stored when those bytes were validated; anything else says why the
    /// caller must validate and compile.
    pub(crate) fn lookup(
        &self,
        engine: &Engine,
        module_hash: &[u8; 32],
        profile: Profile,
    ) -> Lookup {
        let Some(dir) = &self.dir else {
            return Lookup::Compile(CacheOutcome::Disabled);
        };
        let key = cache_key(engine, module_hash, profile);
        let outcome = match read_capped(&dir.entry_path(&key)) {
            Ok(Some(bytes)) => {
                match load::verified_deserialize(engine, &dir.secret, &key, module_hash, &bytes) {
                    Some((module, info)) => return Lookup::Hit(module, info),
                    None => CacheOutcome::Recompiled,
                }
            }
            // Larger than any entry we write: not ours, and not worth reading.
            Ok(None) => CacheOutcome::Recompiled,
            Err(e) if e.kind() == io::ErrorKind::NotFound => CacheOutcome::Miss,
            Err(e) => CacheOutcome::Unusable(e.kind()),
        };
        Lookup::Compile(outcome)
    }

    /// Stores `module`, compiled from bytes that validated to `info`, replacing any entry.
    /// Does nothing when the cache is disabled.
    pub(crate) fn store(
        &self,
        engine: &Engine,
        info: &ModuleInfo,
        profile: Profile,
        module: &Module,
    ) -> Result<(), SandboxError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let key = cache_key(engine, &info.sha256, profile);
        let code = module
            .serialize()
            .map_err(|e| SandboxError::Engine(format!("serialize: {e:#}")))?;
        let entry = encode_entry(&dir.secret, &key, &encode_info(info), &code);
        write_atomically(&dir.entry_path(&key), &entry)
    }
}

/// What [`CompileCache::lookup`] found.
pub(crate) enum Lookup {
    /// A verified entry: the compiled module and the info stored with it.
    Hit(Module, ModuleInfo),
    /// No usable entry: validate, compile, then [`CompileCache::store`]; the outcome to report.
    Compile(CacheOutcome),
}

impl CacheDir {
    fn entry_path(&self, key: &[u8; 32]) -> PathBuf {
        self.path.join(format!("{}.cwasm", crate::hex(key)))
    }
}

/// Reads `path` unless it is larger than [`MAX_ENTRY_LEN`] (`Ok(None)`): a planted huge file
/// costs a `stat`, not memory.
fn read_capped(path: &Path) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let f = fs::File::open(path)?;
    let cap = MAX_ENTRY_LEN as u64;
    let len = f.metadata()?.len();
    if len > cap {
        return Ok(None);
    }
    // One allocation of the right size (plus the byte that detects growth), not a doubling
    // series: `len` is at most `MAX_ENTRY_LEN`.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    // `take` also bounds a file that grows while we read it.
    f.take(cap + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

fn cache_key(engine: &Engine, module_hash: &[u8; 32], profile: Profile) -> [u8; 32] {
    use std::hash::Hash as _;
    let mut h = ShaHasher(Sha256::new());
    h.0.update(b"kasane/compile-cache/v2");
    h.0.update(module_hash);
    h.0.update(profile.as_str().as_bytes());
    h.0.update([0]);
    h.0.update(WASMTIME_VERSION.as_bytes());
    h.0.update([0]);
    // A hit skips validation, so an entry must not outlive the rules it was validated under.
    h.0.update(validate::RULES_VERSION.to_le_bytes());
    h.0.update(validate::allowed_features().bits().to_le_bytes());
    // The compiled code is of the bytes with the warm instances' exports.
    h.0.update(crate::expose::PREFIX.as_bytes());
    h.0.update(crate::expose::VERSION.to_le_bytes());
    for name in validate::WASI_P1_FUNCTIONS {
        h.0.update(name.as_bytes());
        h.0.update([0]);
    }
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().into()
}

/// Feeds a [`std::hash::Hash`] into SHA-256 (a stable digest, unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn tag(secret: &[u8; SECRET_LEN], header: &[u8], body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(header);
    mac.update(body);
    Some(mac)
}

fn header(key: &[u8; 32]) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..44].copy_from_slice(key);
    h
}

/// The authenticated part of an entry after the tag: info length, info, compiled code.
fn encode_entry(secret: &[u8; SECRET_LEN], key: &[u8; 32], info: &[u8], code: &[u8]) -> Vec<u8> {
    let head = header(key);
    let info_len = u32::try_from(info.len()).unwrap_or(u32::MAX);
    let mut body = Vec::with_capacity(4 + info.len() + code.len());
    body.extend_from_slice(&info_len.to_le_bytes());
    body.extend_from_slice(info);
    body.extend_from_slice(code);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&head);
    // HMAC accepts keys of any length, so `tag` cannot fail here; an all-zero tag would only
    // make the entry fail verification later (a recompile), never a wrong deserialize.
    let t = tag(secret, &head, &body).map(|m| m.finalize().into_bytes().to_vec());
    out.extend_from_slice(t.as_deref().unwrap_or(&[0u8; 32]));
    out.extend_from_slice(&body);
    out
}

/// Splits a verified body into (info, code); `None` if the length does not fit.
fn split_body(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if len > MAX_INFO_LEN {
        return None;
    }
    rest.split_at_checked(len)
}

/// `ModuleInfo` as stored in an entry: module SHA-256 (32), `has_start` (1),
/// `has_initialize` (1), initial memory bytes (u64), table count (u32) and each table's
/// initial size (u64), import count (u32) and each import as module then name, each a u32
/// length and UTF-8 bytes. All integers little-endian.
fn encode_info(info: &ModuleInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&info.sha256);
    out.push(u8::from(info.has_start));
    out.push(u8::from(info.has_initialize));
    out.extend_from_slice(&info.initial_memory_bytes.to_le_bytes());
    out.extend_from_slice(&len(info.table_initials.len()));
    for t in &info.table_initials {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out.extend_from_slice(&len(info.imports.len()));
    for (module, name) in &info.imports {
        for s in [module, name] {
            out.extend_from_slice(&len(s.len()));
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Reads [`encode_info`]'s output back; `None` for anything malformed or with bytes left.
fn decode_info(bytes: &[u8]) -> Option<ModuleInfo> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, rest) = self.0.split_at_checked(n)?;
            self.0 = rest;
            Some(head)
        }
        fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.take(N)?.try_into().ok()
        }
        fn flag(&mut self) -> Option<bool> {
            match self.array::<1>()? {
                [0] => Some(false),
                [1] => Some(true),
                _ => None,
            }
        }
        fn u64(&mut self) -> Option<u64> {
            self.array().map(u64::from_le_bytes)
        }
        fn len(&mut self) -> Option<usize> {
            usize::try_from(u32::from_le_bytes(self.array()?)).ok()
        }
        fn string(&mut self) -> Option<String> {
            let n = self.len()?;
            String::from_utf8(self.take(n)?.to_vec()).ok()
        }
    }
    let mut r = Reader(bytes);
    let sha256 = r.array()?;
    let has_start = r.flag()?;
    let has_initialize = r.flag()?;
    let initial_memory_bytes = r.u64()?;
    // Counts are bounded by the bytes left, so a bad count cannot allocate much.
    let tables = r.len()?;
    let table_initials = (0..tables).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
    let imports = r.len()?;
    let imports = (0..imports)
        .map(|_| Some((r.string()?, r.string()?)))
        .collect::<Option<Vec<_>>>()?;
    r.0.is_empty().then_some(ModuleInfo {
        sha256,
        imports,
        has_start,
        has_initialize,
        initial_memory_bytes,
        table_initials,
    })
}

fn load_or_create_secret(dir: &Path) -> Result<Zeroizing<[u8; SECRET_LEN]>, SandboxError> {
    let path = dir.join(KEY_FILE);
    match read_secret(&path) {
        Ok(s) => return Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SandboxError::Cache(e)),
    }
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, secret.as_mut_slice())
        .map_err(|e| SandboxError::Cache(io::Error::other(e)))?;
    // `write_private_new` links the finished 0600 file into place and fails if another
    // process created the key first: then we use theirs.
    match kasane_os::fs::write_private_new(&path, secret.as_slice()) {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_secret(&path).map_err(SandboxError::Cache)
        }
        Err(e) => Err(SandboxError::Cache(e)),
    }
}

fn read_secret(path: &Path) -> io::Result<Zeroizing<[u8; SECRET_LEN]>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is accessible to other users (mode {mode:o}); expected 0600",
                    path.display()
                ),
            ));
        }
    }
    let bytes = Zeroizing::new(fs::read(path)?);
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    if bytes.len() != SECRET_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a {SECRET_LEN}-byte key", path.display()),
        ));
    }
    secret.copy_from_slice(&bytes);
    Ok(secret)
}

/// Through the one private-file writer: a temporary file created 0600, fsynced, renamed into
/// place, the directory fsynced. Readers see the old entry or the new one, never half a file.
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    kasane_os::fs::write_private(file, bytes).map_err(SandboxError::Cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_and_every_tamper_is_refused() {
        let secret = [9u8; 32];
        let key = [1u8; 32];
        let entry = encode_entry(&secret, &key, b"info", b"payload");
        let v = load::verify(&secret, &key, &entry);
        assert_eq!(v.map(|v| v.info), Some(&b"info"[..]));
        let mut flipped = entry.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert!(load::verify(&secret, &key, &flipped).is_none());
        assert!(load::verify(&secret, &key, &entry[..entry.len() - 1]).is_none());
        assert!(load::verify(&secret, &key, &entry[..10]).is_none());
        assert!(load::verify(&secret, &[2u8; 32], &entry).is_none());
        assert!(load::verify(&[8u8; 32], &key, &entry).is_none());
    }

    #[test]
    fn the_module_info_round_trips_and_malformed_info_is_refused() {
        let info = ModuleInfo {
            sha256: [7; 32],
            imports: vec![("wasi_snapshot_preview1".into(), "fd_write".into())],
            has_start: true,
            has_initialize: false,
            initial_memory_bytes: 3 << 16,
            table_initials: vec![2, 10_000],
        };
        let bytes = encode_info(&info);
        assert_eq!(decode_info(&bytes), Some(info));
        for n in 0..bytes.len() {
            assert_eq!(decode_info(&bytes[..n]), None, "truncated to {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_info(&longer), None);
        let mut bad_flag = bytes;
        bad_flag[32] = 2;
        assert_eq!(decode_info(&bad_flag), None);
    }

    #[test]
    fn open_creates_a_private_key_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = CompileCache::open(dir.path()).unwrap();
        let b = CompileCache::open(dir.path()).unwrap();
        let (sa, sb) = (a.dir.as_ref().unwrap(), b.dir.as_ref().unwrap());
        assert_eq!(sa.secret.as_slice(), sb.secret.as_slice());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o644))
                .unwrap();
            assert!(matches!(
                CompileCache::open(dir.path()),
                Err(SandboxError::Cache(_))
            ));
        }
    }
}
