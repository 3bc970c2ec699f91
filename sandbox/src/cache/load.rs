//! The one place in Kasane that uses `unsafe`: deserializing a compiled module, only after
//! its integrity tag verified.

use super::{HEADER_LEN, SECRET_LEN, header, tag};
use hmac::Mac as _;
use subtle::ConstantTimeEq as _;
use wasmtime::{Engine, Module};

/// The payload of a cache entry whose magic, version, key and HMAC all checked out. Only
/// [`verify`] makes one, so holding a `Verified` proves the check ran.
pub(super) struct Verified<'a>(&'a [u8]);

/// Checks `entry` against `expected_key` and the cache secret; the tag is compared in
/// constant time. `None` for anything that does not verify.
pub(super) fn verify<'a>(
    secret: &[u8; SECRET_LEN],
    expected_key: &[u8; 32],
    entry: &'a [u8],
) -> Option<Verified<'a>> {
    let head = entry.get(..44)?;
    let stored_tag = entry.get(44..HEADER_LEN)?;
    let payload = entry.get(HEADER_LEN..)?;
    if head != header(expected_key) {
        return None;
    }
    let computed = tag(secret, head, payload)?.finalize().into_bytes();
    bool::from(computed.as_slice().ct_eq(stored_tag)).then_some(Verified(payload))
}

/// Verifies `entry` and, only if it verifies, deserializes it. `None` means "compile again":
/// unverified bytes are never handed to wasmtime, and a verified entry wasmtime still refuses
/// (e.g. an engine mismatch the key missed) is recompiled too.
pub(super) fn verified_deserialize(
    engine: &Engine,
    secret: &[u8; SECRET_LEN],
    expected_key: &[u8; 32],
    entry: &[u8],
) -> Option<Module> {
    let verified = verify(secret, expected_key, entry)?;
    deserialize(engine, verified).ok()
}

#[allow(
    unsafe_code,
    reason = "Module::deserialize is unsafe; the input is verified first"
)]
fn deserialize(engine: &Engine, verified: Verified<'_>) -> wasmtime::Result<Module> {
    // SAFETY: `Module::deserialize` requires bytes produced by `Module::serialize` of a
    // compatible wasmtime. `Verified` exists only for an entry whose HMAC-SHA256, under the
    // 32-byte secret in this cache's 0600 key file, matched in constant time over the header
    // (magic, format version, and the key that binds module hash, profile and engine
    // compatibility) and the payload. Only `get_or_compile` writes such entries, right after
    // `Module::serialize`; so these are bytes this embedder produced for this module and
    // engine, unless the key file itself was compromised (see the module docs of `cache`).
    unsafe { Module::deserialize(engine, verified.0) }
}
