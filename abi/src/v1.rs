//! Transform ABI version 1.
//!
//! # Exports a v1 module must have
//! | name | type | meaning |
//! |---|---|---|
//! | `memory` | memory | the guest's linear memory (32-bit, not shared) |
//! | `kasane_abi_v1` | `() -> ()` | marks the ABI version; never called |
//! | `kasane_alloc` | `(len: i32) -> i32` | a pointer to `len` writable bytes, or 0 on failure |
//! | `kasane_derive` | `(in_ptr, in_len, out_ptr, out_cap: i32) -> i32` | writes key material at `out_ptr`, returns its length in `1..=64`, or a negative [`GuestError`] code |
//!
//! # `DeriveInput` byte layout (all integers little-endian)
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, always [`INPUT_VERSION`] (1) |
//! | 1 | 1 | purpose: 1 = auth, 2 = message |
//! | 2 | 1 | direction: 0 = client to host, 1 = host to client |
//! | 3 | 1 | reserved, must be 0 |
//! | 4 | 8 | counter (u64) |
//! | 12 | 8 | timestamp (u64, unix seconds, the host's clock) |
//! | 20 | 8 | seq (u64, message sequence number; 0 for auth) |
//! | 28 | 32 | server_nonce |
//! | 60 | 32 | client_nonce |
//! | 92 | 32 | transcript_hash |
//! | 124 | 4 | number of challenges `n` (u32, at most [`MAX_LIST_ITEMS`]) |
//! | 128 | … | `n` times: length (u32, at most [`MAX_ITEM_LEN`]) then that many bytes |
//! | … | 4 | number of responses `m` (u32, at most [`MAX_LIST_ITEMS`]) |
//! | … | … | `m` times: length (u32, at most [`MAX_ITEM_LEN`]) then that many bytes |
//! | … | 4 | params length (u32, at most [`MAX_PARAMS_LEN`]) |
//! | … | … | params bytes; the encoding ends exactly here (no trailing bytes) |
//!
//! The whole encoding is at most [`MAX_INPUT_LEN`] bytes. `abi/include/kasane_abi_v1.h` documents
//! the same layout for C authors.

use core::fmt;

/// Name of the exported linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Name of the exported function that marks ABI version 1.
pub const EXPORT_ABI_MARKER: &str = "kasane_abi_v1";
/// Name of the exported allocator: `(len: i32) -> i32`.
pub const EXPORT_ALLOC: &str = "kasane_alloc";
/// Name of the exported derive function: `(in_ptr, in_len, out_ptr, out_cap: i32) -> i32`.
pub const EXPORT_DERIVE: &str = "kasane_derive";
/// Export a WASI reactor may have; the embedder calls it once after instantiation.
pub const EXPORT_WASI_INITIALIZE: &str = "_initialize";

/// Format version byte at offset 0 of every v1 encoding.
pub const INPUT_VERSION: u8 = 1;
/// Size of the fixed header that precedes the variable-length fields.
pub const HEADER_LEN: usize = 124;
/// Most items in `challenges` and in `responses`.
pub const MAX_LIST_ITEMS: usize = 16;
/// Longest single challenge or response.
pub const MAX_ITEM_LEN: usize = 1024;
/// Longest `params`.
pub const MAX_PARAMS_LEN: usize = 4096;
/// Longest whole encoding.
pub const MAX_INPUT_LEN: usize = 64 * 1024;
/// Shortest key material a transform may return.
pub const MIN_OUTPUT_LEN: usize = 1;
/// Longest key material a transform may return; the embedder passes `out_cap` = the entry's
/// output limit, at most this.
pub const MAX_OUTPUT_LEN: usize = 64;

/// Why the key is being derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Purpose {
    /// Login: the challenge/response step.
    Auth = 1,
    /// A per-transmission message key.
    Message = 2,
}

impl Purpose {
    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parses the wire byte.
    pub const fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Auth),
            2 => Some(Self::Message),
            _ => None,
        }
    }
}

