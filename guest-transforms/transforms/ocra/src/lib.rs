//! `ocra` (docs/TRANSFORMS.md): RFC 6287 OCRA, the suite in params.
//!
//! Mapping from the input: K = `responses[0]`, C = `counter` (8 bytes big-endian),
//! Q = `challenges[0]` read per the suite's `QA`/`QN`/`QH` and zero-padded to 128 bytes,
//! P = `responses[1]`, S = `transcript_hash` left-padded with zeros to the suite's `Snnn`,
//! T = `timestamp / step` (8 bytes big-endian). The output is the OCRA value as ASCII digits,
//! or the raw HMAC when the suite's digits are 0.
//!
//! For purpose = message (the per-transmission key) there are no responses: K =
//! `transcript_hash` (the session's final transcript; the host mixes the output with the
//! session secret), C = `seq` with the direction in its top bit, and the suite's P is left out;
//! Q, S and T are as above.
//!
//! # Module map
//! - [`suite`]: parsing the suite string (RFC 6287 §6).
//! - [`question`]: the 128-byte `Q` field, including the decimal to hex conversion of `QN`.
//! - this file: the message `suite ‖ 0x00 ‖ C ‖ Q ‖ P ‖ S ‖ T`, the HMAC and the truncation.
#![no_std]

mod question;
mod suite;

use hmac::Hmac;
use hmac::digest::{KeyInit, Mac};
use kasane_guest::abi::{DeriveInput, Direction, GuestError, MAX_PARAMS_LEN, Purpose};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::question::{Q_LEN, question};
use crate::suite::{Hash, Suite};

kasane_guest::export_transform!(derive);

/// Longest `S` a suite can declare (three digits).
const MAX_SESSION_LEN: usize = 999;
/// Longest OCRA message: suite, separator, C, Q, P (SHA-512), S, T.
const MAX_MSG_LEN: usize = MAX_PARAMS_LEN + 1 + 8 + Q_LEN + 64 + MAX_SESSION_LEN + 8;
/// Length of the session information this module supplies (`transcript_hash`).
const SESSION_INFO_LEN: usize = 32;

/// The checks run in this order, so every refusal has one code: the suite (`BadParams`),
/// K and Q present (`MissingInput`), a zero time step (`BadParams`), Q's format
/// (`MissingInput`), P (`MissingInput`), an `Snnn` shorter than 32 (`BadParams`).
fn derive(input: &DeriveInput<'_>, out: &mut [u8]) -> Result<usize, GuestError> {
    let suite = Suite::parse(input.params).ok_or(GuestError::BadParams)?;
    let message = input.purpose == Purpose::Message;
    let key: &[u8] = if message {
        &input.transcript_hash
    } else {
        input.responses.get(0).ok_or(GuestError::MissingInput)?
    };
    let counter = if message {
        let d = match input.direction {
            Direction::ClientToHost => 0,
            Direction::HostToClient => 1u64 << 63,
        };
        input.seq | d
    } else {
        input.counter
    };
    let q = input.challenges.get(0).ok_or(GuestError::MissingInput)?;
    let time = match suite.time_step {
        Some(0) => return Err(GuestError::BadParams),
        Some(step) => Some(input.timestamp / step),
        None => None,
    };
    let q = question(suite.q_format, q).ok_or(GuestError::MissingInput)?;

    let mut msg = Message {
        buf: [0; MAX_MSG_LEN],
        len: 0,
    };
    msg.put(input.params)?;
    msg.put(&[0])?;
    if suite.counter {
        msg.put(&counter.to_be_bytes())?;
    }
    msg.put(&q)?;
    if let Some(pin_hash) = suite.pin.filter(|_| !message) {
        let p = input.responses.get(1).ok_or(GuestError::MissingInput)?;
        if p.len() != pin_hash.len() {
            return Err(GuestError::MissingInput);
        }
        msg.put(p)?;
    }
    if let Some(s) = suite.session_len {
        let pad = s
            .checked_sub(SESSION_INFO_LEN)
            .ok_or(GuestError::BadParams)?;
        for _ in 0..pad {
            msg.put(&[0])?;
        }
        msg.put(&input.transcript_hash)?;
    }
    if let Some(t) = time {
        msg.put(&t.to_be_bytes())?;
    }
    let msg = msg.buf.get(..msg.len).ok_or(GuestError::Internal)?;

    let mut mac = [0u8; 64];
    let mac = match suite.hash {
        Hash::Sha1 => hmac::<Hmac<Sha1>>(key, msg, &mut mac)?,
        Hash::Sha256 => hmac::<Hmac<Sha256>>(key, msg, &mut mac)?,
        Hash::Sha512 => hmac::<Hmac<Sha512>>(key, msg, &mut mac)?,
    };
    if suite.digits == 0 {
        return kasane_guest::write_output(out, mac);
    }
    let digits = truncate(mac, suite.digits).ok_or(GuestError::Internal)?;
    kasane_guest::write_output(out, digits.as_slice())
}

struct Message {
    buf: [u8; MAX_MSG_LEN],
    len: usize,
}

impl Message {
    fn put(&mut self, b: &[u8]) -> Result<(), GuestError> {
        let end = self.len + b.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(GuestError::Internal)?
            .copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

/// HMAC of `msg` under `key` into `out`; returns the tag.
fn hmac<'o, M: Mac + KeyInit>(
    key: &[u8],
    msg: &[u8],
    out: &'o mut [u8; 64],
) -> Result<&'o [u8], GuestError> {
    let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| GuestError::Internal)?;
    mac.update(msg);
    let tag = mac.finalize().into_bytes();
    let out = out.get_mut(..tag.len()).ok_or(GuestError::Internal)?;
    out.copy_from_slice(&tag);
    Ok(out)
}

/// Up to ten ASCII digits.
struct Digits {
    buf: [u8; 10],
    len: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// RFC 4226 dynamic truncation to `digits` (4..=10) decimal digits, zero-padded on the left.
fn truncate(mac: &[u8], digits: u32) -> Option<Digits> {
    let off = usize::from(mac.last()? & 0x0f);
    let b = mac.get(off..off + 4)?;
    let bin = u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]);
    let mut otp = u64::from(bin) % 10u64.checked_pow(digits)?;
    let len = usize::try_from(digits).ok()?;
    let mut out = Digits {
        buf: [b'0'; 10],
        len,
    };
    for d in out.buf.get_mut(..len)?.iter_mut().rev() {
        *d = b'0' + (otp % 10) as u8;
        otp /= 10;
    }
    Some(out)
}
