//! Length-hiding padding of a plaintext (`docs/PROTOCOL.md` §7): used by sealing. A leaf: it depends on nothing else in the crate.
//!
//! Every plaintext is framed as `plaintext ‖ 0x80 ‖ 0x00*` (ISO/IEC 7816-4). With
//! [`Padding::None`] no zero follows the `0x80`; with [`Padding::Buckets`] zeros fill up to the
//! next bucket: the smallest power of two ≥ max(64, len + 1) up to 16 KiB, then the next multiple
//! of 16 KiB. Removal strips trailing zeros and then exactly one `0x80`; anything else is
//! [`ProtocolError::Padding`]. The receiver needs no setting: the switch is the sender's alone.

use zeroize::Zeroizing;

use crate::error::ProtocolError;

/// Smallest padding bucket.
pub const MIN_BUCKET: usize = 64;
/// Above this size buckets grow linearly by this step.
pub const BUCKET_STEP: usize = 16 * 1024;

/// Whether plaintext lengths are hidden in size buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// Only the `0x80` terminator: lengths show through.
    #[default]
    None,
    /// Pad up to the next bucket (see [`padded_len`]).
    Buckets,
}

/// The padded length of a plaintext of `len` bytes.
pub fn padded_len(len: usize, padding: Padding) -> usize {
    let min = len + 1;
    match padding {
        Padding::None => min,
        Padding::Buckets if min <= BUCKET_STEP => min.max(MIN_BUCKET).next_power_of_two(),
        Padding::Buckets => min.div_ceil(BUCKET_STEP) * BUCKET_STEP,
    }
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
