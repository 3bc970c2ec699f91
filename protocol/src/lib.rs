//! Kasane wire protocol: messages, transcript, key schedule and sealing. No I/O.
//!
//! # Module map
//! - [`wire`]: the messages ([`HelloRequest`] … [`SealedMessage`]), their two-byte header,
//!   size caps and field limits; [`Message::encode`] / [`Message::decode`].
//! - [`transcript`]: the running SHA-256 [`Transcript`] and the digest the host key signs.
//! - `limits`: the size limits the wire format, the key schedule and sealing share (a leaf;
//!   re-exported by [`wire`] and [`seal`]).
//! - `padding`: length-hiding [`Padding`] for the password and messages (a leaf; re-exported
//!   by [`seal`]).
//! - [`schedule`]: X25519, the password key, [`SessionSecret`], receipt and confirm with
//!   constant-time checks; secrets that zeroize on drop.
//! - [`seal`]: per-message keys, AES-256-GCM sealing and the [`Sequencer`].
//! - [`derive`](mod@derive): [`DeriveContext`], the transform inputs both sides build identically.
//! - [`login`]: the client and host state machines, the resulting [`Session`], and the
//!   storable [`HostLoginParts`] / [`SessionParts`] for hosts that keep state between requests.
//! - [`verifier`]: response verifiers (argon2id of a normalized response with the pair's salt).
//! - [`card`]: code cards and their text form (written by the host, read by the client).
//! - `error`: [`ProtocolError`].
//!
//! Imports go one way: the leaves `limits` and `padding` need nothing here but `error`, `wire`
//! only on `limits`, `schedule` on the two leaves, `seal` on those and `wire`, `login` on all.
//!
//! `docs/PROTOCOL.md` (at the repository root) documents every byte, the transcript, the key
//! schedule, sealing and padding.
//!
//! The state machines never do I/O, read a clock or run a transform: the caller moves the
//! bytes, checks tickets and expiries, and runs the sandbox on the
//! [`DeriveInputBuf`](kasane_abi::DeriveInputBuf)s they build.
//!
//! # Example: a login key agreement and one sealed message
//! ```
//! use ed25519_dalek::SigningKey;
//! use kasane_protocol::wire::{Challenge, ChallengeBundle, ModuleRef, Profile};
//! use kasane_protocol::{ClientHello, EphemeralSecret, HostHello, HostHelloParams};
//! use rand_core::OsRng;
//! use zeroize::Zeroizing;
//!
//! // Stands in for the sandbox: any pure function of the encoded input.
//! let transform = |input: &kasane_abi::DeriveInputBuf| -> Vec<u8> {
//!     use sha2::Digest;
//!     sha2::Sha256::digest(input.encode().unwrap()).to_vec()
//! };
//! let host_key = SigningKey::generate(&mut OsRng);
//! let exporter = [7u8; 32]; // RFC 9266 tls-exporter value both ends of one TLS connection see
//!
//! // 1. hello
//! let client = ClientHello::new(&mut OsRng, vec![Profile::Pure])?;
//! let (host, hello) = HostHello::respond(client.request_bytes(), HostHelloParams {
//!     ephemeral: EphemeralSecret::random(&mut OsRng),
//!     server_nonce: [1; 32],
//!     login_id: [2; 16],
//!     host_key: &host_key,
//!     channel_binding: Some(&exporter),
//! })?;
//! let client = client.receive(&hello, &[host_key.verifying_key()], Some(&exporter))?;
//!
//! // 2. password, then the challenge bundle
//! let (client, password) = client.request("alice", b"correct horse")?;
//! let (attempt, host) = host.receive(&password)?;
//! assert_eq!(attempt.password.as_slice(), b"correct horse"); // the host checks it (argon2id)
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
//! let (host, bundle) = host.send(bundle)?;
//! let client = client.receive(&bundle)?;
//!
//! // 3. both run the transform on the verifiers; the host checks the receipt, the client the confirm
//! let verifiers = vec![Zeroizing::new(b"verifier of the response to A7".to_vec())];
//! let t_auth = transform(&client.auth_input(&verifiers)?);
//! let (client, response) = client.respond(&t_auth)?;
//! let t_auth = transform(&host.auth_input(&verifiers)?);
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

pub mod card;
pub mod derive;
mod error;
mod limits;
pub mod login;
mod padding;
pub mod schedule;
pub mod seal;
pub mod transcript;
pub mod verifier;
pub mod wire;

pub use derive::{DeriveContext, with_derive_input};
pub use error::ProtocolError;
pub use login::{
    ClientAwaitAccept, ClientAwaitBundle, ClientChallenge, ClientHello, ClientPassword,
    HostAwaitBundle, HostAwaitPassword, HostChallenge, HostHello, HostHelloParams, HostLoginParts,
    PasswordAttempt, Session, SessionParts,
};
pub use padding::Padding;
pub use schedule::{DhSecret, EphemeralSecret, SessionSecret};
pub use seal::Sequencer;
pub use transcript::Transcript;
pub use wire::{
    Challenge, ChallengeBundle, Delivery, HelloRequest, HelloResponse, Inbox, InboxAck,
    LoginFailure, Message, MessageAccepted, MessageRefused, ModuleRef, PasswordRequest, Profile,
    RefusalReason, ResponseAccept, ResponseRequest, SealedMessage,
};
