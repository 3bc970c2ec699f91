//! Secret key files the host makes itself on first use (`keys/queue.key`, `keys/opaque.key`,
//! `keys/metrics.token`):
//! private (0600) from the moment they exist, never overwritten, checked for length.

use std::path::Path;

use ed25519_dalek::SigningKey;
use kasane_protocol::ServerKeys;
use kasane_registry::keys::read_key_file;
use rand::RngCore;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::HostError;
use crate::crypto::KeyError;

/// File name of the token `GET /metrics` asks for (`Authorization: Bearer <64 hex digits>`):
/// 32 random bytes, stored as 64 lowercase hex digits (what Prometheus's
/// `authorization.credentials_file` reads).
pub const METRICS_TOKEN_FILE: &str = "metrics.token";

/// The metrics token in `keys_dir`, made on first use.
pub fn load_metrics_token(keys_dir: &Path) -> Result<Zeroizing<[u8; 32]>, HostError> {
    let hex_bytes = load_or_create(keys_dir, METRICS_TOKEN_FILE, 64, || {
        Zeroizing::new(hex::encode(random_bytes(32).as_slice()).into_bytes())
    })?;
    let mut token = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_bytes.as_slice(), token.as_mut_slice()).map_err(|_| {
        HostError::key(
            &keys_dir.join(METRICS_TOKEN_FILE),
            KeyError::Length(hex_bytes.len()),
        )
    })?;
    Ok(token)
}

/// File name of the host's OPAQUE keys (OPRF seed, static key pair, fake client key).
pub const OPAQUE_KEY_FILE: &str = "opaque.key";
/// Length of the OPAQUE key file, bytes.
pub const OPAQUE_KEY_LEN: usize = 128;

/// Reads `keys_dir/name` (`len` bytes), creating it with `make()` if it is missing. Two
/// processes creating it at once: the second reads the first's.
pub fn load_or_create(
    keys_dir: &Path,
    name: &str,
    len: usize,
    make: impl FnOnce() -> Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, HostError> {
    let path = keys_dir.join(name);
    if let Some(key) = read_key(&path, len)? {
        return Ok(key);
    }
    let key = make();
    kasane_os::fs::create_private_dir(keys_dir).map_err(|e| HostError::io(keys_dir, e))?;
    match kasane_os::fs::write_private_new(&path, &key) {
        Ok(()) => Ok(key),
        // Another process made it first: its key is the one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(&path, len)?.ok_or_else(|| HostError::io(&path, e))
        }
        Err(e) => Err(HostError::io(&path, e)),
    }
}

/// The `len`-byte key in `path`, or `None` if there is no such file.
fn read_key(path: &Path, len: usize) -> Result<Option<Zeroizing<Vec<u8>>>, HostError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HostError::io(path, e)),
    };
    if bytes.len() != len {
        return Err(HostError::key(path, KeyError::Length(bytes.len())));
    }
    Ok(Some(bytes))
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Zeroizing<Vec<u8>> {
    let mut k = Zeroizing::new(vec![0u8; len]);
    OsRng.fill_bytes(&mut k);
    k
}

/// The host's OPAQUE keys from `keys_dir/opaque.key`, made on first use. Every replica must
/// share this file (as it shares `host.key`): an unknown name's fake answer is keyed by it.
pub fn load_opaque_keys(keys_dir: &Path) -> Result<ServerKeys, HostError> {
    let bytes = load_or_create(keys_dir, OPAQUE_KEY_FILE, OPAQUE_KEY_LEN, || {
        <ServerKeys>::generate(&mut OsRng).to_bytes()
    })?;
    let path = keys_dir.join(OPAQUE_KEY_FILE);
    ServerKeys::from_bytes(&bytes).map_err(|_| HostError::key(&path, KeyError::Invalid))
}

/// The store fact naming the OPAQUE keys a database's users were enrolled under.
pub const OPAQUE_KEY_FACT: &str = "opaque_key_id";

/// The public identifier of OPAQUE keys: `HMAC-SHA-256(keys, "kasane/opaque-key-id/v1")`,
/// which tells two apart without revealing either.
#[must_use]
pub fn opaque_key_id(keys: &ServerKeys) -> [u8; 32] {
    use hmac::Mac as _;
    let bytes = keys.to_bytes();
    // HMAC takes a key of any length: the `Err` arm cannot happen.
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&bytes) else {
        return [0; 32];
    };
    mac.update(b"kasane/opaque-key-id/v1");
    mac.finalize().into_bytes().into()
}

/// The identity key's file in the keys directory (signs start responses and audit
/// checkpoints).
pub const IDENTITY_KEY_FILE: &str = "host.key";
/// The online key's file (re-signs the registry's timestamp and snapshot).
pub const ONLINE_KEY_FILE: &str = "online.pem";

/// Reads the Ed25519 signing key of a registry key file (`keys/host.key`).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, HostError> {
    Ok(read_key_file(path)?.into_signing_key())
}

/// The host's identity key, `keys/host.key`.
pub fn load_identity_key(keys_dir: &Path) -> Result<SigningKey, HostError> {
    read_signing_key(&keys_dir.join(IDENTITY_KEY_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_keys_are_made_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let a = load_opaque_keys(&keys).unwrap();
        let b = load_opaque_keys(&keys).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let path = keys.join(OPAQUE_KEY_FILE);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, [0u8; 5]).unwrap();
        assert!(load_opaque_keys(&keys).is_err());
        std::fs::write(&path, [0xffu8; OPAQUE_KEY_LEN]).unwrap();
        assert!(load_opaque_keys(&keys).is_err(), "not a valid scalar");
    }
}
