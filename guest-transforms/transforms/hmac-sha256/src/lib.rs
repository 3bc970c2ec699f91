//! `hmac-sha256` (docs/TRANSFORMS.md): `HMAC-SHA-256(key = R, msg = "kasane/hmac-sha256/v1" ‖
//! ctx)` (32 bytes).
#![no_std]

use hmac::Hmac;
use hmac::digest::{KeyInit, Mac};
use kasane_guest::abi::{DeriveInput, GuestError};
use sha2::Sha256;

kasane_guest::export_transform!(derive);

const TAG: &[u8] = b"kasane/hmac-sha256/v1";

fn derive(input: &DeriveInput<'_>, out: &mut [u8]) -> Result<usize, GuestError> {
    kasane_guest::require_responses(input)?;
    // R is at most 16 KiB (the shadow stack is 64 KiB); HMAC hashes a key longer than
    // the block itself, exactly as the specification's HMAC does.
    let mut r_buf = [0u8; kasane_guest::R_MAX_LEN];
    let key = kasane_guest::lp_concat(input.responses.iter(), &mut r_buf)?;
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| GuestError::Internal)?;
    mac.update(TAG);
    kasane_guest::ctx_chunks(input, |c| mac.update(c));
    kasane_guest::write_output(out, &mac.finalize().into_bytes())
}
