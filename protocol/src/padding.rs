//! Length-hiding padding of a plaintext (`docs/PROTOCOL.md` §7): used by sealing. A leaf: it depends on nothing else in the crate.
//!
//! Every plaintext is framed as `plaintext ‖ 0x80 ‖ 0x00*` (ISO/IEC 7816-4). With
//! [`Padding::None`] no zero follows the `0x80`; with [`Padding::Buckets`] zeros fill up to the
//! Padmé bucket of max(64, len + 1) ([`padded_len`]). Removal strips trailing zeros and then
//! exactly one `0x80`; anything else is [`ProtocolError::Padding`]. The receiver needs no
//! setting: the switch is the sender's alone.

use zeroize::Zeroizing;

use crate::error::ProtocolError;

/// Smallest padding bucket.
pub const MIN_BUCKET: usize = 64;

/// Whether plaintext lengths are hidden in size buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// Only the `0x80` terminator: lengths show through.
    #[default]
    None,
    /// Pad up to the next Padmé bucket (see [`padded_len`]).
    Buckets,
}

/// The padded length of a plaintext of `len` bytes: `len + 1` without padding; with it,
/// Padmé of max(64, len + 1).
pub fn padded_len(len: usize, padding: Padding) -> usize {
    let min = len + 1;
    match padding {
        Padding::None => min,
        Padding::Buckets => padme(min.max(MIN_BUCKET)),
    }
}

/// Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication
/// with PURBs", PETS 2019, §4): `n` rounded up to a multiple of `2^(E − S)`, where
/// `E = ⌊log2 n⌋` and `S = ⌊log2 E⌋ + 1`. The padded length keeps `n`'s power of two and the
/// `S` bits below it, so it reveals O(log log n) bits of `n`, while adding under `2^-S` of `n`
/// (under 12.5 % from 64 bytes, under 6.25 % from 256) instead of up to 100 %. Written here:
/// it is five lines of arithmetic, and no kept crate offers it. `n` ≥ 2.
fn padme(n: usize) -> usize {
    let e = n.ilog2();
    let s = e.ilog2() + 1;
    let mask = (1usize << (e - s)) - 1;
    (n + mask) & !mask
}

/// Frames and pads a plaintext.
pub fn pad(plaintext: &[u8], padding: Padding) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(padded_len(plaintext.len(), padding)));
    out.extend_from_slice(plaintext);
    out.push(0x80);
    out.resize(padded_len(plaintext.len(), padding), 0);
    out
}

/// Removes the frame added by [`pad`].
pub fn unpad(mut padded: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let end = padded
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(ProtocolError::Padding)?;
    if padded.get(end) != Some(&0x80) {
        return Err(ProtocolError::Padding);
    }
    padded.truncate(end);
    Ok(padded)
}
