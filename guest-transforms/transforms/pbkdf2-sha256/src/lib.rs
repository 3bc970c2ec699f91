//! `pbkdf2-sha256` (docs/TRANSFORMS.md): params = iteration count `c` as ASCII decimal
//! (`1..=1000000`, no sign, no leading zero); output
//! `PBKDF2-HMAC-SHA-256(password = R, salt = SHA-256("kasane/pbkdf2-sha256/v1" ‖ ctx), c, 32)`.
//! Params are checked before responses.
#![no_std]

use kasane_guest::abi::{DeriveInput, GuestError};
use sha2::{Digest, Sha256};

kasane_guest::export_transform!(derive);

const TAG: &[u8] = b"kasane/pbkdf2-sha256/v1";
const MAX_ITERATIONS: u32 = 1_000_000;

/// The iteration count, or `BadParams`.
fn iterations(params: &[u8]) -> Result<u32, GuestError> {
    // Seven digits hold 1_000_000; the shape check keeps the fold below from overflowing.
    if params.is_empty()
        || params.len() > 7
        || params.first() == Some(&b'0')
        || !params.iter().all(u8::is_ascii_digit)
    {
        return Err(GuestError::BadParams);
    }
    let c = params
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    if (1..=MAX_ITERATIONS).contains(&c) {
        Ok(c)
    } else {
        Err(GuestError::BadParams)
    }
}

fn derive(input: &DeriveInput<'_>, out: &mut [u8]) -> Result<usize, GuestError> {
    let c = iterations(input.params)?;
    kasane_guest::require_responses(input)?;
    let mut r_buf = [0u8; kasane_guest::R_MAX_LEN];
    let password = kasane_guest::lp_concat(input.responses.iter(), &mut r_buf)?;
    let mut salt = Sha256::new();
    salt.update(TAG);
    kasane_guest::ctx_chunks(input, |chunk| salt.update(chunk));
    let salt = salt.finalize();
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, c, &mut key);
    kasane_guest::write_output(out, &key)
}
