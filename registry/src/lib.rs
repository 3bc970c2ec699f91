//! The Kasane transform registry: what may run, and the tools that publish and try modules.
//!
//! The registry is a standard TUF 1.0 repository (`kasane-tuf` implements TUF itself); this
//! crate adds Kasane's layout and rules on top.
//!
//! # Module map
//! - [`layout`]: Kasane's roles and documents on TUF (`revocations`, `authors`, one role per
//!   author; `kasane/host-keys.json`, `kasane/revocations.json`) and the name rules.
//! - [`entry`]: [`entry::TargetEntry`], a transform target and its `custom.kasane` fields.
//! - [`documents`]: `kasane/host-keys.json` and `kasane/revocations.json`.
//! - [`ticket`]: per-login session tickets, signed by a host ticket key.
//! - [`trust`]: the client-side trust store: TUF's client workflow over a pinned root, then
//!   ticket checks and module admission (length and hash before compiling).
//! - [`repo`]: the publisher's side, one method per CLI command (`init`, `add`, `revoke`,
//!   `delegate`, `author-sign`, `rotate-root`, `snapshot`, `sign-ticket`), and the check of a
//!   repository as a client sees it ([`repo::Repository::active`]).
//! - [`weights`]: per-delegation rollout weight caps (`x-kasane-max-weight`) and the
//!   effective weight host and client both use.
//! - [`signing`]: every signature through a `kasane_signer::Signer` (key files, PKCS#11).
//! - [`memory`]: an in-memory fetcher and metadata store.
//! - [`error`]: [`RegistryError`], one variant per refusal reason.
//! - [`keys`]: the host's Ed25519 identity key files (zeroized, redacted, mode 0600).
//! - [`files`]: capped reads, and every write through `kasane_os::fs`.
//! - [`hexfmt`]: lowercase hex and [`Sha256Hash`].
//! - `json` (private): strict JSON parsing — size cap, duplicate keys refused at any depth.
//! - [`cli`] (feature `cli`): the `kasane-registry` commands as functions over a repository
//!   directory and a keys directory; the binary only parses arguments and prints.
//! - [`run`], [`harness`] (feature `cli`): `kasane-registry run` and `test` (the authoring
//!   harness).
//! - [`dependence`] (feature `sandbox`, part of `cli`): the check that a module's auth output
//!   depends on the responses and the session, shared by the harness and the host.
//! - `simulator`, `danger` (feature `test-util`): an in-memory repository with every role's
//!   keys and a manual clock; what skips a trust check. Never in a default build.
//!
//! `docs/REGISTRY.md` describes the roles, the files, the threats covered and the ceremonies.
#![forbid(unsafe_code)]

pub mod documents;
pub mod entry;
pub mod error;
pub mod files;
pub mod hexfmt;
mod json;
pub mod keys;
pub mod layout;
pub mod memory;
pub mod prefetch;
pub mod repo;
pub mod signing;
pub mod ticket;
pub mod trust;
pub mod weights;

#[cfg(feature = "test-util")]
pub mod danger;
#[cfg(feature = "test-util")]
pub mod simulator;

pub use error::{RegistryError, Result, RoleName};
pub use hexfmt::Sha256Hash;
pub use kasane_tuf::TufError;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "sandbox")]
pub mod dependence;
#[cfg(feature = "cli")]
pub mod harness;
#[cfg(feature = "cli")]
pub mod run;
