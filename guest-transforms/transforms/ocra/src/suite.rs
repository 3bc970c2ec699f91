//! The OCRA suite (RFC 6287 §6):
//! `OCRA-1:HOTP-<H>-<t>:[C-]Q<F><nn>[-P<H>][-S<nnn>][-T<G>]`, where `H` is `SHA1`, `SHA256` or
//! `SHA512`; `t` is one or two digits with value 0 or 4..=10; `F` is `A`, `N` or `H` and `nn`
//! exactly two digits in 04..=64; `nnn` exactly three digits; `G` is one or two digits then
//! `S` (1..=59), `M` (1..=59) or `H` (0..=48). The data-input items come in this order, each at
//! most once, and nothing else follows.

/// A hash function of the suite (`HOTP-H`, `PH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"SHA1" => Some(Self::Sha1),
            b"SHA256" => Some(Self::Sha256),
            b"SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub(crate) fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// Format of the challenge `Q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QFormat {
    /// `QA`: ASCII characters.
    Alpha,
    /// `QN`: decimal digits.
    Numeric,
    /// `QH`: hex digits.
    Hex,
}

/// A parsed suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Suite {
    pub(crate) hash: Hash,
    /// 0 (raw HMAC) or 4..=10.
    pub(crate) digits: u32,
    pub(crate) counter: bool,
    pub(crate) q_format: QFormat,
    pub(crate) pin: Option<Hash>,
    /// `Snnn`: session information length in bytes.
    pub(crate) session_len: Option<usize>,
    /// `T`: time step in seconds (0 for `T0H`, refused by the caller).
    pub(crate) time_step: Option<u64>,
}

/// A decimal number of `min_len..=max_len` ASCII digits (leading zeros allowed).
fn number(s: &[u8], min_len: usize, max_len: usize) -> Option<u64> {
    if s.len() < min_len || s.len() > max_len || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

impl Suite {
    /// Parses a suite, `None` when it does not follow the grammar above.
    pub(crate) fn parse(suite: &[u8]) -> Option<Self> {
        let mut parts = suite.split(|&b| b == b':');
        let (version, crypto, data) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != b"OCRA-1" {
            return None;
        }
        let (hash, digits) = split_once(crypto.strip_prefix(b"HOTP-")?, b'-')?;
        let hash = Hash::parse(hash)?;
        let digits = number(digits, 1, 2)?;
        if !(digits == 0 || (4..=10).contains(&digits)) {
            return None;
        }

        let mut items = data.split(|&b| b == b'-').peekable();
        let counter = items.next_if(|i| *i == b"C").is_some();
        let q = items.next()?.strip_prefix(b"Q")?;
        let (&format, q_len) = q.split_first()?;
        let q_format = match format {
            b'A' => QFormat::Alpha,
            b'N' => QFormat::Numeric,
            b'H' => QFormat::Hex,
            _ => return None,
        };
        if !(4..=64).contains(&number(q_len, 2, 2)?) {
            return None;
        }
        let mut pin = None;
        if let Some(p) = items.next_if(|i| i.first() == Some(&b'P')) {
            pin = Some(Hash::parse(p.get(1..)?)?);
        }
        let mut session_len = None;
        if let Some(s) = items.next_if(|i| i.first() == Some(&b'S')) {
            session_len = Some(usize::try_from(number(s.get(1..)?, 3, 3)?).ok()?);
        }
        let mut time_step = None;
        if let Some(t) = items.next_if(|i| i.first() == Some(&b'T')) {
            let (unit, n) = t.get(1..)?.split_last()?;
            let n = number(n, 1, 2)?;
            time_step = Some(match unit {
                b'S' if (1..=59).contains(&n) => n,
                b'M' if (1..=59).contains(&n) => n * 60,
                b'H' if n <= 48 => n * 3600,
                _ => return None,
            });
        }
        if items.next().is_some() {
            return None;
        }
        Some(Self {
            hash,
            digits: u32::try_from(digits).ok()?,
            counter,
            q_format,
            pin,
            session_len,
            time_step,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6287_suites_parse() {
        let s = Suite::parse(b"OCRA-1:HOTP-SHA512-8:C-QN08-PSHA1").unwrap();
        assert_eq!((s.hash, s.digits, s.counter), (Hash::Sha512, 8, true));
        assert_eq!((s.q_format, s.pin), (QFormat::Numeric, Some(Hash::Sha1)));
        let s = Suite::parse(b"OCRA-1:HOTP-SHA512-8:QN08-T1M").unwrap();
        assert_eq!(s.time_step, Some(60));
        let s = Suite::parse(b"OCRA-1:HOTP-SHA256-8:QA08-S064").unwrap();
        assert_eq!(s.session_len, Some(64));
        assert!(Suite::parse(b"OCRA-1:HOTP-SHA1-0:QH64").is_some());
    }

    #[test]
    fn malformed_suites_are_refused() {
        for bad in [
            &b""[..],
            b"OCRA-2:HOTP-SHA1-6:QN08",
            b"OCRA-1:HOTP-MD5-6:QN08",
            b"OCRA-1:HOTP-SHA1-3:QN08",
            b"OCRA-1:HOTP-SHA1-11:QN08",
            b"OCRA-1:HOTP-SHA1-6:QN8",
            b"OCRA-1:HOTP-SHA1-6:QN65",
            b"OCRA-1:HOTP-SHA1-6:QX08",
            b"OCRA-1:HOTP-SHA1-6:C",
            b"OCRA-1:HOTP-SHA1-6:QN08-T60S",
            b"OCRA-1:HOTP-SHA1-6:QN08-S64",
            b"OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1",
            b"OCRA-1:HOTP-SHA1-6:QN08-",
            b"OCRA-1:HOTP-SHA1-6:QN08:x",
        ] {
            assert_eq!(
                Suite::parse(bad),
                None,
                "{}",
                core::str::from_utf8(bad).unwrap()
            );
        }
    }
}
