//! Native reference implementations of the built-in transforms, written from
//! `docs/TRANSFORMS.md` and RFC 6287 with RustCrypto crates, independently of the guest
//! modules. The sandbox tests compare every module against these; the `derive` bench uses
//! them as the native baseline (it includes this file with `#[path]`).

use blake2::{Blake2s256, Blake2sMac256};
use hmac::Hmac;
use hmac::digest::{KeyInit, Mac};
use kasane_abi::DeriveInputBuf;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Domain-separation tags of the built-ins (docs/TRANSFORMS.md).
pub(crate) const TAG_SHA256_CHAIN: &[u8] = b"kasane/sha256-chain/v1";
pub(crate) const TAG_HMAC_SHA256: &[u8] = b"kasane/hmac-sha256/v1";
pub(crate) const TAG_BLAKE2S_KEYED: &[u8] = b"kasane/blake2s-keyed/v1";
pub(crate) const TAG_PBKDF2_SHA256: &[u8] = b"kasane/pbkdf2-sha256/v1";
pub(crate) const TAG_SHA256_WASI_C: &[u8] = b"kasane/sha256-wasi-c/v1";

/// Why a native reference refuses an input; each maps to the guest error code the module
/// must return for the same input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NativeError {
    /// The input exceeds an ABI limit (guest code -1).
    BadInput,
    /// The params are not valid for this transform (guest code -2).
    BadParams,
    /// A required challenge or response is missing or malformed (guest code -3).
    MissingInput,
}

impl NativeError {
    /// The guest error code (`kasane_abi::GuestError`) for the same refusal.
    pub(crate) fn code(self) -> i32 {
        match self {
            Self::BadInput => kasane_abi::GuestError::BadInput.code(),
            Self::BadParams => kasane_abi::GuestError::BadParams.code(),
            Self::MissingInput => kasane_abi::GuestError::MissingInput.code(),
        }
    }
}

/// `ctx`: the canonical v1 encoding of the input with the responses list emptied.
pub(crate) fn ctx(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    DeriveInputBuf {
        responses: vec![],
        ..input.clone()
    }
    .encode()
    .map_err(|_| NativeError::BadInput)
}

/// Appends `lp(x) = u32le(len(x)) ‖ x`.
fn put_lp(out: &mut Vec<u8>, x: &[u8]) {
    // Items are at most MAX_ITEM_LEN (1024) bytes, far below u32::MAX.
    out.extend_from_slice(&(x.len() as u32).to_le_bytes());
    out.extend_from_slice(x);
}

/// `R = lp(r_0) ‖ lp(r_1) ‖ …`; `MissingInput` when an auth input has no response.
pub(crate) fn responses_lp(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    if input.responses.is_empty() && input.purpose == kasane_abi::Purpose::Auth {
        return Err(NativeError::MissingInput);
    }
    let mut r = Vec::new();
    for item in &input.responses {
        put_lp(&mut r, item);
    }
    Ok(r)
}

/// `sha256-chain`.
pub(crate) fn sha256_chain(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    if input.responses.is_empty() && input.purpose == kasane_abi::Purpose::Auth {
        return Err(NativeError::MissingInput);
    }
    let mut h = Sha256::new()
        .chain_update(TAG_SHA256_CHAIN)
        .chain_update(ctx(input)?)
        .finalize();
    for r in &input.responses {
        h = Sha256::new()
            .chain_update(h)
            .chain_update((r.len() as u32).to_le_bytes())
            .chain_update(r.as_slice())
            .finalize();
    }
    Ok(h.to_vec())
}

/// `hmac-sha256`.
pub(crate) fn hmac_sha256(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    let key = responses_lp(input)?;
    let ctx = ctx(input)?;
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| NativeError::BadInput)?;
    mac.update(TAG_HMAC_SHA256);
    mac.update(&ctx);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// `blake2s-keyed`.
