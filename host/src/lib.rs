//! The Kasane host: authentication server, sessions, sealed messages with their relay and
//! inbox, a tamper-evident audit log, and storage.
//!
//! # Module map
//!
//! - [`config`]: [`Config`](config::Config) — the TOML file, `KASANE_*` environment
//!   overrides, defaults; paths relative to the data directory.
//! - [`crypto`]: enrollment — OPAQUE registration and keyed response verifiers with
//!   per-pair salts.
//! - [`registry`]: the host's view of its transform registry — reloaded when the snapshot
//!   file changes, the active transforms a client can run, weighted choice, session tickets
//!   from the online key, one loaded [`Transform`](kasane_sandbox::Transform) per module hash.
//! - [`registry_source`]: where the registry's files come from — the registry directory, or
//!   with PostgreSQL [`registry_db`]: the repository in the table `registry_files`, re-signed
//!   by one replica at a time under an advisory lock, imported and exported by the operator.
//! - [`host`]: [`Host`](host::Host) — one process's configuration, store, registry, keys,
//!   clock and metrics, and its housekeeping; the login and message steps are its methods.
//! - [`login`]: the start → finish → response flow over `kasane-protocol`'s state
//!   machines (OPAQUE, with fake records for unknown names): throttling, counters, bundles,
//!   sessions, logout. [`keyfile`]: the secret key files the host makes itself.
//! - [`messages`]: sealed messages (`POST /v1/messages`: checked, opened through the
//!   session's transform, accepted in one store transaction with its audit record and the
//!   relay queue entry, sealed at rest under `keys/queue.key`), the inbox
//!   (`GET /v1/inbox?wait=N`, long-poll; re-sealed host to client) and its ack.
//! - [`audit`]: the per-session hash chains, signed checkpoints, and the checks behind
//!   `kasane-host audit verify` / `audit export`.
//! - [`audit_chain`]: the hash chain's formats (record hash, genesis value, the bytes a
//!   checkpoint signs), shared by the store and [`audit`].
//! - [`server`]: the host serving itself — [`spawn`](server::spawn) /
//!   [`run`](server::run): TLS 1.3 only, HTTP/1.1 and HTTP/2, one RFC 9266 exporter value
//!   per connection, the axum router ([`app`](server::app)), housekeeping beside it, graceful
//!   shutdown bounded by [`SHUTDOWN_GRACE`](server::SHUTDOWN_GRACE).
//! - [`tls`]: the TLS certificate and key, read from their PEM files and swapped in place
//!   on reload ([`CertResolver`](tls::CertResolver)) without touching open connections.
//! - [`transport`]: TLS 1.3 and HTTP/1.1 or HTTP/2 under the router, with every resource a
//!   client can hold before it authenticates bounded (`[http]`: connections, handshake,
//!   header, body and idle timeouts, HTTP/2 streams).
//! - [`housekeeping`]: the timer every serving host runs: expired state purged, audit
//!   checkpoints signed.
//! - [`metrics`]: counters and a latency histogram rendered as Prometheus text.
//! - [`setup`]: `init` (a working data directory), `user add` with its code card, loading a
//!   host from a data directory.
//! - [`store`]: the [`Store`](store::Store) trait and its backends — SQLite (embedded
//!   default, WAL) and PostgreSQL (scale-out) — with their migrations: users and their
//!   challenge/response pairs, access counters, challenge bundles, logins in flight (so any
//!   replica serves any login step), sessions and sequence numbers, throttling, the relay
//!   queue and the audit log.
//! - `error`: [`HostError`].
//!
//! `docs/PROTOCOL.md` lists the HTTP endpoints; `docs/SECURITY.md` the host's threat model.
//!
//! # Example: a data directory, a host, serving over TLS 1.3
//!
//! ```
//! use std::sync::Arc;
//! use kasane_host::config::Config;
//! use kasane_host::store::{Clock, SystemClock};
//! use kasane_host::{server, setup};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Runtime::new()?;
//! # rt.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let report = setup::init(dir.path(), Some("127.0.0.1:0"), SystemClock.now()).await?;
//! assert!(report.published.iter().any(|n| n == "ocra"));
//! let cfg = Config::load_file(dir.path())?; // `Config::load` also applies KASANE_* variables
//! let host = setup::load_host(cfg, Arc::new(SystemClock)).await?;
//! // Binds the configured address (port 0: any free one), serves with housekeeping.
//! let running = server::spawn(host).await?;
//! assert_ne!(running.addr().port(), 0);
//! running.shutdown().await?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod assertion;
pub mod audit;
pub mod audit_archive;
pub mod audit_chain;
pub mod audit_prune;
pub mod barrier;
pub mod body_deadline;
pub mod budget_holds;
pub mod config;
pub mod crypto;
mod error;
pub mod gateway;
pub mod group_commit;
pub mod host;
pub mod housekeeping;
pub mod keyfile;
pub mod login;
pub mod messages;
pub mod metrics;
mod per_session;
pub mod proxy_protocol;
pub mod registry;
pub mod registry_db;
pub mod registry_source;
pub mod rekey;
pub mod retention;
pub mod server;
pub mod session_cache;
pub mod session_ends;
pub mod setup;
pub mod store;
pub mod tls;
pub mod transport;
pub mod upkeep;
pub mod upstream;
pub mod web;

pub use error::HostError;