/// Direction of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Direction {
    /// From the client to the host (also used for auth).
    #[default]
    ClientToHost = 0,
    /// From the host to the client.
    HostToClient = 1,
}

impl Direction {
    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parses the wire byte.
    pub const fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::ClientToHost),
            1 => Some(Self::HostToClient),
            _ => None,
        }
    }
}

/// Error codes a guest returns from `kasane_derive` (always negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GuestError {
    /// The input bytes did not decode as a v1 `DeriveInput`.
    BadInput = -1,
    /// The module's params are not valid for this transform.
    BadParams = -2,
    /// A challenge or response the transform needs is missing or malformed.
    MissingInput = -3,
    /// `out_cap` is smaller than the key material.
    OutputCapacity = -4,
    /// The transform does not support this purpose or option.
    Unsupported = -5,
    /// Any other failure inside the transform.
    Internal = -6,
}

impl GuestError {
    /// The code returned across the ABI.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// Maps a returned code back; `None` for codes outside the table.
    pub const fn from_code(code: i32) -> Option<Self> {
        match code {
            -1 => Some(Self::BadInput),
            -2 => Some(Self::BadParams),
            -3 => Some(Self::MissingInput),
            -4 => Some(Self::OutputCapacity),
            -5 => Some(Self::Unsupported),
            -6 => Some(Self::Internal),
            _ => None,
        }
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadInput => "input is not a valid v1 DeriveInput",
            Self::BadParams => "params are not valid for this transform",
            Self::MissingInput => "a required challenge or response is missing",
            Self::OutputCapacity => "output buffer too small",
            Self::Unsupported => "purpose or option not supported by this transform",
            Self::Internal => "internal transform failure",
        })
    }
}

/// Why bytes could not be decoded as a [`DeriveInput`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the field at this offset is complete.
    Truncated {
        /// Offset of the incomplete field.
        at: usize,
    },
    /// The format version byte is not [`INPUT_VERSION`].
    Version(u8),
    /// The purpose byte is not 1 or 2.
    Purpose(u8),
    /// The direction byte is not 0 or 1.
    Direction(u8),
    /// The reserved byte is not 0.
    Reserved(u8),
    /// A list has more than [`MAX_LIST_ITEMS`] items.
    TooManyItems(u32),
    /// A challenge or response is longer than [`MAX_ITEM_LEN`].
    ItemTooLong(u32),
    /// `params` is longer than [`MAX_PARAMS_LEN`].
    ParamsTooLong(u32),
    /// The whole encoding is longer than [`MAX_INPUT_LEN`].
    TooLong(usize),
    /// Bytes remain after `params`.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { at } => write!(f, "input truncated at offset {at}"),
            Self::Version(v) => write!(f, "unknown input version {v}"),
            Self::Purpose(p) => write!(f, "unknown purpose {p}"),
            Self::Direction(d) => write!(f, "unknown direction {d}"),
            Self::Reserved(r) => write!(f, "reserved byte is {r}, must be 0"),
            Self::TooManyItems(n) => write!(f, "{n} list items, at most {MAX_LIST_ITEMS}"),
            Self::ItemTooLong(n) => write!(f, "item of {n} bytes, at most {MAX_ITEM_LEN}"),
            Self::ParamsTooLong(n) => write!(f, "params of {n} bytes, at most {MAX_PARAMS_LEN}"),
            Self::TooLong(n) => write!(f, "input of {n} bytes, at most {MAX_INPUT_LEN}"),
            Self::TrailingBytes(n) => write!(f, "{n} trailing bytes after params"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a [`DeriveInput`] could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A list has more than [`MAX_LIST_ITEMS`] items.
    TooManyItems(usize),
    /// A challenge or response is longer than [`MAX_ITEM_LEN`].
    ItemTooLong(usize),
    /// `params` is longer than [`MAX_PARAMS_LEN`].
    ParamsTooLong(usize),
    /// The output buffer is smaller than [`DeriveInput::encoded_len`].
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooManyItems(n) => write!(f, "{n} list items, at most {MAX_LIST_ITEMS}"),
            Self::ItemTooLong(n) => write!(f, "item of {n} bytes, at most {MAX_ITEM_LEN}"),
            Self::ParamsTooLong(n) => write!(f, "params of {n} bytes, at most {MAX_PARAMS_LEN}"),
            Self::BufferTooSmall { needed } => write!(f, "buffer too small, {needed} bytes needed"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// A list of byte strings: either borrowed slices (to encode) or a validated encoded region
/// (after decoding, so a guest needs no allocator).
#[derive(Clone, Copy)]
pub struct ByteList<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    Slices(&'a [&'a [u8]]),
    /// `count` items of `(u32 len, bytes)`, already validated by `decode`.
    Encoded {
        count: usize,
        bytes: &'a [u8],
    },
}

