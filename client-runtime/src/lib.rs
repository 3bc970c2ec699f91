//! The Kasane thin client runtime: connect to a host over TLS, keep the registry trust
//! current, verify and run the host's transform in the sandbox, log in, and send and receive
//! sealed messages.
//!
//! # Module map
//! - `config`: [`ClientConfig`].
//! - `error`: [`ClientError`].
//! - `responder`: [`Responder`], [`CardResponder`].
//! - `client`: [`Client`], [`Session`], [`LoginReport`], [`Received`].
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod responder;

pub use client::{Client, LoginReport, Received, Session};
pub use config::ClientConfig;
pub use error::ClientError;
pub use responder::{CardResponder, Responder};
