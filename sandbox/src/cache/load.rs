//! The one place in Kasane that uses `unsafe`: deserializing a compiled module, only after
//! its integrity tag verified.

use super::{HEADER_LEN, SECRET_LEN, decode_info, header, split_body, tag};
use crate::validate::ModuleInfo;
use hmac::Mac as _;
use subtle::ConstantTimeEq as _;
use wasmtime::{Engine, Module};

/// The parts of a cache entry whose magic, version, key and HMAC all checked out. Only
/// [`verify`] makes one, so holding a `Verified` proves the check ran.
pub(super) struct Verified<'a> {
    /// The encoded [`ModuleInfo`].
    pub(super) info: &'a [u8],
    /// `Module::serialize` output.
    code: &'a [u8],
}

/// Checks `entry` against `expected_key` and the cache secret; the tag is compared in
/// constant time. `None` for anything that does not verify.
pub(super) fn verify<'a>(
    secret: &[u8; SECRET_LEN],
    expected_key: &[u8; 32],
    entry: &'a [u8],
) -> Option<Verified<'a>> {
    let head = entry.get(..44)?;
    let stored_tag = entry.get(44..HEADER_LEN)?;
    let body = entry.get(HEADER_LEN..)?;
    if head != header(expected_key) {
        return None;
    }
    let computed = tag(secret, head, body)?.finalize().into_bytes();
    if !bool::from(computed.as_slice().ct_eq(stored_tag)) {
        return None;
    }
    let (info, code) = split_body(body)?;
    Some(Verified { info, code })
}

/// Verifies `entry`, checks that its module info is for `module_hash` (the SHA-256 the
/// caller computed from the bytes it is loading), and only then deserializes the code.
/// `None` means "validate and compile again": unverified bytes are never handed to wasmtime,
/// and a verified entry wasmtime still refuses (e.g. an engine mismatch the key missed) is
/// recompiled too.
pub(super) fn verified_deserialize(
    engine: &Engine,
    secret: &[u8; SECRET_LEN],
    expected_key: &[u8; 32],
    module_hash: &[u8; 32],
    entry: &[u8],
) -> Option<(Module, ModuleInfo)> {
    let verified = verify(secret, expected_key, entry)?;
    let info = decode_info(verified.info)?;
    if info.sha256 != *module_hash {
        return None;
    }
    let module = deserialize(engine, verified).ok()?;
    Some((module, info))
}

#[allow(
    unsafe_code,
    reason = "Module::deserialize is unsafe; the input is verified first"
)]
fn deserialize(engine: &Engine, verified: Verified<'_>) -> wasmtime::Result<Module> {
    // SAFETY: `Module::deserialize` requires bytes produced by `Module::serialize` of a
    // compatible wasmtime. `Verified` exists only for an entry whose HMAC-SHA256, under the
    // 32-byte secret in this cache's 0600 key file, matched in constant time over the header
    // (magic, format version, and the key that binds module hash, profile, validation rules
    // and engine compatibility) and the whole body (module info and code). Only
    // `CompileCache::store` writes such entries, right after `Module::serialize` of a module
    // compiled from bytes `validate` accepted; so these are bytes this embedder produced for
    // this module and engine, unless the key file itself was compromised (see the module docs
    // of `cache`). The caller also checked that the stored info names the SHA-256 of the
    // bytes being loaded, which is why it may skip validating them again.
    unsafe { Module::deserialize(engine, verified.code) }
}
