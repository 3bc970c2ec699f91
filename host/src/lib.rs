//! The Kasane host: authentication server, sessions, relay, audit log and storage.
//!
//! # Module map
//! (being written: see issue 4)
#![forbid(unsafe_code)]