impl<'a> ByteList<'a> {
    /// The empty list.
    pub const EMPTY: ByteList<'static> = ByteList(Repr::Slices(&[]));

    /// A list over borrowed slices.
    pub const fn from_slices(items: &'a [&'a [u8]]) -> Self {
        Self(Repr::Slices(items))
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self.0 {
            Repr::Slices(s) => s.len(),
            Repr::Encoded { count, .. } => count,
        }
    }

    /// True when the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        self.iter().nth(index)
    }

    /// Iterates over the items in order.
    pub fn iter(&self) -> ByteListIter<'a> {
        ByteListIter(match self.0 {
            Repr::Slices(s) => IterRepr::Slices(s.iter()),
            Repr::Encoded { count, bytes } => IterRepr::Encoded { left: count, bytes },
        })
    }
}

impl Default for ByteList<'_> {
    fn default() -> Self {
        ByteList(Repr::Slices(&[]))
    }
}

impl PartialEq for ByteList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for ByteList<'_> {}

impl fmt::Debug for ByteList<'_> {
    /// Prints lengths only: items may be secrets (responses are password-equivalent verifiers).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|item| RedactedLen(item.len())))
            .finish()
    }
}

struct RedactedLen(usize);

impl fmt::Debug for RedactedLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

impl<'a> IntoIterator for &ByteList<'a> {
    type Item = &'a [u8];
    type IntoIter = ByteListIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`ByteList`].
#[derive(Clone)]
pub struct ByteListIter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
    Slices(core::slice::Iter<'a, &'a [u8]>),
    Encoded { left: usize, bytes: &'a [u8] },
}

impl<'a> Iterator for ByteListIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            IterRepr::Slices(it) => it.next().copied(),
            IterRepr::Encoded { left, bytes } => {
                if *left == 0 {
                    return None;
                }
                // `decode` validated every length, so these splits cannot fail; stay total anyway.
                let (len, rest) = split_u32(bytes)?;
                let len = len as usize;
                let item = rest.get(..len)?;
                *bytes = rest.get(len..)?;
                *left -= 1;
                Some(item)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Slices(it) => it.len(),
            IterRepr::Encoded { left, .. } => *left,
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for ByteListIter<'_> {}

fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

/// The input of one `kasane_derive` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeriveInput<'a> {
    /// Why the key is derived.
    pub purpose: Purpose,
    /// The challenge codes shown to the user.
    pub challenges: ByteList<'a>,
    /// The response verifiers, one per challenge (secrets).
    pub responses: ByteList<'a>,
    /// The user's access counter.
    pub counter: u64,
    /// The host's timestamp, unix seconds.
    pub timestamp: u64,
    /// Message sequence number (0 for auth).
    pub seq: u64,
    /// Message direction (client to host for auth).
    pub direction: Direction,
    /// The host's nonce for this login.
    pub server_nonce: [u8; 32],
    /// The client's nonce for this login.
    pub client_nonce: [u8; 32],
    /// Hash of the login transcript so far.
    pub transcript_hash: [u8; 32],
    /// Bytes from the module's registry entry (an OCRA suite, an iteration count, …).
    pub params: &'a [u8],
}