pub(crate) fn blake2s_keyed(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    let k = Blake2s256::digest(responses_lp(input)?);
    let ctx = ctx(input)?;
    let mut mac =
        <Blake2sMac256 as KeyInit>::new_from_slice(&k).map_err(|_| NativeError::BadInput)?;
    mac.update(TAG_BLAKE2S_KEYED);
    mac.update(&ctx);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The iteration count of `pbkdf2-sha256`: ASCII decimal, `1..=1000000`, no sign, no
/// leading zero.
pub(crate) fn pbkdf2_iterations(params: &[u8]) -> Result<u32, NativeError> {
    let ok_shape = !params.is_empty()
        && params.len() <= 7
        && params.iter().all(u8::is_ascii_digit)
        && params.first() != Some(&b'0');
    if !ok_shape {
        return Err(NativeError::BadParams);
    }
    let c = params
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    if (1..=1_000_000).contains(&c) {
        Ok(c)
    } else {
        Err(NativeError::BadParams)
    }
}

/// `pbkdf2-sha256`. Params are checked before responses.
pub(crate) fn pbkdf2_sha256(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    let c = pbkdf2_iterations(&input.params)?;
    let password = responses_lp(input)?;
    let salt = Sha256::new()
        .chain_update(TAG_PBKDF2_SHA256)
        .chain_update(ctx(input)?)
        .finalize();
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(&password, &salt, c, &mut out);
    Ok(out.to_vec())
}

/// `sha256-wasi-c`; the wasi profile's clock reads the session timestamp, so `now = timestamp`.
pub(crate) fn sha256_wasi_c(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    let r = responses_lp(input)?;
    Ok(Sha256::new()
        .chain_update(TAG_SHA256_WASI_C)
        .chain_update(ctx(input)?)
        .chain_update(r)
        .chain_update(input.timestamp.to_le_bytes())
        .finalize()
        .to_vec())
}

/// A hash function of an OCRA suite (`HOTP-SHAx`, `PSHAx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OcraHash {
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
    /// SHA-512, 64 bytes.
    Sha512,
}

impl OcraHash {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
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

    /// Plain digest (used to hash a PIN).
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], msg: &[u8]) -> Result<Vec<u8>, NativeError> {
        fn run<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Result<Vec<u8>, NativeError> {
            let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| NativeError::BadInput)?;
            mac.update(msg);
            Ok(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Self::Sha1 => run::<Hmac<Sha1>>(key, msg),
            Self::Sha256 => run::<Hmac<Sha256>>(key, msg),
            Self::Sha512 => run::<Hmac<Sha512>>(key, msg),
        }
    }
}

/// Format of the OCRA challenge `Q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QFormat {
    /// `QA`: ASCII characters.
    Alpha,
    /// `QN`: decimal digits.
    Numeric,
    /// `QH`: hex digits.
    Hex,
}

/// A parsed OCRA suite (RFC 6287 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OcraSuite {
    /// HMAC hash function.
    pub(crate) hash: OcraHash,
    /// Truncation length; 0 means the raw HMAC.
    pub(crate) digits: u32,
    /// `C` present.
    pub(crate) counter: bool,
    /// `Q` format.
    pub(crate) q_format: QFormat,
    /// `PSHAx` present: the PIN hash function.
    pub(crate) pin: Option<OcraHash>,
    /// `Snnn` present: session information length in bytes.
    pub(crate) session_len: Option<usize>,
    /// `Tn[SMH]` present: time step in seconds.
    pub(crate) time_step: Option<u64>,
}

