//! The Kasane host: authentication server, sessions, relay, audit log and storage.
//!
//! # Module map
//!
//! - [`store`]: the [`Store`](store::Store) trait and its backends — SQLite (embedded
//!   default, WAL) and PostgreSQL (scale-out) — with their migrations: users and their
//!   challenge/response pairs, access counters, challenge bundles, sessions and sequence
//!   numbers, throttling, the relay queue and the audit log.
//!
//! (The server, login flow, relay and audit modules join this map as they land: issues 4, 6.)
#![forbid(unsafe_code)]

pub mod store;