impl<'a> DeriveInput<'a> {
    /// An auth input with every other field zero or empty.
    pub const fn empty() -> DeriveInput<'static> {
        DeriveInput {
            purpose: Purpose::Auth,
            challenges: ByteList::EMPTY,
            responses: ByteList::EMPTY,
            counter: 0,
            timestamp: 0,
            seq: 0,
            direction: Direction::ClientToHost,
            server_nonce: [0; 32],
            client_nonce: [0; 32],
            transcript_hash: [0; 32],
            params: &[],
        }
    }

    /// Checks the limits and returns the exact encoded length.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let list_len = |list: &ByteList<'_>| -> Result<usize, EncodeError> {
            if list.len() > MAX_LIST_ITEMS {
                return Err(EncodeError::TooManyItems(list.len()));
            }
            list.iter().try_fold(4usize, |acc, item| {
                if item.len() > MAX_ITEM_LEN {
                    Err(EncodeError::ItemTooLong(item.len()))
                } else {
                    Ok(acc + 4 + item.len())
                }
            })
        };
        if self.params.len() > MAX_PARAMS_LEN {
            return Err(EncodeError::ParamsTooLong(self.params.len()));
        }
        // Bounded by the limits above: 124 + 2 * 4 + 32 * (4 + 1024) + 4 + 4096 < MAX_INPUT_LEN.
        Ok(HEADER_LEN
            + list_len(&self.challenges)?
            + list_len(&self.responses)?
            + 4
            + self.params.len())
    }

    /// Encodes into `out`, returning the number of bytes written.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let needed = self.encoded_len()?;
        let out = out
            .get_mut(..needed)
            .ok_or(EncodeError::BufferTooSmall { needed })?;
        let mut w = Writer { out, pos: 0 };
        w.put(&[
            INPUT_VERSION,
            self.purpose.as_u8(),
            self.direction.as_u8(),
            0,
        ]);
        w.put(&self.counter.to_le_bytes());
        w.put(&self.timestamp.to_le_bytes());
        w.put(&self.seq.to_le_bytes());
        w.put(&self.server_nonce);
        w.put(&self.client_nonce);
        w.put(&self.transcript_hash);
        for list in [&self.challenges, &self.responses] {
            w.put_len(list.len());
            for item in list.iter() {
                w.put_len(item.len());
                w.put(item);
            }
        }
        w.put_len(self.params.len());
        w.put(self.params);
        debug_assert_eq!(w.pos, needed);
        Ok(needed)
    }

    /// Encodes into a new vector.
    #[cfg(feature = "alloc")]
    pub fn encode_to_vec(&self) -> Result<alloc::vec::Vec<u8>, EncodeError> {
        let mut v = alloc::vec![0u8; self.encoded_len()?];
        self.encode_into(&mut v)?;
        Ok(v)
    }

    /// Decodes and validates `bytes`. Never panics; every malformed input is a [`DecodeError`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_INPUT_LEN {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let mut r = Reader { bytes, pos: 0 };
        let [version, purpose, direction, reserved] = r.array::<4>()?;
        if version != INPUT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let purpose = Purpose::from_u8(purpose).ok_or(DecodeError::Purpose(purpose))?;
        let direction = Direction::from_u8(direction).ok_or(DecodeError::Direction(direction))?;
        if reserved != 0 {
            return Err(DecodeError::Reserved(reserved));
        }
        let counter = u64::from_le_bytes(r.array()?);
        let timestamp = u64::from_le_bytes(r.array()?);
        let seq = u64::from_le_bytes(r.array()?);
        let server_nonce = r.array()?;
        let client_nonce = r.array()?;
        let transcript_hash = r.array()?;
        let challenges = r.list()?;
        let responses = r.list()?;
        let params_len = r.u32()?;
        if params_len as usize > MAX_PARAMS_LEN {
            return Err(DecodeError::ParamsTooLong(params_len));
        }
        let params = r.take(params_len as usize)?;
        if r.pos != bytes.len() {
            return Err(DecodeError::TrailingBytes(bytes.len() - r.pos));
        }
        Ok(DeriveInput {
            purpose,
            challenges,
            responses,
            counter,
            timestamp,
            seq,
            direction,
            server_nonce,
            client_nonce,
            transcript_hash,
            params,
        })
    }
}

