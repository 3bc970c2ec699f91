//! `blake2s-keyed` (docs/TRANSFORMS.md): `k = BLAKE2s-256(R)`, output
//! `BLAKE2s-256-MAC(key = k, msg = "kasane/blake2s-keyed/v1" ‖ ctx)` (keyed BLAKE2s,
//! RFC 7693; 32 bytes).
#![no_std]

use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac256};
use kasane_guest::abi::{DeriveInput, GuestError};

kasane_guest::export_transform!(derive);

const TAG: &[u8] = b"kasane/blake2s-keyed/v1";

fn derive(input: &DeriveInput<'_>, out: &mut [u8]) -> Result<usize, GuestError> {
    kasane_guest::require_responses(input)?;
    let mut k = Blake2s256::new();
    kasane_guest::lp_chunks(input.responses.iter(), |c| Digest::update(&mut k, c));
    let k = k.finalize();
    let mut mac =
        <Blake2sMac256 as KeyInit>::new_from_slice(&k).map_err(|_| GuestError::Internal)?;
    Mac::update(&mut mac, TAG);
    kasane_guest::ctx_chunks(input, |c| Mac::update(&mut mac, c));
    kasane_guest::write_output(out, &mac.finalize().into_bytes())
}
