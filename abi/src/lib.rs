//! The Kasane transform ABI: the single source of truth shared by the host-side sandbox and
//! the guest SDK.
//!
//! A transform is a core WebAssembly module that is a pure function of its input. The host
//! encodes a [`DeriveInput`], copies it into the guest's memory through `kasane_alloc`, calls
//! `kasane_derive` and reads back 1..=64 bytes of key material (or a negative [`GuestError`]
//! code).
//!
//! # Module map
//! - [`v1`]: ABI version 1 — export names, [`DeriveInput`] and its byte encoding, the limits
//!   every decoder enforces, and the guest error codes. Re-exported at the crate root.
//! - [`profile`]: [`Profile`], which host functions a module may import (`pure`, `wasi`); the
//!   one definition used by the sandbox, the wire and the registry.
//!
//! A later ABI gets its own module (`v2`) beside `v1`; modules built against `v1` keep working.
//!
//! # Example
//! ```
//! use kasane_abi::{ByteList, DeriveInput, Direction, Purpose};
//!
//! let challenges: [&[u8]; 2] = [b"A7", b"C3"];
//! let responses: [&[u8]; 2] = [b"verifier-1", b"verifier-2"];
//! let input = DeriveInput {
//!     purpose: Purpose::Auth,
//!     challenges: ByteList::from_slices(&challenges),
//!     responses: ByteList::from_slices(&responses),
//!     counter: 7,
//!     timestamp: 1_700_000_000,
//!     seq: 0,
//!     direction: Direction::ClientToHost,
//!     server_nonce: [1; 32],
//!     client_nonce: [2; 32],
//!     transcript_hash: [3; 32],
//!     params: b"",
//! };
//! let mut buf = [0u8; 512];
//! let n = input.encode_into(&mut buf).unwrap();
//! let back = DeriveInput::decode(&buf[..n]).unwrap();
//! assert_eq!(back, input);
//! assert_eq!(back.challenges.get(1), Some(&b"C3"[..]));
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod profile;
pub mod v1;

pub use profile::Profile;
pub use v1::*;