fn two_or_three_digits(s: &str, max_len: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an OCRA suite string, `None` when it does not follow RFC 6287 §6.
pub(crate) fn parse_suite(suite: &[u8]) -> Option<OcraSuite> {
    let suite = core::str::from_utf8(suite).ok()?;
    let mut parts = suite.split(':');
    let (version, crypto, data) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "OCRA-1" {
        return None;
    }
    let (hash, digits) = crypto.strip_prefix("HOTP-")?.split_once('-')?;
    let hash = OcraHash::parse(hash)?;
    let digits = two_or_three_digits(digits, 2)?;
    if !(digits == 0 || (4..=10).contains(&digits)) {
        return None;
    }
    let mut items = data.split('-').peekable();
    let counter = items.next_if_eq(&"C").is_some();
    let q = items.next()?.strip_prefix('Q')?;
    let q_format = match q.as_bytes().first()? {
        b'A' => QFormat::Alpha,
        b'N' => QFormat::Numeric,
        b'H' => QFormat::Hex,
        _ => return None,
    };
    let q_len = q.get(1..)?;
    if q_len.len() != 2 || !(4..=64).contains(&two_or_three_digits(q_len, 2)?) {
        return None;
    }
    let mut pin = None;
    if let Some(p) = items.next_if(|i| i.starts_with('P')) {
        pin = Some(OcraHash::parse(p.strip_prefix('P')?)?);
    }
    let mut session_len = None;
    if let Some(s) = items.next_if(|i| i.starts_with('S')) {
        let n = s.strip_prefix('S')?;
        if n.len() != 3 {
            return None;
        }
        session_len = Some(usize::try_from(two_or_three_digits(n, 3)?).ok()?);
    }
    let mut time_step = None;
    if let Some(t) = items.next_if(|i| i.starts_with('T')) {
        let t = t.strip_prefix('T')?;
        let (n, unit) = t.split_at(t.len().checked_sub(1)?);
        let n = two_or_three_digits(n, 2)?;
        let step = match unit {
            "S" if (1..=59).contains(&n) => n,
            "M" if (1..=59).contains(&n) => n * 60,
            "H" if (0..=48).contains(&n) => n * 3600,
            _ => return None,
        };
        time_step = Some(step);
    }
    if items.next().is_some() {
        return None;
    }
    Some(OcraSuite {
        hash,
        digits: u32::try_from(digits).ok()?,
        counter,
        q_format,
        pin,
        session_len,
        time_step,
    })
}

const Q_BYTES: usize = 128;

/// Left-justified nibbles of hex digits, zero-padded to 128 bytes (the RFC's reference code
/// pads the hex string with '0' on the right before converting it).
fn hex_nibbles_to_q(hex: &[u8]) -> Result<[u8; Q_BYTES], NativeError> {
    if hex.len() > 2 * Q_BYTES {
        return Err(NativeError::MissingInput);
    }
    let mut q = [0u8; Q_BYTES];
    for (i, c) in hex.iter().enumerate() {
        let v = (*c as char).to_digit(16).ok_or(NativeError::MissingInput)? as u8;
        q[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
    }
    Ok(q)
}

/// Minimal upper-case hex of a decimal string (as `new BigInteger(q, 10).toString(16)`).
fn decimal_to_hex(dec: &[u8]) -> Result<Vec<u8>, NativeError> {
    if dec.is_empty() || !dec.iter().all(u8::is_ascii_digit) {
        return Err(NativeError::MissingInput);
    }
    // Big-endian base-256 digits of the value.
    let mut n: Vec<u8> = Vec::new();
    for d in dec {
        let mut carry = u32::from(d - b'0');
        for limb in n.iter_mut().rev() {
            let v = u32::from(*limb) * 10 + carry;
            *limb = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            n.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let hex: Vec<u8> = n
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .skip_while(|&x| x == 0)
        .map(|x| b"0123456789ABCDEF"[usize::from(x)])
        .collect();
    Ok(if hex.is_empty() { b"0".to_vec() } else { hex })
}

/// The 128-byte `Q` field from the challenge, per the suite's format.
fn question(format: QFormat, q: &[u8]) -> Result<[u8; Q_BYTES], NativeError> {
    if q.is_empty() {
        return Err(NativeError::MissingInput);
    }
    match format {
        QFormat::Alpha => {
            if q.len() > Q_BYTES || !q.is_ascii() {
                return Err(NativeError::MissingInput);
            }
            let mut out = [0u8; Q_BYTES];
            out[..q.len()].copy_from_slice(q);
            Ok(out)
        }
        QFormat::Numeric => hex_nibbles_to_q(&decimal_to_hex(q)?),
        QFormat::Hex => hex_nibbles_to_q(q),
    }
}

/// RFC 6287 OCRA over explicit values: `pin_hash` is P, `session` the S bytes before padding,
/// `time` the number of time steps T.
pub(crate) fn ocra_raw(
    suite_str: &[u8],
    key: &[u8],
    counter: u64,
    q: &[u8],
    pin_hash: Option<&[u8]>,
    session: &[u8],
    time: u64,
) -> Result<Vec<u8>, NativeError> {
    ocra_msg(suite_str, key, counter, q, pin_hash, session, time, true)
}

/// [`ocra_raw`], with the suite's P left out when `with_pin` is false (purpose = message).
#[allow(clippy::too_many_arguments, reason = "the OCRA fields, one each")]
fn ocra_msg(
    suite_str: &[u8],
    key: &[u8],
    counter: u64,
    q: &[u8],
    pin_hash: Option<&[u8]>,
    session: &[u8],
    time: u64,
    with_pin: bool,
) -> Result<Vec<u8>, NativeError> {
    let suite = parse_suite(suite_str).ok_or(NativeError::BadParams)?;
    let mut msg = suite_str.to_vec();
    msg.push(0);
    if suite.counter {
        msg.extend_from_slice(&counter.to_be_bytes());
    }
    msg.extend_from_slice(&question(suite.q_format, q)?);
    if let Some(p) = suite.pin.filter(|_| with_pin) {
        let pin_hash = pin_hash.ok_or(NativeError::MissingInput)?;
        if pin_hash.len() != p.len() {
            return Err(NativeError::MissingInput);
        }
        msg.extend_from_slice(pin_hash);
    }
    if let Some(s) = suite.session_len {
        let pad = s.checked_sub(session.len()).ok_or(NativeError::BadParams)?;
        msg.extend(core::iter::repeat_n(0u8, pad));
        msg.extend_from_slice(session);
    }
    if suite.time_step.is_some() {
        msg.extend_from_slice(&time.to_be_bytes());
    }
    let mac = suite.hash.hmac(key, &msg)?;
    if suite.digits == 0 {
        return Ok(mac);
    }
    let last = *mac.last().ok_or(NativeError::BadInput)?;
    let off = usize::from(last & 0x0f);
    let bin = u32::from_be_bytes([mac[off] & 0x7f, mac[off + 1], mac[off + 2], mac[off + 3]]);
    let otp = u64::from(bin) % 10u64.pow(suite.digits);
    Ok(format!("{otp:0width$}", width = suite.digits as usize).into_bytes())
}

/// `ocra` with the module's mapping (docs/TRANSFORMS.md): params = suite, K = responses[0],
/// Q = challenges[0], P = responses[1], C = counter, S = transcript_hash, T = timestamp / step;
/// for purpose = message K = transcript_hash, C = seq | direction << 63, no P.
pub(crate) fn ocra(input: &DeriveInputBuf) -> Result<Vec<u8>, NativeError> {
    let suite = parse_suite(&input.params).ok_or(NativeError::BadParams)?;
    let message = input.purpose == kasane_abi::Purpose::Message;
    let key: &[u8] = if message {
        &input.transcript_hash
    } else {
        input.responses.first().ok_or(NativeError::MissingInput)?
    };
    let counter = if message {
        input.seq | (u64::from(input.direction as u8) << 63)
    } else {
        input.counter
    };
    let q = input.challenges.first().ok_or(NativeError::MissingInput)?;
    let pin = input.responses.get(1).map(|p| p.as_slice());
    let time = match suite.time_step {
        Some(0) => return Err(NativeError::BadParams),
        Some(step) => input.timestamp / step,
        None => 0,
    };
    ocra_msg(
        &input.params,
        key,
        counter,
        q,
        pin,
        &input.transcript_hash,
        time,
        !message,
    )
}
