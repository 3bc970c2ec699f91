//! `sha256-chain` (docs/TRANSFORMS.md): `h = SHA-256("kasane/sha256-chain/v1" ‖ ctx)`, then
//! `h = SHA-256(h ‖ lp(r))` for each response `r` in order; the output is `h` (32 bytes).
#![no_std]

use kasane_guest::abi::{DeriveInput, GuestError};
use sha2::{Digest, Sha256};

kasane_guest::export_transform!(derive);

const TAG: &[u8] = b"kasane/sha256-chain/v1";

fn derive(input: &DeriveInput<'_>, out: &mut [u8]) -> Result<usize, GuestError> {
    kasane_guest::require_responses(input)?;
    let mut h = Sha256::new();
    h.update(TAG);
    kasane_guest::ctx_chunks(input, |c| h.update(c));
    let mut h = h.finalize();
    for r in input.responses.iter() {
        let mut next = Sha256::new();
        next.update(h);
        kasane_guest::lp_chunks([r], |c| next.update(c));
        h = next.finalize();
    }
    kasane_guest::write_output(out, &h)
}
