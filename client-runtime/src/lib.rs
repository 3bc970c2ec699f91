//! The Kasane thin client runtime: connect to a host over TLS, keep the registry trust
//! current, verify and run the host's transform in the sandbox, log in, and send and receive
//! sealed messages.
//!
//! # Module map
//! - `config`: [`ClientConfig`]: the host URL, the TLS trust anchor, the pinned registry root,
//!   the state directory (`None`: nothing is kept on disk).
//! - `error`: [`ClientError`], one variant per class of cause, each keeping its source
//!   ([`ConfigError`], [`ConnectError`], [`ProtocolFailure`], [`ModuleRefused`],
//!   [`RegistryUpdateError`], [`FileError`], [`InputError`], or another crate's error).
//! - `net` (private): TLS 1.3 (rustls, ring, webpki against the configured CA) and one
//!   HTTP/1.1 connection per login, with the RFC 9266 exporter for channel binding.
//! - [`registry`]: the trust store kept current from `GET /v1/registry/<path>` without
//!   blocking the runtime ([`registry::Prefetched`]).
//! - `responder`: [`Responder`] (password and answers), [`CardResponder`].
//! - `client`: [`Client`]: connect (TLS settings, trust update, sandbox, compile cache);
//!   the private files it keeps are written through `kasane_os::fs` (0600 files, 0700 dirs).
//! - `login`: [`Client::login`] step by step, [`LoginReport`].
//! - `session`: [`Session`] (send, inbox, close), [`Received`], [`InboxReport`].
//! - `report`: how a login ([`LoginReport::lines`]) and a time ([`utc`]) are shown to a person.
//!
//! # Order of checks in a login
//! TLS certificate → the host's start response (OPAQUE KE2) signed by the registry's `host`
//! role → OPAQUE finish with the password (the password never leaves this process) → the
//! sealed challenge bundle → ticket and module checked against the trusted registry (revoked
//! modules refused, even from the local cache) → compile in the sandbox → keyed verifiers and
//! the transform → the host's confirm.
//!
//! # Example
//! ```no_run
//! use kasane_client::{CardResponder, Client, ClientConfig};
//! use kasane_protocol::card::CodeCard;
//! use zeroize::Zeroizing;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::new(
//!     "https://127.0.0.1:8443",
//!     std::fs::read("data/tls/cert.pem")?,
//!     std::fs::read("data/registry/metadata/1.root.json")?,
//! );
//! let client = Client::connect(config).await?;
//! let card = CodeCard::from_text(&std::fs::read_to_string("data/cards/alice.card")?)?;
//! let mut responder = CardResponder::new(Zeroizing::new("password".into()), card);
//! let (mut session, report) = client.login("alice", &mut responder).await?;
//! println!("ran {} (counter {})", report.transform, report.counter);
//! session.send("bob", b"hello").await?;
//! for m in session.inbox(5).await? {
//!     println!("{}: {} bytes", m.from, m.body.len());
//! }
//! session.close().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod gateway;
mod login;
mod net;
pub mod registry;
mod report;
mod responder;
mod session;

pub use client::{Client, trust_dir};
pub use config::ClientConfig;
pub use error::{
    ClientError, ConfigError, ConnectError, FileError, InputError, ModuleRefused, ProtocolFailure,
    RegistryUpdateError,
};
pub use gateway::GATEWAY_EXTRA_WAIT;
pub use login::LoginReport;
pub use report::utc;
pub use responder::{CardResponder, Responder};
pub use session::{InboxReport, MAX_IN_FLIGHT, REORDERED_RETRIES, Received, Session};
