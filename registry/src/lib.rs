//! The Kasane transform registry: what may run, and the tools that publish and try modules.
//!
//! # Module map
//! - [`cli`] (feature `cli`): the `kasane-registry` commands (`keygen`, `init`, `add`, `revoke`,
//!   `delegate`, `author-sign`, `rotate-root`, `snapshot`, `sign-ticket`, `verify`, `inspect`)
//!   as functions over a repository directory and a keys directory. The binary
//!   (`src/bin/kasane-registry/`: one struct per command, each with its own `run`) only parses
//!   arguments, calls these and prints.
//! - [`run`] (feature `cli`): `kasane-registry run` — runs one module on one input given as
//!   JSON, for authors and tools. Parses the input file format documented there.
//! - [`harness`] (feature `cli`): `kasane-registry test` — the authoring harness (ABI, imports,
//!   determinism across two engines, fuel headroom, output length, known-answer vectors).
//! - [`error`]: [`RegistryError`], one variant per refusal reason.
//! - [`keys`]: Ed25519 public keys (weak keys refused), key ids, secret keys (zeroized,
//!   redacted), key files written atomically with mode 0600 and never overwritten.
//! - [`envelope`]: DSSE-style envelopes, PAE, and the threshold rule (distinct public keys).
//! - [`metadata`]: the signed file kinds (`root`, `targets`, `authors/<id>`, `revocations`,
//!   `snapshot`, session tickets), their size caps and name rules.
//! - [`trust`]: the client-side trust store: pinned root, root chain walk, version floors,
//!   freeze and clock checks, module admission (length and hash before compiling).
//! - [`repo`]: the publisher's side, one method per CLI command (`init`, `add`, `revoke`,
//!   `delegate`, `author-sign`, `rotate-root`, `snapshot`, `sign-ticket`, `inspect`).
//! - `simulator` (feature `test-util`): an in-memory repository with every role's keys and a
//!   manual clock, for tests (this crate's and other crates').
//! - `danger` (feature `test-util`): what skips or weakens a trust check — fixed-seed keys, a
//!   verify that trusts the repository's own root. Never in a default build.
//! - [`files`]: capped reads, and every write through `kasane_os::fs` (secret keys and the
//!   trust state 0600 and never replaced / replaced atomically; public files 0644).
//! - [`hexfmt`]: lowercase hex and [`Sha256Hash`].
//! - `json` (private): strict JSON parsing — size cap, duplicate keys refused at any depth.
//!
//! `docs/REGISTRY.md` describes the roles, the threats covered and the key ceremony.
#![forbid(unsafe_code)]

pub mod envelope;
pub mod error;
pub mod files;
pub mod hexfmt;
mod json;
pub mod keys;
pub mod metadata;
pub mod repo;
pub mod trust;

#[cfg(feature = "test-util")]
pub mod danger;
#[cfg(feature = "test-util")]
pub mod simulator;

pub use error::{RegistryError, Result, RoleName};
pub use hexfmt::Sha256Hash;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod harness;
#[cfg(feature = "cli")]
pub mod run;