struct Writer<'o> {
    out: &'o mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        // `encode_into` sized `out` with `encoded_len`, so this range is always in bounds.
        if let Some(dst) = self.out.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }

    fn put_len(&mut self, n: usize) {
        // Every length was checked against limits far below u32::MAX.
        self.put(&(n as u32).to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let at = self.pos;
        self.take(N)?
            .try_into()
            .map_err(|_| DecodeError::Truncated { at })
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn list(&mut self) -> Result<ByteList<'a>, DecodeError> {
        let count = self.u32()?;
        if count as usize > MAX_LIST_ITEMS {
            return Err(DecodeError::TooManyItems(count));
        }
        let start = self.pos;
        for _ in 0..count {
            let len = self.u32()?;
            if len as usize > MAX_ITEM_LEN {
                return Err(DecodeError::ItemTooLong(len));
            }
            self.take(len as usize)?;
        }
        let bytes = self
            .bytes
            .get(start..self.pos)
            .ok_or(DecodeError::Truncated { at: start })?;
        Ok(ByteList(Repr::Encoded {
            count: count as usize,
            bytes,
        }))
    }
}

/// An owned [`DeriveInput`], for hosts and tools. Responses are zeroized on drop and never
/// printed by `Debug`.
///
/// ```
/// use kasane_abi::{DeriveInput, DeriveInputBuf};
/// let x = DeriveInputBuf { counter: 9, params: b"OCRA-1:HOTP-SHA1-6:QN08".to_vec(), ..Default::default() };
/// let bytes = x.encode().unwrap();
/// assert_eq!(DeriveInput::decode(&bytes).unwrap().counter, 9);
/// ```
#[cfg(feature = "alloc")]
#[derive(Clone, PartialEq, Eq)]
pub struct DeriveInputBuf {
    /// See [`DeriveInput::purpose`].
    pub purpose: Purpose,
    /// See [`DeriveInput::challenges`].
    pub challenges: alloc::vec::Vec<alloc::vec::Vec<u8>>,
    /// See [`DeriveInput::responses`] (secrets, zeroized on drop).
    pub responses: alloc::vec::Vec<zeroize::Zeroizing<alloc::vec::Vec<u8>>>,
    /// See [`DeriveInput::counter`].
    pub counter: u64,
    /// See [`DeriveInput::timestamp`].
    pub timestamp: u64,
    /// See [`DeriveInput::seq`].
    pub seq: u64,
    /// See [`DeriveInput::direction`].
    pub direction: Direction,
    /// See [`DeriveInput::server_nonce`].
    pub server_nonce: [u8; 32],
    /// See [`DeriveInput::client_nonce`].
    pub client_nonce: [u8; 32],
    /// See [`DeriveInput::transcript_hash`].
    pub transcript_hash: [u8; 32],
    /// See [`DeriveInput::params`].
    pub params: alloc::vec::Vec<u8>,
}

#[cfg(feature = "alloc")]
impl Default for DeriveInputBuf {
    fn default() -> Self {
        Self::from(&DeriveInput::empty())
    }
}

