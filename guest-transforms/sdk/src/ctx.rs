//! The byte strings the built-in specifications are written in (docs/TRANSFORMS.md,
//! "Notation"), produced without an allocator.

use kasane_abi::{DeriveInput, GuestError, INPUT_VERSION, MAX_ITEM_LEN, MAX_LIST_ITEMS};

/// Longest `R`: every response at its longest, each with its 4-byte length.
pub const R_MAX_LEN: usize = MAX_LIST_ITEMS * (4 + MAX_ITEM_LEN);

/// Feeds `ctx` to `sink` in order: the canonical v1 encoding of `input` with the responses
/// list replaced by the empty list (its count is 0 and no response bytes follow).
///
/// The concatenation of the chunks equals `DeriveInput { responses: ByteList::EMPTY, ..input }`
/// encoded with `encode_into` (a host-side unit test pins this), without needing a buffer the
/// size of the input.
pub fn ctx_chunks(input: &DeriveInput<'_>, mut sink: impl FnMut(&[u8])) {
    sink(&[
        INPUT_VERSION,
        input.purpose.as_u8(),
        input.direction.as_u8(),
        0,
    ]);
    sink(&input.counter.to_le_bytes());
    sink(&input.timestamp.to_le_bytes());
    sink(&input.seq.to_le_bytes());
    sink(&input.server_nonce);
    sink(&input.client_nonce);
    sink(&input.transcript_hash);
    sink(&len_u32(input.challenges.len()));
    for c in input.challenges.iter() {
        sink(&len_u32(c.len()));
        sink(c);
    }
    sink(&0u32.to_le_bytes());
    sink(&len_u32(input.params.len()));
    sink(input.params);
}

/// Feeds `lp(x_0) ‖ lp(x_1) ‖ …` to `sink`, where `lp(x) = u32le(len(x)) ‖ x`.
pub fn lp_chunks<'a>(list: impl IntoIterator<Item = &'a [u8]>, mut sink: impl FnMut(&[u8])) {
    for x in list {
        sink(&len_u32(x.len()));
        sink(x);
    }
}

/// Writes `lp(x_0) ‖ lp(x_1) ‖ …` into `buf` and returns the written prefix;
/// `Internal` if `buf` is too small (a buffer of [`R_MAX_LEN`] always suffices for a decoded
/// list).
pub fn lp_concat<'b, 'a>(
    list: impl IntoIterator<Item = &'a [u8]>,
    buf: &'b mut [u8],
) -> Result<&'b [u8], GuestError> {
    let mut pos = 0;
    let mut fits = true;
    lp_chunks(list, |chunk| {
        match buf.get_mut(pos..pos + chunk.len()) {
            Some(dst) => dst.copy_from_slice(chunk),
            None => fits = false,
        }
        pos += chunk.len();
    });
    if !fits {
        return Err(GuestError::Internal);
    }
    buf.get(..pos).ok_or(GuestError::Internal)
}

/// `MissingInput` when an auth input has no response (every built-in needs at least one to
/// log in). A message input carries none (the protocol mixes the output with the session
/// secret), so it passes.
pub fn require_responses(input: &DeriveInput<'_>) -> Result<(), GuestError> {
    if input.purpose == kasane_abi::Purpose::Auth && input.responses.is_empty() {
        Err(GuestError::MissingInput)
    } else {
        Ok(())
    }
}

/// Copies `key` to the start of `out` and returns its length; `OutputCapacity` when `out` is
/// shorter than `key`.
pub fn write_output(out: &mut [u8], key: &[u8]) -> Result<usize, GuestError> {
    out.get_mut(..key.len())
        .ok_or(GuestError::OutputCapacity)?
        .copy_from_slice(key);
    Ok(key.len())
}

/// A length as u32 little-endian. Every length here was bounded by `DeriveInput::decode`
/// (at most `MAX_PARAMS_LEN`), far below `u32::MAX`.
fn len_u32(n: usize) -> [u8; 4] {
    (n as u32).to_le_bytes()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use kasane_abi::{ByteList, Direction, Purpose};

    use super::*;

    #[test]
    fn ctx_chunks_equal_the_canonical_encoding_without_responses() {
        let challenges: [&[u8]; 3] = [b"A7", b"", b"C3-long-challenge"];
        let responses: [&[u8]; 2] = [b"verifier-1", b"verifier-2"];
        let input = DeriveInput {
            purpose: Purpose::Message,
            challenges: ByteList::from_slices(&challenges),
            responses: ByteList::from_slices(&responses),
            counter: 0x0102_0304_0506_0708,
            timestamp: 1_700_000_000,
            seq: 99,
            direction: Direction::HostToClient,
            server_nonce: [1; 32],
            client_nonce: [2; 32],
            transcript_hash: [3; 32],
            params: b"OCRA-1:HOTP-SHA1-6:QN08",
        };
        let mut wire = [0u8; 1024];
        let n = input.encode_into(&mut wire).unwrap();
        let decoded = DeriveInput::decode(&wire[..n]).unwrap();

        let mut expected = [0u8; 1024];
        let m = DeriveInput {
            responses: ByteList::EMPTY,
            ..input
        }
        .encode_into(&mut expected)
        .unwrap();
        for source in [&input, &decoded] {
            let mut got = Vec::new();
            ctx_chunks(source, |c| got.extend_from_slice(c));
            assert_eq!(got, &expected[..m]);
        }
    }

    #[test]
    fn lp_concat_matches_lp_chunks_and_refuses_a_short_buffer() {
        let items: [&[u8]; 2] = [b"ab", b""];
        let mut buf = [0u8; 16];
        let r = lp_concat(items.iter().copied(), &mut buf).unwrap();
        assert_eq!(r, &[2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
        let mut small = [0u8; 9];
        assert_eq!(
            lp_concat(items.iter().copied(), &mut small),
            Err(GuestError::Internal)
        );
    }
}
