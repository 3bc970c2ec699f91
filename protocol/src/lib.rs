//! Kasane wire protocol: messages, transcript, key schedule and sealing. No I/O.
//!
//! # Module map
//! - [`wire`]: the messages ([`StartRequest`] … [`SealedMessage`]), their two-byte header,
//!   size caps and field limits; [`Message::encode`] / [`Message::decode`].
//! - [`transcript`]: the running SHA-256 [`Transcript`] and the digest the host key signs.
//! - `limits`: the size limits the wire format, the key schedule and sealing share (a leaf;
//!   re-exported by [`wire`] and [`seal`]).
//! - `padding`: length-hiding [`Padding`] for messages (a leaf; re-exported
//!   by [`seal`]).
//! - [`opaque`]: OPAQUE (RFC 9807, `opaque-ke`): the suite, the host's [`ServerKeys`],
//!   registration and login steps over bytes.
//! - [`schedule`]: the bundle key, [`SessionSecret`], receipt and confirm with constant-time
//!   checks; secrets that zeroize on drop.
//! - [`seal`]: per-message keys, AES-256-GCM sealing and the [`Sequencer`].
//! - [`derive`](mod@derive): [`DeriveContext`], the transform inputs both sides build identically.
//! - [`login`]: the client and host state machines, the resulting [`Session`], and the
//!   storable [`HostLoginParts`] / [`SessionParts`] for hosts that keep state between requests.
//! - [`verifier`]: keyed response verifiers (HMAC under a key from OPAQUE's export key).
//! - [`card`]: code cards and their text form (written by the host, read by the client).
//! - `error`: [`ProtocolError`].
//!
//! Imports go one way: the leaves `limits`, `padding` and `opaque` need nothing here but
//! `error`, `wire` only on `limits` and `opaque`, `schedule` and `verifier` on the leaves,
//! `seal` on those and `wire`, `login` on all.
//!
//! `docs/PROTOCOL.md` (at the repository root) documents every byte, the transcript, the key
//! schedule, sealing and padding.
//!
//! The state machines never do I/O, read a clock or run a transform: the caller moves the
//! bytes, checks tickets and expiries, and runs the sandbox on the
//! [`DeriveInputBuf`](kasane_abi::DeriveInputBuf)s they build.
//!
//! # Example: a login and one sealed message
//! ```
//! use ed25519_dalek::SigningKey;
//! use kasane_protocol::opaque::{self, Binding, ServerKeys};
//! use kasane_protocol::verifier::ResponseKey;
//! use kasane_protocol::wire::{Challenge, ChallengeBundle, ModuleRef, Profile};
//! use kasane_protocol::{ClientStart, HostStart, HostStartParams};
//! use rand_core::OsRng;
//!
//! // Stands in for the sandbox: any pure function of the encoded input.
//! let transform = |input: &kasane_abi::DeriveInputBuf| -> Vec<u8> {
//!     use sha2::Digest;
//!     sha2::Sha256::digest(input.encode().unwrap()).to_vec()
//! };
//! let host_key = SigningKey::generate(&mut OsRng);
//! let keys = ServerKeys::generate(&mut OsRng);
//! let exporter = [7u8; 32]; // RFC 9266 tls-exporter value both ends of one TLS connection see
//!
//! // 0. enrollment: the OPAQUE record and the keyed verifier of the card's "A7" response
//! let ctx = opaque::context(None);
//! let (record, export_key) =
//!     opaque::register(&mut OsRng, &keys, b"correct horse", &Binding::for_user("alice", &ctx))?;
//! let stored = ResponseKey::derive(&export_key).verifier("K3Q9", &[9; 16])?;
//!
//! // 1. start: KE1, answered with KE2 signed by the host key
//! let client = ClientStart::new(&mut OsRng, "alice", b"correct horse", vec![Profile::Pure])?;
//! let (host, start) = HostStart::respond(&mut OsRng, client.request_bytes(), HostStartParams {
//!     keys: &keys,
//!     record: Some(&record),
//!     server_nonce: [1; 32],
//!     login_id: [2; 16],
//!     host_key: &host_key,
//!     channel_binding: Some(&exporter),
//! })?;
//! let (client, finish) =
//!     client.receive(&mut OsRng, &start, &[host_key.verifying_key()], Some(&exporter))?;
//!
//! // 2. finish: KE3 proves the password; only then the sealed challenge bundle
//! let host = host.finish(&finish)?;
//! let bundle = ChallengeBundle {
//!     bundle_id: [3; 16],
//!     challenges: vec![Challenge { prompt: "A7".into(), salt: vec![9; 16] }],
//!     counter: 1,
//!     timestamp: 1_700_000_000,
//!     ticket: Vec::new(),
//!     module: ModuleRef {
//!         name: "sha256-chain".into(), sha256: [0; 32], length: 1,
//!         profile: Profile::Pure, fuel: 1_000_000, memory: 16 << 20,
//!     },
//!     params: Vec::new(),
//!     expires: 1_700_000_060,
//! };
//! let (host, sealed) = host.send(bundle)?;
//! let client = client.receive(&sealed)?;
//!
//! // 3. both run the transform on the verifiers; the host checks the receipt, the client
//! //    the confirm
//! let verifiers = client.verifiers(&["k3q9"])?;
//! let t_auth = transform(&client.auth_input(&verifiers)?);
//! let (client, response) = client.respond(&t_auth)?;
//! let t_auth = transform(&host.auth_input(&[stored])?);
//! let (mut host, accept) = host.accept(&response, &t_auth, [4; 32])?;
//! let mut client = client.receive(&accept)?;
//! assert_eq!(client.secret().expose_secret(), host.secret().expose_secret());
//!
//! // A message, keyed by the per-message transform output.
//! let (seq, input) = client.prepare_seal()?;
//! let sealed = client.seal(seq, &transform(&input), "", b"hello")?;
//! let input = host.prepare_open(&sealed)?;
//! assert_eq!(host.open(&sealed, &transform(&input))?.as_slice(), b"hello");
//! # Ok::<(), kasane_protocol::ProtocolError>(())
//! ```
#![forbid(unsafe_code)]

pub mod aead;
pub mod card;
pub mod derive;
mod error;
pub mod gateway;
mod limits;
pub mod login;
pub mod opaque;
mod padding;
pub mod schedule;
pub mod seal;
pub mod transcript;
pub mod verifier;
pub mod window;
pub mod wire;

pub use derive::{DeriveContext, with_derive_input};
pub use error::ProtocolError;
pub use login::{
    ClientAwaitAccept, ClientAwaitBundle, ClientChallenge, ClientStart, Expect, HostAwaitBundle,
    HostAwaitFinish, HostChallenge, HostLoginParts, HostStart, HostStartParams, Session,
    SessionParts, decoy_finish,
};
pub use opaque::{ExportKey, OpaqueSessionKey, ServerKeys};
pub use padding::Padding;
pub use schedule::SessionSecret;
pub use seal::Sequencer;
pub use transcript::Transcript;
pub use window::ReplayWindow;
pub use wire::{
    Challenge, ChallengeBundle, Delivery, EnrolledPair, FinishRequest, Inbox, InboxAck,
    LoginFailure, Message, MessageAccepted, MessageRefused, ModuleRef, PasswdChallenge,
    PasswdFinish, PasswdStart, Profile, RefusalReason, ResponseAccept, ResponseRequest,
    SealedBundle, SealedMessage, StartRequest, StartResponse,
};