#[cfg(feature = "alloc")]
impl DeriveInputBuf {
    /// Encodes into a new vector, checking every limit.
    pub fn encode(&self) -> Result<alloc::vec::Vec<u8>, EncodeError> {
        use alloc::vec::Vec;
        let challenges: Vec<&[u8]> = self.challenges.iter().map(Vec::as_slice).collect();
        let responses: Vec<&[u8]> = self.responses.iter().map(|r| r.as_slice()).collect();
        DeriveInput {
            purpose: self.purpose,
            challenges: ByteList::from_slices(&challenges),
            responses: ByteList::from_slices(&responses),
            counter: self.counter,
            timestamp: self.timestamp,
            seq: self.seq,
            direction: self.direction,
            server_nonce: self.server_nonce,
            client_nonce: self.client_nonce,
            transcript_hash: self.transcript_hash,
            params: &self.params,
        }
        .encode_to_vec()
    }

    /// Decodes bytes into an owned input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        DeriveInput::decode(bytes).map(|i| Self::from(&i))
    }
}

#[cfg(feature = "alloc")]
impl From<&DeriveInput<'_>> for DeriveInputBuf {
    fn from(i: &DeriveInput<'_>) -> Self {
        Self {
            purpose: i.purpose,
            challenges: i.challenges.iter().map(<[u8]>::to_vec).collect(),
            responses: i
                .responses
                .iter()
                .map(|r| zeroize::Zeroizing::new(r.to_vec()))
                .collect(),
            counter: i.counter,
            timestamp: i.timestamp,
            seq: i.seq,
            direction: i.direction,
            server_nonce: i.server_nonce,
            client_nonce: i.client_nonce,
            transcript_hash: i.transcript_hash,
            params: i.params.to_vec(),
        }
    }
}

