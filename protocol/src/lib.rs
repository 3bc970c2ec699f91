//! Kasane wire protocol: messages, transcript, key schedule and sealing. No I/O.
//!
//! # Module map
//! - [`wire`]: the messages ([`HelloRequest`] … [`SealedMessage`]), their two-byte header,
//!   size caps and field limits; [`Message::encode`] / [`Message::decode`].
//! - [`transcript`]: the running SHA-256 [`Transcript`] and the digest the host key signs.
//! - [`schedule`]: X25519, the password key, [`SessionSecret`], receipt and confirm with
//!   constant-time checks; secrets that zeroize on drop.
//! - [`seal`]: per-message keys, AES-256-GCM sealing, [`Sequencer`] and length-hiding
//!   [`Padding`].
//! - [`derive`]: [`DeriveContext`], the transform inputs both sides build identically.
//! - [`login`]: the client and host state machines and the resulting [`Session`].
//! - `error`: [`ProtocolError`].
//!
//! `docs/PROTOCOL.md` documents every byte.
#![forbid(unsafe_code)]

pub mod derive;
mod error;
pub mod login;
pub mod schedule;
pub mod seal;
pub mod transcript;
pub mod wire;

pub use derive::DeriveContext;
pub use error::ProtocolError;
pub use login::{
    ClientAwaitAccept, ClientAwaitBundle, ClientChallenge, ClientHello, ClientPassword,
    HostAwaitBundle, HostAwaitPassword, HostChallenge, HostHello, HostHelloParams, PasswordAttempt,
    Session,
};
pub use schedule::{DhSecret, EphemeralSecret, SessionSecret};
pub use seal::{Padding, Sequencer};
pub use transcript::Transcript;
pub use wire::{
    Challenge, ChallengeBundle, HelloRequest, HelloResponse, LoginFailure, Message, ModuleRef,
    PasswordRequest, Profile, ResponseAccept, ResponseRequest, SealedMessage,
};
