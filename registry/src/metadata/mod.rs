//! The signed file kinds, their size caps, the name rules, and the one verification path every
//! file goes through ([`verify`]: cap → envelope → signatures → strict JSON → field checks).
//!
//! - [`root`]: keys and thresholds of every role, version and expiry, the rotation rule.
//! - [`targets`]: module entries, delegations, and `authors/<id>` files.
//! - [`revocations`]: revoked module hashes and author keys.
//! - [`snapshot`]: versions, hashes and lengths of every other file.
//! - [`ticket`]: per-login session tickets.

pub mod revocations;
pub mod root;
pub mod snapshot;
pub mod targets;
pub mod ticket;

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{Envelope, RoleKeys};
use crate::error::{RegistryError, Result, RoleName};
use crate::keys::{KeyId, RawKey, SecretKey};

/// Cap on a `root` file (as stored: the envelope).
pub const MAX_ROOT_LEN: u64 = 64 * 1024;
/// Cap on the `targets` file.
pub const MAX_TARGETS_LEN: u64 = 1024 * 1024;
/// Cap on one `authors/<id>` file.
pub const MAX_AUTHOR_LEN: u64 = 256 * 1024;
/// Cap on the `revocations` file.
pub const MAX_REVOCATIONS_LEN: u64 = 256 * 1024;
/// Cap on the `snapshot` file.
pub const MAX_SNAPSHOT_LEN: u64 = 256 * 1024;
/// Cap on a session ticket.
pub const MAX_TICKET_LEN: u64 = 4 * 1024;
/// Cap on a module (DESIGN §2: module size 1 MiB).
pub const MAX_MODULE_LEN: u64 = 1024 * 1024;
/// Longest module name or delegation prefix.
pub const MAX_NAME_LEN: usize = 128;
/// Longest author id.
pub const MAX_AUTHOR_ID_LEN: usize = 64;

/// One kind of signed metadata file.
pub trait Metadata: Serialize + DeserializeOwned {
    /// The envelope's payload type.
    const PAYLOAD_TYPE: &'static str;
    /// The cap on the stored file (envelope).
    const MAX_LEN: u64;
    /// The file's version (strictly increasing).
    fn version(&self) -> u64;
    /// Expiry, unix seconds.
    fn expires(&self) -> u64;
    /// Checks every field (names, thresholds, keys, …); called on every parse.
    fn validate(&self) -> Result<()>;

    /// The JSON payload.
    fn to_payload(&self) -> Vec<u8> {
        // Plain structs of strings, integers and maps with string keys always serialize.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Signs the payload with `keys`, as an envelope.
    fn sign(&self, keys: &[&SecretKey]) -> Envelope {
        Envelope::sign(Self::PAYLOAD_TYPE, self.to_payload(), keys)
    }

    /// Signs and returns the file's bytes.
    fn sign_to_bytes(&self, keys: &[&SecretKey]) -> Vec<u8> {
        self.sign(keys).to_bytes()
    }
}

/// Verifies a stored file against `keys` and only then parses and checks its payload.
pub fn verify<M: Metadata>(bytes: &[u8], keys: &RoleKeys) -> Result<M> {
    let env = Envelope::from_bytes(bytes, M::MAX_LEN, &keys.role().to_string())?;
    let payload = env.verify(M::PAYLOAD_TYPE, keys)?;
    parse_payload(payload, &keys.role().to_string())
}

/// Parses a payload without checking any signature: for `inspect`, and for a root whose keys
/// are only known once it is parsed (its signatures are checked right after, see
/// [`root::Root`]). Never use the result as trusted.
pub fn parse_unverified<M: Metadata>(bytes: &[u8], what: &str) -> Result<(M, Envelope)> {
    let env = Envelope::from_bytes(bytes, M::MAX_LEN, what)?;
    if env.payload_type != M::PAYLOAD_TYPE {
        return Err(RegistryError::WrongPayloadType {
            expected: M::PAYLOAD_TYPE,
            got: env.payload_type.chars().take(200).collect(),
        });
    }
    let m = parse_payload(&env.payload, what)?;
    Ok((m, env))
}

fn parse_payload<M: Metadata>(payload: &[u8], what: &str) -> Result<M> {
    let m: M = crate::json::from_slice_strict(payload, M::MAX_LEN, what)?;
    m.validate()?;
    Ok(m)
}

/// A key list as written in metadata: key id → public key. Each id must be the key's SHA-256.
pub type KeyMap = BTreeMap<KeyId, RawKey>;

/// Checks that each key is a valid, non-weak Ed25519 key and that its id is its SHA-256 (so
/// no key has two ids).
pub(crate) fn check_key_map(keys: &KeyMap) -> Result<()> {
    for (id, raw) in keys {
        let k = raw.check()?;
        if *id != k.key_id() {
            return Err(RegistryError::KeyIdMismatch { keyid: id.to_hex() });
        }
    }
    Ok(())
}

/// Builds the [`RoleKeys`] for `keyids` out of `keys`.
pub(crate) fn role_keys(
    role: RoleName,
    keys: &KeyMap,
    keyids: &[KeyId],
    threshold: u32,
) -> Result<RoleKeys> {
    let mut out = Vec::with_capacity(keyids.len());
    for id in keyids {
        let k = keys.get(id).ok_or_else(|| RegistryError::UnknownKeyId {
            role: role.clone(),
            keyid: id.to_hex(),
        })?;
        out.push(k.check()?);
    }
    RoleKeys::new(role, out, threshold)
}

fn bad_name(name: &str, reason: &'static str) -> RegistryError {
    RegistryError::BadName {
        name: name.chars().take(200).collect(),
        reason,
    }
}

/// Checks a module name: 1 to [`MAX_NAME_LEN`] characters of `[a-z0-9._/-]`, no `..`, no
/// empty or `.` component, no leading or trailing `/`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(bad_name(name, "length out of range"));
    }
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'/' | b'-'))
    {
        return Err(bad_name(name, "characters outside [a-z0-9._/-]"));
    }
    if name.contains("..") {
        return Err(bad_name(name, "contains .."));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(bad_name(name, "leading or trailing /"));
    }
    if name.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(bad_name(name, "empty or . component"));
    }
    Ok(())
}

/// Checks a delegation prefix: a valid name followed by `/` (so `acme/` never covers
/// `acmevil/x`).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/') {
        Some(stem) => validate_name(stem),
        None => Err(bad_name(prefix, "a prefix must end with /")),
    }
}

/// Checks an author id: 1 to [`MAX_AUTHOR_ID_LEN`] characters of `[a-z0-9-]`, not starting with
/// `-` (it becomes the file name `authors/<id>`).
pub fn validate_author_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_AUTHOR_ID_LEN {
        return Err(bad_name(id, "author id length out of range"));
    }
    if !id
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        || id.starts_with('-')
    {
        return Err(bad_name(id, "author id outside [a-z0-9-]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["sha256-chain", "acme/ocra-v2", "a.b_c/d-e/f", "x"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "../etc/passwd",
            "a/../b",
            "/abs",
            "a/",
            "a//b",
            "./a",
            "A",
            "a b",
            "a\\b",
            "é",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(
                matches!(validate_name(bad), Err(RegistryError::BadName { .. })),
                "{bad:?}"
            );
        }
        validate_prefix("acme/").unwrap();
        assert!(validate_prefix("acme").is_err());
        assert!(validate_prefix("/").is_err());
        validate_author_id("acme-labs").unwrap();
        assert!(validate_author_id("acme/x").is_err());
        assert!(validate_author_id("..").is_err());
    }
}