#[cfg(feature = "alloc")]
impl fmt::Debug for DeriveInputBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeriveInputBuf")
            .field("purpose", &self.purpose)
            .field("challenges", &self.challenges.len())
            .field("responses", &"<redacted>")
            .field("counter", &self.counter)
            .field("timestamp", &self.timestamp)
            .field("seq", &self.seq)
            .field("direction", &self.direction)
            .field("params_len", &self.params.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(c: &'a [&'a [u8]], r: &'a [&'a [u8]], p: &'a [u8]) -> DeriveInput<'a> {
        DeriveInput {
            purpose: Purpose::Message,
            challenges: ByteList::from_slices(c),
            responses: ByteList::from_slices(r),
            counter: u64::MAX,
            timestamp: 1_111_111_109,
            seq: 42,
            direction: Direction::HostToClient,
            server_nonce: [0xAA; 32],
            client_nonce: [0xBB; 32],
            transcript_hash: [0xCC; 32],
            params: p,
        }
    }

    #[test]
    fn layout_matches_the_documented_offsets() {
        let c: [&[u8]; 1] = [b"xy"];
        let r: [&[u8]; 0] = [];
        let input = sample(&c, &r, b"P");
        let mut buf = [0u8; 256];
        let n = input.encode_into(&mut buf).unwrap();
        let b = &buf[..n];
        assert_eq!(n, HEADER_LEN + 4 + 4 + 2 + 4 + 4 + 1);
        assert_eq!(&b[0..4], &[1, 2, 1, 0]);
        assert_eq!(&b[4..12], &u64::MAX.to_le_bytes());
        assert_eq!(&b[12..20], &1_111_111_109u64.to_le_bytes());
        assert_eq!(&b[20..28], &42u64.to_le_bytes());
        assert_eq!(&b[28..60], &[0xAA; 32]);
        assert_eq!(&b[60..92], &[0xBB; 32]);
        assert_eq!(&b[92..124], &[0xCC; 32]);
        assert_eq!(&b[124..128], &1u32.to_le_bytes());
        assert_eq!(&b[128..132], &2u32.to_le_bytes());
        assert_eq!(&b[132..134], b"xy");
        assert_eq!(&b[134..138], &0u32.to_le_bytes());
        assert_eq!(&b[138..142], &1u32.to_le_bytes());
        assert_eq!(&b[142..], b"P");
    }

    #[test]
    fn each_malformed_field_has_its_own_error() {
        let input = DeriveInput::empty();
        let mut buf = [0u8; 256];
        let n = input.encode_into(&mut buf).unwrap();
        let good = &buf[..n];
        assert!(DeriveInput::decode(good).is_ok());

        let mut bad = [0u8; 256];
        bad[..n].copy_from_slice(good);
        bad[0] = 2;
        assert_eq!(DeriveInput::decode(&bad[..n]), Err(DecodeError::Version(2)));
        bad[0] = 1;
        bad[1] = 3;
        assert_eq!(DeriveInput::decode(&bad[..n]), Err(DecodeError::Purpose(3)));
        bad[1] = 1;
        bad[2] = 2;
        assert_eq!(
            DeriveInput::decode(&bad[..n]),
            Err(DecodeError::Direction(2))
        );
        bad[2] = 0;
        bad[3] = 9;
        assert_eq!(
            DeriveInput::decode(&bad[..n]),
            Err(DecodeError::Reserved(9))
        );
        bad[3] = 0;
        bad[124..128].copy_from_slice(&17u32.to_le_bytes());
        assert_eq!(
            DeriveInput::decode(&bad[..n]),
            Err(DecodeError::TooManyItems(17))
        );
        bad[124..128].copy_from_slice(&1u32.to_le_bytes());
        bad[128..132].copy_from_slice(&1025u32.to_le_bytes());
        assert_eq!(
            DeriveInput::decode(&bad[..n]),
            Err(DecodeError::ItemTooLong(1025))
        );
        assert_eq!(
            DeriveInput::decode(&good[..n - 1]),
            Err(DecodeError::Truncated { at: n - 4 })
        );
        assert_eq!(
            DeriveInput::decode(&buf[..n + 1]),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            DeriveInput::decode(&[0u8; MAX_INPUT_LEN + 1]),
            Err(DecodeError::TooLong(MAX_INPUT_LEN + 1))
        );
    }

    #[test]
    fn encode_refuses_every_limit() {
        let big = [0u8; MAX_ITEM_LEN + 1];
        let items: [&[u8]; 1] = [&big];
        let input = sample(&items, &[], b"");
        assert_eq!(
            input.encoded_len(),
            Err(EncodeError::ItemTooLong(MAX_ITEM_LEN + 1))
        );
        let many: [&[u8]; MAX_LIST_ITEMS + 1] = [b"a"; MAX_LIST_ITEMS + 1];
        let input = sample(&[], &many, b"");
        assert_eq!(
            input.encoded_len(),
            Err(EncodeError::TooManyItems(MAX_LIST_ITEMS + 1))
        );
        let params = [0u8; MAX_PARAMS_LEN + 1];
        let input = sample(&[], &[], &params);
        assert_eq!(
            input.encoded_len(),
            Err(EncodeError::ParamsTooLong(MAX_PARAMS_LEN + 1))
        );
        let mut small = [0u8; 10];
        assert_eq!(
            DeriveInput::empty().encode_into(&mut small),
            Err(EncodeError::BufferTooSmall {
                needed: HEADER_LEN + 12
            })
        );
    }

    #[test]
    fn the_largest_input_fits_the_cap() {
        let item = [7u8; MAX_ITEM_LEN];
        let items: [&[u8]; MAX_LIST_ITEMS] = [&item; MAX_LIST_ITEMS];
        let params = [1u8; MAX_PARAMS_LEN];
        let input = sample(&items, &items, &params);
        let n = input.encoded_len().unwrap();
        assert!(n <= MAX_INPUT_LEN, "{n}");
    }

    #[test]
    fn guest_error_codes_round_trip_and_are_negative() {
        for e in [
            GuestError::BadInput,
            GuestError::BadParams,
            GuestError::MissingInput,
            GuestError::OutputCapacity,
            GuestError::Unsupported,
            GuestError::Internal,
        ] {
            assert!(e.code() < 0);
            assert_eq!(GuestError::from_code(e.code()), Some(e));
        }
        assert_eq!(GuestError::from_code(0), None);
        assert_eq!(GuestError::from_code(-7), None);
    }
}
