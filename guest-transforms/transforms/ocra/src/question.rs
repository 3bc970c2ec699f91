//! The 128-byte `Q` field of the OCRA message.
//!
//! `QA`: the challenge bytes (ASCII). `QN`: the decimal challenge as a big-endian integer,
//! written as minimal hex digits (`new BigInteger(q, 10).toString(16)` in RFC 6287's reference
//! code). `QH`: the hex digits as given. Hex digits are placed left-justified, one nibble each,
//! and everything is zero-padded to 128 bytes, as the reference code does by right-padding the
//! hex string with '0' to 256 characters. The suite's `nn` is not enforced (RFC 6287's mutual
//! vectors send 16 characters under `QA08`); an empty Q, a character outside the format, or a
//! Q that does not fit in 128 bytes is refused.

use crate::suite::QFormat;

/// Length of the `Q` field.
pub(crate) const Q_LEN: usize = 128;
/// Hex digits in `Q`.
const Q_NIBBLES: usize = 2 * Q_LEN;
/// `u32` limbs of a `QN` value: 256 nibbles = 1024 bits.
const LIMBS: usize = Q_NIBBLES / 8;

/// The `Q` field for challenge `q`, or `None` when `q` is empty, not in the format, or too
/// long.
pub(crate) fn question(format: QFormat, q: &[u8]) -> Option<[u8; Q_LEN]> {
    if q.is_empty() {
        return None;
    }
    let mut out = [0u8; Q_LEN];
    match format {
        QFormat::Alpha => {
            if !q.is_ascii() {
                return None;
            }
            out.get_mut(..q.len())?.copy_from_slice(q);
        }
        QFormat::Hex => {
            if q.len() > Q_NIBBLES {
                return None;
            }
            for (i, c) in q.iter().enumerate() {
                put_nibble(&mut out, i, hex_value(*c)?)?;
            }
        }
        QFormat::Numeric => {
            let n = decimal(q)?;
            // Minimal hex: skip leading zero nibbles, but keep one for the value 0.
            let mut nibbles = (0..Q_NIBBLES).rev().map(|i| nibble_of(&n, i));
            let first = nibbles.by_ref().find(|&v| v != 0).unwrap_or(0);
            put_nibble(&mut out, 0, first)?;
            for (i, v) in nibbles.enumerate() {
                put_nibble(&mut out, i + 1, v)?;
            }
        }
    }
    Some(out)
}

/// The value of decimal digits `q` as little-endian `u32` limbs; `None` for a non-digit or a
/// value of 2^1024 or more (more than 256 hex digits).
fn decimal(q: &[u8]) -> Option<[u32; LIMBS]> {
    let mut n = [0u32; LIMBS];
    for &c in q {
        if !c.is_ascii_digit() {
            return None;
        }
        let mut carry = u64::from(c - b'0');
        for limb in n.iter_mut() {
            let v = u64::from(*limb) * 10 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(n)
}

/// Nibble `i` (0 = least significant) of `n`.
fn nibble_of(n: &[u32; LIMBS], i: usize) -> u8 {
    n.get(i / 8)
        .map_or(0, |limb| ((limb >> (4 * (i % 8))) & 0xf) as u8)
}

/// Writes `v` as hex digit number `i` (0 = high nibble of byte 0).
fn put_nibble(out: &mut [u8; Q_LEN], i: usize, v: u8) -> Option<()> {
    let byte = out.get_mut(i / 2)?;
    *byte |= if i.is_multiple_of(2) { v << 4 } else { v };
    Some(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qn_is_minimal_hex_left_justified() {
        // 11111111 = 0xA98AC7 (RFC 6287 Appendix C).
        let q = question(QFormat::Numeric, b"11111111").unwrap();
        assert_eq!(&q[..4], &[0xA9, 0x8A, 0xC7, 0]);
        assert!(q[3..].iter().all(|&b| b == 0));
        // 291 = 0x123: an odd number of digits stays left-justified.
        let q = question(QFormat::Numeric, b"0291").unwrap();
        assert_eq!(&q[..3], &[0x12, 0x30, 0]);
        assert_eq!(question(QFormat::Numeric, b"00000000").unwrap(), [0; Q_LEN]);
        assert_eq!(question(QFormat::Numeric, b"12a"), None);
    }

    #[test]
    fn qh_and_qa_and_the_128_byte_bound() {
        let q = question(QFormat::Hex, b"abC").unwrap();
        assert_eq!(&q[..2], &[0xAB, 0xC0]);
        assert!(question(QFormat::Hex, &[b'f'; 256]).is_some());
        assert_eq!(question(QFormat::Hex, &[b'f'; 257]), None);
        assert!(question(QFormat::Alpha, &[b'x'; 128]).is_some());
        assert_eq!(question(QFormat::Alpha, &[b'x'; 129]), None);
        assert_eq!(question(QFormat::Alpha, b""), None);
        // 2^1024 - 1 fits; 2^1024 does not.
        let mut max = [0u32; LIMBS];
        max.iter_mut().for_each(|l| *l = u32::MAX);
        assert_eq!(nibble_of(&max, 255), 0xf);
    }
}
